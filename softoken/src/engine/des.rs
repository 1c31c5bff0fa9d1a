//! DES and triple DES, for old data, through aws-lc's DES functions (its
//! safe API has none): key schedules, ECB blocks and CBC runs.

use aws_lc_sys as sys;
use zeroize::Zeroize;

use super::Direction;
use crate::rv::{Result, Rv};

pub const BLOCK: usize = 8;

/// A DES key (8 bytes) or a triple-DES one (24 bytes, or 16 for two keys,
/// used as K1 K2 K1), scheduled.
pub struct DesKey {
    schedules: [sys::DES_key_schedule; 3],
    triple: bool,
}

impl Drop for DesKey {
    fn drop(&mut self) {
        for s in &mut self.schedules {
            s.subkeys.zeroize();
        }
    }
}

fn cblock(bytes: &[u8]) -> sys::DES_cblock {
    let mut b = sys::DES_cblock { bytes: [0; BLOCK] };
    b.bytes.copy_from_slice(&bytes[..BLOCK]);
    b
}

fn enc(direction: Direction) -> std::ffi::c_int {
    match direction {
        Direction::Encrypt => sys::DES_ENCRYPT as std::ffi::c_int,
        Direction::Decrypt => sys::DES_DECRYPT as std::ffi::c_int,
    }
}

impl DesKey {
    pub fn new(key: &[u8]) -> Result<DesKey> {
        let parts: [&[u8]; 3] = match key.len() {
            8 => [key, key, key],
            16 => [&key[..8], &key[8..], &key[..8]],
            24 => [&key[..8], &key[8..16], &key[16..]],
            _ => return Err(Rv::KeySizeRange),
        };
        let mut schedules = [sys::DES_key_schedule::default(); 3];
        for (schedule, part) in schedules.iter_mut().zip(parts) {
            let mut k = cblock(part);
            // SAFETY: a whole key block in and a schedule to fill, both live.
            unsafe { sys::DES_set_key_unchecked(&k, schedule) };
            k.bytes.zeroize();
        }
        Ok(DesKey {
            schedules,
            triple: key.len() != 8,
        })
    }

    /// ECB over whole blocks, in place.
    pub fn ecb(&self, blocks: &mut [u8], direction: Direction) {
        let [k1, k2, k3] = &self.schedules;
        for block in blocks.chunks_exact_mut(BLOCK) {
            let input = cblock(block);
            let mut output = sys::DES_cblock { bytes: [0; BLOCK] };
            // SAFETY: one block in, one block out, live schedules.
            unsafe {
                if self.triple {
                    sys::DES_ecb3_encrypt(&input, &mut output, k1, k2, k3, enc(direction));
                } else {
                    sys::DES_ecb_encrypt(&input, &mut output, k1, enc(direction));
                }
            }
            block.copy_from_slice(&output.bytes);
        }
    }

    /// CBC over whole blocks, in place, chaining from `iv`, which is left as
    /// the chaining value for what follows.
    pub fn cbc(&self, iv: &mut [u8; BLOCK], blocks: &mut [u8], direction: Direction) {
        let whole = blocks.len() - blocks.len() % BLOCK;
        let [k1, k2, k3] = &self.schedules;
        let mut chain = cblock(iv);
        // SAFETY: `whole` bytes in and out in the same buffer, which aws-lc
        // allows (each block is read before it is written); live schedules
        // and a chaining block it updates.
        unsafe {
            if self.triple {
                sys::DES_ede3_cbc_encrypt(
                    blocks.as_ptr(),
                    blocks.as_mut_ptr(),
                    whole,
                    k1,
                    k2,
                    k3,
                    &mut chain,
                    enc(direction),
                );
            } else {
                sys::DES_ncbc_encrypt(
                    blocks.as_ptr(),
                    blocks.as_mut_ptr(),
                    whole,
                    k1,
                    &mut chain,
                    enc(direction),
                );
            }
        }
        iv.copy_from_slice(&chain.bytes);
    }
}

/// The PKCS#7 padding's length at the end of a decrypted last block, or
/// None when it is not valid padding; checked without branching on the
/// bytes.
pub fn padding_len(last: &[u8; BLOCK]) -> Option<usize> {
    let pad = last[BLOCK - 1];
    let mut bad = u8::from(pad == 0) | u8::from(pad as usize > BLOCK);
    for (i, b) in last.iter().enumerate() {
        let in_pad = u8::from(i >= BLOCK - (pad as usize).min(BLOCK));
        bad |= in_pad & u8::from(*b != pad);
    }
    (bad == 0).then_some(pad as usize)
}

/// Whether an 8-byte DES key is one of DES's weak or semi-weak keys.
pub fn is_weak_key(key: &[u8]) -> bool {
    let k = cblock(key);
    // SAFETY: one key block, read only.
    unsafe { sys::DES_is_weak_key(&k) != 0 }
}
