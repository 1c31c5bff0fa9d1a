//! Helpers for tests that use the built module as a client does: each test
//! loads its own copy of `libsoftoken.so` (a module is process-wide state,
//! and tests run side by side), on its own database directory.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use tempfile::TempDir;

/// The module under test: `SOFTOKEN_MODULE`, else the one cargo built
/// with this executable: beside a test, in `deps/` below a binary (the copy
/// cargo leaves beside a binary is only refreshed when the softoken package
/// itself is built, so it can be stale).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SOFTOKEN_MODULE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable directory");
    let below = dir.join("deps").join("libsoftoken.so");
    let so = if below.exists() {
        below
    } else {
        dir.join("libsoftoken.so")
    };
    assert!(
        so.exists(),
        "{} is missing: build the workspace first",
        so.display()
    );
    so
}

/// The `softoken-modutil` cargo built beside this test (a workspace build,
/// as `cargo test --workspace`, makes it).
pub fn modutil_path() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let tool = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("softoken-modutil");
    assert!(
        tool.exists(),
        "{} is missing: build the workspace first (cargo test --workspace)",
        tool.display()
    );
    tool
}

/// A private copy of the module, so that this test's C_Initialize is its own.
pub struct ModuleCopy {
    pub path: PathBuf,
    _dir: TempDir,
}

pub fn module_copy() -> ModuleCopy {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("libsoftoken.so");
    std::fs::copy(module_path(), &path).expect("copy module");
    ModuleCopy { path, _dir: dir }
}

/// NSS's own softoken, Debian's build: the reference the tests compare with.
pub const NSS_SOFTOKEN: &str = "/usr/lib/x86_64-linux-gnu/libsoftokn3.so";

/// NSS's softoken, initialised with `params`. It is one per process (it
/// cannot be copied away from the libraries it loads beside itself), so the
/// tests of one binary take turns: the turn ends when this is dropped.
pub struct NssSoftoken {
    pub raw: raw::Raw,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for NssSoftoken {
    type Target = raw::Raw;
    fn deref(&self) -> &raw::Raw {
        &self.raw
    }
}

impl Drop for NssSoftoken {
    fn drop(&mut self) {
        // A test that finalised it already gets CKR_CRYPTOKI_NOT_INITIALIZED.
        let _ = self.raw.finalize();
    }
}

/// NSS's softoken on `params`; its database token is `slots()[1]`.
pub fn nss_softoken(params: &str) -> NssSoftoken {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let raw = raw::Raw::load_path(Path::new(NSS_SOFTOKEN));
    assert_eq!(
        raw.initialize(Some(params)),
        pkcs11_sys::CKR_OK,
        "NSS's C_Initialize"
    );
    NssSoftoken { raw, _turn: turn }
}

/// A read-write session of NSS's softoken on a new database of its own
/// (certutil -N, empty password), kept while the directory lives.
pub fn nss_session() -> (NssSoftoken, pkcs11_sys::CK_SESSION_HANDLE, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", dir.path().display())));
    let nss = nss_softoken(&sql_params(dir.path()));
    let s = nss.open(nss.slots()[1], true).unwrap();
    (nss, s, dir)
}

/// Every object of a `sql:` database as NSS's own softoken shows it after
/// login (read-only): per object, each attribute of a fixed list as its
/// value in hex or the CK_RV NSS answers for it (absent, sensitive), so
/// that an empty value and a missing one differ. What two databases made
/// the same way must agree on.
pub fn nss_view(dir: &Path, pw: &str) -> std::collections::BTreeSet<String> {
    use pkcs11_sys::*;
    use softoken::nss::*;
    const SHOWN: &[CK_ATTRIBUTE_TYPE] = &[
        CKA_CLASS,
        CKA_TOKEN,
        CKA_PRIVATE,
        CKA_MODIFIABLE,
        CKA_LABEL,
        CKA_ID,
        CKA_KEY_TYPE,
        CKA_CERTIFICATE_TYPE,
        CKA_SUBJECT,
        CKA_ISSUER,
        CKA_SERIAL_NUMBER,
        CKA_VALUE,
        CKA_VALUE_LEN,
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_EC_PARAMS,
        CKA_EC_POINT,
        CKA_SENSITIVE,
        CKA_ALWAYS_SENSITIVE,
        CKA_EXTRACTABLE,
        CKA_NEVER_EXTRACTABLE,
        CKA_LOCAL,
        CKA_START_DATE,
        CKA_END_DATE,
        CKA_SIGN_RECOVER,
        CKA_VERIFY_RECOVER,
        CKA_ENCRYPT,
        CKA_DECRYPT,
        CKA_SIGN,
        CKA_VERIFY,
        CKA_WRAP,
        CKA_UNWRAP,
        CKA_DERIVE,
        CKA_NSS_EMAIL,
        CKA_NSS_SMIME_INFO,
        CKA_NSS_SMIME_TIMESTAMP,
        CKA_NSS_URL,
        CKA_NSS_KRL,
        CKA_CERT_SHA1_HASH,
        CKA_CERT_MD5_HASH,
        CKA_TRUST_SERVER_AUTH,
        CKA_TRUST_CLIENT_AUTH,
        CKA_TRUST_CODE_SIGNING,
        CKA_TRUST_EMAIL_PROTECTION,
        CKA_TRUST_STEP_UP_APPROVED,
    ];
    let nss = nss_softoken(&format!("{}readOnly", sql_params(dir)));
    let s = nss.open(nss.slots()[1], false).expect("NSS session");
    if !pw.is_empty() {
        assert_eq!(nss.login(s, CKU_USER, pw), CKR_OK, "NSS's C_Login");
    }
    nss.find(s, &[])
        .expect("NSS's find")
        .into_iter()
        .map(|h| {
            SHOWN
                .iter()
                .map(|&t| match nss.get(s, h, t) {
                    Ok(v) => format!("{t:#x}={}", hex::encode(v)),
                    Err(rv) => format!("{t:#x}:{rv:#x}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// CKA_EC_PARAMS of P-256: its OID.
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/nss")
}

pub fn manifest(name: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(fixtures().join(name).join("MANIFEST.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest json")
}

/// The CKA_ID NSS gave the key of certificate `nickname` in a fixture, as
/// its manifest records it (regenerated fixtures hold new keys).
pub fn fixture_key_id(fixture: &str, nickname: &str) -> Vec<u8> {
    let m = manifest(fixture);
    let cert = m["expected"]["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .find(|c| c["nickname"] == nickname)
        .unwrap_or_else(|| panic!("{fixture} has no certificate {nickname}"));
    hex::decode(cert["cka_id"].as_str().expect("cka_id")).expect("hex cka_id")
}

/// A writable copy of a fixture directory's files (fixtures must never be
/// written; its subdirectories are fixtures of their own).
pub fn copy_fixture(name: &str) -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(fixtures().join(name)).expect("fixture dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("file type").is_dir() {
            continue;
        }
        let dst = dir.path().join(entry.file_name());
        std::fs::copy(entry.path(), &dst).expect("copy fixture file");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    dir
}

/// The databases of a directory, opened directly (below the module).
pub fn open_databases(dir: &Path, read_only: bool) -> sdb_sqlite::Opened {
    sdb_sqlite::open(&sdb::OpenOptions {
        dir: dir.to_owned(),
        cert_prefix: String::new(),
        key_prefix: String::new(),
        read_only,
    })
    .expect("open databases")
}

/// A directory's token through the library (below the C API), for checks a
/// client cannot make, such as reading sensitive values.
pub fn open_token(dir: &Path) -> softoken::admin::Database {
    open_token_with(&sql_params(dir))
}

/// The token the module would open for a parameter string.
pub fn open_token_with(params: &str) -> softoken::admin::Database {
    softoken::admin::Database::open(Some(params)).expect("open token")
}

/// The parameter string NSS passes for a legacy database directory.
pub fn dbm_params(dir: &Path) -> String {
    format!(
        "configdir='dbm:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=",
        dir.display()
    )
}

/// The parameter string NSS passes for a database directory.
pub fn sql_params(dir: &Path) -> String {
    format!(
        "configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=",
        dir.display()
    )
}

/// The module loaded on a new database in a temporary directory, with a
/// read-write session open on its token.
pub fn new_token_session() -> (raw::Raw, pkcs11_sys::CK_SESSION_HANDLE, TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let raw = raw::Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).expect("read-write session");
    (raw, s, dir)
}

/// Bytes written as hex in a test.
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

/// The module loaded through cryptoki and initialised with `params` in
/// `pReserved`, as NSS initialises it.
pub struct Client {
    pub p11: Pkcs11,
    _module: ModuleCopy,
}

pub fn client(params: &str) -> Client {
    let module = module_copy();
    let p11 = Pkcs11::new(&module.path).expect("load module");
    let c = CString::new(params).expect("params");
    let reserved = std::ptr::NonNull::new(c.as_ptr() as *mut std::ffi::c_void).expect("non-null");
    // SAFETY: the module reads pReserved as a C string during C_Initialize
    // only, and `c` outlives the call.
    let args =
        unsafe { CInitializeArgs::new_with_reserved(CInitializeFlags::OS_LOCKING_OK, reserved) };
    p11.initialize(args).expect("C_Initialize");
    Client {
        p11,
        _module: module,
    }
}

/// Runs a command and returns its standard output; fails the test with its
/// output when it fails. A missing tool is a failure too: CI installs them.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is the tool installed? see .ci/run)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Like `run`, for a command expected to fail; returns stdout and stderr.
pub fn run_failing(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is the tool installed? see .ci/run)"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed"
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// SHA-1 and SHA-256 in hex, for comparing with the manifests.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        data,
    ))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// The RSA private key of a PKCS#12 file (decrypted by openssl, not by the
/// module under test).
pub fn pkcs12_rsa_key(p12: &Path, password: &str) -> RsaKey {
    let pem = run(Command::new("openssl").args([
        "pkcs12",
        "-in",
        &p12.display().to_string(),
        "-nocerts",
        "-nodes",
        "-passin",
        &format!("pass:{password}"),
    ]));
    let dir = tempfile::tempdir().expect("temp dir");
    let pem_path = dir.path().join("key.pem");
    std::fs::write(&pem_path, pem).expect("write pem");
    let der_path = dir.path().join("key.der");
    run(Command::new("openssl").args([
        "pkey",
        "-traditional",
        "-in",
        &pem_path.display().to_string(),
        "-outform",
        "DER",
        "-out",
        &der_path.display().to_string(),
    ]));
    rsa_key(&std::fs::read(der_path).expect("key der"))
}

/// The components of an RSA private key, as PKCS#11 attribute values.
pub struct RsaKey {
    pub modulus: Vec<u8>,
    pub public_exponent: Vec<u8>,
    pub private_exponent: Vec<u8>,
    pub prime_1: Vec<u8>,
    pub prime_2: Vec<u8>,
    pub exponent_1: Vec<u8>,
    pub exponent_2: Vec<u8>,
    pub coefficient: Vec<u8>,
}

impl RsaKey {
    /// The key's attributes for a PKCS#11 template (modulus to
    /// coefficient).
    pub fn attributes(&self) -> Vec<(pkcs11_sys::CK_ATTRIBUTE_TYPE, Vec<u8>)> {
        use pkcs11_sys::*;
        vec![
            (CKA_MODULUS, self.modulus.clone()),
            (CKA_PUBLIC_EXPONENT, self.public_exponent.clone()),
            (CKA_PRIVATE_EXPONENT, self.private_exponent.clone()),
            (CKA_PRIME_1, self.prime_1.clone()),
            (CKA_PRIME_2, self.prime_2.clone()),
            (CKA_EXPONENT_1, self.exponent_1.clone()),
            (CKA_EXPONENT_2, self.exponent_2.clone()),
            (CKA_COEFFICIENT, self.coefficient.clone()),
        ]
    }
}

/// The components of a PKCS#1 RSAPrivateKey.
pub fn rsa_key(pkcs1_der: &[u8]) -> RsaKey {
    use der::Decode;
    let key = pkcs1::RsaPrivateKey::from_der(pkcs1_der).expect("RSAPrivateKey");
    let b = |u: pkcs1::UintRef<'_>| u.as_bytes().to_vec();
    RsaKey {
        modulus: b(key.modulus),
        public_exponent: b(key.public_exponent),
        private_exponent: b(key.private_exponent),
        prime_1: b(key.prime1),
        prime_2: b(key.prime2),
        exponent_1: b(key.exponent1),
        exponent_2: b(key.exponent2),
        coefficient: b(key.coefficient),
    }
}

/// What a certificate object needs from a certificate's DER.
pub struct CertFields {
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
}

pub fn cert_fields(der_cert: &[u8]) -> CertFields {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der_cert).expect("certificate");
    let tbs = cert.tbs_certificate();
    CertFields {
        subject: tbs.subject().to_der().expect("subject"),
        issuer: tbs.issuer().to_der().expect("issuer"),
        serial: tbs.serial_number().to_der().expect("serial"),
    }
}

pub mod raw;
pub mod stress;

/// A DER TLV of one-byte tag (the length as the der crate encodes it).
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    use der::Encode;
    let len = der::Length::try_from(content.len()).expect("a DER length");
    let mut out = vec![tag];
    out.extend(len.to_der().expect("a DER length encodes"));
    out.extend_from_slice(content);
    out
}

/// `der` with every INTEGER whose value is `old` re-encoded as `new`, the
/// enclosing lengths adjusted: how a test forges a PBKDF2 iteration count.
pub fn der_replace_integer(der: &[u8], old: u64, new: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let tag = rest[0];
        let (len, header) = match rest[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let k = (n & 0x7f) as usize;
                let len = rest[2..2 + k]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | *b as usize);
                (len, 2 + k)
            }
        };
        let content = &rest[header..header + len];
        rest = &rest[header + len..];
        let value = content.iter().fold(0u64, |a, b| a << 8 | *b as u64);
        if tag & 0x20 != 0 {
            out.extend(tlv(tag, &der_replace_integer(content, old, new)));
        } else if tag == 0x02 && content.len() <= 8 && value == old {
            out.extend(der_integer(&new.to_be_bytes()));
        } else {
            out.extend(tlv(tag, content));
        }
    }
    out
}

/// A DER INTEGER from unsigned big-endian bytes.
pub fn der_integer(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let mut v = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        vec![0]
    } else {
        vec![]
    };
    v.extend(if trimmed.is_empty() { vec![0] } else { trimmed });
    tlv(0x02, &v)
}

/// Whether OpenSSL (`openssl dgst`) accepts a signature over `data` made
/// with the key whose SubjectPublicKeyInfo DER is `spki`; `options` are
/// further `-sigopt` settings.
pub fn openssl_verifies(
    spki: &[u8],
    data: &[u8],
    signature: &[u8],
    digest: &str,
    options: &[&str],
) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("pub.der"), spki).expect("write");
    std::fs::write(p("sig"), signature).expect("write");
    std::fs::write(p("data"), data).expect("write");
    run(Command::new("openssl").args([
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        &p("pub.der"),
        "-out",
        &p("pub.pem"),
    ]));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "dgst",
        &format!("-{digest}"),
        "-verify",
        &p("pub.pem"),
        "-signature",
        &p("sig"),
    ]);
    for o in options {
        cmd.args(["-sigopt", o]);
    }
    cmd.arg(p("data"))
        .output()
        .expect("openssl")
        .status
        .success()
}

/// What identifies an object in the manifest's list of what NSS exposes.
pub fn object_summary(
    raw: &raw::Raw,
    s: pkcs11_sys::CK_SESSION_HANDLE,
    h: pkcs11_sys::CK_OBJECT_HANDLE,
) -> (String, String, String) {
    use pkcs11_sys::*;
    use softoken::nss::*;
    let class = raw::as_ul(&raw.get(s, h, CKA_CLASS).unwrap());
    let label = String::from_utf8(raw.get(s, h, CKA_LABEL).unwrap_or_default()).unwrap();
    let id = match class {
        CKO_CERTIFICATE | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => {
            hex::encode(raw.get(s, h, CKA_ID).unwrap())
        }
        CKO_NSS_TRUST => hex::encode(raw.get(s, h, CKA_CERT_SHA1_HASH).unwrap()),
        CKO_NSS_CRL => sha256_hex(&raw.get(s, h, CKA_VALUE).unwrap()),
        // NSS keeps the address NUL-terminated; its own listing drops the NUL.
        CKO_NSS_SMIME => String::from_utf8(raw.get(s, h, CKA_NSS_EMAIL).unwrap())
            .unwrap()
            .trim_end_matches('\0')
            .to_owned(),
        _ => String::new(),
    };
    (class_name(class).to_owned(), label, id)
}

pub fn manifest_object_summary(o: &serde_json::Value) -> (String, String, String) {
    let class = o["class"].as_str().unwrap().to_owned();
    let id = match class.as_str() {
        "CKO_NSS_TRUST" => o["cert_sha1"].as_str(),
        "CKO_NSS_CRL" => o["sha256"].as_str(),
        "CKO_NSS_SMIME" => o["nss_email"].as_str(),
        _ => o["id_hex"].as_str(),
    }
    .unwrap_or_default()
    .to_owned();
    (
        class,
        o["label"].as_str().unwrap_or_default().to_owned(),
        id,
    )
}

/// Every object a session sees, summarised as the manifests list them.
pub fn listed_objects(
    raw: &raw::Raw,
    s: pkcs11_sys::CK_SESSION_HANDLE,
) -> std::collections::BTreeSet<(String, String, String)> {
    raw.find(s, &[])
        .expect("find every object")
        .iter()
        .map(|h| object_summary(raw, s, *h))
        .collect()
}

/// What NSS's own softoken lists for a fixture, summarised.
pub fn nss_listed_objects(fixture: &str) -> std::collections::BTreeSet<(String, String, String)> {
    manifest(fixture)["pkcs11_objects_via_nss_softoken"]
        .as_array()
        .expect("pkcs11_objects_via_nss_softoken")
        .iter()
        .map(manifest_object_summary)
        .collect()
}

/// The name NSS's listings and the fixture manifests give an object class.
pub fn class_name(class: pkcs11_sys::CK_OBJECT_CLASS) -> &'static str {
    use pkcs11_sys::*;
    use softoken::nss::*;
    match class {
        CKO_CERTIFICATE => "CKO_CERTIFICATE",
        CKO_PUBLIC_KEY => "CKO_PUBLIC_KEY",
        CKO_PRIVATE_KEY => "CKO_PRIVATE_KEY",
        CKO_NSS_TRUST => "CKO_NSS_TRUST",
        CKO_NSS_CRL => "CKO_NSS_CRL",
        CKO_NSS_SMIME => "CKO_NSS_SMIME",
        _ => "other",
    }
}

/// The name of an NSS trust value, as the fixture manifests give it.
pub fn trust_name(v: pkcs11_sys::CK_ULONG) -> &'static str {
    use softoken::nss::*;
    match v {
        CKT_NSS_TRUSTED => "CKT_NSS_TRUSTED",
        CKT_NSS_TRUSTED_DELEGATOR => "CKT_NSS_TRUSTED_DELEGATOR",
        CKT_NSS_MUST_VERIFY_TRUST => "CKT_NSS_MUST_VERIFY_TRUST",
        CKT_NSS_NOT_TRUSTED => "CKT_NSS_NOT_TRUSTED",
        CKT_NSS_TRUST_UNKNOWN => "CKT_NSS_TRUST_UNKNOWN",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_lengths_in_every_form() {
        assert_eq!(tlv(0x04, &[7; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[7; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[7; 0x1234])[..4], [0x04, 0x82, 0x12, 0x34]);
        // Above 64 KiB the length takes three bytes.
        let long = tlv(0x04, &vec![7; 0x1_1170]);
        assert_eq!(long[..5], [0x04, 0x83, 0x01, 0x11, 0x70]);
        assert_eq!(long.len(), 5 + 0x1_1170);
    }
}
