//! Finite-field Diffie-Hellman (PKCS #3) through aws-lc's DH, which
//! aws-lc-rs does not offer: key pairs in a caller's group, and the shared
//! secret with a peer's public value (checked to lie in 1 < y < p - 1).

use std::ffi::c_int;

use aws_lc_sys as sys;

use super::secret::SecretVec;
use super::Owned;
use crate::rv::{Result, Rv};

/// The prime sizes accepted, in bits: none below 1024 (weak, and refused
/// by current TLS stacks), none above aws-lc's limit.
pub const PRIME_BITS: std::ops::RangeInclusive<usize> = 1024..=8192;

/// A number as aws-lc holds it, freed when dropped unless given away.
fn bignum(bytes: &[u8]) -> Result<Owned<sys::BIGNUM>> {
    // SAFETY: `bytes` is valid for its length; a NULL result is an
    // allocation failure, which Owned::new reports.
    Owned::new(
        unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), std::ptr::null_mut()) },
        sys::BN_clear_free,
    )
}

/// Big-endian bytes of a number, without leading zeros.
///
/// # Safety
/// `n` is a live BIGNUM.
unsafe fn bytes_of(n: *const sys::BIGNUM) -> Vec<u8> {
    // SAFETY: this function's promise; the buffer has BN_num_bytes bytes.
    unsafe {
        let mut out = vec![0u8; sys::BN_num_bytes(n) as usize];
        sys::BN_bn2bin(n, out.as_mut_ptr());
        out
    }
}

/// A DH object on the group (p, g): p of an accepted size and odd, and
/// 1 < g < p - 1. Anything else is `DomainParamsInvalid`.
fn group(prime: &[u8], base: &[u8]) -> Result<Owned<sys::DH>> {
    let p = bignum(prime)?;
    let g = bignum(base)?;
    // SAFETY: live numbers; the comparisons only read them.
    let sound = unsafe {
        let bits = sys::BN_num_bits(p.ptr.as_ptr()) as usize;
        let one = bignum(&[1])?;
        let p_minus_1 = bignum(prime)?;
        sys::BN_sub_word(p_minus_1.ptr.as_ptr(), 1) == 1
            && PRIME_BITS.contains(&bits)
            && sys::BN_is_odd(p.ptr.as_ptr()) == 1
            && sys::BN_cmp(g.ptr.as_ptr(), one.ptr.as_ptr()) > 0
            && sys::BN_cmp(g.ptr.as_ptr(), p_minus_1.ptr.as_ptr()) < 0
    };
    if !sound {
        return Err(Rv::DomainParamsInvalid);
    }
    // SAFETY: a plain constructor.
    let dh = Owned::new(unsafe { sys::DH_new() }, sys::DH_free)?;
    // SAFETY: a live DH; on success it owns p and g, so they are not
    // freed here.
    if unsafe {
        sys::DH_set0_pqg(
            dh.ptr.as_ptr(),
            p.ptr.as_ptr(),
            std::ptr::null_mut(),
            g.ptr.as_ptr(),
        )
    } != 1
    {
        return Err(Rv::DomainParamsInvalid);
    }
    std::mem::forget(p);
    std::mem::forget(g);
    Ok(dh)
}

/// A new key pair in the group: the private value x (of `private_bits`
/// bits when given, else aws-lc's choice) and the public value g^x mod p,
/// both big-endian without leading zeros.
pub fn generate(
    prime: &[u8],
    base: &[u8],
    private_bits: Option<usize>,
) -> Result<(SecretVec, Vec<u8>)> {
    super::secret::mark_stack();
    let dh = group(prime, base)?;
    if let Some(bits) = private_bits {
        // SAFETY: a live DH.
        let prime_bits = unsafe { sys::DH_bits(dh.ptr.as_ptr()) } as usize;
        if bits < 160 || bits >= prime_bits {
            return Err(Rv::TemplateInconsistent);
        }
        // SAFETY: a live DH.
        if unsafe { sys::DH_set_length(dh.ptr.as_ptr(), bits as std::ffi::c_uint) } != 1 {
            return Err(Rv::TemplateInconsistent);
        }
    }
    // SAFETY: a live DH with its group; the keys it makes stay its own.
    unsafe {
        if sys::DH_generate_key(dh.ptr.as_ptr()) != 1 {
            return Err(Rv::FunctionFailed);
        }
        let public = bytes_of(sys::DH_get0_pub_key(dh.ptr.as_ptr()));
        let private = SecretVec::from(bytes_of(sys::DH_get0_priv_key(dh.ptr.as_ptr())));
        Ok((private, public))
    }
}

/// The shared secret of the private value `private` in the group with the
/// peer's public value, as many bytes as the prime (leading zeros kept,
/// as PKCS #3 has it). A public value outside 1 < y < p - 1 is
/// `MechanismParamInvalid`.
pub fn shared_secret(
    prime: &[u8],
    base: &[u8],
    private: &[u8],
    peer_public: &[u8],
) -> Result<SecretVec> {
    super::secret::mark_stack();
    let dh = group(prime, base)?;
    let x = bignum(private)?;
    let peer = bignum(peer_public)?;
    // SAFETY: a live DH, which owns x on success (not freed here); the
    // output buffer has DH_size bytes, which DH_compute_key_padded writes.
    unsafe {
        if sys::DH_set0_key(dh.ptr.as_ptr(), std::ptr::null_mut(), x.ptr.as_ptr()) != 1 {
            return Err(Rv::KeyTypeInconsistent);
        }
        std::mem::forget(x);
        let mut secret = vec![0u8; sys::DH_size(dh.ptr.as_ptr()) as usize];
        let n: c_int =
            sys::DH_compute_key_padded(secret.as_mut_ptr(), peer.ptr.as_ptr(), dh.ptr.as_ptr());
        let secret = SecretVec::from(secret);
        if n < 0 || n as usize != secret.len() {
            return Err(Rv::MechanismParamInvalid);
        }
        Ok(secret)
    }
}
