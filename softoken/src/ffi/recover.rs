//! Signatures with message recovery: C_SignRecover makes a signature that
//! holds the data (CKM_RSA_PKCS, CKM_RSA_X_509), C_VerifyRecover checks it
//! and hands the data back. Both are single-part.

use pkcs11_sys::*;

use super::util::{bytes, deliver_output, mechanism, with_module};
use crate::mechanism::op::SignatureUse;
use crate::mechanism::rsa::RecoverOp;
use crate::mechanism::Operation;
use crate::module::Module;
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
    side: SignatureUse,
) -> Result<()> {
    let (session, token) = m.session(h)?;
    // SAFETY: forwarded from the caller.
    let arg = unsafe { mechanism(p_mech)? };
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
unsafe fn run(
    m: &Module,
    h: CK_SESSION_HANDLE,
    side: SignatureUse,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> Result<()> {
    let (session, _) = m.session(h)?;
    let mut s = session.lock();
    let slot: RecoverSlot = if side == SignatureUse::Sign {
        sign_slot
    } else {
        verify_slot
    };
    let op = slot(&mut s).as_ref().ok_or(Rv::OperationNotInitialized)?;
    // SAFETY: forwarded from the caller.
    let (result, keep) = unsafe { deliver(op, side, input, input_len, output, output_len) };
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
    side: SignatureUse,
    input: CK_BYTE_PTR,
    input_len: CK_ULONG,
    output: CK_BYTE_PTR,
    output_len: CK_ULONG_PTR,
) -> (Result<()>, bool) {
    // SAFETY: caller's pointer and length.
    let input = match unsafe { bytes(input, input_len) } {
        Ok(input) => input,
        Err(e) => return (Err(e), false),
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        if side == SignatureUse::Sign {
            // A signature's length is known ahead; it is made only into a
            // buffer that holds it.
            deliver_output(op.size(), output, output_len, || op.sign(input))
        } else {
            // Recovered data is measured by recovering it (a public-key
            // operation, cheap).
            match op.recover(input) {
                Ok(data) => deliver_output(data.len(), output, output_len, || Ok(data)),
                Err(e) => (Err(e), false),
            }
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_SignRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded from the caller.
    with_module(|m| unsafe { init(m, hSession, pMechanism, hKey, SignatureUse::Sign) })
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
            SignatureUse::Sign,
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
    with_module(|m| unsafe { init(m, hSession, pMechanism, hKey, SignatureUse::Verify) })
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
            SignatureUse::Verify,
            pSignature,
            ulSignatureLen,
            pData,
            pulDataLen,
        )
    })
}
