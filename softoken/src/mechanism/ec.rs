//! Elliptic-curve keys and ECDSA: curves named by CKA_EC_PARAMS, points in
//! either encoding clients send, key pair generation, and the signing and
//! verifying operations (raw, or over a hash streamed as data arrives).

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING,
};
use pkcs11_sys::*;

use crate::engine::{Curve, EcKey, Hash};
use crate::mechanism::digest::DigestOp;
use crate::mechanism::hash;
use crate::mechanism::op::{require_key, KeyTypes, MessageInput, SignOp, VerifyOp};
use crate::mechanism::point::{unwrap_point, wrap_point};
use crate::nss::CKA_NSS_DB;
use crate::object::attrs::Attrs;
use crate::object::{Generated, Origin};
use crate::rv::{Result, Rv};

/// CKA_EC_PARAMS of each curve: the DER of its named-curve OID.
const CURVES: [(Curve, &[u8]); 3] = [
    (
        Curve::P256,
        &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    ),
    (Curve::P384, &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]),
    (Curve::P521, &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]),
];

pub fn curve_of(params: &[u8]) -> Result<Curve> {
    CURVES
        .iter()
        .find(|(_, der)| *der == params)
        .map(|(c, _)| *c)
        .ok_or(Rv::CurveNotSupported)
}

fn params_of(curve: Curve) -> &'static [u8] {
    CURVES
        .iter()
        .find(|(c, _)| *c == curve)
        .map_or(&[], |(_, der)| der)
}

/// A new key pair on the curve the public template names.
pub fn generate(
    mechanism: CK_MECHANISM_TYPE,
    public_template: &Attrs,
) -> Result<(Generated, Generated)> {
    crate::engine::secret::mark_stack();
    let params = public_template
        .get(CKA_EC_PARAMS)
        .ok_or(Rv::TemplateIncomplete)?;
    let curve = curve_of(params)?;
    let alg = match curve {
        Curve::P256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &ECDSA_P521_SHA512_FIXED_SIGNING,
    };
    let pair = EcdsaKeyPair::generate(alg).map_err(|_| Rv::FunctionFailed)?;
    let scalar = pair
        .private_key()
        .as_be_bytes()
        .map_err(|_| Rv::FunctionFailed)?;
    let point = pair.public_key().as_ref().to_vec();

    let mut public = Attrs::new();
    public.set(CKA_EC_POINT, wrap_point(&point));
    let mut private = Attrs::new();
    private.set(CKA_EC_PARAMS, params_of(curve).to_vec());
    private.set(CKA_VALUE, scalar.as_ref().to_vec());
    // NSS keeps the public value beside the private key.
    private.set(CKA_NSS_DB, point);
    let made = |class, values| Generated {
        class,
        key_type: CKK_EC,
        mechanism,
        values,
        origin: crate::object::Origin::Generated,
    };
    Ok((made(CKO_PUBLIC_KEY, public), made(CKO_PRIVATE_KEY, private)))
}

/// The curve of an EC key object of this class that allows `usage`.
fn checked_curve(key: &Attrs, class: CK_OBJECT_CLASS, usage: CK_ATTRIBUTE_TYPE) -> Result<Curve> {
    require_key(key, class, KeyTypes::One(CKK_EC), usage)?;
    curve_of(key.get(CKA_EC_PARAMS).ok_or(Rv::KeyTypeInconsistent)?)
}

struct EcdsaOp {
    key: std::sync::Arc<EcKey>,
    curve: Curve,
    input: MessageInput,
}

impl SignOp for EcdsaOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn output_len(&self) -> usize {
        2 * self.curve.field_len()
    }
    fn sign(&mut self) -> Result<Vec<u8>> {
        self.key.sign_digest(&self.input.digest()?)
    }
}

impl VerifyOp for EcdsaOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        if self.key.verify_digest(&self.input.digest()?, signature)? {
            Ok(())
        } else {
            Err(Rv::SignatureInvalid)
        }
    }
}

pub fn sign_op(key: &Attrs, hash: Option<Hash>) -> Result<Box<dyn SignOp>> {
    let curve = checked_curve(key, CKO_PRIVATE_KEY, CKA_SIGN)?;
    let scalar = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    let name = [curve as u8];
    Ok(Box::new(EcdsaOp {
        key: crate::cache::built::EC_KEYS
            .get_or_build(&[&name, scalar], || EcKey::from_private(curve, scalar))?,
        curve,
        input: MessageInput::new(hash)?,
    }))
}

pub fn verify_op(key: &Attrs, hash: Option<Hash>) -> Result<Box<dyn VerifyOp>> {
    let curve = checked_curve(key, CKO_PUBLIC_KEY, CKA_VERIFY)?;
    let point = unwrap_point(curve, key.get(CKA_EC_POINT).ok_or(Rv::KeyTypeInconsistent)?)?;
    Ok(Box::new(EcdsaOp {
        key: std::sync::Arc::new(EcKey::from_public(curve, point)?),
        curve,
        input: MessageInput::new(hash)?,
    }))
}

/// ECDH1_DERIVE: the shared secret with the peer's public point, through
/// the KDF CK_ECDH1_DERIVE_PARAMS names (NULL, or ANSI X9.63 with SHA-1 or
/// SHA-2), as a new secret key.
pub fn derive(
    mechanism: CK_MECHANISM_TYPE,
    arg: &crate::mechanism::param::MechanismArg,
    base: &Attrs,
    template: &Attrs,
) -> Result<Generated> {
    let kdf = arg.word(0)?;
    let [shared_data, public_data] = arg.pointed.as_slice() else {
        return Err(Rv::MechanismParamInvalid);
    };
    let hash = match kdf {
        CKD_NULL if shared_data.is_empty() => None,
        _ => Some(
            hash::by_ecdh_kdf(kdf)
                .ok_or(Rv::MechanismParamInvalid)?
                .hash,
        ),
    };
    let secret = if base.ulong(CKA_KEY_TYPE) == Some(CKK_EC_MONTGOMERY) {
        crate::mechanism::curve25519::x25519_secret(base, public_data)?
    } else {
        nist_secret(base, public_data)?
    };
    let key_type = match template.get(CKA_KEY_TYPE) {
        Some(_) => template
            .ulong(CKA_KEY_TYPE)
            .ok_or(Rv::AttributeValueInvalid)?,
        None => CKK_GENERIC_SECRET,
    };
    let len = match (template.get(CKA_VALUE_LEN), key_type) {
        (Some(_), _) => template
            .ulong(CKA_VALUE_LEN)
            .ok_or(Rv::AttributeValueInvalid)? as usize,
        (None, CKK_GENERIC_SECRET) => secret.len(),
        (None, CKK_AES) => return Err(Rv::TemplateIncomplete),
        (None, _) => secret.len(),
    };
    let value = match hash {
        None if len <= secret.len() => secret[..len].to_vec(),
        None => return Err(Rv::TemplateInconsistent),
        Some(hash) => x963_kdf(hash, &secret, shared_data, len)?,
    };
    let mut values = Attrs::new();
    values.set(CKA_VALUE, value);
    Ok(Generated {
        class: CKO_SECRET_KEY,
        key_type,
        mechanism,
        values,
        origin: Origin::Derived {
            always_sensitive: base.bool(CKA_ALWAYS_SENSITIVE).unwrap_or(false),
            never_extractable: base.bool(CKA_NEVER_EXTRACTABLE).unwrap_or(false),
        },
    })
}

/// The ECDH shared secret of a NIST-curve private key and a peer's point.
fn nist_secret(base: &Attrs, public_data: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    crate::engine::secret::mark_stack();
    use aws_lc_rs::agreement;

    let curve = checked_curve(base, CKO_PRIVATE_KEY, CKA_DERIVE)?;
    let peer = unwrap_point(curve, public_data).map_err(|_| Rv::MechanismParamInvalid)?;
    let alg = match curve {
        Curve::P256 => &agreement::ECDH_P256,
        Curve::P384 => &agreement::ECDH_P384,
        Curve::P521 => &agreement::ECDH_P521,
    };
    // aws-lc-rs wants the scalar at the curve's full width.
    let scalar = base.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    if scalar.len() > curve.field_len() {
        return Err(Rv::KeyTypeInconsistent);
    }
    let mut padded = zeroize::Zeroizing::new(vec![0u8; curve.field_len() - scalar.len()]);
    padded.extend_from_slice(scalar);
    let private = agreement::PrivateKey::from_private_key(alg, &padded)
        .map_err(|_| Rv::KeyTypeInconsistent)?;
    agreement::agree(
        &private,
        agreement::UnparsedPublicKey::new(alg, peer),
        Rv::MechanismParamInvalid,
        |z| Ok(zeroize::Zeroizing::new(z.to_vec())),
    )
}

/// The ANSI X9.63 KDF: Hash(Z || counter || SharedInfo) for counter 1, 2...
fn x963_kdf(hash: Hash, z: &[u8], shared_info: &[u8], len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len + hash.output_len());
    let mut counter = 1u32;
    while out.len() < len {
        let mut ctx = DigestOp::new(hash)?;
        ctx.update(z);
        ctx.update(&counter.to_be_bytes());
        ctx.update(shared_info);
        out.extend_from_slice(&ctx.result()?);
        counter += 1;
    }
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_not_in_the_table_is_refused() {
        assert_eq!(
            curve_of(&[0x06, 0x01, 0x00]).unwrap_err(),
            Rv::CurveNotSupported
        );
    }
}
