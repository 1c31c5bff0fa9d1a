//! A session's own state: its slot, its mode and the operations under way.
//! `ops` is the operations' state machine, `keys` the key calls' policy,
//! `message` the message API's state and calls, `recover` the signatures
//! with message recovery.

mod keys;
pub mod message;
mod ops;
mod recover;

pub use keys::{derive_key, derive_key_material, unwrap_key, wrap_key};
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
    pub gate: LoginGate,
}

impl<T: ?Sized> Active<T> {
    pub fn new(op: Box<T>, single_part_only: bool) -> Active<T> {
        Active {
            op,
            multi_part: false,
            single_part_only,
            gate: LoginGate::default(),
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

/// CKA_ALWAYS_AUTHENTICATE: the user's PIN is needed for each use of the
/// key (each signature, each decryption). The use waits, after its Init,
/// for a C_Login(CKU_CONTEXT_SPECIFIC); until then its calls answer
/// CKR_USER_NOT_LOGGED_IN. Unwrapping has no Init to log in after, and the
/// specification ties the attribute to signing and decryption only.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoginGate {
    per_use: bool,
    waiting: bool,
}

impl LoginGate {
    /// The gate for a use of `key`: closed when the use is one the
    /// attribute governs (`governed`) and the key says so.
    pub fn for_key(key: &crate::object::attrs::Attrs, governed: bool) -> LoginGate {
        let per_use = governed && key.bool(CKA_ALWAYS_AUTHENTICATE) == Some(true);
        LoginGate {
            per_use,
            waiting: per_use,
        }
    }

    /// Ok when the use may run.
    pub fn pass(&self) -> crate::rv::Result<()> {
        if self.waiting {
            return Err(crate::rv::Rv::UserNotLoggedIn);
        }
        Ok(())
    }

    /// The next use waits for a login of its own (the message API, whose
    /// context outlives one use).
    pub fn close(&mut self) {
        self.waiting = self.per_use;
    }

    /// A context-specific login opens the gate if it waits; returns
    /// whether it did.
    fn open(&mut self) -> bool {
        std::mem::take(&mut self.waiting)
    }
}

/// C_Login(CKU_CONTEXT_SPECIFIC): the user's PIN, checked again, authorises
/// one waiting use of an always-authenticate key in this session. With no
/// use waiting the login has nothing to apply to
/// (CKR_OPERATION_NOT_INITIALIZED); a wrong PIN leaves the use waiting.
pub fn context_login(
    session: &SessionCell,
    token: &crate::token::Token,
    pin: &[u8],
) -> crate::rv::Result<()> {
    if !session.lock().gates().iter().any(|g| g.waiting) {
        return Err(crate::rv::Rv::OperationNotInitialized);
    }
    // The session is not locked while the PIN is checked (a key
    // derivation of the password's iteration count).
    token.check_user_pin(pin)?;
    let mut s = session.lock();
    let opened = s.gates().into_iter().any(|g| g.open());
    if !opened {
        // Another thread ended the use meanwhile.
        return Err(crate::rv::Rv::OperationNotInitialized);
    }
    Ok(())
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
    pub sign_recover: Option<(crate::mechanism::rsa::RecoverOp, LoginGate)>,
    pub verify_recover: Option<(crate::mechanism::rsa::RecoverOp, LoginGate)>,
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
/// (through the session's key cache) and installs it, waiting for a
/// context-specific login when the use is `governed` by the key's
/// CKA_ALWAYS_AUTHENTICATE. The session is locked twice, before and after,
/// and not while the key is read.
pub fn start_with_key<T: ?Sized>(
    session: &SessionCell,
    token: &crate::token::Token,
    h: CK_OBJECT_HANDLE,
    single_part_only: bool,
    governed: bool,
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
    let made = token.operation_key(h, &mut cache).and_then(|key| {
        let mut active = Active::new(make(&key, &mut contexts)?, single_part_only);
        active.gate = LoginGate::for_key(&key, governed);
        Ok(active)
    });
    let mut s = session.lock();
    s.key_cache = cache;
    s.kept = contexts;
    // Another thread may have started one meanwhile on the same session.
    if slot(&mut s).is_some() {
        return Err(crate::rv::Rv::OperationActive);
    }
    *slot(&mut s) = Some(made?);
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

    /// The login gates of the uses an always-authenticate key may govern,
    /// in the order a context-specific login opens them.
    fn gates(&mut self) -> Vec<&mut LoginGate> {
        let mut gates = Vec::new();
        gates.extend(self.sign.as_mut().map(|a| &mut a.gate));
        gates.extend(self.decrypt.as_mut().map(|a| &mut a.gate));
        gates.extend(self.sign_recover.as_mut().map(|(_, g)| g));
        gates.extend(self.message_sign.as_mut().map(|m| &mut m.gate));
        gates.extend(self.message_decrypt.as_mut().map(|m| &mut m.gate));
        gates
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
