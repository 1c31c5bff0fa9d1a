//! Ed25519 and X25519 through the C API: RFC 8032 and RFC 7748 known
//! answers, generated keys, and OpenSSL verifying Ed25519 signatures.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{ecdh_param, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const X25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6e];

fn key(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
    params: &[u8],
    attr: CK_ATTRIBUTE_TYPE,
    value: Vec<u8>,
) -> CK_OBJECT_HANDLE {
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(class)),
            (CKA_KEY_TYPE, ul(key_type)),
            (CKA_EC_PARAMS, params.to_vec()),
            (attr, value),
            (CKA_DERIVE, TRUE.to_vec()),
        ],
    )
    .unwrap()
}

#[test]
fn ed25519_rfc8032_vector_and_generated_keys() {
    let (raw, s, _dir) = new_token_session();
    let private = key(
        &raw,
        s,
        CKO_PRIVATE_KEY,
        CKK_EC_EDWARDS,
        ED25519,
        CKA_VALUE,
        unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
    );
    let public_raw = unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let public = key(
        &raw,
        s,
        CKO_PUBLIC_KEY,
        CKK_EC_EDWARDS,
        ED25519,
        CKA_EC_POINT,
        public_raw.clone(),
    );
    let sig = raw.sign(s, CKM_EDDSA, vec![], private, b"").unwrap();
    assert_eq!(
        hex::encode(&sig),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    assert_eq!(raw.verify(s, CKM_EDDSA, vec![], public, b"", &sig), CKR_OK);
    assert_eq!(
        raw.verify(s, CKM_EDDSA, vec![], public, b"x", &sig),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        raw.verify(s, CKM_EDDSA, vec![], public, b"", &sig[1..]),
        CKR_SIGNATURE_LEN_RANGE
    );
    // Ed25519ph and contexts are not offered.
    let ph = [vec![1u8; 8], ul(0), ul(0)].concat();
    assert_eq!(
        raw.sign(s, CKM_EDDSA, ph, private, b""),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );

    // A generated pair; OpenSSL verifies its signature.
    let (gpub, gpriv) = raw
        .generate_key_pair(
            s,
            CKM_EC_EDWARDS_KEY_PAIR_GEN,
            &[
                (CKA_EC_PARAMS, ED25519.to_vec()),
                (CKA_TOKEN, TRUE.to_vec()),
            ],
            &[(CKA_TOKEN, TRUE.to_vec())],
        )
        .unwrap();
    let point = raw.get(s, gpub, CKA_EC_POINT).unwrap();
    assert_eq!(&point[..2], &[0x04, 0x20]);
    assert_eq!(raw.get(s, gpriv, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    let data = b"signed with a token Ed25519 key";
    let sig = raw.sign(s, CKM_EDDSA, vec![], gpriv, data).unwrap();
    assert_eq!(raw.verify(s, CKM_EDDSA, vec![], gpub, data, &sig), CKR_OK);
    let files = tempfile::tempdir().unwrap();
    let p = |n: &str| files.path().join(n).display().to_string();
    let spki = [&unhex("302a300506032b6570032100")[..], &point[2..]].concat();
    std::fs::write(p("pub.der"), spki).unwrap();
    std::fs::write(p("data"), data).unwrap();
    std::fs::write(p("sig"), &sig).unwrap();
    run(Command::new("openssl").args([
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        &p("pub.der"),
        "-out",
        &p("pub.pem"),
    ]));
    let out = run(Command::new("openssl").args([
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &p("pub.pem"),
        "-rawin",
        "-in",
        &p("data"),
        "-sigfile",
        &p("sig"),
    ]));
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    assert_eq!(
        raw.generate_key_pair(
            s,
            CKM_EC_EDWARDS_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, X25519.to_vec())],
            &[]
        ),
        Err(CKR_CURVE_NOT_SUPPORTED)
    );
}

#[test]
fn x25519_rfc7748_vector_and_generated_keys() {
    let (raw, s, _dir) = new_token_session();
    let alice = key(
        &raw,
        s,
        CKO_PRIVATE_KEY,
        CKK_EC_MONTGOMERY,
        X25519,
        CKA_VALUE,
        unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    );
    let bob_public = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let readable = [
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_SENSITIVE, FALSE.to_vec()),
    ];
    let shared = raw
        .derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"", &bob_public),
            alice,
            &readable,
        )
        .unwrap();
    assert_eq!(
        hex::encode(raw.get(s, shared, CKA_VALUE).unwrap()),
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    );

    let pair = || {
        raw.generate_key_pair(
            s,
            CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, X25519.to_vec())],
            &[(CKA_DERIVE, TRUE.to_vec())],
        )
        .unwrap()
    };
    let ((a_pub, a_priv), (b_pub, b_priv)) = (pair(), pair());
    let a_point = raw.get(s, a_pub, CKA_EC_POINT).unwrap();
    let b_point = raw.get(s, b_pub, CKA_EC_POINT).unwrap();
    let ab = raw
        .derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"", &b_point),
            a_priv,
            &readable,
        )
        .unwrap();
    let ba = raw
        .derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"", &a_point[2..]),
            b_priv,
            &readable,
        )
        .unwrap();
    assert_eq!(
        raw.get(s, ab, CKA_VALUE).unwrap(),
        raw.get(s, ba, CKA_VALUE).unwrap()
    );
    assert_eq!(
        raw.derive(
            s,
            CKM_ECDH1_DERIVE,
            ecdh_param(CKD_NULL, b"", &[1; 31]),
            a_priv,
            &readable
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}
