//! The MAC family: HMAC over every hash the table names, AES-CMAC, and for
//! old data the DES CBC-MACs and triple-DES CMAC, as sign/verify operations
//! and (HMAC, AES-CMAC) as a PRF for the KDFs.

use pkcs11_sys::*;

use crate::cache::kept::KeptContexts;
use crate::engine::{Cmac, Hash, Hmac, HmacKey};
use crate::mechanism::op::{require_key, KeyTypes, SignOp, VerifyOp};
use crate::mechanism::param::MechanismArg;
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};

/// HMAC keys: any length from one byte to this many (CK_MECHANISM_INFO
/// sizes of HMAC and generic secrets are in bytes here, as NSS gives them).
pub const MAX_SECRET_LEN: CK_ULONG = 4096;

/// How long a MAC mechanism's output is.
#[derive(Clone, Copy)]
pub enum MacLength {
    /// The whole MAC.
    Full,
    /// The length its parameter gives (the `_GENERAL` mechanisms).
    Parameter,
    /// Half of it (CKM_DES_MAC and CKM_DES3_MAC, as the specification has
    /// them).
    Half,
    /// This many bytes (CKM_AES_XCBC_MAC_96's 12).
    Fixed(usize),
}

/// A MAC: HMAC by aws-lc-rs or by EVP, AES-CMAC, a DES CBC-MAC or
/// triple-DES CMAC.
#[derive(Clone, Copy)]
pub enum MacAlg {
    Hmac(Hash),
    Cmac,
    DesCbcMac(crate::mechanism::des::Family),
    Des3Cmac,
    AesXcbc,
}

impl MacAlg {
    pub fn output_len(self) -> usize {
        match self {
            MacAlg::Hmac(h) => h.output_len(),
            MacAlg::Cmac | MacAlg::AesXcbc => 16,
            MacAlg::DesCbcMac(_) | MacAlg::Des3Cmac => 8,
        }
    }
}

/// A running MAC (an HMAC context is taken out when the MAC is computed,
/// rather than copied).
enum MacState {
    Hmac(Hmac),
    Cmac(Cmac),
    // Boxed: its key schedules would make every MAC's state large.
    CbcMac(Box<crate::mechanism::des::CbcMac>),
    Xcbc(Box<crate::mechanism::aes::XcbcMac>),
}

impl MacState {
    /// The state of a PRF over raw key bytes (the KDFs' MACs).
    fn new(alg: MacAlg, key: &[u8]) -> Result<MacState> {
        Ok(match alg {
            MacAlg::Hmac(h) => MacState::Hmac(Hmac::new(h, key)?),
            MacAlg::Cmac => MacState::Cmac(Cmac::new(key)?),
            // SP 800-108 takes triple-DES CMAC as a PRF too.
            MacAlg::Des3Cmac => {
                MacState::Cmac(Cmac::des3(&crate::mechanism::des::as_three_keys(key)?)?)
            }
            MacAlg::DesCbcMac(_) | MacAlg::AesXcbc => return Err(Rv::MechanismParamInvalid),
        })
    }
}

pub struct MacOp {
    state: MacState,
    out_len: usize,
}

impl MacOp {
    fn absorb(&mut self, data: &[u8]) {
        match &mut self.state {
            MacState::Hmac(ctx) => ctx.update(data),
            MacState::Cmac(ctx) => ctx.update(data),
            MacState::CbcMac(ctx) => ctx.update(data),
            MacState::Xcbc(ctx) => ctx.update(data),
        }
    }

    fn mac(&mut self) -> Result<Vec<u8>> {
        let mut full = match &mut self.state {
            MacState::Hmac(ctx) => ctx.finish()?,
            MacState::Cmac(ctx) => ctx.result()?,
            MacState::CbcMac(ctx) => ctx.finish(),
            MacState::Xcbc(ctx) => ctx.finish()?,
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
    // HMACs take generic secrets too; CMAC takes AES keys only.
    let types = if key_type == CKK_AES {
        KeyTypes::One(CKK_AES)
    } else {
        KeyTypes::OneOrGenericSecret(key_type)
    };
    require_key(key, CKO_SECRET_KEY, types, usage)?;
    let value = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    if value.is_empty() || value.len() as CK_ULONG > MAX_SECRET_LEN {
        return Err(Rv::KeySizeRange);
    }
    Ok(value)
}

/// A MAC operation with a key.
pub fn mac_op(
    alg: MacAlg,
    key_type: CK_KEY_TYPE,
    length: MacLength,
    arg: &MechanismArg,
    key: &Attrs,
    usage: CK_ATTRIBUTE_TYPE,
    kept: &mut KeptContexts,
) -> Result<MacOp> {
    let full = alg.output_len();
    let out_len = match length {
        MacLength::Parameter => {
            let n = arg.ulong_param()? as usize;
            // HMACs shorter than half the hash are refused, as NSS does; an
            // AES-CMAC keeps at least 64 bits (SP 800-38B's advice); the
            // 64-bit block MACs take any length, as NSS's DES MACs do.
            let min = match alg {
                MacAlg::Cmac | MacAlg::AesXcbc => 8,
                MacAlg::DesCbcMac(_) | MacAlg::Des3Cmac => 1,
                MacAlg::Hmac(_) => full / 2,
            };
            if n > full || n < min {
                return Err(Rv::MechanismParamInvalid);
            }
            n
        }
        MacLength::Full => {
            arg.no_param()?;
            full
        }
        MacLength::Half => {
            arg.no_param()?;
            full / 2
        }
        MacLength::Fixed(n) => {
            arg.no_param()?;
            n
        }
    };
    let state = match alg {
        MacAlg::Hmac(h) => {
            let value = mac_key(key, usage, key_type)?;
            let keyed = kept
                .hmac
                .get_or_build(value, h as u64, || HmacKey::new(h, value))?;
            MacState::Hmac(Hmac::with_key(&keyed)?)
        }
        MacAlg::Cmac => MacState::new(alg, mac_key(key, usage, key_type)?)?,
        MacAlg::DesCbcMac(family) => MacState::CbcMac(Box::new(
            crate::mechanism::des::CbcMac::new(family, key, usage)?,
        )),
        MacAlg::Des3Cmac => {
            MacState::Cmac(Cmac::des3(&crate::mechanism::des::three_keys(key, usage)?)?)
        }
        MacAlg::AesXcbc => {
            MacState::Xcbc(Box::new(crate::mechanism::aes::XcbcMac::new(key, usage)?))
        }
    };
    Ok(MacOp { state, out_len })
}

/// A MAC over raw key bytes in one call (a PRF inside another mechanism).
pub fn mac_once(alg: MacAlg, key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut op = MacOp {
        state: MacState::new(alg, key)?,
        out_len: alg.output_len(),
    };
    op.absorb(data);
    op.mac()
}
