//! Entry points of the cryptographic operations and key generation.

use pkcs11_sys::*;

use super::ptr::{Answered, OutBuf};
use super::util::{bytes, mechanism, out, template, with_module};
use crate::mechanism::op::{CipherOp, SignOp};
use crate::mechanism::{self, param::MechanismArg};
use crate::module::Module;
use crate::rv::{Result, Rv};
use crate::session::{self, start_with_key, Active, Session};

/// Starts an operation: checks the session, reads the mechanism (which must
/// offer `function`), fetches the key and lets the mechanism build the
/// operation, which `slot` of the session then holds.
fn start<T: ?Sized>(
    m: &Module,
    hSession: CK_SESSION_HANDLE,
    arg: Result<MechanismArg>,
    hKey: CK_OBJECT_HANDLE,
    function: CK_FLAGS,
    slot: fn(&mut Session) -> &mut Option<Active<T>>,
    make: fn(
        &MechanismArg,
        &crate::object::attrs::Attrs,
        &mut crate::cache::kept::KeptContexts,
    ) -> Result<Box<T>>,
) -> Result<()> {
    let (session, token) = m.session(hSession)?;
    let arg = arg?;
    let found = mechanism::find(arg.ty)?;
    if found.flags & function == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let single_part_only = found.single_part_only();
    start_with_key(
        &session,
        token,
        hKey,
        single_part_only,
        slot,
        |key, contexts| make(&arg, key, contexts),
    )
}

/// Delivers a signature by the length-query protocol. Returns whether the
/// operation goes on (a length query, or a buffer too small).
pub(super) fn deliver(
    op: &mut dyn SignOp,
    data: Option<&[u8]>,
    signature: Result<OutBuf<'_>>,
) -> (Result<()>, bool) {
    match signature {
        Ok(signature) => signature.deliver_with(op.output_len(), || {
            if let Some(data) = data {
                op.update(data)?;
            }
            op.sign()
        }),
        Err(e) => (Err(e), false),
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        start(
            m,
            hSession,
            arg,
            hKey,
            CKF_SIGN,
            |s: &mut Session| &mut s.sign,
            mechanism::sign_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's data and signature buffer, of the lengths it
    // gives.
    let (data, signature) = unsafe {
        (
            bytes(pData, ulDataLen),
            OutBuf::new(pSignature, pulSignatureLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
        if active.multi_part {
            return Err(Rv::OperationActive);
        }
        let (result, keep) = match data {
            Ok(data) => deliver(&mut *active.op, Some(data), signature),
            Err(e) => (Err(e), false),
        };
        if !keep {
            s.sign = None;
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's part, of the length it gives.
    let part = unsafe { bytes(pPart, ulPartLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
        let result = active
            .begin_parts()
            .and(part)
            .and_then(|part| active.op.update(part));
        if result.is_err() {
            s.sign = None;
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's signature buffer and length.
    let signature = unsafe { OutBuf::new(pSignature, pulSignatureLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
        let (result, keep) = deliver(&mut *active.op, None, signature);
        if !keep {
            s.sign = None;
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        start(
            m,
            hSession,
            arg,
            hKey,
            CKF_VERIFY,
            |s: &mut Session| &mut s.verify,
            mechanism::verify_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's data and signature, of the lengths it gives.
    let (data, sig) = unsafe { (bytes(pData, ulDataLen), bytes(pSignature, ulSignatureLen)) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let mut active = s.verify.take().ok_or(Rv::OperationNotInitialized)?;
        if active.multi_part {
            s.verify = Some(active);
            return Err(Rv::OperationActive);
        }
        active.op.update(data?)?;
        active.op.verify(sig?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's part, of the length it gives.
    let part = unsafe { bytes(pPart, ulPartLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.verify.as_mut().ok_or(Rv::OperationNotInitialized)?;
        let result = active
            .begin_parts()
            .and(part)
            .and_then(|part| active.op.update(part));
        if result.is_err() {
            s.verify = None;
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's signature, of the length it gives.
    let sig = unsafe { bytes(pSignature, ulSignatureLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut active = session
            .lock()
            .verify
            .take()
            .ok_or(Rv::OperationNotInitialized)?;
        active.op.verify(sig?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulCount: CK_ULONG,
    phKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointers.
        let (arg, attrs, handle) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pTemplate, ulCount)?,
                out(phKey)?,
            )
        };
        let generated = mechanism::generate_key(&arg, &attrs)?;
        *handle = token.store_generated(acc, attrs, generated)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    pPublicKeyTemplate: CK_ATTRIBUTE_PTR,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: CK_ATTRIBUTE_PTR,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: CK_OBJECT_HANDLE_PTR,
    phPrivateKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointers.
        let (arg, public, private, public_out, private_out) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?,
                template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?,
                out(phPublicKey)?,
                out(phPrivateKey)?,
            )
        };
        let (public_made, private_made) = mechanism::generate_key_pair(&arg, &public)?;
        let (h_public, h_private) =
            token.store_generated_pair(acc, (public, public_made), (private, private_made))?;
        *public_out = h_public;
        *private_out = h_private;
        Ok(())
    })
}

/// Delivers cipher output by the length-query protocol: `input` is more
/// data (if any), `finishing` ends the operation. Returns whether the
/// operation goes on.
fn deliver_cipher(
    op: &mut dyn CipherOp,
    input: &[u8],
    finishing: bool,
    output: Result<OutBuf<'_>>,
) -> (Result<()>, bool) {
    let need = op.output_len(input.len(), finishing);
    let (result, waiting) = match output {
        Ok(output) => output.deliver_with(need, || {
            let mut out = op.update(input)?;
            if finishing {
                out.extend_from_slice(&op.finish()?);
            }
            Ok(out)
        }),
        Err(e) => (Err(e), false),
    };
    // An update that went through leaves the operation open for more.
    let goes_on = waiting || (result.is_ok() && !finishing);
    (result, goes_on)
}

/// A single-part operation straight into the caller's buffer, when the
/// buffer is there and large enough and the mechanism can (None otherwise:
/// the general path answers length queries and short buffers).
fn single_into(op: &mut dyn CipherOp, input: &[u8], output: &mut OutBuf<'_>) -> Option<Result<()>> {
    // A caller may encrypt in place; the copying path serves that case.
    if output.overlaps(input) {
        return None;
    }
    let need = op.output_len(input.len(), true);
    let room = output.room(need)?;
    Some(
        op.single_into(input, room)?
            .map(|written| output.set_len(written)),
    )
}

/// The encryption or decryption slot of a session.
pub(super) type CipherSlot = fn(&mut Session) -> &mut Option<Active<dyn CipherOp>>;

/// C_Encrypt / C_Decrypt: single-part.
fn cipher_single(
    m: &Module,
    hSession: CK_SESSION_HANDLE,
    slot: CipherSlot,
    input: Result<&[u8]>,
    output: Result<OutBuf<'_>>,
) -> Result<()> {
    let (session, _) = m.session(hSession)?;
    let mut s = session.lock();
    let active = slot(&mut s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if active.multi_part {
        return Err(Rv::OperationActive);
    }
    let (result, keep) = match (input, output) {
        (Ok(data), Ok(mut output)) => match single_into(&mut *active.op, data, &mut output) {
            Some(done) => (done, false),
            None => deliver_cipher(&mut *active.op, data, true, Ok(output)),
        },
        (Err(e), _) | (_, Err(e)) => (Err(e), false),
    };
    if !keep {
        *slot(&mut s) = None;
    }
    result
}

/// C_EncryptUpdate / C_DecryptUpdate (with input) and C_EncryptFinal /
/// C_DecryptFinal (without).
fn cipher_part(
    m: &Module,
    hSession: CK_SESSION_HANDLE,
    slot: CipherSlot,
    input: Option<Result<&[u8]>>,
    output: Result<OutBuf<'_>>,
) -> Result<()> {
    let (session, _) = m.session(hSession)?;
    let mut s = session.lock();
    match input {
        Some(part) => cipher_step(&mut s, slot, part, output).map(|_| ()),
        None => {
            let active = slot(&mut s).as_mut().ok_or(Rv::OperationNotInitialized)?;
            let (result, keep) = deliver_cipher(&mut *active.op, &[], true, output);
            if !keep {
                *slot(&mut s) = None;
            }
            result
        }
    }
}

/// One part through the session's cipher in `slot`, by the length-query
/// protocol. Returns whether the part went through (not a length query).
pub(super) fn cipher_step(
    s: &mut Session,
    slot: CipherSlot,
    input: Result<&[u8]>,
    output: Result<OutBuf<'_>>,
) -> Result<bool> {
    let active = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let query = output.as_ref().is_ok_and(|o| o.is_query());
    let (result, keep) = match active.begin_parts().and(input) {
        Ok(data) => deliver_cipher(&mut *active.op, data, false, output),
        Err(e) => (Err(e), false),
    };
    if !keep {
        *slot(s) = None;
    }
    result.map(|()| !query)
}

pub(super) fn encrypt_slot(s: &mut Session) -> &mut Option<Active<dyn CipherOp>> {
    &mut s.encrypt
}

pub(super) fn decrypt_slot(s: &mut Session) -> &mut Option<Active<dyn CipherOp>> {
    &mut s.decrypt
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        start(
            m,
            hSession,
            arg,
            hKey,
            CKF_ENCRYPT,
            encrypt_slot,
            mechanism::encrypt_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pEncryptedData: CK_BYTE_PTR,
    pulEncryptedDataLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's input and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pData, ulDataLen),
            OutBuf::new(pEncryptedData, pulEncryptedDataLen),
        )
    };
    with_module(|m| cipher_single(m, hSession, encrypt_slot, input, output))
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
    pEncryptedPart: CK_BYTE_PTR,
    pulEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (part, output) = unsafe {
        (
            bytes(pPart, ulPartLen),
            OutBuf::new(pEncryptedPart, pulEncryptedPartLen),
        )
    };
    with_module(|m| cipher_part(m, hSession, encrypt_slot, Some(part), output))
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastEncryptedPart: CK_BYTE_PTR,
    pulLastEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's output buffer and length.
    let output = unsafe { OutBuf::new(pLastEncryptedPart, pulLastEncryptedPartLen) };
    with_module(|m| cipher_part(m, hSession, encrypt_slot, None, output))
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        start(
            m,
            hSession,
            arg,
            hKey,
            CKF_DECRYPT,
            decrypt_slot,
            mechanism::decrypt_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: CK_BYTE_PTR,
    ulEncryptedDataLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    pulDataLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's input and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pEncryptedData, ulEncryptedDataLen),
            OutBuf::new(pData, pulDataLen),
        )
    };
    with_module(|m| cipher_single(m, hSession, decrypt_slot, input, output))
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: CK_BYTE_PTR,
    ulEncryptedPartLen: CK_ULONG,
    pPart: CK_BYTE_PTR,
    pulPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (part, output) = unsafe {
        (
            bytes(pEncryptedPart, ulEncryptedPartLen),
            OutBuf::new(pPart, pulPartLen),
        )
    };
    with_module(|m| cipher_part(m, hSession, decrypt_slot, Some(part), output))
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: CK_BYTE_PTR,
    pulLastPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's output buffer and length.
    let output = unsafe { OutBuf::new(pLastPart, pulLastPartLen) };
    with_module(|m| cipher_part(m, hSession, decrypt_slot, None, output))
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hBaseKey: CK_OBJECT_HANDLE,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulAttributeCount: CK_ULONG,
    phKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, acc, token) = m.session_access(hSession)?;
        // SAFETY: the caller's mechanism, template and handle location.
        let (arg, attrs, handle) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pTemplate, ulAttributeCount)?,
                out(phKey)?,
            )
        };
        *handle = session::derive_key(&session, acc, token, arg, hBaseKey, attrs)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hWrappingKey: CK_OBJECT_HANDLE,
    hKey: CK_OBJECT_HANDLE,
    pWrappedKey: CK_BYTE_PTR,
    pulWrappedKeyLen: CK_ULONG_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        // SAFETY: the caller's mechanism, and its buffer and length.
        let (arg, mut wrapped) = unsafe {
            (
                mechanism(pMechanism)?,
                OutBuf::new(pWrappedKey, pulWrappedKeyLen)?,
            )
        };
        let wrapping = session::wrap_key(&session, token, &arg, hWrappingKey, hKey)?;
        if let Err(Answered(answer)) = wrapped.reserve(wrapping.output_len()) {
            return answer;
        }
        wrapped.deliver(&wrapping.run()?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hUnwrappingKey: CK_OBJECT_HANDLE,
    pWrappedKey: CK_BYTE_PTR,
    ulWrappedKeyLen: CK_ULONG,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulAttributeCount: CK_ULONG,
    phKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, acc, token) = m.session_access(hSession)?;
        // SAFETY: the caller's mechanism, wrapped key, template and handle
        // location.
        let (arg, wrapped, attrs, handle) = unsafe {
            (
                mechanism(pMechanism)?,
                bytes(pWrappedKey, ulWrappedKeyLen)?,
                template(pTemplate, ulAttributeCount)?,
                out(phKey)?,
            )
        };
        *handle = session::unwrap_key(&session, acc, token, &arg, hUnwrappingKey, wrapped, &attrs)?;
        Ok(())
    })
}
