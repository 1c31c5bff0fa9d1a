//! key3.db records (docs/nss-db-format.md §2.4): the global salt,
//! the password check, a version, and one record per private key keyed by
//! its public value.

use crate::{Error, Result};

pub const VERSION_KEY: &[u8] = b"Version";
pub const GLOBAL_SALT_KEY: &[u8] = b"global-salt";
pub const PASSWORD_CHECK_KEY: &[u8] = b"password-check";
pub const FAKE_PASSWORD_CHECK_KEY: &[u8] = b"fake-password-check";

/// The version key3.db records carry.
pub const DBKEY_VERSION: u8 = 3;

/// The OID of NSS's legacy key-database PBE (SHA-1 and 3-key 3DES-CBC),
/// 1.2.840.113549.1.12.5.1.3, as DER content octets.
pub const LEGACY_PBE_OID: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x05, 0x01, 0x03,
];

/// Whether an OID is one of the draft-PKCS#12 PBEs key3.db files used:
/// 1.2.840.113549.1.12.5.1.1 (RC4, 128-bit key), .2 (RC4, 40-bit), .3 (3DES).
fn is_legacy_pbe(oid: &[u8]) -> bool {
    oid.len() == LEGACY_PBE_OID.len()
        && oid[..oid.len() - 1] == LEGACY_PBE_OID[..LEGACY_PBE_OID.len() - 1]
        && (1..=3).contains(&oid[oid.len() - 1])
}

/// The common frame of the password check and of key records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbKey {
    pub salt: Vec<u8>,
    pub nickname: String,
    pub payload: Vec<u8>,
}

impl DbKey {
    pub fn decode(data: &[u8]) -> Result<DbKey> {
        if data.len() < 3 {
            return Err(Error::corrupt("key record shorter than its header"));
        }
        if data[0] != DBKEY_VERSION {
            return Err(Error::corrupt(format!("key record version {}", data[0])));
        }
        let (salt_len, nick_len) = (data[1] as usize, data[2] as usize);
        let rest = &data[3..];
        if rest.len() < salt_len + nick_len {
            return Err(Error::corrupt("key record shorter than its lengths say"));
        }
        let (salt, rest) = rest.split_at(salt_len);
        let (nick, payload) = rest.split_at(nick_len);
        let nick = nick.split(|b| *b == 0).next().unwrap_or(&[]);
        Ok(DbKey {
            salt: salt.to_vec(),
            nickname: String::from_utf8(nick.to_vec())
                .map_err(|_| Error::corrupt("key nickname is not UTF-8"))?,
            payload: payload.to_vec(),
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        // An empty nickname is stored as its NUL alone.
        let mut nick = self.nickname.as_bytes().to_vec();
        nick.push(0);
        let salt_len = u8::try_from(self.salt.len()).map_err(|_| Error::TooLarge)?;
        let nick_len = u8::try_from(nick.len()).map_err(|_| Error::TooLarge)?;
        let mut out = vec![DBKEY_VERSION, salt_len, nick_len];
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&nick);
        out.extend_from_slice(&self.payload);
        Ok(out)
    }
}

/// The password check: the encrypted "password-check" under a legacy PBE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordCheck {
    /// The PBE's OID (content octets): 3DES in every file NSS 3 writes.
    pub oid: Vec<u8>,
    pub salt: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

impl PasswordCheck {
    pub fn decode(data: &[u8]) -> Result<PasswordCheck> {
        let key = DbKey::decode(data)?;
        let (&oid_len, rest) = key
            .payload
            .split_first()
            .ok_or_else(|| Error::corrupt("empty password check"))?;
        let oid_len = oid_len as usize;
        if rest.len() < oid_len || !is_legacy_pbe(&rest[..oid_len]) {
            return Err(Error::corrupt("password check under an unknown algorithm"));
        }
        Ok(PasswordCheck {
            oid: rest[..oid_len].to_vec(),
            salt: key.salt,
            ciphertext: rest[oid_len..].to_vec(),
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let oid_len = u8::try_from(self.oid.len()).map_err(|_| Error::TooLarge)?;
        let mut payload = vec![oid_len];
        payload.extend_from_slice(&self.oid);
        payload.extend_from_slice(&self.ciphertext);
        DbKey {
            salt: self.salt.clone(),
            nickname: String::new(),
            payload,
        }
        .encode()
    }

    /// The record for the DER form `to_der` gives (a password entry the
    /// token made: one iteration, as key3.db files have).
    pub fn from_der(der_value: &[u8]) -> Result<PasswordCheck> {
        use der::{asn1::ObjectIdentifier, asn1::OctetString, Decode, Sequence};
        #[derive(Sequence)]
        struct Params {
            salt: OctetString,
            iterations: der::asn1::Int,
        }
        #[derive(Sequence)]
        struct Alg {
            oid: ObjectIdentifier,
            params: Params,
        }
        #[derive(Sequence)]
        struct Check {
            alg: Alg,
            ciphertext: OctetString,
        }
        let bad = |_| Error::corrupt("password check that is not a legacy PBE value");
        let check = Check::from_der(der_value).map_err(bad)?;
        let oid = check.alg.oid.as_bytes().to_vec();
        if !is_legacy_pbe(&oid) || check.alg.params.iterations.as_bytes() != [1] {
            return Err(Error::corrupt("password check under an unknown algorithm"));
        }
        Ok(PasswordCheck {
            oid,
            salt: check.alg.params.salt.into_bytes().into_vec(),
            ciphertext: check.ciphertext.into_bytes().into_vec(),
        })
    }

    /// The same value as the DER NSS rebuilds from it (and keeps in a
    /// migrated key4.db): SEQ { SEQ { OID, SEQ { salt, 1 } }, ciphertext }.
    pub fn to_der(&self) -> Vec<u8> {
        let params = der(0x30, &[der(0x04, &self.salt), der(0x02, &[1])].concat());
        let alg = der(0x30, &[der(0x06, &self.oid), params].concat());
        der(0x30, &[alg, der(0x04, &self.ciphertext)].concat())
    }
}

/// A key3.db record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Version(u8),
    GlobalSalt(Vec<u8>),
    PasswordCheck(PasswordCheck),
    /// Very old databases without a password mark themselves so.
    FakePasswordCheck,
    /// A private key: its public value (RSA modulus, EC point) as the
    /// record key; the payload is an EncryptedPrivateKeyInfo.
    PrivateKey {
        public_value: Vec<u8>,
        key: DbKey,
    },
}

pub fn decode(key: &[u8], data: &[u8]) -> Result<Record> {
    Ok(match key {
        VERSION_KEY => Record::Version(
            *data
                .first()
                .ok_or_else(|| Error::corrupt("empty version record"))?,
        ),
        GLOBAL_SALT_KEY => Record::GlobalSalt(data.to_vec()),
        PASSWORD_CHECK_KEY => Record::PasswordCheck(PasswordCheck::decode(data)?),
        FAKE_PASSWORD_CHECK_KEY => Record::FakePasswordCheck,
        _ => Record::PrivateKey {
            public_value: key.to_vec(),
            key: DbKey::decode(data)?,
        },
    })
}

pub fn encode(record: &Record) -> Result<(Vec<u8>, Vec<u8>)> {
    Ok(match record {
        Record::Version(v) => (VERSION_KEY.to_vec(), vec![*v]),
        Record::GlobalSalt(s) => (GLOBAL_SALT_KEY.to_vec(), s.clone()),
        Record::PasswordCheck(c) => (PASSWORD_CHECK_KEY.to_vec(), c.encode()?),
        Record::FakePasswordCheck => (FAKE_PASSWORD_CHECK_KEY.to_vec(), Vec::new()),
        Record::PrivateKey { public_value, key } => (public_value.clone(), key.encode()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for r in [
            Record::Version(3),
            Record::GlobalSalt(vec![1; 20]),
            Record::PasswordCheck(PasswordCheck {
                oid: LEGACY_PBE_OID.to_vec(),
                salt: vec![2; 20],
                ciphertext: vec![3; 16],
            }),
            Record::PrivateKey {
                public_value: vec![4; 256],
                key: DbKey {
                    salt: vec![],
                    nickname: String::new(),
                    payload: vec![0x30, 0],
                },
            },
        ] {
            let (k, d) = encode(&r).unwrap();
            assert_eq!(decode(&k, &d).unwrap(), r);
            if let Record::PasswordCheck(c) = &r {
                assert_eq!(&PasswordCheck::from_der(&c.to_der()).unwrap(), c);
            }
        }
    }

    #[test]
    fn damaged_records_are_errors() {
        assert!(DbKey::decode(&[3, 5, 0, 1]).is_err());
        assert!(DbKey::decode(&[2, 0, 0]).is_err());
        assert!(decode(PASSWORD_CHECK_KEY, &[3, 0, 1, 0, 11, 1, 2]).is_err());
        assert!(decode(VERSION_KEY, &[]).is_err());
    }
}
