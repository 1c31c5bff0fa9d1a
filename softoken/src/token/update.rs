//! Updating a database from NSS's legacy files, as NSS does it.
//!
//! Mode 2: a `sql:` directory that holds cert8.db/key3.db and no
//! cert9.db/key4.db. Opened read-only, the legacy files serve in place and
//! nothing is written. Opened read-write, cert9.db and key4.db are made and
//! the certificate side (certificates, trust, CRLs, S/MIME records) is
//! copied at once; the keys follow at the first C_Login with the legacy
//! password (at once when it is empty), in the transaction that also copies
//! the legacy password entry, so that the new database has the legacy
//! password. Until then the token shows the legacy password (PIN
//! initialised, login required) and later opens start again. The update is
//! done once key4.db has a metadata row, as NSS takes it to be once key4.db
//! has a metaData table: the password entry it copies, or NSS's `empty` row
//! when the legacy database had no password.
//!
//! Mode 3: an application's own legacy database elsewhere (`updatedir`)
//! merged once into this one, by merge.rs's rules, marked done by the rows
//! `upd_key_ID` in key4.db and `upd_cert_ID` in cert9.db (`updateid`).
//! While the source's password is wanted the token is labelled
//! `updateTokenDescription` and its slot is removable; the first C_Login
//! takes the source's password. If this database's own password differs
//! (and is not empty), the token is "removed" (every session closed, as NSS
//! does) and the next C_Login takes this database's password; the merge
//! runs once both keys are known. `updateNoSourcePassword` chooses what
//! happens when the source's password is never given (config.rs).
//!
//! The legacy files are only ever read. Each copy is one transaction per
//! database and merging the same objects again adds nothing, so an
//! interrupted run simply runs again at the next open.

use std::sync::Arc;

use sdb::{Attribute, Databases, PasswordEntry, SdbRead};

use crate::config::{TokenConfig, UpdateFrom, WithoutSourcePassword};
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};
use crate::storage::backends::BACKENDS;
use crate::storage::format;
use crate::storage::keydb::{self, DbKind, KeyState, PASSWORD_CHECK};
use crate::token::legacy::KeyCodec;
use crate::token::merge::{MergeCounts, MergeTarget};
use crate::token::objects::home_db;
use crate::token::{open_databases, Token};

/// NSS's metadata row for a database updated from legacy files that had
/// no password (both items one zero byte).
const EMPTY_ROW: &str = "empty";

/// Whether a key database still waits for its Mode 2 update: nothing has
/// written a metadata row into it yet.
fn update_pending(key: &dyn SdbRead) -> Result<bool> {
    Ok(key.metadata_ids("")?.is_empty())
}

/// The rows that mark a Mode 3 merge done: (key4.db's, cert9.db's).
fn merge_rows(id: &str) -> (String, String) {
    (format!("upd_key_{id}"), format!("upd_cert_{id}"))
}

/// Whether the Mode 3 merge `id` is done in both databases.
fn merge_done(cert: &dyn SdbRead, key: &dyn SdbRead, id: &str) -> Result<bool> {
    let (key_row, cert_row) = merge_rows(id);
    Ok(key.get_metadata(&key_row)?.is_some() && cert.get_metadata(&cert_row)?.is_some())
}

/// An update waiting for a password.
pub(super) enum Pending {
    /// Mode 2: the legacy files beside, their keys waiting for their
    /// password.
    Replace(Databases),
    /// Mode 3: an application's legacy files elsewhere, to merge.
    Merge(MergeWait),
}

pub(super) struct MergeWait {
    source: Databases,
    id: String,
    description: Option<String>,
    /// The source's key: `None` while its password is wanted; `Some(None)`
    /// when no key of it is to be copied (it has none, or
    /// updateNoSourcePassword=public).
    source_keys: Option<Option<Arc<KeyState>>>,
}

/// What a C_Login (or the C_SetPIN of a waiting Mode 2 update) comes to.
pub(super) enum AfterLogin {
    /// Logged in with this key and password entry.
    LoggedIn(Arc<KeyState>, PasswordEntry),
    /// The source's password was right and this database's is another:
    /// the token is "removed" and the next C_Login takes that one.
    Removed,
}

/// The legacy databases of `dir` with these prefixes, opened read-only.
fn open_source(
    backend: &sdb::Backend,
    dir: &std::path::Path,
    cert_prefix: &str,
    key_prefix: &str,
) -> sdb::Result<Databases> {
    (backend.open)(&sdb::OpenOptions {
        dir: dir.to_path_buf(),
        cert_prefix: cert_prefix.to_owned(),
        key_prefix: key_prefix.to_owned(),
        read_only: true,
    })
}

/// The Mode 3 merge the configuration asks for, when it is not done yet:
/// its source opened.
fn merge_source(cfg: &TokenConfig, dbs: &Databases) -> Result<Option<Pending>> {
    let Some(UpdateFrom {
        dir,
        cert_prefix,
        key_prefix,
        id,
        token_description,
        ..
    }) = &cfg.update
    else {
        return Ok(None);
    };
    let Some(backend) = BACKENDS
        .update_source
        .filter(|b| b.files_exist(dir, cert_prefix, key_prefix))
    else {
        return Ok(None);
    };
    if merge_done(&*dbs.cert, &*dbs.key, id)? {
        return Ok(None);
    }
    match open_source(backend, dir, cert_prefix, key_prefix) {
        Ok(source) => Ok(Some(Pending::Merge(MergeWait {
            source,
            id: id.clone(),
            description: token_description.clone(),
            source_keys: None,
        }))),
        Err(e) => {
            crate::log::line(format_args!(
                "{}: the legacy database to merge cannot be read, so it is not merged yet: {e}",
                dir.display()
            ));
            Ok(None)
        }
    }
}

/// The backend of legacy files beside the token's own database, which a
/// new database of its is updated from.
pub(super) fn source_backend(cfg: &TokenConfig) -> Option<&'static sdb::Backend> {
    BACKENDS
        .update_source
        .filter(|b| **b != *cfg.backend)
        .filter(|b| b.files_exist(&cfg.dir, &cfg.cert_prefix, &cfg.key_prefix))
}

/// Why the token's databases did not open, logged, and the slot's answer
/// for it.
fn refuse(cfg: &TokenConfig, e: sdb::Error) -> Rv {
    crate::log::line(format_args!(
        "{}: the token's databases cannot be opened: {e}",
        cfg.dir.display()
    ));
    match e {
        // Files there that are not a database this module can read (never
        // written: another program's, empty, damaged).
        sdb::Error::NotRecognized(_) | sdb::Error::Corrupt(_) => Rv::TokenNotRecognized,
        // No database, and this open may not make one (read-only).
        sdb::Error::ReadOnly => Rv::TokenNotPresent,
        sdb::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Rv::TokenNotPresent
        }
        other => Rv::from(other),
    }
}

/// Opens the token's databases, and the legacy ones an update is to copy
/// (read-only). A directory that holds only legacy files, or whose own
/// database still waits for the update, is used in place when this open
/// cannot write: `cfg` then names the legacy backend and is read-only.
pub(super) fn open_storage(cfg: &mut TokenConfig) -> Result<(Databases, Option<Pending>)> {
    let source = source_backend(cfg);
    let open = |cfg: &TokenConfig, read_only| open_databases(cfg, read_only);
    // Files this process may not write are opened read-only and the token
    // says it is write-protected, as NSS does.
    let opened = match open(cfg, cfg.read_only) {
        Err(sdb::Error::ReadOnly) if !cfg.read_only => open(cfg, true),
        other => other,
    };
    if let Ok(dbs) = &opened {
        if !dbs.key.is_read_only() {
            if let Some(merge) = merge_source(cfg, dbs)? {
                return opened.map(|d| (d, Some(merge))).map_err(|e| refuse(cfg, e));
            }
        }
    }
    let Some(source) = source else {
        return opened.map(|d| (d, None)).map_err(|e| refuse(cfg, e));
    };
    let own_key_file = cfg
        .dir
        .join(format!("{}{}", cfg.key_prefix, cfg.backend.key_file));
    let in_place = match &opened {
        Ok(dbs) if !update_pending(&*dbs.key)? => false,
        Ok(dbs) => dbs.key.is_read_only(),
        // Only a database that is not there yet gives way to the legacy
        // files: a damaged one is reported.
        Err(_) => !own_key_file.exists(),
    };
    if in_place {
        drop(opened);
        cfg.backend = source;
        cfg.read_only = true;
        return open(cfg, true)
            .map(|d| (d, None))
            .map_err(|e| refuse(cfg, e));
    }
    let dbs = opened.map_err(|e| refuse(cfg, e))?;
    if !update_pending(&*dbs.key)? {
        return Ok((dbs, None));
    }
    match open_source(source, &cfg.dir, &cfg.cert_prefix, &cfg.key_prefix) {
        Ok(legacy) => Ok((dbs, Some(Pending::Replace(legacy)))),
        Err(e) => {
            // As NSS: the new database opens without the update, and the
            // next open tries again (nothing was written to either).
            crate::log::line(format_args!(
                "{}: the legacy database cannot be read, so it is not copied yet: {e}",
                cfg.dir.display()
            ));
            Ok((dbs, None))
        }
    }
}

/// A legacy object in the caller's form: private values decrypted with
/// the legacy password's key.
fn caller_form(stored: Vec<Attribute>, keys: Option<&KeyState>) -> Result<Attrs> {
    let mut obj = Attrs::new();
    for (t, v) in stored {
        let value = match keys {
            Some(k) if format::is_encrypted(t) => k.decrypt(&v)?.0.to_vec(),
            _ => format::from_disk(t, v),
        };
        obj.set(t, value);
    }
    Ok(obj)
}

/// Every object of one legacy database, in the caller's form.
fn objects_of(db: &dyn SdbRead, keys: Option<&KeyState>) -> Result<Vec<Attrs>> {
    db.find(&[])?
        .next_batch(usize::MAX)
        .into_iter()
        .map(|id| caller_form(db.read_object(id)?, keys))
        .collect()
}

impl Token {
    /// Starts an update at a read-write open (Mode 2: the certificate
    /// side now; Mode 3: the merge, when no password is needed).
    pub(super) fn start_update(&self, pending: Pending) -> Result<()> {
        match pending {
            Pending::Replace(source) => self.start_replace(source),
            Pending::Merge(wait) => self.start_merge(wait),
        }
    }

    /// Mode 2 at open: the certificate side, and the keys too when the
    /// legacy password is empty (or there is none); otherwise the source
    /// waits for C_Login.
    fn start_replace(&self, source: Databases) -> Result<()> {
        self.copy_to_cert_db(objects_of(&*source.cert, None)?)?;
        match source.key.get_password_entry()? {
            None => {
                let _cert_lock = self.cert.begin()?;
                let mut txn = self.key.begin()?;
                if update_pending(&*txn)? {
                    txn.put_metadata(EMPTY_ROW, &[0], Some(&[0]))?;
                    txn.commit()?;
                }
                Ok(())
            }
            Some(entry) if keydb::is_empty_password(&entry) => {
                let keys = Arc::new(keydb::unlock(&entry, b"", PASSWORD_CHECK)?);
                self.copy_keys(&source, &keys, &entry)
            }
            Some(_) => {
                *self.update.lock() = Some(Pending::Replace(source));
                Ok(())
            }
        }
    }

    /// Mode 3 at open: merges now when neither password is needed, else
    /// waits for C_Login.
    fn start_merge(&self, mut wait: MergeWait) -> Result<()> {
        let policy = self
            .cfg
            .update
            .as_ref()
            .map_or(WithoutSourcePassword::Wait, |u| u.without_password);
        if policy == WithoutSourcePassword::Skip {
            return self.mark_merged(&wait.id);
        }
        wait.source_keys = match wait.source.key.get_password_entry()? {
            None => Some(None),
            Some(e) if keydb::is_empty_password(&e) => {
                Some(Some(Arc::new(keydb::unlock(&e, b"", PASSWORD_CHECK)?)))
            }
            Some(_) if policy == WithoutSourcePassword::PublicOnly => Some(None),
            Some(_) => None,
        };
        if let Some(source_keys) = &wait.source_keys {
            match self.key.get_password_entry()? {
                None => return self.merge_now(&wait, source_keys.as_ref(), None),
                Some(t) if keydb::is_empty_password(&t) => {
                    let keys = Arc::new(keydb::unlock(&t, b"", PASSWORD_CHECK)?);
                    return self.merge_now(&wait, source_keys.as_ref(), Some((&keys, &t)));
                }
                Some(_) => {}
            }
        }
        *self.update.lock() = Some(Pending::Merge(wait));
        Ok(())
    }

    /// The waiting update, dropped when this or another process finished
    /// it meanwhile.
    fn waiting(&self) -> Result<parking_lot::MutexGuard<'_, Option<Pending>>> {
        let mut update = self.update.lock();
        let done = match update.as_ref() {
            None => false,
            Some(Pending::Replace(_)) => !update_pending(&*self.key)?,
            Some(Pending::Merge(w)) => merge_done(&*self.cert, &*self.key, &w.id)?,
        };
        if done {
            *update = None;
        }
        Ok(update)
    }

    /// The password entry C_Login checks while an update wants its
    /// source's password (Mode 2's legacy entry, Mode 3's source entry).
    pub(super) fn pending_update_entry(&self) -> Result<Option<PasswordEntry>> {
        match &*self.waiting()? {
            Some(Pending::Replace(source)) => Ok(source.key.get_password_entry()?),
            Some(Pending::Merge(w)) if w.source_keys.is_none() => {
                Ok(w.source.key.get_password_entry()?)
            }
            _ => Ok(None),
        }
    }

    /// Whether a Mode 3 merge waits (the slot is then removable, as NSS
    /// shows it, since the token changes at the first login).
    pub fn in_update_merge(&self) -> bool {
        matches!(self.waiting().as_deref(), Ok(Some(Pending::Merge(_))))
    }

    /// The label while a Mode 3 merge wants its source's password.
    pub(super) fn update_label(&self) -> Option<String> {
        match self.waiting().as_deref() {
            Ok(Some(Pending::Merge(w))) if w.source_keys.is_none() => {
                Some(w.description.clone().unwrap_or_else(|| w.id.clone()))
            }
            _ => None,
        }
    }

    /// After a right PIN (`keys` from `entry`, the one pending_update_entry
    /// or key4.db gave): copies or merges what waits for it.
    pub(super) fn finish_update(
        &self,
        keys: Arc<KeyState>,
        entry: PasswordEntry,
        pin: &[u8],
    ) -> Result<AfterLogin> {
        let mut update = self.waiting()?;
        let done = AfterLogin::LoggedIn(keys.clone(), entry.clone());
        match update.as_mut() {
            None => return Ok(done),
            Some(Pending::Replace(source)) => {
                let legacy = source.key.get_password_entry()?.ok_or(Rv::DeviceError)?;
                self.copy_keys(source, &keys, &legacy)?;
            }
            Some(Pending::Merge(w)) => match w.source_keys.clone() {
                // This database's password, the source's known before.
                Some(source_keys) => {
                    self.merge_now(w, source_keys.as_ref(), Some((&keys, &entry)))?;
                }
                // The source's password.
                None => {
                    let target = match self.key.get_password_entry()? {
                        None => None,
                        Some(t) => match keydb::unlock(&t, pin, PASSWORD_CHECK)
                            .or_else(|_| keydb::unlock(&t, b"", PASSWORD_CHECK))
                        {
                            Ok(k) => Some((Arc::new(k), t)),
                            Err(_) => {
                                w.source_keys = Some(Some(keys));
                                return Ok(AfterLogin::Removed);
                            }
                        },
                    };
                    let after = match &target {
                        Some((k, t)) => AfterLogin::LoggedIn(k.clone(), t.clone()),
                        None => done,
                    };
                    self.merge_now(w, Some(&keys), target.as_ref().map(|(k, t)| (k, t)))?;
                    *update = None;
                    return Ok(after);
                }
            },
        }
        *update = None;
        Ok(done)
    }

    /// Marks the Mode 3 merge `id` done without merging anything.
    fn mark_merged(&self, id: &str) -> Result<()> {
        let (key_row, cert_row) = merge_rows(id);
        let mut cert_txn = self.cert.begin()?;
        let mut key_txn = self.key.begin()?;
        key_txn.put_metadata(&key_row, id.as_bytes(), None)?;
        cert_txn.put_metadata(&cert_row, id.as_bytes(), None)?;
        key_txn.commit()?;
        Ok(cert_txn.commit()?)
    }

    /// The Mode 3 merge, in one transaction per database: the source's
    /// certificate side, then its keys (when `source_keys` is known) under
    /// this database's key (`target`, or when it has no password yet the
    /// source's, whose password entry it then takes, as NSS does). key4.db
    /// commits first; a crash before cert9.db's commit leaves the merge not
    /// done, and it runs again (finding what it already merged).
    fn merge_now(
        &self,
        wait: &MergeWait,
        source_keys: Option<&Arc<KeyState>>,
        target: Option<(&Arc<KeyState>, &PasswordEntry)>,
    ) -> Result<()> {
        let mut objects = objects_of(&*wait.source.cert, None)?;
        if let Some(k) = source_keys {
            wait.source
                .key
                .set_key_codec(Some(Arc::new(KeyCodec(k.clone()))));
            let keys = objects_of(&*wait.source.key, Some(k));
            wait.source.key.set_key_codec(None);
            objects.extend(keys?);
        }
        let source_entry = wait.source.key.get_password_entry()?;
        let mut cert_txn = self.cert.begin()?;
        let mut key_txn = self.key.begin()?;
        if merge_done(&*cert_txn, &*key_txn, &wait.id)? {
            return Ok(());
        }
        let (counts, kept) = self.merge_in(
            &mut *cert_txn,
            &mut *key_txn,
            objects,
            source_keys.zip(source_entry),
            target,
            &mut |_| {},
        )?;
        let (key_row, cert_row) = merge_rows(&wait.id);
        key_txn.put_metadata(&key_row, wait.id.as_bytes(), None)?;
        cert_txn.put_metadata(&cert_row, wait.id.as_bytes(), None)?;
        key_txn.commit()?;
        cert_txn.commit()?;
        self.forget_previous_records(&kept);
        crate::log::line(format_args!(
            "{}: merged update {:?}: {counts:?}",
            self.cfg.dir.display(),
            wait.id
        ));
        Ok(())
    }

    /// Merges objects into cert9.db in one transaction. Values that need
    /// integrity records get them when the keys are copied (the password
    /// is not known before).
    fn copy_to_cert_db(&self, objects: Vec<Attrs>) -> Result<()> {
        let mut txn = self.cert.begin()?;
        // Without keys no record is written, so none is kept aside.
        let mut target = MergeTarget {
            cert: &mut *txn,
            key: None,
            keys: None,
            entry: None,
            kept: Vec::new(),
        };
        let mut counts = MergeCounts::default();
        for obj in objects {
            target.merge(obj, &mut counts)?;
        }
        Ok(txn.commit()?)
    }

    /// The key side: public keys to cert9.db first; then, in one key4.db
    /// transaction under cert9.db's lock, the private keys, the records of
    /// every cert9.db object and the legacy password entry, which ends the
    /// update. A crash between the two leaves public keys that the next
    /// run finds and signs.
    fn copy_keys(
        &self,
        source: &Databases,
        keys: &Arc<KeyState>,
        entry: &PasswordEntry,
    ) -> Result<()> {
        source
            .key
            .set_key_codec(Some(Arc::new(KeyCodec(keys.clone()))));
        let objects = objects_of(&*source.key, Some(keys));
        source.key.set_key_codec(None);
        let (private, public): (Vec<Attrs>, Vec<Attrs>) = objects?
            .into_iter()
            .partition(|o| home_db(o) == DbKind::Key);
        self.copy_to_cert_db(public)?;
        let mut cert_lock = self.cert.begin()?;
        let mut txn = self.key.begin()?;
        if !update_pending(&*txn)? {
            // Another process finished it meanwhile.
            return Ok(());
        }
        let copied = private.len();
        // Only key4.db objects come here: no cert9.db value changes.
        let mut target = MergeTarget {
            cert: &mut *cert_lock,
            key: Some(&mut *txn),
            keys: Some(keys),
            entry: Some(entry),
            kept: Vec::new(),
        };
        let mut counts = MergeCounts::default();
        for obj in private {
            target.merge(obj, &mut counts)?;
        }
        self.sign_cert_objects(&mut *txn, None, keys)?;
        txn.put_password_entry(entry)?;
        txn.commit()?;
        drop(cert_lock);
        crate::log::line(format_args!(
            "{}: updated from the legacy database ({} keys)",
            self.cfg.dir.display(),
            copied
        ));
        Ok(())
    }
}
