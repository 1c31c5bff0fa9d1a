//! `merge --source-module`: the token of another PKCS#11 module (SoftHSMv2
//! is the one users move off) read for merging into a softoken database.
//! Each object's attributes are read as they are; a key's secret part
//! leaves its token the one way PKCS#11 lets it, wrapped (AES key wrap
//! with padding) under a transport key made for this run in the source
//! token, and is unwrapped here. A key that may not be wrapped stays where
//! it is and is reported.

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use serde_json::{json, Value};
use softoken::admin::ForeignObject;

use crate::db::Token;
use crate::error::Outcome;

/// The attributes read, where the source has them: those a creation or
/// unwrapping template may carry (the target sets the rest itself).
const READ: &[AttributeType] = &[
    AttributeType::Class,
    AttributeType::Private,
    AttributeType::Modifiable,
    AttributeType::Copyable,
    AttributeType::Destroyable,
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::KeyType,
    AttributeType::CertificateType,
    AttributeType::Subject,
    AttributeType::Issuer,
    AttributeType::SerialNumber,
    AttributeType::Value,
    AttributeType::Modulus,
    AttributeType::PublicExponent,
    AttributeType::EcParams,
    AttributeType::EcPoint,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Sign,
    AttributeType::SignRecover,
    AttributeType::Verify,
    AttributeType::VerifyRecover,
    AttributeType::Wrap,
    AttributeType::Unwrap,
    AttributeType::Derive,
    AttributeType::AlwaysAuthenticate,
    AttributeType::WrapWithTrusted,
    AttributeType::Application,
    AttributeType::ObjectId,
    AttributeType::Url,
    AttributeType::HashOfSubjectPublicKey,
    AttributeType::HashOfIssuerPublicKey,
];

/// An attribute as the C API carries it: its type and value bytes (a
/// CK_ULONG or CK_BBOOL in the machine's form). None for the few this
/// reader does not copy.
fn raw(a: &Attribute) -> Option<(std::ffi::c_ulong, Vec<u8>)> {
    use std::ffi::c_ulong;
    let t = c_ulong::from(a.attribute_type());
    let ulong = |v: c_ulong| Some((t, v.to_ne_bytes().to_vec()));
    let flag = |b: bool| Some((t, vec![u8::from(b)]));
    match a {
        Attribute::Class(c) => ulong(c_ulong::from(*c)),
        Attribute::KeyType(k) => ulong(c_ulong::from(*k)),
        Attribute::CertificateType(c) => ulong(c_ulong::from(*c)),
        Attribute::Private(b)
        | Attribute::Modifiable(b)
        | Attribute::Copyable(b)
        | Attribute::Destroyable(b)
        | Attribute::Sensitive(b)
        | Attribute::Extractable(b)
        | Attribute::Encrypt(b)
        | Attribute::Decrypt(b)
        | Attribute::Sign(b)
        | Attribute::SignRecover(b)
        | Attribute::Verify(b)
        | Attribute::VerifyRecover(b)
        | Attribute::Wrap(b)
        | Attribute::Unwrap(b)
        | Attribute::Derive(b)
        | Attribute::AlwaysAuthenticate(b)
        | Attribute::WrapWithTrusted(b) => flag(*b),
        Attribute::Label(v)
        | Attribute::Id(v)
        | Attribute::Subject(v)
        | Attribute::Issuer(v)
        | Attribute::SerialNumber(v)
        | Attribute::Value(v)
        | Attribute::Modulus(v)
        | Attribute::PublicExponent(v)
        | Attribute::EcParams(v)
        | Attribute::EcPoint(v)
        | Attribute::Application(v)
        | Attribute::ObjectId(v)
        | Attribute::Url(v)
        | Attribute::HashOfSubjectPublicKey(v)
        | Attribute::HashOfIssuerPublicKey(v) => Some((t, v.clone())),
        _ => None,
    }
}

/// What the source token gave: the objects to merge and, for each, what a
/// report calls it; and the objects left where they are, with why.
pub struct Read {
    pub objects: Vec<ForeignObject>,
    pub names: Vec<String>,
    pub left: Vec<Value>,
}

/// How a report names an object: its label, else its class and CKA_ID.
fn name_of(attrs: &[Attribute]) -> String {
    let mut class = String::from("object");
    let mut id = String::new();
    for a in attrs {
        match a {
            Attribute::Label(l) if !l.is_empty() => return String::from_utf8_lossy(l).into_owned(),
            Attribute::Class(c) => class = c.to_string(),
            Attribute::Id(v) if !v.is_empty() => id = format!(" id {}", hex::encode(v)),
            _ => {}
        }
    }
    format!("{class}{id}")
}

/// Reads every token object of the logged-in source token; `progress`
/// hears (objects read, objects in all).
pub fn read(token: &Token, progress: &mut dyn FnMut(usize, usize)) -> Outcome<Read> {
    let handles = token.find(&[Attribute::Token(true)])?;
    let mut out = Read {
        objects: Vec::new(),
        names: Vec::new(),
        left: Vec::new(),
    };
    // Made after the search, so that it is not among what is read.
    let mut transport = None;
    for (n, handle) in handles.iter().enumerate() {
        progress(n + 1, handles.len());
        let attrs = token.attributes(*handle, READ)?;
        let name = name_of(&attrs);
        let class = attrs.iter().find_map(|a| match a {
            Attribute::Class(c) => Some(*c),
            _ => None,
        });
        let is_key = matches!(
            class,
            Some(ObjectClass::PRIVATE_KEY) | Some(ObjectClass::SECRET_KEY)
        );
        let flag = |want: &dyn Fn(&Attribute) -> bool| attrs.iter().any(want);
        let mut leave = |why: String| out.left.push(json!({"label": name, "why": why}));
        if is_key && flag(&|a| matches!(a, Attribute::Extractable(false))) {
            leave("not extractable: it cannot leave its token".into());
            continue;
        }
        if is_key && flag(&|a| matches!(a, Attribute::WrapWithTrusted(true))) {
            leave("it may be wrapped only with a trusted key, which this tool cannot make".into());
            continue;
        }
        let key_material = if is_key {
            if transport.is_none() {
                transport = Some(crate::db::transport_key(token)?);
            }
            let Some((kek, value)) = &transport else {
                continue;
            };
            match crate::db::wrap_out(token, *kek, value, *handle) {
                Ok(m) => Some(m),
                Err(f) => {
                    leave(f.message);
                    continue;
                }
            }
        } else {
            None
        };
        // A key's values come out of its wrapping; read again here they
        // could only disagree with it.
        let material_types: &[AttributeType] = &[
            AttributeType::Value,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
            AttributeType::EcParams,
            AttributeType::EcPoint,
        ];
        let attributes = attrs
            .iter()
            .filter(|a| !(is_key && material_types.contains(&a.attribute_type())))
            .filter_map(raw)
            .collect();
        out.objects.push(ForeignObject {
            attributes,
            key_material,
        });
        out.names.push(name);
    }
    if let Some((h, _)) = transport {
        let _ = token.session.destroy_object(h);
    }
    Ok(out)
}
