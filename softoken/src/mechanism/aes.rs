//! AES encryption and decryption: ECB, CBC, CBC-PAD, CTR and GCM, single-
//! and multi-part. Partial blocks are kept between calls here; the block
//! work is aws-lc-rs's.

use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, PaddedBlockDecryptingKey,
    UnboundCipherKey, AES_128, AES_192, AES_256,
};
use pkcs11_sys::*;
use zeroize::Zeroize;

use std::sync::Arc;

use crate::cache::kept::KeptContexts;
use crate::engine::secret::SecretVec;
use crate::engine::{Direction, GcmContext, KeyWrap};
use crate::mechanism::op::{require_key, CipherOp, KeyTypes, Part};
use crate::mechanism::param::MechanismArg;
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};

const BLOCK: usize = 16;

/// The AES modes of the mechanism table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ecb,
    Cbc,
    CbcPad,
    Ctr,
    Gcm,
    /// RFC 3394 key wrap (input a multiple of 8 bytes).
    KeyWrap,
    /// RFC 5649 key wrap with padding (any input length).
    KeyWrapPad,
}

fn cipher_key(key: &[u8]) -> Result<UnboundCipherKey> {
    let alg = match key.len() {
        16 => &AES_128,
        24 => &AES_192,
        32 => &AES_256,
        _ => return Err(Rv::KeySizeRange),
    };
    UnboundCipherKey::new(alg, key).map_err(|_| Rv::GeneralError)
}

/// RFC 3394 and RFC 5649 key wrap: single-part, the input is collected.
struct KeyWrapOp {
    key: AesKey,
    form: KeyWrap,
    direction: Direction,
    input: SecretVec,
}

impl CipherOp for KeyWrapOp {
    fn output_len(&self, more: usize, part: Part) -> usize {
        let total = self.input.len() + more;
        match (part, self.direction) {
            (Part::More, _) => 0,
            (Part::Last, Direction::Encrypt) => total.div_ceil(8) * 8 + 8,
            (Part::Last, Direction::Decrypt) => total.saturating_sub(8),
        }
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.input.extend_from_slice(input);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let input = std::mem::take(&mut self.input);
        Ok(crate::engine::aes_key_wrap(&self.key, &input, self.form, self.direction)?.to_vec())
    }
}

/// An AES key's value, held inline and wiped when dropped. An operation
/// keeps one from Init to its end; a heap copy cost an allocation and a
/// wipe of the allocation on every short operation.
pub struct AesKey {
    bytes: [u8; 32],
    len: usize,
}

impl std::ops::Deref for AesKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for AesKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// The value of an AES key that allows `usage`.
fn aes_key(key: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<AesKey> {
    require_key(key, CKO_SECRET_KEY, KeyTypes::One(CKK_AES), usage)?;
    let value = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    if ![16, 24, 32].contains(&value.len()) {
        return Err(Rv::KeySizeRange);
    }
    let mut bytes = [0u8; 32];
    bytes[..value.len()].copy_from_slice(value);
    Ok(AesKey {
        bytes,
        len: value.len(),
    })
}

/// The error for input that is not a whole number of blocks.
fn len_range(direction: Direction) -> Rv {
    match direction {
        Direction::Encrypt => Rv::DataLenRange,
        Direction::Decrypt => Rv::EncryptedDataLenRange,
    }
}

/// ECB, CBC and CBC-PAD: whole blocks go through as they arrive; a partial
/// block waits (and for CBC-PAD decryption, the last whole block too, since
/// it holds the padding).
struct BlockOp {
    key: AesKey,
    mode: Mode,
    direction: Direction,
    /// The chaining value for the next block (CBC modes).
    iv: [u8; BLOCK],
    pending: SecretVec,
}

impl BlockOp {
    /// How many of `total` waiting bytes can go through now.
    fn ready(&self, total: usize) -> usize {
        let whole = total - total % BLOCK;
        if self.mode == Mode::CbcPad && self.direction == Direction::Decrypt && whole == total {
            whole.saturating_sub(BLOCK)
        } else {
            whole
        }
    }

    /// Runs whole blocks through the cipher, chaining the IV.
    fn process(&mut self, blocks: &mut [u8]) -> Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        let key = cipher_key(&self.key)?;
        let next_iv: Option<[u8; BLOCK]> = match (self.mode, self.direction) {
            (Mode::Ecb, _) => None,
            // Decrypting: the last ciphertext block is the input's.
            (_, Direction::Decrypt) => blocks[blocks.len() - BLOCK..].try_into().ok(),
            (_, Direction::Encrypt) => None,
        };
        let result = match (self.mode, self.direction) {
            (Mode::Ecb, Direction::Encrypt) => EncryptingKey::ecb(key).and_then(|k| {
                k.less_safe_encrypt(blocks, EncryptionContext::None)
                    .map(|_| ())
            }),
            (Mode::Ecb, Direction::Decrypt) => DecryptingKey::ecb(key)
                .and_then(|k| k.decrypt(blocks, DecryptionContext::None).map(|_| ())),
            (_, Direction::Encrypt) => EncryptingKey::cbc(key).and_then(|k| {
                k.less_safe_encrypt(blocks, EncryptionContext::Iv128(self.iv.into()))
                    .map(|_| ())
            }),
            (_, Direction::Decrypt) => DecryptingKey::cbc(key).and_then(|k| {
                k.decrypt(blocks, DecryptionContext::Iv128(self.iv.into()))
                    .map(|_| ())
            }),
        };
        result.map_err(|_| Rv::GeneralError)?;
        if self.mode != Mode::Ecb {
            self.iv = match next_iv {
                Some(iv) => iv,
                None => blocks[blocks.len() - BLOCK..]
                    .try_into()
                    .map_err(|_| Rv::GeneralError)?,
            };
        }
        Ok(())
    }
}

impl CipherOp for BlockOp {
    fn output_len(&self, more: usize, part: Part) -> usize {
        let total = self.pending.len() + more;
        match (self.mode, self.direction, part) {
            (Mode::CbcPad, Direction::Encrypt, Part::Last) => total - total % BLOCK + BLOCK,
            // At least one byte of padding goes.
            (Mode::CbcPad, Direction::Decrypt, Part::Last) => total.saturating_sub(1),
            _ => self.ready(total),
        }
    }

    fn single_into(&mut self, input: &[u8], output: &mut [u8]) -> Option<Result<usize>> {
        // Encryption only (a decryption's output is shorter than its
        // input). CBC reads the input in place; ECB copies it to the
        // caller's buffer once and encrypts it there.
        if self.direction == Direction::Decrypt || !self.pending.is_empty() {
            return None;
        }
        if self.mode != Mode::Ecb {
            let pad = self.mode == Mode::CbcPad;
            return Some(crate::engine::aes_cbc_encrypt_into(
                &self.key,
                &mut self.iv,
                input,
                pad,
                output,
            ));
        }
        let len = input.len();
        if !len.is_multiple_of(BLOCK) {
            return Some(Err(len_range(Direction::Encrypt)));
        }
        let out = output.get_mut(..len)?;
        out.copy_from_slice(input);
        Some(self.process(out).map(|()| len))
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.pending.extend_from_slice(input);
        let n = self.ready(self.pending.len());
        let mut out: Vec<u8> = self.pending.drain(..n).collect();
        self.process(&mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        match (self.mode, self.direction) {
            (Mode::CbcPad, Direction::Encrypt) => {
                let pad = BLOCK - self.pending.len() % BLOCK;
                let mut block = std::mem::take(&mut *self.pending);
                block.resize(block.len() + pad, pad as u8);
                self.process(&mut block)?;
                Ok(block)
            }
            (Mode::CbcPad, Direction::Decrypt) => {
                if self.pending.len() != BLOCK {
                    return Err(Rv::EncryptedDataLenRange);
                }
                // The padded block, checked in constant time by aws-lc.
                let key = PaddedBlockDecryptingKey::cbc_pkcs7(cipher_key(&self.key)?)
                    .map_err(|_| Rv::GeneralError)?;
                let mut block = std::mem::take(&mut *self.pending);
                let len = key
                    .decrypt(&mut block, DecryptionContext::Iv128(self.iv.into()))
                    .map_err(|_| Rv::EncryptedDataInvalid)?
                    .len();
                block.truncate(len);
                Ok(block)
            }
            _ if !self.pending.is_empty() => Err(len_range(self.direction)),
            _ => Ok(Vec::new()),
        }
    }
}

/// CTR: the keystream is AES over counter blocks whose low `counter_bits`
/// bits count; running past the counter's end is refused rather than
/// reusing keystream.
struct CtrOp {
    key: AesKey,
    counter: [u8; BLOCK],
    counter_bits: u32,
    /// Counter blocks still free before the counter wraps.
    blocks_left: u128,
    /// Unused keystream of the last block.
    keystream: SecretVec,
}

impl CtrOp {
    fn next_counter(&mut self) {
        let mask = if self.counter_bits == 128 {
            u128::MAX
        } else {
            (1u128 << self.counter_bits) - 1
        };
        let c = u128::from_be_bytes(self.counter);
        let next = (c & !mask) | (c.wrapping_add(1) & mask);
        self.counter = next.to_be_bytes();
    }
}

impl CipherOp for CtrOp {
    fn output_len(&self, more: usize, _part: Part) -> usize {
        more
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = input.to_vec();
        let mut done = 0;
        while done < out.len() {
            if self.keystream.is_empty() {
                if self.blocks_left == 0 {
                    return Err(Rv::DataLenRange);
                }
                // A run of counter blocks encrypted at once.
                let blocks = ((out.len() - done).div_ceil(BLOCK) as u128)
                    .min(self.blocks_left)
                    .min(4096) as usize;
                let mut stream = SecretVec::from(Vec::with_capacity(blocks * BLOCK));
                for _ in 0..blocks {
                    stream.extend_from_slice(&self.counter);
                    self.next_counter();
                }
                self.blocks_left -= blocks as u128;
                EncryptingKey::ecb(cipher_key(&self.key)?)
                    .and_then(|k| {
                        k.less_safe_encrypt(&mut stream, EncryptionContext::None)
                            .map(|_| ())
                    })
                    .map_err(|_| Rv::GeneralError)?;
                self.keystream = stream;
            }
            let n = self.keystream.len().min(out.len() - done);
            for (o, k) in out[done..done + n].iter_mut().zip(self.keystream.iter()) {
                *o ^= k;
            }
            self.keystream.drain(..n);
            done += n;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

/// GCM: the whole message is sealed or opened at the end.
struct GcmOp {
    /// The key built for this tag length, kept by the session.
    context: Arc<GcmContext>,
    iv: Vec<u8>,
    aad: Vec<u8>,
    tag_len: usize,
    direction: Direction,
    data: SecretVec,
}

/// The tag length of a GCM parameter: whole bytes, 1 to 16 (NIST SP
/// 800-38D recommends 12 or more; shorter ones are the caller's choice).
pub fn gcm_tag_len(tag_bits: CK_ULONG) -> Result<usize> {
    if tag_bits == 0 || tag_bits > 128 || !tag_bits.is_multiple_of(8) {
        return Err(Rv::MechanismParamInvalid);
    }
    Ok(tag_bits as usize / 8)
}

impl CipherOp for GcmOp {
    fn output_len(&self, more: usize, part: Part) -> usize {
        let total = self.data.len() + more;
        match (part, self.direction) {
            (Part::More, _) => 0,
            (Part::Last, Direction::Encrypt) => total + self.tag_len,
            (Part::Last, Direction::Decrypt) => total.saturating_sub(self.tag_len),
        }
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.data.extend_from_slice(input);
        Ok(Vec::new())
    }

    fn single_into(&mut self, input: &[u8], output: &mut [u8]) -> Option<Result<usize>> {
        // Encryption only: a decryption must not write plaintext to the
        // caller before its tag is checked.
        if self.direction == Direction::Decrypt || !self.data.is_empty() {
            return None;
        }
        Some(self.context.seal_into(&self.iv, &self.aad, input, output))
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = std::mem::take(&mut self.data);
        match self.direction {
            // Sealed in place: no copy of the plaintext is left behind.
            Direction::Encrypt => {
                self.context
                    .seal_in_place(&self.iv, &self.aad, data.into_inner())
            }
            Direction::Decrypt => {
                let plaintext = self.context.open_in_place(&self.iv, &self.aad, data)?;
                Ok(plaintext.into_inner())
            }
        }
    }
}

/// The operation of an AES mechanism with a key that allows `usage`
/// (CKA_ENCRYPT/CKA_DECRYPT, or CKA_WRAP/CKA_UNWRAP when wrapping keys).
pub fn cipher_op(
    mode: Mode,
    arg: &MechanismArg,
    key: &Attrs,
    direction: Direction,
    usage: CK_ATTRIBUTE_TYPE,
    kept: &mut KeptContexts,
) -> Result<Box<dyn CipherOp>> {
    let value = aes_key(key, usage)?;
    let iv = |param: &[u8]| -> Result<[u8; BLOCK]> {
        param.try_into().map_err(|_| Rv::MechanismParamInvalid)
    };
    Ok(match mode {
        Mode::Ecb | Mode::Cbc | Mode::CbcPad => Box::new(BlockOp {
            iv: if mode == Mode::Ecb {
                arg.no_param()?;
                [0; BLOCK]
            } else {
                iv(&arg.param)?
            },
            key: value,
            mode,
            direction,
            pending: SecretVec::default(),
        }),
        Mode::Ctr => {
            // CK_AES_CTR_PARAMS: ulCounterBits, then the 16-byte counter block.
            let ul = std::mem::size_of::<CK_ULONG>();
            if arg.param.len() != ul + BLOCK {
                return Err(Rv::MechanismParamInvalid);
            }
            let bits = arg.word(0)?;
            if bits == 0 || bits > 128 {
                return Err(Rv::MechanismParamInvalid);
            }
            let counter: [u8; BLOCK] = iv(&arg.param[ul..])?;
            let mask = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            let used = u128::from_be_bytes(counter) & mask;
            Box::new(CtrOp {
                key: value,
                counter,
                counter_bits: bits as u32,
                blocks_left: (mask - used).saturating_add(1),
                keystream: SecretVec::default(),
            })
        }
        Mode::KeyWrap | Mode::KeyWrapPad => {
            // The RFCs' default initial values; others are not offered.
            arg.no_param()?;
            Box::new(KeyWrapOp {
                key: value,
                form: if mode == Mode::KeyWrapPad {
                    KeyWrap::Rfc5649
                } else {
                    KeyWrap::Rfc3394
                },
                direction,
                input: SecretVec::default(),
            })
        }
        Mode::Gcm => {
            let gcm = arg.gcm.as_ref().ok_or(Rv::MechanismParamInvalid)?;
            if gcm.iv.is_empty() {
                return Err(Rv::MechanismParamInvalid);
            }
            let tag_len = gcm_tag_len(gcm.tag_bits)?;
            let build = || GcmContext::new(&value, tag_len);
            Box::new(GcmOp {
                context: kept.gcm.get_or_build(&value, tag_len as u64, build)?,
                iv: gcm.iv.clone(),
                aad: gcm.aad.clone(),
                tag_len,
                direction,
                data: SecretVec::default(),
            })
        }
    })
}

/// The value of an AES key for the message API.
pub fn message_key(key: &Attrs, direction: Direction) -> Result<AesKey> {
    aes_key(
        key,
        match direction {
            Direction::Encrypt => CKA_ENCRYPT,
            Direction::Decrypt => CKA_DECRYPT,
        },
    )
}
