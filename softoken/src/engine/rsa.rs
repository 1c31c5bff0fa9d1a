//! RSA from PKCS#11's key components: key generation with the caller's
//! exponent, PKCS#1 v1.5 over a caller-built DigestInfo, PSS over a digest,
//! the raw (X.509) operation, and encryption with PKCS#1 v1.5 or OAEP.
//! aws-lc's private-key operations are constant-time and blinded.

use aws_lc_sys as sys;
use zeroize::Zeroizing;

use super::hash::Hash;
use super::{Direction, Owned};
use crate::rv::{Result, Rv};

/// The padding of a raw RSA private-key operation: PKCS#1 v1.5 type 1
/// (CKM_RSA_PKCS), or none (CKM_RSA_X_509, input zero-extended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawPadding {
    Pkcs1,
    None,
}

/// The components of an RSA private key, big-endian, as PKCS#11 stores them.
pub struct RsaParts {
    pub modulus: Vec<u8>,
    pub public_exponent: Vec<u8>,
    pub private_exponent: Zeroizing<Vec<u8>>,
    pub prime_1: Zeroizing<Vec<u8>>,
    pub prime_2: Zeroizing<Vec<u8>>,
    pub exponent_1: Zeroizing<Vec<u8>>,
    pub exponent_2: Zeroizing<Vec<u8>>,
    pub coefficient: Zeroizing<Vec<u8>>,
}

/// A BIGNUM from big-endian bytes; null on failure.
fn bn(bytes: &[u8]) -> *mut sys::BIGNUM {
    // SAFETY: valid buffer and length; a new BIGNUM is returned.
    unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), std::ptr::null_mut()) }
}

/// Big-endian bytes of a BIGNUM (minimal length, as PKCS#11 wants).
fn bn_bytes(b: *const sys::BIGNUM) -> Zeroizing<Vec<u8>> {
    // SAFETY: a live BIGNUM; the buffer is sized by BN_num_bytes.
    unsafe {
        let mut out = Zeroizing::new(vec![0u8; sys::BN_num_bytes(b) as usize]);
        sys::BN_bn2bin(b, out.as_mut_ptr());
        out
    }
}

/// An RSA key: private (with CRT components) or public.
pub struct RsaKey {
    rsa: Owned<sys::RSA>,
}

// SAFETY: the RSA object is owned by this value alone; aws-lc allows using
// a key from any thread (its blinding cache is locked internally).
unsafe impl Send for RsaKey {}
// SAFETY: every operation takes the key by shared reference, and aws-lc's
// RSA operations may run on one key from several threads at once (the
// lazily built Montgomery contexts and the blinding cache are locked).
unsafe impl Sync for RsaKey {}

impl RsaKey {
    fn empty() -> Result<RsaKey> {
        Ok(RsaKey {
            // SAFETY: a plain constructor.
            rsa: Owned::new(unsafe { sys::RSA_new() }, sys::RSA_free)?,
        })
    }

    fn ptr(&self) -> *mut sys::RSA {
        self.rsa.ptr.as_ptr()
    }

    /// Sets n, e and (when given) d; the values are handed over to the RSA.
    fn set_key(&self, n: &[u8], e: &[u8], d: Option<&[u8]>) -> Result<()> {
        let (n, e) = (bn(n), bn(e));
        let d = d.map_or(std::ptr::null_mut(), bn);
        // SAFETY: on success the RSA owns the BIGNUMs; on failure we free them.
        unsafe {
            if n.is_null() || e.is_null() || sys::RSA_set0_key(self.ptr(), n, e, d) != 1 {
                sys::BN_free(n);
                sys::BN_free(e);
                sys::BN_clear_free(d);
                return Err(Rv::KeyTypeInconsistent);
            }
        }
        Ok(())
    }

    /// A public key.
    pub fn from_public(modulus: &[u8], public_exponent: &[u8]) -> Result<RsaKey> {
        let key = RsaKey::empty()?;
        key.set_key(modulus, public_exponent, None)?;
        Ok(key)
    }

    /// A private key with its CRT components, checked for consistency.
    pub fn from_private(parts: &RsaParts) -> Result<RsaKey> {
        crate::engine::secret::mark_stack();
        let key = RsaKey::empty()?;
        key.set_key(
            &parts.modulus,
            &parts.public_exponent,
            Some(&parts.private_exponent),
        )?;
        let (p, q) = (bn(&parts.prime_1), bn(&parts.prime_2));
        let (dp, dq, qinv) = (
            bn(&parts.exponent_1),
            bn(&parts.exponent_2),
            bn(&parts.coefficient),
        );
        // SAFETY: on success the RSA owns the BIGNUMs; on failure we free them.
        unsafe {
            let factors =
                !p.is_null() && !q.is_null() && sys::RSA_set0_factors(key.ptr(), p, q) == 1;
            if !factors {
                sys::BN_clear_free(p);
                sys::BN_clear_free(q);
            }
            let crt = factors
                && !dp.is_null()
                && !dq.is_null()
                && !qinv.is_null()
                && sys::RSA_set0_crt_params(key.ptr(), dp, dq, qinv) == 1;
            if !crt {
                sys::BN_clear_free(dp);
                sys::BN_clear_free(dq);
                sys::BN_clear_free(qinv);
                return Err(Rv::KeyTypeInconsistent);
            }
            if sys::RSA_check_key(key.ptr()) != 1 {
                return Err(Rv::KeyTypeInconsistent);
            }
        }
        Ok(key)
    }

    /// A new key of `bits` bits with the public exponent `e`.
    pub fn generate(bits: usize, e: &[u8]) -> Result<RsaParts> {
        crate::engine::secret::mark_stack();
        let key = RsaKey::empty()?;
        // SAFETY: a new BIGNUM, freed by Owned.
        let e = Owned::new(bn(e), sys::BN_free)?;
        let bits = i32::try_from(bits).map_err(|_| Rv::KeySizeRange)?;
        // SAFETY: live RSA and exponent; no callback.
        if unsafe {
            sys::RSA_generate_key_ex(key.ptr(), bits, e.ptr.as_ptr(), std::ptr::null_mut())
        } != 1
        {
            return Err(Rv::FunctionFailed);
        }
        let mut v: [*const sys::BIGNUM; 8] = [std::ptr::null(); 8];
        // SAFETY: the getters borrow components of the live key.
        unsafe {
            sys::RSA_get0_key(key.ptr(), &mut v[0], &mut v[1], &mut v[2]);
            sys::RSA_get0_factors(key.ptr(), &mut v[3], &mut v[4]);
            sys::RSA_get0_crt_params(key.ptr(), &mut v[5], &mut v[6], &mut v[7]);
        }
        if v.iter().any(|p| p.is_null()) {
            return Err(Rv::FunctionFailed);
        }
        Ok(RsaParts {
            modulus: bn_bytes(v[0]).to_vec(),
            public_exponent: bn_bytes(v[1]).to_vec(),
            private_exponent: bn_bytes(v[2]),
            prime_1: bn_bytes(v[3]),
            prime_2: bn_bytes(v[4]),
            exponent_1: bn_bytes(v[5]),
            exponent_2: bn_bytes(v[6]),
            coefficient: bn_bytes(v[7]),
        })
    }

    /// The modulus length in bytes (the signature length).
    pub fn size(&self) -> usize {
        // SAFETY: a live key with a modulus.
        unsafe { sys::RSA_size(self.ptr()) as usize }
    }

    /// The private-key operation with PKCS#1 v1.5 type 1 padding (or none,
    /// for the raw X.509 mechanism, whose input is zero-extended).
    pub fn sign_raw(&self, input: &[u8], padding: RawPadding) -> Result<Vec<u8>> {
        crate::engine::secret::mark_stack();
        let k = self.size();
        let (input, padding) = if padding == RawPadding::Pkcs1 {
            if input.len() + 11 > k {
                return Err(Rv::DataLenRange);
            }
            (input.to_vec(), sys::RSA_PKCS1_PADDING)
        } else {
            if input.len() > k {
                return Err(Rv::DataLenRange);
            }
            let mut block = vec![0u8; k - input.len()];
            block.extend_from_slice(input);
            (block, sys::RSA_NO_PADDING)
        };
        let mut out = vec![0u8; k];
        let mut len = 0;
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::RSA_sign_raw(
                self.ptr(),
                &mut len,
                out.as_mut_ptr(),
                k,
                input.as_ptr(),
                input.len(),
                padding,
            )
        };
        if ok != 1 {
            // Input not below the modulus (raw), or a key without its private half.
            return Err(Rv::DataInvalid);
        }
        out.truncate(len);
        Ok(out)
    }

    /// What a PKCS#1 v1.5 (or raw) signature holds: the signed input (or the
    /// whole block). A signature that is not one is SignatureInvalid.
    pub fn recover(&self, signature: &[u8], padding: RawPadding) -> Result<Vec<u8>> {
        let k = self.size();
        if signature.len() != k {
            return Err(Rv::SignatureLenRange);
        }
        let mut out = vec![0u8; k];
        let mut len = 0;
        let padding = match padding {
            RawPadding::Pkcs1 => sys::RSA_PKCS1_PADDING,
            RawPadding::None => sys::RSA_NO_PADDING,
        };
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::RSA_verify_raw(
                self.ptr(),
                &mut len,
                out.as_mut_ptr(),
                k,
                signature.as_ptr(),
                signature.len(),
                padding,
            )
        };
        if ok != 1 {
            return Err(Rv::SignatureInvalid);
        }
        out.truncate(len);
        Ok(out)
    }

    /// Checks a PKCS#1 v1.5 (or raw) signature against the expected input.
    pub fn verify_raw(&self, input: &[u8], signature: &[u8], padding: RawPadding) -> Result<bool> {
        let k = self.size();
        let out = match self.recover(signature, padding) {
            Ok(out) => out,
            Err(Rv::SignatureInvalid) => return Ok(false),
            Err(e) => return Err(e),
        };
        let expected: Vec<u8> = if padding == RawPadding::Pkcs1 {
            input.to_vec()
        } else {
            let mut block = vec![0u8; k.saturating_sub(input.len())];
            block.extend_from_slice(input);
            block
        };
        Ok(out.len() == expected.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&out, &expected).is_ok())
    }

    /// An RSA-PSS signature over a digest.
    pub fn sign_pss(
        &self,
        digest: &[u8],
        hash: Hash,
        mgf: Hash,
        salt_len: usize,
    ) -> Result<Vec<u8>> {
        crate::engine::secret::mark_stack();
        if digest.len() != hash.output_len() {
            return Err(Rv::DataLenRange);
        }
        let k = self.size();
        let salt = i32::try_from(salt_len).map_err(|_| Rv::MechanismParamInvalid)?;
        let mut out = vec![0u8; k];
        let mut len = 0;
        // SAFETY: valid buffers of the sizes given; static digest tables.
        let ok = unsafe {
            sys::RSA_sign_pss_mgf1(
                self.ptr(),
                &mut len,
                out.as_mut_ptr(),
                k,
                digest.as_ptr(),
                digest.len(),
                hash.md(),
                mgf.md(),
                salt,
            )
        };
        if ok != 1 {
            // The salt does not fit this modulus.
            return Err(Rv::MechanismParamInvalid);
        }
        out.truncate(len);
        Ok(out)
    }

    pub fn verify_pss(
        &self,
        digest: &[u8],
        signature: &[u8],
        hash: Hash,
        mgf: Hash,
        salt_len: usize,
    ) -> Result<bool> {
        if signature.len() != self.size() {
            return Err(Rv::SignatureLenRange);
        }
        if digest.len() != hash.output_len() {
            return Err(Rv::DataLenRange);
        }
        let salt = i32::try_from(salt_len).map_err(|_| Rv::MechanismParamInvalid)?;
        // SAFETY: valid buffers of the sizes given; static digest tables.
        let ok = unsafe {
            sys::RSA_verify_pss_mgf1(
                self.ptr(),
                digest.as_ptr(),
                digest.len(),
                hash.md(),
                mgf.md(),
                salt,
                signature.as_ptr(),
                signature.len(),
            )
        };
        Ok(ok == 1)
    }
}

/// The padding of RSA encryption.
#[derive(Clone, Debug)]
pub enum RsaPadding {
    Pkcs1,
    /// None: the raw operation on a zero-extended block (CKM_RSA_X_509).
    Raw,
    Oaep {
        hash: Hash,
        mgf: Hash,
        label: Vec<u8>,
    },
}

impl RsaKey {
    /// An EVP_PKEY context over this key, set up for `padding`.
    fn pkey_ctx(
        &self,
        padding: &RsaPadding,
        direction: Direction,
    ) -> Result<Owned<sys::EVP_PKEY_CTX>> {
        // SAFETY: plain constructors; set1 takes its own reference to the RSA.
        let pkey = Owned::new(unsafe { sys::EVP_PKEY_new() }, sys::EVP_PKEY_free)?;
        // SAFETY: the key just made; set1 takes its own reference to the RSA.
        if unsafe { sys::EVP_PKEY_set1_RSA(pkey.ptr.as_ptr(), self.ptr()) } != 1 {
            return Err(Rv::GeneralError);
        }
        // SAFETY: the context takes its own reference to the key.
        let ctx = Owned::new(
            unsafe { sys::EVP_PKEY_CTX_new(pkey.ptr.as_ptr(), std::ptr::null_mut()) },
            sys::EVP_PKEY_CTX_free,
        )?;
        let c = ctx.ptr.as_ptr();
        // SAFETY: a live context; static digest tables.
        let ok = unsafe {
            let init = match direction {
                Direction::Encrypt => sys::EVP_PKEY_encrypt_init(c),
                Direction::Decrypt => sys::EVP_PKEY_decrypt_init(c),
            };
            init == 1
                && match padding {
                    RsaPadding::Pkcs1 => {
                        sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_PKCS1_PADDING) == 1
                    }
                    RsaPadding::Raw => {
                        sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_NO_PADDING) == 1
                    }
                    RsaPadding::Oaep { hash, mgf, label } => {
                        sys::EVP_PKEY_CTX_set_rsa_padding(c, sys::RSA_PKCS1_OAEP_PADDING) == 1
                            && sys::EVP_PKEY_CTX_set_rsa_oaep_md(c, hash.md()) == 1
                            && sys::EVP_PKEY_CTX_set_rsa_mgf1_md(c, mgf.md()) == 1
                            && (label.is_empty() || {
                                // The context takes ownership of an aws-lc allocation.
                                let copy = sys::OPENSSL_malloc(label.len()) as *mut u8;
                                if copy.is_null() {
                                    false
                                } else {
                                    std::ptr::copy_nonoverlapping(
                                        label.as_ptr(),
                                        copy,
                                        label.len(),
                                    );
                                    let set =
                                        sys::EVP_PKEY_CTX_set0_rsa_oaep_label(c, copy, label.len())
                                            == 1;
                                    if !set {
                                        sys::OPENSSL_free(copy as *mut _);
                                    }
                                    set
                                }
                            })
                    }
                }
        };
        if ok {
            Ok(ctx)
        } else {
            Err(Rv::MechanismParamInvalid)
        }
    }

    pub fn encrypt(&self, input: &[u8], padding: &RsaPadding) -> Result<Vec<u8>> {
        let k = self.size();
        let input = match padding {
            RsaPadding::Raw if input.len() <= k => {
                [vec![0u8; k - input.len()], input.to_vec()].concat()
            }
            _ => input.to_vec(),
        };
        let ctx = self.pkey_ctx(padding, Direction::Encrypt)?;
        let mut out = vec![0u8; k];
        let mut len = k;
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::EVP_PKEY_encrypt(
                ctx.ptr.as_ptr(),
                out.as_mut_ptr(),
                &mut len,
                input.as_ptr(),
                input.len(),
            )
        };
        if ok != 1 {
            // Too long for the padding, or (raw) not below the modulus.
            return Err(Rv::DataLenRange);
        }
        out.truncate(len);
        Ok(out)
    }

    pub fn decrypt(&self, input: &[u8], padding: &RsaPadding) -> Result<Zeroizing<Vec<u8>>> {
        crate::engine::secret::mark_stack();
        let k = self.size();
        if input.len() != k {
            return Err(Rv::EncryptedDataLenRange);
        }
        let ctx = self.pkey_ctx(padding, Direction::Decrypt)?;
        let mut out = Zeroizing::new(vec![0u8; k]);
        let mut len = k;
        // SAFETY: valid buffers of the sizes given.
        let ok = unsafe {
            sys::EVP_PKEY_decrypt(
                ctx.ptr.as_ptr(),
                out.as_mut_ptr(),
                &mut len,
                input.as_ptr(),
                input.len(),
            )
        };
        if ok != 1 {
            return Err(Rv::EncryptedDataInvalid);
        }
        out.truncate(len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_generate_sign_verify() {
        let parts = RsaKey::generate(2048, &[1, 0, 1]).unwrap();
        assert_eq!(parts.modulus.len(), 256);
        assert_eq!(parts.public_exponent, vec![1, 0, 1]);
        let private = RsaKey::from_private(&parts).unwrap();
        let public = RsaKey::from_public(&parts.modulus, &parts.public_exponent).unwrap();
        let sig = private.sign_raw(b"digest info", RawPadding::Pkcs1).unwrap();
        assert_eq!(sig.len(), 256);
        assert!(public
            .verify_raw(b"digest info", &sig, RawPadding::Pkcs1)
            .unwrap());
        assert!(!public
            .verify_raw(b"digest inf0", &sig, RawPadding::Pkcs1)
            .unwrap());
        let pss = private
            .sign_pss(&[5; 32], Hash::Sha256, Hash::Sha256, 32)
            .unwrap();
        assert!(public
            .verify_pss(&[5; 32], &pss, Hash::Sha256, Hash::Sha256, 32)
            .unwrap());
        assert!(!public
            .verify_pss(&[6; 32], &pss, Hash::Sha256, Hash::Sha256, 32)
            .unwrap());
        // A caller's exponent is honoured.
        let odd = RsaKey::generate(2048, &[0x01, 0x00, 0x00, 0x01]).unwrap();
        assert_eq!(odd.public_exponent, vec![0x01, 0x00, 0x00, 0x01]);
        // Inconsistent components are refused.
        let mut broken = RsaKey::generate(2048, &[1, 0, 1]).unwrap();
        broken.prime_1 = parts.prime_1.clone();
        assert!(RsaKey::from_private(&broken).is_err());
    }
}
