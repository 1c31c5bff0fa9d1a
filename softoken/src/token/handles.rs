//! Maps keyed by the handles this module hands out (sessions, objects).
//! Handles are small counters the module chooses, not caller input, so a
//! one-multiply hash serves where the default SipHash was a measurable part
//! of every call.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing of a 64-bit handle.
#[derive(Default)]
pub struct HandleHasher(u64);

impl Hasher for HandleHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type HandleMap<V> = HashMap<u64, V, BuildHasherDefault<HandleHasher>>;
