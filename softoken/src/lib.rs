//! softoken: a PKCS#11 soft token whose database is NSS's own (cert9.db and
//! key4.db), loadable by any PKCS#11 client.
//!
//! The C boundary lives in `ffi`; everything below it is safe Rust that
//! tests can call without loading the shared library.

pub mod aes;
pub mod attr;
pub mod built;
pub mod config;
pub mod curve25519;
pub mod ec;
pub mod engine_sys;
mod ffi;
pub mod handles;
pub mod kdf;
pub mod kept;
pub mod keydb;
pub mod legacy;
pub mod mechanism;
pub mod module;
pub mod nss;
pub mod object;
pub mod pbe;
pub mod rsa;
pub mod rv;
pub mod secret;
pub mod session;
pub mod token;
pub mod wrap;

pub use ffi::*;
