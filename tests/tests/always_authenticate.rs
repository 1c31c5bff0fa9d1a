//! CKA_ALWAYS_AUTHENTICATE through the C API: each signature or decryption
//! with such a key waits, after its Init, for a C_Login(CKU_CONTEXT_SPECIFIC)
//! with the user's PIN; without it the use answers CKR_USER_NOT_LOGGED_IN,
//! and one login authorises one use.

use pkcs11_sys::*;
use softoken_tests::raw::{mechanism, ul, Direction, Raw, TRUE};
use softoken_tests::*;

const PIN: &str = "fixture-pw";
const P256: &[u8] = softoken_tests::P256_PARAMS;

/// A logged-in session on a token with a password.
fn logged_in() -> (Raw, tempfile::TempDir, CK_SESSION_HANDLE) {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PIN), CKR_OK);
    (raw, dir, s)
}

/// A P-256 session key pair: (public, private).
fn ec_pair(raw: &Raw, s: CK_SESSION_HANDLE, always: bool) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let flag = if always { TRUE.to_vec() } else { vec![0] };
    raw.generate_key_pair(
        s,
        CKM_EC_KEY_PAIR_GEN,
        &[(CKA_EC_PARAMS, P256.to_vec()), (CKA_VERIFY, TRUE.to_vec())],
        &[(CKA_SIGN, TRUE.to_vec()), (CKA_ALWAYS_AUTHENTICATE, flag)],
    )
    .unwrap()
}

fn sign_init(raw: &Raw, s: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    raw.sign_init(s, CKM_ECDSA_SHA256, vec![], key)
}

fn context_login(raw: &Raw, s: CK_SESSION_HANDLE, pin: &str) -> CK_RV {
    raw.login(s, CKU_CONTEXT_SPECIFIC, pin)
}

#[test]
fn an_always_authenticate_key_signs_only_after_a_context_login_each_time() {
    let (raw, _dir, s) = logged_in();
    let (public, private) = ec_pair(&raw, s, true);
    assert_eq!(raw.get(s, private, CKA_ALWAYS_AUTHENTICATE).unwrap(), TRUE);
    let data = b"to be signed";

    // Without the login the signature is refused, and the operation ends.
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    assert_eq!(raw.sign_data(s, data), Err(CKR_USER_NOT_LOGGED_IN));
    assert_eq!(raw.sign_data(s, data), Err(CKR_OPERATION_NOT_INITIALIZED));

    // A wrong PIN leaves the operation waiting; the right one lets it run.
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    assert_eq!(context_login(&raw, s, "wrong"), CKR_PIN_INCORRECT);
    let flags = raw.token_info(raw.slots()[0]).flags;
    assert_ne!(flags & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(context_login(&raw, s, PIN), CKR_OK);
    let signature = raw.sign_data(s, data).unwrap();
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], public, data, &signature),
        CKR_OK
    );

    // One login, one signature: the next operation waits for its own.
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    assert_eq!(raw.sign_data(s, data), Err(CKR_USER_NOT_LOGGED_IN));

    // In parts: every call of a waiting operation is refused, and ends it.
    let f = raw.f();
    let d = (data.as_ptr() as *mut u8, data.len() as CK_ULONG);
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    // SAFETY: valid buffers and lengths.
    unsafe {
        assert_eq!(
            (f.C_SignUpdate.unwrap())(s, d.0, d.1),
            CKR_USER_NOT_LOGGED_IN
        );
        assert_eq!(
            (f.C_SignUpdate.unwrap())(s, d.0, d.1),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    assert_eq!(context_login(&raw, s, PIN), CKR_OK);
    let mut signature = vec![0u8; 80];
    let mut len = signature.len() as CK_ULONG;
    // SAFETY: valid buffers and lengths.
    unsafe {
        assert_eq!((f.C_SignUpdate.unwrap())(s, d.0, d.1), CKR_OK);
        let rv = (f.C_SignFinal.unwrap())(s, signature.as_mut_ptr(), &mut len);
        assert_eq!(rv, CKR_OK);
    }
    signature.truncate(len as usize);
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], public, data, &signature),
        CKR_OK
    );

    // A second login for one use does not carry over to the next.
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    assert_eq!(context_login(&raw, s, PIN), CKR_OK);
    assert_eq!(context_login(&raw, s, PIN), CKR_OPERATION_NOT_INITIALIZED);
    raw.sign_data(s, data).unwrap();
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    assert_eq!(raw.sign_data(s, data), Err(CKR_USER_NOT_LOGGED_IN));
}

#[test]
fn a_context_login_needs_a_waiting_use_and_a_logged_in_user() {
    let (raw, _dir, s) = logged_in();
    // Nothing under way.
    assert_eq!(context_login(&raw, s, PIN), CKR_OPERATION_NOT_INITIALIZED);
    // A key without the attribute signs without one, and has none to take.
    let (_, ordinary) = ec_pair(&raw, s, false);
    assert_eq!(sign_init(&raw, s, ordinary), CKR_OK);
    assert_eq!(context_login(&raw, s, PIN), CKR_OPERATION_NOT_INITIALIZED);
    raw.sign_data(s, b"data").unwrap();
    // Verification is not governed by the attribute.
    let (public, private) = ec_pair(&raw, s, true);
    let mut m = mechanism(CKM_ECDSA_SHA256, &mut []);
    // SAFETY: a valid mechanism.
    let rv = unsafe { (raw.f().C_VerifyInit.unwrap())(s, &mut m, public) };
    assert_eq!(rv, CKR_OK);
    assert_eq!(context_login(&raw, s, PIN), CKR_OPERATION_NOT_INITIALIZED);
    // The context-specific login re-checks a user who is logged in.
    assert_eq!(sign_init(&raw, s, private), CKR_OK);
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(context_login(&raw, s, PIN), CKR_USER_NOT_LOGGED_IN);
}

#[test]
fn decryption_and_recovery_with_an_always_authenticate_key_wait_for_their_login() {
    let (raw, _dir, s) = logged_in();
    let (public, private) = raw
        .generate_key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[
                (CKA_MODULUS_BITS, ul(2048)),
                (CKA_ENCRYPT, TRUE.to_vec()),
                (CKA_VERIFY_RECOVER, TRUE.to_vec()),
            ],
            &[
                (CKA_DECRYPT, TRUE.to_vec()),
                (CKA_SIGN_RECOVER, TRUE.to_vec()),
                (CKA_ALWAYS_AUTHENTICATE, TRUE.to_vec()),
            ],
        )
        .unwrap();
    let secret = b"sixteen byte key";
    // Encryption with the public key is not governed.
    let sealed = raw
        .crypt(s, Direction::Encrypt, CKM_RSA_PKCS, vec![], public, secret)
        .unwrap();
    assert_eq!(
        raw.crypt(
            s,
            Direction::Decrypt,
            CKM_RSA_PKCS,
            vec![],
            private,
            &sealed
        ),
        Err(CKR_USER_NOT_LOGGED_IN)
    );
    let f = raw.f();
    let mut m = mechanism(CKM_RSA_PKCS, &mut []);
    let mut out = vec![0u8; 256];
    let mut len = out.len() as CK_ULONG;
    let input = (sealed.as_ptr() as *mut u8, sealed.len() as CK_ULONG);
    // SAFETY: valid mechanism, buffers and lengths.
    unsafe {
        assert_eq!((f.C_DecryptInit.unwrap())(s, &mut m, private), CKR_OK);
        assert_eq!(context_login(&raw, s, PIN), CKR_OK);
        let rv = (f.C_Decrypt.unwrap())(s, input.0, input.1, out.as_mut_ptr(), &mut len);
        assert_eq!(rv, CKR_OK);
        assert_eq!(&out[..len as usize], secret);

        // C_SignRecover likewise.
        assert_eq!((f.C_SignRecoverInit.unwrap())(s, &mut m, private), CKR_OK);
        let data = (secret.as_ptr() as *mut u8, secret.len() as CK_ULONG);
        let mut len = out.len() as CK_ULONG;
        let rv = (f.C_SignRecover.unwrap())(s, data.0, data.1, out.as_mut_ptr(), &mut len);
        assert_eq!(rv, CKR_USER_NOT_LOGGED_IN);
        assert_eq!((f.C_SignRecoverInit.unwrap())(s, &mut m, private), CKR_OK);
        assert_eq!(context_login(&raw, s, PIN), CKR_OK);
        let rv = (f.C_SignRecover.unwrap())(s, data.0, data.1, out.as_mut_ptr(), &mut len);
        assert_eq!((rv, len), (CKR_OK, 256));
    }
}

#[test]
fn each_message_signed_with_an_always_authenticate_key_needs_its_login() {
    let (raw, _dir, s) = logged_in();
    let (_, private) = ec_pair(&raw, s, true);
    let mut m = mechanism(CKM_ECDSA_SHA256, &mut []);
    // SAFETY: a valid mechanism.
    let rv = unsafe { (raw.f30().C_MessageSignInit.unwrap())(s, &mut m, private) };
    assert_eq!(rv, CKR_OK);
    assert_eq!(raw.sign_message(s, b"one"), Err(CKR_USER_NOT_LOGGED_IN));
    // The message context stays: a login lets its next message through.
    assert_eq!(context_login(&raw, s, PIN), CKR_OK);
    raw.sign_message(s, b"one").unwrap();
    assert_eq!(raw.sign_message(s, b"two"), Err(CKR_USER_NOT_LOGGED_IN));
    assert_eq!(context_login(&raw, s, PIN), CKR_OK);
    raw.sign_message(s, b"two").unwrap();
}
