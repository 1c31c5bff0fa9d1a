//! The plaintext of C_UnwrapKey: a PKCS#8 PrivateKeyInfo (RSA, EC,
//! Ed25519, X25519) or a secret key's bytes, checked against the template
//! the caller gave. Input: a selector byte for the template, then the
//! plaintext. What is accepted must also pass the object policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkcs11_sys::*;
use softoken::fuzzing::unwrapped_key;
use softoken::fuzzing::Attrs;

fuzz_target!(|input: &[u8]| {
    let [selector, plaintext @ ..] = input else {
        return;
    };
    let (class, key_type) = match selector % 6 {
        0 => (CKO_PRIVATE_KEY, CKK_RSA),
        1 => (CKO_PRIVATE_KEY, CKK_EC),
        2 => (CKO_PRIVATE_KEY, CKK_EC_EDWARDS),
        3 => (CKO_PRIVATE_KEY, CKK_EC_MONTGOMERY),
        4 => (CKO_SECRET_KEY, CKK_AES),
        _ => (CKO_SECRET_KEY, CKK_GENERIC_SECRET),
    };
    let mut template = Attrs::new();
    template.set(CKA_CLASS, class.to_ne_bytes().to_vec());
    template.set(CKA_KEY_TYPE, key_type.to_ne_bytes().to_vec());
    if let Ok(key) = unwrapped_key(plaintext, &template) {
        let _ = softoken::fuzzing::new_object(key);
    }
});
