//! softoken: a PKCS#11 soft token whose database is NSS's own (cert9.db and
//! key4.db), loadable by any PKCS#11 client.
//!
//! The layers, from the C ABI down (docs/ARCHITECTURE.md draws them):
//! `ffi` (the C boundary) calls `module` (slots, tokens, sessions) and
//! `session` (the operations under way); those run `mechanism` (the table
//! and the families), which builds on `object` (attributes and their
//! policy), `cache` (built keys and kept contexts) and `engine` (aws-lc).
//! `token` keeps a token's objects in `storage` (NSS's formats) over the
//! `sdb` and `legacy-dbm` crates.
//!
//! The public surface is the C ABI, NSS's vendor constants (`nss`) and the
//! `admin` facade for softoken-modutil; the layers are the crate's own.

pub mod admin;
mod cache;
mod config;
mod engine;
mod ffi;
#[cfg(fuzzing)]
pub mod fuzzing;
mod log;
mod mechanism;
mod module;
pub mod nss;
mod object;
mod rv;
mod session;
mod storage;
mod token;

pub use ffi::*;
