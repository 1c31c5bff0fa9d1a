//! Key derivation: HKDF (RFC 5869; CKM_HKDF_DERIVE, CKM_HKDF_DATA), PBKDF2
//! (CKM_PKCS5_PBKD2, through C_GenerateKey) and NIST SP 800-108's counter
//! mode (CKM_SP800_108_COUNTER_KDF) over HMAC or CMAC.

use std::num::NonZeroU32;

use aws_lc_rs::hmac;
use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::mechanism::hash;
use crate::mechanism::mac::{self, MacAlg};
use crate::mechanism::op::{require_key, KeyTypes};
use crate::mechanism::param::{DataParam, HkdfSalt, KdfParams, MechanismArg};
use crate::object::attrs::Attrs;
use crate::object::{Generated, Origin};
use crate::rv::{Result, Rv};

/// PBKDF2 iteration counts above this are refused (a call must not run for
/// hours); NSS's own PKCS#12 files use 600,000.
const MAX_PBKDF2_ITERATIONS: CK_ULONG = 10_000_000;

/// HKDF's HMAC: the hash its parameter names by digest mechanism.
fn hmac_alg(prf: CK_MECHANISM_TYPE) -> Result<hmac::Algorithm> {
    hash::by_digest(prf)
        .and_then(|h| h.hash.hmac_algorithm())
        .ok_or(Rv::MechanismParamInvalid)
}

/// The length asked for by CKA_VALUE_LEN (required unless `default` is set).
pub(super) fn wanted_len(template: &Attrs, default: Option<usize>) -> Result<usize> {
    match template.get(CKA_VALUE_LEN) {
        Some(_) => Ok(template
            .ulong(CKA_VALUE_LEN)
            .ok_or(Rv::AttributeValueInvalid)? as usize),
        None => default.ok_or(Rv::TemplateIncomplete),
    }
}

/// The secret value of a base key allowed to derive.
pub(super) fn base_value(base: &Attrs) -> Result<&[u8]> {
    require_key(base, CKO_SECRET_KEY, KeyTypes::Any, CKA_DERIVE)?;
    base.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)
}

/// A derived key's type: the template's, else a generic secret.
pub(super) fn template_key_type(template: &Attrs) -> Result<CK_KEY_TYPE> {
    match template.get(CKA_KEY_TYPE) {
        Some(_) => template
            .ulong(CKA_KEY_TYPE)
            .ok_or(Rv::AttributeValueInvalid),
        None => Ok(CKK_GENERIC_SECRET),
    }
}

/// What a derivation made: the value and its class and key type.
pub(super) fn made(
    mechanism: CK_MECHANISM_TYPE,
    template: &Attrs,
    value: Vec<u8>,
    origin: Origin,
    data_object: bool,
) -> Result<Generated> {
    let mut values = Attrs::new();
    values.set(CKA_VALUE, value);
    let (class, key_type) = if data_object {
        (CKO_DATA, 0)
    } else {
        (CKO_SECRET_KEY, template_key_type(template)?)
    };
    Ok(Generated {
        class,
        key_type,
        mechanism,
        values,
        origin,
    })
}

/// The history a key derived from `sources` inherits: always sensitive,
/// never extractable, only when every source was.
pub(super) fn derived_origin(sources: &[&Attrs]) -> Origin {
    let all = |t| sources.iter().all(|k| k.bool(t).unwrap_or(false));
    Origin::Derived {
        always_sensitive: all(CKA_ALWAYS_SENSITIVE),
        never_extractable: all(CKA_NEVER_EXTRACTABLE),
    }
}

/// HKDF (CKM_HKDF_DERIVE, and CKM_HKDF_DATA whose output is a data object).
pub fn hkdf(
    mechanism: CK_MECHANISM_TYPE,
    arg: &MechanismArg,
    base: &Attrs,
    template: &Attrs,
) -> Result<Generated> {
    let Some(KdfParams::Hkdf {
        extract,
        expand,
        prf,
        salt,
        info,
    }) = &arg.kdf
    else {
        return Err(Rv::MechanismParamInvalid);
    };
    if !extract && !expand {
        return Err(Rv::MechanismParamInvalid);
    }
    let alg = hmac_alg(*prf)?;
    let hash_len = alg.digest_algorithm().output_len();
    let ikm = base_value(base)?;
    let prk: Zeroizing<Vec<u8>> = if *extract {
        let salt_bytes: Vec<u8> = match salt {
            HkdfSalt::Null => vec![0; hash_len],
            HkdfSalt::Data(d) => d.clone(),
            HkdfSalt::Key(_) => return Err(Rv::MechanismParamInvalid),
        };
        Zeroizing::new(
            hmac::sign(&hmac::Key::new(alg, &salt_bytes), ikm)
                .as_ref()
                .to_vec(),
        )
    } else {
        Zeroizing::new(ikm.to_vec())
    };
    let data_object = mechanism == CKM_HKDF_DATA;
    let value = if *expand {
        let len = wanted_len(template, None)?;
        if len == 0 || len > 255 * hash_len {
            return Err(Rv::TemplateInconsistent);
        }
        let key = hmac::Key::new(alg, &prk);
        let mut out = Zeroizing::new(Vec::with_capacity(len + hash_len));
        let mut block: Vec<u8> = Vec::new();
        for i in 1..=len.div_ceil(hash_len) {
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(&block);
            ctx.update(info);
            ctx.update(&[i as u8]);
            block = ctx.sign().as_ref().to_vec();
            out.extend_from_slice(&block);
        }
        out.truncate(len);
        out.to_vec()
    } else {
        prk.to_vec()
    };
    made(
        mechanism,
        template,
        value,
        derived_origin(&[base]),
        data_object,
    )
}

/// PBKDF2 (CKM_PKCS5_PBKD2, a key generation mechanism).
pub fn pbkdf2_key(
    mechanism: CK_MECHANISM_TYPE,
    arg: &MechanismArg,
    template: &Attrs,
) -> Result<Generated> {
    let Some(KdfParams::Pbkdf2 {
        salt,
        iterations,
        prf,
        password,
    }) = &arg.kdf
    else {
        return Err(Rv::MechanismParamInvalid);
    };
    let prf = hash::by_pbkdf2_prf(*prf)
        .ok_or(Rv::MechanismParamInvalid)?
        .hash;
    if *iterations > MAX_PBKDF2_ITERATIONS {
        return Err(Rv::MechanismParamInvalid);
    }
    let iterations = NonZeroU32::new(*iterations as u32).ok_or(Rv::MechanismParamInvalid)?;
    let len = match template.ulong(CKA_KEY_TYPE) {
        Some(CKK_DES3) => 24,
        _ => wanted_len(template, None)?,
    };
    if len == 0 || len > 1024 {
        return Err(Rv::TemplateInconsistent);
    }
    let mut value = Zeroizing::new(vec![0u8; len]);
    prf.pbkdf2(iterations, salt, password, &mut value)?;
    made(
        mechanism,
        template,
        value.to_vec(),
        Origin::Generated,
        false,
    )
}

fn put_number(out: &mut Vec<u8>, value: u64, width: u32, little_endian: bool) -> Result<()> {
    if width == 0 || !width.is_multiple_of(8) || width > 64 || (width < 64 && value >> width != 0) {
        return Err(Rv::MechanismParamInvalid);
    }
    let bytes = value.to_be_bytes();
    let mut field = bytes[8 - (width / 8) as usize..].to_vec();
    if little_endian {
        field.reverse();
    }
    out.extend_from_slice(&field);
    Ok(())
}

/// SP 800-108 in counter mode: K(i) = PRF(KI, fixed input with counter i).
pub fn sp800_108(
    mechanism: CK_MECHANISM_TYPE,
    prf: MacAlg,
    arg: &MechanismArg,
    base: &Attrs,
    template: &Attrs,
) -> Result<Generated> {
    let Some(KdfParams::Sp800_108 { data, .. }) = &arg.kdf else {
        return Err(Rv::MechanismParamInvalid);
    };
    let counters = data
        .iter()
        .filter(|d| matches!(d, DataParam::Counter { .. }))
        .count();
    if counters != 1
        || data
            .iter()
            .filter(|d| matches!(d, DataParam::DkmLength { .. }))
            .count()
            > 1
    {
        return Err(Rv::MechanismParamInvalid);
    }
    let ki = base_value(base)?;
    let len = wanted_len(template, None)?;
    let prf_len = prf.output_len();
    let blocks = len.div_ceil(prf_len);
    let mut out = Zeroizing::new(Vec::with_capacity(blocks * prf_len));
    for i in 1..=blocks {
        let mut input = Vec::new();
        for d in data {
            match d {
                DataParam::Counter {
                    little_endian,
                    width,
                } => put_number(&mut input, i as u64, *width, *little_endian)?,
                DataParam::DkmLength {
                    of_segments,
                    little_endian,
                    width,
                } => {
                    let bits = if *of_segments {
                        blocks * prf_len * 8
                    } else {
                        len * 8
                    };
                    put_number(&mut input, bits as u64, *width, *little_endian)?
                }
                DataParam::Bytes(b) => input.extend_from_slice(b),
            }
        }
        out.extend_from_slice(&mac::mac_once(prf, ki, &input)?);
    }
    out.truncate(len);
    made(
        mechanism,
        template,
        out.to_vec(),
        derived_origin(&[base]),
        false,
    )
}
