//! The storage contract of NSS's "shared database" design, and the registry
//! through which a token finds the backend its configuration names. The
//! backends are crates of their own (`sdb-sqlite` for cert9.db/key4.db,
//! `legacy-dbm` for cert8.db/key3.db); this crate names none of them.
//!
//! A backend stores rows of (attribute type, raw bytes) and metadata rows. It
//! knows nothing about what an attribute means: values arrive already in their
//! on-disk form (CK_ULONG as 4-byte big-endian, private values already
//! encrypted). Canonicalising, encrypting, integrity and defaults belong to
//! the token above it.

use std::path::PathBuf;

/// A PKCS#11 attribute type (CK_ATTRIBUTE_TYPE).
pub type AttrType = u64;

/// The id of a row: a positive integer of at most 30 bits.
pub type ObjectId = u32;

/// The largest id a backend hands out (ids fit in 30 bits so that a token can
/// put its own flags in the two top bits of a PKCS#11 handle).
pub const MAX_OBJECT_ID: ObjectId = 0x3fff_ffff;

/// One attribute as stored: its type and its raw bytes.
pub type Attribute = (AttrType, Vec<u8>);

/// The name of the metadata row that holds the password entry.
pub const PASSWORD_ENTRY_ID: &str = "password";

/// What went wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no object with id {0:#x}")]
    NotFound(ObjectId),
    #[error("the database is open read-only")]
    ReadOnly,
    #[error("the database is busy (another process holds it)")]
    Busy,
    #[error("no free object id")]
    IdsExhausted,
    #[error("{0}")]
    Unsupported(String),
    /// An object the format has no record for (its class, or a public key
    /// without its private key in the legacy format): nothing is written.
    #[error("{0}")]
    NotStorable(String),
    #[error("the database is damaged: {0}")]
    Corrupt(String),
    /// A file where the database should be that is not one of this format
    /// (another application's, empty, or not of the engine at all): never
    /// written.
    #[error("{0}")]
    NotRecognized(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// An error of the backend's engine, in its words.
    #[error("{backend}: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A metadata row (`metaData` table): a named pair of values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub item1: Vec<u8>,
    pub item2: Option<Vec<u8>>,
}

/// The password entry of a key database: the global salt and the encrypted
/// password-check value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordEntry {
    pub salt: Vec<u8>,
    pub value: Vec<u8>,
}

impl From<Metadata> for PasswordEntry {
    fn from(m: Metadata) -> Self {
        PasswordEntry {
            salt: m.item1,
            value: m.item2.unwrap_or_default(),
        }
    }
}

/// The ids a search matched, handed out in batches (find init / next / final:
/// dropping the cursor is the final step).
#[derive(Debug, Default)]
pub struct FindCursor {
    ids: std::vec::IntoIter<ObjectId>,
}

impl FindCursor {
    pub fn new(ids: Vec<ObjectId>) -> Self {
        FindCursor {
            ids: ids.into_iter(),
        }
    }

    /// Up to `max` further ids; an empty vector when the search is done.
    pub fn next_batch(&mut self, max: usize) -> Vec<ObjectId> {
        self.ids.by_ref().take(max).collect()
    }
}

/// Reading, possible both outside and inside a transaction.
pub trait SdbRead {
    /// The ids of the objects whose stored values equal every (type, value)
    /// of the template, byte for byte.
    fn find(&self, template: &[(AttrType, &[u8])]) -> Result<FindCursor>;

    /// The values of the given types for one object (`None` where the object
    /// has no such attribute); `Error::NotFound` if there is no such object.
    fn get_attributes(&self, id: ObjectId, types: &[AttrType]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Every attribute the object has; `Error::NotFound` if there is none.
    fn read_object(&self, id: ObjectId) -> Result<Vec<Attribute>>;

    /// Whether an object with this id exists.
    fn exists(&self, id: ObjectId) -> Result<bool>;

    /// A metadata row, if present.
    fn get_metadata(&self, id: &str) -> Result<Option<Metadata>>;

    /// The names of the metadata rows that start with `prefix`.
    fn metadata_ids(&self, prefix: &str) -> Result<Vec<String>>;

    /// The password entry (global salt and check value), if set.
    fn get_password_entry(&self) -> Result<Option<PasswordEntry>> {
        Ok(self
            .get_metadata(PASSWORD_ENTRY_ID)?
            .map(PasswordEntry::from))
    }
}

/// One write transaction. Every write happens inside one; dropping it
/// without `commit` aborts it and nothing it did reaches the disk.
pub trait Transaction: SdbRead {
    /// Stores a new object under a fresh id of at most 30 bits chosen by the
    /// backend, and returns that id.
    fn create_object(&mut self, attrs: &[(AttrType, &[u8])]) -> Result<ObjectId>;

    /// Stores a new object under the given id (the update and merge paths
    /// keep ids); fails if the id is taken.
    fn create_object_with_id(&mut self, id: ObjectId, attrs: &[(AttrType, &[u8])]) -> Result<()>;

    /// Sets (adds or replaces) attribute values of an existing object.
    fn set_attributes(&mut self, id: ObjectId, attrs: &[(AttrType, &[u8])]) -> Result<()>;

    /// Removes one object.
    fn destroy_object(&mut self, id: ObjectId) -> Result<()>;

    /// Adds or replaces a metadata row.
    fn put_metadata(&mut self, id: &str, item1: &[u8], item2: Option<&[u8]>) -> Result<()>;

    /// Removes a metadata row (no error if absent).
    fn delete_metadata(&mut self, id: &str) -> Result<()>;

    /// Replaces the password entry.
    fn put_password_entry(&mut self, entry: &PasswordEntry) -> Result<()> {
        self.put_metadata(PASSWORD_ENTRY_ID, &entry.salt, Some(&entry.value))
    }

    /// Removes every object and every metadata row, the password included.
    fn reset(&mut self) -> Result<()>;

    /// For a backend that seals key records itself (the legacy one): the
    /// codec of the new password that this transaction's commit seals the
    /// records with, and that opens them after it. Others keep no codec.
    fn seal_with(&mut self, codec: std::sync::Arc<dyn KeyRecordCodec>) {
        let _ = codec;
    }

    /// Makes every write of the transaction durable at once.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Turns the private-key records of a legacy key database into the
/// token's objects and back. The token supplies it once the user has
/// logged in (it alone holds the password) and takes it back at logout,
/// so no backend holds the password logic a second time.
pub trait KeyRecordCodec: Send + Sync {
    /// A private key object's attributes, in stored form (private values
    /// encrypted as the token stores them), from a key record's encrypted
    /// PKCS#8 payload.
    fn open_private_key(&self, payload: &[u8]) -> Result<Vec<Attribute>>;

    /// A key record's encrypted PKCS#8 payload, from a private key object's
    /// stored attributes.
    fn seal_private_key(&self, attrs: &[Attribute]) -> Result<Vec<u8>>;

    /// A key record's payload decrypted: the PKCS#8 it holds.
    fn open_payload(&self, payload: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>>;

    /// A key record's payload for a PKCS#8 key (a password change seals
    /// what the old codec opened with the new one).
    fn seal_payload(&self, pkcs8: &[u8]) -> Result<Vec<u8>>;

    /// Whether this codec's password is the one of `password` (the
    /// database's password entry): after another process changed it, the
    /// records no longer open with this codec.
    fn unlocks(&self, password: &Metadata) -> bool;
}

/// A database: one table of objects plus its metadata.
pub trait Sdb: SdbRead + Send + Sync {
    /// Starts a write transaction. Transactions on one handle are serialised;
    /// between processes the backend's locking applies.
    fn begin(&self) -> Result<Box<dyn Transaction + '_>>;

    /// Whether the database was opened read-only.
    fn is_read_only(&self) -> bool;

    /// Whether the format keeps integrity records (NSS's shared database
    /// does; the legacy one has none).
    fn keeps_integrity_records(&self) -> bool {
        true
    }

    /// Gives (or, with `None`, takes back) the codec for legacy key
    /// records; formats without them ignore it.
    fn set_key_codec(&self, codec: Option<std::sync::Arc<dyn KeyRecordCodec>>) {
        let _ = codec;
    }
}

/// Where a token's two databases are.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub dir: PathBuf,
    pub cert_prefix: String,
    pub key_prefix: String,
    pub read_only: bool,
}

/// A token's two databases: certificates and public objects, and keys and
/// private objects (with the password entry and the integrity records).
pub struct Databases {
    pub cert: Box<dyn Sdb>,
    pub key: Box<dyn Sdb>,
}

/// A storage backend: the configdir prefix that selects it and how it
/// opens a token's databases.
pub struct Backend {
    /// The prefix before the colon in `configdir` (`sql`, `dbm`).
    pub prefix: &'static str,
    /// Other prefixes that select it (NSS's reserved `extern:`).
    pub aliases: &'static [&'static str],
    /// The key database's file name after its prefix, by which a tool sees
    /// whether a directory holds this backend's database.
    pub key_file: &'static str,
    /// The certificate database's file name after its prefix.
    pub cert_file: &'static str,
    /// Opens the databases: read-write ones are created when missing where
    /// the backend can create them; files it may not write give
    /// `Error::ReadOnly`.
    pub open: fn(&OpenOptions) -> Result<Databases>,
}

impl Backend {
    /// Whether `dir` holds either of this backend's files under the
    /// prefixes (NSS looks for either when it decides to update).
    pub fn files_exist(&self, dir: &std::path::Path, cert_prefix: &str, key_prefix: &str) -> bool {
        dir.join(format!("{cert_prefix}{}", self.cert_file))
            .exists()
            || dir.join(format!("{key_prefix}{}", self.key_file)).exists()
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.prefix)
    }
}

/// Backends are one per prefix: equal when their prefixes are.
impl PartialEq for Backend {
    fn eq(&self, other: &Backend) -> bool {
        self.prefix == other.prefix
    }
}

impl Eq for Backend {}

/// The backends a module offers.
pub struct Registry {
    /// The backend of a configdir without a prefix.
    pub default: &'static Backend,
    pub others: &'static [&'static Backend],
    /// The backend of the older files a database of another backend is
    /// updated from when it is new (NSS's legacy cert8.db/key3.db, read
    /// when a `sql:` directory holds only them).
    pub update_source: Option<&'static Backend>,
}

impl Registry {
    fn all(&self) -> impl Iterator<Item = &'static Backend> + '_ {
        std::iter::once(self.default).chain(self.others.iter().copied())
    }

    /// Every prefix that selects a backend, aliases included.
    pub fn prefixes(&self) -> Vec<&'static str> {
        self.all()
            .flat_map(|b| std::iter::once(b.prefix).chain(b.aliases.iter().copied()))
            .collect()
    }

    /// The backend a configdir prefix names (case-insensitive).
    pub fn find(&self, prefix: &str) -> Option<&'static Backend> {
        self.all().find(|b| {
            b.prefix.eq_ignore_ascii_case(prefix)
                || b.aliases.iter().any(|a| a.eq_ignore_ascii_case(prefix))
        })
    }
}
