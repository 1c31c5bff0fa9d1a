//! Private keys kept built in aws-lc's form, by a digest of their values:
//! building one costs about as much as using it (RSA_check_key and the
//! Montgomery set-up for RSA; the public point, a full scalar
//! multiplication, for EC). Forgotten at login changes and at
//! C_Initialize/C_Finalize.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::digest;
use once_cell::sync::Lazy;
use parking_lot::Mutex;

use crate::engine::{EcKey, RsaKey};
use crate::rv::{Result, Rv};

/// Most keys of a kind kept built.
const MAX: usize = 64;

/// A cache of one kind of built key.
pub struct BuiltKeys<K>(Lazy<Mutex<HashMap<[u8; 32], Arc<K>>>>);

impl<K> BuiltKeys<K> {
    const fn new() -> Self {
        BuiltKeys(Lazy::new(Default::default))
    }

    /// The key built from `parts`, built now (by `build`) if not kept.
    pub fn get_or_build(
        &self,
        parts: &[&[u8]],
        build: impl FnOnce() -> Result<K>,
    ) -> Result<Arc<K>> {
        let mut id = digest::Context::new(&digest::SHA256);
        for part in parts {
            id.update(&(part.len() as u64).to_be_bytes());
            id.update(part);
        }
        let id: [u8; 32] = id
            .finish()
            .as_ref()
            .try_into()
            .map_err(|_| Rv::GeneralError)?;
        if let Some(built) = self.0.lock().get(&id) {
            return Ok(built.clone());
        }
        let built = Arc::new(build()?);
        let mut keys = self.0.lock();
        if keys.len() >= MAX {
            keys.clear();
        }
        keys.insert(id, built.clone());
        Ok(built)
    }

    fn clear(&self) {
        self.0.lock().clear();
    }
}

pub static RSA_KEYS: BuiltKeys<RsaKey> = BuiltKeys::new();
pub static EC_KEYS: BuiltKeys<EcKey> = BuiltKeys::new();

/// Forgets every built private key.
pub fn forget_all() {
    RSA_KEYS.clear();
    EC_KEYS.clear();
}
