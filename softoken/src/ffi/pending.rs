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
no_mechanism!(C_MessageEncryptInit(hKey: CK_OBJECT_HANDLE));
no_mechanism!(C_MessageDecryptInit(hKey: CK_OBJECT_HANDLE));
no_mechanism!(C_MessageSignInit(hKey: CK_OBJECT_HANDLE));
no_mechanism!(C_MessageVerifyInit(hKey: CK_OBJECT_HANDLE));
not_initialized!(C_SignRecover(pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, pulSignatureLen: CK_ULONG_PTR));
not_initialized!(C_VerifyRecover(pSignature: CK_BYTE_PTR, ulSignatureLen: CK_ULONG, pData: CK_BYTE_PTR, pulDataLen: CK_ULONG_PTR));
not_initialized!(C_DigestEncryptUpdate(pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG, pEncryptedPart: CK_BYTE_PTR, pulEncryptedPartLen: CK_ULONG_PTR));
not_initialized!(C_DecryptDigestUpdate(pEncryptedPart: CK_BYTE_PTR, ulEncryptedPartLen: CK_ULONG, pPart: CK_BYTE_PTR, pulPartLen: CK_ULONG_PTR));
not_initialized!(C_SignEncryptUpdate(pPart: CK_BYTE_PTR, ulPartLen: CK_ULONG, pEncryptedPart: CK_BYTE_PTR, pulEncryptedPartLen: CK_ULONG_PTR));
not_initialized!(C_DecryptVerifyUpdate(pEncryptedPart: CK_BYTE_PTR, ulEncryptedPartLen: CK_ULONG, pPart: CK_BYTE_PTR, pulPartLen: CK_ULONG_PTR));
not_initialized!(C_EncryptMessage(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pAssociatedData: CK_BYTE_PTR, ulAssociatedDataLen: CK_ULONG, pPlaintext: CK_BYTE_PTR, ulPlaintextLen: CK_ULONG, pCiphertext: CK_BYTE_PTR, pulCiphertextLen: CK_ULONG_PTR));
not_initialized!(C_EncryptMessageBegin(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pAssociatedData: CK_BYTE_PTR, ulAssociatedDataLen: CK_ULONG));
not_initialized!(C_EncryptMessageNext(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pPlaintextPart: CK_BYTE_PTR, ulPlaintextPartLen: CK_ULONG, pCiphertextPart: CK_BYTE_PTR, pulCiphertextPartLen: CK_ULONG_PTR, flags: CK_FLAGS));
not_initialized!(C_MessageEncryptFinal());
not_initialized!(C_DecryptMessage(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pAssociatedData: CK_BYTE_PTR, ulAssociatedDataLen: CK_ULONG, pCiphertext: CK_BYTE_PTR, ulCiphertextLen: CK_ULONG, pPlaintext: CK_BYTE_PTR, pulPlaintextLen: CK_ULONG_PTR));
not_initialized!(C_DecryptMessageBegin(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pAssociatedData: CK_BYTE_PTR, ulAssociatedDataLen: CK_ULONG));
not_initialized!(C_DecryptMessageNext(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pCiphertextPart: CK_BYTE_PTR, ulCiphertextPartLen: CK_ULONG, pPlaintextPart: CK_BYTE_PTR, pulPlaintextPartLen: CK_ULONG_PTR, flags: CK_FLAGS));
not_initialized!(C_MessageDecryptFinal());
not_initialized!(C_SignMessage(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, pulSignatureLen: CK_ULONG_PTR));
not_initialized!(C_SignMessageBegin(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG));
not_initialized!(C_SignMessageNext(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, pulSignatureLen: CK_ULONG_PTR));
not_initialized!(C_MessageSignFinal());
not_initialized!(C_VerifyMessage(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, ulSignatureLen: CK_ULONG));
not_initialized!(C_VerifyMessageBegin(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG));
not_initialized!(C_VerifyMessageNext(pParameter: CK_VOID_PTR, ulParameterLen: CK_ULONG, pData: CK_BYTE_PTR, ulDataLen: CK_ULONG, pSignature: CK_BYTE_PTR, ulSignatureLen: CK_ULONG));
not_initialized!(C_MessageVerifyFinal());
