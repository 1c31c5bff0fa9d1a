//! The stress client (src/bin/softoken-stress.rs) and the checks of a
//! database it wrote, shared by the crash and load tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use pkcs11_sys::*;

use crate::raw::{as_ul, ul, Raw};
use crate::{open_token, sha256_hex};

/// The AES key value of the key set labelled `label`.
pub fn set_value(label: &str) -> Vec<u8> {
    hex::decode(&sha256_hex(label.as_bytes())[..32]).expect("hex")
}

/// The stress client with `args`, its output piped, on the module under
/// test. `program` is the test's `env!("CARGO_BIN_EXE_softoken-stress")`.
pub fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("SOFTOKEN_MODULE", crate::module_path())
        // Cheap PBKDF2 for the values written: the checks after each kill
        // decrypt everything.
        .env("NSS_MAX_MP_PBE_ITERATION_COUNT", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

pub fn sqlite_integrity(dir: &Path) {
    for file in ["cert9.db", "key4.db"] {
        let conn = rusqlite::Connection::open(dir.join(file)).unwrap();
        let answer: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(answer, "ok", "{file}");
    }
}

/// The token's own check with `pin`: no value fails; the records of no
/// object are only cert9.db's, which the next writer removes.
pub fn token_check(dir: &Path, pin: &str) -> usize {
    let token = open_token(dir);
    token.login(pin.as_bytes()).expect("login");
    let report = token.check(&mut |_, _| {}).expect("check");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        report
            .orphaned_records
            .iter()
            .all(|r| r.starts_with("sig_cert_")),
        "{:?}",
        report.orphaned_records
    );
    report.orphaned_records.len()
}

/// Every object of a set, by class.
pub fn set_objects(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    label: &str,
) -> BTreeMap<CK_OBJECT_CLASS, usize> {
    let mut classes = BTreeMap::new();
    for h in raw
        .find(s, &[(CKA_LABEL, label.as_bytes().to_vec())])
        .unwrap()
    {
        let class = as_ul(&raw.get(s, h, CKA_CLASS).unwrap());
        *classes.entry(class).or_insert(0) += 1;
    }
    classes
}

/// An acknowledged set: its three objects once each, the AES value as
/// written, and a signature the public key verifies.
pub fn set_works(raw: &Raw, s: CK_SESSION_HANDLE, label: &str) {
    let want = BTreeMap::from([
        (CKO_PUBLIC_KEY, 1),
        (CKO_PRIVATE_KEY, 1),
        (CKO_SECRET_KEY, 1),
    ]);
    assert_eq!(set_objects(raw, s, label), want, "{label}");
    let find = |class| {
        raw.find(
            s,
            &[
                (CKA_CLASS, ul(class)),
                (CKA_LABEL, label.as_bytes().to_vec()),
            ],
        )
        .unwrap()[0]
    };
    let value = raw.get(s, find(CKO_SECRET_KEY), CKA_VALUE).unwrap();
    assert_eq!(value, set_value(label), "{label}");
    let digest = [7u8; 32];
    let sig = raw
        .sign(s, CKM_ECDSA, vec![], find(CKO_PRIVATE_KEY), &digest)
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_ECDSA, vec![], find(CKO_PUBLIC_KEY), &digest, &sig),
        CKR_OK,
        "{label}"
    );
}
