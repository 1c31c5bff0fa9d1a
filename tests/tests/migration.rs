//! Updating legacy databases (NSS's Mode 2): a `sql:` directory that holds
//! only cert8.db/key3.db. The module's update of a copy of `dbm-pw` must
//! list exactly what NSS's own update (`dbm-pw-upgraded`) lists, leave the
//! legacy files byte-identical, survive being interrupted, and give a
//! database NSS's tools use without the legacy files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw};
use softoken_tests::*;

const LEGACY_FILES: [&str; 3] = ["cert8.db", "key3.db", "secmod.db"];

/// The legacy files' contents, to show they are never written.
fn legacy_bytes(dir: &Path) -> BTreeMap<&'static str, Vec<u8>> {
    LEGACY_FILES
        .iter()
        .map(|f| (*f, std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

fn password(fixture: &str) -> String {
    manifest(fixture)["password"].as_str().unwrap().to_owned()
}

fn count(raw: &Raw, s: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS) -> usize {
    raw.find(s, &[(CKA_CLASS, ul(class))]).unwrap().len()
}

/// Moves the legacy files out of `dir`, so that only the new database is
/// left to read.
fn remove_legacy_files(dir: &Path) {
    for f in LEGACY_FILES {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
}

#[test]
fn update_of_a_password_database_lists_what_nss_update_lists() {
    let dir = copy_fixture("dbm-pw");
    let before = legacy_bytes(dir.path());
    let pw = password("dbm-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    // Until the keys are copied the token has the legacy password.
    let info = raw.token_info(slot);
    assert_ne!(info.flags & CKF_USER_PIN_INITIALIZED, 0);
    assert_ne!(info.flags & CKF_LOGIN_REQUIRED, 0);
    assert!(dir.path().join("cert9.db").exists() && dir.path().join("key4.db").exists());

    // The certificate side is there at once.
    let s = raw.open(slot, false).unwrap();
    let expected_certs = manifest("dbm-pw-upgraded")["expected"]["certificates"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(count(&raw, s, CKO_CERTIFICATE), expected_certs);
    assert_eq!(count(&raw, s, CKO_PRIVATE_KEY), 0);
    assert_eq!(
        raw.login(s, CKU_USER, "not the password"),
        CKR_PIN_INCORRECT
    );
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(
        listed_objects(&raw, s),
        nss_listed_objects("dbm-pw-upgraded")
    );
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(legacy_bytes(dir.path()), before, "legacy files written");

    // The new database alone holds it all, under the legacy password.
    remove_legacy_files(dir.path());
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(slot, false).unwrap();
    assert_eq!(count(&raw, s, CKO_PRIVATE_KEY), 0);
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(
        listed_objects(&raw, s),
        nss_listed_objects("dbm-pw-upgraded")
    );
    assert_eq!(raw.finalize(), CKR_OK);
    let token = open_token(dir.path());
    token.login(pw.as_bytes()).unwrap();
    let report = token.check(&mut |_, _| {}).unwrap();
    assert!(
        report.failures.is_empty() && report.orphaned_records.is_empty(),
        "{report:?}"
    );
    // Every private value and every trust and public key value is signed.
    assert!(report.verified > 0 && report.decrypted > 0, "{report:?}");
}

#[test]
fn nss_uses_the_updated_database_without_the_legacy_files() {
    let dir = copy_fixture("dbm-pw");
    let files = tempfile::tempdir().unwrap();
    let pw = password("dbm-pw");
    let pw_file = files.path().join("pw");
    std::fs::write(&pw_file, &pw).unwrap();
    let pw_file = pw_file.display().to_string();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    remove_legacy_files(dir.path());

    let db = format!("sql:{}", dir.path().display());
    let certs = run(Command::new("certutil").args(["-L", "-d", &db]));
    for c in manifest("dbm-pw-upgraded")["expected"]["certificates"]
        .as_array()
        .unwrap()
    {
        let nick = c["nickname"].as_str().unwrap();
        let trust = c["trust"].as_str().unwrap();
        assert!(
            certs
                .lines()
                .any(|l| l.starts_with(nick) && l.trim_end().ends_with(trust)),
            "{nick} {trust} not in:\n{certs}"
        );
    }
    let keys = run(Command::new("certutil").args(["-K", "-d", &db, "-f", &pw_file]));
    for k in manifest("dbm-pw-upgraded")["expected"]["private_keys"]
        .as_array()
        .unwrap()
    {
        let id = k["cka_id"].as_str().unwrap();
        assert!(keys.contains(id), "key {id} not in:\n{keys}");
    }
    // NSS signs with a copied key: a certificate request made with the RSA
    // user's key verifies with that certificate's public key.
    let request = files.path().join("req.der").display().to_string();
    run(Command::new("certutil").args([
        "-R",
        "-d",
        &db,
        "-f",
        &pw_file,
        "-k",
        "Fixture RSA User",
        "-s",
        "CN=Signed after the update",
        "-o",
        &request,
    ]));
    let verified = Command::new("openssl")
        .args([
            "req", "-inform", "DER", "-in", &request, "-verify", "-noout",
        ])
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
}

#[test]
fn read_only_open_uses_the_legacy_files_in_place() {
    let dir = copy_fixture("dbm-pw");
    let before = legacy_bytes(dir.path());
    let pw = password("dbm-pw");
    let raw = Raw::with_params(&format!("{}readOnly", sql_params(dir.path())));
    let slot = raw.slots()[0];
    assert_ne!(raw.token_info(slot).flags & CKF_WRITE_PROTECTED, 0);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    // NSS's listing of the legacy database itself.
    assert_eq!(listed_objects(&raw, s), nss_listed_objects("dbm-pw"));
    assert_eq!(raw.finalize(), CKR_OK);
    assert!(!dir.path().join("cert9.db").exists());
    assert!(!dir.path().join("key4.db").exists());
    assert_eq!(legacy_bytes(dir.path()), before);
}

#[test]
fn empty_legacy_password_updates_everything_at_open() {
    let dir = copy_fixture("dbm-empty-pw");
    let before = legacy_bytes(dir.path());
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    assert_eq!(raw.token_info(slot).flags & CKF_LOGIN_REQUIRED, 0);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(listed_objects(&raw, s), nss_listed_objects("dbm-empty-pw"));
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(legacy_bytes(dir.path()), before);
    remove_legacy_files(dir.path());
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(slot, false).unwrap();
    assert_eq!(listed_objects(&raw, s), nss_listed_objects("dbm-empty-pw"));
    assert_eq!(raw.finalize(), CKR_OK);
}

/// Opens that never log in leave the update waiting; none of them copies
/// anything twice, and the login of a later one finishes it.
#[test]
fn waiting_update_is_resumed_by_later_opens_without_duplicates() {
    let dir = copy_fixture("dbm-pw");
    let before = legacy_bytes(dir.path());
    let pw = password("dbm-pw");
    for _ in 0..3 {
        let raw = Raw::with_params(&sql_params(dir.path()));
        let s = raw.open(raw.slots()[0], false).unwrap();
        assert_eq!(count(&raw, s, CKO_CERTIFICATE), 6);
        assert_eq!(raw.finalize(), CKR_OK);
    }
    // Read-only meanwhile: the legacy files in place, the keys included.
    let raw = Raw::with_params(&format!("{}readOnly", sql_params(dir.path())));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(count(&raw, s, CKO_PRIVATE_KEY), 4);
    assert_eq!(raw.finalize(), CKR_OK);

    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(
        listed_objects(&raw, s),
        nss_listed_objects("dbm-pw-upgraded")
    );
    let every = raw.find(s, &[]).unwrap().len();
    assert_eq!(every, nss_listed_objects("dbm-pw-upgraded").len());
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(legacy_bytes(dir.path()), before);
}

/// C_SetPIN before any login finishes the update with the old (legacy)
/// password and then changes it.
#[test]
fn set_pin_while_the_update_waits_copies_then_changes_the_password() {
    let dir = copy_fixture("dbm-pw");
    let pw = password("dbm-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.set_pin(s, "wrong", "new password"), CKR_PIN_INCORRECT);
    assert_eq!(raw.set_pin(s, &pw, "new password"), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    remove_legacy_files(dir.path());
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, "new password"), CKR_OK);
    assert_eq!(
        listed_objects(&raw, s),
        nss_listed_objects("dbm-pw-upgraded")
    );
    assert_eq!(raw.finalize(), CKR_OK);
}
