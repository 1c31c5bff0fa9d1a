//! What a wrapped key is: a secret key's value, or a private key's PKCS#8
//! PrivateKeyInfo (RSA, NIST EC, Ed25519, X25519, DSA); and the reverse, a key
//! object's attributes from unwrapped bytes.

use der::asn1::{Any, BitString, ObjectIdentifier as Oid, OctetString, UintRef};
use der::{Decode, Encode, Sequence};
use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::object::attrs::Attrs;
use crate::rv::{Result, Rv};
use crate::storage::pbe::AlgorithmIdentifier;

const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
const X25519: Oid = Oid::new_unwrap("1.3.101.110");
const DSA: Oid = Oid::new_unwrap("1.2.840.10040.4.1");

#[derive(Sequence)]
struct PrivateKeyInfo {
    version: u8,
    algorithm: AlgorithmIdentifier,
    private_key: OctetString,
}

/// RFC 5915's ECPrivateKey.
#[derive(Sequence)]
struct EcPrivateKey {
    version: u8,
    private_key: OctetString,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    parameters: Option<Oid>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    public_key: Option<BitString>,
}

/// RFC 3279's Dss-Parms: DSA's group, the parameters of its algorithm.
#[derive(Sequence)]
struct DssParms<'a> {
    p: UintRef<'a>,
    q: UintRef<'a>,
    g: UintRef<'a>,
}

fn encode<T: Encode>(value: &T) -> Result<Zeroizing<Vec<u8>>> {
    value
        .to_der()
        .map(Zeroizing::new)
        .map_err(|_| Rv::GeneralError)
}

fn octets(bytes: &[u8]) -> Result<OctetString> {
    OctetString::new(bytes.to_vec()).map_err(|_| Rv::GeneralError)
}

/// The plaintext a key is wrapped as.
pub fn key_bytes(key: &Attrs) -> Result<Zeroizing<Vec<u8>>> {
    let get = |t| key.get(t).ok_or(Rv::KeyNotWrappable);
    match key.ulong(CKA_CLASS) {
        Some(CKO_SECRET_KEY) => Ok(Zeroizing::new(get(CKA_VALUE)?.to_vec())),
        Some(CKO_PRIVATE_KEY) => {
            let (algorithm, private_key) = match key.ulong(CKA_KEY_TYPE) {
                Some(CKK_RSA) => {
                    let uint = |t| {
                        pkcs1::UintRef::new(key.get(t).unwrap_or_default())
                            .map_err(|_| Rv::KeyNotWrappable)
                    };
                    let rsa = pkcs1::RsaPrivateKey {
                        modulus: uint(CKA_MODULUS)?,
                        public_exponent: uint(CKA_PUBLIC_EXPONENT)?,
                        private_exponent: uint(CKA_PRIVATE_EXPONENT)?,
                        prime1: uint(CKA_PRIME_1)?,
                        prime2: uint(CKA_PRIME_2)?,
                        exponent1: uint(CKA_EXPONENT_1)?,
                        exponent2: uint(CKA_EXPONENT_2)?,
                        coefficient: uint(CKA_COEFFICIENT)?,
                        other_prime_infos: None,
                    };
                    let alg = AlgorithmIdentifier {
                        oid: RSA_ENCRYPTION,
                        parameters: Some(Any::from(der::asn1::Null)),
                    };
                    (alg, encode(&rsa)?)
                }
                Some(CKK_EC) => {
                    let params = get(CKA_EC_PARAMS)?;
                    let curve =
                        crate::mechanism::ec::curve_of(params).map_err(|_| Rv::KeyNotWrappable)?;
                    let oid = Oid::from_der(params).map_err(|_| Rv::KeyNotWrappable)?;
                    // The scalar at the curve's full width, as RFC 5915 says.
                    let scalar = get(CKA_VALUE)?;
                    let width = curve.field_len();
                    if scalar.len() > width {
                        return Err(Rv::KeyNotWrappable);
                    }
                    let mut padded = Zeroizing::new(vec![0u8; width - scalar.len()]);
                    padded.extend_from_slice(scalar);
                    let ec = EcPrivateKey {
                        version: 1,
                        private_key: octets(&padded)?,
                        parameters: Some(oid),
                        public_key: None,
                    };
                    let alg = AlgorithmIdentifier {
                        oid: EC_PUBLIC_KEY,
                        parameters: Some(Any::encode_from(&oid).map_err(|_| Rv::GeneralError)?),
                    };
                    (alg, encode(&ec)?)
                }
                Some(kt @ (CKK_EC_EDWARDS | CKK_EC_MONTGOMERY)) => {
                    let oid = if kt == CKK_EC_EDWARDS {
                        ED25519
                    } else {
                        X25519
                    };
                    let inner = encode(&octets(get(CKA_VALUE)?)?)?;
                    (
                        AlgorithmIdentifier {
                            oid,
                            parameters: None,
                        },
                        inner,
                    )
                }
                Some(CKK_DSA) => {
                    let uint = |t| UintRef::new(get(t)?).map_err(|_| Rv::KeyNotWrappable);
                    let group = DssParms {
                        p: uint(CKA_PRIME)?,
                        q: uint(CKA_SUBPRIME)?,
                        g: uint(CKA_BASE)?,
                    };
                    let alg = AlgorithmIdentifier {
                        oid: DSA,
                        parameters: Some(Any::encode_from(&group).map_err(|_| Rv::GeneralError)?),
                    };
                    (alg, encode(&uint(CKA_VALUE)?)?)
                }
                _ => return Err(Rv::KeyNotWrappable),
            };
            let info = PrivateKeyInfo {
                version: 0,
                algorithm,
                private_key: octets(&private_key)?,
            };
            encode(&info)
        }
        _ => Err(Rv::KeyNotWrappable),
    }
}

/// A PKCS#8 encoding as a block mode without padding of its own (AES-ECB,
/// AES-CBC, RFC 3394) wraps it: followed by the zeros, fewer than a block,
/// that filled its last block. The encoding alone; anything else as it is.
fn without_zero_padding(plaintext: &[u8]) -> &[u8] {
    const MOST_PADDING: usize = 15;
    if let Err(e) = PrivateKeyInfo::from_der(plaintext) {
        if let der::ErrorKind::TrailingData { decoded, .. } = e.kind() {
            let end = usize::try_from(decoded).unwrap_or(usize::MAX);
            if let Some(padding) = plaintext.get(end..) {
                if padding.len() <= MOST_PADDING && padding.iter().all(|b| *b == 0) {
                    return &plaintext[..end];
                }
            }
        }
    }
    plaintext
}

/// The template of an unwrapped key: the caller's template with the
/// values the plaintext carries.
pub fn unwrapped_key(plaintext: &[u8], template: &Attrs) -> Result<Attrs> {
    let class = template.ulong(CKA_CLASS).ok_or(Rv::TemplateIncomplete)?;
    let mut values = Attrs::new();
    match class {
        CKO_SECRET_KEY => {
            let value = match template.get(CKA_VALUE_LEN) {
                // A length given in the template trims block padding.
                Some(_) => {
                    let n = template
                        .ulong(CKA_VALUE_LEN)
                        .ok_or(Rv::AttributeValueInvalid)? as usize;
                    plaintext.get(..n).ok_or(Rv::TemplateInconsistent)?
                }
                None => plaintext,
            };
            values.set(CKA_VALUE, value.to_vec());
        }
        CKO_PRIVATE_KEY => {
            let info = PrivateKeyInfo::from_der(without_zero_padding(plaintext))
                .map_err(|_| Rv::WrappedKeyInvalid)?;
            let inner = info.private_key.as_bytes();
            match info.algorithm.oid {
                RSA_ENCRYPTION => {
                    let rsa = pkcs1::RsaPrivateKeyRef::from_der(inner)
                        .map_err(|_| Rv::WrappedKeyInvalid)?;
                    values.set_ulong(CKA_KEY_TYPE, CKK_RSA);
                    for (t, v) in [
                        (CKA_MODULUS, rsa.modulus),
                        (CKA_PUBLIC_EXPONENT, rsa.public_exponent),
                        (CKA_PRIVATE_EXPONENT, rsa.private_exponent),
                        (CKA_PRIME_1, rsa.prime1),
                        (CKA_PRIME_2, rsa.prime2),
                        (CKA_EXPONENT_1, rsa.exponent1),
                        (CKA_EXPONENT_2, rsa.exponent2),
                        (CKA_COEFFICIENT, rsa.coefficient),
                    ] {
                        values.set(t, v.as_bytes().to_vec());
                    }
                }
                EC_PUBLIC_KEY => {
                    let ec = EcPrivateKey::from_der(inner).map_err(|_| Rv::WrappedKeyInvalid)?;
                    let oid: Oid = match (&info.algorithm.parameters, ec.parameters) {
                        (Some(any), _) => any.decode_as().map_err(|_| Rv::WrappedKeyInvalid)?,
                        (None, Some(oid)) => oid,
                        (None, None) => return Err(Rv::WrappedKeyInvalid),
                    };
                    let params = oid.to_der().map_err(|_| Rv::GeneralError)?;
                    crate::mechanism::ec::curve_of(&params).map_err(|_| Rv::WrappedKeyInvalid)?;
                    values.set_ulong(CKA_KEY_TYPE, CKK_EC);
                    values.set(CKA_EC_PARAMS, params);
                    values.set(CKA_VALUE, ec.private_key.as_bytes().to_vec());
                }
                oid @ (ED25519 | X25519) => {
                    let seed = OctetString::from_der(inner).map_err(|_| Rv::WrappedKeyInvalid)?;
                    let (key_type, params) = if oid == ED25519 {
                        (CKK_EC_EDWARDS, [0x06, 0x03, 0x2b, 0x65, 0x70])
                    } else {
                        (CKK_EC_MONTGOMERY, [0x06, 0x03, 0x2b, 0x65, 0x6e])
                    };
                    values.set_ulong(CKA_KEY_TYPE, key_type);
                    values.set(CKA_EC_PARAMS, params.to_vec());
                    values.set(CKA_VALUE, seed.as_bytes().to_vec());
                }
                DSA => {
                    let any = info
                        .algorithm
                        .parameters
                        .as_ref()
                        .ok_or(Rv::WrappedKeyInvalid)?;
                    let group: DssParms = any.decode_as().map_err(|_| Rv::WrappedKeyInvalid)?;
                    let x = UintRef::from_der(inner).map_err(|_| Rv::WrappedKeyInvalid)?;
                    values.set_ulong(CKA_KEY_TYPE, CKK_DSA);
                    values.set(CKA_PRIME, group.p.as_bytes().to_vec());
                    values.set(CKA_SUBPRIME, group.q.as_bytes().to_vec());
                    values.set(CKA_BASE, group.g.as_bytes().to_vec());
                    values.set(CKA_VALUE, x.as_bytes().to_vec());
                }
                _ => return Err(Rv::WrappedKeyInvalid),
            }
        }
        _ => return Err(Rv::TemplateInconsistent),
    }
    let mut merged = template.clone();
    for (t, v) in values.iter() {
        match template.get(t) {
            Some(given) if given != v => return Err(Rv::TemplateInconsistent),
            _ => merged.set(t, v.to_vec()),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ul(v: CK_ULONG) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn ec_and_edwards_keys_round_trip_through_pkcs8() {
        let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let key: Attrs = [
            (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
            (CKA_KEY_TYPE, ul(CKK_EC)),
            (CKA_EC_PARAMS, p256.clone()),
            (CKA_VALUE, vec![7; 31]),
        ]
        .into_iter()
        .collect();
        let bytes = key_bytes(&key).unwrap();
        let template: Attrs = [(CKA_CLASS, ul(CKO_PRIVATE_KEY))].into_iter().collect();
        let back = unwrapped_key(&bytes, &template).unwrap();
        assert_eq!(back.get(CKA_EC_PARAMS), Some(&p256[..]));
        assert_eq!(
            back.get(CKA_VALUE).unwrap(),
            &[[0u8].as_slice(), &[7; 31]].concat()[..]
        );
        assert!(unwrapped_key(b"not der", &template).is_err());
    }
}
