//! Engine contexts a session keeps built for the keys it used last. For a
//! short message, building the context is most of the work: an AES-GCM
//! context (key schedule and GHASH table) was a third of C_EncryptInit plus
//! C_Encrypt on 64 bytes, and keying an HMAC two of its five compressions.
//! Entries are found by the key's value, compared in constant time, and a
//! variant (the GCM tag length, the HMAC hash); they are dropped with the
//! session and at logout.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::engine::{AeadContext, HmacKey};
use crate::rv::Result;

/// Keys a session keeps contexts of one kind for.
const KEPT: usize = 4;

/// Built contexts of one kind, newest last.
pub struct Kept<C> {
    entries: Vec<(Zeroizing<Vec<u8>>, u64, Arc<C>)>,
}

impl<C> Default for Kept<C> {
    fn default() -> Self {
        Kept {
            entries: Vec::new(),
        }
    }
}

impl<C> Kept<C> {
    /// The context for `key` and `variant`, built by `build` if not kept.
    pub fn get_or_build(
        &mut self,
        key: &[u8],
        variant: u64,
        build: impl FnOnce() -> Result<C>,
    ) -> Result<Arc<C>> {
        let same = |k: &[u8]| aws_lc_rs::constant_time::verify_slices_are_equal(k, key).is_ok();
        if let Some((_, _, built)) = self
            .entries
            .iter()
            .find(|(k, v, _)| *v == variant && same(k))
        {
            return Ok(built.clone());
        }
        let built = Arc::new(build()?);
        if self.entries.len() >= KEPT {
            self.entries.remove(0);
        }
        self.entries
            .push((Zeroizing::new(key.to_vec()), variant, built.clone()));
        Ok(built)
    }
}

/// Every kind a session keeps.
#[derive(Default)]
pub struct KeptContexts {
    pub gcm: Kept<AeadContext>,
    pub chacha20_poly1305: Kept<AeadContext>,
    pub hmac: Kept<HmacKey>,
}

impl KeptContexts {
    pub fn clear(&mut self) {
        *self = KeptContexts::default();
    }
}
