//! Databases made by real NSS 3.87 open in the module: the objects it lists
//! match each fixture's manifest, a wrong password is refused, every private
//! attribute decrypts and every integrity record verifies.

use std::collections::BTreeSet;

use pkcs11_sys::*;
use sdb::SdbRead;
use softoken::nss::*;
use softoken_tests::raw::{as_ul, ul, Raw};
use softoken_tests::*;

fn check_fixture(name: &str) {
    let m = manifest(name);
    let password = m["password"].as_str().unwrap();
    let dir = copy_fixture(name);
    let legacy = m["format"] == "dbm";
    let params = if legacy {
        dbm_params(dir.path())
    } else {
        sql_params(dir.path())
    };
    let raw = Raw::with_params(&params);
    let slot = raw.slots()[0];
    let info = raw.token_info(slot);
    assert_eq!(info.flags & CKF_WRITE_PROTECTED, 0, "{name}");
    // NSS shows its own token as m["token_label"] ("NSS Certificate DB");
    // softoken shows the same database under its own label, so that the two
    // are never confused when both are loaded.
    assert_eq!(m["token_label"], "NSS Certificate DB");
    assert_eq!(String::from_utf8_lossy(&info.label).trim_end(), "softoken");
    assert_ne!(info.flags & CKF_USER_PIN_INITIALIZED, 0);
    assert_eq!(
        info.flags & CKF_LOGIN_REQUIRED != 0,
        !password.is_empty(),
        "{name}: login required"
    );

    let s = raw.open(slot, false).unwrap();
    // Certificates are public: listed before any login.
    let certs = raw.find(s, &[(CKA_CLASS, ul(CKO_CERTIFICATE))]).unwrap();
    let expected_certs = m["expected"]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), expected_certs.len(), "{name}: certificates");
    for h in &certs {
        let label = String::from_utf8(raw.get(s, *h, CKA_LABEL).unwrap()).unwrap();
        let e = expected_certs
            .iter()
            .find(|c| c["nickname"] == label.as_str())
            .unwrap_or_else(|| panic!("{name}: unexpected certificate {label}"));
        let value = raw.get(s, *h, CKA_VALUE).unwrap();
        assert_eq!(
            sha256_hex(&value),
            e["sha256"].as_str().unwrap(),
            "{name}: {label}"
        );
        assert_eq!(
            hex::encode(raw.get(s, *h, CKA_ID).unwrap()),
            e["cka_id"].as_str().unwrap(),
            "{name}: {label}"
        );
        assert_eq!(raw.get(s, *h, CKA_PRIVATE).unwrap(), vec![0]);
    }

    if !password.is_empty() {
        assert!(
            raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
                .unwrap()
                .is_empty(),
            "{name}: keys before login"
        );
        assert_eq!(raw.login(s, CKU_USER, "wrong password"), CKR_PIN_INCORRECT);
        assert_eq!(raw.login(s, CKU_USER, password), CKR_OK);
        assert_eq!(raw.login(s, CKU_USER, password), CKR_USER_ALREADY_LOGGED_IN);
    }

    let keys = raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))]).unwrap();
    let expected_keys = m["expected"]["private_keys"].as_array().unwrap();
    assert_eq!(keys.len(), expected_keys.len(), "{name}: private keys");
    for h in &keys {
        let id = hex::encode(raw.get(s, *h, CKA_ID).unwrap());
        let e = expected_keys
            .iter()
            .find(|k| k["cka_id"] == id.as_str())
            .unwrap();
        let key_type = as_ul(&raw.get(s, *h, CKA_KEY_TYPE).unwrap());
        match e["key_type"].as_str().unwrap() {
            "CKK_RSA" => {
                assert_eq!(key_type, CKK_RSA);
                // Reading the modulus checks its integrity record.
                let modulus = raw.get(s, *h, CKA_MODULUS).unwrap();
                assert_eq!(modulus.len() * 8, e["bits"].as_u64().unwrap() as usize);
                assert_eq!(
                    sha1_hex(&modulus),
                    id,
                    "NSS's CKA_ID is SHA-1 of the modulus"
                );
                assert_eq!(
                    raw.get(s, *h, CKA_PRIVATE_EXPONENT),
                    Err(CKR_ATTRIBUTE_SENSITIVE)
                );
            }
            "CKK_EC" => {
                assert_eq!(key_type, CKK_EC);
                assert_eq!(
                    hex::encode(raw.get(s, *h, CKA_EC_PARAMS).unwrap()),
                    e["ec_params_hex"].as_str().unwrap()
                );
            }
            other => panic!("unexpected key type {other}"),
        }
    }

    // Everything NSS itself exposes for this database, and nothing else.
    let all = listed_objects(&raw, s);
    let nss = nss_listed_objects(name);
    assert_eq!(all, nss, "{name}: object list");

    // Trust values (each read checks the value's integrity record).
    for o in m["pkcs11_objects_via_nss_softoken"].as_array().unwrap() {
        if o["class"] != "CKO_NSS_TRUST" {
            continue;
        }
        let sha1 = hex::decode(o["cert_sha1"].as_str().unwrap()).unwrap();
        let found = raw
            .find(
                s,
                &[(CKA_CLASS, ul(CKO_NSS_TRUST)), (CKA_CERT_SHA1_HASH, sha1)],
            )
            .unwrap();
        assert_eq!(found.len(), 1);
        for (key, t) in [
            ("serverAuth", CKA_TRUST_SERVER_AUTH),
            ("clientAuth", CKA_TRUST_CLIENT_AUTH),
            ("codeSigning", CKA_TRUST_CODE_SIGNING),
            ("emailProtection", CKA_TRUST_EMAIL_PROTECTION),
        ] {
            let v = as_ul(&raw.get(s, found[0], t).unwrap());
            assert_eq!(
                trust_name(v),
                o["trust"][key].as_str().unwrap(),
                "{name}: {key}"
            );
        }
    }
    assert_eq!(raw.close(s), CKR_OK);

    // Through the library: every private attribute decrypts and every
    // record in key4.db verifies.
    let token = open_token_with(&params);
    if !password.is_empty() {
        token.login(password.as_bytes()).unwrap();
    }
    let report = token.check(&mut |_, _| {}).unwrap();
    assert!(report.failures.is_empty(), "{name}: {:?}", report.failures);
    assert!(
        report.orphaned_records.is_empty(),
        "{name}: {:?}",
        report.orphaned_records
    );
    // The legacy format has no integrity records.
    let records = if legacy {
        0
    } else {
        let key_db = open_databases(dir.path(), true).key;
        key_db.metadata_ids("sig_").unwrap().len()
    };
    assert_eq!(report.verified, records, "{name}: records verified");
    assert!(
        report.decrypted >= expected_keys.len(),
        "{name}: values decrypted"
    );
}

#[test]
fn sql_empty_password_fixture() {
    check_fixture("sql-empty-pw");
}

#[test]
fn sql_password_fixture() {
    check_fixture("sql-pw");
}

#[test]
fn upgraded_legacy_fixture_with_3des_values() {
    check_fixture("dbm-pw-upgraded");
}

#[test]
fn legacy_dbm_password_fixture() {
    check_fixture("dbm-pw");
}

#[test]
fn legacy_dbm_empty_password_fixture() {
    check_fixture("dbm-empty-pw");
}

/// The RSA user key decrypted from the database equals the key pk12util
/// exported: from NSS's own database, from the migrated one (whose values
/// are still in the legacy 3DES form), and from the legacy key3.db.
#[test]
fn decrypted_rsa_key_equals_pkcs12_export() {
    let p12 = manifest("pkcs12");
    let expected = pkcs12_rsa_key(
        &fixtures().join("pkcs12/fixture-rsa-user.p12"),
        p12["password"].as_str().unwrap(),
    );
    let cka_id = hex::decode(p12["expected"]["key"]["nss_ckaid"].as_str().unwrap()).unwrap();
    for name in ["sql-pw", "dbm-pw-upgraded", "dbm-pw"] {
        let dir = copy_fixture(name);
        let token = if name == "dbm-pw" {
            open_token_with(&dbm_params(dir.path()))
        } else {
            open_token(dir.path())
        };
        token.login(b"fixture-pw").unwrap();
        let template = [(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, cka_id.clone())];
        let found = token.find(&template).unwrap();
        assert_eq!(found.len(), 1, "{name}");
        let key = token.attributes(found[0]).unwrap();
        for (t, want) in [
            (CKA_MODULUS, &expected.modulus),
            (CKA_PUBLIC_EXPONENT, &expected.public_exponent),
            (CKA_PRIVATE_EXPONENT, &expected.private_exponent),
            (CKA_PRIME_1, &expected.prime_1),
            (CKA_PRIME_2, &expected.prime_2),
            (CKA_EXPONENT_1, &expected.exponent_1),
            (CKA_EXPONENT_2, &expected.exponent_2),
            (CKA_COEFFICIENT, &expected.coefficient),
        ] {
            assert_eq!(
                key.get(t).unwrap(),
                want.as_slice(),
                "{name}: attribute {t:#x}"
            );
        }
    }
}

/// A changed value, or a changed record, is reported, never returned.
#[test]
fn tampered_values_are_refused() {
    let dir = copy_fixture("sql-pw");
    let opened = open_databases(dir.path(), false);
    // Make the "P,," peer trusted for e-mail too, behind NSS's back.
    let peer_trust = opened
        .cert
        .find(&[
            (CKA_CLASS, &[0xce, 0x53, 0x43, 0x53]),
            (CKA_TRUST_CODE_SIGNING, &[0xce, 0x53, 0x43, 0x53]),
        ])
        .unwrap()
        .next_batch(10);
    assert_eq!(peer_trust.len(), 1);
    let mut txn = sdb::Sdb::begin(&opened.cert).unwrap();
    txn.set_attributes(
        peer_trust[0],
        &[(CKA_TRUST_EMAIL_PROTECTION, &[0xce, 0x53, 0x43, 0x51])],
    )
    .unwrap();
    txn.commit().unwrap();
    // Swap the records of two RSA private exponents.
    let names = opened.key.metadata_ids("sig_key_").unwrap();
    let exps: Vec<&String> = names.iter().filter(|n| n.ends_with("_00000123")).collect();
    let a = opened.key.get_metadata(exps[0]).unwrap().unwrap();
    let b = opened.key.get_metadata(exps[1]).unwrap().unwrap();
    let mut txn = sdb::Sdb::begin(&opened.key).unwrap();
    txn.put_metadata(exps[0], &b.item1, None).unwrap();
    txn.put_metadata(exps[1], &a.item1, None).unwrap();
    txn.commit().unwrap();
    drop(opened);

    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let h = raw
        .find(
            s,
            &[
                (CKA_CLASS, ul(CKO_NSS_TRUST)),
                (CKA_TRUST_CODE_SIGNING, ul(CKT_NSS_MUST_VERIFY_TRUST)),
            ],
        )
        .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        raw.get(s, h[0], CKA_TRUST_EMAIL_PROTECTION),
        Err(CKR_DEVICE_ERROR)
    );
    // Values not tampered with still read.
    assert_eq!(
        as_ul(&raw.get(s, h[0], CKA_TRUST_SERVER_AUTH).unwrap()),
        CKT_NSS_TRUSTED
    );

    let token = open_token(dir.path());
    token.login(b"fixture-pw").unwrap();
    let report = token.check(&mut |_, _| {}).unwrap();
    let failed: BTreeSet<CK_ATTRIBUTE_TYPE> = report.failures.iter().map(|f| f.1).collect();
    assert_eq!(
        failed,
        BTreeSet::from([CKA_TRUST_EMAIL_PROTECTION, CKA_PRIVATE_EXPONENT])
    );
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
}

/// Every private key of the legacy database signs, and its signature
/// verifies with the public key NSS presents beside it, whose CKA_ID (the
/// SHA-1 of the public value) is the one its certificate carries.
#[test]
fn legacy_keys_sign_and_match_their_certificates() {
    let dir = copy_fixture("dbm-pw");
    let raw = Raw::with_params(&dbm_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let keys = raw.find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))]).unwrap();
    assert_eq!(keys.len(), 4);
    for key in keys {
        let id = raw.get(s, key, CKA_ID).unwrap();
        let public = raw
            .find(s, &[(CKA_CLASS, ul(CKO_PUBLIC_KEY)), (CKA_ID, id.clone())])
            .unwrap();
        let certs = raw
            .find(s, &[(CKA_CLASS, ul(CKO_CERTIFICATE)), (CKA_ID, id.clone())])
            .unwrap();
        assert_eq!((public.len(), certs.len()), (1, 1), "{}", hex::encode(&id));
        let mechanism = match as_ul(&raw.get(s, key, CKA_KEY_TYPE).unwrap()) {
            CKK_RSA => CKM_SHA256_RSA_PKCS,
            CKK_EC => CKM_ECDSA_SHA256,
            other => panic!("key type {other:#x}"),
        };
        let data = b"signed by a key3.db key";
        let sig = raw.sign(s, mechanism, Vec::new(), key, data).unwrap();
        assert_eq!(
            raw.verify(s, mechanism, Vec::new(), public[0], data, &sig),
            CKR_OK
        );
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert_eq!(
            raw.verify(s, mechanism, Vec::new(), public[0], data, &bad),
            CKR_SIGNATURE_INVALID
        );
    }
    // After logout the private keys are gone again.
    assert_eq!(raw.logout(s), CKR_OK);
    assert!(raw
        .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))])
        .unwrap()
        .is_empty());
}

/// `softoken-modutil check`'s progress: the whole count from the first
/// report, one step per object checked, ending at the count.
#[test]
fn the_check_reports_its_progress_from_the_real_count() {
    let dir = copy_fixture("sql-pw");
    let token = open_token(dir.path());
    token.login(b"fixture-pw").unwrap();
    let mut seen = Vec::new();
    let report = token
        .check(&mut |done, total| seen.push((done, total)))
        .unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    let total = seen[0].1;
    assert!(total > 0);
    let expected: Vec<(usize, usize)> = (0..=total).map(|done| (done, total)).collect();
    assert_eq!(seen, expected);
}
