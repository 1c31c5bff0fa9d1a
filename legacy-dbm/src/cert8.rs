//! cert8.db records (docs/nss-db-format.md §2.2-2.3): the key is a
//! type byte and a type-specific key, the data a version, the same type
//! byte, a flags byte and a body whose lengths are big-endian 16-bit.

use crate::{Error, Result};

/// The record version NSS writes (7 is read too, 5 and 6 with one-byte
/// trust flags).
pub const RECORD_VERSION: u8 = 8;

const TYPE_VERSION: u8 = 0;
const TYPE_CERT: u8 = 1;
const TYPE_NICKNAME: u8 = 2;
const TYPE_SUBJECT: u8 = 3;
const TYPE_CRL: u8 = 4;
const TYPE_KRL: u8 = 5;
const TYPE_SMIME: u8 = 6;
const TYPE_CONTENT_VERSION: u8 = 7;
const TYPE_BLOB: u8 = 8;

/// Records with more data than this live in a file of `cert8.dir` (NSS:
/// a 16 KiB page less 2 KiB).
pub const BLOB_THRESHOLD: usize = 14336;

/// The trust flag words of a certificate: SSL, e-mail, object signing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    pub ssl: u16,
    pub email: u16,
    pub object_signing: u16,
}

/// Trust flag bits (per usage word).
pub mod trust {
    pub const TERMINAL_RECORD: u16 = 0x001;
    pub const TRUSTED: u16 = 0x002;
    pub const SEND_WARN: u16 = 0x004;
    pub const VALID_CA: u16 = 0x008;
    pub const TRUSTED_CA: u16 = 0x010;
    pub const NS_TRUSTED_CA: u16 = 0x020;
    pub const USER: u16 = 0x040;
    pub const TRUSTED_CLIENT_CA: u16 = 0x080;
    pub const INVISIBLE_CA: u16 = 0x100;
    pub const GOVT_APPROVED_CA: u16 = 0x200;
    pub const MUST_VERIFY: u16 = 0x400;
    pub const TRUSTED_UNKNOWN: u16 = 0x800;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertEntry {
    /// The record key without its type byte: the serial number's content
    /// octets followed by the issuer Name.
    pub key: Vec<u8>,
    pub trust: Trust,
    pub der: Vec<u8>,
    pub nickname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectEntry {
    pub subject: Vec<u8>,
    pub nickname: Option<String>,
    /// The keys (without type byte) of the certificates with this subject.
    pub cert_keys: Vec<Vec<u8>>,
    pub key_ids: Vec<Vec<u8>>,
    pub emails: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    pub issuer: Vec<u8>,
    pub der: Vec<u8>,
    pub url: Option<String>,
    /// A key revocation list (type 5) rather than a CRL.
    pub krl: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmimeEntry {
    pub email: String,
    pub subject: Vec<u8>,
    pub options: Vec<u8>,
    pub options_date: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Version,
    ContentVersion(u8),
    Cert(CertEntry),
    Nickname { nickname: String, subject: Vec<u8> },
    Subject(SubjectEntry),
    Crl(CrlEntry),
    Smime(SmimeEntry),
}

/// The key of a certificate record: the serial number's content octets
/// (from its DER INTEGER) and the issuer Name.
pub fn cert_key(serial_der: &[u8], issuer: &[u8]) -> Result<Vec<u8>> {
    let content = der_content(serial_der, 0x02)?;
    let mut key = content.to_vec();
    key.extend_from_slice(issuer);
    Ok(key)
}

/// The content of a DER element with the given tag that fills `der`.
pub fn der_content(der: &[u8], tag: u8) -> Result<&[u8]> {
    let bad = || Error::corrupt("bad DER element");
    if der.len() < 2 || der[0] != tag {
        return Err(bad());
    }
    let (len, header) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 if der.len() >= 3 => (der[2] as usize, 3),
        0x82 if der.len() >= 4 => (u16::from_be_bytes([der[2], der[3]]) as usize, 4),
        0x83 if der.len() >= 5 => (
            ((der[2] as usize) << 16) | ((der[3] as usize) << 8) | der[4] as usize,
            5,
        ),
        _ => return Err(bad()),
    };
    if der.len() != header + len {
        return Err(bad());
    }
    Ok(&der[header..])
}

/// A cursor over a record body.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::corrupt("record shorter than its lengths say"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<usize> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
}

/// A string of a record, read as NSS reads it (up to its first NUL);
/// empty is none.
fn text(bytes: &[u8]) -> Result<Option<String>> {
    let bytes = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
    if bytes.is_empty() {
        return Ok(None);
    }
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| Error::corrupt("a name that is not UTF-8"))
}

fn with_nul(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn put16(out: &mut Vec<u8>, n: usize) -> Result<()> {
    let n = u16::try_from(n).map_err(|_| Error::TooLarge)?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

/// The name of the `cert8.dir` file a blob stub points at.
pub fn blob_file_name(stub: &[u8]) -> Result<String> {
    // 08 08 00 00 len(4, little-endian) then the name, NUL-terminated.
    let name = stub
        .get(8..)
        .ok_or_else(|| Error::corrupt("short blob record"))?;
    let name = name.split(|b| *b == 0).next().unwrap_or(&[]);
    let name = std::str::from_utf8(name).map_err(|_| Error::corrupt("bad blob name"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-=".contains(c))
    {
        return Err(Error::corrupt("bad blob name"));
    }
    Ok(name.to_string())
}

/// A blob stub's length: 4 header bytes, the data's length, the name and
/// its NUL (NSS's BLOB_BUF_LEN).
const BLOB_STUB_LEN: usize = 38;

/// The length of the data a blob stub's file holds.
pub fn blob_len(stub: &[u8]) -> Result<usize> {
    let len: [u8; 4] = stub
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::corrupt("short blob record"))?;
    Ok(u32::from_le_bytes(len) as usize)
}

/// The stub that stands in cert8.db for the record `key` → `data`, and the
/// name of the cert8.dir file that holds `data`: "b" and the base64 of a
/// SHA-1 ('/' written '-'), as NSS names them (NSS hashes the key alone;
/// the data is hashed too here, so that a changed record gets a new file
/// and a crash before cert8.db is replaced leaves the old one's file).
pub fn blob_stub(key: &[u8], data: &[u8]) -> Result<(Vec<u8>, String)> {
    use base64ct::Encoding;
    let len = u32::try_from(data.len()).map_err(|_| Error::TooLarge)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(data);
    let digest = ctx.finish();
    let name = format!(
        "b{}",
        base64ct::Base64::encode_string(digest.as_ref()).replace('/', "-")
    );
    let mut stub = vec![RECORD_VERSION, TYPE_BLOB, 0, 0];
    stub.extend_from_slice(&len.to_le_bytes());
    stub.extend_from_slice(name.as_bytes());
    stub.push(0);
    debug_assert_eq!(stub.len(), BLOB_STUB_LEN);
    Ok((stub, name))
}

/// Whether a record's data is a blob stub (its real data is in a file).
pub fn is_blob(data: &[u8]) -> bool {
    data.len() >= BLOB_STUB_LEN && data[1] == TYPE_BLOB
}

/// Decodes one record (a blob stub must be replaced by its file's content
/// before).
pub fn decode(key: &[u8], data: &[u8]) -> Result<Record> {
    let (&key_type, key_rest) = key
        .split_first()
        .ok_or_else(|| Error::corrupt("empty record key"))?;
    if data.len() < 3 {
        return Err(Error::corrupt("record data shorter than its header"));
    }
    let (version, data_type) = (data[0], data[1]);
    if data_type != key_type {
        return Err(Error::corrupt("record key and data types differ"));
    }
    if !(5..=RECORD_VERSION).contains(&version) {
        return Err(Error::corrupt(format!("record version {version}")));
    }
    let mut body = Body(&data[3..]);
    match key_type {
        TYPE_VERSION => Ok(Record::Version),
        TYPE_CONTENT_VERSION => Ok(Record::ContentVersion(body.u8()?)),
        TYPE_CERT => {
            let trust = if version >= 7 {
                Trust {
                    ssl: body.u16()? as u16,
                    email: body.u16()? as u16,
                    object_signing: body.u16()? as u16,
                }
            } else {
                Trust {
                    ssl: body.u8()? as u16,
                    email: body.u8()? as u16,
                    object_signing: body.u8()? as u16,
                }
            };
            let mut cert_len = body.u16()?;
            let nick_len = body.u16()?;
            // A certificate past 64 KiB wrapped its 16-bit length.
            let extra = body.0.len().saturating_sub(cert_len + nick_len);
            if extra % 65536 == 0 {
                cert_len += extra;
            }
            let der = body.take(cert_len)?.to_vec();
            let nickname = text(body.take(nick_len)?)?;
            Ok(Record::Cert(CertEntry {
                key: key_rest.to_vec(),
                trust,
                der,
                nickname,
            }))
        }
        TYPE_NICKNAME => {
            let len = body.u16()?;
            Ok(Record::Nickname {
                nickname: text(key_rest)?.ok_or_else(|| Error::corrupt("empty nickname"))?,
                subject: body.take(len)?.to_vec(),
            })
        }
        TYPE_SUBJECT => {
            let count = body.u16()?;
            let nick_len = body.u16()?;
            body.take(2)?;
            let nickname = text(body.take(nick_len)?)?;
            let key_lens = (0..count).map(|_| body.u16()).collect::<Result<Vec<_>>>()?;
            let id_lens = (0..count).map(|_| body.u16()).collect::<Result<Vec<_>>>()?;
            let cert_keys = key_lens
                .iter()
                .map(|n| body.take(*n).map(<[u8]>::to_vec))
                .collect::<Result<Vec<_>>>()?;
            let key_ids = id_lens
                .iter()
                .map(|n| body.take(*n).map(<[u8]>::to_vec))
                .collect::<Result<Vec<_>>>()?;
            let mut emails = Vec::new();
            if body.0.len() >= 2 {
                let n = body.u16()?;
                for _ in 0..n {
                    let len = body.u16()?;
                    if let Some(e) = text(body.take(len)?)? {
                        emails.push(e);
                    }
                }
            }
            Ok(Record::Subject(SubjectEntry {
                subject: key_rest.to_vec(),
                nickname,
                cert_keys,
                key_ids,
                emails,
            }))
        }
        TYPE_CRL | TYPE_KRL => {
            let mut crl_len = body.u16()?;
            let url_len = body.u16()?;
            let extra = body.0.len().saturating_sub(crl_len + url_len);
            if extra % 65536 == 0 {
                crl_len += extra;
            }
            Ok(Record::Crl(CrlEntry {
                issuer: key_rest.to_vec(),
                der: body.take(crl_len)?.to_vec(),
                url: text(body.take(url_len)?)?,
                krl: key_type == TYPE_KRL,
            }))
        }
        TYPE_SMIME => {
            let subject_len = body.u16()?;
            let options_len = body.u16()?;
            let date_len = body.u16()?;
            Ok(Record::Smime(SmimeEntry {
                email: text(key_rest)?.ok_or_else(|| Error::corrupt("empty e-mail address"))?,
                subject: body.take(subject_len)?.to_vec(),
                options: body.take(options_len)?.to_vec(),
                options_date: body.take(date_len)?.to_vec(),
            }))
        }
        other => Err(Error::corrupt(format!("unknown record type {other}"))),
    }
}

/// Encodes a record as NSS 3.87 writes it: (key, data).
pub fn encode(record: &Record) -> Result<(Vec<u8>, Vec<u8>)> {
    let (key_type, key_rest, body): (u8, Vec<u8>, Vec<u8>) = match record {
        Record::Version => (TYPE_VERSION, b"Version\0".to_vec(), Vec::new()),
        Record::ContentVersion(v) => (TYPE_CONTENT_VERSION, b"ContentVersion\0".to_vec(), vec![*v]),
        Record::Cert(c) => {
            let nick = c.nickname.as_deref().map(with_nul).unwrap_or_default();
            let mut body = Vec::new();
            for t in [c.trust.ssl, c.trust.email, c.trust.object_signing] {
                body.extend_from_slice(&t.to_be_bytes());
            }
            // The length wraps past 64 KiB, as NSS writes it.
            body.extend_from_slice(&((c.der.len() & 0xffff) as u16).to_be_bytes());
            put16(&mut body, nick.len())?;
            body.extend_from_slice(&c.der);
            body.extend_from_slice(&nick);
            (TYPE_CERT, c.key.clone(), body)
        }
        Record::Nickname { nickname, subject } => {
            let mut body = Vec::new();
            put16(&mut body, subject.len())?;
            body.extend_from_slice(subject);
            (TYPE_NICKNAME, with_nul(nickname), body)
        }
        Record::Subject(s) => {
            if s.cert_keys.len() != s.key_ids.len() {
                return Err(Error::corrupt("subject record with unpaired key ids"));
            }
            let nick = s.nickname.as_deref().map(with_nul).unwrap_or_default();
            let mut body = Vec::new();
            put16(&mut body, s.cert_keys.len())?;
            put16(&mut body, nick.len())?;
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&nick);
            for k in &s.cert_keys {
                put16(&mut body, k.len())?;
            }
            for k in &s.key_ids {
                put16(&mut body, k.len())?;
            }
            for k in s.cert_keys.iter().chain(&s.key_ids) {
                body.extend_from_slice(k);
            }
            if !s.emails.is_empty() {
                put16(&mut body, s.emails.len())?;
                for e in &s.emails {
                    let e = with_nul(e);
                    put16(&mut body, e.len())?;
                    body.extend_from_slice(&e);
                }
            }
            (TYPE_SUBJECT, s.subject.clone(), body)
        }
        Record::Crl(c) => {
            let url = c.url.as_deref().map(with_nul).unwrap_or_default();
            let mut body = Vec::new();
            body.extend_from_slice(&((c.der.len() & 0xffff) as u16).to_be_bytes());
            put16(&mut body, url.len())?;
            body.extend_from_slice(&c.der);
            body.extend_from_slice(&url);
            (
                if c.krl { TYPE_KRL } else { TYPE_CRL },
                c.issuer.clone(),
                body,
            )
        }
        Record::Smime(s) => {
            let mut body = Vec::new();
            put16(&mut body, s.subject.len())?;
            put16(&mut body, s.options.len())?;
            put16(&mut body, s.options_date.len())?;
            body.extend_from_slice(&s.subject);
            body.extend_from_slice(&s.options);
            body.extend_from_slice(&s.options_date);
            (TYPE_SMIME, with_nul(&s.email), body)
        }
    };
    let mut key = vec![key_type];
    key.extend_from_slice(&key_rest);
    let mut data = vec![RECORD_VERSION, key_type, 0];
    data.extend_from_slice(&body);
    Ok((key, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_stubs_are_what_nss_reads() {
        let data = vec![7u8; BLOB_THRESHOLD + 1];
        let (stub, name) = blob_stub(b"key", &data).unwrap();
        assert_eq!(stub.len(), BLOB_STUB_LEN);
        assert!(is_blob(&stub));
        assert_eq!(blob_len(&stub).unwrap(), data.len());
        assert_eq!(blob_file_name(&stub).unwrap(), name);
        assert!(name.starts_with('b') && name.len() == 29 && !name.contains('/'));
        // Another content, another file.
        assert_ne!(blob_stub(b"key", &data[1..]).unwrap().1, name);
    }

    #[test]
    fn every_record_kind_round_trips() {
        let records = [
            Record::Version,
            Record::ContentVersion(3),
            Record::Cert(CertEntry {
                key: vec![1, 2, 0x30, 0],
                trust: Trust {
                    ssl: trust::VALID_CA | trust::TRUSTED_CA,
                    email: 0,
                    object_signing: trust::TRUSTED_UNKNOWN,
                },
                der: vec![0x30, 3, 1, 2, 3],
                nickname: Some("nick".into()),
            }),
            Record::Nickname {
                nickname: "nick".into(),
                subject: vec![0x30, 0],
            },
            Record::Subject(SubjectEntry {
                subject: vec![0x30, 0],
                nickname: Some("nick".into()),
                cert_keys: vec![vec![1, 2], vec![3]],
                key_ids: vec![vec![], vec![]],
                emails: vec!["a@example.com".into()],
            }),
            Record::Crl(CrlEntry {
                issuer: vec![0x30, 0],
                der: vec![0x30, 1, 0],
                url: None,
                krl: false,
            }),
            Record::Smime(SmimeEntry {
                email: "a@example.com".into(),
                subject: vec![0x30, 0],
                options: vec![],
                options_date: vec![],
            }),
        ];
        for r in records {
            let (k, d) = encode(&r).unwrap();
            assert_eq!(decode(&k, &d).unwrap(), r);
        }
    }

    #[test]
    fn truncated_records_are_errors() {
        let (k, d) = encode(&Record::Subject(SubjectEntry {
            subject: vec![0x30, 0],
            nickname: Some("n".into()),
            cert_keys: vec![vec![1; 10]],
            key_ids: vec![vec![2; 3]],
            emails: vec!["e@x".into()],
        }))
        .unwrap();
        for len in 0..d.len() - 1 {
            // Shorter data must never panic; most lengths are errors.
            let _ = decode(&k, &d[..len]);
        }
        assert!(decode(&k, &d[..10]).is_err());
        assert!(decode(&[], &d).is_err());
        assert!(decode(&[9], &[8, 9, 0]).is_err());
    }

    #[test]
    fn cert_keys_are_serial_content_and_issuer() {
        assert_eq!(cert_key(&[2, 1, 99], &[0x30, 0]).unwrap(), [99, 0x30, 0]);
        assert!(cert_key(&[4, 1, 99], &[0x30, 0]).is_err());
    }
}
