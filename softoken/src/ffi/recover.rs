//! Signatures with message recovery: C_SignRecover makes a signature that
//! holds the data (CKM_RSA_PKCS, CKM_RSA_X_509), C_VerifyRecover checks it
//! and hands the data back. Both are single-part.

use pkcs11_sys::*;

use super::util::{bytes, copy_out, mechanism, out, with_module};
use crate::mechanism::Operation;
use crate::module::Module;
use crate::rsa::RecoverOp;
use crate::rv::{Result, Rv};
use crate::session::{operation_key, Session};

type RecoverSlot = fn(&mut Session) -> &mut Option<RecoverOp>;

fn sign_slot(s: &mut Session) -> &mut Option<RecoverOp> {
    &mut s.sign_recover
}

fn verify_slot(s: &mut Session) -> &mut Option<RecoverOp> {
    &mut s.verify_recover
}

unsafe fn init(
    m: &Module,
    h: CK_SESSION_HANDLE,
    p_mech: CK_MECHANISM_PTR,
    key: CK_OBJECT_HANDLE,
    sign: bool,
) -> Result<()> {
    let (session, token) = m.session(h)?;
    // SAFETY: forwarded from the caller.
    let arg = unsafe { mechanism(p_mech)? };
    let found = crate::mechanism::find(arg.ty)?;
    let flag = if sign {
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
    let slot: RecoverSlot = if sign { sign_slot } else { verify_slot };
    if slot(&mut session.lock()).is_some() {
        return Err(Rv::OperationActive);
    }
    let op = RecoverOp::new(scheme, &operation_key(&session, &token, key)?, sign)?;
    *slot(&mut session.lock()) = Some(op);
    Ok(())
}

/// C_SignRecover / C_VerifyRecover: single-part.
unsafe fn run(
    m: &Module,
    h: CK_SESSION_HANDLE,
    sign: bool,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> Result<()> {
    let (session, _) = m.session(h)?;
    let mut s = session.lock();
    let slot: RecoverSlot = if sign { sign_slot } else { verify_slot };
    let op = slot(&mut s).as_ref().ok_or(Rv::OperationNotInitialized)?;
    // SAFETY: forwarded from the caller.
    let (result, keep) = unsafe { deliver(op, sign, input, input_len, output, output_len) };
    if !keep {
        *slot(&mut s) = None;
    }
    result
}

/// Runs the operation by the length-query protocol; returns whether it
/// goes on (a length query, or a buffer too small).
///
/// # Safety
/// The pointers are the caller's, valid for their lengths.
unsafe fn deliver(
    op: &RecoverOp,
    sign: bool,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> (Result<()>, bool) {
    // SAFETY: caller's pointers and lengths.
    let (input, len) = match unsafe { (bytes(input, input_len), out(output_len)) } {
        (Ok(input), Ok(len)) => (input, len),
        (Err(e), _) | (_, Err(e)) => return (Err(e), false),
    };
    // A signature's length is known ahead, and it is made only into a
    // buffer that holds it; recovered data is measured by recovering it (a
    // public-key operation, cheap).
    let recovered = if sign {
        None
    } else {
        match op.recover(input) {
            Ok(data) => Some(data),
            Err(e) => return (Err(e), false),
        }
    };
    let need = recovered.as_ref().map_or(op.size(), Vec::len) as CK_ULONG;
    if output.is_null() {
        *len = need;
        return (Ok(()), true);
    }
    if *len < need {
        *len = need;
        return (Err(Rv::BufferTooSmall), true);
    }
    let made = match recovered {
        Some(data) => data,
        None => match op.sign(input) {
            Ok(sig) => sig,
            Err(e) => return (Err(e), false),
        },
    };
    // SAFETY: the caller's buffer holds *len >= need bytes.
    (unsafe { copy_out(&made, output, output_len) }, false)
}

#[no_mangle]
pub unsafe extern "C" fn C_SignRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe { init(m, hSession, pMechanism, hKey, true) })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignRecover(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        run(
            m,
            hSession,
            true,
            pData,
            ulDataLen,
            pSignature,
            pulSignatureLen,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe { init(m, hSession, pMechanism, hKey, false) })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyRecover(
    hSession: CK_SESSION_HANDLE,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    pulDataLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe {
        run(
            m,
            hSession,
            false,
            pSignature,
            ulSignatureLen,
            pData,
            pulDataLen,
        )
    })
}
