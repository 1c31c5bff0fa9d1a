//! DES and triple DES for old data: every mechanism through the C API,
//! single- and multi-part, against known answers (FIPS 81, NIST SP 800-67,
//! OpenSSL's CMAC) and against NSS's own softoken on the same keys.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{param_bytes, ul, Direction, Raw, FALSE, TRUE};
use softoken_tests::*;

const DES: &str = "0123456789abcdef";
const DES2: &str = "0123456789abcdef23456789abcdef01";
const DES3: &str = "0123456789abcdef23456789abcdef01456789abcdef0123";
const IV: &str = "1234567890abcdef";

/// Everything each DES mechanism gives on one module's token: (what, hex
/// or the CK_RV). With `parts`, each encryption is also run in pieces
/// (NSS's softoken answers CKR_ARGUMENTS_BAD to a part whose output is
/// empty, so its parts are not compared).
fn outputs(raw: &Raw, slot: CK_SLOT_ID, parts: bool) -> Vec<(String, String)> {
    let s = raw.open(slot, true).unwrap();
    let flags = [
        (CKA_ENCRYPT, TRUE.to_vec()),
        (CKA_DECRYPT, TRUE.to_vec()),
        (CKA_SIGN, TRUE.to_vec()),
        (CKA_VERIFY, TRUE.to_vec()),
        (CKA_DERIVE, TRUE.to_vec()),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
    ];
    let key = |t, v: &str| raw.create_secret(s, t, &unhex(v), &flags).unwrap();
    let (des, des2, des3) = (key(CKK_DES, DES), key(CKK_DES2, DES2), key(CKK_DES3, DES3));
    let show = |r: Result<Vec<u8>, CK_RV>| match r {
        Ok(v) => hex::encode(v),
        Err(rv) => format!("{rv:#x}"),
    };
    let plain: Vec<u8> = (0..29u8).collect();
    let iv = unhex(IV);
    let mut out = Vec::new();
    for (name, k, family) in [("des", des, 0), ("des2", des2, 1), ("des3", des3, 1)] {
        let [ecb, cbc, cbc_pad] = if family == 0 {
            [CKM_DES_ECB, CKM_DES_CBC, CKM_DES_CBC_PAD]
        } else {
            [CKM_DES3_ECB, CKM_DES3_CBC, CKM_DES3_CBC_PAD]
        };
        for (mode, m, param, data) in [
            ("ecb", ecb, vec![], &plain[..24]),
            ("cbc", cbc, iv.clone(), &plain[..24]),
            ("cbc-pad", cbc_pad, iv.clone(), &plain[..]),
        ] {
            let single = raw.crypt(s, Direction::Encrypt, m, param.clone(), k, data);
            if parts {
                let pieces: Vec<&[u8]> = data.chunks(5).collect();
                let multi = raw.crypt_parts(s, Direction::Encrypt, m, param.clone(), k, &pieces);
                assert_eq!(single, multi, "{name} {mode}");
            }
            if let Ok(ct) = &single {
                let back = raw.crypt(s, Direction::Decrypt, m, param.clone(), k, ct);
                assert_eq!(back.as_deref(), Ok(data), "{name} {mode}");
            }
            out.push((format!("{name} {mode}"), show(single)));
        }
        let (mac, general) = if family == 0 {
            (CKM_DES_MAC, CKM_DES_MAC_GENERAL)
        } else {
            (CKM_DES3_MAC, CKM_DES3_MAC_GENERAL)
        };
        out.push((
            format!("{name} mac"),
            show(raw.sign(s, mac, vec![], k, &plain)),
        ));
        out.push((
            format!("{name} mac general 6"),
            show(raw.sign(s, general, ul(6), k, &plain)),
        ));
        let (ecb_data, cbc_data) = if family == 0 {
            (CKM_DES_ECB_ENCRYPT_DATA, CKM_DES_CBC_ENCRYPT_DATA)
        } else {
            (CKM_DES3_ECB_ENCRYPT_DATA, CKM_DES3_CBC_ENCRYPT_DATA)
        };
        let derived = [
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
            (CKA_SENSITIVE, FALSE.to_vec()),
            (CKA_EXTRACTABLE, TRUE.to_vec()),
        ];
        let data = &plain[..16];
        let string = param_bytes(&CK_KEY_DERIVATION_STRING_DATA {
            pData: data.as_ptr() as *mut u8,
            ulLen: data.len() as CK_ULONG,
        });
        let with_iv = param_bytes(&CK_DES_CBC_ENCRYPT_DATA_PARAMS {
            iv: iv.clone().try_into().unwrap(),
            pData: data.as_ptr() as *mut u8,
            length: data.len() as CK_ULONG,
        });
        for (what, m, param) in [("ecb", ecb_data, string), ("cbc", cbc_data, with_iv)] {
            let value = raw
                .derive(s, m, param, k, &derived)
                .and_then(|h| raw.get(s, h, CKA_VALUE));
            out.push((format!("{name} {what} encrypt data"), show(value)));
        }
    }
    raw.close(s);
    out
}

#[test]
fn des_mechanisms_give_the_known_answers_and_nss_s() {
    let ours_dir = tempfile::tempdir().unwrap();
    let ours = Raw::with_params(&sql_params(ours_dir.path()));
    let got = outputs(&ours, ours.slots()[0], true);
    let nss_dir = tempfile::tempdir().unwrap();
    run(Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", nss_dir.path().display())));
    let nss = nss_softoken(&sql_params(nss_dir.path()));
    let theirs = outputs(&nss, nss.slots()[1], false);
    let answer = |what: &str| got.iter().find(|(w, _)| w == what).unwrap().1.clone();
    // NSS has no single-DES derivation by encryption: ours is the DES
    // encryption of the data, as DES3's is of DES3's (which NSS has).
    for (what, cipher) in [("ecb", "des ecb"), ("cbc", "des cbc")] {
        assert!(answer(cipher).starts_with(&answer(&format!("des {what} encrypt data"))));
    }
    let nss_lacks = |what: &str| what.starts_with("des ") && what.ends_with("encrypt data");
    let differ: Vec<_> = got
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a != b && !nss_lacks(&a.0))
        .collect();
    assert!(differ.is_empty(), "softoken and NSS differ: {differ:#?}");
    assert_eq!(got.len(), theirs.len());
    // The known answers, through the C API: NIST SP 800-67's three-key ECB
    // example and FIPS 81's CBC one.
    let s = ours.open(ours.slots()[0], true).unwrap();
    let k = ours
        .create_secret(s, CKK_DES3, &unhex(DES3), &[(CKA_ENCRYPT, TRUE.to_vec())])
        .unwrap();
    assert_eq!(
        ours.crypt(
            s,
            Direction::Encrypt,
            CKM_DES3_ECB,
            vec![],
            k,
            b"The qufck brown fox jump"
        )
        .unwrap(),
        unhex("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900")
    );
    let k = ours
        .create_secret(s, CKK_DES, &unhex(DES), &[(CKA_ENCRYPT, TRUE.to_vec())])
        .unwrap();
    assert_eq!(
        ours.crypt(
            s,
            Direction::Encrypt,
            CKM_DES_CBC,
            unhex(IV),
            k,
            b"Now is the time for all "
        )
        .unwrap(),
        unhex("e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6")
    );
    // The MACs are CBC's last block, cut: half of it for the plain MAC.
    assert_eq!(answer("des3 mac").len(), 8);
    assert_eq!(answer("des mac general 6").len(), 12);
    assert!(answer("des3 mac general 6").starts_with(&answer("des3 mac")));
}

/// Triple-DES CMAC against OpenSSL's (`openssl mac ... CMAC`).
#[test]
fn des3_cmac_matches_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    let data: Vec<u8> = (0..37u8).collect();
    std::fs::write(dir.path().join("data"), &data).unwrap();
    for (key_type, key) in [(CKK_DES3, DES3), (CKK_DES2, DES2)] {
        let k = raw
            .create_secret(
                s,
                key_type,
                &unhex(key),
                &[(CKA_SIGN, TRUE.to_vec()), (CKA_VERIFY, TRUE.to_vec())],
            )
            .unwrap();
        let three = if key.len() == 32 {
            format!("{key}{}", &key[..16])
        } else {
            key.to_owned()
        };
        let openssl = run(Command::new("openssl")
            .args(["mac", "-cipher", "DES-EDE3-CBC", "-macopt"])
            .arg(format!("hexkey:{three}"))
            .arg("-in")
            .arg(dir.path().join("data"))
            .arg("CMAC"));
        let expected = unhex(openssl.trim());
        assert_eq!(
            raw.sign(s, CKM_DES3_CMAC, vec![], k, &data).unwrap(),
            expected
        );
        assert_eq!(
            raw.sign(s, CKM_DES3_CMAC_GENERAL, ul(4), k, &data).unwrap(),
            expected[..4]
        );
        assert_eq!(
            raw.verify(s, CKM_DES3_CMAC, vec![], k, &data, &expected),
            CKR_OK
        );
        let mut bad = expected.clone();
        bad[0] ^= 1;
        assert_eq!(
            raw.verify(s, CKM_DES3_CMAC, vec![], k, &data, &bad),
            CKR_SIGNATURE_INVALID
        );
    }
}

/// Keys are made at their type's length with DES's odd parity, and wrap
/// other keys.
#[test]
fn des_keys_are_generated_and_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    let readable = [
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
        (CKA_WRAP, TRUE.to_vec()),
        (CKA_UNWRAP, TRUE.to_vec()),
    ];
    for (m, len, cipher) in [
        (CKM_DES_KEY_GEN, 8, CKM_DES_CBC_PAD),
        (CKM_DES2_KEY_GEN, 16, CKM_DES3_CBC_PAD),
        (CKM_DES3_KEY_GEN, 24, CKM_DES3_CBC_PAD),
    ] {
        let info = raw.mechanism_info(slot, m).unwrap();
        assert_ne!(info.flags & CKF_GENERATE, 0);
        let k = raw.generate_key(s, m, &readable).unwrap();
        let value = raw.get(s, k, CKA_VALUE).unwrap();
        assert_eq!(value.len(), len);
        assert!(value.iter().all(|b| b.count_ones() % 2 == 1), "{m:#x}");
        let info = raw.mechanism_info(slot, cipher).unwrap();
        assert_ne!(info.flags & CKF_WRAP, 0);
        let aes = raw
            .create_secret(s, CKK_AES, &[9; 16], &[(CKA_EXTRACTABLE, TRUE.to_vec())])
            .unwrap();
        let wrapped = raw.wrap_key(s, cipher, unhex(IV), k, aes).unwrap();
        let back = raw
            .unwrap_key(
                s,
                cipher,
                unhex(IV),
                k,
                &wrapped,
                &[
                    (CKA_CLASS, ul(CKO_SECRET_KEY)),
                    (CKA_KEY_TYPE, ul(CKK_AES)),
                    (CKA_SENSITIVE, FALSE.to_vec()),
                    (CKA_EXTRACTABLE, TRUE.to_vec()),
                ],
            )
            .unwrap();
        assert_eq!(raw.get(s, back, CKA_VALUE).unwrap(), [9; 16]);
    }
    // A DES key of the wrong length is refused at creation.
    assert_eq!(
        raw.create_secret(s, CKK_DES2, &[1; 24], &[]).unwrap_err(),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
}
