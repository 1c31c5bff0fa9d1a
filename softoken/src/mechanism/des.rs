//! DES and triple DES, for old data (payment and legacy PKI systems, and
//! the saved logins of Firefox profiles made before 2018, which are
//! 3DES-CBC-PAD under the profile's password-manager key): ECB, CBC and
//! CBC-PAD, single- and multi-part, CBC-MACs (CKM_DES_MAC, CKM_DES3_MAC)
//! and key generation. Single DES takes CKK_DES keys; the DES3 mechanisms
//! take two-key (CKK_DES2) and three-key (CKK_DES3) ones. The cipher is the
//! engine's (engine/des.rs).

use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::engine::des::{is_weak_key, padding_len, DesKey, BLOCK};
use crate::engine::secret::SecretVec;
use crate::engine::Direction;
use crate::mechanism::op::{require_key, CipherOp, KeyTypes, Part};
use crate::mechanism::param::MechanismArg;
use crate::object::attrs::Attrs;
use crate::object::des_key_len;
use crate::rv::{Result, Rv};

/// The two families of the mechanism table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Single DES (CKK_DES).
    Des,
    /// Triple DES with two or three keys (CKK_DES2, CKK_DES3).
    Des3,
}

impl Family {
    pub fn key_types(self) -> KeyTypes {
        match self {
            Family::Des => KeyTypes::One(CKK_DES),
            Family::Des3 => KeyTypes::Either(CKK_DES2, CKK_DES3),
        }
    }
}

/// The modes of the mechanism table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ecb,
    Cbc,
    CbcPad,
}

/// A new key's value: random, each byte of odd parity as DES keys are, and
/// no part of it one of DES's weak keys.
pub fn new_key(key_type: CK_KEY_TYPE) -> Result<Zeroizing<Vec<u8>>> {
    let len = des_key_len(key_type).ok_or(Rv::GeneralError)?;
    loop {
        let mut value = Zeroizing::new(vec![0u8; len]);
        crate::engine::random_fill(&mut value)?;
        for b in value.iter_mut() {
            let high = *b & 0xfe;
            *b = high | u8::from(high.count_ones() % 2 == 0);
        }
        if !value.chunks(BLOCK).any(is_weak_key) {
            return Ok(value);
        }
    }
}

/// The scheduled key of a DES-family mechanism's key allowing `usage`.
fn des_key(family: Family, key: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<DesKey> {
    require_key(key, CKO_SECRET_KEY, family.key_types(), usage)?;
    let value = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    let want = key.ulong(CKA_KEY_TYPE).and_then(des_key_len);
    if want != Some(value.len()) {
        return Err(Rv::KeySizeRange);
    }
    DesKey::new(value)
}

fn len_range(direction: Direction) -> Rv {
    match direction {
        Direction::Encrypt => Rv::DataLenRange,
        Direction::Decrypt => Rv::EncryptedDataLenRange,
    }
}

/// Whole blocks go through as they arrive; a partial block waits (and for
/// CBC-PAD decryption the last whole block too, since it holds the
/// padding).
struct BlockOp {
    key: DesKey,
    mode: Mode,
    direction: Direction,
    /// The chaining value for the next block (CBC modes).
    iv: [u8; BLOCK],
    pending: SecretVec,
}

impl BlockOp {
    fn ready(&self, total: usize) -> usize {
        let whole = total - total % BLOCK;
        if self.mode == Mode::CbcPad && self.direction == Direction::Decrypt && whole == total {
            whole.saturating_sub(BLOCK)
        } else {
            whole
        }
    }

    fn process(&mut self, blocks: &mut [u8]) {
        match self.mode {
            Mode::Ecb => self.key.ecb(blocks, self.direction),
            Mode::Cbc | Mode::CbcPad => self.key.cbc(&mut self.iv, blocks, self.direction),
        }
    }
}

impl CipherOp for BlockOp {
    fn output_len(&self, more: usize, part: Part) -> usize {
        let total = self.pending.len() + more;
        match (self.mode, self.direction, part) {
            (Mode::CbcPad, Direction::Encrypt, Part::Last) => total - total % BLOCK + BLOCK,
            (Mode::CbcPad, Direction::Decrypt, Part::Last) => total.saturating_sub(1),
            _ => self.ready(total),
        }
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.pending.extend_from_slice(input);
        let n = self.ready(self.pending.len());
        let mut out: Vec<u8> = self.pending.drain(..n).collect();
        self.process(&mut out);
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        match (self.mode, self.direction) {
            (Mode::CbcPad, Direction::Encrypt) => {
                let pad = BLOCK - self.pending.len() % BLOCK;
                let mut block = std::mem::take(&mut *self.pending);
                block.resize(block.len() + pad, pad as u8);
                self.process(&mut block);
                Ok(block)
            }
            (Mode::CbcPad, Direction::Decrypt) => {
                if self.pending.len() != BLOCK {
                    return Err(Rv::EncryptedDataLenRange);
                }
                let mut block = std::mem::take(&mut *self.pending);
                self.process(&mut block);
                let last: &[u8; BLOCK] = block[..].try_into().map_err(|_| Rv::GeneralError)?;
                let pad = padding_len(last).ok_or(Rv::EncryptedDataInvalid)?;
                block.truncate(BLOCK - pad);
                Ok(block)
            }
            _ if !self.pending.is_empty() => Err(len_range(self.direction)),
            _ => Ok(Vec::new()),
        }
    }
}

/// The operation of a DES-family mechanism with a key that allows `usage`.
pub fn cipher_op(
    family: Family,
    mode: Mode,
    arg: &MechanismArg,
    key: &Attrs,
    direction: Direction,
    usage: CK_ATTRIBUTE_TYPE,
) -> Result<Box<dyn CipherOp>> {
    let key = des_key(family, key, usage)?;
    let iv = if mode == Mode::Ecb {
        arg.no_param()?;
        [0; BLOCK]
    } else {
        arg.param
            .as_slice()
            .try_into()
            .map_err(|_| Rv::MechanismParamInvalid)?
    };
    Ok(Box::new(BlockOp {
        key,
        mode,
        direction,
        iv,
        pending: SecretVec::default(),
    }))
}

/// A running CBC-MAC (PKCS#11's CKM_DES_MAC and CKM_DES3_MAC, as NSS
/// computes them): CBC from a zero IV, the last block padded with zeros,
/// the MAC the last ciphertext block.
pub struct CbcMac {
    key: DesKey,
    chain: [u8; BLOCK],
    pending: SecretVec,
}

impl CbcMac {
    pub fn new(family: Family, key: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<CbcMac> {
        Ok(CbcMac {
            key: des_key(family, key, usage)?,
            chain: [0; BLOCK],
            pending: SecretVec::default(),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        let whole = self.pending.len() - self.pending.len() % BLOCK;
        let mut blocks: Vec<u8> = self.pending.drain(..whole).collect();
        self.key
            .cbc(&mut self.chain, &mut blocks, Direction::Encrypt);
    }

    pub fn finish(&mut self) -> Vec<u8> {
        if !self.pending.is_empty() {
            let mut last = std::mem::take(&mut *self.pending);
            last.resize(BLOCK, 0);
            self.key.cbc(&mut self.chain, &mut last, Direction::Encrypt);
        }
        self.chain.to_vec()
    }
}

/// A triple-DES key value as three keys (a two-key one is K1 K2 K1), for
/// the engine's CMAC.
pub fn as_three_keys(value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    match value.len() {
        24 => Ok(Zeroizing::new(value.to_vec())),
        16 => Ok(Zeroizing::new([value, &value[..8]].concat())),
        _ => Err(Rv::KeySizeRange),
    }
}

/// The value of a triple-DES key allowing `usage`, as three keys.
pub fn three_keys(key: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<Zeroizing<Vec<u8>>> {
    require_key(key, CKO_SECRET_KEY, Family::Des3.key_types(), usage)?;
    as_three_keys(key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_attrs(key_type: CK_KEY_TYPE, value: &[u8]) -> Attrs {
        let mut attrs = Attrs::new();
        attrs.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        attrs.set_ulong(CKA_KEY_TYPE, key_type);
        attrs.set(CKA_VALUE, value.to_vec());
        attrs.set_bool(CKA_ENCRYPT, true);
        attrs.set_bool(CKA_DECRYPT, true);
        attrs.set_bool(CKA_SIGN, true);
        attrs
    }

    fn op(
        family: Family,
        mode: Mode,
        direction: Direction,
        key_type: CK_KEY_TYPE,
        key: &[u8],
        iv: &[u8],
    ) -> Box<dyn CipherOp> {
        let arg = MechanismArg {
            param: iv.to_vec(),
            ..MechanismArg::default()
        };
        let usage = match direction {
            Direction::Encrypt => CKA_ENCRYPT,
            Direction::Decrypt => CKA_DECRYPT,
        };
        cipher_op(
            family,
            mode,
            &arg,
            &key_attrs(key_type, key),
            direction,
            usage,
        )
        .unwrap()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn run(mut op: Box<dyn CipherOp>, data: &[u8], piece: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            out.extend(op.update(chunk)?);
        }
        out.extend(op.finish()?);
        Ok(out)
    }

    /// NIST SP 800-67's example (three distinct keys, ECB), and FIPS 81's
    /// first ECB and CBC examples (single DES).
    #[test]
    fn known_answers() {
        let key = unhex("0123456789abcdef23456789abcdef01456789abcdef0123");
        let plain = b"The qufck brown fox jump";
        let expected = unhex("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900");
        let e = op(
            Family::Des3,
            Mode::Ecb,
            Direction::Encrypt,
            CKK_DES3,
            &key,
            &[],
        );
        assert_eq!(run(e, plain, 5).unwrap(), expected);
        let d = op(
            Family::Des3,
            Mode::Ecb,
            Direction::Decrypt,
            CKK_DES3,
            &key,
            &[],
        );
        assert_eq!(run(d, &expected, 3).unwrap(), plain);

        let key = unhex("0123456789abcdef");
        let plain = b"Now is the time for all ";
        let e = op(
            Family::Des,
            Mode::Ecb,
            Direction::Encrypt,
            CKK_DES,
            &key,
            &[],
        );
        assert_eq!(
            run(e, plain, 24).unwrap(),
            unhex("3fa40e8a984d48156a271787ab8883f9893d51ec4b563b53")
        );
        let iv = unhex("1234567890abcdef");
        let e = op(
            Family::Des,
            Mode::Cbc,
            Direction::Encrypt,
            CKK_DES,
            &key,
            &iv,
        );
        assert_eq!(
            run(e, plain, 7).unwrap(),
            unhex("e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6")
        );
    }

    /// A two-key triple-DES key is the three-key K1 K2 K1.
    #[test]
    fn two_keys_are_three_with_the_first_again() {
        let k2 = unhex("0123456789abcdef23456789abcdef01");
        let k3 = [&k2[..], &k2[..8]].concat();
        let data = [0x5a; 16];
        let two = op(
            Family::Des3,
            Mode::Ecb,
            Direction::Encrypt,
            CKK_DES2,
            &k2,
            &[],
        );
        let three = op(
            Family::Des3,
            Mode::Ecb,
            Direction::Encrypt,
            CKK_DES3,
            &k3,
            &[],
        );
        assert_eq!(run(two, &data, 16).unwrap(), run(three, &data, 16).unwrap());
    }

    #[test]
    fn cbc_pad_round_trips_in_parts_and_refuses_bad_padding() {
        let key = new_key(CKK_DES3).unwrap();
        assert!(key.iter().all(|b| b.count_ones() % 2 == 1));
        let iv = [7u8; 8];
        for len in [0usize, 1, 7, 8, 9, 23] {
            let plain: Vec<u8> = (0..len as u8).collect();
            let e = op(
                Family::Des3,
                Mode::CbcPad,
                Direction::Encrypt,
                CKK_DES3,
                &key,
                &iv,
            );
            let ct = run(e, &plain, 3).unwrap();
            assert_eq!(ct.len(), len / 8 * 8 + 8);
            let d = op(
                Family::Des3,
                Mode::CbcPad,
                Direction::Decrypt,
                CKK_DES3,
                &key,
                &iv,
            );
            assert_eq!(run(d, &ct, 5).unwrap(), plain);
        }
        let e = op(
            Family::Des3,
            Mode::Cbc,
            Direction::Encrypt,
            CKK_DES3,
            &key,
            &iv,
        );
        let mut ct = run(e, &[8u8; 16], 16).unwrap();
        // Under CBC-PAD the last block reads as padding of 8 eights, which
        // is valid; a changed last byte is not.
        *ct.last_mut().unwrap() ^= 1;
        let d = op(
            Family::Des3,
            Mode::CbcPad,
            Direction::Decrypt,
            CKK_DES3,
            &key,
            &iv,
        );
        assert_eq!(run(d, &ct, 16).unwrap_err(), Rv::EncryptedDataInvalid);
    }

    #[test]
    fn keys_are_made_at_their_type_s_length() {
        for (t, n) in [(CKK_DES, 8), (CKK_DES2, 16), (CKK_DES3, 24)] {
            let k = new_key(t).unwrap();
            assert_eq!(k.len(), n);
            assert!(!k.chunks(8).any(is_weak_key));
        }
    }
}
