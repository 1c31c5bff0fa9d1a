//! Signatures with message recovery: C_SignRecover makes a signature that
//! holds the data (CKM_RSA_PKCS, CKM_RSA_X_509), C_VerifyRecover checks it
//! and hands the data back. Both are single-part.

use pkcs11_sys::*;

use crate::mechanism::op::SignatureUse;
use crate::mechanism::param::MechanismArg;
use crate::mechanism::rsa::RecoverOp;
use crate::mechanism::Operation;
use crate::rv::{Result, Rv};
use crate::session::{deliver_with, operation_key, LoginGate, Output, Session, SessionCell};
use crate::token::Token;

type RecoverSlot = fn(&mut Session) -> &mut Option<(RecoverOp, LoginGate)>;

fn sign_slot(s: &mut Session) -> &mut Option<(RecoverOp, LoginGate)> {
    &mut s.sign_recover
}

fn verify_slot(s: &mut Session) -> &mut Option<(RecoverOp, LoginGate)> {
    &mut s.verify_recover
}

/// C_SignRecoverInit / C_VerifyRecoverInit.
pub fn recover_init(
    session: &SessionCell,
    token: &Token,
    arg: Result<MechanismArg>,
    key: CK_OBJECT_HANDLE,
    side: SignatureUse,
) -> Result<()> {
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
    let key = operation_key(session, token, key)?;
    let op = RecoverOp::new(scheme, &key, side)?;
    let gate = LoginGate::for_key(&key, side == SignatureUse::Sign);
    *slot(&mut session.lock()) = Some((op, gate));
    Ok(())
}

/// C_SignRecover / C_VerifyRecover: single-part.
pub fn recover<O: Output>(
    s: &mut Session,
    side: SignatureUse,
    input: Result<&[u8]>,
    output: Result<O>,
) -> Result<()> {
    let slot: RecoverSlot = if side == SignatureUse::Sign {
        sign_slot
    } else {
        verify_slot
    };
    let (op, gate) = slot(s).as_ref().ok_or(Rv::OperationNotInitialized)?;
    let (result, keep) = match (gate.pass().and(input), output) {
        (Ok(input), Ok(output)) => deliver_recovered(op, side, input, output),
        (Err(e), _) | (_, Err(e)) => (Err(e), false),
    };
    if !keep {
        *slot(s) = None;
    }
    result
}

/// Runs the operation by the length-query protocol; returns whether it
/// goes on (a length query, or a buffer too small).
fn deliver_recovered<O: Output>(
    op: &RecoverOp,
    side: SignatureUse,
    input: &[u8],
    output: O,
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
