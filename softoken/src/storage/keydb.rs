//! The master password as NSS uses it: the password check, the encryption of
//! private attributes and the integrity records, keyed by the master key
//! SHA1(global salt || password).

use std::collections::HashMap;

use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use sdb::{ObjectId, PasswordEntry};
use zeroize::Zeroizing;

use crate::engine::Hash;
use crate::rv::{Result, Rv};
use crate::storage::pbe::{self, Encrypted, KdfParams, MacRecord};

/// The plaintext of the password check NSS stores.
pub const PASSWORD_CHECK: &[u8] = b"password-check";
/// Length of the global salt NSS creates.
pub const GLOBAL_SALT_LEN: usize = 20;
/// NSS's default PBKDF2 iteration count for a non-empty password.
const DEFAULT_ITERATIONS: u32 = 10_000;
/// Derived keys kept per login, beyond which the cache starts afresh.
const DERIVED_CACHE_LIMIT: usize = 4096;

/// The database whose object an integrity record protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Cert,
    Key,
}

/// The metadata name of an integrity record.
pub fn sig_name(db: DbKind, id: ObjectId, attr_type: u64) -> String {
    let which = match db {
        DbKind::Cert => "cert",
        DbKind::Key => "key",
    };
    format!("sig_{which}_{id:08x}_{:08x}", attr_type as u32)
}

/// Where a cert9.db attribute's previous integrity record is kept while a
/// change of it is between its two commits (key4.db's records first, then
/// cert9.db's value): a row of ours, which NSS ignores.
pub fn previous_sig_name(id: ObjectId, attr_type: u64) -> String {
    format!(
        "{PREVIOUS_SIG_PREFIX}{}",
        sig_name(DbKind::Cert, id, attr_type)
    )
}

/// The prefix of those rows.
pub const PREVIOUS_SIG_PREFIX: &str = "softoken-previous-";

/// The prefix of every integrity record of one object.
pub fn sig_prefix(db: DbKind, id: ObjectId) -> String {
    let which = match db {
        DbKind::Cert => "cert",
        DbKind::Key => "key",
    };
    format!("sig_{which}_{id:08x}_")
}

/// The PBKDF2 iteration count for new records, as NSS chooses it: 1 for the
/// empty password, else 10,000 adjusted by NSS's two environment variables.
pub fn iteration_count(empty_password: bool) -> u32 {
    if empty_password {
        return 1;
    }
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    let mut n = DEFAULT_ITERATIONS;
    if let Some(min) = env("NSS_MIN_MP_PBE_ITERATION_COUNT") {
        n = n.max(min);
    }
    if let Some(max) = env("NSS_MAX_MP_PBE_ITERATION_COUNT").filter(|&m| m > 0) {
        n = n.min(max);
    }
    n
}

/// A key for new records: the KDF parameters and the key they give.
struct WriteKey {
    kdf: KdfParams,
    key: Zeroizing<Vec<u8>>,
}

/// A known master key: what a login unlocks.
pub struct KeyState {
    master: Zeroizing<Vec<u8>>,
    empty_password: bool,
    /// Keys for new encrypted values and new integrity records, derived on
    /// first use and reused for every record of this login (NSS reads the
    /// salt and iteration count from each record, so one salt serves many).
    write_enc: OnceCell<WriteKey>,
    write_mac: OnceCell<WriteKey>,
    /// Keys derived for records read, by their KDF parameters.
    derived: Mutex<HashMap<KdfParams, Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyState").finish_non_exhaustive()
    }
}

impl KeyState {
    pub fn new(global_salt: &[u8], password: &[u8]) -> KeyState {
        crate::engine::secret::mark_stack();
        KeyState {
            master: pbe::master_key(global_salt, password),
            empty_password: password.is_empty(),
            write_enc: OnceCell::new(),
            write_mac: OnceCell::new(),
            derived: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_empty_password(&self) -> bool {
        self.empty_password
    }

    fn derive(&self, kdf: &KdfParams) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(k) = self.derived.lock().get(kdf) {
            return Ok(k.clone());
        }
        // Derive outside the lock: PBKDF2 is slow and other threads may
        // need other keys meanwhile.
        let key = kdf.derive(&self.master)?;
        let mut cache = self.derived.lock();
        if cache.len() >= DERIVED_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(kdf.clone(), key.clone());
        Ok(key)
    }

    fn write_key<'a>(&'a self, cell: &'a OnceCell<WriteKey>) -> Result<&'a WriteKey> {
        cell.get_or_try_init(|| {
            let mut salt = vec![0u8; pbe::SALT_LEN];
            crate::engine::random_fill(&mut salt)?;
            let kdf = KdfParams {
                prf: Hash::Sha256,
                salt,
                iterations: iteration_count(self.empty_password),
                key_len: pbe::KEY_LEN,
            };
            let key = kdf.derive(&self.master)?;
            Ok(WriteKey { kdf, key })
        })
    }

    /// Encrypts a value as NSS does (PBES2, AES-256-CBC, fresh IV).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let wk = self.write_key(&self.write_enc)?;
        let mut iv_param = [0u8; pbe::IV_PARAM_LEN];
        crate::engine::random_fill(&mut iv_param)?;
        let ct = pbe::aes_cbc_encrypt(&wk.key, pbe::iv_from_param(&iv_param), plaintext)?;
        pbe::encode_pbes2(&wk.kdf, &iv_param, ct)
    }

    /// Encrypts a value in the legacy form key3.db holds (3DES).
    pub fn encrypt_legacy(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        pbe::legacy_encrypt(&self.master, plaintext)
    }

    /// Decrypts a stored value; tells whether it was in NSS's current form
    /// (which must carry an integrity record) or the legacy one.
    pub fn decrypt(&self, blob: &[u8]) -> Result<(Zeroizing<Vec<u8>>, bool)> {
        self.decrypt_parsed(Encrypted::parse(blob)?)
    }

    fn decrypt_parsed(&self, value: Encrypted) -> Result<(Zeroizing<Vec<u8>>, bool)> {
        match value {
            Encrypted::Pbes2 {
                kdf,
                iv,
                ciphertext,
            } => Ok((
                pbe::aes_cbc_decrypt(&self.derive(&kdf)?, iv, &ciphertext)?,
                true,
            )),
            Encrypted::Legacy {
                cipher,
                salt,
                iterations,
                ciphertext,
            } => Ok((
                pbe::legacy_decrypt(&self.master, cipher, &salt, iterations, &ciphertext)?,
                false,
            )),
        }
    }

    /// An integrity record over one attribute value.
    pub fn sign(&self, object_id: ObjectId, attr_type: u64, value: &[u8]) -> Result<Vec<u8>> {
        let wk = self.write_key(&self.write_mac)?;
        let mac = pbe::attribute_mac(Hash::Sha256, &wk.key, object_id, attr_type as u32, value)?;
        MacRecord {
            kdf: wk.kdf.clone(),
            mac_prf: Hash::Sha256,
            mac,
        }
        .encode()
    }

    /// Whether an integrity record matches the value.
    pub fn verify(
        &self,
        record: &[u8],
        object_id: ObjectId,
        attr_type: u64,
        value: &[u8],
    ) -> Result<bool> {
        let rec = MacRecord::parse(record)?;
        let key = self.derive(&rec.kdf)?;
        let mac = pbe::attribute_mac(rec.mac_prf, &key, object_id, attr_type as u32, value)?;
        Ok(pbe::macs_equal(&mac, &rec.mac))
    }

    /// A new password entry for this key (the check value encrypted anew).
    pub fn password_entry(&self, global_salt: &[u8], check: &[u8]) -> Result<PasswordEntry> {
        Ok(PasswordEntry {
            salt: global_salt.to_vec(),
            value: self.encrypt(check)?,
        })
    }
}

/// Checks a password against a password entry and returns the unlocked key;
/// `Rv::PinIncorrect` when it does not match, `Rv::DeviceError` when the
/// entry is damaged (then no password is wrong, and none is tried).
pub fn unlock(entry: &PasswordEntry, password: &[u8], check: &[u8]) -> Result<KeyState> {
    let value = Encrypted::parse(&entry.value)?;
    let keys = KeyState::new(&entry.salt, password);
    match keys.decrypt_parsed(value) {
        Ok((plain, _)) if plain.as_slice() == check => Ok(keys),
        Ok(_) => Err(Rv::PinIncorrect),
        // A wrong key shows up as bad padding.
        Err(Rv::DeviceError) => Err(Rv::PinIncorrect),
        Err(e) => Err(e),
    }
}

/// Whether the entry is for the empty password. Only entries written with
/// one iteration can be (NSS's own fast path), so no slow derivation runs
/// for a real password.
pub fn is_empty_password(entry: &PasswordEntry) -> bool {
    let cheap = match Encrypted::parse(&entry.value) {
        Ok(Encrypted::Pbes2 { kdf, .. }) => kdf.iterations == 1,
        Ok(Encrypted::Legacy { .. }) => true,
        Err(_) => false,
    };
    cheap && unlock(entry, b"", PASSWORD_CHECK).is_ok()
}

/// A fresh random global salt.
pub fn new_global_salt() -> Result<Vec<u8>> {
    let mut salt = vec![0u8; GLOBAL_SALT_LEN];
    crate::engine::random_fill(&mut salt)?;
    Ok(salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_entry_unlocks_only_with_its_password() {
        let salt = new_global_salt().unwrap();
        let keys = KeyState::new(&salt, b"pw");
        let entry = keys.password_entry(&salt, PASSWORD_CHECK).unwrap();
        assert!(unlock(&entry, b"pw", PASSWORD_CHECK).is_ok());
        assert_eq!(
            unlock(&entry, b"other", PASSWORD_CHECK).unwrap_err(),
            Rv::PinIncorrect
        );
        assert!(!is_empty_password(&entry));
        let empty = KeyState::new(&salt, b"")
            .password_entry(&salt, PASSWORD_CHECK)
            .unwrap();
        assert!(is_empty_password(&empty));
    }

    #[test]
    fn values_and_macs_round_trip() {
        let keys = KeyState::new(b"salt", b"pw");
        let blob = keys.encrypt(b"secret exponent").unwrap();
        let (plain, current) = keys.decrypt(&blob).unwrap();
        assert_eq!(plain.as_slice(), b"secret exponent");
        assert!(current);
        let rec = keys.sign(0, 0x123, b"secret exponent").unwrap();
        assert!(keys.verify(&rec, 0, 0x123, b"secret exponent").unwrap());
        assert!(!keys.verify(&rec, 5, 0x123, b"secret exponent").unwrap());
        assert!(!keys.verify(&rec, 0, 0x123, b"secret exponenT").unwrap());
        let other = KeyState::new(b"salt", b"pw2");
        // Another key gives garbage, which one time in ~256 even ends in
        // valid padding: never the value.
        assert!(other
            .decrypt(&blob)
            .map_or(true, |(plain, _)| plain.as_slice() != b"secret exponent"));
        assert!(!other.verify(&rec, 0, 0x123, b"secret exponent").unwrap());
    }

    #[test]
    fn record_names_match_nss() {
        assert_eq!(
            sig_name(DbKind::Key, 0x194c97c6, 0x11),
            "sig_key_194c97c6_00000011"
        );
        assert_eq!(
            sig_name(DbKind::Cert, 1, 0xce536358),
            "sig_cert_00000001_ce536358"
        );
    }
}
