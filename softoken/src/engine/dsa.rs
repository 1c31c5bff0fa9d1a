//! DSA (FIPS 186-4) through aws-lc's DSA, which aws-lc-rs does not offer:
//! domain parameters, key pairs, and signatures in PKCS#11's form (r and
//! s, each as long as q, concatenated). For old data and old peers: no new
//! protocol should choose it.

use std::ffi::c_int;

use aws_lc_sys as sys;

use super::bn::{bignum, bytes_of, padded_bytes_of, strictly_between_one_and_p_minus_one};
use super::secret::SecretVec;
use super::Owned;
use crate::rv::{Result, Rv};

/// The sizes of p accepted, in bits (FIPS 186-4's L): 1024 for old
/// signatures, 2048 and 3072 for the rest.
pub const PRIME_BITS: std::ops::RangeInclusive<usize> = 1024..=3072;

/// The sizes of q accepted, in bits (FIPS 186-4's N).
const SUBPRIME_BITS: [usize; 3] = [160, 224, 256];

/// A group: the primes p and q (q divides p - 1) and the generator g,
/// big-endian.
pub struct Domain<'a> {
    pub prime: &'a [u8],
    pub subprime: &'a [u8],
    pub base: &'a [u8],
}

/// A DSA object on the group, with the public value `public` when given.
/// A group of sizes outside FIPS 186-4's, with an even p or q, q not below
/// p, or g outside 1 < g < p - 1, is `DomainParamsInvalid`.
fn dsa(domain: &Domain, public: Option<&[u8]>) -> Result<Owned<sys::DSA>> {
    let p = bignum(domain.prime)?;
    let q = bignum(domain.subprime)?;
    let g = bignum(domain.base)?;
    // SAFETY: live numbers; the calls only read them.
    let sound = unsafe {
        PRIME_BITS.contains(&(sys::BN_num_bits(p.ptr.as_ptr()) as usize))
            && SUBPRIME_BITS.contains(&(sys::BN_num_bits(q.ptr.as_ptr()) as usize))
            && sys::BN_is_odd(p.ptr.as_ptr()) == 1
            && sys::BN_is_odd(q.ptr.as_ptr()) == 1
            && sys::BN_cmp(q.ptr.as_ptr(), p.ptr.as_ptr()) < 0
    } && strictly_between_one_and_p_minus_one(domain.base, domain.prime)?;
    if !sound {
        return Err(Rv::DomainParamsInvalid);
    }
    // SAFETY: a plain constructor.
    let dsa = Owned::new(unsafe { sys::DSA_new() }, sys::DSA_free)?;
    // SAFETY: a live DSA; on success it owns p, q and g, so they are not
    // freed here.
    if unsafe {
        sys::DSA_set0_pqg(
            dsa.ptr.as_ptr(),
            p.ptr.as_ptr(),
            q.ptr.as_ptr(),
            g.ptr.as_ptr(),
        )
    } != 1
    {
        return Err(Rv::DomainParamsInvalid);
    }
    std::mem::forget((p, q, g));
    if let Some(public) = public {
        let y = bignum(public)?;
        // SAFETY: a live DSA, which owns y on success.
        if unsafe { sys::DSA_set0_key(dsa.ptr.as_ptr(), y.ptr.as_ptr(), std::ptr::null_mut()) } != 1
        {
            return Err(Rv::KeyTypeInconsistent);
        }
        std::mem::forget(y);
    }
    Ok(dsa)
}

/// The length of q in bytes: each half of a signature.
fn half_len(dsa: &Owned<sys::DSA>) -> usize {
    // SAFETY: a live DSA with its group.
    unsafe { sys::BN_num_bytes(sys::DSA_get0_q(dsa.ptr.as_ptr())) as usize }
}

/// A new group with p of `prime_bits` bits (q of 160 bits below 2048, else
/// 256), by FIPS 186-4's probable-prime construction: (p, q, g). A size
/// aws-lc does not make is `AttributeValueInvalid`.
pub fn generate_parameters(prime_bits: usize) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    if !PRIME_BITS.contains(&prime_bits) || !prime_bits.is_multiple_of(64) {
        return Err(Rv::AttributeValueInvalid);
    }
    // SAFETY: a plain constructor.
    let dsa = Owned::new(unsafe { sys::DSA_new() }, sys::DSA_free)?;
    // SAFETY: a live DSA, which the call fills; no seed, outputs or
    // callback.
    unsafe {
        if sys::DSA_generate_parameters_ex(
            dsa.ptr.as_ptr(),
            prime_bits as std::ffi::c_uint,
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ) != 1
        {
            return Err(Rv::FunctionFailed);
        }
        Ok((
            bytes_of(sys::DSA_get0_p(dsa.ptr.as_ptr())),
            bytes_of(sys::DSA_get0_q(dsa.ptr.as_ptr())),
            bytes_of(sys::DSA_get0_g(dsa.ptr.as_ptr())),
        ))
    }
}

/// A new key pair in the group: the private value x and the public value
/// y = g^x mod p, big-endian without leading zeros.
pub fn generate(domain: &Domain) -> Result<(SecretVec, Vec<u8>)> {
    super::secret::mark_stack();
    let dsa = dsa(domain, None)?;
    // SAFETY: a live DSA with its group; the keys it makes stay its own.
    unsafe {
        if sys::DSA_generate_key(dsa.ptr.as_ptr()) != 1 {
            return Err(Rv::FunctionFailed);
        }
        let public = bytes_of(sys::DSA_get0_pub_key(dsa.ptr.as_ptr()));
        let private = SecretVec::from(bytes_of(sys::DSA_get0_priv_key(dsa.ptr.as_ptr())));
        Ok((private, public))
    }
}

/// The public value of the private value `private` in the group (aws-lc
/// signs only with both halves, and a private key object need not hold
/// its public value).
fn public_of(domain: &Domain, private: &[u8]) -> Result<Vec<u8>> {
    let p = bignum(domain.prime)?;
    let g = bignum(domain.base)?;
    let x = bignum(private)?;
    // SAFETY: plain constructors.
    let y = Owned::new(unsafe { sys::BN_new() }, sys::BN_free)?;
    // SAFETY: as above.
    let ctx = Owned::new(unsafe { sys::BN_CTX_new() }, sys::BN_CTX_free)?;
    // SAFETY: live numbers and context; the secret exponent in constant
    // time; y is written, the rest read.
    unsafe {
        if sys::BN_mod_exp_mont_consttime(
            y.ptr.as_ptr(),
            g.ptr.as_ptr(),
            x.ptr.as_ptr(),
            p.ptr.as_ptr(),
            ctx.ptr.as_ptr(),
            std::ptr::null(),
        ) != 1
        {
            return Err(Rv::KeyTypeInconsistent);
        }
        Ok(bytes_of(y.ptr.as_ptr()))
    }
}

/// A signature over `digest` (its leftmost bytes as long as q, as FIPS
/// 186-4 has it) with the private value `private`: r || s. `public` is
/// the key's public value where the object keeps it (NSS's CKA_NSS_DB),
/// else computed here.
pub fn sign(
    domain: &Domain,
    private: &[u8],
    public: Option<&[u8]>,
    digest: &[u8],
) -> Result<Vec<u8>> {
    super::secret::mark_stack();
    let public = match public {
        Some(y) => y.to_vec(),
        None => public_of(domain, private)?,
    };
    let dsa = dsa(domain, Some(&public))?;
    let x = bignum(private)?;
    // SAFETY: a live DSA, which owns x on success.
    if unsafe { sys::DSA_set0_key(dsa.ptr.as_ptr(), std::ptr::null_mut(), x.ptr.as_ptr()) } != 1 {
        return Err(Rv::KeyTypeInconsistent);
    }
    std::mem::forget(x);
    let half = half_len(&dsa);
    // SAFETY: a live DSA with both keys; `digest` valid for its length.
    let sig = Owned::new(
        unsafe { sys::DSA_do_sign(digest.as_ptr(), digest.len(), dsa.ptr.as_ptr()) },
        sys::DSA_SIG_free,
    )
    // A private value outside 0 < x < q.
    .map_err(|_| Rv::KeyTypeInconsistent)?;
    let (mut r, mut s) = (std::ptr::null(), std::ptr::null());
    // SAFETY: a live signature; r and s stay its own.
    unsafe {
        sys::DSA_SIG_get0(sig.ptr.as_ptr(), &mut r, &mut s);
        let mut out = padded_bytes_of(r, half)?;
        out.extend(padded_bytes_of(s, half)?);
        Ok(out)
    }
}

/// Whether `signature` (r || s, each as long as q) is one over `digest`
/// by the holder of the public value `public`. A signature of another
/// length is `SignatureLenRange`; r or s out of range is simply invalid.
pub fn verify(domain: &Domain, public: &[u8], digest: &[u8], signature: &[u8]) -> Result<bool> {
    let dsa = dsa(domain, Some(public))?;
    let half = half_len(&dsa);
    if signature.len() != 2 * half {
        return Err(Rv::SignatureLenRange);
    }
    let r = bignum(&signature[..half])?;
    let s = bignum(&signature[half..])?;
    // SAFETY: a plain constructor.
    let sig = Owned::new(unsafe { sys::DSA_SIG_new() }, sys::DSA_SIG_free)?;
    // SAFETY: a live signature, which owns r and s on success.
    if unsafe { sys::DSA_SIG_set0(sig.ptr.as_ptr(), r.ptr.as_ptr(), s.ptr.as_ptr()) } != 1 {
        return Err(Rv::HostMemory);
    }
    std::mem::forget((r, s));
    let mut valid: c_int = 0;
    // SAFETY: live signature and key; `digest` valid for its length. A
    // failure (a public value out of range, say) leaves `valid` 0.
    unsafe {
        sys::DSA_do_check_signature(
            &mut valid,
            digest.as_ptr(),
            digest.len(),
            sig.ptr.as_ptr(),
            dsa.ptr.as_ptr(),
        );
        sys::ERR_clear_error();
    }
    Ok(valid == 1)
}
