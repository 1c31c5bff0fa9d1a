//! Merging objects into the token's databases by NSS's rules (its
//! sftkdb_updateObjectTemplate), for the updates from legacy files
//! (update.rs) and for `softoken-modutil merge`. An incoming object is
//! looked up by its class's identity (object::identity_types):
//! - not there: it is added. A certificate whose label a certificate of
//!   another subject already has is renamed first ("Label #2", "#3"…);
//! - a certificate or key found: only a CKA_ID or CKA_LABEL the target
//!   lacks is filled in;
//! - a trust object found: each usage is reconciled: a definite value
//!   beats MUST_VERIFY, which beats UNKNOWN, and between two definite
//!   values the target's stays;
//! - a secret key found under its CKA_ID (NSS's legacy SDR keys all share
//!   one): nothing if one of them is this very key, else it is added
//!   under the next free CKA_ID;
//! - anything else found: nothing.
//!
//! Merging the same objects again changes nothing, so an interrupted merge
//! can simply run again.
//!
//! `Token::merge_from` merges another open token (any backend) into this
//! one: what `softoken-modutil merge` does, as NSS's certutil --merge.

use std::sync::Arc;

use pkcs11_sys::*;
use sdb::{ObjectId, PasswordEntry, SdbRead, Transaction};

use crate::nss::*;
use crate::object::attrs::Attrs;
use crate::object::identity_types;
use crate::rv::{Result, Rv};
use crate::storage::format;
use crate::storage::keydb::{DbKind, KeyState};
use crate::token::handles::{stored_handle, ObjRef};
use crate::token::objects::{
    as_refs, create_key_object, home_db, put_changed_cert_records, put_records, stored_form,
};
use crate::token::Token;

/// What a merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeCounts {
    pub added: usize,
    /// Objects found in the target that took values from the incoming one.
    pub updated: usize,
    /// Objects found in the target as they are.
    pub unchanged: usize,
    /// Certificates added under a new label (their label was taken).
    pub renamed: usize,
}

/// Source objects a merge left out (by their handles in the source) with
/// why: private objects the source's password was not given for
/// (`UserNotLoggedIn`), values failing their integrity check there
/// (`DeviceError`, logged).
pub type Skipped = Vec<(CK_OBJECT_HANDLE, Rv)>;

/// What `Token::merge_from` did.
#[derive(Debug, Default)]
pub struct MergeReport {
    pub counts: MergeCounts,
    pub skipped: Skipped,
}

/// Where a merge writes: cert9.db's transaction, key4.db's (needed for
/// keys and for integrity records), and the key and password entry the
/// values are written under. Without a key, cert9.db objects are written
/// without records (a database with no password yet, signed when it gets
/// one) and no key4.db object can be.
pub(super) struct MergeTarget<'a, 'b> {
    pub cert: &'a mut (dyn Transaction + 'b),
    pub key: Option<&'a mut (dyn Transaction + 'b)>,
    pub keys: Option<&'a KeyState>,
    pub entry: Option<&'a PasswordEntry>,
    /// The records kept aside for changed cert9.db values, to forget once
    /// cert9.db has committed (objects::put_changed_cert_records).
    pub kept: Vec<String>,
}

/// The NSS trust usages a merge reconciles.
const TRUST_USAGES: [CK_ATTRIBUTE_TYPE; 6] = [
    CKA_TRUST_SERVER_AUTH,
    CKA_TRUST_CLIENT_AUTH,
    CKA_TRUST_CODE_SIGNING,
    CKA_TRUST_EMAIL_PROTECTION,
    CKA_TRUST_IPSEC_TUNNEL,
    CKA_TRUST_TIME_STAMPING,
];

/// How much a trust value says: nothing, "check it", or a verdict.
fn trust_strength(v: CK_ULONG) -> u8 {
    match v {
        CKT_NSS_TRUST_UNKNOWN => 0,
        CKT_NSS_MUST_VERIFY_TRUST | CKT_NSS_VALID_DELEGATOR => 1,
        _ => 2,
    }
}

/// The objects of `db` that are `obj` by NSS's identity rules (none for
/// classes without an identity).
fn same_objects(db: &dyn SdbRead, obj: &Attrs) -> Result<Vec<ObjectId>> {
    let Some(types) = obj.ulong(CKA_CLASS).and_then(identity_types) else {
        return Ok(Vec::new());
    };
    let mut template = Vec::new();
    for &t in std::iter::once(&CKA_CLASS).chain(types) {
        if let Some(v) = obj.get(t) {
            template.push((t, format::to_disk(t, v)?));
        }
    }
    Ok(db.find(&as_refs(&template))?.next_batch(usize::MAX))
}

/// One stored value in the caller's form.
fn value_of(db: &dyn SdbRead, id: ObjectId, t: CK_ATTRIBUTE_TYPE) -> Result<Option<Vec<u8>>> {
    Ok(db
        .get_attributes(id, &[t])?
        .pop()
        .flatten()
        .map(|v| format::from_disk(t, v)))
}

/// The label after `label`: "Name" becomes "Name #2", "Name #9" "Name #10".
fn next_label(label: &[u8]) -> Vec<u8> {
    let digits = label
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let stem = &label[..label.len() - digits];
    match (digits, stem.strip_suffix(b" #")) {
        (1.., Some(_)) => {
            let n: u64 = std::str::from_utf8(&label[stem.len()..])
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(u64::MAX - 1);
            let mut out = stem.to_vec();
            out.extend_from_slice(n.saturating_add(1).to_string().as_bytes());
            out
        }
        _ => [label, b" #2"].concat(),
    }
}

/// Renames an incoming certificate while a certificate of another subject
/// has its label; returns whether it did.
fn free_certificate_label(cert: &dyn SdbRead, obj: &mut Attrs) -> Result<bool> {
    let mut renamed = false;
    loop {
        let Some(label) = obj
            .get(CKA_LABEL)
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
        else {
            return Ok(renamed);
        };
        let class = format::to_disk(CKA_CLASS, obj.get(CKA_CLASS).unwrap_or_default())?;
        let holders = cert
            .find(&[(CKA_CLASS, &class), (CKA_LABEL, &label)])?
            .next_batch(usize::MAX);
        let subject = obj.get(CKA_SUBJECT).map(<[u8]>::to_vec);
        let mut taken = false;
        for id in holders {
            if value_of(cert, id, CKA_SUBJECT)? != subject {
                taken = true;
                break;
            }
        }
        if !taken {
            return Ok(renamed);
        }
        obj.set(CKA_LABEL, next_label(&label));
        renamed = true;
    }
}

/// CKA_ID plus one, as NSS counts (the last byte first, growing by a byte
/// when every byte overflows).
fn next_id(id: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    for b in out.iter_mut().rev() {
        *b = b.wrapping_add(1);
        if *b != 0 {
            return out;
        }
    }
    out.push(0);
    out
}

impl MergeTarget<'_, '_> {
    /// The database transaction an object of `db` lives in.
    fn txn(&mut self, db: DbKind) -> Result<&mut dyn Transaction> {
        match db {
            DbKind::Cert => Ok(&mut *self.cert),
            DbKind::Key => match self.key.as_deref_mut() {
                Some(t) => Ok(t),
                None => Err(Rv::UserNotLoggedIn),
            },
        }
    }

    /// Merges one object; `counts` hears what became of it.
    pub(super) fn merge(&mut self, mut obj: Attrs, counts: &mut MergeCounts) -> Result<()> {
        let db = home_db(&obj);
        let class = obj.ulong(CKA_CLASS).unwrap_or(CKO_DATA);
        if class == CKO_CERTIFICATE && free_certificate_label(&*self.cert, &mut obj)? {
            counts.renamed += 1;
        }
        let found = same_objects(&*self.txn(db)?, &obj)?;
        let Some(&target) = found.first() else {
            return self.add(db, &obj, counts);
        };
        let mut changes = Attrs::new();
        match class {
            CKO_CERTIFICATE | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => {
                for t in [CKA_ID, CKA_LABEL] {
                    let theirs = obj.get(t).filter(|v| !v.is_empty());
                    let ours = value_of(&*self.txn(db)?, target, t)?;
                    if let (Some(v), None | Some([])) = (theirs, ours.as_deref()) {
                        changes.set(t, v.to_vec());
                    }
                }
            }
            CKO_NSS_TRUST => {
                for t in TRUST_USAGES {
                    let Some(theirs) = obj.ulong(t) else {
                        continue;
                    };
                    let ours = value_of(&*self.txn(db)?, target, t)?.and_then(|v| {
                        let mut one = Attrs::new();
                        one.set(t, v);
                        one.ulong(t)
                    });
                    let wins = match ours {
                        None => true,
                        Some(ours) => {
                            ours != theirs && trust_strength(theirs) > trust_strength(ours)
                        }
                    };
                    if wins {
                        changes.set_ulong(t, theirs);
                    }
                }
            }
            CKO_SECRET_KEY => return self.merge_secret_key(obj, found, counts),
            _ => {}
        }
        if changes.iter().next().is_none() {
            counts.unchanged += 1;
            return Ok(());
        }
        let keys = self.keys;
        if db == DbKind::Cert {
            if let (Some(k), Some(key_txn)) = (keys, self.key.as_deref_mut()) {
                let kept = put_changed_cert_records(key_txn, k, &*self.cert, target, &changes)?;
                self.kept.extend(kept);
            }
        }
        let stored = stored_form(db, keys, &changes)?;
        self.txn(db)?.set_attributes(target, &as_refs(&stored))?;
        counts.updated += 1;
        Ok(())
    }

    /// A secret key under a CKA_ID the target has: nothing if one of the
    /// keys there is this one, else added under the next free CKA_ID.
    fn merge_secret_key(
        &mut self,
        mut obj: Attrs,
        mut found: Vec<ObjectId>,
        counts: &mut MergeCounts,
    ) -> Result<()> {
        let keys = self.keys.ok_or(Rv::UserNotLoggedIn)?;
        let txn = self.txn(DbKind::Key)?;
        while !found.is_empty() {
            for id in &found {
                let same_type =
                    value_of(&*txn, *id, CKA_KEY_TYPE)?.as_deref() == obj.get(CKA_KEY_TYPE);
                let sealed = txn.get_attributes(*id, &[CKA_VALUE])?.pop().flatten();
                let same_value = match sealed {
                    Some(blob) => Some(&keys.decrypt(&blob)?.0[..]) == obj.get(CKA_VALUE),
                    None => false,
                };
                if same_type && same_value {
                    counts.unchanged += 1;
                    return Ok(());
                }
            }
            let id = next_id(obj.get(CKA_ID).unwrap_or_default());
            obj.set(CKA_ID, id);
            found = same_objects(&*txn, &obj)?;
        }
        self.add(DbKind::Key, &obj, counts)
    }

    fn add(&mut self, db: DbKind, obj: &Attrs, counts: &mut MergeCounts) -> Result<()> {
        let (keys, entry) = (self.keys, self.entry);
        match db {
            // Never without the key: its private values would be stored
            // in clear.
            DbKind::Key => {
                let k = keys.ok_or(Rv::UserNotLoggedIn)?;
                create_key_object(self.txn(db)?, Some(k), entry, obj)?;
            }
            DbKind::Cert => {
                let id = self
                    .cert
                    .create_object(&as_refs(&stored_form(db, None, obj)?))?;
                if let (Some(k), Some(key_txn)) = (keys, self.key.as_deref_mut()) {
                    put_records(key_txn, k, DbKind::Cert, id, obj)?;
                }
            }
        }
        counts.added += 1;
        Ok(())
    }
}

impl Token {
    /// Every stored object in the caller's form for merging elsewhere:
    /// private values decrypted, every authenticated value checked against
    /// its record, a key's flags as far as they can be trusted. Objects
    /// that cannot be read so are left out and returned with why.
    fn objects_for_merge(
        &self,
        progress: &mut dyn FnMut(usize, usize),
        total: usize,
    ) -> Result<(Vec<Attrs>, Skipped)> {
        let keys = self.keys();
        let (mut objects, mut skipped) = (Vec::new(), Vec::new());
        for db in [DbKind::Cert, DbKind::Key] {
            for id in self.db(db).find(&[])?.next_batch(usize::MAX) {
                progress(objects.len() + skipped.len() + 1, total);
                match self.object_for_merge(db, id, keys.as_deref()) {
                    Ok(obj) => objects.push(obj),
                    Err(Rv::ObjectHandleInvalid) if keys.is_none() => {
                        skipped.push((stored_handle(db, id), Rv::UserNotLoggedIn));
                    }
                    Err(e @ (Rv::UserNotLoggedIn | Rv::DeviceError)) => {
                        skipped.push((stored_handle(db, id), e));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((objects, skipped))
    }

    fn object_for_merge(&self, db: DbKind, id: ObjectId, keys: Option<&KeyState>) -> Result<Attrs> {
        let mut attrs = Arc::unwrap_or_clone(self.full_attrs(ObjRef::Stored(db, id), None)?);
        if let Some(k) = keys {
            for (t, v) in attrs.iter() {
                if format::is_authenticated(t) {
                    self.check_record(&*self.key, k, db, id, t, id, &format::to_disk(t, v)?)?;
                }
            }
            if db == DbKind::Key {
                attrs = self.trusted_flags(&*self.key, k, id, &attrs)?;
            }
        }
        match attrs.ulong(CKA_CLASS) {
            // A merged key was not made here, and has been out of its token:
            // not local, not "always sensitive" or "never extractable" any
            // more (NSS's merge, which unwraps it, says the same).
            Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY) => {
                attrs.set_bool(CKA_LOCAL, false);
                attrs.set_bool(CKA_ALWAYS_SENSITIVE, false);
                attrs.set_bool(CKA_NEVER_EXTRACTABLE, false);
            }
            Some(CKO_PUBLIC_KEY) => attrs.set_bool(CKA_LOCAL, false),
            // As NSS's merge imports a certificate: with its key's CKA_ID
            // (legacy databases give one only to a user's certificates), and
            // no empty e-mail address.
            Some(CKO_CERTIFICATE) => {
                if attrs.get(CKA_ID).is_none_or(<[u8]>::is_empty) {
                    if let Some(id) = attrs
                        .get(CKA_VALUE)
                        .and_then(legacy_dbm::store::certificate_key_id)
                    {
                        attrs.set(CKA_ID, id);
                    }
                }
                if attrs.get(CKA_NSS_EMAIL).is_some_and(<[u8]>::is_empty) {
                    attrs.remove(CKA_NSS_EMAIL);
                }
            }
            _ => {}
        }
        Ok(attrs)
    }

    /// The number of stored objects in both databases.
    fn stored_count(&self) -> Result<usize> {
        let mut n = 0;
        for db in [DbKind::Cert, DbKind::Key] {
            n += self.db(db).find(&[])?.next_batch(usize::MAX).len();
        }
        Ok(n)
    }

    /// Merges every object of `source` into this token by the rules above,
    /// in one transaction per database (key4.db commits first; a run that
    /// dies before cert9.db's commit is simply run again). Private objects
    /// need this token's login (or its empty password) and the source's;
    /// `progress` hears (steps done, steps in all): each source object is
    /// read, then merged.
    pub fn merge_from(
        &self,
        source: &Token,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<MergeReport> {
        if self.cfg.read_only {
            return Err(Rv::TokenWriteProtected);
        }
        let total = 2 * source.stored_count()?;
        let (objects, skipped) = source.objects_for_merge(progress, total)?;
        let source_login = {
            let login = source.login.read();
            login.keys.clone().zip(login.entry.clone())
        };
        let base = total - objects.len();
        let counts = self.merge_objects(objects, source_login, &mut |done| {
            progress(base + done, total)
        })?;
        crate::log::line(format_args!(
            "{}: merged {}: {counts:?}, {} skipped",
            self.cfg.dir.display(),
            source.cfg.dir.display(),
            skipped.len()
        ));
        Ok(MergeReport { counts, skipped })
    }

    /// Merges the objects of another PKCS#11 token, each a template and,
    /// for a key, the secret part it was wrapped out as (a private key's
    /// PKCS#8, a secret key's value): each is checked as C_UnwrapKey (a
    /// key) or C_CreateObject (anything else) checks one, and those refused
    /// are reported by their place in `objects`.
    pub fn merge_foreign(
        &self,
        objects: Vec<(Attrs, Option<zeroize::Zeroizing<Vec<u8>>>)>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<MergeReport> {
        if self.cfg.read_only {
            return Err(Rv::TokenWriteProtected);
        }
        let total = objects.len();
        let (mut accepted, mut skipped) = (Vec::new(), Vec::new());
        for (i, (mut template, material)) in objects.into_iter().enumerate() {
            template.set_bool(CKA_TOKEN, true);
            let checked = match material {
                Some(m) => crate::mechanism::pkcs8::unwrapped_key(&m, &template)
                    .and_then(crate::object::new_object),
                None => crate::object::new_object(template),
            };
            match checked {
                Ok(obj) => accepted.push(obj),
                Err(rv) => skipped.push((i as CK_OBJECT_HANDLE, rv)),
            }
        }
        let counts = self.merge_objects(accepted, None, &mut |done| progress(done, total))?;
        crate::log::line(format_args!(
            "{}: merged another token's objects: {counts:?}, {} refused",
            self.cfg.dir.display(),
            skipped.len()
        ));
        Ok(MergeReport { counts, skipped })
    }

    /// Merges objects in one transaction per database, under this token's
    /// login (or, when it has no password yet, the source's, if any).
    fn merge_objects(
        &self,
        objects: Vec<Attrs>,
        source_login: Option<(Arc<KeyState>, PasswordEntry)>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<MergeCounts> {
        let mut cert_txn = self.cert.begin()?;
        let mut key_txn = self.key.begin()?;
        let target = match key_txn.get_password_entry()? {
            None => None,
            Some(_) => {
                let keys = self.write_keys(&*key_txn)?;
                let entry = self.login_entry().ok_or(Rv::UserNotLoggedIn)?;
                Some((keys, entry))
            }
        };
        let (counts, kept) = self.merge_in(
            &mut *cert_txn,
            &mut *key_txn,
            objects,
            source_login.as_ref().map(|(k, e)| (k, e.clone())),
            target.as_ref().map(|(k, e)| (k, e)),
            progress,
        )?;
        key_txn.commit()?;
        cert_txn.commit()?;
        self.forget_previous_records(&kept);
        Ok(counts)
    }

    /// Merges `objects` in the open transactions under this database's key
    /// (`target`), or, when it has no password yet, under the source's,
    /// whose password entry it then takes (as NSS does), signing what
    /// cert9.db holds under it. `progress` hears each object merged.
    /// Returns the counts and the records kept aside for changed cert9.db
    /// values, to forget once both databases have committed.
    pub(super) fn merge_in(
        &self,
        cert_txn: &mut dyn Transaction,
        key_txn: &mut dyn Transaction,
        objects: Vec<Attrs>,
        source: Option<(&Arc<KeyState>, PasswordEntry)>,
        target: Option<(&Arc<KeyState>, &PasswordEntry)>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(MergeCounts, Vec<String>)> {
        let (keys, entry) = match (target, key_txn.get_password_entry()?) {
            (Some((k, e)), _) => (Some(k.clone()), Some(e.clone())),
            (None, Some(_)) => return Err(Rv::UserNotLoggedIn),
            (None, None) => match source {
                Some((k, e)) => {
                    self.sign_cert_objects(&mut *key_txn, None, k)?;
                    key_txn.put_password_entry(&e)?;
                    (Some(k.clone()), Some(e))
                }
                None => (None, None),
            },
        };
        let mut counts = MergeCounts::default();
        let mut into = MergeTarget {
            cert: cert_txn,
            key: Some(key_txn),
            keys: keys.as_deref(),
            entry: entry.as_ref(),
            kept: Vec::new(),
        };
        for (i, obj) in objects.into_iter().enumerate() {
            into.merge(obj, &mut counts)?;
            progress(i + 1);
        }
        Ok((counts, into.kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_count_as_nss_counts() {
        assert_eq!(next_label(b"Alice"), b"Alice #2");
        assert_eq!(next_label(b"Alice #2"), b"Alice #3");
        assert_eq!(next_label(b"Alice #9"), b"Alice #10");
        assert_eq!(next_label(b"Route 66"), b"Route 66 #2");
    }

    #[test]
    fn ids_count_as_nss_counts() {
        assert_eq!(next_id(&[1, 2]), [1, 3]);
        assert_eq!(next_id(&[1, 0xff]), [2, 0]);
        assert_eq!(next_id(&[0xff]), [0, 0]);
        assert_eq!(next_id(&[]), [0]);
    }

    #[test]
    fn definite_trust_beats_soft_trust() {
        assert!(trust_strength(CKT_NSS_TRUSTED) > trust_strength(CKT_NSS_MUST_VERIFY_TRUST));
        assert!(trust_strength(CKT_NSS_MUST_VERIFY_TRUST) > trust_strength(CKT_NSS_TRUST_UNKNOWN));
        assert_eq!(
            trust_strength(CKT_NSS_TRUSTED_DELEGATOR),
            trust_strength(CKT_NSS_NOT_TRUSTED)
        );
    }
}
