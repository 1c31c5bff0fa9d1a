//! A growable buffer for secret bytes (plaintext gathered over parts,
//! keystream), wiped when dropped.

use std::ops::{Deref, DerefMut};

use zeroize::Zeroize;

/// `Zeroizing<Vec<u8>>`, except that a buffer that never allocated is not
/// wiped. zeroize clears a Vec's spare capacity with `memset` even when
/// there is none, and glibc's AVX-512 `memset` of zero bytes at an empty
/// Vec's dangling address is a masked store to an unmapped page: a
/// microcode assist that cost a tenth of every single-part AES-GCM
/// operation on 64 bytes, whose gathering buffer stays empty.
#[derive(Default)]
pub struct SecretVec(Vec<u8>);

impl From<Vec<u8>> for SecretVec {
    fn from(bytes: Vec<u8>) -> SecretVec {
        SecretVec(bytes)
    }
}

impl SecretVec {
    /// The bytes, no longer wiped: for output that goes back to the caller.
    pub fn into_inner(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Deref for SecretVec {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for SecretVec {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for SecretVec {
    fn drop(&mut self) {
        if self.0.capacity() > 0 {
            self.0.zeroize();
        }
    }
}
