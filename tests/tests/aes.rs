//! AES through the C API: NIST SP 800-38A and GCM known answers, OpenSSL
//! agreeing on CBC-PAD, multi-part in awkward pieces, and the errors.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{ctr_param, gcm_param, ul, Direction, FALSE, TRUE};
use softoken_tests::*;
use Direction::{Decrypt, Encrypt};

const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
const IV: &str = "000102030405060708090a0b0c0d0e0f";

#[test]
fn sp800_38a_known_answers_single_and_multi_part() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    let plain = unhex(PLAIN);
    let counter: [u8; 16] = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
        .try_into()
        .unwrap();
    let cases = [
        (CKM_AES_ECB, vec![], "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4"),
        (CKM_AES_CBC, unhex(IV), "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"),
        (CKM_AES_CTR, ctr_param(128, &counter), "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"),
    ];
    for (mech, param, want) in cases {
        let ct = raw
            .crypt(s, Encrypt, mech, param.clone(), key, &plain)
            .unwrap();
        assert_eq!(hex::encode(&ct), want, "mechanism {mech:#x}");
        assert_eq!(
            raw.crypt(s, Decrypt, mech, param.clone(), key, &ct)
                .unwrap(),
            plain
        );
        // The same in pieces that split blocks.
        let pieces: Vec<&[u8]> = vec![
            &plain[..1],
            &plain[1..16],
            &plain[16..17],
            &plain[17..50],
            &plain[50..],
        ];
        assert_eq!(
            hex::encode(
                raw.crypt_parts(s, Encrypt, mech, param.clone(), key, &pieces)
                    .unwrap()
            ),
            want
        );
        let ct_pieces: Vec<&[u8]> = vec![&ct[..7], &ct[7..40], &ct[40..]];
        assert_eq!(
            raw.crypt_parts(s, Decrypt, mech, param, key, &ct_pieces)
                .unwrap(),
            plain
        );
    }
}

#[test]
fn cbc_pad_agrees_with_openssl_at_every_length() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let input = files.path().join("in");
    for n in 0..=40usize {
        let data: Vec<u8> = (0..n as u8).collect();
        std::fs::write(&input, &data).unwrap();
        let expected = Command::new("openssl")
            .args([
                "enc",
                "-aes-128-cbc",
                "-K",
                KEY,
                "-iv",
                IV,
                "-in",
                &input.display().to_string(),
            ])
            .output()
            .unwrap()
            .stdout;
        let ct = raw
            .crypt(s, Encrypt, CKM_AES_CBC_PAD, unhex(IV), key, &data)
            .unwrap();
        assert_eq!(ct, expected, "length {n}");
        assert_eq!(
            raw.crypt(s, Decrypt, CKM_AES_CBC_PAD, unhex(IV), key, &ct)
                .unwrap(),
            data,
            "length {n}"
        );
        let split = ct.len() / 2 + 1;
        assert_eq!(
            raw.crypt_parts(
                s,
                Decrypt,
                CKM_AES_CBC_PAD,
                unhex(IV),
                key,
                &[&ct[..split], &ct[split..]]
            )
            .unwrap(),
            data
        );
    }
    // A wrong last byte is bad padding.
    let mut ct = raw
        .crypt(s, Encrypt, CKM_AES_CBC_PAD, unhex(IV), key, b"short")
        .unwrap();
    ct[15] ^= 0xff;
    assert_eq!(
        raw.crypt(s, Decrypt, CKM_AES_CBC_PAD, unhex(IV), key, &ct),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );
    assert_eq!(
        raw.crypt(s, Decrypt, CKM_AES_CBC_PAD, unhex(IV), key, &ct[..15]),
        Err(CKR_ENCRYPTED_DATA_LEN_RANGE)
    );
}

#[test]
fn gcm_known_answer_and_failures() {
    let (raw, s, _dir) = new_token_session();
    let key = raw
        .create_secret(s, CKK_AES, &unhex("feffe9928665731c6d6a8f9467308308"), &[])
        .unwrap();
    let iv = unhex("cafebabefacedbaddecaf888");
    let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let plain = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
    let want = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0915bc94fbc3221a5db94fae95ae7121a47";
    let param = gcm_param(&iv, &aad, 128);
    let ct = raw
        .crypt(s, Encrypt, CKM_AES_GCM, param.clone(), key, &plain)
        .unwrap();
    assert_eq!(hex::encode(&ct), want);
    assert_eq!(
        raw.crypt(s, Decrypt, CKM_AES_GCM, param.clone(), key, &ct)
            .unwrap(),
        plain
    );
    assert_eq!(
        raw.crypt_parts(
            s,
            Encrypt,
            CKM_AES_GCM,
            param.clone(),
            key,
            &[&plain[..13], &plain[13..]]
        )
        .unwrap(),
        ct
    );
    assert_eq!(
        raw.crypt_parts(
            s,
            Decrypt,
            CKM_AES_GCM,
            param.clone(),
            key,
            &[&ct[..50], &ct[50..]]
        )
        .unwrap(),
        plain
    );
    // A forged tag, as a 2.40 caller (this `raw.crypt`) knows it; the 3.0
    // code is the next test's.
    let mut bad = ct.clone();
    bad[70] ^= 1;
    assert_eq!(
        raw.crypt(s, Decrypt, CKM_AES_GCM, param.clone(), key, &bad),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );
    let other_aad = gcm_param(&iv, b"other", 128);
    assert_eq!(
        raw.crypt(s, Decrypt, CKM_AES_GCM, other_aad, key, &ct),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );
    // A shorter tag is the full one cut (NIST SP 800-38D), and checked as such.
    let short = raw
        .crypt(
            s,
            Encrypt,
            CKM_AES_GCM,
            gcm_param(&iv, &aad, 96),
            key,
            &plain,
        )
        .unwrap();
    assert_eq!(short, ct[..ct.len() - 4]);
    assert_eq!(
        raw.crypt(
            s,
            Decrypt,
            CKM_AES_GCM,
            gcm_param(&iv, &aad, 96),
            key,
            &short
        ),
        Ok(plain.clone())
    );
    assert_eq!(
        raw.crypt(
            s,
            Decrypt,
            CKM_AES_GCM,
            gcm_param(&iv, &aad, 128),
            key,
            &short
        ),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );
    // NIST's test case 6: a 60-byte IV.
    let long_iv = unhex("9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b");
    assert_eq!(
        hex::encode(
            raw.crypt(s, Encrypt, CKM_AES_GCM, gcm_param(&long_iv, &aad, 128), key, &plain)
                .unwrap()
        ),
        "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca701e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5619cc5aefffe0bfa462af43c1699d050"
    );
    for bad_param in [
        gcm_param(&[], &aad, 128),
        gcm_param(&iv, &aad, 0),
        gcm_param(&iv, &aad, 100),
        gcm_param(&iv, &aad, 136),
        vec![1, 2, 3],
    ] {
        assert_eq!(
            raw.crypt(s, Encrypt, CKM_AES_GCM, bad_param, key, b"x"),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }
}

/// CKR_AEAD_DECRYPT_FAILED is a 3.0 code: a caller of the 2.40 list gets
/// CKR_ENCRYPTED_DATA_INVALID for a forged tag (NSS's answer, and the one
/// Java's SunPKCS11 maps to a tag failure), a caller of the 3.0 list gets
/// the 3.0 code; single-part and at C_DecryptFinal alike.
#[test]
fn a_forged_gcm_tag_answers_each_interface_with_its_version_s_code() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &[3; 16], &[]).unwrap();
    let (iv, aad) = ([9u8; 12], *b"header");
    let param = gcm_param(&iv, &aad, 128);
    let mut sealed = raw
        .crypt(s, Encrypt, CKM_AES_GCM, param.clone(), key, b"plaintext")
        .unwrap();
    sealed[0] ^= 1;
    let f = raw.f();
    let f30 = raw.f30();
    let lists = [
        (
            f.C_DecryptInit.unwrap(),
            f.C_Decrypt.unwrap(),
            f.C_DecryptUpdate.unwrap(),
            f.C_DecryptFinal.unwrap(),
            CKR_ENCRYPTED_DATA_INVALID,
        ),
        (
            f30.C_DecryptInit.unwrap(),
            f30.C_Decrypt.unwrap(),
            f30.C_DecryptUpdate.unwrap(),
            f30.C_DecryptFinal.unwrap(),
            CKR_AEAD_DECRYPT_FAILED,
        ),
    ];
    for (init, single, update, fin, forged) in lists {
        let mut param = param.clone();
        let mut m = softoken_tests::raw::mechanism(CKM_AES_GCM, &mut param);
        let input = (sealed.as_mut_ptr(), sealed.len() as CK_ULONG);
        let mut out = vec![0u8; 64];
        // SAFETY: valid mechanism, buffers and lengths.
        unsafe {
            assert_eq!(init(s, &mut m, key), CKR_OK);
            let mut len = out.len() as CK_ULONG;
            assert_eq!(
                single(s, input.0, input.1, out.as_mut_ptr(), &mut len),
                forged
            );
            assert_eq!(init(s, &mut m, key), CKR_OK);
            let mut len = out.len() as CK_ULONG;
            assert_eq!(
                update(s, input.0, input.1, out.as_mut_ptr(), &mut len),
                CKR_OK
            );
            let mut len = out.len() as CK_ULONG;
            assert_eq!(fin(s, out.as_mut_ptr(), &mut len), forged);
        }
    }
}

#[test]
fn ctr_counter_does_not_wrap() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    // Two counter bits, starting at 2: blocks 2 and 3, then it would wrap.
    let mut counter = [0u8; 16];
    counter[15] = 2;
    assert!(raw
        .crypt(
            s,
            Encrypt,
            CKM_AES_CTR,
            ctr_param(2, &counter),
            key,
            &[0; 32]
        )
        .is_ok());
    assert_eq!(
        raw.crypt(
            s,
            Encrypt,
            CKM_AES_CTR,
            ctr_param(2, &counter),
            key,
            &[0; 33]
        ),
        Err(CKR_DATA_LEN_RANGE)
    );
    assert_eq!(
        raw.crypt(
            s,
            Encrypt,
            CKM_AES_CTR,
            ctr_param(0, &counter),
            key,
            &[0; 3]
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

#[test]
fn conventions_and_key_checks() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    assert_eq!(
        raw.crypt(s, Encrypt, CKM_AES_CBC, unhex(IV), key, &[0; 17]),
        Err(CKR_DATA_LEN_RANGE)
    );
    assert_eq!(
        raw.crypt(s, Decrypt, CKM_AES_CBC, unhex(IV), key, &[0; 17]),
        Err(CKR_ENCRYPTED_DATA_LEN_RANGE)
    );
    assert_eq!(
        raw.crypt(s, Encrypt, CKM_AES_CBC, vec![0; 8], key, &[0; 16]),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        raw.crypt(s, Encrypt, CKM_AES_ECB, unhex(IV), key, &[0; 16]),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let no_encrypt = raw
        .create_secret(s, CKK_AES, &unhex(KEY), &[(CKA_ENCRYPT, FALSE.to_vec())])
        .unwrap();
    assert_eq!(
        raw.crypt(s, Encrypt, CKM_AES_ECB, vec![], no_encrypt, &[0; 16]),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    let hmac = raw
        .create(
            s,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                (CKA_VALUE, vec![1; 16]),
            ],
        )
        .unwrap();
    assert_eq!(
        raw.crypt(s, Encrypt, CKM_AES_ECB, vec![], hmac, &[0; 16]),
        Err(CKR_KEY_TYPE_INCONSISTENT)
    );

    // A short buffer keeps the operation; the right one completes it.
    let f = raw.f();
    let mut param = unhex(IV);
    let mut m = softoken_tests::raw::mechanism(CKM_AES_CBC_PAD, &mut param);
    let data = [7u8; 20];
    // SAFETY: valid mechanism, buffers and lengths.
    unsafe {
        assert_eq!((f.C_EncryptInit.unwrap())(s, &mut m, key), CKR_OK);
        let mut out = [0u8; 32];
        let mut len = 16;
        let rv = (f.C_Encrypt.unwrap())(s, data.as_ptr() as *mut _, 20, out.as_mut_ptr(), &mut len);
        assert_eq!(rv, CKR_BUFFER_TOO_SMALL);
        assert_eq!(len, 32);
        assert_eq!(
            (f.C_Encrypt.unwrap())(s, data.as_ptr() as *mut _, 20, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        assert_eq!(len, 32);
        assert_eq!(
            (f.C_EncryptFinal.unwrap())(s, out.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }

    // A generated, sensitive token key works from the database.
    let token_key = raw
        .generate_key(
            s,
            CKM_AES_KEY_GEN,
            &[(CKA_VALUE_LEN, ul(32)), (CKA_TOKEN, TRUE.to_vec())],
        )
        .unwrap();
    let ct = raw
        .crypt(
            s,
            Encrypt,
            CKM_AES_CBC_PAD,
            unhex(IV),
            token_key,
            b"secret text",
        )
        .unwrap();
    assert_eq!(
        raw.crypt(s, Decrypt, CKM_AES_CBC_PAD, unhex(IV), token_key, &ct)
            .unwrap(),
        b"secret text"
    );
}

/// A single-part GCM encryption writes straight into the caller's buffer;
/// a caller encrypting in place (input and output one buffer) gets the same
/// result through the copying path.
#[test]
fn gcm_encrypts_into_the_callers_buffer_and_in_place() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &[0x42; 32], &[]).unwrap();
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let param = gcm_param(&[9; 12], b"aad", 128);
    let expected = raw
        .crypt(s, Encrypt, CKM_AES_GCM, param.clone(), key, &data)
        .unwrap();
    assert_eq!(expected.len(), data.len() + 16);
    let f = raw.f();
    let mut p = param.clone();
    let mut m = softoken_tests::raw::mechanism(CKM_AES_GCM, &mut p);
    let mut buffer = data.clone();
    buffer.resize(data.len() + 16, 0);
    let mut len = buffer.len() as CK_ULONG;
    // SAFETY: valid mechanism; one buffer as input (its first 1000 bytes)
    // and as output (all of it), as an in-place caller passes it.
    unsafe {
        assert_eq!((f.C_EncryptInit.unwrap())(s, &mut m, key), CKR_OK);
        let ptr = buffer.as_mut_ptr();
        assert_eq!(
            (f.C_Encrypt.unwrap())(s, ptr, data.len() as CK_ULONG, ptr, &mut len),
            CKR_OK
        );
    }
    assert_eq!(len as usize, expected.len());
    assert_eq!(buffer, expected);
    let back = raw
        .crypt(s, Decrypt, CKM_AES_GCM, param, key, &expected)
        .unwrap();
    assert_eq!(back, data);
}

#[test]
fn gcm_contexts_a_session_keeps_follow_each_key_and_tag_length() {
    let (raw, s, _dir) = new_token_session();
    let values: [&[u8]; 6] = [&[1; 16], &[1; 32], &[2; 24], &[3; 32], &[4; 32], &[5; 16]];
    let keys: Vec<_> = values
        .iter()
        .map(|v| raw.create_secret(s, CKK_AES, v, &[]).unwrap())
        .collect();
    let data = b"sixty-four bytes or so of plaintext, sealed under many keys....";
    let ivs: Vec<Vec<u8>> = (0..keys.len())
        .map(|i| vec![i as u8; if i % 2 == 0 { 12 } else { 16 }])
        .collect();
    let cases: Vec<(CK_OBJECT_HANDLE, Vec<u8>)> = keys
        .iter()
        .zip(&ivs)
        .enumerate()
        .map(|(i, (&k, iv))| (k, gcm_param(iv, b"aad", [128, 96, 64][i % 3])))
        .collect();
    // Each answer from a session of its own, which has nothing kept yet.
    let slot = raw.slots()[0];
    let expected: Vec<Vec<u8>> = cases
        .iter()
        .map(|(k, param)| {
            let fresh = raw.open(slot, false).unwrap();
            let out = raw.crypt(fresh, Encrypt, CKM_AES_GCM, param.clone(), *k, data);
            assert_eq!(raw.close(fresh), CKR_OK);
            out.unwrap()
        })
        .collect();
    // One session going round more keys than it keeps contexts for, and
    // back again: every message must come out as if alone.
    for _ in 0..3 {
        for ((k, param), want) in cases.iter().zip(&expected) {
            let got = raw.crypt(s, Encrypt, CKM_AES_GCM, param.clone(), *k, data);
            assert_eq!(&got.unwrap(), want);
            let back = raw.crypt(s, Decrypt, CKM_AES_GCM, param.clone(), *k, want);
            assert_eq!(back.unwrap(), data);
        }
    }
}

/// AES-XCBC-MAC (RFC 3566's test cases) and AES-CTS (NIST's CBC-CS1) on one
/// module: (what, hex or the CK_RV).
fn xcbc_and_cts(raw: &softoken_tests::raw::Raw, slot: CK_SLOT_ID) -> Vec<(String, String)> {
    let s = raw.open(slot, true).unwrap();
    let flags = [
        (CKA_SIGN, TRUE.to_vec()),
        (CKA_VERIFY, TRUE.to_vec()),
        (CKA_ENCRYPT, TRUE.to_vec()),
        (CKA_DECRYPT, TRUE.to_vec()),
    ];
    let key = raw
        .create_secret(
            s,
            CKK_AES,
            &unhex("000102030405060708090a0b0c0d0e0f"),
            &flags,
        )
        .unwrap();
    let show = |r: Result<Vec<u8>, CK_RV>| match r {
        Ok(v) => hex::encode(v),
        Err(rv) => format!("{rv:#x}"),
    };
    let mut out = Vec::new();
    for len in [0usize, 3, 16, 20, 32, 34] {
        let message: Vec<u8> = (0..len as u8).collect();
        out.push((
            format!("xcbc {len}"),
            show(raw.sign(s, CKM_AES_XCBC_MAC, vec![], key, &message)),
        ));
        out.push((
            format!("xcbc-96 {len}"),
            show(raw.sign(s, CKM_AES_XCBC_MAC_96, vec![], key, &message)),
        ));
    }
    let plain: Vec<u8> = (0..64u8).collect();
    for len in [15usize, 16, 17, 31, 32, 33, 47, 64] {
        let ct = raw.crypt(s, Encrypt, CKM_AES_CTS, unhex(IV), key, &plain[..len]);
        if let Ok(ct) = &ct {
            assert_eq!(ct.len(), len);
            assert_eq!(
                raw.crypt(s, Decrypt, CKM_AES_CTS, unhex(IV), key, ct)
                    .as_deref(),
                Ok(&plain[..len]),
                "cts {len}"
            );
        }
        out.push((format!("cts {len}"), show(ct)));
    }
    raw.close(s);
    out
}

#[test]
fn xcbc_mac_and_cts_give_rfc_3566_s_and_nss_s_answers() {
    let (raw, _s, _dir) = new_token_session();
    let ours = xcbc_and_cts(&raw, raw.slots()[0]);
    let answer = |what: &str| ours.iter().find(|(w, _)| w == what).unwrap().1.clone();
    for (len, mac) in [
        (0, "75f0251d528ac01c4573dfd584d79f29"),
        (3, "5b376580ae2f19afe7219ceef172756f"),
        (16, "d2a246fa349b68a79998a4394ff7a263"),
        (20, "47f51b4564966215b8985c63055ed308"),
        (32, "f54f0ec8d2b9f3d36807734bd5283fd4"),
        (34, "becbb3bccdb518a30677d5481fb6b4d8"),
    ] {
        assert_eq!(answer(&format!("xcbc {len}")), mac, "RFC 3566, {len} bytes");
        assert_eq!(answer(&format!("xcbc-96 {len}")), mac[..24], "{len} bytes");
    }
    // A whole number of blocks is plain CBC; less than a block is refused.
    let s = raw.open(raw.slots()[0], true).unwrap();
    let key = raw
        .create_secret(
            s,
            CKK_AES,
            &unhex("000102030405060708090a0b0c0d0e0f"),
            &[(CKA_ENCRYPT, TRUE.to_vec())],
        )
        .unwrap();
    let plain: Vec<u8> = (0..32u8).collect();
    let cbc = raw
        .crypt(s, Encrypt, CKM_AES_CBC, unhex(IV), key, &plain)
        .unwrap();
    assert_eq!(answer("cts 32"), hex::encode(cbc));
    assert_eq!(answer("cts 15"), format!("{CKR_DATA_LEN_RANGE:#x}"));
    let nss_dir = tempfile::tempdir().unwrap();
    run(Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", nss_dir.path().display())));
    let nss = nss_softoken(&sql_params(nss_dir.path()));
    let theirs = xcbc_and_cts(&nss, nss.slots()[1]);
    let differ: Vec<_> = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a != b && a.0 != "cts 15")
        .collect();
    assert!(differ.is_empty(), "softoken and NSS differ: {differ:#?}");
}

fn ccm_param(data_len: usize, nonce: &[u8], aad: &[u8], mac_len: usize) -> Vec<u8> {
    softoken_tests::raw::param_bytes(&CK_CCM_PARAMS {
        ulDataLen: data_len as CK_ULONG,
        pNonce: nonce.as_ptr() as *mut u8,
        ulNonceLen: nonce.len() as CK_ULONG,
        pAAD: aad.as_ptr() as *mut u8,
        ulAADLen: aad.len() as CK_ULONG,
        ulMACLen: mac_len as CK_ULONG,
    })
}

/// AES-CCM: NIST SP 800-38C's examples (Appendix C), single- and
/// multi-part, the tag checked, the parameters the mode allows.
#[test]
fn ccm_known_answers_and_failures() {
    let (raw, s, _dir) = new_token_session();
    let key = raw
        .create_secret(
            s,
            CKK_AES,
            &unhex("404142434445464748494a4b4c4d4e4f"),
            &[(CKA_ENCRYPT, TRUE.to_vec()), (CKA_DECRYPT, TRUE.to_vec())],
        )
        .unwrap();
    let cases = [
        (
            "10111213141516",
            "0001020304050607",
            "20212223",
            4,
            "7162015b4dac255d",
        ),
        (
            "1011121314151617",
            "000102030405060708090a0b0c0d0e0f",
            "202122232425262728292a2b2c2d2e2f",
            6,
            "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd",
        ),
        (
            "101112131415161718191a1b",
            "000102030405060708090a0b0c0d0e0f10111213",
            "202122232425262728292a2b2c2d2e2f3031323334353637",
            8,
            "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951",
        ),
    ];
    for (nonce, aad, plain, mac, want) in cases {
        let (nonce, aad, plain) = (unhex(nonce), unhex(aad), unhex(plain));
        let param = ccm_param(plain.len(), &nonce, &aad, mac);
        let sealed = raw
            .crypt(s, Encrypt, CKM_AES_CCM, param.clone(), key, &plain)
            .unwrap();
        assert_eq!(hex::encode(&sealed), want);
        let parts: Vec<&[u8]> = plain.chunks(3).collect();
        assert_eq!(
            raw.crypt_parts(s, Encrypt, CKM_AES_CCM, param.clone(), key, &parts),
            Ok(sealed.clone())
        );
        let parts: Vec<&[u8]> = sealed.chunks(5).collect();
        assert_eq!(
            raw.crypt_parts(s, Decrypt, CKM_AES_CCM, param.clone(), key, &parts),
            Ok(plain.clone())
        );
        let mut forged = sealed.clone();
        forged[0] ^= 1;
        assert_eq!(
            raw.crypt(s, Decrypt, CKM_AES_CCM, param.clone(), key, &forged),
            Err(CKR_ENCRYPTED_DATA_INVALID)
        );
        // A message of another length than the parameter said.
        assert_eq!(
            raw.crypt(
                s,
                Encrypt,
                CKM_AES_CCM,
                param,
                key,
                &[plain.clone(), vec![0]].concat()
            ),
            Err(CKR_DATA_LEN_RANGE)
        );
    }
    let nonce = unhex("10111213141516");
    for bad in [
        ccm_param(4, &nonce[..6], &[], 8),
        ccm_param(4, &nonce, &[], 5),
        ccm_param(4, &nonce, &[], 18),
        // A 13-byte nonce leaves two bytes to count the message.
        ccm_param(1 << 16, &[0; 13], &[], 8),
    ] {
        assert_eq!(
            raw.crypt(s, Encrypt, CKM_AES_CCM, bad, key, &[0; 4]),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }
}
