//! The token's side of the legacy (`dbm:`) key database: opening a key3.db
//! private-key record (PKCS#8 under the legacy PBE, or PBES2 from newer
//! NSS) into the attributes the token stores, private values encrypted
//! again under the login's key; and sealing a private key object into a
//! record as NSS 3.87 writes them (the legacy PBE).

use std::sync::Arc;

use pkcs11_sys::*;

use crate::mechanism::pkcs8;
use crate::object::attrs::Attrs;
use crate::storage::format;
use crate::storage::keydb::KeyState;

/// The codec the token hands the legacy store while logged in.
pub struct KeyCodec(pub Arc<KeyState>);

impl sdb::KeyRecordCodec for KeyCodec {
    fn open_private_key(&self, payload: &[u8]) -> sdb::Result<Vec<sdb::Attribute>> {
        let bad = |what: &str| sdb::Error::Corrupt(format!("key3.db private key: {what}"));
        let (pkcs8, _) = self
            .0
            .decrypt(payload)
            .map_err(|_| bad("does not decrypt"))?;
        let mut template = Attrs::new();
        template.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        let attrs =
            pkcs8::unwrapped_key(&pkcs8, &template).map_err(|_| bad("not a key NSS writes"))?;
        let mut out = Vec::new();
        for (t, v) in attrs.iter() {
            if t == CKA_CLASS {
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
        let pkcs8 = pkcs8::key_bytes(&attrs).map_err(|_| bad("not a key type key3.db holds"))?;
        self.0
            .encrypt_legacy(&pkcs8)
            .map_err(|_| bad("cannot be encrypted"))
    }
}
