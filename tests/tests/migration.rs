//! Updating legacy databases (NSS's Mode 2): a `sql:` directory that holds
//! only cert8.db/key3.db. The module's update of a copy of `dbm-pw` must
//! list exactly what NSS's own update (`dbm-pw-upgraded`) lists, leave the
//! legacy files byte-identical, survive being interrupted, and give a
//! database NSS's tools use without the legacy files.

use std::collections::{BTreeMap, BTreeSet};
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

/// The parameters of a Mode 3 merge of `source` (legacy files) into the
/// database of `target`.
fn merge_params(target: &Path, source: &Path, extra: &str) -> String {
    format!(
        "{} updatedir='{}' updateid='app-legacy-1' updateTokenDescription='App Legacy Token' {extra}",
        sql_params(target),
        source.display()
    )
}

fn label(raw: &Raw, slot: CK_SLOT_ID) -> String {
    String::from_utf8_lossy(&raw.token_info(slot).label)
        .trim_end()
        .to_owned()
}

fn slot_flags(raw: &Raw, slot: CK_SLOT_ID) -> CK_FLAGS {
    raw.slot_info(slot).flags
}

/// What a database holds, as the module lists it after logging in.
fn listing(dir: &Path, pw: &str) -> std::collections::BTreeSet<(String, String, String)> {
    let raw = Raw::with_params(&format!("{}readOnly", sql_params(dir)));
    let s = raw.open(raw.slots()[0], false).unwrap();
    if !pw.is_empty() {
        assert_eq!(raw.login(s, CKU_USER, pw), CKR_OK);
    }
    let listed = listed_objects(&raw, s);
    assert_eq!(raw.finalize(), CKR_OK);
    listed
}

/// The merge NSS's fixture shows (`mode3-upgraded`, made with certutil
/// --upgrade-merge): the shared database's password differs from the
/// legacy one, so the first C_Login takes the legacy password, the token is
/// "removed", and the second takes the shared one.
#[test]
fn merge_update_with_two_passwords_equals_nss_merge() {
    let target = copy_fixture("mode3-upgraded/before");
    let source = copy_fixture("mode3-upgraded/legacy");
    let before = legacy_bytes(source.path());
    let raw = Raw::with_params(&merge_params(target.path(), source.path(), ""));
    let slot = raw.slots()[0];
    assert_eq!(label(&raw, slot), "App Legacy Token");
    assert_ne!(slot_flags(&raw, slot) & CKF_REMOVABLE_DEVICE, 0);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "shared-pw"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    // The token was "removed": the session is gone, the label is the
    // database's own and it wants its own password.
    assert_eq!(
        raw.login(s, CKU_USER, "shared-pw"),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(label(&raw, slot), "softoken");
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_PIN_INCORRECT);
    assert_eq!(raw.login(s, CKU_USER, "shared-pw"), CKR_OK);
    assert_eq!(
        listed_objects(&raw, s),
        nss_listed_objects("mode3-upgraded")
    );
    assert_eq!(slot_flags(&raw, slot) & CKF_REMOVABLE_DEVICE, 0);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(legacy_bytes(source.path()), before);

    // Done once: the next open with the same parameters merges nothing.
    let raw = Raw::with_params(&merge_params(target.path(), source.path(), ""));
    assert_eq!(label(&raw, slot), "softoken");
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "shared-pw"), CKR_OK);
    assert_eq!(
        raw.find(s, &[]).unwrap().len(),
        nss_listed_objects("mode3-upgraded").len()
    );
    assert_eq!(raw.finalize(), CKR_OK);
    let token = open_token(target.path());
    token.login(b"shared-pw").unwrap();
    let report = token.check(&mut |_, _| {}).unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
}

/// NSS's own merge of a copy of `source` into `target` (certutil
/// --upgrade-merge), for comparison.
fn nss_upgrade_merge(target: &Path, source: &Path, target_pw: &str, source_pw: &str) {
    let files = tempfile::tempdir().unwrap();
    let work = files.path().join("source");
    std::fs::create_dir(&work).unwrap();
    for f in LEGACY_FILES {
        std::fs::copy(source.join(f), work.join(f)).unwrap();
    }
    let pw = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    run(Command::new("certutil").args([
        "--upgrade-merge",
        "-d",
        &format!("sql:{}", target.display()),
        "-f",
        &pw("target-pw", target_pw),
        "--source-dir",
        &work.display().to_string(),
        "--upgrade-id",
        "app-legacy-1",
        "--upgrade-token-name",
        "App Legacy Token",
        "-@",
        &pw("source-pw", source_pw),
    ]));
}

/// A copy of the shared database of `mode3-upgraded` with its password
/// changed to `pw` (certutil -W).
fn shared_database_with_password(pw: &str) -> tempfile::TempDir {
    let dir = copy_fixture("mode3-upgraded/before");
    let files = tempfile::tempdir().unwrap();
    let (old, new) = (files.path().join("old"), files.path().join("new"));
    std::fs::write(&old, "shared-pw").unwrap();
    std::fs::write(&new, pw).unwrap();
    let mut cmd = Command::new("certutil");
    cmd.args(["-W", "-d", &format!("sql:{}", dir.path().display())])
        .arg("-f")
        .arg(&old)
        .arg("-@")
        .arg(&new);
    if pw.is_empty() {
        cmd.arg("--empty-password");
    }
    run(&mut cmd);
    dir
}

/// Both databases with the same password: one C_Login merges, as with
/// NSS, and the result lists what NSS's merge lists.
#[test]
fn merge_update_with_one_password_for_both() {
    let pw = password("dbm-pw");
    let source = copy_fixture("dbm-pw");
    let ours = shared_database_with_password(&pw);
    let theirs = shared_database_with_password(&pw);
    nss_upgrade_merge(theirs.path(), source.path(), &pw, &pw);

    let raw = Raw::with_params(&merge_params(ours.path(), source.path(), ""));
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(raw.session_info(s).state, CKS_RO_USER_FUNCTIONS);
    assert_eq!(label(&raw, slot), "softoken");
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(listing(ours.path(), &pw), listing(theirs.path(), &pw));
}

/// A shared database with the empty password keeps it: the source's
/// password is all the merge asks for, as with NSS.
#[test]
fn merge_update_into_a_database_with_the_empty_password() {
    let pw = password("dbm-pw");
    let source = copy_fixture("dbm-pw");
    let ours = shared_database_with_password("");
    let theirs = shared_database_with_password("");
    // certutil wants a password file with data for the shared database
    // even when its password is empty (which then accepts any).
    nss_upgrade_merge(theirs.path(), source.path(), &pw, &pw);

    let raw = Raw::with_params(&merge_params(ours.path(), source.path(), ""));
    let slot = raw.slots()[0];
    assert_eq!(label(&raw, slot), "App Legacy Token");
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(listing(ours.path(), ""), listing(theirs.path(), ""));
    let raw = Raw::with_params(&sql_params(ours.path()));
    assert_eq!(raw.token_info(slot).flags & CKF_LOGIN_REQUIRED, 0);
    assert_eq!(raw.finalize(), CKR_OK);
}

/// A new shared database takes everything and the source's password.
/// (NSS 3.87's certutil --upgrade-merge into a directory without a
/// database merges only part of it: one certificate, no keys, and no
/// upd_cert row.)
#[test]
fn merge_update_into_a_new_database_takes_the_source_password() {
    let pw = password("dbm-pw");
    let source = copy_fixture("dbm-pw");
    let target = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&merge_params(target.path(), source.path(), ""));
    let slot = raw.slots()[0];
    let info = raw.token_info(slot);
    assert_ne!(info.flags & CKF_LOGIN_REQUIRED, 0);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(
        listing(target.path(), &pw),
        nss_listed_objects("dbm-pw-upgraded")
    );
}

/// The source's password never given: by default (NSS's) nothing is
/// merged and every open asks again; `updateNoSourcePassword=public`
/// merges certificates, trust, CRLs and S/MIME records without it and
/// leaves the keys behind; `skip` marks the merge done with nothing
/// merged.
#[test]
fn merge_update_without_the_source_password() {
    let source = copy_fixture("dbm-pw");
    let before = listing(copy_fixture("mode3-upgraded/before").path(), "shared-pw");
    let classes = |listed: &std::collections::BTreeSet<(String, String, String)>, class: &str| {
        listed.iter().filter(|o| o.0 == class).count()
    };

    let target = copy_fixture("mode3-upgraded/before");
    for _ in 0..2 {
        let raw = Raw::with_params(&merge_params(target.path(), source.path(), ""));
        assert_eq!(label(&raw, raw.slots()[0]), "App Legacy Token");
        assert_eq!(raw.finalize(), CKR_OK);
    }
    assert_eq!(listing(target.path(), "shared-pw"), before);

    let target = copy_fixture("mode3-upgraded/before");
    let raw = Raw::with_params(&merge_params(
        target.path(),
        source.path(),
        "updateNoSourcePassword=public",
    ));
    let slot = raw.slots()[0];
    assert_eq!(label(&raw, slot), "softoken");
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "shared-pw"), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    let merged = listing(target.path(), "shared-pw");
    let all = nss_listed_objects("mode3-upgraded");
    assert_eq!(
        classes(&merged, "CKO_CERTIFICATE"),
        classes(&all, "CKO_CERTIFICATE")
    );
    assert_eq!(
        classes(&merged, "CKO_NSS_TRUST"),
        classes(&all, "CKO_NSS_TRUST")
    );
    assert_eq!(
        classes(&merged, "CKO_NSS_SMIME"),
        classes(&all, "CKO_NSS_SMIME")
    );
    assert_eq!(
        classes(&merged, "CKO_PRIVATE_KEY"),
        classes(&before, "CKO_PRIVATE_KEY")
    );
    // Done: the source is not asked for again.
    let raw = Raw::with_params(&merge_params(target.path(), source.path(), ""));
    assert_eq!(label(&raw, slot), "softoken");
    assert_eq!(raw.finalize(), CKR_OK);

    let target = copy_fixture("mode3-upgraded/before");
    let raw = Raw::with_params(&merge_params(
        target.path(),
        source.path(),
        "updateNoSourcePassword=skip",
    ));
    assert_eq!(label(&raw, slot), "softoken");
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(listing(target.path(), "shared-pw"), before);
    let raw = Raw::with_params(&merge_params(target.path(), source.path(), ""));
    assert_eq!(label(&raw, slot), "softoken");
    assert_eq!(raw.finalize(), CKR_OK);
    let bad = Raw::load();
    assert_eq!(
        bad.initialize(Some(&merge_params(
            target.path(),
            source.path(),
            "updateNoSourcePassword=maybe"
        ))),
        CKR_ARGUMENTS_BAD
    );
}

/// The source of a merge, opened read-only as `softoken-modutil merge`
/// opens it, logged in when `pw` is given.
fn merge_source(params: &str, pw: Option<&str>) -> softoken::admin::Database {
    let from = open_token_with(&format!("{params}readOnly"));
    if let Some(pw) = pw {
        from.login(pw.as_bytes()).unwrap();
    }
    from
}

/// Every merged RSA public key is whole: its modulus is its private key's
/// (NSS 3.87's merge stores the CKA_ID there instead).
fn assert_rsa_public_keys_whole(dir: &Path, pw: &str) {
    let raw = Raw::with_params(&format!("{}readOnly", sql_params(dir)));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, pw), CKR_OK);
    let public = raw
        .find(
            s,
            &[(CKA_CLASS, ul(CKO_PUBLIC_KEY)), (CKA_KEY_TYPE, ul(CKK_RSA))],
        )
        .unwrap();
    assert!(!public.is_empty());
    for h in public {
        let id = raw.get(s, h, CKA_ID).unwrap();
        let modulus = raw.get(s, h, CKA_MODULUS).unwrap();
        let private = raw
            .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, id.clone())])
            .unwrap();
        assert_eq!(private.len(), 1, "key {}", hex::encode(&id));
        assert_eq!(raw.get(s, private[0], CKA_MODULUS).unwrap(), modulus);
        assert_ne!(modulus, id);
    }
    assert_eq!(raw.finalize(), CKR_OK);
}

/// `softoken-modutil merge`'s engine against NSS's (`merge-sql`, made with
/// certutil --merge): the same objects, every RSA public key whole, the
/// source untouched, and a second run changes nothing.
#[test]
fn merge_of_a_database_lists_what_nss_merge_lists() {
    let target = copy_fixture("merge-sql/before");
    let source = copy_fixture("merge-sql/source");
    let files = |dir: &Path| ["cert9.db", "key4.db"].map(|f| std::fs::read(dir.join(f)).unwrap());
    let source_before = files(source.path());
    let merge = || {
        let into = open_token(target.path());
        into.login(b"target-pw").unwrap();
        let from = merge_source(&sql_params(source.path()), Some("fixture-pw"));
        into.merge_from(&from, &mut |_, _| {}).unwrap()
    };
    let first = merge();
    assert!(first.skipped.is_empty(), "{first:?}");
    assert!(first.counts.added > 0, "{first:?}");
    let nss = nss_listed_objects("merge-sql");
    assert_eq!(listing(target.path(), "target-pw"), nss);
    let second = merge();
    assert_eq!(
        (
            second.counts.added,
            second.counts.updated,
            second.counts.renamed
        ),
        (0, 0, 0),
        "{second:?}"
    );
    assert_eq!(listing(target.path(), "target-pw"), nss);
    assert_rsa_public_keys_whole(target.path(), "target-pw");
    assert_eq!(files(source.path()), source_before);
    let token = open_token(target.path());
    token.login(b"target-pw").unwrap();
    let report = token.check(&mut |_, _| {}).unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
}

/// A legacy database merges the objects NSS's update copies, whether named
/// `dbm:DIR` or as a `sql:` directory of legacy files (read in place); each
/// certificate gets its key's CKA_ID, as NSS's merge gives it (the update
/// keeps the legacy database's empty ones).
#[test]
fn merge_of_a_legacy_database_copies_what_the_update_copies() {
    let without_certificate_ids = |listed: BTreeSet<(String, String, String)>| {
        listed
            .into_iter()
            .map(|(class, label, id)| match class.as_str() {
                "CKO_CERTIFICATE" => (class, label, String::new()),
                _ => (class, label, id),
            })
            .collect::<BTreeSet<_>>()
    };
    let source = copy_fixture("dbm-pw");
    let before = legacy_bytes(source.path());
    for params in [dbm_params(source.path()), sql_params(source.path())] {
        let target = tempfile::tempdir().unwrap();
        // A new database, with the empty password.
        assert_eq!(
            Raw::with_params(&sql_params(target.path())).finalize(),
            CKR_OK
        );
        let into = open_token(target.path());
        let from = merge_source(&params, Some(&password("dbm-pw")));
        let report = into.merge_from(&from, &mut |_, _| {}).unwrap();
        assert!(report.skipped.is_empty(), "{params}: {report:?}");
        drop((into, from));
        let merged = listing(target.path(), "");
        assert!(
            merged
                .iter()
                .all(|(class, _, id)| class != "CKO_CERTIFICATE" || !id.is_empty()),
            "{merged:?}"
        );
        assert_eq!(
            without_certificate_ids(merged),
            without_certificate_ids(nss_listed_objects("dbm-pw-upgraded")),
            "{params}"
        );
        assert_rsa_public_keys_whole(target.path(), "");
    }
    assert_eq!(legacy_bytes(source.path()), before);
}

/// Without the source's password its private keys are left out and
/// reported; a later run with it adds them, and nothing twice.
#[test]
fn merge_without_the_source_password_leaves_private_keys_for_later() {
    let target = copy_fixture("merge-sql/before");
    let source = copy_fixture("merge-sql/source");
    let into = open_token(target.path());
    into.login(b"target-pw").unwrap();
    let without = merge_source(&sql_params(source.path()), None);
    let report = into.merge_from(&without, &mut |_, _| {}).unwrap();
    let source_private = manifest("sql-pw")["pkcs11_objects_via_nss_softoken"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["class"] == "CKO_PRIVATE_KEY")
        .count();
    assert_eq!(report.skipped.len(), source_private, "{report:?}");
    assert!(report
        .skipped
        .iter()
        .all(|(_, rv)| *rv == softoken::admin::Rv::UserNotLoggedIn));
    drop(into);
    let partial = listing(target.path(), "target-pw");
    let nss = nss_listed_objects("merge-sql");
    let private = |l: &std::collections::BTreeSet<(String, String, String)>| {
        l.iter().filter(|o| o.0 == "CKO_PRIVATE_KEY").count()
    };
    assert_eq!(private(&nss) - private(&partial), source_private);
    assert!(partial.is_subset(&nss));

    let into = open_token(target.path());
    into.login(b"target-pw").unwrap();
    let with = merge_source(&sql_params(source.path()), Some("fixture-pw"));
    let report = into.merge_from(&with, &mut |_, _| {}).unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(report.counts.added, source_private, "{report:?}");
    drop(into);
    assert_eq!(listing(target.path(), "target-pw"), nss);
}

/// A target that wants its password refuses until it is logged in, and
/// writes nothing.
#[test]
fn merge_into_a_database_without_its_login_is_refused() {
    let target = copy_fixture("merge-sql/before");
    let source = copy_fixture("merge-sql/source");
    let before = listing(target.path(), "target-pw");
    let into = open_token(target.path());
    let from = merge_source(&sql_params(source.path()), Some("fixture-pw"));
    assert_eq!(
        into.merge_from(&from, &mut |_, _| {}).unwrap_err(),
        softoken::admin::Rv::UserNotLoggedIn
    );
    drop(into);
    assert_eq!(listing(target.path(), "target-pw"), before);
    // A read-only target is refused as write-protected.
    let into = open_token_with(&format!("{}readOnly", sql_params(target.path())));
    into.login(b"target-pw").unwrap();
    assert_eq!(
        into.merge_from(&from, &mut |_, _| {}).unwrap_err(),
        softoken::admin::Rv::TokenWriteProtected
    );
}

/// The result as NSS's own softoken reads it, attribute by attribute, with
/// the values of `masked` ((class, attribute) pairs) left out: where the
/// module knowingly differs from NSS.
fn nss_sees(
    dir: &Path,
    pw: &str,
    masked: &[(CK_OBJECT_CLASS, CK_ATTRIBUTE_TYPE)],
) -> BTreeSet<String> {
    nss_view(dir, pw)
        .into_iter()
        .map(|object| {
            let mut attrs: Vec<String> = object.split(' ').map(str::to_owned).collect();
            for (class, t) in masked {
                let of_class = format!("{CKA_CLASS:#x}={}", hex::encode(ul(*class)));
                if attrs.contains(&of_class) {
                    attrs.retain(|a| {
                        !a.starts_with(&format!("{t:#x}=")) && !a.starts_with(&format!("{t:#x}:"))
                    });
                }
            }
            attrs.join(" ")
        })
        .collect()
}

/// The two views agree; else the objects only one of them has.
fn assert_same_view(ours: BTreeSet<String>, nss: BTreeSet<String>, what: &str) {
    let only_ours: Vec<&String> = ours.difference(&nss).collect();
    let only_nss: Vec<&String> = nss.difference(&ours).collect();
    // Each differing object by the attributes that differ from the
    // closest one of the other side.
    let attrs = |o: &str| {
        o.split(' ')
            .map(str::to_owned)
            .collect::<BTreeSet<String>>()
    };
    let differences: Vec<String> = only_ours
        .iter()
        .map(|o| {
            let mine = attrs(o);
            let closest = only_nss
                .iter()
                .map(|n| attrs(n))
                .min_by_key(|n| n.symmetric_difference(&mine).count())
                .unwrap_or_default();
            let ours: Vec<_> = mine.difference(&closest).collect();
            let theirs: Vec<_> = closest.difference(&mine).collect();
            let name: Vec<_> = mine
                .iter()
                .filter(|a| a.starts_with("0x0=") || a.starts_with("0x3="))
                .collect();
            format!("{name:?}: ours {ours:?} where NSS has {theirs:?}")
        })
        .collect();
    assert!(
        only_ours.is_empty() && only_nss.is_empty(),
        "{what}: {} objects only in ours, {} only in NSS's:\n{}",
        only_ours.len(),
        only_nss.len(),
        differences.join("\n")
    );
}

/// NSS reads each of the module's results (the Mode 2 update, the Mode 3
/// merge, the merge of one database into another) exactly as it reads its
/// own result from the same inputs: every attribute of every object, an
/// empty value and a missing one told apart.
#[test]
fn nss_reads_each_migration_as_it_reads_its_own() {
    // Mode 2.
    let dir = copy_fixture("dbm-pw");
    let pw = password("dbm-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_same_view(
        nss_sees(dir.path(), &pw, &[]),
        nss_sees(copy_fixture("dbm-pw-upgraded").path(), &pw, &[]),
        "Mode 2",
    );

    // Mode 3.
    let target = copy_fixture("mode3-upgraded/before");
    let source = copy_fixture("mode3-upgraded/legacy");
    let raw = Raw::with_params(&merge_params(target.path(), source.path(), ""));
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "shared-pw"), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_same_view(
        nss_sees(target.path(), "shared-pw", &[]),
        nss_sees(copy_fixture("mode3-upgraded").path(), "shared-pw", &[]),
        "Mode 3",
    );

    // A database merged into another.
    let target = copy_fixture("merge-sql/before");
    let source = copy_fixture("merge-sql/source");
    let into = open_token(target.path());
    into.login(b"target-pw").unwrap();
    let from = merge_source(&sql_params(source.path()), Some("fixture-pw"));
    into.merge_from(&from, &mut |_, _| {}).unwrap();
    drop((into, from));
    // Where NSS 3.87's merge is wrong, ours differs: it writes a merged RSA
    // public key's CKA_ID as its modulus, widens the usages of a merged
    // private key (CKA_SIGN_RECOVER from its key usage) and drops
    // attributes of a public key; ours keeps the source's values (the
    // modulus is checked above, in merge_of_a_database_lists_what_nss_merge_lists).
    let knowingly_different = [
        (CKO_PUBLIC_KEY, CKA_MODULUS),
        (CKO_PUBLIC_KEY, CKA_NEVER_EXTRACTABLE),
        (CKO_PRIVATE_KEY, CKA_SIGN_RECOVER),
    ];
    assert_same_view(
        nss_sees(target.path(), "target-pw", &knowingly_different),
        nss_sees(
            copy_fixture("merge-sql").path(),
            "target-pw",
            &knowingly_different,
        ),
        "merge",
    );
}

/// Data objects (NSS's merge leaves them out) are merged once: a second
/// run finds each by everything it holds.
#[test]
fn merged_data_objects_are_not_doubled() {
    let source = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(source.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    for (label, value) in [
        ("app config", b"one".to_vec()),
        ("app state", b"two".to_vec()),
    ] {
        raw.create(
            s,
            &[
                (CKA_CLASS, ul(CKO_DATA)),
                (CKA_TOKEN, vec![1]),
                (CKA_PRIVATE, vec![0]),
                (CKA_APPLICATION, b"an app".to_vec()),
                (CKA_LABEL, label.as_bytes().to_vec()),
                (CKA_VALUE, value),
            ],
        )
        .unwrap();
    }
    assert_eq!(raw.finalize(), CKR_OK);
    let target = copy_fixture("merge-sql/before");
    for run in 0..2 {
        let into = open_token(target.path());
        into.login(b"target-pw").unwrap();
        let from = merge_source(&sql_params(source.path()), None);
        let report = into.merge_from(&from, &mut |_, _| {}).unwrap();
        assert_eq!(
            report.counts.added,
            if run == 0 { 2 } else { 0 },
            "{report:?}"
        );
    }
    let raw = Raw::with_params(&sql_params(target.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.find(s, &[(CKA_CLASS, ul(CKO_DATA))]).unwrap().len(), 2);
    assert_eq!(raw.finalize(), CKR_OK);
}

/// A legacy database merged into a shared one: NSS reads the module's
/// result as it reads what certutil --merge makes from the same copies.
#[test]
fn merge_of_a_legacy_database_matches_certutil_merge() {
    let source = copy_fixture("dbm-pw");
    let pw = password("dbm-pw");
    let ours = copy_fixture("merge-sql/before");
    let into = open_token(ours.path());
    into.login(b"target-pw").unwrap();
    let from = merge_source(&dbm_params(source.path()), Some(&pw));
    let report = into.merge_from(&from, &mut |_, _| {}).unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    drop((into, from));

    let theirs = copy_fixture("merge-sql/before");
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    run(Command::new("certutil").args([
        "--merge",
        "-d",
        &format!("sql:{}", theirs.path().display()),
        "-f",
        &file("target", "target-pw"),
        "--source-dir",
        &format!("dbm:{}", source.path().display()),
        "-@",
        &file("source", &pw),
    ]));
    // Besides the differences of the merge above: NSS's merge loses a
    // legacy public key's label (its nickname), and sets none of the
    // sensitivity flags of a public key.
    let knowingly_different = [
        (CKO_PUBLIC_KEY, CKA_MODULUS),
        (CKO_PUBLIC_KEY, CKA_LABEL),
        (CKO_PUBLIC_KEY, CKA_EXTRACTABLE),
        (CKO_PUBLIC_KEY, CKA_ALWAYS_SENSITIVE),
        (CKO_PUBLIC_KEY, CKA_NEVER_EXTRACTABLE),
        (CKO_PRIVATE_KEY, CKA_SIGN_RECOVER),
    ];
    assert_same_view(
        nss_sees(ours.path(), "target-pw", &knowingly_different),
        nss_sees(theirs.path(), "target-pw", &knowingly_different),
        "legacy merge",
    );
}

/// Mode 3 in a further token of the parameter string (`tokens=<…>`, the
/// form NSS_InitWithMerge's callers and pkcs11.txt entries use): the same
/// merge as NSS's, in that slot only.
#[test]
fn merge_update_in_a_further_token_equals_nss_merge() {
    let main = tempfile::tempdir().unwrap();
    let target = copy_fixture("mode3-upgraded/before");
    let source = copy_fixture("mode3-upgraded/legacy");
    let params = format!(
        "{} tokens=<0x4=[configdir='sql:{}' updatedir='{}' updateid='app-legacy-1' \
         updateTokenDescription='App Legacy Token']>",
        sql_params(main.path()),
        target.path().display(),
        source.path().display()
    );
    let raw = Raw::with_params(&params);
    let slot: CK_SLOT_ID = 4;
    assert!(raw.slots().contains(&slot));
    assert_eq!(label(&raw, slot), "App Legacy Token");
    assert_ne!(label(&raw, raw.slots()[0]), "App Legacy Token");
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "shared-pw"), CKR_OK);
    assert_eq!(
        listed_objects(&raw, s),
        nss_listed_objects("mode3-upgraded")
    );
    assert_eq!(raw.finalize(), CKR_OK);
}
