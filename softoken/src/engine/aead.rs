//! AEADs beyond aws-lc-rs's safe API, through aws-lc's EVP_AEAD: AES-GCM
//! with any IV and tag length, and ChaCha20-Poly1305, each kept built per
//! key, sealed into a caller's buffer or in place.

use aws_lc_sys as sys;

use super::Owned;
use crate::engine::secret::SecretVec;
use crate::rv::{Result, Rv};

/// An EVP_AEAD context for `aead` with `key` and tags of `tag_len` bytes.
///
/// # Safety
/// `aead` is one of aws-lc's static AEAD tables and `key` has the length
/// it takes.
unsafe fn aead_key(
    aead: *const sys::EVP_AEAD,
    key: &[u8],
    tag_len: usize,
) -> Result<Owned<sys::EVP_AEAD_CTX>> {
    // SAFETY: this function's promise.
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

/// An AEAD key built once for one tag length (for AES-GCM its key schedule
/// and GHASH table, most of the cost of sealing a short message), through
/// EVP_AEAD: AES-GCM, which takes IVs of any length and tags of 1 to 16
/// bytes, or ChaCha20-Poly1305 (RFC 8439: 12-byte nonces, 16-byte tags).
pub struct AeadContext {
    ctx: Owned<sys::EVP_AEAD_CTX>,
    tag_len: usize,
}

// SAFETY: the context is owned by this value alone, and aws-lc's seal takes
// it as const and keeps no state in it between calls, so it may be used
// from any thread and from several at once.
unsafe impl Send for AeadContext {}
// SAFETY: as above.
unsafe impl Sync for AeadContext {}

impl AeadContext {
    /// AES-GCM with tags of `tag_len` bytes.
    pub fn gcm(key: &[u8], tag_len: usize) -> Result<AeadContext> {
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
        Ok(AeadContext {
            // SAFETY: a static table and a key of its length (above).
            ctx: unsafe { aead_key(aead, key, tag_len)? },
            tag_len,
        })
    }

    /// ChaCha20-Poly1305 (a 32-byte key, 16-byte tags).
    pub fn chacha20_poly1305(key: &[u8]) -> Result<AeadContext> {
        if key.len() != 32 {
            return Err(Rv::KeySizeRange);
        }
        Ok(AeadContext {
            // SAFETY: a static table and a key of its length.
            ctx: unsafe { aead_key(sys::EVP_aead_chacha20_poly1305(), key, 16)? },
            tag_len: 16,
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
