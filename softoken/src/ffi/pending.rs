//! Entry points of the operations whose mechanisms are not offered yet
//! (they come with the mechanisms work): each checks its session and
//! answers as the specification says for a token with no such mechanism.
//! The signatures follow pkcs11-sys's bindings.

use pkcs11_sys::*;

use super::util::with_module;
use crate::rv::Rv;

/// An `…Init` or key-management call: no mechanism of this kind exists yet.
macro_rules! no_mechanism {
    ($name:ident($($arg:ident: $ty:ty),*)) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            hSession: CK_SESSION_HANDLE,
            pMechanism: CK_MECHANISM_PTR,
            $($arg: $ty),*
        ) -> CK_RV {
            $(let _ = $arg;)*
            with_module(|m| {
                m.session(hSession)?;
                if pMechanism.is_null() {
                    Err(Rv::ArgumentsBad)
                } else {
                    Err(Rv::MechanismInvalid)
                }
            })
        }
    };
}

/// A call that continues an operation: none can have been started.
macro_rules! not_initialized {
    ($name:ident($($arg:ident: $ty:ty),*)) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(hSession: CK_SESSION_HANDLE, $($arg: $ty),*) -> CK_RV {
            $(let _ = $arg;)*
            with_module(|m| {
                m.session(hSession)?;
                Err(Rv::OperationNotInitialized)
            })
        }
    };
}

no_mechanism!(C_SignRecoverInit(hKey: CK_OBJECT_HANDLE));
no_mechanism!(C_VerifyRecoverInit(hKey: CK_OBJECT_HANDLE));
not_initialized!(C_SignRecover(pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, pulSignatureLen: CK_ULONG_PTR));
not_initialized!(C_VerifyRecover(pSignature: CK_BYTE_PTR, ulSignatureLen: CK_ULONG, pData: CK_BYTE_PTR, pulDataLen: CK_ULONG_PTR));
