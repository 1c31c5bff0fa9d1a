//! The dual-function updates: a cipher and a digest, signature or
//! verification fed in one call, each agreeing with the same work done
//! apart; the digesting side always sees the plaintext.

use pkcs11_sys::*;
use softoken_tests::raw::{mechanism, ul, Direction, Raw};
use softoken_tests::*;

type Dual = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    CK_BYTE_PTR,
    CK_ULONG,
    CK_BYTE_PTR,
    CK_ULONG_PTR,
) -> CK_RV;

const IV: [u8; 16] = [7; 16];

fn setup() -> (
    Raw,
    CK_SESSION_HANDLE,
    tempfile::TempDir,
    CK_OBJECT_HANDLE,
    CK_OBJECT_HANDLE,
) {
    let (raw, s, dir) = new_token_session();
    let secret = |ty, value: &[u8]| {
        raw.create(
            s,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(ty)),
                (CKA_VALUE, value.to_vec()),
            ],
        )
        .unwrap()
    };
    let aes = secret(CKK_AES, &[0x11; 16]);
    let mac = secret(CKK_GENERIC_SECRET, &[0x22; 32]);
    (raw, s, dir, aes, mac)
}

fn init(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    which: &str,
    ty: CK_MECHANISM_TYPE,
    param: &mut [u8],
    key: CK_OBJECT_HANDLE,
) {
    let f = raw.f();
    let mut m = mechanism(ty, param);
    // SAFETY: a valid mechanism.
    let rv = unsafe {
        match which {
            "digest" => (f.C_DigestInit.unwrap())(s, &mut m),
            "sign" => (f.C_SignInit.unwrap())(s, &mut m, key),
            "verify" => (f.C_VerifyInit.unwrap())(s, &mut m, key),
            "encrypt" => (f.C_EncryptInit.unwrap())(s, &mut m, key),
            _ => (f.C_DecryptInit.unwrap())(s, &mut m, key),
        }
    };
    assert_eq!(rv, CKR_OK, "{which} init");
}

/// Each part through `call`, a length query first; the outputs joined.
fn parts(call: Dual, s: CK_SESSION_HANDLE, parts: &[&[u8]]) -> Vec<u8> {
    let mut all = Vec::new();
    for part in parts {
        let (p, n) = (part.as_ptr() as *mut u8, part.len() as CK_ULONG);
        let mut len = 0;
        // SAFETY: valid buffers and lengths.
        unsafe {
            assert_eq!(call(s, p, n, std::ptr::null_mut(), &mut len), CKR_OK);
            let mut out = vec![0u8; len as usize];
            assert_eq!(call(s, p, n, out.as_mut_ptr(), &mut len), CKR_OK);
            all.extend_from_slice(&out[..len as usize]);
        }
    }
    all
}

/// The final output of a two-call (length query, then data) Final.
fn finish(
    call: unsafe extern "C" fn(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR) -> CK_RV,
    s: CK_SESSION_HANDLE,
) -> Vec<u8> {
    let mut len = 0;
    // SAFETY: valid buffers and lengths.
    unsafe {
        assert_eq!(call(s, std::ptr::null_mut(), &mut len), CKR_OK);
        let mut out = vec![0u8; len as usize];
        assert_eq!(call(s, out.as_mut_ptr(), &mut len), CKR_OK);
        out.truncate(len as usize);
        out
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

#[test]
fn digest_while_encrypting_and_decrypting() {
    let (raw, s, _dir, aes, _) = setup();
    let f = raw.f();
    let plain = b"a message long enough to span several AES blocks of sixteen".to_vec();
    let expected = raw
        .crypt(
            s,
            Direction::Encrypt,
            CKM_AES_CBC_PAD,
            IV.to_vec(),
            aes,
            &plain,
        )
        .unwrap();

    init(&raw, s, "digest", CKM_SHA256, &mut [], 0);
    init(&raw, s, "encrypt", CKM_AES_CBC_PAD, &mut IV.clone(), aes);
    let mut ct = parts(
        f.C_DigestEncryptUpdate.unwrap(),
        s,
        &[&plain[..5], &plain[5..40], &plain[40..]],
    );
    ct.extend(finish(f.C_EncryptFinal.unwrap(), s));
    assert_eq!(ct, expected);
    assert_eq!(finish(f.C_DigestFinal.unwrap(), s), sha256(&plain));

    // Decrypting, the digest covers what came out; CBC-PAD holds the last
    // block back until DecryptFinal, which the caller digests itself.
    init(&raw, s, "digest", CKM_SHA256, &mut [], 0);
    init(&raw, s, "decrypt", CKM_AES_CBC_PAD, &mut IV.clone(), aes);
    let mut out = parts(f.C_DecryptDigestUpdate.unwrap(), s, &[&ct[..20], &ct[20..]]);
    let last = finish(f.C_DecryptFinal.unwrap(), s);
    // SAFETY: a valid buffer.
    unsafe {
        assert_eq!(
            (f.C_DigestUpdate.unwrap())(s, last.as_ptr() as *mut u8, last.len() as CK_ULONG),
            CKR_OK
        );
    }
    out.extend(last);
    assert_eq!(out, plain);
    assert_eq!(finish(f.C_DigestFinal.unwrap(), s), sha256(&plain));
}

#[test]
fn sign_while_encrypting_and_verify_while_decrypting() {
    let (raw, s, _dir, aes, mac) = setup();
    let f = raw.f();
    let plain = b"signed and encrypted in one pass".to_vec();
    let ctr = softoken_tests::raw::ctr_param(128, &[0; 16]);
    let want_mac = raw.sign(s, CKM_SHA256_HMAC, vec![], mac, &plain).unwrap();

    init(&raw, s, "sign", CKM_SHA256_HMAC, &mut [], mac);
    init(&raw, s, "encrypt", CKM_AES_CTR, &mut ctr.clone(), aes);
    let mut ct = parts(
        f.C_SignEncryptUpdate.unwrap(),
        s,
        &[&plain[..9], &plain[9..]],
    );
    ct.extend(finish(f.C_EncryptFinal.unwrap(), s));
    assert_eq!(finish(f.C_SignFinal.unwrap(), s), want_mac);

    for (tamper, want) in [(false, CKR_OK), (true, CKR_SIGNATURE_INVALID)] {
        let mut received = ct.clone();
        if tamper {
            received[3] ^= 0x80;
        }
        init(&raw, s, "verify", CKM_SHA256_HMAC, &mut [], mac);
        init(&raw, s, "decrypt", CKM_AES_CTR, &mut ctr.clone(), aes);
        let mut out = parts(f.C_DecryptVerifyUpdate.unwrap(), s, &[&received]);
        out.extend(finish(f.C_DecryptFinal.unwrap(), s));
        assert_eq!(out == plain, !tamper);
        // SAFETY: a valid buffer.
        let rv = unsafe {
            (f.C_VerifyFinal.unwrap())(s, want_mac.as_ptr() as *mut u8, want_mac.len() as CK_ULONG)
        };
        assert_eq!(rv, want);
    }
}

#[test]
fn both_operations_must_be_running() {
    let (raw, s, _dir, aes, mac) = setup();
    let f = raw.f();
    let mut len = 64;
    let mut out = [0u8; 64];
    let mut call = |g: Option<Dual>| {
        // SAFETY: valid buffers and lengths.
        unsafe {
            (g.unwrap())(
                s,
                b"0123456789abcdef".as_ptr() as *mut u8,
                16,
                out.as_mut_ptr(),
                &mut len,
            )
        }
    };
    assert_eq!(call(f.C_DigestEncryptUpdate), CKR_OPERATION_NOT_INITIALIZED);
    init(&raw, s, "encrypt", CKM_AES_ECB, &mut [], aes);
    assert_eq!(call(f.C_DigestEncryptUpdate), CKR_OPERATION_NOT_INITIALIZED);
    assert_eq!(call(f.C_SignEncryptUpdate), CKR_OPERATION_NOT_INITIALIZED);
    init(&raw, s, "sign", CKM_SHA256_HMAC, &mut [], mac);
    assert_eq!(call(f.C_SignEncryptUpdate), CKR_OK);
    assert_eq!(call(f.C_DecryptVerifyUpdate), CKR_OPERATION_NOT_INITIALIZED);
    // SAFETY: a bad session handle.
    let rv = unsafe {
        (f.C_DigestEncryptUpdate.unwrap())(
            9999,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            &mut len,
        )
    };
    assert_eq!(rv, CKR_SESSION_HANDLE_INVALID);
}
