//! The decrypted token keys a session keeps.

use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::token::handles::HandleMap;

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
    pub(super) fn get(
        &self,
        h: CK_OBJECT_HANDLE,
        sealed: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Option<&[Zeroizing<Vec<u8>>]> {
        self.0
            .get(&h)
            .filter(|entry| entry.sealed == sealed)
            .map(|entry| entry.plain.as_slice())
    }

    pub(super) fn put(
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
