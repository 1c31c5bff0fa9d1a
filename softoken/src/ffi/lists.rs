//! The function tables (the 2.40 list and the 3.0 list) and the
//! interfaces that offer them.

use std::cell::UnsafeCell;

use pkcs11_sys::*;

use super::list_out;
use super::util::{boundary, c_str, input, out};
use crate::rv::Rv;

/// A function list: the functions of version 2.40, then those a later
/// version adds. `$decrypting` is the module whose decrypting functions
/// the list offers (they answer in the list's version's codes).
macro_rules! function_list {
    ($list:ident, $major:expr, $minor:expr, $decrypting:ident $(, $name:ident => $function:path)* $(,)?) => {
        $list {
            version: CK_VERSION { major: $major, minor: $minor },
            C_Initialize: Some(super::C_Initialize),
            C_Finalize: Some(super::C_Finalize),
            C_GetInfo: Some(super::C_GetInfo),
            C_GetFunctionList: Some(C_GetFunctionList),
            C_GetSlotList: Some(super::C_GetSlotList),
            C_GetSlotInfo: Some(super::C_GetSlotInfo),
            C_GetTokenInfo: Some(super::C_GetTokenInfo),
            C_GetMechanismList: Some(super::C_GetMechanismList),
            C_GetMechanismInfo: Some(super::C_GetMechanismInfo),
            C_InitToken: Some(super::C_InitToken),
            C_InitPIN: Some(super::C_InitPIN),
            C_SetPIN: Some(super::C_SetPIN),
            C_OpenSession: Some(super::C_OpenSession),
            C_CloseSession: Some(super::C_CloseSession),
            C_CloseAllSessions: Some(super::C_CloseAllSessions),
            C_GetSessionInfo: Some(super::C_GetSessionInfo),
            C_GetOperationState: Some(super::C_GetOperationState),
            C_SetOperationState: Some(super::C_SetOperationState),
            C_Login: Some(super::C_Login),
            C_Logout: Some(super::C_Logout),
            C_CreateObject: Some(super::C_CreateObject),
            C_CopyObject: Some(super::C_CopyObject),
            C_DestroyObject: Some(super::C_DestroyObject),
            C_GetObjectSize: Some(super::C_GetObjectSize),
            C_GetAttributeValue: Some(super::C_GetAttributeValue),
            C_SetAttributeValue: Some(super::C_SetAttributeValue),
            C_FindObjectsInit: Some(super::C_FindObjectsInit),
            C_FindObjects: Some(super::C_FindObjects),
            C_FindObjectsFinal: Some(super::C_FindObjectsFinal),
            C_EncryptInit: Some(super::crypto::C_EncryptInit),
            C_Encrypt: Some(super::crypto::C_Encrypt),
            C_EncryptUpdate: Some(super::crypto::C_EncryptUpdate),
            C_EncryptFinal: Some(super::crypto::C_EncryptFinal),
            C_DecryptInit: Some(super::crypto::C_DecryptInit),
            C_Decrypt: Some($decrypting::C_Decrypt),
            C_DecryptUpdate: Some($decrypting::C_DecryptUpdate),
            C_DecryptFinal: Some($decrypting::C_DecryptFinal),
            C_DigestInit: Some(super::C_DigestInit),
            C_Digest: Some(super::C_Digest),
            C_DigestUpdate: Some(super::C_DigestUpdate),
            C_DigestKey: Some(super::C_DigestKey),
            C_DigestFinal: Some(super::C_DigestFinal),
            C_SignInit: Some(super::crypto::C_SignInit),
            C_Sign: Some(super::crypto::C_Sign),
            C_SignUpdate: Some(super::crypto::C_SignUpdate),
            C_SignFinal: Some(super::crypto::C_SignFinal),
            C_SignRecoverInit: Some(super::recover::C_SignRecoverInit),
            C_SignRecover: Some(super::recover::C_SignRecover),
            C_VerifyInit: Some(super::crypto::C_VerifyInit),
            C_Verify: Some(super::crypto::C_Verify),
            C_VerifyUpdate: Some(super::crypto::C_VerifyUpdate),
            C_VerifyFinal: Some(super::crypto::C_VerifyFinal),
            C_VerifyRecoverInit: Some(super::recover::C_VerifyRecoverInit),
            C_VerifyRecover: Some(super::recover::C_VerifyRecover),
            C_DigestEncryptUpdate: Some(super::dual::C_DigestEncryptUpdate),
            C_DecryptDigestUpdate: Some($decrypting::C_DecryptDigestUpdate),
            C_SignEncryptUpdate: Some(super::dual::C_SignEncryptUpdate),
            C_DecryptVerifyUpdate: Some($decrypting::C_DecryptVerifyUpdate),
            C_GenerateKey: Some(super::crypto::C_GenerateKey),
            C_GenerateKeyPair: Some(super::crypto::C_GenerateKeyPair),
            C_WrapKey: Some(super::crypto::C_WrapKey),
            C_UnwrapKey: Some($decrypting::C_UnwrapKey),
            C_DeriveKey: Some(super::crypto::C_DeriveKey),
            C_SeedRandom: Some(super::C_SeedRandom),
            C_GenerateRandom: Some(super::C_GenerateRandom),
            C_GetFunctionStatus: Some(super::C_GetFunctionStatus),
            C_CancelFunction: Some(super::C_CancelFunction),
            C_WaitForSlotEvent: Some(super::C_WaitForSlotEvent),
            $($name: Some($function),)*
        }
    };
}

/// The decrypting functions as they are: their codes are 3.0's.
mod current {
    pub use super::super::crypto::{C_Decrypt, C_DecryptFinal, C_DecryptUpdate, C_UnwrapKey};
    pub use super::super::dual::{C_DecryptDigestUpdate, C_DecryptVerifyUpdate};
}

/// The decrypting functions for a caller of the 2.40 list: a forged AEAD
/// tag is CKR_ENCRYPTED_DATA_INVALID there (CKR_AEAD_DECRYPT_FAILED came
/// with 3.0; NSS answers the older code, and 2.40 clients such as Java's
/// SunPKCS11 know only it). No other code a decryption returns is newer
/// than 2.40.
mod v2_40 {
    use pkcs11_sys::*;

    fn answer(rv: CK_RV) -> CK_RV {
        if rv == CKR_AEAD_DECRYPT_FAILED {
            CKR_ENCRYPTED_DATA_INVALID
        } else {
            rv
        }
    }

    /// The 2.40 entry point `$name`: the function of the same name in
    /// `$module`, its answer in 2.40's codes.
    macro_rules! in_2_40_codes {
        ($module:ident :: $name:ident ($($arg:ident: $ty:ty),* $(,)?)) => {
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
                // The function called catches its own panics, and `answer`
                // cannot panic.
                // SAFETY: the caller's arguments, passed on unchanged.
                answer(unsafe { super::super::$module::$name($($arg),*) })
            }
        };
    }

    in_2_40_codes!(crypto::C_Decrypt(
        hSession: CK_SESSION_HANDLE,
        pEncryptedData: CK_BYTE_PTR,
        ulEncryptedDataLen: CK_ULONG,
        pData: CK_BYTE_PTR,
        pulDataLen: CK_ULONG_PTR,
    ));
    in_2_40_codes!(crypto::C_DecryptUpdate(
        hSession: CK_SESSION_HANDLE,
        pEncryptedPart: CK_BYTE_PTR,
        ulEncryptedPartLen: CK_ULONG,
        pPart: CK_BYTE_PTR,
        pulPartLen: CK_ULONG_PTR,
    ));
    in_2_40_codes!(crypto::C_DecryptFinal(
        hSession: CK_SESSION_HANDLE,
        pLastPart: CK_BYTE_PTR,
        pulLastPartLen: CK_ULONG_PTR,
    ));
    in_2_40_codes!(dual::C_DecryptDigestUpdate(
        hSession: CK_SESSION_HANDLE,
        pEncryptedPart: CK_BYTE_PTR,
        ulEncryptedPartLen: CK_ULONG,
        pPart: CK_BYTE_PTR,
        pulPartLen: CK_ULONG_PTR,
    ));
    in_2_40_codes!(dual::C_DecryptVerifyUpdate(
        hSession: CK_SESSION_HANDLE,
        pEncryptedPart: CK_BYTE_PTR,
        ulEncryptedPartLen: CK_ULONG,
        pPart: CK_BYTE_PTR,
        pulPartLen: CK_ULONG_PTR,
    ));
    in_2_40_codes!(crypto::C_UnwrapKey(
        hSession: CK_SESSION_HANDLE,
        pMechanism: CK_MECHANISM_PTR,
        hUnwrappingKey: CK_OBJECT_HANDLE,
        pWrappedKey: CK_BYTE_PTR,
        ulWrappedKeyLen: CK_ULONG,
        pTemplate: CK_ATTRIBUTE_PTR,
        ulAttributeCount: CK_ULONG,
        phKey: CK_OBJECT_HANDLE_PTR,
    ));
}

/// A table handed to callers, kept in writable memory as NSS keeps its own:
/// tools that wrap a module (OpenSC's pkcs11-spy) write into the tables they
/// are handed, and segfault on read-only ones. The module never writes
/// them, and never reads them back: what it answers comes from constants.
struct Handed<T>(UnsafeCell<T>);
// SAFETY: the module only hands out the address; any access through it is
// the caller's, as with NSS's tables.
unsafe impl<T> Sync for Handed<T> {}

impl<T> Handed<T> {
    const fn ptr(&self) -> *mut T {
        self.0.get()
    }
}

static FUNCTION_LIST: Handed<CK_FUNCTION_LIST> = Handed(UnsafeCell::new(function_list!(
    CK_FUNCTION_LIST,
    2,
    40,
    v2_40
)));

static FUNCTION_LIST_3_0: Handed<CK_FUNCTION_LIST_3_0> = Handed(UnsafeCell::new(function_list!(
    CK_FUNCTION_LIST_3_0,
    3,
    0,
    current,
    C_GetInterfaceList => C_GetInterfaceList,
    C_GetInterface => C_GetInterface,
    C_LoginUser => super::C_LoginUser,
    C_SessionCancel => super::C_SessionCancel,
    C_MessageEncryptInit => super::message::C_MessageEncryptInit,
    C_EncryptMessage => super::message::C_EncryptMessage,
    C_EncryptMessageBegin => super::message::C_EncryptMessageBegin,
    C_EncryptMessageNext => super::message::C_EncryptMessageNext,
    C_MessageEncryptFinal => super::message::C_MessageEncryptFinal,
    C_MessageDecryptInit => super::message::C_MessageDecryptInit,
    C_DecryptMessage => super::message::C_DecryptMessage,
    C_DecryptMessageBegin => super::message::C_DecryptMessageBegin,
    C_DecryptMessageNext => super::message::C_DecryptMessageNext,
    C_MessageDecryptFinal => super::message::C_MessageDecryptFinal,
    C_MessageSignInit => super::message::C_MessageSignInit,
    C_SignMessage => super::message::C_SignMessage,
    C_SignMessageBegin => super::message::C_SignMessageBegin,
    C_SignMessageNext => super::message::C_SignMessageNext,
    C_MessageSignFinal => super::message::C_MessageSignFinal,
    C_MessageVerifyInit => super::message::C_MessageVerifyInit,
    C_VerifyMessage => super::message::C_VerifyMessage,
    C_VerifyMessageBegin => super::message::C_VerifyMessageBegin,
    C_VerifyMessageNext => super::message::C_VerifyMessageNext,
    C_MessageVerifyFinal => super::message::C_MessageVerifyFinal,
)));

/// The interface name of the standard function lists, NUL-terminated.
const INTERFACE_NAME: &[u8; 8] = b"PKCS 11\0";
static HANDED_NAME: Handed<[u8; 8]> = Handed(UnsafeCell::new(*INTERFACE_NAME));

/// The interfaces offered, best first, as C_GetInterfaceList lists them.
const fn interfaces() -> [CK_INTERFACE; 2] {
    let name = HANDED_NAME.ptr() as *mut CK_CHAR;
    [
        CK_INTERFACE {
            pInterfaceName: name,
            pFunctionList: FUNCTION_LIST_3_0.ptr() as *mut std::ffi::c_void,
            flags: 0,
        },
        CK_INTERFACE {
            pInterfaceName: name,
            pFunctionList: FUNCTION_LIST.ptr() as *mut std::ffi::c_void,
            flags: 0,
        },
    ]
}

/// The versions of `interfaces()`, in its order.
const INTERFACE_VERSIONS: [CK_VERSION; 2] = [
    CK_VERSION { major: 3, minor: 0 },
    CK_VERSION {
        major: 2,
        minor: 40,
    },
];

/// What C_GetInterface hands out pointers into.
static INTERFACES: Handed<[CK_INTERFACE; 2]> = Handed(UnsafeCell::new(interfaces()));

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV {
    boundary(|| {
        // SAFETY: caller's pointer, checked for null.
        let list = unsafe { out(ppFunctionList)? };
        *list = FUNCTION_LIST.ptr();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    pInterfacesList: CK_INTERFACE_PTR,
    pulCount: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: caller's pointers.
    boundary(|| unsafe { list_out(&interfaces(), pInterfacesList, pulCount) })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    pInterfaceName: CK_UTF8CHAR_PTR,
    pVersion: CK_VERSION_PTR,
    ppInterface: CK_INTERFACE_PTR_PTR,
    flags: CK_FLAGS,
) -> CK_RV {
    boundary(|| {
        // SAFETY: caller's pointer, checked for null.
        let slot = unsafe { out(ppInterface)? };
        // SAFETY: a non-null name is a NUL-terminated string by the API.
        if let Some(name) = unsafe { c_str(pInterfaceName)? } {
            if name.to_bytes() != &INTERFACE_NAME[..INTERFACE_NAME.len() - 1] {
                return Err(Rv::ArgumentsBad);
            }
        }
        // SAFETY: caller's pointer, checked; null means any version.
        let wanted = unsafe { input(pVersion)? };
        // Both interfaces have no flags: any flag asked for finds none.
        let found = INTERFACE_VERSIONS
            .iter()
            .position(|v| wanted.is_none_or(|w| w.major == v.major && w.minor == v.minor))
            .filter(|_| flags == 0)
            .ok_or(Rv::ArgumentsBad)?;
        // SAFETY: an element of the static table; only its address is taken.
        *slot = unsafe { INTERFACES.ptr().cast::<CK_INTERFACE>().add(found) };
        Ok(())
    })
}
