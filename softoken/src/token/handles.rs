//! The handles this module hands out (sessions, objects): the maps keyed
//! by them, and how a token object's handle names its database and row.
//! Handles are small counters the module chooses, not caller input, so a
//! one-multiply hash serves where the default SipHash was a measurable part
//! of every call.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing of a 64-bit handle.
#[derive(Default)]
pub struct HandleHasher(u64);

impl Hasher for HandleHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type HandleMap<V> = HashMap<u64, V, BuildHasherDefault<HandleHasher>>;

use pkcs11_sys::{CK_INVALID_HANDLE, CK_OBJECT_HANDLE};
use sdb::ObjectId;

use crate::rv::{Result, Rv};
use crate::storage::keydb::DbKind;

/// Handle bit of token (stored) objects, and of those in the key database.
pub(super) const TOKEN_OBJECT_BIT: CK_OBJECT_HANDLE = 0x8000_0000;
const KEY_DB_BIT: CK_OBJECT_HANDLE = 0x4000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ObjRef {
    Session(CK_OBJECT_HANDLE),
    Stored(DbKind, ObjectId),
}

pub(super) fn resolve(h: CK_OBJECT_HANDLE) -> Result<ObjRef> {
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

pub(super) fn stored_handle(db: DbKind, id: ObjectId) -> CK_OBJECT_HANDLE {
    let db_bit = if db == DbKind::Key { KEY_DB_BIT } else { 0 };
    TOKEN_OBJECT_BIT | db_bit | CK_OBJECT_HANDLE::from(id)
}
