//! Attribute values in the caller's form: the in-memory map of an object.
//! (Their on-disk form is `storage::format`.)

use std::collections::BTreeMap;

use pkcs11_sys::*;
use zeroize::Zeroize;

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
