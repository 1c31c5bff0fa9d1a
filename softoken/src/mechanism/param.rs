//! A mechanism's parameter as the C boundary read it: the structure's bytes,
//! and for structures that hold pointers, what they point at, parsed.

use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::rv::{Result, Rv};

/// A mechanism as a caller names it: its type and its parameter's bytes
/// (and, for parameters that hold pointers, what they point at).
#[derive(Clone, Default)]
pub struct MechanismArg {
    pub ty: CK_MECHANISM_TYPE,
    pub param: Vec<u8>,
    pub aead: Option<AeadParams>,
    /// What the parameter's pointers refer to, in the structure's order
    /// (OAEP: the label; ECDH: the shared data, then the public data).
    pub pointed: Vec<Vec<u8>>,
    /// A KDF's parameters (HKDF, PBKDF2, SP 800-108).
    pub kdf: Option<KdfParams>,
}

/// The i-th word of a parameter structure whose fields are CK_ULONGs or
/// pointers (one word each on the platforms this module is built for).
pub fn param_word(param: &[u8], i: usize) -> Result<CK_ULONG> {
    const UL: usize = std::mem::size_of::<CK_ULONG>();
    let bytes: [u8; UL] = param
        .get(i * UL..(i + 1) * UL)
        .and_then(|b| b.try_into().ok())
        .ok_or(Rv::MechanismParamInvalid)?;
    Ok(CK_ULONG::from_ne_bytes(bytes))
}

impl MechanismArg {
    /// The i-th word of the parameter.
    pub fn word(&self, i: usize) -> Result<CK_ULONG> {
        param_word(&self.param, i)
    }

    /// A parameter that is one CK_ULONG.
    pub fn ulong_param(&self) -> Result<CK_ULONG> {
        if self.param.len() != std::mem::size_of::<CK_ULONG>() {
            return Err(Rv::MechanismParamInvalid);
        }
        self.word(0)
    }

    pub fn no_param(&self) -> Result<()> {
        if self.param.is_empty() {
            Ok(())
        } else {
            Err(Rv::MechanismParamInvalid)
        }
    }
}

/// An AEAD's parameters (CK_GCM_PARAMS, CK_CCM_PARAMS,
/// CK_SALSA20_CHACHA20_POLY1305_PARAMS),
/// read at the C boundary: the IV or nonce, the additional data, the tag's
/// length.
#[derive(Clone, Debug, Default)]
pub struct AeadParams {
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub tag_bits: CK_ULONG,
    /// The message's length, which CCM must know before it starts.
    pub data_len: Option<CK_ULONG>,
}

/// Where an HKDF salt comes from.
#[derive(Clone, Debug)]
pub enum HkdfSalt {
    Null,
    Data(Vec<u8>),
    /// A key's value: the caller gives a handle, which C_DeriveKey turns
    /// into the key's value (Data) before the derivation runs.
    Key(CK_OBJECT_HANDLE),
}

/// One piece of SP 800-108's fixed input.
#[derive(Clone, Debug)]
pub enum DataParam {
    /// The iteration counter, `width` bits.
    Counter {
        little_endian: bool,
        width: u32,
    },
    /// The length of the derived material in bits (of all keys, or of all
    /// PRF outputs).
    DkmLength {
        of_segments: bool,
        little_endian: bool,
        width: u32,
    },
    Bytes(Vec<u8>),
}

/// The parameters of a KDF, read at the C boundary (they hold pointers).
#[derive(Clone, Debug)]
pub enum KdfParams {
    Hkdf {
        extract: bool,
        expand: bool,
        prf: CK_MECHANISM_TYPE,
        salt: HkdfSalt,
        info: Vec<u8>,
    },
    Pbkdf2 {
        salt: Vec<u8>,
        iterations: CK_ULONG,
        prf: CK_ULONG,
        password: Zeroizing<Vec<u8>>,
    },
    Sp800_108 {
        prf: CK_MECHANISM_TYPE,
        data: Vec<DataParam>,
    },
    /// A TLS 1.2 master secret: from the two hellos' randoms (RFC 5246),
    /// or from the session hash (RFC 7627's extended master secret).
    /// `version_out` is the caller's CK_VERSION pointer (0: none), written
    /// at the C boundary once the key is made.
    TlsMaster {
        prf: CK_MECHANISM_TYPE,
        seed: TlsMasterSeed,
        version_out: CK_ULONG,
    },
    /// CKM_TLS12_KEY_AND_MAC_DERIVE (and KEY_SAFE_DERIVE, whose IV length
    /// is zero): the key block's sizes in bytes, and `out`, the caller's
    /// CK_SSL3_KEY_MAT_OUT pointer, filled at the C boundary.
    TlsKeyMaterial {
        prf: CK_MECHANISM_TYPE,
        mac_len: usize,
        key_len: usize,
        iv_len: usize,
        export: bool,
        client_random: Vec<u8>,
        server_random: Vec<u8>,
        out: CK_ULONG,
    },
    /// CKM_TLS12_KDF: RFC 5705's exporter.
    TlsKdf {
        prf: CK_MECHANISM_TYPE,
        label: Vec<u8>,
        client_random: Vec<u8>,
        server_random: Vec<u8>,
        context: Option<Vec<u8>>,
    },
}

/// What a TLS 1.2 master secret is computed over.
#[derive(Clone, Debug)]
pub enum TlsMasterSeed {
    Randoms {
        client_random: Vec<u8>,
        server_random: Vec<u8>,
    },
    SessionHash(Vec<u8>),
}
