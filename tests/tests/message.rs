//! The PKCS#11 3.0 message-based API through C_GetInterface's list: AES-GCM
//! messages with the caller's IV or one generated and handed back, the tag
//! apart, in one call or in parts; message signing and verification.

use pkcs11_sys::*;
use softoken_tests::raw::{gcm_param, mechanism, Direction, Raw, TRUE};
use softoken_tests::*;

/// One message's CK_GCM_MESSAGE_PARAMS over buffers the test owns.
struct Message {
    iv: Vec<u8>,
    tag: Vec<u8>,
    fixed_bits: CK_ULONG,
    generator: CK_GENERATOR_FUNCTION,
    params: CK_GCM_MESSAGE_PARAMS,
}

/// A message's parameter structure as the C calls take it.
trait MessageParam {
    fn ptr(&mut self) -> CK_VOID_PTR;
    fn len(&self) -> CK_ULONG;
}

impl<T: MessageParam> MessageParam for Box<T> {
    fn ptr(&mut self) -> CK_VOID_PTR {
        (**self).ptr()
    }

    fn len(&self) -> CK_ULONG {
        (**self).len()
    }
}

impl Message {
    fn new(iv: &[u8], fixed_bits: CK_ULONG, generator: CK_GENERATOR_FUNCTION) -> Box<Message> {
        let mut m = Box::new(Message {
            iv: iv.to_vec(),
            tag: vec![0; 16],
            fixed_bits,
            generator,
            params: CK_GCM_MESSAGE_PARAMS::default(),
        });
        m.params = CK_GCM_MESSAGE_PARAMS {
            pIv: m.iv.as_mut_ptr(),
            ulIvLen: m.iv.len() as CK_ULONG,
            ulIvFixedBits: m.fixed_bits,
            ivGenerator: m.generator,
            pTag: m.tag.as_mut_ptr(),
            ulTagBits: 128,
        };
        m
    }
}

impl MessageParam for Message {
    fn ptr(&mut self) -> CK_VOID_PTR {
        &mut self.params as *mut _ as CK_VOID_PTR
    }

    fn len(&self) -> CK_ULONG {
        std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG
    }
}

/// One message's CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS over buffers the
/// test owns.
struct ChaChaMessage {
    nonce: Vec<u8>,
    tag: Vec<u8>,
    params: CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS,
}

impl ChaChaMessage {
    fn new(nonce: &[u8]) -> Box<ChaChaMessage> {
        let mut m = Box::new(ChaChaMessage {
            nonce: nonce.to_vec(),
            tag: vec![0; 16],
            params: CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS {
                pNonce: std::ptr::null_mut(),
                ulNonceLen: 0,
                pTag: std::ptr::null_mut(),
            },
        });
        m.params = CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS {
            pNonce: m.nonce.as_mut_ptr(),
            ulNonceLen: m.nonce.len() as CK_ULONG,
            pTag: m.tag.as_mut_ptr(),
        };
        m
    }
}

impl MessageParam for ChaChaMessage {
    fn ptr(&mut self) -> CK_VOID_PTR {
        &mut self.params as *mut _ as CK_VOID_PTR
    }

    fn len(&self) -> CK_ULONG {
        std::mem::size_of::<CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS>() as CK_ULONG
    }
}

fn init(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    encrypt: bool,
    ty: CK_MECHANISM_TYPE,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    let f = raw.f30();
    let mut m = mechanism(ty, &mut []);
    // SAFETY: a valid mechanism.
    unsafe {
        if encrypt {
            (f.C_MessageEncryptInit.unwrap())(s, &mut m, key)
        } else {
            (f.C_MessageDecryptInit.unwrap())(s, &mut m, key)
        }
    }
}

/// C_EncryptMessage or C_DecryptMessage with a length query first.
fn one_message(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    encrypt: bool,
    msg: &mut dyn MessageParam,
    aad: &[u8],
    input: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let f = raw.f30();
    let call = if encrypt {
        f.C_EncryptMessage.unwrap()
    } else {
        f.C_DecryptMessage.unwrap()
    };
    let mut len = 0;
    let (p, plen) = (msg.ptr(), msg.len());
    let (a, alen) = (aad.as_ptr() as *mut u8, aad.len() as CK_ULONG);
    let (i, ilen) = (input.as_ptr() as *mut u8, input.len() as CK_ULONG);
    // SAFETY: valid parameters, buffers and lengths.
    unsafe {
        let rv = call(s, p, plen, a, alen, i, ilen, std::ptr::null_mut(), &mut len);
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut out = vec![0u8; len as usize];
        let rv = call(s, p, plen, a, alen, i, ilen, out.as_mut_ptr(), &mut len);
        if rv != CKR_OK {
            return Err(rv);
        }
        out.truncate(len as usize);
        Ok(out)
    }
}

/// A message in parts: Begin, a Next per part, the last with
/// CKF_END_OF_MESSAGE; the output of every call, concatenated.
fn in_parts(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    encrypt: bool,
    msg: &mut dyn MessageParam,
    aad: &[u8],
    parts: &[&[u8]],
) -> Result<Vec<u8>, CK_RV> {
    let f = raw.f30();
    let (p, plen) = (msg.ptr(), msg.len());
    let mut all = Vec::new();
    // SAFETY: valid parameters, buffers and lengths.
    unsafe {
        let rv = if encrypt {
            (f.C_EncryptMessageBegin.unwrap())(
                s,
                p,
                plen,
                aad.as_ptr() as *mut u8,
                aad.len() as CK_ULONG,
            )
        } else {
            (f.C_DecryptMessageBegin.unwrap())(
                s,
                p,
                plen,
                aad.as_ptr() as *mut u8,
                aad.len() as CK_ULONG,
            )
        };
        if rv != CKR_OK {
            return Err(rv);
        }
        let next = if encrypt {
            f.C_EncryptMessageNext.unwrap()
        } else {
            f.C_DecryptMessageNext.unwrap()
        };
        for (n, part) in parts.iter().enumerate() {
            let flags = if n + 1 == parts.len() {
                CKF_END_OF_MESSAGE
            } else {
                0
            };
            let mut out = vec![0u8; 256];
            let mut len = out.len() as CK_ULONG;
            let rv = next(
                s,
                p,
                plen,
                part.as_ptr() as *mut u8,
                part.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
                flags,
            );
            if rv != CKR_OK {
                return Err(rv);
            }
            all.extend_from_slice(&out[..len as usize]);
        }
    }
    Ok(all)
}

// NIST GCM test case 4 (AES-128, 60-byte plaintext, 20-byte AAD).
const KEY: &str = "feffe9928665731c6d6a8f9467308308";
const IV: &str = "cafebabefacedbaddecaf888";
const PLAIN: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const CIPHER: &str = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091";
const TAG: &str = "5bc94fbc3221a5db94fae95ae7121a47";

#[test]
fn gcm_messages_match_the_nist_answer_whole_and_in_parts() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    let (plain, aad) = (unhex(PLAIN), unhex(AAD));

    assert_eq!(init(&raw, s, true, CKM_AES_GCM, key), CKR_OK);
    assert_eq!(init(&raw, s, true, CKM_AES_GCM, key), CKR_OPERATION_ACTIVE);
    let mut msg = Message::new(&unhex(IV), 0, CKG_NO_GENERATE);
    let ct = one_message(&raw, s, true, &mut msg, &aad, &plain).unwrap();
    assert_eq!(hex::encode(&ct), CIPHER);
    assert_eq!(hex::encode(&msg.tag), TAG);
    let mut parts_msg = Message::new(&unhex(IV), 0, CKG_NO_GENERATE);
    let ct_parts = in_parts(
        &raw,
        s,
        true,
        &mut parts_msg,
        &aad,
        &[&plain[..7], &[], &plain[7..40], &plain[40..]],
    )
    .unwrap();
    assert_eq!(ct_parts, ct);
    assert_eq!(parts_msg.tag, msg.tag);

    // The same messages open, whole and in parts; one flipped bit of the
    // tag, the data or the AAD fails the whole message.
    assert_eq!(init(&raw, s, false, CKM_AES_GCM, key), CKR_OK);
    let mut open = Message::new(&unhex(IV), 0, CKG_NO_GENERATE);
    open.tag.copy_from_slice(&unhex(TAG));
    assert_eq!(
        one_message(&raw, s, false, &mut open, &aad, &ct).unwrap(),
        plain
    );
    assert_eq!(
        in_parts(&raw, s, false, &mut open, &aad, &[&ct[..30], &ct[30..]]).unwrap(),
        plain
    );
    open.tag[15] ^= 1;
    assert_eq!(
        one_message(&raw, s, false, &mut open, &aad, &ct),
        Err(CKR_AEAD_DECRYPT_FAILED)
    );
    open.tag[15] ^= 1;
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert_eq!(
        one_message(&raw, s, false, &mut open, &aad, &bad),
        Err(CKR_AEAD_DECRYPT_FAILED)
    );
    assert_eq!(
        one_message(&raw, s, false, &mut open, &aad[1..], &ct),
        Err(CKR_AEAD_DECRYPT_FAILED)
    );
    // The decrypting side never makes IVs.
    let mut generated = Message::new(&unhex(IV), 0, CKG_GENERATE_RANDOM);
    assert_eq!(
        one_message(&raw, s, false, &mut generated, &aad, &ct),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );

    // After Final, nothing more until another Init.
    let f = raw.f30();
    // SAFETY: plain session calls.
    unsafe {
        assert_eq!((f.C_MessageEncryptFinal.unwrap())(s), CKR_OK);
        assert_eq!((f.C_MessageDecryptFinal.unwrap())(s), CKR_OK);
        assert_eq!(
            (f.C_MessageEncryptFinal.unwrap())(s),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
    assert_eq!(
        one_message(&raw, s, true, &mut msg, &aad, &plain),
        Err(CKR_OPERATION_NOT_INITIALIZED)
    );
}

#[test]
fn generated_ivs_keep_the_fixed_part_and_never_repeat() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    assert_eq!(init(&raw, s, true, CKM_AES_GCM, key), CKR_OK);
    let fixed = unhex("0102030400000000ffffffff");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut msg = Message::new(&fixed, 32, CKG_GENERATE_RANDOM);
        let ct = one_message(&raw, s, true, &mut msg, b"", b"hello").unwrap();
        assert_eq!(&msg.iv[..4], &fixed[..4], "the fixed 32 bits stay");
        assert!(!seen.contains(&msg.iv));
        seen.push(msg.iv.clone());
        // What came back opens with the one-shot GCM of C_Decrypt.
        let sealed = [ct, msg.tag.clone()].concat();
        let opened = raw.crypt(
            s,
            Direction::Decrypt,
            CKM_AES_GCM,
            gcm_param(&msg.iv, b"", 128),
            key,
            &sealed,
        );
        assert_eq!(opened.unwrap(), b"hello");
    }
    // A counter counts in the free bits, message by message.
    for n in 1u8..=3 {
        let mut msg = Message::new(&fixed, 32, CKG_GENERATE_COUNTER);
        one_message(&raw, s, true, &mut msg, b"", b"x").unwrap();
        assert_eq!(
            msg.iv,
            [&fixed[..4], &[0, 0, 0, 0, 0, 0, 0, n][..]].concat()
        );
    }
    // A Begin takes its IV at once; the length query of a one-shot does not
    // use one up.
    let mut begun = Message::new(&fixed, 32, CKG_GENERATE_COUNTER);
    in_parts(&raw, s, true, &mut begun, b"", &[b"a", b"b"]).unwrap();
    assert_eq!(begun.iv[11], 4);

    // A counter never outgrows its free bits (that would repeat an IV), and
    // a generator with no free bits is refused.
    let (key2, fixed94) = (
        raw.create_secret(s, CKK_AES, &[9; 32], &[]).unwrap(),
        unhex("ffffffffffffffffffffffff"),
    );
    assert_eq!(init(&raw, s, true, CKM_AES_GCM, key2), CKR_OPERATION_ACTIVE);
    let f = raw.f30();
    // SAFETY: a plain session call.
    assert_eq!(unsafe { (f.C_MessageEncryptFinal.unwrap())(s) }, CKR_OK);
    assert_eq!(init(&raw, s, true, CKM_AES_GCM, key2), CKR_OK);
    for n in 1u8..=3 {
        let mut msg = Message::new(&fixed94, 94, CKG_GENERATE_COUNTER);
        one_message(&raw, s, true, &mut msg, b"", b"x").unwrap();
        assert_eq!(msg.iv[11], 0xfc | n);
    }
    let mut spent = Message::new(&fixed94, 94, CKG_GENERATE_COUNTER);
    assert_eq!(
        one_message(&raw, s, true, &mut spent, b"", b"x"),
        Err(CKR_KEY_EXHAUSTED)
    );
    let mut none_free = Message::new(&fixed94, 96, CKG_GENERATE_RANDOM);
    assert_eq!(
        one_message(&raw, s, true, &mut none_free, b"", b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    // Short IVs count too.
    let mut short = Message::new(&[0; 4], 0, CKG_GENERATE_COUNTER);
    one_message(&raw, s, true, &mut short, b"", b"x").unwrap();
    assert_eq!(short.iv, [0, 0, 0, 4]);
}

#[test]
fn bad_message_parameters_and_keys_are_refused() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    let hmac = raw
        .create_secret(s, CKK_GENERIC_SECRET, &[7; 32], &[])
        .unwrap();
    assert_eq!(init(&raw, s, true, CKM_AES_CBC, key), CKR_MECHANISM_INVALID);
    assert_eq!(
        init(&raw, s, true, CKM_AES_GCM, hmac),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(init(&raw, s, true, CKM_AES_GCM, key), CKR_OK);
    let mut short_iv = Message::new(&[], 0, CKG_NO_GENERATE);
    assert_eq!(
        one_message(&raw, s, true, &mut short_iv, b"", b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut unknown = Message::new(&[0; 12], 0, 99);
    assert_eq!(
        one_message(&raw, s, true, &mut unknown, b"", b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let mut short_tag = Message::new(&[0; 12], 0, CKG_NO_GENERATE);
    short_tag.params.ulTagBits = 100;
    assert_eq!(
        one_message(&raw, s, true, &mut short_tag, b"", b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    // A tag buffer inside the IV buffer: a generated IV would be written
    // over by the tag (and the module would hold two views of one buffer).
    let mut overlapping = Message::new(&[0; 32], 0, CKG_GENERATE_RANDOM);
    overlapping.params.pTag = overlapping.iv[8..].as_mut_ptr();
    assert_eq!(
        one_message(&raw, s, true, &mut overlapping, b"", b"x"),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    let f = raw.f30();
    let mut len = 0;
    // SAFETY: a wrong parameter length and a null parameter, on purpose.
    unsafe {
        let mut ok = Message::new(&[0; 12], 0, CKG_NO_GENERATE);
        let rv = (f.C_EncryptMessage.unwrap())(
            s,
            ok.ptr(),
            7,
            std::ptr::null_mut(),
            0,
            b"x".as_ptr() as *mut u8,
            1,
            std::ptr::null_mut(),
            &mut len,
        );
        assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID);
        let rv = (f.C_EncryptMessage.unwrap())(
            s,
            std::ptr::null_mut(),
            ok.len(),
            std::ptr::null_mut(),
            0,
            b"x".as_ptr() as *mut u8,
            1,
            std::ptr::null_mut(),
            &mut len,
        );
        assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID);
        // A message begun is finished before another starts.
        assert_eq!(
            (f.C_EncryptMessageBegin.unwrap())(s, ok.ptr(), ok.len(), std::ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            (f.C_EncryptMessageBegin.unwrap())(s, ok.ptr(), ok.len(), std::ptr::null_mut(), 0),
            CKR_OPERATION_ACTIVE
        );
        let rv = (f.C_EncryptMessage.unwrap())(
            s,
            ok.ptr(),
            ok.len(),
            std::ptr::null_mut(),
            0,
            b"x".as_ptr() as *mut u8,
            1,
            std::ptr::null_mut(),
            &mut len,
        );
        assert_eq!(rv, CKR_OPERATION_ACTIVE);
        // A too-small buffer on the last part says how much is needed and
        // keeps the message, which then completes.
        let mut out = [0u8; 1];
        let mut out_len = 1;
        let rv = (f.C_EncryptMessageNext.unwrap())(
            s,
            ok.ptr(),
            ok.len(),
            b"xy".as_ptr() as *mut u8,
            2,
            out.as_mut_ptr(),
            &mut out_len,
            CKF_END_OF_MESSAGE,
        );
        assert_eq!((rv, out_len), (CKR_BUFFER_TOO_SMALL, 2));
        let mut out = [0u8; 2];
        let rv = (f.C_EncryptMessageNext.unwrap())(
            s,
            ok.ptr(),
            ok.len(),
            b"xy".as_ptr() as *mut u8,
            2,
            out.as_mut_ptr(),
            &mut out_len,
            CKF_END_OF_MESSAGE,
        );
        assert_eq!((rv, out_len), (CKR_OK, 2));
        assert_eq!(
            raw.f30().C_EncryptMessageNext.unwrap()(
                s,
                ok.ptr(),
                ok.len(),
                out.as_mut_ptr(),
                1,
                out.as_mut_ptr(),
                &mut out_len,
                0
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
    }
}

#[test]
fn mechanism_info_lists_the_message_operations() {
    let (raw, _s, _dir) = new_token_session();
    let slot = raw.slots()[0];
    let info = |ty| {
        let mut info = CK_MECHANISM_INFO::default();
        // SAFETY: a valid out pointer.
        let rv = unsafe { (raw.f().C_GetMechanismInfo.unwrap())(slot, ty, &mut info) };
        assert_eq!(rv, CKR_OK);
        info.flags
    };
    assert_ne!(info(CKM_AES_GCM) & CKF_MESSAGE_ENCRYPT, 0);
    assert_ne!(info(CKM_AES_GCM) & CKF_MESSAGE_DECRYPT, 0);
    assert_eq!(info(CKM_AES_CBC) & CKF_MESSAGE_ENCRYPT, 0);
    assert_ne!(info(CKM_SHA256_HMAC) & CKF_MESSAGE_SIGN, 0);
    assert_ne!(info(CKM_ECDSA_SHA256) & CKF_MESSAGE_VERIFY, 0);
}

fn verify_message(raw: &Raw, s: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> CK_RV {
    let f = raw.f30();
    // SAFETY: valid buffers and lengths.
    unsafe {
        (f.C_VerifyMessage.unwrap())(
            s,
            std::ptr::null_mut(),
            0,
            data.as_ptr() as *mut u8,
            data.len() as CK_ULONG,
            sig.as_ptr() as *mut u8,
            sig.len() as CK_ULONG,
        )
    }
}

fn sign_verify_init(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    ty: CK_MECHANISM_TYPE,
    sign_key: CK_OBJECT_HANDLE,
    verify_key: CK_OBJECT_HANDLE,
) {
    let f = raw.f30();
    let mut m = mechanism(ty, &mut []);
    // SAFETY: a valid mechanism.
    unsafe {
        assert_eq!((f.C_MessageSignInit.unwrap())(s, &mut m, sign_key), CKR_OK);
        assert_eq!(
            (f.C_MessageVerifyInit.unwrap())(s, &mut m, verify_key),
            CKR_OK
        );
    }
}

#[test]
fn hmac_messages_equal_c_sign_and_verify_whole_and_in_parts() {
    let (raw, s, _dir) = new_token_session();
    let key = raw
        .create_secret(s, CKK_GENERIC_SECRET, b"Jefe", &[])
        .unwrap();
    sign_verify_init(&raw, s, CKM_SHA256_HMAC, key, key);
    let data = b"what do ya want for nothing?";
    let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    for _ in 0..2 {
        let mac = raw.sign_message(s, data).unwrap();
        assert_eq!(hex::encode(&mac), want);
        assert_eq!(verify_message(&raw, s, data, &mac), CKR_OK);
        assert_eq!(
            verify_message(&raw, s, b"what do ya want for something?", &mac),
            CKR_SIGNATURE_INVALID
        );
    }
    let f = raw.f30();
    // SAFETY: valid buffers and lengths; a null length pointer marks a
    // part that is not the last, as the specification says.
    unsafe {
        assert_eq!(
            (f.C_SignMessageBegin.unwrap())(s, std::ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            (f.C_SignMessageNext.unwrap())(
                s,
                std::ptr::null_mut(),
                0,
                data.as_ptr() as *mut u8,
                10,
                std::ptr::null_mut(),
                std::ptr::null_mut()
            ),
            CKR_OK
        );
        let mut mac = vec![0u8; 32];
        let mut len = 32;
        let rest = &data[10..];
        let rv = (f.C_SignMessageNext.unwrap())(
            s,
            std::ptr::null_mut(),
            0,
            rest.as_ptr() as *mut u8,
            rest.len() as CK_ULONG,
            mac.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(rv, CKR_OK);
        assert_eq!(hex::encode(&mac), want);
        assert_eq!(
            (f.C_VerifyMessageBegin.unwrap())(s, std::ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            (f.C_VerifyMessageNext.unwrap())(
                s,
                std::ptr::null_mut(),
                0,
                data.as_ptr() as *mut u8,
                3,
                std::ptr::null_mut(),
                0
            ),
            CKR_OK
        );
        let rv = (f.C_VerifyMessageNext.unwrap())(
            s,
            std::ptr::null_mut(),
            0,
            data[3..].as_ptr() as *mut u8,
            data.len() as CK_ULONG - 3,
            mac.as_mut_ptr(),
            32,
        );
        assert_eq!(rv, CKR_OK);
        // Per-message parameters are not taken by signature mechanisms.
        let rv = (f.C_SignMessage.unwrap())(
            s,
            mac.as_mut_ptr() as CK_VOID_PTR,
            4,
            mac.as_mut_ptr(),
            1,
            std::ptr::null_mut(),
            &mut len,
        );
        assert_eq!(rv, CKR_MECHANISM_PARAM_INVALID);
        assert_eq!((f.C_MessageSignFinal.unwrap())(s), CKR_OK);
        assert_eq!((f.C_MessageVerifyFinal.unwrap())(s), CKR_OK);
    }
    assert_eq!(
        raw.sign_message(s, data),
        Err(CKR_OPERATION_NOT_INITIALIZED)
    );
}

#[test]
fn ecdsa_message_signatures_verify_with_c_verify() {
    let (raw, s, _dir) = new_token_session();
    let p256 = P256_PARAMS.to_vec();
    let (public, private) = raw
        .generate_key_pair(
            s,
            CKM_EC_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, p256), (CKA_VERIFY, TRUE.to_vec())],
            &[(CKA_SIGN, TRUE.to_vec())],
        )
        .unwrap();
    sign_verify_init(&raw, s, CKM_ECDSA_SHA256, private, public);
    let sig = raw.sign_message(s, b"message one").unwrap();
    assert_eq!(sig.len(), 64);
    assert_eq!(
        raw.verify(s, CKM_ECDSA_SHA256, vec![], public, b"message one", &sig),
        CKR_OK
    );
    assert_eq!(verify_message(&raw, s, b"message one", &sig), CKR_OK);
    assert_eq!(
        verify_message(&raw, s, b"message two", &sig),
        CKR_SIGNATURE_INVALID
    );
    // A public key cannot sign.
    let f = raw.f30();
    let mut m = mechanism(CKM_ECDSA_SHA256, &mut []);
    // SAFETY: a valid mechanism.
    unsafe {
        assert_eq!((f.C_MessageSignFinal.unwrap())(s), CKR_OK);
        assert_eq!(
            (f.C_MessageSignInit.unwrap())(s, &mut m, public),
            CKR_KEY_TYPE_INCONSISTENT
        );
    }
}

#[test]
fn gcm_messages_of_several_tag_lengths_in_one_operation_match_c_encrypt() {
    let (raw, s, _dir) = new_token_session();
    let key = raw.create_secret(s, CKK_AES, &unhex(KEY), &[]).unwrap();
    let (plain, aad) = (unhex(PLAIN), unhex(AAD));
    assert_eq!(init(&raw, s, true, CKM_AES_GCM, key), CKR_OK);
    assert_eq!(init(&raw, s, false, CKM_AES_GCM, key), CKR_OK);
    // The operation keeps a built key per tag length: going back and forth
    // between them must give what a single-part C_Encrypt gives.
    for (i, bits) in [128, 96, 64, 128, 96, 32].into_iter().enumerate() {
        let iv = [i as u8 + 1; 12];
        let mut msg = Message::new(&iv, 0, CKG_NO_GENERATE);
        msg.params.ulTagBits = bits;
        let ct = one_message(&raw, s, true, &mut msg, &aad, &plain).unwrap();
        let tag = &msg.tag[..bits as usize / 8];
        let param = gcm_param(&iv, &aad, bits);
        let whole = raw.crypt(s, Direction::Encrypt, CKM_AES_GCM, param, key, &plain);
        assert_eq!(whole.unwrap(), [&ct[..], tag].concat(), "{bits} bits");
        let mut open = Message::new(&iv, 0, CKG_NO_GENERATE);
        open.params.ulTagBits = bits;
        open.tag[..tag.len()].copy_from_slice(tag);
        assert_eq!(
            one_message(&raw, s, false, &mut open, &aad, &ct).unwrap(),
            plain
        );
    }
}

/// ChaCha20-Poly1305 messages: the caller's nonce, the tag apart; each the
/// same as C_Encrypt's sealing, whole and in parts; a forged tag and a GCM
/// parameter refused.
#[test]
fn chacha20_poly1305_messages_match_c_encrypt() {
    let (raw, s, _dir) = new_token_session();
    let slot = raw.slots()[0];
    let info = raw.mechanism_info(slot, CKM_CHACHA20_POLY1305).unwrap();
    assert_ne!(info.flags & CKF_MESSAGE_ENCRYPT, 0);
    assert_ne!(info.flags & CKF_MESSAGE_DECRYPT, 0);
    let key = raw
        .create_secret(
            s,
            CKK_CHACHA20,
            &[7; 32],
            &[(CKA_ENCRYPT, TRUE.to_vec()), (CKA_DECRYPT, TRUE.to_vec())],
        )
        .unwrap();
    let nonce = unhex("070000004041424344454647");
    let (aad, plain) = (b"header".to_vec(), b"a message of some length".to_vec());
    let param = softoken_tests::raw::param_bytes(&CK_SALSA20_CHACHA20_POLY1305_PARAMS {
        pNonce: nonce.as_ptr() as *mut u8,
        ulNonceLen: nonce.len() as CK_ULONG,
        pAAD: aad.as_ptr() as *mut u8,
        ulAADLen: aad.len() as CK_ULONG,
    });
    let sealed = raw
        .crypt(
            s,
            Direction::Encrypt,
            CKM_CHACHA20_POLY1305,
            param,
            key,
            &plain,
        )
        .unwrap();
    let (want, want_tag) = sealed.split_at(plain.len());

    assert_eq!(init(&raw, s, true, CKM_CHACHA20_POLY1305, key), CKR_OK);
    let mut msg = ChaChaMessage::new(&nonce);
    assert_eq!(
        one_message(&raw, s, true, &mut *msg, &aad, &plain).as_deref(),
        Ok(want)
    );
    assert_eq!(msg.tag, want_tag);
    let mut parts_msg = ChaChaMessage::new(&nonce);
    let parts: Vec<&[u8]> = plain.chunks(5).collect();
    assert_eq!(
        in_parts(&raw, s, true, &mut *parts_msg, &aad, &parts).as_deref(),
        Ok(want)
    );
    assert_eq!(parts_msg.tag, want_tag);
    // A GCM parameter is not this operation's.
    let mut gcm = Message::new(&nonce, 0, CKG_NO_GENERATE);
    assert_eq!(
        one_message(&raw, s, true, &mut *gcm, &aad, &plain),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );

    assert_eq!(init(&raw, s, false, CKM_CHACHA20_POLY1305, key), CKR_OK);
    let mut back = ChaChaMessage::new(&nonce);
    back.tag = want_tag.to_vec();
    back.params.pTag = back.tag.as_mut_ptr();
    assert_eq!(
        one_message(&raw, s, false, &mut *back, &aad, want),
        Ok(plain.clone())
    );
    back.tag[0] ^= 1;
    assert_eq!(
        one_message(&raw, s, false, &mut *back, &aad, want),
        Err(CKR_AEAD_DECRYPT_FAILED)
    );
}
