//! Ed25519 (CKK_EC_EDWARDS, CKM_EDDSA) and X25519 (CKK_EC_MONTGOMERY, with
//! CKM_ECDH1_DERIVE) keys. CKA_EC_PARAMS names the curve by OID or by its
//! printable name; CKA_EC_POINT holds the 32-byte public key in a DER OCTET
//! STRING (raw accepted); CKA_VALUE the 32-byte private key.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};
use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::mechanism::op::{require_key, KeyTypes, SignOp, VerifyOp};
use crate::mechanism::param::MechanismArg;
use crate::mechanism::point::wrap_point;
use crate::object::attrs::Attrs;
use crate::object::{Generated, Origin};
use crate::rv::{Result, Rv};

const KEY_LEN: usize = 32;

/// CKA_EC_PARAMS accepted for Ed25519: the OID 1.3.101.112, the
/// PrintableString "edwards25519", or GnuPG's older OID
/// 1.3.6.1.4.1.11591.15.1 (what OpenSC's pkcs11-tool sends).
const EDWARDS_PARAMS: [&[u8]; 3] = [
    &[0x06, 0x03, 0x2b, 0x65, 0x70],
    &[
        0x13, 0x0c, b'e', b'd', b'w', b'a', b'r', b'd', b's', b'2', b'5', b'5', b'1', b'9',
    ],
    &[
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01,
    ],
];
/// CKA_EC_PARAMS accepted for X25519: the OID 1.3.101.110, "curve25519",
/// or the older 1.3.6.1.4.1.3029.1.5.1.
const MONTGOMERY_PARAMS: [&[u8]; 3] = [
    &[0x06, 0x03, 0x2b, 0x65, 0x6e],
    &[
        0x13, 0x0a, b'c', b'u', b'r', b'v', b'e', b'2', b'5', b'5', b'1', b'9',
    ],
    &[
        0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01,
    ],
];

fn params_for(key_type: CK_KEY_TYPE) -> &'static [&'static [u8]; 3] {
    if key_type == CKK_EC_EDWARDS {
        &EDWARDS_PARAMS
    } else {
        &MONTGOMERY_PARAMS
    }
}

fn wrap(public: &[u8]) -> Vec<u8> {
    wrap_point(public)
}

/// The 32-byte public key of a CKA_EC_POINT value, wrapped or raw.
pub fn unwrap_public(value: &[u8]) -> Result<&[u8]> {
    match value {
        [0x04, 0x20, rest @ ..] if rest.len() == KEY_LEN => Ok(rest),
        raw if raw.len() == KEY_LEN => Ok(raw),
        _ => Err(Rv::KeyTypeInconsistent),
    }
}

/// A new Ed25519 or X25519 key pair; the public template names the curve.
pub fn generate(
    mechanism: CK_MECHANISM_TYPE,
    key_type: CK_KEY_TYPE,
    public_template: &Attrs,
) -> Result<(Generated, Generated)> {
    crate::engine::secret::mark_stack();
    let params = public_template
        .get(CKA_EC_PARAMS)
        .ok_or(Rv::TemplateIncomplete)?;
    if !params_for(key_type).contains(&params) {
        return Err(Rv::CurveNotSupported);
    }
    let (private, public): (Zeroizing<Vec<u8>>, Vec<u8>) = if key_type == CKK_EC_EDWARDS {
        let pair = Ed25519KeyPair::generate().map_err(|_| Rv::FunctionFailed)?;
        let seed = pair
            .seed()
            .and_then(|s| s.as_be_bytes())
            .map_err(|_| Rv::FunctionFailed)?;
        (
            Zeroizing::new(seed.as_ref().to_vec()),
            pair.public_key().as_ref().to_vec(),
        )
    } else {
        let key =
            agreement::PrivateKey::generate(&agreement::X25519).map_err(|_| Rv::FunctionFailed)?;
        let bytes: aws_lc_rs::encoding::Curve25519SeedBin =
            key.as_be_bytes().map_err(|_| Rv::FunctionFailed)?;
        let public = key.compute_public_key().map_err(|_| Rv::FunctionFailed)?;
        (
            Zeroizing::new(bytes.as_ref().to_vec()),
            public.as_ref().to_vec(),
        )
    };
    let mut public_values = Attrs::new();
    public_values.set(CKA_EC_POINT, wrap(&public));
    let mut private_values = Attrs::new();
    private_values.set(CKA_EC_PARAMS, params.to_vec());
    private_values.set(CKA_VALUE, private.to_vec());
    let made = |class, values| Generated {
        class,
        key_type,
        mechanism,
        values,
        origin: Origin::Generated,
    };
    Ok((
        made(CKO_PUBLIC_KEY, public_values),
        made(CKO_PRIVATE_KEY, private_values),
    ))
}

/// CK_EDDSA_PARAMS, if given, must ask for plain Ed25519: no pre-hash, no
/// context (the Ed25519ph and Ed25519ctx variants are not offered).
fn check_eddsa_params(arg: &MechanismArg) -> Result<()> {
    if arg.param.is_empty() {
        return Ok(());
    }
    let ul = std::mem::size_of::<CK_ULONG>();
    if arg.param.len() != 3 * ul {
        return Err(Rv::MechanismParamInvalid);
    }
    let context_len = arg.word(1)?;
    if arg.param[0] != 0 || context_len != 0 {
        return Err(Rv::MechanismParamInvalid);
    }
    Ok(())
}

/// EdDSA signs the whole message at once: it is collected as it arrives.
struct EddsaSign {
    pair: Ed25519KeyPair,
    message: Vec<u8>,
}

impl SignOp for EddsaSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.message.extend_from_slice(data);
        Ok(())
    }
    fn output_len(&self) -> usize {
        64
    }
    fn sign(&mut self) -> Result<Vec<u8>> {
        crate::engine::secret::mark_stack();
        Ok(self.pair.sign(&self.message).as_ref().to_vec())
    }
}

struct EddsaVerify {
    public: Vec<u8>,
    message: Vec<u8>,
}

impl VerifyOp for EddsaVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.message.extend_from_slice(data);
        Ok(())
    }
    fn verify(&mut self, sig: &[u8]) -> Result<()> {
        if sig.len() != 64 {
            return Err(Rv::SignatureLenRange);
        }
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.public)
            .verify(&self.message, sig)
            .map_err(|_| Rv::SignatureInvalid)
    }
}

pub fn sign_op(arg: &MechanismArg, key: &Attrs) -> Result<Box<dyn SignOp>> {
    crate::engine::secret::mark_stack();
    check_eddsa_params(arg)?;
    require_key(
        key,
        CKO_PRIVATE_KEY,
        KeyTypes::One(CKK_EC_EDWARDS),
        CKA_SIGN,
    )?;
    let seed = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| Rv::KeyTypeInconsistent)?;
    Ok(Box::new(EddsaSign {
        pair,
        message: Vec::new(),
    }))
}

pub fn verify_op(arg: &MechanismArg, key: &Attrs) -> Result<Box<dyn VerifyOp>> {
    check_eddsa_params(arg)?;
    require_key(
        key,
        CKO_PUBLIC_KEY,
        KeyTypes::One(CKK_EC_EDWARDS),
        CKA_VERIFY,
    )?;
    let public = unwrap_public(key.get(CKA_EC_POINT).ok_or(Rv::KeyTypeInconsistent)?)?.to_vec();
    Ok(Box::new(EddsaVerify {
        public,
        message: Vec::new(),
    }))
}

/// The X25519 shared secret of a Montgomery private key and a peer's
/// public key (CKM_ECDH1_DERIVE's raw secret).
pub fn x25519_secret(base: &Attrs, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    crate::engine::secret::mark_stack();
    require_key(
        base,
        CKO_PRIVATE_KEY,
        KeyTypes::One(CKK_EC_MONTGOMERY),
        CKA_DERIVE,
    )?;
    let scalar = base.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
    let private = agreement::PrivateKey::from_private_key(&agreement::X25519, scalar)
        .map_err(|_| Rv::KeyTypeInconsistent)?;
    let peer = unwrap_public(peer).map_err(|_| Rv::MechanismParamInvalid)?;
    agreement::agree(
        &private,
        agreement::UnparsedPublicKey::new(&agreement::X25519, peer),
        Rv::MechanismParamInvalid,
        |z| Ok(Zeroizing::new(z.to_vec())),
    )
}
