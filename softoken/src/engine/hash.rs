//! Hashes and HMACs through EVP (the ones aws-lc-rs lacks, and contexts
//! reused across messages), and the PBKDF2-HMAC-SHA256 loop NSS's
//! password checks run.

use aws_lc_sys as sys;
use zeroize::Zeroizing;

use super::Owned;
use crate::rv::{Result, Rv};

/// A hash, as the engine computes it: through aws-lc-rs where it has the
/// algorithm (no EVP context to allocate), else through EVP. The names
/// PKCS#11 gives each hash are `mechanism::hash`'s table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hash {
    /// For old data only (verifying old signatures, NSS keeps it).
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha512_224,
    Sha512_256,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl Hash {
    pub(super) fn md(self) -> *const sys::EVP_MD {
        // SAFETY: these return pointers to static tables.
        unsafe {
            match self {
                Hash::Md5 => sys::EVP_md5(),
                Hash::Sha1 => sys::EVP_sha1(),
                Hash::Sha224 => sys::EVP_sha224(),
                Hash::Sha256 => sys::EVP_sha256(),
                Hash::Sha384 => sys::EVP_sha384(),
                Hash::Sha512 => sys::EVP_sha512(),
                Hash::Sha512_224 => sys::EVP_sha512_224(),
                Hash::Sha512_256 => sys::EVP_sha512_256(),
                Hash::Sha3_224 => sys::EVP_sha3_224(),
                Hash::Sha3_256 => sys::EVP_sha3_256(),
                Hash::Sha3_384 => sys::EVP_sha3_384(),
                Hash::Sha3_512 => sys::EVP_sha3_512(),
            }
        }
    }

    /// aws-lc-rs's digest of this hash, where it has one.
    pub fn digest_algorithm(self) -> Option<&'static aws_lc_rs::digest::Algorithm> {
        use aws_lc_rs::digest;
        Some(match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => &digest::SHA224,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
            Hash::Sha512_256 => &digest::SHA512_256,
            Hash::Sha3_256 => &digest::SHA3_256,
            Hash::Sha3_384 => &digest::SHA3_384,
            Hash::Sha3_512 => &digest::SHA3_512,
            Hash::Md5 | Hash::Sha512_224 | Hash::Sha3_224 => return None,
        })
    }

    /// aws-lc-rs's HMAC over this hash, where it has one.
    pub fn hmac_algorithm(self) -> Option<aws_lc_rs::hmac::Algorithm> {
        use aws_lc_rs::hmac;
        Some(match self {
            Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => hmac::HMAC_SHA224,
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
            Hash::Sha512 => hmac::HMAC_SHA512,
            _ => return None,
        })
    }

    /// PBKDF2 with HMAC over this hash into `out`; SHA-256, the one NSS
    /// uses, has its own faster loop. Hashes aws-lc-rs has no PBKDF2 for
    /// are refused.
    pub fn pbkdf2(
        self,
        iterations: std::num::NonZeroU32,
        salt: &[u8],
        secret: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        use aws_lc_rs::pbkdf2;
        let alg = match self {
            Hash::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Hash::Sha256 => {
                pbkdf2_hmac_sha256(secret, salt, iterations.get(), out);
                return Ok(());
            }
            Hash::Sha384 => pbkdf2::PBKDF2_HMAC_SHA384,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
            _ => return Err(Rv::MechanismParamInvalid),
        };
        pbkdf2::derive(alg, iterations, salt, secret, out);
        Ok(())
    }

    pub fn output_len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha1 => 20,
            Hash::Sha224 | Hash::Sha512_224 | Hash::Sha3_224 => 28,
            Hash::Sha256 | Hash::Sha512_256 | Hash::Sha3_256 => 32,
            Hash::Sha384 | Hash::Sha3_384 => 48,
            Hash::Sha512 | Hash::Sha3_512 => 64,
        }
    }
}

/// A running digest over EVP.
pub struct EvpDigest {
    ctx: Owned<sys::EVP_MD_CTX>,
    hash: Hash,
}

// SAFETY: the context is owned by this value alone and used from one
// thread at a time (a session's operation is behind its lock).
unsafe impl Send for EvpDigest {}

impl EvpDigest {
    pub fn new(hash: Hash) -> Result<EvpDigest> {
        // SAFETY: a plain constructor, then initialisation with a static table.
        let ctx = Owned::new(unsafe { sys::EVP_MD_CTX_new() }, sys::EVP_MD_CTX_free)?;
        // SAFETY: the context just made, and a static digest table.
        if unsafe { sys::EVP_DigestInit_ex(ctx.ptr.as_ptr(), hash.md(), std::ptr::null_mut()) } != 1
        {
            return Err(Rv::GeneralError);
        }
        Ok(EvpDigest { ctx, hash })
    }

    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: a live context and a valid buffer (it cannot fail then).
        unsafe {
            sys::EVP_DigestUpdate(self.ctx.ptr.as_ptr(), data.as_ptr() as *const _, data.len())
        };
    }

    /// The digest so far; the running state is left as it is.
    pub fn result(&self) -> Result<Vec<u8>> {
        // SAFETY: a copy of the live context is finalised into a buffer of
        // the hash's size.
        unsafe {
            let copy = Owned::new(sys::EVP_MD_CTX_new(), sys::EVP_MD_CTX_free)?;
            let mut out = vec![0u8; self.hash.output_len()];
            let mut len = 0;
            if sys::EVP_MD_CTX_copy_ex(copy.ptr.as_ptr(), self.ctx.ptr.as_ptr()) != 1
                || sys::EVP_DigestFinal_ex(copy.ptr.as_ptr(), out.as_mut_ptr(), &mut len) != 1
            {
                return Err(Rv::GeneralError);
            }
            Ok(out)
        }
    }
}

/// A running HMAC over any of the hashes. One heap context keyed in place:
/// aws-lc-rs's `hmac::Key` plus `Context` costs a second context and copies
/// of it, which is most of an HMAC over a short message.
pub struct Hmac {
    /// Always Some until dropped (then it goes back to the thread's spare).
    ctx: Option<Owned<sys::HMAC_CTX>>,
    hash: Hash,
    finished: bool,
}

// SAFETY: as for EvpDigest.
unsafe impl Send for Hmac {}

thread_local! {
    /// One wiped HMAC context kept per thread for the next HMAC. aws-lc's
    /// HMAC_CTX is 1,224 bytes, a large request for glibc: allocating one
    /// made malloc consolidate its fast bins at every HMAC Init, 8% of an
    /// HMAC over 64 bytes.
    static SPARE_HMAC_CTX: std::cell::Cell<Option<Owned<sys::HMAC_CTX>>> =
        const { std::cell::Cell::new(None) };
}

/// A context for a new HMAC: the thread's spare, or a new one.
fn hmac_ctx() -> Result<Owned<sys::HMAC_CTX>> {
    match SPARE_HMAC_CTX.try_with(|spare| spare.take()).ok().flatten() {
        Some(ctx) => Ok(ctx),
        // SAFETY: a plain constructor.
        None => Owned::new(unsafe { sys::HMAC_CTX_new() }, sys::HMAC_CTX_free),
    }
}

/// A context keyed for an HMAC with `hash`.
fn keyed_hmac_ctx(hash: Hash, key: &[u8]) -> Result<Owned<sys::HMAC_CTX>> {
    let ctx = hmac_ctx()?;
    // SAFETY: a new or wiped context, a valid key buffer and a static table.
    let ok = unsafe {
        sys::HMAC_Init_ex(
            ctx.ptr.as_ptr(),
            key.as_ptr() as *const _,
            key.len(),
            hash.md(),
            std::ptr::null_mut(),
        )
    };
    if ok != 1 {
        return Err(Rv::GeneralError);
    }
    Ok(ctx)
}

/// An HMAC keyed and never updated: each HMAC with the key starts as a
/// copy of it, without hashing the key's two pads again.
pub struct HmacKey {
    ctx: Owned<sys::HMAC_CTX>,
    hash: Hash,
}

// SAFETY: the context is owned by this value alone and only ever read
// after it is keyed (copied from), which aws-lc allows from several
// threads at once.
unsafe impl Send for HmacKey {}
// SAFETY: as above.
unsafe impl Sync for HmacKey {}

impl HmacKey {
    pub fn new(hash: Hash, key: &[u8]) -> Result<HmacKey> {
        Ok(HmacKey {
            ctx: keyed_hmac_ctx(hash, key)?,
            hash,
        })
    }
}

impl Hmac {
    /// An HMAC with the key of `key`, started from a copy of it.
    pub fn with_key(key: &HmacKey) -> Result<Hmac> {
        let ctx = hmac_ctx()?;
        let hmac = Hmac {
            ctx: Some(ctx),
            hash: key.hash,
            finished: false,
        };
        // SAFETY: a new or wiped context and a keyed one to copy.
        if unsafe { sys::HMAC_CTX_copy_ex(hmac.ctx(), key.ctx.ptr.as_ptr()) } != 1 {
            return Err(Rv::GeneralError);
        }
        Ok(hmac)
    }

    pub fn new(hash: Hash, key: &[u8]) -> Result<Hmac> {
        Ok(Hmac {
            ctx: Some(keyed_hmac_ctx(hash, key)?),
            hash,
            finished: false,
        })
    }

    fn ctx(&self) -> *mut sys::HMAC_CTX {
        self.ctx
            .as_ref()
            .map_or(std::ptr::null_mut(), |c| c.ptr.as_ptr())
    }

    pub fn update(&mut self, data: &[u8]) {
        if !self.finished {
            // SAFETY: a live context and a valid buffer.
            unsafe { sys::HMAC_Update(self.ctx(), data.as_ptr(), data.len()) };
        }
    }

    /// The MAC; the operation ends with it (a second call fails).
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        if std::mem::replace(&mut self.finished, true) {
            return Err(Rv::OperationNotInitialized);
        }
        let mut out = vec![0u8; self.hash.output_len()];
        let mut len = 0;
        // SAFETY: a live context, finalised once into a buffer of the
        // hash's size.
        let ok = unsafe { sys::HMAC_Final(self.ctx(), out.as_mut_ptr(), &mut len) };
        if ok != 1 || len as usize != out.len() {
            return Err(Rv::GeneralError);
        }
        Ok(out)
    }
}

impl Drop for Hmac {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            // SAFETY: a live context; cleanup wipes the keyed states and
            // leaves it as HMAC_CTX_init does, ready for another key.
            unsafe { sys::HMAC_CTX_cleanup(ctx.ptr.as_ptr()) };
            // Kept as the thread's spare (a spare already there is freed;
            // so is this one if the thread is ending).
            let _ = SPARE_HMAC_CTX.try_with(|spare| spare.replace(Some(ctx)));
        }
    }
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Runs SHA-256's compression function over one 64-byte block.
fn sha256_compress(state: &mut [u32; 8], block: &[u8; 64]) {
    // SAFETY: an 8-word state and exactly one 64-byte block.
    unsafe { sys::SHA256_TransformBlocks(state.as_mut_ptr(), block.as_ptr(), 1) }
}

/// PBKDF2 with HMAC-SHA256 (RFC 8018), the KDF of NSS's key4.db records and
/// its password check. Its iterations run the compression function straight
/// on states keyed once, with the padding laid out once: every iteration is
/// exactly two compressions. aws-lc's generic HMAC spends about a fifth more
/// per iteration, and a login is mostly this loop.
fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let mut key = Zeroizing::new([0u8; 64]);
    if password.len() > 64 {
        key[..32].copy_from_slice(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, password).as_ref(),
        );
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let keyed = |pad: u8| {
        let mut block = Zeroizing::new([0u8; 64]);
        block
            .iter_mut()
            .zip(key.iter())
            .for_each(|(b, k)| *b = k ^ pad);
        let mut state = Zeroizing::new(SHA256_IV);
        sha256_compress(&mut state, &block);
        state
    };
    let (inner, outer) = (keyed(0x36), keyed(0x5c));
    let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, password);
    // One 32-byte message after the 64-byte key block: the padding and the
    // length (96 bytes, in bits) never change.
    let mut block = Zeroizing::new([0u8; 64]);
    block[32] = 0x80;
    block[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
    for (index, chunk) in out.chunks_mut(32).enumerate() {
        let mut first = aws_lc_rs::hmac::Context::with_key(&mac_key);
        first.update(salt);
        first.update(&(index as u32 + 1).to_be_bytes());
        let u1 = first.sign();
        block[..32].copy_from_slice(u1.as_ref());
        // Each U as two 128-bit numbers whose big-endian bytes are U's: the
        // state words go in and out of the block with two byte swaps and
        // two wide stores, and the sum is two XORs.
        let half_of = |bytes: &[u8]| u128::from_be_bytes(bytes.try_into().unwrap_or_default());
        let mut sum = Zeroizing::new([half_of(&block[..16]), half_of(&block[16..32])]);
        let mut state = Zeroizing::new([0u32; 8]);
        let mut u = Zeroizing::new([0u128; 2]);
        for _ in 1..iterations {
            for keyed in [&inner, &outer] {
                *state = **keyed;
                sha256_compress(&mut state, &block);
                for (half, words) in u.iter_mut().zip(state.chunks_exact(4)) {
                    *half = words.iter().fold(0, |acc, &w| (acc << 32) | u128::from(w));
                }
                block[..16].copy_from_slice(&u[0].to_be_bytes());
                block[16..32].copy_from_slice(&u[1].to_be_bytes());
            }
            sum[0] ^= u[0];
            sum[1] ^= u[1];
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes[..16].copy_from_slice(&sum[0].to_be_bytes());
        bytes[16..].copy_from_slice(&sum[1].to_be_bytes());
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_contexts_reused_across_hashes_and_keys_give_the_right_macs() {
        use aws_lc_rs::hmac;
        let cases = [Hash::Sha512, Hash::Sha256, Hash::Sha1, Hash::Sha384]
            .map(|h| (h, h.hmac_algorithm().unwrap()));
        // Each HMAC after the first starts on the context the one before
        // gave back: keys of other lengths and other hashes must not leak in.
        for round in 0..3usize {
            for (i, (hash, alg)) in cases.iter().enumerate() {
                let key = vec![i as u8 + 1; 7 + 50 * round + i];
                let mut ours = Hmac::new(*hash, &key).unwrap();
                ours.update(b"message ");
                ours.update(&[round as u8]);
                let mac = ours.finish().unwrap();
                let expected = hmac::sign(
                    &hmac::Key::new(*alg, &key),
                    &[&b"message "[..], &[round as u8]].concat(),
                );
                assert_eq!(mac, expected.as_ref());
                assert_eq!(ours.finish().err(), Some(Rv::OperationNotInitialized));
            }
        }
    }

    #[test]
    fn pbkdf2_hmac_sha256_agrees_with_aws_lc() {
        use aws_lc_rs::pbkdf2;
        let long = [0x61u8; 100];
        for password in [&b""[..], b"pw", &long[..64], &long[..65], &long] {
            for salt in [&b""[..], b"salt", &long] {
                for iterations in [1u32, 2, 3, 1000] {
                    for len in [1usize, 31, 32, 33, 64, 100] {
                        let mut ours = vec![0u8; len];
                        pbkdf2_hmac_sha256(password, salt, iterations, &mut ours);
                        let mut theirs = vec![0u8; len];
                        let n = std::num::NonZeroU32::new(iterations).unwrap();
                        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, n, salt, password, &mut theirs);
                        assert_eq!(
                            ours,
                            theirs,
                            "{} {} {iterations} {len}",
                            password.len(),
                            salt.len()
                        );
                    }
                }
            }
        }
        // RFC 7914, section 11: PBKDF2-HMAC-SHA256 ("passwd", "salt", 1, 64).
        let mut out = [0u8; 64];
        pbkdf2_hmac_sha256(b"passwd", b"salt", 1, &mut out);
        assert_eq!(out[..8], [0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f]);
    }
}
