//! Entry points of the cryptographic operations and key generation.

use pkcs11_sys::*;

use super::util::{
    bytes, copy_out, deliver_output, items_mut, mechanism, out, template, with_module,
};
use crate::mechanism::op::{CipherOp, CipherUse, SignOp};
use crate::mechanism::{self, param::MechanismArg};
use crate::module::Module;
use crate::rv::{Result, Rv};
use crate::session::{operation_key, start_with_key, Active, Session};

/// Starts an operation: checks the session, reads the mechanism (which must
/// offer `function`), fetches the key and lets the mechanism build the
/// operation, which `slot` of the session then holds.
unsafe fn start<T: ?Sized>(
    m: &Module,
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
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
    // SAFETY: forwarded from the caller.
    let arg = unsafe { mechanism(pMechanism)? };
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
pub(super) unsafe fn deliver(
    op: &mut dyn SignOp,
    data: Option<&[u8]>,
    p: *mut u8,
    len: CK_ULONG_PTR,
) -> (Result<()>, bool) {
    // SAFETY: forwarded from the caller.
    unsafe {
        deliver_output(op.output_len(), p, len, || {
            if let Some(data) = data {
                op.update(data)?;
            }
            op.sign()
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        start(
            m,
            hSession,
            pMechanism,
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
        if active.multi_part {
            return Err(Rv::OperationActive);
        }
        // SAFETY: caller's pointers and lengths.
        let (result, keep) = match unsafe { bytes(pData, ulDataLen) } {
            // SAFETY: the caller's signature buffer and length.
            Ok(data) => unsafe {
                deliver(&mut *active.op, Some(data), pSignature, pulSignatureLen)
            },
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
        // SAFETY: caller's pointer and length.
        let result = active
            .begin_parts()
            .and_then(|()| unsafe { bytes(pPart, ulPartLen) })
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
        // SAFETY: caller's pointers.
        let (result, keep) = unsafe { deliver(&mut *active.op, None, pSignature, pulSignatureLen) };
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        start(
            m,
            hSession,
            pMechanism,
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let mut active = s.verify.take().ok_or(Rv::OperationNotInitialized)?;
        if active.multi_part {
            s.verify = Some(active);
            return Err(Rv::OperationActive);
        }
        // SAFETY: caller's pointers and lengths.
        let (data, sig) = unsafe { (bytes(pData, ulDataLen)?, bytes(pSignature, ulSignatureLen)?) };
        active.op.update(data)?;
        active.op.verify(sig)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        let active = s.verify.as_mut().ok_or(Rv::OperationNotInitialized)?;
        // SAFETY: caller's pointer and length.
        let result = active
            .begin_parts()
            .and_then(|()| unsafe { bytes(pPart, ulPartLen) })
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut active = session
            .lock()
            .verify
            .take()
            .ok_or(Rv::OperationNotInitialized)?;
        // SAFETY: caller's pointer and length.
        let sig = unsafe { bytes(pSignature, ulSignatureLen)? };
        active.op.verify(sig)
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
unsafe fn deliver_cipher(
    op: &mut dyn CipherOp,
    input: &[u8],
    finishing: bool,
    p: *mut u8,
    len: CK_ULONG_PTR,
) -> (Result<()>, bool) {
    let need = op.output_len(input.len(), finishing);
    // SAFETY: forwarded from the caller.
    let (result, waiting) = unsafe {
        deliver_output(need, p, len, || {
            let mut output = op.update(input)?;
            if finishing {
                output.extend_from_slice(&op.finish()?);
            }
            Ok(output)
        })
    };
    // An update that went through leaves the operation open for more.
    let goes_on = waiting || (result.is_ok() && !finishing);
    (result, goes_on)
}

/// A single-part operation straight into the caller's buffer, when the
/// buffer is there and large enough and the mechanism can (None otherwise:
/// the general path answers length queries and short buffers).
///
/// # Safety
/// `p` is null or valid for writes of `*len` bytes; `len` is valid.
unsafe fn single_into(
    op: &mut dyn CipherOp,
    input: &[u8],
    p: *mut u8,
    len: CK_ULONG_PTR,
) -> Option<Result<()>> {
    // SAFETY: the caller's length location, checked; a bad one is left to
    // the copying path, which reports it.
    let len = unsafe { out(len) }.ok()?;
    let need = op.output_len(input.len(), true);
    if p.is_null() || (*len as usize) < need {
        return None;
    }
    // A caller may encrypt in place; the copying path serves that case.
    let (in_start, in_end) = (
        input.as_ptr() as usize,
        input.as_ptr() as usize + input.len(),
    );
    let (out_start, out_end) = (p as usize, p as usize + need);
    if in_start < out_end && out_start < in_end {
        return None;
    }
    // SAFETY: the caller gives `*len` writable bytes at `p`, at least `need`;
    // a pointer that cannot be is left to the copying path, which reports it.
    let output = unsafe { items_mut(p, need) }.ok()?;
    Some(op.single_into(input, output)?.map(|written| {
        *len = written as CK_ULONG;
    }))
}

/// The encryption or decryption slot of a session.
pub(super) type CipherSlot = fn(&mut Session) -> &mut Option<Active<dyn CipherOp>>;

/// C_Encrypt / C_Decrypt: single-part.
unsafe fn cipher_single(
    m: &Module,
    hSession: CK_SESSION_HANDLE,
    slot: CipherSlot,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> Result<()> {
    let (session, _) = m.session(hSession)?;
    let mut s = session.lock();
    let active = slot(&mut s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if active.multi_part {
        return Err(Rv::OperationActive);
    }
    // SAFETY: caller's pointers and lengths.
    let (result, keep) = match unsafe { bytes(input, input_len) } {
        // SAFETY: the caller's output buffer and length.
        Ok(data) => match unsafe { single_into(&mut *active.op, data, output, output_len) } {
            Some(done) => (done, false),
            // SAFETY: as above.
            None => unsafe { deliver_cipher(&mut *active.op, data, true, output, output_len) },
        },
        Err(e) => (Err(e), false),
    };
    if !keep {
        *slot(&mut s) = None;
    }
    result
}

/// C_EncryptUpdate / C_DecryptUpdate (with input) and C_EncryptFinal /
/// C_DecryptFinal (without).
unsafe fn cipher_part(
    m: &Module,
    hSession: CK_SESSION_HANDLE,
    slot: CipherSlot,
    input: Option<(CK_BYTE_PTR, CK_ULONG)>,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> Result<()> {
    let (session, _) = m.session(hSession)?;
    let mut s = session.lock();
    match input {
        // SAFETY: forwarded from the caller.
        Some((p, n)) => unsafe { cipher_step(&mut s, slot, p, n, output, output_len) }.map(|_| ()),
        None => {
            let active = slot(&mut s).as_mut().ok_or(Rv::OperationNotInitialized)?;
            // SAFETY: caller's pointers.
            let (result, keep) =
                unsafe { deliver_cipher(&mut *active.op, &[], true, output, output_len) };
            if !keep {
                *slot(&mut s) = None;
            }
            result
        }
    }
}

/// One part through the session's cipher in `slot`, by the length-query
/// protocol. Returns whether the part went through (not a length query).
///
/// # Safety
/// The pointers are the caller's, valid for their lengths.
pub(super) unsafe fn cipher_step(
    s: &mut Session,
    slot: CipherSlot,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> Result<bool> {
    let active = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    // SAFETY: caller's pointers and lengths.
    let (result, keep) = match active
        .begin_parts()
        .and_then(|()| unsafe { bytes(input, input_len) })
    {
        // SAFETY: the caller's output buffer and length.
        Ok(data) => unsafe { deliver_cipher(&mut *active.op, data, false, output, output_len) },
        Err(e) => (Err(e), false),
    };
    if !keep {
        *slot(s) = None;
    }
    result.map(|()| !output.is_null())
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        start(
            m,
            hSession,
            pMechanism,
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_single(
            m,
            hSession,
            encrypt_slot,
            pData,
            ulDataLen,
            pEncryptedData,
            pulEncryptedDataLen,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
    pEncryptedPart: CK_BYTE_PTR,
    pulEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_part(
            m,
            hSession,
            encrypt_slot,
            Some((pPart, ulPartLen)),
            pEncryptedPart,
            pulEncryptedPartLen,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastEncryptedPart: CK_BYTE_PTR,
    pulLastEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_part(
            m,
            hSession,
            encrypt_slot,
            None,
            pLastEncryptedPart,
            pulLastEncryptedPartLen,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        start(
            m,
            hSession,
            pMechanism,
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
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_single(
            m,
            hSession,
            decrypt_slot,
            pEncryptedData,
            ulEncryptedDataLen,
            pData,
            pulDataLen,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: CK_BYTE_PTR,
    ulEncryptedPartLen: CK_ULONG,
    pPart: CK_BYTE_PTR,
    pulPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_part(
            m,
            hSession,
            decrypt_slot,
            Some((pEncryptedPart, ulEncryptedPartLen)),
            pPart,
            pulPartLen,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: CK_BYTE_PTR,
    pulLastPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        cipher_part(m, hSession, decrypt_slot, None, pLastPart, pulLastPartLen)
    })
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
        // SAFETY: caller's pointers.
        let (arg, attrs, handle) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pTemplate, ulAttributeCount)?,
                out(phKey)?,
            )
        };
        if mechanism::find(arg.ty)?.flags & CKF_DERIVE == 0 {
            return Err(Rv::MechanismInvalid);
        }
        let mut arg = arg;
        // An HKDF salt given as a key is that key's value.
        if let Some(crate::mechanism::param::KdfParams::Hkdf { salt, .. }) = &mut arg.kdf {
            if let crate::mechanism::param::HkdfSalt::Key(h) = *salt {
                let key =
                    operation_key(&session, token, h).map_err(|_| Rv::MechanismParamInvalid)?;
                if key.ulong(CKA_CLASS) != Some(CKO_SECRET_KEY) {
                    return Err(Rv::MechanismParamInvalid);
                }
                *salt = crate::mechanism::param::HkdfSalt::Data(
                    key.get(CKA_VALUE).unwrap_or_default().to_vec(),
                );
            }
        }
        let base = operation_key(&session, token, hBaseKey)?;
        let derived = mechanism::derive_key(&arg, &base, &attrs)?;
        *handle = token.store_generated(acc, attrs, derived)?;
        Ok(())
    })
}

/// Runs a wrapping cipher over all of `input` at once.
fn run_cipher(op: &mut dyn CipherOp, input: &[u8]) -> Result<Vec<u8>> {
    let mut out = op.update(input)?;
    out.extend_from_slice(&op.finish()?);
    Ok(out)
}

/// A handle error about a wrapping key says so.
fn wrapping_key_error(e: Rv, invalid: Rv) -> Rv {
    if e == Rv::KeyHandleInvalid {
        invalid
    } else {
        e
    }
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
        // SAFETY: caller's pointers.
        let (arg, len) = unsafe { (mechanism(pMechanism)?, out(pulWrappedKeyLen)?) };
        if mechanism::find(arg.ty)?.flags & CKF_WRAP == 0 {
            return Err(Rv::MechanismInvalid);
        }
        let wrapping = operation_key(&session, token, hWrappingKey)
            .map_err(|e| wrapping_key_error(e, Rv::WrappingKeyHandleInvalid))?;
        let key = operation_key(&session, token, hKey)?;
        if key.bool(CKA_EXTRACTABLE) != Some(true) {
            return Err(Rv::KeyUnextractable);
        }
        if key.bool(CKA_WRAP_WITH_TRUSTED) == Some(true) && wrapping.bool(CKA_TRUSTED) != Some(true)
        {
            return Err(Rv::KeyNotWrappable);
        }
        let plaintext = crate::mechanism::pkcs8::key_bytes(&key)?;
        let mut op =
            mechanism::cipher_op(&arg, &wrapping, CipherUse::Wrap, &mut Default::default())?;
        let need = op.output_len(plaintext.len(), true) as CK_ULONG;
        if pWrappedKey.is_null() {
            *len = need;
            return Ok(());
        }
        if *len < need {
            *len = need;
            return Err(Rv::BufferTooSmall);
        }
        let wrapped = run_cipher(&mut *op, &plaintext)?;
        // SAFETY: the caller's buffer holds *len >= need bytes.
        unsafe { copy_out(&wrapped, pWrappedKey, pulWrappedKeyLen) }
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
        // SAFETY: caller's pointers.
        let (arg, wrapped, attrs, handle) = unsafe {
            (
                mechanism(pMechanism)?,
                bytes(pWrappedKey, ulWrappedKeyLen)?,
                template(pTemplate, ulAttributeCount)?,
                out(phKey)?,
            )
        };
        if mechanism::find(arg.ty)?.flags & CKF_UNWRAP == 0 {
            return Err(Rv::MechanismInvalid);
        }
        let unwrapping = operation_key(&session, token, hUnwrappingKey)
            .map_err(|e| wrapping_key_error(e, Rv::UnwrappingKeyHandleInvalid))?;
        let mut op = mechanism::cipher_op(
            &arg,
            &unwrapping,
            CipherUse::Unwrap,
            &mut Default::default(),
        )?;
        let plaintext =
            zeroize::Zeroizing::new(run_cipher(&mut *op, wrapped).map_err(|e| match e {
                Rv::EncryptedDataInvalid => Rv::WrappedKeyInvalid,
                Rv::EncryptedDataLenRange | Rv::DataLenRange => Rv::WrappedKeyLenRange,
                other => other,
            })?);
        let key = crate::mechanism::pkcs8::unwrapped_key(&plaintext, &attrs)?;
        // An unwrapped key is an imported one: the same checks and defaults
        // as C_CreateObject.
        *handle = token.create_object(acc, key)?;
        Ok(())
    })
}
