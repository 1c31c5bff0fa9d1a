//! The entry points of signatures with message recovery; their state is
//! `session::recover`.

use pkcs11_sys::*;

use super::ptr::OutBuf;
use super::util::{bytes, mechanism, with_module};
use crate::mechanism::op::SignatureUse;
use crate::session;

#[no_mangle]
pub unsafe extern "C" fn C_SignRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        session::recover_init(&session, token, arg, hKey, SignatureUse::Sign)
    })
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::recover(&mut s, SignatureUse::Sign, input, output)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyRecoverInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        session::recover_init(&session, token, arg, hKey, SignatureUse::Verify)
    })
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
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::recover(&mut s, SignatureUse::Verify, input, output)
    })
}
