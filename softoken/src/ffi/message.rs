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
use crate::mechanism::param::MechanismArg;
use crate::module::Module;
use crate::rv::{Result, Rv};
use crate::session::{operation_key, MessageCipher, MessageSign, Output, PendingMessage, Session};

/// CK_GCM_MESSAGE_PARAMS as the caller gave it, its IV and tag buffers
/// as slices.
struct GcmMessage<'a> {
    iv: &'a mut [u8],
    fixed_bits: usize,
    generator: CK_ULONG,
    tag: &'a mut [u8],
}

/// Reads a message's CK_GCM_MESSAGE_PARAMS. IV and tag buffers that
/// overlap are refused: the one would be written over the other.
///
/// # Safety
/// `p` is null or valid for `len` bytes, and the structure's pIv and pTag
/// are valid for ulIvLen and ulTagBits / 8 bytes.
unsafe fn gcm_message<'a>(p: CK_VOID_PTR, len: CK_ULONG) -> Result<GcmMessage<'a>> {
    if len as usize != std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: a CK_GCM_MESSAGE_PARAMS of the size checked above.
    let m = unsafe { input(p as *const CK_GCM_MESSAGE_PARAMS) }
        .map_err(|_| Rv::MechanismParamInvalid)?
        .ok_or(Rv::MechanismParamInvalid)?;
    let tag_len = crate::mechanism::aes::gcm_tag_len(m.ulTagBits)?;
    if m.ulIvLen == 0
        || m.pIv.is_null()
        || m.pTag.is_null()
        || m.ulIvFixedBits > m.ulIvLen.saturating_mul(8)
    {
        return Err(Rv::MechanismParamInvalid);
    }
    let iv_len = m.ulIvLen as usize;
    let (iv_at, tag_at) = (m.pIv as usize, m.pTag as usize);
    if iv_at < tag_at.saturating_add(tag_len) && tag_at < iv_at.saturating_add(iv_len) {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: the caller's IV and tag buffers, of the lengths the structure
    // gives, and apart (checked above).
    let (iv, tag) = unsafe { (items_mut(m.pIv, iv_len)?, items_mut(m.pTag, tag_len)?) };
    Ok(GcmMessage {
        iv,
        fixed_bits: m.ulIvFixedBits as usize,
        generator: m.ivGenerator,
        tag,
    })
}

impl GcmMessage<'_> {
    /// The message's IV: the caller's, or one made here after the caller's
    /// fixed bits (random or counting) and written back to the caller.
    fn iv(&mut self, cipher: &mut MessageCipher, direction: Direction) -> Result<Vec<u8>> {
        cipher.make_iv(self.iv, self.fixed_bits, self.generator, direction)?;
        Ok(self.iv.to_vec())
    }
}

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

fn cipher_init(
    m: &Module,
    h: CK_SESSION_HANDLE,
    ty: Result<CK_MECHANISM_TYPE>,
    key: CK_OBJECT_HANDLE,
    direction: Direction,
) -> Result<()> {
    let (session, token) = m.session(h)?;
    let ty = ty?;
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
fn cipher_message(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    params: Result<GcmMessage<'_>>,
    aad: Result<&[u8]>,
    input: Result<&[u8]>,
    output: Result<OutBuf<'_>>,
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
    let (mut params, aad, input, mut output) = (params?, aad?, input?, output?);
    // The ciphertext is as long as the plaintext (the tag goes apart).
    if let Err(answer) = output.reserve(input.len()) {
        return answer;
    }
    let iv = params.iv(cipher, direction)?;
    let tag = params.tag;
    let context = context(cipher, tag.len())?;
    let result = if direction == Direction::Encrypt {
        seal_apart(&context, &iv, aad, input.to_vec(), tag)?
    } else {
        open_apart(&context, &iv, aad, input, tag)?
    };
    output.deliver(&result)
}

fn cipher_begin(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    params: Result<GcmMessage<'_>>,
    aad: Result<&[u8]>,
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
    let (mut params, aad) = (params?, aad?);
    let iv = params.iv(cipher, direction)?;
    cipher.pending = Some(PendingMessage {
        iv,
        aad: aad.to_vec(),
        data: SecretVec::default(),
    });
    Ok(())
}

/// A part of a message; the whole comes out with the last part (AES-GCM
/// checks the tag over everything before releasing any plaintext).
fn cipher_next(
    m: &Module,
    h: CK_SESSION_HANDLE,
    direction: Direction,
    params: Result<GcmMessage<'_>>,
    input: Result<&[u8]>,
    output: Result<OutBuf<'_>>,
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
    let (input, mut output) = (input?, output?);
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
    // The parameter is needed now, for its tag.
    let tag = params?.tag;
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
    // SAFETY: the caller's mechanism, checked. Only its type is read: the
    // parameters come with each message.
    let ty = unsafe { input(pMechanism) }.and_then(|p| Ok(p.ok_or(Rv::ArgumentsBad)?.mechanism));
    with_module(|m| cipher_init(m, hSession, ty, hKey, Direction::Encrypt))
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
            gcm_message(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
            bytes(pPlaintext, ulPlaintextLen),
            OutBuf::new(pCiphertext, pulCiphertextLen),
        )
    };
    with_module(|m| cipher_message(m, hSession, Direction::Encrypt, params, aad, input, output))
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
            gcm_message(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
        )
    };
    with_module(|m| cipher_begin(m, hSession, Direction::Encrypt, params, aad))
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
            gcm_message(pParameter, ulParameterLen),
            bytes(pPlaintextPart, ulPlaintextPartLen),
            OutBuf::new(pCiphertextPart, pulCiphertextPartLen),
        )
    };
    with_module(|m| {
        cipher_next(
            m,
            hSession,
            Direction::Encrypt,
            params,
            input,
            output,
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
    // SAFETY: the caller's mechanism, checked. Only its type is read: the
    // parameters come with each message.
    let ty = unsafe { input(pMechanism) }.and_then(|p| Ok(p.ok_or(Rv::ArgumentsBad)?.mechanism));
    with_module(|m| cipher_init(m, hSession, ty, hKey, Direction::Decrypt))
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
            gcm_message(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
            bytes(pCiphertext, ulCiphertextLen),
            OutBuf::new(pPlaintext, pulPlaintextLen),
        )
    };
    with_module(|m| cipher_message(m, hSession, Direction::Decrypt, params, aad, input, output))
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
            gcm_message(pParameter, ulParameterLen),
            bytes(pAssociatedData, ulAssociatedDataLen),
        )
    };
    with_module(|m| cipher_begin(m, hSession, Direction::Decrypt, params, aad))
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
            gcm_message(pParameter, ulParameterLen),
            bytes(pCiphertextPart, ulCiphertextPartLen),
            OutBuf::new(pPlaintextPart, pulPlaintextPartLen),
        )
    };
    with_module(|m| {
        cipher_next(
            m,
            hSession,
            Direction::Decrypt,
            params,
            input,
            output,
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

fn sign_init(
    m: &Module,
    h: CK_SESSION_HANDLE,
    arg: Result<MechanismArg>,
    key: CK_OBJECT_HANDLE,
    side: SignatureUse,
) -> Result<()> {
    let (session, token) = m.session(h)?;
    let arg = arg?;
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
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| sign_init(m, hSession, arg, hKey, SignatureUse::Sign))
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
fn more_parts(mechanism: &MechanismArg) -> Result<()> {
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
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| sign_init(m, hSession, arg, hKey, SignatureUse::Verify))
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
