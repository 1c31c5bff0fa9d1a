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
use crate::session::{cipher_update, decrypt_slot, encrypt_slot, CipherSlot};

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

/// One dual-function update. Encrypting, the input is the plaintext;
/// decrypting, what comes out is. A length query or a buffer too small
/// feeds nothing to the other side.
///
/// # Safety
/// The pointers are the caller's, valid for their lengths.
#[allow(clippy::too_many_arguments)]
unsafe fn dual_update(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    beside: Beside,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
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
    // SAFETY: the caller's input and output buffer, of the lengths it gives
    // (this function's promise).
    let (part, out_buf) = unsafe { (bytes(input, input_len), OutBuf::new(output, output_len)) };
    if !cipher_update(&mut s, cipher, part, out_buf)? {
        return Ok(());
    }
    // SAFETY: the input was read above; the output holds the *output_len
    // bytes just written.
    let plaintext = unsafe {
        if direction == Direction::Encrypt {
            bytes(input, input_len)?
        } else {
            bytes(output, *output_len)?
        }
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        dual_update(
            m,
            hSession,
            Direction::Encrypt,
            Beside::Digest,
            pPart,
            ulPartLen,
            pEncryptedPart,
            pulEncryptedPartLen,
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        dual_update(
            m,
            hSession,
            Direction::Decrypt,
            Beside::Digest,
            pEncryptedPart,
            ulEncryptedPartLen,
            pPart,
            pulPartLen,
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        dual_update(
            m,
            hSession,
            Direction::Encrypt,
            Beside::Sign,
            pPart,
            ulPartLen,
            pEncryptedPart,
            pulEncryptedPartLen,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptVerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: CK_BYTE_PTR,
    ulEncryptedPartLen: CK_ULONG,
    pPart: CK_BYTE_PTR,
    pulPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        dual_update(
            m,
            hSession,
            Direction::Decrypt,
            Beside::Verify,
            pEncryptedPart,
            ulEncryptedPartLen,
            pPart,
            pulPartLen,
        )
    })
}
