//! Inputs a hostile or merely unusual caller sends through the C function
//! table, and the answers the specification allows for them. Each case runs
//! in a child process of this test binary against the module cargo built
//! (the debug build under `cargo test`), so a crash or an abort of the
//! module fails that case by name instead of taking the harness down.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{mechanism, oaep_param, param_bytes, ul, Direction, Raw, FALSE, TRUE};
use softoken_tests::*;

/// Set in the child that runs one case's body.
const CHILD: &str = "SOFTOKEN_CALLER_FAULTS_CHILD";

/// Runs `body` in a child process (this binary, filtered to `name`) and
/// fails unless the child exits cleanly: a signal or an abort in the
/// module is a failure of the case, with the child's output.
fn survives(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .expect("run the case in a child");
    assert!(
        out.status.success(),
        "{name} did not survive: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CK_PKCS5_PBKD2_PARAMS2 (HMAC-SHA256) as bytes, with the last word given:
/// a length in this layout, a pointer to the length in the older one.
fn pbkdf2_param(salt: &[u8], iterations: CK_ULONG, password: &[u8], last: CK_ULONG) -> Vec<u8> {
    let p = CK_PKCS5_PBKD2_PARAMS2 {
        saltSource: CKZ_SALT_SPECIFIED,
        pSaltSourceData: salt.as_ptr() as *mut _,
        ulSaltSourceDataLen: salt.len() as CK_ULONG,
        iterations,
        prf: CKP_PKCS5_PBKD2_HMAC_SHA256,
        pPrfData: std::ptr::null_mut(),
        ulPrfDataLen: 0,
        pPassword: password.as_ptr() as *mut u8,
        ulPasswordLen: last,
    };
    param_bytes(&p)
}

/// C_GenerateKey(CKM_PKCS5_PBKD2) into a readable 32-byte secret.
fn pbkdf2(raw: &Raw, s: CK_SESSION_HANDLE, param: Vec<u8>) -> Result<Vec<u8>, CK_RV> {
    let template = [
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_VALUE_LEN, ul(32)),
    ];
    let h = raw.generate_key_with(s, CKM_PKCS5_PBKD2, param, &template)?;
    Ok(raw.get(s, h, CKA_VALUE).unwrap())
}

fn pbkdf2_expected(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).unwrap(),
        salt,
        password,
        &mut out,
    );
    out
}

/// A long passphrase in CK_PKCS5_PBKD2_PARAMS2 derives what PBKDF2 gives;
/// the older layout (NSS 3.87's), whose last word points at the length,
/// still works; a word that is neither a length nor readable memory is
/// refused, never dereferenced.
#[test]
fn pbkdf2_long_passwords_and_the_older_layout() {
    survives("pbkdf2_long_passwords_and_the_older_layout", || {
        let (raw, s, _dir) = new_token_session();
        let salt = b"a salt of sixteen";
        for len in [2001usize, 4096, 65535] {
            let password: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let param = pbkdf2_param(salt, 3, &password, len as CK_ULONG);
            assert_eq!(
                pbkdf2(&raw, s, param).as_deref(),
                Ok(&pbkdf2_expected(&password, salt, 3)[..]),
                "password of {len} bytes"
            );
        }
        // The older CK_PKCS5_PBKD2_PARAMS: the last word points at the length.
        let password = vec![b'p'; 4096];
        let len = password.len() as CK_ULONG;
        let older = pbkdf2_param(salt, 3, &password, &len as *const CK_ULONG as CK_ULONG);
        assert_eq!(
            pbkdf2(&raw, s, older).as_deref(),
            Ok(&pbkdf2_expected(&password, salt, 3)[..])
        );
        // Pointing at a length past the longest password.
        let too_long: CK_ULONG = 65536;
        let older = pbkdf2_param(salt, 3, &password, &too_long as *const CK_ULONG as CK_ULONG);
        assert_eq!(pbkdf2(&raw, s, older), Err(CKR_MECHANISM_PARAM_INVALID));
        // Words that are not readable memory: a page mapped PROT_NONE, and
        // an address in no mapping.
        // SAFETY: maps one anonymous page, unmapped below.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        for word in [page as CK_ULONG, 0x10000, 0x7ff0_dead_0000, CK_ULONG::MAX] {
            assert_eq!(
                pbkdf2(&raw, s, pbkdf2_param(salt, 3, b"password", word)),
                Err(CKR_MECHANISM_PARAM_INVALID),
                "last word {word:#x}"
            );
        }
        // SAFETY: the page mapped above.
        unsafe { libc::munmap(page, 4096) };
    });
}

fn p256_pair(raw: &Raw, s: CK_SESSION_HANDLE) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let p256 = P256_PARAMS.to_vec();
    raw.generate_key_pair(
        s,
        CKM_EC_KEY_PAIR_GEN,
        &[(CKA_EC_PARAMS, p256)],
        &[(CKA_SIGN, TRUE.to_vec())],
    )
    .unwrap()
}

fn rsa_pair(raw: &Raw, s: CK_SESSION_HANDLE) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    raw.generate_key_pair(
        s,
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        &[
            (CKA_MODULUS_BITS, ul(2048)),
            (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
        ],
        &[(CKA_SIGN, TRUE.to_vec()), (CKA_DECRYPT, TRUE.to_vec())],
    )
    .unwrap()
}

/// OAEP's encoding parameter source must be CKZ_DATA_SPECIFIED.
#[test]
fn oaep_source_other_than_data_specified_is_refused() {
    survives("oaep_source_other_than_data_specified_is_refused", || {
        let (raw, s, _dir) = new_token_session();
        let (public, private) = rsa_pair(&raw, s);
        let mut param = oaep_param(CKM_SHA256, CKG_MGF1_SHA256, b"");
        // source is the third word of CK_RSA_PKCS_OAEP_PARAMS.
        let w = std::mem::size_of::<CK_ULONG>();
        param[2 * w..3 * w].copy_from_slice(&ul(0));
        for (dir, key) in [(Direction::Encrypt, public), (Direction::Decrypt, private)] {
            assert_eq!(
                raw.crypt(s, dir, CKM_RSA_PKCS_OAEP, param.clone(), key, b"m"),
                Err(CKR_MECHANISM_PARAM_INVALID)
            );
        }
        let good = oaep_param(CKM_SHA256, CKG_MGF1_SHA256, b"");
        let c = raw
            .crypt(
                s,
                Direction::Encrypt,
                CKM_RSA_PKCS_OAEP,
                good.clone(),
                public,
                b"m",
            )
            .unwrap();
        assert_eq!(
            raw.crypt(s, Direction::Decrypt, CKM_RSA_PKCS_OAEP, good, private, &c),
            Ok(b"m".to_vec())
        );
    });
}

/// Which Update function a case calls.
#[derive(Clone, Copy, Debug)]
enum Update {
    Sign,
    Verify,
    Encrypt,
    Decrypt,
}

/// Init, then one Update: a single-part mechanism answers
/// CKR_OPERATION_NOT_INITIALIZED and ends the operation, so the single-part
/// call that follows finds none; a multi-part one takes the part.
fn update_after_init(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    which: Update,
    ty: CK_MECHANISM_TYPE,
    mut param: Vec<u8>,
    key: CK_OBJECT_HANDLE,
) -> (CK_RV, CK_RV) {
    let f = raw.f();
    let mut m = mechanism(ty, &mut param);
    let mut part = *b"sixteen byte msg";
    let (p, n) = (part.as_mut_ptr(), part.len() as CK_ULONG);
    let mut out = [0u8; 1024];
    let mut out_len = out.len() as CK_ULONG;
    // SAFETY: a valid mechanism, buffers and lengths.
    unsafe {
        let init = match which {
            Update::Sign => (f.C_SignInit.unwrap())(s, &mut m, key),
            Update::Verify => (f.C_VerifyInit.unwrap())(s, &mut m, key),
            Update::Encrypt => (f.C_EncryptInit.unwrap())(s, &mut m, key),
            Update::Decrypt => (f.C_DecryptInit.unwrap())(s, &mut m, key),
        };
        assert_eq!(init, CKR_OK, "{which:?} init of {ty:#x}");
        let update = match which {
            Update::Sign => (f.C_SignUpdate.unwrap())(s, p, n),
            Update::Verify => (f.C_VerifyUpdate.unwrap())(s, p, n),
            Update::Encrypt => {
                (f.C_EncryptUpdate.unwrap())(s, p, n, out.as_mut_ptr(), &mut out_len)
            }
            Update::Decrypt => {
                (f.C_DecryptUpdate.unwrap())(s, p, n, out.as_mut_ptr(), &mut out_len)
            }
        };
        out_len = out.len() as CK_ULONG;
        let after = match which {
            Update::Sign => (f.C_Sign.unwrap())(s, p, n, out.as_mut_ptr(), &mut out_len),
            Update::Verify => (f.C_Verify.unwrap())(s, p, n, out.as_mut_ptr(), 64),
            Update::Encrypt => (f.C_Encrypt.unwrap())(s, p, n, out.as_mut_ptr(), &mut out_len),
            Update::Decrypt => (f.C_Decrypt.unwrap())(s, p, n, out.as_mut_ptr(), &mut out_len),
        };
        // End whatever is left, for the next case on this session.
        out_len = out.len() as CK_ULONG;
        match which {
            Update::Sign => (f.C_SignFinal.unwrap())(s, out.as_mut_ptr(), &mut out_len),
            Update::Verify => (f.C_VerifyFinal.unwrap())(s, out.as_mut_ptr(), 1),
            Update::Encrypt => (f.C_EncryptFinal.unwrap())(s, out.as_mut_ptr(), &mut out_len),
            Update::Decrypt => (f.C_DecryptFinal.unwrap())(s, out.as_mut_ptr(), &mut out_len),
        };
        (update, after)
    }
}

/// CK_RSA_PKCS_PSS_PARAMS for SHA-256, as bytes.
fn pss_param() -> Vec<u8> {
    [ul(CKM_SHA256), ul(CKG_MGF1_SHA256), ul(32)].concat()
}

/// The mechanisms the specification's table marks single-part refuse the
/// Update calls and end the operation; their multi-part kin take parts.
#[test]
fn single_part_mechanisms_refuse_updates() {
    survives("single_part_mechanisms_refuse_updates", || {
        let (raw, s, _dir) = new_token_session();
        let (ec_public, ec_private) = p256_pair(&raw, s);
        let (ed_public, ed_private) = raw
            .generate_key_pair(
                s,
                CKM_EC_EDWARDS_KEY_PAIR_GEN,
                &[(CKA_EC_PARAMS, vec![0x06, 0x03, 0x2b, 0x65, 0x70])],
                &[(CKA_SIGN, TRUE.to_vec())],
            )
            .unwrap();
        let (rsa_public, rsa_private) = rsa_pair(&raw, s);
        let aes = raw
            .generate_key(
                s,
                CKM_AES_KEY_GEN,
                &[
                    (CKA_VALUE_LEN, ul(16)),
                    (CKA_ENCRYPT, TRUE.to_vec()),
                    (CKA_DECRYPT, TRUE.to_vec()),
                ],
            )
            .unwrap();
        let oaep = oaep_param(CKM_SHA256, CKG_MGF1_SHA256, b"");
        let single: Vec<(Update, CK_MECHANISM_TYPE, Vec<u8>, CK_OBJECT_HANDLE)> = vec![
            (Update::Sign, CKM_ECDSA, vec![], ec_private),
            (Update::Verify, CKM_ECDSA, vec![], ec_public),
            (Update::Sign, CKM_EDDSA, vec![], ed_private),
            (Update::Verify, CKM_EDDSA, vec![], ed_public),
            (Update::Sign, CKM_RSA_PKCS, vec![], rsa_private),
            (Update::Verify, CKM_RSA_PKCS, vec![], rsa_public),
            (Update::Sign, CKM_RSA_X_509, vec![], rsa_private),
            (Update::Verify, CKM_RSA_X_509, vec![], rsa_public),
            (Update::Sign, CKM_RSA_PKCS_PSS, pss_param(), rsa_private),
            (Update::Verify, CKM_RSA_PKCS_PSS, pss_param(), rsa_public),
            (Update::Encrypt, CKM_RSA_PKCS, vec![], rsa_public),
            (Update::Decrypt, CKM_RSA_PKCS, vec![], rsa_private),
            (Update::Encrypt, CKM_RSA_X_509, vec![], rsa_public),
            (Update::Encrypt, CKM_RSA_PKCS_OAEP, oaep.clone(), rsa_public),
            (Update::Decrypt, CKM_RSA_PKCS_OAEP, oaep, rsa_private),
            (Update::Encrypt, CKM_AES_KEY_WRAP, vec![], aes),
            (Update::Decrypt, CKM_AES_KEY_WRAP, vec![], aes),
            (Update::Encrypt, CKM_AES_KEY_WRAP_KWP, vec![], aes),
        ];
        for (which, ty, param, key) in single {
            assert_eq!(
                update_after_init(&raw, s, which, ty, param, key),
                (CKR_OPERATION_NOT_INITIALIZED, CKR_OPERATION_NOT_INITIALIZED),
                "{which:?} update of {ty:#x}"
            );
        }
        // Multi-part: the update is taken, and the single-part call is then
        // refused as the specification says (the operation goes on).
        for (which, ty, key) in [
            (Update::Sign, CKM_ECDSA_SHA256, ec_private),
            (Update::Sign, CKM_SHA256_RSA_PKCS, rsa_private),
            (Update::Encrypt, CKM_AES_ECB, aes),
        ] {
            assert_eq!(
                update_after_init(&raw, s, which, ty, vec![], key),
                (CKR_OK, CKR_OPERATION_ACTIVE),
                "{which:?} update of {ty:#x}"
            );
        }
    });
}

/// In the message API, a further part of a message is refused for a
/// single-part mechanism and ends that message; a one-part message signs.
#[test]
fn single_part_mechanisms_refuse_message_parts() {
    survives("single_part_mechanisms_refuse_message_parts", || {
        let (raw, s, _dir) = new_token_session();
        let (_, private) = p256_pair(&raw, s);
        let f = raw.f30();
        let mut m = mechanism(CKM_ECDSA, &mut []);
        let mut digest = [7u8; 32];
        let mut sig = [0u8; 64];
        let mut sig_len = sig.len() as CK_ULONG;
        let none = std::ptr::null_mut();
        // SAFETY: a valid mechanism, buffers and lengths.
        unsafe {
            assert_eq!((f.C_MessageSignInit.unwrap())(s, &mut m, private), CKR_OK);
            assert_eq!((f.C_SignMessageBegin.unwrap())(s, none, 0), CKR_OK);
            let next = f.C_SignMessageNext.unwrap();
            let (d, n) = (digest.as_mut_ptr(), digest.len() as CK_ULONG);
            assert_eq!(
                next(s, none, 0, d, n, std::ptr::null_mut(), std::ptr::null_mut()),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!(
                next(s, none, 0, d, n, sig.as_mut_ptr(), &mut sig_len),
                CKR_OPERATION_NOT_INITIALIZED
            );
            assert_eq!((f.C_SignMessageBegin.unwrap())(s, none, 0), CKR_OK);
            assert_eq!(
                next(s, none, 0, d, n, sig.as_mut_ptr(), &mut sig_len),
                CKR_OK
            );
            assert_eq!(sig_len, 64);
            assert_eq!((f.C_MessageSignFinal.unwrap())(s), CKR_OK);
        }
    });
}

/// An AES key wrap blob of a length the mechanism never produces is
/// CKR_WRAPPED_KEY_LEN_RANGE; one of a possible length that fails the
/// integrity check is CKR_WRAPPED_KEY_INVALID.
#[test]
fn aes_key_wrap_blob_lengths() {
    survives("aes_key_wrap_blob_lengths", || {
        let (raw, s, _dir) = new_token_session();
        let kek = raw
            .generate_key(
                s,
                CKM_AES_KEY_GEN,
                &[(CKA_VALUE_LEN, ul(16)), (CKA_UNWRAP, TRUE.to_vec())],
            )
            .unwrap();
        let target = [(CKA_CLASS, ul(CKO_SECRET_KEY)), (CKA_KEY_TYPE, ul(CKK_AES))];
        // RFC 3394 wraps at least two 8-byte blocks and adds one; RFC 5649
        // adds one block to at least one.
        for (ty, impossible) in [
            (CKM_AES_KEY_WRAP, &[0usize, 7, 8, 16, 25, 31][..]),
            (CKM_AES_KEY_WRAP_KWP, &[0, 7, 8, 15, 17][..]),
            (CKM_AES_KEY_WRAP_PAD, &[7, 9][..]),
        ] {
            for &len in impossible {
                assert_eq!(
                    raw.unwrap_key(s, ty, vec![], kek, &vec![0x5a; len], &target),
                    Err(CKR_WRAPPED_KEY_LEN_RANGE),
                    "{ty:#x} blob of {len} bytes"
                );
            }
        }
        assert_eq!(
            raw.unwrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, &[0x5a; 24], &target),
            Err(CKR_WRAPPED_KEY_INVALID)
        );
        assert_eq!(
            raw.unwrap_key(s, CKM_AES_KEY_WRAP_KWP, vec![], kek, &[0x5a; 16], &target),
            Err(CKR_WRAPPED_KEY_INVALID)
        );
    });
}

/// C_GetInterface with nowhere to put the interface is CKR_ARGUMENTS_BAD.
#[test]
fn get_interface_without_an_out_pointer() {
    survives("get_interface_without_an_out_pointer", || {
        let raw = Raw::load();
        let mut name = *b"PKCS 11\0";
        // SAFETY: a valid name; the out pointer is null on purpose.
        let rv = unsafe {
            raw.get_interface(
                name.as_mut_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rv, CKR_ARGUMENTS_BAD);
        // SAFETY: as above, without a name.
        let rv = unsafe {
            raw.get_interface(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rv, CKR_ARGUMENTS_BAD);
        let mut found: CK_INTERFACE_PTR = std::ptr::null_mut();
        // SAFETY: with an out pointer, as a client calls it.
        let rv =
            unsafe { raw.get_interface(name.as_mut_ptr(), std::ptr::null_mut(), &mut found, 0) };
        assert_eq!(rv, CKR_OK);
        assert!(!found.is_null());
    });
}

/// A word that cannot be a pointer (inside the first pages, or misaligned
/// for its type) where the API takes one is CKR_ARGUMENTS_BAD, never read.
#[test]
fn values_that_cannot_be_pointers() {
    survives("values_that_cannot_be_pointers", || {
        let raw = Raw::load();
        let f = raw.f();
        // SAFETY: the bad pointers are refused before use, which is the test.
        unsafe {
            assert_eq!(
                (f.C_Initialize.unwrap())(std::ptr::without_provenance_mut(1)),
                CKR_ARGUMENTS_BAD
            );
            let mut args = CK_C_INITIALIZE_ARGS {
                CreateMutex: None,
                DestroyMutex: None,
                LockMutex: None,
                UnlockMutex: None,
                flags: CKF_OS_LOCKING_OK,
                pReserved: std::ptr::without_provenance_mut(1),
            };
            assert_eq!(
                (f.C_Initialize.unwrap())(&mut args as *mut _ as *mut _),
                CKR_ARGUMENTS_BAD
            );
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(raw.initialize(Some(&sql_params(dir.path()))), CKR_OK);
            assert_eq!(
                (f.C_GetSlotList.unwrap())(
                    0,
                    std::ptr::null_mut(),
                    std::ptr::without_provenance_mut(0x10)
                ),
                CKR_ARGUMENTS_BAD
            );
            let mut words = [0 as CK_ULONG; 2];
            let misaligned = (words.as_mut_ptr() as *mut u8).add(1) as *mut CK_ULONG;
            assert_eq!(
                (f.C_GetSlotList.unwrap())(0, std::ptr::null_mut(), misaligned),
                CKR_ARGUMENTS_BAD
            );
            let slot = raw.slots()[0];
            let mut session = 0;
            assert_eq!(
                (f.C_OpenSession.unwrap())(
                    slot,
                    CKF_SERIAL_SESSION,
                    std::ptr::null_mut(),
                    None,
                    &mut session
                ),
                CKR_OK
            );
            assert_eq!(
                (f.C_SignInit.unwrap())(session, std::ptr::without_provenance_mut(8), 1),
                CKR_ARGUMENTS_BAD
            );
            let mut m = CK_MECHANISM {
                mechanism: CKM_SHA256_HMAC,
                pParameter: std::ptr::without_provenance_mut(0x20),
                ulParameterLen: 4,
            };
            assert_eq!(
                (f.C_SignInit.unwrap())(session, &mut m, 1),
                CKR_MECHANISM_PARAM_INVALID
            );
            assert_eq!(raw.finalize(), CKR_OK);
        }
    });
}

/// A PIN that cannot be right (not UTF-8, or longer than any PIN) is a
/// wrong PIN where one is checked (C_Login, C_SetPIN's old PIN,
/// C_InitToken's SO PIN: their lists have no CKR_PIN_INVALID or
/// CKR_PIN_LEN_RANGE), and an invalid one where one is set. Found by the
/// c_api_calls fuzz target.
#[test]
fn pins_that_cannot_be_right_are_incorrect_where_checked() {
    let (raw, s, _dir) = new_token_session();
    let long = "p".repeat(501);
    // SAFETY: PIN buffers of the lengths given.
    let login = |pin: &[u8]| unsafe {
        (raw.f().C_Login.unwrap())(s, CKU_USER, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG)
    };
    assert_eq!(login(&[0xff, 0x00]), CKR_PIN_INCORRECT);
    assert_eq!(login(long.as_bytes()), CKR_PIN_INCORRECT);
    assert_eq!(raw.set_pin(s, &long, "new"), CKR_PIN_INCORRECT);
    assert_eq!(raw.set_pin(s, "", &long), CKR_PIN_LEN_RANGE);
    assert_eq!(raw.close(s), CKR_OK);
    assert_eq!(
        raw.init_token(raw.slots()[0], &long, "x"),
        CKR_PIN_INCORRECT
    );
}

/// A search template that gives one type two values finds nothing; it is
/// no error (C_FindObjectsInit has no CKR_TEMPLATE_INCONSISTENT). Found by
/// the c_api_calls fuzz target.
#[test]
fn a_search_template_with_a_type_twice() {
    let (raw, s, _dir) = new_token_session();
    raw.create(
        s,
        &[(CKA_CLASS, ul(CKO_DATA)), (CKA_LABEL, b"one".to_vec())],
    )
    .unwrap();
    let twice = |second: &[u8]| {
        raw.find(
            s,
            &[(CKA_LABEL, b"one".to_vec()), (CKA_LABEL, second.to_vec())],
        )
    };
    assert_eq!(twice(b"other"), Ok(vec![]));
    assert_eq!(twice(b"one").map(|h| h.len()), Ok(1));
}
