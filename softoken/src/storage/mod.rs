//! The backends a token's databases can live in (`backends`), and NSS's
//! stored formats above the rows: attribute values on disk
//! (`format`), the password-based encryption and integrity records (`pbe`)
//! and the master key that keys them (`keydb`).

pub mod backends;
pub mod format;
pub mod keydb;
pub mod pbe;
