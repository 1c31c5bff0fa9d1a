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
    let files = || ["cert8.db", "key3.db"].map(|f| std::fs::read(dir.path().join(f)).unwrap());
    let before = files();
    // A token data object has no record in cert8.db or key3.db, and a
    // public key stands only beside its private key: NSS's legacy module
    // answers both with CKR_ATTRIBUTE_VALUE_INVALID.
    let data = [
        (CKA_CLASS, ul(CKO_DATA)),
        (CKA_TOKEN, vec![1]),
        (CKA_PRIVATE, vec![0]),
        (CKA_VALUE, b"x".to_vec()),
    ];
    let lone_public = [
        (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
        (CKA_KEY_TYPE, ul(CKK_RSA)),
        (CKA_TOKEN, vec![1]),
        (CKA_MODULUS, vec![0xc5; 256]),
        (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
    ];
    let nss = nss_softoken(&dbm_params(dir.path()));
    let ns = nss.open(nss.slots()[1], true).unwrap();
    assert_eq!(nss.login(ns, CKU_USER, PASSWORD), CKR_OK);
    for template in [&data[..], &lone_public[..]] {
        let ours = raw.create(s, template).unwrap_err();
        assert_eq!(ours, CKR_ATTRIBUTE_VALUE_INVALID);
        assert_eq!(nss.create(ns, template).unwrap_err(), ours);
    }
    assert_eq!(nss.finalize(), CKR_OK);
    drop(nss);
    assert_eq!(files(), before);
    // The fixture still opens with its password.
    let token = open_token_with(&dbm_params(dir.path()));
    token.login(PASSWORD.as_bytes()).unwrap();
}

/// Each private key's values, by CKA_ID, as the token decrypts them.
fn private_values(dir: &std::path::Path, pw: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let token = open_token_with(&dbm_params(dir));
    token.login(pw.as_bytes()).unwrap();
    let mut keys: Vec<(Vec<u8>, Vec<u8>)> = token
        .find(&[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
        .unwrap()
        .into_iter()
        .map(|h| {
            let v = token.attributes(h).unwrap();
            let secret = v
                .get(CKA_PRIVATE_EXPONENT)
                .or(v.get(CKA_VALUE))
                .expect("a private value")
                .to_vec();
            (v.get(CKA_ID).unwrap().to_vec(), secret)
        })
        .collect();
    keys.sort();
    keys
}

/// C_SetPIN on a key3.db, as NSS's legacy module does it: every key sealed
/// again under the new password and the check with it; the old password
/// no longer opens it, NSS's tools open it with the new one, and the keys
/// are the same keys.
#[test]
fn set_pin_on_a_key3_db_seals_every_key_under_the_new_password() {
    let dir = copy_fixture("dbm-pw");
    let before = private_values(dir.path(), PASSWORD);
    assert_eq!(before.len(), 4);
    let cert8 = std::fs::read(dir.path().join("cert8.db")).unwrap();
    let raw = Raw::with_params(&dbm_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.set_pin(s, "wrong", "new-pw"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_OK);
    assert_eq!(raw.set_pin(s, PASSWORD, "new-pw"), CKR_OK);
    // The session stays logged in and its keys work.
    let keys = raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))]).unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(std::fs::read(dir.path().join("cert8.db")).unwrap(), cert8);

    let raw = Raw::with_params(&dbm_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, "new-pw"), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(private_values(dir.path(), "new-pw"), before);

    let work = tempfile::tempdir().unwrap();
    let pw = |name: &str, text: &str| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let dbm = format!("dbm:{}", dir.path().display());
    let listed = run(Command::new("certutil")
        .args(["-K", "-d", &dbm, "-f"])
        .arg(pw("new", "new-pw\n")));
    assert_eq!(
        listed.lines().filter(|l| l.starts_with('<')).count(),
        4,
        "{listed}"
    );
    run_failing(
        Command::new("certutil")
            .args(["-K", "-d", &dbm, "-f"])
            .arg(pw("old", &format!("{PASSWORD}\n"))),
    );
    // NSS decrypts a key: it exports it to PKCS#12.
    run(Command::new("pk12util")
        .args(["-o"])
        .arg(work.path().join("out.p12"))
        .args(["-n", "Fixture RSA User", "-d", &dbm, "-k"])
        .arg(pw("new2", "new-pw\n"))
        .arg("-w")
        .arg(pw("p12", "p12pw\n")));

    // And NSS changes it back: the module opens it with the old password.
    run(Command::new("certutil")
        .args(["-W", "-d", &dbm, "-f"])
        .arg(pw("new3", "new-pw\n"))
        .arg("-@")
        .arg(pw("old2", &format!("{PASSWORD}\n"))));
    assert_eq!(private_values(dir.path(), PASSWORD), before);
}

/// Another process changing the key3.db password logs this one out: its
/// old key opens nothing, and the new password logs in again.
#[test]
fn a_key3_password_changed_elsewhere_asks_for_the_new_one() {
    let dir = copy_fixture("dbm-pw");
    let raw = Raw::with_params(&dbm_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_OK);
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
            .unwrap()
            .len(),
        4
    );
    let work = tempfile::tempdir().unwrap();
    let (old, new) = (work.path().join("old"), work.path().join("new"));
    std::fs::write(&old, format!("{PASSWORD}\n")).unwrap();
    std::fs::write(&new, "elsewhere\n").unwrap();
    run(Command::new("certutil")
        .args(["-W", "-d", &format!("dbm:{}", dir.path().display()), "-f"])
        .arg(&old)
        .arg("-@")
        .arg(&new));
    // The old key opens nothing; C_Login takes the new password.
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
            .unwrap()
            .len(),
        0
    );
    assert_eq!(raw.login(s, CKU_USER, "elsewhere"), CKR_OK);
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
            .unwrap()
            .len(),
        4
    );
    assert_eq!(raw.finalize(), CKR_OK);
}

/// The CKA_ID of Firefox's password-manager (SDR) key.
const SDR_ID: [u8; 16] = [0xf8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const BLOCK: [u8; 16] = *b"sixteen byte blk";

/// A token's secret keys: (CKA_ID, CKA_LABEL, CKA_KEY_TYPE, ECB of BLOCK
/// and CBC-PAD of its first 13 bytes under the key, as AES or 3DES),
/// sorted.
type SecretKeySummary = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
fn secret_keys(raw: &Raw, s: CK_SESSION_HANDLE) -> Vec<SecretKeySummary> {
    use softoken_tests::raw::Direction::Encrypt;
    let mut keys: Vec<_> = raw
        .find(s, &[(CKA_CLASS, ul(CKO_SECRET_KEY))])
        .unwrap()
        .into_iter()
        .map(|h| {
            let key_type = raw.get(s, h, CKA_KEY_TYPE).unwrap();
            let (ecb, cbc_pad, iv) = if key_type == ul(CKK_AES) {
                (CKM_AES_ECB, CKM_AES_CBC_PAD, vec![3; 16])
            } else {
                (CKM_DES3_ECB, CKM_DES3_CBC_PAD, vec![3; 8])
            };
            (
                raw.get(s, h, CKA_ID).unwrap(),
                raw.get(s, h, CKA_LABEL).unwrap(),
                key_type,
                raw.crypt(s, Encrypt, ecb, vec![], h, &BLOCK).unwrap(),
                raw.crypt(s, Encrypt, cbc_pad, iv, h, &BLOCK[..13]).unwrap(),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// Secret keys in a key3.db (Firefox's password-manager key is one) are
/// NSS's "fake RSA" records: the module reads the ones NSS wrote as the
/// same secret keys, writes ones NSS reads, and carries them over when it
/// updates the directory (Mode 2) or merges it.
#[test]
fn key3_secret_keys_are_the_keys_nss_stores() {
    let dir = copy_fixture("dbm-pw");
    let nss = nss_softoken(&dbm_params(dir.path()));
    let s = nss.open(nss.slots()[1], true).unwrap();
    assert_eq!(nss.login(s, CKU_USER, PASSWORD), CKR_OK);
    let token_key = |extra: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]| {
        let mut t = vec![(CKA_TOKEN, vec![1]), (CKA_ENCRYPT, vec![1])];
        t.extend_from_slice(extra);
        t
    };
    nss.generate_key(
        s,
        CKM_DES3_KEY_GEN,
        &token_key(&[(CKA_ID, SDR_ID.to_vec())]),
    )
    .unwrap();
    nss.generate_key(
        s,
        CKM_AES_KEY_GEN,
        &token_key(&[(CKA_VALUE_LEN, ul(16)), (CKA_LABEL, b"app key".to_vec())]),
    )
    .unwrap();
    let made_by_nss = secret_keys(&nss, s);
    assert_eq!(made_by_nss.len(), 2);
    assert_eq!(nss.finalize(), CKR_OK);
    drop(nss);

    // The module reads them as NSS does, besides the fixture's key pairs.
    let raw = Raw::with_params(&dbm_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_OK);
    assert_eq!(secret_keys(&raw, s), made_by_nss);
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_PUBLIC_KEY))])
            .unwrap()
            .len(),
        4
    );
    // And writes one NSS reads.
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_AES)),
            (CKA_TOKEN, vec![1]),
            (CKA_ENCRYPT, vec![1]),
            (CKA_ID, b"ours".to_vec()),
            (CKA_LABEL, b"written by softoken".to_vec()),
            (CKA_VALUE, vec![7; 32]),
        ],
    )
    .unwrap();
    let with_ours = secret_keys(&raw, s);
    assert_eq!(with_ours.len(), 3);
    assert_eq!(raw.finalize(), CKR_OK);
    let nss = nss_softoken(&dbm_params(dir.path()));
    let s = nss.open(nss.slots()[1], false).unwrap();
    assert_eq!(nss.login(s, CKU_USER, PASSWORD), CKR_OK);
    assert_eq!(secret_keys(&nss, s), with_ours);
    assert_eq!(nss.finalize(), CKR_OK);
    drop(nss);

    // The update of the directory carries them into key4.db.
    let update = tempfile::tempdir().unwrap();
    for f in ["cert8.db", "key3.db"] {
        std::fs::copy(dir.path().join(f), update.path().join(f)).unwrap();
    }
    let raw = Raw::with_params(&sql_params(update.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_OK);
    assert_eq!(secret_keys(&raw, s), with_ours);
    assert_eq!(raw.finalize(), CKR_OK);
}

/// A certificate whose record is over the 14 KiB NSS keeps inside
/// cert8.db (a big extension): made with OpenSSL, as DER.
fn big_certificate(dir: &std::path::Path, cn: &str) -> Vec<u8> {
    let comment = "x".repeat(20_200);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "5", "-subj", &format!("/CN={cn}")])
        .args([
            "-addext",
            &format!("nsComment={comment}"),
            "-outform",
            "DER",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{cn}.key")))
        .arg("-out")
        .arg(dir.join(format!("{cn}.der"))));
    std::fs::read(dir.join(format!("{cn}.der"))).unwrap()
}

/// Certificates over the size NSS stores inline live in `cert8.dir/`:
/// NSS's are read, the module's are written there for NSS to read, and
/// they can be changed and deleted like any other.
#[test]
fn big_certificates_live_in_cert8_dir() {
    let dir = copy_fixture("dbm-pw");
    let work = tempfile::tempdir().unwrap();
    let dbm = format!("dbm:{}", dir.path().display());
    let theirs = big_certificate(work.path(), "Big NSS");
    let ours = big_certificate(work.path(), "Big Ours");
    assert!(theirs.len() > 20 * 1024, "{}", theirs.len());
    run(Command::new("certutil")
        .args(["-A", "-d", &dbm, "-n", "Big NSS", "-t", "P,,", "-i"])
        .arg(work.path().join("Big NSS.der")));
    assert!(
        std::fs::read_dir(dir.path().join("cert8.dir"))
            .unwrap()
            .count()
            > 0
    );

    let raw = Raw::with_params(&dbm_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    let by_label = |label: &str| {
        raw.find(
            s,
            &[
                (CKA_CLASS, ul(CKO_CERTIFICATE)),
                (CKA_LABEL, label.as_bytes().to_vec()),
            ],
        )
        .unwrap()
    };
    let found = by_label("Big NSS");
    assert_eq!(found.len(), 1);
    assert_eq!(
        sha1(&raw.get(s, found[0], CKA_VALUE).unwrap()),
        sha1(&theirs)
    );
    let fields = cert_fields(&ours);
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_CERTIFICATE)),
            (CKA_CERTIFICATE_TYPE, ul(CKC_X_509)),
            (CKA_TOKEN, vec![1]),
            (CKA_LABEL, b"Big Ours".to_vec()),
            (CKA_SUBJECT, fields.subject),
            (CKA_ISSUER, fields.issuer),
            (CKA_SERIAL_NUMBER, fields.serial),
            (CKA_VALUE, ours.clone()),
        ],
    )
    .unwrap();
    // Renaming NSS's rewrites its record (and its file).
    let renamed = by_label("Big NSS")[0];
    assert_eq!(
        raw.set(s, renamed, &[(CKA_LABEL, b"Big NSS renamed".to_vec())]),
        CKR_OK
    );
    assert_eq!(raw.finalize(), CKR_OK);

    let listed = run(Command::new("certutil").args(["-L", "-d", &dbm]));
    assert!(listed.contains("Big Ours"), "{listed}");
    assert!(listed.contains("Big NSS renamed"), "{listed}");
    // certutil -r writes the DER; compared by digest (a mismatch of 16 KiB
    // printed helps nobody).
    let exported = |nick: &str| {
        let out = Command::new("certutil")
            .args(["-L", "-d", &dbm, "-r", "-n", nick])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        sha1(&out.stdout)
    };
    assert_eq!(exported("Big Ours"), sha1(&ours));
    assert_eq!(exported("Big NSS renamed"), sha1(&theirs));

    // Deleting both leaves no file behind in cert8.dir.
    let raw = Raw::with_params(&dbm_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    for label in ["Big Ours", "Big NSS renamed"] {
        let h = raw
            .find(
                s,
                &[
                    (CKA_CLASS, ul(CKO_CERTIFICATE)),
                    (CKA_LABEL, label.as_bytes().to_vec()),
                ],
            )
            .unwrap();
        assert_eq!(raw.destroy(s, h[0]), CKR_OK);
    }
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(
        std::fs::read_dir(dir.path().join("cert8.dir"))
            .unwrap()
            .count(),
        0
    );
    let listed = run(Command::new("certutil").args(["-L", "-d", &dbm]));
    assert!(!listed.contains("Big "), "{listed}");
}

/// Before and after login the module shows what NSS's own legacy module
/// shows for the same key3.db and cert8.db (before login NSS shows no key
/// at all: a key3.db's public keys come out of its encrypted records).
#[test]
fn objects_before_and_after_login_are_the_ones_nss_shows() {
    let dir = copy_fixture("dbm-pw");
    let listing = |raw: &Raw, slot: CK_SLOT_ID| {
        let s = raw.open(slot, false).unwrap();
        let before = listed_objects(raw, s);
        assert_eq!(raw.login(s, CKU_USER, PASSWORD), CKR_OK);
        let after = listed_objects(raw, s);
        (before, after)
    };
    let nss = nss_softoken(&dbm_params(dir.path()));
    let theirs = listing(&nss, nss.slots()[1]);
    assert_eq!(nss.finalize(), CKR_OK);
    drop(nss);
    let raw = Raw::with_params(&dbm_params(dir.path()));
    let ours = listing(&raw, raw.slots()[0]);
    assert_eq!(raw.finalize(), CKR_OK);
    assert!(theirs.0.iter().all(|o| !o.0.ends_with("_KEY")));
    assert_eq!(ours.0, theirs.0, "before login");
    assert_eq!(ours.1, theirs.1, "after login");
}
