//! The few operations aws-lc-rs's safe API lacks, called through aws-lc-sys.
//! This is the only module that does so, split by family: `ec`, `rsa`,
//! `aes` (GCM, CBC, key wrap, CMAC) and `hash` (EVP digests, HMAC,
//! PBKDF2); `secret` holds the wiped buffers.
//!
//! - ECDSA over a caller's digest of any length (PKCS#11's CKM_ECDSA, and
//!   the hashed ECDSA mechanisms for every curve and hash pairing), with
//!   signatures in PKCS#11's fixed-width r || s form.
//! - RSA from PKCS#11's key components: key generation with the caller's
//!   public exponent, PKCS#1 v1.5 signatures over a caller-built DigestInfo,
//!   PSS over a digest, the raw (X.509) operation, and encryption with
//!   PKCS#1 v1.5 or OAEP padding (with a label). aws-lc's private-key
//!   operations are constant-time and blinded.
//! - Finite-field Diffie-Hellman (PKCS #3) and DSA (FIPS 186-4), which
//!   aws-lc-rs does not offer, on aws-lc's big numbers (`bn`).
//! - The hashes aws-lc-rs does not offer (SHA-512/224, SHA3-224) and HMAC
//!   over the SHA3 family, through EVP; AES-CMAC; AES-GCM with any IV
//!   length and tag length; AES key wrap with AES-192 keys too.

pub mod aead;
pub mod aes;
mod bn;
pub mod chacha;
pub mod des;
pub mod dh;
pub mod dsa;
pub mod ec;
pub mod hash;
pub mod rc2;
pub mod rsa;
pub mod secret;

pub use aead::AeadContext;
pub use aes::{aes_cbc_encrypt_into, aes_key_wrap, Cmac, KeyWrap};
pub use ec::{Curve, EcKey};
pub use hash::{EvpDigest, Hash, Hmac, HmacKey};
pub use rsa::{RawPadding, RsaKey, RsaPadding, RsaParts};

use std::ptr::NonNull;

use crate::rv::{Result, Rv};

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

/// Which way a cipher runs (wrapping is encryption, unwrapping decryption).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// What callers gave C_SeedRandom, folded into one state. aws-lc's
/// generator reseeds itself from the OS and its RAND_seed ignores its input,
/// so a caller's seed is mixed in here: once a seed was given, every output
/// is XORed with an HMAC-SHA256 stream keyed by this state (and a fresh
/// nonce). Output that was uniform stays uniform; the seed changes it.
static SEED: parking_lot::Mutex<Option<[u8; 32]>> = parking_lot::Mutex::new(None);

/// Mixes a caller's seed into what the generator gives from now on.
pub fn seed_random(seed: &[u8]) {
    use aws_lc_rs::digest;
    let mut state = SEED.lock();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"softoken C_SeedRandom");
    if let Some(previous) = state.as_ref() {
        ctx.update(previous);
    }
    ctx.update(seed);
    let mut folded = [0u8; 32];
    folded.copy_from_slice(ctx.finish().as_ref());
    *state = Some(folded);
}

/// Fills a buffer from the crypto engine's RNG, with the callers' seed
/// mixed in (see `SEED`).
pub fn random_fill(buf: &mut [u8]) -> Result<()> {
    use aws_lc_rs::hmac;
    aws_lc_rs::rand::fill(buf).map_err(|_| Rv::FunctionFailed)?;
    let Some(state) = *SEED.lock() else {
        return Ok(());
    };
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Rv::FunctionFailed)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &state);
    for (i, chunk) in buf.chunks_mut(32).enumerate() {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&nonce);
        ctx.update(&(i as u64).to_be_bytes());
        for (b, s) in chunk.iter_mut().zip(ctx.sign().as_ref()) {
            *b ^= s;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_fold_into_the_state_and_output_goes_on() {
        seed_random(b"one");
        let first = (*SEED.lock()).unwrap();
        seed_random(b"two");
        let second = (*SEED.lock()).unwrap();
        assert_ne!(first, second);
        let mut a = [0u8; 100];
        let mut b = [0u8; 100];
        random_fill(&mut a).unwrap();
        random_fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 100]);
    }
}
