//! Signatures with message recovery: C_SignRecover makes a signature that
//! holds the data (CKM_RSA_PKCS, CKM_RSA_X_509), C_VerifyRecover checks it
//! and hands the data back. Both are single-part.

use pkcs11_sys::*;

use super::ptr::OutBuf;
use super::util::{bytes, mechanism, with_module};
use crate::mechanism::op::SignatureUse;
use crate::mechanism::param::MechanismArg;
use crate::mechanism::rsa::RecoverOp;
use crate::mechanism::Operation;
use crate::module::Module;
use crate::rv::{Result, Rv};
use crate::session::{deliver_with, operation_key, Session};

type RecoverSlot = fn(&mut Session) -> &mut Option<RecoverOp>;

fn sign_slot(s: &mut Session) -> &mut Option<RecoverOp> {
    &mut s.sign_recover
}

fn verify_slot(s: &mut Session) -> &mut Option<RecoverOp> {
    &mut s.verify_recover
}

fn init(
    m: &Module,
    h: CK_SESSION_HANDLE,
    arg: Result<MechanismArg>,
    key: CK_OBJECT_HANDLE,
    side: SignatureUse,
) -> Result<()> {
    let (session, token) = m.session(h)?;
    let arg = arg?;
    let found = crate::mechanism::find(arg.ty)?;
    let flag = if side == SignatureUse::Sign {
        CKF_SIGN_RECOVER
    } else {
        CKF_VERIFY_RECOVER
    };
    let Operation::Rsa(scheme) = found.operation else {
        return Err(Rv::MechanismInvalid);
    };
    if found.flags & flag == 0 {
        return Err(Rv::MechanismInvalid);
    }
    if !arg.param.is_empty() {
        return Err(Rv::MechanismParamInvalid);
    }
    let slot: RecoverSlot = if side == SignatureUse::Sign {
        sign_slot
    } else {
        verify_slot
    };
    if slot(&mut session.lock()).is_some() {
        return Err(Rv::OperationActive);
    }
    let op = RecoverOp::new(scheme, &*operation_key(&session, token, key)?, side)?;
    *slot(&mut session.lock()) = Some(op);
    Ok(())
}

/// C_SignRecover / C_VerifyRecover: single-part.
fn run(
    m: &Module,
    h: CK_SESSION_HANDLE,
    side: SignatureUse,
    input: Result<&[u8]>,
    output: Result<OutBuf<'_>>,
) -> Result<()> {
    let (session, _) = m.session(h)?;
    let mut s = session.lock();
    let slot: RecoverSlot = if side == SignatureUse::Sign {
        sign_slot
    } else {
        verify_slot
    };
    let op = slot(&mut s).as_ref().ok_or(Rv::OperationNotInitialized)?;
    let (result, keep) = match (input, output) {
        (Ok(input), Ok(output)) => deliver(op, side, input, output),
        (Err(e), _) | (_, Err(e)) => (Err(e), false),
    };
    if !keep {
        *slot(&mut s) = None;
    }
    result
}

/// Runs the operation by the length-query protocol; returns whether it
/// goes on (a length query, or a buffer too small).
fn deliver(
    op: &RecoverOp,
    side: SignatureUse,
    input: &[u8],
    output: OutBuf<'_>,
) -> (Result<()>, bool) {
    match side {
        // A signature's length is known ahead; it is made only into a
        // buffer that holds it.
        SignatureUse::Sign => deliver_with(output, op.size(), || op.sign(input)),
        // Recovered data is measured by recovering it (a public-key
        // operation, cheap).
        SignatureUse::Verify => match op.recover(input) {
            Ok(data) => deliver_with(output, data.len(), || Ok(data)),
            Err(e) => (Err(e), false),
        },
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_SignRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| init(m, hSession, arg, hKey, SignatureUse::Sign))
}

#[no_mangle]
pub unsafe extern "C" fn C_SignRecover(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's input and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pData, ulDataLen),
            OutBuf::new(pSignature, pulSignatureLen),
        )
    };
    with_module(|m| run(m, hSession, SignatureUse::Sign, input, output))
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| init(m, hSession, arg, hKey, SignatureUse::Verify))
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyRecover(
    hSession: CK_SESSION_HANDLE,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    pulDataLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's input and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pSignature, ulSignatureLen),
            OutBuf::new(pData, pulDataLen),
        )
    };
    with_module(|m| run(m, hSession, SignatureUse::Verify, input, output))
}
