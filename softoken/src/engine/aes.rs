//! AES beyond aws-lc-rs's safe API: GCM with any IV and tag length (kept
//! built per key), CBC straight into a caller's buffer, key wrap with
//! AES-192 keys too, and AES-CMAC.

use aws_lc_sys as sys;
use zeroize::{Zeroize, Zeroizing};

use super::{Direction, Owned};
use crate::engine::secret::SecretVec;
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

    /// The 16-byte MAC so far; the running state is left as it is.
    pub fn result(&self) -> Result<Vec<u8>> {
        // SAFETY: a copy of the live context is finalised into 16 bytes.
        unsafe {
            let copy = Owned::new(sys::CMAC_CTX_new(), sys::CMAC_CTX_free)?;
            let mut out = vec![0u8; 16];
            let mut len = 0;
            if sys::CMAC_CTX_copy(copy.ptr.as_ptr(), self.ctx.ptr.as_ptr()) != 1
                || sys::CMAC_Final(copy.ptr.as_ptr(), out.as_mut_ptr(), &mut len) != 1
            {
                return Err(Rv::GeneralError);
            }
            Ok(out)
        }
    }
}

/// An AES-GCM key with its tag length through aws-lc's EVP_AEAD, which
/// takes IVs of any length and tags of 1 to 16 bytes.
fn gcm_key(key: &[u8], tag_len: usize) -> Result<Owned<sys::EVP_AEAD_CTX>> {
    if !(1..=16).contains(&tag_len) {
        return Err(Rv::MechanismParamInvalid);
    }
    // SAFETY: static AEAD tables.
    let aead = unsafe {
        match key.len() {
            16 => sys::EVP_aead_aes_128_gcm(),
            24 => sys::EVP_aead_aes_192_gcm(),
            32 => sys::EVP_aead_aes_256_gcm(),
            _ => return Err(Rv::KeySizeRange),
        }
    };
    // SAFETY: a key of the length the AEAD takes (checked above).
    let ctx = unsafe { sys::EVP_AEAD_CTX_new(aead, key.as_ptr(), key.len(), tag_len) };
    Owned::new(ctx, sys::EVP_AEAD_CTX_free).map_err(|_| Rv::MechanismParamInvalid)
}

/// EVP_AEAD's seal of `len` bytes at `input` to `output`, the tag of
/// `tag_len` bytes right after the ciphertext.
///
/// # Safety
/// `input` is readable for `len` bytes; `output` writable for `len +
/// tag_len` bytes; the two are the same bytes or do not overlap.
unsafe fn seal_scatter(
    ctx: &Owned<sys::EVP_AEAD_CTX>,
    input: *const u8,
    output: *mut u8,
    len: usize,
    iv: &[u8],
    aad: &[u8],
    tag_len: usize,
) -> Result<()> {
    let mut written = 0;
    // SAFETY: a live context, and the buffers the caller vouches for.
    let ok = unsafe {
        sys::EVP_AEAD_CTX_seal_scatter(
            ctx.ptr.as_ptr(),
            output,
            output.add(len),
            &mut written,
            tag_len,
            iv.as_ptr(),
            iv.len(),
            input,
            len,
            std::ptr::null(),
            0,
            aad.as_ptr(),
            aad.len(),
        )
    };
    if ok != 1 || written != tag_len {
        return Err(Rv::DataLenRange);
    }
    Ok(())
}

/// An AES-GCM key built once for one tag length (its AES key schedule and
/// GHASH table, most of the cost of sealing a short message), through
/// EVP_AEAD, which takes IVs of any length.
pub struct GcmContext {
    ctx: Owned<sys::EVP_AEAD_CTX>,
    tag_len: usize,
}

// SAFETY: the context is owned by this value alone, and aws-lc's seal takes
// it as const and keeps no state in it between calls, so it may be used
// from any thread and from several at once.
unsafe impl Send for GcmContext {}
// SAFETY: as above.
unsafe impl Sync for GcmContext {}

impl GcmContext {
    pub fn new(key: &[u8], tag_len: usize) -> Result<GcmContext> {
        Ok(GcmContext {
            ctx: gcm_key(key, tag_len)?,
            tag_len,
        })
    }

    /// Seals one message from `input` straight into `output` (the
    /// ciphertext, then the tag): one pass over the data, for a single-part
    /// C_Encrypt into the caller's buffer. Returns the length written.
    pub fn seal_into(
        &self,
        iv: &[u8],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize> {
        let len = input.len();
        if iv.is_empty() {
            return Err(Rv::MechanismParamInvalid);
        }
        if output.len() < len + self.tag_len {
            return Err(Rv::BufferTooSmall);
        }
        // SAFETY: `output` has room for the ciphertext and the tag after it
        // (checked above) and does not overlap `input`, a shared borrow.
        unsafe {
            seal_scatter(
                &self.ctx,
                input.as_ptr(),
                output.as_mut_ptr(),
                len,
                iv,
                aad,
                self.tag_len,
            )?
        };
        Ok(len + self.tag_len)
    }

    /// Seals one message in place: `data` is the plaintext and comes back
    /// as the ciphertext followed by the tag. (Working in place matters: a
    /// fresh megabyte buffer costs as much as sealing it.)
    pub fn seal_in_place(&self, iv: &[u8], aad: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>> {
        if iv.is_empty() {
            return Err(Rv::MechanismParamInvalid);
        }
        let len = data.len();
        data.resize(len + self.tag_len, 0);
        let p = data.as_mut_ptr();
        // SAFETY: `data` holds the plaintext and room for the tag after it;
        // EVP_AEAD allows the input and output to be the same bytes.
        unsafe { seal_scatter(&self.ctx, p, p, len, iv, aad, self.tag_len)? };
        Ok(data)
    }

    /// Opens one message in place: `data` is the ciphertext followed by its
    /// tag and comes back as the plaintext; no plaintext is left unless the
    /// tag matches.
    pub fn open_in_place(&self, iv: &[u8], aad: &[u8], mut data: SecretVec) -> Result<SecretVec> {
        if iv.is_empty() {
            return Err(Rv::MechanismParamInvalid);
        }
        let len = data
            .len()
            .checked_sub(self.tag_len)
            .ok_or(Rv::EncryptedDataLenRange)?;
        // SAFETY: a live context; the output is the input's own bytes, which
        // EVP_AEAD allows; the tag follows them.
        let ok = unsafe {
            let p = data.as_mut_ptr();
            sys::EVP_AEAD_CTX_open_gather(
                self.ctx.ptr.as_ptr(),
                p,
                iv.as_ptr(),
                iv.len(),
                p,
                len,
                p.add(len),
                self.tag_len,
                aad.as_ptr(),
                aad.len(),
            )
        };
        if ok != 1 {
            // Whatever was written is wiped with the buffer.
            return Err(Rv::AeadDecryptFailed);
        }
        data.truncate(len);
        Ok(data)
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
