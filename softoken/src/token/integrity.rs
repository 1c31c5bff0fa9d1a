//! The integrity records: checking one attribute's, and the check of the
//! whole database (softoken-modutil's `check`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use pkcs11_sys::{CKA_EXTRACTABLE, CKA_SENSITIVE};
use sdb::{ObjectId, SdbRead};
use zeroize::Zeroizing;

use crate::object::attrs::Attrs;

use crate::rv::{Result, Rv};
use crate::storage::format;
use crate::storage::keydb::{self, DbKind, KeyState};
use crate::token::handles::stored_handle;
use crate::token::{IntegrityReport, Token, LEGACY_SIG_ID_BITS};

/// What a key4.db object's CKA_SENSITIVE and CKA_EXTRACTABLE may be trusted
/// with. NSS's format authenticates neither (anyone who can edit the file
/// can turn a key exportable), so softoken keeps its own integrity record
/// over the pair, named as NSS names records (type CKA_SENSITIVE: a row
/// NSS neither writes nor reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// The record verifies: the pair is as written here.
    Recorded,
    /// No record (a key NSS wrote), or one made under a password NSS has
    /// changed since (NSS re-signs only the records it knows): NSS's own
    /// rule applies, under which C_GetAttributeValue never reveals a stored
    /// key's private values.
    Unrecorded,
    /// A record that does not match: the pair was edited; the key is
    /// treated as sensitive and unextractable.
    Forged,
}

/// What an exposure record names the password entry it was made under by
/// (its item2): a record NSS's password change left behind under the old
/// key is told from an edit by it.
pub(super) fn entry_fingerprint(entry: Option<&sdb::PasswordEntry>) -> Result<Vec<u8>> {
    let mut digest = crate::engine::EvpDigest::new(crate::engine::Hash::Sha256)?;
    if let Some(entry) = entry {
        digest.update(&entry.salt);
        digest.update(&entry.value);
    }
    digest.result()
}

/// The pair an exposure record covers: each flag as stored, 0xff for one
/// the object lacks (a data object has neither; a key's flags removed on
/// disk then no longer match).
pub(super) fn exposure_pair(attrs: &Attrs) -> [u8; 2] {
    [CKA_SENSITIVE, CKA_EXTRACTABLE].map(|t| attrs.bool(t).map_or(0xff, u8::from))
}

impl Token {
    /// Whether the CKA_SENSITIVE and CKA_EXTRACTABLE of key4.db object `id`
    /// (given in `attrs`) are the ones written here.
    pub(super) fn exposure(
        &self,
        meta: &dyn SdbRead,
        keys: &KeyState,
        id: ObjectId,
        attrs: &Attrs,
    ) -> Result<Exposure> {
        // The legacy format keeps no records: its flags are all there is.
        if !self.key.keeps_integrity_records() {
            return Ok(Exposure::Recorded);
        }
        let name = keydb::sig_name(DbKind::Key, id, CKA_SENSITIVE);
        let Some(record) = meta.get_metadata(&name)? else {
            return Ok(Exposure::Unrecorded);
        };
        let pair = exposure_pair(attrs);
        if keys
            .verify(&record.item1, id, CKA_SENSITIVE, &pair)
            .unwrap_or(false)
        {
            return Ok(Exposure::Recorded);
        }
        if let Some(answer) = self.stale_login_answer() {
            return Err(answer);
        }
        let current = entry_fingerprint(meta.get_password_entry()?.as_ref())?;
        if record.item2.as_deref() != Some(current.as_slice()) {
            return Ok(Exposure::Unrecorded);
        }
        crate::log::line(format_args!(
            "{}: object {id:#x} of key4.db: CKA_SENSITIVE/CKA_EXTRACTABLE do not match \
             their integrity record (edited): the key is kept sensitive",
            self.cfg.dir.display()
        ));
        Ok(Exposure::Forged)
    }

    /// The exposure of stored key4.db object `id`, its flags read here.
    pub(super) fn stored_exposure(&self, keys: &KeyState, id: ObjectId) -> Result<Exposure> {
        let flags = self.load_some(DbKind::Key, id, &[CKA_SENSITIVE, CKA_EXTRACTABLE])?;
        self.exposure(&*self.key, keys, id, &flags)
    }

    /// `attrs` of key4.db object `id` with the flags they may be trusted
    /// with: an edited pair reads as sensitive and unextractable.
    pub(super) fn trusted_flags(
        &self,
        meta: &dyn SdbRead,
        keys: &KeyState,
        id: ObjectId,
        attrs: &Attrs,
    ) -> Result<Attrs> {
        let mut trusted = attrs.clone();
        if self.exposure(meta, keys, id, attrs)? == Exposure::Forged {
            trusted.set_bool(CKA_SENSITIVE, true);
            trusted.set_bool(CKA_EXTRACTABLE, false);
        }
        Ok(trusted)
    }

    /// Verifies the record of one attribute; a missing or wrong record is an
    /// error, never silently accepted.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_record(
        &self,
        meta: &dyn SdbRead,
        keys: &KeyState,
        db: DbKind,
        id: ObjectId,
        t: u64,
        mac_object_id: ObjectId,
        value: &[u8],
    ) -> Result<()> {
        // The legacy format keeps no integrity records.
        if !self.key.keeps_integrity_records() {
            return Ok(());
        }
        let mut record = meta.get_metadata(&keydb::sig_name(db, id, t))?;
        if record.is_none() && db == DbKind::Key && mac_object_id == 0 {
            record = meta.get_metadata(&keydb::sig_name(db, id | LEGACY_SIG_ID_BITS, t))?;
        }
        let Some(record) = record else {
            return Err(self.explain_failure(db, id, t, "has no integrity record (damage)"));
        };
        // A change that died between key4.db's commit and cert9.db's left
        // the value it did not change proven by the record kept aside.
        let kept_aside = || {
            db == DbKind::Cert
                && meta
                    .get_metadata(&keydb::previous_sig_name(id, t))
                    .ok()
                    .flatten()
                    .is_some_and(|r| {
                        keys.verify(&r.item1, mac_object_id, t, value)
                            .unwrap_or(false)
                    })
        };
        match keys.verify(&record.item1, mac_object_id, t, value) {
            Ok(true) => Ok(()),
            Ok(false) if kept_aside() => Ok(()),
            Ok(false) => Err(self.explain_failure(
                db,
                id,
                t,
                "does not match its integrity record (tampering or damage)",
            )),
            Err(_) => Err(self.explain_failure(db, id, t, "has an unreadable integrity record")),
        }
    }

    /// When another process changed the password, the keys this login holds
    /// are stale: the token logs out, and the caller is to log in again.
    fn stale_login_answer(&self) -> Option<Rv> {
        if !self.login_is_stale() {
            return None;
        }
        crate::log::line(format_args!(
            "{}: the password was changed by another process; log in again",
            self.cfg.dir.display()
        ));
        self.forget_stale_login();
        Some(Rv::UserNotLoggedIn)
    }

    /// What a value that fails to decrypt or to match its record means.
    /// When another process changed the password, the keys this login holds
    /// are stale: the token logs out and the caller is asked to log in again
    /// (CKR_USER_NOT_LOGGED_IN). Otherwise the value is tampered with or
    /// damaged (CKR_DEVICE_ERROR). The log says which.
    fn explain_failure(&self, db: DbKind, id: ObjectId, t: u64, what: &str) -> Rv {
        if let Some(answer) = self.stale_login_answer() {
            return answer;
        }
        crate::log::line(format_args!(
            "{}: object {id:#x} of {db:?}: attribute {t:#x} {what}",
            self.cfg.dir.display()
        ));
        Rv::DeviceError
    }

    /// Decrypts a private attribute and checks its integrity record (NSS's
    /// current form always has one; the legacy form never does).
    pub(super) fn decrypt_checked(
        &self,
        meta: &dyn SdbRead,
        keys: &KeyState,
        id: ObjectId,
        t: u64,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (plain, current) = keys
            .decrypt(blob)
            .map_err(|_| self.explain_failure(DbKind::Key, id, t, "does not decrypt"))?;
        if current {
            self.check_record(meta, keys, DbKind::Key, id, t, 0, &plain)?;
        }
        Ok(plain)
    }

    /// Decrypts every private attribute and verifies every integrity record
    /// of the token (the user must be logged in, or the password be empty).
    /// `progress` hears (objects done, objects in all) as the check goes.
    pub fn check_integrity(
        &self,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<IntegrityReport> {
        let keys = self.keys().ok_or(Rv::UserNotLoggedIn)?;
        // The legacy format has no records to verify.
        let records_kept = self.key.keeps_integrity_records();
        let mut report = IntegrityReport::default();
        let all_ids = [DbKind::Cert, DbKind::Key]
            .map(|db| self.db(db).find(&[]).map(|mut f| f.next_batch(usize::MAX)));
        let [cert_ids, key_ids] = all_ids;
        let (cert_ids, key_ids) = (cert_ids?, key_ids?);
        let total = cert_ids.len() + key_ids.len();
        // The count is known before the first object is checked, and an
        // object counts once it is checked.
        let mut done = 0;
        progress(done, total);
        for (db, ids) in [(DbKind::Cert, cert_ids), (DbKind::Key, key_ids)] {
            let present: HashSet<ObjectId> = ids.iter().copied().collect();
            for &id in &ids {
                for (t, v) in self.db(db).read_object(id)? {
                    let checked = if db == DbKind::Key && format::is_encrypted(t) {
                        keys.decrypt(&v).and_then(|(plain, current)| {
                            report.decrypted += 1;
                            if current && records_kept {
                                self.check_record(&*self.key, &keys, db, id, t, 0, &plain)?;
                                report.verified += 1;
                            }
                            Ok(())
                        })
                    } else if format::is_authenticated(t) && records_kept {
                        self.check_record(&*self.key, &keys, db, id, t, id, &v)
                            .map(|()| report.verified += 1)
                    } else {
                        Ok(())
                    };
                    if let Err(e) = checked {
                        report.failures.push((stored_handle(db, id), t, e));
                    }
                }
                if db == DbKind::Key && self.stored_exposure(&keys, id)? == Exposure::Forged {
                    let handle = stored_handle(db, id);
                    report
                        .failures
                        .push((handle, CKA_SENSITIVE, Rv::DeviceError));
                }
                done += 1;
                progress(done, total);
            }
            report
                .orphaned_records
                .extend(orphaned_records(&*self.key, db, &present)?);
        }
        Ok(report)
    }

    /// Removes the records of cert9.db objects that do not exist: a process
    /// died between a record's commit and its object's (creation), or its
    /// object's and the records' (destruction). Once per process, at its
    /// first cert9.db write, while `cert_txn` holds cert9.db's lock: every
    /// writer (NSS's too) holds that lock from before it writes records
    /// until its object commits, so none is between the two now.
    pub(super) fn sweep_orphaned_records(&self, cert_txn: &dyn SdbRead) -> Result<()> {
        if self.orphans_swept.swap(true, Ordering::Relaxed) || !self.key.keeps_integrity_records() {
            return Ok(());
        }
        let present: HashSet<ObjectId> = cert_txn
            .find(&[])?
            .next_batch(usize::MAX)
            .into_iter()
            .collect();
        let orphans = orphaned_records(&*self.key, DbKind::Cert, &present)?;
        if orphans.is_empty() {
            return Ok(());
        }
        let mut txn = self.key.begin()?;
        for name in &orphans {
            txn.delete_metadata(name)?;
        }
        txn.commit()?;
        crate::log::line(format_args!(
            "{}: removed {} integrity records of objects that a process that died \
             never finished or finished destroying",
            self.cfg.dir.display(),
            orphans.len()
        ));
        Ok(())
    }
}

/// The integrity records in `meta` of `db`'s objects that are not in
/// `present`.
fn orphaned_records(
    meta: &dyn SdbRead,
    db: DbKind,
    present: &HashSet<ObjectId>,
) -> Result<Vec<String>> {
    let prefix = match db {
        DbKind::Cert => "sig_cert_",
        DbKind::Key => "sig_key_",
    };
    let mut orphans = meta.metadata_ids(prefix)?;
    orphans.retain(|name| {
        let id = name
            .get(prefix.len()..prefix.len() + 8)
            .and_then(|hex| ObjectId::from_str_radix(hex, 16).ok());
        !id.is_some_and(|id| present.contains(&(id & sdb::MAX_OBJECT_ID)))
    });
    Ok(orphans)
}
