//! Derivation by combining keys and data, and by encryption (PKCS#11 3.0
//! §2.43 and the AES section): CKM_CONCATENATE_BASE_AND_KEY,
//! CKM_CONCATENATE_BASE_AND_DATA, CKM_CONCATENATE_DATA_AND_BASE,
//! CKM_XOR_BASE_AND_DATA, CKM_EXTRACT_KEY_FROM_KEY, CKM_AES_ECB_ENCRYPT_DATA
//! and CKM_AES_CBC_ENCRYPT_DATA, and their DES and DES3 forms, as NSS offers
//! them.
//!
//! The combinations hand out the base key's bits: the derived key is
//! sensitive when a source is, and unextractable when a source is (as NSS
//! forces), so a derivation cannot take a key out of the token.

use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::mechanism::kdf::{base_value, derived_origin, made, template_key_type, wanted_len};
use crate::mechanism::op::{require_key, KeyTypes};
use crate::mechanism::param::{param_word, MechanismArg};
use crate::object::attrs::Attrs;
use crate::object::Generated;
use crate::rv::{Result, Rv};

/// How a derivation makes the new key's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combination {
    /// The base key's value, then another key's.
    BaseAndKey,
    /// The base key's value, then the parameter's data.
    BaseAndData,
    /// The parameter's data, then the base key's value.
    DataAndBase,
    /// The base key's value XOR the data, as long as the shorter.
    XorBaseAndData,
    /// Bits of the base key from the parameter's bit index on, wrapping.
    ExtractFromKey,
    /// AES-ECB of the data under the base key.
    AesEcbEncrypt,
    /// AES-CBC of the data under the base key, from the parameter's IV.
    AesCbcEncrypt,
    /// DES or triple-DES ECB of the data under the base key.
    DesEcbEncrypt(crate::mechanism::des::Family),
    /// DES or triple-DES CBC of the data, from the parameter's IV.
    DesCbcEncrypt(crate::mechanism::des::Family),
}

impl Combination {
    /// Whether the new key is an encryption of the data (and not the
    /// sources' bits handed out).
    fn encrypts(self) -> bool {
        matches!(
            self,
            Combination::AesEcbEncrypt
                | Combination::AesCbcEncrypt
                | Combination::DesEcbEncrypt(_)
                | Combination::DesCbcEncrypt(_)
        )
    }
}

/// The key's value: cut to CKA_VALUE_LEN when given (at most what was
/// made); an AES key must have an AES key's length.
fn fitted(
    key_type: CK_KEY_TYPE,
    template: &Attrs,
    mut value: Zeroizing<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>> {
    if template.contains(CKA_VALUE_LEN) {
        let len = wanted_len(template, None)?;
        if len == 0 || len > value.len() {
            return Err(Rv::TemplateInconsistent);
        }
        value.truncate(len);
    }
    if key_type == CKK_AES && ![16, 24, 32].contains(&value.len()) {
        return Err(Rv::TemplateInconsistent);
    }
    if let Some(len) = crate::object::fixed_key_len(key_type) {
        if value.len() < len {
            return Err(Rv::TemplateInconsistent);
        }
        value.truncate(len);
    }
    Ok(value)
}

/// Derives a key by `how` from `base` (and `other`, for BaseAndKey).
pub fn derive(
    mechanism: CK_MECHANISM_TYPE,
    how: Combination,
    arg: &MechanismArg,
    base: &Attrs,
    other: Option<&Attrs>,
    template: &Attrs,
) -> Result<Generated> {
    let base_value = base_value(base)?;
    let data = || {
        arg.pointed
            .first()
            .map(Vec::as_slice)
            .ok_or(Rv::MechanismParamInvalid)
    };
    let mut sources = vec![base];
    let value: Zeroizing<Vec<u8>> = match how {
        Combination::BaseAndKey => {
            let other = other.ok_or(Rv::MechanismParamInvalid)?;
            // The second key needs no usage attribute of its own (NSS asks
            // none): only to be a secret key.
            if other.ulong(CKA_CLASS) != Some(CKO_SECRET_KEY) {
                return Err(Rv::KeyHandleInvalid);
            }
            let other_value = other.get(CKA_VALUE).ok_or(Rv::KeyHandleInvalid)?;
            sources.push(other);
            Zeroizing::new([base_value, other_value].concat())
        }
        Combination::BaseAndData => Zeroizing::new([base_value, data()?].concat()),
        Combination::DataAndBase => Zeroizing::new([data()?, base_value].concat()),
        Combination::XorBaseAndData => {
            let data = data()?;
            Zeroizing::new(base_value.iter().zip(data).map(|(k, d)| k ^ d).collect())
        }
        Combination::ExtractFromKey => {
            let first = param_word(&arg.param, 0)? as usize;
            let len = wanted_len(template, None)?;
            let bits = base_value.len() * 8;
            if len == 0 || len > base_value.len() || first >= bits {
                return Err(Rv::TemplateInconsistent);
            }
            let bit = |i: usize| {
                let at = (first + i) % bits;
                (base_value[at / 8] >> (7 - at % 8)) & 1
            };
            Zeroizing::new(
                (0..len)
                    .map(|byte| (0..8).fold(0u8, |b, i| (b << 1) | bit(byte * 8 + i)))
                    .collect(),
            )
        }
        Combination::AesEcbEncrypt | Combination::AesCbcEncrypt => {
            require_key(base, CKO_SECRET_KEY, KeyTypes::One(CKK_AES), CKA_DERIVE)?;
            let data = data()?;
            if data.is_empty() || data.len() % 16 != 0 {
                return Err(Rv::MechanismParamInvalid);
            }
            let mut out = Zeroizing::new(vec![0u8; data.len()]);
            if how == Combination::AesCbcEncrypt {
                let mut iv: [u8; 16] = arg
                    .param
                    .get(..16)
                    .and_then(|iv| iv.try_into().ok())
                    .ok_or(Rv::MechanismParamInvalid)?;
                crate::engine::aes_cbc_encrypt_into(base_value, &mut iv, data, false, &mut out)?;
            } else {
                // ECB: each block on its own (CBC of one block from a zero IV).
                for (block, out) in data.chunks(16).zip(out.chunks_mut(16)) {
                    crate::engine::aes_cbc_encrypt_into(
                        base_value,
                        &mut [0; 16],
                        block,
                        false,
                        out,
                    )?;
                }
            }
            out
        }
        Combination::DesEcbEncrypt(family) | Combination::DesCbcEncrypt(family) => {
            let data = data()?;
            if data.is_empty() || data.len() % crate::engine::des::BLOCK != 0 {
                return Err(Rv::MechanismParamInvalid);
            }
            let mode = match how {
                Combination::DesCbcEncrypt(_) => crate::mechanism::des::Mode::Cbc,
                _ => crate::mechanism::des::Mode::Ecb,
            };
            let iv_arg = MechanismArg {
                param: match mode {
                    crate::mechanism::des::Mode::Ecb => Vec::new(),
                    _ => arg
                        .param
                        .get(..crate::engine::des::BLOCK)
                        .ok_or(Rv::MechanismParamInvalid)?
                        .to_vec(),
                },
                ..MechanismArg::default()
            };
            let mut op = crate::mechanism::des::cipher_op(
                family,
                mode,
                &iv_arg,
                base,
                crate::engine::Direction::Encrypt,
                CKA_DERIVE,
            )?;
            let mut out = Zeroizing::new(op.update(data)?);
            out.extend(op.finish()?);
            out
        }
    };
    let value = fitted(template_key_type(template)?, template, value)?;
    let mut derived = made(
        mechanism,
        template,
        value.to_vec(),
        derived_origin(&sources),
        false,
    )?;
    // The combinations reveal the sources' bits: the new key keeps them
    // as protected as the most protected source.
    if !how.encrypts() {
        if sources.iter().any(|k| k.bool(CKA_SENSITIVE) == Some(true)) {
            derived.values.set_bool(CKA_SENSITIVE, true);
        }
        if sources
            .iter()
            .any(|k| k.bool(CKA_EXTRACTABLE) == Some(false))
        {
            derived.values.set_bool(CKA_EXTRACTABLE, false);
        }
    }
    Ok(derived)
}
