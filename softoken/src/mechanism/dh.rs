//! PKCS #3 Diffie-Hellman: key pairs in the group a public template names
//! (CKA_PRIME, CKA_BASE: RFC 7919's FFDHE groups, or a caller's own), and
//! CKM_DH_PKCS_DERIVE, whose parameter is the peer's public value; new
//! groups (CKM_DH_PKCS_PARAMETER_GEN).

use pkcs11_sys::*;

use crate::mechanism::kdf::{derived_origin, made, template_key_type, wanted_len};
use crate::mechanism::op::{require_key, KeyTypes};
use crate::nss::CKA_NSS_DB;
use crate::object::attrs::Attrs;
use crate::object::{Generated, Origin};
use crate::rv::{Result, Rv};

/// The prime size a domain-parameter template asks for (CKA_PRIME_BITS):
/// DH's and DSA's parameter generations.
pub fn template_prime_bits(template: &Attrs) -> Result<usize> {
    match template.get(CKA_PRIME_BITS) {
        Some(_) => Ok(template
            .ulong(CKA_PRIME_BITS)
            .ok_or(Rv::AttributeValueInvalid)? as usize),
        None => Err(Rv::TemplateIncomplete),
    }
}

/// CKM_DH_PKCS_PARAMETER_GEN: a domain-parameter object with a new group
/// of CKA_PRIME_BITS bits.
pub fn generate_parameters(mechanism: CK_MECHANISM_TYPE, template: &Attrs) -> Result<Generated> {
    let bits = template_prime_bits(template)?;
    let (p, g) = crate::engine::dh::generate_parameters(bits)?;
    let mut values = Attrs::new();
    values.set(CKA_PRIME, p);
    values.set(CKA_BASE, g);
    Ok(Generated {
        class: CKO_DOMAIN_PARAMETERS,
        key_type: CKK_DH,
        mechanism,
        values,
        origin: Origin::Generated,
    })
}

/// A new key pair in the public template's group; a CKA_VALUE_BITS in the
/// private template sets the private value's length.
pub fn generate(
    mechanism: CK_MECHANISM_TYPE,
    public_template: &Attrs,
    private_template: &Attrs,
) -> Result<(Generated, Generated)> {
    let prime = public_template
        .get(CKA_PRIME)
        .ok_or(Rv::TemplateIncomplete)?;
    let base = public_template
        .get(CKA_BASE)
        .ok_or(Rv::TemplateIncomplete)?;
    let private_bits = match private_template.get(CKA_VALUE_BITS) {
        Some(_) => Some(
            private_template
                .ulong(CKA_VALUE_BITS)
                .ok_or(Rv::AttributeValueInvalid)? as usize,
        ),
        None => None,
    };
    let (x, y) = crate::engine::dh::generate(prime, base, private_bits)?;
    let mut public = Attrs::new();
    public.set(CKA_VALUE, y.clone());
    let mut private = Attrs::new();
    private.set(CKA_PRIME, prime.to_vec());
    private.set(CKA_BASE, base.to_vec());
    let bits = crate::object::significant_bits(&x);
    private.set(CKA_VALUE_BITS, (bits as CK_ULONG).to_ne_bytes().to_vec());
    private.set(CKA_VALUE, x.to_vec());
    // NSS keeps the public value beside the private key.
    private.set(CKA_NSS_DB, y);
    let made = |class, values| Generated {
        class,
        key_type: CKK_DH,
        mechanism,
        values,
        origin: Origin::Generated,
    };
    Ok((made(CKO_PUBLIC_KEY, public), made(CKO_PRIVATE_KEY, private)))
}

/// CKM_DH_PKCS_DERIVE: the shared secret with the peer's public value (the
/// mechanism's parameter), as long as the prime, as a new secret key. A
/// CKA_VALUE_LEN shorter than that keeps the secret's last bytes, as NSS
/// does; without one a generic secret is the whole secret.
pub fn derive(
    mechanism: CK_MECHANISM_TYPE,
    peer_public: &[u8],
    base: &Attrs,
    template: &Attrs,
) -> Result<Generated> {
    require_key(base, CKO_PRIVATE_KEY, KeyTypes::One(CKK_DH), CKA_DERIVE)?;
    if peer_public.is_empty() {
        return Err(Rv::MechanismParamInvalid);
    }
    let value = |t| base.get(t).ok_or(Rv::KeyTypeInconsistent);
    let secret = crate::engine::dh::shared_secret(
        value(CKA_PRIME)?,
        value(CKA_BASE)?,
        value(CKA_VALUE)?,
        peer_public,
    )?;
    let default = (template_key_type(template)? == CKK_GENERIC_SECRET).then_some(secret.len());
    let len = wanted_len(template, default)?;
    if len == 0 || len > secret.len() {
        return Err(Rv::TemplateInconsistent);
    }
    let key = secret[secret.len() - len..].to_vec();
    made(mechanism, template, key, derived_origin(&[base]), false)
}
