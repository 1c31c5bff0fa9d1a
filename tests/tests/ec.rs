//! EC keys and ECDSA through the C API: generation on each curve, every
//! hash variant and the raw mechanism, OpenSSL verifying what the module
//! signs, and a key NSS made signing.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{as_ul, ul, Raw, TRUE};
use softoken_tests::*;

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
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

fn setup() -> (Raw, CK_SESSION_HANDLE, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    (raw, s, dir)
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
    let (raw, s, _dir) = setup();
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
    let (raw, s, _dir) = setup();
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
    let (raw, s, _dir) = setup();
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
    let id = hex::decode("80fd1f8980566666880de0b6a879393a3793ce4b").unwrap();
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
