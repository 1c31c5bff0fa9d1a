//! No secret in clear on disk: the bytes of known private and secret key
//! values appear in no file of the database directory (databases, journals
//! left by a writer killed mid-write, the module's log), in raw form or as
//! hex; the files the module makes are the user's alone.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw, TRUE};
use softoken_tests::*;

const PIN: &str = "disk-pin";

/// Every secret that shows up in any file below `dir`, by name.
fn found_in(dir: &Path, secrets: &[Vec<u8>]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        for s in secrets {
            let raw = bytes.windows(s.len()).any(|w| w == s.as_slice());
            if raw || text.contains(&hex::encode(s)) {
                found.push(format!("{} holds {}", path.display(), hex::encode(s)));
            }
        }
    }
    found
}

#[test]
fn key_values_never_reach_the_files_and_the_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("softoken.log");
    std::env::set_var("SOFTOKEN_LOG", &log);
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.set_pin(s, "", PIN), CKR_OK);
    assert_eq!(raw.login(s, CKU_USER, PIN), CKR_OK);
    let aes: Vec<u8> = (0..32).map(|i| 0xa0 ^ i).collect();
    let generic: Vec<u8> = (0..48u8).map(|i| 0x3c ^ i.wrapping_mul(7)).collect();
    // A P-256 scalar (below the order).
    let scalar: Vec<u8> = (0..32).map(|i| 0x11 + i).collect();
    let token = |class| {
        vec![
            (CKA_CLASS, ul(class)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_PRIVATE, TRUE.to_vec()),
            (CKA_SENSITIVE, TRUE.to_vec()),
        ]
    };
    let mut t = token(CKO_SECRET_KEY);
    t.extend([(CKA_KEY_TYPE, ul(CKK_AES)), (CKA_VALUE, aes.clone())]);
    raw.create(s, &t).unwrap();
    let mut t = token(CKO_SECRET_KEY);
    t.extend([
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_VALUE, generic.clone()),
    ]);
    raw.create(s, &t).unwrap();
    let mut t = token(CKO_PRIVATE_KEY);
    t.extend([
        (CKA_KEY_TYPE, ul(CKK_EC)),
        (CKA_EC_PARAMS, P256_PARAMS.to_vec()),
        (CKA_VALUE, scalar.clone()),
        (CKA_SIGN, TRUE.to_vec()),
    ]);
    let key = raw.create(s, &t).unwrap();
    raw.sign(s, CKM_ECDSA, vec![], key, &[1; 32]).unwrap();
    assert_eq!(raw.set_pin(s, PIN, "second pin"), CKR_OK);
    assert_eq!(raw.finalize(), CKR_OK);
    // A failure, for the log to have a line.
    let missing = format!("configdir='sql:{}'", dir.path().join("missing").display());
    let failed = Raw::with_params(&missing);
    assert_eq!(failed.try_token_info(2).err(), Some(CKR_TOKEN_NOT_PRESENT));
    assert_eq!(failed.finalize(), CKR_OK);
    let secrets = [aes, generic, scalar];
    assert_eq!(found_in(dir.path(), &secrets), Vec::<String>::new());

    for file in ["cert9.db", "key4.db", "softoken.log"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is open to others: {mode:o}");
    }
}

/// A writer killed mid-write leaves SQLite's journal behind: neither it
/// nor the databases hold a value the writer was storing.
#[test]
fn a_writer_killed_mid_write_leaves_no_value_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().display().to_string();
    {
        let raw = Raw::with_params(&sql_params(dir.path()));
        let s = raw.open(raw.slots()[0], true).unwrap();
        assert_eq!(raw.set_pin(s, "", PIN), CKR_OK);
    }
    let mut journals = 0;
    for round in 0..20u64 {
        let prefix = format!("k{round}");
        let mut child = stress::command(
            env!("CARGO_BIN_EXE_softoken-stress"),
            &["create", &db, PIN, &prefix],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(20 + round * 5));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let acked = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("ack "))
            .count() as u64;
        journals += std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with("-journal")
            })
            .count();
        // The sets it acknowledged and the one it was writing.
        let secrets: Vec<Vec<u8>> = (0..=acked)
            .map(|n| stress::set_value(&format!("{prefix}-{n}")))
            .collect();
        assert_eq!(found_in(dir.path(), &secrets), Vec::<String>::new());
    }
    eprintln!("{journals} journals left by killed writers were searched too");
}
