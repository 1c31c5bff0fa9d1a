//! The NIST curves: EC keys from PKCS#11's components, ECDSA over a
//! caller's digest of any length with signatures in PKCS#11's r || s form.

use aws_lc_sys as sys;

use super::Owned;
use crate::rv::{Result, Rv};

/// The NIST curves the token offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn nid(self) -> i32 {
        match self {
            Curve::P256 => sys::NID_X9_62_prime256v1,
            Curve::P384 => sys::NID_secp384r1,
            Curve::P521 => sys::NID_secp521r1,
        }
    }

    /// Bytes of a field element (and of r and s).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// An EC key for ECDSA: a private key (which can sign and verify) or a
/// public key (which can verify).
pub struct EcKey {
    key: Owned<sys::EC_KEY>,
    curve: Curve,
}

// SAFETY: the EC_KEY is owned by this value alone; aws-lc allows using a key
// from any thread, and sign/verify take it by shared reference only.
unsafe impl Send for EcKey {}
// SAFETY: aws-lc's ECDSA and ECDH take the key as `const EC_KEY *` and
// change nothing in it, so threads may share one.
unsafe impl Sync for EcKey {}

impl EcKey {
    fn empty(curve: Curve) -> Result<EcKey> {
        // SAFETY: a plain constructor; null is checked by Owned::new.
        let key = Owned::new(
            unsafe { sys::EC_KEY_new_by_curve_name(curve.nid()) },
            sys::EC_KEY_free,
        )?;
        Ok(EcKey { key, curve })
    }

    fn group(&self) -> *const sys::EC_GROUP {
        // SAFETY: the key was made for a curve, so it has a group.
        unsafe { sys::EC_KEY_get0_group(self.key.ptr.as_ptr()) }
    }

    /// A private key from its scalar (big-endian); the public point is
    /// computed from it.
    pub fn from_private(curve: Curve, scalar: &[u8]) -> Result<EcKey> {
        crate::engine::secret::mark_stack();
        if scalar.is_empty() || scalar.len() > curve.field_len() {
            return Err(Rv::KeyTypeInconsistent);
        }
        let key = EcKey::empty(curve)?;
        // SAFETY: valid buffer and length; the BIGNUM is cleared and freed below.
        let d = Owned::new(
            unsafe { sys::BN_bin2bn(scalar.as_ptr(), scalar.len(), std::ptr::null_mut()) },
            sys::BN_clear_free,
        )?;
        // SAFETY: the point belongs to the key's group.
        let point = Owned::new(
            unsafe { sys::EC_POINT_new(key.group()) },
            sys::EC_POINT_free,
        )?;
        // SAFETY: all pointers are live objects of this key's group.
        let ok = unsafe {
            sys::EC_KEY_set_private_key(key.key.ptr.as_ptr(), d.ptr.as_ptr()) == 1
                && sys::EC_POINT_mul(
                    key.group(),
                    point.ptr.as_ptr(),
                    d.ptr.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    std::ptr::null_mut(),
                ) == 1
                && sys::EC_KEY_set_public_key(key.key.ptr.as_ptr(), point.ptr.as_ptr()) == 1
                && sys::EC_KEY_check_key(key.key.ptr.as_ptr()) == 1
        };
        if ok {
            Ok(key)
        } else {
            // Zero, or not below the group order.
            Err(Rv::KeyTypeInconsistent)
        }
    }

    /// A public key from an uncompressed (or compressed) point; a point not
    /// on the curve is refused.
    pub fn from_public(curve: Curve, point: &[u8]) -> Result<EcKey> {
        let key = EcKey::empty(curve)?;
        // SAFETY: the point belongs to the key's group.
        let p = Owned::new(
            unsafe { sys::EC_POINT_new(key.group()) },
            sys::EC_POINT_free,
        )?;
        // SAFETY: valid buffer and length; live objects of this key's group.
        let ok = unsafe {
            sys::EC_POINT_oct2point(
                key.group(),
                p.ptr.as_ptr(),
                point.as_ptr(),
                point.len(),
                std::ptr::null_mut(),
            ) == 1
                && sys::EC_KEY_set_public_key(key.key.ptr.as_ptr(), p.ptr.as_ptr()) == 1
                && sys::EC_KEY_check_key(key.key.ptr.as_ptr()) == 1
        };
        if ok {
            Ok(key)
        } else {
            Err(Rv::KeyTypeInconsistent)
        }
    }

    /// Signs a digest: r || s, each the curve's field length.
    pub fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        crate::engine::secret::mark_stack();
        // SAFETY: valid digest buffer; a private key (sign fails cleanly otherwise).
        let sig = Owned::new(
            unsafe { sys::ECDSA_do_sign(digest.as_ptr(), digest.len(), self.key.ptr.as_ptr()) },
            sys::ECDSA_SIG_free,
        )
        .map_err(|_| Rv::FunctionFailed)?;
        let n = self.curve.field_len();
        let mut out = vec![0u8; 2 * n];
        let mut r: *const sys::BIGNUM = std::ptr::null();
        let mut s: *const sys::BIGNUM = std::ptr::null();
        // SAFETY: r and s are borrowed from the live signature; the output
        // halves are n bytes each, which holds any value below the order.
        let ok = unsafe {
            sys::ECDSA_SIG_get0(sig.ptr.as_ptr(), &mut r, &mut s);
            sys::BN_bn2bin_padded(out.as_mut_ptr(), n, r) == 1
                && sys::BN_bn2bin_padded(out[n..].as_mut_ptr(), n, s) == 1
        };
        if ok {
            Ok(out)
        } else {
            Err(Rv::FunctionFailed)
        }
    }

    /// Whether an r || s signature is valid for the digest.
    pub fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> Result<bool> {
        let n = self.curve.field_len();
        if signature.len() != 2 * n {
            return Err(Rv::SignatureLenRange);
        }
        // SAFETY: a plain constructor.
        let sig = Owned::new(unsafe { sys::ECDSA_SIG_new() }, sys::ECDSA_SIG_free)?;
        // SAFETY: valid buffers; set0 takes ownership of r and s on success,
        // and on failure they are freed here.
        unsafe {
            let r = sys::BN_bin2bn(signature.as_ptr(), n, std::ptr::null_mut());
            let s = sys::BN_bin2bn(signature[n..].as_ptr(), n, std::ptr::null_mut());
            if r.is_null() || s.is_null() || sys::ECDSA_SIG_set0(sig.ptr.as_ptr(), r, s) != 1 {
                sys::BN_free(r);
                sys::BN_free(s);
                return Err(Rv::HostMemory);
            }
        }
        // SAFETY: valid digest buffer, live signature and key.
        let ok = unsafe {
            sys::ECDSA_do_verify(
                digest.as_ptr(),
                digest.len(),
                sig.ptr.as_ptr(),
                self.key.ptr.as_ptr(),
            )
        };
        Ok(ok == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        use aws_lc_rs::encoding::AsBigEndian;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let scalar = pair.private_key().as_be_bytes().unwrap();
        let private = EcKey::from_private(Curve::P384, scalar.as_ref()).unwrap();
        let public = EcKey::from_public(Curve::P384, pair.public_key().as_ref()).unwrap();
        let digest = [7u8; 48];
        let sig = private.sign_digest(&digest).unwrap();
        assert_eq!(sig.len(), 96);
        assert!(public.verify_digest(&digest, &sig).unwrap());
        assert!(!public.verify_digest(&[8u8; 48], &sig).unwrap());
        // A SHA-1-sized digest on this curve, as raw CKM_ECDSA allows.
        let short = private.sign_digest(&[1u8; 20]).unwrap();
        assert!(private.verify_digest(&[1u8; 20], &short).unwrap());
    }

    #[test]
    fn invalid_keys_are_refused() {
        assert!(EcKey::from_private(Curve::P256, &[0u8; 32]).is_err());
        assert!(EcKey::from_private(Curve::P256, &[0xff; 32]).is_err());
        let mut off_curve = vec![4u8];
        off_curve.extend_from_slice(&[1u8; 64]);
        assert!(EcKey::from_public(Curve::P256, &off_curve).is_err());
        assert!(EcKey::from_public(Curve::P256, &[]).is_err());
    }
}
