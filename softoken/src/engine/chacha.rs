//! The ChaCha20 stream cipher (RFC 8439: a 32-byte key, a 12-byte nonce and
//! a 32-bit block counter), through aws-lc's CRYPTO_chacha_20.

use aws_lc_sys as sys;

use crate::rv::{Result, Rv};

/// ChaCha20's block: the keystream comes 64 bytes per counter value.
pub const BLOCK: usize = 64;

/// XORs `data` in place with the keystream from block `counter` on.
pub fn chacha20_xor(key: &[u8], nonce: &[u8], counter: u32, data: &mut [u8]) -> Result<()> {
    if key.len() != 32 || nonce.len() != 12 {
        return Err(Rv::GeneralError);
    }
    let p = data.as_mut_ptr();
    // SAFETY: `data.len()` bytes in and out at the same place, which aws-lc
    // allows; a 32-byte key and a 12-byte nonce (checked above).
    unsafe { sys::CRYPTO_chacha_20(p, p, data.len(), key.as_ptr(), nonce.as_ptr(), counter) };
    Ok(())
}
