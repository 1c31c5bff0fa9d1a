//! The hashes, once: each with every name PKCS#11 gives it. The digest and
//! HMAC rows of the mechanism table, the hashed RSA and ECDSA rows, and the
//! parameters that name a hash (PSS and OAEP `hashAlg` and MGF1, ECDH's
//! KDF, HKDF's PRF, PBKDF2's PRF) all come from here.

use pkcs11_sys::*;

use crate::engine::Hash;

#[derive(Debug)]
pub struct HashRow {
    pub hash: Hash,
    /// The digest mechanism, which is also how PSS, OAEP and HKDF
    /// parameters name the hash.
    pub digest: CK_MECHANISM_TYPE,
    pub hmac: CK_MECHANISM_TYPE,
    pub hmac_general: CK_MECHANISM_TYPE,
    /// The key type of HMAC keys made for this hash (generic secrets serve
    /// every HMAC too).
    pub hmac_key_type: CK_KEY_TYPE,
    /// CKG_MGF1_*, where the specification names one.
    pub mgf1: Option<CK_RSA_PKCS_MGF_TYPE>,
    /// ECDH's CKD_*_KDF (ANSI X9.63), for the hashes it is offered with.
    pub ecdh_kdf: Option<CK_EC_KDF_TYPE>,
    /// CKP_PKCS5_PBKD2_HMAC_*, for the hashes PBKDF2 runs with.
    pub pbkdf2_prf: Option<CK_PROFILE_ID>,
    /// The DER of DigestInfo up to the digest (PKCS#1 v1.5 signatures).
    pub digest_info: &'static [u8],
}

/// DigestInfo of a hash under NIST's arc 2.16.840.1.101.3.4.2: its last
/// arc and its length.
const fn nist_digest_info(arc: u8, len: u8) -> [u8; 19] {
    [
        0x30,
        17 + len,
        0x30,
        0x0d,
        0x06,
        0x09,
        0x60,
        0x86,
        0x48,
        0x01,
        0x65,
        0x03,
        0x04,
        0x02,
        arc,
        0x05,
        0x00,
        0x04,
        len,
    ]
}

pub const MD5: HashRow = HashRow {
    hash: Hash::Md5,
    digest: CKM_MD5,
    hmac: CKM_MD5_HMAC,
    hmac_general: CKM_MD5_HMAC_GENERAL,
    hmac_key_type: CKK_MD5_HMAC,
    mgf1: None,
    ecdh_kdf: None,
    pbkdf2_prf: None,
    // OID 1.2.840.113549.2.5.
    digest_info: &[
        0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05,
        0x00, 0x04, 0x10,
    ],
};

pub const SHA1: HashRow = HashRow {
    hash: Hash::Sha1,
    digest: CKM_SHA_1,
    hmac: CKM_SHA_1_HMAC,
    hmac_general: CKM_SHA_1_HMAC_GENERAL,
    hmac_key_type: CKK_SHA_1_HMAC,
    mgf1: Some(CKG_MGF1_SHA1),
    ecdh_kdf: Some(CKD_SHA1_KDF),
    pbkdf2_prf: Some(CKP_PKCS5_PBKD2_HMAC_SHA1),
    // OID 1.3.14.3.2.26.
    digest_info: &[
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
    ],
};
pub const SHA224: HashRow = HashRow {
    hash: Hash::Sha224,
    digest: CKM_SHA224,
    hmac: CKM_SHA224_HMAC,
    hmac_general: CKM_SHA224_HMAC_GENERAL,
    hmac_key_type: CKK_SHA224_HMAC,
    mgf1: Some(CKG_MGF1_SHA224),
    ecdh_kdf: Some(CKD_SHA224_KDF),
    // Not in aws-lc-rs's PBKDF2.
    pbkdf2_prf: None,
    digest_info: &nist_digest_info(0x04, 28),
};
pub const SHA256: HashRow = HashRow {
    hash: Hash::Sha256,
    digest: CKM_SHA256,
    hmac: CKM_SHA256_HMAC,
    hmac_general: CKM_SHA256_HMAC_GENERAL,
    hmac_key_type: CKK_SHA256_HMAC,
    mgf1: Some(CKG_MGF1_SHA256),
    ecdh_kdf: Some(CKD_SHA256_KDF),
    pbkdf2_prf: Some(CKP_PKCS5_PBKD2_HMAC_SHA256),
    digest_info: &nist_digest_info(0x01, 32),
};
pub const SHA384: HashRow = HashRow {
    hash: Hash::Sha384,
    digest: CKM_SHA384,
    hmac: CKM_SHA384_HMAC,
    hmac_general: CKM_SHA384_HMAC_GENERAL,
    hmac_key_type: CKK_SHA384_HMAC,
    mgf1: Some(CKG_MGF1_SHA384),
    ecdh_kdf: Some(CKD_SHA384_KDF),
    pbkdf2_prf: Some(CKP_PKCS5_PBKD2_HMAC_SHA384),
    digest_info: &nist_digest_info(0x02, 48),
};
pub const SHA512: HashRow = HashRow {
    hash: Hash::Sha512,
    digest: CKM_SHA512,
    hmac: CKM_SHA512_HMAC,
    hmac_general: CKM_SHA512_HMAC_GENERAL,
    hmac_key_type: CKK_SHA512_HMAC,
    mgf1: Some(CKG_MGF1_SHA512),
    ecdh_kdf: Some(CKD_SHA512_KDF),
    pbkdf2_prf: Some(CKP_PKCS5_PBKD2_HMAC_SHA512),
    digest_info: &nist_digest_info(0x03, 64),
};
pub const SHA512_224: HashRow = HashRow {
    hash: Hash::Sha512_224,
    digest: CKM_SHA512_224,
    hmac: CKM_SHA512_224_HMAC,
    hmac_general: CKM_SHA512_224_HMAC_GENERAL,
    hmac_key_type: CKK_SHA512_224_HMAC,
    mgf1: None,
    ecdh_kdf: None,
    pbkdf2_prf: None,
    digest_info: &nist_digest_info(0x05, 28),
};
pub const SHA512_256: HashRow = HashRow {
    hash: Hash::Sha512_256,
    digest: CKM_SHA512_256,
    hmac: CKM_SHA512_256_HMAC,
    hmac_general: CKM_SHA512_256_HMAC_GENERAL,
    hmac_key_type: CKK_SHA512_256_HMAC,
    mgf1: None,
    ecdh_kdf: None,
    pbkdf2_prf: None,
    digest_info: &nist_digest_info(0x06, 32),
};
pub const SHA3_224: HashRow = HashRow {
    hash: Hash::Sha3_224,
    digest: CKM_SHA3_224,
    hmac: CKM_SHA3_224_HMAC,
    hmac_general: CKM_SHA3_224_HMAC_GENERAL,
    hmac_key_type: CKK_SHA3_224_HMAC,
    mgf1: Some(CKG_MGF1_SHA3_224),
    ecdh_kdf: None,
    pbkdf2_prf: None,
    digest_info: &nist_digest_info(0x07, 28),
};
pub const SHA3_256: HashRow = HashRow {
    hash: Hash::Sha3_256,
    digest: CKM_SHA3_256,
    hmac: CKM_SHA3_256_HMAC,
    hmac_general: CKM_SHA3_256_HMAC_GENERAL,
    hmac_key_type: CKK_SHA3_256_HMAC,
    mgf1: Some(CKG_MGF1_SHA3_256),
    ecdh_kdf: None,
    pbkdf2_prf: None,
    digest_info: &nist_digest_info(0x08, 32),
};
pub const SHA3_384: HashRow = HashRow {
    hash: Hash::Sha3_384,
    digest: CKM_SHA3_384,
    hmac: CKM_SHA3_384_HMAC,
    hmac_general: CKM_SHA3_384_HMAC_GENERAL,
    hmac_key_type: CKK_SHA3_384_HMAC,
    mgf1: Some(CKG_MGF1_SHA3_384),
    ecdh_kdf: None,
    pbkdf2_prf: None,
    digest_info: &nist_digest_info(0x09, 48),
};
pub const SHA3_512: HashRow = HashRow {
    hash: Hash::Sha3_512,
    digest: CKM_SHA3_512,
    hmac: CKM_SHA3_512_HMAC,
    hmac_general: CKM_SHA3_512_HMAC_GENERAL,
    hmac_key_type: CKK_SHA3_512_HMAC,
    mgf1: Some(CKG_MGF1_SHA3_512),
    ecdh_kdf: None,
    pbkdf2_prf: None,
    digest_info: &nist_digest_info(0x0a, 64),
};

pub static HASHES: &[&HashRow] = &[
    &MD5,
    &SHA1,
    &SHA224,
    &SHA256,
    &SHA384,
    &SHA512,
    &SHA512_224,
    &SHA512_256,
    &SHA3_224,
    &SHA3_256,
    &SHA3_384,
    &SHA3_512,
];

/// The hash a parameter names by its digest mechanism.
pub fn by_digest(ty: CK_MECHANISM_TYPE) -> Option<&'static HashRow> {
    HASHES.iter().copied().find(|h| h.digest == ty)
}

pub fn by_mgf1(mgf: CK_RSA_PKCS_MGF_TYPE) -> Option<&'static HashRow> {
    HASHES.iter().copied().find(|h| h.mgf1 == Some(mgf))
}

pub fn by_ecdh_kdf(kdf: CK_EC_KDF_TYPE) -> Option<&'static HashRow> {
    HASHES.iter().copied().find(|h| h.ecdh_kdf == Some(kdf))
}

pub fn by_pbkdf2_prf(prf: CK_PROFILE_ID) -> Option<&'static HashRow> {
    HASHES.iter().copied().find(|h| h.pbkdf2_prf == Some(prf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_digest_info_names_its_hash_and_length() {
        for h in HASHES {
            let info = h.digest_info;
            // The whole DigestInfo's length, and the digest's at the end.
            assert_eq!(info[1] as usize + 2, info.len() + h.hash.output_len());
            assert_eq!(info[info.len() - 1] as usize, h.hash.output_len());
        }
    }

    #[test]
    fn every_name_finds_one_hash() {
        for h in HASHES {
            assert!(std::ptr::eq(by_digest(h.digest).unwrap(), *h));
            if let Some(m) = h.mgf1 {
                assert!(std::ptr::eq(by_mgf1(m).unwrap(), *h));
            }
            if let Some(k) = h.ecdh_kdf {
                assert!(std::ptr::eq(by_ecdh_kdf(k).unwrap(), *h));
            }
            if let Some(p) = h.pbkdf2_prf {
                assert!(std::ptr::eq(by_pbkdf2_prf(p).unwrap(), *h));
            }
        }
    }
}
