//! The records of a `dbm:` directory as the PKCS#11 objects NSS presents
//! for them (docs/nss-db-format.md §2.7), behind the storage
//! trait: a certificate side (certificates, NSS trust objects, CRLs, S/MIME
//! records) and a key side (private keys and their public keys, the
//! password entry).
//!
//! Private keys become objects only while the token has given its codec
//! (after login): their records are encrypted PKCS#8, and only the token
//! can open or seal them.
//!
//! Writes gather in a transaction; its commit takes a lock on the
//! directory, reads the file again, applies them to the records and
//! replaces the file whole (temporary file, flush, rename), so a crash
//! leaves the old file or the new one. The format has no integrity records:
//! the token's are dropped. A new password entry seals every key record
//! anew (with the codec the transaction is given) in the same replacement.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use pkcs11_sys::*;
use sdb::{
    AttrType, Attribute, FindCursor, KeyRecordCodec, Metadata, ObjectId, Sdb, SdbRead, Transaction,
    MAX_OBJECT_ID, PASSWORD_ENTRY_ID,
};

use crate::hash::HashFile;
use crate::{cert8, key3, Error};

// NSS's vendor-defined classes, attributes and trust values.
const NSS_VENDOR: CK_ULONG = 0xCE53_4350;
const CKO_NSS_CRL: CK_ULONG = NSS_VENDOR + 1;
const CKO_NSS_SMIME: CK_ULONG = NSS_VENDOR + 2;
const CKO_NSS_TRUST: CK_ULONG = NSS_VENDOR + 3;
const CKA_NSS_URL: CK_ULONG = NSS_VENDOR + 1;
const CKA_NSS_EMAIL: CK_ULONG = NSS_VENDOR + 2;
const CKA_NSS_SMIME_TIMESTAMP: CK_ULONG = NSS_VENDOR + 4;
const CKA_NSS_KRL: CK_ULONG = NSS_VENDOR + 8;
const CKA_NSS_DB: CK_ULONG = 0xD5A0_DB00;
const NSS_TRUST: CK_ULONG = 0xCE53_6350;
const CKA_TRUST_SERVER_AUTH: CK_ULONG = NSS_TRUST + 8;
const CKA_TRUST_CLIENT_AUTH: CK_ULONG = NSS_TRUST + 9;
const CKA_TRUST_CODE_SIGNING: CK_ULONG = NSS_TRUST + 10;
const CKA_TRUST_EMAIL_PROTECTION: CK_ULONG = NSS_TRUST + 11;
const CKA_TRUST_STEP_UP_APPROVED: CK_ULONG = NSS_TRUST + 16;
const CKA_CERT_SHA1_HASH: CK_ULONG = NSS_TRUST + 100;
const CKA_CERT_MD5_HASH: CK_ULONG = NSS_TRUST + 101;
const CKT_NSS_TRUSTED: CK_ULONG = NSS_VENDOR + 1;
const CKT_NSS_TRUSTED_DELEGATOR: CK_ULONG = NSS_VENDOR + 2;
const CKT_NSS_MUST_VERIFY_TRUST: CK_ULONG = NSS_VENDOR + 3;
const CKT_NSS_TRUST_UNKNOWN: CK_ULONG = NSS_VENDOR + 5;
const CKT_NSS_NOT_TRUSTED: CK_ULONG = NSS_VENDOR + 10;
const CKT_NSS_VALID_DELEGATOR: CK_ULONG = NSS_VENDOR + 11;

/// A CK_ULONG as stored: 4 bytes, big-endian.
fn ulong(v: CK_ULONG) -> Vec<u8> {
    (v as u32).to_be_bytes().to_vec()
}

fn boolean(v: bool) -> Vec<u8> {
    vec![v as u8]
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn md5(data: &[u8]) -> Vec<u8> {
    use md5::Digest;
    md5::Md5::digest(data).to_vec()
}

// ---- the few certificate fields the objects need ----

/// Reads one DER element: (tag, content, the whole element).
fn element<'a>(input: &mut &'a [u8]) -> crate::Result<(u8, &'a [u8], &'a [u8])> {
    let start = *input;
    let bad = || Error::corrupt("bad DER in a certificate");
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(bad());
    }
    let (content, after) = rest.split_at(len);
    *input = after;
    Ok((tag, content, &start[..start.len() - after.len()]))
}

/// What objects of a certificate need from it.
struct CertFields {
    serial: Vec<u8>,
    issuer: Vec<u8>,
    subject: Vec<u8>,
    /// The value NSS derives CKA_ID from: an RSA modulus, an EC point.
    public_value: Vec<u8>,
}

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The CKA_ID NSS gives a certificate's key: the SHA-1 of its public
/// value (an RSA modulus, an EC point). None for a certificate that does
/// not parse.
pub fn certificate_key_id(der: &[u8]) -> Option<Vec<u8>> {
    cert_fields(der).ok().map(|f| sha1(&f.public_value))
}

fn cert_fields(der: &[u8]) -> crate::Result<CertFields> {
    let mut input = der;
    let (_, cert, _) = element(&mut input)?;
    let mut cert = cert;
    let (_, tbs, _) = element(&mut cert)?;
    let mut tbs = tbs;
    let (mut tag, _, mut whole) = element(&mut tbs)?;
    if tag == 0xa0 {
        (tag, _, whole) = element(&mut tbs)?;
    }
    if tag != 0x02 {
        return Err(Error::corrupt("certificate without a serial number"));
    }
    let serial = whole.to_vec();
    element(&mut tbs)?; // signature algorithm
    let issuer = element(&mut tbs)?.2.to_vec();
    element(&mut tbs)?; // validity
    let subject = element(&mut tbs)?.2.to_vec();
    let (_, mut spki, _) = element(&mut tbs)?;
    let (_, mut alg, _) = element(&mut spki)?;
    let (_, oid, _) = element(&mut alg)?;
    let (_, bits, _) = element(&mut spki)?;
    let key = bits
        .get(1..)
        .ok_or_else(|| Error::corrupt("empty public key"))?;
    let public_value = if oid == RSA_ENCRYPTION {
        let mut k = key;
        let (_, mut rsa, _) = element(&mut k)?;
        let (_, modulus, _) = element(&mut rsa)?;
        let start = modulus
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(modulus.len());
        modulus[start..].to_vec()
    } else {
        key.to_vec()
    };
    Ok(CertFields {
        serial,
        issuer,
        subject,
        public_value,
    })
}

/// NSS's mapping of one legacy trust word to a PKCS#11 trust value; for
/// client authentication only the client-CA bit makes a delegator.
fn trust_value(word: u16, client: bool) -> CK_ULONG {
    use cert8::trust::*;
    let word = if client {
        if word & TRUSTED_CLIENT_CA != 0 {
            word | TRUSTED_CA
        } else {
            0
        }
    } else {
        word
    };
    if word & TRUSTED_CA != 0 {
        CKT_NSS_TRUSTED_DELEGATOR
    } else if word & TRUSTED != 0 {
        CKT_NSS_TRUSTED
    } else if word & MUST_VERIFY != 0 {
        CKT_NSS_MUST_VERIFY_TRUST
    } else if word & TERMINAL_RECORD != 0 {
        CKT_NSS_NOT_TRUSTED
    } else if word & VALID_CA != 0 {
        CKT_NSS_VALID_DELEGATOR
    } else {
        CKT_NSS_TRUST_UNKNOWN
    }
}

/// A stable 30-bit id for a record: a hash of its kind and key, moved on
/// past collisions.
fn object_id(kind: u8, key: &[u8], taken: &BTreeMap<ObjectId, Vec<Attribute>>) -> ObjectId {
    let mut h: u32 = 0x811c_9dc5;
    for b in std::iter::once(&kind).chain(key) {
        h = (h ^ *b as u32).wrapping_mul(0x0100_0193);
    }
    let mut id = (h & MAX_OBJECT_ID).max(1);
    while taken.contains_key(&id) {
        id = if id >= MAX_OBJECT_ID { 1 } else { id + 1 };
    }
    id
}

/// The files of one directory and what they hold.
struct Loaded {
    cert_objects: BTreeMap<ObjectId, Vec<Attribute>>,
    key_objects: BTreeMap<ObjectId, Vec<Attribute>>,
    password: Option<Metadata>,
    /// (size, modification time) of each file when read.
    stamps: Vec<Option<(u64, std::time::SystemTime)>>,
    /// Whether private keys were opened with a codec.
    with_codec: bool,
}

struct Shared {
    dir: PathBuf,
    read_only: bool,
    cert_path: PathBuf,
    key_path: PathBuf,
    codec: RwLock<Option<Arc<dyn KeyRecordCodec>>>,
    loaded: Mutex<Option<Arc<Loaded>>>,
}

fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

fn read_records(path: &Path) -> sdb::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(sdb::Error::Io {
                path: path.display().to_string(),
                source: e,
            })
        }
    };
    HashFile::parse(&bytes)
        .and_then(|h| h.records())
        .map_err(|e| sdb::Error::Corrupt(format!("{}: {e}", path.display())))
}

fn corrupt(path: &Path, e: Error) -> sdb::Error {
    sdb::Error::Corrupt(format!("{}: {e}", path.display()))
}

impl Shared {
    fn stamps(&self) -> Vec<Option<(u64, std::time::SystemTime)>> {
        vec![stamp(&self.cert_path), stamp(&self.key_path)]
    }

    /// The objects, read again when a file changed or the codec came or
    /// went.
    fn current(&self) -> sdb::Result<Arc<Loaded>> {
        let codec = self.codec.read().clone();
        let mut loaded = self.loaded.lock();
        if let Some(l) = loaded.as_ref() {
            if l.stamps == self.stamps() && l.with_codec == codec.is_some() {
                return Ok(l.clone());
            }
        }
        let fresh = Arc::new(self.load(codec.as_deref())?);
        *loaded = Some(fresh.clone());
        Ok(fresh)
    }

    fn load(&self, codec: Option<&dyn KeyRecordCodec>) -> sdb::Result<Loaded> {
        let stamps = self.stamps();
        let mut salt = None;
        let mut check = None;
        let mut keys = Vec::new();
        for (k, d) in read_records(&self.key_path)? {
            match key3::decode(&k, &d).map_err(|e| corrupt(&self.key_path, e))? {
                key3::Record::GlobalSalt(s) => salt = Some(s),
                key3::Record::PasswordCheck(c) => check = Some(c),
                key3::Record::PrivateKey { public_value, key } => keys.push((public_value, key)),
                key3::Record::Version(_) | key3::Record::FakePasswordCheck => {}
            }
        }
        let password = match (salt, check) {
            (Some(item1), Some(check)) => Some(Metadata {
                item1,
                item2: Some(check.to_der()),
            }),
            _ => None,
        };
        let key_values: HashMap<&[u8], &key3::DbKey> =
            keys.iter().map(|(p, k)| (p.as_slice(), k)).collect();

        let mut cert_objects = BTreeMap::new();
        let mut emails: HashMap<Vec<u8>, String> = HashMap::new();
        let mut records = Vec::new();
        let (cert_records, _) = read_cert_records(&self.cert_path)?;
        for (k, data) in cert_records {
            let record = cert8::decode(&k, &data).map_err(|e| corrupt(&self.cert_path, e))?;
            if let cert8::Record::Subject(s) = &record {
                if let Some(e) = s.emails.first() {
                    emails.insert(s.subject.clone(), e.clone());
                }
            }
            records.push((k, record));
        }
        for (k, record) in records {
            match record {
                cert8::Record::Cert(c) => {
                    let f = cert_fields(&c.der).map_err(|e| corrupt(&self.cert_path, e))?;
                    let id = if key_values.contains_key(f.public_value.as_slice()) {
                        sha1(&f.public_value)
                    } else {
                        Vec::new()
                    };
                    let mut attrs = vec![
                        (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                        (CKA_TOKEN, boolean(true)),
                        (CKA_PRIVATE, boolean(false)),
                        (CKA_MODIFIABLE, boolean(true)),
                        (
                            CKA_LABEL,
                            c.nickname.clone().unwrap_or_default().into_bytes(),
                        ),
                        (CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
                        (CKA_ID, id),
                        (CKA_SUBJECT, f.subject.clone()),
                        (CKA_ISSUER, f.issuer.clone()),
                        (CKA_SERIAL_NUMBER, f.serial.clone()),
                        (CKA_VALUE, c.der.clone()),
                    ];
                    // Empty when the subject has no address, as NSS shows it.
                    let email = emails.get(&f.subject).cloned().unwrap_or_default();
                    attrs.push((CKA_NSS_EMAIL, email.into_bytes()));
                    let cid = object_id(b'c', &k, &cert_objects);
                    cert_objects.insert(cid, attrs);
                    let t = c.trust;
                    let only_unknown = [t.ssl, t.email, t.object_signing]
                        .iter()
                        .all(|w| w & !cert8::trust::TRUSTED_UNKNOWN == 0);
                    if !only_unknown {
                        let trust = vec![
                            (CKA_CLASS, ulong(CKO_NSS_TRUST)),
                            // NSS's legacy module shows every such object an empty label.
                            (CKA_LABEL, Vec::new()),
                            (CKA_TOKEN, boolean(true)),
                            (CKA_PRIVATE, boolean(false)),
                            (CKA_MODIFIABLE, boolean(true)),
                            (CKA_ISSUER, f.issuer),
                            (CKA_SERIAL_NUMBER, f.serial),
                            (CKA_CERT_SHA1_HASH, sha1(&c.der)),
                            (CKA_CERT_MD5_HASH, md5(&c.der)),
                            (CKA_TRUST_SERVER_AUTH, ulong(trust_value(t.ssl, false))),
                            (CKA_TRUST_CLIENT_AUTH, ulong(trust_value(t.ssl, true))),
                            (
                                CKA_TRUST_EMAIL_PROTECTION,
                                ulong(trust_value(t.email, false)),
                            ),
                            (
                                CKA_TRUST_CODE_SIGNING,
                                ulong(trust_value(t.object_signing, false)),
                            ),
                            (
                                CKA_TRUST_STEP_UP_APPROVED,
                                boolean(t.ssl & cert8::trust::GOVT_APPROVED_CA != 0),
                            ),
                        ];
                        let tid = object_id(b't', &k, &cert_objects);
                        cert_objects.insert(tid, trust);
                    }
                }
                cert8::Record::Crl(c) => {
                    let mut attrs = vec![
                        (CKA_CLASS, ulong(CKO_NSS_CRL)),
                        // NSS's legacy module shows every such object an empty label.
                        (CKA_LABEL, Vec::new()),
                        (CKA_TOKEN, boolean(true)),
                        (CKA_PRIVATE, boolean(false)),
                        (CKA_MODIFIABLE, boolean(false)),
                        (CKA_SUBJECT, c.issuer),
                        (CKA_VALUE, c.der),
                        (CKA_NSS_KRL, boolean(c.krl)),
                    ];
                    // NSS's form: NUL-terminated, empty when there is none.
                    let url = c.url.map(|u| [u.as_bytes(), &[0]].concat());
                    attrs.push((CKA_NSS_URL, url.unwrap_or_default()));
                    let id = object_id(b'r', &k, &cert_objects);
                    cert_objects.insert(id, attrs);
                }
                cert8::Record::Smime(s) => {
                    let mut attrs = vec![
                        (CKA_CLASS, ulong(CKO_NSS_SMIME)),
                        // NSS's legacy module shows every such object an empty label.
                        (CKA_LABEL, Vec::new()),
                        (CKA_TOKEN, boolean(true)),
                        (CKA_PRIVATE, boolean(false)),
                        (CKA_MODIFIABLE, boolean(false)),
                        (CKA_NSS_EMAIL, s.email.into_bytes()),
                        (CKA_SUBJECT, s.subject),
                    ];
                    // NSS keeps the S/MIME profile in CKA_VALUE.
                    attrs.push((CKA_VALUE, s.options));
                    attrs.push((CKA_NSS_SMIME_TIMESTAMP, s.options_date));
                    let id = object_id(b's', &k, &cert_objects);
                    cert_objects.insert(id, attrs);
                }
                cert8::Record::Version
                | cert8::Record::ContentVersion(_)
                | cert8::Record::Nickname { .. }
                | cert8::Record::Subject(_) => {}
            }
        }

        let mut key_objects = BTreeMap::new();
        // A codec of another password (another process changed it) opens
        // nothing: the token then sees the change and logs out.
        let opening = codec.filter(|c| password.as_ref().is_some_and(|p| c.unlocks(p)));
        if let Some(codec) = opening {
            for (public_value, key) in &keys {
                let material = codec.open_private_key(&key.payload)?;
                let get = |t: AttrType| {
                    material
                        .iter()
                        .find(|(a, _)| *a == t)
                        .map(|(_, v)| v.clone())
                };
                let key_type = get(CKA_KEY_TYPE)
                    .ok_or_else(|| sdb::Error::Corrupt("a key record without a key type".into()))?;
                let label = key.nickname.clone().into_bytes();
                if get(CKA_CLASS) == Some(ulong(CKO_SECRET_KEY)) {
                    // The record's key is the key's CKA_ID; the flags are
                    // the ones NSS's legacy module shows for every one.
                    let mut secret = vec![
                        (CKA_TOKEN, boolean(true)),
                        (CKA_LABEL, label),
                        (CKA_ID, public_value.clone()),
                        (CKA_NEVER_EXTRACTABLE, boolean(false)),
                    ];
                    for t in [
                        CKA_PRIVATE,
                        CKA_SENSITIVE,
                        CKA_ALWAYS_SENSITIVE,
                        CKA_EXTRACTABLE,
                        CKA_DERIVE,
                        CKA_ENCRYPT,
                        CKA_DECRYPT,
                        CKA_SIGN,
                        CKA_VERIFY,
                        CKA_WRAP,
                        CKA_UNWRAP,
                        CKA_MODIFIABLE,
                        CKA_LOCAL,
                    ] {
                        secret.push((t, boolean(true)));
                    }
                    secret.extend(material.iter().cloned());
                    let sid = object_id(b's', public_value, &key_objects);
                    key_objects.insert(sid, secret);
                    continue;
                }
                let id = sha1(public_value);
                let is_rsa = key_type == ulong(CKK_RSA);
                // The flags and empty values NSS's legacy module shows.
                let mut private = vec![
                    (CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
                    (CKA_TOKEN, boolean(true)),
                    (CKA_PRIVATE, boolean(true)),
                    (CKA_MODIFIABLE, boolean(true)),
                    (CKA_SENSITIVE, boolean(true)),
                    (CKA_ALWAYS_SENSITIVE, boolean(true)),
                    (CKA_EXTRACTABLE, boolean(true)),
                    (CKA_NEVER_EXTRACTABLE, boolean(false)),
                    (CKA_LOCAL, boolean(true)),
                    (CKA_SUBJECT, Vec::new()),
                    (CKA_START_DATE, Vec::new()),
                    (CKA_END_DATE, Vec::new()),
                    (CKA_LABEL, label.clone()),
                    (CKA_ID, id.clone()),
                    (CKA_SIGN, boolean(true)),
                    (CKA_DECRYPT, boolean(is_rsa)),
                    (CKA_UNWRAP, boolean(is_rsa)),
                    (CKA_SIGN_RECOVER, boolean(is_rsa)),
                    (CKA_DERIVE, boolean(!is_rsa)),
                ];
                private.extend(material.iter().cloned());
                let mut public = vec![
                    (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                    (CKA_TOKEN, boolean(true)),
                    (CKA_PRIVATE, boolean(false)),
                    (CKA_MODIFIABLE, boolean(true)),
                    (CKA_SENSITIVE, boolean(false)),
                    (CKA_ALWAYS_SENSITIVE, boolean(false)),
                    (CKA_EXTRACTABLE, boolean(true)),
                    (CKA_NEVER_EXTRACTABLE, boolean(false)),
                    (CKA_SUBJECT, Vec::new()),
                    (CKA_START_DATE, Vec::new()),
                    (CKA_END_DATE, Vec::new()),
                    (CKA_LABEL, label),
                    (CKA_ID, id),
                    (CKA_KEY_TYPE, key_type.clone()),
                    (CKA_VERIFY, boolean(true)),
                    (CKA_ENCRYPT, boolean(is_rsa)),
                    (CKA_WRAP, boolean(is_rsa)),
                    (CKA_VERIFY_RECOVER, boolean(is_rsa)),
                    (CKA_DERIVE, boolean(!is_rsa)),
                ];
                if is_rsa {
                    for t in [CKA_MODULUS, CKA_PUBLIC_EXPONENT] {
                        if let Some(v) = get(t) {
                            public.push((t, v));
                        }
                    }
                } else {
                    // NSS keeps an EC key's public point beside it.
                    private.push((CKA_NSS_DB, public_value.clone()));
                    if let Some(params) = get(CKA_EC_PARAMS) {
                        public.push((CKA_EC_PARAMS, params));
                    }
                    // CKA_EC_POINT: the point in a DER OCTET STRING.
                    let point = der::asn1::OctetStringRef::new(public_value)
                        .and_then(|p| der::Encode::to_der(&p))
                        .map_err(|_| sdb::Error::Corrupt("an EC public value too long".into()))?;
                    public.push((CKA_EC_POINT, point));
                }
                let pid = object_id(b'k', public_value, &key_objects);
                key_objects.insert(pid, private);
                let qid = object_id(b'p', public_value, &key_objects);
                key_objects.insert(qid, public);
            }
        }
        Ok(Loaded {
            cert_objects,
            key_objects,
            password,
            stamps,
            with_codec: codec.is_some(),
        })
    }
}

/// One side of a `dbm:` directory.
pub struct DbmSide {
    shared: Arc<Shared>,
    key_side: bool,
}

/// Whether this process may write a file (or create it in its directory).
fn writable(path: &Path) -> bool {
    if path.exists() {
        std::fs::OpenOptions::new().write(true).open(path).is_ok()
    } else {
        path.parent()
            .and_then(|d| std::fs::metadata(d).ok())
            .is_some_and(|m| !m.permissions().readonly())
    }
}

/// This backend, for a module's registry: `dbm:`.
pub const BACKEND: sdb::Backend = sdb::Backend {
    prefix: "dbm",
    aliases: &[],
    key_file: "key3.db",
    cert_file: "cert8.db",
    open: open_databases,
};

fn open_databases(opts: &sdb::OpenOptions) -> sdb::Result<sdb::Databases> {
    let (cert, key) = open(
        &opts.dir,
        &opts.cert_prefix,
        &opts.key_prefix,
        opts.read_only,
    )?;
    Ok(sdb::Databases {
        cert: Box::new(cert),
        key: Box::new(key),
    })
}

/// Opens the legacy databases of `dir` (`<prefix>cert8.db`,
/// `<prefix>key3.db`): (certificate side, key side). Files this process may
/// not write open read-only.
pub fn open(
    dir: &Path,
    cert_prefix: &str,
    key_prefix: &str,
    read_only: bool,
) -> sdb::Result<(DbmSide, DbmSide)> {
    let cert_path = dir.join(format!("{cert_prefix}cert8.db"));
    let key_path = dir.join(format!("{key_prefix}key3.db"));
    if !cert_path.exists() && !key_path.exists() {
        return Err(sdb::Error::Io {
            path: dir.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no cert8.db or key3.db"),
        });
    }
    let read_only = read_only || !writable(&cert_path) || !writable(&key_path);
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        read_only,
        cert_path,
        key_path,
        codec: RwLock::new(None),
        loaded: Mutex::new(None),
    });
    // Read once now, so that a damaged file is reported at open.
    shared.current()?;
    Ok((
        DbmSide {
            shared: shared.clone(),
            key_side: false,
        },
        DbmSide {
            shared,
            key_side: true,
        },
    ))
}

impl DbmSide {
    fn with_objects<R>(
        &self,
        f: impl FnOnce(&BTreeMap<ObjectId, Vec<Attribute>>) -> R,
    ) -> sdb::Result<R> {
        let loaded = self.shared.current()?;
        Ok(f(if self.key_side {
            &loaded.key_objects
        } else {
            &loaded.cert_objects
        }))
    }
}

impl SdbRead for DbmSide {
    fn find(&self, template: &[(AttrType, &[u8])]) -> sdb::Result<FindCursor> {
        self.with_objects(|objects| find_in(objects, template))
    }

    fn get_attributes(
        &self,
        id: ObjectId,
        types: &[AttrType],
    ) -> sdb::Result<Vec<Option<Vec<u8>>>> {
        self.with_objects(|objects| get_in(objects, id, types))?
    }

    fn read_object(&self, id: ObjectId) -> sdb::Result<Vec<Attribute>> {
        self.with_objects(|objects| objects.get(&id).cloned().ok_or(sdb::Error::NotFound(id)))?
    }

    fn exists(&self, id: ObjectId) -> sdb::Result<bool> {
        self.with_objects(|objects| objects.contains_key(&id))
    }

    fn get_metadata(&self, id: &str) -> sdb::Result<Option<Metadata>> {
        if !self.key_side || id != PASSWORD_ENTRY_ID {
            return Ok(None);
        }
        Ok(self.shared.current()?.password.clone())
    }

    fn metadata_ids(&self, _prefix: &str) -> sdb::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

impl Sdb for DbmSide {
    fn begin(&self) -> sdb::Result<Box<dyn Transaction + '_>> {
        if self.shared.read_only {
            return Err(sdb::Error::ReadOnly);
        }
        let view = self.with_objects(|objects| objects.clone())?;
        Ok(Box::new(DbmTxn {
            side: self,
            view,
            ops: Vec::new(),
            seal: None,
        }))
    }

    fn is_read_only(&self) -> bool {
        self.shared.read_only
    }

    fn keeps_integrity_records(&self) -> bool {
        false
    }

    fn set_key_codec(&self, codec: Option<Arc<dyn KeyRecordCodec>>) {
        *self.shared.codec.write() = codec;
    }
}

// ---- writing ----

/// What a transaction will do to the records.
enum Op {
    Create(Vec<Attribute>),
    SetLabel {
        old: Vec<Attribute>,
        label: Vec<u8>,
    },
    Destroy(Vec<Attribute>),
    /// A new password: its global salt and check; every key record is
    /// sealed anew with the transaction's `seal` codec.
    SetPassword {
        salt: Vec<u8>,
        check: key3::PasswordCheck,
    },
}

fn attr(attrs: &[Attribute], t: AttrType) -> Option<&[u8]> {
    attrs
        .iter()
        .find(|(a, _)| *a == t)
        .map(|(_, v)| v.as_slice())
}

fn class_of(attrs: &[Attribute]) -> Option<CK_ULONG> {
    attr(attrs, CKA_CLASS)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(|b| u32::from_be_bytes(b) as CK_ULONG)
}

fn ulong_of(attrs: &[Attribute], t: AttrType) -> Option<CK_ULONG> {
    attr(attrs, t)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(|b| u32::from_be_bytes(b) as CK_ULONG)
}

/// What the legacy format cannot hold.
fn unstorable(what: &str) -> sdb::Error {
    sdb::Error::Unsupported(format!("the legacy database cannot store {what}"))
}

/// The record key of a certificate given its serial number (DER INTEGER)
/// and issuer.
fn cert_record_key(serial: &[u8], issuer: &[u8]) -> sdb::Result<Vec<u8>> {
    let mut key = vec![1u8];
    key.extend(cert8::cert_key(serial, issuer).map_err(|_| unstorable("a bad serial number"))?);
    Ok(key)
}

/// The public value of a key object: an RSA modulus, else the EC point
/// NSS keeps beside the key (or inside its CKA_EC_POINT).
fn public_value(attrs: &[Attribute]) -> sdb::Result<Vec<u8>> {
    if let Some(m) = attr(attrs, CKA_MODULUS) {
        let start = m.iter().position(|b| *b != 0).unwrap_or(m.len());
        return Ok(m[start..].to_vec());
    }
    if let Some(p) = attr(attrs, CKA_NSS_DB) {
        return Ok(p.to_vec());
    }
    if let Some(wrapped) = attr(attrs, CKA_EC_POINT) {
        let mut input = wrapped;
        if let Ok((0x04, inner, _)) = element(&mut input) {
            if input.is_empty() {
                return Ok(inner.to_vec());
            }
        }
        return Ok(wrapped.to_vec());
    }
    Err(unstorable("a key without its public value"))
}

/// The record key an object of this side becomes, and the id kind.
/// The key3.db record a private or secret key object is: a private key's
/// public value, a secret key's CKA_ID.
fn key_record_key(attrs: &[Attribute]) -> sdb::Result<Vec<u8>> {
    match class_of(attrs) {
        Some(CKO_PRIVATE_KEY) => public_value(attrs),
        Some(CKO_SECRET_KEY) => Ok(attr(attrs, CKA_ID).unwrap_or_default().to_vec()),
        _ => Err(unstorable("a key record for this kind of object")),
    }
}

/// The CKA_ID NSS gives a secret key created without one: its label and a
/// NUL when no key has that, else random bytes (lg_GenerateSecretCKA_ID).
fn new_secret_key_id(
    label: &[u8],
    taken: &BTreeMap<ObjectId, Vec<Attribute>>,
) -> sdb::Result<Vec<u8>> {
    let used = |id: &[u8]| {
        taken
            .values()
            .any(|a| class_of(a) == Some(CKO_SECRET_KEY) && attr(a, CKA_ID) == Some(id))
    };
    let named = [label, &[0]].concat();
    if !label.is_empty() && !used(&named) {
        return Ok(named);
    }
    let mut id = vec![0u8; 18];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| unstorable("a secret key id: no random numbers"))?;
    Ok(id)
}

fn record_of(key_side: bool, attrs: &[Attribute]) -> sdb::Result<(u8, Vec<u8>)> {
    let class = class_of(attrs).ok_or_else(|| unstorable("an object without a class"))?;
    let get = |t| attr(attrs, t).ok_or_else(|| unstorable("an incomplete object"));
    Ok(match (key_side, class) {
        (false, CKO_CERTIFICATE) => {
            let f = cert_fields(get(CKA_VALUE)?)
                .map_err(|_| unstorable("a certificate that does not parse"))?;
            (b'c', cert_record_key(&f.serial, &f.issuer)?)
        }
        (false, CKO_NSS_TRUST) => (
            b't',
            cert_record_key(get(CKA_SERIAL_NUMBER)?, get(CKA_ISSUER)?)?,
        ),
        (false, CKO_NSS_CRL) => {
            let krl = attr(attrs, CKA_NSS_KRL) == Some(&[1]);
            let mut key = vec![if krl { 5 } else { 4 }];
            key.extend_from_slice(get(CKA_SUBJECT)?);
            (b'r', key)
        }
        (false, CKO_NSS_SMIME) => {
            let mut key = vec![6];
            key.extend_from_slice(get(CKA_NSS_EMAIL)?);
            key.push(0);
            (b's', key)
        }
        (true, CKO_PRIVATE_KEY) => (b'k', public_value(attrs)?),
        (true, CKO_PUBLIC_KEY) => (b'p', public_value(attrs)?),
        (true, CKO_SECRET_KEY) => (b's', get(CKA_ID)?.to_vec()),
        _ => return Err(not_storable("this kind of object")),
    })
}

/// The e-mail addresses of a subject Name (its emailAddress attributes),
/// as NSS records them, in lower case.
fn subject_emails(subject: &[u8]) -> Vec<String> {
    const EMAIL_ADDRESS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    let mut out = Vec::new();
    let mut input = subject;
    let Ok((_, mut rdns, _)) = element(&mut input) else {
        return out;
    };
    while let Ok((_, mut set, _)) = element(&mut rdns) {
        while let Ok((_, mut atv, _)) = element(&mut set) {
            if let (Ok((_, oid, _)), Ok((_, value, _))) = (element(&mut atv), element(&mut atv)) {
                if oid == EMAIL_ADDRESS {
                    out.push(String::from_utf8_lossy(value).to_lowercase());
                }
            }
        }
    }
    out
}

fn trust_word(value: Option<CK_ULONG>) -> u16 {
    use cert8::trust::*;
    match value {
        Some(CKT_NSS_TRUSTED_DELEGATOR) => VALID_CA | TRUSTED_CA,
        Some(CKT_NSS_TRUSTED) => TRUSTED | TERMINAL_RECORD,
        Some(CKT_NSS_MUST_VERIFY_TRUST) => MUST_VERIFY,
        Some(CKT_NSS_NOT_TRUSTED) => TERMINAL_RECORD,
        Some(CKT_NSS_VALID_DELEGATOR) => VALID_CA,
        _ => 0,
    }
}

/// A word with nothing in it is written as NSS writes "no trust".
fn or_unknown(word: u16) -> u16 {
    if word == 0 {
        cert8::trust::TRUSTED_UNKNOWN
    } else {
        word
    }
}

/// The records of one file, keyed by record key.
type Records = BTreeMap<Vec<u8>, Vec<u8>>;

fn get_record<T>(
    records: &Records,
    key: &[u8],
    decode: impl Fn(&[u8], &[u8]) -> crate::Result<T>,
) -> sdb::Result<Option<T>> {
    records
        .get(key)
        .map(|d| decode(key, d).map_err(|e| sdb::Error::Corrupt(e.to_string())))
        .transpose()
}

fn put_cert_record(records: &mut Records, record: &cert8::Record) -> sdb::Result<()> {
    let (k, d) = cert8::encode(record).map_err(|e| sdb::Error::Corrupt(e.to_string()))?;
    records.insert(k, d);
    Ok(())
}

fn nickname_key(nickname: &str) -> Vec<u8> {
    let mut k = vec![2u8];
    k.extend_from_slice(nickname.as_bytes());
    k.push(0);
    k
}

fn subject_key(subject: &[u8]) -> Vec<u8> {
    let mut k = vec![3u8];
    k.extend_from_slice(subject);
    k
}

/// Adds a certificate with its nickname and subject records.
fn add_certificate(
    records: &mut Records,
    attrs: &[Attribute],
    user: &dyn Fn(&[u8]) -> bool,
) -> sdb::Result<()> {
    let der =
        attr(attrs, CKA_VALUE).ok_or_else(|| unstorable("a certificate without its value"))?;
    let f = cert_fields(der).map_err(|_| unstorable("a certificate that does not parse"))?;
    let key = cert_record_key(&f.serial, &f.issuer)?;
    let nickname = attr(attrs, CKA_LABEL)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .filter(|l| !l.is_empty());
    let word = if user(&f.public_value) {
        cert8::trust::USER
    } else {
        cert8::trust::TRUSTED_UNKNOWN
    };
    put_cert_record(
        records,
        &cert8::Record::Cert(cert8::CertEntry {
            key: key[1..].to_vec(),
            trust: cert8::Trust {
                ssl: word,
                email: word,
                object_signing: word,
            },
            der: der.to_vec(),
            nickname: nickname.clone(),
        }),
    )?;
    if let Some(n) = &nickname {
        put_cert_record(
            records,
            &cert8::Record::Nickname {
                nickname: n.clone(),
                subject: f.subject.clone(),
            },
        )?;
    }
    let skey = subject_key(&f.subject);
    let subject = match get_record(records, &skey, cert8::decode)? {
        Some(cert8::Record::Subject(mut s)) => {
            if !s.cert_keys.iter().any(|k| *k == key[1..]) {
                // Newest first, as NSS keeps them.
                s.cert_keys.insert(0, key[1..].to_vec());
                s.key_ids.insert(0, Vec::new());
            }
            if s.nickname.is_none() {
                s.nickname = nickname;
            }
            s
        }
        _ => cert8::SubjectEntry {
            subject: f.subject.clone(),
            nickname,
            cert_keys: vec![key[1..].to_vec()],
            key_ids: vec![Vec::new()],
            emails: subject_emails(&f.subject),
        },
    };
    put_cert_record(records, &cert8::Record::Subject(subject))
}

/// Removes a certificate, and its subject and nickname records when no
/// other certificate needs them.
fn remove_certificate(records: &mut Records, attrs: &[Attribute]) -> sdb::Result<()> {
    let der = attr(attrs, CKA_VALUE).unwrap_or_default();
    let f = cert_fields(der).map_err(|_| unstorable("a certificate that does not parse"))?;
    let key = cert_record_key(&f.serial, &f.issuer)?;
    let nickname = match get_record(records, &key, cert8::decode)? {
        Some(cert8::Record::Cert(c)) => c.nickname,
        _ => None,
    };
    records.remove(&key);
    let skey = subject_key(&f.subject);
    if let Some(cert8::Record::Subject(mut s)) = get_record(records, &skey, cert8::decode)? {
        if let Some(i) = s.cert_keys.iter().position(|k| *k == key[1..]) {
            s.cert_keys.remove(i);
            s.key_ids.remove(i);
        }
        if s.cert_keys.is_empty() {
            records.remove(&skey);
        } else {
            put_cert_record(records, &cert8::Record::Subject(s))?;
        }
    }
    if let Some(n) = nickname {
        let still_used = records.iter().any(|(k, d)| {
            k.first() == Some(&1)
                && matches!(cert8::decode(k, d), Ok(cert8::Record::Cert(c)) if c.nickname.as_deref() == Some(n.as_str()))
        });
        if !still_used {
            records.remove(&nickname_key(&n));
        }
    }
    Ok(())
}

fn set_trust(records: &mut Records, attrs: &[Attribute], remove: bool) -> sdb::Result<()> {
    let get = |t| attr(attrs, t).ok_or_else(|| unstorable("an incomplete trust object"));
    let key = cert_record_key(get(CKA_SERIAL_NUMBER)?, get(CKA_ISSUER)?)?;
    let Some(cert8::Record::Cert(mut c)) = get_record(records, &key, cert8::decode)? else {
        return Err(unstorable("trust for a certificate it does not hold"));
    };
    let user = c.trust.ssl & cert8::trust::USER;
    c.trust = if remove {
        cert8::Trust {
            ssl: or_unknown(user),
            email: or_unknown(user),
            object_signing: or_unknown(user),
        }
    } else {
        let mut ssl = trust_word(ulong_of(attrs, CKA_TRUST_SERVER_AUTH)) | user;
        if ulong_of(attrs, CKA_TRUST_CLIENT_AUTH) == Some(CKT_NSS_TRUSTED_DELEGATOR) {
            ssl |= cert8::trust::TRUSTED_CLIENT_CA | cert8::trust::VALID_CA;
        }
        if attr(attrs, CKA_TRUST_STEP_UP_APPROVED) == Some(&[1]) {
            ssl |= cert8::trust::GOVT_APPROVED_CA;
        }
        cert8::Trust {
            ssl: or_unknown(ssl),
            email: or_unknown(trust_word(ulong_of(attrs, CKA_TRUST_EMAIL_PROTECTION)) | user),
            object_signing: or_unknown(trust_word(ulong_of(attrs, CKA_TRUST_CODE_SIGNING)) | user),
        }
    };
    put_cert_record(records, &cert8::Record::Cert(c))
}

fn apply_cert_op(records: &mut Records, op: &Op, user: &dyn Fn(&[u8]) -> bool) -> sdb::Result<()> {
    match op {
        Op::Create(attrs) => match class_of(attrs) {
            Some(CKO_CERTIFICATE) => add_certificate(records, attrs, user),
            Some(CKO_NSS_TRUST) => set_trust(records, attrs, false),
            Some(CKO_NSS_CRL) => {
                let get = |t| attr(attrs, t).unwrap_or_default().to_vec();
                put_cert_record(
                    records,
                    &cert8::Record::Crl(cert8::CrlEntry {
                        issuer: get(CKA_SUBJECT),
                        der: get(CKA_VALUE),
                        url: attr(attrs, CKA_NSS_URL)
                            .map(|u| u.split(|b| *b == 0).next().unwrap_or_default())
                            .filter(|u| !u.is_empty())
                            .map(|u| String::from_utf8_lossy(u).into_owned()),
                        krl: attr(attrs, CKA_NSS_KRL) == Some(&[1]),
                    }),
                )
            }
            Some(CKO_NSS_SMIME) => {
                let get = |t| attr(attrs, t).unwrap_or_default().to_vec();
                put_cert_record(
                    records,
                    &cert8::Record::Smime(cert8::SmimeEntry {
                        email: String::from_utf8_lossy(&get(CKA_NSS_EMAIL)).into_owned(),
                        subject: get(CKA_SUBJECT),
                        options: get(CKA_VALUE),
                        options_date: get(CKA_NSS_SMIME_TIMESTAMP),
                    }),
                )
            }
            _ => Err(not_storable("this kind of object")),
        },
        Op::Destroy(attrs) => match class_of(attrs) {
            Some(CKO_CERTIFICATE) => remove_certificate(records, attrs),
            Some(CKO_NSS_TRUST) => set_trust(records, attrs, true),
            _ => {
                records.remove(&record_of(false, attrs)?.1);
                Ok(())
            }
        },
        Op::SetLabel { old, label } => {
            if class_of(old) != Some(CKO_CERTIFICATE) {
                return Err(unstorable("a label on this kind of object"));
            }
            remove_certificate(records, old)?;
            let mut renamed = old.clone();
            renamed.retain(|(t, _)| *t != CKA_LABEL);
            renamed.push((CKA_LABEL, label.clone()));
            add_certificate(records, &renamed, user)
        }
        Op::SetPassword { .. } => Err(unstorable("a password in cert8.db")),
    }
}

/// An object of a kind no record of the legacy format holds.
fn not_storable(what: &str) -> sdb::Error {
    sdb::Error::NotStorable(format!("the legacy database has no record for {what}"))
}

fn corrupt_key(e: Error) -> sdb::Error {
    sdb::Error::Corrupt(format!("key3.db: {e}"))
}

/// The password entry of key3.db's records, as the token sees it.
fn password_of(records: &Records) -> sdb::Result<Option<Metadata>> {
    let get = |k: &[u8]| records.get(k).map(|d| key3::decode(k, d)).transpose();
    let salt = get(key3::GLOBAL_SALT_KEY).map_err(corrupt_key)?;
    let check = get(key3::PASSWORD_CHECK_KEY).map_err(corrupt_key)?;
    Ok(match (salt, check) {
        (Some(key3::Record::GlobalSalt(item1)), Some(key3::Record::PasswordCheck(c))) => {
            Some(Metadata {
                item1,
                item2: Some(c.to_der()),
            })
        }
        _ => None,
    })
}

/// Applies one write to key3.db's records; `codec` is the login's, `seal`
/// a new password's (which then seals what is written).
fn apply_key_op(
    records: &mut Records,
    op: &Op,
    codec: Option<&dyn KeyRecordCodec>,
    seal: Option<&dyn KeyRecordCodec>,
) -> sdb::Result<()> {
    match op {
        Op::Create(attrs) => match class_of(attrs) {
            Some(CKO_PRIVATE_KEY) => {
                let codec = seal
                    .or(codec)
                    .ok_or_else(|| unstorable("a private key before login"))?;
                let payload = codec.seal_private_key(attrs)?;
                let key = key3::DbKey {
                    salt: Vec::new(),
                    nickname: attr(attrs, CKA_LABEL)
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .unwrap_or_default(),
                    payload,
                };
                let data = key
                    .encode()
                    .map_err(|e| sdb::Error::Corrupt(e.to_string()))?;
                records.insert(public_value(attrs)?, data);
                Ok(())
            }
            // NSS keeps them as key records too (with the private keys'
            // format), under their CKA_ID.
            Some(CKO_SECRET_KEY) => {
                let codec = seal
                    .or(codec)
                    .ok_or_else(|| unstorable("a secret key before login"))?;
                let key = key3::DbKey {
                    salt: Vec::new(),
                    nickname: attr(attrs, CKA_LABEL)
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .unwrap_or_default(),
                    payload: codec.seal_private_key(attrs)?,
                };
                records.insert(key_record_key(attrs)?, key.encode().map_err(corrupt_key)?);
                Ok(())
            }
            // NSS derives public keys from the private keys; one stands only
            // beside its private key.
            Some(CKO_PUBLIC_KEY) if records.contains_key(&public_value(attrs)?) => Ok(()),
            _ => Err(not_storable("this kind of object")),
        },
        Op::Destroy(attrs) => {
            if matches!(class_of(attrs), Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY)) {
                records.remove(&key_record_key(attrs)?);
            }
            Ok(())
        }
        Op::SetPassword { salt, check } => {
            let (old, new) = match (codec, seal) {
                (Some(old), Some(new)) => (old, new),
                _ => return Err(unstorable("a new password without the old and new keys")),
            };
            let current = password_of(records)?;
            if !current.as_ref().is_some_and(|p| old.unlocks(p)) {
                return Err(unstorable(
                    "a new password: another process changed it meanwhile",
                ));
            }
            for (k, d) in records.iter_mut() {
                if let key3::Record::PrivateKey { key, .. } =
                    key3::decode(k, d).map_err(corrupt_key)?
                {
                    let pkcs8 = old.open_payload(&key.payload)?;
                    let resealed = key3::DbKey {
                        payload: new.seal_payload(&pkcs8)?,
                        ..key
                    };
                    *d = resealed.encode().map_err(corrupt_key)?;
                }
            }
            for record in [
                key3::Record::GlobalSalt(salt.clone()),
                key3::Record::PasswordCheck(check.clone()),
            ] {
                let (k, d) = key3::encode(&record).map_err(corrupt_key)?;
                records.insert(k, d);
            }
            records.remove(key3::FAKE_PASSWORD_CHECK_KEY);
            Ok(())
        }
        Op::SetLabel { old, label } => {
            if !matches!(class_of(old), Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY)) {
                return Err(unstorable("a label on this kind of object"));
            }
            let pv = key_record_key(old)?;
            let data = records
                .get(&pv)
                .ok_or_else(|| unstorable("a key it does not hold"))?;
            let mut key =
                key3::DbKey::decode(data).map_err(|e| sdb::Error::Corrupt(e.to_string()))?;
            key.nickname = String::from_utf8_lossy(label).into_owned();
            let data = key
                .encode()
                .map_err(|e| sdb::Error::Corrupt(e.to_string()))?;
            records.insert(pv, data);
            Ok(())
        }
    }
}

/// Writes a hash file whole, in place of the old one, keeping its page
/// size and byte order.
fn replace_file(path: &Path, records: Records, default_page: usize) -> sdb::Result<()> {
    let io = |e: std::io::Error| sdb::Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let (page, little) = match std::fs::read(path) {
        Ok(old) => HashFile::parse(&old)
            .map(|h| (h.header.bsize, h.header.little_endian))
            .unwrap_or((default_page, true)),
        Err(_) => (default_page, true),
    };
    let list: Vec<(Vec<u8>, Vec<u8>)> = records.into_iter().collect();
    let bytes =
        crate::hash::write(&list, page, little).map_err(|e| sdb::Error::Corrupt(e.to_string()))?;
    write_whole(path, &bytes).map_err(io)
}

/// Puts `bytes` at `path` whole or not at all: a temporary file beside it,
/// flushed, renamed over it, and the directory flushed.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn read_map(path: &Path) -> sdb::Result<Records> {
    Ok(read_records(path)?.into_iter().collect())
}

/// Where NSS keeps cert8.db's records that are too large for it.
fn blob_dir(cert_path: &Path) -> PathBuf {
    cert_path.with_extension("dir")
}

/// cert8.db's records with each blob stub replaced by its file's data, and
/// the names of those files.
fn read_cert_records(path: &Path) -> sdb::Result<(Records, Vec<String>)> {
    let (mut records, mut blobs) = (Records::new(), Vec::new());
    for (k, d) in read_records(path)? {
        let data = if cert8::is_blob(&d) {
            let name = cert8::blob_file_name(&d).map_err(|e| corrupt(path, e))?;
            let file = blob_dir(path).join(&name);
            let data = std::fs::read(&file).map_err(|e| sdb::Error::Io {
                path: file.display().to_string(),
                source: e,
            })?;
            if data.len() != cert8::blob_len(&d).map_err(|e| corrupt(path, e))? {
                return Err(sdb::Error::Corrupt(format!(
                    "{}: not the length its record says",
                    file.display()
                )));
            }
            blobs.push(name);
            data
        } else {
            d
        };
        records.insert(k, data);
    }
    Ok((records, blobs))
}

/// Replaces cert8.db whole with `records`, each one too large for it in a
/// file of cert8.dir (written and flushed first, under a name of its
/// content, so that the old cert8.db still finds its own files after a
/// crash); then removes the files of `old_blobs` the new one does not use.
fn replace_cert_file(path: &Path, records: Records, old_blobs: Vec<String>) -> sdb::Result<()> {
    let io = |file: &Path, e: std::io::Error| sdb::Error::Io {
        path: file.display().to_string(),
        source: e,
    };
    let dir = blob_dir(path);
    let mut stored = Records::new();
    let mut used = Vec::new();
    for (k, d) in records {
        if d.len() <= cert8::BLOB_THRESHOLD {
            stored.insert(k, d);
            continue;
        }
        let (stub, name) = cert8::blob_stub(&k, &d).map_err(|e| corrupt(path, e))?;
        used.push(name.clone());
        stored.insert(k, stub);
        let file = dir.join(&name);
        if std::fs::read(&file).ok().as_deref() != Some(&d[..]) {
            use std::os::unix::fs::DirBuilderExt;
            let written = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .and_then(|()| write_whole(&file, &d));
            if let Err(e) = written {
                remove_blobs(&dir, &used, &old_blobs);
                return Err(io(&file, e));
            }
        }
    }
    if let Err(e) = replace_file(path, stored, crate::hash::CERT_DB_PAGE) {
        remove_blobs(&dir, &used, &old_blobs);
        return Err(e);
    }
    remove_blobs(&dir, &old_blobs, &used);
    Ok(())
}

/// Removes the cert8.dir files of `names` that `kept` does not name (after
/// a replacement, the old records' files it no longer uses; after a failed
/// one, the files written for it). A failure leaves a stray file, never a
/// lost record.
fn remove_blobs(dir: &Path, names: &[String], kept: &[String]) {
    for name in names.iter().filter(|n| !kept.contains(n)) {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// A write transaction on one side.
pub struct DbmTxn<'a> {
    side: &'a DbmSide,
    /// The objects as they will be once the transaction commits.
    view: BTreeMap<ObjectId, Vec<Attribute>>,
    ops: Vec<Op>,
    /// The codec of a new password this commit sets.
    seal: Option<Arc<dyn KeyRecordCodec>>,
}

impl SdbRead for DbmTxn<'_> {
    fn find(&self, template: &[(AttrType, &[u8])]) -> sdb::Result<FindCursor> {
        Ok(find_in(&self.view, template))
    }

    fn get_attributes(
        &self,
        id: ObjectId,
        types: &[AttrType],
    ) -> sdb::Result<Vec<Option<Vec<u8>>>> {
        get_in(&self.view, id, types)
    }

    fn read_object(&self, id: ObjectId) -> sdb::Result<Vec<Attribute>> {
        self.view.get(&id).cloned().ok_or(sdb::Error::NotFound(id))
    }

    fn exists(&self, id: ObjectId) -> sdb::Result<bool> {
        Ok(self.view.contains_key(&id))
    }

    fn get_metadata(&self, id: &str) -> sdb::Result<Option<Metadata>> {
        self.side.get_metadata(id)
    }

    fn metadata_ids(&self, prefix: &str) -> sdb::Result<Vec<String>> {
        self.side.metadata_ids(prefix)
    }
}

impl Transaction for DbmTxn<'_> {
    fn create_object(&mut self, attrs: &[(AttrType, &[u8])]) -> sdb::Result<ObjectId> {
        let mut attrs: Vec<Attribute> = attrs.iter().map(|(t, v)| (*t, v.to_vec())).collect();
        if self.side.key_side
            && class_of(&attrs) == Some(CKO_SECRET_KEY)
            && attr(&attrs, CKA_ID).unwrap_or_default().is_empty()
        {
            let id = new_secret_key_id(attr(&attrs, CKA_LABEL).unwrap_or_default(), &self.view)?;
            attrs.retain(|(t, _)| *t != CKA_ID);
            attrs.push((CKA_ID, id));
        }
        let (kind, key) = record_of(self.side.key_side, &attrs)?;
        // An object of the same record (a certificate's trust, which every
        // user certificate shows) is replaced under its id.
        let key_side = self.side.key_side;
        let same_record = self
            .view
            .iter()
            .find(|(_, a)| record_of(key_side, a).is_ok_and(|r| r == (kind, key.clone())))
            .map(|(id, _)| *id);
        let id = same_record.unwrap_or_else(|| object_id(kind, &key, &self.view));
        self.view.insert(id, attrs.clone());
        self.ops.push(Op::Create(attrs));
        Ok(id)
    }

    fn create_object_with_id(
        &mut self,
        _id: ObjectId,
        _attrs: &[(AttrType, &[u8])],
    ) -> sdb::Result<()> {
        Err(unstorable("an object under a chosen id"))
    }

    fn set_attributes(&mut self, id: ObjectId, attrs: &[(AttrType, &[u8])]) -> sdb::Result<()> {
        let old = self
            .view
            .get(&id)
            .cloned()
            .ok_or(sdb::Error::NotFound(id))?;
        let mut label = None;
        for (t, v) in attrs {
            if *t == CKA_LABEL {
                label = Some(v.to_vec());
            } else if attr(&old, *t) != Some(v) {
                return Err(unstorable("this change"));
            }
        }
        if let Some(label) = label {
            let mut new = old.clone();
            new.retain(|(t, _)| *t != CKA_LABEL);
            new.push((CKA_LABEL, label.clone()));
            self.view.insert(id, new);
            self.ops.push(Op::SetLabel { old, label });
        }
        Ok(())
    }

    fn destroy_object(&mut self, id: ObjectId) -> sdb::Result<()> {
        let old = self.view.remove(&id).ok_or(sdb::Error::NotFound(id))?;
        self.ops.push(Op::Destroy(old));
        Ok(())
    }

    fn put_metadata(&mut self, id: &str, item1: &[u8], item2: Option<&[u8]>) -> sdb::Result<()> {
        match (id, item2) {
            (PASSWORD_ENTRY_ID, Some(check)) if self.side.key_side => {
                let check = key3::PasswordCheck::from_der(check).map_err(corrupt_key)?;
                self.ops.push(Op::SetPassword {
                    salt: item1.to_vec(),
                    check,
                });
                Ok(())
            }
            // The format has no integrity records; nothing else can be kept.
            _ if id.starts_with("sig_") => Ok(()),
            _ => Err(unstorable(&format!("the {id} entry"))),
        }
    }

    fn delete_metadata(&mut self, id: &str) -> sdb::Result<()> {
        if id.starts_with("sig_") {
            Ok(())
        } else {
            Err(unstorable(&format!("a change to the {id} entry")))
        }
    }

    fn reset(&mut self) -> sdb::Result<()> {
        Err(unstorable("a reset"))
    }

    fn seal_with(&mut self, codec: Arc<dyn KeyRecordCodec>) {
        self.seal = Some(codec);
    }

    fn commit(self: Box<Self>) -> sdb::Result<()> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let shared = &self.side.shared;
        let dir = std::fs::File::open(&shared.dir).map_err(|e| sdb::Error::Io {
            path: shared.dir.display().to_string(),
            source: e,
        })?;
        // Another writer of this module waits here; the file is read again
        // under the lock.
        dir.lock().map_err(|e| sdb::Error::Io {
            path: shared.dir.display().to_string(),
            source: e,
        })?;
        let result = if self.side.key_side {
            // Held until the new codec is in place, so that no read of this
            // process opens the new records with the old one.
            let mut codec = shared.codec.write();
            let mut records = read_map(&shared.key_path)?;
            for op in &self.ops {
                apply_key_op(&mut records, op, codec.as_deref(), self.seal.as_deref())?;
            }
            let replaced = replace_file(&shared.key_path, records, crate::hash::KEY_DB_PAGE);
            if replaced.is_ok() && self.seal.is_some() {
                *codec = self.seal.clone();
            }
            replaced
        } else {
            let keys = read_map(&shared.key_path)?;
            let user = |public: &[u8]| keys.contains_key(public);
            let (mut records, blobs) = read_cert_records(&shared.cert_path)?;
            if records.is_empty() {
                let (k, d) = cert8::encode(&cert8::Record::Version)
                    .map_err(|e| sdb::Error::Corrupt(e.to_string()))?;
                records.insert(k, d);
            }
            for op in &self.ops {
                apply_cert_op(&mut records, op, &user)?;
            }
            replace_cert_file(&shared.cert_path, records, blobs)
        };
        // Whatever happened, the next read starts from the files.
        *shared.loaded.lock() = None;
        result
    }
}

fn find_in(
    objects: &BTreeMap<ObjectId, Vec<Attribute>>,
    template: &[(AttrType, &[u8])],
) -> FindCursor {
    FindCursor::new(
        objects
            .iter()
            .filter(|(_, attrs)| {
                template.iter().all(|(t, v)| {
                    attrs
                        .iter()
                        .any(|(a, value)| a == t && value.as_slice() == *v)
                })
            })
            .map(|(id, _)| *id)
            .collect(),
    )
}

fn get_in(
    objects: &BTreeMap<ObjectId, Vec<Attribute>>,
    id: ObjectId,
    types: &[AttrType],
) -> sdb::Result<Vec<Option<Vec<u8>>>> {
    let attrs = objects.get(&id).ok_or(sdb::Error::NotFound(id))?;
    Ok(types
        .iter()
        .map(|t| attrs.iter().find(|(a, _)| a == t).map(|(_, v)| v.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_words_map_as_nss_maps_them() {
        use cert8::trust::*;
        let ca = VALID_CA | TRUSTED_CA | USER | TRUSTED_CLIENT_CA;
        assert_eq!(trust_value(ca, false), CKT_NSS_TRUSTED_DELEGATOR);
        assert_eq!(trust_value(ca, true), CKT_NSS_TRUSTED_DELEGATOR);
        assert_eq!(
            trust_value(TRUSTED | TERMINAL_RECORD, false),
            CKT_NSS_TRUSTED
        );
        assert_eq!(
            trust_value(TRUSTED | TERMINAL_RECORD, true),
            CKT_NSS_TRUST_UNKNOWN
        );
        assert_eq!(trust_value(MUST_VERIFY, false), CKT_NSS_MUST_VERIFY_TRUST);
        assert_eq!(trust_value(USER, false), CKT_NSS_TRUST_UNKNOWN);
        assert_eq!(trust_value(TERMINAL_RECORD, false), CKT_NSS_NOT_TRUSTED);
        assert_eq!(trust_value(VALID_CA, false), CKT_NSS_VALID_DELEGATOR);
    }

    #[test]
    fn ids_are_stable_and_skip_collisions() {
        let mut taken = BTreeMap::new();
        let a = object_id(b'c', b"key", &taken);
        assert_eq!(a, object_id(b'c', b"key", &taken));
        taken.insert(a, Vec::new());
        let b = object_id(b'c', b"key", &taken);
        assert_ne!(a, b);
        assert!(b <= MAX_OBJECT_ID && b > 0);
    }
}
