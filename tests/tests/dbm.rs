//! A legacy `dbm:` database written through the module: what a client
//! creates becomes records NSS's own tools list, export and trust, and what
//! it destroys is gone for them too.

use std::process::Command;

use pkcs11_sys::*;
use softoken::nss::*;
use softoken_tests::raw::{ul, Raw};
use softoken_tests::*;

const PASSWORD: &str = "fixture-pw";

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

#[test]
fn objects_created_through_the_module_are_records_nss_reads() {
    let dir = copy_fixture("dbm-pw");
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str| work.path().join(name);
    std::fs::write(w("pw"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(w("p12pw"), "p12pw\n").unwrap();
    // A fresh key and certificate, made by OpenSSL.
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "5",
        ])
        .args(["-subj", "/CN=Round Trip/emailAddress=rt@example.org"])
        .arg("-keyout")
        .arg(w("key.pem"))
        .arg("-out")
        .arg(w("cert.pem")));
    run(Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(w("cert.pem"))
        .arg("-out")
        .arg(w("cert.der")));
    run(Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:p12pw", "-name", "x"])
        .arg("-inkey")
        .arg(w("key.pem"))
        .arg("-in")
        .arg(w("cert.pem"))
        .arg("-out")
        .arg(w("in.p12")));
    let key = pkcs12_rsa_key(&w("in.p12"), "p12pw");
    let cert_der = std::fs::read(w("cert.der")).unwrap();
    let fields = cert_fields(&cert_der);
    let id = sha1(&key.modulus);

    let raw = Raw::with_params(&dbm_params(dir.path()));
    let slot = raw.slots()[0];
    assert_eq!(raw.token_info(slot).flags & CKF_WRITE_PROTECTED, 0);
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_OK);
    let t = vec![1u8];
    let mut template = vec![
        (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
        (CKA_KEY_TYPE, ul(CKK_RSA)),
        (CKA_TOKEN, t.clone()),
        (CKA_PRIVATE, t.clone()),
        (CKA_SENSITIVE, t.clone()),
        (CKA_SIGN, t.clone()),
        (CKA_LABEL, b"Round Trip".to_vec()),
        (CKA_ID, id.clone()),
    ];
    template.extend(key.attributes());
    let private = raw.create(s, &template).unwrap();
    let certificate = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_CERTIFICATE)),
                (CKA_CERTIFICATE_TYPE, ul(CKC_X_509)),
                (CKA_TOKEN, t.clone()),
                (CKA_LABEL, b"Round Trip".to_vec()),
                (CKA_ID, id.clone()),
                (CKA_SUBJECT, fields.subject.clone()),
                (CKA_ISSUER, fields.issuer.clone()),
                (CKA_SERIAL_NUMBER, fields.serial.clone()),
                (CKA_VALUE, cert_der.clone()),
            ],
        )
        .unwrap();
    // The new key signs at once.
    let sig = raw
        .sign(s, CKM_SHA256_RSA_PKCS, Vec::new(), private, b"data")
        .unwrap();
    assert_eq!(sig.len(), 256);

    let db = format!("dbm:{}", dir.path().display());
    let listed = run(Command::new("certutil").args(["-L", "-d", &db]));
    let line = listed
        .lines()
        .find(|l| l.starts_with("Round Trip"))
        .unwrap();
    assert!(line.trim_end().ends_with("u,u,u"), "{listed}");
    let keys = run(Command::new("certutil")
        .args(["-K", "-d", &db, "-f"])
        .arg(w("pw")));
    assert!(keys.contains(&hex::encode(&id)), "{keys}");
    run(Command::new("pk12util")
        .args(["-o"])
        .arg(w("out.p12"))
        .args(["-n", "Round Trip", "-d", &db, "-k"])
        .arg(w("pw"))
        .arg("-w")
        .arg(w("p12pw")));
    let exported = pkcs12_rsa_key(&w("out.p12"), "p12pw");
    assert_eq!(exported.private_exponent, key.private_exponent);
    assert_eq!(exported.modulus, key.modulus);

    // Trust set through the module is NSS's trust.
    let trust = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_NSS_TRUST)),
                (CKA_TOKEN, t.clone()),
                (CKA_ISSUER, fields.issuer.clone()),
                (CKA_SERIAL_NUMBER, fields.serial.clone()),
                (CKA_CERT_SHA1_HASH, sha1(&cert_der)),
                (CKA_TRUST_SERVER_AUTH, ul(CKT_NSS_TRUSTED_DELEGATOR)),
                (CKA_TRUST_CLIENT_AUTH, ul(CKT_NSS_TRUSTED_DELEGATOR)),
                (CKA_TRUST_EMAIL_PROTECTION, ul(CKT_NSS_MUST_VERIFY_TRUST)),
                (CKA_TRUST_CODE_SIGNING, ul(CKT_NSS_MUST_VERIFY_TRUST)),
            ],
        )
        .unwrap();
    let listed = run(Command::new("certutil").args(["-L", "-d", &db]));
    let line = listed
        .lines()
        .find(|l| l.starts_with("Round Trip"))
        .unwrap();
    assert!(line.trim_end().ends_with("CTu,u,u"), "{listed}");
    assert_eq!(
        raw.get(s, trust, CKA_TRUST_SERVER_AUTH).unwrap(),
        ul(CKT_NSS_TRUSTED_DELEGATOR)
    );

    // Destroyed through the module, gone for NSS; the fixture's own
    // objects stay.
    for h in [trust, certificate, private] {
        assert_eq!(raw.destroy(s, h), CKR_OK);
    }
    let listed = run(Command::new("certutil").args(["-L", "-d", &db]));
    assert!(
        !listed.contains("Round Trip") && listed.contains("Fixture CA"),
        "{listed}"
    );
    let keys = run(Command::new("certutil")
        .args(["-K", "-d", &db, "-f"])
        .arg(w("pw")));
    assert!(
        !keys.contains(&hex::encode(&id)) && keys.contains("Fixture CA"),
        "{keys}"
    );
}

#[test]
fn what_the_legacy_format_cannot_hold_is_refused() {
    let dir = copy_fixture("dbm-pw");
    let raw = Raw::with_params(&dbm_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_OK);
    let before = std::fs::read(dir.path().join("cert8.db")).unwrap();
    // A token data object has no record in cert8.db or key3.db.
    let rv = raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_DATA)),
            (CKA_TOKEN, vec![1]),
            (CKA_PRIVATE, vec![0]),
            (CKA_VALUE, b"x".to_vec()),
        ],
    );
    assert!(rv.is_err());
    // Changing the password of a key3.db is not offered yet.
    assert_eq!(raw.set_pin(s, PASSWORD, "new"), CKR_FUNCTION_FAILED);
    assert_eq!(std::fs::read(dir.path().join("cert8.db")).unwrap(), before);
    // The fixture still opens with its password.
    let token = open_token_with(&dbm_params(dir.path()));
    token.login(PASSWORD.as_bytes()).unwrap();
}
