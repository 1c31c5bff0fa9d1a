use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sdb::{Error, OpenOptions, PasswordEntry, Sdb, SdbRead};
use sdb_sqlite::open;

const CKA_CLASS: u64 = 0;
const CKA_LABEL: u64 = 3;
const CKA_VALUE: u64 = 0x11;
const CKA_ID: u64 = 0x102;
/// A type NSS 3.87 has no column for (CKA_ALLOWED_MECHANISMS).
const CKA_ALLOWED_MECHANISMS: u64 = 0x4000_0600;

fn opts(dir: &Path) -> OpenOptions {
    OpenOptions {
        dir: dir.to_owned(),
        cert_prefix: String::new(),
        key_prefix: String::new(),
        read_only: false,
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/nss")
        .join(name)
}

#[test]
fn creates_nss_schema_with_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(&opts(dir.path())).unwrap();
    assert!(opened.created);
    for f in ["cert9.db", "key4.db"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    drop(opened);
    let conn = rusqlite::Connection::open(dir.path().join("cert9.db")).unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name='nssPublic'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.starts_with(
        "CREATE TABLE nssPublic (id PRIMARY KEY UNIQUE ON CONFLICT ABORT, a0, a1, a2, a3, a10,"
    ));
    assert!(sql.ends_with("ace5363b4, ace5363b5, ad5a0db00)"));
    let columns: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('nssPublic')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 120, "id plus NSS's 119 attribute columns");
    let mut indexes: Vec<String> = conn
        .prepare("SELECT name || ':' || sql FROM sqlite_master WHERE type='index' AND tbl_name='nssPublic' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "ckaid:CREATE INDEX ckaid ON nssPublic (a102)",
            "issuer:CREATE INDEX issuer ON nssPublic (a81)",
            "label:CREATE INDEX label ON nssPublic (a3)",
            "subject:CREATE INDEX subject ON nssPublic (a101)",
        ]
    );
    // Opening again creates nothing.
    assert!(!open(&opts(dir.path())).unwrap().created);
}

#[test]
fn objects_round_trip_with_empty_marker_and_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&opts(dir.path())).unwrap().cert;
    let mut txn = db.begin().unwrap();
    let id = txn
        .create_object(&[
            (CKA_CLASS, &[0, 0, 0, 1]),
            (CKA_LABEL, b""),
            (CKA_ID, b"abc"),
            (CKA_ALLOWED_MECHANISMS, &[1, 2, 3]),
        ])
        .unwrap();
    assert!(id > 0 && id <= sdb::MAX_OBJECT_ID);
    txn.commit().unwrap();

    let values = db
        .get_attributes(
            id,
            &[
                CKA_LABEL,
                CKA_VALUE,
                CKA_ID,
                0x7777_7777,
                CKA_ALLOWED_MECHANISMS,
            ],
        )
        .unwrap();
    assert_eq!(
        values,
        vec![
            Some(vec![]),
            None,
            Some(b"abc".to_vec()),
            None,
            Some(vec![1, 2, 3])
        ]
    );
    let mut all = db.read_object(id).unwrap();
    all.sort();
    assert_eq!(all.len(), 4);

    // The empty label is stored as NSS's marker and found by an empty template value.
    let conn = rusqlite::Connection::open(dir.path().join("cert9.db")).unwrap();
    let raw: Vec<u8> = conn
        .query_row("SELECT a3 FROM nssPublic WHERE id=?1", [id], |r| r.get(0))
        .unwrap();
    assert_eq!(raw, [0xa5, 0x00, 0x5a]);
    assert_eq!(
        db.find(&[(CKA_LABEL, b"")]).unwrap().next_batch(10),
        vec![id]
    );
    assert_eq!(
        db.find(&[(CKA_ID, b"abc"), (CKA_CLASS, &[0, 0, 0, 1])])
            .unwrap()
            .next_batch(10),
        vec![id]
    );
    assert!(db
        .find(&[(CKA_ID, b"abd")])
        .unwrap()
        .next_batch(10)
        .is_empty());
    assert!(db
        .find(&[(0x7777_7777, b"x")])
        .unwrap()
        .next_batch(10)
        .is_empty());

    let mut txn = db.begin().unwrap();
    txn.set_attributes(id, &[(CKA_LABEL, b"named")]).unwrap();
    txn.commit().unwrap();
    assert_eq!(
        db.find(&[(CKA_LABEL, b"named")]).unwrap().next_batch(10),
        vec![id]
    );

    let mut txn = db.begin().unwrap();
    txn.destroy_object(id).unwrap();
    assert!(matches!(txn.destroy_object(id), Err(Error::NotFound(_))));
    txn.commit().unwrap();
    assert!(matches!(db.read_object(id), Err(Error::NotFound(_))));
}

#[test]
fn dropped_transaction_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&opts(dir.path())).unwrap().key;
    {
        let mut txn = db.begin().unwrap();
        txn.create_object(&[(CKA_LABEL, b"gone"), (0x4000_0700, b"new column")])
            .unwrap();
        txn.put_password_entry(&PasswordEntry {
            salt: vec![1; 20],
            value: vec![2; 10],
        })
        .unwrap();
        // dropped without commit
    }
    assert!(db.find(&[]).unwrap().next_batch(10).is_empty());
    assert_eq!(db.get_password_entry().unwrap(), None);
    // The cache forgot the rolled-back column; a query for it still works.
    assert!(db
        .find(&[(0x4000_0700, b"new column")])
        .unwrap()
        .next_batch(1)
        .is_empty());
}

#[test]
fn metadata_rows_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&opts(dir.path())).unwrap().key;
    assert_eq!(db.get_metadata("password").unwrap(), None);
    assert!(db.metadata_ids("sig_").unwrap().is_empty());
    let mut txn = db.begin().unwrap();
    let id = txn.create_object(&[(CKA_VALUE, b"secret-blob")]).unwrap();
    txn.put_metadata(&format!("sig_key_{id:08x}_00000011"), b"mac", None)
        .unwrap();
    txn.put_metadata("sig_cert_00000001_00000120", b"mac2", None)
        .unwrap();
    txn.put_password_entry(&PasswordEntry {
        salt: vec![7; 20],
        value: b"check".to_vec(),
    })
    .unwrap();
    txn.commit().unwrap();
    assert_eq!(
        db.metadata_ids(&format!("sig_key_{id:08x}_"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(db.metadata_ids("sig_").unwrap().len(), 2);
    assert_eq!(db.get_password_entry().unwrap().unwrap().salt, vec![7; 20]);

    let mut txn = db.begin().unwrap();
    txn.reset().unwrap();
    txn.commit().unwrap();
    assert!(db.find(&[]).unwrap().next_batch(10).is_empty());
    assert_eq!(db.get_password_entry().unwrap(), None);
}

#[test]
fn read_only_open_refuses_writes_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.read_only = true;
    assert!(matches!(open(&o), Err(Error::Io { .. })));
    drop(open(&opts(dir.path())).unwrap());
    let db = open(&o).unwrap().cert;
    assert!(matches!(db.begin().err(), Some(Error::ReadOnly)));
}

#[test]
fn reads_nss_fixture() {
    let mut o = opts(&fixture("sql-pw"));
    o.read_only = true;
    let opened = open(&o).unwrap();
    // Six certificates, as the fixture's manifest lists.
    let certs = opened
        .cert
        .find(&[(CKA_CLASS, &[0, 0, 0, 1])])
        .unwrap()
        .next_batch(100);
    assert_eq!(certs.len(), 6);
    let entry = opened
        .key
        .get_password_entry()
        .unwrap()
        .expect("password row");
    assert_eq!(entry.salt.len(), 20);
    assert!(opened.key.metadata_ids("sig_key_").unwrap().len() >= 4);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&opts(dir.path())).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let o = opts(dir.path());
            std::thread::spawn(move || {
                // Each thread has its own handle, as separate processes would.
                let db = open(&o).unwrap().cert;
                for i in 0..50 {
                    let mut txn = db.begin().unwrap();
                    txn.create_object(&[(CKA_LABEL, format!("t{t}-{i}").as_bytes())])
                        .unwrap();
                    txn.commit().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let db = open(&opts(dir.path())).unwrap().cert;
    assert_eq!(db.find(&[]).unwrap().next_batch(1000).len(), 200);
}
