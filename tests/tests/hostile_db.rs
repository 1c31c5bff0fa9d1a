//! Database files written by an attacker or damaged: numbers read from disk
//! that would make the module compute for hours are refused at once, with
//! a code that says the database is at fault and a log line that names it.

use std::sync::mpsc;
use std::time::Duration;

use pkcs11_sys::*;
use sdb::SdbRead;
use softoken_tests::raw::{ul, Raw};
use softoken_tests::*;

/// NSS's iteration count for a password (what the fixture was made with).
const NSS_ITERATIONS: u64 = 10_000;
/// The count a hostile file carries: some three minutes of PBKDF2 here.
const HOSTILE_ITERATIONS: u64 = 0x7fff_ffff;
/// Longer than any refusal takes, far shorter than the hostile count's work.
const DEADLINE: Duration = Duration::from_secs(60);

/// Every test of this file logs to one file (the module reads SOFTOKEN_LOG
/// once per process); each looks for its own lines.
fn log_path() -> std::path::PathBuf {
    static LOG: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = LOG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::env::set_var("SOFTOKEN_LOG", dir.path().join("softoken.log"));
        dir
    });
    dir.path().join("softoken.log")
}

fn logged() -> String {
    std::fs::read_to_string(log_path()).unwrap_or_default()
}

/// Runs `body` on its own thread and fails the test if it has not finished
/// by the deadline (the hostile computation would take minutes).
fn within_deadline<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    rx.recv_timeout(DEADLINE)
        .expect("a hostile iteration count made the module compute past the deadline")
}

fn private_key(raw: &Raw, s: CK_SESSION_HANDLE, id: &[u8]) -> CK_OBJECT_HANDLE {
    let found = raw
        .find(
            s,
            &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, id.to_vec())],
        )
        .unwrap();
    assert_eq!(found.len(), 1);
    found[0]
}

/// The key4.db object id of the private key with CKA_ID `id`.
fn stored_key_id(opened: &sdb_sqlite::Opened, id: &[u8]) -> sdb::ObjectId {
    let ids = opened
        .key
        .find(&[(CKA_CLASS, &[0, 0, 0, 3]), (CKA_ID, id)])
        .unwrap()
        .next_batch(10);
    assert_eq!(ids.len(), 1);
    ids[0]
}

#[test]
fn password_entry_with_a_hostile_iteration_count_is_refused_at_once() {
    log_path();
    let dir = copy_fixture("sql-pw");
    let opened = open_databases(dir.path(), false);
    let mut entry = opened.key.get_password_entry().unwrap().unwrap();
    let forged = der_replace_integer(&entry.value, NSS_ITERATIONS, HOSTILE_ITERATIONS);
    assert_ne!(forged, entry.value, "the entry has NSS's iteration count");
    entry.value = forged;
    let mut txn = sdb::Sdb::begin(&opened.key).unwrap();
    txn.put_password_entry(&entry).unwrap();
    txn.commit().unwrap();
    drop(opened);
    let before = std::fs::read(dir.path().join("key4.db")).unwrap();

    let params = sql_params(dir.path());
    let (wrong, right) = within_deadline(move || {
        let raw = Raw::with_params(&params);
        let s = raw.open(raw.slots()[0], false).unwrap();
        (
            raw.login(s, CKU_USER, "not-the-password"),
            raw.login(s, CKU_USER, "fixture-pw"),
        )
    });
    // Not CKR_PIN_INCORRECT: no password is right for a damaged entry, and
    // a caller counting wrong PINs must not be told it guessed wrong.
    assert_eq!(wrong, CKR_DEVICE_ERROR);
    assert_eq!(right, CKR_DEVICE_ERROR);
    assert_eq!(std::fs::read(dir.path().join("key4.db")).unwrap(), before);
    let log = logged();
    assert!(
        log.contains("asks for 2147483647 PBKDF2 iterations"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&dir.path().display().to_string())
                && l.contains("password entry is damaged")),
        "{log}"
    );

    let token = open_token(dir.path());
    let answer = within_deadline(move || token.login(b"fixture-pw"));
    assert_eq!(answer, Err(softoken::admin::Rv::DeviceError));
}

/// One hostile encrypted value and one hostile integrity record: those two
/// keys fail at once (the log names each), every other key still signs,
/// and the check reports both.
#[test]
fn values_and_records_with_hostile_iteration_counts_fail_alone() {
    log_path();
    let dir = copy_fixture("sql-pw");
    let rsa: Vec<Vec<u8>> = manifest("sql-pw")["expected"]["private_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["key_type"] == "CKK_RSA")
        .map(|k| hex::decode(k["cka_id"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(rsa.len(), 3);
    let opened = open_databases(dir.path(), false);
    let value_key = stored_key_id(&opened, &rsa[0]);
    let record_key = stored_key_id(&opened, &rsa[1]);
    let exponent = opened
        .key
        .get_attributes(value_key, &[CKA_PRIVATE_EXPONENT])
        .unwrap()[0]
        .clone()
        .unwrap();
    let record_name = format!("sig_key_{record_key:08x}_{:08x}", CKA_PRIVATE_EXPONENT);
    let record = opened.key.get_metadata(&record_name).unwrap().unwrap();
    let mut txn = sdb::Sdb::begin(&opened.key).unwrap();
    let forged_value = der_replace_integer(&exponent, NSS_ITERATIONS, HOSTILE_ITERATIONS);
    assert_ne!(forged_value, exponent);
    txn.set_attributes(value_key, &[(CKA_PRIVATE_EXPONENT, &forged_value)])
        .unwrap();
    let forged_record = der_replace_integer(&record.item1, NSS_ITERATIONS, HOSTILE_ITERATIONS);
    assert_ne!(forged_record, record.item1);
    txn.put_metadata(&record_name, &forged_record, record.item2.as_deref())
        .unwrap();
    txn.commit().unwrap();
    drop(opened);

    let params = sql_params(dir.path());
    let ids = rsa.clone();
    let signed = within_deadline(move || {
        let raw = Raw::with_params(&params);
        let s = raw.open(raw.slots()[0], false).unwrap();
        assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
        ids.iter()
            .map(|id| {
                let key = private_key(&raw, s, id);
                raw.sign(s, CKM_SHA256_RSA_PKCS, vec![], key, b"data")
                    .map(|_| ())
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(
        signed,
        vec![Err(CKR_DEVICE_ERROR), Err(CKR_DEVICE_ERROR), Ok(())]
    );
    let log = logged();
    for (id, what) in [
        (value_key, "does not decrypt"),
        (record_key, "integrity record"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("object {id:#x} ")) && l.contains(what)),
            "{id:#x} {what}: {log}"
        );
    }

    let token = open_token(dir.path());
    let report = within_deadline(move || {
        token.login(b"fixture-pw").unwrap();
        token.check(&mut |_, _| {}).unwrap()
    });
    let failed: Vec<CK_ATTRIBUTE_TYPE> = report.failures.iter().map(|f| f.1).collect();
    assert_eq!(failed, [CKA_PRIVATE_EXPONENT; 2], "{:?}", report.failures);
    assert_ne!(report.failures[0].0, report.failures[1].0);
}

/// A deleted integrity record and a password entry replaced by one whose
/// password the attacker knows: each reported, never garbage. With the
/// replaced entry the attacker's password logs in, and no key opens.
#[test]
fn a_deleted_record_and_a_replaced_password_entry_are_detected() {
    log_path();
    let dir = copy_fixture("sql-pw");
    let ids: Vec<Vec<u8>> = manifest("sql-pw")["expected"]["private_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| hex::decode(k["cka_id"].as_str().unwrap()).unwrap())
        .collect();
    let opened = open_databases(dir.path(), false);
    let first = stored_key_id(&opened, &ids[1]);
    let record = format!("sig_key_{first:08x}_{:08x}", CKA_PRIVATE_EXPONENT);
    let mut txn = sdb::Sdb::begin(&opened.key).unwrap();
    txn.delete_metadata(&record).unwrap();
    txn.commit().unwrap();
    drop(opened);
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let key = private_key(&raw, s, &ids[1]);
    assert_eq!(
        raw.sign(s, CKM_SHA256_RSA_PKCS, vec![], key, b"data"),
        Err(CKR_DEVICE_ERROR)
    );
    assert!(logged()
        .lines()
        .any(|l| l.contains(&format!("object {first:#x} ")) && l.contains("no integrity record")));
    drop(raw);

    // The attacker's own database gives its password entry.
    let attacker = tempfile::tempdir().unwrap();
    {
        let raw = Raw::with_params(&sql_params(attacker.path()));
        let s = raw.open(raw.slots()[0], true).unwrap();
        assert_eq!(raw.set_pin(s, "", "attacker"), CKR_OK);
    }
    let entry = open_databases(attacker.path(), true)
        .key
        .get_password_entry()
        .unwrap()
        .unwrap();
    let opened = open_databases(dir.path(), false);
    let mut txn = sdb::Sdb::begin(&opened.key).unwrap();
    txn.put_password_entry(&entry).unwrap();
    txn.commit().unwrap();
    drop(opened);
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, "attacker"), CKR_OK);
    for id in &ids {
        let key = private_key(&raw, s, id);
        let mechanism = if raw.get(s, key, CKA_KEY_TYPE).unwrap() == ul(CKK_EC) {
            CKM_ECDSA_SHA256
        } else {
            CKM_SHA256_RSA_PKCS
        };
        assert_eq!(
            raw.sign(s, mechanism, vec![], key, b"data"),
            Err(CKR_DEVICE_ERROR),
            "a key opened under another password"
        );
    }
    let token = open_token(dir.path());
    token.login(b"attacker").unwrap();
    let report = token.check(&mut |_, _| {}).unwrap();
    // A value may pass CBC's padding check under the wrong key (one in 256
    // or so); its integrity record then fails: nothing verifies.
    assert!(
        report.verified == 0 && report.failures.len() >= ids.len(),
        "{report:?}"
    );
}
