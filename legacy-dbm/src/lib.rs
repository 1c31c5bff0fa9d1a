//! NSS's legacy databases, `dbm:DIR`: the Berkeley DB 1.85 hash files
//! cert8.db, key3.db and secmod.db, their records, and (in the token) the
//! PKCS#11 objects NSS presents for them.
//!
//! Everything read from disk is checked: a damaged or hostile file gives
//! `Error::Corrupt`, never a panic, a loop or unbounded memory.

pub mod cert8;
pub mod hash;
pub mod key3;
pub mod secmod;
pub mod store;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("damaged database file: {0}")]
    Corrupt(String),
    #[error("too much data for one hash file")]
    TooLarge,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>) -> Error {
        Error::Corrupt(what.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
