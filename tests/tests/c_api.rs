//! The C API's return codes, called raw on the built module: initialisation,
//! interfaces, slots, sessions and login rules, the attribute protocol,
//! object visibility, digests.

use std::sync::atomic::{AtomicUsize, Ordering};

use pkcs11_sys::*;
use softoken_tests::raw::{as_ul, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

fn fresh() -> (Raw, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    (raw, dir)
}

#[test]
fn initialize_and_finalize_codes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::load();
    let mut n = 0;
    // SAFETY: valid out pointer.
    let rv = unsafe { (raw.f().C_GetSlotList.unwrap())(0, std::ptr::null_mut(), &mut n) };
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_eq!(raw.finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);

    // Some mutex callbacks but not all.
    extern "C" fn create(_: CK_VOID_PTR_PTR) -> CK_RV {
        CKR_OK
    }
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: Some(create),
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: 0,
        pReserved: std::ptr::null_mut(),
    };
    // SAFETY: valid arguments.
    let rv = unsafe { (raw.f().C_Initialize.unwrap())(&mut args as *mut _ as *mut _) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);

    let params = sql_params(dir.path());
    assert_eq!(raw.initialize(Some(&params)), CKR_OK);
    assert_eq!(
        raw.initialize(Some(&params)),
        CKR_CRYPTOKI_ALREADY_INITIALIZED
    );
    // SAFETY: a non-null reserved pointer is refused before use.
    let rv = unsafe { (raw.f().C_Finalize.unwrap())(8 as CK_VOID_PTR) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(raw.finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);
    // A bad parameter string is the caller's error.
    assert_eq!(
        raw.initialize(Some("configdir='sql:' flags=")),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(raw.initialize(Some(&params)), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
}

static LOCKS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn application_mutex_callbacks_are_used() {
    extern "C" fn create(m: CK_VOID_PTR_PTR) -> CK_RV {
        // SAFETY: the module passes a valid out pointer.
        unsafe { *m = 0x1234 as CK_VOID_PTR };
        CKR_OK
    }
    extern "C" fn destroy(_: CK_VOID_PTR) -> CK_RV {
        CKR_OK
    }
    extern "C" fn lock(m: CK_VOID_PTR) -> CK_RV {
        assert_eq!(m as usize, 0x1234);
        LOCKS.fetch_add(1, Ordering::SeqCst);
        CKR_OK
    }
    extern "C" fn unlock(_: CK_VOID_PTR) -> CK_RV {
        CKR_OK
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::load();
    let params = std::ffi::CString::new(sql_params(dir.path())).unwrap();
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: Some(create),
        DestroyMutex: Some(destroy),
        LockMutex: Some(lock),
        UnlockMutex: Some(unlock),
        flags: 0,
        pReserved: params.as_ptr() as *mut _,
    };
    // SAFETY: valid arguments.
    let rv = unsafe { (raw.f().C_Initialize.unwrap())(&mut args as *mut _ as *mut _) };
    assert_eq!(rv, CKR_OK);
    let before = LOCKS.load(Ordering::SeqCst);
    raw.slots();
    assert!(LOCKS.load(Ordering::SeqCst) > before);
    assert_eq!(raw.finalize(), CKR_OK);
}

#[test]
fn interfaces_and_function_lists() {
    let raw = Raw::load();
    assert_eq!(raw.f().version.major, 2);
    assert_eq!(raw.f().version.minor, 40);
    // SAFETY: the symbols have the signatures of the PKCS#11 3.0 header.
    unsafe {
        let lib = libloading::Library::new(raw.path()).unwrap();
        let list: libloading::Symbol<
            unsafe extern "C" fn(CK_INTERFACE_PTR, CK_ULONG_PTR) -> CK_RV,
        > = lib.get(b"C_GetInterfaceList").unwrap();
        let mut n = 0;
        assert_eq!(list(std::ptr::null_mut(), &mut n), CKR_OK);
        assert_eq!(n, 2);
        let mut ifaces = [CK_INTERFACE::default(); 2];
        let mut small = 1;
        assert_eq!(list(ifaces.as_mut_ptr(), &mut small), CKR_BUFFER_TOO_SMALL);
        assert_eq!(small, 2);
        assert_eq!(list(ifaces.as_mut_ptr(), &mut n), CKR_OK);
        assert_eq!(
            list(ifaces.as_mut_ptr(), std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        for i in &ifaces {
            let name = std::ffi::CStr::from_ptr(i.pInterfaceName as *const _);
            assert_eq!(name.to_bytes(), b"PKCS 11");
        }
        let get: libloading::Symbol<
            unsafe extern "C" fn(*mut u8, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS) -> CK_RV,
        > = lib.get(b"C_GetInterface").unwrap();
        let mut found: CK_INTERFACE_PTR = std::ptr::null_mut();
        assert_eq!(
            get(std::ptr::null_mut(), std::ptr::null_mut(), &mut found, 0),
            CKR_OK
        );
        let f30 = &*((*found).pFunctionList as *const CK_FUNCTION_LIST_3_0);
        assert_eq!((f30.version.major, f30.version.minor), (3, 0));
        // Every function of the 3.0 list is there.
        let words = std::slice::from_raw_parts(
            (f30 as *const CK_FUNCTION_LIST_3_0 as *const usize).add(1),
            (std::mem::size_of::<CK_FUNCTION_LIST_3_0>() - 8) / 8,
        );
        assert!(words.iter().all(|w| *w != 0));
        let mut v240 = CK_VERSION {
            major: 2,
            minor: 40,
        };
        assert_eq!(
            get(c"PKCS 11".as_ptr() as *mut u8, &mut v240, &mut found, 0),
            CKR_OK
        );
        assert_eq!((*((*found).pFunctionList as *const CK_VERSION)).minor, 40);
        let mut v99 = CK_VERSION { major: 9, minor: 9 };
        assert_eq!(
            get(std::ptr::null_mut(), &mut v99, &mut found, 0),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            get(
                c"Vendor".as_ptr() as *mut u8,
                std::ptr::null_mut(),
                &mut found,
                0
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            get(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0
            ),
            CKR_ARGUMENTS_BAD
        );
    }
}

#[test]
fn slots_and_token_info() {
    let (raw, _dir) = fresh();
    let f = raw.f();
    let mut n: CK_ULONG = 0;
    let mut slot: CK_SLOT_ID = 0;
    // SAFETY: valid pointers throughout.
    unsafe {
        assert_eq!(
            (f.C_GetSlotList.unwrap())(0, std::ptr::null_mut(), &mut n),
            CKR_OK
        );
        assert_eq!(n, 1);
        let mut zero = 0;
        assert_eq!(
            (f.C_GetSlotList.unwrap())(0, &mut slot, &mut zero),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(zero, 1);
        assert_eq!((f.C_GetSlotList.unwrap())(0, &mut slot, &mut n), CKR_OK);
        let mut info = CK_SLOT_INFO::default();
        assert_eq!((f.C_GetSlotInfo.unwrap())(slot, &mut info), CKR_OK);
        assert_ne!(info.flags & CKF_TOKEN_PRESENT, 0);
        assert_eq!(
            (f.C_GetSlotInfo.unwrap())(777, &mut info),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(
            (f.C_GetSlotInfo.unwrap())(slot, std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        let mut count = 0;
        assert_eq!(
            (f.C_GetMechanismList.unwrap())(slot, std::ptr::null_mut(), &mut count),
            CKR_OK
        );
        let mut mechs = vec![0; count as usize];
        let mut short = 1;
        assert_eq!(
            (f.C_GetMechanismList.unwrap())(slot, mechs.as_mut_ptr(), &mut short),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(short, count);
        assert_eq!(
            (f.C_GetMechanismList.unwrap())(slot, mechs.as_mut_ptr(), &mut count),
            CKR_OK
        );
        for m in [CKM_SHA256, CKM_SHA256_HMAC, CKM_ECDSA, CKM_AES_GCM] {
            assert!(mechs.contains(&m), "{m:#x}");
        }
        let mut mi = CK_MECHANISM_INFO::default();
        assert_eq!(
            (f.C_GetMechanismInfo.unwrap())(slot, CKM_SHA256, &mut mi),
            CKR_OK
        );
        assert_eq!(mi.flags, CKF_DIGEST);
        assert_eq!(
            (f.C_GetMechanismInfo.unwrap())(slot, CKM_RIPEMD160_HMAC, &mut mi),
            CKR_MECHANISM_INVALID
        );
    }
    let info = raw.token_info(slot);
    assert_eq!(&info.label, b"softoken                        ");
    let serial = info.serialNumber;
    assert!(serial.iter().all(u8::is_ascii_hexdigit), "{serial:?}");
    assert_ne!(&serial, b"0000000000000000");
    let expect = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
    assert_eq!(info.flags & expect, expect);
    assert_eq!(info.flags & (CKF_LOGIN_REQUIRED | CKF_WRITE_PROTECTED), 0);
}

#[test]
fn session_and_login_rules() {
    let (raw, _dir) = fresh();
    let slot = raw.slots()[0];
    let f = raw.f();
    let mut h = 0;
    // SAFETY: valid pointers.
    let rv = unsafe { (f.C_OpenSession.unwrap())(slot, 0, std::ptr::null_mut(), None, &mut h) };
    assert_eq!(rv, CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    assert_eq!(raw.open(99, true), Err(CKR_SLOT_ID_INVALID));
    assert_eq!(raw.login(4242, CKU_USER, ""), CKR_SESSION_HANDLE_INVALID);

    let info = |s| {
        let mut i = CK_SESSION_INFO::default();
        // SAFETY: valid out pointer.
        assert_eq!(unsafe { (f.C_GetSessionInfo.unwrap())(s, &mut i) }, CKR_OK);
        i
    };
    let ro = raw.open(slot, false).unwrap();
    assert_eq!(info(ro).state, CKS_RO_PUBLIC_SESSION);
    assert_eq!(raw.logout(ro), CKR_USER_NOT_LOGGED_IN);
    // The SO cannot log in while a read-only session exists.
    assert_eq!(raw.login(ro, CKU_SO, ""), CKR_SESSION_READ_ONLY_EXISTS);
    assert_eq!(raw.login(ro, 77, ""), CKR_USER_TYPE_INVALID);
    assert_eq!(raw.login(ro, CKU_USER, ""), CKR_OK);
    assert_eq!(info(ro).state, CKS_RO_USER_FUNCTIONS);
    let rw = raw.open(slot, true).unwrap();
    assert_eq!(info(rw).state, CKS_RW_USER_FUNCTIONS);
    assert_eq!(info(rw).flags, CKF_SERIAL_SESSION | CKF_RW_SESSION);
    assert_eq!(
        raw.login(rw, CKU_SO, ""),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    );
    assert_eq!(raw.logout(rw), CKR_OK);
    assert_eq!(info(ro).state, CKS_RO_PUBLIC_SESSION);
    assert_eq!(raw.close(ro), CKR_OK);
    assert_eq!(raw.close(ro), CKR_SESSION_HANDLE_INVALID);

    // SO: only read-write sessions.
    assert_eq!(
        raw.login(rw, CKU_SO, "not the empty PIN"),
        CKR_PIN_INCORRECT
    );
    assert_eq!(raw.login(rw, CKU_SO, ""), CKR_OK);
    assert_eq!(info(rw).state, CKS_RW_SO_FUNCTIONS);
    assert_eq!(raw.open(slot, false), Err(CKR_SESSION_READ_WRITE_SO_EXISTS));
    assert_eq!(
        raw.login(rw, CKU_USER, ""),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    );
    // C_InitToken needs every session closed.
    assert_eq!(raw.init_token(slot, "", "x"), CKR_SESSION_EXISTS);
    // SAFETY: plain value.
    assert_eq!(unsafe { (f.C_CloseAllSessions.unwrap())(slot) }, CKR_OK);
    assert_eq!(raw.logout(rw), CKR_SESSION_HANDLE_INVALID);
}

#[test]
fn init_token_and_pins() {
    let (raw, _dir) = fresh();
    let slot = raw.slots()[0];
    assert_eq!(raw.init_token(slot, "so-pin", "Relabelled"), CKR_OK);
    let info = raw.token_info(slot);
    assert_eq!(&info.label[..10], b"Relabelled");
    assert_eq!(
        info.flags & CKF_USER_PIN_INITIALIZED,
        0,
        "the user PIN is gone"
    );
    assert_eq!(raw.init_token(slot, "other", "x"), CKR_PIN_INCORRECT);

    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, ""), CKR_USER_PIN_NOT_INITIALIZED);
    assert_eq!(raw.init_pin(s, "user-pin"), CKR_USER_NOT_LOGGED_IN);
    assert_eq!(raw.login(s, CKU_SO, "wrong"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_SO, "so-pin"), CKR_OK);
    assert_eq!(raw.init_pin(s, "user-pin"), CKR_OK);
    // The SO changes its own PIN.
    assert_eq!(raw.set_pin(s, "so-pin", "so-pin-2"), CKR_OK);
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(raw.login(s, CKU_SO, "so-pin"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_SO, "so-pin-2"), CKR_OK);
    assert_eq!(raw.logout(s), CKR_OK);

    let flags = raw.token_info(slot).flags;
    assert_ne!(flags & CKF_USER_PIN_INITIALIZED, 0);
    assert_ne!(flags & CKF_LOGIN_REQUIRED, 0);
    assert_eq!(raw.set_pin(s, "wrong", "x"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, "user-pin"), CKR_OK);
    assert_eq!(
        raw.set_pin(s, "user-pin", &"p".repeat(501)),
        CKR_PIN_LEN_RANGE
    );
    let ro = raw.open(slot, false).unwrap();
    assert_eq!(raw.set_pin(ro, "user-pin", "new"), CKR_SESSION_READ_ONLY);
}

/// A fresh token with a read-write session and one token data object.
fn protocol_object() -> (Raw, tempfile::TempDir, CK_SESSION_HANDLE, CK_OBJECT_HANDLE) {
    let (raw, dir) = fresh();
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    let obj = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_DATA)),
                (CKA_TOKEN, TRUE.to_vec()),
                (CKA_LABEL, b"protocol".to_vec()),
                (CKA_VALUE, b"0123456789".to_vec()),
            ],
        )
        .unwrap();
    (raw, dir, s, obj)
}

/// C_GetAttributeValue: a short buffer, a value, a missing attribute and
/// an empty one in one call; bad templates and handles.
#[test]
fn get_attribute_value_answers_each_attribute_by_the_protocol() {
    let (raw, _dir, s, obj) = protocol_object();
    let mut label_buf = [0u8; 4];
    let mut value_buf = [0u8; 64];
    let mut t = [
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label_buf.as_mut_ptr() as *mut _,
            ulValueLen: 4,
        },
        CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: value_buf.as_mut_ptr() as *mut _,
            ulValueLen: 64,
        },
        CK_ATTRIBUTE {
            type_: CKA_MODULUS,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        },
        CK_ATTRIBUTE {
            type_: CKA_APPLICATION,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        },
    ];
    // SAFETY: the template's buffers are valid for their lengths.
    let rv = unsafe { (raw.f().C_GetAttributeValue.unwrap())(s, obj, t.as_mut_ptr(), 4) };
    assert!(
        rv == CKR_BUFFER_TOO_SMALL || rv == CKR_ATTRIBUTE_TYPE_INVALID,
        "{rv:#x}"
    );
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION, "too small");
    assert_eq!(t[1].ulValueLen, 10);
    assert_eq!(&value_buf[..10], b"0123456789");
    assert_eq!(
        t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION,
        "no such attribute"
    );
    assert_eq!(t[3].ulValueLen, 0, "length query of an empty value");

    // SAFETY: null template with a count is refused before use.
    let rv = unsafe { (raw.f().C_GetAttributeValue.unwrap())(s, obj, std::ptr::null_mut(), 1) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    assert_eq!(
        raw.get(s, 0x8000_0001, CKA_LABEL),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(raw.get(s, 0, CKA_LABEL), Err(CKR_OBJECT_HANDLE_INVALID));
}

/// C_SetAttributeValue: a change allowed, read-only ones, a wrong type.
#[test]
fn set_attribute_value_changes_only_what_may_change() {
    let (raw, _dir, s, obj) = protocol_object();
    assert_eq!(raw.set(s, obj, &[(CKA_LABEL, b"renamed".to_vec())]), CKR_OK);
    assert_eq!(raw.get(s, obj, CKA_LABEL).unwrap(), b"renamed");
    assert_eq!(
        raw.set(s, obj, &[(CKA_CLASS, ul(CKO_CERTIFICATE))]),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        raw.set(s, obj, &[(CKA_TOKEN, FALSE.to_vec())]),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        raw.set(s, obj, &[(CKA_MODIFIABLE, vec![1, 1])]),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        raw.set(s, obj, &[(CKA_MODULUS, vec![1])]),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
}

/// C_CreateObject's refusals.
#[test]
fn create_object_refuses_bad_templates() {
    let (raw, _dir, s, _) = protocol_object();
    assert_eq!(
        raw.create(s, &[(CKA_LABEL, b"x".to_vec())]),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    assert_eq!(
        raw.create(s, &[(CKA_CLASS, ul(CKO_DATA)), (CKA_TOKEN, vec![1, 0])]),
        Err(CKR_ATTRIBUTE_VALUE_INVALID)
    );
    assert_eq!(
        raw.create(
            s,
            &[
                (CKA_CLASS, ul(CKO_DATA)),
                (CKA_LABEL, b"a".to_vec()),
                (CKA_LABEL, b"b".to_vec())
            ]
        ),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    assert_eq!(
        raw.create(
            s,
            &[
                (CKA_CLASS, ul(CKO_CERTIFICATE)),
                (CKA_CERTIFICATE_TYPE, ul(CKC_X_509))
            ]
        ),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    assert_eq!(
        raw.create(s, &[(CKA_CLASS, ul(CKO_DATA)), (0x7777_0000, vec![])]),
        Err(CKR_ATTRIBUTE_TYPE_INVALID)
    );
}

/// A sensitive key value is never revealed; the other attributes are.
#[test]
fn a_sensitive_value_is_never_revealed() {
    let (raw, _dir, s, _) = protocol_object();
    let key = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_AES)),
                (CKA_TOKEN, TRUE.to_vec()),
                (CKA_VALUE, vec![7; 32]),
            ],
        )
        .unwrap();
    assert_eq!(raw.get(s, key, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    assert_eq!(as_ul(&raw.get(s, key, CKA_VALUE_LEN).unwrap()), 32);
    assert_eq!(
        raw.set(s, key, &[(CKA_SENSITIVE, FALSE.to_vec())]),
        CKR_ATTRIBUTE_READ_ONLY
    );
    let mut size = 0;
    // SAFETY: valid out pointer.
    let rv = unsafe { (raw.f().C_GetObjectSize.unwrap())(s, key, &mut size) };
    assert_eq!(rv, CKR_OK);
    assert!(size > 32);
}

/// A key that existed outside the token (created from its value, or
/// unwrapped) was never always sensitive, even when it is sensitive now;
/// a key generated sensitive here was.
#[test]
fn only_keys_born_sensitive_here_are_always_sensitive() {
    let (raw, _dir, s, _) = protocol_object();
    let sensitive = [
        (CKA_SENSITIVE, TRUE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
    ];
    let imported = raw.create_secret(s, CKK_AES, &[7; 16], &sensitive).unwrap();
    assert_eq!(raw.get(s, imported, CKA_ALWAYS_SENSITIVE).unwrap(), FALSE);
    assert_eq!(raw.get(s, imported, CKA_NEVER_EXTRACTABLE).unwrap(), FALSE);
    let kek = raw.create_secret(s, CKK_AES, &[9; 16], &[]).unwrap();
    let wrapped = raw
        .wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, imported)
        .unwrap();
    let unwrapped = raw
        .unwrap_key(
            s,
            CKM_AES_KEY_WRAP,
            vec![],
            kek,
            &wrapped,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_AES)),
                (CKA_SENSITIVE, TRUE.to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(raw.get(s, unwrapped, CKA_ALWAYS_SENSITIVE).unwrap(), FALSE);
    let generated = raw
        .generate_key(
            s,
            CKM_AES_KEY_GEN,
            &[(CKA_VALUE_LEN, ul(16)), (CKA_SENSITIVE, TRUE.to_vec())],
        )
        .unwrap();
    assert_eq!(raw.get(s, generated, CKA_ALWAYS_SENSITIVE).unwrap(), TRUE);
}

/// A wrong PIN at C_Login raises CKF_USER_PIN_COUNT_LOW (a wrong PIN
/// since the last right one) until the right PIN is given; the SO's flag
/// likewise.
#[test]
fn a_wrong_pin_shows_in_the_token_flags_until_a_right_one() {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    let flags = |raw: &Raw| raw.token_info(slot).flags;
    assert_eq!(flags(&raw) & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(raw.login(s, CKU_USER, "wrong"), CKR_PIN_INCORRECT);
    assert_ne!(flags(&raw) & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    assert_eq!(flags(&raw) & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(raw.login(s, CKU_SO, "not the SO PIN"), CKR_PIN_INCORRECT);
    assert_ne!(flags(&raw) & CKF_SO_PIN_COUNT_LOW, 0);
    assert_eq!(flags(&raw) & CKF_USER_PIN_COUNT_LOW, 0);
}

/// Objects that may not be changed or destroyed, and a destroyed one.
#[test]
fn objects_that_may_not_change_or_go_refuse_it() {
    let (raw, _dir, s, obj) = protocol_object();
    let fixed = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_DATA)),
                (CKA_MODIFIABLE, FALSE.to_vec()),
                (CKA_DESTROYABLE, FALSE.to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(
        raw.set(s, fixed, &[(CKA_LABEL, b"x".to_vec())]),
        CKR_ACTION_PROHIBITED
    );
    assert_eq!(raw.destroy(s, fixed), CKR_ACTION_PROHIBITED);
    assert_eq!(raw.destroy(s, obj), CKR_OK);
    assert_eq!(raw.destroy(s, obj), CKR_OBJECT_HANDLE_INVALID);
}

#[test]
fn object_visibility_and_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let params = sql_params(dir.path());
    let raw = Raw::with_params(&params);
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.set_pin(s, "", "pw"), CKR_OK);
    assert_eq!(raw.logout(s), CKR_USER_NOT_LOGGED_IN);
    // Logged out with a password set: private objects cannot be made or seen.
    let private = [
        (CKA_CLASS, ul(CKO_DATA)),
        (CKA_TOKEN, TRUE.to_vec()),
        (CKA_PRIVATE, TRUE.to_vec()),
        (CKA_LABEL, b"p".to_vec()),
    ];
    assert_eq!(raw.create(s, &private), Err(CKR_USER_NOT_LOGGED_IN));
    assert_eq!(raw.login(s, CKU_USER, "pw"), CKR_OK);
    let p = raw.create(s, &private).unwrap();
    let session_obj = raw
        .create(
            s,
            &[(CKA_CLASS, ul(CKO_DATA)), (CKA_LABEL, b"session".to_vec())],
        )
        .unwrap();
    assert!(
        session_obj < 0x8000_0000,
        "session objects have their own handles"
    );
    let ro = raw.open(slot, false).unwrap();
    assert_eq!(
        raw.create(ro, &[(CKA_CLASS, ul(CKO_DATA)), (CKA_TOKEN, TRUE.to_vec())]),
        Err(CKR_SESSION_READ_ONLY)
    );
    assert_eq!(raw.destroy(ro, p), CKR_SESSION_READ_ONLY);
    assert_eq!(
        raw.find(ro, &[(CKA_LABEL, b"session".to_vec())]).unwrap(),
        vec![session_obj]
    );
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(raw.get(ro, p, CKA_LABEL), Err(CKR_OBJECT_HANDLE_INVALID));
    assert!(raw
        .find(ro, &[(CKA_LABEL, b"p".to_vec())])
        .unwrap()
        .is_empty());
    // The session object ends with its session.
    assert_eq!(raw.close(s), CKR_OK);
    assert!(raw
        .find(ro, &[(CKA_LABEL, b"session".to_vec())])
        .unwrap()
        .is_empty());

    // Token objects outlive C_Finalize; login ended with it.
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(raw.initialize(Some(&params)), CKR_OK);
    let s = raw.open(slot, false).unwrap();
    assert!(raw
        .find(s, &[(CKA_LABEL, b"p".to_vec())])
        .unwrap()
        .is_empty());
    assert_eq!(raw.login(s, CKU_USER, "pw"), CKR_OK);
    assert_eq!(raw.find(s, &[(CKA_LABEL, b"p".to_vec())]).unwrap(), vec![p]);
    assert_eq!(
        raw.find(
            s,
            &[(CKA_LABEL, b"p".to_vec()), (CKA_TOKEN, FALSE.to_vec())]
        )
        .unwrap(),
        Vec::<CK_OBJECT_HANDLE>::new()
    );

    // C_FindObjects without Init, twice Init.
    let mut n = 0;
    let mut hs = [0; 4];
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(
            (raw.f().C_FindObjects.unwrap())(s, hs.as_mut_ptr(), 4, &mut n),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            (raw.f().C_FindObjectsInit.unwrap())(s, std::ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            (raw.f().C_FindObjectsInit.unwrap())(s, std::ptr::null_mut(), 0),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!((raw.f().C_FindObjectsFinal.unwrap())(s), CKR_OK);
        assert_eq!(
            (raw.f().C_FindObjectsFinal.unwrap())(s),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
}

#[test]
fn read_only_database() {
    let dir = tempfile::tempdir().unwrap();
    drop(Raw::with_params(&sql_params(dir.path())));
    let raw = Raw::with_params(&format!(
        "configdir='sql:{}' flags=readOnly",
        dir.path().display()
    ));
    let slot = raw.slots()[0];
    assert_ne!(raw.token_info(slot).flags & CKF_WRITE_PROTECTED, 0);
    let s = raw.open(slot, true).unwrap();
    let rv = raw.create(s, &[(CKA_CLASS, ul(CKO_DATA)), (CKA_TOKEN, TRUE.to_vec())]);
    assert_eq!(rv, Err(CKR_TOKEN_WRITE_PROTECTED));
    assert_eq!(raw.init_token(slot, "", "x"), CKR_SESSION_EXISTS);
    // No database to open read-only: no token in the slot.
    let empty = tempfile::tempdir().unwrap();
    let missing = Raw::with_params(&format!(
        "configdir='sql:{}' flags=readOnly",
        empty.path().display()
    ));
    assert_eq!(missing.try_token_info(2).err(), Some(CKR_TOKEN_NOT_PRESENT));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// The log every module copy of this test process writes (SOFTOKEN_LOG is
/// read at a copy's first line, so tests running at once share one).
fn log_for_this_process() -> std::path::PathBuf {
    static LOG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = std::env::temp_dir().join(format!("softoken-c_api-{}.log", std::process::id()));
        std::env::set_var("SOFTOKEN_LOG", &log);
        log
    })
    .clone()
}

/// What a slot whose database did not open answers: C_Initialize succeeds
/// (it has no code that could say why), the slot is listed, and the token's
/// calls answer with the fault's code.
fn slot_fault(raw: &Raw) -> (bool, CK_RV, CK_RV) {
    let present = raw.slot_info(2).flags & CKF_TOKEN_PRESENT != 0;
    let token = raw.try_token_info(2).err().unwrap_or(CKR_OK);
    let opened = raw.open(2, false).err().unwrap_or(CKR_OK);
    (present, token, opened)
}

/// A key4.db that is not an NSS database is refused and left as it is:
/// an empty file (before, it silently became a new token with an empty
/// password), another application's SQLite database (before, it got NSS's
/// tables and a password written into it), random bytes, and NSS's own
/// key4.db cut short. The token is there but not recognised
/// (CKR_TOKEN_NOT_RECOGNIZED from C_GetTokenInfo and C_OpenSession), and
/// the log (SOFTOKEN_LOG) names the file and the cause.
#[test]
fn a_key_database_that_is_not_nss_s_is_refused_untouched() {
    let log = log_for_this_process();
    let foreign = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key4.db");
        let made = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import sqlite3; c = sqlite3.connect({:?}); \
                 c.execute('CREATE TABLE notes (body TEXT)'); c.commit()",
                path.display().to_string()
            ))
            .status()
            .unwrap();
        assert!(made.success());
        (dir, path)
    };
    let with_key4 = |bytes: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key4.db");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    };
    let empty = with_key4(b"");
    let random = with_key4(
        &(0..8192u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let nss_key4 = std::fs::read(fixtures().join("sql-pw/key4.db")).unwrap();
    let truncated = with_key4(&nss_key4[..nss_key4.len() / 2]);
    for (dir, path) in [&foreign, &empty, &random, &truncated] {
        let before = std::fs::read(path).unwrap();
        let raw = Raw::with_params(&sql_params(dir.path()));
        assert_eq!(
            slot_fault(&raw),
            (true, CKR_TOKEN_NOT_RECOGNIZED, CKR_TOKEN_NOT_RECOGNIZED),
            "{}",
            path.display()
        );
        assert_eq!(raw.finalize(), CKR_OK);
        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "{} was written",
            path.display()
        );
        assert!(
            !dir.path().join("cert9.db").exists(),
            "cert9.db was made beside it"
        );
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            logged.contains(&path.display().to_string()),
            "the log says: {logged}"
        );
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("not an NSS"), "the log says: {logged}");
}

/// A configdir naming no directory is no token (a disk not mounted), and
/// nothing is made there: only the default location is created (a typo
/// must not become an empty token that hides the user's keys); a file in
/// its place is a token not recognised, left as it is. Each is logged with
/// the directory and the cause. A string whose prefix is no database type
/// we have (a PostgreSQL connection string, a misspelt `sql:`) is bad
/// arguments to C_Initialize, not a directory named after it.
#[test]
fn a_missing_configdir_or_an_unknown_prefix_is_refused_and_nothing_is_made() {
    let top = tempfile::tempdir().unwrap();
    let log = log_for_this_process();
    let missing = top.path().join("typo/softoken");
    let file = top.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let absent = (false, CKR_TOKEN_NOT_PRESENT, CKR_TOKEN_NOT_PRESENT);
    let unrecognised = (true, CKR_TOKEN_NOT_RECOGNIZED, CKR_TOKEN_NOT_RECOGNIZED);
    for (configdir, want, logged) in [
        (
            format!("sql:{}", missing.display()),
            absent,
            "no such directory",
        ),
        (missing.display().to_string(), absent, "no such directory"),
        (
            format!("dbm:{}", missing.display()),
            absent,
            "no such directory",
        ),
        (
            format!("sql:{}", file.display()),
            unrecognised,
            "not a directory",
        ),
    ] {
        let raw = Raw::with_params(&format!("configdir='{configdir}'"));
        assert_eq!(slot_fault(&raw), want, "{configdir}");
        assert!(
            raw.slots().is_empty() != want.0,
            "the slot list with tokens"
        );
        assert_eq!(raw.finalize(), CKR_OK);
        let text = std::fs::read_to_string(&log).unwrap();
        let dir = configdir.split_once(':').map_or(&*configdir, |(_, d)| d);
        assert!(
            text.lines().any(|l| l.contains(dir) && l.contains(logged)),
            "{configdir}: the log says {text}"
        );
    }
    for configdir in [
        "postgres:host=127.0.0.1 dbname=keys".to_owned(),
        format!("sqll:{}", top.path().display()),
    ] {
        let raw = Raw::load();
        let rv = raw.initialize(Some(&format!("configdir='{configdir}'")));
        assert_eq!(rv, CKR_ARGUMENTS_BAD, "{configdir}");
    }
    assert!(
        !top.path().join("typo").exists(),
        "the missing directory was made"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    let cwd = std::env::current_dir().unwrap();
    assert!(!cwd.join("postgres:host=127.0.0.1 dbname=keys").exists());
    assert!(std::fs::read_dir(top.path()).unwrap().count() == 1);
}

/// Another process's C_SetPIN re-encrypts every private value: this
/// process's login is then stale. Reading a private value answers
/// CKR_USER_NOT_LOGGED_IN (not CKR_DEVICE_ERROR, which says the database
/// is damaged) and the token is logged out; a login with the new PIN reads
/// it again.
#[test]
fn a_password_changed_by_another_process_asks_for_a_new_login() {
    let dir = copy_fixture("sql-pw");
    let ours = Raw::with_params(&sql_params(dir.path()));
    let other = Raw::with_params(&sql_params(dir.path()));
    let slot = ours.slots()[0];
    let s = ours.open(slot, true).unwrap();
    assert_eq!(ours.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let key = ours
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &[5; 24],
            &[
                (CKA_TOKEN, TRUE.to_vec()),
                (CKA_SENSITIVE, FALSE.to_vec()),
                (CKA_EXTRACTABLE, TRUE.to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(ours.get(s, key, CKA_VALUE).unwrap(), [5; 24]);

    let t = other.open(other.slots()[0], true).unwrap();
    assert_eq!(other.login(t, CKU_USER, "fixture-pw"), CKR_OK);
    assert_eq!(other.set_pin(t, "fixture-pw", "changed-elsewhere"), CKR_OK);

    assert_eq!(ours.get(s, key, CKA_VALUE), Err(CKR_USER_NOT_LOGGED_IN));
    let info = ours.session_info(s);
    assert_eq!(info.state, CKS_RW_PUBLIC_SESSION);
    assert_eq!(ours.login(s, CKU_USER, "fixture-pw"), CKR_PIN_INCORRECT);
    assert_eq!(ours.login(s, CKU_USER, "changed-elsewhere"), CKR_OK);
    assert_eq!(ours.get(s, key, CKA_VALUE).unwrap(), [5; 24]);
}

/// A read that finds the database busy (another process holds its lock
/// longer than one busy timeout) is tried again, as writes are, instead of
/// answering CKR_DEVICE_ERROR, which says the database is damaged.
#[test]
fn a_read_of_a_busy_database_waits_for_it() {
    let (raw, dir) = fresh();
    let s = raw.open(raw.slots()[0], true).unwrap();
    let key = raw
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &[1; 16],
            &[(CKA_TOKEN, TRUE.to_vec())],
        )
        .unwrap();
    // Another process takes key4.db's exclusive lock for 2.5 seconds.
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect({:?}, isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(2.5)\n\
             c.execute('COMMIT')",
            dir.path().join("key4.db").display().to_string()
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let found = raw.find(
        s,
        &[(CKA_CLASS, ul(CKO_SECRET_KEY)), (CKA_TOKEN, TRUE.to_vec())],
    );
    assert!(holder.wait().unwrap().success());
    assert_eq!(found, Ok(vec![key]));
}

/// CKA_SENSITIVE and CKA_EXTRACTABLE are not authenticated in NSS's
/// format: a key's flags edited on disk (sensitive to FALSE, unextractable
/// to TRUE) must not reveal it. Read nor wrapped, and `check` reports the
/// edit; a key written non-sensitive here still reads.
#[test]
fn flags_edited_on_disk_never_reveal_a_key() {
    let (raw, dir) = fresh();
    let s = raw.open(raw.slots()[0], true).unwrap();
    let token = |label: &str, sensitive: bool| {
        raw.create_secret(
            s,
            CKK_AES,
            &[9; 16],
            &[
                (CKA_TOKEN, TRUE.to_vec()),
                (CKA_LABEL, label.as_bytes().to_vec()),
                (CKA_SENSITIVE, if sensitive { TRUE } else { FALSE }.to_vec()),
                (
                    CKA_EXTRACTABLE,
                    if sensitive { FALSE } else { TRUE }.to_vec(),
                ),
            ],
        )
        .unwrap()
    };
    let locked = token("locked", true);
    let open = token("open", false);
    let kek = raw
        .create_secret(s, CKK_AES, &[3; 16], &[(CKA_TOKEN, TRUE.to_vec())])
        .unwrap();
    assert_eq!(raw.get(s, open, CKA_VALUE).unwrap(), [9; 16]);
    assert_eq!(raw.get(s, locked, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    // The record of the flags follows a password change.
    assert_eq!(raw.set_pin(s, "", "new-pin"), CKR_OK);
    assert_eq!(raw.login(s, CKU_USER, "new-pin"), CKR_OK);
    assert_eq!(raw.get(s, open, CKA_VALUE).unwrap(), [9; 16]);
    drop(raw);

    // CKA_SENSITIVE (0x103) to FALSE, CKA_EXTRACTABLE (0x162) to TRUE.
    let edited = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect({:?}); \
             n = c.execute(\"UPDATE nssPrivate SET a103 = x'00', a162 = x'01' \
             WHERE a3 = CAST('locked' AS BLOB)\").rowcount; c.commit(); print(n)",
            dir.path().join("key4.db").display().to_string()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&edited.stdout).trim(), "1");

    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "new-pin"), CKR_OK);
    let locked = raw.find(s, &[(CKA_LABEL, b"locked".to_vec())]).unwrap()[0];
    assert_eq!(raw.get(s, locked, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    assert_eq!(
        raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, locked),
        Err(CKR_KEY_UNEXTRACTABLE)
    );
    // Nor through a copy, which would otherwise make the edit its own.
    let mut copy = 0;
    // SAFETY: no template, a valid out pointer.
    let rv =
        unsafe { (raw.f().C_CopyObject.unwrap())(s, locked, std::ptr::null_mut(), 0, &mut copy) };
    assert_eq!(rv, CKR_OK);
    assert_eq!(raw.get(s, copy, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    let open = raw.find(s, &[(CKA_LABEL, b"open".to_vec())]).unwrap()[0];
    assert_eq!(raw.get(s, open, CKA_VALUE).unwrap(), [9; 16]);
    drop(raw);

    let token = open_token(dir.path());
    token.login(b"new-pin").unwrap();
    let report = token.check(&mut |_, _| {}).unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].1, CKA_SENSITIVE);
}

#[test]
fn digests_keep_the_operation_on_length_queries() {
    let (raw, _dir) = fresh();
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    let f = raw.f();
    let mut mech = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let data = b"abc".to_vec();
    let expected = sha256_hex(&data);
    // SAFETY: valid pointers and lengths throughout.
    unsafe {
        let mut len = 0;
        assert_eq!(
            (f.C_Digest.unwrap())(
                s,
                data.as_ptr() as *mut _,
                3,
                std::ptr::null_mut(),
                &mut len
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!((f.C_DigestInit.unwrap())(s, &mut mech), CKR_OK);
        assert_eq!(
            (f.C_DigestInit.unwrap())(s, &mut mech),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            (f.C_Digest.unwrap())(
                s,
                data.as_ptr() as *mut _,
                3,
                std::ptr::null_mut(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(len, 32);
        let mut out = [0u8; 32];
        let mut short = 31;
        assert_eq!(
            (f.C_Digest.unwrap())(s, data.as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut short),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(short, 32);
        assert_eq!(
            (f.C_Digest.unwrap())(s, data.as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(hex::encode(out), expected);
        assert_eq!(
            (f.C_Digest.unwrap())(s, data.as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );

        // Multi-part, in pieces.
        assert_eq!((f.C_DigestInit.unwrap())(s, &mut mech), CKR_OK);
        assert_eq!(
            (f.C_DigestUpdate.unwrap())(s, b"a".as_ptr() as *mut _, 1),
            CKR_OK
        );
        assert_eq!(
            (f.C_Digest.unwrap())(s, data.as_ptr() as *mut _, 3, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            (f.C_DigestUpdate.unwrap())(s, b"bc".as_ptr() as *mut _, 2),
            CKR_OK
        );
        assert_eq!(
            (f.C_DigestFinal.unwrap())(s, std::ptr::null_mut(), &mut len),
            CKR_OK
        );
        assert_eq!(
            (f.C_DigestFinal.unwrap())(s, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(hex::encode(out), expected);

        let mut bad = CK_MECHANISM {
            mechanism: CKM_MD2,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            (f.C_DigestInit.unwrap())(s, &mut bad),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(
            (f.C_DigestInit.unwrap())(s, std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );

        // C_DigestKey digests a secret key's value inside the token.
        let key = raw
            .create(
                s,
                &[
                    (CKA_CLASS, ul(CKO_SECRET_KEY)),
                    (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                    (CKA_VALUE, b"abc".to_vec()),
                ],
            )
            .unwrap();
        assert_eq!((f.C_DigestInit.unwrap())(s, &mut mech), CKR_OK);
        assert_eq!((f.C_DigestKey.unwrap())(s, key), CKR_OK);
        assert_eq!(
            (f.C_DigestFinal.unwrap())(s, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(hex::encode(out), expected);
        assert_eq!((f.C_DigestInit.unwrap())(s, &mut mech), CKR_OK);
        assert_eq!((f.C_DigestKey.unwrap())(s, 12345), CKR_KEY_HANDLE_INVALID);
    }
}

#[test]
fn random_and_operations_not_started() {
    let (raw, _dir) = fresh();
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    let f = raw.f();
    let mut buf = [0u8; 48];
    let mut mech = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    // SAFETY: valid pointers and lengths.
    unsafe {
        assert_eq!(
            (f.C_GenerateRandom.unwrap())(s, buf.as_mut_ptr(), 48),
            CKR_OK
        );
        assert_ne!(buf, [0u8; 48]);
        assert_eq!(
            (f.C_GenerateRandom.unwrap())(s, std::ptr::null_mut(), 4),
            CKR_ARGUMENTS_BAD
        );
        // A seed is taken (and mixed into what follows, as NSS and
        // SoftHSMv2 take one); random output goes on.
        assert_eq!((f.C_SeedRandom.unwrap())(s, buf.as_mut_ptr(), 4), CKR_OK);
        let mut after = [0u8; 48];
        assert_eq!(
            (f.C_GenerateRandom.unwrap())(s, after.as_mut_ptr(), 48),
            CKR_OK
        );
        assert_ne!(after, buf);
        assert_eq!(
            (f.C_SeedRandom.unwrap())(s, std::ptr::null_mut(), 4),
            CKR_ARGUMENTS_BAD
        );
        // A mechanism the token offers, with no such key; one it does not offer.
        assert_eq!(
            (f.C_SignInit.unwrap())(s, &mut mech, 1),
            CKR_KEY_HANDLE_INVALID
        );
        let mut ripemd = CK_MECHANISM {
            mechanism: CKM_RIPEMD160_HMAC,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            (f.C_SignInit.unwrap())(s, &mut ripemd, 1),
            CKR_MECHANISM_INVALID
        );
        let mut len = 0;
        assert_eq!(
            (f.C_Sign.unwrap())(s, buf.as_mut_ptr(), 4, std::ptr::null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            (f.C_GetFunctionStatus.unwrap())(s),
            CKR_FUNCTION_NOT_PARALLEL
        );
        let mut slot_out = 0;
        assert_eq!(
            (f.C_WaitForSlotEvent.unwrap())(CKF_DONT_BLOCK, &mut slot_out, std::ptr::null_mut()),
            CKR_NO_EVENT
        );
    }
}

#[test]
fn extra_tokens_and_descriptions() {
    let main = tempfile::tempdir().unwrap();
    let extra = tempfile::tempdir().unwrap();
    let params = format!(
        "configdir='sql:{}' tokenDescription='Main DB' tokens=<0x4=[configdir='sql:{}' tokenDescription='Second' slotDescription='Second slot']>",
        main.path().display(),
        extra.path().display()
    );
    let raw = Raw::with_params(&params);
    let slots = raw.slots();
    assert_eq!(slots, vec![2, 4], "the main database is the first slot");
    assert_eq!(&raw.token_info(2).label[..7], b"Main DB");
    assert_eq!(&raw.token_info(4).label[..6], b"Second");
    // Each slot is its own database.
    let s4 = raw.open(4, true).unwrap();
    raw.create(
        s4,
        &[
            (CKA_CLASS, ul(CKO_DATA)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_LABEL, b"in 4".to_vec()),
        ],
    )
    .unwrap();
    let s2 = raw.open(2, false).unwrap();
    assert!(raw
        .find(s2, &[(CKA_LABEL, b"in 4".to_vec())])
        .unwrap()
        .is_empty());
    assert_eq!(
        raw.find(s4, &[(CKA_LABEL, b"in 4".to_vec())])
            .unwrap()
            .len(),
        1
    );
    assert!(extra.path().join("key4.db").exists());
}

#[test]
fn copy_object_rules() {
    let (raw, _dir) = fresh();
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    let original = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_DATA)),
                (CKA_LABEL, b"orig".to_vec()),
                (CKA_VALUE, b"v".to_vec()),
            ],
        )
        .unwrap();
    let mut copy = 0;
    let mut tmpl = [CK_ATTRIBUTE {
        type_: CKA_TOKEN,
        pValue: TRUE.as_ptr() as *mut _,
        ulValueLen: 1,
    }];
    // SAFETY: valid template and out pointer.
    let rv =
        unsafe { (raw.f().C_CopyObject.unwrap())(s, original, tmpl.as_mut_ptr(), 1, &mut copy) };
    assert_eq!(rv, CKR_OK);
    assert!(copy >= 0x8000_0000, "the copy is a token object");
    assert_eq!(raw.get(s, copy, CKA_VALUE).unwrap(), b"v");
    assert_eq!(raw.get(s, copy, CKA_LABEL).unwrap(), b"orig");
    let key = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                (CKA_VALUE, vec![3; 16]),
                (CKA_COPYABLE, FALSE.to_vec()),
            ],
        )
        .unwrap();
    // SAFETY: as above, with an empty template.
    let rv = unsafe { (raw.f().C_CopyObject.unwrap())(s, key, std::ptr::null_mut(), 0, &mut copy) };
    assert_eq!(rv, CKR_ACTION_PROHIBITED);
}

/// Every digest on NIST's "abc" example (and SHA-256 on the empty input).
#[test]
fn digest_known_answers() {
    let (raw, _dir) = fresh();
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    let f = raw.f();
    for (mech, input, want) in [
        // RFC 1321's test suite.
        (CKM_MD5, &b"abc"[..], "900150983cd24fb0d6963f7d28e17f72"),
        (CKM_MD5, b"", "d41d8cd98f00b204e9800998ecf8427e"),
        (CKM_SHA_1, b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (CKM_SHA224, b"abc", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
        (CKM_SHA256, b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (CKM_SHA256, b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (CKM_SHA384, b"abc", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
        (
            CKM_SHA512,
            b"abc",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
        (CKM_SHA512_224, b"abc", "4634270f707b6a54daae7530460842e20e37ed265ceee9a43e8924aa"),
        (CKM_SHA512_256, b"abc", "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"),
        (CKM_SHA3_224, b"abc", "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf"),
        (CKM_SHA3_256, b"abc", "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"),
        (CKM_SHA3_384, b"abc", "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b298d88cea927ac7f539f1edf228376d25"),
        (
            CKM_SHA3_512,
            b"abc",
            "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
        ),
    ] {
        let mut m = CK_MECHANISM { mechanism: mech, pParameter: std::ptr::null_mut(), ulParameterLen: 0 };
        let mut out = [0u8; 64];
        let mut len = 64;
        // SAFETY: valid mechanism, buffers and lengths.
        unsafe {
            assert_eq!((f.C_DigestInit.unwrap())(s, &mut m), CKR_OK);
            assert_eq!(
                (f.C_Digest.unwrap())(s, input.as_ptr() as *mut _, input.len() as CK_ULONG, out.as_mut_ptr(), &mut len),
                CKR_OK
            );
        }
        assert_eq!(hex::encode(&out[..len as usize]), want, "mechanism {mech:#x}");
    }
}

/// Each database its own serial number, the same at every open; the label
/// is softoken's own (never NSS's built-in token's), C_InitToken's once
/// given, and the parameters' above both.
#[test]
fn token_identity() {
    let serial = |params: &str| {
        let raw = Raw::with_params(params);
        let info = raw.token_info(raw.slots()[0]);
        (
            info.serialNumber,
            String::from_utf8_lossy(&info.label).trim_end().to_owned(),
        )
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, label) = serial(&sql_params(a.path()));
    assert_eq!(label, "softoken");
    assert_eq!(serial(&sql_params(a.path())).0, first);
    assert_ne!(serial(&sql_params(b.path())).0, first);
    let raw = Raw::with_params(&sql_params(a.path()));
    assert_eq!(raw.init_token(raw.slots()[0], "so", "my keys"), CKR_OK);
    assert_eq!(serial(&sql_params(a.path())), (first, "my keys".to_owned()));
    let named = format!("{} tokenDescription='Work'", sql_params(a.path()));
    assert_eq!(serial(&named).1, "Work");
}
