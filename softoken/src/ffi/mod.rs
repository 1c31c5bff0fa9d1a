//! The C boundary: the only place with `extern "C"` and raw pointers. Each
//! entry point checks its pointers and lengths, runs the safe function
//! inside the panic boundary and returns its CK_RV.
//!
//! # Safety
//! Every `C_*` function has the contract the PKCS#11 specification gives
//! it: each pointer is null or valid for what the specification says it
//! points at, for the length the call names.
#![allow(non_snake_case)]
// The safety contract of each entry point is the specification's (above).
#![allow(clippy::missing_safety_doc)]

mod crypto;
mod dual;
mod lists;
mod message;
mod ptr;
mod recover;
mod util;

use pkcs11_sys::*;

use crate::mechanism;
use crate::module::{self, CallLock};
use crate::rv::{Result, Rv};
use crate::session;
use crate::token::{AttrRead, MAX_PIN_LEN};
use ptr::OutBuf;
use util::{boundary, bytes, items_mut, out, padded, search_template, template, with_module};

pub use lists::{C_GetFunctionList, C_GetInterface, C_GetInterfaceList};

/// The mutex callbacks of an application that does not allow OS locking:
/// one application mutex serialises every call into the module.
struct AppMutex {
    mutex: CK_VOID_PTR,
    lock: unsafe extern "C" fn(CK_VOID_PTR) -> CK_RV,
    unlock: unsafe extern "C" fn(CK_VOID_PTR) -> CK_RV,
    destroy: unsafe extern "C" fn(CK_VOID_PTR) -> CK_RV,
}

// SAFETY: the application's mutex callbacks are made to be called from any
// of its threads; the handle is only passed back to them.
unsafe impl Send for AppMutex {}
// SAFETY: as above; the callbacks do their own synchronisation.
unsafe impl Sync for AppMutex {}

impl CallLock for AppMutex {
    fn lock(&self) -> Result<()> {
        // SAFETY: a callback and a mutex the application gave us.
        match unsafe { (self.lock)(self.mutex) } {
            CKR_OK => Ok(()),
            _ => Err(Rv::CantLock),
        }
    }
    fn unlock(&self) {
        // SAFETY: as in lock; a failure to unlock cannot be reported here.
        unsafe { (self.unlock)(self.mutex) };
    }
}

impl Drop for AppMutex {
    fn drop(&mut self) {
        // SAFETY: the mutex came from the application's CreateMutex.
        unsafe { (self.destroy)(self.mutex) };
    }
}

/// Reads CK_C_INITIALIZE_ARGS: the locking choice and NSS's parameter
/// string in `pReserved`.
/// The parameter string and the application's lock, if any.
type InitArgs = (Option<String>, Option<Box<dyn CallLock>>);

unsafe fn init_args(p: CK_VOID_PTR) -> Result<InitArgs> {
    // SAFETY: a non-null argument is a CK_C_INITIALIZE_ARGS by the API.
    let Some(args) = (unsafe { util::input(p as *const CK_C_INITIALIZE_ARGS)? }) else {
        return Ok((None, None));
    };
    let callbacks = [
        args.CreateMutex.is_some(),
        args.DestroyMutex.is_some(),
        args.LockMutex.is_some(),
        args.UnlockMutex.is_some(),
    ];
    if callbacks.iter().any(|&c| c) && !callbacks.iter().all(|&c| c) {
        return Err(Rv::ArgumentsBad);
    }
    let lock: Option<Box<dyn CallLock>> = match (
        args.CreateMutex,
        args.DestroyMutex,
        args.LockMutex,
        args.UnlockMutex,
    ) {
        (Some(create), Some(destroy), Some(lock), Some(unlock))
            if args.flags & CKF_OS_LOCKING_OK == 0 =>
        {
            let mut mutex: CK_VOID_PTR = std::ptr::null_mut();
            // SAFETY: the application's own CreateMutex, given a valid out pointer.
            if unsafe { create(&mut mutex) } != CKR_OK {
                return Err(Rv::CantLock);
            }
            Some(Box::new(AppMutex {
                mutex,
                lock,
                unlock,
                destroy,
            }))
        }
        _ => None,
    };
    // NSS passes its module parameters here as a C string; a value that
    // cannot be a pointer is refused, not read.
    // SAFETY: by NSS's convention a non-null pReserved is a NUL-terminated string.
    let params = match unsafe { util::c_str(args.pReserved as *const u8)? } {
        None => None,
        Some(s) => Some(s.to_str().map_err(|_| Rv::ArgumentsBad)?.to_owned()),
    };
    Ok((params, lock))
}

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(pInitArgs: CK_VOID_PTR) -> CK_RV {
    boundary(|| {
        // SAFETY: the caller's CK_C_INITIALIZE_ARGS (or null), read here.
        let (params, lock) = unsafe { init_args(pInitArgs)? };
        module::initialize(params.as_deref(), lock)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(pReserved: CK_VOID_PTR) -> CK_RV {
    boundary(|| {
        if !pReserved.is_null() {
            return Err(Rv::ArgumentsBad);
        }
        // Keys go with the module: so does what this thread's stack holds.
        crate::engine::secret::mark_stack();
        module::finalize()
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(pInfo: CK_INFO_PTR) -> CK_RV {
    with_module(|m| {
        // SAFETY: caller's pointer, checked for null.
        let info = unsafe { out(pInfo)? };
        *info = CK_INFO {
            cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
            manufacturerID: padded(&m.config.manufacturer_id),
            flags: 0,
            libraryDescription: padded(&m.config.library_description),
            libraryVersion: util::library_version(),
        };
        Ok(())
    })
}

/// Writes a list by the length-query protocol.
///
/// # Safety
/// `count` is null or valid; `p` is null or valid for `*count` items.
unsafe fn list_out<T: Copy>(values: &[T], p: *mut T, count: CK_ULONG_PTR) -> Result<()> {
    // SAFETY: this function's promise.
    unsafe { OutBuf::new(p, count) }?.deliver(values)
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    tokenPresent: CK_BBOOL,
    pSlotList: CK_SLOT_ID_PTR,
    pulCount: CK_ULONG_PTR,
) -> CK_RV {
    with_module(|m| {
        let ids: Vec<CK_SLOT_ID> = m
            .slots
            .iter()
            .filter(|s| tokenPresent == 0 || s.token_present())
            .map(|s| s.id)
            .collect();
        // SAFETY: caller's pointers.
        unsafe { list_out(&ids, pSlotList, pulCount) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: CK_SLOT_INFO_PTR) -> CK_RV {
    with_module(|m| {
        let slot = m.slot(slotID)?;
        // SAFETY: caller's pointer, checked for null.
        let info = unsafe { out(pInfo)? };
        *info = CK_SLOT_INFO {
            slotDescription: padded(&slot.description),
            manufacturerID: padded(&m.config.manufacturer_id),
            flags: match &slot.token {
                // The label changes at a Mode 3 merge's first login: NSS
                // shows such a slot as removable.
                Ok(t) if t.in_update_merge() => CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE,
                _ if slot.token_present() => CKF_TOKEN_PRESENT,
                _ => 0,
            },
            hardwareVersion: util::library_version(),
            firmwareVersion: util::library_version(),
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: CK_TOKEN_INFO_PTR) -> CK_RV {
    with_module(|m| {
        let token = m.token(slotID)?;
        // SAFETY: caller's pointer, checked for null.
        let info = unsafe { out(pInfo)? };
        let (sessions, rw_sessions) = m.session_counts(slotID);
        *info = CK_TOKEN_INFO {
            label: padded(&token.label()),
            manufacturerID: padded(&m.config.manufacturer_id),
            model: padded("NSS 3"),
            serialNumber: padded(&token.serial()),
            flags: token.flags(),
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: sessions as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: rw_sessions as CK_ULONG,
            ulMaxPinLen: MAX_PIN_LEN as CK_ULONG,
            ulMinPinLen: token.config().min_pin_len as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: util::library_version(),
            firmwareVersion: util::library_version(),
            utcTime: padded(""),
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slotID: CK_SLOT_ID,
    pMechanismList: CK_MECHANISM_TYPE_PTR,
    pulCount: CK_ULONG_PTR,
) -> CK_RV {
    with_module(|m| {
        m.token(slotID)?;
        let types: Vec<CK_MECHANISM_TYPE> = mechanism::all().iter().map(|m| m.ty).collect();
        // SAFETY: caller's pointers.
        unsafe { list_out(&types, pMechanismList, pulCount) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slotID: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    pInfo: CK_MECHANISM_INFO_PTR,
) -> CK_RV {
    with_module(|m| {
        m.token(slotID)?;
        let mech = mechanism::find(type_)?;
        // SAFETY: caller's pointer, checked for null.
        let info = unsafe { out(pInfo)? };
        *info = CK_MECHANISM_INFO {
            ulMinKeySize: mech.min_key_size,
            ulMaxKeySize: mech.max_key_size,
            flags: mech.info_flags(),
        };
        Ok(())
    })
}

/// A PIN argument: UTF-8 bytes of bounded length.
unsafe fn pin<'a>(p: CK_UTF8CHAR_PTR, len: CK_ULONG) -> Result<&'a [u8]> {
    if len as usize > MAX_PIN_LEN {
        return Err(Rv::PinLenRange);
    }
    // SAFETY: caller's pointer and length.
    let pin = unsafe { bytes(p, len)? };
    std::str::from_utf8(pin).map_err(|_| Rv::PinInvalid)?;
    Ok(pin)
}

/// A PIN given to be checked (C_Login, C_SetPIN's old PIN, C_InitToken's
/// SO PIN). One too long or not UTF-8 cannot be the right one: it is
/// CKR_PIN_INCORRECT, the answer these functions have for a wrong PIN.
unsafe fn pin_to_check<'a>(p: CK_UTF8CHAR_PTR, len: CK_ULONG) -> Result<&'a [u8]> {
    // SAFETY: as `pin`.
    match unsafe { pin(p, len) } {
        Err(Rv::PinLenRange | Rv::PinInvalid) => Err(Rv::PinIncorrect),
        other => other,
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    slotID: CK_SLOT_ID,
    pPin: CK_UTF8CHAR_PTR,
    ulPinLen: CK_ULONG,
    pLabel: CK_UTF8CHAR_PTR,
) -> CK_RV {
    with_module(|m| {
        m.token(slotID)?;
        if pLabel.is_null() {
            return Err(Rv::ArgumentsBad);
        }
        // SAFETY: caller's pointers; the label is a 32-byte blank-padded field.
        let (so_pin, label) = unsafe { (pin_to_check(pPin, ulPinLen)?, bytes(pLabel, 32)?) };
        let label = String::from_utf8_lossy(label)
            .trim_end_matches([' ', '\0'])
            .to_owned();
        m.init_token(slotID, so_pin, &label)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(
    hSession: CK_SESSION_HANDLE,
    pPin: CK_UTF8CHAR_PTR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointer and length.
        let new_pin = unsafe { pin(pPin, ulPinLen)? };
        token.init_pin(acc, new_pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    hSession: CK_SESSION_HANDLE,
    pOldPin: CK_UTF8CHAR_PTR,
    ulOldLen: CK_ULONG,
    pNewPin: CK_UTF8CHAR_PTR,
    ulNewLen: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointers and lengths.
        let (old, new) = unsafe { (pin_to_check(pOldPin, ulOldLen)?, pin(pNewPin, ulNewLen)?) };
        token.set_pin(acc, old, new)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slotID: CK_SLOT_ID,
    flags: CK_FLAGS,
    pApplication: CK_VOID_PTR,
    Notify: CK_NOTIFY,
    phSession: CK_SESSION_HANDLE_PTR,
) -> CK_RV {
    // Notifications are optional; this token never sends any.
    let _ = (pApplication, Notify);
    with_module(|m| {
        // SAFETY: caller's pointer, checked for null.
        let handle = unsafe { out(phSession)? };
        *handle = m.open_session(slotID, flags)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV {
    crate::engine::secret::mark_stack();
    with_module(|m| m.close_session(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV {
    crate::engine::secret::mark_stack();
    with_module(|m| m.close_all_sessions(slotID))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    hSession: CK_SESSION_HANDLE,
    pInfo: CK_SESSION_INFO_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        // SAFETY: caller's pointer, checked for null.
        let info = unsafe { out(pInfo)? };
        let (slot, rw) = (session.slot, session.rw);
        *info = CK_SESSION_INFO {
            slotID: slot,
            state: m.session_state(token, rw),
            flags: CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetOperationState(
    hSession: CK_SESSION_HANDLE,
    pOperationState: CK_BYTE_PTR,
    pulOperationStateLen: CK_ULONG_PTR,
) -> CK_RV {
    let _ = (pOperationState, pulOperationStateLen);
    with_module(|m| {
        m.session(hSession)?;
        Err(Rv::FunctionNotSupported)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetOperationState(
    hSession: CK_SESSION_HANDLE,
    pOperationState: CK_BYTE_PTR,
    ulOperationStateLen: CK_ULONG,
    hEncryptionKey: CK_OBJECT_HANDLE,
    hAuthenticationKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    let _ = (
        pOperationState,
        ulOperationStateLen,
        hEncryptionKey,
        hAuthenticationKey,
    );
    with_module(|m| {
        m.session(hSession)?;
        Err(Rv::FunctionNotSupported)
    })
}

fn login(
    m: &module::Module,
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pin: &[u8],
) -> Result<()> {
    let (session, token) = m.session(hSession)?;
    if userType == CKU_CONTEXT_SPECIFIC {
        return crate::session::context_login(&session, token, pin);
    }
    token.login(userType, pin, m.has_ro_session(session.slot))?;
    // A Mode 3 merge that now wants this database's own password "removes"
    // the token, as NSS does: every session goes, and the next C_Login
    // (in a new session) takes that password.
    if token.take_removed() {
        m.close_all_sessions(session.slot)?;
    }
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: CK_UTF8CHAR_PTR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        // SAFETY: caller's pointer and length.
        let pin = unsafe { pin_to_check(pPin, ulPinLen)? };
        login(m, hSession, userType, pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_LoginUser(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: CK_UTF8CHAR_PTR,
    ulPinLen: CK_ULONG,
    pUsername: CK_UTF8CHAR_PTR,
    ulUsernameLen: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        // SAFETY: caller's pointers and lengths. The token has one user of
        // each type, so the name is checked for validity only.
        let pin = unsafe {
            bytes(pUsername, ulUsernameLen)?;
            pin_to_check(pPin, ulPinLen)?
        };
        login(m, hSession, userType, pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV {
    // The keys go at logout: so does what this thread's stack holds.
    crate::engine::secret::mark_stack();
    with_module(|m| m.logout(hSession))
}

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    hSession: CK_SESSION_HANDLE,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulCount: CK_ULONG,
    phObject: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointers.
        let (attrs, handle) = unsafe { (template(pTemplate, ulCount)?, out(phObject)?) };
        *handle = token.create_object(acc, attrs)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulCount: CK_ULONG,
    phNewObject: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointers.
        let (attrs, handle) = unsafe { (template(pTemplate, ulCount)?, out(phNewObject)?) };
        *handle = token.copy_object(acc, hObject, attrs)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        token.destroy_object(acc, hObject)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pulSize: CK_ULONG_PTR,
) -> CK_RV {
    with_module(|m| {
        let (_, token) = m.session(hSession)?;
        // SAFETY: caller's pointer, checked for null.
        let size = unsafe { out(pulSize)? };
        *size = token.object_size(hObject)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulCount: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        let (_, token) = m.session(hSession)?;
        if pTemplate.is_null() && ulCount > 0 {
            return Err(Rv::ArgumentsBad);
        }
        // SAFETY: the caller's template of ulCount attributes.
        let attrs = unsafe { items_mut(pTemplate, ulCount as usize)? };
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let answers = token.get_attributes(hObject, &types)?;
        let mut result = Ok(());
        for (a, answer) in attrs.iter_mut().zip(answers) {
            let value = match answer {
                AttrRead::Value(v) => v,
                AttrRead::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Rv::AttributeSensitive);
                    continue;
                }
                AttrRead::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Rv::AttributeTypeInvalid);
                    continue;
                }
            };
            // SAFETY: the attribute's buffer and length come from the caller.
            let buffer = unsafe { OutBuf::new(a.pValue as *mut u8, &mut a.ulValueLen) };
            match buffer.and_then(|b| b.deliver(&value)) {
                Ok(()) => {}
                Err(Rv::BufferTooSmall) => {
                    // Per attribute the answer is "unavailable", not a length.
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Rv::BufferTooSmall);
                }
                Err(e) => return Err(e),
            }
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulCount: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's template.
        let attrs = unsafe { template(pTemplate, ulCount)? };
        token.set_attributes(acc, hObject, attrs)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    hSession: CK_SESSION_HANDLE,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulCount: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        // SAFETY: caller's template.
        let attrs = unsafe { search_template(pTemplate, ulCount)? };
        let mut s = session.lock();
        session::find_init(&mut s, token, attrs.as_ref())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    hSession: CK_SESSION_HANDLE,
    phObject: CK_OBJECT_HANDLE_PTR,
    ulMaxObjectCount: CK_ULONG,
    pulObjectCount: CK_ULONG_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        // SAFETY: caller's pointer, checked for null.
        let count = unsafe { out(pulObjectCount)? };
        if phObject.is_null() && ulMaxObjectCount > 0 {
            return Err(Rv::ArgumentsBad);
        }
        let batch = session::find_next(&mut session.lock(), ulMaxObjectCount as usize)?;
        // SAFETY: the caller's array has room for ulMaxObjectCount handles.
        unsafe { items_mut(phObject, batch.len())? }.copy_from_slice(&batch);
        *count = batch.len() as CK_ULONG;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::find_final(&mut s)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        // SAFETY: caller's pointer, checked.
        let mech = unsafe { util::input(pMechanism)? }.ok_or(Rv::ArgumentsBad)?;
        let entry = mechanism::find(mech.mechanism)?;
        if mech.ulParameterLen != 0 {
            return Err(Rv::MechanismParamInvalid);
        }
        let mut s = session.lock();
        session::digest_init(&mut s, entry)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pDigest: CK_BYTE_PTR,
    pulDigestLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's data and digest buffer, of the lengths it gives.
    let (data, digest) = unsafe { (bytes(pData, ulDataLen), OutBuf::new(pDigest, pulDigestLen)) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::digest(&mut s, data, digest)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's part, of the length it gives.
    let part = unsafe { bytes(pPart, ulPartLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::digest_update(&mut s, part)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) -> CK_RV {
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        let mut s = session.lock();
        if s.digest.is_none() {
            return Err(Rv::OperationNotInitialized);
        }
        let value = token.secret_key_value(hKey, &mut s.key_cache);
        session::digest_update(&mut s, value.as_ref().map(|v| v.as_slice()).map_err(|e| *e))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    hSession: CK_SESSION_HANDLE,
    pDigest: CK_BYTE_PTR,
    pulDigestLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's digest buffer and length.
    let digest = unsafe { OutBuf::new(pDigest, pulDigestLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::digest_final(&mut s, digest)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    hSession: CK_SESSION_HANDLE,
    pSeed: CK_BYTE_PTR,
    ulSeedLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's seed, of the length it gives.
    let seed = unsafe { bytes(pSeed, ulSeedLen) };
    with_module(|m| {
        m.session(hSession)?;
        crate::engine::seed_random(seed?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    hSession: CK_SESSION_HANDLE,
    RandomData: CK_BYTE_PTR,
    ulRandomLen: CK_ULONG,
) -> CK_RV {
    with_module(|m| {
        m.session(hSession)?;
        if ulRandomLen > isize::MAX as CK_ULONG {
            return Err(Rv::ArgumentsBad);
        }
        // SAFETY: the caller's buffer holds ulRandomLen bytes.
        let buf = unsafe { items_mut(RandomData, ulRandomLen as usize)? };
        crate::engine::random_fill(buf)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        m.session(hSession)?;
        Err(Rv::FunctionNotParallel)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(hSession: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|m| {
        m.session(hSession)?;
        Err(Rv::FunctionNotParallel)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    pSlot: CK_SLOT_ID_PTR,
    pRserved: CK_VOID_PTR,
) -> CK_RV {
    let _ = pRserved;
    with_module(|_| {
        // SAFETY: caller's pointer, checked for null.
        unsafe { out(pSlot)? };
        // Database tokens are never inserted or removed.
        if flags & CKF_DONT_BLOCK != 0 {
            Err(Rv::NoEvent)
        } else {
            Err(Rv::FunctionNotSupported)
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        session.lock().cancel(flags);
        Ok(())
    })
}
