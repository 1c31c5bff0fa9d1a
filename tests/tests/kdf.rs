//! Key derivation through the C API: HKDF (RFC 5869's first case, every
//! mode), PBKDF2 (RFC 6070, both parameter layouts), SP 800-108 counter
//! mode (checked against a computation of its own).

use pkcs11_sys::*;
use softoken_tests::raw::{hkdf_param, param_bytes, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

fn base(raw: &Raw, s: CK_SESSION_HANDLE, value: &[u8]) -> CK_OBJECT_HANDLE {
    raw.create(
        s,
        &[
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
            (CKA_VALUE, value.to_vec()),
            (CKA_DERIVE, TRUE.to_vec()),
        ],
    )
    .unwrap()
}

fn readable(len: Option<CK_ULONG>) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    let mut t = vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_SENSITIVE, FALSE.to_vec()),
    ];
    if let Some(n) = len {
        t.push((CKA_VALUE_LEN, ul(n)));
    }
    t
}

#[test]
fn hkdf_rfc5869_case_1() {
    let (raw, s, _dir) = new_token_session();
    let ikm = base(&raw, s, &[0x0b; 22]);
    let salt = unhex("000102030405060708090a0b0c");
    let info = unhex("f0f1f2f3f4f5f6f7f8f9");
    let prk = "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5";
    let okm =
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
    let value = |h: CK_OBJECT_HANDLE| hex::encode(raw.get(s, h, CKA_VALUE).unwrap());

    let both = raw
        .derive(
            s,
            CKM_HKDF_DERIVE,
            hkdf_param(true, true, CKF_HKDF_SALT_DATA, &salt, 0, &info),
            ikm,
            &readable(Some(42)),
        )
        .unwrap();
    assert_eq!(value(both), okm);
    let extracted = raw
        .derive(
            s,
            CKM_HKDF_DERIVE,
            hkdf_param(true, false, CKF_HKDF_SALT_DATA, &salt, 0, &[]),
            ikm,
            &readable(None),
        )
        .unwrap();
    assert_eq!(value(extracted), prk);
    let prk_key = base(&raw, s, &unhex(prk));
    let expanded = raw
        .derive(
            s,
            CKM_HKDF_DERIVE,
            hkdf_param(false, true, CKF_HKDF_SALT_NULL, &[], 0, &info),
            prk_key,
            &readable(Some(42)),
        )
        .unwrap();
    assert_eq!(value(expanded), okm);
    // The salt as a key.
    let salt_key = base(&raw, s, &salt);
    let keyed = raw
        .derive(
            s,
            CKM_HKDF_DERIVE,
            hkdf_param(true, true, CKF_HKDF_SALT_KEY, &[], salt_key, &info),
            ikm,
            &readable(Some(42)),
        )
        .unwrap();
    assert_eq!(value(keyed), okm);
    // HKDF_DATA makes a data object.
    let data = raw
        .derive(
            s,
            CKM_HKDF_DATA,
            hkdf_param(true, true, CKF_HKDF_SALT_DATA, &salt, 0, &info),
            ikm,
            &[(CKA_CLASS, ul(CKO_DATA)), (CKA_VALUE_LEN, ul(42))],
        )
        .unwrap_or_else(|rv| panic!("HKDF_DATA: {rv:#x}"));
    assert_eq!(value(data), okm);

    // Errors: neither step, no length for expansion, an unknown salt type.
    let param = hkdf_param(false, false, CKF_HKDF_SALT_NULL, &[], 0, &[]);
    assert_eq!(
        raw.derive(s, CKM_HKDF_DERIVE, param, ikm, &readable(Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let param = hkdf_param(true, true, CKF_HKDF_SALT_NULL, &[], 0, &[]);
    assert_eq!(
        raw.derive(s, CKM_HKDF_DERIVE, param, ikm, &readable(None)),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    let param = hkdf_param(true, true, 77, &[], 0, &[]);
    assert_eq!(
        raw.derive(s, CKM_HKDF_DERIVE, param, ikm, &readable(Some(16))),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

/// Expansion alone (bExtract FALSE) takes no salt, so its salt type is not
/// read: 0, as TLS 1.3 stacks send it, is accepted and gives RFC 5869's
/// answer; an unknown salt type with extraction is still refused.
#[test]
fn hkdf_expand_only_ignores_the_salt_type() {
    let (raw, s, _dir) = new_token_session();
    let prk = base(
        &raw,
        s,
        &unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"),
    );
    let info = unhex("f0f1f2f3f4f5f6f7f8f9");
    let expanded = raw
        .derive(
            s,
            CKM_HKDF_DERIVE,
            hkdf_param(false, true, 0, &[], 0, &info),
            prk,
            &readable(Some(42)),
        )
        .unwrap();
    assert_eq!(
        hex::encode(raw.get(s, expanded, CKA_VALUE).unwrap()),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    assert_eq!(
        raw.derive(
            s,
            CKM_HKDF_DERIVE,
            hkdf_param(true, true, 0, &[], 0, &info),
            prk,
            &readable(Some(42))
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

/// CK_PKCS5_PBKD2_PARAMS2 as bytes (the 3.0 layout, password length by
/// value) or the older one (password length by pointer).
fn pbkdf2_param(
    salt: &[u8],
    iterations: CK_ULONG,
    prf: CK_ULONG,
    password: &[u8],
    len_cell: Option<&CK_ULONG>,
) -> Vec<u8> {
    let p = CK_PKCS5_PBKD2_PARAMS2 {
        saltSource: CKZ_SALT_SPECIFIED,
        pSaltSourceData: salt.as_ptr() as *mut _,
        ulSaltSourceDataLen: salt.len() as CK_ULONG,
        iterations,
        prf,
        pPrfData: std::ptr::null_mut(),
        ulPrfDataLen: 0,
        pPassword: password.as_ptr() as *mut u8,
        ulPasswordLen: len_cell.map_or(password.len() as CK_ULONG, |c| {
            c as *const CK_ULONG as CK_ULONG
        }),
    };
    param_bytes(&p)
}

#[test]
fn pbkdf2_rfc6070() {
    let (raw, s, _dir) = new_token_session();
    let generate = |param: Vec<u8>, len: CK_ULONG| -> Result<String, CK_RV> {
        let hk = raw.generate_key_with(s, CKM_PKCS5_PBKD2, param, &readable(Some(len)))?;
        Ok(hex::encode(raw.get(s, hk, CKA_VALUE).unwrap()))
    };
    assert_eq!(
        generate(pbkdf2_param(b"salt", 1, 1, b"password", None), 20).unwrap(),
        "0c60c80f961f0e71f3a9b524af6012062fe037a6"
    );
    assert_eq!(
        generate(pbkdf2_param(b"salt", 4096, 1, b"password", None), 20).unwrap(),
        "4b007901b765489abead49d926f721d065a429c1"
    );
    assert_eq!(
        generate(pbkdf2_param(b"salt", 1, 4, b"password", None), 32).unwrap(),
        "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
    );
    // The older layout, with the password length behind a pointer.
    let len: CK_ULONG = 8;
    assert_eq!(
        generate(pbkdf2_param(b"salt", 1, 1, b"password", Some(&len)), 20).unwrap(),
        "0c60c80f961f0e71f3a9b524af6012062fe037a6"
    );
    assert_eq!(
        generate(pbkdf2_param(b"salt", 0, 1, b"password", None), 20),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        generate(pbkdf2_param(b"salt", 1, 99, b"password", None), 20),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

#[test]
fn sp800_108_counter_mode() {
    let (raw, s, _dir) = new_token_session();
    let ki = unhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    let key = base(&raw, s, &ki);
    let counter = [vec![0u8; 8], ul(32)].concat(); // big-endian, 32 bits
    let dkm = [
        ul(CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS),
        vec![0u8; 8],
        ul(32),
    ]
    .concat();
    let label = b"label\x00context".to_vec();
    let items = [
        CK_PRF_DATA_PARAM {
            type_: CK_SP800_108_ITERATION_VARIABLE,
            pValue: counter.as_ptr() as *mut _,
            ulValueLen: counter.len() as CK_ULONG,
        },
        CK_PRF_DATA_PARAM {
            type_: CK_SP800_108_BYTE_ARRAY,
            pValue: label.as_ptr() as *mut _,
            ulValueLen: label.len() as CK_ULONG,
        },
        CK_PRF_DATA_PARAM {
            type_: CK_SP800_108_DKM_LENGTH,
            pValue: dkm.as_ptr() as *mut _,
            ulValueLen: dkm.len() as CK_ULONG,
        },
    ];
    let params = CK_SP800_108_KDF_PARAMS {
        prfType: CKM_SHA256_HMAC,
        ulNumberOfDataParams: 3,
        pDataParams: items.as_ptr() as *mut _,
        ulAdditionalDerivedKeys: 0,
        pAdditionalDerivedKeys: std::ptr::null_mut(),
    };
    let param = param_bytes(&params);
    let derived = raw
        .derive(
            s,
            CKM_SP800_108_COUNTER_KDF,
            param,
            key,
            &readable(Some(48)),
        )
        .unwrap();

    // K(i) = HMAC(KI, [i]32 || label || 0x00 || context || [L]32), L = 384.
    let block = |i: u32| {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &ki);
        let input = [&i.to_be_bytes()[..], &label, &384u32.to_be_bytes()].concat();
        aws_lc_rs::hmac::sign(&k, &input).as_ref().to_vec()
    };
    let expected = [block(1), block(2)].concat()[..48].to_vec();
    assert_eq!(raw.get(s, derived, CKA_VALUE).unwrap(), expected);
}
