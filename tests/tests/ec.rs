//! EC keys and ECDSA through the C API: generation on each curve, every
//! hash variant and the raw mechanism, OpenSSL verifying what the module
//! signs, and a key NSS made signing.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{as_ul, ecdh_param, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

const P256: &[u8] = softoken_tests::P256_PARAMS;
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

/// OpenSSL checks an r || s signature with a public key given as its point.
fn openssl_verifies_ec(params: &[u8], point: &[u8], data: &[u8], rs: &[u8], digest: &str) -> bool {
    let ec_public_key = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let spki = tlv(
        0x30,
        &[
            tlv(0x30, &[&ec_public_key[..], params].concat()),
            tlv(0x03, &[&[0u8][..], point].concat()),
        ]
        .concat(),
    );
    let half = rs.len() / 2;
    let sig = tlv(
        0x30,
        &[der_integer(&rs[..half]), der_integer(&rs[half..])].concat(),
    );
    openssl_verifies(&spki, data, &sig, digest, &[])
}

fn pair(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    params: &[u8],
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), CK_RV> {
    raw.generate_key_pair(
        s,
        CKM_EC_KEY_PAIR_GEN,
        &[
            (CKA_EC_PARAMS, params.to_vec()),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_ID, b"ec".to_vec()),
        ],
        &[
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_ID, b"ec".to_vec()),
            (CKA_SIGN, TRUE.to_vec()),
        ],
    )
}

#[test]
fn generate_sign_verify_on_every_curve() {
    let (raw, s, _dir) = new_token_session();
    for (params, field) in [(P256, 32), (P384, 48), (P521, 66)] {
        let (public, private) = pair(&raw, s, params).unwrap();
        assert!(
            (0x8000_0000..0xC000_0000).contains(&public),
            "public key in cert9.db"
        );
        assert!(private >= 0xC000_0000, "private key in key4.db");
        let point_attr = raw.get(s, public, CKA_EC_POINT).unwrap();
        assert_eq!(point_attr[0], 0x04, "a DER OCTET STRING");
        let point = &point_attr[point_attr.len() - (2 * field + 1)..];
        assert_eq!(point[0], 0x04, "uncompressed");
        assert_eq!(raw.get(s, private, CKA_EC_PARAMS).unwrap(), params);
        assert_eq!(raw.get(s, private, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
        assert_eq!(raw.get(s, private, CKA_LOCAL).unwrap(), TRUE);
        assert_eq!(
            as_ul(&raw.get(s, private, CKA_KEY_GEN_MECHANISM).unwrap()),
            CKM_EC_KEY_PAIR_GEN
        );

        let data = b"message to sign".repeat(10);
        for (mech, digest) in [
            (CKM_ECDSA_SHA1, "sha1"),
            (CKM_ECDSA_SHA224, "sha224"),
            (CKM_ECDSA_SHA256, "sha256"),
            (CKM_ECDSA_SHA384, "sha384"),
            (CKM_ECDSA_SHA512, "sha512"),
            (CKM_ECDSA_SHA3_256, "sha3-256"),
        ] {
            let sig = raw.sign(s, mech, vec![], private, &data).unwrap();
            assert_eq!(sig.len(), 2 * field);
            assert_eq!(raw.verify(s, mech, vec![], public, &data, &sig), CKR_OK);
            assert!(
                openssl_verifies_ec(params, point, &data, &sig, digest),
                "openssl, {digest}, field {field}"
            );
            let mut bad = sig.clone();
            bad[5] ^= 0x40;
            assert_eq!(
                raw.verify(s, mech, vec![], public, &data, &bad),
                CKR_SIGNATURE_INVALID
            );
            assert_eq!(
                raw.verify(s, mech, vec![], public, &data, &sig[1..]),
                CKR_SIGNATURE_LEN_RANGE
            );
        }
        // Raw ECDSA over a caller's digest, of any hash's length.
        for digest in [vec![0x11; 20], vec![0x22; 32], vec![0x33; 64]] {
            let sig = raw.sign(s, CKM_ECDSA, vec![], private, &digest).unwrap();
            assert_eq!(
                raw.verify(s, CKM_ECDSA, vec![], public, &digest, &sig),
                CKR_OK
            );
        }
    }
}

#[test]
fn multi_part_hashing_matches_single_part() {
    let (raw, s, _dir) = new_token_session();
    let (public, private) = pair(&raw, s, P256).unwrap();
    let f = raw.f();
    let mut m = softoken_tests::raw::mechanism(CKM_ECDSA_SHA256, &mut []);
    let mut sig = [0u8; 64];
    let mut len = 64;
    // SAFETY: valid mechanism, buffers and lengths.
    unsafe {
        assert_eq!((f.C_SignInit.unwrap())(s, &mut m, private), CKR_OK);
        for part in [&b"part one, "[..], b"part two"] {
            assert_eq!(
                (f.C_SignUpdate.unwrap())(s, part.as_ptr() as *mut _, part.len() as CK_ULONG),
                CKR_OK
            );
        }
        assert_eq!(
            (f.C_SignFinal.unwrap())(s, sig.as_mut_ptr(), &mut len),
            CKR_OK
        );
    }
    assert_eq!(
        raw.verify(
            s,
            CKM_ECDSA_SHA256,
            vec![],
            public,
            b"part one, part two",
            &sig
        ),
        CKR_OK
    );
}

#[test]
fn generation_and_key_errors() {
    let (raw, s, _dir) = new_token_session();
    assert_eq!(pair(&raw, s, SECP256K1), Err(CKR_CURVE_NOT_SUPPORTED));
    assert_eq!(
        raw.generate_key_pair(s, CKM_EC_KEY_PAIR_GEN, &[], &[]),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    assert_eq!(
        raw.generate_key_pair(s, CKM_AES_KEY_GEN, &[], &[]),
        Err(CKR_MECHANISM_INVALID)
    );
    // EC_PARAMS may be repeated in the private template, not contradicted.
    assert!(raw
        .generate_key_pair(
            s,
            CKM_EC_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, P256.to_vec())],
            &[(CKA_EC_PARAMS, P256.to_vec())]
        )
        .is_ok());
    assert_eq!(
        raw.generate_key_pair(
            s,
            CKM_EC_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, P256.to_vec())],
            &[(CKA_EC_PARAMS, P384.to_vec())]
        ),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    let (public, private) = pair(&raw, s, P256).unwrap();
    // The halves are not interchangeable.
    assert_eq!(
        raw.sign(s, CKM_ECDSA_SHA256, vec![], public, b"x"),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], private, b"x", &[0; 64]),
        CKR_KEY_TYPE_INCONSISTENT
    );
    // A public key made from a raw point (as some clients send it) verifies.
    let point_attr = raw.get(s, public, CKA_EC_POINT).unwrap();
    let raw_point = point_attr[2..].to_vec();
    let imported = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ul(CKK_EC)),
                (CKA_EC_PARAMS, P256.to_vec()),
                (CKA_EC_POINT, raw_point),
            ],
        )
        .unwrap();
    let sig = raw
        .sign(s, CKM_ECDSA_SHA256, vec![], private, b"x")
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], imported, b"x", &sig),
        CKR_OK
    );
    // A point off the curve is no key.
    let mut off = vec![0x04];
    off.extend_from_slice(&[1u8; 64]);
    let bogus = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ul(CKK_EC)),
                (CKA_EC_PARAMS, P256.to_vec()),
                (CKA_EC_POINT, off),
            ],
        )
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], bogus, b"x", &sig),
        CKR_KEY_TYPE_INCONSISTENT
    );
}

/// The EC key NSS generated in the sql-pw fixture signs, and OpenSSL checks
/// the signature against the certificate NSS issued for it.
#[test]
fn nss_fixture_key_signs() {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let id = fixture_key_id("sql-pw", "Fixture EC User");
    let private = raw
        .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, id.clone())])
        .unwrap()[0];
    let public = raw
        .find(s, &[(CKA_CLASS, ul(CKO_PUBLIC_KEY)), (CKA_ID, id)])
        .unwrap()[0];
    let data = b"signed with a key NSS made";
    let sig = raw
        .sign(s, CKM_ECDSA_SHA256, vec![], private, data)
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], public, data, &sig),
        CKR_OK
    );

    let files = tempfile::tempdir().unwrap();
    let pem = run(Command::new("openssl").args([
        "x509",
        "-inform",
        "DER",
        "-in",
        &fixtures()
            .join("exports/Fixture_EC_User.der")
            .display()
            .to_string(),
        "-pubkey",
        "-noout",
    ]));
    std::fs::write(files.path().join("pub.pem"), &pem).unwrap();
    let point_attr = raw.get(s, public, CKA_EC_POINT).unwrap();
    assert!(openssl_verifies_ec(
        P256,
        &point_attr[2..],
        data,
        &sig,
        "sha256"
    ));
    // The certificate's key is the same key.
    let cert_pub = run(Command::new("openssl").args([
        "pkey",
        "-pubin",
        "-in",
        &files.path().join("pub.pem").display().to_string(),
        "-text",
        "-noout",
    ]));
    let hex_point: String = cert_pub
        .lines()
        .skip_while(|l| !l.starts_with("pub:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .map(|l| l.trim().replace(':', ""))
        .collect();
    assert_eq!(hex_point, hex::encode(&point_attr[2..]));
}

/// Template of an extractable derived secret, so the test can compare it.
fn readable_secret(len: Option<CK_ULONG>) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    let mut t = vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
    ];
    if let Some(n) = len {
        t.push((CKA_VALUE_LEN, ul(n)));
    }
    t
}

/// Two parties agree on the same secret; with NSS's fixture key, OpenSSL
/// agrees too; the X9.63 KDF gives what its definition says.
#[test]
fn ecdh_derives_agreed_secrets() {
    let (raw, s, _dir) = new_token_session();
    for params in [P256, P384] {
        let (a_pub, a_priv) = raw
            .generate_key_pair(
                s,
                CKM_EC_KEY_PAIR_GEN,
                &[(CKA_EC_PARAMS, params.to_vec())],
                &[(CKA_DERIVE, TRUE.to_vec())],
            )
            .unwrap();
        let (b_pub, b_priv) = raw
            .generate_key_pair(
                s,
                CKM_EC_KEY_PAIR_GEN,
                &[(CKA_EC_PARAMS, params.to_vec())],
                &[(CKA_DERIVE, TRUE.to_vec())],
            )
            .unwrap();
        let a_point = raw.get(s, a_pub, CKA_EC_POINT).unwrap();
        let b_point = raw.get(s, b_pub, CKA_EC_POINT).unwrap();
        // Public data wrapped (as NSS keeps it) on one side, raw on the other.
        let ab = raw
            .derive(
                s,
                CKM_ECDH1_DERIVE,
                ecdh_param(CKD_NULL, b"", &b_point),
                a_priv,
                &readable_secret(None),
            )
            .unwrap();
        let raw_a = &a_point[a_point.len() - (b_point.len() - 2)..];
        let ba = raw
            .derive(
                s,
                CKM_ECDH1_COFACTOR_DERIVE,
                ecdh_param(CKD_NULL, b"", raw_a),
                b_priv,
                &readable_secret(None),
            )
            .unwrap();
        let z = raw.get(s, ab, CKA_VALUE).unwrap();
        assert_eq!(z, raw.get(s, ba, CKA_VALUE).unwrap());
        assert_eq!(z.len(), if params == P256 { 32 } else { 48 });
        assert_eq!(raw.get(s, ab, CKA_LOCAL).unwrap(), FALSE);
        assert_eq!(
            as_ul(&raw.get(s, ab, CKA_KEY_GEN_MECHANISM).unwrap()),
            CKM_ECDH1_DERIVE
        );

        // X9.63 with SHA-256 and shared info, 40 bytes: two hash blocks.
        let kdf = raw
            .derive(
                s,
                CKM_ECDH1_DERIVE,
                ecdh_param(CKD_SHA256_KDF, b"info", &b_point),
                a_priv,
                &readable_secret(Some(40)),
            )
            .unwrap();
        let block = |counter: u8| {
            hex::decode(sha256_hex(&[&z[..], &[0, 0, 0, counter], b"info"].concat())).unwrap()
        };
        assert_eq!(
            raw.get(s, kdf, CKA_VALUE).unwrap(),
            [block(1), block(2)].concat()[..40].to_vec()
        );

        // An AES key, sensitive by default.
        let aes = raw
            .derive(
                s,
                CKM_ECDH1_DERIVE,
                ecdh_param(CKD_SHA256_KDF, b"", &b_point),
                a_priv,
                &[
                    (CKA_CLASS, ul(CKO_SECRET_KEY)),
                    (CKA_KEY_TYPE, ul(CKK_AES)),
                    (CKA_VALUE_LEN, ul(16)),
                ],
            )
            .unwrap();
        assert_eq!(raw.get(s, aes, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    }
}

#[test]
fn ecdh_with_openssl_and_nss_key() {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let id = fixture_key_id("sql-pw", "Fixture EC User");
    let nss_key = raw
        .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, id)])
        .unwrap()[0];

    let files = tempfile::tempdir().unwrap();
    let p = |n: &str| files.path().join(n).display().to_string();
    run(Command::new("openssl").args([
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &p("peer.pem"),
    ]));
    run(Command::new("openssl").args([
        "ec",
        "-in",
        &p("peer.pem"),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        &p("peer.der"),
    ]));
    let peer_spki = std::fs::read(p("peer.der")).unwrap();
    let peer_point = &peer_spki[peer_spki.len() - 65..];
    let nss_pub = run(Command::new("openssl").args([
        "x509",
        "-inform",
        "DER",
        "-in",
        &fixtures()
            .join("exports/Fixture_EC_User.der")
            .display()
            .to_string(),
        "-pubkey",
        "-noout",
    ]));
    std::fs::write(p("nss.pem"), nss_pub).unwrap();
    run(Command::new("openssl").args([
        "pkeyutl",
        "-derive",
        "-inkey",
        &p("peer.pem"),
        "-peerkey",
        &p("nss.pem"),
        "-out",
        &p("z"),
    ]));
    let z = std::fs::read(p("z")).unwrap();

    let derived = raw
        .derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"", peer_point),
            nss_key,
            &readable_secret(None),
        )
        .unwrap();
    assert_eq!(raw.get(s, derived, CKA_VALUE).unwrap(), z);

    // Errors: unknown KDF, shared data with the NULL KDF, a point off the
    // curve, a key that may not derive.
    let tmpl = readable_secret(None);
    assert_eq!(
        raw.derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(0x99, b"", peer_point),
            nss_key,
            &tmpl
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        raw.derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"x", peer_point),
            nss_key,
            &tmpl
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut off = peer_point.to_vec();
    off[40] ^= 1;
    assert_eq!(
        raw.derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"", &off),
            nss_key,
            &tmpl
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        raw.derive(s, CKM_ECDH1_DERIVE, vec![1, 2], nss_key, &tmpl),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(raw.set(s, nss_key, &[(CKA_DERIVE, FALSE.to_vec())]), CKR_OK);
    assert_eq!(
        raw.derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"", peer_point),
            nss_key,
            &tmpl
        ),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
}

/// A session keeps a token key decrypted for reuse; that must never outlive
/// the login, nor survive the key's re-encryption under a new password, in
/// this module or in another one sharing the database.
#[test]
fn reused_token_keys_follow_logout_and_password_changes() {
    let (raw, s, dir) = new_token_session();
    let (public, private) = pair(&raw, s, P256).unwrap();
    let signs = |raw: &Raw, s| {
        let sig = raw.sign(s, CKM_ECDSA_SHA256, vec![], private, b"data")?;
        assert_eq!(
            raw.verify(s, CKM_ECDSA_SHA256, vec![], public, b"data", &sig),
            CKR_OK
        );
        Ok::<_, CK_RV>(())
    };
    signs(&raw, s).unwrap();
    signs(&raw, s).unwrap();
    // Setting a password ends the password-less login (as in NSS).
    assert_eq!(raw.set_pin(s, "", "pin-one"), CKR_OK);
    assert_eq!(signs(&raw, s), Err(CKR_KEY_HANDLE_INVALID));
    assert_eq!(raw.login(s, CKU_USER, "pin-one"), CKR_OK);
    signs(&raw, s).unwrap();
    assert_eq!(raw.logout(s), CKR_OK);
    assert!(signs(&raw, s).is_err(), "a cached key outlived the login");
    assert_eq!(raw.login(s, CKU_USER, "pin-one"), CKR_OK);
    signs(&raw, s).unwrap();

    // Another module changes the password: the keys are re-encrypted.
    let other = Raw::with_params(&sql_params(dir.path()));
    let os = other.open(other.slots()[0], true).unwrap();
    assert_eq!(other.login(os, CKU_USER, "pin-one"), CKR_OK);
    assert_eq!(other.set_pin(os, "pin-one", "pin-two"), CKR_OK);
    signs(&other, os).unwrap();
    // This module logged in under the old password: its cached copy is not
    // used for the re-encrypted key, which its old key cannot open; its
    // stale login ends and the caller is asked to log in again.
    assert_eq!(signs(&raw, s), Err(CKR_USER_NOT_LOGGED_IN));
    assert_eq!(raw.logout(s), CKR_USER_NOT_LOGGED_IN);
    assert_eq!(raw.login(s, CKU_USER, "pin-two"), CKR_OK);
    signs(&raw, s).unwrap();
}
