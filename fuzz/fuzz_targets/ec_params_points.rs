//! EC domain parameters (CKA_EC_PARAMS) and points (CKA_EC_POINT, wrapped
//! or raw) as callers and databases give them: the curve named, the point
//! unwrapped, then a public key built from both verifying a signature, as
//! C_VerifyInit/C_Verify would. Input: the parameters' length byte, the
//! parameters, then the point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkcs11_sys::*;
use softoken::fuzzing::{curve_of, unwrap_point, verify_op, Attrs, VerifyOp};

fuzz_target!(|input: &[u8]| {
    let [n, rest @ ..] = input else {
        return;
    };
    let (params, point) = rest.split_at((*n as usize).min(rest.len()));
    let Ok(curve) = curve_of(params) else {
        return;
    };
    let _ = unwrap_point(curve, point);
    let mut key = Attrs::new();
    key.set(CKA_CLASS, CKO_PUBLIC_KEY.to_ne_bytes().to_vec());
    key.set(CKA_KEY_TYPE, CKK_EC.to_ne_bytes().to_vec());
    key.set(CKA_VERIFY, vec![1]);
    key.set(CKA_EC_PARAMS, params.to_vec());
    key.set(CKA_EC_POINT, point.to_vec());
    if let Ok(mut op) = verify_op(&key, None) {
        let _ = op.update(b"a message");
        let _ = op.verify(&[0x5a; 64]);
    }
});
