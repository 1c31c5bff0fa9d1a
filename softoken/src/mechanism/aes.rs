//! AES encryption and decryption: ECB, CBC, CBC-PAD, CTR and GCM, single-
//! and multi-part. Partial blocks are kept between calls here; the block
//! work is aws-lc-rs's.

use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, PaddedBlockDecryptingKey,
    UnboundCipherKey, AES_128, AES_192, AES_256,
};
use pkcs11_sys::*;
use zeroize::Zeroize;

use crate::cache::kept::KeptContexts;
use crate::engine::secret::SecretVec;
use crate::engine::{AeadContext, Direction, KeyWrap};
use crate::mechanism::aead::AeadOp;
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
    /// CBC with ciphertext stealing, NIST's CBC-CS1 (as NSS has it): the
    /// output as long as the input, at least a block.
    Cts,
    /// CCM (NIST SP 800-38C): CTR encryption and a CBC-MAC tag.
    Ccm,
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

/// A running AES-XCBC-MAC (RFC 3566, AES-128): a CBC-MAC under K1 =
/// E(K, 0x01…), whose last block is XORed with K2 = E(K, 0x02…) when whole
/// or, padded with 0x80 0x00…, with K3 = E(K, 0x03…). The last block is
/// held back until the MAC is asked for.
pub struct XcbcMac {
    k1: AesKey,
    k2: [u8; BLOCK],
    k3: [u8; BLOCK],
    chain: [u8; BLOCK],
    pending: SecretVec,
    /// A CBC step failed (it cannot, on a key it took): the MAC is refused.
    failed: bool,
}

impl Drop for XcbcMac {
    fn drop(&mut self) {
        self.k2.zeroize();
        self.k3.zeroize();
        self.chain.zeroize();
    }
}

impl XcbcMac {
    pub fn new(key: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<XcbcMac> {
        let key = aes_key(key, usage)?;
        if key.len() != BLOCK {
            return Err(Rv::KeySizeRange);
        }
        let derive = |c: u8| -> Result<[u8; BLOCK]> {
            let mut block = [c; BLOCK];
            EncryptingKey::ecb(cipher_key(&key)?)
                .and_then(|k| {
                    k.less_safe_encrypt(&mut block, EncryptionContext::None)
                        .map(|_| ())
                })
                .map_err(|_| Rv::GeneralError)?;
            Ok(block)
        };
        let k1 = derive(1)?;
        let mac = XcbcMac {
            k1: AesKey {
                bytes: {
                    let mut b = [0u8; 32];
                    b[..BLOCK].copy_from_slice(&k1);
                    b
                },
                len: BLOCK,
            },
            k2: derive(2)?,
            k3: derive(3)?,
            chain: [0; BLOCK],
            pending: SecretVec::default(),
            failed: false,
        };
        Ok(mac)
    }

    /// One CBC step under K1.
    fn step(&mut self, block: &[u8]) -> Result<()> {
        let mut out = [0u8; BLOCK];
        crate::engine::aes_cbc_encrypt_into(&self.k1, &mut self.chain, block, false, &mut out)?;
        Ok(())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        // Everything but a last block (whole or not) goes through now.
        while self.pending.len() > BLOCK {
            let block: Vec<u8> = self.pending.drain(..BLOCK).collect();
            self.failed |= self.step(&block).is_err();
        }
    }

    pub fn finish(&mut self) -> Result<Vec<u8>> {
        if self.failed {
            return Err(Rv::GeneralError);
        }
        let mut last = [0u8; BLOCK];
        let n = self.pending.len();
        last[..n].copy_from_slice(&self.pending);
        let pad = if n == BLOCK {
            self.k2
        } else {
            last[n] = 0x80;
            self.k3
        };
        for (b, k) in last.iter_mut().zip(pad) {
            *b ^= k;
        }
        self.step(&last)?;
        last.zeroize();
        Ok(self.chain.to_vec())
    }
}

/// CTS (CBC-CS1): the message is collected and done at the end; a partial
/// last block is zero-padded, CBC-encrypted, and the block before it cut to
/// the partial length (so C1..Cn-2, Cn-1 cut, Cn).
struct CtsOp {
    cbc: BlockOp,
    data: SecretVec,
}

impl CipherOp for CtsOp {
    fn output_len(&self, more: usize, part: Part) -> usize {
        match part {
            Part::More => 0,
            Part::Last => self.data.len() + more,
        }
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.data.extend_from_slice(input);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let mut data = std::mem::take(&mut *self.data);
        let len = data.len();
        if len < BLOCK {
            return Err(len_range(self.cbc.direction));
        }
        let tail = len % BLOCK;
        if tail == 0 {
            self.cbc.process(&mut data)?;
            return Ok(data);
        }
        let whole = len - tail;
        match self.cbc.direction {
            Direction::Encrypt => {
                self.cbc.process(&mut data[..whole])?;
                let mut last = SecretVec::from(vec![0u8; BLOCK]);
                last[..tail].copy_from_slice(&data[whole..]);
                self.cbc.process(&mut last)?;
                // Cn takes the place of Cn-1's cut-off end.
                data.truncate(whole - BLOCK + tail);
                data.extend_from_slice(&last);
                Ok(data)
            }
            Direction::Decrypt => {
                // data: C1..Cn-2 | Cn-1 (tail bytes) | Cn (a block).
                let cut = whole - BLOCK;
                let cn: [u8; BLOCK] = data[cut + tail..]
                    .try_into()
                    .map_err(|_| Rv::GeneralError)?;
                // D(Cn) is Cn-1 XOR (Pn, zeros): its end is Cn-1's lost end.
                let mut z = SecretVec::from(cn.to_vec());
                DecryptingKey::ecb(cipher_key(&self.cbc.key)?)
                    .and_then(|k| k.decrypt(&mut z, DecryptionContext::None).map(|_| ()))
                    .map_err(|_| Rv::GeneralError)?;
                let mut body = SecretVec::from(data[..cut + tail].to_vec());
                body.extend_from_slice(&z[tail..]);
                let pn: Vec<u8> = z[..tail]
                    .iter()
                    .zip(&body[cut..cut + tail])
                    .map(|(a, b)| a ^ b)
                    .collect();
                self.cbc.process(&mut body)?;
                let mut out = std::mem::take(&mut *body);
                out.extend_from_slice(&pn);
                Ok(out)
            }
        }
    }
}

/// CCM (SP 800-38C): the message, whose length the parameter gave, is
/// collected and sealed or opened at the end; no plaintext leaves before
/// the tag is checked.
struct CcmOp {
    key: AesKey,
    nonce: Vec<u8>,
    aad: Vec<u8>,
    data_len: usize,
    tag_len: usize,
    direction: Direction,
    data: SecretVec,
}

impl CcmOp {
    /// The counter block i: flags (L - 1), the nonce, i in L bytes.
    fn counter_block(&self, i: u8) -> [u8; BLOCK] {
        let l = 15 - self.nonce.len();
        let mut a = [0u8; BLOCK];
        a[0] = (l - 1) as u8;
        a[1..1 + self.nonce.len()].copy_from_slice(&self.nonce);
        a[BLOCK - 1] = i;
        a
    }

    /// The CBC-MAC of B0, the encoded AAD and the payload (SP 800-38C A.2).
    fn tag(&self, payload: &[u8]) -> Result<[u8; BLOCK]> {
        let l = 15 - self.nonce.len();
        let mut b = SecretVec::default();
        let adata = u8::from(!self.aad.is_empty()) << 6;
        b.push(adata | (((self.tag_len - 2) / 2) as u8) << 3 | (l - 1) as u8);
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&(payload.len() as u64).to_be_bytes()[8 - l..]);
        let a = self.aad.len() as u64;
        if a > 0 {
            if a < 0xff00 {
                b.extend_from_slice(&(a as u16).to_be_bytes());
            } else if a <= u32::MAX as u64 {
                b.extend_from_slice(&[0xff, 0xfe]);
                b.extend_from_slice(&(a as u32).to_be_bytes());
            } else {
                b.extend_from_slice(&[0xff, 0xff]);
                b.extend_from_slice(&a.to_be_bytes());
            }
            b.extend_from_slice(&self.aad);
            let padded = b.len().div_ceil(BLOCK) * BLOCK;
            b.resize(padded, 0);
        }
        b.extend_from_slice(payload);
        let padded = b.len().div_ceil(BLOCK) * BLOCK;
        b.resize(padded, 0);
        let mut chain = [0u8; BLOCK];
        let mut out = SecretVec::from(vec![0u8; b.len()]);
        crate::engine::aes_cbc_encrypt_into(&self.key, &mut chain, &b, false, &mut out)?;
        Ok(chain)
    }

    /// CTR from counter block 1 over `data`, and the tag masked by E(A0).
    fn ctr(&self, data: &mut [u8], tag: &mut [u8; BLOCK]) -> Result<()> {
        let l = 15 - self.nonce.len();
        let mut ctr = CtrOp {
            key: AesKey {
                bytes: self.key.bytes,
                len: self.key.len,
            },
            counter: self.counter_block(0),
            counter_bits: (8 * l) as u32,
            blocks_left: 1u128 << (8 * l),
            keystream: SecretVec::default(),
        };
        // Block 0 masks the tag; the message runs from block 1.
        let s0 = ctr.update(&[0; BLOCK])?;
        for (t, s) in tag.iter_mut().zip(s0) {
            *t ^= s;
        }
        let stream = ctr.update(data)?;
        data.copy_from_slice(&stream);
        Ok(())
    }
}

impl CipherOp for CcmOp {
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

    fn finish(&mut self) -> Result<Vec<u8>> {
        let mut data = std::mem::take(&mut *self.data);
        match self.direction {
            Direction::Encrypt => {
                if data.len() != self.data_len {
                    return Err(Rv::DataLenRange);
                }
                let mut tag = self.tag(&data)?;
                self.ctr(&mut data, &mut tag)?;
                data.extend_from_slice(&tag[..self.tag_len]);
                Ok(data)
            }
            Direction::Decrypt => {
                let len = data
                    .len()
                    .checked_sub(self.tag_len)
                    .filter(|n| *n == self.data_len)
                    .ok_or(Rv::EncryptedDataLenRange)?;
                let given = data.split_off(len);
                let mut plain = SecretVec::from(data);
                let mut mask = [0u8; BLOCK];
                self.ctr(&mut plain, &mut mask)?;
                let mut tag = self.tag(&plain)?;
                for (t, m) in tag.iter_mut().zip(mask) {
                    *t ^= m;
                }
                aws_lc_rs::constant_time::verify_slices_are_equal(&tag[..self.tag_len], &given)
                    .map_err(|_| Rv::AeadDecryptFailed)?;
                Ok(std::mem::take(&mut *plain))
            }
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

/// The tag length of a GCM parameter: whole bytes, 1 to 16 (NIST SP
/// 800-38D recommends 12 or more; shorter ones are the caller's choice).
pub fn gcm_tag_len(tag_bits: CK_ULONG) -> Result<usize> {
    if tag_bits == 0 || tag_bits > 128 || !tag_bits.is_multiple_of(8) {
        return Err(Rv::MechanismParamInvalid);
    }
    Ok(tag_bits as usize / 8)
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
        Mode::Ccm => {
            let p = arg.aead.as_ref().ok_or(Rv::MechanismParamInvalid)?;
            let tag_len = (p.tag_bits / 8) as usize;
            let nonce_ok = (7..=13).contains(&p.iv.len());
            let tag_ok = (4..=16).contains(&tag_len) && tag_len.is_multiple_of(2);
            let data_len = p.data_len.ok_or(Rv::MechanismParamInvalid)? as usize;
            // The length must fit the L = 15 - nonce bytes that count it.
            let l = 15 - p.iv.len().min(13);
            let fits = l >= 8 || (data_len as u128) < 1u128 << (8 * l);
            if !nonce_ok || !tag_ok || !fits {
                return Err(Rv::MechanismParamInvalid);
            }
            Box::new(CcmOp {
                key: value,
                nonce: p.iv.clone(),
                aad: p.aad.clone(),
                data_len,
                tag_len,
                direction,
                data: SecretVec::default(),
            })
        }
        Mode::Cts => Box::new(CtsOp {
            cbc: BlockOp {
                iv: iv(&arg.param)?,
                key: value,
                mode: Mode::Cbc,
                direction,
                pending: SecretVec::default(),
            },
            data: SecretVec::default(),
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
            let gcm = arg.aead.as_ref().ok_or(Rv::MechanismParamInvalid)?;
            if gcm.iv.is_empty() {
                return Err(Rv::MechanismParamInvalid);
            }
            let tag_len = gcm_tag_len(gcm.tag_bits)?;
            let build = || AeadContext::gcm(&value, tag_len);
            Box::new(AeadOp::new(
                kept.gcm.get_or_build(&value, tag_len as u64, build)?,
                gcm.iv.clone(),
                gcm.aad.clone(),
                tag_len,
                direction,
            ))
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
