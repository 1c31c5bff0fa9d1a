//! RSA through the C API: key pair generation (the caller's exponent
//! honoured), every signature mechanism, OpenSSL verifying what the module
//! signs, NSS-made keys (also the migrated database's 3DES-protected one)
//! signing, and the errors.

use pkcs11_sys::*;
use std::process::Command;

use softoken_tests::raw::{as_ul, oaep_param, ul, Direction, Raw, TRUE};
use softoken_tests::*;

fn pair(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    bits: CK_ULONG,
    e: &[u8],
) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), CK_RV> {
    raw.generate_key_pair(
        s,
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        &[
            (CKA_MODULUS_BITS, ul(bits)),
            (CKA_PUBLIC_EXPONENT, e.to_vec()),
            (CKA_TOKEN, TRUE.to_vec()),
        ],
        &[(CKA_TOKEN, TRUE.to_vec()), (CKA_SIGN, TRUE.to_vec())],
    )
}

/// SubjectPublicKeyInfo of an RSA public key.
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let rsa_encryption = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let key = tlv(0x30, &[der_integer(n), der_integer(e)].concat());
    tlv(
        0x30,
        &[
            tlv(0x30, &rsa_encryption),
            tlv(0x03, &[&[0u8][..], &key].concat()),
        ]
        .concat(),
    )
}

/// CK_RSA_PKCS_PSS_PARAMS as bytes.
fn pss(hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, salt: CK_ULONG) -> Vec<u8> {
    [ul(hash), ul(mgf), ul(salt)].concat()
}

/// A generated RSA-2048 signing pair, the public key's SubjectPublicKeyInfo
/// and a message to sign.
struct SigningPair {
    raw: Raw,
    s: CK_SESSION_HANDLE,
    _dir: tempfile::TempDir,
    public: CK_OBJECT_HANDLE,
    private: CK_OBJECT_HANDLE,
    spki: Vec<u8>,
    data: Vec<u8>,
}

fn signing_pair() -> SigningPair {
    let (raw, s, dir) = new_token_session();
    let (public, private) = pair(&raw, s, 2048, &[1, 0, 1]).unwrap();
    let n = raw.get(s, public, CKA_MODULUS).unwrap();
    let e = raw.get(s, public, CKA_PUBLIC_EXPONENT).unwrap();
    SigningPair {
        spki: rsa_spki(&n, &e),
        data: b"an RSA-signed message".repeat(5),
        raw,
        s,
        _dir: dir,
        public,
        private,
    }
}

#[test]
fn generated_pair_has_the_asked_size_exponent_and_sensitivity() {
    let (raw, s, _dir) = new_token_session();
    let (public, private) = pair(&raw, s, 2048, &[1, 0, 1]).unwrap();
    assert_eq!(as_ul(&raw.get(s, public, CKA_MODULUS_BITS).unwrap()), 2048);
    let n = raw.get(s, public, CKA_MODULUS).unwrap();
    let e = raw.get(s, public, CKA_PUBLIC_EXPONENT).unwrap();
    assert_eq!((n.len(), e.as_slice()), (256, &[1u8, 0, 1][..]));
    assert_eq!(raw.get(s, private, CKA_MODULUS).unwrap(), n);
    assert_eq!(
        raw.get(s, private, CKA_PRIVATE_EXPONENT),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert_eq!(raw.get(s, private, CKA_LOCAL).unwrap(), TRUE);
}

/// PKCS#1 v1.5 with every hash the table offers, checked by OpenSSL.
#[test]
fn pkcs1_signatures_with_every_hash_verify_in_openssl() {
    let SigningPair {
        raw,
        s,
        public,
        private,
        spki,
        data,
        ..
    } = signing_pair();
    for (mech, digest) in [
        (CKM_MD5_RSA_PKCS, "md5"),
        (CKM_SHA1_RSA_PKCS, "sha1"),
        (CKM_SHA224_RSA_PKCS, "sha224"),
        (CKM_SHA256_RSA_PKCS, "sha256"),
        (CKM_SHA384_RSA_PKCS, "sha384"),
        (CKM_SHA512_RSA_PKCS, "sha512"),
        (CKM_SHA3_256_RSA_PKCS, "sha3-256"),
        (CKM_SHA3_512_RSA_PKCS, "sha3-512"),
    ] {
        let sig = raw.sign(s, mech, vec![], private, &data).unwrap();
        assert_eq!(sig.len(), 256);
        assert_eq!(raw.verify(s, mech, vec![], public, &data, &sig), CKR_OK);
        assert!(
            openssl_verifies(&spki, &data, &sig, digest, &[]),
            "{digest}"
        );
        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert_eq!(
            raw.verify(s, mech, vec![], public, &data, &bad),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            raw.verify(s, mech, vec![], public, &data, &sig[1..]),
            CKR_SIGNATURE_LEN_RANGE
        );
    }
}

/// CKM_RSA_PKCS over a caller-built DigestInfo.
#[test]
fn rsa_pkcs_over_a_callers_digest_info_is_the_hashed_signature() {
    let SigningPair {
        raw,
        s,
        public,
        private,
        data,
        ..
    } = signing_pair();
    // CKM_RSA_PKCS over a caller-built DigestInfo gives the very same bytes
    // (what NSS and OpenSSL's engine send).
    let digest_info = [
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ][..],
        &hex::decode(sha256_hex(&data)).unwrap(),
    ]
    .concat();
    let raw_sig = raw
        .sign(s, CKM_RSA_PKCS, vec![], private, &digest_info)
        .unwrap();
    assert_eq!(
        raw_sig,
        raw.sign(s, CKM_SHA256_RSA_PKCS, vec![], private, &data)
            .unwrap()
    );
    assert_eq!(
        raw.verify(s, CKM_RSA_PKCS, vec![], public, &digest_info, &raw_sig),
        CKR_OK
    );
    assert_eq!(
        raw.sign(s, CKM_RSA_PKCS, vec![], private, &[0; 246]),
        Err(CKR_DATA_LEN_RANGE)
    );
}

/// PSS, hashed and over a caller's digest, checked by OpenSSL.
#[test]
fn pss_signatures_hashed_and_over_a_callers_digest() {
    let SigningPair {
        raw,
        s,
        public,
        private,
        spki,
        data,
        ..
    } = signing_pair();
    // PSS, hashed and over a caller's digest.
    for (mech, hash, mgf, digest) in [
        (
            CKM_SHA256_RSA_PKCS_PSS,
            CKM_SHA256,
            CKG_MGF1_SHA256,
            "sha256",
        ),
        (
            CKM_SHA384_RSA_PKCS_PSS,
            CKM_SHA384,
            CKG_MGF1_SHA384,
            "sha384",
        ),
        (
            CKM_SHA512_RSA_PKCS_PSS,
            CKM_SHA512,
            CKG_MGF1_SHA512,
            "sha512",
        ),
    ] {
        let salt = match digest {
            "sha256" => 32,
            "sha384" => 48,
            _ => 64,
        };
        let sig = raw
            .sign(s, mech, pss(hash, mgf, salt), private, &data)
            .unwrap();
        assert_eq!(
            raw.verify(s, mech, pss(hash, mgf, salt), public, &data, &sig),
            CKR_OK
        );
        let salt_opt = format!("rsa_pss_saltlen:{salt}");
        assert!(
            openssl_verifies(
                &spki,
                &data,
                &sig,
                digest,
                &["rsa_padding_mode:pss", &salt_opt]
            ),
            "{digest}"
        );
        assert_eq!(
            raw.verify(s, mech, pss(hash, mgf, salt + 1), public, &data, &sig),
            CKR_SIGNATURE_INVALID
        );
    }
    let hashed = hex::decode(sha256_hex(&data)).unwrap();
    let sig = raw
        .sign(
            s,
            CKM_RSA_PKCS_PSS,
            pss(CKM_SHA256, CKG_MGF1_SHA256, 32),
            private,
            &hashed,
        )
        .unwrap();
    assert_eq!(
        raw.verify(
            s,
            CKM_SHA256_RSA_PKCS_PSS,
            pss(CKM_SHA256, CKG_MGF1_SHA256, 32),
            public,
            &data,
            &sig
        ),
        CKR_OK
    );
    assert_eq!(
        raw.sign(
            s,
            CKM_SHA256_RSA_PKCS_PSS,
            pss(CKM_SHA384, CKG_MGF1_SHA256, 32),
            private,
            &data
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        raw.sign(s, CKM_SHA256_RSA_PKCS_PSS, vec![], private, &data),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        raw.sign(
            s,
            CKM_RSA_PKCS_PSS,
            pss(CKM_SHA256, CKG_MGF1_SHA256, 32),
            private,
            &hashed[1..]
        ),
        Err(CKR_DATA_LEN_RANGE)
    );
}

/// CKM_RSA_X_509.
#[test]
fn the_raw_x509_operation_signs_and_verifies() {
    let SigningPair {
        raw,
        s,
        public,
        private,
        ..
    } = signing_pair();
    // The raw operation.
    let x509 = raw
        .sign(s, CKM_RSA_X_509, vec![], private, b"raw block")
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_RSA_X_509, vec![], public, b"raw block", &x509),
        CKR_OK
    );
}

/// PSS over a caller's digest takes every hash of the hash table as its
/// hashAlg (SHA3-224 and the SHA-512/t pair too), and OpenSSL verifies it.
#[test]
fn pss_over_a_callers_digest_takes_every_hash() {
    let (raw, s, _dir) = new_token_session();
    let (public, private) = pair(&raw, s, 2048, &[1, 0, 1]).unwrap();
    let n = raw.get(s, public, CKA_MODULUS).unwrap();
    let e = raw.get(s, public, CKA_PUBLIC_EXPONENT).unwrap();
    let spki = rsa_spki(&n, &e);
    let data = b"a message under a rarer hash".to_vec();
    let dir = tempfile::tempdir().unwrap();
    let data_file = dir.path().join("data");
    std::fs::write(&data_file, &data).unwrap();
    for (hash, mgf, name, mgf_name, len) in [
        (CKM_SHA3_224, CKG_MGF1_SHA3_224, "sha3-224", "sha3-224", 28),
        (CKM_SHA512_224, CKG_MGF1_SHA256, "sha512-224", "sha256", 28),
        (CKM_SHA512_256, CKG_MGF1_SHA1, "sha512-256", "sha1", 32),
    ] {
        let digest = Command::new("openssl")
            .args(["dgst", &format!("-{name}"), "-binary"])
            .arg(&data_file)
            .output()
            .unwrap()
            .stdout;
        assert_eq!(digest.len(), len as usize, "{name}");
        let param = pss(hash, mgf, len);
        let sig = raw
            .sign(s, CKM_RSA_PKCS_PSS, param.clone(), private, &digest)
            .unwrap();
        assert_eq!(
            raw.verify(s, CKM_RSA_PKCS_PSS, param.clone(), public, &digest, &sig),
            CKR_OK
        );
        let salt_opt = format!("rsa_pss_saltlen:{len}");
        let mgf_opt = format!("rsa_mgf1_md:{mgf_name}");
        assert!(
            openssl_verifies(
                &spki,
                &data,
                &sig,
                name,
                &["rsa_padding_mode:pss", &salt_opt, &mgf_opt]
            ),
            "{name}"
        );
        assert_eq!(
            raw.sign(s, CKM_RSA_PKCS_PSS, param, private, &digest[1..]),
            Err(CKR_DATA_LEN_RANGE)
        );
    }
}

#[test]
fn generation_parameters() {
    let (raw, s, _dir) = new_token_session();
    let (public, _) = pair(&raw, s, 2048, &[3]).unwrap();
    assert_eq!(raw.get(s, public, CKA_PUBLIC_EXPONENT).unwrap(), vec![3]);
    let (public, _) = pair(&raw, s, 3072, &[1, 0, 0, 1]).unwrap();
    assert_eq!(raw.get(s, public, CKA_MODULUS).unwrap().len(), 384);
    assert_eq!(pair(&raw, s, 512, &[1, 0, 1]), Err(CKR_KEY_SIZE_RANGE));
    assert_eq!(
        pair(&raw, s, 2048, &[1, 0, 0]),
        Err(CKR_ATTRIBUTE_VALUE_INVALID)
    );
    assert_eq!(pair(&raw, s, 2048, &[1]), Err(CKR_ATTRIBUTE_VALUE_INVALID));
    assert_eq!(
        raw.generate_key_pair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, &[], &[]),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
}

/// OpenSSL's `pkeyutl -encrypt` of `data` to a public key given as its
/// SubjectPublicKeyInfo, with `-pkeyopt` options.
fn openssl_encrypt_to(spki: &[u8], data: &[u8], options: &[&str]) -> Vec<u8> {
    let files = tempfile::tempdir().unwrap();
    let p = |name: &str| files.path().join(name).display().to_string();
    std::fs::write(p("pub.der"), spki).unwrap();
    std::fs::write(p("data"), data).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        &p("pub.der"),
        "-in",
        &p("data"),
        "-out",
        &p("ct"),
    ]);
    for o in options {
        cmd.args(["-pkeyopt", o]);
    }
    run(&mut cmd);
    std::fs::read(p("ct")).unwrap()
}

/// Keys NSS made sign, and decrypt what OpenSSL encrypted to them; OpenSSL
/// checks the signatures against the certificates NSS issued. The migrated
/// database's key is still protected by the legacy 3DES PBE.
#[test]
fn nss_fixture_keys_sign_and_decrypt() {
    let exported = pkcs12_rsa_key(&fixtures().join("exports/Fixture_RSA_User.p12"), "p12-pw");
    let spki = rsa_spki(&exported.modulus, &exported.public_exponent);
    for name in ["sql-pw", "dbm-pw-upgraded"] {
        let dir = copy_fixture(name);
        let raw = Raw::with_params(&sql_params(dir.path()));
        let slot = raw.slots()[0];
        let s = raw.open(slot, false).unwrap();
        assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
        let id = fixture_key_id("sql-pw", "Fixture RSA User");
        let private = raw
            .find(s, &[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, id)])
            .unwrap()[0];
        let data = b"signed by a key NSS stored";
        let sig = raw
            .sign(s, CKM_SHA256_RSA_PKCS, vec![], private, data)
            .unwrap();
        assert!(openssl_verifies(&spki, data, &sig, "sha256", &[]), "{name}");
        let pss_sig = raw
            .sign(
                s,
                CKM_SHA256_RSA_PKCS_PSS,
                pss(CKM_SHA256, CKG_MGF1_SHA256, 32),
                private,
                data,
            )
            .unwrap();
        assert!(
            openssl_verifies(
                &spki,
                data,
                &pss_sig,
                "sha256",
                &["rsa_padding_mode:pss", "rsa_pss_saltlen:32"]
            ),
            "{name}"
        );
        for (mech, param, options) in [
            (CKM_RSA_PKCS, vec![], vec![]),
            (
                CKM_RSA_PKCS_OAEP,
                oaep_param(CKM_SHA256, CKG_MGF1_SHA256, b""),
                vec![
                    "rsa_padding_mode:oaep",
                    "rsa_oaep_md:sha256",
                    "rsa_mgf1_md:sha256",
                ],
            ),
        ] {
            let ct = openssl_encrypt_to(&spki, b"for NSS's key", &options);
            let plain = raw.crypt(s, Direction::Decrypt, mech, param, private, &ct);
            assert_eq!(
                plain.as_deref(),
                Ok(&b"for NSS's key"[..]),
                "{name} {mech:#x}"
            );
        }
    }
}

/// OpenSSL encrypts to the module's public key (PKCS#1 v1.5, and OAEP with
/// a label); the module decrypts. The module's own round trips, and the
/// failures.
#[test]
fn encryption_with_openssl() {
    let (raw, s, _dir) = new_token_session();
    let (public, private) = raw
        .generate_key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[(CKA_MODULUS_BITS, ul(2048)), (CKA_ENCRYPT, TRUE.to_vec())],
            &[(CKA_DECRYPT, TRUE.to_vec())],
        )
        .unwrap();
    let n = raw.get(s, public, CKA_MODULUS).unwrap();
    let e = raw.get(s, public, CKA_PUBLIC_EXPONENT).unwrap();
    let spki = rsa_spki(&n, &e);
    let openssl_encrypt =
        |options: &[&str]| openssl_encrypt_to(&spki, b"a session key, say", options);

    let ct = openssl_encrypt(&[]);
    assert_eq!(
        raw.crypt(s, Direction::Decrypt, CKM_RSA_PKCS, vec![], private, &ct)
            .unwrap(),
        b"a session key, say"
    );
    let label = b"a label";
    let ct = openssl_encrypt(&[
        "rsa_padding_mode:oaep",
        "rsa_oaep_md:sha256",
        "rsa_mgf1_md:sha256",
        &format!("rsa_oaep_label:{}", hex::encode(label)),
    ]);
    let param = oaep_param(CKM_SHA256, CKG_MGF1_SHA256, label);
    assert_eq!(
        raw.crypt(
            s,
            Direction::Decrypt,
            CKM_RSA_PKCS_OAEP,
            param.clone(),
            private,
            &ct
        )
        .unwrap(),
        b"a session key, say"
    );
    let wrong_label = oaep_param(CKM_SHA256, CKG_MGF1_SHA256, b"another");
    assert_eq!(
        raw.crypt(
            s,
            Direction::Decrypt,
            CKM_RSA_PKCS_OAEP,
            wrong_label,
            private,
            &ct
        ),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );

    // The module's own round trips.
    for (mech, param) in [
        (CKM_RSA_PKCS, vec![]),
        (CKM_RSA_PKCS_OAEP, oaep_param(CKM_SHA_1, CKG_MGF1_SHA1, b"")),
        (CKM_RSA_PKCS_OAEP, param.clone()),
        (CKM_RSA_X_509, vec![]),
    ] {
        let ct = raw
            .crypt(
                s,
                Direction::Encrypt,
                mech,
                param.clone(),
                public,
                b"round trip",
            )
            .unwrap();
        assert_eq!(ct.len(), 256);
        let pt = raw
            .crypt(s, Direction::Decrypt, mech, param.clone(), private, &ct)
            .unwrap();
        if mech == CKM_RSA_X_509 {
            // The raw operation gives the whole zero-extended block back.
            assert_eq!(&pt[pt.len() - 10..], b"round trip");
        } else {
            assert_eq!(pt, b"round trip");
        }
        let mut bad = ct.clone();
        bad[200] ^= 1;
        if mech != CKM_RSA_X_509 {
            assert_eq!(
                raw.crypt(s, Direction::Decrypt, mech, param.clone(), private, &bad),
                Err(CKR_ENCRYPTED_DATA_INVALID)
            );
        }
        assert_eq!(
            raw.crypt(
                s,
                Direction::Decrypt,
                mech,
                param.clone(),
                private,
                &ct[1..]
            ),
            Err(CKR_ENCRYPTED_DATA_LEN_RANGE)
        );
    }
    assert_eq!(
        raw.crypt(
            s,
            Direction::Encrypt,
            CKM_RSA_PKCS,
            vec![],
            public,
            &[1; 246]
        ),
        Err(CKR_DATA_LEN_RANGE)
    );
    assert_eq!(
        raw.crypt(
            s,
            Direction::Encrypt,
            CKM_SHA256_RSA_PKCS,
            vec![],
            public,
            b"x"
        ),
        Err(CKR_MECHANISM_INVALID)
    );
    assert_eq!(
        raw.crypt(s, Direction::Encrypt, CKM_RSA_PKCS, vec![], private, b"x"),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
}

/// C_SignRecover / C_VerifyRecover with a length query or a too-small
/// buffer first, as `(rv, output)`.
fn recover_call(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    sign: bool,
    ty: CK_MECHANISM_TYPE,
    key: CK_OBJECT_HANDLE,
    input: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let f = raw.f();
    let mut m = softoken_tests::raw::mechanism(ty, &mut []);
    let (init, call) = if sign {
        (f.C_SignRecoverInit.unwrap(), f.C_SignRecover.unwrap())
    } else {
        (f.C_VerifyRecoverInit.unwrap(), f.C_VerifyRecover.unwrap())
    };
    let (p, n) = (input.as_ptr() as *mut u8, input.len() as CK_ULONG);
    // SAFETY: valid mechanism, buffers and lengths.
    unsafe {
        let rv = init(s, &mut m, key);
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut len = 0;
        let rv = call(s, p, n, std::ptr::null_mut(), &mut len);
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut out = vec![0u8; len as usize];
        let mut small = 1;
        if len > 1 {
            assert_eq!(
                call(s, p, n, out.as_mut_ptr(), &mut small),
                CKR_BUFFER_TOO_SMALL
            );
            assert_eq!(small, len);
        }
        let rv = call(s, p, n, out.as_mut_ptr(), &mut len);
        if rv != CKR_OK {
            return Err(rv);
        }
        out.truncate(len as usize);
        // The operation ended with the result.
        assert_eq!(
            call(s, p, n, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        Ok(out)
    }
}

#[test]
fn signatures_with_recovery() {
    let (raw, s, _dir) = new_token_session();
    let (public, private) = pair(&raw, s, 2048, &[1, 0, 1]).unwrap();
    let data = b"recover me";
    for ty in [CKM_RSA_PKCS, CKM_RSA_X_509] {
        let sig = recover_call(&raw, s, true, ty, private, data).unwrap();
        assert_eq!(sig.len(), 256);
        // The same signature C_Sign makes, and C_Verify accepts.
        assert_eq!(raw.sign(s, ty, vec![], private, data).unwrap(), sig);
        let back = recover_call(&raw, s, false, ty, public, &sig).unwrap();
        if ty == CKM_RSA_PKCS {
            assert_eq!(back, data);
        } else {
            // The raw block, zero-extended to the modulus length.
            assert_eq!(&back[256 - data.len()..], data);
            assert!(back[..256 - data.len()].iter().all(|b| *b == 0));
        }
        let mut bad = sig.clone();
        bad[100] ^= 1;
        if ty == CKM_RSA_PKCS {
            assert_eq!(
                recover_call(&raw, s, false, ty, public, &bad),
                Err(CKR_SIGNATURE_INVALID)
            );
        }
        assert_eq!(
            recover_call(&raw, s, false, ty, public, &sig[1..]),
            Err(CKR_SIGNATURE_LEN_RANGE)
        );
    }
    assert_eq!(
        recover_call(&raw, s, true, CKM_RSA_PKCS, private, &[0; 246]),
        Err(CKR_DATA_LEN_RANGE)
    );
    // Only the two recoverable mechanisms, with the right keys.
    assert_eq!(
        recover_call(&raw, s, true, CKM_SHA256_RSA_PKCS, private, data),
        Err(CKR_MECHANISM_INVALID)
    );
    assert_eq!(
        recover_call(&raw, s, true, CKM_RSA_PKCS, public, data),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(raw.set(s, private, &[(CKA_SIGN_RECOVER, vec![0])]), CKR_OK);
    assert_eq!(
        recover_call(&raw, s, true, CKM_RSA_PKCS, private, data),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    let slot = raw.slots()[0];
    let mut info = CK_MECHANISM_INFO::default();
    // SAFETY: a valid out pointer.
    let rv = unsafe { (raw.f().C_GetMechanismInfo.unwrap())(slot, CKM_RSA_PKCS, &mut info) };
    assert_eq!(rv, CKR_OK);
    assert_ne!(info.flags & CKF_SIGN_RECOVER, 0);
    assert_ne!(info.flags & CKF_VERIFY_RECOVER, 0);
}
