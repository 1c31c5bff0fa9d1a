//! ChaCha20 and ChaCha20-Poly1305 through the C API: RFC 8439's test
//! vectors single- and multi-part, the tag checked, the parameters NSS
//! refuses refused, and the same answers as NSS's softoken.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{param_bytes, ul, Direction, Raw, FALSE, TRUE};
use softoken_tests::*;

const TEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

fn chacha20_param(counter: &[u8], nonce: &[u8]) -> Vec<u8> {
    param_bytes(&CK_CHACHA20_PARAMS {
        pBlockCounter: counter.as_ptr() as *mut u8,
        blockCounterBits: (counter.len() * 8) as CK_ULONG,
        pNonce: nonce.as_ptr() as *mut u8,
        ulNonceBits: (nonce.len() * 8) as CK_ULONG,
    })
}

fn aead_param(nonce: &[u8], aad: &[u8]) -> Vec<u8> {
    param_bytes(&CK_SALSA20_CHACHA20_POLY1305_PARAMS {
        pNonce: nonce.as_ptr() as *mut u8,
        ulNonceLen: nonce.len() as CK_ULONG,
        pAAD: aad.as_ptr() as *mut u8,
        ulAADLen: aad.len() as CK_ULONG,
    })
}

fn key(raw: &Raw, s: CK_SESSION_HANDLE, value: &[u8]) -> CK_OBJECT_HANDLE {
    raw.create_secret(
        s,
        CKK_CHACHA20,
        value,
        &[(CKA_ENCRYPT, TRUE.to_vec()), (CKA_DECRYPT, TRUE.to_vec())],
    )
    .unwrap()
}

/// RFC 8439 §2.4.2 and §2.8.2 on one module: the answers.
fn answers(raw: &Raw, slot: CK_SLOT_ID) -> (Vec<u8>, Vec<u8>) {
    let s = raw.open(slot, true).unwrap();
    let k = key(raw, s, &(0..32).collect::<Vec<u8>>());
    let (counter, nonce) = (1u32.to_le_bytes(), unhex("000000000000004a00000000"));
    let stream = raw
        .crypt(
            s,
            Direction::Encrypt,
            CKM_CHACHA20,
            chacha20_param(&counter, &nonce),
            k,
            TEXT,
        )
        .unwrap();
    let k = key(raw, s, &(0x80..0xa0).collect::<Vec<u8>>());
    let (nonce, aad) = (
        unhex("070000004041424344454647"),
        unhex("50515253c0c1c2c3c4c5c6c7"),
    );
    // Without a length query: NSS's answers less than its C_Encrypt needs.
    let param = aead_param(&nonce, &aad);
    let sealed = raw
        .crypt_into(
            s,
            Direction::Encrypt,
            CKM_CHACHA20_POLY1305,
            param,
            k,
            TEXT,
            256,
        )
        .unwrap();
    raw.close(s);
    (stream, sealed)
}

#[test]
fn rfc_8439_vectors_and_nss_s_answers() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let (stream, sealed) = answers(&raw, raw.slots()[0]);
    assert_eq!(
        hex::encode(&stream),
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab77937365af90bbf74a35be6b40b8eedf2785e42874d"
    );
    assert_eq!(
        hex::encode(&sealed),
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b61161ae10b594f09e26a7e902ecbd0600691"
    );
    let nss_dir = tempfile::tempdir().unwrap();
    run(Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", nss_dir.path().display())));
    let nss = nss_softoken(&sql_params(nss_dir.path()));
    assert_eq!(answers(&nss, nss.slots()[1]), (stream, sealed));
}

#[test]
fn parts_tags_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    let value: Vec<u8> = (0..32).collect();
    let k = key(&raw, s, &value);
    let (counter, nonce) = (1u32.to_le_bytes(), unhex("000000000000004a00000000"));
    let param = chacha20_param(&counter, &nonce);
    let whole = raw
        .crypt(s, Direction::Encrypt, CKM_CHACHA20, param.clone(), k, TEXT)
        .unwrap();
    for size in [1, 7, 63, 64, 65] {
        let parts: Vec<&[u8]> = TEXT.chunks(size).collect();
        assert_eq!(
            raw.crypt_parts(
                s,
                Direction::Encrypt,
                CKM_CHACHA20,
                param.clone(),
                k,
                &parts
            ),
            Ok(whole.clone()),
            "parts of {size}"
        );
    }
    assert_eq!(
        raw.crypt(
            s,
            Direction::Decrypt,
            CKM_CHACHA20,
            param.clone(),
            k,
            &whole
        ),
        Ok(TEXT.to_vec())
    );
    // The stream ends with the 32-bit counter.
    let last = chacha20_param(&u32::MAX.to_le_bytes(), &nonce);
    assert!(raw
        .crypt(
            s,
            Direction::Encrypt,
            CKM_CHACHA20,
            last.clone(),
            k,
            &[0; 64]
        )
        .is_ok());
    assert_eq!(
        raw.crypt(s, Direction::Encrypt, CKM_CHACHA20, last, k, &[0; 65]),
        Err(CKR_DATA_LEN_RANGE)
    );
    // Only RFC 8439's form (as NSS: a 64-bit counter is refused).
    for bad in [
        chacha20_param(&[0; 8], &nonce),
        chacha20_param(&counter, &[0; 8]),
    ] {
        assert_eq!(
            raw.crypt(s, Direction::Encrypt, CKM_CHACHA20, bad, k, TEXT),
            Err(CKR_MECHANISM_PARAM_INVALID)
        );
    }

    let (nonce, aad) = (unhex("070000004041424344454647"), b"header".to_vec());
    let param = aead_param(&nonce, &aad);
    let sealed = raw
        .crypt(
            s,
            Direction::Encrypt,
            CKM_CHACHA20_POLY1305,
            param.clone(),
            k,
            TEXT,
        )
        .unwrap();
    assert_eq!(sealed.len(), TEXT.len() + 16);
    let parts: Vec<&[u8]> = sealed.chunks(10).collect();
    assert_eq!(
        raw.crypt_parts(
            s,
            Direction::Decrypt,
            CKM_CHACHA20_POLY1305,
            param.clone(),
            k,
            &parts
        ),
        Ok(TEXT.to_vec())
    );
    let mut forged = sealed.clone();
    *forged.last_mut().unwrap() ^= 1;
    // Through the 2.40 list, the code 2.40 clients know for a bad tag.
    assert_eq!(
        raw.crypt(
            s,
            Direction::Decrypt,
            CKM_CHACHA20_POLY1305,
            param,
            k,
            &forged
        ),
        Err(CKR_ENCRYPTED_DATA_INVALID)
    );
    assert_eq!(
        raw.crypt(
            s,
            Direction::Encrypt,
            CKM_CHACHA20_POLY1305,
            aead_param(&nonce[..8], &aad),
            k,
            TEXT
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );

    // Keys: made at 32 bytes; another length is refused.
    let info = raw.mechanism_info(slot, CKM_CHACHA20_KEY_GEN).unwrap();
    assert_eq!((info.ulMinKeySize, info.ulMaxKeySize), (32, 32));
    let made = raw
        .generate_key(
            s,
            CKM_CHACHA20_KEY_GEN,
            &[
                (CKA_SENSITIVE, FALSE.to_vec()),
                (CKA_EXTRACTABLE, TRUE.to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(raw.get(s, made, CKA_VALUE).unwrap().len(), 32);
    assert_eq!(raw.get(s, made, CKA_KEY_TYPE).unwrap(), ul(CKK_CHACHA20));
    assert_eq!(
        raw.create_secret(s, CKK_CHACHA20, &[1; 16], &[])
            .unwrap_err(),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
}
