//! Finite-field Diffie-Hellman (PKCS #3) through aws-lc's DH, which
//! aws-lc-rs does not offer: key pairs in a caller's group, and the shared
//! secret with a peer's public value (checked to lie in 1 < y < p - 1).

use std::ffi::c_int;

use aws_lc_sys as sys;

use super::bn::{bignum, bytes_of, strictly_between_one_and_p_minus_one};
use super::secret::SecretVec;
use super::Owned;
use crate::rv::{Result, Rv};

/// The prime sizes accepted, in bits: none below 1024 (weak, and refused
/// by current TLS stacks), none above aws-lc's limit.
pub const PRIME_BITS: std::ops::RangeInclusive<usize> = 1024..=8192;

/// A DH object on the group (p, g): p of an accepted size and odd, and
/// 1 < g < p - 1. Anything else is `DomainParamsInvalid`.
fn group(prime: &[u8], base: &[u8]) -> Result<Owned<sys::DH>> {
    let p = bignum(prime)?;
    let g = bignum(base)?;
    // SAFETY: a live number; the calls only read it.
    let bits = unsafe { sys::BN_num_bits(p.ptr.as_ptr()) } as usize;
    // SAFETY: as above.
    let odd = unsafe { sys::BN_is_odd(p.ptr.as_ptr()) } == 1;
    let sound =
        PRIME_BITS.contains(&bits) && odd && strictly_between_one_and_p_minus_one(base, prime)?;
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

/// The prime sizes a new group may have: finding a safe prime takes
/// seconds at 2048 bits and minutes at 4096; beyond, hours.
pub const GENERATED_PRIME_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;

/// A new group (a safe prime p = 2q + 1 of `prime_bits` bits, generator
/// 2), as NSS's CKM_DH_PKCS_PARAMETER_GEN makes: (p, g). A size outside
/// `GENERATED_PRIME_BITS` is `AttributeValueInvalid`.
pub fn generate_parameters(prime_bits: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    if !GENERATED_PRIME_BITS.contains(&prime_bits) {
        return Err(Rv::AttributeValueInvalid);
    }
    // SAFETY: a plain constructor.
    let dh = Owned::new(unsafe { sys::DH_new() }, sys::DH_free)?;
    // SAFETY: a live DH, which the call fills; no callback.
    unsafe {
        if sys::DH_generate_parameters_ex(
            dh.ptr.as_ptr(),
            prime_bits as c_int,
            sys::DH_GENERATOR_2 as c_int,
            std::ptr::null_mut(),
        ) != 1
        {
            return Err(Rv::FunctionFailed);
        }
        Ok((
            bytes_of(sys::DH_get0_p(dh.ptr.as_ptr())),
            bytes_of(sys::DH_get0_g(dh.ptr.as_ptr())),
        ))
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
