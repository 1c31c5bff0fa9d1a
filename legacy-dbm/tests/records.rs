//! Every record of NSS's dbm fixtures decodes to what their manifests say,
//! and encodes back to the bytes NSS wrote.

use std::collections::BTreeSet;
use std::path::PathBuf;

use legacy_dbm::hash::HashFile;
use legacy_dbm::{cert8, key3, secmod};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/nss");

fn records(dir: &str, file: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(PathBuf::from(FIXTURES).join(dir).join(file)).unwrap();
    HashFile::parse(&bytes).unwrap().records().unwrap()
}

fn manifest(dir: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(PathBuf::from(FIXTURES).join(dir).join("MANIFEST.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// certutil's letters for one trust word (test oracle only).
fn letters(t: u16) -> String {
    use cert8::trust::*;
    let mut s = String::new();
    if t & TERMINAL_RECORD != 0 && t & (TRUSTED | TRUSTED_CA | TRUSTED_CLIENT_CA) == 0 {
        s.push('p');
    }
    if t & TRUSTED != 0 {
        s.push('P');
    }
    if t & VALID_CA != 0 && t & (TRUSTED_CA | TRUSTED_CLIENT_CA) == 0 {
        s.push('c');
    }
    if t & TRUSTED_CA != 0 {
        s.push('C');
    }
    if t & TRUSTED_CLIENT_CA != 0 {
        s.push('T');
    }
    if t & USER != 0 {
        s.push('u');
    }
    s
}

fn sha1_hex(data: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn cert8_records_match_the_manifests() {
    for dir in ["dbm-pw", "dbm-empty-pw"] {
        let expected = manifest(dir)["expected"].clone();
        let mut certs = BTreeSet::new();
        let mut crls = BTreeSet::new();
        let mut smime = BTreeSet::new();
        let mut nicknames = BTreeSet::new();
        for (k, d) in records(dir, "cert8.db") {
            let record = cert8::decode(&k, &d).unwrap();
            // NSS's bytes come back from our encoder.
            assert_eq!(
                cert8::encode(&record).unwrap(),
                (k.clone(), d.clone()),
                "{dir}: {record:?}"
            );
            match record {
                cert8::Record::Cert(c) => {
                    let t = c.trust;
                    certs.insert((
                        c.nickname.unwrap_or_default(),
                        sha1_hex(&c.der),
                        format!(
                            "{},{},{}",
                            letters(t.ssl),
                            letters(t.email),
                            letters(t.object_signing)
                        ),
                    ));
                }
                cert8::Record::Crl(c) => {
                    crls.insert(
                        c.issuer
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>(),
                    );
                }
                cert8::Record::Smime(s) => {
                    smime.insert(s.email);
                }
                cert8::Record::Nickname { nickname, .. } => {
                    nicknames.insert(nickname);
                }
                _ => {}
            }
        }
        let want: BTreeSet<(String, String, String)> = expected["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["nickname"].as_str().unwrap().to_string(),
                    c["sha1"].as_str().unwrap().to_string(),
                    c["trust"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(certs, want, "{dir}");
        let want_nicks: BTreeSet<String> = want.iter().map(|c| c.0.clone()).collect();
        assert_eq!(nicknames, want_nicks, "{dir}");
        if let Some(want_crls) = expected["crls"].as_array() {
            let want: BTreeSet<String> = want_crls
                .iter()
                .map(|c| c["issuer_der_hex"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(crls, want, "{dir}");
        }
        if let Some(want_smime) = expected["smime_records"].as_array() {
            let want: BTreeSet<String> = want_smime
                .iter()
                .map(|c| c["email"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(smime, want, "{dir}");
        }
    }
}

#[test]
fn key3_records_match_the_manifests() {
    for dir in ["dbm-pw", "dbm-empty-pw"] {
        let expected = manifest(dir)["expected"].clone();
        let mut labels = BTreeSet::new();
        let mut salt = None;
        let mut check = None;
        for (k, d) in records(dir, "key3.db") {
            let record = key3::decode(&k, &d).unwrap();
            assert_eq!(
                key3::encode(&record).unwrap(),
                (k.clone(), d.clone()),
                "{dir}"
            );
            match record {
                key3::Record::GlobalSalt(s) => salt = Some(s),
                key3::Record::PasswordCheck(c) => check = Some(c),
                key3::Record::PrivateKey { key, public_value } => {
                    assert!(!public_value.is_empty());
                    // The payload is an EncryptedPrivateKeyInfo under the
                    // legacy PBE.
                    assert_eq!(key.payload[0], 0x30);
                    labels.insert(key.nickname);
                }
                key3::Record::Version(v) => assert_eq!(v, 3),
                key3::Record::FakePasswordCheck => {}
            }
        }
        assert_eq!(salt.unwrap().len(), 20, "{dir}");
        let check = check.unwrap();
        assert_eq!(check.salt.len(), 20);
        assert_eq!(check.ciphertext.len(), 16);
        assert_eq!(check.to_der()[0], 0x30);
        let want: BTreeSet<String> = expected["private_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["label"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(labels, want, "{dir}");
    }
}

#[test]
fn secmod_records_match_the_format_notes() {
    let all = records("dbm-pw", "secmod.db");
    assert_eq!(all.len(), 1);
    let (k, d) = &all[0];
    let m = secmod::decode(k, d).unwrap();
    assert!(m.internal);
    assert_eq!((m.trust_order, m.cipher_order), (75, 100));
    assert_eq!(m.slots.len(), 1);
    assert_eq!(m.slots[0].slot_id, 1);
    assert_eq!(m.slots[0].default_flags, 0xa007_ff3d);
    assert_eq!(m.slots[0].timeout, 30);
    assert_eq!(secmod::encode(&m).unwrap(), (k.clone(), d.clone()));
}
