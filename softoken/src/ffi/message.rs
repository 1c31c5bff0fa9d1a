//! The PKCS#11 3.0 message-based functions: AES-GCM encryption and
//! decryption with per-message parameters (the IV given, or generated and
//! handed back, and the tag apart), and signing and verification of
//! messages with any signature mechanism.

use std::sync::Arc;

use pkcs11_sys::*;

use super::ptr::OutBuf;
use super::util::{bytes, input, items_mut, mechanism, with_module};
use crate::cache::kept::Kept;
use crate::engine::secret::SecretVec;
use crate::engine::{Direction, GcmContext};
use crate::mechanism::op::SignatureUse;
use crate::module::Module;
use crate::rv::{Result, Rv};
use crate::session::{operation_key, MessageCipher, MessageSign, Output, PendingMessage, Session};

/// CK_GCM_MESSAGE_PARAMS as the caller gave it.
struct GcmMessage {
    iv: *mut u8,
    iv_len: usize,
    fixed_bits: usize,
    generator: CK_ULONG,
    tag: *mut u8,
    tag_bits: CK_ULONG,
}

/// Reads a message's CK_GCM_MESSAGE_PARAMS.
///
/// # Safety
/// `p` is null or valid for `len` bytes.
unsafe fn gcm_message(p: CK_VOID_PTR, len: CK_ULONG) -> Result<GcmMessage> {
    if len as usize != std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: a CK_GCM_MESSAGE_PARAMS of the size checked above.
    let m = unsafe { input(p as *const CK_GCM_MESSAGE_PARAMS) }
        .map_err(|_| Rv::MechanismParamInvalid)?
        .ok_or(Rv::MechanismParamInvalid)?;
    crate::mechanism::aes::gcm_tag_len(m.ulTagBits)?;
    if m.ulIvLen == 0
        || m.pIv.is_null()
        || m.pTag.is_null()
        || m.ulIvFixedBits > m.ulIvLen.saturating_mul(8)
    {
        return Err(Rv::MechanismParamInvalid);
    }
    Ok(GcmMessage {
        iv: m.pIv,
        iv_len: m.ulIvLen as usize,
        fixed_bits: m.ulIvFixedBits as usize,
        generator: m.ivGenerator,
        tag: m.pTag,
        tag_bits: m.ulTagBits,
    })
}

impl GcmMessage {
    /// The message's IV: the caller's, or one made here after the caller's
    /// fixed bits (random or counting) and written back to the caller.
    ///
    /// # Safety
    /// The parameter's pointers are valid (as `gcm_message` read them).
    unsafe fn iv(&self, cipher: &mut MessageCipher, direction: Direction) -> Result<Vec<u8>> {
        // SAFETY: the caller's IV buffer of ulIvLen bytes.
        let buf = unsafe { items_mut(self.iv, self.iv_len)? };
        cipher.make_iv(buf, self.fixed_bits, self.generator, direction)?;
        Ok(buf.to_vec())
    }

    /// Hands the tag back (encryption) or reads it (decryption).
    ///
    /// # Safety
    /// As for `iv`; the buffer is the caller's, borrowed for the call `'a`.
    unsafe fn tag<'a>(&self) -> Result<&'a mut [u8]> {
        // SAFETY: the caller's tag buffer of ulTagBits / 8 bytes.
        unsafe { items_mut(self.tag, (self.tag_bits / 8) as usize) }
    }
}

/// The message cipher's key built for a tag of `tag_len` bytes.
fn context(cipher: &mut MessageCipher, tag_len: usize) -> Result<Arc<GcmContext>> {
    let key = &cipher.key;
    cipher
        .contexts
        .get_or_build(key, tag_len as u64, || GcmContext::new(key, tag_len))
}

/// Seals a message, handing the tag back in the caller's tag buffer.
fn seal_apart(
    context: &GcmContext,
    iv: &[u8],
    aad: &[u8],
    plaintext: Vec<u8>,
    tag: &mut [u8],
) -> Result<SecretVec> {
    let len = plaintext.len();
    let mut sealed = context.seal_in_place(iv, aad, plaintext)?;
    let sealed_tag = sealed.get(len..).ok_or(Rv::GeneralError)?;
    if sealed_tag.len() != tag.len() {
        return Err(Rv::GeneralError);
    }
    tag.copy_from_slice(sealed_tag);
    sealed.truncate(len);
    Ok(SecretVec::from(sealed))
}

/// Opens a message whose tag comes apart.
fn open_apart(
    context: &GcmContext,
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<SecretVec> {
    let sealed = SecretVec::from([ciphertext, tag].concat());
    context.open_in_place(iv, aad, sealed)
}

type MessageCipherSlot = fn(&mut Session) -> &mut Option<MessageCipher>;

fn encrypt_slot(s: &mut Session) -> &mut Option<MessageCipher> {
    &mut s.message_encrypt
}

fn decrypt_slot(s: &mut Session) -> &mut Option<MessageCipher> {
    &mut s.message_decrypt
}

unsafe fn cipher_init(
    m: &Module,
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    key: CK_OBJECT_HANDLE,
    direction: Direction,
) -> Result<()> {
    let (session, token) = m.session(h)?;
    // SAFETY: the caller's pointer, checked. Only the type is read: the
    // parameters come with each message.
    let ty = unsafe { input(p_mech)? }.ok_or(Rv::ArgumentsBad)?.mechanism;
    let flag = if direction == Direction::Encrypt {
        CKF_MESSAGE_ENCRYPT
    } else {
        CKF_MESSAGE_DECRYPT
    };
    if crate::mechanism::find(ty)?.info_flags() & flag == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    if slot(&mut session.lock()).is_some() {
        return Err(Rv::OperationActive);
    }
    let value =
        crate::mechanism::aes::message_key(&*operation_key(&session, token, key)?, direction)?;
    *slot(&mut session.lock()) = Some(MessageCipher {
        key: value,
        contexts: Kept::default(),
        counter: 0,
        pending: None,
    });
    Ok(())
}

/// One whole message: C_EncryptMessage / C_DecryptMessage.
#[allow(clippy::too_many_arguments)]
unsafe fn cipher_message(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    param: CK_VOID_PTR,
    param_len: CK_ULONG,
    aad: CK_BYTE_PTR,
    aad_len: CK_ULONG,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> Result<()> {
    let (session, _) = m.session(h)?;
    let mut s = session.lock();
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    let cipher = slot(&mut s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if cipher.pending.is_some() {
        return Err(Rv::OperationActive);
    }
    // SAFETY: caller's pointers and lengths.
    let (params, aad, input, mut output) = unsafe {
        (
            gcm_message(param, param_len)?,
            bytes(aad, aad_len)?,
            bytes(input, input_len)?,
            OutBuf::new(output, output_len)?,
        )
    };
    // The ciphertext is as long as the plaintext (the tag goes apart).
    if let Err(answer) = output.reserve(input.len()) {
        return answer;
    }
    // SAFETY: the parameter's pointers, as read above.
    let iv = unsafe { params.iv(cipher, direction)? };
    // SAFETY: the tag buffer of the same parameter.
    let tag = unsafe { params.tag()? };
    let context = context(cipher, tag.len())?;
    let result = if direction == Direction::Encrypt {
        seal_apart(&context, &iv, aad, input.to_vec(), tag)?
    } else {
        open_apart(&context, &iv, aad, input, tag)?
    };
    output.deliver(&result)
}

unsafe fn cipher_begin(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    param: CK_VOID_PTR,
    param_len: CK_ULONG,
    aad: CK_BYTE_PTR,
    aad_len: CK_ULONG,
) -> Result<()> {
    let (session, _) = m.session(h)?;
    let mut s = session.lock();
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    let cipher = slot(&mut s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if cipher.pending.is_some() {
        return Err(Rv::OperationActive);
    }
    // SAFETY: caller's pointers and lengths.
    let (params, aad) = unsafe { (gcm_message(param, param_len)?, bytes(aad, aad_len)?) };
    // SAFETY: the parameter's pointers, as read above.
    let iv = unsafe { params.iv(cipher, direction)? };
    cipher.pending = Some(PendingMessage {
        iv,
        aad: aad.to_vec(),
        data: SecretVec::default(),
    });
    Ok(())
}

/// A part of a message; the whole comes out with the last part (AES-GCM
/// checks the tag over everything before releasing any plaintext).
#[allow(clippy::too_many_arguments)]
unsafe fn cipher_next(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    param: CK_VOID_PTR,
    param_len: CK_ULONG,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
    flags: CK_FLAGS,
) -> Result<()> {
    let (session, _) = m.session(h)?;
    let mut s = session.lock();
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    let cipher = slot(&mut s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let pending = cipher.pending.as_ref().ok_or(Rv::OperationNotInitialized)?;
    // SAFETY: caller's pointers and lengths.
    let (input, mut output) =
        unsafe { (bytes(input, input_len)?, OutBuf::new(output, output_len)?) };
    let last = flags & CKF_END_OF_MESSAGE != 0;
    // Only the last part has output (the whole message's).
    let need = if last {
        pending.data.len() + input.len()
    } else {
        0
    };
    if need > 0 {
        if let Err(answer) = output.reserve(need) {
            return answer;
        }
    }
    let pending = cipher.pending.as_mut().ok_or(Rv::OperationNotInitialized)?;
    pending.data.extend_from_slice(input);
    if !last {
        output.set_len(0);
        return Ok(());
    }
    let message = cipher.pending.take().ok_or(Rv::OperationNotInitialized)?;
    // SAFETY: caller's parameter, read now for its tag.
    let params = unsafe { gcm_message(param, param_len)? };
    // SAFETY: the tag buffer of the parameter just read.
    let tag = unsafe { params.tag()? };
    let context = context(cipher, tag.len())?;
    let result = if direction == Direction::Encrypt {
        let plaintext = message.data.into_inner();
        seal_apart(&context, &message.iv, &message.aad, plaintext, tag)?
    } else {
        open_apart(&context, &message.iv, &message.aad, &message.data, tag)?
    };
    output.deliver(&result)
}

fn cipher_final(m: &Module, h: CK_SESSION_HANDLE, direction: Direction) -> Result<()> {
    let (session, _) = m.session(h)?;
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    slot(&mut session.lock())
        .take()
        .ok_or(Rv::OperationNotInitialized)?;
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageEncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe { cipher_init(m, hSession, pMechanism, hKey, Direction::Encrypt) })
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_message(
            m,
            hSession,
            Direction::Encrypt,
            pParameter,
            ulParameterLen,
            pAssociatedData,
            ulAssociatedDataLen,
            pPlaintext,
            ulPlaintextLen,
            pCiphertext,
            pulCiphertextLen,
        )
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_begin(
            m,
            hSession,
            Direction::Encrypt,
            pParameter,
            ulParameterLen,
            pAssociatedData,
            ulAssociatedDataLen,
        )
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_next(
            m,
            hSession,
            Direction::Encrypt,
            pParameter,
            ulParameterLen,
            pPlaintextPart,
            ulPlaintextPartLen,
            pCiphertextPart,
            pulCiphertextPartLen,
            flags,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageEncryptFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| cipher_final(m, hSession, Direction::Encrypt))
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageDecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe { cipher_init(m, hSession, pMechanism, hKey, Direction::Decrypt) })
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_message(
            m,
            hSession,
            Direction::Decrypt,
            pParameter,
            ulParameterLen,
            pAssociatedData,
            ulAssociatedDataLen,
            pCiphertext,
            ulCiphertextLen,
            pPlaintext,
            pulPlaintextLen,
        )
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_begin(
            m,
            hSession,
            Direction::Decrypt,
            pParameter,
            ulParameterLen,
            pAssociatedData,
            ulAssociatedDataLen,
        )
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_next(
            m,
            hSession,
            Direction::Decrypt,
            pParameter,
            ulParameterLen,
            pCiphertextPart,
            ulCiphertextPartLen,
            pPlaintextPart,
            pulPlaintextPartLen,
            flags,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageDecryptFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| cipher_final(m, hSession, Direction::Decrypt))
}

type MessageSignSlot = fn(&mut Session) -> &mut Option<MessageSign>;

fn sign_slot(s: &mut Session) -> &mut Option<MessageSign> {
    &mut s.message_sign
}

fn verify_slot(s: &mut Session) -> &mut Option<MessageSign> {
    &mut s.message_verify
}

unsafe fn sign_init(
    m: &Module,
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    key: CK_OBJECT_HANDLE,
    side: SignatureUse,
) -> Result<()> {
    let (session, token) = m.session(h)?;
    // SAFETY: forwarded from the caller.
    let arg = unsafe { mechanism(p_mech)? };
    let flag = if side == SignatureUse::Sign {
        CKF_MESSAGE_SIGN
    } else {
        CKF_MESSAGE_VERIFY
    };
    if crate::mechanism::find(arg.ty)?.info_flags() & flag == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let slot: MessageSignSlot = if side == SignatureUse::Sign {
        sign_slot
    } else {
        verify_slot
    };
    if slot(&mut session.lock()).is_some() {
        return Err(Rv::OperationActive);
    }
    let key = operation_key(&session, token, key)?;
    // Built once now so that the key and parameters are checked at Init.
    if side == SignatureUse::Sign {
        crate::mechanism::sign_op(&arg, &key, &mut Default::default())?;
    } else {
        crate::mechanism::verify_op(&arg, &key, &mut Default::default())?;
    }
    *slot(&mut session.lock()) = Some(MessageSign {
        mechanism: arg,
        key,
        sign: None,
        verify: None,
    });
    Ok(())
}

fn sign_final(m: &Module, h: CK_SESSION_HANDLE, side: SignatureUse) -> Result<()> {
    let (session, _) = m.session(h)?;
    let slot: MessageSignSlot = if side == SignatureUse::Sign {
        sign_slot
    } else {
        verify_slot
    };
    slot(&mut session.lock())
        .take()
        .ok_or(Rv::OperationNotInitialized)?;
    Ok(())
}

/// The session's message signing (`sign`) or verification context, with
/// no message given in parts under way.
fn idle_message(s: &mut Session, side: SignatureUse) -> Result<&mut MessageSign> {
    let slot: MessageSignSlot = if side == SignatureUse::Sign {
        sign_slot
    } else {
        verify_slot
    };
    let ms = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if ms.sign.is_some() || ms.verify.is_some() {
        return Err(Rv::OperationActive);
    }
    Ok(ms)
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe { sign_init(m, hSession, pMechanism, hKey, SignatureUse::Sign) })
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
    with_module(|m| {
        no_message_param(ulParameterLen)?;
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let ms = idle_message(&mut s, SignatureUse::Sign)?;
        let mut op = crate::mechanism::sign_op(&ms.mechanism, &ms.key, &mut Default::default())?;
        // SAFETY: the caller's data and signature buffer, of the lengths it
        // gives; each message is its own operation.
        let (data, signature) = unsafe {
            (
                bytes(pData, ulDataLen)?,
                OutBuf::new(pSignature, pulSignatureLen),
            )
        };
        crate::session::deliver_signature(&mut *op, Some(data), signature).0
    })
}

/// A message given in more than one part: refused, as an Update is, for
/// a mechanism that is single-part only.
fn more_parts(mechanism: &crate::mechanism::param::MechanismArg) -> Result<()> {
    if crate::mechanism::find(mechanism.ty)?.single_part_only() {
        return Err(Rv::OperationNotInitialized);
    }
    Ok(())
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
        let ms = idle_message(&mut s, SignatureUse::Sign)?;
        ms.sign = Some(crate::mechanism::sign_op(
            &ms.mechanism,
            &ms.key,
            &mut Default::default(),
        )?);
        Ok(())
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let ms = sign_slot(&mut s)
            .as_mut()
            .ok_or(Rv::OperationNotInitialized)?;
        let op = ms.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
        // SAFETY: caller's pointer and length.
        let data = unsafe { bytes(pData, ulDataLen)? };
        // A null signature length pointer: another part; else the last one.
        if pulSignatureLen.is_null() {
            let result = more_parts(&ms.mechanism).and_then(|()| op.update(data));
            if result.is_err() {
                ms.sign = None;
            }
            return result;
        }
        // SAFETY: the caller's signature buffer and length.
        let signature = unsafe { OutBuf::new(pSignature, pulSignatureLen) };
        let (result, keep) = crate::session::deliver_signature(&mut **op, Some(data), signature);
        if !keep {
            ms.sign = None;
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageSignFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| sign_final(m, hSession, SignatureUse::Sign))
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageVerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe { sign_init(m, hSession, pMechanism, hKey, SignatureUse::Verify) })
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
    with_module(|m| {
        no_message_param(ulParameterLen)?;
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let ms = idle_message(&mut s, SignatureUse::Verify)?;
        let mut op = crate::mechanism::verify_op(&ms.mechanism, &ms.key, &mut Default::default())?;
        // SAFETY: caller's pointers and lengths.
        let (data, sig) = unsafe { (bytes(pData, ulDataLen)?, bytes(pSignature, ulSignatureLen)?) };
        op.update(data)?;
        op.verify(sig)
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
        let ms = idle_message(&mut s, SignatureUse::Verify)?;
        ms.verify = Some(crate::mechanism::verify_op(
            &ms.mechanism,
            &ms.key,
            &mut Default::default(),
        )?);
        Ok(())
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let ms = verify_slot(&mut s)
            .as_mut()
            .ok_or(Rv::OperationNotInitialized)?;
        let op = ms.verify.as_mut().ok_or(Rv::OperationNotInitialized)?;
        // SAFETY: caller's pointer and length.
        let data = unsafe { bytes(pData, ulDataLen)? };
        // A null signature: another part; else the last one.
        if pSignature.is_null() {
            let result = more_parts(&ms.mechanism).and_then(|()| op.update(data));
            if result.is_err() {
                ms.verify = None;
            }
            return result;
        }
        op.update(data)?;
        // SAFETY: caller's pointer and length.
        let sig = unsafe { bytes(pSignature, ulSignatureLen)? };
        let result = op.verify(sig);
        ms.verify = None;
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_MessageVerifyFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| sign_final(m, hSession, SignatureUse::Verify))
}
