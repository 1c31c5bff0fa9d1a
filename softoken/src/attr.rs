//! Attribute values: the in-memory map of an object, and the conversions
//! between a caller's form and NSS's on-disk form.

use std::collections::BTreeMap;

use pkcs11_sys::*;
use zeroize::Zeroize;

use crate::nss::*;
use crate::rv::{Result, Rv};

/// An object's attributes in the caller's form (CK_ULONG native, CK_BBOOL one
/// byte). Values are wiped when the map is dropped: some are key material.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attrs(BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>);

impl std::fmt::Debug for Attrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Types only: values may be secret.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Drop for Attrs {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

impl Attrs {
    pub fn new() -> Attrs {
        Attrs::default()
    }

    pub fn get(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.0.get(&t).map(Vec::as_slice)
    }

    pub fn contains(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        self.0.contains_key(&t)
    }

    pub fn set(&mut self, t: CK_ATTRIBUTE_TYPE, v: Vec<u8>) {
        if let Some(mut old) = self.0.insert(t, v) {
            old.zeroize();
        }
    }

    pub fn set_bool(&mut self, t: CK_ATTRIBUTE_TYPE, v: bool) {
        self.set(t, vec![u8::from(v)]);
    }

    pub fn set_ulong(&mut self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) {
        self.set(t, v.to_ne_bytes().to_vec());
    }

    pub fn remove(&mut self, t: CK_ATTRIBUTE_TYPE) {
        if let Some(mut old) = self.0.remove(&t) {
            old.zeroize();
        }
    }

    /// A CK_BBOOL attribute; absent or malformed reads as `None`.
    pub fn bool(&self, t: CK_ATTRIBUTE_TYPE) -> Option<bool> {
        match self.get(t)? {
            [b] => Some(*b != 0),
            _ => None,
        }
    }

    /// A CK_ULONG attribute in the caller's (native) form.
    pub fn ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        let bytes: [u8; std::mem::size_of::<CK_ULONG>()] = self.get(t)?.try_into().ok()?;
        Some(CK_ULONG::from_ne_bytes(bytes))
    }

    pub fn iter(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &[u8])> {
        self.0.iter().map(|(t, v)| (*t, v.as_slice()))
    }

    pub fn types(&self) -> impl Iterator<Item = CK_ATTRIBUTE_TYPE> + '_ {
        self.0.keys().copied()
    }
}

impl FromIterator<(CK_ATTRIBUTE_TYPE, Vec<u8>)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, Vec<u8>)>>(iter: I) -> Attrs {
        let mut a = Attrs::new();
        for (t, v) in iter {
            a.set(t, v);
        }
        a
    }
}

/// Whether NSS stores this type as a 4-byte big-endian CK_ULONG.
pub fn is_ulong(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_CLASS
            | CKA_CERTIFICATE_TYPE
            | CKA_CERTIFICATE_CATEGORY
            | CKA_JAVA_MIDP_SECURITY_DOMAIN
            | CKA_KEY_TYPE
            | CKA_MODULUS_BITS
            | CKA_PRIME_BITS
            | CKA_SUBPRIME_BITS
            | CKA_VALUE_BITS
            | CKA_VALUE_LEN
            | CKA_KEY_GEN_MECHANISM
            | CKA_MECHANISM_TYPE
            | CKA_NAME_HASH_ALGORITHM
    ) || (CKA_TRUST_DIGITAL_SIGNATURE..=CKA_TRUST_STEP_UP_APPROVED).contains(&t)
}

/// The attributes NSS encrypts in the key database.
pub fn is_encrypted(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_VALUE
            | CKA_PRIVATE_EXPONENT
            | CKA_PRIME_1
            | CKA_PRIME_2
            | CKA_EXPONENT_1
            | CKA_EXPONENT_2
            | CKA_COEFFICIENT
    )
}

/// The public attributes NSS protects with an integrity record.
pub fn is_authenticated(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_MODULUS
            | CKA_PUBLIC_EXPONENT
            | CKA_CERT_SHA1_HASH
            | CKA_CERT_MD5_HASH
            | CKA_TRUST_SERVER_AUTH
            | CKA_TRUST_CLIENT_AUTH
            | CKA_TRUST_EMAIL_PROTECTION
            | CKA_TRUST_CODE_SIGNING
            | CKA_TRUST_STEP_UP_APPROVED
            | CKA_NSS_OVERRIDE_EXTENSIONS
    )
}

/// 0xffffffff on disk stands for CK_UNAVAILABLE_INFORMATION (and
/// CK_EFFECTIVELY_INFINITE-style all-ones values).
const DISK_ALL_ONES: u32 = u32::MAX;

/// The on-disk form of a value (CK_ULONG types become big-endian 32-bit).
pub fn to_disk(t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Result<Vec<u8>> {
    if is_ulong(t) && v.len() == std::mem::size_of::<CK_ULONG>() {
        let n = CK_ULONG::from_ne_bytes(v.try_into().map_err(|_| Rv::GeneralError)?);
        let n32 = if n == CK_UNAVAILABLE_INFORMATION {
            DISK_ALL_ONES
        } else {
            u32::try_from(n).map_err(|_| Rv::AttributeValueInvalid)?
        };
        return Ok(n32.to_be_bytes().to_vec());
    }
    Ok(v.to_vec())
}

/// The caller's form of a stored value.
pub fn from_disk(t: CK_ATTRIBUTE_TYPE, v: Vec<u8>) -> Vec<u8> {
    if is_ulong(t) {
        if let Ok(b) = <[u8; 4]>::try_from(v.as_slice()) {
            let n = u32::from_be_bytes(b);
            let wide = if n == DISK_ALL_ONES {
                CK_UNAVAILABLE_INFORMATION
            } else {
                CK_ULONG::from(n)
            };
            return wide.to_ne_bytes().to_vec();
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulong_values_round_trip_through_disk_form() {
        let class = CKO_CERTIFICATE.to_ne_bytes();
        assert_eq!(to_disk(CKA_CLASS, &class).unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(from_disk(CKA_CLASS, vec![0, 0, 0, 1]), class.to_vec());
        let unavailable = CK_UNAVAILABLE_INFORMATION.to_ne_bytes();
        let disk = to_disk(CKA_KEY_GEN_MECHANISM, &unavailable).unwrap();
        assert_eq!(disk, vec![0xff; 4]);
        assert_eq!(from_disk(CKA_KEY_GEN_MECHANISM, disk), unavailable.to_vec());
        // The one-byte STEP_UP bool NSS writes stays as it is.
        assert_eq!(from_disk(CKA_TRUST_STEP_UP_APPROVED, vec![0]), vec![0]);
        assert_eq!(to_disk(CKA_LABEL, b"x").unwrap(), b"x");
        assert_eq!(
            to_disk(CKA_CLASS, &(1u64 << 40).to_ne_bytes()).unwrap_err(),
            Rv::AttributeValueInvalid
        );
    }
}
