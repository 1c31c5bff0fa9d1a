//! Updating a new database from NSS's legacy files (NSS's "Mode 2"): a
//! `sql:` directory that holds cert8.db/key3.db and no cert9.db/key4.db.
//!
//! Opened read-only, the legacy files serve in place and nothing is
//! written. Opened read-write, cert9.db and key4.db are made and the
//! certificate side (certificates, trust, CRLs, S/MIME records) is copied
//! at once; the keys follow at the first C_Login with the legacy password
//! (at once when it is empty), in the transaction that also copies the
//! legacy password entry, so that the new database has the legacy password.
//! Until then the token shows the legacy password (PIN initialised, login
//! required) and later opens start again.
//!
//! The legacy files are only ever read. Each copy is one transaction and
//! skips what an earlier, interrupted run left (found by identity: class
//! and NSS's identifying attributes), so a rerun adds nothing twice. The
//! update is done once key4.db has a metadata row, as NSS takes it to be
//! once key4.db has a metaData table: the password entry it copies, or
//! NSS's `empty` row when the legacy database had no password.

use std::sync::Arc;

use pkcs11_sys::*;
use sdb::{Attribute, Databases, PasswordEntry, SdbRead};

use crate::config::TokenConfig;
use crate::object::attrs::Attrs;
use crate::object::identity_types;
use crate::rv::{Result, Rv};
use crate::storage::backends::BACKENDS;
use crate::storage::format;
use crate::storage::keydb::{self, DbKind, KeyState, PASSWORD_CHECK};
use crate::token::legacy::KeyCodec;
use crate::token::objects::{as_refs, create_key_object, home_db, stored_form};
use crate::token::{open_databases, Token};

/// NSS's metadata row for a database updated from legacy files that had
/// no password (both items one zero byte).
const EMPTY_ROW: &str = "empty";

/// Whether a key database still waits for its update: nothing has written
/// a metadata row into it yet.
fn update_pending(key: &dyn SdbRead) -> Result<bool> {
    Ok(key.metadata_ids("")?.is_empty())
}

/// The backend of legacy files beside the token's own database, which a
/// new database of its is updated from.
pub(super) fn source_backend(cfg: &TokenConfig) -> Option<&'static sdb::Backend> {
    BACKENDS
        .update_source
        .filter(|b| **b != *cfg.backend)
        .filter(|b| b.files_exist(&cfg.dir, &cfg.cert_prefix, &cfg.key_prefix))
}

fn refuse(cfg: &TokenConfig, e: &sdb::Error) -> Rv {
    crate::log::line(format_args!(
        "{}: the token's databases cannot be opened: {e}",
        cfg.dir.display()
    ));
    Rv::FunctionFailed
}

/// Opens the token's databases, and the legacy ones an update is to copy
/// (read-only). A directory that holds only legacy files, or whose own
/// database still waits for the update, is used in place when this open
/// cannot write: `cfg` then names the legacy backend and is read-only.
pub(super) fn open_storage(cfg: &mut TokenConfig) -> Result<(Databases, Option<Databases>)> {
    let source = source_backend(cfg);
    let open = |cfg: &TokenConfig, read_only| open_databases(cfg, read_only);
    // Files this process may not write are opened read-only and the token
    // says it is write-protected, as NSS does.
    let opened = match open(cfg, cfg.read_only) {
        Err(sdb::Error::ReadOnly) if !cfg.read_only => open(cfg, true),
        other => other,
    };
    let Some(source) = source else {
        return opened.map(|d| (d, None)).map_err(|e| refuse(cfg, &e));
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
            .map_err(|e| refuse(cfg, &e));
    }
    let dbs = opened.map_err(|e| refuse(cfg, &e))?;
    if !update_pending(&*dbs.key)? {
        return Ok((dbs, None));
    }
    let options = sdb::OpenOptions {
        dir: cfg.dir.clone(),
        cert_prefix: cfg.cert_prefix.clone(),
        key_prefix: cfg.key_prefix.clone(),
        read_only: true,
    };
    match (source.open)(&options) {
        Ok(legacy) => Ok((dbs, Some(legacy))),
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

/// Whether `db` already holds an object that is `obj` by NSS's identity
/// rules (objects of classes without one are never found).
fn already_there(db: &dyn SdbRead, obj: &Attrs) -> Result<bool> {
    let Some(types) = obj.ulong(CKA_CLASS).and_then(identity_types) else {
        return Ok(false);
    };
    let mut template = Vec::new();
    for &t in std::iter::once(&CKA_CLASS).chain(types) {
        let Some(v) = obj.get(t) else {
            return Ok(false);
        };
        template.push((t, format::to_disk(t, v)?));
    }
    Ok(!db.find(&as_refs(&template))?.next_batch(1).is_empty())
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
    /// Starts the update at a read-write open: the certificate side now,
    /// and the keys too when the legacy password is empty (or there is
    /// none); otherwise the source waits for C_Login.
    pub(super) fn start_update(&self, source: Databases) -> Result<()> {
        self.copy_to_cert_db(&objects_of(&*source.cert, None)?)?;
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
                *self.update.lock() = Some(source);
                Ok(())
            }
        }
    }

    /// The legacy password entry while an update waits for it (none once
    /// this or another process finished it).
    pub(super) fn pending_update_entry(&self) -> Result<Option<PasswordEntry>> {
        let mut update = self.update.lock();
        let Some(source) = update.as_ref() else {
            return Ok(None);
        };
        if !update_pending(&*self.key)? {
            *update = None;
            return Ok(None);
        }
        Ok(source.key.get_password_entry()?)
    }

    /// Copies the keys of a waiting update, now that `keys` (from the
    /// legacy password) are known; nothing when no update waits.
    pub(super) fn finish_update(&self, keys: &Arc<KeyState>) -> Result<()> {
        let mut update = self.update.lock();
        let Some(source) = update.as_ref() else {
            return Ok(());
        };
        let entry = source.key.get_password_entry()?.ok_or(Rv::DeviceError)?;
        self.copy_keys(source, keys, &entry)?;
        *update = None;
        Ok(())
    }

    /// Adds to cert9.db, in one transaction, each object it lacks. Values
    /// that need integrity records get them when the keys are copied (the
    /// password is not known before).
    fn copy_to_cert_db(&self, objects: &[Attrs]) -> Result<()> {
        let mut txn = self.cert.begin()?;
        for obj in objects {
            if !already_there(&*txn, obj)? {
                txn.create_object(&as_refs(&stored_form(DbKind::Cert, None, obj)?))?;
            }
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
        self.copy_to_cert_db(&public)?;
        let cert_lock = self.cert.begin()?;
        let mut txn = self.key.begin()?;
        if !update_pending(&*txn)? {
            // Another process finished it meanwhile.
            return Ok(());
        }
        for obj in &private {
            if !already_there(&*txn, obj)? {
                create_key_object(&mut *txn, Some(keys), Some(entry), obj)?;
            }
        }
        self.sign_cert_objects(&mut *txn, None, keys)?;
        txn.put_password_entry(entry)?;
        txn.commit()?;
        drop(cert_lock);
        crate::log::line(format_args!(
            "{}: updated from the legacy database ({} keys)",
            self.cfg.dir.display(),
            private.len()
        ));
        Ok(())
    }
}
