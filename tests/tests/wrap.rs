//! Wrapping and unwrapping keys: AES key wrap (RFC 3394, RFC 5649), AES
//! ECB, CBC and CBC-PAD, RSA-OAEP; secret keys as their value, private keys
//! as PKCS#8 that OpenSSL reads; the unwrapped keys work; C_WrapKey's codes.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{oaep_param, ul, Direction, FALSE, TRUE};
use softoken_tests::*;

#[test]
fn rfc3394_vector_and_openssl_agree() {
    let (raw, s, _dir) = new_token_session();
    let kek = raw
        .create_secret(s, CKK_AES, &unhex("000102030405060708090a0b0c0d0e0f"), &[])
        .unwrap();
    let data = unhex("00112233445566778899aabbccddeeff");
    let want = "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5";
    assert_eq!(
        hex::encode(
            raw.crypt(s, Direction::Encrypt, CKM_AES_KEY_WRAP, vec![], kek, &data)
                .unwrap()
        ),
        want
    );
    let key = raw
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &data,
            &[(CKA_EXTRACTABLE, TRUE.to_vec())],
        )
        .unwrap();
    assert_eq!(
        hex::encode(raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, key).unwrap()),
        want
    );
    // RFC 3394 4.2: the same data under a 192-bit KEK, both ways.
    let kek192 = raw
        .create_secret(
            s,
            CKK_AES,
            &unhex("000102030405060708090a0b0c0d0e0f1011121314151617"),
            &[],
        )
        .unwrap();
    let wrapped = raw
        .wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek192, key)
        .unwrap();
    assert_eq!(
        hex::encode(&wrapped),
        "96778b25ae6ca435f92b5b97c050aed2468ab8a17ad84e5d"
    );
    assert_eq!(
        raw.crypt(
            s,
            Direction::Decrypt,
            CKM_AES_KEY_WRAP,
            vec![],
            kek192,
            &wrapped
        )
        .unwrap(),
        data
    );

    // RFC 5649 with a 256-bit KEK, as OpenSSL computes it.
    let kek256 = unhex(&"0123456789abcdef".repeat(4));
    let kek2 = raw.create_secret(s, CKK_AES, &kek256, &[]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let input = files.path().join("in");
    for n in [1usize, 7, 8, 20, 33] {
        let data: Vec<u8> = (0..n as u8).collect();
        std::fs::write(&input, &data).unwrap();
        let expected = Command::new("openssl")
            .args([
                "enc",
                "-id-aes256-wrap-pad",
                "-K",
                &hex::encode(&kek256),
                "-iv",
                "A65959A6",
                "-in",
                &input.display().to_string(),
            ])
            .output()
            .unwrap()
            .stdout;
        for mech in [CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD] {
            let ct = raw
                .crypt(s, Direction::Encrypt, mech, vec![], kek2, &data)
                .unwrap();
            assert_eq!(ct, expected, "length {n}");
            assert_eq!(
                raw.crypt(s, Direction::Decrypt, mech, vec![], kek2, &ct)
                    .unwrap(),
                data
            );
        }
    }
    let mut ct = raw
        .crypt(
            s,
            Direction::Encrypt,
            CKM_AES_KEY_WRAP_KWP,
            vec![],
            kek2,
            b"tamper me",
        )
        .unwrap();
    ct[3] ^= 1;
    assert_eq!(
        raw.crypt(
            s,
            Direction::Decrypt,
            CKM_AES_KEY_WRAP_KWP,
            vec![],
            kek2,
            &ct
        ),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );
    assert_eq!(
        raw.crypt(
            s,
            Direction::Encrypt,
            CKM_AES_KEY_WRAP,
            vec![],
            kek2,
            &[0; 20]
        ),
        Err(CKR_DATA_LEN_RANGE)
    );
}

/// An RSA key under RFC 5649: OpenSSL unwraps it and reads the PKCS#8,
/// and the key unwrapped again signs.
#[test]
fn an_rsa_key_wrapped_with_kwp_is_the_pkcs8_openssl_reads() {
    let (raw, s, _dir) = new_token_session();
    let kek_value = unhex(&"00112233445566778899aabbccddeeff".repeat(2));
    let kek = raw.create_secret(s, CKK_AES, &kek_value, &[]).unwrap();
    let exportable = [(CKA_EXTRACTABLE, TRUE.to_vec()), (CKA_SIGN, TRUE.to_vec())];

    let (rsa_pub, rsa_priv) = raw
        .generate_key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[(CKA_MODULUS_BITS, ul(2048))],
            &exportable,
        )
        .unwrap();
    let wrapped = raw
        .wrap_key(s, CKM_AES_KEY_WRAP_KWP, vec![], kek, rsa_priv)
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let p = |n: &str| files.path().join(n).display().to_string();
    std::fs::write(p("wrapped"), &wrapped).unwrap();
    run(Command::new("openssl").args([
        "enc",
        "-d",
        "-id-aes256-wrap-pad",
        "-K",
        &hex::encode(&kek_value),
        "-iv",
        "A65959A6",
        "-in",
        &p("wrapped"),
        "-out",
        &p("key.der"),
    ]));
    let text = run(Command::new("openssl").args([
        "pkey",
        "-inform",
        "DER",
        "-in",
        &p("key.der"),
        "-text",
        "-noout",
    ]));
    assert!(text.contains("Private-Key: (2048 bit"), "{text}");
    let unwrapped = raw
        .unwrap_key(
            s,
            CKM_AES_KEY_WRAP_KWP,
            vec![],
            kek,
            &wrapped,
            &[
                (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
                (CKA_SIGN, TRUE.to_vec()),
                (CKA_TOKEN, TRUE.to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(
        raw.get(s, unwrapped, CKA_PRIVATE_EXPONENT),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert_eq!(raw.get(s, unwrapped, CKA_LOCAL).unwrap(), FALSE);
    let sig = raw
        .sign(s, CKM_SHA256_RSA_PKCS, vec![], unwrapped, b"data")
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_SHA256_RSA_PKCS, vec![], rsa_pub, b"data", &sig),
        CKR_OK
    );
}

/// An EC key under AES-CBC-PAD unwraps into a key that signs.
#[test]
fn an_ec_key_wrapped_with_cbc_pad_unwraps_into_a_signing_key() {
    let (raw, s, _dir) = new_token_session();
    let kek_value = unhex(&"00112233445566778899aabbccddeeff".repeat(2));
    let kek = raw.create_secret(s, CKK_AES, &kek_value, &[]).unwrap();
    let exportable = [(CKA_EXTRACTABLE, TRUE.to_vec()), (CKA_SIGN, TRUE.to_vec())];

    let p256 = unhex("06082a8648ce3d030107");
    let (ec_pub, ec_priv) = raw
        .generate_key_pair(
            s,
            CKM_EC_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, p256)],
            &exportable,
        )
        .unwrap();
    let iv = vec![9u8; 16];
    let wrapped = raw
        .wrap_key(s, CKM_AES_CBC_PAD, iv.clone(), kek, ec_priv)
        .unwrap();
    let unwrapped = raw
        .unwrap_key(
            s,
            CKM_AES_CBC_PAD,
            iv,
            kek,
            &wrapped,
            &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_SIGN, TRUE.to_vec())],
        )
        .unwrap();
    let sig = raw
        .sign(s, CKM_ECDSA_SHA256, vec![], unwrapped, b"data")
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], ec_pub, b"data", &sig),
        CKR_OK
    );
}

/// Ed25519 under AES key wrap with padding: deterministic, so both keys
/// sign alike.
#[test]
fn an_ed25519_key_unwraps_into_the_same_key() {
    let (raw, s, _dir) = new_token_session();
    let kek_value = unhex(&"00112233445566778899aabbccddeeff".repeat(2));
    let kek = raw.create_secret(s, CKK_AES, &kek_value, &[]).unwrap();
    let exportable = [(CKA_EXTRACTABLE, TRUE.to_vec()), (CKA_SIGN, TRUE.to_vec())];

    let (_, ed_priv) = raw
        .generate_key_pair(
            s,
            CKM_EC_EDWARDS_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, unhex("06032b6570"))],
            &exportable,
        )
        .unwrap();
    let wrapped = raw
        .wrap_key(s, CKM_AES_KEY_WRAP_PAD, vec![], kek, ed_priv)
        .unwrap();
    let unwrapped = raw
        .unwrap_key(
            s,
            CKM_AES_KEY_WRAP_PAD,
            vec![],
            kek,
            &wrapped,
            &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_SIGN, TRUE.to_vec())],
        )
        .unwrap();
    assert_eq!(
        raw.sign(s, CKM_EDDSA, vec![], unwrapped, b"m").unwrap(),
        raw.sign(s, CKM_EDDSA, vec![], ed_priv, b"m").unwrap()
    );
}

/// CKM_RSA_X_509 unwrapping: the raw RSA output is the key left-padded
/// with zeros to the modulus size, so the key is its last CKA_VALUE_LEN
/// bytes (the first ones are zeros).
#[test]
fn an_rsa_x509_unwrap_takes_the_key_from_the_end_of_the_block() {
    let (raw, s, _dir) = new_token_session();
    let (rsa_pub, rsa_priv) = raw
        .generate_key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[(CKA_MODULUS_BITS, ul(2048)), (CKA_WRAP, TRUE.to_vec())],
            &[(CKA_UNWRAP, TRUE.to_vec())],
        )
        .unwrap();
    let value: Vec<u8> = (1..=16).collect();
    let aes = raw
        .create_secret(
            s,
            CKK_AES,
            &value,
            &[
                (CKA_EXTRACTABLE, TRUE.to_vec()),
                (CKA_SENSITIVE, FALSE.to_vec()),
            ],
        )
        .unwrap();
    let wrapped = raw
        .wrap_key(s, CKM_RSA_X_509, vec![], rsa_pub, aes)
        .unwrap();
    assert_eq!(wrapped.len(), 256);
    let unwrapped = raw
        .unwrap_key(
            s,
            CKM_RSA_X_509,
            vec![],
            rsa_priv,
            &wrapped,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_AES)),
                (CKA_VALUE_LEN, ul(16)),
                (CKA_SENSITIVE, FALSE.to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(raw.get(s, unwrapped, CKA_VALUE).unwrap(), value);
}

#[test]
fn secret_keys_under_rsa_oaep_and_the_refusals() {
    let (raw, s, _dir) = new_token_session();
    let (rsa_pub, rsa_priv) = raw
        .generate_key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[(CKA_MODULUS_BITS, ul(2048)), (CKA_WRAP, TRUE.to_vec())],
            &[(CKA_UNWRAP, TRUE.to_vec())],
        )
        .unwrap();
    let aes = raw
        .create_secret(s, CKK_AES, &[5; 32], &[(CKA_EXTRACTABLE, TRUE.to_vec())])
        .unwrap();
    let oaep = oaep_param(CKM_SHA256, CKG_MGF1_SHA256, b"");
    let wrapped = raw
        .wrap_key(s, CKM_RSA_PKCS_OAEP, oaep.clone(), rsa_pub, aes)
        .unwrap();
    assert_eq!(wrapped.len(), 256);
    let unwrapped = raw
        .unwrap_key(
            s,
            CKM_RSA_PKCS_OAEP,
            oaep.clone(),
            rsa_priv,
            &wrapped,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_AES)),
                (CKA_ENCRYPT, TRUE.to_vec()),
            ],
        )
        .unwrap();
    let iv = vec![0u8; 16];
    assert_eq!(
        raw.crypt(
            s,
            Direction::Encrypt,
            CKM_AES_CBC,
            iv.clone(),
            unwrapped,
            &[1; 16]
        )
        .unwrap(),
        raw.crypt(s, Direction::Encrypt, CKM_AES_CBC, iv, aes, &[1; 16])
            .unwrap()
    );

    let kek = raw.create_secret(s, CKK_AES, &[7; 16], &[]).unwrap();
    let locked = raw
        .create_secret(s, CKK_AES, &[8; 16], &[(CKA_EXTRACTABLE, FALSE.to_vec())])
        .unwrap();
    assert_eq!(
        raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, locked),
        Err(CKR_KEY_UNEXTRACTABLE)
    );
    let no_wrap = raw
        .create_secret(s, CKK_AES, &[7; 16], &[(CKA_WRAP, FALSE.to_vec())])
        .unwrap();
    assert_eq!(
        raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], no_wrap, aes),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    assert_eq!(
        raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], 0x8000_4444, aes),
        Err(CKR_WRAPPING_KEY_HANDLE_INVALID)
    );
    assert_eq!(
        raw.wrap_key(s, CKM_AES_CTR, vec![0; 24], kek, aes),
        Err(CKR_MECHANISM_INVALID)
    );
    let trusted_only = raw
        .create_secret(
            s,
            CKK_AES,
            &[9; 16],
            &[
                (CKA_EXTRACTABLE, TRUE.to_vec()),
                (CKA_WRAP_WITH_TRUSTED, TRUE.to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(
        raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, trusted_only),
        Err(CKR_KEY_NOT_WRAPPABLE)
    );

    let wrapped = raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, aes).unwrap();
    let secret_template = [(CKA_CLASS, ul(CKO_SECRET_KEY)), (CKA_KEY_TYPE, ul(CKK_AES))];
    let mut bad = wrapped.clone();
    bad[0] ^= 1;
    assert_eq!(
        raw.unwrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, &bad, &secret_template),
        Err(CKR_WRAPPED_KEY_INVALID)
    );
    assert_eq!(
        raw.unwrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, &wrapped, &[]),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    assert_eq!(
        raw.unwrap_key(
            s,
            CKM_AES_KEY_WRAP,
            vec![],
            0x8000_4444,
            &wrapped,
            &secret_template
        ),
        Err(CKR_UNWRAPPING_KEY_HANDLE_INVALID)
    );
    // A private key template over a secret's bytes is no PKCS#8.
    assert_eq!(
        raw.unwrap_key(
            s,
            CKM_AES_KEY_WRAP,
            vec![],
            kek,
            &wrapped,
            &[(CKA_CLASS, ul(CKO_PRIVATE_KEY))]
        ),
        Err(CKR_WRAPPED_KEY_INVALID)
    );
}

/// The block-cipher wrappings without padding of their own (AES-ECB,
/// AES-CBC, RFC 3394 key wrap) take a key of any length: its value, or its
/// PKCS#8 encoding, zero-padded to the block (the specification's rule for
/// wrapping with these mechanisms; SoftHSMv2 does the same). Unwrapping
/// gives the key back: the PKCS#8 encoding knows its own length, a secret
/// key's length is the template's CKA_VALUE_LEN.
#[test]
fn keys_of_any_length_wrap_with_the_unpadded_block_modes() {
    let (raw, s, _dir) = new_token_session();
    let kek = raw.create_secret(s, CKK_AES, &[0x42; 32], &[]).unwrap();
    let exportable = [(CKA_EXTRACTABLE, TRUE.to_vec()), (CKA_SIGN, TRUE.to_vec())];
    let (ec_pub, ec_priv) = raw
        .generate_key_pair(
            s,
            CKM_EC_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, unhex("06082a8648ce3d030107"))],
            &exportable,
        )
        .unwrap();
    let (rsa_pub, rsa_priv) = raw
        .generate_key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[(CKA_MODULUS_BITS, ul(2048))],
            &exportable,
        )
        .unwrap();
    let odd_secret = raw
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &[0x17; 20],
            &[(CKA_EXTRACTABLE, TRUE.to_vec())],
        )
        .unwrap();
    for (mechanism, param, block) in [
        (CKM_AES_KEY_WRAP, vec![], 8),
        (CKM_AES_CBC, vec![6u8; 16], 16),
        (CKM_AES_ECB, vec![], 16),
    ] {
        for (public, private, sign) in [
            (ec_pub, ec_priv, CKM_ECDSA_SHA256),
            (rsa_pub, rsa_priv, CKM_SHA256_RSA_PKCS),
        ] {
            let wrapped = raw
                .wrap_key(s, mechanism, param.clone(), kek, private)
                .unwrap_or_else(|rv| panic!("wrap under {mechanism:#x}: {rv:#x}"));
            let extra = if mechanism == CKM_AES_KEY_WRAP { 8 } else { 0 };
            assert_eq!((wrapped.len() - extra) % block, 0);
            let unwrapped = raw
                .unwrap_key(
                    s,
                    mechanism,
                    param.clone(),
                    kek,
                    &wrapped,
                    &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_SIGN, TRUE.to_vec())],
                )
                .unwrap_or_else(|rv| panic!("unwrap under {mechanism:#x}: {rv:#x}"));
            let sig = raw.sign(s, sign, vec![], unwrapped, b"data").unwrap();
            assert_eq!(raw.verify(s, sign, vec![], public, b"data", &sig), CKR_OK);
        }
        let wrapped = raw
            .wrap_key(s, mechanism, param.clone(), kek, odd_secret)
            .unwrap();
        let unwrapped = raw
            .unwrap_key(
                s,
                mechanism,
                param.clone(),
                kek,
                &wrapped,
                &[
                    (CKA_CLASS, ul(CKO_SECRET_KEY)),
                    (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                    (CKA_VALUE_LEN, ul(20)),
                    (CKA_EXTRACTABLE, TRUE.to_vec()),
                    (CKA_SENSITIVE, FALSE.to_vec()),
                ],
            )
            .unwrap();
        assert_eq!(raw.get(s, unwrapped, CKA_VALUE).unwrap(), [0x17; 20]);
    }
}

/// A key that does not fit the wrapping mechanism is C_WrapKey's
/// CKR_KEY_SIZE_RANGE (CKR_DATA_LEN_RANGE is not among its codes), and a
/// key of a class no mechanism wraps is CKR_KEY_NOT_WRAPPABLE.
#[test]
fn a_key_the_mechanism_cannot_hold_is_key_size_range() {
    let (raw, s, _dir) = new_token_session();
    let (rsa_pub, _) = raw
        .generate_key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[(CKA_MODULUS_BITS, ul(2048)), (CKA_WRAP, TRUE.to_vec())],
            &[],
        )
        .unwrap();
    let extractable = [(CKA_EXTRACTABLE, TRUE.to_vec())];
    let long = raw
        .create_secret(s, CKK_GENERIC_SECRET, &[1; 300], &extractable)
        .unwrap();
    assert_eq!(
        raw.wrap_key(s, CKM_RSA_PKCS, vec![], rsa_pub, long),
        Err(CKR_KEY_SIZE_RANGE)
    );
    let oaep = oaep_param(CKM_SHA256, CKG_MGF1_SHA256, b"");
    assert_eq!(
        raw.wrap_key(s, CKM_RSA_PKCS_OAEP, oaep, rsa_pub, long),
        Err(CKR_KEY_SIZE_RANGE)
    );
    // RFC 3394 wraps at least two 8-byte blocks.
    let kek = raw.create_secret(s, CKK_AES, &[7; 16], &[]).unwrap();
    let short = raw
        .create_secret(s, CKK_GENERIC_SECRET, &[2; 8], &extractable)
        .unwrap();
    assert_eq!(
        raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, short),
        Err(CKR_KEY_SIZE_RANGE)
    );
    assert_eq!(
        raw.wrap_key(s, CKM_AES_KEY_WRAP, vec![], kek, rsa_pub),
        Err(CKR_KEY_NOT_WRAPPABLE)
    );
}
