//! Objects: reading them (through the key cache), creating, copying,
//! changing, finding and destroying them, in the session or in the
//! databases; and the stored form of their values.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pkcs11_sys::*;
use sdb::{ObjectId, Sdb, SdbRead, Transaction};
use zeroize::Zeroizing;

use crate::object::attrs::Attrs;
use crate::object::{self, Policy};
use crate::rv::{Result, Rv};
use crate::storage::format;
use crate::storage::keydb::{self, DbKind, KeyState};
use crate::token::handles::{resolve, stored_handle, ObjRef, TOKEN_OBJECT_BIT};
use crate::token::key_cache::KeyCache;
use crate::token::{Access, AttrRead, SessionObject, Token};

impl Token {
    pub(super) fn db(&self, db: DbKind) -> &dyn Sdb {
        match db {
            DbKind::Cert => &*self.cert,
            DbKind::Key => &*self.key,
        }
    }

    /// A stored object's attributes in the caller's form, private values
    /// still encrypted; hidden objects are `ObjectHandleInvalid`.
    fn load(&self, db: DbKind, id: ObjectId) -> Result<Attrs> {
        let stored = self.db(db).read_object(id)?;
        self.visible(
            stored
                .into_iter()
                .map(|(t, v)| (t, format::from_disk(t, v)))
                .collect(),
        )
    }

    /// Some attributes of a stored object, with those its policy and
    /// visibility depend on, without reading its whole row (NSS's schema has
    /// a column per attribute type).
    pub(super) fn load_some(
        &self,
        db: DbKind,
        id: ObjectId,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Attrs> {
        const DECIDING: [CK_ATTRIBUTE_TYPE; 6] = [
            CKA_CLASS,
            CKA_KEY_TYPE,
            CKA_CERTIFICATE_TYPE,
            CKA_PRIVATE,
            CKA_SENSITIVE,
            CKA_EXTRACTABLE,
        ];
        let mut wanted = DECIDING.to_vec();
        wanted.extend(types.iter().filter(|t| !DECIDING.contains(t)));
        let values = self.db(db).get_attributes(id, &wanted)?;
        self.visible(
            wanted
                .iter()
                .zip(values)
                .filter_map(|(t, v)| v.map(|v| (*t, format::from_disk(*t, v))))
                .collect(),
        )
    }

    /// Private objects are invisible before login.
    fn visible(&self, attrs: Attrs) -> Result<Attrs> {
        if attrs.bool(CKA_PRIVATE) != Some(false) && !self.has_keys() {
            return Err(Rv::ObjectHandleInvalid);
        }
        Ok(attrs)
    }

    fn session_object<R>(
        &self,
        h: CK_OBJECT_HANDLE,
        f: impl FnOnce(&SessionObject) -> Result<R>,
    ) -> Result<R> {
        let objects = self.objects.read();
        let obj = objects.get(&h).ok_or(Rv::ObjectHandleInvalid)?;
        if obj.attrs.bool(CKA_PRIVATE) == Some(true) && !self.has_keys() {
            return Err(Rv::ObjectHandleInvalid);
        }
        f(obj)
    }

    /// Every attribute of an object with private values decrypted (for
    /// copying and for operations on keys), whatever its sensitivity: never
    /// hand these to a caller of the C API.
    pub fn full_attributes(&self, h: CK_OBJECT_HANDLE) -> Result<Attrs> {
        self.full_attrs(resolve(h)?, None).map(Arc::unwrap_or_clone)
    }

    pub(super) fn full_attrs(&self, r: ObjRef, cache: Option<&mut KeyCache>) -> Result<Arc<Attrs>> {
        match r {
            ObjRef::Session(h) => self.session_object(h, |o| Ok(o.attrs.clone())),
            ObjRef::Stored(db, id) => {
                let mut attrs = self.load(db, id)?;
                if db == DbKind::Key {
                    let sealed: Vec<(u64, Vec<u8>)> = attrs
                        .iter()
                        .filter(|(t, _)| format::is_encrypted(*t))
                        .map(|(t, v)| (t, v.to_vec()))
                        .collect();
                    if !sealed.is_empty() {
                        let keys = self.keys().ok_or(Rv::UserNotLoggedIn)?;
                        let handle = stored_handle(db, id);
                        if let Some(plain) = cache.as_ref().and_then(|c| c.get(handle, &sealed)) {
                            for ((t, _), value) in sealed.iter().zip(plain) {
                                attrs.set(*t, value.to_vec());
                            }
                            return Ok(Arc::new(attrs));
                        }
                        let mut plain = Vec::with_capacity(sealed.len());
                        for (t, blob) in &sealed {
                            let value = self.decrypt_checked(&*self.key, &keys, id, *t, blob)?;
                            attrs.set(*t, value.to_vec());
                            plain.push(value);
                        }
                        if let Some(cache) = cache {
                            cache.put(handle, sealed, plain);
                        }
                    }
                }
                Ok(Arc::new(attrs))
            }
        }
    }

    fn check_write_access(&self, acc: Access, attrs: &Attrs) -> Result<()> {
        let token = attrs.bool(CKA_TOKEN).unwrap_or(false);
        if token && self.cfg.read_only {
            return Err(Rv::TokenWriteProtected);
        }
        if token && !acc.rw {
            return Err(Rv::SessionReadOnly);
        }
        if attrs.bool(CKA_PRIVATE).unwrap_or(false) && !self.has_keys() {
            return Err(Rv::UserNotLoggedIn);
        }
        Ok(())
    }

    pub fn create_object(&self, acc: Access, template: Attrs) -> Result<CK_OBJECT_HANDLE> {
        let obj = object::new_object(template)?;
        self.insert(acc, obj)
    }

    fn insert(&self, acc: Access, obj: Attrs) -> Result<CK_OBJECT_HANDLE> {
        self.check_write_access(acc, &obj)?;
        if !obj.bool(CKA_TOKEN).unwrap_or(false) {
            let h = self.next_object.fetch_add(1, Ordering::Relaxed);
            if h >= TOKEN_OBJECT_BIT {
                return Err(Rv::DeviceMemory);
            }
            self.objects.write().insert(
                h,
                SessionObject {
                    owner: acc.session,
                    attrs: Arc::new(obj),
                },
            );
            return Ok(h);
        }
        let db = home_db(&obj);
        let id = self.store_new(db, &obj)?;
        Ok(stored_handle(db, id))
    }

    /// Starts the key4.db transaction of a write, with the key when the
    /// values need one (private values to encrypt, records to sign).
    fn begin_write(&self, db: DbKind, attrs: &Attrs) -> Result<KeyWrite<'_>> {
        let txn = self.key.begin()?;
        let keys = if needs_keys(db, attrs) {
            Some(self.write_keys(&*txn)?)
        } else {
            None
        };
        Ok((txn, keys))
    }

    /// The integrity records of a cert9.db object's values, written in
    /// key4.db's own transaction, which the caller opens while it holds
    /// cert9.db's. That is NSS's lock order (its sftkdb signs a cert9.db
    /// object's attributes inside the cert9.db transaction): writers here
    /// and NSS's never each hold one database while waiting for the other.
    /// Removes the records kept aside for a change that has committed (a
    /// failure leaves them, which only keeps an older value provable).
    pub(super) fn forget_previous_records(&self, kept: &[String]) {
        if kept.is_empty() {
            return;
        }
        let forgotten = self.key.begin().and_then(|mut txn| {
            for name in kept {
                txn.delete_metadata(name)?;
            }
            txn.commit()
        });
        if let Err(e) = forgotten {
            crate::log::line(format_args!(
                "{}: the previous integrity records of a change were not removed: {e}",
                self.cfg.dir.display()
            ));
        }
    }

    fn put_cert_records(&self, id: ObjectId, attrs: &Attrs) -> Result<()> {
        if !needs_keys(DbKind::Cert, attrs) {
            return Ok(());
        }
        let (mut key_txn, keys) = self.begin_write(DbKind::Cert, attrs)?;
        if let Some(k) = &keys {
            put_records(&mut *key_txn, k, DbKind::Cert, id, attrs)?;
        }
        Ok(key_txn.commit()?)
    }

    /// Writes a new token object with its encrypted values and integrity
    /// records. A cert9.db object's records live in key4.db and commit
    /// before the object does: a crash between the two leaves records of no
    /// object (which the next process to write cert9.db removes), never an
    /// object without its records.
    fn store_new(&self, db: DbKind, obj: &Attrs) -> Result<ObjectId> {
        match db {
            DbKind::Key => {
                let (mut key_txn, keys) = self.begin_write(db, obj)?;
                let entry = self.login_entry();
                let id = create_key_object(&mut *key_txn, keys.as_deref(), entry.as_ref(), obj)?;
                key_txn.commit()?;
                Ok(id)
            }
            DbKind::Cert => {
                let mut cert_txn = self.cert.begin()?;
                self.sweep_orphaned_records(&*cert_txn)?;
                let id = cert_txn.create_object(&as_refs(&stored_form(db, None, obj)?))?;
                self.put_cert_records(id, obj)?;
                cert_txn.commit()?;
                Ok(id)
            }
        }
    }

    /// C_WrapKey's check of a stored key's flags: a pair edited on disk
    /// never lets a key out (integrity::Exposure).
    pub fn check_wrappable(&self, h: CK_OBJECT_HANDLE) -> Result<()> {
        if let (ObjRef::Stored(DbKind::Key, id), Some(keys)) = (resolve(h)?, self.keys()) {
            if self.stored_exposure(&keys, id)? == super::integrity::Exposure::Forged {
                return Err(Rv::KeyUnextractable);
            }
        }
        Ok(())
    }

    pub fn copy_object(
        &self,
        acc: Access,
        h: CK_OBJECT_HANDLE,
        template: Attrs,
    ) -> Result<CK_OBJECT_HANDLE> {
        let r = resolve(h)?;
        let mut attrs = Arc::unwrap_or_clone(self.full_attrs(r, None)?);
        if let (ObjRef::Stored(DbKind::Key, id), Some(keys)) = (r, self.keys()) {
            attrs = self.trusted_flags(&*self.key, &keys, id, &attrs)?;
        }
        if attrs.bool(CKA_COPYABLE) == Some(false) {
            return Err(Rv::ActionProhibited);
        }
        for (t, v) in template.iter() {
            object::check_copy_change(&attrs, t, v)?;
        }
        // A copy may make an object private, never public again.
        if attrs.bool(CKA_PRIVATE) == Some(true) && template.bool(CKA_PRIVATE) == Some(false) {
            return Err(Rv::AttributeReadOnly);
        }
        for (t, v) in template.iter() {
            attrs.set(t, v.to_vec());
        }
        self.insert(acc, attrs)
    }

    pub fn destroy_object(&self, acc: Access, h: CK_OBJECT_HANDLE) -> Result<()> {
        match resolve(h)? {
            ObjRef::Session(h) => {
                self.session_object(h, |o| {
                    if o.attrs.bool(CKA_DESTROYABLE) == Some(false) {
                        Err(Rv::ActionProhibited)
                    } else {
                        Ok(())
                    }
                })?;
                self.objects.write().remove(&h);
                Ok(())
            }
            ObjRef::Stored(db, id) => {
                let attrs = self.load(db, id)?;
                if self.cfg.read_only {
                    return Err(Rv::TokenWriteProtected);
                }
                if !acc.rw {
                    return Err(Rv::SessionReadOnly);
                }
                if attrs.bool(CKA_DESTROYABLE) == Some(false) {
                    return Err(Rv::ActionProhibited);
                }
                // cert9.db first, as everywhere (put_cert_records); the
                // object goes before its records, so that a crash between
                // the two commits leaves records of no object, never an
                // object without its records.
                let cert_txn = match db {
                    DbKind::Cert => {
                        let mut txn = self.cert.begin()?;
                        self.sweep_orphaned_records(&*txn)?;
                        txn.destroy_object(id)?;
                        Some(txn)
                    }
                    DbKind::Key => None,
                };
                let mut key_txn = self.key.begin()?;
                for name in key_txn.metadata_ids(&keydb::sig_prefix(db, id))? {
                    key_txn.delete_metadata(&name)?;
                }
                match cert_txn {
                    Some(txn) => txn.commit()?,
                    None => key_txn.destroy_object(id)?,
                }
                Ok(key_txn.commit()?)
            }
        }
    }

    /// C_GetAttributeValue's answers, one per requested type.
    pub fn get_attributes(
        &self,
        h: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrRead>> {
        let r = resolve(h)?;
        let attrs = match r {
            ObjRef::Session(h) => self.session_object(h, |o| Ok(o.attrs.clone()))?,
            ObjRef::Stored(db, id) => Arc::new(self.load_some(db, id, types)?),
        };
        let policy = Policy::of(&attrs);
        let hidden = object::hides_sensitive(&attrs);
        let keys = self.keys();
        // Whether a stored key's private values may be revealed, decided
        // once, when one is asked for (integrity::Exposure).
        let mut exposure = None;
        let mut out = Vec::with_capacity(types.len());
        for &t in types {
            let Some(v) = attrs.get(t) else {
                out.push(AttrRead::Invalid);
                continue;
            };
            if hidden && policy.is_sensitive(t) {
                out.push(AttrRead::Sensitive);
                continue;
            }
            let value = match (r, &keys) {
                (ObjRef::Stored(DbKind::Key, id), Some(k)) if format::is_encrypted(t) => {
                    if exposure.is_none() {
                        exposure = Some(self.stored_exposure(k, id)?);
                    }
                    if exposure != Some(super::integrity::Exposure::Recorded) {
                        out.push(AttrRead::Sensitive);
                        continue;
                    }
                    self.decrypt_checked(&*self.key, k, id, t, v)?
                }
                // Encrypted and no key to open it with.
                (ObjRef::Stored(DbKind::Key, _), None) if format::is_encrypted(t) => {
                    out.push(AttrRead::Sensitive);
                    continue;
                }
                (ObjRef::Stored(db, id), Some(k)) if format::is_authenticated(t) => {
                    self.check_record(&*self.key, k, db, id, t, id, &format::to_disk(t, v)?)?;
                    Zeroizing::new(v.to_vec())
                }
                _ => Zeroizing::new(v.to_vec()),
            };
            out.push(AttrRead::Value(value));
        }
        Ok(out)
    }

    pub fn set_attributes(&self, acc: Access, h: CK_OBJECT_HANDLE, template: Attrs) -> Result<()> {
        let r = resolve(h)?;
        let current = match r {
            ObjRef::Session(h) => self.session_object(h, |o| Ok(o.attrs.clone()))?,
            ObjRef::Stored(db, id) => Arc::new(self.load(db, id)?),
        };
        if current.bool(CKA_MODIFIABLE) == Some(false) {
            return Err(Rv::ActionProhibited);
        }
        for (t, v) in template.iter() {
            object::check_change(&current, t, v)?;
        }
        match r {
            ObjRef::Session(h) => {
                let mut objects = self.objects.write();
                let obj = objects.get_mut(&h).ok_or(Rv::ObjectHandleInvalid)?;
                for (t, v) in template.iter() {
                    Arc::make_mut(&mut obj.attrs).set(t, v.to_vec());
                }
                Ok(())
            }
            ObjRef::Stored(db, id) => {
                if self.cfg.read_only {
                    return Err(Rv::TokenWriteProtected);
                }
                if !acc.rw {
                    return Err(Rv::SessionReadOnly);
                }
                self.store_changes(db, id, &current, &template)
            }
        }
    }

    fn store_changes(
        &self,
        db: DbKind,
        id: ObjectId,
        current: &Attrs,
        template: &Attrs,
    ) -> Result<()> {
        match db {
            DbKind::Key => {
                let (mut key_txn, keys) = self.begin_write(db, template)?;
                let stored = stored_form(db, keys.as_deref(), template)?;
                if let Some(k) = &keys {
                    // A change of either flag signs the pair anew: the other
                    // as it may be trusted, never as an edit left it.
                    put_records(&mut *key_txn, k, db, id, template)?;
                    if template.contains(CKA_SENSITIVE) || template.contains(CKA_EXTRACTABLE) {
                        let mut flags = self.trusted_flags(&*key_txn, k, id, current)?;
                        for t in [CKA_SENSITIVE, CKA_EXTRACTABLE] {
                            if let Some(v) = template.get(t) {
                                flags.set(t, v.to_vec());
                            }
                        }
                        let entry = self.login_entry();
                        put_exposure_record(&mut *key_txn, k, entry.as_ref(), id, &flags)?;
                    }
                }
                key_txn.set_attributes(id, &as_refs(&stored))?;
                Ok(key_txn.commit()?)
            }
            DbKind::Cert => {
                let mut cert_txn = self.cert.begin()?;
                self.sweep_orphaned_records(&*cert_txn)?;
                let kept = if needs_keys(DbKind::Cert, template) {
                    let (mut key_txn, keys) = self.begin_write(DbKind::Cert, template)?;
                    let kept = match &keys {
                        Some(k) => {
                            put_changed_cert_records(&mut *key_txn, k, &*cert_txn, id, template)?
                        }
                        None => Vec::new(),
                    };
                    key_txn.commit()?;
                    kept
                } else {
                    Vec::new()
                };
                cert_txn.set_attributes(id, &as_refs(&stored_form(db, None, template)?))?;
                cert_txn.commit()?;
                self.forget_previous_records(&kept);
                Ok(())
            }
        }
    }

    /// The handles of the visible objects that match the template.
    pub fn find(&self, template: &Attrs) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let keys = self.keys();
        let mut out = Vec::new();
        {
            let objects = self.objects.read();
            let mut session: Vec<_> = objects
                .iter()
                .filter(|(_, o)| keys.is_some() || o.attrs.bool(CKA_PRIVATE) != Some(true))
                .filter(|(_, o)| template.iter().all(|(t, v)| o.attrs.get(t) == Some(v)))
                .map(|(h, _)| *h)
                .collect();
            session.sort_unstable();
            out.extend(session);
        }
        if template.bool(CKA_TOKEN) == Some(false) {
            return Ok(out);
        }
        for db in [DbKind::Cert, DbKind::Key] {
            out.extend(self.find_stored(db, template, keys.as_deref())?);
        }
        Ok(out)
    }

    fn find_stored(
        &self,
        db: DbKind,
        template: &Attrs,
        keys: Option<&KeyState>,
    ) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let mut sql: Vec<(u64, Vec<u8>)> = Vec::new();
        // Encrypted values cannot be compared in SQL: compare them after
        // decryption.
        let mut after: Vec<(u64, &[u8])> = Vec::new();
        for (t, v) in template.iter() {
            if db == DbKind::Key && format::is_encrypted(t) {
                if keys.is_none() {
                    return Ok(Vec::new());
                }
                after.push((t, v));
                continue;
            }
            match format::to_disk(t, v) {
                Ok(d) => sql.push((t, d)),
                // A value no stored object can have.
                Err(_) => return Ok(Vec::new()),
            }
        }
        if keys.is_none() && template.bool(CKA_PRIVATE).is_none() {
            sql.push((CKA_PRIVATE, vec![0]));
        }
        let ids = self.db(db).find(&as_refs(&sql))?.next_batch(usize::MAX);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if !after.is_empty() {
                let Some(k) = keys else { continue };
                let stored = self
                    .key
                    .get_attributes(id, &after.iter().map(|(t, _)| *t).collect::<Vec<_>>())?;
                let mut all = true;
                for ((t, want), blob) in after.iter().zip(stored) {
                    let Some(blob) = blob else {
                        all = false;
                        break;
                    };
                    let plain = self.decrypt_checked(&*self.key, k, id, *t, &blob)?;
                    if plain.as_slice() != *want {
                        all = false;
                        break;
                    }
                }
                if !all {
                    continue;
                }
            }
            out.push(stored_handle(db, id));
        }
        Ok(out)
    }

    pub fn object_size(&self, h: CK_OBJECT_HANDLE) -> Result<CK_ULONG> {
        let attrs = match resolve(h)? {
            ObjRef::Session(h) => self.session_object(h, |o| Ok(o.attrs.clone()))?,
            ObjRef::Stored(db, id) => Arc::new(self.load(db, id)?),
        };
        Ok(attrs.iter().map(|(_, v)| v.len() + 16).sum::<usize>() as CK_ULONG)
    }

    /// A key for an operation inside the token, with its private values
    /// decrypted whatever its sensitivity (the mechanism checks its class,
    /// type and usage).
    pub fn operation_key(&self, h: CK_OBJECT_HANDLE, cache: &mut KeyCache) -> Result<Arc<Attrs>> {
        let key_handle = |e: Rv| {
            if e == Rv::ObjectHandleInvalid {
                Rv::KeyHandleInvalid
            } else {
                e
            }
        };
        let attrs = self
            .full_attrs(resolve(h).map_err(key_handle)?, Some(cache))
            .map_err(key_handle)?;
        match attrs.ulong(CKA_CLASS) {
            Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY) => Ok(attrs),
            _ => Err(Rv::KeyHandleInvalid),
        }
    }

    /// The value of a secret key, for C_DigestKey.
    pub fn secret_key_value(
        &self,
        h: CK_OBJECT_HANDLE,
        cache: &mut KeyCache,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let attrs = self.operation_key(h, cache)?;
        if attrs.ulong(CKA_CLASS) != Some(CKO_SECRET_KEY) {
            return Err(Rv::KeyIndigestible);
        }
        Ok(Zeroizing::new(
            attrs.get(CKA_VALUE).ok_or(Rv::KeyIndigestible)?.to_vec(),
        ))
    }

    /// Stores a key the token generated.
    pub fn store_generated(
        &self,
        acc: Access,
        template: Attrs,
        generated: object::Generated,
    ) -> Result<CK_OBJECT_HANDLE> {
        self.insert(acc, object::new_generated(template, generated)?)
    }

    /// Stores a generated key pair: both halves, or neither.
    pub fn store_generated_pair(
        &self,
        acc: Access,
        public: (Attrs, object::Generated),
        private: (Attrs, object::Generated),
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        // Both objects are checked before either is stored.
        let public = object::new_generated(public.0, public.1)?;
        let private = object::new_generated(private.0, private.1)?;
        let public_handle = self.insert(acc, public)?;
        match self.insert(acc, private) {
            Ok(private_handle) => Ok((public_handle, private_handle)),
            Err(e) => {
                // Undo the public half; if even that fails, it is a lone
                // public key, which holds no secret.
                let _ = self.destroy_object(acc, public_handle);
                Err(e)
            }
        }
    }

    /// Destroys the session objects a closing session owned.
    pub fn drop_session_objects(&self, session: CK_SESSION_HANDLE) {
        self.objects.write().retain(|_, o| o.owner != session);
    }
}

/// The database a token object lives in, as NSS keeps them: keys and
/// private objects in key4.db, the rest (certificates, trust, public keys)
/// in cert9.db.
pub(super) fn home_db(obj: &Attrs) -> DbKind {
    let class = obj.ulong(CKA_CLASS).unwrap_or(CKO_DATA);
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) || obj.bool(CKA_PRIVATE) == Some(true) {
        DbKind::Key
    } else {
        DbKind::Cert
    }
}

/// Writes a new key4.db object in `txn`: its values in stored form and,
/// with the key, their integrity records and its flags' record (made under
/// the password entry `entry`).
pub(super) fn create_key_object(
    txn: &mut dyn Transaction,
    keys: Option<&KeyState>,
    entry: Option<&sdb::PasswordEntry>,
    obj: &Attrs,
) -> Result<ObjectId> {
    let stored = stored_form(DbKind::Key, keys, obj)?;
    let id = txn.create_object(&as_refs(&stored))?;
    if let Some(k) = keys {
        put_records(txn, k, DbKind::Key, id, obj)?;
        put_exposure_record(txn, k, entry, id, obj)?;
    }
    Ok(id)
}

/// Whether writing these values to `db` needs the key: private values to
/// encrypt, records to sign.
fn needs_keys(db: DbKind, attrs: &Attrs) -> bool {
    attrs.types().any(|t| {
        format::is_authenticated(t)
            || (db == DbKind::Key
                && (format::is_encrypted(t) || t == CKA_SENSITIVE || t == CKA_EXTRACTABLE))
    })
}

/// A key4.db write transaction and the key its values need, if any.
pub(super) type KeyWrite<'a> = (Box<dyn Transaction + 'a>, Option<Arc<KeyState>>);

/// The stored form of values: private key material of the key database
/// encrypted (a key is there whenever such values are), CK_ULONG as NSS
/// stores it.
pub(super) fn stored_form(
    db: DbKind,
    keys: Option<&KeyState>,
    attrs: &Attrs,
) -> Result<Vec<(u64, Vec<u8>)>> {
    attrs
        .iter()
        .map(|(t, v)| {
            let stored = match keys {
                Some(k) if db == DbKind::Key && format::is_encrypted(t) => k.encrypt(v)?,
                _ => format::to_disk(t, v)?,
            };
            Ok((t, stored))
        })
        .collect()
}

/// Writes the integrity records of an object's protected values (given in
/// the caller's form): over the plaintext with object id 0 for encrypted
/// values, over the stored form with the object's id for authenticated ones.
/// The records of `changes` to the existing cert9.db object `id`, whose
/// values are still `current` (cert9.db's view before the change): each
/// record that proves the current value is kept aside first
/// (keydb::previous_sig_name), so that a crash after key4.db's commit and
/// before cert9.db's leaves a value that is still proven. Returns the rows
/// kept aside, for `forget_previous_records` once cert9.db has committed.
pub(super) fn put_changed_cert_records(
    key_txn: &mut dyn Transaction,
    keys: &KeyState,
    current: &dyn SdbRead,
    id: ObjectId,
    changes: &Attrs,
) -> Result<Vec<String>> {
    let mut kept = Vec::new();
    for (t, _) in changes.iter().filter(|(t, _)| format::is_authenticated(*t)) {
        let Some(value) = current.get_attributes(id, &[t])?.pop().flatten() else {
            continue;
        };
        let previous = keydb::previous_sig_name(id, t);
        // The proof of the current value: the record, or the one kept aside
        // by an earlier change that died between its commits.
        let mut proof = None;
        for name in [keydb::sig_name(DbKind::Cert, id, t), previous.clone()] {
            if let Some(r) = key_txn.get_metadata(&name)? {
                if keys.verify(&r.item1, id, t, &value).unwrap_or(false) {
                    proof = Some(r);
                    break;
                }
            }
        }
        if let Some(proof) = proof {
            key_txn.put_metadata(&previous, &proof.item1, None)?;
            kept.push(previous);
        }
    }
    put_records(key_txn, keys, DbKind::Cert, id, changes)?;
    Ok(kept)
}

pub(super) fn put_records(
    txn: &mut dyn Transaction,
    keys: &KeyState,
    db: DbKind,
    id: ObjectId,
    attrs: &Attrs,
) -> Result<()> {
    for (t, v) in attrs.iter() {
        let record = if db == DbKind::Key && format::is_encrypted(t) {
            keys.sign(0, t, v)?
        } else if format::is_authenticated(t) {
            keys.sign(id, t, &format::to_disk(t, v)?)?
        } else {
            continue;
        };
        txn.put_metadata(&keydb::sig_name(db, id, t), &record, None)?;
    }
    Ok(())
}

/// Writes the record of a key4.db object's CKA_SENSITIVE and
/// CKA_EXTRACTABLE as `attrs` has them (integrity::Exposure), made under
/// the password entry `entry` (the transaction's, unless it writes a new
/// one).
pub(super) fn put_exposure_record(
    txn: &mut dyn Transaction,
    keys: &KeyState,
    entry: Option<&sdb::PasswordEntry>,
    id: ObjectId,
    attrs: &Attrs,
) -> Result<()> {
    let pair = super::integrity::exposure_pair(attrs);
    let record = keys.sign(id, CKA_SENSITIVE, &pair)?;
    let made_under = super::integrity::entry_fingerprint(entry)?;
    let name = keydb::sig_name(DbKind::Key, id, CKA_SENSITIVE);
    txn.put_metadata(&name, &record, Some(&made_under))?;
    Ok(())
}

pub(super) fn as_refs(values: &[(u64, Vec<u8>)]) -> Vec<(u64, &[u8])> {
    values.iter().map(|(t, v)| (*t, v.as_slice())).collect()
}
