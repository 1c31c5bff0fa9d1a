//! DSA: domain parameters (CKM_DSA_PARAMETER_GEN), key pairs in the group
//! a public template names (CKA_PRIME, CKA_SUBPRIME, CKA_BASE), and
//! signatures over a caller's digest (CKM_DSA) or over data hashed as it
//! arrives (CKM_DSA_SHA1 ... CKM_DSA_SHA3_512), r || s as PKCS#11 has them.

use pkcs11_sys::*;

use crate::engine::dsa::Domain;
use crate::engine::secret::SecretVec;
use crate::engine::Hash;
use crate::mechanism::op::{require_key, KeyTypes, MessageInput, SignOp, VerifyOp};
use crate::nss::CKA_NSS_DB;
use crate::object::attrs::Attrs;
use crate::object::{Generated, Origin};
use crate::rv::{Result, Rv};

fn made(
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
    mechanism: CK_MECHANISM_TYPE,
    values: Attrs,
) -> Generated {
    Generated {
        class,
        key_type,
        mechanism,
        values,
        origin: Origin::Generated,
    }
}

/// CKM_DSA_PARAMETER_GEN: a domain-parameter object with a new group of
/// CKA_PRIME_BITS bits. A CKA_SUB_PRIME_BITS must be the size of q that
/// goes with it (160 below 2048 bits, else 256).
pub fn generate_parameters(mechanism: CK_MECHANISM_TYPE, template: &Attrs) -> Result<Generated> {
    let bits = crate::mechanism::dh::template_prime_bits(template)?;
    if template.get(CKA_SUB_PRIME_BITS).is_some() {
        let wanted = if bits >= 2048 { 256 } else { 160 };
        if template.ulong(CKA_SUB_PRIME_BITS) != Some(wanted) {
            return Err(Rv::TemplateInconsistent);
        }
    }
    let (p, q, g) = crate::engine::dsa::generate_parameters(bits)?;
    let mut values = Attrs::new();
    values.set(CKA_PRIME, p);
    values.set(CKA_SUBPRIME, q);
    values.set(CKA_BASE, g);
    Ok(made(CKO_DOMAIN_PARAMETERS, CKK_DSA, mechanism, values))
}

/// The group of a template or key: all three numbers, or `missing`.
fn domain_of(attrs: &Attrs, missing: Rv) -> Result<Domain<'_>> {
    let get = |t| attrs.get(t).ok_or(missing);
    Ok(Domain {
        prime: get(CKA_PRIME)?,
        subprime: get(CKA_SUBPRIME)?,
        base: get(CKA_BASE)?,
    })
}

/// CKM_DSA_KEY_PAIR_GEN: a key pair in the public template's group.
pub fn generate(
    mechanism: CK_MECHANISM_TYPE,
    public_template: &Attrs,
) -> Result<(Generated, Generated)> {
    let domain = domain_of(public_template, Rv::TemplateIncomplete)?;
    let (x, y) = crate::engine::dsa::generate(&domain)?;
    let mut public = Attrs::new();
    public.set(CKA_VALUE, y.clone());
    let mut private = Attrs::new();
    private.set(CKA_PRIME, domain.prime.to_vec());
    private.set(CKA_SUBPRIME, domain.subprime.to_vec());
    private.set(CKA_BASE, domain.base.to_vec());
    private.set(CKA_VALUE, x.to_vec());
    // NSS keeps the public value beside the private key.
    private.set(CKA_NSS_DB, y);
    Ok((
        made(CKO_PUBLIC_KEY, CKK_DSA, mechanism, public),
        made(CKO_PRIVATE_KEY, CKK_DSA, mechanism, private),
    ))
}

/// A DSA key's group and value, copied out of the object.
struct DsaKey {
    prime: Vec<u8>,
    subprime: Vec<u8>,
    base: Vec<u8>,
    value: SecretVec,
    /// A private key's public value, where NSS keeps it beside the key.
    public: Option<Vec<u8>>,
}

impl DsaKey {
    fn of(key: &Attrs, class: CK_OBJECT_CLASS, usage: CK_ATTRIBUTE_TYPE) -> Result<DsaKey> {
        require_key(key, class, KeyTypes::One(CKK_DSA), usage)?;
        let domain = domain_of(key, Rv::KeyTypeInconsistent)?;
        Ok(DsaKey {
            prime: domain.prime.to_vec(),
            subprime: domain.subprime.to_vec(),
            base: domain.base.to_vec(),
            value: SecretVec::from(key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?.to_vec()),
            public: key.get(CKA_NSS_DB).map(<[u8]>::to_vec),
        })
    }

    fn domain(&self) -> Domain<'_> {
        Domain {
            prime: &self.prime,
            subprime: &self.subprime,
            base: &self.base,
        }
    }
}

struct DsaOp {
    key: DsaKey,
    input: MessageInput,
}

impl SignOp for DsaOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn output_len(&self) -> usize {
        2 * self.key.subprime.iter().skip_while(|b| **b == 0).count()
    }
    fn sign(&mut self) -> Result<Vec<u8>> {
        let digest = self.input.digest()?;
        if digest.is_empty() {
            return Err(Rv::DataLenRange);
        }
        crate::engine::dsa::sign(
            &self.key.domain(),
            &self.key.value,
            self.key.public.as_deref(),
            &digest,
        )
    }
}

impl VerifyOp for DsaOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        let digest = self.input.digest()?;
        if crate::engine::dsa::verify(&self.key.domain(), &self.key.value, &digest, signature)? {
            Ok(())
        } else {
            Err(Rv::SignatureInvalid)
        }
    }
}

/// Signing with a private key; `hash` None is CKM_DSA, over a digest the
/// caller made.
pub fn sign_op(key: &Attrs, hash: Option<Hash>) -> Result<Box<dyn SignOp>> {
    Ok(Box::new(DsaOp {
        key: DsaKey::of(key, CKO_PRIVATE_KEY, CKA_SIGN)?,
        input: MessageInput::new(hash)?,
    }))
}

/// Verifying with a public key (its CKA_VALUE is y).
pub fn verify_op(key: &Attrs, hash: Option<Hash>) -> Result<Box<dyn VerifyOp>> {
    Ok(Box::new(DsaOp {
        key: DsaKey::of(key, CKO_PUBLIC_KEY, CKA_VERIFY)?,
        input: MessageInput::new(hash)?,
    }))
}
