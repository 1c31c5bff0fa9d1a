//! NSS's stored formats above the database: attribute values on disk
//! (`format`), the password-based encryption and integrity records (`pbe`)
//! and the master key that keys them (`keydb`).

pub mod format;
pub mod keydb;
pub mod pbe;
