//! Mechanisms through the C API: known answers (RFC 4231 and RFC 2202 for
//! HMAC), the length-query and buffer conventions, key usage and type
//! checks, and generated keys.

use pkcs11_sys::*;
use softoken_tests::raw::{as_ul, mechanism, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

struct Fixture {
    raw: Raw,
    s: CK_SESSION_HANDLE,
    _dir: tempfile::TempDir,
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    Fixture { raw, s, _dir: dir }
}

impl Fixture {
    fn secret(
        &self,
        key_type: CK_KEY_TYPE,
        value: &[u8],
        extra: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> CK_OBJECT_HANDLE {
        self.raw
            .create_secret(self.s, key_type, value, extra)
            .unwrap()
    }

    fn sign(
        &self,
        ty: CK_MECHANISM_TYPE,
        param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
    ) -> Result<Vec<u8>, CK_RV> {
        self.raw.sign(self.s, ty, param, key, data)
    }

    fn verify(
        &self,
        ty: CK_MECHANISM_TYPE,
        param: Vec<u8>,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        sig: &[u8],
    ) -> CK_RV {
        self.raw.verify(self.s, ty, param, key, data, sig)
    }

    fn generate(
        &self,
        ty: CK_MECHANISM_TYPE,
        t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        self.raw.generate_key(self.s, ty, t)
    }
}

#[test]
fn hmac_known_answers() {
    let fx = setup();
    let k1 = fx.secret(CKK_GENERIC_SECRET, &[0x0b; 20], &[]);
    let jefe = fx.secret(CKK_GENERIC_SECRET, b"Jefe", &[]);
    let cases: [(CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, &[u8], &str); 6] = [
        (CKM_SHA256_HMAC, k1, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (
            CKM_SHA512_HMAC,
            k1,
            b"Hi There",
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        ),
        (
            CKM_SHA384_HMAC,
            jefe,
            b"what do ya want for nothing?",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (CKM_SHA224_HMAC, jefe, b"what do ya want for nothing?", "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"),
        (CKM_SHA_1_HMAC, jefe, b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        // RFC 2202's second HMAC-MD5 case.
        (CKM_MD5_HMAC, jefe, b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
    ];
    for (ty, key, data, want) in cases {
        let mac = fx.sign(ty, vec![], key, data).unwrap();
        assert_eq!(hex::encode(&mac), want, "mechanism {ty:#x}");
        assert_eq!(fx.verify(ty, vec![], key, data, &mac), CKR_OK);
        let mut bad = mac.clone();
        bad[0] ^= 1;
        assert_eq!(
            fx.verify(ty, vec![], key, data, &bad),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            fx.verify(ty, vec![], key, data, &mac[1..]),
            CKR_SIGNATURE_LEN_RANGE
        );
    }
    // The general form truncates to the length its parameter gives.
    let short = fx
        .sign(CKM_SHA256_HMAC_GENERAL, ul(16), k1, b"Hi There")
        .unwrap();
    assert_eq!(hex::encode(&short), "b0344c61d8db38535ca8afceaf0bf12b");
    assert_eq!(
        fx.verify(CKM_SHA256_HMAC_GENERAL, ul(16), k1, b"Hi There", &short),
        CKR_OK
    );
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC_GENERAL, ul(33), k1, b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC_GENERAL, vec![1, 2], k1, b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC, ul(16), k1, b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

/// Every HMAC mechanism takes a key of its own key type made with
/// C_CreateObject (the object tables accept each type the mechanism table
/// names), as well as a generic secret; RFC 4231's first case, with the
/// answers of Python's hmac module for the hashes the RFC predates.
#[test]
fn each_hmac_takes_a_key_of_its_own_type() {
    let fx = setup();
    let pairs = [
        (CKM_MD5_HMAC, CKK_MD5_HMAC, "5ccec34ea9656392457fa1ac27f08fbc"),
        (CKM_SHA_1_HMAC, CKK_SHA_1_HMAC, "b617318655057264e28bc0b6fb378c8ef146be00"),
        (CKM_SHA224_HMAC, CKK_SHA224_HMAC, "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22"),
        (CKM_SHA256_HMAC, CKK_SHA256_HMAC, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (CKM_SHA384_HMAC, CKK_SHA384_HMAC, "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"),
        (CKM_SHA512_HMAC, CKK_SHA512_HMAC, "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
        (CKM_SHA512_224_HMAC, CKK_SHA512_224_HMAC, "b244ba01307c0e7a8ccaad13b1067a4cf6b961fe0c6a20bda3d92039"),
        (CKM_SHA512_256_HMAC, CKK_SHA512_256_HMAC, "9f9126c3d9c3c330d760425ca8a217e31feae31bfe70196ff81642b868402eab"),
        (CKM_SHA3_224_HMAC, CKK_SHA3_224_HMAC, "3b16546bbc7be2706a031dcafd56373d9884367641d8c59af3c860f7"),
        (CKM_SHA3_256_HMAC, CKK_SHA3_256_HMAC, "ba85192310dffa96e2a3a40e69774351140bb7185e1202cdcc917589f95e16bb"),
        (CKM_SHA3_384_HMAC, CKK_SHA3_384_HMAC, "68d2dcf7fd4ddd0a2240c8a437305f61fb7334cfb5d0226e1bc27dc10a2e723a20d370b47743130e26ac7e3d532886bd"),
        (CKM_SHA3_512_HMAC, CKK_SHA3_512_HMAC, "eb3fbd4b2eaab8f5c504bd3a41465aacec15770a7cabac531e482f860b5ec7ba47ccb2c6f2afce8f88d22b6dc61380f23a668fd3888bb80537c0a0b86407689e"),
    ];
    let generic = fx.secret(CKK_GENERIC_SECRET, &[0x0b; 20], &[]);
    for (ty, key_type, want) in pairs {
        let own = fx.raw.create_secret(fx.s, key_type, &[0x0b; 20], &[]);
        assert!(own.is_ok(), "key type {key_type:#x}: {own:?}");
        let own = own.unwrap();
        let mac = fx.sign(ty, vec![], own, b"Hi There").unwrap();
        assert_eq!(hex::encode(&mac), want, "mechanism {ty:#x}");
        assert_eq!(fx.sign(ty, vec![], generic, b"Hi There").unwrap(), mac);
        assert_eq!(fx.verify(ty, vec![], own, b"Hi There", &mac), CKR_OK);
    }
}

#[test]
fn multi_part_and_length_conventions() {
    let fx = setup();
    let f = fx.raw.f();
    let key = fx.secret(CKK_SHA256_HMAC, &[0x0b; 20], &[]);
    let mut m = mechanism(CKM_SHA256_HMAC, &mut []);
    // SAFETY: valid pointers and lengths throughout.
    unsafe {
        let mut len = 0;
        assert_eq!(
            (f.C_SignFinal.unwrap())(fx.s, std::ptr::null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!((f.C_SignInit.unwrap())(fx.s, &mut m, key), CKR_OK);
        assert_eq!(
            (f.C_SignInit.unwrap())(fx.s, &mut m, key),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            (f.C_SignUpdate.unwrap())(fx.s, b"Hi ".as_ptr() as *mut _, 3),
            CKR_OK
        );
        assert_eq!(
            (f.C_Sign.unwrap())(
                fx.s,
                b"x".as_ptr() as *mut _,
                1,
                std::ptr::null_mut(),
                &mut len
            ),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            (f.C_SignUpdate.unwrap())(fx.s, b"There".as_ptr() as *mut _, 5),
            CKR_OK
        );
        assert_eq!(
            (f.C_SignFinal.unwrap())(fx.s, std::ptr::null_mut(), &mut len),
            CKR_OK
        );
        assert_eq!(len, 32);
        let mut out = [0u8; 32];
        let mut short = 10;
        assert_eq!(
            (f.C_SignFinal.unwrap())(fx.s, out.as_mut_ptr(), &mut short),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(short, 32);
        assert_eq!(
            (f.C_SignFinal.unwrap())(fx.s, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(
            hex::encode(out),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            (f.C_SignFinal.unwrap())(fx.s, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );

        assert_eq!((f.C_VerifyInit.unwrap())(fx.s, &mut m, key), CKR_OK);
        assert_eq!(
            (f.C_VerifyUpdate.unwrap())(fx.s, b"Hi There".as_ptr() as *mut _, 8),
            CKR_OK
        );
        assert_eq!(
            (f.C_VerifyFinal.unwrap())(fx.s, out.as_mut_ptr(), 32),
            CKR_OK
        );
        assert_eq!(
            (f.C_VerifyFinal.unwrap())(fx.s, out.as_mut_ptr(), 32),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
}

#[test]
fn key_checks() {
    let fx = setup();
    let no_sign = fx.secret(CKK_GENERIC_SECRET, &[1; 32], &[(CKA_SIGN, FALSE.to_vec())]);
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC, vec![], no_sign, b"x"),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    let aes = fx.secret(CKK_AES, &[1; 32], &[]);
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC, vec![], aes, b"x"),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    let sha1_key = fx.secret(CKK_SHA_1_HMAC, &[1; 32], &[]);
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC, vec![], sha1_key, b"x"),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC, vec![], 0x8000_1234, b"x"),
        Err(CKR_KEY_HANDLE_INVALID)
    );
    let data = fx.raw.create(fx.s, &[(CKA_CLASS, ul(CKO_DATA))]).unwrap();
    assert_eq!(
        fx.sign(CKM_SHA256_HMAC, vec![], data, b"x"),
        Err(CKR_KEY_HANDLE_INVALID)
    );
    let key = fx.secret(CKK_GENERIC_SECRET, &[1; 32], &[]);
    assert_eq!(
        fx.sign(CKM_SHA256, vec![], key, b"x"),
        Err(CKR_MECHANISM_INVALID)
    );
    assert_eq!(
        fx.sign(0x7fff_0000, vec![], key, b"x"),
        Err(CKR_MECHANISM_INVALID)
    );
}

#[test]
fn generated_secret_keys() {
    let fx = setup();
    let aes = fx
        .generate(
            CKM_AES_KEY_GEN,
            &[
                (CKA_VALUE_LEN, ul(32)),
                (CKA_TOKEN, TRUE.to_vec()),
                (CKA_LABEL, b"gen aes".to_vec()),
            ],
        )
        .unwrap();
    assert!(aes >= 0xC000_0000, "a token secret key lives in key4.db");
    assert_eq!(
        as_ul(&fx.raw.get(fx.s, aes, CKA_KEY_TYPE).unwrap()),
        CKK_AES
    );
    assert_eq!(as_ul(&fx.raw.get(fx.s, aes, CKA_VALUE_LEN).unwrap()), 32);
    assert_eq!(fx.raw.get(fx.s, aes, CKA_LOCAL).unwrap(), TRUE);
    assert_eq!(
        as_ul(&fx.raw.get(fx.s, aes, CKA_KEY_GEN_MECHANISM).unwrap()),
        CKM_AES_KEY_GEN
    );
    assert_eq!(
        fx.raw.get(fx.s, aes, CKA_VALUE),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    assert_eq!(fx.raw.get(fx.s, aes, CKA_ALWAYS_SENSITIVE).unwrap(), TRUE);
    assert_eq!(
        fx.generate(CKM_AES_KEY_GEN, &[(CKA_VALUE_LEN, ul(20))]),
        Err(CKR_ATTRIBUTE_VALUE_INVALID)
    );
    assert_eq!(
        fx.generate(CKM_AES_KEY_GEN, &[]),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    assert_eq!(
        fx.generate(
            CKM_AES_KEY_GEN,
            &[(CKA_VALUE_LEN, ul(16)), (CKA_KEY_TYPE, ul(CKK_DES3))]
        ),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    assert_eq!(
        fx.generate(
            CKM_AES_KEY_GEN,
            &[(CKA_VALUE_LEN, ul(16)), (CKA_VALUE, vec![0; 16])]
        ),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    assert_eq!(
        fx.generate(CKM_SHA256, &[(CKA_VALUE_LEN, ul(16))]),
        Err(CKR_MECHANISM_INVALID)
    );

    // A generated, unextractable generic secret MACs like any other.
    let secret = fx
        .generate(
            CKM_GENERIC_SECRET_KEY_GEN,
            &[(CKA_VALUE_LEN, ul(48)), (CKA_EXTRACTABLE, FALSE.to_vec())],
        )
        .unwrap();
    assert_eq!(
        fx.raw.get(fx.s, secret, CKA_NEVER_EXTRACTABLE).unwrap(),
        TRUE
    );
    let mac = fx.sign(CKM_SHA384_HMAC, vec![], secret, b"data").unwrap();
    assert_eq!(
        fx.verify(CKM_SHA384_HMAC, vec![], secret, b"data", &mac),
        CKR_OK
    );
    // Two generated keys differ.
    let other = fx
        .generate(CKM_GENERIC_SECRET_KEY_GEN, &[(CKA_VALUE_LEN, ul(48))])
        .unwrap();
    assert_ne!(
        fx.sign(CKM_SHA384_HMAC, vec![], other, b"data").unwrap(),
        mac
    );
}

#[test]
fn hmac_keys_a_session_keeps_follow_each_key_and_hash() {
    use aws_lc_rs::hmac;
    let fx = setup();
    // Six keys (more than a session keeps), two longer than a SHA-256
    // block, two sharing a prefix; three hashes.
    let values: [Vec<u8>; 6] = [
        vec![1; 20],
        vec![1; 21],
        vec![2; 100],
        vec![3; 64],
        vec![4; 200],
        b"Jefe".to_vec(),
    ];
    let hashes = [
        (CKM_SHA256_HMAC, hmac::HMAC_SHA256),
        (CKM_SHA_1_HMAC, hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        (CKM_SHA512_HMAC, hmac::HMAC_SHA512),
    ];
    let keys: Vec<_> = values
        .iter()
        .map(|v| fx.secret(CKK_GENERIC_SECRET, v, &[]))
        .collect();
    for round in 0..3u8 {
        for (i, (key, value)) in keys.iter().zip(&values).enumerate() {
            for (mech, alg) in &hashes[..1 + (i + round as usize) % 3] {
                let data = [b"message ".as_slice(), &[round, i as u8]].concat();
                let want = hmac::sign(&hmac::Key::new(*alg, value), &data);
                let got = fx.raw.sign(fx.s, *mech, vec![], *key, &data).unwrap();
                assert_eq!(got, want.as_ref(), "key {i} round {round}");
                assert_eq!(
                    fx.raw.verify(fx.s, *mech, vec![], *key, &data, &got),
                    CKR_OK
                );
            }
        }
    }
}
