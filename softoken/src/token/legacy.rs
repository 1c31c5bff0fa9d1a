//! The token's side of the legacy (`dbm:`) key database: opening a key3.db
//! key record (PKCS#8 under the legacy PBE, or PBES2 from newer NSS) into
//! the attributes the token stores, private values encrypted again under
//! the login's key; and sealing a private or secret key object into a
//! record as NSS 3.87 writes them (the legacy PBE). Secret keys (Firefox's
//! password-manager key among them) are records of NSS's "fake RSA" form.

use std::sync::Arc;

use pkcs11_sys::*;

use crate::mechanism::pkcs8;
use crate::object::attrs::Attrs;
use zeroize::Zeroizing;

use crate::storage::format;
use crate::storage::keydb::{KeyState, PASSWORD_CHECK};

/// The codec the token hands the legacy store while logged in.
pub struct KeyCodec(pub Arc<KeyState>);

/// NSS's legacy key type of a secret key, from the field it keeps it in
/// (lg_FindSecretKeyAttribute): written as 4 bytes in network order since
/// NSS 3.9.1, before that in host order with the zeros stripped.
fn secret_key_type(field: &[u8]) -> CK_ULONG {
    let mut b = field;
    if b.len() == 8 {
        if b[..4] == [0; 4] {
            b = &b[4..];
        }
        b = &b[..4];
    }
    match b {
        [a, rest @ ..] if b.len() == 4 && (a & 0x80 != 0 || rest != [0; 3]) => {
            CK_ULONG::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        _ => b.first().map_or(0, |k| CK_ULONG::from(*k)),
    }
}

/// A secret key's value at its key type's length: the legacy format keeps
/// it as an integer, which drops leading zero bytes.
fn secret_key_value(key_type: CK_ULONG, value: &[u8]) -> Zeroizing<Vec<u8>> {
    let lengths: &[usize] = match key_type {
        CKK_AES => &[16, 24, 32],
        CKK_DES3 => &[24],
        CKK_DES2 => &[16],
        CKK_DES => &[8],
        _ => &[],
    };
    let want = lengths
        .iter()
        .copied()
        .find(|n| *n >= value.len())
        .unwrap_or(value.len());
    let mut out = Zeroizing::new(vec![0u8; want - value.len()]);
    out.extend_from_slice(value);
    out
}

/// A key record that holds a secret key: NSS keeps one as an RSA private
/// key whose public exponent is 0 (lg_mkSecretKeyRep).
fn is_secret_key(attrs: &Attrs) -> bool {
    attrs.ulong(CKA_KEY_TYPE) == Some(CKK_RSA)
        && attrs
            .get(CKA_PUBLIC_EXPONENT)
            .is_some_and(|e| e.iter().all(|b| *b == 0))
}

/// A secret key as NSS's legacy record: an RSA key with its CKA_ID as the
/// modulus, 0 as the public exponent, the value as the private exponent
/// and the key type (4 bytes, network order) as the coefficient.
fn secret_key_record(key: &Attrs) -> Attrs {
    let mut fake = Attrs::new();
    fake.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    fake.set_ulong(CKA_KEY_TYPE, CKK_RSA);
    fake.set(CKA_MODULUS, key.get(CKA_ID).unwrap_or_default().to_vec());
    fake.set(
        CKA_PRIVATE_EXPONENT,
        key.get(CKA_VALUE).unwrap_or_default().to_vec(),
    );
    for t in [
        CKA_PUBLIC_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
    ] {
        fake.set(t, vec![0]);
    }
    let key_type = key.ulong(CKA_KEY_TYPE).unwrap_or(CKK_GENERIC_SECRET) as u32;
    fake.set(CKA_COEFFICIENT, key_type.to_be_bytes().to_vec());
    fake
}

impl sdb::KeyRecordCodec for KeyCodec {
    fn open_private_key(&self, payload: &[u8]) -> sdb::Result<Vec<sdb::Attribute>> {
        let bad = |what: &str| sdb::Error::Corrupt(format!("key3.db private key: {what}"));
        let (pkcs8, _) = self
            .0
            .decrypt(payload)
            .map_err(|_| bad("does not decrypt"))?;
        let mut template = Attrs::new();
        template.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        let mut attrs =
            pkcs8::unwrapped_key(&pkcs8, &template).map_err(|_| bad("not a key NSS writes"))?;
        if is_secret_key(&attrs) {
            let key_type = secret_key_type(attrs.get(CKA_COEFFICIENT).unwrap_or_default());
            let value = secret_key_value(
                key_type,
                attrs.get(CKA_PRIVATE_EXPONENT).unwrap_or_default(),
            );
            attrs = Attrs::new();
            attrs.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
            attrs.set_ulong(CKA_KEY_TYPE, key_type);
            attrs.set_ulong(CKA_VALUE_LEN, value.len() as CK_ULONG);
            attrs.set(CKA_VALUE, value.to_vec());
        }
        let mut out = Vec::new();
        for (t, v) in attrs.iter() {
            // A private key's class is the store's to set.
            if t == CKA_CLASS && attrs.ulong(CKA_CLASS) == Some(CKO_PRIVATE_KEY) {
                continue;
            }
            let stored = if format::is_encrypted(t) {
                self.0
                    .encrypt(v)
                    .map_err(|_| bad("cannot be re-encrypted"))?
            } else {
                format::to_disk(t, v).map_err(|_| bad("bad attribute"))?
            };
            out.push((t, stored));
        }
        Ok(out)
    }

    fn seal_private_key(&self, stored: &[sdb::Attribute]) -> sdb::Result<Vec<u8>> {
        let bad = |what: &str| sdb::Error::Corrupt(format!("private key for key3.db: {what}"));
        let mut attrs = Attrs::new();
        for (t, v) in stored {
            let value = if format::is_encrypted(*t) {
                self.0
                    .decrypt(v)
                    .map_err(|_| bad("does not decrypt"))?
                    .0
                    .to_vec()
            } else {
                format::from_disk(*t, v.clone())
            };
            attrs.set(*t, value);
        }
        if attrs.ulong(CKA_CLASS) == Some(CKO_SECRET_KEY) {
            attrs = secret_key_record(&attrs);
        }
        let pkcs8 = pkcs8::key_bytes(&attrs).map_err(|_| bad("not a key type key3.db holds"))?;
        self.seal_payload(&pkcs8)
    }

    fn open_payload(&self, payload: &[u8]) -> sdb::Result<Zeroizing<Vec<u8>>> {
        self.0
            .decrypt(payload)
            .map(|(plain, _)| plain)
            .map_err(|_| sdb::Error::Corrupt("key3.db private key: does not decrypt".into()))
    }

    fn seal_payload(&self, pkcs8: &[u8]) -> sdb::Result<Vec<u8>> {
        self.0
            .encrypt_legacy(pkcs8)
            .map_err(|_| sdb::Error::Corrupt("private key for key3.db: cannot be encrypted".into()))
    }

    fn unlocks(&self, password: &sdb::Metadata) -> bool {
        let Some(check) = &password.item2 else {
            return false;
        };
        matches!(self.0.decrypt(check), Ok((plain, _)) if plain.as_slice() == PASSWORD_CHECK)
    }
}
