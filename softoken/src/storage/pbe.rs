//! The password-based formats NSS uses in key4.db: PBES2 (PBKDF2 + AES-CBC)
//! for private attributes and the password check, PBMAC1 (PBKDF2 + HMAC) for
//! integrity records, and the legacy 3DES PBE of databases migrated from
//! key3.db. This module knows the byte formats and the primitives; which key
//! protects what is `keydb`'s business.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::{digest, hmac};
use der::asn1::{Any, ObjectIdentifier as Oid, OctetString};
use der::{Decode, Encode, Sequence};
use zeroize::Zeroizing;

use crate::engine::{self, Hash};
use crate::rv::{Result, Rv};

const PBES2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.13");
const PBKDF2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.12");
const PBMAC1: Oid = Oid::new_unwrap("1.2.840.113549.1.5.14");
const HMAC_SHA1: Oid = Oid::new_unwrap("1.2.840.113549.2.7");
const HMAC_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.2.9");
const HMAC_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.2.10");
const HMAC_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.2.11");
const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
/// NSS's legacy key3.db PBE: SHA-1 and 3-key 3DES-CBC with its own KDF.
const LEGACY_PBE_SHA1_3DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.5.1.3");
// The same draft-PKCS#12 family with RC4, in the oldest key3.db files.
const LEGACY_PBE_SHA1_RC4_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.5.1.1");
const LEGACY_PBE_SHA1_RC4_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.5.1.2");

/// The most PBKDF2 iterations a stored value may ask for: NSS's own limit
/// (MAX_ITERATION_COUNT of lowpbe.c, release builds), so every database NSS
/// reads, we read. Some 9 s of work here; a larger count is refused unrun.
pub const MAX_ITERATIONS: u32 = 100_000_000;
/// Length of the random salts we write (NSS writes 32).
pub const SALT_LEN: usize = 32;
/// Length of the keys PBKDF2 gives for AES-256 and HMAC-SHA256.
pub const KEY_LEN: usize = 32;
/// NSS writes the AES-CBC parameter as an OCTET STRING of 14 random bytes
/// and uses the whole 16-byte TLV (`04 0e` + 14 bytes) as the IV.
pub const IV_PARAM_LEN: usize = 14;

/// X.509's AlgorithmIdentifier (also PKCS#8's).
#[derive(Clone, Debug, Sequence)]
pub struct AlgorithmIdentifier {
    pub oid: Oid,
    pub parameters: Option<Any>,
}

/// The outer shape shared by encrypted values and MAC records.
#[derive(Clone, Debug, Sequence)]
struct Envelope {
    algorithm: AlgorithmIdentifier,
    data: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct SchemePair {
    kdf: AlgorithmIdentifier,
    scheme: AlgorithmIdentifier,
}

#[derive(Clone, Debug, Sequence)]
struct Pbkdf2Params {
    salt: OctetString,
    iterations: u32,
    key_length: Option<u32>,
    prf: Option<AlgorithmIdentifier>,
}

#[derive(Clone, Debug, Sequence)]
struct LegacyPbeParams {
    salt: OctetString,
    iterations: u32,
}

fn malformed<E>(_: E) -> Rv {
    // A value from disk that does not parse: the database is damaged.
    Rv::DeviceError
}

/// The hash of an HMAC OID (a PBKDF2 PRF, or PBMAC1's MAC): the four
/// that PBKDF2 runs with.
fn prf_from_oid(oid: &Oid) -> Result<Hash> {
    Ok(match *oid {
        HMAC_SHA1 => Hash::Sha1,
        HMAC_SHA256 => Hash::Sha256,
        HMAC_SHA384 => Hash::Sha384,
        HMAC_SHA512 => Hash::Sha512,
        _ => return Err(Rv::DeviceError),
    })
}

fn prf_oid(prf: Hash) -> Result<Oid> {
    Ok(match prf {
        Hash::Sha1 => HMAC_SHA1,
        Hash::Sha256 => HMAC_SHA256,
        Hash::Sha384 => HMAC_SHA384,
        Hash::Sha512 => HMAC_SHA512,
        _ => return Err(Rv::GeneralError),
    })
}

/// What a PBKDF2 derivation needs besides the secret; also the cache key of
/// derived keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    pub prf: Hash,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub key_len: usize,
}

impl KdfParams {
    fn parse(kdf: &AlgorithmIdentifier, default_key_len: usize) -> Result<KdfParams> {
        if kdf.oid != PBKDF2 {
            return Err(Rv::DeviceError);
        }
        let params: Pbkdf2Params = kdf
            .parameters
            .as_ref()
            .ok_or(Rv::DeviceError)?
            .decode_as()
            .map_err(malformed)?;
        let prf = match &params.prf {
            Some(p) => prf_from_oid(&p.oid)?,
            None => Hash::Sha1,
        };
        let key_len = params.key_length.map_or(default_key_len, |l| l as usize);
        // Bound what a damaged or hostile file can make us compute.
        if params.iterations > MAX_ITERATIONS {
            crate::log::line(format_args!(
                "a stored value asks for {} PBKDF2 iterations, beyond NSS's limit of \
                 {MAX_ITERATIONS}: refused without running them",
                params.iterations
            ));
            return Err(Rv::DeviceError);
        }
        if params.iterations == 0 || key_len == 0 || key_len > 64 {
            return Err(Rv::DeviceError);
        }
        Ok(KdfParams {
            prf,
            salt: params.salt.as_bytes().to_vec(),
            iterations: params.iterations,
            key_len,
        })
    }

    fn encode(&self) -> Result<AlgorithmIdentifier> {
        let params = Pbkdf2Params {
            salt: OctetString::new(self.salt.clone()).map_err(|_| Rv::GeneralError)?,
            iterations: self.iterations,
            key_length: Some(self.key_len as u32),
            prf: Some(AlgorithmIdentifier {
                oid: prf_oid(self.prf)?,
                parameters: None,
            }),
        };
        Ok(AlgorithmIdentifier {
            oid: PBKDF2,
            parameters: Some(Any::encode_from(&params).map_err(|_| Rv::GeneralError)?),
        })
    }

    /// Runs PBKDF2 over the secret.
    pub fn derive(&self, secret: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.key_len]);
        let iterations = NonZeroU32::new(self.iterations).unwrap_or(NonZeroU32::MIN);
        self.prf
            .pbkdf2(iterations, &self.salt, secret, &mut out)
            .map_err(|_| Rv::DeviceError)?;
        Ok(out)
    }
}

/// An encrypted value as stored in key4.db.
#[derive(Clone, Debug)]
pub enum Encrypted {
    /// PBES2 with AES-CBC (what NSS writes).
    Pbes2 {
        kdf: KdfParams,
        iv: [u8; 16],
        ciphertext: Vec<u8>,
    },
    /// The legacy PBE (from key3.db, kept by NSS's migration): 3DES, or
    /// RC4 in the oldest files.
    Legacy {
        cipher: LegacyCipher,
        salt: Vec<u8>,
        iterations: u32,
        ciphertext: Vec<u8>,
    },
}

/// The cipher of a legacy PBE value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyCipher {
    Des3,
    Rc4With128BitKey,
    Rc4With40BitKey,
}

impl Encrypted {
    pub fn parse(blob: &[u8]) -> Result<Encrypted> {
        let env = Envelope::from_der(blob).map_err(malformed)?;
        let ciphertext = env.data.as_bytes().to_vec();
        let params = env.algorithm.parameters.as_ref().ok_or(Rv::DeviceError)?;
        match env.algorithm.oid {
            PBES2 => {
                let pair: SchemePair = params.decode_as().map_err(malformed)?;
                let aes_key_len = match pair.scheme.oid {
                    AES128_CBC => 16,
                    AES192_CBC => 24,
                    AES256_CBC => 32,
                    _ => return Err(Rv::DeviceError),
                };
                let kdf = KdfParams::parse(&pair.kdf, aes_key_len)?;
                if kdf.key_len != aes_key_len {
                    return Err(Rv::DeviceError);
                }
                let iv_any = pair.scheme.parameters.as_ref().ok_or(Rv::DeviceError)?;
                let iv = aes_iv(iv_any)?;
                Ok(Encrypted::Pbes2 {
                    kdf,
                    iv,
                    ciphertext,
                })
            }
            oid @ (LEGACY_PBE_SHA1_3DES | LEGACY_PBE_SHA1_RC4_128 | LEGACY_PBE_SHA1_RC4_40) => {
                let cipher = match oid {
                    LEGACY_PBE_SHA1_3DES => LegacyCipher::Des3,
                    LEGACY_PBE_SHA1_RC4_128 => LegacyCipher::Rc4With128BitKey,
                    _ => LegacyCipher::Rc4With40BitKey,
                };
                let p: LegacyPbeParams = params.decode_as().map_err(malformed)?;
                // NSS always wrote 1; a damaged file must not make us spin.
                if p.iterations == 0 || p.iterations > 100_000 {
                    return Err(Rv::DeviceError);
                }
                Ok(Encrypted::Legacy {
                    cipher,
                    salt: p.salt.as_bytes().to_vec(),
                    iterations: p.iterations,
                    ciphertext,
                })
            }
            _ => Err(Rv::DeviceError),
        }
    }
}

/// The IV of an AES-CBC parameter: NSS's 16-byte TLV of a 14-byte OCTET
/// STRING, or, as other writers do, a 16-byte OCTET STRING.
fn aes_iv(param: &Any) -> Result<[u8; 16]> {
    let tlv = param.to_der().map_err(malformed)?;
    if let Ok(iv) = <[u8; 16]>::try_from(tlv.as_slice()) {
        return Ok(iv);
    }
    <[u8; 16]>::try_from(param.value()).map_err(|_| Rv::DeviceError)
}

/// Encodes a PBES2 value (AES-256-CBC) in NSS's shape.
pub fn encode_pbes2(
    kdf: &KdfParams,
    iv_param: &[u8; IV_PARAM_LEN],
    ciphertext: Vec<u8>,
) -> Result<Vec<u8>> {
    let iv = Any::encode_from(&OctetString::new(iv_param.to_vec()).map_err(|_| Rv::GeneralError)?)
        .map_err(|_| Rv::GeneralError)?;
    let pair = SchemePair {
        kdf: kdf.encode()?,
        scheme: AlgorithmIdentifier {
            oid: AES256_CBC,
            parameters: Some(iv),
        },
    };
    envelope(PBES2, &pair, ciphertext)
}

fn envelope<P: der::EncodeValue + der::Tagged>(
    oid: Oid,
    params: &P,
    data: Vec<u8>,
) -> Result<Vec<u8>> {
    let env = Envelope {
        algorithm: AlgorithmIdentifier {
            oid,
            parameters: Some(Any::encode_from(params).map_err(|_| Rv::GeneralError)?),
        },
        data: OctetString::new(data).map_err(|_| Rv::GeneralError)?,
    };
    env.to_der().map_err(|_| Rv::GeneralError)
}

/// The 16-byte IV NSS uses for a 14-byte parameter: its DER TLV.
pub fn iv_from_param(param: &[u8; IV_PARAM_LEN]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[0] = 0x04;
    iv[1] = IV_PARAM_LEN as u8;
    iv[2..].copy_from_slice(param);
    iv
}

fn aes_algorithm(key: &[u8]) -> Result<&'static aws_lc_rs::cipher::Algorithm> {
    Ok(match key.len() {
        16 => &AES_128,
        24 => &AES_192,
        32 => &AES_256,
        _ => return Err(Rv::GeneralError),
    })
}

/// AES-CBC with PKCS#7 padding.
pub fn aes_cbc_encrypt(key: &[u8], iv: [u8; 16], plaintext: &[u8]) -> Result<Vec<u8>> {
    let unbound = UnboundCipherKey::new(aes_algorithm(key)?, key).map_err(|_| Rv::GeneralError)?;
    let cipher = PaddedBlockEncryptingKey::cbc_pkcs7(unbound).map_err(|_| Rv::GeneralError)?;
    let mut buf = plaintext.to_vec();
    cipher
        .less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv.into()))
        .map_err(|_| Rv::GeneralError)?;
    Ok(buf)
}

/// AES-CBC decryption with PKCS#7 padding removed; a bad key or damaged
/// value gives `Rv::DeviceError` (the caller knows when it means a wrong
/// password).
pub fn aes_cbc_decrypt(key: &[u8], iv: [u8; 16], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(Rv::DeviceError);
    }
    let unbound = UnboundCipherKey::new(aes_algorithm(key)?, key).map_err(|_| Rv::GeneralError)?;
    let cipher = PaddedBlockDecryptingKey::cbc_pkcs7(unbound).map_err(|_| Rv::GeneralError)?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = cipher
        .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
        .map_err(|_| Rv::DeviceError)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// NSS's legacy key derivation (SHA-1, then HMAC-SHA-1 expansion): 40
/// bytes, the 3DES key first and the IV last.
fn legacy_key_iv(master: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<Vec<u8>> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(master);
    ctx.update(salt);
    let mut h = Zeroizing::new(ctx.finish().as_ref().to_vec());
    for _ in 1..iterations {
        *h = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &h)
            .as_ref()
            .to_vec();
    }
    let hkey = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &h);
    let mut state = salt.to_vec();
    if state.len() < 20 {
        state.resize(20, 0);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(40));
    while out.len() < 32 {
        let mut block_input = state.clone();
        block_input.extend_from_slice(salt);
        out.extend_from_slice(hmac::sign(&hkey, &block_input).as_ref());
        state = hmac::sign(&hkey, &state).as_ref().to_vec();
    }
    out
}

/// Decrypts a legacy value: NSS's SHA-1/HMAC key derivation, then 3-key
/// 3DES-CBC with PKCS#7 padding, or RC4 with the first 16 (or 5) derived
/// bytes as its key.
pub fn legacy_decrypt(
    master: &[u8],
    cipher: LegacyCipher,
    salt: &[u8],
    iterations: u32,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    use rc4::{KeyInit, StreamCipher};

    let out = legacy_key_iv(master, salt, iterations);
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    match cipher {
        LegacyCipher::Des3 => {
            return des3_cbc_decrypt(&out[..24], &out[out.len() - 8..], ciphertext)
        }
        LegacyCipher::Rc4With128BitKey => rc4::Rc4::<rc4::consts::U16>::new_from_slice(&out[..16])
            .map_err(|_| Rv::GeneralError)?
            .apply_keystream(&mut buf),
        LegacyCipher::Rc4With40BitKey => rc4::Rc4::<rc4::consts::U5>::new_from_slice(&out[..5])
            .map_err(|_| Rv::GeneralError)?
            .apply_keystream(&mut buf),
    }
    Ok(buf)
}

/// Encrypts as NSS's legacy key database does (a 20-byte salt, one
/// iteration, 3DES-CBC), for key3.db records.
pub fn legacy_encrypt(master: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    use crate::engine::des::{DesKey, BLOCK};

    let mut salt = [0u8; 20];
    engine::random_fill(&mut salt)?;
    let out = legacy_key_iv(master, &salt, 1);
    let key = DesKey::new(&out[..24])?;
    let mut iv: [u8; BLOCK] = out[out.len() - BLOCK..]
        .try_into()
        .map_err(|_| Rv::GeneralError)?;
    // PKCS#7 padding; the buffer has room for it from the start, so the
    // plaintext is never left behind in a reallocated one.
    let pad = BLOCK - plaintext.len() % BLOCK;
    let mut buf = Vec::with_capacity(plaintext.len() + pad);
    buf.extend_from_slice(plaintext);
    buf.resize(plaintext.len() + pad, pad as u8);
    key.cbc(&mut iv, &mut buf, engine::Direction::Encrypt);
    let params = LegacyPbeParams {
        salt: OctetString::new(salt.to_vec()).map_err(|_| Rv::GeneralError)?,
        iterations: 1,
    };
    envelope(LEGACY_PBE_SHA1_3DES, &params, buf)
}

/// 3-key 3DES-CBC decryption with PKCS#7 padding removed (legacy values,
/// and old PKCS#12 files); damage gives `Rv::DeviceError`.
pub fn des3_cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use crate::engine::des::{padding_len, DesKey, BLOCK};

    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK) || key.len() != 24 {
        return Err(Rv::DeviceError);
    }
    let mut iv: [u8; BLOCK] = iv.try_into().map_err(|_| Rv::DeviceError)?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    DesKey::new(key)?.cbc(&mut iv, &mut buf, engine::Direction::Decrypt);
    let last: &[u8; BLOCK] = buf[buf.len() - BLOCK..]
        .try_into()
        .map_err(|_| Rv::DeviceError)?;
    let pad = padding_len(last).ok_or(Rv::DeviceError)?;
    let len = buf.len() - pad;
    buf.truncate(len);
    Ok(buf)
}

/// A PBMAC1 integrity record.
#[derive(Clone, Debug)]
pub struct MacRecord {
    pub kdf: KdfParams,
    pub mac_prf: Hash,
    pub mac: Vec<u8>,
}

impl MacRecord {
    pub fn parse(blob: &[u8]) -> Result<MacRecord> {
        let env = Envelope::from_der(blob).map_err(malformed)?;
        if env.algorithm.oid != PBMAC1 {
            return Err(Rv::DeviceError);
        }
        let pair: SchemePair = env
            .algorithm
            .parameters
            .as_ref()
            .ok_or(Rv::DeviceError)?
            .decode_as()
            .map_err(malformed)?;
        let mac_prf = prf_from_oid(&pair.scheme.oid)?;
        let kdf = KdfParams::parse(&pair.kdf, mac_prf.output_len())?;
        Ok(MacRecord {
            kdf,
            mac_prf,
            mac: env.data.as_bytes().to_vec(),
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let pair = SchemePair {
            kdf: self.kdf.encode()?,
            scheme: AlgorithmIdentifier {
                oid: prf_oid(self.mac_prf)?,
                parameters: None,
            },
        };
        envelope(PBMAC1, &pair, self.mac.clone())
    }
}

/// The MAC NSS computes over one attribute: HMAC(key, be32(objid) ||
/// be32(type) || value).
pub fn attribute_mac(
    prf: Hash,
    key: &[u8],
    object_id: u32,
    attr_type: u32,
    value: &[u8],
) -> Result<Vec<u8>> {
    let alg = prf.hmac_algorithm().ok_or(Rv::DeviceError)?;
    let key = hmac::Key::new(alg, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&object_id.to_be_bytes());
    ctx.update(&attr_type.to_be_bytes());
    ctx.update(value);
    Ok(ctx.sign().as_ref().to_vec())
}

/// Constant-time comparison of two MACs.
pub fn macs_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// NSS's master key: SHA-1 of the global salt and the password.
pub fn master_key(global_salt: &[u8], password: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(global_salt);
    ctx.update(password);
    Zeroizing::new(ctx.finish().as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy_parts(blob: &[u8]) -> (LegacyCipher, Vec<u8>, u32, Vec<u8>) {
        match Encrypted::parse(blob).unwrap() {
            Encrypted::Legacy {
                cipher,
                salt,
                iterations,
                ciphertext,
            } => (cipher, salt, iterations, ciphertext),
            Encrypted::Pbes2 { .. } => panic!("not the legacy form"),
        }
    }

    #[test]
    fn legacy_values_round_trip() {
        let master = [7u8; 20];
        let blob = legacy_encrypt(&master, b"a private key").unwrap();
        let (cipher, salt, iterations, ciphertext) = legacy_parts(&blob);
        assert_eq!(
            (cipher, salt.len(), iterations),
            (LegacyCipher::Des3, 20, 1)
        );
        let plain = legacy_decrypt(&master, cipher, &salt, iterations, &ciphertext).unwrap();
        assert_eq!(&*plain, b"a private key");
    }

    /// RC4 values of the oldest key3.db files: the same derivation, the
    /// derived bytes as the RC4 key (checked against RustCrypto's RC4 fed
    /// the derivation's output, and against a fixed vector).
    #[test]
    fn legacy_rc4_values_decrypt() {
        use rc4::{KeyInit, StreamCipher};

        let master = [9u8; 20];
        let salt = [3u8; 20];
        let key = legacy_key_iv(&master, &salt, 1);
        let mut ct = b"an old private key".to_vec();
        rc4::Rc4::<rc4::consts::U16>::new_from_slice(&key[..16])
            .unwrap()
            .apply_keystream(&mut ct);
        let params = LegacyPbeParams {
            salt: OctetString::new(salt.to_vec()).unwrap(),
            iterations: 1,
        };
        let blob = envelope(LEGACY_PBE_SHA1_RC4_128, &params, ct).unwrap();
        let (cipher, salt, iterations, ciphertext) = legacy_parts(&blob);
        assert_eq!(cipher, LegacyCipher::Rc4With128BitKey);
        let plain = legacy_decrypt(&master, cipher, &salt, iterations, &ciphertext).unwrap();
        assert_eq!(&*plain, b"an old private key");
        // RC4 itself: RFC 6229's first vector (key 0102030405).
        let mut zeros = [0u8; 8];
        rc4::Rc4::<rc4::consts::U5>::new_from_slice(&[1, 2, 3, 4, 5])
            .unwrap()
            .apply_keystream(&mut zeros);
        assert_eq!(zeros, [0xb2, 0x39, 0x63, 0x05, 0xf0, 0x3d, 0xc0, 0x27]);
    }

    #[test]
    fn pbes2_round_trip_has_nss_shape() {
        let kdf = KdfParams {
            prf: Hash::Sha256,
            salt: vec![9; SALT_LEN],
            iterations: 10000,
            key_len: KEY_LEN,
        };
        let key = kdf.derive(b"master").unwrap();
        let param = [7u8; IV_PARAM_LEN];
        let ct = aes_cbc_encrypt(&key, iv_from_param(&param), b"password-check").unwrap();
        let blob = encode_pbes2(&kdf, &param, ct).unwrap();
        // The layout NSS writes (nss-db-format.md §1.6).
        assert_eq!(&blob[..3], &[0x30, 0x81, 0x82]);
        assert!(blob.windows(4).any(|w| w == [0x02, 0x02, 0x27, 0x10]));
        assert!(blob.windows(2).any(|w| w == [0x04, 0x0e]));
        let Encrypted::Pbes2 {
            kdf: parsed,
            iv,
            ciphertext,
        } = Encrypted::parse(&blob).unwrap()
        else {
            panic!("not PBES2");
        };
        assert_eq!(parsed, kdf);
        let pt = aes_cbc_decrypt(&parsed.derive(b"master").unwrap(), iv, &ciphertext).unwrap();
        assert_eq!(&pt[..], b"password-check");
    }

    #[test]
    fn mac_record_round_trip() {
        let rec = MacRecord {
            kdf: KdfParams {
                prf: Hash::Sha256,
                salt: vec![1; 32],
                iterations: 1,
                key_len: 32,
            },
            mac_prf: Hash::Sha256,
            mac: vec![5; 32],
        };
        let parsed = MacRecord::parse(&rec.encode().unwrap()).unwrap();
        assert_eq!(parsed.kdf, rec.kdf);
        assert_eq!(parsed.mac, rec.mac);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for blob in [
            &b""[..],
            b"\x30\x03\x02\x01\x01",
            b"\x30\x80",
            &[0x30, 0x82, 0xff, 0xff],
        ] {
            assert!(Encrypted::parse(blob).is_err());
            assert!(MacRecord::parse(blob).is_err());
        }
        assert!(aes_cbc_decrypt(&[0; 32], [0; 16], &[1; 15]).is_err());
        assert!(legacy_decrypt(b"k", LegacyCipher::Des3, b"s", 1, &[1; 7]).is_err());
    }
}
