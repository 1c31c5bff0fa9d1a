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

thread_local! {
    /// Whether this thread's stack may hold private key material left by
    /// the engine since it was last wiped.
    static STACK_HOLDS_SECRETS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How much of the stack below the C boundary a wipe covers: the deepest
/// private-key operation (aws-lc's ECDSA and RSA with their callers here)
/// stays well inside it.
const STACK_WIPE_BYTES: usize = 32 * 1024;

/// Notes that private key material went through this thread's stack: aws-lc
/// keeps scalars and intermediate values in stack buffers it does not wipe,
/// and moves of secret values leave copies in our own frames.
pub fn mark_stack() {
    STACK_HOLDS_SECRETS.with(|marked| marked.set(true));
}

/// Wipes the stack below the caller's frame when it was marked: called by
/// the C boundary as each call returns, so that the frames the call used
/// (the operation's, aws-lc's) are overwritten before the caller goes on.
/// Only calls that used private keys pay for it.
pub fn wipe_stack_if_marked() {
    if STACK_HOLDS_SECRETS.with(|marked| marked.replace(false)) {
        wipe_stack();
    }
}

#[inline(never)]
fn wipe_stack() {
    let mut area = [0u8; STACK_WIPE_BYTES];
    // The zeros must be written: the optimiser may not see that nothing
    // reads them.
    std::hint::black_box(&mut area);
}
