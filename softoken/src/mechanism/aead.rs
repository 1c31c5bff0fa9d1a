//! What the AEAD mechanisms share: the operation that seals or opens one
//! message through an engine AEAD context.

use std::sync::Arc;

use crate::engine::secret::SecretVec;
use crate::engine::{AeadContext, Direction};
use crate::mechanism::op::{CipherOp, Part};
use crate::rv::Result;

/// An AEAD's operation (AES-GCM, ChaCha20-Poly1305): the whole message is
/// sealed or opened at the end, and a decryption gives no plaintext before
/// its tag is checked.
pub struct AeadOp {
    /// The key built for this tag length, kept by the session.
    context: Arc<AeadContext>,
    iv: Vec<u8>,
    aad: Vec<u8>,
    tag_len: usize,
    direction: Direction,
    data: SecretVec,
}

impl AeadOp {
    pub fn new(
        context: Arc<AeadContext>,
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_len: usize,
        direction: Direction,
    ) -> AeadOp {
        AeadOp {
            context,
            iv,
            aad,
            tag_len,
            direction,
            data: SecretVec::default(),
        }
    }
}

impl CipherOp for AeadOp {
    fn output_len(&self, more: usize, part: Part) -> usize {
        let total = self.data.len() + more;
        match (part, self.direction) {
            (Part::More, _) => 0,
            (Part::Last, Direction::Encrypt) => total + self.tag_len,
            (Part::Last, Direction::Decrypt) => total.saturating_sub(self.tag_len),
        }
    }

    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.data.extend_from_slice(input);
        Ok(Vec::new())
    }

    fn single_into(&mut self, input: &[u8], output: &mut [u8]) -> Option<Result<usize>> {
        // Encryption only: a decryption must not write plaintext to the
        // caller before its tag is checked.
        if self.direction == Direction::Decrypt || !self.data.is_empty() {
            return None;
        }
        Some(self.context.seal_into(&self.iv, &self.aad, input, output))
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = std::mem::take(&mut self.data);
        match self.direction {
            // Sealed in place: no copy of the plaintext is left behind.
            Direction::Encrypt => {
                self.context
                    .seal_in_place(&self.iv, &self.aad, data.into_inner())
            }
            Direction::Decrypt => {
                let plaintext = self.context.open_in_place(&self.iv, &self.aad, data)?;
                Ok(plaintext.into_inner())
            }
        }
    }
}
