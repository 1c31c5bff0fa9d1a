//! The mechanisms: each is a value in one table, with its
//! CK_MECHANISM_INFO and the constructor of its operation.

use aws_lc_rs::digest;
use once_cell::sync::Lazy;
use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::attr::Attrs;
use crate::engine_sys::{Cmac, EvpDigest, Hash, Hmac, HmacKey};
use crate::kept::KeptContexts;
use crate::object::Generated;
use crate::rv::{Result, Rv};

/// What a mechanism makes.
#[derive(Clone, Copy)]
pub enum Operation {
    Digest(HashAlg),
    /// A MAC over a secret key; `general` takes the MAC length as parameter.
    Mac {
        alg: MacAlg,
        key_type: CK_KEY_TYPE,
        general: bool,
    },
    /// A secret key of this type, of CKA_VALUE_LEN bytes.
    SecretKeyGen {
        key_type: CK_KEY_TYPE,
    },
    /// An EC key pair on the curve of the public template.
    EcKeyPairGen,
    /// ECDSA over the raw input, or over its hash.
    Ecdsa {
        hash: Option<&'static digest::Algorithm>,
    },
    /// AES encryption and decryption in one mode.
    Aes(crate::aes::Mode),
    /// An RSA key pair of CKA_MODULUS_BITS bits.
    RsaKeyPairGen,
    /// RSA signatures in one scheme.
    Rsa(crate::rsa::Scheme),
    /// ECDH key derivation (the cofactor form is the same on NIST curves).
    EcdhDerive,
    /// An Ed25519 (Edwards) or X25519 (Montgomery) key pair.
    Curve25519KeyPairGen {
        key_type: CK_KEY_TYPE,
    },
    /// Pure Ed25519 signatures.
    Eddsa,
    /// HKDF, into a secret key or (HKDF_DATA) a data object.
    Hkdf,
    /// PBKDF2, a key generation mechanism.
    Pbkdf2,
    /// NIST SP 800-108 in counter mode.
    Sp800_108,
}

/// A hash: aws-lc-rs's, or (for those it lacks) the engine's EVP one.
#[derive(Clone, Copy)]
pub enum HashAlg {
    Rs(&'static digest::Algorithm),
    Evp(Hash),
}

/// A MAC: HMAC by aws-lc-rs or by EVP, or AES-CMAC.
#[derive(Clone, Copy)]
pub enum MacAlg {
    Hmac(Hash),
    Cmac,
}

impl MacAlg {
    fn output_len(self) -> usize {
        match self {
            MacAlg::Hmac(h) => h.output_len(),
            MacAlg::Cmac => 16,
        }
    }
}

/// A mechanism as a caller names it: its type and its parameter's bytes
/// (and, for parameters that hold pointers, what they point at).
#[derive(Clone)]
pub struct MechanismArg {
    pub ty: CK_MECHANISM_TYPE,
    pub param: Vec<u8>,
    pub gcm: Option<crate::aes::GcmParams>,
    /// What the parameter's pointers refer to, in the structure's order
    /// (OAEP: the label; ECDH: the shared data, then the public data).
    pub pointed: Vec<Vec<u8>>,
    /// A KDF's parameters (HKDF, PBKDF2, SP 800-108).
    pub kdf: Option<crate::kdf::KdfParams>,
}

impl MechanismArg {
    /// A parameter that is one CK_ULONG.
    fn ulong_param(&self) -> Result<CK_ULONG> {
        let bytes: [u8; std::mem::size_of::<CK_ULONG>()] = self
            .param
            .as_slice()
            .try_into()
            .map_err(|_| Rv::MechanismParamInvalid)?;
        Ok(CK_ULONG::from_ne_bytes(bytes))
    }

    pub fn no_param(&self) -> Result<()> {
        if self.param.is_empty() {
            Ok(())
        } else {
            Err(Rv::MechanismParamInvalid)
        }
    }
}

pub struct Mechanism {
    pub ty: CK_MECHANISM_TYPE,
    pub min_key_size: CK_ULONG,
    pub max_key_size: CK_ULONG,
    pub flags: CK_FLAGS,
    pub operation: Operation,
}

const fn digest_mechanism(ty: CK_MECHANISM_TYPE, alg: HashAlg) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 0,
        max_key_size: 0,
        flags: CKF_DIGEST,
        operation: Operation::Digest(alg),
    }
}

/// HMAC keys: any length from one byte to this many (CK_MECHANISM_INFO
/// sizes of HMAC and generic secrets are in bytes here, as NSS gives them).
const MAX_SECRET_LEN: CK_ULONG = 4096;

const fn hmac_mechanism(
    ty: CK_MECHANISM_TYPE,
    alg: MacAlg,
    key_type: CK_KEY_TYPE,
    general: bool,
) -> Mechanism {
    let (min_key_size, max_key_size) = match alg {
        MacAlg::Cmac => (16, 32),
        _ => (1, MAX_SECRET_LEN),
    };
    Mechanism {
        ty,
        min_key_size,
        max_key_size,
        flags: CKF_SIGN | CKF_VERIFY,
        operation: Operation::Mac {
            alg,
            key_type,
            general,
        },
    }
}

const fn key_gen_mechanism(
    ty: CK_MECHANISM_TYPE,
    key_type: CK_KEY_TYPE,
    min: CK_ULONG,
    max: CK_ULONG,
) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: min,
        max_key_size: max,
        flags: CKF_GENERATE,
        operation: Operation::SecretKeyGen { key_type },
    }
}

/// What every EC mechanism says of its curves.
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

const fn ecdsa_mechanism(
    ty: CK_MECHANISM_TYPE,
    hash: Option<&'static digest::Algorithm>,
) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 256,
        max_key_size: 521,
        flags: CKF_SIGN | CKF_VERIFY | EC_FLAGS,
        operation: Operation::Ecdsa { hash },
    }
}

const fn aes_mechanism(ty: CK_MECHANISM_TYPE, mode: crate::aes::Mode) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 16,
        max_key_size: 32,
        // CTR and GCM do not wrap keys: a key stream or a nonce that must
        // never repeat has no place in key transport.
        flags: match mode {
            crate::aes::Mode::Ctr | crate::aes::Mode::Gcm => CKF_ENCRYPT | CKF_DECRYPT,
            _ => CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        },
        operation: Operation::Aes(mode),
    }
}

const fn rsa_mechanism(ty: CK_MECHANISM_TYPE, scheme: crate::rsa::Scheme) -> Mechanism {
    let flags = match scheme {
        crate::rsa::Scheme::Pkcs1(None) | crate::rsa::Scheme::X509 => {
            CKF_SIGN
                | CKF_VERIFY
                | CKF_SIGN_RECOVER
                | CKF_VERIFY_RECOVER
                | CKF_ENCRYPT
                | CKF_DECRYPT
                | CKF_WRAP
                | CKF_UNWRAP
        }
        crate::rsa::Scheme::Oaep => CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        _ => CKF_SIGN | CKF_VERIFY,
    };
    Mechanism {
        ty,
        min_key_size: crate::rsa::MIN_BITS,
        max_key_size: crate::rsa::MAX_BITS,
        flags,
        operation: Operation::Rsa(scheme),
    }
}

static MECHANISMS: &[Mechanism] = &[
    digest_mechanism(CKM_SHA_1, HashAlg::Rs(&digest::SHA1_FOR_LEGACY_USE_ONLY)),
    digest_mechanism(CKM_SHA224, HashAlg::Rs(&digest::SHA224)),
    digest_mechanism(CKM_SHA256, HashAlg::Rs(&digest::SHA256)),
    digest_mechanism(CKM_SHA384, HashAlg::Rs(&digest::SHA384)),
    digest_mechanism(CKM_SHA512, HashAlg::Rs(&digest::SHA512)),
    digest_mechanism(CKM_SHA512_224, HashAlg::Evp(Hash::Sha512_224)),
    digest_mechanism(CKM_SHA512_256, HashAlg::Rs(&digest::SHA512_256)),
    digest_mechanism(CKM_SHA3_224, HashAlg::Evp(Hash::Sha3_224)),
    digest_mechanism(CKM_SHA3_256, HashAlg::Rs(&digest::SHA3_256)),
    digest_mechanism(CKM_SHA3_384, HashAlg::Rs(&digest::SHA3_384)),
    digest_mechanism(CKM_SHA3_512, HashAlg::Rs(&digest::SHA3_512)),
    hmac_mechanism(
        CKM_SHA_1_HMAC,
        MacAlg::Hmac(Hash::Sha1),
        CKK_SHA_1_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA_1_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha1),
        CKK_SHA_1_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA224_HMAC,
        MacAlg::Hmac(Hash::Sha224),
        CKK_SHA224_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA224_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha224),
        CKK_SHA224_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA256_HMAC,
        MacAlg::Hmac(Hash::Sha256),
        CKK_SHA256_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA256_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha256),
        CKK_SHA256_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA384_HMAC,
        MacAlg::Hmac(Hash::Sha384),
        CKK_SHA384_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA384_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha384),
        CKK_SHA384_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA512_HMAC,
        MacAlg::Hmac(Hash::Sha512),
        CKK_SHA512_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA512_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha512),
        CKK_SHA512_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA512_224_HMAC,
        MacAlg::Hmac(Hash::Sha512_224),
        CKK_GENERIC_SECRET,
        false,
    ),
    hmac_mechanism(
        CKM_SHA512_224_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha512_224),
        CKK_GENERIC_SECRET,
        true,
    ),
    hmac_mechanism(
        CKM_SHA3_224_HMAC,
        MacAlg::Hmac(Hash::Sha3_224),
        CKK_SHA3_224_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA3_224_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha3_224),
        CKK_SHA3_224_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA3_256_HMAC,
        MacAlg::Hmac(Hash::Sha3_256),
        CKK_SHA3_256_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA3_256_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha3_256),
        CKK_SHA3_256_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA3_384_HMAC,
        MacAlg::Hmac(Hash::Sha3_384),
        CKK_SHA3_384_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA3_384_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha3_384),
        CKK_SHA3_384_HMAC,
        true,
    ),
    hmac_mechanism(
        CKM_SHA3_512_HMAC,
        MacAlg::Hmac(Hash::Sha3_512),
        CKK_SHA3_512_HMAC,
        false,
    ),
    hmac_mechanism(
        CKM_SHA3_512_HMAC_GENERAL,
        MacAlg::Hmac(Hash::Sha3_512),
        CKK_SHA3_512_HMAC,
        true,
    ),
    hmac_mechanism(CKM_AES_CMAC, MacAlg::Cmac, CKK_AES, false),
    hmac_mechanism(CKM_AES_CMAC_GENERAL, MacAlg::Cmac, CKK_AES, true),
    key_gen_mechanism(
        CKM_GENERIC_SECRET_KEY_GEN,
        CKK_GENERIC_SECRET,
        1,
        MAX_SECRET_LEN,
    ),
    key_gen_mechanism(CKM_AES_KEY_GEN, CKK_AES, 16, 32),
    Mechanism {
        ty: CKM_EC_KEY_PAIR_GEN,
        min_key_size: 256,
        max_key_size: 521,
        flags: CKF_GENERATE_KEY_PAIR | EC_FLAGS,
        operation: Operation::EcKeyPairGen,
    },
    ecdsa_mechanism(CKM_ECDSA, None),
    ecdsa_mechanism(CKM_ECDSA_SHA1, Some(&digest::SHA1_FOR_LEGACY_USE_ONLY)),
    ecdsa_mechanism(CKM_ECDSA_SHA224, Some(&digest::SHA224)),
    ecdsa_mechanism(CKM_ECDSA_SHA256, Some(&digest::SHA256)),
    ecdsa_mechanism(CKM_ECDSA_SHA384, Some(&digest::SHA384)),
    ecdsa_mechanism(CKM_ECDSA_SHA512, Some(&digest::SHA512)),
    ecdsa_mechanism(CKM_ECDSA_SHA3_256, Some(&digest::SHA3_256)),
    ecdsa_mechanism(CKM_ECDSA_SHA3_384, Some(&digest::SHA3_384)),
    ecdsa_mechanism(CKM_ECDSA_SHA3_512, Some(&digest::SHA3_512)),
    aes_mechanism(CKM_AES_ECB, crate::aes::Mode::Ecb),
    aes_mechanism(CKM_AES_CBC, crate::aes::Mode::Cbc),
    aes_mechanism(CKM_AES_CBC_PAD, crate::aes::Mode::CbcPad),
    aes_mechanism(CKM_AES_CTR, crate::aes::Mode::Ctr),
    aes_mechanism(CKM_AES_GCM, crate::aes::Mode::Gcm),
    aes_mechanism(CKM_AES_KEY_WRAP, crate::aes::Mode::KeyWrap),
    // RFC 5649 under both numbers: 3.0's KWP, and KEY_WRAP_PAD as SoftHSMv2
    // and other tokens implement it.
    aes_mechanism(CKM_AES_KEY_WRAP_PAD, crate::aes::Mode::KeyWrapPad),
    aes_mechanism(CKM_AES_KEY_WRAP_KWP, crate::aes::Mode::KeyWrapPad),
    Mechanism {
        ty: CKM_RSA_PKCS_KEY_PAIR_GEN,
        min_key_size: crate::rsa::MIN_BITS,
        max_key_size: crate::rsa::MAX_BITS,
        flags: CKF_GENERATE_KEY_PAIR,
        operation: Operation::RsaKeyPairGen,
    },
    rsa_mechanism(CKM_RSA_PKCS, crate::rsa::Scheme::Pkcs1(None)),
    rsa_mechanism(
        CKM_SHA1_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA1)),
    ),
    rsa_mechanism(
        CKM_SHA224_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA224)),
    ),
    rsa_mechanism(
        CKM_SHA256_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA256)),
    ),
    rsa_mechanism(
        CKM_SHA384_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA384)),
    ),
    rsa_mechanism(
        CKM_SHA512_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA512)),
    ),
    rsa_mechanism(CKM_RSA_PKCS_PSS, crate::rsa::Scheme::Pss(None)),
    rsa_mechanism(
        CKM_SHA1_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA1)),
    ),
    rsa_mechanism(
        CKM_SHA224_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA224)),
    ),
    rsa_mechanism(
        CKM_SHA256_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA256)),
    ),
    rsa_mechanism(
        CKM_SHA384_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA384)),
    ),
    rsa_mechanism(
        CKM_SHA512_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA512)),
    ),
    rsa_mechanism(
        CKM_SHA3_256_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA3_256)),
    ),
    rsa_mechanism(
        CKM_SHA3_384_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA3_384)),
    ),
    rsa_mechanism(
        CKM_SHA3_512_RSA_PKCS,
        crate::rsa::Scheme::Pkcs1(Some(crate::rsa::SHA3_512)),
    ),
    rsa_mechanism(
        CKM_SHA3_256_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA3_256)),
    ),
    rsa_mechanism(
        CKM_SHA3_384_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA3_384)),
    ),
    rsa_mechanism(
        CKM_SHA3_512_RSA_PKCS_PSS,
        crate::rsa::Scheme::Pss(Some(crate::rsa::SHA3_512)),
    ),
    rsa_mechanism(CKM_RSA_X_509, crate::rsa::Scheme::X509),
    rsa_mechanism(CKM_RSA_PKCS_OAEP, crate::rsa::Scheme::Oaep),
    Mechanism {
        ty: CKM_ECDH1_DERIVE,
        min_key_size: 256,
        max_key_size: 521,
        flags: CKF_DERIVE | EC_FLAGS,
        operation: Operation::EcdhDerive,
    },
    Mechanism {
        ty: CKM_ECDH1_COFACTOR_DERIVE,
        min_key_size: 256,
        max_key_size: 521,
        flags: CKF_DERIVE | EC_FLAGS,
        operation: Operation::EcdhDerive,
    },
    Mechanism {
        ty: CKM_EC_EDWARDS_KEY_PAIR_GEN,
        min_key_size: 255,
        max_key_size: 255,
        flags: CKF_GENERATE_KEY_PAIR,
        operation: Operation::Curve25519KeyPairGen {
            key_type: CKK_EC_EDWARDS,
        },
    },
    Mechanism {
        ty: CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
        min_key_size: 255,
        max_key_size: 255,
        flags: CKF_GENERATE_KEY_PAIR,
        operation: Operation::Curve25519KeyPairGen {
            key_type: CKK_EC_MONTGOMERY,
        },
    },
    Mechanism {
        ty: CKM_HKDF_DERIVE,
        min_key_size: 1,
        max_key_size: MAX_SECRET_LEN,
        flags: CKF_DERIVE,
        operation: Operation::Hkdf,
    },
    Mechanism {
        ty: CKM_HKDF_DATA,
        min_key_size: 1,
        max_key_size: MAX_SECRET_LEN,
        flags: CKF_DERIVE,
        operation: Operation::Hkdf,
    },
    key_gen_mechanism(CKM_HKDF_KEY_GEN, CKK_HKDF, 1, MAX_SECRET_LEN),
    Mechanism {
        ty: CKM_PKCS5_PBKD2,
        min_key_size: 1,
        max_key_size: 1024,
        flags: CKF_GENERATE,
        operation: Operation::Pbkdf2,
    },
    Mechanism {
        ty: CKM_SP800_108_COUNTER_KDF,
        min_key_size: 1,
        max_key_size: MAX_SECRET_LEN,
        flags: CKF_DERIVE,
        operation: Operation::Sp800_108,
    },
    Mechanism {
        ty: CKM_EDDSA,
        min_key_size: 255,
        max_key_size: 255,
        flags: CKF_SIGN | CKF_VERIFY,
        operation: Operation::Eddsa,
    },
];

pub fn all() -> &'static [Mechanism] {
    MECHANISMS
}

impl Mechanism {
    /// Whether the specification's mechanism table allows this mechanism
    /// single-part calls only (C_Sign, C_Encrypt...): raw RSA and its
    /// paddings, ECDSA and EdDSA over the whole input, and AES key wrap.
    pub fn single_part_only(&self) -> bool {
        use crate::rsa::Scheme;
        match self.operation {
            Operation::Ecdsa { hash } => hash.is_none(),
            Operation::Rsa(scheme) => matches!(
                scheme,
                Scheme::Pkcs1(None) | Scheme::Pss(None) | Scheme::X509 | Scheme::Oaep
            ),
            Operation::Eddsa => true,
            Operation::Aes(mode) => {
                matches!(
                    mode,
                    crate::aes::Mode::KeyWrap | crate::aes::Mode::KeyWrapPad
                )
            }
            _ => false,
        }
    }

    /// CK_MECHANISM_INFO.flags: the table's, with the 3.0 message-based
    /// flags for what the message API runs (every signature, AES-GCM).
    pub fn info_flags(&self) -> CK_FLAGS {
        let mut flags = self.flags;
        if flags & CKF_SIGN != 0 {
            flags |= CKF_MESSAGE_SIGN;
        }
        if flags & CKF_VERIFY != 0 {
            flags |= CKF_MESSAGE_VERIFY;
        }
        if matches!(self.operation, Operation::Aes(crate::aes::Mode::Gcm)) {
            flags |= CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT;
        }
        flags
    }
}

/// The types, sorted, each with its entry: every Init looks its mechanism
/// up, by binary search over these few cache lines rather than a scan of
/// the hundred entries.
static BY_TYPE: Lazy<Vec<(CK_MECHANISM_TYPE, &'static Mechanism)>> = Lazy::new(|| {
    let mut sorted: Vec<_> = MECHANISMS.iter().map(|m| (m.ty, m)).collect();
    sorted.sort_unstable_by_key(|(ty, _)| *ty);
    sorted
});

pub fn find(ty: CK_MECHANISM_TYPE) -> Result<&'static Mechanism> {
    BY_TYPE
        .binary_search_by_key(&ty, |(t, _)| *t)
        .map(|i| BY_TYPE[i].1)
        .map_err(|_| Rv::MechanismInvalid)
}

/// A running hash: aws-lc-rs's, or the engine's.
enum DigestState {
    Rs(digest::Context),
    Evp(EvpDigest),
}

/// A digest in progress.
pub struct DigestOp {
    state: DigestState,
    len: usize,
    /// Whether C_DigestUpdate/C_DigestKey started a multi-part digest (then
    /// C_Digest is not allowed).
    pub multi_part: bool,
}

impl DigestOp {
    pub fn new(m: &Mechanism) -> Result<DigestOp> {
        let (state, len) = match m.operation {
            Operation::Digest(HashAlg::Rs(alg)) => {
                (DigestState::Rs(digest::Context::new(alg)), alg.output_len())
            }
            Operation::Digest(HashAlg::Evp(h)) => {
                (DigestState::Evp(EvpDigest::new(h)?), h.output_len())
            }
            _ => return Err(Rv::MechanismInvalid),
        };
        Ok(DigestOp {
            state,
            len,
            multi_part: false,
        })
    }

    pub fn output_len(&self) -> usize {
        self.len
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            DigestState::Rs(ctx) => ctx.update(data),
            DigestState::Evp(ctx) => ctx.update(data),
        }
    }

    /// The digest so far, leaving the operation as it is (the caller ends it
    /// once the result has been delivered).
    pub fn result(&self) -> Result<Vec<u8>> {
        match &self.state {
            DigestState::Rs(ctx) => Ok(ctx.clone().finish().as_ref().to_vec()),
            DigestState::Evp(ctx) => ctx.result(),
        }
    }
}

/// Raw signature input beyond this is refused (it is meant to be a hash,
/// or at most a modulus).
const MAX_RAW_INPUT: usize = 1024;

/// The data a signature covers, as it arrives: a running hash, or the raw
/// input of a mechanism that takes a caller's digest.
pub enum MessageInput {
    Hash(digest::Context),
    Raw(Vec<u8>),
}

impl MessageInput {
    pub fn new(hash: Option<&'static digest::Algorithm>) -> MessageInput {
        match hash {
            Some(alg) => MessageInput::Hash(digest::Context::new(alg)),
            None => MessageInput::Raw(Vec::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            MessageInput::Hash(ctx) => ctx.update(data),
            MessageInput::Raw(buf) => {
                if buf.len() + data.len() > MAX_RAW_INPUT {
                    return Err(Rv::DataLenRange);
                }
                buf.extend_from_slice(data);
            }
        }
        Ok(())
    }

    /// The hash so far, or the raw input.
    pub fn digest(&self) -> Vec<u8> {
        match self {
            MessageInput::Hash(ctx) => ctx.clone().finish().as_ref().to_vec(),
            MessageInput::Raw(buf) => buf.clone(),
        }
    }
}

/// An encryption or decryption in progress.
pub trait CipherOp: Send {
    /// Enough room for the output of `more` bytes of input, and of the end
    /// of the operation when `finishing` (it may exceed the exact length,
    /// as the specification allows).
    fn output_len(&self, more: usize, finishing: bool) -> usize;
    /// Takes more input; returns the output it completes.
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>>;
    /// Ends the operation; returns the last output.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// The whole operation on `input`, written straight into `output`
    /// (which has `output_len(input.len(), true)` bytes) in one pass, where
    /// the mechanism can; None where it cannot, or once input is buffered.
    fn single_into(&mut self, input: &[u8], output: &mut [u8]) -> Option<Result<usize>> {
        let _ = (input, output);
        None
    }
}

/// The cipher a mechanism makes with a key: for encryption or decryption
/// (C_Encrypt*, C_Decrypt*), or for wrapping or unwrapping keys.
pub fn cipher_op(
    arg: &MechanismArg,
    key: &Attrs,
    encrypt: bool,
    wrapping: bool,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    let m = find(arg.ty)?;
    let (flag, usage) = match (encrypt, wrapping) {
        (true, false) => (CKF_ENCRYPT, CKA_ENCRYPT),
        (false, false) => (CKF_DECRYPT, CKA_DECRYPT),
        (true, true) => (CKF_WRAP, CKA_WRAP),
        (false, true) => (CKF_UNWRAP, CKA_UNWRAP),
    };
    if m.flags & flag == 0 {
        return Err(Rv::MechanismInvalid);
    }
    match m.operation {
        Operation::Aes(mode) => crate::aes::cipher_op(mode, arg, key, encrypt, usage, kept),
        Operation::Rsa(scheme) => crate::rsa::cipher_op(scheme, arg, key, encrypt, usage),
        _ => Err(Rv::MechanismInvalid),
    }
}

pub fn encrypt_op(
    arg: &MechanismArg,
    key: &Attrs,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    cipher_op(arg, key, true, false, kept)
}

pub fn decrypt_op(
    arg: &MechanismArg,
    key: &Attrs,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    cipher_op(arg, key, false, false, kept)
}

/// A signing (or MAC) operation in progress.
pub trait SignOp: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// The length of the result, known before it is computed.
    fn output_len(&self) -> usize;
    /// The result over everything given so far.
    fn sign(&mut self) -> Result<Vec<u8>>;
}

/// A verification in progress.
pub trait VerifyOp: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Checks the signature over everything given so far.
    fn verify(&mut self, signature: &[u8]) -> Result<()>;
}

/// A running MAC (an HMAC context is taken out when the MAC is computed,
/// rather than copied).
enum MacState {
    Hmac(Hmac),
    Cmac(Cmac),
}

impl MacState {
    fn new(alg: MacAlg, key: &[u8]) -> Result<MacState> {
        Ok(match alg {
            MacAlg::Hmac(h) => MacState::Hmac(Hmac::new(h, key)?),
            MacAlg::Cmac => MacState::Cmac(Cmac::new(key)?),
        })
    }
}

struct MacOp {
    state: MacState,
    out_len: usize,
}

impl MacOp {
    fn absorb(&mut self, data: &[u8]) {
        match &mut self.state {
            MacState::Hmac(ctx) => ctx.update(data),
            MacState::Cmac(ctx) => ctx.update(data),
        }
    }

    fn mac(&mut self) -> Result<Vec<u8>> {
        let mut full = match &mut self.state {
            MacState::Hmac(ctx) => ctx.finish()?,
            MacState::Cmac(ctx) => ctx.result()?,
        };
        full.truncate(self.out_len);
        Ok(full)
    }
}

impl SignOp for MacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.absorb(data);
        Ok(())
    }
    fn output_len(&self) -> usize {
        self.out_len
    }
    fn sign(&mut self) -> Result<Vec<u8>> {
        self.mac()
    }
}

impl VerifyOp for MacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.absorb(data);
        Ok(())
    }
    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.out_len {
            return Err(Rv::SignatureLenRange);
        }
        let mac = self.mac()?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&mac, signature)
            .map_err(|_| Rv::SignatureInvalid)
    }
}

/// The secret value of a key usable with a MAC mechanism.
fn mac_key(key: &Attrs, usage: CK_ATTRIBUTE_TYPE, key_type: CK_KEY_TYPE) -> Result<&[u8]> {
    if key.ulong(CKA_CLASS) != Some(CKO_SECRET_KEY) {
        return Err(Rv::KeyTypeInconsistent);
    }
    let kt = key.ulong(CKA_KEY_TYPE).ok_or(Rv::KeyTypeInconsistent)?;
    // HMACs take generic secrets too; CMAC takes AES keys only.
    if kt != key_type && (kt != CKK_GENERIC_SECRET || key_type == CKK_AES) {
        return Err(Rv::KeyTypeInconsistent);
    }
    if key.bool(usage) != Some(true) {
        return Err(Rv::KeyFunctionNotPermitted);
    }
    let value = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    if value.is_empty() || value.len() as CK_ULONG > MAX_SECRET_LEN {
        return Err(Rv::KeySizeRange);
    }
    Ok(value)
}

fn mac_op(
    m: &Mechanism,
    arg: &MechanismArg,
    key: &Attrs,
    usage: CK_ATTRIBUTE_TYPE,
    kept: &mut KeptContexts,
) -> Result<MacOp> {
    let Operation::Mac {
        alg,
        key_type,
        general,
    } = m.operation
    else {
        return Err(Rv::MechanismInvalid);
    };
    let full = alg.output_len();
    let out_len = if general {
        let n = arg.ulong_param()? as usize;
        // HMACs shorter than half the hash are refused, as NSS does; a CMAC
        // keeps at least 64 bits (SP 800-38B's advice).
        let min = if matches!(alg, MacAlg::Cmac) {
            8
        } else {
            full / 2
        };
        if n > full || n < min {
            return Err(Rv::MechanismParamInvalid);
        }
        n
    } else {
        arg.no_param()?;
        full
    };
    let value = mac_key(key, usage, key_type)?;
    let state = match alg {
        MacAlg::Hmac(h) => {
            let keyed = kept
                .hmac
                .get_or_build(value, h as u64, || HmacKey::new(h, value))?;
            MacState::Hmac(Hmac::with_key(&keyed)?)
        }
        MacAlg::Cmac => MacState::new(alg, value)?,
    };
    Ok(MacOp { state, out_len })
}

/// The signing operation a mechanism makes with a key.
pub fn sign_op(
    arg: &MechanismArg,
    key: &Attrs,
    kept: &mut KeptContexts,
) -> Result<Box<dyn SignOp>> {
    let m = find(arg.ty)?;
    if m.flags & CKF_SIGN == 0 {
        return Err(Rv::MechanismInvalid);
    }
    match m.operation {
        Operation::Ecdsa { hash } => {
            arg.no_param()?;
            crate::ec::sign_op(key, hash)
        }
        Operation::Rsa(scheme) => crate::rsa::sign_op(scheme, arg, key),
        Operation::Eddsa => crate::curve25519::sign_op(arg, key),
        _ => Ok(Box::new(mac_op(m, arg, key, CKA_SIGN, kept)?)),
    }
}

/// The verifying operation a mechanism makes with a key.
pub fn verify_op(
    arg: &MechanismArg,
    key: &Attrs,
    kept: &mut KeptContexts,
) -> Result<Box<dyn VerifyOp>> {
    let m = find(arg.ty)?;
    if m.flags & CKF_VERIFY == 0 {
        return Err(Rv::MechanismInvalid);
    }
    match m.operation {
        Operation::Ecdsa { hash } => {
            arg.no_param()?;
            crate::ec::verify_op(key, hash)
        }
        Operation::Rsa(scheme) => crate::rsa::verify_op(scheme, arg, key),
        Operation::Eddsa => crate::curve25519::verify_op(arg, key),
        _ => Ok(Box::new(mac_op(m, arg, key, CKA_VERIFY, kept)?)),
    }
}

/// A new key pair (C_GenerateKeyPair): the public half, then the private.
pub fn generate_key_pair(
    arg: &MechanismArg,
    public_template: &Attrs,
) -> Result<(Generated, Generated)> {
    let m = find(arg.ty)?;
    match m.operation {
        Operation::EcKeyPairGen => {
            arg.no_param()?;
            crate::ec::generate(m.ty, public_template)
        }
        Operation::RsaKeyPairGen => {
            arg.no_param()?;
            crate::rsa::generate(m.ty, public_template)
        }
        Operation::Curve25519KeyPairGen { key_type } => {
            arg.no_param()?;
            crate::curve25519::generate(m.ty, key_type, public_template)
        }
        _ => Err(Rv::MechanismInvalid),
    }
}

/// A new secret key's value (C_GenerateKey); the template gives its length.
pub fn generate_key(arg: &MechanismArg, template: &Attrs) -> Result<Generated> {
    let m = find(arg.ty)?;
    let key_type = match m.operation {
        Operation::SecretKeyGen { key_type } => key_type,
        Operation::Pbkdf2 => return crate::kdf::pbkdf2_key(m.ty, arg, template),
        _ => return Err(Rv::MechanismInvalid),
    };
    arg.no_param()?;
    let len = match template.get(CKA_VALUE_LEN) {
        Some(_) => template
            .ulong(CKA_VALUE_LEN)
            .ok_or(Rv::AttributeValueInvalid)?,
        None => return Err(Rv::TemplateIncomplete),
    };
    let valid = match key_type {
        CKK_AES => [16, 24, 32].contains(&len),
        _ => (m.min_key_size..=m.max_key_size).contains(&len),
    };
    if !valid {
        return Err(Rv::AttributeValueInvalid);
    }
    let mut value = Zeroizing::new(vec![0u8; len as usize]);
    crate::pbe::random_fill(&mut value)?;
    let mut values = Attrs::new();
    values.set(CKA_VALUE, value.to_vec());
    Ok(Generated {
        class: CKO_SECRET_KEY,
        key_type,
        mechanism: m.ty,
        values,
        origin: crate::object::Origin::Generated,
    })
}

/// A key derived from a base key (C_DeriveKey).
pub fn derive_key(arg: &MechanismArg, base: &Attrs, template: &Attrs) -> Result<Generated> {
    let m = find(arg.ty)?;
    match m.operation {
        Operation::EcdhDerive => crate::ec::derive(m.ty, arg, base, template),
        Operation::Sp800_108 => crate::kdf::sp800_108(m.ty, arg, base, template),
        Operation::Hkdf => crate::kdf::hkdf(m.ty, arg, base, template),
        _ => Err(Rv::MechanismInvalid),
    }
}

/// The output length of a MAC mechanism (a PRF for SP 800-108).
pub fn mac_output_len(ty: CK_MECHANISM_TYPE) -> Result<usize> {
    match find(ty)?.operation {
        Operation::Mac { alg, .. } => Ok(alg.output_len()),
        _ => Err(Rv::MechanismParamInvalid),
    }
}

/// A MAC mechanism over raw key bytes (a PRF inside another mechanism).
pub fn mac_with_key(arg: &MechanismArg, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let m = find(arg.ty).map_err(|_| Rv::MechanismParamInvalid)?;
    let Operation::Mac { alg, .. } = m.operation else {
        return Err(Rv::MechanismParamInvalid);
    };
    let mut op = MacOp {
        state: MacState::new(alg, key)?,
        out_len: alg.output_len(),
    };
    op.absorb(data);
    op.mac()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mechanism_type_is_in_the_table_once_and_found() {
        for m in MECHANISMS {
            let same = MECHANISMS.iter().filter(|o| o.ty == m.ty).count();
            assert_eq!(same, 1, "mechanism {:#x} listed {same} times", m.ty);
            assert!(std::ptr::eq(find(m.ty).unwrap(), m));
        }
        assert_eq!(find(0xdead_beef).err(), Some(Rv::MechanismInvalid));
    }
}
