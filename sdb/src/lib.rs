//! The storage contract of NSS's "shared database" design and its SQLite
//! backend, which reads and writes `cert9.db` / `key4.db` in NSS's own schema.
//!
//! A backend stores rows of (attribute type, raw bytes) and metadata rows. It
//! knows nothing about what an attribute means: values arrive already in their
//! on-disk form (CK_ULONG as 4-byte big-endian, private values already
//! encrypted). Canonicalising, encrypting, integrity and defaults belong to
//! the token above it.

mod sqlite;

pub use sqlite::{open, OpenOptions, Opened, SqlDb, DB_FILE_MODE};

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
    #[error("the database is damaged: {0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
