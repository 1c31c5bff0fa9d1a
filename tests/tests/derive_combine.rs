//! Derivation by combination and by encryption (CKM_CONCATENATE_*,
//! CKM_XOR_BASE_AND_DATA, CKM_EXTRACT_KEY_FROM_KEY, CKM_AES_ECB_ENCRYPT_DATA,
//! CKM_AES_CBC_ENCRYPT_DATA): known answers (NIST SP 800-38A for the AES
//! ones), the same answers as NSS's own softoken for every one, and the
//! rule that a derived key is as protected as its sources.

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{param_bytes, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51";

fn string_data(data: &[u8]) -> Vec<u8> {
    param_bytes(&CK_KEY_DERIVATION_STRING_DATA {
        pData: data.as_ptr() as *mut u8,
        ulLen: data.len() as CK_ULONG,
    })
}

fn cbc_data(iv: [u8; 16], data: &[u8]) -> Vec<u8> {
    param_bytes(&CK_AES_CBC_ENCRYPT_DATA_PARAMS {
        iv,
        pData: data.as_ptr() as *mut u8,
        length: data.len() as CK_ULONG,
    })
}

/// A readable derived key of the template's type and length.
fn readable(key_type: CK_KEY_TYPE, len: Option<CK_ULONG>) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    let mut t = vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(key_type)),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
    ];
    if let Some(len) = len {
        t.push((CKA_VALUE_LEN, ul(len)));
    }
    t
}

/// Every derivation's result (hex) on one module's token in `slot`.
fn derivations(raw: &Raw, slot: CK_SLOT_ID) -> Vec<(&'static str, String)> {
    let s = raw.open(slot, true).unwrap();
    let open = [
        (CKA_DERIVE, TRUE.to_vec()),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
    ];
    let aes = raw.create_secret(s, CKK_AES, &unhex(KEY), &open).unwrap();
    let generic = raw
        .create_secret(s, CKK_GENERIC_SECRET, b"0123456789abcdef", &open)
        .unwrap();
    let other = raw
        .create_secret(s, CKK_GENERIC_SECRET, b"second key", &open)
        .unwrap();
    let data = b"data to combine".to_vec();
    let plain = unhex(PLAIN);
    let mut out = Vec::new();
    let mut derive = |name, ty, param: Vec<u8>, base, template: Vec<_>| {
        let value = raw
            .derive(s, ty, param, base, &template)
            .and_then(|h| raw.get(s, h, CKA_VALUE))
            .map(hex::encode);
        out.push((name, format!("{value:?}")));
    };
    let other_param = (other as CK_ULONG).to_ne_bytes().to_vec();
    derive(
        "base and key",
        CKM_CONCATENATE_BASE_AND_KEY,
        other_param,
        generic,
        readable(CKK_GENERIC_SECRET, None),
    );
    derive(
        "base and data",
        CKM_CONCATENATE_BASE_AND_DATA,
        string_data(&data),
        generic,
        readable(CKK_GENERIC_SECRET, None),
    );
    derive(
        "data and base",
        CKM_CONCATENATE_DATA_AND_BASE,
        string_data(&data),
        generic,
        readable(CKK_GENERIC_SECRET, None),
    );
    derive(
        "xor",
        CKM_XOR_BASE_AND_DATA,
        string_data(&data),
        generic,
        readable(CKK_GENERIC_SECRET, None),
    );
    derive(
        "xor, cut",
        CKM_XOR_BASE_AND_DATA,
        string_data(&data),
        generic,
        readable(CKK_GENERIC_SECRET, Some(5)),
    );
    let bit_index = param_bytes(&(21 as CK_ULONG));
    derive(
        "extract",
        CKM_EXTRACT_KEY_FROM_KEY,
        bit_index,
        generic,
        readable(CKK_GENERIC_SECRET, Some(8)),
    );
    derive(
        "aes ecb",
        CKM_AES_ECB_ENCRYPT_DATA,
        string_data(&plain),
        aes,
        readable(CKK_GENERIC_SECRET, None),
    );
    let iv: [u8; 16] = unhex("000102030405060708090a0b0c0d0e0f")
        .try_into()
        .unwrap();
    derive(
        "aes cbc",
        CKM_AES_CBC_ENCRYPT_DATA,
        cbc_data(iv, &plain),
        aes,
        readable(CKK_AES, Some(16)),
    );
    raw.close(s);
    out
}

#[test]
fn derivations_give_the_known_answers_and_nss_s() {
    let ours_dir = tempfile::tempdir().unwrap();
    let ours = Raw::with_params(&sql_params(ours_dir.path()));
    let got = derivations(&ours, ours.slots()[0]);

    let nss_dir = tempfile::tempdir().unwrap();
    run(Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", nss_dir.path().display())));
    let params = format!(
        "configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=",
        nss_dir.path().display()
    );
    let nss = nss_softoken(&params);
    assert_eq!(
        got,
        derivations(&nss, nss.slots()[1]),
        "softoken and NSS differ"
    );

    let hex = |b: &[u8]| format!("Ok({:?})", hex::encode(b));
    let base = b"0123456789abcdef";
    let data = b"data to combine";
    let xor: Vec<u8> = base.iter().zip(data).map(|(a, b)| a ^ b).collect();
    assert_eq!(got[0].1, hex(&[&base[..], b"second key"].concat()));
    assert_eq!(got[1].1, hex(&[&base[..], data].concat()));
    assert_eq!(got[2].1, hex(&[&data[..], base].concat()));
    assert_eq!(got[3].1, hex(&xor));
    assert_eq!(got[4].1, hex(&xor[..5]));
    // SP 800-38A F.1.1 and F.2.1: the first two blocks.
    assert_eq!(
        got[6].1,
        hex(&unhex(
            "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf"
        ))
    );
    assert_eq!(got[7].1, hex(&unhex("7649abac8119b246cee98e9b12e9197d")));

    // Past the key's end the bits wrap round to its start, as the
    // specification says (NSS refuses with CKR_MECHANISM_PARAM_INVALID).
    let s = ours.open(ours.slots()[0], true).unwrap();
    let base = ours
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &[0x0f, 0xf0],
            &[(CKA_DERIVE, TRUE.to_vec()), (CKA_SENSITIVE, FALSE.to_vec())],
        )
        .unwrap();
    let wrapped = ours
        .derive(
            s,
            CKM_EXTRACT_KEY_FROM_KEY,
            param_bytes(&(12 as CK_ULONG)),
            base,
            &readable(CKK_GENERIC_SECRET, Some(2)),
        )
        .unwrap();
    // Bits 12..15 (0000), then 0..11 (0000 1111 1111).
    assert_eq!(ours.get(s, wrapped, CKA_VALUE).unwrap(), [0x00, 0xff]);
}

/// A combination hands out the base key's bits: the new key is sensitive
/// when a source is, and unextractable when a source is; a template that
/// asks otherwise is inconsistent.
#[test]
fn a_combined_key_is_as_protected_as_its_sources() {
    let (raw, s, _dir) = new_token_session();
    let sensitive = raw
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &[7; 16],
            &[(CKA_DERIVE, TRUE.to_vec())],
        )
        .unwrap();
    let data = b"x".to_vec();
    assert_eq!(
        raw.derive(
            s,
            CKM_CONCATENATE_BASE_AND_DATA,
            string_data(&data),
            sensitive,
            &readable(CKK_GENERIC_SECRET, None)
        ),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    let derived = raw
        .derive(
            s,
            CKM_CONCATENATE_BASE_AND_DATA,
            string_data(&data),
            sensitive,
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
            ],
        )
        .unwrap();
    assert_eq!(raw.get(s, derived, CKA_SENSITIVE).unwrap(), TRUE);
    assert_eq!(raw.get(s, derived, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    // Without CKA_DERIVE the base may not derive.
    let no_derive = raw
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &[7; 16],
            &[(CKA_DERIVE, FALSE.to_vec())],
        )
        .unwrap();
    assert_eq!(
        raw.derive(
            s,
            CKM_XOR_BASE_AND_DATA,
            string_data(&data),
            no_derive,
            &[(CKA_CLASS, ul(CKO_SECRET_KEY))]
        ),
        Err(CKR_KEY_FUNCTION_NOT_PERMITTED)
    );
    // Every one is listed as a derivation.
    for ty in [
        CKM_CONCATENATE_BASE_AND_KEY,
        CKM_CONCATENATE_BASE_AND_DATA,
        CKM_CONCATENATE_DATA_AND_BASE,
        CKM_XOR_BASE_AND_DATA,
        CKM_EXTRACT_KEY_FROM_KEY,
        CKM_AES_ECB_ENCRYPT_DATA,
        CKM_AES_CBC_ENCRYPT_DATA,
    ] {
        let mut info = CK_MECHANISM_INFO::default();
        // SAFETY: a valid out pointer.
        let rv = unsafe { (raw.f().C_GetMechanismInfo.unwrap())(raw.slots()[0], ty, &mut info) };
        assert_eq!(
            (rv, info.flags & CKF_DERIVE),
            (CKR_OK, CKF_DERIVE),
            "{ty:#x}"
        );
    }
}
