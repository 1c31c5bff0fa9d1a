//! A session's own state: its slot, its mode and the operations under way.

use pkcs11_sys::*;

use crate::mechanism::{CipherOp, DigestOp, SignOp, VerifyOp};

/// An operation under way, and whether an `…Update` call started its
/// multi-part form (after which the single-part call is not allowed).
pub struct Active<T: ?Sized> {
    pub op: Box<T>,
    pub multi_part: bool,
}

impl<T: ?Sized> Active<T> {
    pub fn new(op: Box<T>) -> Active<T> {
        Active {
            op,
            multi_part: false,
        }
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

pub struct Session {
    pub slot: CK_SLOT_ID,
    pub rw: bool,
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
    pub sign_recover: Option<crate::rsa::RecoverOp>,
    pub verify_recover: Option<crate::rsa::RecoverOp>,
    pub key_cache: crate::token::KeyCache,
}

/// A message-based AES-GCM session (C_MessageEncryptInit...): its key, the
/// counter for generated IVs, and the message being built part by part.
/// The counter starts again with each Init (as NSS's does): the caller's
/// fixed IV bits are what tell one such context from another.
pub struct MessageCipher {
    pub key: crate::aes::AesKey,
    pub counter: u64,
    pub pending: Option<PendingMessage>,
}

/// A message given in parts (C_EncryptMessageBegin/Next).
pub struct PendingMessage {
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub data: crate::secret::SecretVec,
}

/// Message-based signing or verification: the mechanism and key each
/// message uses, and the operation of a message given in parts.
pub struct MessageSign {
    pub mechanism: crate::mechanism::MechanismArg,
    pub key: std::sync::Arc<crate::attr::Attrs>,
    pub sign: Option<Box<dyn SignOp>>,
    pub verify: Option<Box<dyn VerifyOp>>,
}

/// A key for an operation in a session, through the session's cache of
/// decrypted key material. The session is not locked while the key is read
/// and decrypted.
pub fn operation_key(
    session: &parking_lot::Mutex<Session>,
    token: &crate::token::Token,
    h: CK_OBJECT_HANDLE,
) -> crate::rv::Result<std::sync::Arc<crate::attr::Attrs>> {
    let mut cache = std::mem::take(&mut session.lock().key_cache);
    let key = token.operation_key(h, &mut cache);
    session.lock().key_cache = cache;
    key
}

impl Session {
    pub fn new(slot: CK_SLOT_ID, rw: bool) -> Session {
        Session {
            slot,
            rw,
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
        }
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
