//! A session's own state: its slot, its mode and the operations under way.

use pkcs11_sys::*;

use crate::mechanism::DigestOp;

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
}

impl Session {
    pub fn new(slot: CK_SLOT_ID, rw: bool) -> Session {
        Session {
            slot,
            rw,
            find: None,
            digest: None,
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
    }
}
