//! The digest family: C_Digest over aws-lc-rs's hashes, and the engine's
//! EVP ones for those it lacks.

use aws_lc_rs::digest;

use crate::engine::{EvpDigest, Hash};
use crate::rv::Result;

/// A running hash: aws-lc-rs's, or the engine's.
enum DigestState {
    Rs(digest::Context),
    Evp(EvpDigest),
}

/// A digest in progress.
pub struct DigestOp {
    state: DigestState,
    len: usize,
    /// Whether C_DigestUpdate/C_DigestKey started a multi-part digest (then
    /// C_Digest is not allowed).
    pub multi_part: bool,
}

impl DigestOp {
    pub fn new(hash: Hash) -> Result<DigestOp> {
        let state = match hash.digest_algorithm() {
            Some(alg) => DigestState::Rs(digest::Context::new(alg)),
            None => DigestState::Evp(EvpDigest::new(hash)?),
        };
        let len = hash.output_len();
        Ok(DigestOp {
            state,
            len,
            multi_part: false,
        })
    }

    pub fn output_len(&self) -> usize {
        self.len
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            DigestState::Rs(ctx) => ctx.update(data),
            DigestState::Evp(ctx) => ctx.update(data),
        }
    }

    /// The digest so far, leaving the operation as it is (the caller ends it
    /// once the result has been delivered).
    pub fn result(&self) -> Result<Vec<u8>> {
        match &self.state {
            DigestState::Rs(ctx) => Ok(ctx.clone().finish().as_ref().to_vec()),
            DigestState::Evp(ctx) => ctx.result(),
        }
    }
}
