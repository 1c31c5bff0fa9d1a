//! ChaCha20 (CKM_CHACHA20) and ChaCha20-Poly1305 (CKM_CHACHA20_POLY1305),
//! RFC 8439's forms (a 96-bit nonce, a 32-bit block counter, a 16-byte
//! tag), single- and multi-part, with CKK_CHACHA20 keys of 32 bytes. The
//! ciphers are the engine's.

use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::cache::kept::KeptContexts;
use crate::engine::chacha::{chacha20_xor, BLOCK};
use crate::engine::secret::SecretVec;
use crate::engine::{AeadContext, Direction};
use crate::mechanism::aead::AeadOp;
use crate::mechanism::op::{require_key, CipherOp, KeyTypes, Part};
use crate::mechanism::param::MechanismArg;
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};

/// The two mechanisms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Chacha20,
    Chacha20Poly1305,
}

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The value of a ChaCha20 key allowing `usage`.
pub fn key_value(key: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<Zeroizing<Vec<u8>>> {
    require_key(key, CKO_SECRET_KEY, KeyTypes::One(CKK_CHACHA20), usage)?;
    let value = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    if value.len() != 32 {
        return Err(Rv::KeySizeRange);
    }
    Ok(Zeroizing::new(value.to_vec()))
}

/// The stream: whole blocks straight through, the rest of a block's
/// keystream kept for the next part.
struct StreamOp {
    key: Zeroizing<Vec<u8>>,
    nonce: [u8; NONCE_LEN],
    /// The next block's counter; 2^32 is the end of the stream.
    counter: u64,
    keystream: SecretVec,
}

impl CipherOp for StreamOp {
    fn output_len(&self, more: usize, _part: Part) -> usize {
        more
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = input.to_vec();
        let kept = self.keystream.len().min(out.len());
        for (o, k) in out.iter_mut().zip(self.keystream.drain(..kept)) {
            *o ^= k;
        }
        let rest = &mut out[kept..];
        let blocks = rest.len().div_ceil(BLOCK) as u64;
        if self.counter + blocks > 1 << 32 {
            return Err(Rv::DataLenRange);
        }
        let whole = rest.len() - rest.len() % BLOCK;
        let (body, tail) = rest.split_at_mut(whole);
        chacha20_xor(&self.key, &self.nonce, self.counter as u32, body)?;
        self.counter += (whole / BLOCK) as u64;
        if !tail.is_empty() {
            let mut stream = SecretVec::from(vec![0u8; BLOCK]);
            chacha20_xor(&self.key, &self.nonce, self.counter as u32, &mut stream)?;
            self.counter += 1;
            for (o, k) in tail.iter_mut().zip(stream.iter()) {
                *o ^= k;
            }
            self.keystream = SecretVec::from(stream[tail.len()..].to_vec());
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

/// The operation of a ChaCha20 mechanism with a key that allows `usage`.
pub fn cipher_op(
    mode: Mode,
    arg: &MechanismArg,
    key: &Attrs,
    direction: Direction,
    usage: CK_ATTRIBUTE_TYPE,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    let value = key_value(key, usage)?;
    Ok(match mode {
        Mode::Chacha20 => {
            // Only RFC 8439's form: a 32-bit counter (little-endian, as NSS
            // reads it) and a 96-bit nonce.
            let [counter, nonce] = arg.pointed.as_slice() else {
                return Err(Rv::MechanismParamInvalid);
            };
            let counter: [u8; 4] = counter
                .as_slice()
                .try_into()
                .map_err(|_| Rv::MechanismParamInvalid)?;
            let nonce = nonce
                .as_slice()
                .try_into()
                .map_err(|_| Rv::MechanismParamInvalid)?;
            Box::new(StreamOp {
                key: value,
                nonce,
                counter: u32::from_le_bytes(counter).into(),
                keystream: SecretVec::default(),
            })
        }
        Mode::Chacha20Poly1305 => {
            let params = arg.aead.as_ref().ok_or(Rv::MechanismParamInvalid)?;
            if params.iv.len() != NONCE_LEN {
                return Err(Rv::MechanismParamInvalid);
            }
            let build = || AeadContext::chacha20_poly1305(&value);
            Box::new(AeadOp::new(
                kept.chacha20_poly1305
                    .get_or_build(&value, TAG_LEN as u64, build)?,
                params.iv.clone(),
                params.aad.clone(),
                TAG_LEN,
                direction,
            ))
        }
    })
}
