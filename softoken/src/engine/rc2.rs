//! RC2-CBC decryption, for the PKCS#12 files of old exporters (OpenSSL's
//! `-legacy`, old Windows and Java), which encrypt certificates with
//! pbeWithSHAAnd40BitRC2-CBC: aws-lc's EVP RC2, which aws-lc-rs does not
//! offer.

use aws_lc_sys as sys;
use zeroize::Zeroizing;

use super::Owned;
use crate::rv::{Result, Rv};

/// Decrypts RC2-CBC with PKCS#7 padding removed, under a 40-bit (5-byte)
/// or 128-bit (16-byte) key; bad padding (a wrong key, mostly) is
/// `EncryptedDataInvalid`.
pub fn rc2_cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if iv.len() != 8 || ciphertext.is_empty() || !ciphertext.len().is_multiple_of(8) {
        return Err(Rv::EncryptedDataLenRange);
    }
    // SAFETY: static cipher tables.
    let cipher = unsafe {
        match key.len() {
            5 => sys::EVP_rc2_40_cbc(),
            16 => sys::EVP_rc2_cbc(),
            _ => return Err(Rv::KeySizeRange),
        }
    };
    // SAFETY: a plain constructor.
    let ctx = Owned::new(
        unsafe { sys::EVP_CIPHER_CTX_new() },
        sys::EVP_CIPHER_CTX_free,
    )?;
    let mut out = Zeroizing::new(vec![0u8; ciphertext.len() + 8]);
    let (mut n, mut last) = (0, 0);
    // SAFETY: a live context, a key of the cipher's length and an 8-byte
    // IV (checked above); `out` has room for the input and a block more.
    let ok = unsafe {
        sys::EVP_DecryptInit_ex(
            ctx.ptr.as_ptr(),
            cipher,
            std::ptr::null_mut(),
            key.as_ptr(),
            iv.as_ptr(),
        ) == 1
            && sys::EVP_DecryptUpdate(
                ctx.ptr.as_ptr(),
                out.as_mut_ptr(),
                &mut n,
                ciphertext.as_ptr(),
                ciphertext.len() as std::ffi::c_int,
            ) == 1
            && sys::EVP_DecryptFinal_ex(
                ctx.ptr.as_ptr(),
                out.as_mut_ptr().add(n as usize),
                &mut last,
            ) == 1
    };
    if !ok {
        return Err(Rv::EncryptedDataInvalid);
    }
    out.truncate((n + last) as usize);
    Ok(out)
}
