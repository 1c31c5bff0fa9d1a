//! The C function table driven by random call sequences, as a hostile or
//! broken caller would: random handles, templates, mechanisms and their
//! parameters, buffer lengths (too small, length queries) and NULL
//! pointers, and C_Finalize while other threads are inside calls. Every
//! pointer handed over is valid for the length given (a lying length is
//! the caller's own memory error, which no module can detect); everything
//! else is random. Each call must return a code the specification allows
//! for that function (asserted), and never crash, hang or leak. The
//! 3.0 message-based functions are called through the 3.0 function list.
//!
//! Input: a sequence of operations, each one byte choosing the call and
//! the bytes after it choosing its arguments.
#![no_main]

use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pkcs11_sys::*;

/// Codes any call may return (PKCS#11 3.0, 5.1: universal ones, those of
/// functions that use a session or a token, and a bad argument).
const ANY: &[CK_RV] = &[
    CKR_OK,
    CKR_GENERAL_ERROR,
    CKR_HOST_MEMORY,
    CKR_FUNCTION_FAILED,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    CKR_ARGUMENTS_BAD,
    CKR_SESSION_HANDLE_INVALID,
    CKR_SESSION_CLOSED,
    CKR_DEVICE_ERROR,
    CKR_DEVICE_MEMORY,
    CKR_DEVICE_REMOVED,
    CKR_TOKEN_NOT_PRESENT,
    CKR_FUNCTION_CANCELED,
];
const OBJECT: &[CK_RV] = &[
    CKR_ATTRIBUTE_READ_ONLY,
    CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_CURVE_NOT_SUPPORTED,
    CKR_DOMAIN_PARAMS_INVALID,
    CKR_PIN_EXPIRED,
    CKR_SESSION_READ_ONLY,
    CKR_TEMPLATE_INCOMPLETE,
    CKR_TEMPLATE_INCONSISTENT,
    CKR_TOKEN_WRITE_PROTECTED,
    CKR_USER_NOT_LOGGED_IN,
];
const INIT: &[CK_RV] = &[
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_TYPE_INCONSISTENT,
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_OPERATION_ACTIVE,
    CKR_PIN_EXPIRED,
    CKR_USER_NOT_LOGGED_IN,
];
const DATA: &[CK_RV] = &[
    CKR_BUFFER_TOO_SMALL,
    CKR_DATA_INVALID,
    CKR_DATA_LEN_RANGE,
    CKR_ENCRYPTED_DATA_INVALID,
    CKR_ENCRYPTED_DATA_LEN_RANGE,
    CKR_AEAD_DECRYPT_FAILED,
    CKR_OPERATION_NOT_INITIALIZED,
    CKR_USER_NOT_LOGGED_IN,
    CKR_SIGNATURE_INVALID,
    CKR_SIGNATURE_LEN_RANGE,
    CKR_FUNCTION_REJECTED,
    CKR_KEY_SIZE_RANGE,
];
const KEYS: &[CK_RV] = &[
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_TYPE_INCONSISTENT,
    CKR_KEY_NOT_WRAPPABLE,
    CKR_KEY_UNEXTRACTABLE,
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_OPERATION_ACTIVE,
    CKR_BUFFER_TOO_SMALL,
    CKR_WRAPPING_KEY_HANDLE_INVALID,
    CKR_WRAPPING_KEY_SIZE_RANGE,
    CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    CKR_UNWRAPPING_KEY_SIZE_RANGE,
    CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_WRAPPED_KEY_INVALID,
    CKR_WRAPPED_KEY_LEN_RANGE,
];

/// A message's own parameter (its IV, nonce and tag) is a mechanism
/// parameter, and a message counter can run out (the mechanisms
/// specification's message-based AEAD), besides DATA's codes.
const MESSAGE: &[CK_RV] = &[
    CKR_MECHANISM_PARAM_INVALID,
    CKR_KEY_EXHAUSTED,
    CKR_OPERATION_ACTIVE,
];

fn check(call: &str, rv: CK_RV, extra: &[&[CK_RV]]) {
    let allowed = ANY.contains(&rv) || extra.iter().any(|set| set.contains(&rv));
    assert!(
        allowed,
        "{call} returned {rv:#x}, which the specification does not allow it"
    );
}

/// The fuzz input, read from the front; zeros when it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.byte() as usize).min(max).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.byte() as usize % from.len()]
    }
    fn ulong(&mut self) -> CK_ULONG {
        match self.byte() % 4 {
            0 => self.byte() as CK_ULONG,
            1 => CK_ULONG::MAX - self.byte() as CK_ULONG,
            2 => 1 << (self.byte() % 64),
            _ => (0..8).fold(0, |a, _| a << 8 | self.byte() as CK_ULONG),
        }
    }
    fn empty(&self) -> bool {
        self.0.is_empty()
    }
}

const ATTRS: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_VALUE,
    CKA_VALUE_LEN,
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
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_CERTIFICATE_TYPE,
    CKA_SUBJECT,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_MODIFIABLE,
    CKA_DESTROYABLE,
    CKA_COPYABLE,
    CKA_WRAP_TEMPLATE,
    CKA_ALLOWED_MECHANISMS,
    0xce53_4351,
];

/// Values that make sense somewhere: classes, key types, booleans, curves.
fn value(input: &mut Input) -> Vec<u8> {
    let ul = |v: CK_ULONG| v.to_ne_bytes().to_vec();
    match input.byte() % 8 {
        0 => vec![input.byte() & 1],
        1 => ul(input.pick(&[
            CKO_DATA,
            CKO_CERTIFICATE,
            CKO_PUBLIC_KEY,
            CKO_PRIVATE_KEY,
            CKO_SECRET_KEY,
        ])),
        2 => ul(input.pick(&[
            CKK_RSA,
            CKK_EC,
            CKK_AES,
            CKK_GENERIC_SECRET,
            CKK_EC_EDWARDS,
            CKK_EC_MONTGOMERY,
            CKK_SHA256_HMAC,
            CKK_CHACHA20,
            CKK_DES3,
            CKK_DH,
            CKK_DSA,
        ])),
        3 => input
            .pick(&[
                &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07][..],
                &[0x06, 0x03, 0x2b, 0x65, 0x70],
                &[0x06, 0x03, 0x2b, 0x65, 0x6e],
                &[0x13, 0x07, b'e', b'd', b'2', b'5', b'5', b'1', b'9'],
            ])
            .to_vec(),
        4 => ul(input.pick(&[0, 1, 16, 24, 32, 64, 512, 1024, 2048, 65537])),
        _ => input.bytes(300),
    }
}

/// A template and the buffers its pointers refer to.
struct Template {
    attrs: Vec<CK_ATTRIBUTE>,
    _values: Vec<Vec<u8>>,
}

impl Template {
    /// For writing: values to give. For reading: buffers (or NULL) to fill.
    fn new(input: &mut Input, reading: bool) -> Template {
        let n = input.byte() % 8;
        let mut values = Vec::new();
        let mut attrs = Vec::new();
        for _ in 0..n {
            let ty = input.pick(ATTRS);
            let v = if reading {
                vec![0u8; input.pick(&[0usize, 1, 4, 8, 16, 32, 64, 256, 600])]
            } else {
                value(input)
            };
            let null = input.byte() % 16 == 0;
            attrs.push(CK_ATTRIBUTE {
                type_: ty,
                pValue: if null || (reading && v.is_empty() && input.byte() & 1 == 0) {
                    std::ptr::null_mut()
                } else {
                    v.as_ptr() as *mut c_void
                },
                // A NULL value with a length claims nothing to read.
                ulValueLen: if null {
                    input.ulong()
                } else {
                    v.len() as CK_ULONG
                },
            });
            values.push(v);
        }
        Template {
            attrs,
            _values: values,
        }
    }
    fn ptr(&mut self) -> CK_ATTRIBUTE_PTR {
        if self.attrs.is_empty() {
            std::ptr::null_mut()
        } else {
            self.attrs.as_mut_ptr()
        }
    }
    fn len(&self) -> CK_ULONG {
        self.attrs.len() as CK_ULONG
    }
}

/// A buffer a parameter points at (or NULL: then with a length), kept in
/// `pointed` for as long as the parameter lives.
fn buffer(input: &mut Input, pointed: &mut Vec<Vec<u8>>) -> (u64, u64) {
    if input.byte() % 16 == 0 {
        return (0, input.byte() as u64);
    }
    let b = input.bytes(128);
    let at = (b.as_ptr() as u64, b.len() as u64);
    pointed.push(b);
    at
}

/// A buffer of `len` bytes the module may write (IVs it generates, tags).
fn writable(len: usize, pointed: &mut Vec<Vec<u8>>) -> u64 {
    let b = vec![0u8; len];
    let at = b.as_ptr() as u64;
    pointed.push(b);
    at
}

/// A parameter made of words (a structure of CK_ULONGs and pointers),
/// now and then a byte too long or too short: never a word, which could
/// turn a structure into another layout's (GCM's older one is a word
/// shorter) with a number where a pointer goes.
fn words_param(input: &mut Input, words: Option<Vec<u64>>, random_len: usize) -> Vec<u8> {
    let mut param = match words {
        Some(w) => w.iter().flat_map(|w| w.to_ne_bytes()).collect(),
        None => input.bytes(random_len),
    };
    match input.byte() % 16 {
        0 => param.push(0),
        1 => {
            param.pop();
        }
        _ => {}
    }
    param
}

/// A mechanism, its parameter and whatever the parameter points at.
struct Mech {
    m: CK_MECHANISM,
    _param: Vec<u8>,
    _pointed: Vec<Vec<u8>>,
    _data: Vec<CK_PRF_DATA_PARAM>,
    _derived: Vec<CK_DERIVED_KEY>,
    _derived_templates: Vec<Template>,
    /// Where SP 800-108's additional keys' handles are written.
    derived_handles: Vec<CK_OBJECT_HANDLE>,
}

/// A message's parameter for the message-based functions: the AEADs'
/// per-message structures with valid IV and tag buffers, random bytes, or
/// NULL with a length.
struct MessageParam {
    bytes: Vec<u8>,
    null: bool,
    _pointed: Vec<Vec<u8>>,
}

impl MessageParam {
    fn new(input: &mut Input) -> MessageParam {
        let mut pointed = Vec::new();
        let kind = input.byte() % 5;
        let words = match kind {
            0 => {
                // CK_GCM_MESSAGE_PARAMS
                let iv_len = input.pick(&[12usize, 16, 1, 0, 128]);
                Some(vec![
                    writable(iv_len, &mut pointed),
                    iv_len as u64,
                    input.pick(&[0, 32, 64, 95, 96, 1000]),
                    input.pick(&[
                        CKG_NO_GENERATE,
                        CKG_GENERATE,
                        CKG_GENERATE_COUNTER,
                        CKG_GENERATE_RANDOM,
                        9,
                    ]),
                    writable(256, &mut pointed),
                    input.pick(&[0, 96, 128, 129, 2048]),
                ])
            }
            1 => {
                // CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS (a 16-byte tag)
                let (nonce, nonce_len) = buffer(input, &mut pointed);
                Some(vec![nonce, nonce_len, writable(16, &mut pointed)])
            }
            2 => {
                // CK_CCM_MESSAGE_PARAMS
                let nonce_len = input.pick(&[7usize, 13, 0, 64]);
                Some(vec![
                    input.byte() as u64,
                    writable(nonce_len, &mut pointed),
                    nonce_len as u64,
                    input.pick(&[0, 8, 200]),
                    input.pick(&[CKG_NO_GENERATE, CKG_GENERATE_COUNTER, 9]),
                    writable(16, &mut pointed),
                    input.pick(&[4, 16, 17, 0]),
                ])
            }
            _ => None,
        };
        MessageParam {
            bytes: words_param(input, words, 64),
            null: kind == 4,
            _pointed: pointed,
        }
    }
    fn ptr(&mut self) -> CK_VOID_PTR {
        if self.null || self.bytes.is_empty() {
            std::ptr::null_mut()
        } else {
            self.bytes.as_mut_ptr() as CK_VOID_PTR
        }
    }
    fn len(&self, input: &mut Input) -> CK_ULONG {
        if self.null {
            input.byte() as CK_ULONG
        } else {
            self.bytes.len() as CK_ULONG
        }
    }
}

const MECHS: &[CK_MECHANISM_TYPE] = &[
    CKM_AES_GCM,
    CKM_RSA_PKCS_OAEP,
    CKM_ECDH1_DERIVE,
    CKM_ECDH1_COFACTOR_DERIVE,
    CKM_CONCATENATE_BASE_AND_DATA,
    CKM_CONCATENATE_DATA_AND_BASE,
    CKM_XOR_BASE_AND_DATA,
    CKM_AES_ECB_ENCRYPT_DATA,
    CKM_AES_CBC_ENCRYPT_DATA,
    CKM_HKDF_DERIVE,
    CKM_HKDF_DATA,
    CKM_PKCS5_PBKD2,
    CKM_SP800_108_COUNTER_KDF,
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_ECB,
    CKM_AES_CTR,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_PAD,
    CKM_AES_CMAC,
    CKM_AES_KEY_GEN,
    CKM_GENERIC_SECRET_KEY_GEN,
    CKM_SHA256,
    CKM_SHA256_HMAC,
    CKM_SHA256_HMAC_GENERAL,
    CKM_SHA3_256,
    CKM_MD5,
    CKM_RSA_PKCS,
    CKM_RSA_X_509,
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_EC_KEY_PAIR_GEN,
    CKM_ECDSA,
    CKM_ECDSA_SHA256,
    CKM_EC_EDWARDS_KEY_PAIR_GEN,
    CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
    CKM_EDDSA,
    CKM_CONCATENATE_BASE_AND_KEY,
    CKM_EXTRACT_KEY_FROM_KEY,
    CKM_CHACHA20_POLY1305,
    CKM_CHACHA20,
    CKM_CHACHA20_KEY_GEN,
    CKM_AES_CCM,
    CKM_AES_CTS,
    CKM_AES_XCBC_MAC,
    CKM_DES3_KEY_GEN,
    CKM_DES3_CBC_PAD,
    CKM_DES3_CMAC,
    CKM_DES3_ECB_ENCRYPT_DATA,
    CKM_DH_PKCS_KEY_PAIR_GEN,
    CKM_DH_PKCS_DERIVE,
    // Not the parameter generations: a new group takes seconds (a safe
    // prime for DH, longer), past the fuzzer's timeout, by design.
    CKM_DSA_KEY_PAIR_GEN,
    CKM_DSA,
    CKM_DSA_SHA256,
    CKM_TLS_PRE_MASTER_KEY_GEN,
    CKM_TLS12_MASTER_KEY_DERIVE,
    CKM_TLS12_MASTER_KEY_DERIVE_DH,
    CKM_TLS12_KDF,
    CKM_TLS12_KEY_AND_MAC_DERIVE,
    CKM_TLS12_KEY_SAFE_DERIVE,
    CKM_TLS_MAC,
];

impl Mech {
    fn new(input: &mut Input) -> Mech {
        let ty = if input.byte() % 8 == 0 {
            input.ulong()
        } else {
            input.pick(MECHS)
        };
        let mut pointed: Vec<Vec<u8>> = Vec::new();
        let mut data = Vec::new();
        let mut derived = Vec::new();
        let mut derived_templates = Vec::new();
        let mut derived_handles = Vec::new();
        let words: Option<Vec<u64>> = match ty {
            CKM_AES_GCM => {
                let (iv, iv_len) = buffer(input, &mut pointed);
                let (aad, aad_len) = buffer(input, &mut pointed);
                Some(vec![
                    iv,
                    iv_len,
                    input.ulong(),
                    aad,
                    aad_len,
                    input.pick(&[0, 96, 128, 129]),
                ])
            }
            CKM_RSA_PKCS_OAEP => {
                let (label, len) = buffer(input, &mut pointed);
                let hash = input.pick(&[CKM_SHA_1, CKM_SHA256, 0]);
                Some(vec![
                    hash,
                    input.pick(&[CKG_MGF1_SHA1, CKG_MGF1_SHA256, 9]),
                    input.pick(&[0, 1]),
                    label,
                    len,
                ])
            }
            CKM_TLS12_MASTER_KEY_DERIVE | CKM_TLS12_MASTER_KEY_DERIVE_DH => {
                let (client, client_len) = buffer(input, &mut pointed);
                let (server, server_len) = buffer(input, &mut pointed);
                let version = if input.byte() % 2 == 0 {
                    writable(2, &mut pointed)
                } else {
                    0
                };
                Some(vec![
                    client,
                    client_len,
                    server,
                    server_len,
                    version,
                    input.pick(&[CKM_SHA256, CKM_SHA384, CKM_TLS_PRF]),
                ])
            }
            CKM_TLS12_KDF => {
                let (label, label_len) = buffer(input, &mut pointed);
                let (client, client_len) = buffer(input, &mut pointed);
                let (server, server_len) = buffer(input, &mut pointed);
                let (context, context_len) = buffer(input, &mut pointed);
                Some(vec![
                    input.pick(&[CKM_SHA256, CKM_SHA512, CKM_MD5]),
                    label,
                    label_len,
                    client,
                    client_len,
                    server,
                    server_len,
                    context,
                    context_len,
                ])
            }
            CKM_TLS12_KEY_AND_MAC_DERIVE | CKM_TLS12_KEY_SAFE_DERIVE => {
                let (client, client_len) = buffer(input, &mut pointed);
                let (server, server_len) = buffer(input, &mut pointed);
                // CK_SSL3_KEY_MAT_OUT: four handles the module writes, then
                // two IV buffers of 64 bytes.
                let ivs = [writable(64, &mut pointed), writable(64, &mut pointed)];
                let returned: Vec<u8> = [0, 0, 0, 0, ivs[0], ivs[1]]
                    .iter()
                    .flat_map(|w: &u64| w.to_ne_bytes())
                    .collect();
                let at = returned.as_ptr() as u64;
                pointed.push(returned);
                Some(vec![
                    input.pick(&[0, 160, 256, 7]),
                    input.pick(&[0, 128, 256, 9]),
                    input.pick(&[0, 32, 128, 12]),
                    input.pick(&[0, 1]),
                    client,
                    client_len,
                    server,
                    server_len,
                    at,
                    input.pick(&[CKM_SHA256, CKM_SHA384, CKM_TLS_PRF]),
                ])
            }
            CKM_TLS_MAC => Some(vec![
                input.pick(&[CKM_SHA256, CKM_SHA384, CKM_TLS_PRF]),
                input.pick(&[12, 0, 32, 1 << 20]),
                input.pick(&[1, 2, 3]),
            ]),
            CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
                let (shared, shared_len) = buffer(input, &mut pointed);
                let (public, public_len) = buffer(input, &mut pointed);
                Some(vec![
                    input.pick(&[CKD_NULL, CKD_SHA256_KDF, 77]),
                    shared_len,
                    shared,
                    public_len,
                    public,
                ])
            }
            CKM_CONCATENATE_BASE_AND_DATA
            | CKM_CONCATENATE_DATA_AND_BASE
            | CKM_XOR_BASE_AND_DATA
            | CKM_AES_ECB_ENCRYPT_DATA
            | CKM_DES3_ECB_ENCRYPT_DATA => {
                let (d, len) = buffer(input, &mut pointed);
                Some(vec![d, len])
            }
            CKM_AES_CBC_ENCRYPT_DATA => {
                let iv = input.bytes(16);
                let mut iv_words = [0u8; 16];
                iv_words[..iv.len()].copy_from_slice(&iv);
                let (d, len) = buffer(input, &mut pointed);
                Some(vec![
                    u64::from_ne_bytes(iv_words[..8].try_into().unwrap()),
                    u64::from_ne_bytes(iv_words[8..].try_into().unwrap()),
                    d,
                    len,
                ])
            }
            CKM_HKDF_DERIVE | CKM_HKDF_DATA => {
                let flags = u64::from(input.byte() & 1) | u64::from(input.byte() & 1) << 8;
                let (salt, salt_len) = buffer(input, &mut pointed);
                let (info, info_len) = buffer(input, &mut pointed);
                Some(vec![
                    flags,
                    input.pick(&[CKM_SHA256, CKM_SHA_1, CKM_SHA512, 0]),
                    input.pick(&[0, CKF_HKDF_SALT_NULL, CKF_HKDF_SALT_DATA, CKF_HKDF_SALT_KEY]),
                    salt,
                    salt_len,
                    input.byte() as u64,
                    info,
                    info_len,
                ])
            }
            CKM_PKCS5_PBKD2 => {
                let (salt, salt_len) = buffer(input, &mut pointed);
                let (pw, pw_len) = buffer(input, &mut pointed);
                Some(vec![
                    input.pick(&[CKZ_SALT_SPECIFIED, 0]),
                    salt,
                    salt_len,
                    // Few iterations: the caller's own work is not the point.
                    input.pick(&[0, 1, 2, 100]),
                    input.pick(&[CKP_PKCS5_PBKD2_HMAC_SHA256, CKP_PKCS5_PBKD2_HMAC_SHA1, 99]),
                    0,
                    0,
                    pw,
                    pw_len,
                ])
            }
            CKM_CHACHA20_POLY1305 => {
                let (nonce, nonce_len) = buffer(input, &mut pointed);
                let (aad, aad_len) = buffer(input, &mut pointed);
                Some(vec![nonce, nonce_len, aad, aad_len])
            }
            CKM_CHACHA20 => {
                // Bit counts within the 16-byte buffers.
                Some(vec![
                    writable(16, &mut pointed),
                    input.pick(&[32, 64, 7, 0]),
                    writable(16, &mut pointed),
                    input.pick(&[96, 64, 128, 0, 33]),
                ])
            }
            CKM_AES_CCM => {
                let (nonce, nonce_len) = buffer(input, &mut pointed);
                let (aad, aad_len) = buffer(input, &mut pointed);
                Some(vec![
                    input.byte() as u64,
                    nonce,
                    nonce_len,
                    aad,
                    aad_len,
                    input.pick(&[4, 16, 5, 0]),
                ])
            }
            CKM_SP800_108_COUNTER_KDF => {
                for _ in 0..input.byte() % 3 {
                    let (v, len) = buffer(input, &mut pointed);
                    data.push(CK_PRF_DATA_PARAM {
                        type_: input.pick(&[
                            CK_SP800_108_ITERATION_VARIABLE,
                            CK_SP800_108_BYTE_ARRAY,
                            CK_SP800_108_DKM_LENGTH,
                            CK_SP800_108_COUNTER,
                            77,
                        ]),
                        pValue: v as CK_VOID_PTR,
                        ulValueLen: len,
                    });
                }
                let params = if data.is_empty() {
                    0
                } else {
                    data.as_ptr() as u64
                };
                // Additional derived keys: each with a template and a
                // handle to write (or NULL there).
                let extra = input.byte() % 4;
                derived_handles = vec![0; extra as usize];
                for i in 0..extra as usize {
                    derived_templates.push(Template::new(input, false));
                    let t = derived_templates.last_mut().unwrap();
                    let handle = if input.byte() % 16 == 0 {
                        std::ptr::null_mut()
                    } else {
                        &mut derived_handles[i] as *mut CK_OBJECT_HANDLE
                    };
                    derived.push(CK_DERIVED_KEY {
                        pTemplate: t.ptr(),
                        ulAttributeCount: t.len(),
                        phKey: handle,
                    });
                }
                let keys = if derived.is_empty() {
                    0
                } else {
                    derived.as_mut_ptr() as u64
                };
                Some(vec![
                    input.pick(&[CKM_SHA256_HMAC, CKM_AES_CMAC, 5]),
                    data.len() as u64,
                    params,
                    derived.len() as u64,
                    keys,
                ])
            }
            _ => None,
        };
        let mut param = words_param(input, words, 64);
        let null = input.byte() % 16 == 0;
        Mech {
            m: CK_MECHANISM {
                mechanism: ty,
                pParameter: if null || param.is_empty() {
                    std::ptr::null_mut()
                } else {
                    param.as_mut_ptr() as *mut c_void
                },
                ulParameterLen: if null {
                    input.byte() as CK_ULONG
                } else {
                    param.len() as CK_ULONG
                },
            },
            _param: param,
            _pointed: pointed,
            _data: data,
            _derived: derived,
            _derived_templates: derived_templates,
            derived_handles,
        }
    }
}

struct State {
    f: &'static CK_FUNCTION_LIST,
    /// The same module's 3.0 list, for the message-based functions.
    f3: &'static CK_FUNCTION_LIST_3_0,
    sessions: Vec<CK_SESSION_HANDLE>,
    objects: Vec<CK_OBJECT_HANDLE>,
}

impl State {
    fn session(&self, input: &mut Input) -> CK_SESSION_HANDLE {
        match input.byte() % 8 {
            0 => input.ulong(),
            _ if self.sessions.is_empty() => 1,
            n => self.sessions[n as usize % self.sessions.len()],
        }
    }
    fn object(&self, input: &mut Input) -> CK_OBJECT_HANDLE {
        match input.byte() % 8 {
            0 => input.ulong(),
            _ if self.objects.is_empty() => 1,
            n => self.objects[(n as usize + input.byte() as usize) % self.objects.len()],
        }
    }
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("softoken-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn params() -> std::ffi::CString {
    std::ffi::CString::new(format!("configdir='sql:{}' flags=", dir().display())).unwrap()
}

fn initialize(f: &CK_FUNCTION_LIST) -> CK_RV {
    let p = params();
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: p.as_ptr() as *mut c_void,
    };
    // SAFETY: valid arguments for the call.
    unsafe { f.C_Initialize.unwrap()(&mut args as *mut _ as *mut c_void) }
}

/// An output buffer: NULL (a length query), too small, or large enough.
fn out_buffer(input: &mut Input) -> (Vec<u8>, bool) {
    match input.byte() % 4 {
        0 => (Vec::new(), true),
        1 => (vec![0; input.byte() as usize % 16], false),
        _ => (vec![0; 1024], false),
    }
}

fn ptr(buf: &mut [u8], null: bool) -> CK_BYTE_PTR {
    if null {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    }
}

fn step(st: &mut State, input: &mut Input) {
    let f = st.f;
    let op = input.byte() % 26;
    // SAFETY (every call below): each pointer is NULL or valid for the
    // length passed beside it, for the call's duration.
    unsafe {
        match op {
            0 => check(
                "C_Initialize",
                initialize(f),
                &[&[CKR_CRYPTOKI_ALREADY_INITIALIZED]],
            ),
            1 => {
                check(
                    "C_Finalize",
                    f.C_Finalize.unwrap()(std::ptr::null_mut()),
                    &[],
                );
                st.sessions.clear();
                st.objects.clear();
            }
            2 => {
                let mut slots = [0; 4];
                let mut n = input.byte() as CK_ULONG % 5;
                let p = if n == 0 {
                    std::ptr::null_mut()
                } else {
                    slots.as_mut_ptr()
                };
                check(
                    "C_GetSlotList",
                    f.C_GetSlotList.unwrap()(input.byte() & 1, p, &mut n),
                    &[&[CKR_BUFFER_TOO_SMALL]],
                );
            }
            3 => {
                let mut info = CK_TOKEN_INFO::default();
                let slot = input.pick(&[2, 0, 3, CK_ULONG::MAX]);
                check(
                    "C_GetTokenInfo",
                    f.C_GetTokenInfo.unwrap()(slot, &mut info),
                    &[&[CKR_SLOT_ID_INVALID, CKR_TOKEN_NOT_RECOGNIZED]],
                );
            }
            4 => {
                let mut s = 0;
                let odd = input.ulong();
                let flags = input.pick(&[
                    CKF_SERIAL_SESSION,
                    CKF_SERIAL_SESSION | CKF_RW_SESSION,
                    0,
                    odd,
                ]);
                let rv = f.C_OpenSession.unwrap()(
                    input.pick(&[2, 2, 2, 9]),
                    flags,
                    std::ptr::null_mut(),
                    None,
                    &mut s,
                );
                check(
                    "C_OpenSession",
                    rv,
                    &[&[
                        CKR_SESSION_COUNT,
                        CKR_SESSION_PARALLEL_NOT_SUPPORTED,
                        CKR_SESSION_READ_WRITE_SO_EXISTS,
                        CKR_SLOT_ID_INVALID,
                        CKR_TOKEN_NOT_RECOGNIZED,
                        CKR_TOKEN_WRITE_PROTECTED,
                    ]],
                );
                if rv == CKR_OK {
                    st.sessions.push(s);
                }
            }
            5 => check(
                "C_CloseSession",
                f.C_CloseSession.unwrap()(st.session(input)),
                &[],
            ),
            6 => {
                let pin = input.pick(&[&b""[..], b"pin", b"\xff\x00"]);
                let user = input.pick(&[CKU_USER, CKU_SO, CKU_CONTEXT_SPECIFIC, 7]);
                let p = if pin.is_empty() {
                    std::ptr::null_mut()
                } else {
                    pin.as_ptr() as *mut u8
                };
                check(
                    "C_Login",
                    f.C_Login.unwrap()(st.session(input), user, p, pin.len() as CK_ULONG),
                    &[&[
                        CKR_OPERATION_NOT_INITIALIZED,
                        CKR_PIN_INCORRECT,
                        CKR_PIN_LOCKED,
                        CKR_SESSION_READ_ONLY_EXISTS,
                        CKR_USER_ALREADY_LOGGED_IN,
                        CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
                        CKR_USER_PIN_NOT_INITIALIZED,
                        CKR_USER_TOO_MANY_TYPES,
                        CKR_USER_TYPE_INVALID,
                        CKR_PIN_LEN_RANGE,
                    ]],
                );
            }
            7 => check(
                "C_Logout",
                f.C_Logout.unwrap()(st.session(input)),
                &[&[CKR_USER_NOT_LOGGED_IN]],
            ),
            8 => {
                let mut t = Template::new(input, false);
                let mut h = 0;
                let rv = f.C_CreateObject.unwrap()(st.session(input), t.ptr(), t.len(), &mut h);
                check("C_CreateObject", rv, &[OBJECT]);
                if rv == CKR_OK {
                    st.objects.push(h);
                }
            }
            9 => check(
                "C_DestroyObject",
                f.C_DestroyObject.unwrap()(st.session(input), st.object(input)),
                &[&[
                    CKR_ACTION_PROHIBITED,
                    CKR_OBJECT_HANDLE_INVALID,
                    CKR_PIN_EXPIRED,
                    CKR_SESSION_READ_ONLY,
                    CKR_TOKEN_WRITE_PROTECTED,
                    CKR_USER_NOT_LOGGED_IN,
                ]],
            ),
            10 => {
                let mut t = Template::new(input, true);
                check(
                    "C_GetAttributeValue",
                    f.C_GetAttributeValue.unwrap()(
                        st.session(input),
                        st.object(input),
                        t.ptr(),
                        t.len(),
                    ),
                    &[&[
                        CKR_ATTRIBUTE_SENSITIVE,
                        CKR_ATTRIBUTE_TYPE_INVALID,
                        CKR_BUFFER_TOO_SMALL,
                        CKR_OBJECT_HANDLE_INVALID,
                    ]],
                );
            }
            11 => {
                let mut t = Template::new(input, false);
                check(
                    "C_SetAttributeValue",
                    f.C_SetAttributeValue.unwrap()(
                        st.session(input),
                        st.object(input),
                        t.ptr(),
                        t.len(),
                    ),
                    &[OBJECT, &[CKR_ACTION_PROHIBITED, CKR_OBJECT_HANDLE_INVALID]],
                );
            }
            12 => {
                let s = st.session(input);
                let mut t = Template::new(input, false);
                check(
                    "C_FindObjectsInit",
                    f.C_FindObjectsInit.unwrap()(s, t.ptr(), t.len()),
                    &[&[
                        CKR_ATTRIBUTE_TYPE_INVALID,
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        CKR_OPERATION_ACTIVE,
                        CKR_PIN_EXPIRED,
                    ]],
                );
                let mut found = [0; 8];
                let mut n = 0;
                let max = input.byte() as CK_ULONG % 9;
                let rv = f.C_FindObjects.unwrap()(s, found.as_mut_ptr(), max, &mut n);
                check("C_FindObjects", rv, &[&[CKR_OPERATION_NOT_INITIALIZED]]);
                if rv == CKR_OK {
                    st.objects.extend(&found[..n.min(8) as usize]);
                }
                if input.byte() & 1 == 0 {
                    check(
                        "C_FindObjectsFinal",
                        f.C_FindObjectsFinal.unwrap()(s),
                        &[&[CKR_OPERATION_NOT_INITIALIZED]],
                    );
                }
            }
            13 | 14 => {
                let mut m = Mech::new(input);
                let s = st.session(input);
                let mut pubt = Template::new(input, false);
                let mut privt = Template::new(input, false);
                let (mut a, mut b) = (0, 0);
                let (name, rv) = if op == 13 {
                    (
                        "C_GenerateKey",
                        f.C_GenerateKey.unwrap()(s, &mut m.m, pubt.ptr(), pubt.len(), &mut a),
                    )
                } else {
                    // RSA key sizes the caller names may be large: only
                    // the templates the fuzzer makes (up to 2048 bits).
                    (
                        "C_GenerateKeyPair",
                        f.C_GenerateKeyPair.unwrap()(
                            s,
                            &mut m.m,
                            pubt.ptr(),
                            pubt.len(),
                            privt.ptr(),
                            privt.len(),
                            &mut a,
                            &mut b,
                        ),
                    )
                };
                check(
                    name,
                    rv,
                    &[
                        OBJECT,
                        &[
                            CKR_MECHANISM_INVALID,
                            CKR_MECHANISM_PARAM_INVALID,
                            CKR_OPERATION_ACTIVE,
                            CKR_KEY_SIZE_RANGE,
                        ],
                    ],
                );
                if rv == CKR_OK {
                    st.objects.push(a);
                    if op == 14 {
                        st.objects.push(b);
                    }
                }
            }
            15..=19 => {
                let mut m = Mech::new(input);
                let s = st.session(input);
                let key = st.object(input);
                let (name, rv) = match op {
                    15 => ("C_EncryptInit", f.C_EncryptInit.unwrap()(s, &mut m.m, key)),
                    16 => ("C_DecryptInit", f.C_DecryptInit.unwrap()(s, &mut m.m, key)),
                    17 => ("C_SignInit", f.C_SignInit.unwrap()(s, &mut m.m, key)),
                    18 => ("C_VerifyInit", f.C_VerifyInit.unwrap()(s, &mut m.m, key)),
                    _ => ("C_DigestInit", f.C_DigestInit.unwrap()(s, &mut m.m)),
                };
                check(name, rv, &[INIT]);
                let mut data = input.bytes(200);
                let (mut out, null) = out_buffer(input);
                let mut n = out.len() as CK_ULONG;
                let dp = if data.is_empty() {
                    std::ptr::null_mut()
                } else {
                    data.as_mut_ptr()
                };
                let (name, rv) = match (op, input.byte() % 3) {
                    (15, 0) => (
                        "C_Encrypt",
                        f.C_Encrypt.unwrap()(
                            s,
                            dp,
                            data.len() as CK_ULONG,
                            ptr(&mut out, null),
                            &mut n,
                        ),
                    ),
                    (15, 1) => (
                        "C_EncryptUpdate",
                        f.C_EncryptUpdate.unwrap()(
                            s,
                            dp,
                            data.len() as CK_ULONG,
                            ptr(&mut out, null),
                            &mut n,
                        ),
                    ),
                    (15, _) => (
                        "C_EncryptFinal",
                        f.C_EncryptFinal.unwrap()(s, ptr(&mut out, null), &mut n),
                    ),
                    (16, 0) => (
                        "C_Decrypt",
                        f.C_Decrypt.unwrap()(
                            s,
                            dp,
                            data.len() as CK_ULONG,
                            ptr(&mut out, null),
                            &mut n,
                        ),
                    ),
                    (16, 1) => (
                        "C_DecryptUpdate",
                        f.C_DecryptUpdate.unwrap()(
                            s,
                            dp,
                            data.len() as CK_ULONG,
                            ptr(&mut out, null),
                            &mut n,
                        ),
                    ),
                    (16, _) => (
                        "C_DecryptFinal",
                        f.C_DecryptFinal.unwrap()(s, ptr(&mut out, null), &mut n),
                    ),
                    (17, 0) => (
                        "C_Sign",
                        f.C_Sign.unwrap()(
                            s,
                            dp,
                            data.len() as CK_ULONG,
                            ptr(&mut out, null),
                            &mut n,
                        ),
                    ),
                    (17, 1) => (
                        "C_SignUpdate",
                        f.C_SignUpdate.unwrap()(s, dp, data.len() as CK_ULONG),
                    ),
                    (17, _) => (
                        "C_SignFinal",
                        f.C_SignFinal.unwrap()(s, ptr(&mut out, null), &mut n),
                    ),
                    (18, 0) => (
                        "C_Verify",
                        f.C_Verify.unwrap()(
                            s,
                            dp,
                            data.len() as CK_ULONG,
                            out.as_mut_ptr(),
                            out.len() as CK_ULONG,
                        ),
                    ),
                    (18, 1) => (
                        "C_VerifyUpdate",
                        f.C_VerifyUpdate.unwrap()(s, dp, data.len() as CK_ULONG),
                    ),
                    (18, _) => (
                        "C_VerifyFinal",
                        f.C_VerifyFinal.unwrap()(s, out.as_mut_ptr(), out.len() as CK_ULONG),
                    ),
                    (_, 0) => (
                        "C_Digest",
                        f.C_Digest.unwrap()(
                            s,
                            dp,
                            data.len() as CK_ULONG,
                            ptr(&mut out, null),
                            &mut n,
                        ),
                    ),
                    (_, 1) => (
                        "C_DigestUpdate",
                        f.C_DigestUpdate.unwrap()(s, dp, data.len() as CK_ULONG),
                    ),
                    (_, _) => (
                        "C_DigestFinal",
                        f.C_DigestFinal.unwrap()(s, ptr(&mut out, null), &mut n),
                    ),
                };
                check(name, rv, &[DATA]);
            }
            20 => {
                let mut m = Mech::new(input);
                let (mut out, null) = out_buffer(input);
                let mut n = out.len() as CK_ULONG;
                check(
                    "C_WrapKey",
                    f.C_WrapKey.unwrap()(
                        st.session(input),
                        &mut m.m,
                        st.object(input),
                        st.object(input),
                        ptr(&mut out, null),
                        &mut n,
                    ),
                    &[KEYS, &[CKR_PIN_EXPIRED, CKR_USER_NOT_LOGGED_IN]],
                );
            }
            21 | 22 => {
                let mut m = Mech::new(input);
                let s = st.session(input);
                let base = st.object(input);
                let mut wrapped = input.bytes(300);
                let mut t = Template::new(input, false);
                let mut h = 0;
                let (name, rv) = if op == 21 {
                    let wp = if wrapped.is_empty() {
                        std::ptr::null_mut()
                    } else {
                        wrapped.as_mut_ptr()
                    };
                    (
                        "C_UnwrapKey",
                        f.C_UnwrapKey.unwrap()(
                            s,
                            &mut m.m,
                            base,
                            wp,
                            wrapped.len() as CK_ULONG,
                            t.ptr(),
                            t.len(),
                            &mut h,
                        ),
                    )
                } else {
                    (
                        "C_DeriveKey",
                        f.C_DeriveKey.unwrap()(s, &mut m.m, base, t.ptr(), t.len(), &mut h),
                    )
                };
                check(name, rv, &[OBJECT, KEYS]);
                if rv == CKR_OK {
                    st.objects.push(h);
                    st.objects
                        .extend(m.derived_handles.iter().filter(|&&h| h != 0));
                }
            }
            23 => message_cipher(st, input),
            24 => message_sign(st, input),
            _ => {
                // C_Finalize while another thread is inside calls.
                let s = st.session(input);
                let (key, data) = (st.object(input), input.bytes(64));
                let worker = std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    for _ in 0..50 {
                        let rv =
                            f.C_GenerateRandom.unwrap()(s, buf.as_mut_ptr(), buf.len() as CK_ULONG);
                        check(
                            "C_GenerateRandom",
                            rv,
                            &[&[CKR_RANDOM_NO_RNG, CKR_OPERATION_ACTIVE]],
                        );
                        let mut m = CK_MECHANISM {
                            mechanism: CKM_SHA256_HMAC,
                            pParameter: std::ptr::null_mut(),
                            ulParameterLen: 0,
                        };
                        check("C_SignInit", f.C_SignInit.unwrap()(s, &mut m, key), &[INIT]);
                        let mut n = buf.len() as CK_ULONG;
                        let rv = f.C_Sign.unwrap()(
                            s,
                            data.as_ptr() as *mut u8,
                            data.len() as CK_ULONG,
                            buf.as_mut_ptr(),
                            &mut n,
                        );
                        check("C_Sign", rv, &[DATA]);
                    }
                });
                check(
                    "C_Finalize",
                    f.C_Finalize.unwrap()(std::ptr::null_mut()),
                    &[],
                );
                st.sessions.clear();
                st.objects.clear();
                worker.join().unwrap();
            }
        }
    }
}

/// A message-based encryption or decryption: Init, then a few of its
/// calls (whole messages, a message in parts, the Final), in any order.
fn message_cipher(st: &mut State, input: &mut Input) {
    let f = st.f3;
    let encrypt = input.byte() & 1 == 0;
    let mut m = Mech::new(input);
    let s = st.session(input);
    let key = st.object(input);
    // SAFETY (every call below): each pointer is NULL or valid for the
    // length passed beside it, for the call's duration.
    unsafe {
        let (name, rv) = if encrypt {
            (
                "C_MessageEncryptInit",
                f.C_MessageEncryptInit.unwrap()(s, &mut m.m, key),
            )
        } else {
            (
                "C_MessageDecryptInit",
                f.C_MessageDecryptInit.unwrap()(s, &mut m.m, key),
            )
        };
        check(name, rv, &[INIT]);
        for _ in 0..1 + input.byte() % 4 {
            let mut param = MessageParam::new(input);
            let (pp, plen) = (param.ptr(), param.len(input));
            let mut aad = input.bytes(64);
            let mut data = input.bytes(200);
            let (ap, dp) = (byte_ptr(&mut aad), byte_ptr(&mut data));
            let (al, dl) = (aad.len() as CK_ULONG, data.len() as CK_ULONG);
            let (mut out, null) = out_buffer(input);
            let mut n = out.len() as CK_ULONG;
            let flags = input.pick(&[0, CKF_END_OF_MESSAGE, CKF_END_OF_MESSAGE | 2]);
            let (name, rv) = match (encrypt, input.byte() % 4) {
                (true, 0) => (
                    "C_EncryptMessage",
                    f.C_EncryptMessage.unwrap()(
                        s,
                        pp,
                        plen,
                        ap,
                        al,
                        dp,
                        dl,
                        ptr(&mut out, null),
                        &mut n,
                    ),
                ),
                (true, 1) => (
                    "C_EncryptMessageBegin",
                    f.C_EncryptMessageBegin.unwrap()(s, pp, plen, ap, al),
                ),
                (true, 2) => (
                    "C_EncryptMessageNext",
                    f.C_EncryptMessageNext.unwrap()(
                        s,
                        pp,
                        plen,
                        dp,
                        dl,
                        ptr(&mut out, null),
                        &mut n,
                        flags,
                    ),
                ),
                (true, _) => ("C_MessageEncryptFinal", f.C_MessageEncryptFinal.unwrap()(s)),
                (false, 0) => (
                    "C_DecryptMessage",
                    f.C_DecryptMessage.unwrap()(
                        s,
                        pp,
                        plen,
                        ap,
                        al,
                        dp,
                        dl,
                        ptr(&mut out, null),
                        &mut n,
                    ),
                ),
                (false, 1) => (
                    "C_DecryptMessageBegin",
                    f.C_DecryptMessageBegin.unwrap()(s, pp, plen, ap, al),
                ),
                (false, 2) => (
                    "C_DecryptMessageNext",
                    f.C_DecryptMessageNext.unwrap()(
                        s,
                        pp,
                        plen,
                        dp,
                        dl,
                        ptr(&mut out, null),
                        &mut n,
                        flags,
                    ),
                ),
                (false, _) => ("C_MessageDecryptFinal", f.C_MessageDecryptFinal.unwrap()(s)),
            };
            check(name, rv, &[DATA, MESSAGE]);
        }
    }
}

/// A message-based signing or verification: Init, then a few of its
/// calls (whole messages, a message in parts, the Final), in any order.
fn message_sign(st: &mut State, input: &mut Input) {
    let f = st.f3;
    let sign = input.byte() & 1 == 0;
    let mut m = Mech::new(input);
    let s = st.session(input);
    let key = st.object(input);
    // SAFETY (every call below): each pointer is NULL or valid for the
    // length passed beside it, for the call's duration.
    unsafe {
        let (name, rv) = if sign {
            (
                "C_MessageSignInit",
                f.C_MessageSignInit.unwrap()(s, &mut m.m, key),
            )
        } else {
            (
                "C_MessageVerifyInit",
                f.C_MessageVerifyInit.unwrap()(s, &mut m.m, key),
            )
        };
        check(name, rv, &[INIT]);
        for _ in 0..1 + input.byte() % 4 {
            let mut param = MessageParam::new(input);
            let (pp, plen) = (param.ptr(), param.len(input));
            let mut data = input.bytes(200);
            let dp = byte_ptr(&mut data);
            let dl = data.len() as CK_ULONG;
            let (mut out, null) = out_buffer(input);
            let mut n = out.len() as CK_ULONG;
            // Next without a length pointer: a part that is not the last.
            let last = input.byte() % 4 != 0;
            let np: *mut CK_ULONG = if last { &mut n } else { std::ptr::null_mut() };
            let (name, rv) = match (sign, input.byte() % 4) {
                (true, 0) => (
                    "C_SignMessage",
                    f.C_SignMessage.unwrap()(s, pp, plen, dp, dl, ptr(&mut out, null), &mut n),
                ),
                (true, 1) => (
                    "C_SignMessageBegin",
                    f.C_SignMessageBegin.unwrap()(s, pp, plen),
                ),
                (true, 2) => (
                    "C_SignMessageNext",
                    f.C_SignMessageNext.unwrap()(s, pp, plen, dp, dl, ptr(&mut out, null), np),
                ),
                (true, _) => ("C_MessageSignFinal", f.C_MessageSignFinal.unwrap()(s)),
                (false, 0) => (
                    "C_VerifyMessage",
                    f.C_VerifyMessage.unwrap()(
                        s,
                        pp,
                        plen,
                        dp,
                        dl,
                        out.as_mut_ptr(),
                        out.len() as CK_ULONG,
                    ),
                ),
                (false, 1) => (
                    "C_VerifyMessageBegin",
                    f.C_VerifyMessageBegin.unwrap()(s, pp, plen),
                ),
                (false, 2) => (
                    "C_VerifyMessageNext",
                    f.C_VerifyMessageNext.unwrap()(
                        s,
                        pp,
                        plen,
                        dp,
                        dl,
                        if last {
                            out.as_mut_ptr()
                        } else {
                            std::ptr::null_mut()
                        },
                        if last { out.len() as CK_ULONG } else { 0 },
                    ),
                ),
                (false, _) => ("C_MessageVerifyFinal", f.C_MessageVerifyFinal.unwrap()(s)),
            };
            check(name, rv, &[DATA, MESSAGE]);
        }
    }
}

/// A byte buffer's pointer, NULL when it is empty.
fn byte_ptr(buf: &mut [u8]) -> CK_BYTE_PTR {
    ptr(buf, buf.is_empty())
}

/// The module's 3.0 function list ("PKCS 11" 3.0 through C_GetInterface).
fn list_3_0() -> &'static CK_FUNCTION_LIST_3_0 {
    let mut interface: *mut CK_INTERFACE = std::ptr::null_mut();
    let mut version = CK_VERSION { major: 3, minor: 0 };
    // SAFETY: a NUL-terminated name, a valid version and out pointer.
    let rv = unsafe {
        softoken::C_GetInterface(
            c"PKCS 11".as_ptr() as *mut CK_CHAR,
            &mut version,
            &mut interface,
            0,
        )
    };
    assert_eq!(rv, CKR_OK);
    // SAFETY: the module's static interface and its 3.0 table.
    unsafe { &*((*interface).pFunctionList as *const CK_FUNCTION_LIST_3_0) }
}

fuzz_target!(|data: &[u8]| {
    let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
    // SAFETY: a valid out pointer.
    assert_eq!(unsafe { softoken::C_GetFunctionList(&mut list) }, CKR_OK);
    // SAFETY: the module's static function list.
    let f: &'static CK_FUNCTION_LIST = unsafe { &*list };
    let f3 = list_3_0();
    // Each input starts from a fresh, empty database.
    // SAFETY: no arguments.
    let _ = unsafe { f.C_Finalize.unwrap()(std::ptr::null_mut()) };
    for file in ["cert9.db", "key4.db"] {
        let _ = std::fs::remove_file(dir().join(file));
    }
    assert_eq!(initialize(f), CKR_OK);
    let mut st = State {
        f,
        f3,
        sessions: Vec::new(),
        objects: Vec::new(),
    };
    let mut input = Input(data);
    let mut steps = 0;
    while !input.empty() && steps < 64 {
        step(&mut st, &mut input);
        steps += 1;
    }
});
