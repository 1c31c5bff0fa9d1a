//! The integrity records: checking one attribute's, and the check of the
//! whole database (softoken-modutil's `check`).

use sdb::{ObjectId, SdbRead};
use zeroize::Zeroizing;

use crate::rv::{Result, Rv};
use crate::storage::format;
use crate::storage::keydb::{self, DbKind, KeyState};
use crate::token::handles::stored_handle;
use crate::token::{IntegrityReport, Token, LEGACY_SIG_ID_BITS};

impl Token {
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
        match keys.verify(&record.item1, mac_object_id, t, value) {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.explain_failure(
                db,
                id,
                t,
                "does not match its integrity record (tampering or damage)",
            )),
            Err(_) => Err(self.explain_failure(db, id, t, "has an unreadable integrity record")),
        }
    }

    /// What a value that fails to decrypt or to match its record means.
    /// When another process changed the password, the keys this login holds
    /// are stale: the token logs out and the caller is asked to log in again
    /// (CKR_USER_NOT_LOGGED_IN). Otherwise the value is tampered with or
    /// damaged (CKR_DEVICE_ERROR). The log says which.
    fn explain_failure(&self, db: DbKind, id: ObjectId, t: u64, what: &str) -> Rv {
        if self.login_is_stale() {
            crate::log::line(format_args!(
                "{}: the password was changed by another process; log in again",
                self.cfg.dir.display()
            ));
            self.forget_stale_login();
            return Rv::UserNotLoggedIn;
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
        let mut done = 0;
        for (db, ids) in [(DbKind::Cert, cert_ids), (DbKind::Key, key_ids)] {
            let present: std::collections::HashSet<ObjectId> = ids.iter().copied().collect();
            for &id in &ids {
                done += 1;
                progress(done, total);
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
            }
            let prefix = match db {
                DbKind::Cert => "sig_cert_",
                DbKind::Key => "sig_key_",
            };
            for name in self.key.metadata_ids(prefix)? {
                let id = name
                    .get(prefix.len()..prefix.len() + 8)
                    .and_then(|hex| ObjectId::from_str_radix(hex, 16).ok());
                let exists = id.is_some_and(|id| present.contains(&(id & sdb::MAX_OBJECT_ID)));
                if !exists {
                    report.orphaned_records.push(name);
                }
            }
        }
        Ok(report)
    }
}
