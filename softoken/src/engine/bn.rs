//! aws-lc's big numbers, for the finite-field algorithms (DH, DSA) that
//! aws-lc-rs does not offer: numbers from and to PKCS#11's big-endian bytes.

use aws_lc_sys as sys;

use super::Owned;
use crate::rv::{Result, Rv};

/// A number as aws-lc holds it, wiped and freed when dropped unless given
/// away.
pub(super) fn bignum(bytes: &[u8]) -> Result<Owned<sys::BIGNUM>> {
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
pub(super) unsafe fn bytes_of(n: *const sys::BIGNUM) -> Vec<u8> {
    // SAFETY: this function's promise; the buffer has BN_num_bytes bytes.
    unsafe {
        let mut out = vec![0u8; sys::BN_num_bytes(n) as usize];
        sys::BN_bn2bin(n, out.as_mut_ptr());
        out
    }
}

/// Big-endian bytes of a number, left-padded with zeros to `len`.
///
/// # Safety
/// `n` is a live BIGNUM.
pub(super) unsafe fn padded_bytes_of(n: *const sys::BIGNUM, len: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    // SAFETY: this function's promise; the buffer has `len` bytes, and
    // aws-lc fails rather than write more.
    if unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), len, n) } != 1 {
        return Err(Rv::FunctionFailed);
    }
    Ok(out)
}

/// Whether 1 < `n` < `p` - 1, for big-endian numbers (`p` odd and above 3).
pub(super) fn strictly_between_one_and_p_minus_one(n: &[u8], p: &[u8]) -> Result<bool> {
    let n = bignum(n)?;
    let one = bignum(&[1])?;
    let p_minus_1 = bignum(p)?;
    // SAFETY: live numbers; the subtraction changes only p_minus_1.
    Ok(unsafe {
        sys::BN_sub_word(p_minus_1.ptr.as_ptr(), 1) == 1
            && sys::BN_cmp(n.ptr.as_ptr(), one.ptr.as_ptr()) > 0
            && sys::BN_cmp(n.ptr.as_ptr(), p_minus_1.ptr.as_ptr()) < 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let p = [0x17]; // 23
        assert!(!strictly_between_one_and_p_minus_one(&[1], &p).unwrap());
        assert!(strictly_between_one_and_p_minus_one(&[2], &p).unwrap());
        assert!(strictly_between_one_and_p_minus_one(&[21], &p).unwrap());
        assert!(!strictly_between_one_and_p_minus_one(&[22], &p).unwrap());
    }
}
