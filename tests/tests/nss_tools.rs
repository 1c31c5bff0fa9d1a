//! softoken to NSS: what the module writes, NSS's own tools read, export and
//! re-key; and NSS and the module writing one database at the same time.

use std::path::Path;
use std::process::Command;

use pkcs11_sys::*;
use softoken::nss::*;
use softoken_tests::raw::{as_ul, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

const DB_PW: &str = "db-pw";
const NEW_PW: &str = "changed-by-certutil";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn openssl_md5(data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in");
    std::fs::write(&f, data).unwrap();
    let out = run(Command::new("openssl").args(["dgst", "-md5", "-r", &f.display().to_string()]));
    hex::decode(out.split_whitespace().next().unwrap()).unwrap()
}

/// Stores a certificate (and, for the user, its key pair) through the module.
fn fill(raw: &Raw, s: CK_SESSION_HANDLE) -> Vec<u8> {
    let exports = fixtures().join("exports");
    let key = pkcs12_rsa_key(&exports.join("Fixture_RSA_User.p12"), "p12-pw");
    let id = hex::decode(sha1_hex(&key.modulus)).unwrap();
    let user_der = std::fs::read(exports.join("Fixture_RSA_User.der")).unwrap();
    let user = cert_fields(&user_der);
    let cert = |label: &str, der: &[u8], f: &CertFields, id: &[u8]| {
        vec![
            (CKA_CLASS, ul(CKO_CERTIFICATE)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_CERTIFICATE_TYPE, ul(CKC_X_509)),
            (CKA_LABEL, label.as_bytes().to_vec()),
            (CKA_SUBJECT, f.subject.clone()),
            (CKA_ISSUER, f.issuer.clone()),
            (CKA_SERIAL_NUMBER, f.serial.clone()),
            (CKA_ID, id.to_vec()),
            (CKA_VALUE, der.to_vec()),
        ]
    };
    raw.create(s, &cert("Softoken RSA User", &user_der, &user, &id))
        .unwrap();
    let mut template = vec![
        (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
        (CKA_TOKEN, TRUE.to_vec()),
        (CKA_PRIVATE, TRUE.to_vec()),
        (CKA_KEY_TYPE, ul(CKK_RSA)),
        (CKA_ID, id.clone()),
        (CKA_SUBJECT, user.subject.clone()),
        (CKA_SENSITIVE, TRUE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
        (CKA_SIGN, TRUE.to_vec()),
        (CKA_DECRYPT, TRUE.to_vec()),
    ];
    template.extend(key.attributes());
    template.push((CKA_NSS_DB, key.modulus.clone()));
    raw.create(s, &template).unwrap();
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_KEY_TYPE, ul(CKK_RSA)),
            (CKA_ID, id.clone()),
            (CKA_MODULUS, key.modulus.clone()),
            (CKA_PUBLIC_EXPONENT, key.public_exponent.clone()),
        ],
    )
    .unwrap();

    // The CA, trusted as NSS's "CT,C,C".
    let ca_der = std::fs::read(exports.join("Fixture_CA.der")).unwrap();
    let ca = cert_fields(&ca_der);
    raw.create(s, &cert("Softoken CA", &ca_der, &ca, b""))
        .unwrap();
    let delegator = ul(CKT_NSS_TRUSTED_DELEGATOR);
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_NSS_TRUST)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_ISSUER, ca.issuer.clone()),
            (CKA_SERIAL_NUMBER, ca.serial.clone()),
            (CKA_CERT_SHA1_HASH, hex::decode(sha1_hex(&ca_der)).unwrap()),
            (CKA_CERT_MD5_HASH, openssl_md5(&ca_der)),
            (CKA_TRUST_SERVER_AUTH, delegator.clone()),
            (CKA_TRUST_CLIENT_AUTH, delegator.clone()),
            (CKA_TRUST_EMAIL_PROTECTION, delegator.clone()),
            (CKA_TRUST_CODE_SIGNING, delegator),
            (CKA_TRUST_STEP_UP_APPROVED, FALSE.to_vec()),
        ],
    )
    .unwrap();
    id
}

#[test]
fn nss_tools_read_export_and_rekey_what_the_module_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", dir.path().display());
    let pw_file = write(files.path(), "pw", DB_PW);
    let new_pw_file = write(files.path(), "new-pw", NEW_PW);
    let p12_pw_file = write(files.path(), "p12-pw", "export-pw");

    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    // A new database has the empty password; set a real one.
    assert_eq!(raw.set_pin(s, "", DB_PW), CKR_OK);
    assert_eq!(raw.login(s, CKU_USER, DB_PW), CKR_OK);
    let id = fill(&raw, s);
    assert_eq!(raw.finalize(), CKR_OK);

    let listed = run(Command::new("certutil").args(["-L", "-d", &db]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("Softoken RSA User") && l.trim_end().ends_with("u,u,u")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("Softoken CA") && l.trim_end().ends_with("CT,C,C")),
        "{listed}"
    );
    let keys = run(Command::new("certutil").args(["-K", "-d", &db, "-f", &pw_file]));
    assert!(
        keys.contains(&hex::encode(&id)) && keys.contains("Softoken RSA User"),
        "{keys}"
    );

    let p12 = files.path().join("out.p12");
    run(Command::new("pk12util").args([
        "-o",
        &p12.display().to_string(),
        "-n",
        "Softoken RSA User",
        "-d",
        &db,
        "-k",
        &pw_file,
        "-w",
        &p12_pw_file,
    ]));
    let exported = pkcs12_rsa_key(&p12, "export-pw");
    let original = pkcs12_rsa_key(&fixtures().join("exports/Fixture_RSA_User.p12"), "p12-pw");
    assert_eq!(exported.private_exponent, original.private_exponent);
    assert_eq!(exported.modulus, original.modulus);

    // NSS changes the password; the module follows.
    run(Command::new("certutil").args(["-W", "-d", &db, "-f", &pw_file, "-@", &new_pw_file]));
    assert_eq!(raw.initialize(Some(&sql_params(dir.path()))), CKR_OK);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, DB_PW), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, NEW_PW), CKR_OK);
    let found = raw
        .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, id.clone())])
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(raw.get(s, found[0], CKA_MODULUS).unwrap(), original.modulus);
    let trust = raw.find(s, &[(CKA_CLASS, ul(CKO_NSS_TRUST))]).unwrap();
    assert_eq!(
        as_ul(&raw.get(s, trust[0], CKA_TRUST_SERVER_AUTH).unwrap()),
        CKT_NSS_TRUSTED_DELEGATOR
    );
    assert_eq!(raw.finalize(), CKR_OK);

    // Every value re-encrypted by NSS decrypts and verifies here.
    let token = open_token(dir.path());
    token.login(NEW_PW.as_bytes()).unwrap();
    let report = token.check(&mut |_, _| {}).unwrap();
    assert!(
        report.failures.is_empty() && report.orphaned_records.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.decrypted, 6);

    // And the module's own password change is one NSS follows.
    assert_eq!(raw.initialize(Some(&sql_params(dir.path()))), CKR_OK);
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.set_pin(s, NEW_PW, DB_PW), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    let keys = run(Command::new("certutil").args(["-K", "-d", &db, "-f", &pw_file]));
    assert!(keys.contains(&hex::encode(&id)), "{keys}");
}

/// certutil adds certificates while the module creates objects in the same
/// database: nothing is lost on either side.
#[test]
fn nss_and_module_write_one_database_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", dir.path().display());
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    const OBJECTS: usize = 150;

    let exports = fixtures().join("exports");
    let certs = [
        "Fixture_Bob",
        "Fixture_CA",
        "Fixture_EC_User",
        "Fixture_Email_User",
        "Fixture_Peer",
        "Fixture_RSA_User",
    ];
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let s = raw.open(slot, true).unwrap();
            for i in 0..OBJECTS {
                let label = format!("data {i}");
                raw.create(
                    s,
                    &[
                        (CKA_CLASS, ul(CKO_DATA)),
                        (CKA_TOKEN, TRUE.to_vec()),
                        (CKA_LABEL, label.into_bytes()),
                        (CKA_VALUE, vec![i as u8; 100]),
                    ],
                )
                .unwrap();
            }
        });
        for (i, name) in certs.iter().enumerate() {
            let file = exports.join(format!("{name}.der"));
            run(Command::new("certutil").args([
                "-A",
                "-d",
                &db,
                "-n",
                &format!("nss cert {i}"),
                "-t",
                ",,",
                "-i",
                &file.display().to_string(),
            ]));
        }
        writer.join().unwrap();
    });

    let listed = run(Command::new("certutil").args(["-L", "-d", &db]));
    assert_eq!(
        listed
            .lines()
            .filter(|l| l.starts_with("nss cert "))
            .count(),
        certs.len(),
        "{listed}"
    );
    let s = raw.open(slot, false).unwrap();
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_DATA))]).unwrap().len(),
        OBJECTS
    );
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_CERTIFICATE))])
            .unwrap()
            .len(),
        certs.len()
    );
    for i in [0, OBJECTS / 2, OBJECTS - 1] {
        let h = raw
            .find(s, &[(CKA_LABEL, format!("data {i}").into_bytes())])
            .unwrap();
        assert_eq!(raw.get(s, h[0], CKA_VALUE).unwrap(), vec![i as u8; 100]);
    }
}

/// softoken's writes of cert9.db objects (public keys with their integrity
/// records in key4.db, certificates) and of key4.db keys while NSS's
/// certutil adds and deletes a trusted certificate in the same directory:
/// the two take the databases' write locks in the same order (cert9.db,
/// then key4.db, as NSS's sftkdb does), so neither waits on the other
/// while holding a lock the other needs. Before, softoken took key4.db
/// first: both sides then stalled until a busy timeout broke the cycle,
/// and softoken's callers got CKR_DEVICE_ERROR.
#[test]
fn module_writes_and_certutil_trust_writes_never_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", dir.path().display());
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    // At least this many writes, and on until certutil's rounds are over.
    const KEYS: usize = 300;
    const ROUNDS: usize = 12;
    // certutil's certificate, and another for the module's (NSS would take
    // the same certificate for the module's object and rename that).
    let peer = fixtures().join("exports").join("Fixture_Peer.der");
    let bob_der = std::fs::read(fixtures().join("exports").join("Fixture_Bob.der")).unwrap();
    let bob = cert_fields(&bob_der);
    let done = std::sync::atomic::AtomicBool::new(false);
    // Bounds the test where a lock cycle would stall it for good.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (errors, slowest, written, certutil_failures) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let s = raw.open(slot, true).unwrap();
            let mut errors = Vec::new();
            let mut slowest = std::time::Duration::ZERO;
            let mut i = 0;
            while (i < KEYS || !done.load(std::sync::atomic::Ordering::Acquire))
                && std::time::Instant::now() < deadline
            {
                let label = format!("key {i}").into_bytes();
                let template = match i % 3 {
                    // A cert9.db object whose CKA_MODULUS is signed in key4.db.
                    0 => vec![
                        (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
                        (CKA_KEY_TYPE, ul(CKK_RSA)),
                        (CKA_TOKEN, TRUE.to_vec()),
                        (CKA_LABEL, label),
                        (CKA_MODULUS, [vec![0xc5], vec![i as u8; 255]].concat()),
                        (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
                    ],
                    // A key4.db key.
                    1 => vec![
                        (CKA_CLASS, ul(CKO_SECRET_KEY)),
                        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                        (CKA_TOKEN, TRUE.to_vec()),
                        (CKA_LABEL, label),
                        (CKA_VALUE, vec![i as u8; 32]),
                    ],
                    // A certificate.
                    _ => vec![
                        (CKA_CLASS, ul(CKO_CERTIFICATE)),
                        (CKA_CERTIFICATE_TYPE, ul(CKC_X_509)),
                        (CKA_TOKEN, TRUE.to_vec()),
                        (CKA_LABEL, label),
                        (CKA_ID, vec![i as u8; 20]),
                        (CKA_SUBJECT, bob.subject.clone()),
                        (CKA_ISSUER, bob.issuer.clone()),
                        (CKA_SERIAL_NUMBER, bob.serial.clone()),
                        (CKA_VALUE, bob_der.clone()),
                    ],
                };
                let started = std::time::Instant::now();
                if let Err(rv) = raw.create(s, &template) {
                    errors.push((i, rv));
                }
                slowest = slowest.max(started.elapsed());
                i += 1;
            }
            (errors, slowest, i)
        });
        let mut failures = Vec::new();
        for round in 0..ROUNDS {
            if std::time::Instant::now() >= deadline {
                failures.push(format!("round {round}: out of time"));
                break;
            }
            let nickname = format!("trusted {round}");
            for args in [
                vec!["-A", "-t", "C,,", "-i", peer.to_str().unwrap()],
                vec!["-D"],
            ] {
                let out = Command::new("timeout")
                    .arg("60")
                    .arg("certutil")
                    .args(&args)
                    .args(["-n", &nickname, "-d", &db])
                    .output()
                    .unwrap();
                if !out.status.success() {
                    failures.push(format!(
                        "{args:?} {nickname}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        let (errors, slowest, written) = writer.join().unwrap();
        (errors, slowest, written, failures)
    });
    assert_eq!(errors, vec![], "the module's writes failed");
    assert!(written >= KEYS, "{written} writes in the time");
    assert_eq!(certutil_failures, Vec::<String>::new(), "certutil failed");
    // A lock cycle shows as a write held up for a whole busy timeout (one
    // second per try, thirty tries) until one side gives up; an ordinary
    // wait for the other writer's commit is milliseconds.
    assert!(
        slowest < std::time::Duration::from_secs(5),
        "a write waited {slowest:?}"
    );
    let s = raw.open(slot, false).unwrap();
    assert_eq!(
        raw.find(s, &[(CKA_TOKEN, TRUE.to_vec())]).unwrap().len(),
        written
    );
}

/// certutil sets the password of databases the module made: with -W from
/// the empty password of a new database, and with -N once C_InitToken left
/// the token without a user PIN.
#[test]
fn certutil_sets_passwords_on_module_databases() {
    let files = tempfile::tempdir().unwrap();
    let empty = write(files.path(), "empty", "\n");
    let pw = write(files.path(), "pw", DB_PW);

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", dir.path().display());
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    assert_eq!(raw.token_info(slot).flags & CKF_LOGIN_REQUIRED, 0);
    assert_eq!(raw.finalize(), CKR_OK);
    run(Command::new("certutil").args(["-W", "-d", &db, "-f", &empty, "-@", &pw]));
    assert_eq!(raw.initialize(Some(&sql_params(dir.path()))), CKR_OK);
    assert_ne!(raw.token_info(slot).flags & CKF_LOGIN_REQUIRED, 0);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, DB_PW), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", dir.path().display());
    assert_eq!(raw.initialize(Some(&sql_params(dir.path()))), CKR_OK);
    assert_eq!(raw.init_token(slot, "so", "for certutil"), CKR_OK);
    assert_eq!(raw.token_info(slot).flags & CKF_USER_PIN_INITIALIZED, 0);
    assert_eq!(raw.finalize(), CKR_OK);
    run(Command::new("certutil").args(["-N", "-d", &db, "-f", &pw]));
    assert_eq!(raw.initialize(Some(&sql_params(dir.path()))), CKR_OK);
    let info = raw.token_info(slot);
    assert_ne!(info.flags & CKF_USER_PIN_INITIALIZED, 0);
    assert_eq!(&info.label[..12], b"for certutil");
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "wrong"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, DB_PW), CKR_OK);
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_DATA)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_PRIVATE, TRUE.to_vec()),
        ],
    )
    .unwrap();
}

/// What a caller can read of the token's certificates and trust objects.
fn public_objects(raw: &Raw, s: CK_SESSION_HANDLE) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for (class, t) in [
        (CKO_CERTIFICATE, CKA_VALUE),
        (CKO_NSS_TRUST, CKA_TRUST_SERVER_AUTH),
    ] {
        for h in raw.find(s, &[(CKA_CLASS, ul(class))]).unwrap() {
            let label = raw.get(s, h, CKA_LABEL).unwrap_or_default();
            let value = raw.get(s, h, t).unwrap();
            seen.push((String::from_utf8(label).unwrap(), sha256_hex(&value)));
        }
    }
    seen.sort();
    seen
}

/// C_InitToken on a database NSS made (no SO PIN) does what NSS's reset
/// does (Firefox's "reset primary password"): keys and the password go,
/// certificates and their trust stay, and NSS lists them after. The SO PIN
/// given is set; from then on a wrong one is refused, and the right one
/// initialises the token wholly, as PKCS#11 has it.
#[test]
fn init_token_without_an_so_pin_keeps_certificates_and_trust() {
    let dir = copy_fixture("sql-pw");
    let db = format!("sql:{}", dir.path().display());
    let certs_before = run(Command::new("certutil").args(["-L", "-d", &db]));
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let public = public_objects(&raw, s);
    assert!(public.len() > 4, "{public:?}");
    assert!(!raw
        .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
        .unwrap()
        .is_empty());
    assert_eq!(raw.close(s), CKR_OK);

    assert_eq!(raw.init_token(slot, "so-pin", "reset"), CKR_OK);
    assert_eq!(raw.token_info(slot).flags & CKF_USER_PIN_INITIALIZED, 0);
    let s = raw.open(slot, true).unwrap();
    assert_eq!(public_objects(&raw, s), public);
    assert!(raw
        .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
        .unwrap()
        .is_empty());
    assert!(raw
        .find(s, &[(CKA_CLASS, ul(CKO_SECRET_KEY))])
        .unwrap()
        .is_empty());
    // NSS sees the certificates and trust, and no password.
    let listed = run(Command::new("certutil").args(["-L", "-d", &db]));
    assert_eq!(
        listed.replace("\nDatabase needs user init\n", ""),
        certs_before,
        "{listed}"
    );
    assert!(listed.contains("Database needs user init"), "{listed}");
    // A new password: the trust is signed under it and reads as before.
    assert_eq!(raw.login(s, CKU_SO, "so-pin"), CKR_OK);
    assert_eq!(raw.init_pin(s, NEW_PW), CKR_OK);
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(raw.login(s, CKU_USER, NEW_PW), CKR_OK);
    assert_eq!(public_objects(&raw, s), public);
    let pw = write(dir.path(), "pw", NEW_PW);
    assert_eq!(
        run(Command::new("certutil").args(["-L", "-d", &db])),
        certs_before
    );
    let keys = run_failing(Command::new("certutil").args(["-K", "-d", &db, "-f", &pw]));
    assert!(keys.contains("no keys found"), "{keys}");
    assert_eq!(raw.close(s), CKR_OK);

    // The SO PIN now set is demanded; the right one empties the token.
    assert_eq!(raw.init_token(slot, "guess", "x"), CKR_PIN_INCORRECT);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(public_objects(&raw, s), public);
    assert_eq!(raw.close(s), CKR_OK);
    assert_eq!(raw.init_token(slot, "so-pin", "empty"), CKR_OK);
    let s = raw.open(slot, false).unwrap();
    assert!(public_objects(&raw, s).is_empty());
}
