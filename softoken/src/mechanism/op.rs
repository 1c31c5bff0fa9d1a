//! What a running operation is, whatever its family: the traits the
//! session's state machine drives, and the input a signature covers.

use pkcs11_sys::*;

use crate::engine::{Direction, Hash};
use crate::mechanism::digest::DigestOp;
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};

/// Raw signature input beyond this is refused (it is meant to be a hash,
/// or at most a modulus).
const MAX_RAW_INPUT: usize = 1024;

/// The data a signature covers, as it arrives: a running hash, or the raw
/// input of a mechanism that takes a caller's digest.
pub enum MessageInput {
    Hash(DigestOp),
    Raw(Vec<u8>),
}

impl MessageInput {
    pub fn new(hash: Option<Hash>) -> Result<MessageInput> {
        Ok(match hash {
            Some(hash) => MessageInput::Hash(DigestOp::new(hash)?),
            None => MessageInput::Raw(Vec::new()),
        })
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
    pub fn digest(&self) -> Result<Vec<u8>> {
        match self {
            MessageInput::Hash(ctx) => ctx.result(),
            MessageInput::Raw(buf) => Ok(buf.clone()),
        }
    }
}

/// Whether a call's input is the last of an operation (C_Encrypt,
/// C_EncryptFinal) or more of it (C_EncryptUpdate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    More,
    Last,
}

/// An encryption or decryption in progress.
pub trait CipherOp: Send {
    /// Enough room for the output of `more` bytes of input, and of the end
    /// of the operation when `part` is the last (it may exceed the exact length,
    /// as the specification allows).
    fn output_len(&self, more: usize, part: Part) -> usize;
    /// Takes more input; returns the output it completes.
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>>;
    /// Ends the operation; returns the last output.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// The whole operation on `input`, written straight into `output`
    /// (which has `output_len(input.len(), Part::Last)` bytes) in one pass, where
    /// the mechanism can; None where it cannot, or once input is buffered.
    fn single_into(&mut self, input: &[u8], output: &mut [u8]) -> Option<Result<usize>> {
        let _ = (input, output);
        None
    }
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

/// What a cipher operation is for: C_Encrypt* and C_Decrypt*, or
/// C_WrapKey and C_UnwrapKey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CipherUse {
    Encrypt,
    Decrypt,
    Wrap,
    Unwrap,
}

impl CipherUse {
    pub fn direction(self) -> Direction {
        match self {
            CipherUse::Encrypt | CipherUse::Wrap => Direction::Encrypt,
            CipherUse::Decrypt | CipherUse::Unwrap => Direction::Decrypt,
        }
    }

    /// The CK_MECHANISM_INFO flag a mechanism needs for this use.
    pub fn flag(self) -> CK_FLAGS {
        match self {
            CipherUse::Encrypt => CKF_ENCRYPT,
            CipherUse::Decrypt => CKF_DECRYPT,
            CipherUse::Wrap => CKF_WRAP,
            CipherUse::Unwrap => CKF_UNWRAP,
        }
    }

    /// The key attribute that must allow this use.
    pub fn usage(self) -> CK_ATTRIBUTE_TYPE {
        match self {
            CipherUse::Encrypt => CKA_ENCRYPT,
            CipherUse::Decrypt => CKA_DECRYPT,
            CipherUse::Wrap => CKA_WRAP,
            CipherUse::Unwrap => CKA_UNWRAP,
        }
    }
}

/// Which half of a signature mechanism: C_Sign* (the private key), or
/// C_Verify* (the public key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureUse {
    Sign,
    Verify,
}

/// The key types a mechanism takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTypes {
    One(CK_KEY_TYPE),
    /// Its own type or a generic secret (the HMACs).
    OneOrGenericSecret(CK_KEY_TYPE),
    /// One of two types (triple DES with two or three keys).
    Either(CK_KEY_TYPE, CK_KEY_TYPE),
    /// Any type of the class (a KDF's base key).
    Any,
}

/// The check every operation makes of its key, in the specification's
/// order of errors: a key of another class or type is
/// CKR_KEY_TYPE_INCONSISTENT; one whose usage attribute (CKA_SIGN,
/// CKA_DECRYPT...) is not TRUE is CKR_KEY_FUNCTION_NOT_PERMITTED.
pub fn require_key(
    key: &Attrs,
    class: CK_OBJECT_CLASS,
    types: KeyTypes,
    usage: CK_ATTRIBUTE_TYPE,
) -> Result<()> {
    if key.ulong(CKA_CLASS) != Some(class) {
        return Err(Rv::KeyTypeInconsistent);
    }
    let key_type = key.ulong(CKA_KEY_TYPE);
    let type_fits = match types {
        KeyTypes::One(t) => key_type == Some(t),
        KeyTypes::OneOrGenericSecret(t) => {
            key_type == Some(t) || key_type == Some(CKK_GENERIC_SECRET)
        }
        KeyTypes::Either(a, b) => key_type == Some(a) || key_type == Some(b),
        KeyTypes::Any => true,
    };
    if !type_fits {
        return Err(Rv::KeyTypeInconsistent);
    }
    if key.bool(usage) != Some(true) {
        return Err(Rv::KeyFunctionNotPermitted);
    }
    Ok(())
}
