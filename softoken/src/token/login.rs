//! Login and PINs: C_Login, C_Logout, C_InitToken, C_InitPIN, C_SetPIN and
//! the password change that re-encrypts every private value.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pkcs11_sys::*;
use sdb::PasswordEntry;

use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};
use crate::storage::format;
use crate::storage::keydb::{self, DbKind, KeyState, PASSWORD_CHECK};
use crate::token::guessing::{PinOwner, POLICY_ROW};
use crate::token::integrity::Exposure;
use crate::token::legacy::KeyCodec;
use crate::token::objects::{as_refs, put_exposure_record, put_records, stored_form};
use crate::token::update::AfterLogin;
use crate::token::{Access, Login, Token, LABEL_ROW, MAX_PIN_LEN, SO_PIN_CHECK, SO_PIN_ROW};

impl Token {
    /// A PIN tried against one of key4.db's PIN entries (`check` says
    /// which), under the database's guessing policy (token/guessing.rs). A
    /// damaged entry is the database's fault, not the PIN's: it is logged
    /// and answered CKR_DEVICE_ERROR, and no PIN is ever right for it.
    fn try_pin(&self, entry: &PasswordEntry, pin: &[u8], check: &[u8]) -> Result<KeyState> {
        let owner = if check == SO_PIN_CHECK {
            PinOwner::So
        } else {
            PinOwner::User
        };
        self.counted(owner, || keydb::unlock(entry, pin, check))
            .inspect_err(|e| {
                if *e == Rv::DeviceError {
                    let which = match owner {
                        PinOwner::So => "SO PIN",
                        PinOwner::User => "password",
                    };
                    crate::log::line(format_args!(
                        "{}: key4.db's {which} entry is damaged or hostile (see the line \
                         before): no PIN can unlock it",
                        self.cfg.dir.display()
                    ));
                }
            })
    }

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
                let (so, user) = {
                    let login = self.login.read();
                    (login.so, login.user)
                };
                if so {
                    return Err(Rv::UserAnotherAlreadyLoggedIn);
                }
                if user {
                    // Another process changed the password: that login is
                    // over, and this one takes the new one.
                    if !self.login_is_stale() {
                        return Err(Rv::UserAlreadyLoggedIn);
                    }
                    self.forget_stale_login();
                }
                let entry = self.password_entry()?.ok_or(Rv::UserPinNotInitialized)?;
                let keys = Arc::new(self.try_pin(&entry, pin, PASSWORD_CHECK)?);
                let (keys, entry) = match self.finish_update(keys, entry, pin)? {
                    AfterLogin::LoggedIn(keys, entry) => (keys, entry),
                    AfterLogin::Removed => {
                        self.removed.store(true, Ordering::Release);
                        return Ok(());
                    }
                };
                let mut login = self.login.write();
                login.keys = Some(keys);
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
            // A session's waiting operation is what such a login is for:
            // session::context_login.
            CKU_CONTEXT_SPECIFIC => Err(Rv::OperationNotInitialized),
            _ => Err(Rv::UserTypeInvalid),
        }
    }

    /// The user's PIN checked again (a context-specific login): the user
    /// must be logged in (or the password be empty, which logs in by
    /// itself); a wrong PIN counts as one at C_Login does.
    pub fn check_user_pin(&self, pin: &[u8]) -> Result<()> {
        let entry = {
            let login = self.login.read();
            if login.so || login.keys.is_none() {
                return Err(Rv::UserNotLoggedIn);
            }
            login.entry.clone().ok_or(Rv::UserNotLoggedIn)?
        };
        self.try_pin(&entry, pin, PASSWORD_CHECK).map(|_| ())
    }

    /// An SO PIN set by C_InitToken must match; a database without one
    /// (made by NSS) has NSS's empty SO PIN.
    fn check_so_pin(&self, pin: &[u8]) -> Result<()> {
        match self.key.get_metadata(SO_PIN_ROW)? {
            Some(m) => {
                let entry = PasswordEntry::from(m);
                self.try_pin(&entry, pin, SO_PIN_CHECK).map(|_| ())
            }
            None => self.counted(PinOwner::So, || match pin.is_empty() {
                true => Ok(()),
                false => Err(Rv::PinIncorrect),
            }),
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
    /// the user PIN and the objects (the first time only key4.db's, as NSS
    /// does), and keeps the label.
    pub fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()> {
        // C_InitToken has no CKR_PIN_LEN_RANGE: an SO PIN of a length this
        // token refuses cannot be right.
        self.check_pin_len(so_pin).map_err(|_| Rv::PinIncorrect)?;
        let so_row = self.key.get_metadata(SO_PIN_ROW)?;
        let so_row_existed = so_row.is_some();
        let so_entry = match so_row {
            Some(m) => {
                let entry = PasswordEntry::from(m);
                self.try_pin(&entry, so_pin, SO_PIN_CHECK)?;
                entry
            }
            None => {
                let salt = keydb::new_global_salt()?;
                KeyState::new(&salt, so_pin).password_entry(&salt, SO_PIN_CHECK)?
            }
        };
        // cert9.db first, then key4.db: NSS's order, and every writer's
        // here (token/objects.rs, put_cert_records).
        let mut cert_txn = self.cert.begin()?;
        let mut key_txn = self.key.begin()?;
        // A database that never had an SO PIN (NSS's, Firefox's) is reset
        // as NSS resets it: key4.db only, so certificates, trust and public
        // keys stay. Once the token has an SO PIN, it is initialised wholly.
        if so_row_existed {
            cert_txn.reset()?;
        }
        // The guessing policy is the owner's choice, not the token's content.
        let policy = key_txn.get_metadata(POLICY_ROW)?;
        key_txn.reset()?;
        if let Some(policy) = policy {
            key_txn.put_metadata(POLICY_ROW, &policy.item1, None)?;
        }
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
    pub fn init_pin(&self, acc: Access, pin: &[u8]) -> Result<()> {
        if !acc.rw {
            return Err(Rv::SessionReadOnly);
        }
        if !self.so_logged_in() {
            return Err(Rv::UserNotLoggedIn);
        }
        if self.is_read_only() {
            return Err(Rv::TokenWriteProtected);
        }
        self.check_pin_len(pin)?;
        let entry = if self.in_update_merge() {
            self.key.get_password_entry()?
        } else {
            self.password_entry()?
        };
        match entry {
            None => {
                self.set_first_password(pin, false)?;
                self.refresh_auto_login()
            }
            Some(entry) => {
                let old = self
                    .try_pin(&entry, b"", PASSWORD_CHECK)
                    .map_err(|_| Rv::FunctionFailed)?;
                self.change_password(&old, &entry, pin)
            }
        }
    }

    /// C_SetPIN (in a read-write session): the SO's PIN when the SO is
    /// logged in, else the user's.
    pub fn set_pin(&self, acc: Access, old_pin: &[u8], new_pin: &[u8]) -> Result<()> {
        if !acc.rw {
            return Err(Rv::SessionReadOnly);
        }
        if self.is_read_only() {
            return Err(Rv::TokenWriteProtected);
        }
        self.check_pin_len(new_pin)?;
        if self.so_logged_in() {
            self.check_so_pin(old_pin)?;
            let salt = keydb::new_global_salt()?;
            let entry = KeyState::new(&salt, new_pin).password_entry(&salt, SO_PIN_CHECK)?;
            let mut txn = self.key.begin()?;
            txn.put_metadata(SO_PIN_ROW, &entry.salt, Some(&entry.value))?;
            return Ok(txn.commit()?);
        }
        // A waiting Mode 2 update is finished with the old PIN first; a
        // waiting merge is left to C_Login, and this PIN is this
        // database's own.
        let merging = self.in_update_merge();
        let entry = if merging {
            self.key.get_password_entry()?
        } else {
            self.password_entry()?
        }
        .ok_or(Rv::UserPinNotInitialized)?;
        let old = Arc::new(self.try_pin(&entry, old_pin, PASSWORD_CHECK)?);
        if !merging {
            self.finish_update(old.clone(), entry.clone(), old_pin)?;
        }
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
        if !self.key.keeps_integrity_records() {
            return self.change_legacy_password(old_entry, new_pin);
        }
        let new = KeyState::new(&old_entry.salt, new_pin);
        let entry = new.password_entry(&old_entry.salt, PASSWORD_CHECK)?;
        // cert9.db's lock first (every writer's order): its objects are
        // signed anew below, and none may come or go meanwhile.
        let cert_lock = self.cert.begin()?;
        let mut txn = self.key.begin()?;
        if txn.get_password_entry()?.as_ref() != Some(old_entry) {
            // Changed by another process since we read it.
            return Err(Rv::PinIncorrect);
        }
        for id in txn.find(&[])?.next_batch(usize::MAX) {
            // The protected values, checked and in the caller's form.
            let mut protected = Attrs::new();
            let mut flags = Attrs::new();
            for (t, v) in txn.read_object(id)? {
                if format::is_encrypted(t) {
                    protected.set(t, self.decrypt_checked(&*txn, old, id, t, &v)?.to_vec());
                } else if format::is_authenticated(t) {
                    self.check_record(&*txn, old, DbKind::Key, id, t, id, &v)?;
                    protected.set(t, format::from_disk(t, v));
                } else if t == CKA_SENSITIVE || t == CKA_EXTRACTABLE {
                    flags.set(t, format::from_disk(t, v));
                }
            }
            let stored = stored_form(DbKind::Key, Some(&new), &protected)?;
            txn.set_attributes(id, &as_refs(&stored))?;
            put_records(&mut *txn, &new, DbKind::Key, id, &protected)?;
            // The flags' record is signed anew only where it held: an edited
            // pair stays unproven, a pair NSS wrote stays unrecorded.
            if self.exposure(&*txn, old, id, &flags)? == Exposure::Recorded {
                put_exposure_record(&mut *txn, &new, Some(&entry), id, &flags)?;
            }
        }
        self.sign_cert_objects(&mut *txn, Some(old), &new)?;
        txn.put_password_entry(&entry)?;
        txn.commit()?;
        drop(cert_lock);
        self.take_new_password(Arc::new(new), entry)
    }

    /// C_SetPIN on a key3.db: the legacy store seals every key record anew
    /// under the new password as it replaces the file (whole, so a crash
    /// leaves the old password or the new one); the check is written in the
    /// legacy form, under the same global salt, as NSS's legacy module does.
    fn change_legacy_password(&self, old_entry: &PasswordEntry, new_pin: &[u8]) -> Result<()> {
        let new = Arc::new(KeyState::new(&old_entry.salt, new_pin));
        let entry = PasswordEntry {
            salt: old_entry.salt.clone(),
            value: new.encrypt_legacy(PASSWORD_CHECK)?,
        };
        let mut txn = self.key.begin()?;
        if txn.get_password_entry()?.as_ref() != Some(old_entry) {
            return Err(Rv::PinIncorrect);
        }
        txn.seal_with(Arc::new(KeyCodec(new.clone())));
        txn.put_password_entry(&entry)?;
        txn.commit()?;
        self.take_new_password(new, entry)
    }

    /// After a password change: a logged-in user keeps the login under the
    /// new key; otherwise the next C_Login takes the new password.
    fn take_new_password(&self, new: Arc<KeyState>, entry: PasswordEntry) -> Result<()> {
        let mut login = self.login.write();
        if login.user {
            login.keys = Some(new);
            login.entry = Some(entry);
            self.share_keys(&login);
            return Ok(());
        }
        // Not logged in (the old password was empty): the new one must be
        // given to C_Login before private objects open again.
        drop(login);
        self.refresh_auto_login()
    }

    /// Signs the authenticated attributes of every cert9.db object (trust,
    /// public keys) under `new`, into key4.db's transaction `txn`: each
    /// checked under `old` first when there was a password, taken as it is
    /// when there was none (nothing could have signed it; NSS does the same).
    pub(super) fn sign_cert_objects(
        &self,
        txn: &mut dyn sdb::Transaction,
        old: Option<&KeyState>,
        new: &KeyState,
    ) -> Result<()> {
        for id in self.cert.find(&[])?.next_batch(usize::MAX) {
            let mut protected = Attrs::new();
            for (t, v) in self.cert.read_object(id)? {
                if format::is_authenticated(t) {
                    if let Some(old) = old {
                        self.check_record(&*txn, old, DbKind::Cert, id, t, id, &v)?;
                    }
                    protected.set(t, format::from_disk(t, v));
                }
            }
            put_records(txn, new, DbKind::Cert, id, &protected)?;
        }
        // Records kept aside by changes that died between their commits are
        // under the old key and prove nothing now: every value is signed.
        for name in txn.metadata_ids(keydb::PREVIOUS_SIG_PREFIX)? {
            txn.delete_metadata(&name)?;
        }
        Ok(())
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
