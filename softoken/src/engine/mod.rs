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
//! - The hashes aws-lc-rs does not offer (SHA-512/224, SHA3-224) and HMAC
//!   over the SHA3 family, through EVP; AES-CMAC; AES-GCM with any IV
//!   length and tag length; AES key wrap with AES-192 keys too.

pub mod aes;
pub mod ec;
pub mod hash;
pub mod rsa;
pub mod secret;

pub use aes::{aes_cbc_encrypt_into, aes_key_wrap, Cmac, GcmContext, KeyWrap};
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

/// Fills a buffer from the crypto engine's RNG.
pub fn random_fill(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| Rv::FunctionFailed)
}
