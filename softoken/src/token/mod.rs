//! A database token: its two databases, its login state and its session
//! objects. Token objects live in the databases (certificates and public
//! objects in cert9.db, keys and private objects in key4.db, as NSS does);
//! their handles carry the row id, so no object is read until asked for.

pub mod handles;
pub mod legacy;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use pkcs11_sys::*;
use sdb::{ObjectId, PasswordEntry, Sdb, SdbRead, Transaction};
use zeroize::Zeroizing;

use crate::config::{DbFormat, TokenConfig, DEFAULT_TOKEN_LABEL};
use crate::object::attrs::Attrs;
use crate::object::{self, Policy};
use crate::rv::{Result, Rv};
use crate::storage::format;
use crate::storage::keydb::{self, DbKind, KeyState, PASSWORD_CHECK};
use crate::token::handles::HandleMap;

/// Handle bit of token (stored) objects, and of those in the key database.
const TOKEN_OBJECT_BIT: CK_OBJECT_HANDLE = 0x8000_0000;
const KEY_DB_BIT: CK_OBJECT_HANDLE = 0x4000_0000;
/// NSS's older records of private attributes used the handle, not the id.
const LEGACY_SIG_ID_BITS: ObjectId = 0xC000_0000;

/// Metadata rows of our own in key4.db (NSS ignores rows it does not know
/// and removes them with the rest when it resets the key database).
const LABEL_ROW: &str = "softoken-token-label";
const SO_PIN_ROW: &str = "softoken-so-pin";
/// What the SO PIN entry encrypts, as the password entry encrypts
/// "password-check".
const SO_PIN_CHECK: &[u8] = b"so-pin-check";

/// Longest PIN accepted (the token info says so too).
pub const MAX_PIN_LEN: usize = 500;

/// What an integrity check of the whole database found.
#[derive(Debug, Default)]
pub struct IntegrityReport {
    /// Private attribute values that decrypted.
    pub decrypted: usize,
    /// Integrity records that matched their values.
    pub verified: usize,
    /// Values that failed: (handle, attribute type, error).
    pub failures: Vec<(CK_OBJECT_HANDLE, CK_ATTRIBUTE_TYPE, Rv)>,
    /// Integrity records whose object no longer exists.
    pub orphaned_records: Vec<String>,
}

/// Who is calling: the session and whether it is read-write.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    pub session: CK_SESSION_HANDLE,
    pub rw: bool,
}

/// The answer for one requested attribute.
pub enum AttrRead {
    Value(Zeroizing<Vec<u8>>),
    Sensitive,
    Invalid,
}

/// Most token keys a session keeps decrypted; past that the cache starts
/// again (sessions seldom use more keys than this).
const KEY_CACHE_ENTRIES: usize = 32;

/// The decrypted private attributes of the token keys a session has used,
/// so that using a key again costs a database read rather than the PBKDF2
/// and integrity check of each of its private attributes. An entry serves
/// only while the stored ciphertexts are byte for byte those it was made
/// from: a key another process changed, or one re-encrypted under a new
/// password, is decrypted afresh. Values are wiped when dropped.
#[derive(Default)]
pub struct KeyCache(HandleMap<CachedKey>);

struct CachedKey {
    sealed: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    plain: Vec<Zeroizing<Vec<u8>>>,
}

impl KeyCache {
    fn get(
        &self,
        h: CK_OBJECT_HANDLE,
        sealed: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Option<&[Zeroizing<Vec<u8>>]> {
        self.0
            .get(&h)
            .filter(|entry| entry.sealed == sealed)
            .map(|entry| entry.plain.as_slice())
    }

    fn put(
        &mut self,
        h: CK_OBJECT_HANDLE,
        sealed: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
        plain: Vec<Zeroizing<Vec<u8>>>,
    ) {
        if self.0.len() >= KEY_CACHE_ENTRIES && !self.0.contains_key(&h) {
            self.0.clear();
        }
        self.0.insert(h, CachedKey { sealed, plain });
    }

    /// Forgets every key (at logout).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjRef {
    Session(CK_OBJECT_HANDLE),
    Stored(DbKind, ObjectId),
}

fn resolve(h: CK_OBJECT_HANDLE) -> Result<ObjRef> {
    if h == CK_INVALID_HANDLE || h > 0xffff_ffff {
        return Err(Rv::ObjectHandleInvalid);
    }
    if h & TOKEN_OBJECT_BIT == 0 {
        return Ok(ObjRef::Session(h));
    }
    let db = if h & KEY_DB_BIT != 0 {
        DbKind::Key
    } else {
        DbKind::Cert
    };
    let id = (h & u64::from(sdb::MAX_OBJECT_ID)) as ObjectId;
    if id == 0 {
        return Err(Rv::ObjectHandleInvalid);
    }
    Ok(ObjRef::Stored(db, id))
}

fn stored_handle(db: DbKind, id: ObjectId) -> CK_OBJECT_HANDLE {
    let db_bit = if db == DbKind::Key { KEY_DB_BIT } else { 0 };
    TOKEN_OBJECT_BIT | db_bit | CK_OBJECT_HANDLE::from(id)
}

#[derive(Default)]
struct Login {
    /// The master key, when known (after login, or at once for an empty
    /// password).
    keys: Option<Arc<KeyState>>,
    /// The entry `keys` unlocked: writes check it is still the current one,
    /// so a password changed by another process never mixes keys.
    entry: Option<PasswordEntry>,
    user: bool,
    so: bool,
}

struct SessionObject {
    owner: CK_SESSION_HANDLE,
    /// Shared with the operations using the object as a key, so that
    /// starting one costs no copy.
    attrs: Arc<Attrs>,
}

pub struct Token {
    cfg: TokenConfig,
    cert: Box<dyn Sdb>,
    key: Box<dyn Sdb>,
    login: RwLock<Login>,
    /// Whether `login.keys` is set, as `share_keys` last saw it.
    keys_known: AtomicBool,
    objects: RwLock<HandleMap<SessionObject>>,
    next_object: AtomicU64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("dir", &self.cfg.dir)
            .finish_non_exhaustive()
    }
}

/// Creates the directory of a database when missing, private to the user.
fn ensure_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|_| Rv::FunctionFailed)
}

impl Token {
    /// Opens the token's databases (creating them when missing, with the
    /// empty password set, as Firefox does for a new profile).
    pub fn open(mut cfg: TokenConfig) -> Result<Token> {
        let (cert, key): (Box<dyn Sdb>, Box<dyn Sdb>) = match cfg.format {
            DbFormat::Dbm => {
                let (cert, key) = legacy_dbm::store::open(
                    &cfg.dir,
                    &cfg.cert_prefix,
                    &cfg.key_prefix,
                    cfg.read_only,
                )
                .map_err(|_| Rv::FunctionFailed)?;
                cfg.read_only |= key.is_read_only();
                (Box::new(cert), Box::new(key))
            }
            DbFormat::Sql => {
                if !cfg.read_only {
                    ensure_dir(&cfg.dir)?;
                }
                let open = |read_only| {
                    sdb::open(&sdb::OpenOptions {
                        dir: cfg.dir.clone(),
                        cert_prefix: cfg.cert_prefix.clone(),
                        key_prefix: cfg.key_prefix.clone(),
                        read_only,
                    })
                };
                // Files this process may not write are opened read-only and
                // the token says it is write-protected, as NSS does.
                let opened = match open(cfg.read_only) {
                    Err(sdb::Error::ReadOnly) if !cfg.read_only => {
                        let opened = open(true);
                        cfg.read_only = true;
                        opened
                    }
                    other => other,
                }
                .map_err(|_| Rv::FunctionFailed)?;
                (Box::new(opened.cert), Box::new(opened.key))
            }
        };
        let token = Token {
            cfg,
            cert,
            key,
            login: RwLock::new(Login::default()),
            keys_known: AtomicBool::new(false),
            objects: RwLock::new(HandleMap::default()),
            next_object: AtomicU64::new(1),
        };
        if !token.cfg.read_only && token.is_pristine(&*token.key)? {
            token.set_first_password(b"", true)?;
        }
        token.refresh_auto_login()?;
        Ok(token)
    }

    /// A database nobody has set up yet: no password, no SO PIN (C_InitToken
    /// leaves one), no keys, and no legacy key3.db waiting to be migrated.
    /// Every read-write open checks this, not just the one that created the
    /// files, so that clients racing to open a new database agree.
    fn is_pristine(&self, db: &dyn SdbRead) -> Result<bool> {
        let legacy = self.cfg.dir.join(format!("{}key3.db", self.cfg.key_prefix));
        Ok(db.get_password_entry()?.is_none()
            && db.get_metadata(SO_PIN_ROW)?.is_none()
            && db.find(&[])?.next_batch(1).is_empty()
            && !legacy.exists())
    }

    /// Writes the password entry of a database that has none (and, for the
    /// automatic empty password, only of a pristine one).
    fn set_first_password(&self, pin: &[u8], only_if_pristine: bool) -> Result<()> {
        let salt = keydb::new_global_salt()?;
        let keys = KeyState::new(&salt, pin);
        let entry = keys.password_entry(&salt, PASSWORD_CHECK)?;
        let mut txn = self.key.begin()?;
        let still_free = if only_if_pristine {
            self.is_pristine(&*txn)?
        } else {
            txn.get_password_entry()?.is_none()
        };
        if !still_free {
            // Another process set the database up meanwhile: keep its choice.
            return Ok(());
        }
        txn.put_password_entry(&entry)?;
        txn.commit()?;
        Ok(())
    }

    /// With an empty password (and login not demanded) the key is known
    /// without a login, as in NSS.
    fn refresh_auto_login(&self) -> Result<()> {
        let entry = self.key.get_password_entry()?;
        let mut login = self.login.write();
        if login.user {
            return Ok(());
        }
        login.keys = None;
        login.entry = None;
        let mut unlocked = Ok(());
        if let Some(entry) = entry {
            if !self.cfg.password_required && keydb::is_empty_password(&entry) {
                match keydb::unlock(&entry, b"", PASSWORD_CHECK) {
                    Ok(keys) => {
                        login.keys = Some(Arc::new(keys));
                        login.entry = Some(entry);
                    }
                    Err(e) => unlocked = Err(e),
                }
            }
        }
        // Also when unlocking failed: the keys are gone either way.
        self.share_keys(&login);
        unlocked
    }

    /// Gives the legacy key store a codec for the keys now known, or takes
    /// it back (it opens private-key records only while logged in).
    /// Tells the rest of the token whether the key is known (and gives the
    /// legacy database its codec): called whenever `login.keys` changes.
    fn share_keys(&self, login: &Login) {
        self.keys_known
            .store(login.keys.is_some(), Ordering::Release);
        self.key.set_key_codec(login.keys.as_ref().map(|keys| {
            Arc::new(crate::token::legacy::KeyCodec(keys.clone())) as Arc<dyn sdb::KeyRecordCodec>
        }));
    }

    pub fn config(&self) -> &TokenConfig {
        &self.cfg
    }

    pub fn is_read_only(&self) -> bool {
        self.cfg.read_only
    }

    /// The token label: the parameters', else the one kept in the database,
    /// else NSS's default.
    pub fn label(&self) -> String {
        if let Some(l) = &self.cfg.token_description {
            return l.clone();
        }
        match self.key.get_metadata(LABEL_ROW) {
            Ok(Some(m)) => String::from_utf8_lossy(&m.item1).into_owned(),
            _ => DEFAULT_TOKEN_LABEL.to_owned(),
        }
    }

    /// CK_TOKEN_INFO flags.
    pub fn flags(&self) -> CK_FLAGS {
        let mut flags = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_RESTORE_KEY_NOT_NEEDED;
        if self.cfg.read_only {
            flags |= CKF_WRITE_PROTECTED;
        }
        if let Ok(Some(entry)) = self.key.get_password_entry() {
            flags |= CKF_USER_PIN_INITIALIZED;
            if self.cfg.password_required || !self.login_is_automatic(&entry) {
                flags |= CKF_LOGIN_REQUIRED;
            }
        }
        flags
    }

    fn login_is_automatic(&self, entry: &PasswordEntry) -> bool {
        let login = self.login.read();
        if login.entry.as_ref() == Some(entry) {
            return login.keys.as_ref().is_some_and(|k| k.is_empty_password());
        }
        drop(login);
        keydb::is_empty_password(entry)
    }

    pub fn user_logged_in(&self) -> bool {
        self.login.read().user
    }

    pub fn so_logged_in(&self) -> bool {
        self.login.read().so
    }

    fn keys(&self) -> Option<Arc<KeyState>> {
        self.login.read().keys.clone()
    }

    /// Whether the master key is known: one load, where taking the login
    /// lock was two shared atomic writes on every use of a private object.
    fn has_keys(&self) -> bool {
        self.keys_known.load(Ordering::Acquire)
    }

    /// The key for writing, checked against the password entry of the open
    /// transaction.
    fn write_keys(&self, txn: &dyn Transaction) -> Result<Arc<KeyState>> {
        let login = self.login.read();
        let keys = login.keys.clone().ok_or(Rv::UserNotLoggedIn)?;
        if txn.get_password_entry()? != login.entry {
            return Err(Rv::UserNotLoggedIn);
        }
        Ok(keys)
    }

    // ---- login and PINs ----

    fn check_pin_len(&self, pin: &[u8]) -> Result<()> {
        if pin.len() > MAX_PIN_LEN || pin.len() < self.cfg.min_pin_len {
            return Err(Rv::PinLenRange);
        }
        Ok(())
    }

    pub fn login(
        &self,
        user_type: CK_USER_TYPE,
        pin: &[u8],
        ro_session_exists: bool,
    ) -> Result<()> {
        match user_type {
            CKU_USER => {
                {
                    let login = self.login.read();
                    if login.so {
                        return Err(Rv::UserAnotherAlreadyLoggedIn);
                    }
                    if login.user {
                        return Err(Rv::UserAlreadyLoggedIn);
                    }
                }
                let entry = self
                    .key
                    .get_password_entry()?
                    .ok_or(Rv::UserPinNotInitialized)?;
                let keys = keydb::unlock(&entry, pin, PASSWORD_CHECK)?;
                let mut login = self.login.write();
                login.keys = Some(Arc::new(keys));
                login.entry = Some(entry);
                login.user = true;
                self.share_keys(&login);
                Ok(())
            }
            CKU_SO => {
                {
                    let login = self.login.read();
                    if login.user {
                        return Err(Rv::UserAnotherAlreadyLoggedIn);
                    }
                    if login.so {
                        return Err(Rv::UserAlreadyLoggedIn);
                    }
                }
                if ro_session_exists {
                    return Err(Rv::SessionReadOnlyExists);
                }
                self.check_so_pin(pin)?;
                self.login.write().so = true;
                Ok(())
            }
            // No operation here needs a context-specific login.
            CKU_CONTEXT_SPECIFIC => Err(Rv::OperationNotInitialized),
            _ => Err(Rv::UserTypeInvalid),
        }
    }

    /// An SO PIN set by C_InitToken must match; a database without one
    /// (made by NSS) has NSS's empty SO PIN.
    fn check_so_pin(&self, pin: &[u8]) -> Result<()> {
        match self.key.get_metadata(SO_PIN_ROW)? {
            Some(m) => {
                let entry = PasswordEntry::from(m);
                keydb::unlock(&entry, pin, SO_PIN_CHECK).map(|_| ())
            }
            None if pin.is_empty() => Ok(()),
            None => Err(Rv::PinIncorrect),
        }
    }

    pub fn logout(&self) -> Result<()> {
        {
            let mut login = self.login.write();
            if !login.user && !login.so {
                return Err(Rv::UserNotLoggedIn);
            }
            login.user = false;
            login.so = false;
        }
        self.refresh_auto_login()
    }

    /// C_InitToken: checks (or, the first time, sets) the SO PIN, destroys
    /// every object and the user PIN, and keeps the label.
    pub fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()> {
        self.check_pin_len(so_pin)?;
        let so_row = self.key.get_metadata(SO_PIN_ROW)?;
        let so_entry = match so_row {
            Some(m) => {
                let entry = PasswordEntry::from(m);
                keydb::unlock(&entry, so_pin, SO_PIN_CHECK)?;
                entry
            }
            None => {
                let salt = keydb::new_global_salt()?;
                KeyState::new(&salt, so_pin).password_entry(&salt, SO_PIN_CHECK)?
            }
        };
        // Always key4.db first, then cert9.db, as every writer here does.
        let mut key_txn = self.key.begin()?;
        let mut cert_txn = self.cert.begin()?;
        cert_txn.reset()?;
        key_txn.reset()?;
        key_txn.put_metadata(SO_PIN_ROW, &so_entry.salt, Some(&so_entry.value))?;
        key_txn.put_metadata(LABEL_ROW, label.as_bytes(), None)?;
        key_txn.commit()?;
        cert_txn.commit()?;
        self.objects.write().clear();
        let mut login = self.login.write();
        *login = Login::default();
        self.share_keys(&login);
        Ok(())
    }

    /// C_InitPIN (by the SO): sets the user PIN where none is set, or
    /// replaces the empty one (re-encrypting what it protects). A non-empty
    /// PIN is never replaced blindly: the keys it protects would be lost.
    pub fn init_pin(&self, pin: &[u8]) -> Result<()> {
        self.check_pin_len(pin)?;
        match self.key.get_password_entry()? {
            None => {
                self.set_first_password(pin, false)?;
                self.refresh_auto_login()
            }
            Some(entry) => {
                let old =
                    keydb::unlock(&entry, b"", PASSWORD_CHECK).map_err(|_| Rv::FunctionFailed)?;
                self.change_password(&old, &entry, pin)
            }
        }
    }

    /// C_SetPIN: the SO's PIN when the SO is logged in, else the user's.
    pub fn set_pin(&self, old_pin: &[u8], new_pin: &[u8]) -> Result<()> {
        self.check_pin_len(new_pin)?;
        if self.so_logged_in() {
            self.check_so_pin(old_pin)?;
            let salt = keydb::new_global_salt()?;
            let entry = KeyState::new(&salt, new_pin).password_entry(&salt, SO_PIN_CHECK)?;
            let mut txn = self.key.begin()?;
            txn.put_metadata(SO_PIN_ROW, &entry.salt, Some(&entry.value))?;
            return Ok(txn.commit()?);
        }
        let entry = self
            .key
            .get_password_entry()?
            .ok_or(Rv::UserPinNotInitialized)?;
        let old = keydb::unlock(&entry, old_pin, PASSWORD_CHECK)?;
        self.change_password(&old, &entry, new_pin)
    }

    /// Re-encrypts every private attribute and re-signs every integrity
    /// record under the new password, in one key4.db transaction: a crash
    /// leaves the old password or the new one.
    fn change_password(
        &self,
        old: &KeyState,
        old_entry: &PasswordEntry,
        new_pin: &[u8],
    ) -> Result<()> {
        let new = KeyState::new(&old_entry.salt, new_pin);
        let mut txn = self.key.begin()?;
        if txn.get_password_entry()?.as_ref() != Some(old_entry) {
            // Changed by another process since we read it.
            return Err(Rv::PinIncorrect);
        }
        for id in txn.find(&[])?.next_batch(usize::MAX) {
            // The protected values, checked and in the caller's form.
            let mut protected = Attrs::new();
            for (t, v) in txn.read_object(id)? {
                if format::is_encrypted(t) {
                    protected.set(t, self.decrypt_checked(&*txn, old, id, t, &v)?.to_vec());
                } else if format::is_authenticated(t) {
                    self.check_record(&*txn, old, DbKind::Key, id, t, id, &v)?;
                    protected.set(t, format::from_disk(t, v));
                }
            }
            let stored = stored_form(DbKind::Key, Some(&new), &protected)?;
            txn.set_attributes(id, &as_refs(&stored))?;
            put_records(&mut *txn, &new, DbKind::Key, id, &protected)?;
        }
        for id in self.cert.find(&[])?.next_batch(usize::MAX) {
            let mut protected = Attrs::new();
            for (t, v) in self.cert.read_object(id)? {
                if format::is_authenticated(t) {
                    self.check_record(&*txn, old, DbKind::Cert, id, t, id, &v)?;
                    protected.set(t, format::from_disk(t, v));
                }
            }
            put_records(&mut *txn, &new, DbKind::Cert, id, &protected)?;
        }
        let entry = new.password_entry(&old_entry.salt, PASSWORD_CHECK)?;
        txn.put_password_entry(&entry)?;
        txn.commit()?;
        let mut login = self.login.write();
        if login.user {
            login.keys = Some(Arc::new(new));
            login.entry = Some(entry);
            self.share_keys(&login);
            return Ok(());
        }
        // Not logged in (the old password was empty): the new one must be
        // given to C_Login before private objects open again.
        drop(login);
        self.refresh_auto_login()
    }

    // ---- integrity ----

    /// Verifies the record of one attribute; a missing or wrong record is an
    /// error, never silently accepted.
    #[allow(clippy::too_many_arguments)]
    fn check_record(
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
        let record = record.ok_or(Rv::DeviceError)?;
        if keys.verify(&record.item1, mac_object_id, t, value)? {
            Ok(())
        } else {
            Err(Rv::DeviceError)
        }
    }

    /// Decrypts a private attribute and checks its integrity record (NSS's
    /// current form always has one; the legacy form never does).
    fn decrypt_checked(
        &self,
        meta: &dyn SdbRead,
        keys: &KeyState,
        id: ObjectId,
        t: u64,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (plain, current) = keys.decrypt(blob)?;
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

    // ---- objects ----

    fn db(&self, db: DbKind) -> &dyn Sdb {
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
    fn load_some(&self, db: DbKind, id: ObjectId, types: &[CK_ATTRIBUTE_TYPE]) -> Result<Attrs> {
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

    fn full_attrs(&self, r: ObjRef, cache: Option<&mut KeyCache>) -> Result<Arc<Attrs>> {
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
        let class = obj.ulong(CKA_CLASS).unwrap_or(CKO_DATA);
        let db = if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY)
            || obj.bool(CKA_PRIVATE) == Some(true)
        {
            DbKind::Key
        } else {
            DbKind::Cert
        };
        let id = self.store_new(db, &obj)?;
        Ok(stored_handle(db, id))
    }

    /// Starts the key4.db transaction of a write, with the key when the
    /// values need one (private values to encrypt, records to sign).
    fn begin_write(&self, db: DbKind, attrs: &Attrs) -> Result<KeyWrite<'_>> {
        let txn = self.key.begin()?;
        let needs_keys = attrs
            .types()
            .any(|t| format::is_authenticated(t) || (db == DbKind::Key && format::is_encrypted(t)));
        let keys = if needs_keys {
            Some(self.write_keys(&*txn)?)
        } else {
            None
        };
        Ok((txn, keys))
    }

    /// Writes a new token object with its encrypted values and integrity
    /// records. A cert9.db object's records live in key4.db: NSS commits the
    /// two databases one after the other, and so do we, undoing the object
    /// if its records cannot be written.
    fn store_new(&self, db: DbKind, obj: &Attrs) -> Result<ObjectId> {
        let (mut key_txn, keys) = self.begin_write(db, obj)?;
        let stored = stored_form(db, keys.as_deref(), obj)?;
        let id = match db {
            DbKind::Key => key_txn.create_object(&as_refs(&stored))?,
            DbKind::Cert => {
                let mut cert_txn = self.cert.begin()?;
                let id = cert_txn.create_object(&as_refs(&stored))?;
                cert_txn.commit()?;
                id
            }
        };
        let signed = (|| -> Result<()> {
            if let Some(k) = &keys {
                put_records(&mut *key_txn, k, db, id, obj)?;
            }
            Ok(key_txn.commit()?)
        })();
        if let Err(e) = signed {
            if db == DbKind::Cert {
                if let Ok(mut undo) = self.cert.begin() {
                    if undo.destroy_object(id).is_ok() {
                        // Nothing more can be done if this fails too; the
                        // object then reads as failing its integrity check.
                        let _ = undo.commit();
                    }
                }
            }
            return Err(e);
        }
        Ok(id)
    }

    pub fn copy_object(
        &self,
        acc: Access,
        h: CK_OBJECT_HANDLE,
        template: Attrs,
    ) -> Result<CK_OBJECT_HANDLE> {
        let mut attrs = Arc::unwrap_or_clone(self.full_attrs(resolve(h)?, None)?);
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
                let mut key_txn = self.key.begin()?;
                for name in key_txn.metadata_ids(&keydb::sig_prefix(db, id))? {
                    key_txn.delete_metadata(&name)?;
                }
                match db {
                    DbKind::Key => key_txn.destroy_object(id)?,
                    DbKind::Cert => {
                        let mut cert_txn = self.cert.begin()?;
                        cert_txn.destroy_object(id)?;
                        cert_txn.commit()?;
                    }
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
                self.store_changes(db, id, &template)
            }
        }
    }

    fn store_changes(&self, db: DbKind, id: ObjectId, template: &Attrs) -> Result<()> {
        let (mut key_txn, keys) = self.begin_write(db, template)?;
        let stored = stored_form(db, keys.as_deref(), template)?;
        if let Some(k) = &keys {
            put_records(&mut *key_txn, k, db, id, template)?;
        }
        match db {
            DbKind::Key => key_txn.set_attributes(id, &as_refs(&stored))?,
            DbKind::Cert => {
                let mut cert_txn = self.cert.begin()?;
                cert_txn.set_attributes(id, &as_refs(&stored))?;
                cert_txn.commit()?;
            }
        }
        Ok(key_txn.commit()?)
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

    /// Ends every login (the last session closed, or C_Finalize).
    pub fn end_login(&self) {
        {
            let mut login = self.login.write();
            login.user = false;
            login.so = false;
        }
        // An unreadable database now simply leaves the token logged out.
        let _ = self.refresh_auto_login();
    }
}

/// A key4.db write transaction and the key its values need, if any.
type KeyWrite<'a> = (Box<dyn Transaction + 'a>, Option<Arc<KeyState>>);

/// The stored form of values: private key material of the key database
/// encrypted (a key is there whenever such values are), CK_ULONG as NSS
/// stores it.
fn stored_form(db: DbKind, keys: Option<&KeyState>, attrs: &Attrs) -> Result<Vec<(u64, Vec<u8>)>> {
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
fn put_records(
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

fn as_refs(values: &[(u64, Vec<u8>)]) -> Vec<(u64, &[u8])> {
    values.iter().map(|(t, v)| (*t, v.as_slice())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
        vec![Zeroizing::new(v.to_vec())]
    }

    #[test]
    fn cached_keys_serve_only_the_ciphertexts_they_came_from() {
        let mut cache = KeyCache::default();
        let sealed = vec![(CKA_VALUE, b"ciphertext one".to_vec())];
        cache.put(7, sealed.clone(), plain(b"secret"));
        assert_eq!(cache.get(7, &sealed).unwrap()[0].as_slice(), b"secret");
        assert!(cache.get(8, &sealed).is_none());
        // Re-encrypted (new password) or replaced by another process.
        let resealed = vec![(CKA_VALUE, b"ciphertext two".to_vec())];
        assert!(cache.get(7, &resealed).is_none());
        let more = vec![
            (CKA_VALUE, b"ciphertext one".to_vec()),
            (CKA_PRIME_1, vec![1]),
        ];
        assert!(cache.get(7, &more).is_none());
        cache.clear();
        assert!(cache.get(7, &sealed).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = KeyCache::default();
        for h in 0..KEY_CACHE_ENTRIES as CK_OBJECT_HANDLE * 3 {
            cache.put(h, vec![(CKA_VALUE, h.to_ne_bytes().to_vec())], plain(b"k"));
            assert!(cache.0.len() <= KEY_CACHE_ENTRIES);
        }
        // The newest key is always kept.
        let last = KEY_CACHE_ENTRIES as CK_OBJECT_HANDLE * 3 - 1;
        assert!(cache
            .get(last, &[(CKA_VALUE, last.to_ne_bytes().to_vec())])
            .is_some());
    }
}
