//! Writes a fixture's MANIFEST.json from what real NSS reports for it: the
//! objects NSS's own softoken (libsoftokn3.so) shows for the database, the
//! trust letters `certutil -L` prints, and the files with their hashes.
//! `tests/fixtures/nss/regenerate.sh` runs it after making each fixture.
//!
//! fixture-manifest DIR --format sql|dbm --password PW --description TEXT
//!     [--nss-softoken PATH]
//! fixture-manifest DIR --pkcs12 FILE --password PW --description TEXT
//!     --key-of NICKNAME --from SQLDIR --from-password PW

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pkcs11_sys::*;
use serde_json::{json, Value};
use softoken::nss::*;
use softoken_tests::raw::{as_ul, Raw};
use softoken_tests::{class_name, run, sha1_hex, sha256_hex, trust_name, NSS_SOFTOKEN};

struct Args {
    dir: PathBuf,
    format: String,
    password: String,
    description: String,
    nss_softoken: PathBuf,
    pkcs12: Option<String>,
    key_of: Option<String>,
    from: Option<PathBuf>,
    from_password: String,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let dir = PathBuf::from(it.next().ok_or("usage: fixture-manifest DIR [options]")?);
    let mut a = Args {
        dir,
        format: "sql".into(),
        password: String::new(),
        description: String::new(),
        nss_softoken: PathBuf::from(NSS_SOFTOKEN),
        pkcs12: None,
        key_of: None,
        from: None,
        from_password: String::new(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--format" => a.format = value,
            "--password" => a.password = value,
            "--description" => a.description = value,
            "--nss-softoken" => a.nss_softoken = value.into(),
            "--pkcs12" => a.pkcs12 = Some(value),
            "--key-of" => a.key_of = Some(value),
            "--from" => a.from = Some(value.into()),
            "--from-password" => a.from_password = value,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if !matches!(a.format.as_str(), "sql" | "dbm") {
        return Err(format!("--format is sql or dbm, not {}", a.format));
    }
    Ok(a)
}

/// Every file below `dir` (its sub-folders too), with size and SHA-256.
fn files(dir: &Path) -> Value {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Value>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("fixture directory")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.file_name() != Some("MANIFEST.json".as_ref()) {
                let data = std::fs::read(&path).expect("fixture file");
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(
                    name,
                    json!({ "size": data.len(), "sha256": sha256_hex(&data) }),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    json!(out)
}

/// Trust letters by nickname, as `certutil -L` prints them.
fn certutil_trust(spec: &str) -> BTreeMap<String, String> {
    let listing = run(Command::new("certutil").args(["-L", "-d", spec]));
    listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .skip_while(|l| !l.contains("SSL,S/MIME,JAR/XPI"))
        .skip(1)
        .filter_map(|l| {
            let (name, trust) = l.trim_end().rsplit_once(char::is_whitespace)?;
            Some((name.trim_end().to_owned(), trust.to_owned()))
        })
        .collect()
}

/// The raw DER of a certificate by nickname, from `certutil -L -r`.
fn cert_der(spec: &str, nickname: &str) -> Vec<u8> {
    let out = Command::new("certutil")
        .args(["-L", "-d", spec, "-n", nickname, "-r"])
        .output()
        .expect("certutil");
    assert!(out.status.success(), "certutil -L -n {nickname}");
    out.stdout
}

fn text(raw: &Raw, s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> Value {
    // An absent or empty string is null in a manifest.
    match raw.get(s, h, t) {
        Ok(v) if !v.is_empty() => json!(String::from_utf8_lossy(&v).trim_end_matches('\0')),
        _ => Value::Null,
    }
}

fn hex_of(raw: &Raw, s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> Value {
    raw.get(s, h, t)
        .map_or(Value::Null, |v| json!(hex::encode(v)))
}

fn key_type_name(t: CK_KEY_TYPE) -> &'static str {
    match t {
        CKK_RSA => "CKK_RSA",
        CKK_EC => "CKK_EC",
        _ => "other",
    }
}

/// One object as NSS's softoken shows it.
fn object(raw: &Raw, s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> Value {
    let class = as_ul(&raw.get(s, h, CKA_CLASS).expect("class"));
    let mut o = json!({
        "handle": format!("{h:#x}"),
        "class": class_name(class),
        "label": String::from_utf8_lossy(&raw.get(s, h, CKA_LABEL).unwrap_or_default()),
    });
    let m = o.as_object_mut().unwrap();
    match class {
        CKO_CERTIFICATE => {
            let der = raw.get(s, h, CKA_VALUE).expect("certificate value");
            m.insert("id_hex".into(), hex_of(raw, s, h, CKA_ID));
            m.insert("sha256".into(), json!(sha256_hex(&der)));
            m.insert("sha1".into(), json!(sha1_hex(&der)));
            m.insert("nss_email".into(), text(raw, s, h, CKA_NSS_EMAIL));
        }
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => {
            let key_type = as_ul(&raw.get(s, h, CKA_KEY_TYPE).expect("key type"));
            m.insert("id_hex".into(), hex_of(raw, s, h, CKA_ID));
            m.insert("key_type".into(), json!(key_type_name(key_type)));
            if key_type == CKK_RSA {
                let n = raw.get(s, h, CKA_MODULUS).unwrap_or_default();
                m.insert("key_bits".into(), json!(n.len() * 8));
            } else {
                m.insert("ec_params_hex".into(), hex_of(raw, s, h, CKA_EC_PARAMS));
            }
        }
        CKO_NSS_TRUST => {
            let usage = |t| raw.get(s, h, t).map_or("absent", |v| trust_name(as_ul(&v)));
            m.insert(
                "trust".into(),
                json!({
                    "serverAuth": usage(CKA_TRUST_SERVER_AUTH),
                    "clientAuth": usage(CKA_TRUST_CLIENT_AUTH),
                    "codeSigning": usage(CKA_TRUST_CODE_SIGNING),
                    "emailProtection": usage(CKA_TRUST_EMAIL_PROTECTION),
                }),
            );
            m.insert("issuer_hex".into(), hex_of(raw, s, h, CKA_ISSUER));
            m.insert("serial_hex".into(), hex_of(raw, s, h, CKA_SERIAL_NUMBER));
            m.insert("cert_sha1".into(), hex_of(raw, s, h, CKA_CERT_SHA1_HASH));
        }
        CKO_NSS_CRL => {
            let der = raw.get(s, h, CKA_VALUE).expect("CRL value");
            m.insert("sha256".into(), json!(sha256_hex(&der)));
            m.insert("subject_hex".into(), hex_of(raw, s, h, CKA_SUBJECT));
        }
        CKO_NSS_SMIME => {
            m.insert("nss_email".into(), text(raw, s, h, CKA_NSS_EMAIL));
            m.insert(
                "smime_info_hex".into(),
                hex_of(raw, s, h, CKA_NSS_SMIME_INFO),
            );
        }
        _ => {}
    }
    o
}

/// A private copy of a fixture, for NSS's tools and softoken to open: NSS
/// may write pkcs11.txt even when asked only to read.
fn scratch_copy(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("temporary directory");
    copy_tree(dir, copy.path());
    copy
}

/// What NSS's softoken shows for a database directory, logged in.
fn nss_objects(a: &Args, dir: &Path, format: &str, password: &str) -> (Vec<Value>, String) {
    let raw = Raw::load_path(&a.nss_softoken);
    let params = format!(
        "configdir='{format}:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=readOnly",
        dir.display()
    );
    assert_eq!(raw.initialize(Some(&params)), CKR_OK, "NSS C_Initialize");
    // Slot 2 of NSS's softoken is the database token.
    let slot = raw.slots()[1];
    let info = raw.token_info(slot);
    let label = String::from_utf8_lossy(&info.label).trim_end().to_owned();
    let s = raw.open(slot, false).expect("NSS session");
    if !password.is_empty() {
        assert_eq!(raw.login(s, CKU_USER, password), CKR_OK, "NSS login");
    }
    let mut objects: Vec<Value> = raw
        .find(s, &[])
        .expect("NSS FindObjects")
        .into_iter()
        .map(|h| object(&raw, s, h))
        .collect();
    objects.sort_by_key(|o| {
        (
            o["class"].as_str().unwrap_or_default().to_owned(),
            o["label"].as_str().unwrap_or_default().to_owned(),
            o.to_string(),
        )
    });
    assert_eq!(raw.finalize(), CKR_OK);
    (objects, label)
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("directory") {
        let path = entry.expect("entry").path();
        let dst = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir(&dst).expect("mkdir");
            copy_tree(&path, &dst);
        } else {
            std::fs::copy(&path, &dst).expect("copy");
        }
    }
}

/// The `expected` part: certificates with trust letters, keys, CRLs,
/// S/MIME records.
fn expected(objects: &[Value], trust: &BTreeMap<String, String>, spec: &str) -> Value {
    fn of<'a>(objects: &'a [Value], class: &'static str) -> impl Iterator<Item = &'a Value> {
        objects.iter().filter(move |o| o["class"] == class)
    }
    let key_ids: Vec<&Value> = of(objects, "CKO_PRIVATE_KEY")
        .map(|k| &k["id_hex"])
        .collect();
    let certificates: Vec<Value> = of(objects, "CKO_CERTIFICATE")
        .map(|c| {
            let nickname = c["label"].as_str().unwrap_or_default();
            let der = cert_der(spec, nickname);
            assert_eq!(
                sha256_hex(&der),
                c["sha256"],
                "{nickname}: certutil and softoken agree"
            );
            json!({
                "nickname": nickname,
                "trust": trust.get(nickname),
                "sha256": c["sha256"],
                "sha1": c["sha1"],
                "cka_id": c["id_hex"],
                "nss_email": c["nss_email"],
                "has_private_key": key_ids.contains(&&c["id_hex"]),
            })
        })
        .collect();
    let private_keys: Vec<Value> = of(objects, "CKO_PRIVATE_KEY")
        .map(|k| {
            json!({
                "cka_id": k["id_hex"],
                "key_type": k["key_type"],
                "bits": k.get("key_bits"),
                "ec_params_hex": k.get("ec_params_hex"),
                "label": k["label"],
            })
        })
        .collect();
    let crls: Vec<Value> = of(objects, "CKO_NSS_CRL")
        .map(|c| json!({ "issuer_der_hex": c["subject_hex"], "sha256": c["sha256"] }))
        .collect();
    let smime: Vec<Value> = of(objects, "CKO_NSS_SMIME")
        .map(|r| json!({ "email": r["nss_email"] }))
        .collect();
    json!({
        "certificates": certificates,
        "private_keys": private_keys,
        "crls": crls,
        "smime_records": smime,
    })
}

fn nss_version() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "libnss3"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            format!(
                "NSS (Debian libnss3 {})",
                String::from_utf8_lossy(&o.stdout)
            )
        }
        _ => "NSS".to_owned(),
    }
}

fn main() {
    let a = args().unwrap_or_else(|e| {
        eprintln!("fixture-manifest: {e}");
        std::process::exit(2);
    });
    let mut manifest = json!({
        "fixture": a.dir.file_name().unwrap().to_string_lossy(),
        "description": a.description,
        "password": a.password,
        "created_with": nss_version(),
        "create_script": "tests/fixtures/nss/regenerate.sh",
        "files": files(&a.dir),
    });
    let m = manifest.as_object_mut().unwrap();
    if let Some(p12) = &a.pkcs12 {
        // The key's CKA_ID as NSS gives it, from the database it came from.
        let from = a.from.as_ref().expect("--from");
        let nickname = a.key_of.as_ref().expect("--key-of");
        let work = scratch_copy(from);
        let (objects, _) = nss_objects(&a, work.path(), "sql", &a.from_password);
        let cert = objects
            .iter()
            .find(|o| o["class"] == "CKO_CERTIFICATE" && o["label"] == nickname.as_str())
            .expect("the key's certificate");
        m.insert("file".into(), json!(p12));
        m.insert(
            "expected".into(),
            json!({ "key": { "nss_ckaid": cert["id_hex"], "friendly_name": nickname },
                    "certificate": { "nickname": nickname, "sha256": cert["sha256"] } }),
        );
    } else {
        let work = scratch_copy(&a.dir);
        let spec = format!("{}:{}", a.format, work.path().display());
        let (objects, label) = nss_objects(&a, work.path(), &a.format, &a.password);
        let trust = certutil_trust(&spec);
        m.insert("format".into(), json!(a.format));
        m.insert(
            "open_as".into(),
            json!(format!("{}:<this directory>", a.format)),
        );
        m.insert("token_label".into(), json!(label));
        m.insert("expected".into(), expected(&objects, &trust, &spec));
        m.insert("pkcs11_objects_via_nss_softoken".into(), json!(objects));
    }
    let text = serde_json::to_string_pretty(&manifest).expect("json") + "\n";
    std::fs::write(a.dir.join("MANIFEST.json"), text).expect("write MANIFEST.json");
}
