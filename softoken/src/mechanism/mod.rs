//! The mechanisms: each is a value in one table, with its
//! CK_MECHANISM_INFO and the constructor of its operation.

pub mod aead;
pub mod aes;
pub mod chacha;
pub mod combine;
pub mod curve25519;
pub mod des;
pub mod dh;
pub mod digest;
pub mod dsa;
pub mod ec;
pub mod hash;
pub mod kdf;
pub mod mac;
pub mod op;
pub mod param;
pub mod pkcs8;
pub mod point;
pub mod rsa;
pub mod tls;

use once_cell::sync::Lazy;
use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::cache::kept::KeptContexts;
use crate::engine::Hash;
use crate::mechanism::combine::Combination;
use crate::mechanism::digest::DigestOp;
use crate::mechanism::hash::HashRow;
use crate::mechanism::mac::{MacAlg, MacLength, MAX_SECRET_LEN};
use crate::mechanism::op::{CipherOp, CipherUse, SignOp, VerifyOp};
use crate::mechanism::param::{KdfParams, MechanismArg};
use crate::object::attrs::Attrs;
use crate::object::Generated;
use crate::rv::{Result, Rv};

/// What a mechanism makes.
#[derive(Clone, Copy)]
pub enum Operation {
    Digest(Hash),
    /// A MAC over a secret key of this type (or a generic secret, for
    /// HMACs).
    Mac {
        alg: MacAlg,
        key_type: CK_KEY_TYPE,
        length: MacLength,
    },
    /// A secret key of this type, of CKA_VALUE_LEN bytes.
    SecretKeyGen {
        key_type: CK_KEY_TYPE,
    },
    /// An EC key pair on the curve of the public template.
    EcKeyPairGen,
    /// ECDSA over the raw input, or over its hash.
    Ecdsa {
        hash: Option<Hash>,
    },
    /// AES encryption and decryption in one mode.
    Aes(crate::mechanism::aes::Mode),
    /// ChaCha20 or ChaCha20-Poly1305.
    Chacha(crate::mechanism::chacha::Mode),
    /// DES or triple-DES encryption and decryption in one mode.
    Des(crate::mechanism::des::Family, crate::mechanism::des::Mode),
    /// An RSA key pair of CKA_MODULUS_BITS bits.
    RsaKeyPairGen,
    /// RSA signatures in one scheme.
    Rsa(crate::mechanism::rsa::Scheme),
    /// ECDH key derivation (the cofactor form is the same on NIST curves).
    EcdhDerive,
    /// A PKCS #3 Diffie-Hellman key pair in the public template's group.
    DhKeyPairGen,
    /// PKCS #3 Diffie-Hellman key derivation.
    DhDerive,
    /// A new PKCS #3 group: a domain-parameter object.
    DhParameterGen,
    /// A new DSA group: a domain-parameter object.
    DsaParameterGen,
    /// A DSA key pair in the public template's group.
    DsaKeyPairGen,
    /// DSA over the raw input (a caller's digest), or over its hash.
    Dsa {
        hash: Option<Hash>,
    },
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
    /// A TLS pre-master secret for RSA key exchange: 48 bytes, the first
    /// two the client's version (CKM_TLS_PRE_MASTER_KEY_GEN).
    TlsPreMasterKeyGen,
    /// A TLS 1.2 master secret (plain or extended; RSA or DH pre-master).
    TlsMaster,
    /// TLS 1.2's key block: up to four keys and two IVs at once (C_DeriveKey
    /// through `session::derive_key_material`).
    TlsKeyMaterial,
    /// TLS 1.2's exporter (CKM_TLS12_KDF).
    TlsKdf,
    /// The Finished messages' MAC (CKM_TLS_MAC).
    TlsMac,
    /// Derivation by combining keys and data, or by encrypting data.
    Combine(crate::mechanism::combine::Combination),
}

pub struct Mechanism {
    pub ty: CK_MECHANISM_TYPE,
    pub min_key_size: CK_ULONG,
    pub max_key_size: CK_ULONG,
    pub flags: CK_FLAGS,
    pub operation: Operation,
}

const fn digest_mechanism(hash: &HashRow) -> Mechanism {
    Mechanism {
        ty: hash.digest,
        min_key_size: 0,
        max_key_size: 0,
        flags: CKF_DIGEST,
        operation: Operation::Digest(hash.hash),
    }
}

const fn hmac_mechanism(hash: &HashRow) -> Mechanism {
    mac_mechanism(
        hash.hmac,
        MacAlg::Hmac(hash.hash),
        hash.hmac_key_type,
        MacLength::Full,
    )
}

const fn hmac_general_mechanism(hash: &HashRow) -> Mechanism {
    mac_mechanism(
        hash.hmac_general,
        MacAlg::Hmac(hash.hash),
        hash.hmac_key_type,
        MacLength::Parameter,
    )
}

const fn mac_mechanism(
    ty: CK_MECHANISM_TYPE,
    alg: MacAlg,
    key_type: CK_KEY_TYPE,
    length: MacLength,
) -> Mechanism {
    let (min_key_size, max_key_size) = match alg {
        MacAlg::Cmac => (16, 32),
        MacAlg::AesXcbc => (16, 16),
        MacAlg::DesCbcMac(crate::mechanism::des::Family::Des) => (8, 8),
        MacAlg::DesCbcMac(_) | MacAlg::Des3Cmac => (16, 24),
        MacAlg::Hmac(_) => (1, MAX_SECRET_LEN),
    };
    Mechanism {
        ty,
        min_key_size,
        max_key_size,
        flags: CKF_SIGN | CKF_VERIFY,
        operation: Operation::Mac {
            alg,
            key_type,
            length,
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

const fn ecdsa_mechanism(ty: CK_MECHANISM_TYPE, hash: Option<Hash>) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 256,
        max_key_size: 521,
        flags: CKF_SIGN | CKF_VERIFY | EC_FLAGS,
        operation: Operation::Ecdsa { hash },
    }
}

const fn dsa_mechanism(ty: CK_MECHANISM_TYPE, hash: Option<Hash>) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 1024,
        max_key_size: 3072,
        flags: CKF_SIGN | CKF_VERIFY,
        operation: Operation::Dsa { hash },
    }
}

const fn tls_derive_mechanism(ty: CK_MECHANISM_TYPE, operation: Operation) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 1,
        max_key_size: MAX_SECRET_LEN,
        flags: CKF_DERIVE,
        operation,
    }
}

const fn combine_mechanism(ty: CK_MECHANISM_TYPE, how: Combination) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 1,
        max_key_size: MAX_SECRET_LEN,
        flags: CKF_DERIVE,
        operation: Operation::Combine(how),
    }
}

const fn aes_mechanism(ty: CK_MECHANISM_TYPE, mode: crate::mechanism::aes::Mode) -> Mechanism {
    Mechanism {
        ty,
        min_key_size: 16,
        max_key_size: 32,
        // CTR, GCM and CCM do not wrap keys: a key stream or a nonce that
        // must never repeat has no place in key transport; nor does CTS
        // (NSS's neither).
        flags: match mode {
            crate::mechanism::aes::Mode::Ctr
            | crate::mechanism::aes::Mode::Gcm
            | crate::mechanism::aes::Mode::Ccm
            | crate::mechanism::aes::Mode::Cts => CKF_ENCRYPT | CKF_DECRYPT,
            _ => CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        },
        operation: Operation::Aes(mode),
    }
}

const fn des_mechanism(
    ty: CK_MECHANISM_TYPE,
    family: crate::mechanism::des::Family,
    mode: crate::mechanism::des::Mode,
) -> Mechanism {
    // Key sizes in bytes, as NSS gives them: DES 8, DES3 16 (two keys) to 24.
    let (min_key_size, max_key_size) = match family {
        crate::mechanism::des::Family::Des => (8, 8),
        crate::mechanism::des::Family::Des3 => (16, 24),
    };
    Mechanism {
        ty,
        min_key_size,
        max_key_size,
        flags: CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        operation: Operation::Des(family, mode),
    }
}

const fn des_encrypt_data_mechanism(ty: CK_MECHANISM_TYPE, how: Combination) -> Mechanism {
    let (min_key_size, max_key_size) = match how {
        Combination::DesEcbEncrypt(crate::mechanism::des::Family::Des)
        | Combination::DesCbcEncrypt(crate::mechanism::des::Family::Des) => (8, 8),
        _ => (16, 24),
    };
    Mechanism {
        ty,
        min_key_size,
        max_key_size,
        flags: CKF_DERIVE,
        operation: Operation::Combine(how),
    }
}

const fn rsa_mechanism(ty: CK_MECHANISM_TYPE, scheme: crate::mechanism::rsa::Scheme) -> Mechanism {
    let flags = match scheme {
        crate::mechanism::rsa::Scheme::Pkcs1(None) | crate::mechanism::rsa::Scheme::X509 => {
            CKF_SIGN
                | CKF_VERIFY
                | CKF_SIGN_RECOVER
                | CKF_VERIFY_RECOVER
                | CKF_ENCRYPT
                | CKF_DECRYPT
                | CKF_WRAP
                | CKF_UNWRAP
        }
        crate::mechanism::rsa::Scheme::Oaep => CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        _ => CKF_SIGN | CKF_VERIFY,
    };
    Mechanism {
        ty,
        min_key_size: crate::mechanism::rsa::MIN_BITS,
        max_key_size: crate::mechanism::rsa::MAX_BITS,
        flags,
        operation: Operation::Rsa(scheme),
    }
}

static MECHANISMS: &[Mechanism] = &[
    digest_mechanism(&hash::MD5),
    digest_mechanism(&hash::SHA1),
    digest_mechanism(&hash::SHA224),
    digest_mechanism(&hash::SHA256),
    digest_mechanism(&hash::SHA384),
    digest_mechanism(&hash::SHA512),
    digest_mechanism(&hash::SHA512_224),
    digest_mechanism(&hash::SHA512_256),
    digest_mechanism(&hash::SHA3_224),
    digest_mechanism(&hash::SHA3_256),
    digest_mechanism(&hash::SHA3_384),
    digest_mechanism(&hash::SHA3_512),
    hmac_mechanism(&hash::MD5),
    hmac_general_mechanism(&hash::MD5),
    hmac_mechanism(&hash::SHA1),
    hmac_general_mechanism(&hash::SHA1),
    hmac_mechanism(&hash::SHA224),
    hmac_general_mechanism(&hash::SHA224),
    hmac_mechanism(&hash::SHA256),
    hmac_general_mechanism(&hash::SHA256),
    hmac_mechanism(&hash::SHA384),
    hmac_general_mechanism(&hash::SHA384),
    hmac_mechanism(&hash::SHA512),
    hmac_general_mechanism(&hash::SHA512),
    hmac_mechanism(&hash::SHA512_224),
    hmac_general_mechanism(&hash::SHA512_224),
    hmac_mechanism(&hash::SHA512_256),
    hmac_general_mechanism(&hash::SHA512_256),
    hmac_mechanism(&hash::SHA3_224),
    hmac_general_mechanism(&hash::SHA3_224),
    hmac_mechanism(&hash::SHA3_256),
    hmac_general_mechanism(&hash::SHA3_256),
    hmac_mechanism(&hash::SHA3_384),
    hmac_general_mechanism(&hash::SHA3_384),
    hmac_mechanism(&hash::SHA3_512),
    hmac_general_mechanism(&hash::SHA3_512),
    mac_mechanism(CKM_AES_CMAC, MacAlg::Cmac, CKK_AES, MacLength::Full),
    mac_mechanism(
        CKM_AES_CMAC_GENERAL,
        MacAlg::Cmac,
        CKK_AES,
        MacLength::Parameter,
    ),
    key_gen_mechanism(
        CKM_GENERIC_SECRET_KEY_GEN,
        CKK_GENERIC_SECRET,
        1,
        MAX_SECRET_LEN,
    ),
    key_gen_mechanism(CKM_AES_KEY_GEN, CKK_AES, 16, 32),
    key_gen_mechanism(CKM_CHACHA20_KEY_GEN, CKK_CHACHA20, 32, 32),
    Mechanism {
        ty: CKM_CHACHA20,
        min_key_size: 32,
        max_key_size: 32,
        flags: CKF_ENCRYPT | CKF_DECRYPT,
        operation: Operation::Chacha(crate::mechanism::chacha::Mode::Chacha20),
    },
    Mechanism {
        ty: CKM_CHACHA20_POLY1305,
        min_key_size: 32,
        max_key_size: 32,
        flags: CKF_ENCRYPT | CKF_DECRYPT,
        operation: Operation::Chacha(crate::mechanism::chacha::Mode::Chacha20Poly1305),
    },
    key_gen_mechanism(CKM_DES_KEY_GEN, CKK_DES, 8, 8),
    key_gen_mechanism(CKM_DES2_KEY_GEN, CKK_DES2, 16, 16),
    key_gen_mechanism(CKM_DES3_KEY_GEN, CKK_DES3, 24, 24),
    des_mechanism(
        CKM_DES_ECB,
        crate::mechanism::des::Family::Des,
        crate::mechanism::des::Mode::Ecb,
    ),
    des_mechanism(
        CKM_DES_CBC,
        crate::mechanism::des::Family::Des,
        crate::mechanism::des::Mode::Cbc,
    ),
    des_mechanism(
        CKM_DES_CBC_PAD,
        crate::mechanism::des::Family::Des,
        crate::mechanism::des::Mode::CbcPad,
    ),
    des_mechanism(
        CKM_DES3_ECB,
        crate::mechanism::des::Family::Des3,
        crate::mechanism::des::Mode::Ecb,
    ),
    des_mechanism(
        CKM_DES3_CBC,
        crate::mechanism::des::Family::Des3,
        crate::mechanism::des::Mode::Cbc,
    ),
    des_mechanism(
        CKM_DES3_CBC_PAD,
        crate::mechanism::des::Family::Des3,
        crate::mechanism::des::Mode::CbcPad,
    ),
    mac_mechanism(
        CKM_DES_MAC,
        MacAlg::DesCbcMac(crate::mechanism::des::Family::Des),
        CKK_DES,
        MacLength::Half,
    ),
    mac_mechanism(
        CKM_DES_MAC_GENERAL,
        MacAlg::DesCbcMac(crate::mechanism::des::Family::Des),
        CKK_DES,
        MacLength::Parameter,
    ),
    mac_mechanism(
        CKM_DES3_MAC,
        MacAlg::DesCbcMac(crate::mechanism::des::Family::Des3),
        CKK_DES3,
        MacLength::Half,
    ),
    mac_mechanism(
        CKM_DES3_MAC_GENERAL,
        MacAlg::DesCbcMac(crate::mechanism::des::Family::Des3),
        CKK_DES3,
        MacLength::Parameter,
    ),
    mac_mechanism(CKM_AES_XCBC_MAC, MacAlg::AesXcbc, CKK_AES, MacLength::Full),
    mac_mechanism(
        CKM_AES_XCBC_MAC_96,
        MacAlg::AesXcbc,
        CKK_AES,
        MacLength::Fixed(12),
    ),
    mac_mechanism(CKM_DES3_CMAC, MacAlg::Des3Cmac, CKK_DES3, MacLength::Full),
    mac_mechanism(
        CKM_DES3_CMAC_GENERAL,
        MacAlg::Des3Cmac,
        CKK_DES3,
        MacLength::Parameter,
    ),
    Mechanism {
        ty: CKM_EC_KEY_PAIR_GEN,
        min_key_size: 256,
        max_key_size: 521,
        flags: CKF_GENERATE_KEY_PAIR | EC_FLAGS,
        operation: Operation::EcKeyPairGen,
    },
    ecdsa_mechanism(CKM_ECDSA, None),
    ecdsa_mechanism(CKM_ECDSA_SHA1, Some(Hash::Sha1)),
    ecdsa_mechanism(CKM_ECDSA_SHA224, Some(Hash::Sha224)),
    ecdsa_mechanism(CKM_ECDSA_SHA256, Some(Hash::Sha256)),
    ecdsa_mechanism(CKM_ECDSA_SHA384, Some(Hash::Sha384)),
    ecdsa_mechanism(CKM_ECDSA_SHA512, Some(Hash::Sha512)),
    ecdsa_mechanism(CKM_ECDSA_SHA3_256, Some(Hash::Sha3_256)),
    ecdsa_mechanism(CKM_ECDSA_SHA3_384, Some(Hash::Sha3_384)),
    ecdsa_mechanism(CKM_ECDSA_SHA3_512, Some(Hash::Sha3_512)),
    aes_mechanism(CKM_AES_ECB, crate::mechanism::aes::Mode::Ecb),
    aes_mechanism(CKM_AES_CBC, crate::mechanism::aes::Mode::Cbc),
    aes_mechanism(CKM_AES_CBC_PAD, crate::mechanism::aes::Mode::CbcPad),
    aes_mechanism(CKM_AES_CTR, crate::mechanism::aes::Mode::Ctr),
    aes_mechanism(CKM_AES_CTS, crate::mechanism::aes::Mode::Cts),
    aes_mechanism(CKM_AES_CCM, crate::mechanism::aes::Mode::Ccm),
    aes_mechanism(CKM_AES_GCM, crate::mechanism::aes::Mode::Gcm),
    aes_mechanism(CKM_AES_KEY_WRAP, crate::mechanism::aes::Mode::KeyWrap),
    // RFC 5649 under both numbers: 3.0's KWP, and KEY_WRAP_PAD as SoftHSMv2
    // and other tokens implement it.
    aes_mechanism(
        CKM_AES_KEY_WRAP_PAD,
        crate::mechanism::aes::Mode::KeyWrapPad,
    ),
    aes_mechanism(
        CKM_AES_KEY_WRAP_KWP,
        crate::mechanism::aes::Mode::KeyWrapPad,
    ),
    Mechanism {
        ty: CKM_RSA_PKCS_KEY_PAIR_GEN,
        min_key_size: crate::mechanism::rsa::MIN_BITS,
        max_key_size: crate::mechanism::rsa::MAX_BITS,
        flags: CKF_GENERATE_KEY_PAIR,
        operation: Operation::RsaKeyPairGen,
    },
    rsa_mechanism(CKM_RSA_PKCS, crate::mechanism::rsa::Scheme::Pkcs1(None)),
    rsa_mechanism(
        CKM_MD5_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::MD5)),
    ),
    rsa_mechanism(
        CKM_SHA1_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA1)),
    ),
    rsa_mechanism(
        CKM_SHA224_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA224)),
    ),
    rsa_mechanism(
        CKM_SHA256_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA256)),
    ),
    rsa_mechanism(
        CKM_SHA384_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA384)),
    ),
    rsa_mechanism(
        CKM_SHA512_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA512)),
    ),
    rsa_mechanism(CKM_RSA_PKCS_PSS, crate::mechanism::rsa::Scheme::Pss(None)),
    rsa_mechanism(
        CKM_SHA1_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA1)),
    ),
    rsa_mechanism(
        CKM_SHA224_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA224)),
    ),
    rsa_mechanism(
        CKM_SHA256_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA256)),
    ),
    rsa_mechanism(
        CKM_SHA384_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA384)),
    ),
    rsa_mechanism(
        CKM_SHA512_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA512)),
    ),
    rsa_mechanism(
        CKM_SHA3_256_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA3_256)),
    ),
    rsa_mechanism(
        CKM_SHA3_384_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA3_384)),
    ),
    rsa_mechanism(
        CKM_SHA3_512_RSA_PKCS,
        crate::mechanism::rsa::Scheme::Pkcs1(Some(&hash::SHA3_512)),
    ),
    rsa_mechanism(
        CKM_SHA3_256_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA3_256)),
    ),
    rsa_mechanism(
        CKM_SHA3_384_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA3_384)),
    ),
    rsa_mechanism(
        CKM_SHA3_512_RSA_PKCS_PSS,
        crate::mechanism::rsa::Scheme::Pss(Some(&hash::SHA3_512)),
    ),
    rsa_mechanism(CKM_RSA_X_509, crate::mechanism::rsa::Scheme::X509),
    rsa_mechanism(CKM_RSA_PKCS_OAEP, crate::mechanism::rsa::Scheme::Oaep),
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
        ty: CKM_DH_PKCS_KEY_PAIR_GEN,
        min_key_size: 1024,
        max_key_size: 8192,
        flags: CKF_GENERATE_KEY_PAIR,
        operation: Operation::DhKeyPairGen,
    },
    Mechanism {
        ty: CKM_DH_PKCS_DERIVE,
        min_key_size: 1024,
        max_key_size: 8192,
        flags: CKF_DERIVE,
        operation: Operation::DhDerive,
    },
    Mechanism {
        ty: CKM_DH_PKCS_PARAMETER_GEN,
        min_key_size: 1024,
        max_key_size: 4096,
        flags: CKF_GENERATE,
        operation: Operation::DhParameterGen,
    },
    Mechanism {
        ty: CKM_DSA_PARAMETER_GEN,
        min_key_size: 1024,
        max_key_size: 3072,
        flags: CKF_GENERATE,
        operation: Operation::DsaParameterGen,
    },
    Mechanism {
        ty: CKM_DSA_KEY_PAIR_GEN,
        min_key_size: 1024,
        max_key_size: 3072,
        flags: CKF_GENERATE_KEY_PAIR,
        operation: Operation::DsaKeyPairGen,
    },
    dsa_mechanism(CKM_DSA, None),
    dsa_mechanism(CKM_DSA_SHA1, Some(Hash::Sha1)),
    dsa_mechanism(CKM_DSA_SHA224, Some(Hash::Sha224)),
    dsa_mechanism(CKM_DSA_SHA256, Some(Hash::Sha256)),
    dsa_mechanism(CKM_DSA_SHA384, Some(Hash::Sha384)),
    dsa_mechanism(CKM_DSA_SHA512, Some(Hash::Sha512)),
    dsa_mechanism(CKM_DSA_SHA3_224, Some(Hash::Sha3_224)),
    dsa_mechanism(CKM_DSA_SHA3_256, Some(Hash::Sha3_256)),
    dsa_mechanism(CKM_DSA_SHA3_384, Some(Hash::Sha3_384)),
    dsa_mechanism(CKM_DSA_SHA3_512, Some(Hash::Sha3_512)),
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
    combine_mechanism(CKM_CONCATENATE_BASE_AND_KEY, Combination::BaseAndKey),
    combine_mechanism(CKM_CONCATENATE_BASE_AND_DATA, Combination::BaseAndData),
    combine_mechanism(CKM_CONCATENATE_DATA_AND_BASE, Combination::DataAndBase),
    combine_mechanism(CKM_XOR_BASE_AND_DATA, Combination::XorBaseAndData),
    combine_mechanism(CKM_EXTRACT_KEY_FROM_KEY, Combination::ExtractFromKey),
    Mechanism {
        ty: CKM_AES_ECB_ENCRYPT_DATA,
        min_key_size: 16,
        max_key_size: 32,
        flags: CKF_DERIVE,
        operation: Operation::Combine(Combination::AesEcbEncrypt),
    },
    Mechanism {
        ty: CKM_AES_CBC_ENCRYPT_DATA,
        min_key_size: 16,
        max_key_size: 32,
        flags: CKF_DERIVE,
        operation: Operation::Combine(Combination::AesCbcEncrypt),
    },
    des_encrypt_data_mechanism(
        CKM_DES_ECB_ENCRYPT_DATA,
        Combination::DesEcbEncrypt(crate::mechanism::des::Family::Des),
    ),
    des_encrypt_data_mechanism(
        CKM_DES_CBC_ENCRYPT_DATA,
        Combination::DesCbcEncrypt(crate::mechanism::des::Family::Des),
    ),
    des_encrypt_data_mechanism(
        CKM_DES3_ECB_ENCRYPT_DATA,
        Combination::DesEcbEncrypt(crate::mechanism::des::Family::Des3),
    ),
    des_encrypt_data_mechanism(
        CKM_DES3_CBC_ENCRYPT_DATA,
        Combination::DesCbcEncrypt(crate::mechanism::des::Family::Des3),
    ),
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
        ty: CKM_TLS_PRE_MASTER_KEY_GEN,
        min_key_size: 48,
        max_key_size: 48,
        flags: CKF_GENERATE,
        operation: Operation::TlsPreMasterKeyGen,
    },
    tls_derive_mechanism(CKM_TLS12_MASTER_KEY_DERIVE, Operation::TlsMaster),
    tls_derive_mechanism(CKM_TLS12_MASTER_KEY_DERIVE_DH, Operation::TlsMaster),
    tls_derive_mechanism(
        crate::nss::CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE,
        Operation::TlsMaster,
    ),
    tls_derive_mechanism(
        crate::nss::CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE_DH,
        Operation::TlsMaster,
    ),
    tls_derive_mechanism(CKM_TLS12_KDF, Operation::TlsKdf),
    tls_derive_mechanism(CKM_TLS12_KEY_AND_MAC_DERIVE, Operation::TlsKeyMaterial),
    tls_derive_mechanism(CKM_TLS12_KEY_SAFE_DERIVE, Operation::TlsKeyMaterial),
    Mechanism {
        ty: CKM_TLS_MAC,
        min_key_size: 48,
        max_key_size: 48,
        flags: CKF_SIGN | CKF_VERIFY,
        operation: Operation::TlsMac,
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
        use crate::mechanism::rsa::Scheme;
        match self.operation {
            Operation::Ecdsa { hash } | Operation::Dsa { hash } => hash.is_none(),
            Operation::Rsa(scheme) => matches!(
                scheme,
                Scheme::Pkcs1(None) | Scheme::Pss(None) | Scheme::X509 | Scheme::Oaep
            ),
            Operation::Eddsa => true,
            Operation::Aes(mode) => {
                matches!(
                    mode,
                    crate::mechanism::aes::Mode::KeyWrap | crate::mechanism::aes::Mode::KeyWrapPad
                )
            }
            _ => false,
        }
    }

    /// The part of an unwrapping's plaintext that is the key's value: raw
    /// RSA (CKM_RSA_X_509) gives the key left-padded with zeros to the
    /// modulus size, so a key of CKA_VALUE_LEN bytes is its end; the other
    /// mechanisms give the key from the start.
    pub fn unwrapped_value<'a>(&self, plaintext: &'a [u8], template: &Attrs) -> &'a [u8] {
        let raw_rsa = matches!(
            self.operation,
            Operation::Rsa(crate::mechanism::rsa::Scheme::X509)
        );
        match template.ulong(CKA_VALUE_LEN) {
            Some(len) if raw_rsa && (len as usize) < plaintext.len() => {
                &plaintext[plaintext.len() - len as usize..]
            }
            _ => plaintext,
        }
    }

    /// The block a wrapping with this mechanism fills with zeros, for a
    /// mechanism that has no padding of its own (AES-ECB, AES-CBC, RFC 3394
    /// key wrap): the specification's rule for wrapping a key whose length
    /// is not a multiple of the block.
    pub fn wrap_block(&self) -> Option<usize> {
        use crate::mechanism::aes::Mode;
        match self.operation {
            Operation::Aes(Mode::Ecb | Mode::Cbc) => Some(16),
            Operation::Aes(Mode::KeyWrap) => Some(8),
            Operation::Des(
                _,
                crate::mechanism::des::Mode::Ecb | crate::mechanism::des::Mode::Cbc,
            ) => Some(8),
            _ => None,
        }
    }

    /// CK_MECHANISM_INFO.flags: the table's, with the 3.0 message-based
    /// flags for what the message API runs (every signature, AES-GCM,
    /// ChaCha20-Poly1305).
    pub fn info_flags(&self) -> CK_FLAGS {
        let mut flags = self.flags;
        if flags & CKF_SIGN != 0 {
            flags |= CKF_MESSAGE_SIGN;
        }
        if flags & CKF_VERIFY != 0 {
            flags |= CKF_MESSAGE_VERIFY;
        }
        if matches!(
            self.operation,
            Operation::Aes(crate::mechanism::aes::Mode::Gcm)
                | Operation::Chacha(crate::mechanism::chacha::Mode::Chacha20Poly1305)
        ) {
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

/// The digest a mechanism makes (C_DigestInit).
pub fn digest_op(m: &Mechanism) -> Result<DigestOp> {
    match m.operation {
        Operation::Digest(alg) => DigestOp::new(alg),
        _ => Err(Rv::MechanismInvalid),
    }
}

/// The cipher a mechanism makes with a key: for encryption or decryption
/// (C_Encrypt*, C_Decrypt*), or for wrapping or unwrapping keys.
pub fn cipher_op(
    arg: &MechanismArg,
    key: &Attrs,
    purpose: CipherUse,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    let m = find(arg.ty)?;
    if m.flags & purpose.flag() == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let (direction, usage) = (purpose.direction(), purpose.usage());
    match m.operation {
        Operation::Aes(mode) => {
            crate::mechanism::aes::cipher_op(mode, arg, key, direction, usage, kept)
        }
        Operation::Des(family, mode) => {
            crate::mechanism::des::cipher_op(family, mode, arg, key, direction, usage)
        }
        Operation::Chacha(mode) => {
            crate::mechanism::chacha::cipher_op(mode, arg, key, direction, usage, kept)
        }
        Operation::Rsa(scheme) => {
            crate::mechanism::rsa::cipher_op(scheme, arg, key, direction, usage)
        }
        _ => Err(Rv::MechanismInvalid),
    }
}

pub fn encrypt_op(
    arg: &MechanismArg,
    key: &Attrs,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    cipher_op(arg, key, CipherUse::Encrypt, kept)
}

pub fn decrypt_op(
    arg: &MechanismArg,
    key: &Attrs,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    cipher_op(arg, key, CipherUse::Decrypt, kept)
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
            crate::mechanism::ec::sign_op(key, hash)
        }
        Operation::Dsa { hash } => {
            arg.no_param()?;
            crate::mechanism::dsa::sign_op(key, hash)
        }
        Operation::Rsa(scheme) => crate::mechanism::rsa::sign_op(scheme, arg, key),
        Operation::TlsMac => crate::mechanism::tls::mac_sign_op(arg, key),
        Operation::Eddsa => crate::mechanism::curve25519::sign_op(arg, key),
        Operation::Mac {
            alg,
            key_type,
            length,
        } => Ok(Box::new(mac::mac_op(
            alg, key_type, length, arg, key, CKA_SIGN, kept,
        )?)),
        _ => Err(Rv::MechanismInvalid),
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
            crate::mechanism::ec::verify_op(key, hash)
        }
        Operation::Dsa { hash } => {
            arg.no_param()?;
            crate::mechanism::dsa::verify_op(key, hash)
        }
        Operation::Rsa(scheme) => crate::mechanism::rsa::verify_op(scheme, arg, key),
        Operation::TlsMac => crate::mechanism::tls::mac_verify_op(arg, key),
        Operation::Eddsa => crate::mechanism::curve25519::verify_op(arg, key),
        Operation::Mac {
            alg,
            key_type,
            length,
        } => Ok(Box::new(mac::mac_op(
            alg, key_type, length, arg, key, CKA_VERIFY, kept,
        )?)),
        _ => Err(Rv::MechanismInvalid),
    }
}

/// A new key pair (C_GenerateKeyPair): the public half, then the private.
pub fn generate_key_pair(
    arg: &MechanismArg,
    public_template: &Attrs,
    private_template: &Attrs,
) -> Result<(Generated, Generated)> {
    let m = find(arg.ty)?;
    match m.operation {
        Operation::DhKeyPairGen => {
            arg.no_param()?;
            crate::mechanism::dh::generate(m.ty, public_template, private_template)
        }
        Operation::DsaKeyPairGen => {
            arg.no_param()?;
            crate::mechanism::dsa::generate(m.ty, public_template)
        }
        Operation::EcKeyPairGen => {
            arg.no_param()?;
            crate::mechanism::ec::generate(m.ty, public_template)
        }
        Operation::RsaKeyPairGen => {
            arg.no_param()?;
            crate::mechanism::rsa::generate(m.ty, public_template)
        }
        Operation::Curve25519KeyPairGen { key_type } => {
            arg.no_param()?;
            crate::mechanism::curve25519::generate(m.ty, key_type, public_template)
        }
        _ => Err(Rv::MechanismInvalid),
    }
}

/// A new secret key's value (C_GenerateKey); the template gives its length.
pub fn generate_key(arg: &MechanismArg, template: &Attrs) -> Result<Generated> {
    let m = find(arg.ty)?;
    let key_type = match m.operation {
        Operation::SecretKeyGen { key_type } => key_type,
        Operation::Pbkdf2 => return crate::mechanism::kdf::pbkdf2_key(m.ty, arg, template),
        Operation::TlsPreMasterKeyGen => {
            return crate::mechanism::tls::pre_master_key(m.ty, arg, template);
        }
        Operation::DhParameterGen => {
            arg.no_param()?;
            return crate::mechanism::dh::generate_parameters(m.ty, template);
        }
        Operation::DsaParameterGen => {
            arg.no_param()?;
            return crate::mechanism::dsa::generate_parameters(m.ty, template);
        }
        _ => return Err(Rv::MechanismInvalid),
    };
    arg.no_param()?;
    let value = if let Some(len) = crate::object::fixed_key_len(key_type) {
        // Its length is the key type's; a CKA_VALUE_LEN must say the same.
        if template.get(CKA_VALUE_LEN).is_some()
            && template.ulong(CKA_VALUE_LEN) != Some(len as CK_ULONG)
        {
            return Err(Rv::TemplateInconsistent);
        }
        if crate::object::des_key_len(key_type).is_some() {
            crate::mechanism::des::new_key(key_type)?
        } else {
            let mut value = Zeroizing::new(vec![0u8; len]);
            crate::engine::random_fill(&mut value)?;
            value
        }
    } else {
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
        crate::engine::random_fill(&mut value)?;
        value
    };
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
/// C_DeriveKey's derivation; `other` is the second key some take (the
/// one CKM_CONCATENATE_BASE_AND_KEY's parameter names).
pub fn derive_key(
    arg: &MechanismArg,
    base: &Attrs,
    other: Option<&Attrs>,
    template: &Attrs,
) -> Result<Generated> {
    let m = find(arg.ty)?;
    match m.operation {
        Operation::Combine(how) => {
            crate::mechanism::combine::derive(m.ty, how, arg, base, other, template)
        }
        Operation::EcdhDerive => crate::mechanism::ec::derive(m.ty, arg, base, template),
        Operation::DhDerive => crate::mechanism::dh::derive(m.ty, &arg.param, base, template),
        Operation::Sp800_108 => kdf::sp800_108(m.ty, prf_of(arg)?, arg, base, template),
        Operation::Hkdf => crate::mechanism::kdf::hkdf(m.ty, arg, base, template),
        Operation::TlsMaster => crate::mechanism::tls::master_key(arg, base, template),
        Operation::TlsKdf => crate::mechanism::tls::kdf(arg, base, template),
        _ => Err(Rv::MechanismInvalid),
    }
}

/// The MAC that an SP 800-108 parameter names as its PRF.
fn prf_of(arg: &MechanismArg) -> Result<MacAlg> {
    let Some(KdfParams::Sp800_108 { prf, .. }) = &arg.kdf else {
        return Err(Rv::MechanismParamInvalid);
    };
    match find(*prf).map_err(|_| Rv::MechanismParamInvalid)?.operation {
        Operation::Mac { alg, .. } => Ok(alg),
        _ => Err(Rv::MechanismParamInvalid),
    }
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

    #[test]
    fn every_key_type_a_mechanism_names_can_be_an_object() {
        for m in MECHANISMS {
            let key_type = match m.operation {
                Operation::Mac { key_type, .. } | Operation::SecretKeyGen { key_type } => key_type,
                _ => continue,
            };
            assert!(
                crate::object::is_secret_key_type(key_type),
                "mechanism {:#x} names key type {key_type:#x}, which no object may have",
                m.ty
            );
        }
    }
}
