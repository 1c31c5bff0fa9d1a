//! The dual-function updates: one call carries a part through a cipher and
//! through the digest, signature or verification running beside it in the
//! same session. The digesting or signing side always sees the plaintext.

use pkcs11_sys::*;

use super::ptr::OutBuf;
use super::util::{bytes, with_module};
use crate::engine::Direction;
use crate::module::Module;
use crate::rv::{Result, Rv};
use crate::session::Session;
use crate::session::{cipher_update, decrypt_slot, encrypt_slot, CipherSlot, Output};
use zeroize::Zeroizing;

/// The operation that runs beside the cipher.
#[derive(Clone, Copy)]
enum Beside {
    Digest,
    Sign,
    Verify,
}

impl Beside {
    fn is_active(self, s: &Session) -> bool {
        match self {
            Beside::Digest => s.digest.is_some(),
            Beside::Sign => s.sign.is_some(),
            Beside::Verify => s.verify.is_some(),
        }
    }

    /// Feeds plaintext to the operation; one that fails ends.
    fn update(self, s: &mut Session, plaintext: &[u8]) -> Result<()> {
        let result = match self {
            Beside::Digest => {
                if let Some(op) = s.digest.as_mut() {
                    op.update(plaintext);
                    op.multi_part = true;
                }
                return Ok(());
            }
            Beside::Sign => s
                .sign
                .as_mut()
                .map(|a| a.begin_parts().and_then(|()| a.op.update(plaintext))),
            Beside::Verify => s
                .verify
                .as_mut()
                .map(|a| a.begin_parts().and_then(|()| a.op.update(plaintext))),
        };
        let result = result.unwrap_or(Err(Rv::OperationNotInitialized));
        if result.is_err() {
            match self {
                Beside::Sign => s.sign = None,
                Beside::Verify => s.verify = None,
                Beside::Digest => {}
            }
        }
        result
    }
}

/// A caller's output buffer that keeps a copy of what goes into it: the
/// plaintext a decryption hands to the digest or verification beside it.
struct Copied<'a, 'b> {
    buffer: OutBuf<'a>,
    copy: &'b mut Option<Zeroizing<Vec<u8>>>,
}

impl Output for Copied<'_, '_> {
    fn is_query(&self) -> bool {
        self.buffer.is_query()
    }
    fn reserve(&mut self, need: usize) -> std::result::Result<(), Result<()>> {
        self.buffer.reserve(need)
    }
    fn room_apart_from(&mut self, _: usize, _: &[u8]) -> Option<&mut [u8]> {
        // Written in place, the output would not be copied.
        None
    }
    fn set_len(&mut self, written: usize) {
        self.buffer.set_len(written)
    }
    fn write(self, data: &[u8]) -> Result<()> {
        *self.copy = Some(Zeroizing::new(data.to_vec()));
        self.buffer.write(data)
    }
}

/// One dual-function update. Encrypting, the input is the plaintext;
/// decrypting, what comes out is. A length query or a buffer too small
/// feeds nothing to the other side.
fn dual_update(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    beside: Beside,
    input: Result<&[u8]>,
    output: Result<OutBuf<'_>>,
) -> Result<()> {
    let (session, _) = m.session(h)?;
    let mut s = session.lock();
    let cipher: CipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    if cipher(&mut s).is_none() || !beside.is_active(&s) {
        return Err(Rv::OperationNotInitialized);
    }
    let mut written = None;
    let output = output.map(|buffer| Copied {
        buffer,
        copy: &mut written,
    });
    if !cipher_update(&mut s, cipher, input, output)? {
        return Ok(());
    }
    let plaintext = match direction {
        Direction::Encrypt => input?,
        Direction::Decrypt => written.as_deref().map_or(&[][..], |w| w.as_slice()),
    };
    beside.update(&mut s, plaintext)
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestEncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
    pEncryptedPart: CK_BYTE_PTR,
    pulEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pPart, ulPartLen),
            OutBuf::new(pEncryptedPart, pulEncryptedPartLen),
        )
    };
    with_module(|m| {
        dual_update(
            m,
            hSession,
            Direction::Encrypt,
            Beside::Digest,
            input,
            output,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptDigestUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: CK_BYTE_PTR,
    ulEncryptedPartLen: CK_ULONG,
    pPart: CK_BYTE_PTR,
    pulPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pEncryptedPart, ulEncryptedPartLen),
            OutBuf::new(pPart, pulPartLen),
        )
    };
    with_module(|m| {
        dual_update(
            m,
            hSession,
            Direction::Decrypt,
            Beside::Digest,
            input,
            output,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignEncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
    pEncryptedPart: CK_BYTE_PTR,
    pulEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pPart, ulPartLen),
            OutBuf::new(pEncryptedPart, pulEncryptedPartLen),
        )
    };
    with_module(|m| dual_update(m, hSession, Direction::Encrypt, Beside::Sign, input, output))
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptVerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: CK_BYTE_PTR,
    ulEncryptedPartLen: CK_ULONG,
    pPart: CK_BYTE_PTR,
    pulPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pEncryptedPart, ulEncryptedPartLen),
            OutBuf::new(pPart, pulPartLen),
        )
    };
    with_module(|m| {
        dual_update(
            m,
            hSession,
            Direction::Decrypt,
            Beside::Verify,
            input,
            output,
        )
    })
}
