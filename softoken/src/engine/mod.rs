//! The few operations aws-lc-rs's safe API lacks, called through aws-lc-sys.
//! This is the only module that does so.
//!
//! - ECDSA over a caller's digest of any length (PKCS#11's CKM_ECDSA, and
//!   the hashed ECDSA mechanisms for every curve and hash pairing), with
//!   signatures in PKCS#11's fixed-width r || s form.
//! - RSA from PKCS#11's key components: key generation with the caller's
//!   public exponent, PKCS#1 v1.5 signatures over a caller-built DigestInfo,
//!   PSS over a digest, the raw (X.509) operation, and encryption with
//!   PKCS#1 v1.5 or OAEP padding (with a label). aws-lc's private-key
//!   operations are constant-time and blinded.
//! - The hashes aws-lc-rs does not offer (SHA-512/224, SHA3-224) and HMAC
//!   over the SHA3 family, through EVP; AES-CMAC; AES-GCM with any IV
//!   length and tag length; AES key wrap with AES-192 keys too.

pub mod secret;

use std::ptr::NonNull;

use aws_lc_sys as sys;
use zeroize::{Zeroize, Zeroizing};

use crate::engine::secret::SecretVec;
use crate::rv::{Result, Rv};

/// The NIST curves the token offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn nid(self) -> i32 {
        match self {
            Curve::P256 => sys::NID_X9_62_prime256v1,
            Curve::P384 => sys::NID_secp384r1,
            Curve::P521 => sys::NID_secp521r1,
        }
    }

    /// Bytes of a field element (and of r and s).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// Frees an aws-lc object when dropped.
struct Owned<T> {
    ptr: NonNull<T>,
    free: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(ptr: *mut T, free: unsafe extern "C" fn(*mut T)) -> Result<Owned<T>> {
        Ok(Owned {
            ptr: NonNull::new(ptr).ok_or(Rv::HostMemory)?,
            free,
        })
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from the matching aws-lc allocator and is freed once.
        unsafe { (self.free)(self.ptr.as_ptr()) }
    }
}

/// An EC key for ECDSA: a private key (which can sign and verify) or a
/// public key (which can verify).
pub struct EcKey {
    key: Owned<sys::EC_KEY>,
    curve: Curve,
}

// SAFETY: the EC_KEY is owned by this value alone; aws-lc allows using a key
// from any thread, and sign/verify take it by shared reference only.
unsafe impl Send for EcKey {}
// SAFETY: aws-lc's ECDSA and ECDH take the key as `const EC_KEY *` and
// change nothing in it, so threads may share one.
unsafe impl Sync for EcKey {}

impl EcKey {
    fn empty(curve: Curve) -> Result<EcKey> {
        // SAFETY: a plain constructor; null is checked by Owned::new.
        let key = Owned::new(
            unsafe { sys::EC_KEY_new_by_curve_name(curve.nid()) },
            sys::EC_KEY_free,
        )?;
        Ok(EcKey { key, curve })
    }

    fn group(&self) -> *const sys::EC_GROUP {
        // SAFETY: the key was made for a curve, so it has a group.
        unsafe { sys::EC_KEY_get0_group(self.key.ptr.as_ptr()) }
    }

    /// A private key from its scalar (big-endian); the public point is
    /// computed from it.
    pub fn from_private(curve: Curve, scalar: &[u8]) -> Result<EcKey> {
        if scalar.is_empty() || scalar.len() > curve.field_len() {
            return Err(Rv::KeyTypeInconsistent);
        }
        let key = EcKey::empty(curve)?;
        // SAFETY: valid buffer and length; the BIGNUM is cleared and freed below.
        let d = Owned::new(
            unsafe { sys::BN_bin2bn(scalar.as_ptr(), scalar.len(), std::ptr::null_mut()) },
            sys::BN_clear_free,
        )?;
        // SAFETY: the point belongs to the key's group.
        let point = Owned::new(
            unsafe { sys::EC_POINT_new(key.group()) },
            sys::EC_POINT_free,
        )?;
        // SAFETY: all pointers are live objects of this key's group.
        let ok = unsafe {
            sys::EC_KEY_set_private_key(key.key.ptr.as_ptr(), d.ptr.as_ptr()) == 1
                && sys::EC_POINT_mul(
                    key.group(),
                    point.ptr.as_ptr(),
                    d.ptr.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    std::ptr::null_mut(),
                ) == 1
                && sys::EC_KEY_set_public_key(key.key.ptr.as_ptr(), point.ptr.as_ptr()) == 1
                && sys::EC_KEY_check_key(key.key.ptr.as_ptr()) == 1
        };
        if ok {
            Ok(key)
        } else {
            // Zero, or not below the group order.
            Err(Rv::KeyTypeInconsistent)
        }
    }

    /// A public key from an uncompressed (or compressed) point; a point not
    /// on the curve is refused.
    pub fn from_public(curve: Curve, point: &[u8]) -> Result<EcKey> {
        let key = EcKey::empty(curve)?;
        // SAFETY: the point belongs to the key's group.
        let p = Owned::new(
            unsafe { sys::EC_POINT_new(key.group()) },
            sys::EC_POINT_free,
        )?;
        // SAFETY: valid buffer and length; live objects of this key's group.
        let ok = unsafe {
            sys::EC_POINT_oct2point(
                key.group(),
                p.ptr.as_ptr(),
                point.as_ptr(),
                point.len(),
                std::ptr::null_mut(),
            ) == 1
                && sys::EC_KEY_set_public_key(key.key.ptr.as_ptr(), p.ptr.as_ptr()) == 1
                && sys::EC_KEY_check_key(key.key.ptr.as_ptr()) == 1
        };
        if ok {
            Ok(key)
        } else {
            Err(Rv::KeyTypeInconsistent)
        }
    }

    /// Signs a digest: r || s, each the curve's field length.
    pub fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        // SAFETY: valid digest buffer; a private key (sign fails cleanly otherwise).
        let sig = Owned::new(
            unsafe { sys::ECDSA_do_sign(digest.as_ptr(), digest.len(), self.key.ptr.as_ptr()) },
            sys::ECDSA_SIG_free,
        )
        .map_err(|_| Rv::FunctionFailed)?;
        let n = self.curve.field_len();
        let mut out = vec![0u8; 2 * n];
        let mut r: *const sys::BIGNUM = std::ptr::null();
        let mut s: *const sys::BIGNUM = std::ptr::null();
        // SAFETY: r and s are borrowed from the live signature; the output
        // halves are n bytes each, which holds any value below the order.
        let ok = unsafe {
            sys::ECDSA_SIG_get0(sig.ptr.as_ptr(), &mut r, &mut s);
            sys::BN_bn2bin_padded(out.as_mut_ptr(), n, r) == 1
                && sys::BN_bn2bin_padded(out[n..].as_mut_ptr(), n, s) == 1
        };
        if ok {
            Ok(out)
        } else {
            Err(Rv::FunctionFailed)
        }
    }

    /// Whether an r || s signature is valid for the digest.
    pub fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> Result<bool> {
        let n = self.curve.field_len();
        if signature.len() != 2 * n {
            return Err(Rv::SignatureLenRange);
        }
        // SAFETY: a plain constructor.
        let sig = Owned::new(unsafe { sys::ECDSA_SIG_new() }, sys::ECDSA_SIG_free)?;
        // SAFETY: valid buffers; set0 takes ownership of r and s on success,
        // and on failure they are freed here.
        unsafe {
            let r = sys::BN_bin2bn(signature.as_ptr(), n, std::ptr::null_mut());
            let s = sys::BN_bin2bn(signature[n..].as_ptr(), n, std::ptr::null_mut());
            if r.is_null() || s.is_null() || sys::ECDSA_SIG_set0(sig.ptr.as_ptr(), r, s) != 1 {
                sys::BN_free(r);
                sys::BN_free(s);
                return Err(Rv::HostMemory);
            }
        }
        // SAFETY: valid digest buffer, live signature and key.
        let ok = unsafe {
            sys::ECDSA_do_verify(
                digest.as_ptr(),
                digest.len(),
                sig.ptr.as_ptr(),
                self.key.ptr.as_ptr(),
            )
        };
        Ok(ok == 1)
    }
}

/// Which way a cipher runs (wrapping is encryption, unwrapping decryption).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// The padding of a raw RSA private-key operation: PKCS#1 v1.5 type 1
/// (CKM_RSA_PKCS), or none (CKM_RSA_X_509, input zero-extended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawPadding {
    Pkcs1,
    None,
}

/// AES key wrap (RFC 3394, whole 8-byte blocks) or key wrap with padding
/// (RFC 5649, any length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyWrap {
    Rfc3394,
    Rfc5649,
}

/// A hash, as the engine computes it: through aws-lc-rs where it has the
/// algorithm (no EVP context to allocate), else through EVP. The names
/// PKCS#11 gives each hash are `mechanism::hash`'s table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hash {
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
    fn md(self) -> *const sys::EVP_MD {
        // SAFETY: these return pointers to static tables.
        unsafe {
            match self {
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
            Hash::Sha512_224 | Hash::Sha3_224 => return None,
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

/// A running AES-CMAC.
pub struct Cmac {
    ctx: Owned<sys::CMAC_CTX>,
}

// SAFETY: as for EvpDigest.
unsafe impl Send for Cmac {}

impl Cmac {
    pub fn new(key: &[u8]) -> Result<Cmac> {
        // SAFETY: static cipher tables.
        let cipher = unsafe {
            match key.len() {
                16 => sys::EVP_aes_128_cbc(),
                24 => sys::EVP_aes_192_cbc(),
                32 => sys::EVP_aes_256_cbc(),
                _ => return Err(Rv::KeySizeRange),
            }
        };
        // SAFETY: a plain constructor, then a valid key buffer.
        let ctx = Owned::new(unsafe { sys::CMAC_CTX_new() }, sys::CMAC_CTX_free)?;
        // SAFETY: the context just made, and a valid key buffer.
        if unsafe {
            sys::CMAC_Init(
                ctx.ptr.as_ptr(),
                key.as_ptr() as *const _,
                key.len(),
                cipher,
                std::ptr::null_mut(),
            )
        } != 1
        {
            return Err(Rv::GeneralError);
        }
        Ok(Cmac { ctx })
    }

    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: a live context and a valid buffer.
        unsafe { sys::CMAC_Update(self.ctx.ptr.as_ptr(), data.as_ptr(), data.len()) };
    }

    /// The 16-byte MAC so far; the running state is left as it is.
    pub fn result(&self) -> Result<Vec<u8>> {
        // SAFETY: a copy of the live context is finalised into 16 bytes.
        unsafe {
            let copy = Owned::new(sys::CMAC_CTX_new(), sys::CMAC_CTX_free)?;
            let mut out = vec![0u8; 16];
            let mut len = 0;
            if sys::CMAC_CTX_copy(copy.ptr.as_ptr(), self.ctx.ptr.as_ptr()) != 1
                || sys::CMAC_Final(copy.ptr.as_ptr(), out.as_mut_ptr(), &mut len) != 1
            {
                return Err(Rv::GeneralError);
            }
            Ok(out)
        }
    }
}

/// The components of an RSA private key, big-endian, as PKCS#11 stores them.
pub struct RsaParts {
    pub modulus: Vec<u8>,
    pub public_exponent: Vec<u8>,
    pub private_exponent: Zeroizing<Vec<u8>>,
    pub prime_1: Zeroizing<Vec<u8>>,
    pub prime_2: Zeroizing<Vec<u8>>,
    pub exponent_1: Zeroizing<Vec<u8>>,
    pub exponent_2: Zeroizing<Vec<u8>>,
    pub coefficient: Zeroizing<Vec<u8>>,
}

/// A BIGNUM from big-endian bytes; null on failure.
fn bn(bytes: &[u8]) -> *mut sys::BIGNUM {
    // SAFETY: valid buffer and length; a new BIGNUM is returned.
    unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), std::ptr::null_mut()) }
}

/// Big-endian bytes of a BIGNUM (minimal length, as PKCS#11 wants).
fn bn_bytes(b: *const sys::BIGNUM) -> Zeroizing<Vec<u8>> {
    // SAFETY: a live BIGNUM; the buffer is sized by BN_num_bytes.
    unsafe {
        let mut out = Zeroizing::new(vec![0u8; sys::BN_num_bytes(b) as usize]);
        sys::BN_bn2bin(b, out.as_mut_ptr());
        out
    }
}

/// An RSA key: private (with CRT components) or public.
pub struct RsaKey {
    rsa: Owned<sys::RSA>,
}

// SAFETY: the RSA object is owned by this value alone; aws-lc allows using
// a key from any thread (its blinding cache is locked internally).
unsafe impl Send for RsaKey {}
// SAFETY: every operation takes the key by shared reference, and aws-lc's
// RSA operations may run on one key from several threads at once (the
// lazily built Montgomery contexts and the blinding cache are locked).
unsafe impl Sync for RsaKey {}

impl RsaKey {
    fn empty() -> Result<RsaKey> {
        Ok(RsaKey {
            // SAFETY: a plain constructor.
            rsa: Owned::new(unsafe { sys::RSA_new() }, sys::RSA_free)?,
        })
    }

    fn ptr(&self) -> *mut sys::RSA {
        self.rsa.ptr.as_ptr()
    }

    /// Sets n, e and (when given) d; the values are handed over to the RSA.
    fn set_key(&self, n: &[u8], e: &[u8], d: Option<&[u8]>) -> Result<()> {
        let (n, e) = (bn(n), bn(e));
        let d = d.map_or(std::ptr::null_mut(), bn);
        // SAFETY: on success the RSA owns the BIGNUMs; on failure we free them.
        unsafe {
            if n.is_null() || e.is_null() || sys::RSA_set0_key(self.ptr(), n, e, d) != 1 {
                sys::BN_free(n);
                sys::BN_free(e);
                sys::BN_clear_free(d);
                return Err(Rv::KeyTypeInconsistent);
            }
        }
        Ok(())
    }

    /// A public key.
    pub fn from_public(modulus: &[u8], public_exponent: &[u8]) -> Result<RsaKey> {
        let key = RsaKey::empty()?;
        key.set_key(modulus, public_exponent, None)?;
        Ok(key)
    }

    /// A private key with its CRT components, checked for consistency.
    pub fn from_private(parts: &RsaParts) -> Result<RsaKey> {
        let key = RsaKey::empty()?;
        key.set_key(
            &parts.modulus,
            &parts.public_exponent,
            Some(&parts.private_exponent),
        )?;
        let (p, q) = (bn(&parts.prime_1), bn(&parts.prime_2));
        let (dp, dq, qinv) = (
            bn(&parts.exponent_1),
            bn(&parts.exponent_2),
            bn(&parts.coefficient),
        );
        // SAFETY: on success the RSA owns the BIGNUMs; on failure we free them.
        unsafe {
            let factors =
                !p.is_null() && !q.is_null() && sys::RSA_set0_factors(key.ptr(), p, q) == 1;
            if !factors {
                sys::BN_clear_free(p);
                sys::BN_clear_free(q);
            }
            let crt = factors
                && !dp.is_null()
                && !dq.is_null()
                && !qinv.is_null()
                && sys::RSA_set0_crt_params(key.ptr(), dp, dq, qinv) == 1;
            if !crt {
                sys::BN_clear_free(dp);
                sys::BN_clear_free(dq);
                sys::BN_clear_free(qinv);
                return Err(Rv::KeyTypeInconsistent);
            }
            if sys::RSA_check_key(key.ptr()) != 1 {
                return Err(Rv::KeyTypeInconsistent);
            }
        }
        Ok(key)
    }

    /// A new key of `bits` bits with the public exponent `e`.
    pub fn generate(bits: usize, e: &[u8]) -> Result<RsaParts> {
        let key = RsaKey::empty()?;
        // SAFETY: a new BIGNUM, freed by Owned.
        let e = Owned::new(bn(e), sys::BN_free)?;
        let bits = i32::try_from(bits).map_err(|_| Rv::KeySizeRange)?;
        // SAFETY: live RSA and exponent; no callback.
        if unsafe {
            sys::RSA_generate_key_ex(key.ptr(), bits, e.ptr.as_ptr(), std::ptr::null_mut())
        } != 1
        {
            return Err(Rv::FunctionFailed);
        }
        let mut v: [*const sys::BIGNUM; 8] = [std::ptr::null(); 8];
        // SAFETY: the getters borrow components of the live key.
        unsafe {
            sys::RSA_get0_key(key.ptr(), &mut v[0], &mut v[1], &mut v[2]);
            sys::RSA_get0_factors(key.ptr(), &mut v[3], &mut v[4]);
            sys::RSA_get0_crt_params(key.ptr(), &mut v[5], &mut v[6], &mut v[7]);
        }
        if v.iter().any(|p| p.is_null()) {
            return Err(Rv::FunctionFailed);
        }
        Ok(RsaParts {
            modulus: bn_bytes(v[0]).to_vec(),
            public_exponent: bn_bytes(v[1]).to_vec(),
            private_exponent: bn_bytes(v[2]),
            prime_1: bn_bytes(v[3]),
            prime_2: bn_bytes(v[4]),
            exponent_1: bn_bytes(v[5]),
            exponent_2: bn_bytes(v[6]),
            coefficient: bn_bytes(v[7]),
        })
    }

    /// The modulus length in bytes (the signature length).
    pub fn size(&self) -> usize {
        // SAFETY: a live key with a modulus.
        unsafe { sys::RSA_size(self.ptr()) as usize }
    }

    /// The private-key operation with PKCS#1 v1.5 type 1 padding (or none,
    /// for the raw X.509 mechanism, whose input is zero-extended).
    pub fn sign_raw(&self, input: &[u8], padding: RawPadding) -> Result<Vec<u8>> {
        let k = self.size();
        let (input, padding) = if padding == RawPadding::Pkcs1 {
            if input.len() + 11 > k {
                return Err(Rv::DataLenRange);
            }
            (input.to_vec(), sys::RSA_PKCS1_PADDING)
        } else {
            if input.len() > k {
                return Err(Rv::DataLenRange);
            }
            let mut block = vec![0u8; k - input.len()];
            block.extend_from_slice(input);
            (block, sys::RSA_NO_PADDING)
        };
        let mut out = vec![0u8; k];
        let mut len = 0;
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::RSA_sign_raw(
                self.ptr(),
                &mut len,
                out.as_mut_ptr(),
                k,
                input.as_ptr(),
                input.len(),
                padding,
            )
        };
        if ok != 1 {
            // Input not below the modulus (raw), or a key without its private half.
            return Err(Rv::DataInvalid);
        }
        out.truncate(len);
        Ok(out)
    }

    /// What a PKCS#1 v1.5 (or raw) signature holds: the signed input (or the
    /// whole block). A signature that is not one is SignatureInvalid.
    pub fn recover(&self, signature: &[u8], padding: RawPadding) -> Result<Vec<u8>> {
        let k = self.size();
        if signature.len() != k {
            return Err(Rv::SignatureLenRange);
        }
        let mut out = vec![0u8; k];
        let mut len = 0;
        let padding = match padding {
            RawPadding::Pkcs1 => sys::RSA_PKCS1_PADDING,
            RawPadding::None => sys::RSA_NO_PADDING,
        };
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::RSA_verify_raw(
                self.ptr(),
                &mut len,
                out.as_mut_ptr(),
                k,
                signature.as_ptr(),
                signature.len(),
                padding,
            )
        };
        if ok != 1 {
            return Err(Rv::SignatureInvalid);
        }
        out.truncate(len);
        Ok(out)
    }

    /// Checks a PKCS#1 v1.5 (or raw) signature against the expected input.
    pub fn verify_raw(&self, input: &[u8], signature: &[u8], padding: RawPadding) -> Result<bool> {
        let k = self.size();
        let out = match self.recover(signature, padding) {
            Ok(out) => out,
            Err(Rv::SignatureInvalid) => return Ok(false),
            Err(e) => return Err(e),
        };
        let expected: Vec<u8> = if padding == RawPadding::Pkcs1 {
            input.to_vec()
        } else {
            let mut block = vec![0u8; k.saturating_sub(input.len())];
            block.extend_from_slice(input);
            block
        };
        Ok(out.len() == expected.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&out, &expected).is_ok())
    }

    /// An RSA-PSS signature over a digest.
    pub fn sign_pss(
        &self,
        digest: &[u8],
        hash: Hash,
        mgf: Hash,
        salt_len: usize,
    ) -> Result<Vec<u8>> {
        if digest.len() != hash.output_len() {
            return Err(Rv::DataLenRange);
        }
        let k = self.size();
        let salt = i32::try_from(salt_len).map_err(|_| Rv::MechanismParamInvalid)?;
        let mut out = vec![0u8; k];
        let mut len = 0;
        // SAFETY: valid buffers of the sizes given; static digest tables.
        let ok = unsafe {
            sys::RSA_sign_pss_mgf1(
                self.ptr(),
                &mut len,
                out.as_mut_ptr(),
                k,
                digest.as_ptr(),
                digest.len(),
                hash.md(),
                mgf.md(),
                salt,
            )
        };
        if ok != 1 {
            // The salt does not fit this modulus.
            return Err(Rv::MechanismParamInvalid);
        }
        out.truncate(len);
        Ok(out)
    }

    pub fn verify_pss(
        &self,
        digest: &[u8],
        signature: &[u8],
        hash: Hash,
        mgf: Hash,
        salt_len: usize,
    ) -> Result<bool> {
        if signature.len() != self.size() {
            return Err(Rv::SignatureLenRange);
        }
        if digest.len() != hash.output_len() {
            return Err(Rv::DataLenRange);
        }
        let salt = i32::try_from(salt_len).map_err(|_| Rv::MechanismParamInvalid)?;
        // SAFETY: valid buffers of the sizes given; static digest tables.
        let ok = unsafe {
            sys::RSA_verify_pss_mgf1(
                self.ptr(),
                digest.as_ptr(),
                digest.len(),
                hash.md(),
                mgf.md(),
                salt,
                signature.as_ptr(),
                signature.len(),
            )
        };
        Ok(ok == 1)
    }
}

/// The padding of RSA encryption.
#[derive(Clone, Debug)]
pub enum RsaPadding {
    Pkcs1,
    /// None: the raw operation on a zero-extended block (CKM_RSA_X_509).
    Raw,
    Oaep {
        hash: Hash,
        mgf: Hash,
        label: Vec<u8>,
    },
}

impl RsaKey {
    /// An EVP_PKEY context over this key, set up for `padding`.
    fn pkey_ctx(
        &self,
        padding: &RsaPadding,
        direction: Direction,
    ) -> Result<Owned<sys::EVP_PKEY_CTX>> {
        // SAFETY: plain constructors; set1 takes its own reference to the RSA.
        let pkey = Owned::new(unsafe { sys::EVP_PKEY_new() }, sys::EVP_PKEY_free)?;
        // SAFETY: the key just made; set1 takes its own reference to the RSA.
        if unsafe { sys::EVP_PKEY_set1_RSA(pkey.ptr.as_ptr(), self.ptr()) } != 1 {
            return Err(Rv::GeneralError);
        }
        // SAFETY: the context takes its own reference to the key.
        let ctx = Owned::new(
            unsafe { sys::EVP_PKEY_CTX_new(pkey.ptr.as_ptr(), std::ptr::null_mut()) },
            sys::EVP_PKEY_CTX_free,
        )?;
        let c = ctx.ptr.as_ptr();
        // SAFETY: a live context; static digest tables.
        let ok = unsafe {
            let init = match direction {
                Direction::Encrypt => sys::EVP_PKEY_encrypt_init(c),
                Direction::Decrypt => sys::EVP_PKEY_decrypt_init(c),
            };
            init == 1
                && match padding {
                    RsaPadding::Pkcs1 => {
                        sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_PKCS1_PADDING) == 1
                    }
                    RsaPadding::Raw => {
                        sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_NO_PADDING) == 1
                    }
                    RsaPadding::Oaep { hash, mgf, label } => {
                        sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_PKCS1_OAEP_PADDING) == 1
                            && sys::EVP_PKEY_CTX_set_rsa_oaep_md(c, hash.md()) == 1
                            && sys::EVP_PKEY_CTX_set_rsa_mgf1_md(c, mgf.md()) == 1
                            && (label.is_empty() || {
                                // The context takes ownership of an aws-lc allocation.
                                let copy = sys::OPENSSL_malloc(label.len()) as *mut u8;
                                if copy.is_null() {
                                    false
                                } else {
                                    std::ptr::copy_nonoverlapping(
                                        label.as_ptr(),
                                        copy,
                                        label.len(),
                                    );
                                    let set =
                                        sys::EVP_PKEY_CTX_set0_rsa_oaep_label(c, copy, label.len())
                                            == 1;
                                    if !set {
                                        sys::OPENSSL_free(copy as *mut _);
                                    }
                                    set
                                }
                            })
                    }
                }
        };
        if ok {
            Ok(ctx)
        } else {
            Err(Rv::MechanismParamInvalid)
        }
    }

    pub fn encrypt(&self, input: &[u8], padding: &RsaPadding) -> Result<Vec<u8>> {
        let k = self.size();
        let input = match padding {
            RsaPadding::Raw if input.len() <= k => {
                [vec![0u8; k - input.len()], input.to_vec()].concat()
            }
            _ => input.to_vec(),
        };
        let ctx = self.pkey_ctx(padding, Direction::Encrypt)?;
        let mut out = vec![0u8; k];
        let mut len = k;
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::EVP_PKEY_encrypt(
                ctx.ptr.as_ptr(),
                out.as_mut_ptr(),
                &mut len,
                input.as_ptr(),
                input.len(),
            )
        };
        if ok != 1 {
            // Too long for the padding, or (raw) not below the modulus.
            return Err(Rv::DataLenRange);
        }
        out.truncate(len);
        Ok(out)
    }

    pub fn decrypt(&self, input: &[u8], padding: &RsaPadding) -> Result<Zeroizing<Vec<u8>>> {
        let k = self.size();
        if input.len() != k {
            return Err(Rv::EncryptedDataLenRange);
        }
        let ctx = self.pkey_ctx(padding, Direction::Decrypt)?;
        let mut out = Zeroizing::new(vec![0u8; k]);
        let mut len = k;
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::EVP_PKEY_decrypt(
                ctx.ptr.as_ptr(),
                out.as_mut_ptr(),
                &mut len,
                input.as_ptr(),
                input.len(),
            )
        };
        if ok != 1 {
            return Err(Rv::EncryptedDataInvalid);
        }
        out.truncate(len);
        Ok(out)
    }
}

/// An AES-GCM key with its tag length through aws-lc's EVP_AEAD, which
/// takes IVs of any length and tags of 1 to 16 bytes.
fn gcm_key(key: &[u8], tag_len: usize) -> Result<Owned<sys::EVP_AEAD_CTX>> {
    if !(1..=16).contains(&tag_len) {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: static AEAD tables.
    let aead = unsafe {
        match key.len() {
            16 => sys::EVP_aead_aes_128_gcm(),
            24 => sys::EVP_aead_aes_192_gcm(),
            32 => sys::EVP_aead_aes_256_gcm(),
            _ => return Err(Rv::KeySizeRange),
        }
    };
    // SAFETY: a key of the length the AEAD takes (checked above).
    let ctx = unsafe { sys::EVP_AEAD_CTX_new(aead, key.as_ptr(), key.len(), tag_len) };
    Owned::new(ctx, sys::EVP_AEAD_CTX_free).map_err(|_| Rv::MechanismParamInvalid)
}

/// EVP_AEAD's seal of `len` bytes at `input` to `output`, the tag of
/// `tag_len` bytes right after the ciphertext.
///
/// # Safety
/// `input` is readable for `len` bytes; `output` writable for `len +
/// tag_len` bytes; the two are the same bytes or do not overlap.
unsafe fn seal_scatter(
    ctx: &Owned<sys::EVP_AEAD_CTX>,
    input: *const u8,
    output: *mut u8,
    len: usize,
    iv: &[u8],
    aad: &[u8],
    tag_len: usize,
) -> Result<()> {
    let mut written = 0;
    // SAFETY: a live context, and the buffers the caller vouches for.
    let ok = unsafe {
        sys::EVP_AEAD_CTX_seal_scatter(
            ctx.ptr.as_ptr(),
            output,
            output.add(len),
            &mut written,
            tag_len,
            iv.as_ptr(),
            iv.len(),
            input,
            len,
            std::ptr::null(),
            0,
            aad.as_ptr(),
            aad.len(),
        )
    };
    if ok != 1 || written != tag_len {
        return Err(Rv::DataLenRange);
    }
    Ok(())
}

/// An AES-GCM key built once for one tag length (its AES key schedule and
/// GHASH table, most of the cost of sealing a short message), through
/// EVP_AEAD, which takes IVs of any length.
pub struct GcmContext {
    ctx: Owned<sys::EVP_AEAD_CTX>,
    tag_len: usize,
}

// SAFETY: the context is owned by this value alone, and aws-lc's seal takes
// it as const and keeps no state in it between calls, so it may be used
// from any thread and from several at once.
unsafe impl Send for GcmContext {}
// SAFETY: as above.
unsafe impl Sync for GcmContext {}

impl GcmContext {
    pub fn new(key: &[u8], tag_len: usize) -> Result<GcmContext> {
        Ok(GcmContext {
            ctx: gcm_key(key, tag_len)?,
            tag_len,
        })
    }

    /// Seals one message from `input` straight into `output` (the
    /// ciphertext, then the tag): one pass over the data, for a single-part
    /// C_Encrypt into the caller's buffer. Returns the length written.
    pub fn seal_into(
        &self,
        iv: &[u8],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize> {
        let len = input.len();
        if iv.is_empty() {
            return Err(Rv::MechanismParamInvalid);
        }
        if output.len() < len + self.tag_len {
            return Err(Rv::BufferTooSmall);
        }
        // SAFETY: `output` has room for the ciphertext and the tag after it
        // (checked above) and does not overlap `input`, a shared borrow.
        unsafe {
            seal_scatter(
                &self.ctx,
                input.as_ptr(),
                output.as_mut_ptr(),
                len,
                iv,
                aad,
                self.tag_len,
            )?
        };
        Ok(len + self.tag_len)
    }

    /// Seals one message in place: `data` is the plaintext and comes back
    /// as the ciphertext followed by the tag. (Working in place matters: a
    /// fresh megabyte buffer costs as much as sealing it.)
    pub fn seal_in_place(&self, iv: &[u8], aad: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>> {
        if iv.is_empty() {
            return Err(Rv::MechanismParamInvalid);
        }
        let len = data.len();
        data.resize(len + self.tag_len, 0);
        let p = data.as_mut_ptr();
        // SAFETY: `data` holds the plaintext and room for the tag after it;
        // EVP_AEAD allows the input and output to be the same bytes.
        unsafe { seal_scatter(&self.ctx, p, p, len, iv, aad, self.tag_len)? };
        Ok(data)
    }

    /// Opens one message in place: `data` is the ciphertext followed by its
    /// tag and comes back as the plaintext; no plaintext is left unless the
    /// tag matches.
    pub fn open_in_place(&self, iv: &[u8], aad: &[u8], mut data: SecretVec) -> Result<SecretVec> {
        if iv.is_empty() {
            return Err(Rv::MechanismParamInvalid);
        }
        let len = data
            .len()
            .checked_sub(self.tag_len)
            .ok_or(Rv::EncryptedDataLenRange)?;
        // SAFETY: a live context; the output is the input's own bytes, which
        // EVP_AEAD allows; the tag follows them.
        let ok = unsafe {
            let p = data.as_mut_ptr();
            sys::EVP_AEAD_CTX_open_gather(
                self.ctx.ptr.as_ptr(),
                p,
                iv.as_ptr(),
                iv.len(),
                p,
                len,
                p.add(len),
                self.tag_len,
                aad.as_ptr(),
                aad.len(),
            )
        };
        if ok != 1 {
            // Whatever was written is wiped with the buffer.
            return Err(Rv::AeadDecryptFailed);
        }
        data.truncate(len);
        Ok(data)
    }
}

/// An AES key schedule, wiped when dropped (it is the key, expanded).
struct AesSchedule(sys::AES_KEY);

impl Drop for AesSchedule {
    fn drop(&mut self) {
        self.0.rd_key.zeroize();
    }
}

impl AesSchedule {
    /// The schedule for encrypting with `key`, or for decrypting.
    fn new(key: &[u8], direction: Direction) -> Result<AesSchedule> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(Rv::KeySizeRange);
        }
        let mut schedule = AesSchedule(sys::AES_KEY {
            rd_key: [0; 60],
            rounds: 0,
        });
        let bits = (key.len() * 8) as u32;
        // SAFETY: a key buffer of the length given in bits, and a schedule
        // to fill.
        let set = unsafe {
            match direction {
                Direction::Encrypt => sys::AES_set_encrypt_key(key.as_ptr(), bits, &mut schedule.0),
                Direction::Decrypt => sys::AES_set_decrypt_key(key.as_ptr(), bits, &mut schedule.0),
            }
        };
        if set != 0 {
            return Err(Rv::GeneralError);
        }
        Ok(schedule)
    }
}

/// AES-CBC encryption of `input` straight into `output`, chaining from
/// `iv`, which is left as the last ciphertext block. With `pad`, PKCS#7
/// padding completes the last block; without, `input` must be whole blocks.
/// Returns the length written. Reading the caller's input in place spares
/// a copy of it, a twentieth of the time for a megabyte.
pub fn aes_cbc_encrypt_into(
    key: &[u8],
    iv: &mut [u8; 16],
    input: &[u8],
    pad: bool,
    output: &mut [u8],
) -> Result<usize> {
    let whole = input.len() - input.len() % 16;
    if !pad && whole != input.len() {
        return Err(Rv::DataLenRange);
    }
    let total = if pad { whole + 16 } else { whole };
    if output.len() < total {
        return Err(Rv::BufferTooSmall);
    }
    let schedule = AesSchedule::new(key, Direction::Encrypt)?;
    // SAFETY: `whole` bytes of input and as many of room in `output`
    // (checked above); a shared and a mutable borrow, so they do not
    // overlap; a live schedule and a 16-byte IV.
    unsafe {
        sys::AES_cbc_encrypt(
            input.as_ptr(),
            output.as_mut_ptr(),
            whole,
            &schedule.0,
            iv.as_mut_ptr(),
            sys::AES_ENCRYPT,
        )
    };
    if pad {
        let rest = input.len() - whole;
        let mut last = Zeroizing::new([(16 - rest) as u8; 16]);
        last[..rest].copy_from_slice(&input[whole..]);
        // SAFETY: one block in, one block of room left in `output`.
        unsafe {
            sys::AES_cbc_encrypt(
                last.as_ptr(),
                output.as_mut_ptr().add(whole),
                16,
                &schedule.0,
                iv.as_mut_ptr(),
                sys::AES_ENCRYPT,
            )
        };
    }
    Ok(total)
}

/// AES key wrap (RFC 3394) or key wrap with padding (RFC 5649) with a KEK
/// of any AES size (aws-lc-rs's safe API takes AES-128 and AES-256 only).
/// Errors: DataLenRange for input that cannot be wrapped,
/// EncryptedDataInvalid for a wrapping that does not check out.
pub fn aes_key_wrap(
    kek: &[u8],
    input: &[u8],
    form: KeyWrap,
    direction: Direction,
) -> Result<Zeroizing<Vec<u8>>> {
    let schedule = AesSchedule::new(kek, direction)?;
    let wrap = direction == Direction::Encrypt;
    let padded = form == KeyWrap::Rfc5649;
    // A length the mechanism never takes (wrapping) or never produces
    // (unwrapping) is a length error, not a failed integrity check.
    let bad_len = if wrap {
        Rv::DataLenRange
    } else {
        Rv::EncryptedDataLenRange
    };
    if !padded && (input.len() < if wrap { 16 } else { 24 } || !input.len().is_multiple_of(8)) {
        return Err(bad_len);
    }
    if padded
        && (input.is_empty() || (!wrap && (input.len() < 16 || !input.len().is_multiple_of(8))))
    {
        return Err(bad_len);
    }
    let mut out = Zeroizing::new(vec![0u8; input.len().div_ceil(8) * 8 + 8]);
    let mut len = 0usize;
    // Below: the schedule is set; the output holds the input rounded up to
    // 8 bytes plus the 8-byte integrity block, the most any of these makes.
    let ok = if padded {
        let run = if wrap {
            sys::AES_wrap_key_padded
        } else {
            sys::AES_unwrap_key_padded
        };
        // SAFETY: as above; `len` receives the length written.
        unsafe {
            run(
                &schedule.0,
                out.as_mut_ptr(),
                &mut len,
                out.len(),
                input.as_ptr(),
                input.len(),
            ) == 1
        }
    } else {
        let run = if wrap {
            sys::AES_wrap_key
        } else {
            sys::AES_unwrap_key
        };
        // SAFETY: as above; a null IV is RFC 3394's default. It returns the
        // length written, or -1.
        let n = unsafe {
            run(
                &schedule.0,
                std::ptr::null(),
                out.as_mut_ptr(),
                input.as_ptr(),
                input.len(),
            )
        };
        len = usize::try_from(n).unwrap_or(0);
        n > 0
    };
    if !ok {
        // Unwrapping, a blob of a possible length that fails the check.
        return Err(if wrap {
            bad_len
        } else {
            Rv::EncryptedDataInvalid
        });
    }
    out.truncate(len);
    Ok(out)
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
pub fn pbkdf2_hmac_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
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

/// Fills a buffer from the crypto engine's RNG.
pub fn random_fill(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| Rv::FunctionFailed)
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

    #[test]
    fn sign_and_verify_round_trip() {
        use aws_lc_rs::encoding::AsBigEndian;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let scalar = pair.private_key().as_be_bytes().unwrap();
        let private = EcKey::from_private(Curve::P384, scalar.as_ref()).unwrap();
        let public = EcKey::from_public(Curve::P384, pair.public_key().as_ref()).unwrap();
        let digest = [7u8; 48];
        let sig = private.sign_digest(&digest).unwrap();
        assert_eq!(sig.len(), 96);
        assert!(public.verify_digest(&digest, &sig).unwrap());
        assert!(!public.verify_digest(&[8u8; 48], &sig).unwrap());
        // A SHA-1-sized digest on this curve, as raw CKM_ECDSA allows.
        let short = private.sign_digest(&[1u8; 20]).unwrap();
        assert!(private.verify_digest(&[1u8; 20], &short).unwrap());
    }

    #[test]
    fn rsa_generate_sign_verify() {
        let parts = RsaKey::generate(2048, &[1, 0, 1]).unwrap();
        assert_eq!(parts.modulus.len(), 256);
        assert_eq!(parts.public_exponent, vec![1, 0, 1]);
        let private = RsaKey::from_private(&parts).unwrap();
        let public = RsaKey::from_public(&parts.modulus, &parts.public_exponent).unwrap();
        let sig = private.sign_raw(b"digest info", RawPadding::Pkcs1).unwrap();
        assert_eq!(sig.len(), 256);
        assert!(public
            .verify_raw(b"digest info", &sig, RawPadding::Pkcs1)
            .unwrap());
        assert!(!public
            .verify_raw(b"digest inf0", &sig, RawPadding::Pkcs1)
            .unwrap());
        let pss = private
            .sign_pss(&[5; 32], Hash::Sha256, Hash::Sha256, 32)
            .unwrap();
        assert!(public
            .verify_pss(&[5; 32], &pss, Hash::Sha256, Hash::Sha256, 32)
            .unwrap());
        assert!(!public
            .verify_pss(&[6; 32], &pss, Hash::Sha256, Hash::Sha256, 32)
            .unwrap());
        // A caller's exponent is honoured.
        let odd = RsaKey::generate(2048, &[0x01, 0x00, 0x00, 0x01]).unwrap();
        assert_eq!(odd.public_exponent, vec![0x01, 0x00, 0x00, 0x01]);
        // Inconsistent components are refused.
        let mut broken = RsaKey::generate(2048, &[1, 0, 1]).unwrap();
        broken.prime_1 = parts.prime_1.clone();
        assert!(RsaKey::from_private(&broken).is_err());
    }

    #[test]
    fn invalid_keys_are_refused() {
        assert!(EcKey::from_private(Curve::P256, &[0u8; 32]).is_err());
        assert!(EcKey::from_private(Curve::P256, &[0xff; 32]).is_err());
        let mut off_curve = vec![4u8];
        off_curve.extend_from_slice(&[1u8; 64]);
        assert!(EcKey::from_public(Curve::P256, &off_curve).is_err());
        assert!(EcKey::from_public(Curve::P256, &[]).is_err());
    }
}
