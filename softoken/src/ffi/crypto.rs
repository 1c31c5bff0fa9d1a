//! Entry points of the cryptographic operations and key generation.

use pkcs11_sys::*;

use super::util::{bytes, copy_out, mechanism, out, template, with_module};
use crate::mechanism::{self, SignOp};
use crate::module::Module;
use crate::rv::{Result, Rv};
use crate::session::{Active, Session};

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
    make: fn(&mechanism::MechanismArg, &crate::attr::Attrs) -> Result<Box<T>>,
) -> Result<()> {
    let (session, token) = m.session(hSession)?;
    // SAFETY: forwarded from the caller.
    let arg = unsafe { mechanism(pMechanism)? };
    if mechanism::find(arg.ty)?.flags & function == 0 {
        return Err(Rv::MechanismInvalid);
    }
    if slot(&mut session.lock()).is_some() {
        return Err(Rv::OperationActive);
    }
    let key = token.operation_key(hKey)?;
    let op = make(&arg, &key)?;
    *slot(&mut session.lock()) = Some(Active::new(op));
    Ok(())
}

/// Delivers a signature by the length-query protocol. Returns whether the
/// operation goes on (a length query, or a buffer too small).
unsafe fn deliver(
    op: &mut dyn SignOp,
    data: Option<&[u8]>,
    p: *mut u8,
    len: CK_ULONG_PTR,
) -> (Result<()>, bool) {
    // SAFETY: caller's pointer, checked for null.
    let len = match unsafe { out(len) } {
        Ok(l) => l,
        Err(e) => return (Err(e), false),
    };
    let need = op.output_len() as CK_ULONG;
    if p.is_null() {
        *len = need;
        return (Ok(()), true);
    }
    if *len < need {
        *len = need;
        return (Err(Rv::BufferTooSmall), true);
    }
    let result = (|| {
        if let Some(data) = data {
            op.update(data)?;
        }
        let sig = op.sign()?;
        // SAFETY: the caller's buffer holds *len >= need bytes.
        unsafe { copy_out(&sig, p, len) }
    })();
    (result, false)
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
        active.multi_part = true;
        // SAFETY: caller's pointer and length.
        let result = unsafe { bytes(pPart, ulPartLen) }.and_then(|part| active.op.update(part));
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
        active.multi_part = true;
        // SAFETY: caller's pointer and length.
        let result = unsafe { bytes(pPart, ulPartLen) }.and_then(|part| active.op.update(part));
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
