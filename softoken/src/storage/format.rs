//! How attribute values are stored in NSS's databases: which types are
//! 32-bit big-endian numbers on disk, which NSS encrypts and which it
//! protects with an integrity record.

use pkcs11_sys::*;

use crate::nss::*;
use crate::rv::{Result, Rv};

/// Whether NSS stores this type as a 4-byte big-endian CK_ULONG.
pub fn is_ulong(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_CLASS
            | CKA_CERTIFICATE_TYPE
            | CKA_CERTIFICATE_CATEGORY
            | CKA_JAVA_MIDP_SECURITY_DOMAIN
            | CKA_KEY_TYPE
            | CKA_MODULUS_BITS
            | CKA_PRIME_BITS
            | CKA_SUBPRIME_BITS
            | CKA_VALUE_BITS
            | CKA_VALUE_LEN
            | CKA_KEY_GEN_MECHANISM
            | CKA_MECHANISM_TYPE
            | CKA_NAME_HASH_ALGORITHM
    ) || (CKA_TRUST_DIGITAL_SIGNATURE..=CKA_TRUST_STEP_UP_APPROVED).contains(&t)
}

/// The attributes NSS encrypts in the key database.
pub fn is_encrypted(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_VALUE
            | CKA_PRIVATE_EXPONENT
            | CKA_PRIME_1
            | CKA_PRIME_2
            | CKA_EXPONENT_1
            | CKA_EXPONENT_2
            | CKA_COEFFICIENT
    )
}

/// The public attributes NSS protects with an integrity record.
pub fn is_authenticated(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_MODULUS
            | CKA_PUBLIC_EXPONENT
            | CKA_CERT_SHA1_HASH
            | CKA_CERT_MD5_HASH
            | CKA_TRUST_SERVER_AUTH
            | CKA_TRUST_CLIENT_AUTH
            | CKA_TRUST_EMAIL_PROTECTION
            | CKA_TRUST_CODE_SIGNING
            | CKA_TRUST_STEP_UP_APPROVED
            | CKA_NSS_OVERRIDE_EXTENSIONS
    )
}

/// 0xffffffff on disk stands for CK_UNAVAILABLE_INFORMATION (and
/// CK_EFFECTIVELY_INFINITE-style all-ones values).
const DISK_ALL_ONES: u32 = u32::MAX;

/// The on-disk form of a value (CK_ULONG types become big-endian 32-bit).
pub fn to_disk(t: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Result<Vec<u8>> {
    if is_ulong(t) && v.len() == std::mem::size_of::<CK_ULONG>() {
        let n = CK_ULONG::from_ne_bytes(v.try_into().map_err(|_| Rv::GeneralError)?);
        let n32 = if n == CK_UNAVAILABLE_INFORMATION {
            DISK_ALL_ONES
        } else {
            u32::try_from(n).map_err(|_| Rv::AttributeValueInvalid)?
        };
        return Ok(n32.to_be_bytes().to_vec());
    }
    Ok(v.to_vec())
}

/// The caller's form of a stored value.
pub fn from_disk(t: CK_ATTRIBUTE_TYPE, v: Vec<u8>) -> Vec<u8> {
    if is_ulong(t) {
        if let Ok(b) = <[u8; 4]>::try_from(v.as_slice()) {
            let n = u32::from_be_bytes(b);
            let wide = if n == DISK_ALL_ONES {
                CK_UNAVAILABLE_INFORMATION
            } else {
                CK_ULONG::from(n)
            };
            return wide.to_ne_bytes().to_vec();
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulong_values_round_trip_through_disk_form() {
        let class = CKO_CERTIFICATE.to_ne_bytes();
        assert_eq!(to_disk(CKA_CLASS, &class).unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(from_disk(CKA_CLASS, vec![0, 0, 0, 1]), class.to_vec());
        let unavailable = CK_UNAVAILABLE_INFORMATION.to_ne_bytes();
        let disk = to_disk(CKA_KEY_GEN_MECHANISM, &unavailable).unwrap();
        assert_eq!(disk, vec![0xff; 4]);
        assert_eq!(from_disk(CKA_KEY_GEN_MECHANISM, disk), unavailable.to_vec());
        // The one-byte STEP_UP bool NSS writes stays as it is.
        assert_eq!(from_disk(CKA_TRUST_STEP_UP_APPROVED, vec![0]), vec![0]);
        assert_eq!(to_disk(CKA_LABEL, b"x").unwrap(), b"x");
        assert_eq!(
            to_disk(CKA_CLASS, &(1u64 << 40).to_ne_bytes()).unwrap_err(),
            Rv::AttributeValueInvalid
        );
    }
}
