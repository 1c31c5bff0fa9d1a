//! Every record decoder on arbitrary records. Input: a selector byte
//! (cert8, key3, secmod), a key length byte, the key, then the data.
//! Whatever decodes must encode, and decode again to the same record.
#![no_main]

use legacy_dbm::{cert8, key3, secmod};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [selector, key_len, rest @ ..] = input else {
        return;
    };
    let key_len = (*key_len as usize).min(rest.len());
    let (key, data) = rest.split_at(key_len);
    match selector % 3 {
        0 => {
            if let Ok(r) = cert8::decode(key, data) {
                if let Ok((k, d)) = cert8::encode(&r) {
                    assert_eq!(cert8::decode(&k, &d).unwrap(), r);
                }
            }
        }
        1 => {
            if let Ok(r) = key3::decode(key, data) {
                if let Ok((k, d)) = key3::encode(&r) {
                    assert_eq!(key3::decode(&k, &d).unwrap(), r);
                }
            }
        }
        _ => {
            if let Ok(m) = secmod::decode(key, data) {
                if let Ok((k, d)) = secmod::encode(&m) {
                    assert_eq!(secmod::decode(&k, &d).unwrap(), m);
                }
            }
        }
    }
});
