//! Object policy: which attributes each class (and key type) accepts, which
//! are required, fixed, read-only or sensitive, and their defaults. One
//! table per group of attributes says it all; creation, C_SetAttributeValue
//! and C_GetAttributeValue consult it.

pub mod attrs;

use pkcs11_sys::*;

use crate::nss::*;
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};

/// Must be in a creation template.
const REQUIRED: u8 = 1;
/// Set by the token; a template may only repeat the value it would get.
const TOKEN_SET: u8 = 2;
/// Cannot change once the object exists.
const FIXED: u8 = 4;
/// Never revealed while the object is sensitive or unextractable.
const SENSITIVE: u8 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Ulong,
    Bytes,
}

#[derive(Clone, Copy, Debug)]
enum Initial {
    None,
    Bool(bool),
    Ulong(CK_ULONG),
    Empty,
    /// The object's CKA_TOKEN (set before, by the common group).
    IsToken,
}

#[derive(Clone, Copy, Debug)]
struct Spec {
    ty: CK_ATTRIBUTE_TYPE,
    kind: Kind,
    flags: u8,
    default: Initial,
}

const fn s(ty: CK_ATTRIBUTE_TYPE, kind: Kind, flags: u8, default: Initial) -> Spec {
    Spec {
        ty,
        kind,
        flags,
        default,
    }
}

use Initial as D;
use Kind::*;

const COMMON: &[Spec] = &[
    s(CKA_CLASS, Ulong, REQUIRED | FIXED, D::None),
    s(CKA_TOKEN, Bool, FIXED, D::Bool(false)),
    s(CKA_MODIFIABLE, Bool, FIXED, D::Bool(true)),
    s(CKA_COPYABLE, Bool, 0, D::Bool(true)),
    s(CKA_DESTROYABLE, Bool, 0, D::Bool(true)),
    s(CKA_LABEL, Bytes, 0, D::Empty),
];

const DATA: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::Bool(false)),
    s(CKA_APPLICATION, Bytes, 0, D::Empty),
    s(CKA_OBJECT_ID, Bytes, 0, D::Empty),
    s(CKA_VALUE, Bytes, 0, D::Empty),
];

const CERTIFICATE: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::Bool(false)),
    s(CKA_CERTIFICATE_TYPE, Ulong, REQUIRED | FIXED, D::None),
    s(CKA_TRUSTED, Bool, 0, D::Bool(false)),
    s(CKA_CERTIFICATE_CATEGORY, Ulong, 0, D::Ulong(0)),
    s(CKA_CHECK_VALUE, Bytes, 0, D::None),
    s(CKA_START_DATE, Bytes, 0, D::Empty),
    s(CKA_END_DATE, Bytes, 0, D::Empty),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0, D::None),
];

const X509: &[Spec] = &[
    s(CKA_SUBJECT, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_VALUE, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_ID, Bytes, 0, D::Empty),
    s(CKA_ISSUER, Bytes, 0, D::Empty),
    s(CKA_SERIAL_NUMBER, Bytes, 0, D::Empty),
    s(CKA_URL, Bytes, 0, D::None),
    s(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Bytes, 0, D::None),
    s(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Bytes, 0, D::None),
    s(CKA_JAVA_MIDP_SECURITY_DOMAIN, Ulong, 0, D::Ulong(0)),
    s(CKA_NAME_HASH_ALGORITHM, Ulong, 0, D::None),
    s(CKA_NSS_EMAIL, Bytes, 0, D::None),
];

const KEY: &[Spec] = &[
    s(CKA_KEY_TYPE, Ulong, REQUIRED | FIXED, D::None),
    s(CKA_ID, Bytes, 0, D::Empty),
    s(CKA_START_DATE, Bytes, 0, D::Empty),
    s(CKA_END_DATE, Bytes, 0, D::Empty),
    s(CKA_DERIVE, Bool, 0, D::Bool(false)),
    s(CKA_LOCAL, Bool, TOKEN_SET | FIXED, D::Bool(false)),
    s(
        CKA_KEY_GEN_MECHANISM,
        Ulong,
        TOKEN_SET | FIXED,
        D::Ulong(CK_UNAVAILABLE_INFORMATION),
    ),
];

const PUBLIC_KEY: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::Bool(false)),
    s(CKA_SUBJECT, Bytes, 0, D::Empty),
    s(CKA_ENCRYPT, Bool, 0, D::Bool(true)),
    s(CKA_VERIFY, Bool, 0, D::Bool(true)),
    s(CKA_VERIFY_RECOVER, Bool, 0, D::Bool(true)),
    s(CKA_WRAP, Bool, 0, D::Bool(true)),
    s(CKA_TRUSTED, Bool, 0, D::Bool(false)),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0, D::None),
];

// CKA_PRIVATE of a key: TRUE for a token key (hidden until login, and
// never written without it), FALSE for a session key, NSS's default, so
// that a client may import a key into a session that is not logged in
// (OpenSSL's pkcs11-provider does) as NSS lets it. A key asked private
// still needs the login.
const PRIVATE_KEY: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::IsToken),
    s(CKA_SUBJECT, Bytes, 0, D::Empty),
    s(CKA_SENSITIVE, Bool, 0, D::Bool(true)),
    s(CKA_DECRYPT, Bool, 0, D::Bool(true)),
    s(CKA_SIGN, Bool, 0, D::Bool(true)),
    s(CKA_SIGN_RECOVER, Bool, 0, D::Bool(true)),
    s(CKA_UNWRAP, Bool, 0, D::Bool(true)),
    s(CKA_EXTRACTABLE, Bool, 0, D::Bool(true)),
    s(CKA_ALWAYS_SENSITIVE, Bool, TOKEN_SET | FIXED, D::None),
    s(CKA_NEVER_EXTRACTABLE, Bool, TOKEN_SET | FIXED, D::None),
    s(CKA_WRAP_WITH_TRUSTED, Bool, 0, D::Bool(false)),
    s(CKA_ALWAYS_AUTHENTICATE, Bool, 0, D::Bool(false)),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0, D::None),
    s(CKA_NSS_DB, Bytes, 0, D::None),
];

const SECRET_KEY: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::IsToken),
    s(CKA_SENSITIVE, Bool, 0, D::Bool(true)),
    s(CKA_ENCRYPT, Bool, 0, D::Bool(true)),
    s(CKA_DECRYPT, Bool, 0, D::Bool(true)),
    s(CKA_SIGN, Bool, 0, D::Bool(true)),
    s(CKA_VERIFY, Bool, 0, D::Bool(true)),
    s(CKA_WRAP, Bool, 0, D::Bool(true)),
    s(CKA_UNWRAP, Bool, 0, D::Bool(true)),
    s(CKA_EXTRACTABLE, Bool, 0, D::Bool(true)),
    s(CKA_ALWAYS_SENSITIVE, Bool, TOKEN_SET | FIXED, D::None),
    s(CKA_NEVER_EXTRACTABLE, Bool, TOKEN_SET | FIXED, D::None),
    s(CKA_WRAP_WITH_TRUSTED, Bool, 0, D::Bool(false)),
    s(CKA_TRUSTED, Bool, 0, D::Bool(false)),
    s(CKA_CHECK_VALUE, Bytes, 0, D::None),
    s(CKA_VALUE, Bytes, REQUIRED | FIXED | SENSITIVE, D::None),
    s(CKA_VALUE_LEN, Ulong, TOKEN_SET | FIXED, D::None),
];

const RSA_PUBLIC: &[Spec] = &[
    s(CKA_MODULUS, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_PUBLIC_EXPONENT, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_MODULUS_BITS, Ulong, TOKEN_SET | FIXED, D::None),
];

const RSA_PRIVATE: &[Spec] = &[
    s(CKA_MODULUS, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_PUBLIC_EXPONENT, Bytes, FIXED, D::None),
    s(
        CKA_PRIVATE_EXPONENT,
        Bytes,
        REQUIRED | FIXED | SENSITIVE,
        D::None,
    ),
    s(CKA_PRIME_1, Bytes, FIXED | SENSITIVE, D::None),
    s(CKA_PRIME_2, Bytes, FIXED | SENSITIVE, D::None),
    s(CKA_EXPONENT_1, Bytes, FIXED | SENSITIVE, D::None),
    s(CKA_EXPONENT_2, Bytes, FIXED | SENSITIVE, D::None),
    s(CKA_COEFFICIENT, Bytes, FIXED | SENSITIVE, D::None),
];

const EC_PUBLIC: &[Spec] = &[
    s(CKA_EC_PARAMS, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_EC_POINT, Bytes, REQUIRED | FIXED, D::None),
];

const EC_PRIVATE: &[Spec] = &[
    s(CKA_EC_PARAMS, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_VALUE, Bytes, REQUIRED | FIXED | SENSITIVE, D::None),
];

const DH_PUBLIC: &[Spec] = &[
    s(CKA_PRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_BASE, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_VALUE, Bytes, REQUIRED | FIXED, D::None),
];

const DH_PRIVATE: &[Spec] = &[
    s(CKA_PRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_BASE, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_VALUE, Bytes, REQUIRED | FIXED | SENSITIVE, D::None),
    s(CKA_VALUE_BITS, Ulong, FIXED, D::None),
];

const DSA_PUBLIC: &[Spec] = &[
    s(CKA_PRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_SUBPRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_BASE, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_VALUE, Bytes, REQUIRED | FIXED, D::None),
];

const DSA_PRIVATE: &[Spec] = &[
    s(CKA_PRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_SUBPRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_BASE, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_VALUE, Bytes, REQUIRED | FIXED | SENSITIVE, D::None),
];

// Domain parameters: a group kept for making key pairs in it later.
const DOMAIN_PARAMETERS: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::Bool(false)),
    s(CKA_KEY_TYPE, Ulong, REQUIRED | FIXED, D::None),
    s(CKA_LOCAL, Bool, TOKEN_SET | FIXED, D::Bool(false)),
];

const DSA_DOMAIN: &[Spec] = &[
    s(CKA_PRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_SUBPRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_BASE, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_PRIME_BITS, Ulong, TOKEN_SET | FIXED, D::None),
    s(CKA_SUB_PRIME_BITS, Ulong, TOKEN_SET | FIXED, D::None),
];

const DH_DOMAIN: &[Spec] = &[
    s(CKA_PRIME, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_BASE, Bytes, REQUIRED | FIXED, D::None),
    s(CKA_PRIME_BITS, Ulong, TOKEN_SET | FIXED, D::None),
];

const NSS_TRUST: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::Bool(false)),
    s(CKA_ISSUER, Bytes, 0, D::Empty),
    s(CKA_SERIAL_NUMBER, Bytes, 0, D::Empty),
    s(CKA_SUBJECT, Bytes, 0, D::None),
    s(CKA_CERT_SHA1_HASH, Bytes, 0, D::None),
    s(CKA_CERT_MD5_HASH, Bytes, 0, D::None),
    s(CKA_TRUST_DIGITAL_SIGNATURE, Ulong, 0, D::None),
    s(CKA_TRUST_NON_REPUDIATION, Ulong, 0, D::None),
    s(CKA_TRUST_KEY_ENCIPHERMENT, Ulong, 0, D::None),
    s(CKA_TRUST_DATA_ENCIPHERMENT, Ulong, 0, D::None),
    s(CKA_TRUST_KEY_AGREEMENT, Ulong, 0, D::None),
    s(CKA_TRUST_KEY_CERT_SIGN, Ulong, 0, D::None),
    s(CKA_TRUST_CRL_SIGN, Ulong, 0, D::None),
    s(CKA_TRUST_SERVER_AUTH, Ulong, 0, D::None),
    s(CKA_TRUST_CLIENT_AUTH, Ulong, 0, D::None),
    s(CKA_TRUST_CODE_SIGNING, Ulong, 0, D::None),
    s(CKA_TRUST_EMAIL_PROTECTION, Ulong, 0, D::None),
    s(CKA_TRUST_IPSEC_END_SYSTEM, Ulong, 0, D::None),
    s(CKA_TRUST_IPSEC_TUNNEL, Ulong, 0, D::None),
    s(CKA_TRUST_IPSEC_USER, Ulong, 0, D::None),
    s(CKA_TRUST_TIME_STAMPING, Ulong, 0, D::None),
    // NSS passes this one as a CK_BBOOL.
    s(CKA_TRUST_STEP_UP_APPROVED, Bool, 0, D::None),
];

const NSS_CRL: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::Bool(false)),
    s(CKA_SUBJECT, Bytes, REQUIRED, D::None),
    s(CKA_VALUE, Bytes, 0, D::Empty),
    s(CKA_NSS_URL, Bytes, 0, D::Empty),
    s(CKA_NSS_KRL, Bool, 0, D::Bool(false)),
];

const NSS_SMIME: &[Spec] = &[
    s(CKA_PRIVATE, Bool, FIXED, D::Bool(false)),
    s(CKA_SUBJECT, Bytes, 0, D::Empty),
    s(CKA_NSS_EMAIL, Bytes, REQUIRED, D::None),
    s(CKA_NSS_SMIME_INFO, Bytes, 0, D::None),
    s(CKA_NSS_SMIME_TIMESTAMP, Bytes, 0, D::None),
    s(CKA_VALUE, Bytes, 0, D::None),
];

/// Secret key types whose value is a plain byte string.
const SECRET_KEY_TYPES: &[CK_KEY_TYPE] = &[
    CKK_GENERIC_SECRET,
    CKK_AES,
    CKK_CHACHA20,
    CKK_DES,
    CKK_DES2,
    CKK_DES3,
    CKK_MD5_HMAC,
    CKK_SHA_1_HMAC,
    CKK_SHA224_HMAC,
    CKK_SHA256_HMAC,
    CKK_SHA384_HMAC,
    CKK_SHA512_HMAC,
    CKK_SHA512_224_HMAC,
    CKK_SHA512_256_HMAC,
    CKK_SHA3_224_HMAC,
    CKK_SHA3_256_HMAC,
    CKK_SHA3_384_HMAC,
    CKK_SHA3_512_HMAC,
    CKK_HKDF,
];

/// Whether a secret key of this type can be an object (every type a
/// mechanism makes or takes must be: the mechanism table's test checks).
pub fn is_secret_key_type(key_type: CK_KEY_TYPE) -> bool {
    SECRET_KEY_TYPES.contains(&key_type)
}

/// The groups of attributes an object of this class and subtype has.
/// `strict` (creation) refuses unknown classes and subtypes; otherwise
/// (objects already stored, which NSS may have written) the class groups
/// alone apply.
fn groups(
    class: CK_OBJECT_CLASS,
    subtype: Option<CK_ULONG>,
    strict: bool,
) -> Result<Vec<&'static [Spec]>> {
    let unknown = || {
        if strict {
            Err(Rv::AttributeValueInvalid)
        } else {
            Ok(None)
        }
    };
    let (class_groups, sub): (&[&[Spec]], Option<&[Spec]>) = match class {
        CKO_DATA => (&[COMMON, DATA], None),
        CKO_CERTIFICATE => (
            &[COMMON, CERTIFICATE],
            match subtype {
                Some(CKC_X_509) => Some(X509),
                _ => unknown()?,
            },
        ),
        CKO_PUBLIC_KEY => (
            &[COMMON, KEY, PUBLIC_KEY],
            match subtype {
                Some(CKK_RSA) => Some(RSA_PUBLIC),
                Some(CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY) => Some(EC_PUBLIC),
                Some(CKK_DH) => Some(DH_PUBLIC),
                Some(CKK_DSA) => Some(DSA_PUBLIC),
                _ => unknown()?,
            },
        ),
        CKO_PRIVATE_KEY => (
            &[COMMON, KEY, PRIVATE_KEY],
            match subtype {
                Some(CKK_RSA) => Some(RSA_PRIVATE),
                Some(CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY) => Some(EC_PRIVATE),
                Some(CKK_DH) => Some(DH_PRIVATE),
                Some(CKK_DSA) => Some(DSA_PRIVATE),
                _ => unknown()?,
            },
        ),
        CKO_DOMAIN_PARAMETERS => (
            &[COMMON, DOMAIN_PARAMETERS],
            match subtype {
                Some(CKK_DSA) => Some(DSA_DOMAIN),
                Some(CKK_DH) => Some(DH_DOMAIN),
                _ => unknown()?,
            },
        ),
        CKO_SECRET_KEY => {
            if strict && !subtype.is_some_and(is_secret_key_type) {
                return Err(Rv::AttributeValueInvalid);
            }
            (&[COMMON, KEY, SECRET_KEY], None)
        }
        CKO_NSS_TRUST => (&[COMMON, NSS_TRUST], None),
        CKO_NSS_CRL => (&[COMMON, NSS_CRL], None),
        CKO_NSS_SMIME => (&[COMMON, NSS_SMIME], None),
        _ if strict => return Err(Rv::AttributeValueInvalid),
        _ => (&[COMMON], None),
    };
    let mut out: Vec<&'static [Spec]> = class_groups.to_vec();
    out.extend(sub);
    Ok(out)
}

/// The type that selects the subtype table of a class.
fn subtype_attr(class: CK_OBJECT_CLASS) -> Option<CK_ATTRIBUTE_TYPE> {
    match class {
        CKO_CERTIFICATE => Some(CKA_CERTIFICATE_TYPE),
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY | CKO_DOMAIN_PARAMETERS => {
            Some(CKA_KEY_TYPE)
        }
        _ => None,
    }
}

/// The policy of one object, found from its class and subtype.
pub struct Policy {
    specs: Vec<&'static [Spec]>,
}

impl Policy {
    fn find(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&'static Spec> {
        // The later (more specific) group wins where two name one type.
        self.specs
            .iter()
            .rev()
            .find_map(|g| g.iter().find(|s| s.ty == t))
    }

    /// The policy of a stored object (lenient about what NSS may have made).
    pub fn of(attrs: &Attrs) -> Policy {
        let class = attrs.ulong(CKA_CLASS).unwrap_or(CKO_DATA);
        let subtype = subtype_attr(class).and_then(|t| attrs.ulong(t));
        Policy {
            specs: groups(class, subtype, false).unwrap_or_default(),
        }
    }

    /// Whether this attribute is secret key material of this class.
    pub fn is_sensitive(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        self.find(t).is_some_and(|s| s.flags & SENSITIVE != 0)
    }
}

/// The value length a DES key type fixes (DES 8 bytes, two-key triple DES
/// 16, three-key 24).
pub fn des_key_len(key_type: CK_KEY_TYPE) -> Option<usize> {
    match key_type {
        CKK_DES => Some(8),
        CKK_DES2 => Some(16),
        CKK_DES3 => Some(24),
        _ => None,
    }
}

/// The value length a key type fixes: the DES ones', ChaCha20's 32 bytes.
pub fn fixed_key_len(key_type: CK_KEY_TYPE) -> Option<usize> {
    match key_type {
        CKK_CHACHA20 => Some(32),
        _ => des_key_len(key_type),
    }
}

/// The attributes that, with the class, say two objects are the same one
/// (NSS's rules for updates and merges): a certificate or its trust by
/// issuer and serial number, a key by CKA_ID, a CRL by its issuer (kept in
/// CKA_SUBJECT), an S/MIME record by subject and address; and a data object
/// by everything it holds. Other classes have no identity: each is an
/// object of its own.
pub fn identity_types(class: CK_OBJECT_CLASS) -> Option<&'static [CK_ATTRIBUTE_TYPE]> {
    match class {
        CKO_CERTIFICATE | CKO_NSS_TRUST => Some(&[CKA_ISSUER, CKA_SERIAL_NUMBER]),
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => Some(&[CKA_ID]),
        CKO_NSS_CRL => Some(&[CKA_SUBJECT]),
        CKO_NSS_SMIME => Some(&[CKA_SUBJECT, CKA_NSS_EMAIL]),
        // NSS's merge leaves data objects out; here one is the same one
        // when all it holds is the same.
        CKO_DATA => Some(&[CKA_APPLICATION, CKA_OBJECT_ID, CKA_LABEL, CKA_VALUE]),
        _ => None,
    }
}

/// Whether an object's sensitive attributes must not be revealed.
pub fn hides_sensitive(attrs: &Attrs) -> bool {
    attrs.bool(CKA_SENSITIVE).unwrap_or(false) || attrs.bool(CKA_EXTRACTABLE) == Some(false)
}

fn check_kind(spec: &Spec, v: &[u8]) -> Result<()> {
    let ok = match spec.kind {
        Kind::Bool => matches!(v, [0] | [1]),
        Kind::Ulong => v.len() == std::mem::size_of::<CK_ULONG>(),
        Kind::Bytes => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Rv::AttributeValueInvalid)
    }
}

/// Builds a new object from a creation template (C_CreateObject): checks
/// every attribute against the class policy, fills defaults and the values
/// the token sets.
pub fn new_object(template: Attrs) -> Result<Attrs> {
    build(template, None)
}

/// What the token made for a new key: its mechanism and its values (the
/// key value, and for key pairs the public parts).
pub struct Generated {
    pub class: CK_OBJECT_CLASS,
    pub key_type: CK_KEY_TYPE,
    pub mechanism: CK_MECHANISM_TYPE,
    pub values: Attrs,
    pub origin: Origin,
}

/// How the token made a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Generated here (CKA_LOCAL).
    Generated,
    /// Derived from a base key, whose history it inherits.
    Derived {
        always_sensitive: bool,
        never_extractable: bool,
    },
}

/// Builds a key the token generated (C_GenerateKey, C_GenerateKeyPair):
/// the caller's template may not name the values the token makes, and
/// CKA_LOCAL, CKA_KEY_GEN_MECHANISM, CKA_ALWAYS_SENSITIVE and
/// CKA_NEVER_EXTRACTABLE record that the key was born here.
pub fn new_generated(mut template: Attrs, generated: Generated) -> Result<Attrs> {
    // A data object (HKDF_DATA's output) has no key type, and the length
    // its template asked for was the derivation's, not an attribute.
    if generated.class == CKO_DATA {
        template.remove(CKA_VALUE_LEN);
    }
    let fixed: &[(CK_ATTRIBUTE_TYPE, CK_ULONG)] = if generated.class == CKO_DATA {
        &[(CKA_CLASS, generated.class)]
    } else {
        &[
            (CKA_CLASS, generated.class),
            (CKA_KEY_TYPE, generated.key_type),
        ]
    };
    for &(t, want) in fixed {
        match template.ulong(t) {
            Some(v) if v != want => return Err(Rv::TemplateInconsistent),
            None if template.contains(t) => return Err(Rv::AttributeValueInvalid),
            _ => template.set_ulong(t, want),
        }
    }
    for (t, v) in generated.values.iter() {
        // A template may repeat a value the token sets (EC_PARAMS in both
        // templates of a pair), never contradict it.
        if template.get(t).is_some_and(|given| given != v) {
            return Err(Rv::TemplateInconsistent);
        }
    }
    for (t, v) in generated.values.iter() {
        template.set(t, v.to_vec());
    }
    build(template, Some((generated.mechanism, generated.origin)))
}

fn build(template: Attrs, made_by: Option<(CK_MECHANISM_TYPE, Origin)>) -> Result<Attrs> {
    let class = template
        .ulong(CKA_CLASS)
        .ok_or(if template.contains(CKA_CLASS) {
            Rv::AttributeValueInvalid
        } else {
            Rv::TemplateIncomplete
        })?;
    let subtype = match subtype_attr(class) {
        Some(t) => Some(template.ulong(t).ok_or(if template.contains(t) {
            Rv::AttributeValueInvalid
        } else {
            Rv::TemplateIncomplete
        })?),
        None => None,
    };
    let policy = Policy {
        specs: groups(class, subtype, true)?,
    };
    let mut obj = Attrs::new();
    let mut token_set = Vec::new();
    for (t, v) in template.iter() {
        let spec = policy.find(t).ok_or(Rv::AttributeTypeInvalid)?;
        check_kind(spec, v)?;
        if spec.flags & TOKEN_SET != 0 {
            // Checked against the computed value below.
            token_set.push((t, v.to_vec()));
            continue;
        }
        obj.set(t, v.to_vec());
    }
    for group in &policy.specs {
        for spec in group.iter() {
            if obj.contains(spec.ty) || spec.flags & TOKEN_SET != 0 {
                continue;
            }
            if spec.flags & REQUIRED != 0 {
                return Err(Rv::TemplateIncomplete);
            }
            match spec.default {
                D::None => {}
                D::Bool(b) => obj.set_bool(spec.ty, b),
                D::Ulong(n) => obj.set_ulong(spec.ty, n),
                D::Empty => obj.set(spec.ty, Vec::new()),
                D::IsToken => obj.set_bool(spec.ty, obj.bool(CKA_TOKEN) == Some(true)),
            }
        }
    }
    set_token_values(class, subtype, made_by, &mut obj)?;
    for (t, v) in token_set {
        if obj.get(t) != Some(v.as_slice()) {
            return Err(Rv::AttributeReadOnly);
        }
    }
    check_consistency(class, subtype, &obj)?;
    Ok(obj)
}

/// The values the token computes for a new object: imported (created), or
/// made here by a mechanism.
fn set_token_values(
    class: CK_OBJECT_CLASS,
    subtype: Option<CK_ULONG>,
    made_by: Option<(CK_MECHANISM_TYPE, Origin)>,
    obj: &mut Attrs,
) -> Result<()> {
    if matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        obj.set_bool(CKA_LOCAL, matches!(made_by, Some((_, Origin::Generated))));
        obj.set_ulong(
            CKA_KEY_GEN_MECHANISM,
            made_by.map_or(CK_UNAVAILABLE_INFORMATION, |(m, _)| m),
        );
    }
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        let sensitive = obj.bool(CKA_SENSITIVE).unwrap_or(false);
        let unextractable = obj.bool(CKA_EXTRACTABLE) == Some(false);
        let (always_sensitive, never_extractable) = match made_by {
            Some((_, Origin::Generated)) => (sensitive, unextractable),
            Some((
                _,
                Origin::Derived {
                    always_sensitive,
                    never_extractable,
                },
            )) => (
                always_sensitive && sensitive,
                never_extractable && unextractable,
            ),
            // An imported key was known outside the token: it was never
            // always sensitive nor never extractable.
            None => (false, false),
        };
        obj.set_bool(CKA_ALWAYS_SENSITIVE, always_sensitive);
        obj.set_bool(CKA_NEVER_EXTRACTABLE, never_extractable);
    }
    if class == CKO_PUBLIC_KEY && subtype == Some(CKK_RSA) {
        let modulus = obj.get(CKA_MODULUS).unwrap_or_default();
        let bits = significant_bits(modulus);
        obj.set_ulong(CKA_MODULUS_BITS, bits as CK_ULONG);
    }
    if class == CKO_SECRET_KEY {
        let len = obj.get(CKA_VALUE).map_or(0, <[u8]>::len);
        obj.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
    }
    if class == CKO_DOMAIN_PARAMETERS {
        obj.set_bool(CKA_LOCAL, matches!(made_by, Some((_, Origin::Generated))));
        let bits = |t| significant_bits(obj.get(t).unwrap_or_default()) as CK_ULONG;
        let (prime_bits, subprime_bits) = (bits(CKA_PRIME), bits(CKA_SUBPRIME));
        obj.set_ulong(CKA_PRIME_BITS, prime_bits);
        if subtype == Some(CKK_DSA) {
            obj.set_ulong(CKA_SUB_PRIME_BITS, subprime_bits);
        }
    }
    Ok(())
}

/// The number of significant bits of a big-endian number.
pub fn significant_bits(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
        None => 0,
    }
}

fn check_consistency(class: CK_OBJECT_CLASS, subtype: Option<CK_ULONG>, obj: &Attrs) -> Result<()> {
    let value_len = obj.get(CKA_VALUE).map_or(0, <[u8]>::len);
    match (class, subtype) {
        (CKO_SECRET_KEY, Some(CKK_AES)) if ![16, 24, 32].contains(&value_len) => {
            Err(Rv::AttributeValueInvalid)
        }
        (CKO_SECRET_KEY, Some(t @ (CKK_DES | CKK_DES2 | CKK_DES3 | CKK_CHACHA20)))
            if fixed_key_len(t) != Some(value_len) =>
        {
            Err(Rv::AttributeValueInvalid)
        }
        (CKO_SECRET_KEY, _) if value_len == 0 => Err(Rv::AttributeValueInvalid),
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, Some(CKK_RSA))
            if significant_bits(obj.get(CKA_MODULUS).unwrap_or_default()) == 0 =>
        {
            Err(Rv::AttributeValueInvalid)
        }
        (CKO_CERTIFICATE, _) if value_len == 0 => Err(Rv::AttributeValueInvalid),
        _ => Ok(()),
    }
}

/// Checks one C_SetAttributeValue change against the object's policy.
pub fn check_change(current: &Attrs, t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Result<()> {
    let policy = Policy::of(current);
    let spec = policy.find(t).ok_or(Rv::AttributeTypeInvalid)?;
    if spec.flags & (FIXED | TOKEN_SET) != 0 {
        return Err(Rv::AttributeReadOnly);
    }
    check_kind(spec, v)?;
    let turns_off = v == [0];
    let turns_on = v == [1];
    match t {
        // Once sensitive always sensitive; once unextractable, always.
        CKA_SENSITIVE if turns_off && current.bool(t) == Some(true) => Err(Rv::AttributeReadOnly),
        CKA_EXTRACTABLE if turns_on && current.bool(t) == Some(false) => Err(Rv::AttributeReadOnly),
        CKA_COPYABLE if turns_on && current.bool(t) == Some(false) => Err(Rv::AttributeReadOnly),
        CKA_DESTROYABLE if turns_on && current.bool(t) == Some(false) => Err(Rv::AttributeReadOnly),
        _ => Ok(()),
    }
}

/// Checks the attributes a C_CopyObject template may change.
pub fn check_copy_change(current: &Attrs, t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Result<()> {
    match t {
        // The spec lets a copy choose these.
        CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE => {
            if matches!(v, [0] | [1]) {
                Ok(())
            } else {
                Err(Rv::AttributeValueInvalid)
            }
        }
        _ => check_change(current, t, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ul(v: CK_ULONG) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn certificate_defaults_to_public_with_defaults_filled() {
        let t: Attrs = [
            (CKA_CLASS, ul(CKO_CERTIFICATE)),
            (CKA_CERTIFICATE_TYPE, ul(CKC_X_509)),
            (CKA_SUBJECT, b"subj".to_vec()),
            (CKA_VALUE, b"der".to_vec()),
        ]
        .into_iter()
        .collect();
        let o = new_object(t).unwrap();
        assert_eq!(o.bool(CKA_PRIVATE), Some(false));
        assert_eq!(o.bool(CKA_TOKEN), Some(false));
        assert_eq!(o.get(CKA_LABEL), Some(&[][..]));
    }

    #[test]
    fn creation_errors() {
        let base = |extra: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>| -> Attrs {
            let mut a: Attrs = [(CKA_CLASS, ul(CKO_SECRET_KEY)), (CKA_KEY_TYPE, ul(CKK_AES))]
                .into_iter()
                .collect();
            for (t, v) in extra {
                a.set(t, v);
            }
            a
        };
        assert_eq!(
            new_object(base(vec![])).unwrap_err(),
            Rv::TemplateIncomplete
        );
        assert_eq!(
            new_object(base(vec![(CKA_VALUE, vec![1; 15])])).unwrap_err(),
            Rv::AttributeValueInvalid
        );
        assert_eq!(
            new_object(base(vec![(CKA_VALUE, vec![1; 16]), (CKA_MODULUS, vec![1])])).unwrap_err(),
            Rv::AttributeTypeInvalid
        );
        assert_eq!(
            new_object(base(vec![(CKA_VALUE, vec![1; 16]), (CKA_SIGN, vec![2])])).unwrap_err(),
            Rv::AttributeValueInvalid
        );
        assert_eq!(
            new_object(base(vec![(CKA_VALUE, vec![1; 16]), (CKA_LOCAL, vec![1])])).unwrap_err(),
            Rv::AttributeReadOnly
        );
        let key = new_object(base(vec![(CKA_VALUE, vec![1; 16]), (CKA_LOCAL, vec![0])])).unwrap();
        assert_eq!(key.ulong(CKA_VALUE_LEN), Some(16));
        // Imported: sensitive now, but known outside the token before.
        assert_eq!(key.bool(CKA_ALWAYS_SENSITIVE), Some(false));
        assert!(Policy::of(&key).is_sensitive(CKA_VALUE));
        assert_eq!(
            new_object(Attrs::new()).unwrap_err(),
            Rv::TemplateIncomplete
        );
        let bad_class: Attrs = [(CKA_CLASS, ul(0x1234))].into_iter().collect();
        assert_eq!(
            new_object(bad_class).unwrap_err(),
            Rv::AttributeValueInvalid
        );
    }

    #[test]
    fn changes_follow_the_one_way_rules() {
        let key = new_object(
            [
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                (CKA_VALUE, vec![1; 20]),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
        assert_eq!(
            check_change(&key, CKA_SENSITIVE, &[0]),
            Err(Rv::AttributeReadOnly)
        );
        assert_eq!(check_change(&key, CKA_EXTRACTABLE, &[0]), Ok(()));
        assert_eq!(
            check_change(&key, CKA_VALUE, &[1]),
            Err(Rv::AttributeReadOnly)
        );
        assert_eq!(check_change(&key, CKA_LABEL, b"x"), Ok(()));
        assert_eq!(
            check_change(&key, CKA_MODULUS, b"x"),
            Err(Rv::AttributeTypeInvalid)
        );
        assert_eq!(significant_bits(&[0, 0x80, 0]), 16);
    }
}
