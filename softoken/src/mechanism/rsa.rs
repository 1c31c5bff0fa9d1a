//! RSA keys and signatures: key pair generation with the caller's public
//! exponent, PKCS#1 v1.5 (raw over a caller's DigestInfo, or over a hash
//! streamed as data arrives), PSS, and the raw X.509 operation.

use std::sync::Arc;

use pkcs11_sys::*;

use crate::engine::secret::SecretVec;
use crate::engine::{Direction, Hash, RawPadding, RsaKey, RsaPadding, RsaParts};
use crate::mechanism::hash::{self, HashRow};
use crate::mechanism::op::{
    require_key, CipherOp, KeyTypes, MessageInput, Part, SignOp, SignatureUse, VerifyOp,
};
use crate::mechanism::param::MechanismArg;
use crate::nss::CKA_NSS_DB;
use crate::object::attrs::Attrs;
use crate::object::Generated;
use crate::rv::{Result, Rv};
use zeroize::Zeroizing;

/// RSA signature schemes of the mechanism table.
#[derive(Clone, Copy, Debug)]
pub enum Scheme {
    /// PKCS#1 v1.5: over the caller's input (None), or a hash's DigestInfo.
    Pkcs1(Option<&'static HashRow>),
    /// PSS: over the caller's digest (None), or a hash of the data.
    Pss(Option<&'static HashRow>),
    /// The raw operation (CKM_RSA_X_509).
    X509,
    /// OAEP encryption (CKM_RSA_PKCS_OAEP).
    Oaep,
}

/// Key sizes offered, in bits.
pub const MIN_BITS: CK_ULONG = 1024;
pub const MAX_BITS: CK_ULONG = 8192;

/// A new key pair as the public template asks (CKA_MODULUS_BITS, and
/// CKA_PUBLIC_EXPONENT or 65537).
pub fn generate(
    mechanism: CK_MECHANISM_TYPE,
    public_template: &Attrs,
) -> Result<(Generated, Generated)> {
    let bits = match public_template.get(CKA_MODULUS_BITS) {
        Some(_) => public_template
            .ulong(CKA_MODULUS_BITS)
            .ok_or(Rv::AttributeValueInvalid)?,
        None => return Err(Rv::TemplateIncomplete),
    };
    if !(MIN_BITS..=MAX_BITS).contains(&bits) || bits % 8 != 0 {
        return Err(Rv::KeySizeRange);
    }
    let e = public_template
        .get(CKA_PUBLIC_EXPONENT)
        .unwrap_or(&[1, 0, 1]);
    let e_trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
    // An odd exponent above 1 that fits the engine's limit (33 bits).
    let small_enough = e_trimmed.len() < 5 || (e_trimmed.len() == 5 && e_trimmed[0] == 1);
    if e_trimmed.last().is_none_or(|b| b & 1 == 0) || e_trimmed == [1] || !small_enough {
        return Err(Rv::AttributeValueInvalid);
    }
    let parts = RsaKey::generate(bits as usize, &e_trimmed)?;
    let mut public = Attrs::new();
    public.set(CKA_MODULUS, parts.modulus.clone());
    public.set(CKA_PUBLIC_EXPONENT, parts.public_exponent.clone());
    let mut private = Attrs::new();
    private.set(CKA_MODULUS, parts.modulus.clone());
    private.set(CKA_PUBLIC_EXPONENT, parts.public_exponent.clone());
    private.set(CKA_PRIVATE_EXPONENT, parts.private_exponent.to_vec());
    private.set(CKA_PRIME_1, parts.prime_1.to_vec());
    private.set(CKA_PRIME_2, parts.prime_2.to_vec());
    private.set(CKA_EXPONENT_1, parts.exponent_1.to_vec());
    private.set(CKA_EXPONENT_2, parts.exponent_2.to_vec());
    private.set(CKA_COEFFICIENT, parts.coefficient.to_vec());
    // NSS keeps the public value beside the private key.
    private.set(CKA_NSS_DB, parts.modulus);
    let made = |class, values| Generated {
        class,
        key_type: CKK_RSA,
        mechanism,
        values,
        origin: crate::object::Origin::Generated,
    };
    // The template asked for the public exponent; if it gave one, the
    // generated value repeats it (leading zeros aside).
    let mut public_made = made(CKO_PUBLIC_KEY, public);
    if public_template.contains(CKA_PUBLIC_EXPONENT) {
        public_made.values.remove(CKA_PUBLIC_EXPONENT);
    }
    Ok((public_made, made(CKO_PRIVATE_KEY, private)))
}

fn private_key(key: &Attrs) -> Result<Arc<RsaKey>> {
    let get = |t| key.get(t).ok_or(Rv::KeyTypeInconsistent);
    const PARTS: [CK_ATTRIBUTE_TYPE; 8] = [
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_PRIVATE_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
        CKA_COEFFICIENT,
    ];
    let parts = PARTS.iter().map(|t| get(*t)).collect::<Result<Vec<_>>>()?;
    crate::cache::built::RSA_KEYS.get_or_build(&parts, || {
        let secret = |t| get(t).map(|v| Zeroizing::new(v.to_vec()));
        RsaKey::from_private(&RsaParts {
            modulus: get(CKA_MODULUS)?.to_vec(),
            public_exponent: get(CKA_PUBLIC_EXPONENT)?.to_vec(),
            private_exponent: secret(CKA_PRIVATE_EXPONENT)?,
            prime_1: secret(CKA_PRIME_1)?,
            prime_2: secret(CKA_PRIME_2)?,
            exponent_1: secret(CKA_EXPONENT_1)?,
            exponent_2: secret(CKA_EXPONENT_2)?,
            coefficient: secret(CKA_COEFFICIENT)?,
        })
    })
}

fn public_key(key: &Attrs) -> Result<Arc<RsaKey>> {
    let n = key.get(CKA_MODULUS).ok_or(Rv::KeyTypeInconsistent)?;
    let e = key
        .get(CKA_PUBLIC_EXPONENT)
        .ok_or(Rv::KeyTypeInconsistent)?;
    Ok(Arc::new(RsaKey::from_public(n, e)?))
}

/// What a signature is computed with once the input is complete.
#[derive(Clone, Copy)]
enum Resolved {
    Pkcs1(Option<&'static [u8]>),
    Pss { hash: Hash, mgf: Hash, salt: usize },
    X509,
}

/// The hash a parameter names (hashAlg), and its MGF1 hash (mgf).
fn named_hashes(hash_alg: CK_ULONG, mgf: CK_ULONG) -> Result<(&'static HashRow, Hash)> {
    let named = hash::by_digest(hash_alg).ok_or(Rv::MechanismParamInvalid)?;
    let mgf = hash::by_mgf1(mgf).ok_or(Rv::MechanismParamInvalid)?;
    Ok((named, mgf.hash))
}

/// CK_RSA_PKCS_PSS_PARAMS: hashAlg, mgf, sLen.
fn pss_params(arg: &MechanismArg, hash: Option<&HashRow>) -> Result<Resolved> {
    if arg.param.len() != 3 * std::mem::size_of::<CK_ULONG>() {
        return Err(Rv::MechanismParamInvalid);
    }
    let (named, mgf) = named_hashes(arg.word(0)?, arg.word(1)?)?;
    if hash.is_some_and(|h| h.digest != named.digest) {
        return Err(Rv::MechanismParamInvalid);
    }
    let salt = usize::try_from(arg.word(2)?).map_err(|_| Rv::MechanismParamInvalid)?;
    Ok(Resolved::Pss {
        hash: named.hash,
        mgf,
        salt,
    })
}

fn resolve(scheme: Scheme, arg: &MechanismArg) -> Result<(Resolved, Option<Hash>)> {
    Ok(match scheme {
        Scheme::Pkcs1(hash) => {
            arg.no_param()?;
            (
                Resolved::Pkcs1(hash.map(|h| h.digest_info)),
                hash.map(|h| h.hash),
            )
        }
        Scheme::Pss(hash) => (pss_params(arg, hash)?, hash.map(|h| h.hash)),
        Scheme::X509 => {
            arg.no_param()?;
            (Resolved::X509, None)
        }
        Scheme::Oaep => return Err(Rv::MechanismInvalid),
    })
}

struct RsaOp {
    key: Arc<RsaKey>,
    scheme: Resolved,
    input: MessageInput,
}

impl SignOp for RsaOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn output_len(&self) -> usize {
        self.key.size()
    }
    fn sign(&mut self) -> Result<Vec<u8>> {
        let digest = self.input.digest()?;
        match self.scheme {
            Resolved::Pkcs1(prefix) => self.key.sign_raw(
                &[prefix.unwrap_or_default(), &digest].concat(),
                RawPadding::Pkcs1,
            ),
            Resolved::Pss { hash, mgf, salt } => self.key.sign_pss(&digest, hash, mgf, salt),
            Resolved::X509 => self.key.sign_raw(&digest, RawPadding::None),
        }
    }
}

impl VerifyOp for RsaOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        let digest = self.input.digest()?;
        let valid = match self.scheme {
            Resolved::Pkcs1(prefix) => self.key.verify_raw(
                &[prefix.unwrap_or_default(), &digest].concat(),
                signature,
                RawPadding::Pkcs1,
            )?,
            Resolved::Pss { hash, mgf, salt } => {
                self.key.verify_pss(&digest, signature, hash, mgf, salt)?
            }
            Resolved::X509 => self.key.verify_raw(&digest, signature, RawPadding::None)?,
        };
        if valid {
            Ok(())
        } else {
            Err(Rv::SignatureInvalid)
        }
    }
}

pub fn sign_op(scheme: Scheme, arg: &MechanismArg, key: &Attrs) -> Result<Box<dyn SignOp>> {
    let (resolved, hash) = resolve(scheme, arg)?;
    require_key(key, CKO_PRIVATE_KEY, KeyTypes::One(CKK_RSA), CKA_SIGN)?;
    Ok(Box::new(RsaOp {
        key: private_key(key)?,
        scheme: resolved,
        input: MessageInput::new(hash)?,
    }))
}

pub fn verify_op(scheme: Scheme, arg: &MechanismArg, key: &Attrs) -> Result<Box<dyn VerifyOp>> {
    let (resolved, hash) = resolve(scheme, arg)?;
    require_key(key, CKO_PUBLIC_KEY, KeyTypes::One(CKK_RSA), CKA_VERIFY)?;
    Ok(Box::new(RsaOp {
        key: public_key(key)?,
        scheme: resolved,
        input: MessageInput::new(hash)?,
    }))
}

/// Signing with message recovery (C_SignRecover, C_VerifyRecover) by
/// CKM_RSA_PKCS or CKM_RSA_X_509: the data is inside the signature.
pub struct RecoverOp {
    key: Arc<RsaKey>,
    padding: RawPadding,
}

impl RecoverOp {
    pub fn new(scheme: Scheme, key: &Attrs, side: SignatureUse) -> Result<RecoverOp> {
        let padding = match scheme {
            Scheme::Pkcs1(None) => RawPadding::Pkcs1,
            Scheme::X509 => RawPadding::None,
            _ => return Err(Rv::MechanismInvalid),
        };
        let key = match side {
            SignatureUse::Sign => {
                require_key(
                    key,
                    CKO_PRIVATE_KEY,
                    KeyTypes::One(CKK_RSA),
                    CKA_SIGN_RECOVER,
                )?;
                private_key(key)?
            }
            SignatureUse::Verify => {
                require_key(
                    key,
                    CKO_PUBLIC_KEY,
                    KeyTypes::One(CKK_RSA),
                    CKA_VERIFY_RECOVER,
                )?;
                public_key(key)?
            }
        };
        Ok(RecoverOp { key, padding })
    }

    /// The signature length.
    pub fn size(&self) -> usize {
        self.key.size()
    }

    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.key.sign_raw(data, self.padding)
    }

    pub fn recover(&self, signature: &[u8]) -> Result<Vec<u8>> {
        self.key.recover(signature, self.padding)
    }
}

/// CK_RSA_PKCS_OAEP_PARAMS: hashAlg, mgf, source, and the label (read at
/// the C boundary from pSourceData).
fn oaep_padding(arg: &MechanismArg) -> Result<RsaPadding> {
    let (hash, mgf) = named_hashes(arg.word(0)?, arg.word(1)?)?;
    let label = arg.pointed.first().cloned().unwrap_or_default();
    // The only source the specification defines, and the one it requires.
    if arg.word(2)? != CKZ_DATA_SPECIFIED {
        return Err(Rv::MechanismParamInvalid);
    }
    Ok(RsaPadding::Oaep {
        hash: hash.hash,
        mgf,
        label,
    })
}

/// RSA encryption or decryption: single-part (input is collected until
/// the operation ends).
struct RsaCipher {
    key: Arc<RsaKey>,
    padding: RsaPadding,
    direction: Direction,
    input: SecretVec,
}

impl CipherOp for RsaCipher {
    fn output_len(&self, _more: usize, part: Part) -> usize {
        if part == Part::Last {
            self.key.size()
        } else {
            0
        }
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        if self.input.len() + input.len() > self.key.size() {
            return Err(match self.direction {
                Direction::Encrypt => Rv::DataLenRange,
                Direction::Decrypt => Rv::EncryptedDataLenRange,
            });
        }
        self.input.extend_from_slice(input);
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        match self.direction {
            Direction::Encrypt => self.key.encrypt(&self.input, &self.padding),
            Direction::Decrypt => Ok(self.key.decrypt(&self.input, &self.padding)?.to_vec()),
        }
    }
}

pub fn cipher_op(
    scheme: Scheme,
    arg: &MechanismArg,
    key: &Attrs,
    direction: Direction,
    usage: CK_ATTRIBUTE_TYPE,
) -> Result<Box<dyn CipherOp>> {
    let padding = match scheme {
        Scheme::Pkcs1(None) => {
            arg.no_param()?;
            RsaPadding::Pkcs1
        }
        Scheme::X509 => {
            arg.no_param()?;
            RsaPadding::Raw
        }
        Scheme::Oaep => oaep_padding(arg)?,
        _ => return Err(Rv::MechanismInvalid),
    };
    let rsa = match direction {
        Direction::Encrypt => {
            require_key(key, CKO_PUBLIC_KEY, KeyTypes::One(CKK_RSA), usage)?;
            public_key(key)?
        }
        Direction::Decrypt => {
            require_key(key, CKO_PRIVATE_KEY, KeyTypes::One(CKK_RSA), usage)?;
            private_key(key)?
        }
    };
    Ok(Box::new(RsaCipher {
        key: rsa,
        padding,
        direction,
        input: SecretVec::default(),
    }))
}
