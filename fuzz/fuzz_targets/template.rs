//! Attribute templates as C_CreateObject and C_SetAttributeValue receive
//! them. Input: records of (type: 1 byte index into common types, or 4
//! bytes little-endian when the index is 0xff; length: 1 byte; value).
//! The object policy answers each with an object or an error, never a
//! panic; a created object then takes or refuses changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkcs11_sys::*;
use softoken::fuzzing::Attrs;
use softoken::fuzzing::{check_change, new_object};

const TYPES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_VALUE,
    CKA_KEY_TYPE,
    CKA_ID,
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_DERIVE,
    CKA_MODULUS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_VALUE_LEN,
    CKA_CERTIFICATE_TYPE,
    CKA_SUBJECT,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_ALWAYS_AUTHENTICATE,
];

fn records(mut input: &[u8]) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    let mut out = Vec::new();
    while let [index, rest @ ..] = input {
        let (t, rest) = if *index == 0xff {
            let Some((word, rest)) = rest.split_first_chunk::<4>() else {
                break;
            };
            (u32::from_le_bytes(*word) as CK_ATTRIBUTE_TYPE, rest)
        } else {
            (TYPES[*index as usize % TYPES.len()], rest)
        };
        let Some((len, rest)) = rest.split_first() else {
            break;
        };
        let len = (*len as usize).min(rest.len());
        out.push((t, rest[..len].to_vec()));
        input = &rest[len..];
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let list = records(input);
    let mut template = Attrs::new();
    for (t, v) in &list {
        template.set(*t, v.clone());
    }
    if let Ok(object) = new_object(template) {
        for (t, v) in &list {
            let _ = check_change(&object, *t, v);
        }
    }
});
