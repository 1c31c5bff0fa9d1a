//! A session's own state: its slot, its mode and the operations under way.
//! `ops` is the operations' state machine, `keys` the key calls' policy,
//! `message` the message API's state and calls, `recover` the signatures
//! with message recovery.

mod keys;
pub mod message;
mod ops;
mod recover;

pub use keys::{derive_key, unwrap_key, wrap_key};
pub use message::{MessageCipher, MessageSign};
pub use ops::{
    cipher, cipher_final, cipher_update, decrypt_slot, deliver_signature, deliver_with, digest,
    digest_final, digest_update, encrypt_slot, sign, sign_final, sign_update, verify, verify_final,
    verify_update, CipherSlot, Output,
};
pub use ops::{digest_init, find_final, find_init, find_next, start};
pub use recover::{recover, recover_init};

use pkcs11_sys::*;

use crate::mechanism::digest::DigestOp;
use crate::mechanism::op::{CipherOp, SignOp, VerifyOp};

/// An operation under way, and whether an `…Update` call started its
/// multi-part form (after which the single-part call is not allowed).
pub struct Active<T: ?Sized> {
    pub op: Box<T>,
    pub multi_part: bool,
    /// The mechanism allows single-part calls only.
    single_part_only: bool,
}

impl<T: ?Sized> Active<T> {
    pub fn new(op: Box<T>, single_part_only: bool) -> Active<T> {
        Active {
            op,
            multi_part: false,
            single_part_only,
        }
    }

    /// An `…Update` call begins the multi-part form. A mechanism that is
    /// single-part only refuses with CKR_OPERATION_NOT_INITIALIZED (as NSS
    /// and SoftHSMv2 answer); the caller then ends the operation, as every
    /// failed Update does.
    pub fn begin_parts(&mut self) -> crate::rv::Result<()> {
        if self.single_part_only {
            return Err(crate::rv::Rv::OperationNotInitialized);
        }
        self.multi_part = true;
        Ok(())
    }
}

/// A search begun by C_FindObjectsInit.
pub struct FindOp {
    handles: std::vec::IntoIter<CK_OBJECT_HANDLE>,
}

impl FindOp {
    pub fn new(handles: Vec<CK_OBJECT_HANDLE>) -> FindOp {
        FindOp {
            handles: handles.into_iter(),
        }
    }

    pub fn next_batch(&mut self, max: usize) -> Vec<CK_OBJECT_HANDLE> {
        self.handles.by_ref().take(max).collect()
    }
}

/// A session as the module's table holds it. The slot and the access it
/// was opened with never change, so they are read without taking its lock
/// (one lock less on every call).
pub struct SessionCell {
    pub slot: CK_SLOT_ID,
    pub rw: bool,
    state: parking_lot::Mutex<Session>,
}

impl SessionCell {
    pub fn new(slot: CK_SLOT_ID, rw: bool) -> SessionCell {
        SessionCell {
            slot,
            rw,
            state: parking_lot::Mutex::new(Session::new()),
        }
    }

    pub fn lock(&self) -> parking_lot::MutexGuard<'_, Session> {
        self.state.lock()
    }
}

/// What a session does: the operations under way.
pub struct Session {
    pub find: Option<FindOp>,
    pub digest: Option<DigestOp>,
    pub sign: Option<Active<dyn SignOp>>,
    pub verify: Option<Active<dyn VerifyOp>>,
    pub encrypt: Option<Active<dyn CipherOp>>,
    pub decrypt: Option<Active<dyn CipherOp>>,
    pub message_encrypt: Option<MessageCipher>,
    pub message_decrypt: Option<MessageCipher>,
    pub message_sign: Option<MessageSign>,
    pub message_verify: Option<MessageSign>,
    pub sign_recover: Option<crate::mechanism::rsa::RecoverOp>,
    pub verify_recover: Option<crate::mechanism::rsa::RecoverOp>,
    pub key_cache: crate::token::key_cache::KeyCache,
    pub kept: crate::cache::kept::KeptContexts,
}

/// A key for an operation in a session, through the session's cache of
/// decrypted key material. The session is not locked while the key is read
/// and decrypted.
pub fn operation_key(
    session: &SessionCell,
    token: &crate::token::Token,
    h: CK_OBJECT_HANDLE,
) -> crate::rv::Result<std::sync::Arc<crate::object::attrs::Attrs>> {
    let mut cache = std::mem::take(&mut session.lock().key_cache);
    let key = token.operation_key(h, &mut cache);
    session.lock().key_cache = cache;
    key
}

/// Starts an operation in `slot` of the session: builds it with the key `h`
/// (through the session's key cache) and installs it. The session is
/// locked twice, before and after, and not while the key is read.
pub fn start_with_key<T: ?Sized>(
    session: &SessionCell,
    token: &crate::token::Token,
    h: CK_OBJECT_HANDLE,
    single_part_only: bool,
    slot: fn(&mut Session) -> &mut Option<Active<T>>,
    make: impl FnOnce(
        &crate::object::attrs::Attrs,
        &mut crate::cache::kept::KeptContexts,
    ) -> crate::rv::Result<Box<T>>,
) -> crate::rv::Result<()> {
    let (mut cache, mut contexts) = {
        let mut s = session.lock();
        if slot(&mut s).is_some() {
            return Err(crate::rv::Rv::OperationActive);
        }
        (
            std::mem::take(&mut s.key_cache),
            std::mem::take(&mut s.kept),
        )
    };
    let made = token
        .operation_key(h, &mut cache)
        .and_then(|key| make(&key, &mut contexts));
    let mut s = session.lock();
    s.key_cache = cache;
    s.kept = contexts;
    // Another thread may have started one meanwhile on the same session.
    if slot(&mut s).is_some() {
        return Err(crate::rv::Rv::OperationActive);
    }
    *slot(&mut s) = Some(Active::new(made?, single_part_only));
    Ok(())
}

impl Session {
    fn new() -> Session {
        Session {
            find: None,
            digest: None,
            sign: None,
            verify: None,
            encrypt: None,
            decrypt: None,
            message_encrypt: None,
            message_decrypt: None,
            message_sign: None,
            message_verify: None,
            sign_recover: None,
            verify_recover: None,
            key_cache: Default::default(),
            kept: Default::default(),
        }
    }

    /// Forgets the key material kept for the session's operations (at
    /// logout).
    pub fn forget_keys(&mut self) {
        self.key_cache.clear();
        self.kept.clear();
    }

    /// Ends the operations the flags name (C_SessionCancel).
    pub fn cancel(&mut self, flags: CK_FLAGS) {
        if flags & CKF_FIND_OBJECTS != 0 {
            self.find = None;
        }
        if flags & CKF_DIGEST != 0 {
            self.digest = None;
        }
        if flags & CKF_SIGN != 0 {
            self.sign = None;
        }
        if flags & CKF_VERIFY != 0 {
            self.verify = None;
        }
        if flags & CKF_ENCRYPT != 0 {
            self.encrypt = None;
        }
        if flags & CKF_DECRYPT != 0 {
            self.decrypt = None;
        }
        if flags & CKF_MESSAGE_ENCRYPT != 0 {
            self.message_encrypt = None;
        }
        if flags & CKF_MESSAGE_DECRYPT != 0 {
            self.message_decrypt = None;
        }
        if flags & CKF_MESSAGE_SIGN != 0 {
            self.message_sign = None;
        }
        if flags & CKF_MESSAGE_VERIFY != 0 {
            self.message_verify = None;
        }
        if flags & CKF_SIGN_RECOVER != 0 {
            self.sign_recover = None;
        }
        if flags & CKF_VERIFY_RECOVER != 0 {
            self.verify_recover = None;
        }
    }
}
