//! A database token: its two databases, its login state and its session
//! objects. Token objects live in the databases (certificates and public
//! objects in cert9.db, keys and private objects in key4.db, as NSS does);
//! their handles carry the row id, so no object is read until asked for.
//!
//! Here: opening the databases and the login state. `login` has the PIN
//! calls, `objects` the object calls and the stored form of values,
//! `integrity` the records' checks, `key_cache` the keys a session keeps
//! decrypted, `handles` the handle maps and encoding, `legacy` the key3.db
//! record codec, `update` the copy of legacy files into a new database.

pub mod guessing;
pub mod handles;
mod integrity;
pub mod key_cache;
pub mod legacy;
mod login;
pub mod merge;
mod objects;
mod update;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use pkcs11_sys::*;
use sdb::{ObjectId, PasswordEntry, Sdb, SdbRead, Transaction};
use zeroize::Zeroizing;

use crate::config::{TokenConfig, DEFAULT_TOKEN_LABEL};
use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};
use crate::storage::keydb::{self, KeyState, PASSWORD_CHECK};
use crate::token::handles::HandleMap;

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
    /// A wrong user (or SO) PIN was given to C_Login since the last right
    /// one (CKF_USER_PIN_COUNT_LOW, CKF_SO_PIN_COUNT_LOW).
    user_pin_failed: bool,
    so_pin_failed: bool,
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
    /// Whether this process removed cert9.db's orphaned records yet
    /// (integrity.rs, sweep_orphaned_records).
    orphans_swept: AtomicBool,
    objects: RwLock<HandleMap<SessionObject>>,
    next_object: AtomicU64,
    /// An update from legacy databases waiting for a password (update.rs).
    update: Mutex<Option<update::Pending>>,
    /// Set when a C_Login "removed" the token (a Mode 3 merge that wants
    /// this database's password next): the caller closes every session.
    removed: AtomicBool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("dir", &self.cfg.dir)
            .finish_non_exhaustive()
    }
}

/// Checks that the token's directory is there, making it only when it is
/// the default location: a named directory that does not exist is a typo
/// or a disk not mounted, and an empty token made there would hide the
/// user's keys (and leave stray directories where programs run).
///
/// The slot's answer when it is not usable: no directory is no token
/// (CKR_TOKEN_NOT_PRESENT), a file in its place none we recognise, and one
/// that cannot be looked at or made a device error; each logged.
fn ready_dir(cfg: &TokenConfig) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let refuse = |rv: Rv, why: &dyn std::fmt::Display| {
        crate::log::line(format_args!("{}: {why}", cfg.dir.display()));
        rv
    };
    match std::fs::metadata(&cfg.dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(refuse(Rv::TokenNotRecognized, &"not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cfg.create_dir && !cfg.read_only => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&cfg.dir)
                .map_err(|e| refuse(Rv::DeviceError, &format_args!("cannot be made: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(refuse(
            Rv::TokenNotPresent,
            &format_args!(
                "no such directory; softoken makes only its default one, \
                 `softoken-modutil create --dbdir sql:DIR` makes a new database elsewhere"
            ),
        )),
        Err(e) => Err(refuse(Rv::DeviceError, &e)),
    }
}

/// The token's two databases, opened through its backend.
fn open_databases(cfg: &TokenConfig, read_only: bool) -> sdb::Result<sdb::Databases> {
    (cfg.backend.open)(&sdb::OpenOptions {
        dir: cfg.dir.clone(),
        cert_prefix: cfg.cert_prefix.clone(),
        key_prefix: cfg.key_prefix.clone(),
        read_only,
    })
}

impl Token {
    /// Opens the token's databases (creating them when missing, with the
    /// empty password set, as Firefox does for a new profile).
    pub fn open(mut cfg: TokenConfig) -> Result<Token> {
        ready_dir(&cfg)?;
        let (sdb::Databases { cert, key }, update_source) = update::open_storage(&mut cfg)?;
        cfg.read_only |= key.is_read_only();
        let token = Token {
            cfg,
            cert,
            key,
            login: RwLock::new(Login::default()),
            keys_known: AtomicBool::new(false),
            orphans_swept: AtomicBool::new(false),
            objects: RwLock::new(HandleMap::default()),
            next_object: AtomicU64::new(1),
            update: Mutex::new(None),
            removed: AtomicBool::new(false),
        };
        if let Some(pending) = update_source {
            token.start_update(pending)?;
        }
        // A merge waiting for its source's password gives this database
        // that password if it has none: it is not given the empty one.
        let waiting = token.update.lock().is_some();
        if !token.cfg.read_only && !waiting && token.is_pristine(&*token.key)? {
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
        Ok(db.get_password_entry()?.is_none()
            && db.get_metadata(SO_PIN_ROW)?.is_none()
            && db.find(&[])?.next_batch(1).is_empty()
            && update::source_backend(&self.cfg).is_none())
    }

    /// Writes the password entry of a database that has none (and, for the
    /// automatic empty password, only of a pristine one).
    fn set_first_password(&self, pin: &[u8], only_if_pristine: bool) -> Result<()> {
        let salt = keydb::new_global_salt()?;
        let keys = KeyState::new(&salt, pin);
        let entry = keys.password_entry(&salt, PASSWORD_CHECK)?;
        // cert9.db's lock first (every writer's order): no object may be
        // added there unsigned while its objects are signed below.
        let cert_lock = self.cert.begin()?;
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
        // What cert9.db holds (kept by a reset, or beside a new key4.db)
        // was written with no password to sign it: it is signed now.
        if self.key.keeps_integrity_records() {
            self.sign_cert_objects(&mut *txn, None, &keys)?;
        }
        txn.put_password_entry(&entry)?;
        txn.commit()?;
        drop(cert_lock);
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

    /// The token label: the parameters', else the one kept in the database
    /// (C_InitToken's), else softoken's default, never NSS's own token's.
    pub fn label(&self) -> String {
        if let Some(l) = self.update_label() {
            return l;
        }
        if let Some(l) = &self.cfg.token_description {
            return l.clone();
        }
        match self.key.get_metadata(LABEL_ROW) {
            Ok(Some(m)) => String::from_utf8_lossy(&m.item1).into_owned(),
            _ => DEFAULT_TOKEN_LABEL.to_owned(),
        }
    }

    /// The token's serial number: 16 hex digits of a SHA-256 of where its
    /// database is (the directory, made absolute, and the key prefix). Each
    /// database has its own, the same on every open and in every process,
    /// and nothing is written to a database (NSS's too) to keep it.
    pub fn serial(&self) -> String {
        let dir = std::fs::canonicalize(&self.cfg.dir).unwrap_or_else(|_| self.cfg.dir.clone());
        let mut place = dir.as_os_str().as_encoded_bytes().to_vec();
        place.push(0);
        place.extend_from_slice(self.cfg.key_prefix.as_bytes());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &place);
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// CK_TOKEN_INFO flags.
    pub fn flags(&self) -> CK_FLAGS {
        let mut flags = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_RESTORE_KEY_NOT_NEEDED;
        if self.cfg.read_only {
            flags |= CKF_WRITE_PROTECTED;
        }
        if let Ok(Some(entry)) = self.password_entry() {
            flags |= CKF_USER_PIN_INITIALIZED;
            if self.cfg.password_required || !self.login_is_automatic(&entry) {
                flags |= CKF_LOGIN_REQUIRED;
            }
        }
        flags | self.pin_flags()
    }

    /// The password entry C_Login checks: key4.db's, or the legacy
    /// database's while an update waits for its password.
    fn password_entry(&self) -> Result<Option<PasswordEntry>> {
        match self.pending_update_entry()? {
            Some(entry) => Ok(Some(entry)),
            None => Ok(self.key.get_password_entry()?),
        }
    }

    fn login_is_automatic(&self, entry: &PasswordEntry) -> bool {
        let login = self.login.read();
        if login.entry.as_ref() == Some(entry) {
            return login.keys.as_ref().is_some_and(|k| k.is_empty_password());
        }
        drop(login);
        keydb::is_empty_password(entry)
    }

    /// Whether the password entry this login unlocked is no longer the
    /// database's (another process changed the password).
    fn login_is_stale(&self) -> bool {
        match (self.login_entry(), self.key.get_password_entry()) {
            (Some(held), Ok(current)) => current.as_ref() != Some(&held),
            _ => false,
        }
    }

    /// Ends a login whose keys are stale, as C_Logout does (an empty new
    /// password logs in again by itself).
    fn forget_stale_login(&self) {
        self.login.write().user = false;
        // Errors leave the token logged out, which it is to be.
        let _ = self.refresh_auto_login();
    }

    /// Whether the last C_Login "removed" the token (update.rs): the
    /// caller is to close every session of its slot. Reading it clears it.
    pub fn take_removed(&self) -> bool {
        self.removed.swap(false, Ordering::AcqRel)
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

    /// The password entry this login unlocked: after `write_keys`, the one
    /// of the open transaction.
    fn login_entry(&self) -> Option<PasswordEntry> {
        self.login.read().entry.clone()
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
}
