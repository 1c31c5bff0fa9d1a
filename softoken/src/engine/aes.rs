//! AES beyond aws-lc-rs's safe API: CBC straight into a caller's buffer,
//! key wrap with AES-192 keys too, and CMAC (AES's, and triple DES's for old
//! data). GCM is with the other AEADs (aead.rs).

use aws_lc_sys as sys;
use zeroize::{Zeroize, Zeroizing};

use super::{Direction, Owned};
use crate::rv::{Result, Rv};

/// AES key wrap (RFC 3394, whole 8-byte blocks) or key wrap with padding
/// (RFC 5649, any length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyWrap {
    Rfc3394,
    Rfc5649,
}

/// A running AES-CMAC.
pub struct Cmac {
    ctx: Owned<sys::CMAC_CTX>,
}

// SAFETY: as for EvpDigest.
unsafe impl Send for Cmac {}

impl Cmac {
    /// AES-CMAC.
    pub fn new(key: &[u8]) -> Result<Cmac> {
        // SAFETY: static cipher tables.
        let cipher = unsafe {
            match key.len() {
                16 => sys::EVP_aes_128_cbc(),
                24 => sys::EVP_aes_192_cbc(),
                32 => sys::EVP_aes_256_cbc(),
                _ => return Err(Rv::KeySizeRange),
            }
        };
        Cmac::with_cipher(key, cipher)
    }

    /// Triple-DES CMAC (three keys; a two-key one given as K1 K2 K1).
    pub fn des3(key: &[u8]) -> Result<Cmac> {
        if key.len() != 24 {
            return Err(Rv::KeySizeRange);
        }
        // SAFETY: a static cipher table.
        Cmac::with_cipher(key, unsafe { sys::EVP_des_ede3_cbc() })
    }

    fn with_cipher(key: &[u8], cipher: *const sys::EVP_CIPHER) -> Result<Cmac> {
        // SAFETY: a plain constructor, then a valid key buffer.
        let ctx = Owned::new(unsafe { sys::CMAC_CTX_new() }, sys::CMAC_CTX_free)?;
        // SAFETY: the context just made, and a valid key buffer.
        if unsafe {
            sys::CMAC_Init(
                ctx.ptr.as_ptr(),
                key.as_ptr() as *const _,
                key.len(),
                cipher,
                std::ptr::null_mut(),
            )
        } != 1
        {
            return Err(Rv::GeneralError);
        }
        Ok(Cmac { ctx })
    }

    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: a live context and a valid buffer.
        unsafe { sys::CMAC_Update(self.ctx.ptr.as_ptr(), data.as_ptr(), data.len()) };
    }

    /// The MAC so far (a block of the cipher: 16 bytes for AES, 8 for
    /// triple DES); the running state is left as it is.
    pub fn result(&self) -> Result<Vec<u8>> {
        // SAFETY: a copy of the live context is finalised into 16 bytes,
        // the most any block is.
        unsafe {
            let copy = Owned::new(sys::CMAC_CTX_new(), sys::CMAC_CTX_free)?;
            let mut out = vec![0u8; 16];
            let mut len = 0;
            if sys::CMAC_CTX_copy(copy.ptr.as_ptr(), self.ctx.ptr.as_ptr()) != 1
                || sys::CMAC_Final(copy.ptr.as_ptr(), out.as_mut_ptr(), &mut len) != 1
            {
                return Err(Rv::GeneralError);
            }
            out.truncate(len);
            Ok(out)
        }
    }
}

/// An AES key schedule, wiped when dropped (it is the key, expanded).
struct AesSchedule(sys::AES_KEY);

impl Drop for AesSchedule {
    fn drop(&mut self) {
        self.0.rd_key.zeroize();
    }
}

impl AesSchedule {
    /// The schedule for encrypting with `key`, or for decrypting.
    fn new(key: &[u8], direction: Direction) -> Result<AesSchedule> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(Rv::KeySizeRange);
        }
        let mut schedule = AesSchedule(sys::AES_KEY {
            rd_key: [0; 60],
            rounds: 0,
        });
        let bits = (key.len() * 8) as u32;
        // SAFETY: a key buffer of the length given in bits, and a schedule
        // to fill.
        let set = unsafe {
            match direction {
                Direction::Encrypt => sys::AES_set_encrypt_key(key.as_ptr(), bits, &mut schedule.0),
                Direction::Decrypt => sys::AES_set_decrypt_key(key.as_ptr(), bits, &mut schedule.0),
            }
        };
        if set != 0 {
            return Err(Rv::GeneralError);
        }
        Ok(schedule)
    }
}

/// AES-CBC encryption of `input` straight into `output`, chaining from
/// `iv`, which is left as the last ciphertext block. With `pad`, PKCS#7
/// padding completes the last block; without, `input` must be whole blocks.
/// Returns the length written. Reading the caller's input in place spares
/// a copy of it, a twentieth of the time for a megabyte.
pub fn aes_cbc_encrypt_into(
    key: &[u8],
    iv: &mut [u8; 16],
    input: &[u8],
    pad: bool,
    output: &mut [u8],
) -> Result<usize> {
    let whole = input.len() - input.len() % 16;
    if !pad && whole != input.len() {
        return Err(Rv::DataLenRange);
    }
    let total = if pad { whole + 16 } else { whole };
    if output.len() < total {
        return Err(Rv::BufferTooSmall);
    }
    let schedule = AesSchedule::new(key, Direction::Encrypt)?;
    // SAFETY: `whole` bytes of input and as many of room in `output`
    // (checked above); a shared and a mutable borrow, so they do not
    // overlap; a live schedule and a 16-byte IV.
    unsafe {
        sys::AES_cbc_encrypt(
            input.as_ptr(),
            output.as_mut_ptr(),
            whole,
            &schedule.0,
            iv.as_mut_ptr(),
            sys::AES_ENCRYPT,
        )
    };
    if pad {
        let rest = input.len() - whole;
        let mut last = Zeroizing::new([(16 - rest) as u8; 16]);
        last[..rest].copy_from_slice(&input[whole..]);
        // SAFETY: one block in, one block of room left in `output`.
        unsafe {
            sys::AES_cbc_encrypt(
                last.as_ptr(),
                output.as_mut_ptr().add(whole),
                16,
                &schedule.0,
                iv.as_mut_ptr(),
                sys::AES_ENCRYPT,
            )
        };
    }
    Ok(total)
}

/// AES key wrap (RFC 3394) or key wrap with padding (RFC 5649) with a KEK
/// of any AES size (aws-lc-rs's safe API takes AES-128 and AES-256 only).
/// Errors: DataLenRange for input that cannot be wrapped,
/// EncryptedDataInvalid for a wrapping that does not check out.
pub fn aes_key_wrap(
    kek: &[u8],
    input: &[u8],
    form: KeyWrap,
    direction: Direction,
) -> Result<Zeroizing<Vec<u8>>> {
    let schedule = AesSchedule::new(kek, direction)?;
    let wrap = direction == Direction::Encrypt;
    let padded = form == KeyWrap::Rfc5649;
    // A length the mechanism never takes (wrapping) or never produces
    // (unwrapping) is a length error, not a failed integrity check.
    let bad_len = if wrap {
        Rv::DataLenRange
    } else {
        Rv::EncryptedDataLenRange
    };
    if !padded && (input.len() < if wrap { 16 } else { 24 } || !input.len().is_multiple_of(8)) {
        return Err(bad_len);
    }
    if padded
        && (input.is_empty() || (!wrap && (input.len() < 16 || !input.len().is_multiple_of(8))))
    {
        return Err(bad_len);
    }
    let mut out = Zeroizing::new(vec![0u8; input.len().div_ceil(8) * 8 + 8]);
    let mut len = 0usize;
    // Below: the schedule is set; the output holds the input rounded up to
    // 8 bytes plus the 8-byte integrity block, the most any of these makes.
    let ok = if padded {
        let run = if wrap {
            sys::AES_wrap_key_padded
        } else {
            sys::AES_unwrap_key_padded
        };
        // SAFETY: as above; `len` receives the length written.
        unsafe {
            run(
                &schedule.0,
                out.as_mut_ptr(),
                &mut len,
                out.len(),
                input.as_ptr(),
                input.len(),
            ) == 1
        }
    } else {
        let run = if wrap {
            sys::AES_wrap_key
        } else {
            sys::AES_unwrap_key
        };
        // SAFETY: as above; a null IV is RFC 3394's default. It returns the
        // length written, or -1.
        let n = unsafe {
            run(
                &schedule.0,
                std::ptr::null(),
                out.as_mut_ptr(),
                input.as_ptr(),
                input.len(),
            )
        };
        len = usize::try_from(n).unwrap_or(0);
        n > 0
    };
    if !ok {
        // Unwrapping, a blob of a possible length that fails the check.
        return Err(if wrap {
            bad_len
        } else {
            Rv::EncryptedDataInvalid
        });
    }
    out.truncate(len);
    Ok(out)
}
