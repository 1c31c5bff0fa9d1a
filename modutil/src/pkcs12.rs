//! PKCS#12 files (RFC 7292), read as NSS's pk12util, OpenSSL and others
//! write them, BER with indefinite lengths, PBES2 (PBKDF2 with HMAC-SHA-1
//! or SHA-2, AES-CBC) or PKCS#12's legacy SHA-1 PBEs with 3DES or RC2 (old
//! Windows and Java exports, OpenSSL's `-legacy`), and a SHA-1 or SHA-2
//! MAC; and written as pk12util writes them. aws-lc's reader refuses NSS's
//! files (it insists on a NULL parameter after the PBKDF2 PRF, which NSS
//! leaves out) and its writer cannot make PBES2 files, hence these.

use aws_lc_rs::{digest, hmac, pbkdf2};
use zeroize::Zeroizing;

use crate::error::{Failure, Kind, Outcome};

const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const OID_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
];
const OID_SHROUDED_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];
const OID_CERT_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
];
const OID_X509_CERT: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
const OID_FRIENDLY_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];
const OID_LOCAL_KEY_ID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15];
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_PBE_SHA1_3DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
const OID_PBE_SHA1_RC2_128: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x05];
const OID_PBE_SHA1_RC2_40: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06];
const OID_HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const OID_HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const OID_HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const OID_AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BMP_STRING: u8 = 0x1e;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;
/// Deeper nesting than any PKCS#12 file needs is refused (no stack
/// exhaustion on hostile input).
const MAX_DEPTH: usize = 64;
/// No PBKDF2 or PKCS#12 KDF count above this is honoured (a hostile file
/// must not hold the program for hours).
const MAX_ITERATIONS: u32 = 10_000_000;

/// What a PKCS#12 file carries for one key.
pub struct Contents {
    /// The private key as a PKCS#8 PrivateKeyInfo.
    pub private_key: Zeroizing<Vec<u8>>,
    /// The key's certificate (DER).
    pub certificate: Vec<u8>,
    /// The friendlyName given to the key or its certificate.
    pub friendly_name: Option<String>,
    /// The other certificates (CA certificates as a rule).
    pub chain: Vec<Vec<u8>>,
}

fn malformed(what: &str) -> Failure {
    Failure::new(Kind::Failed, format!("not a valid PKCS#12 file ({what})"))
}

// ---- a small BER reader (definite and indefinite lengths) ----

/// Reads one element: its tag and its content (still BER).
fn element<'a>(input: &mut &'a [u8], depth: usize) -> Outcome<(u8, &'a [u8])> {
    if depth > MAX_DEPTH {
        return Err(malformed("nested too deeply"));
    }
    let (&tag, rest) = input.split_first().ok_or_else(|| malformed("truncated"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("multi-byte tag"));
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(|| malformed("truncated"))?;
    if first == 0x80 {
        if tag & 0x20 == 0 {
            return Err(malformed("indefinite length on a primitive"));
        }
        let start = rest;
        loop {
            if rest.starts_with(&[0, 0]) {
                let content = &start[..start.len() - rest.len()];
                *input = &rest[2..];
                return Ok((tag, content));
            }
            if rest.is_empty() {
                return Err(malformed("missing end-of-contents"));
            }
            element(&mut rest, depth + 1)?;
        }
    }
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(malformed("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(malformed("length past the end"));
    }
    let (content, after) = rest.split_at(len);
    *input = after;
    Ok((tag, content))
}

/// Reads one element that must carry `tag`.
fn expect<'a>(input: &mut &'a [u8], tag: u8, depth: usize) -> Outcome<&'a [u8]> {
    let (t, content) = element(input, depth)?;
    if t != tag {
        return Err(malformed(&format!(
            "tag 0x{t:02x} where 0x{tag:02x} belongs"
        )));
    }
    Ok(content)
}

/// The bytes of a string element, primitive or (BER) constructed.
fn octets(tag: u8, content: &[u8], depth: usize) -> Outcome<Vec<u8>> {
    if tag & 0x20 == 0 {
        return Ok(content.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (t, c) = element(&mut rest, depth + 1)?;
        out.extend(octets(t, c, depth + 1)?);
    }
    Ok(out)
}

fn expect_octets(input: &mut &[u8], depth: usize) -> Outcome<Vec<u8>> {
    let (t, c) = element(input, depth)?;
    if t & !0x20 != OCTET_STRING {
        return Err(malformed("an OCTET STRING was expected"));
    }
    octets(t, c, depth)
}

fn small_uint(content: &[u8]) -> Outcome<u32> {
    if content.is_empty() || content.len() > 5 || content[0] & 0x80 != 0 {
        return Err(malformed("bad integer"));
    }
    let v = content.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
    u32::try_from(v).map_err(|_| malformed("integer too large"))
}

fn iterations(content: &[u8]) -> Outcome<u32> {
    let n = small_uint(content)?;
    if n == 0 || n > MAX_ITERATIONS {
        return Err(malformed(&format!("iteration count {n} out of range")));
    }
    Ok(n)
}

// ---- key derivation and decryption ----

/// RFC 7292 B.2's password: UTF-16BE with a two-byte terminator.
fn bmp_password(password: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for unit in password.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// RFC 7292 appendix B.2's key derivation.
fn pkcs12_kdf(
    alg: &'static digest::Algorithm,
    password: &[u8],
    salt: &[u8],
    id: u8,
    rounds: u32,
    out_len: usize,
) -> Zeroizing<Vec<u8>> {
    let u = alg.output_len();
    let v = alg.block_len();
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(len).collect()
    };
    let mut i_block = Zeroizing::new(fill(salt));
    i_block.extend(fill(password));
    let mut out = Zeroizing::new(Vec::with_capacity(out_len + u));
    while out.len() < out_len {
        let mut ctx = digest::Context::new(alg);
        ctx.update(&vec![id; v]);
        ctx.update(&i_block);
        let mut a = Zeroizing::new(ctx.finish().as_ref().to_vec());
        for _ in 1..rounds {
            *a = digest::digest(alg, &a).as_ref().to_vec();
        }
        out.extend_from_slice(&a);
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for chunk in i_block.chunks_mut(v) {
            // chunk = (chunk + b + 1) mod 2^(8v)
            let mut carry = 1u16;
            for (x, y) in chunk.iter_mut().rev().zip(b.iter().rev()) {
                let sum = *x as u16 + *y as u16 + carry;
                *x = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(out_len);
    out
}

fn wrong_password() -> Failure {
    Failure::new(
        Kind::WrongPassword,
        "wrong PKCS#12 password (or a damaged file)",
    )
}

/// An algorithm's name for a message (its OID in dotted form when this
/// reader does not know it).
fn algorithm_name(oid: &[u8]) -> String {
    let named = [
        (OID_PBES2, "PBES2"),
        (OID_PBKDF2, "PBKDF2"),
        (OID_PBE_SHA1_3DES, "pbeWithSHAAnd3-KeyTripleDES-CBC"),
        (OID_PBE_SHA1_RC2_128, "pbeWithSHAAnd128BitRC2-CBC"),
        (OID_PBE_SHA1_RC2_40, "pbeWithSHAAnd40BitRC2-CBC"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x01][..],
            "pbeWithSHAAnd128BitRC4",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x02][..],
            "pbeWithSHAAnd40BitRC4",
        ),
        (OID_HMAC_SHA1, "HMAC-SHA-1"),
        (OID_HMAC_SHA256, "HMAC-SHA-256"),
        (OID_HMAC_SHA384, "HMAC-SHA-384"),
        (OID_HMAC_SHA512, "HMAC-SHA-512"),
        (OID_AES128_CBC, "AES-128-CBC"),
        (OID_AES192_CBC, "AES-192-CBC"),
        (OID_AES256_CBC, "AES-256-CBC"),
    ];
    if let Some((_, name)) = named.iter().find(|(o, _)| *o == oid) {
        return (*name).to_owned();
    }
    // Dotted: the first two arcs in the first byte, then base-128 arcs.
    let mut arcs = match oid.first() {
        Some(b) => vec![u64::from(b / 40), u64::from(b % 40)],
        None => return "an empty OID".to_owned(),
    };
    let mut arc = 0u64;
    for b in &oid[1..] {
        arc = (arc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(arc);
            arc = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Decrypts with the algorithm an AlgorithmIdentifier names.
fn decrypt(
    alg_id: &[u8],
    ciphertext: &[u8],
    password: &str,
    depth: usize,
) -> Outcome<Zeroizing<Vec<u8>>> {
    let mut alg = alg_id;
    let oid = expect(&mut alg, OID, depth)?;
    // PKCS#12's own PBEs (RFC 7292 appendix C): the key and IV from its
    // SHA-1 KDF.
    let legacy_key_len = match oid {
        OID_PBE_SHA1_3DES => Some(24),
        OID_PBE_SHA1_RC2_128 => Some(16),
        OID_PBE_SHA1_RC2_40 => Some(5),
        _ => None,
    };
    if let Some(key_len) = legacy_key_len {
        let mut params = expect(&mut alg, SEQUENCE, depth)?;
        let salt = expect_octets(&mut params, depth)?;
        let rounds = iterations(expect(&mut params, INTEGER, depth)?)?;
        let pw = bmp_password(password);
        let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
        let key = pkcs12_kdf(sha1, &pw, &salt, 1, rounds, key_len);
        let iv = pkcs12_kdf(sha1, &pw, &salt, 2, rounds, 8);
        let plain = if oid == OID_PBE_SHA1_3DES {
            softoken::admin::des3_cbc_decrypt(&key, &iv, ciphertext)
        } else {
            softoken::admin::rc2_cbc_decrypt(&key, &iv, ciphertext)
        };
        return plain.map_err(|_| wrong_password());
    }
    if oid != OID_PBES2 {
        return Err(Failure::new(
            Kind::Failed,
            format!(
                "PKCS#12 encryption {} is not supported",
                algorithm_name(oid)
            ),
        ));
    }
    let mut params = expect(&mut alg, SEQUENCE, depth)?;
    let mut kdf = expect(&mut params, SEQUENCE, depth)?;
    let mut scheme = expect(&mut params, SEQUENCE, depth)?;
    if expect(&mut kdf, OID, depth)? != OID_PBKDF2 {
        return Err(Failure::new(
            Kind::Failed,
            "PBES2 without PBKDF2 is not supported",
        ));
    }
    let mut kdf_params = expect(&mut kdf, SEQUENCE, depth)?;
    let salt = expect_octets(&mut kdf_params, depth)?;
    let rounds = iterations(expect(&mut kdf_params, INTEGER, depth)?)?;
    let mut key_len = None;
    let mut prf = pbkdf2::PBKDF2_HMAC_SHA1;
    while !kdf_params.is_empty() {
        let (t, c) = element(&mut kdf_params, depth)?;
        match t {
            INTEGER => key_len = Some(small_uint(c)? as usize),
            SEQUENCE => {
                let mut prf_id = c;
                // The parameter after the OID is NULL or absent.
                prf = match expect(&mut prf_id, OID, depth)? {
                    OID_HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
                    OID_HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
                    OID_HMAC_SHA384 => pbkdf2::PBKDF2_HMAC_SHA384,
                    OID_HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
                    other => {
                        return Err(Failure::new(
                            Kind::Failed,
                            format!("PBKDF2 PRF {} is not supported", algorithm_name(other)),
                        ))
                    }
                };
            }
            _ => return Err(malformed("PBKDF2 parameters")),
        }
    }
    let cipher_len = match expect(&mut scheme, OID, depth)? {
        OID_AES128_CBC => 16,
        OID_AES192_CBC => 24,
        OID_AES256_CBC => 32,
        other => {
            return Err(Failure::new(
                Kind::Failed,
                format!("PBES2 cipher {} is not supported", algorithm_name(other)),
            ))
        }
    };
    if key_len.is_some_and(|l| l != cipher_len) {
        return Err(malformed("PBKDF2 key length does not match the cipher"));
    }
    let iv: [u8; 16] = expect_octets(&mut scheme, depth)?
        .try_into()
        .map_err(|_| malformed("AES-CBC IV"))?;
    let mut key = Zeroizing::new(vec![0u8; cipher_len]);
    let rounds = std::num::NonZeroU32::new(rounds).ok_or_else(|| malformed("iterations"))?;
    pbkdf2::derive(prf, rounds, &salt, password.as_bytes(), &mut key);
    softoken::admin::aes_cbc_decrypt(&key, iv, ciphertext).map_err(|_| wrong_password())
}

/// Checks the MAC over the authenticated safe.
fn verify_mac(mac_data: &[u8], signed: &[u8], password: &str, depth: usize) -> Outcome<()> {
    let mut mac_data = mac_data;
    let mut digest_info = expect(&mut mac_data, SEQUENCE, depth)?;
    let mut alg = expect(&mut digest_info, SEQUENCE, depth)?;
    let (hash, hmac_alg) = match expect(&mut alg, OID, depth)? {
        OID_SHA1 => (
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        ),
        OID_SHA256 => (&digest::SHA256, hmac::HMAC_SHA256),
        OID_SHA384 => (&digest::SHA384, hmac::HMAC_SHA384),
        OID_SHA512 => (&digest::SHA512, hmac::HMAC_SHA512),
        other => {
            return Err(Failure::new(
                Kind::Failed,
                format!(
                    "PKCS#12 MAC digest {} is not supported",
                    algorithm_name(other)
                ),
            ))
        }
    };
    let expected = expect_octets(&mut digest_info, depth)?;
    let salt = expect_octets(&mut mac_data, depth)?;
    let rounds = if mac_data.is_empty() {
        1
    } else {
        iterations(expect(&mut mac_data, INTEGER, depth)?)?
    };
    let key = pkcs12_kdf(
        hash,
        &bmp_password(password),
        &salt,
        3,
        rounds,
        hash.output_len(),
    );
    hmac::verify(&hmac::Key::new(hmac_alg, &key), signed, &expected).map_err(|_| wrong_password())
}

/// A bag's friendlyName and localKeyId attributes.
fn bag_attributes(mut attrs: &[u8], depth: usize) -> Outcome<(Option<String>, Option<Vec<u8>>)> {
    let (mut name, mut key_id) = (None, None);
    while !attrs.is_empty() {
        let mut attr = expect(&mut attrs, SEQUENCE, depth)?;
        let oid = expect(&mut attr, OID, depth)?;
        let mut values = expect(&mut attr, SET, depth)?;
        if values.is_empty() {
            continue;
        }
        if oid == OID_FRIENDLY_NAME {
            let bmp = expect(&mut values, BMP_STRING, depth)?;
            let units: Vec<u16> = bmp
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            name = Some(String::from_utf16_lossy(&units));
        } else if oid == OID_LOCAL_KEY_ID {
            key_id = Some(expect_octets(&mut values, depth)?);
        }
    }
    Ok((name, key_id))
}

/// A bag's content with its friendlyName and localKeyId.
struct Bag<T> {
    value: T,
    name: Option<String>,
    key_id: Option<Vec<u8>>,
}

struct Found {
    keys: Vec<Bag<Zeroizing<Vec<u8>>>>,
    certs: Vec<Bag<Vec<u8>>>,
}

fn read_safe_contents(
    mut safe: &[u8],
    password: &str,
    found: &mut Found,
    depth: usize,
) -> Outcome<()> {
    let mut bags = expect(&mut safe, SEQUENCE, depth)?;
    while !bags.is_empty() {
        let mut bag = expect(&mut bags, SEQUENCE, depth + 1)?;
        let oid = expect(&mut bag, OID, depth + 1)?;
        let mut value = expect(&mut bag, CONTEXT_0, depth + 1)?;
        let (name, key_id) = if bag.is_empty() {
            (None, None)
        } else {
            bag_attributes(expect(&mut bag, SET, depth + 1)?, depth + 2)?
        };
        if oid == OID_KEY_BAG {
            let (_, key) = element(&mut value, depth + 2)?;
            let mut der = vec![SEQUENCE];
            der.extend(der_length(key.len()));
            der.extend_from_slice(key);
            found.keys.push(Bag {
                value: Zeroizing::new(der),
                name,
                key_id,
            });
        } else if oid == OID_SHROUDED_KEY_BAG {
            let mut info = expect(&mut value, SEQUENCE, depth + 2)?;
            let alg = expect(&mut info, SEQUENCE, depth + 2)?;
            let ciphertext = expect_octets(&mut info, depth + 2)?;
            let key = decrypt(alg, &ciphertext, password, depth + 3)?;
            found.keys.push(Bag {
                value: key,
                name,
                key_id,
            });
        } else if oid == OID_CERT_BAG {
            let mut cert_bag = expect(&mut value, SEQUENCE, depth + 2)?;
            if expect(&mut cert_bag, OID, depth + 2)? == OID_X509_CERT {
                let mut wrapped = expect(&mut cert_bag, CONTEXT_0, depth + 2)?;
                found.certs.push(Bag {
                    value: expect_octets(&mut wrapped, depth + 3)?,
                    name,
                    key_id,
                });
            }
        }
        // CRL, secret and nested bags are not needed for import.
    }
    Ok(())
}

fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// Opens a PKCS#12 file: the MAC is checked before anything is decrypted.
pub fn parse(file: &[u8], password: &str) -> Outcome<Contents> {
    let mut input = file;
    let mut pfx = expect(&mut input, SEQUENCE, 0)?;
    if small_uint(expect(&mut pfx, INTEGER, 1)?)? != 3 {
        return Err(malformed("version is not 3"));
    }
    let mut auth_safe = expect(&mut pfx, SEQUENCE, 1)?;
    if expect(&mut auth_safe, OID, 2)? != OID_DATA {
        return Err(malformed("public-key integrity mode is not supported"));
    }
    let mut explicit = expect(&mut auth_safe, CONTEXT_0, 2)?;
    let signed = expect_octets(&mut explicit, 3)?;
    if pfx.is_empty() {
        return Err(Failure::new(
            Kind::Failed,
            "the PKCS#12 file has no MAC; refusing it",
        ));
    }
    verify_mac(expect(&mut pfx, SEQUENCE, 1)?, &signed, password, 2)?;

    let mut found = Found {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    let mut infos = signed.as_slice();
    let mut infos = expect(&mut infos, SEQUENCE, 2)?;
    while !infos.is_empty() {
        let mut info = expect(&mut infos, SEQUENCE, 3)?;
        let kind = expect(&mut info, OID, 4)?;
        let mut content = expect(&mut info, CONTEXT_0, 4)?;
        if kind == OID_DATA {
            let safe = expect_octets(&mut content, 5)?;
            read_safe_contents(&safe, password, &mut found, 5)?;
        } else if kind == OID_ENCRYPTED_DATA {
            let mut data = expect(&mut content, SEQUENCE, 5)?;
            expect(&mut data, INTEGER, 6)?;
            let mut enc = expect(&mut data, SEQUENCE, 6)?;
            expect(&mut enc, OID, 7)?;
            let alg = expect(&mut enc, SEQUENCE, 7)?;
            let (t, c) = element(&mut enc, 7)?;
            if t & !0x20 != CONTEXT_0_PRIMITIVE {
                return Err(malformed("encrypted content"));
            }
            let ciphertext = octets(t, c, 7)?;
            let safe = decrypt(alg, &ciphertext, password, 8)?;
            read_safe_contents(&safe, password, &mut found, 8)?;
        } else {
            return Err(malformed("enveloped content is not supported"));
        }
    }
    if found.keys.len() != 1 {
        return Err(Failure::new(
            Kind::Failed,
            format!(
                "the PKCS#12 file holds {} private keys; one is needed",
                found.keys.len()
            ),
        ));
    }
    let key = found.keys.remove(0);
    let leaf = found
        .certs
        .iter()
        .position(|c| key.key_id.is_some() && c.key_id == key.key_id)
        .unwrap_or(0);
    if found.certs.is_empty() {
        return Err(Failure::new(
            Kind::Failed,
            "the PKCS#12 file holds no certificate",
        ));
    }
    let cert = found.certs.remove(leaf);
    Ok(Contents {
        private_key: key.value,
        certificate: cert.value,
        friendly_name: key.name.or(cert.name),
        chain: found.certs.into_iter().map(|c| c.value).collect(),
    })
}

// ---- writing ----

const NULL: &[u8] = &[0x05, 0x00];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_length(content.len()));
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

fn der_uint(n: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    tlv(INTEGER, &bytes)
}

fn random<const N: usize>() -> Outcome<[u8; N]> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| Failure::new(Kind::Failed, "no random numbers"))?;
    Ok(out)
}

/// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) encryption: the
/// AlgorithmIdentifier and the ciphertext.
fn pbes2_encrypt(plaintext: &[u8], password: &str, rounds: u32) -> Outcome<(Vec<u8>, Vec<u8>)> {
    let salt: [u8; 16] = random()?;
    let iv: [u8; 16] = random()?;
    let n = std::num::NonZeroU32::new(rounds)
        .ok_or_else(|| Failure::new(Kind::Failed, "the iteration count must be at least 1"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        &salt,
        password.as_bytes(),
        &mut *key,
    );
    let ciphertext = softoken::admin::aes_cbc_encrypt(&*key, iv, plaintext)
        .map_err(|e| Failure::new(Kind::Failed, format!("encryption failed: {e:?}")))?;
    let kdf = seq(&[
        &tlv(OID, OID_PBKDF2),
        &seq(&[
            &tlv(OCTET_STRING, &salt),
            &der_uint(rounds),
            &seq(&[&tlv(OID, OID_HMAC_SHA256), NULL]),
        ]),
    ]);
    let scheme = seq(&[&tlv(OID, OID_AES256_CBC), &tlv(OCTET_STRING, &iv)]);
    let alg = seq(&[&tlv(OID, OID_PBES2), &seq(&[&kdf, &scheme])]);
    Ok((alg, ciphertext))
}

/// A friendlyName bag attribute.
fn friendly_name(name: &str) -> Vec<u8> {
    let bmp: Vec<u8> = name.encode_utf16().flat_map(u16::to_be_bytes).collect();
    seq(&[
        &tlv(OID, OID_FRIENDLY_NAME),
        &tlv(SET, &tlv(BMP_STRING, &bmp)),
    ])
}

fn bag_attributes_der(name: &str, key_id: &[u8]) -> Vec<u8> {
    tlv(
        SET,
        &[
            friendly_name(name),
            seq(&[
                &tlv(OID, OID_LOCAL_KEY_ID),
                &tlv(SET, &tlv(OCTET_STRING, key_id)),
            ]),
        ]
        .concat(),
    )
}

/// Writes a PKCS#12 file as NSS's pk12util does: the key in a shrouded key
/// bag and the certificate, with the chain that issued it, in an encrypted
/// safe, both PBES2 with
/// PBKDF2-HMAC-SHA256 and AES-256-CBC, and an HMAC-SHA256 MAC; `rounds`
/// iterations for each.
pub fn build(
    private_key: &[u8],
    certificate: &[u8],
    chain: &[(Vec<u8>, Option<String>)],
    name: &str,
    password: &str,
    rounds: u32,
) -> Outcome<Vec<u8>> {
    let key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, certificate);
    let attrs = bag_attributes_der(name, key_id.as_ref());

    let (key_alg, key_ciphertext) = pbes2_encrypt(private_key, password, rounds)?;
    let key_bag = seq(&[
        &tlv(OID, OID_SHROUDED_KEY_BAG),
        &tlv(
            CONTEXT_0,
            &seq(&[&key_alg, &tlv(OCTET_STRING, &key_ciphertext)]),
        ),
        &attrs,
    ]);
    let key_safe = seq(&[
        &tlv(OID, OID_DATA),
        &tlv(CONTEXT_0, &tlv(OCTET_STRING, &seq(&[&key_bag]))),
    ]);

    let cert_bag = |der: &[u8], attrs: &[u8]| {
        seq(&[
            &tlv(OID, OID_CERT_BAG),
            &tlv(
                CONTEXT_0,
                &seq(&[
                    &tlv(OID, OID_X509_CERT),
                    &tlv(CONTEXT_0, &tlv(OCTET_STRING, der)),
                ]),
            ),
            attrs,
        ])
    };
    let mut bags = vec![cert_bag(certificate, &attrs)];
    // The chain's certificates with their nicknames, and no key ID.
    for (der, nickname) in chain {
        let named = match nickname {
            Some(n) => tlv(SET, &friendly_name(n)),
            None => Vec::new(),
        };
        bags.push(cert_bag(der, &named));
    }
    let bag_refs: Vec<&[u8]> = bags.iter().map(Vec::as_slice).collect();
    let (cert_alg, cert_ciphertext) = pbes2_encrypt(&seq(&bag_refs), password, rounds)?;
    let cert_safe = seq(&[
        &tlv(OID, OID_ENCRYPTED_DATA),
        &tlv(
            CONTEXT_0,
            &seq(&[
                &der_uint(0),
                &seq(&[
                    &tlv(OID, OID_DATA),
                    &cert_alg,
                    &tlv(CONTEXT_0_PRIMITIVE, &cert_ciphertext),
                ]),
            ]),
        ),
    ]);

    let auth_safe = seq(&[&cert_safe, &key_safe]);
    let salt: [u8; 16] = random()?;
    let mac_key = pkcs12_kdf(
        &digest::SHA256,
        &bmp_password(password),
        &salt,
        3,
        rounds,
        32,
    );
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), &auth_safe);
    let mac_data = seq(&[
        &seq(&[
            &seq(&[&tlv(OID, OID_SHA256), NULL]),
            &tlv(OCTET_STRING, mac.as_ref()),
        ]),
        &tlv(OCTET_STRING, &salt),
        &der_uint(rounds),
    ]);
    Ok(seq(&[
        &der_uint(3),
        &seq(&[
            &tlv(OID, OID_DATA),
            &tlv(CONTEXT_0, &tlv(OCTET_STRING, &auth_safe)),
        ]),
        &mac_data,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ber_indefinite_lengths_and_constructed_strings() {
        // SEQUENCE (indefinite) { OCTET STRING constructed (indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        let mut input = &ber[..];
        let mut seq = expect(&mut input, SEQUENCE, 0).unwrap();
        assert!(input.is_empty());
        assert_eq!(expect_octets(&mut seq, 1).unwrap(), b"abc");
    }

    #[test]
    fn hostile_encodings_are_refused() {
        for bad in [
            &[0x30, 0x80, 0x04, 0x01, 0x00][..], // no end-of-contents
            &[0x30, 0x05, 0x04][..],             // length past the end
            &[0x04, 0x80, 0, 0][..],             // indefinite primitive
            &[0x30, 0x85, 1, 1, 1, 1, 1][..],    // five length bytes
            &[][..],
        ] {
            let mut input = bad;
            assert!(element(&mut input, 0).is_err(), "{bad:02x?}");
        }
        let mut deep = Vec::new();
        for _ in 0..200 {
            deep.extend([0x30, 0x80]);
        }
        assert!(element(&mut &deep[..], 0).is_err());
        assert!(parse(b"not a pkcs12 file", "x").is_err());
    }

    #[test]
    fn pkcs12_kdf_matches_a_known_answer() {
        // Key (ID 1) for "smeg" with salt 0A58CF64530D823F, one iteration,
        // 24 bytes, SHA-1: the test value OpenSSL and others use.
        let key = pkcs12_kdf(
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            &bmp_password("smeg"),
            &hex::decode("0A58CF64530D823F").unwrap(),
            1,
            1,
            24,
        );
        assert_eq!(
            hex::encode(&*key),
            "8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3"
        );
    }

    #[test]
    fn written_files_read_back() {
        let key = b"\x30\x03\x02\x01\x00 not really a key";
        let cert = b"\x30\x03\x02\x01\x01 nor a certificate";
        let ca = b"\x30\x03\x02\x01\x02 nor a CA".to_vec();
        let chain = [(ca.clone(), Some("A CA".to_owned()))];
        let file = build(key, cert, &chain, "Zo\u{eb} key", "pässword", 1000).unwrap();
        let back = parse(&file, "pässword").unwrap();
        assert_eq!(&*back.private_key, key);
        assert_eq!(back.certificate, cert);
        assert_eq!(back.friendly_name.as_deref(), Some("Zo\u{eb} key"));
        assert_eq!(back.chain, [ca]);
        assert_eq!(
            parse(&file, "password").err().unwrap().kind,
            Kind::WrongPassword
        );
        // Any flipped byte is caught (by the MAC, or as malformed).
        let mut damaged = file.clone();
        let at = damaged.len() / 2;
        damaged[at] ^= 1;
        assert!(parse(&damaged, "pässword").is_err());
    }
}
