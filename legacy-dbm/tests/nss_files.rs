//! The hash file layer against files NSS 3.87 wrote, and NSS against files
//! this crate wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use legacy_dbm::hash::{self, HashFile};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/nss");

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(FIXTURES).join(name)
}

fn records(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut r = HashFile::parse(&bytes).unwrap().records().unwrap();
    r.sort();
    r
}

#[test]
fn every_fixture_file_reads_whole_and_by_key() {
    for dir in ["dbm-pw", "dbm-empty-pw", "dbm-pw-upgraded"] {
        for file in ["cert8.db", "key3.db", "secmod.db"] {
            let bytes = std::fs::read(fixture(dir).join(file)).unwrap();
            let hf = HashFile::parse(&bytes).unwrap();
            let all = hf.records().unwrap();
            assert!(!all.is_empty(), "{dir}/{file}");
            for (k, d) in &all {
                assert_eq!(hf.get(k).unwrap().as_ref(), Some(d), "{dir}/{file}");
            }
        }
    }
    // dbm-pw holds 22 cert8 records, 7 key3 records, one module.
    assert_eq!(records(&fixture("dbm-pw").join("cert8.db")).len(), 22);
    assert_eq!(records(&fixture("dbm-pw").join("key3.db")).len(), 7);
    assert_eq!(records(&fixture("dbm-pw").join("secmod.db")).len(), 1);
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nss_reads_and_extends_files_written_here() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "fixture-pw\n").unwrap();
    let db = format!("dbm:{}", dir.path().display());
    for (file, page) in [
        ("cert8.db", hash::CERT_DB_PAGE),
        ("key3.db", hash::KEY_DB_PAGE),
        ("secmod.db", hash::KEY_DB_PAGE),
    ] {
        let original = records(&fixture("dbm-pw").join(file));
        let written = hash::write(&original, page, true).unwrap();
        std::fs::write(dir.path().join(file), &written).unwrap();
    }
    // certutil lists in hash order, which differs between layouts.
    let nss_certs = |db: &str| {
        let mut lines: Vec<String> = run(Command::new("certutil").args(["-L", "-d", db]))
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join("\n")
    };
    let original = nss_certs(&format!("dbm:{}", fixture("dbm-pw").display()));
    assert_eq!(nss_certs(&db), original);
    let nss_keys = |db: &str| {
        // Without the "< n>" index, which follows hash order.
        let mut lines: Vec<String> = run(Command::new("certutil")
            .args(["-K", "-d", db, "-f"])
            .arg(&pw))
        .lines()
        .map(|l| l.split_once('>').map_or(l, |(_, rest)| rest).to_string())
        .collect();
        lines.sort();
        lines.join("\n")
    };
    let keys = nss_keys(&db);
    assert_eq!(
        keys,
        nss_keys(&format!("dbm:{}", fixture("dbm-pw").display()))
    );
    assert_eq!(keys.matches("Fixture").count(), 4, "{keys}");

    // NSS adds to our file (a new certificate and trust), and we read what
    // it wrote.
    let before = records(&dir.path().join("cert8.db")).len();
    let der = dir.path().join("new.der");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=added",
            "-days",
            "2",
        ])
        .args(["-outform", "DER", "-keyout"])
        .arg(dir.path().join("new.key"))
        .arg("-out")
        .arg(&der));
    run(Command::new("certutil")
        .args(["-A", "-n", "added-by-nss", "-t", "c,,", "-d", &db, "-i"])
        .arg(&der));
    assert!(records(&dir.path().join("cert8.db")).len() > before);
    assert!(nss_certs(&db).contains("added-by-nss"));
}

/// Records longer than a page (big pairs) in both directions: NSS writes
/// one into secmod.db, we read it, write a longer one, and NSS reads ours.
#[test]
fn big_pairs_cross_both_ways() {
    use legacy_dbm::secmod;

    let dir = tempfile::tempdir().unwrap();
    let db = format!("dbm:{}", dir.path().display());
    run(Command::new("certutil").args(["-N", "--empty-password", "-d", &db]));
    // Any loadable PKCS#11 library other than NSS's own will do.
    let lib = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-trust.so";
    let long = format!("x-pad={}", "a".repeat(6000));
    let mut add = Command::new("modutil");
    add.args([
        "-add", "bigmod", "-libfile", lib, "-string", &long, "-force", "-dbdir", &db,
    ]);
    run(&mut add);
    let path = dir.path().join("secmod.db");
    let bytes = std::fs::read(&path).unwrap();
    let mut all = HashFile::parse(&bytes).unwrap().records().unwrap();
    let at = all
        .iter()
        .position(|(k, _)| k == b"bigmod")
        .expect("NSS wrote bigmod");
    let mut module = secmod::decode(&all[at].0, &all[at].1).unwrap();
    assert_eq!(module.parameters, long);

    let longer = format!("x-pad={}", "b".repeat(9000));
    module.parameters = longer.clone();
    all[at] = secmod::encode(&module).unwrap();
    std::fs::write(&path, hash::write(&all, hash::KEY_DB_PAGE, true).unwrap()).unwrap();
    let listed = run(Command::new("modutil").args(["-rawlist", "-dbdir", &db]));
    assert!(
        listed.contains(&format!("x-pad={}", "b".repeat(9000))),
        "{listed}"
    );
}
