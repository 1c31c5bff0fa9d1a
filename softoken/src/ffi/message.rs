//! The PKCS#11 3.0 message-based functions: AES-GCM encryption and
//! decryption with per-message parameters (the IV given, or generated and
//! handed back, and the tag apart), and signing and verification of
//! messages with any signature mechanism.

use pkcs11_sys::*;

use super::ptr::OutBuf;
use super::util::{bytes, input, items_mut, mechanism, with_module};
use crate::engine::Direction;
use crate::mechanism::op::SignatureUse;
use crate::rv::{Result, Rv};
use crate::session::message::{self, MessageAead, MessageParams};

/// Reads a message's parameter: a CK_GCM_MESSAGE_PARAMS or a
/// CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS, told apart by their sizes (the
/// operation checks it is its AEAD's). IV and tag buffers that overlap are
/// refused: the one would be written over the other.
///
/// # Safety
/// `p` is null or valid for `len` bytes, and the structure's IV (nonce)
/// and tag pointers are valid for the lengths it gives (a ChaCha20-Poly1305
/// tag is 16 bytes).
unsafe fn message_params<'a>(p: CK_VOID_PTR, len: CK_ULONG) -> Result<MessageParams<'a>> {
    let (aead, iv_ptr, iv_len, fixed_bits, generator, tag_ptr, tag_len) = match len as usize {
        n if n == std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() => {
            // SAFETY: a CK_GCM_MESSAGE_PARAMS of the size checked.
            let m = unsafe { input(p as *const CK_GCM_MESSAGE_PARAMS) }
                .map_err(|_| Rv::MechanismParamInvalid)?
                .ok_or(Rv::MechanismParamInvalid)?;
            if m.ulIvFixedBits > m.ulIvLen.saturating_mul(8) {
                return Err(Rv::MechanismParamInvalid);
            }
            let tag_len = crate::mechanism::aes::gcm_tag_len(m.ulTagBits)?;
            (
                MessageAead::Gcm,
                m.pIv,
                m.ulIvLen,
                m.ulIvFixedBits as usize,
                m.ivGenerator,
                m.pTag,
                tag_len,
            )
        }
        n if n == std::mem::size_of::<CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS>() => {
            // SAFETY: a CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS of the size
            // checked.
            let m = unsafe { input(p as *const CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS) }
                .map_err(|_| Rv::MechanismParamInvalid)?
                .ok_or(Rv::MechanismParamInvalid)?;
            if m.ulNonceLen != 12 {
                return Err(Rv::MechanismParamInvalid);
            }
            // The caller's nonce, never one made here.
            (
                MessageAead::ChaCha20Poly1305,
                m.pNonce,
                m.ulNonceLen,
                0,
                CKG_NO_GENERATE,
                m.pTag,
                16,
            )
        }
        _ => return Err(Rv::MechanismParamInvalid),
    };
    if iv_len == 0 || iv_ptr.is_null() || tag_ptr.is_null() {
        return Err(Rv::MechanismParamInvalid);
    }
    let iv_len = iv_len as usize;
    let (iv_at, tag_at) = (iv_ptr as usize, tag_ptr as usize);
    if iv_at < tag_at.saturating_add(tag_len) && tag_at < iv_at.saturating_add(iv_len) {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: the caller's IV and tag buffers, of the lengths the structure
    // gives, and apart (checked above).
    let (iv, tag) = unsafe { (items_mut(iv_ptr, iv_len)?, items_mut(tag_ptr, tag_len)?) };
    Ok(MessageParams {
        aead,
        iv,
        fixed_bits,
        generator,
        tag,
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageEncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, checked. Only its type is read: the
    // parameters come with each message.
    let ty = unsafe { input(pMechanism) }.and_then(|p| Ok(p.ok_or(Rv::ArgumentsBad)?.mechanism));
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        message::cipher_init(&session, token, ty, hKey, Direction::Encrypt)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessage(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pAssociatedData: CK_BYTE_PTR,
    ulAssociatedDataLen: CK_ULONG,
    pPlaintext: CK_BYTE_PTR,
    ulPlaintextLen: CK_ULONG,
    pCiphertext: CK_BYTE_PTR,
    pulCiphertextLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's message parameter, data and output buffer, of
    // the lengths it gives.
    let (params, aad, input, output) = unsafe {
        (
            message_params(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
            bytes(pPlaintext, ulPlaintextLen),
            OutBuf::new(pCiphertext, pulCiphertextLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_message(&mut s, Direction::Encrypt, params, aad, input, output)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessageBegin(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pAssociatedData: CK_BYTE_PTR,
    ulAssociatedDataLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's message parameter and associated data, of the
    // lengths it gives.
    let (params, aad) = unsafe {
        (
            message_params(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_begin(&mut s, Direction::Encrypt, params, aad)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptMessageNext(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pPlaintextPart: CK_BYTE_PTR,
    ulPlaintextPartLen: CK_ULONG,
    pCiphertextPart: CK_BYTE_PTR,
    pulCiphertextPartLen: CK_ULONG_PTR,
    flags: CK_FLAGS,
) -> CK_RV {
    // SAFETY: the caller's message parameter, part and output buffer, of
    // the lengths it gives.
    let (params, input, output) = unsafe {
        (
            message_params(pParameter, ulParameterLen),
            bytes(pPlaintextPart, ulPlaintextPartLen),
            OutBuf::new(pCiphertextPart, pulCiphertextPartLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_next(&mut s, Direction::Encrypt, params, input, output, flags)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageEncryptFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_final(&mut s, Direction::Encrypt)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageDecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, checked. Only its type is read: the
    // parameters come with each message.
    let ty = unsafe { input(pMechanism) }.and_then(|p| Ok(p.ok_or(Rv::ArgumentsBad)?.mechanism));
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        message::cipher_init(&session, token, ty, hKey, Direction::Decrypt)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessage(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pAssociatedData: CK_BYTE_PTR,
    ulAssociatedDataLen: CK_ULONG,
    pCiphertext: CK_BYTE_PTR,
    ulCiphertextLen: CK_ULONG,
    pPlaintext: CK_BYTE_PTR,
    pulPlaintextLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's message parameter, data and output buffer, of
    // the lengths it gives.
    let (params, aad, input, output) = unsafe {
        (
            message_params(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
            bytes(pCiphertext, ulCiphertextLen),
            OutBuf::new(pPlaintext, pulPlaintextLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_message(&mut s, Direction::Decrypt, params, aad, input, output)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessageBegin(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pAssociatedData: CK_BYTE_PTR,
    ulAssociatedDataLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's message parameter and associated data, of the
    // lengths it gives.
    let (params, aad) = unsafe {
        (
            message_params(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_begin(&mut s, Direction::Decrypt, params, aad)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptMessageNext(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pCiphertextPart: CK_BYTE_PTR,
    ulCiphertextPartLen: CK_ULONG,
    pPlaintextPart: CK_BYTE_PTR,
    pulPlaintextPartLen: CK_ULONG_PTR,
    flags: CK_FLAGS,
) -> CK_RV {
    // SAFETY: the caller's message parameter, part and output buffer, of
    // the lengths it gives.
    let (params, input, output) = unsafe {
        (
            message_params(pParameter, ulParameterLen),
            bytes(pCiphertextPart, ulCiphertextPartLen),
            OutBuf::new(pPlaintextPart, pulPlaintextPartLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_next(&mut s, Direction::Decrypt, params, input, output, flags)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageDecryptFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::cipher_final(&mut s, Direction::Decrypt)
    })
}

/// Messages are signed with the parameters given at Init: a per-message
/// parameter is not taken.
fn no_message_param(len: CK_ULONG) -> Result<()> {
    if len == 0 {
        Ok(())
    } else {
        Err(Rv::MechanismParamInvalid)
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageSignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        message::sign_init(&session, token, arg, hKey, SignatureUse::Sign)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignMessage(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    let _ = pParameter;
    // SAFETY: the caller's data and signature buffer, of the lengths it
    // gives.
    let (data, signature) = unsafe {
        (
            bytes(pData, ulDataLen),
            OutBuf::new(pSignature, pulSignatureLen),
        )
    };
    with_module(|m| {
        no_message_param(ulParameterLen)?;
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::sign_message(&mut s, data, signature)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignMessageBegin(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
) -> CK_RV {
    let _ = pParameter;
    with_module(|m| {
        no_message_param(ulParameterLen)?;
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::message_begin(&mut s, SignatureUse::Sign)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignMessageNext(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    let _ = (pParameter, ulParameterLen);
    // SAFETY: the caller's data, and (for the last part) its signature
    // buffer and length.
    let (data, signature) = unsafe {
        (
            bytes(pData, ulDataLen),
            // A null signature length pointer: another part.
            (!pulSignatureLen.is_null()).then(|| OutBuf::new(pSignature, pulSignatureLen)),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::sign_message_next(&mut s, data, signature)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageSignFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::sign_final(&mut s, SignatureUse::Sign)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageVerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        message::sign_init(&session, token, arg, hKey, SignatureUse::Verify)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyMessage(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    let _ = pParameter;
    // SAFETY: the caller's data and signature, of the lengths it gives.
    let (data, sig) = unsafe { (bytes(pData, ulDataLen), bytes(pSignature, ulSignatureLen)) };
    with_module(|m| {
        no_message_param(ulParameterLen)?;
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::verify_message(&mut s, data, sig)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyMessageBegin(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
) -> CK_RV {
    let _ = pParameter;
    with_module(|m| {
        no_message_param(ulParameterLen)?;
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::message_begin(&mut s, SignatureUse::Verify)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyMessageNext(
    hSession: CK_SESSION_HANDLE,
    pParameter: CK_VOID_PTR,
    ulParameterLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    let _ = (pParameter, ulParameterLen);
    // SAFETY: the caller's data, and (for the last part) its signature, of
    // the lengths it gives.
    let (data, sig) = unsafe {
        (
            bytes(pData, ulDataLen),
            // A null signature: another part.
            (!pSignature.is_null()).then(|| bytes(pSignature, ulSignatureLen)),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::verify_message_next(&mut s, data, sig)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageVerifyFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        message::sign_final(&mut s, SignatureUse::Verify)
    })
}
