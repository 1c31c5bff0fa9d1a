//! Database administration through the module's C API: create, change the
//! password, list tokens, certificates and keys, and move keys in and out as
//! PKCS#12 — the way NSS's certutil and pk12util do it, so the commands
//! work with any module that offers the mechanisms (NSS's own softoken
//! too, given `--libfile` and its parameters).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use der::{Decode, Encode};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::{Failure, Kind, Outcome};
use crate::library::{self, p11_failure, Module};
use crate::registry;

use softoken::nss::{
    CKA_TRUST_CLIENT_AUTH, CKA_TRUST_CODE_SIGNING, CKA_TRUST_EMAIL_PROTECTION,
    CKA_TRUST_SERVER_AUTH, CKT_NSS_NOT_TRUSTED, CKT_NSS_TRUSTED, CKT_NSS_TRUSTED_DELEGATOR,
    CKT_NSS_VALID_DELEGATOR,
};

/// Where the database is and which module serves it.
pub struct Target {
    pub libfile: PathBuf,
    /// As the user gave it (`sql:DIR`, `dbm:DIR` or `DIR`); none means the
    /// module's own default.
    pub dbdir: Option<String>,
    /// A token label; none means the module's database slot.
    pub token: Option<String>,
    /// Extra parameters appended to the module's parameter string.
    pub params: Option<String>,
}

/// How to get a password: a file's first line, or the terminal.
#[derive(Clone, Debug, Default)]
pub struct PasswordSource {
    pub file: Option<PathBuf>,
}

impl PasswordSource {
    pub fn read(&self, prompt: &str) -> Outcome<Zeroizing<String>> {
        if let Some(file) = &self.file {
            let text = Zeroizing::new(
                std::fs::read_to_string(file)
                    .map_err(|e| Failure::io("read password file", file, e))?,
            );
            let line = text.lines().next().unwrap_or("");
            return Ok(Zeroizing::new(line.to_string()));
        }
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(
                Kind::Failed,
                format!("{prompt} needed but there is no terminal to ask on; use a password file option"),
            ));
        }
        rpassword::prompt_password(format!("{prompt}: "))
            .map(Zeroizing::new)
            .map_err(|e| Failure::new(Kind::Failed, format!("cannot read the password: {e}")))
    }

    /// A new password, typed twice when asked for on the terminal.
    pub fn read_new(&self, prompt: &str) -> Outcome<Zeroizing<String>> {
        let first = self.read(prompt)?;
        if self.file.is_none() {
            let again = self.read(&format!("{prompt} (again)"))?;
            if *again != *first {
                return Err(Failure::new(Kind::Failed, "the passwords do not match"));
            }
        }
        Ok(first)
    }
}

/// The directory and format named by a `--dbdir` value.
pub fn database_dir(dbdir: &str) -> Outcome<(String, PathBuf)> {
    let (prefix, dir) = registry::strip_prefix(dbdir);
    let prefix = prefix.unwrap_or("sql").to_string();
    let dir = std::path::absolute(&dir).map_err(|e| Failure::io("resolve", &dir, e))?;
    Ok((prefix, dir))
}

fn database_files(prefix: &str) -> [&'static str; 2] {
    if prefix == "dbm" {
        ["cert8.db", "key3.db"]
    } else {
        ["cert9.db", "key4.db"]
    }
}

/// The parameter string NSS gives its softoken for a directory whose
/// files carry `file_prefix` (certutil's --dbprefix).
fn database_params(dbdir: &str, file_prefix: &str, read_only: bool) -> Outcome<String> {
    let (prefix, dir) = database_dir(dbdir)?;
    Ok(format!(
        "configdir={} certPrefix={} keyPrefix={} secmod='secmod.db' flags={}",
        registry::quote(&format!("{prefix}:{}", dir.display())),
        registry::quote(file_prefix),
        registry::quote(file_prefix),
        if read_only { "readOnly" } else { "" }
    ))
}

/// The parameter string for the target's module.
fn module_params(target: &Target, read_only: bool) -> Outcome<Option<String>> {
    let mut params = match &target.dbdir {
        Some(dbdir) => Some(database_params(dbdir, "", read_only)?),
        None => None,
    };
    if let Some(extra) = target.params.as_deref().filter(|p| !p.is_empty()) {
        params = Some(match params {
            Some(p) => format!("{p} {extra}"),
            None => extra.to_string(),
        });
    }
    Ok(params)
}

/// An open token: the module, its slot and a session.
pub struct Token {
    _module: Module,
    pub session: Session,
    pub login_required: bool,
}

impl Token {
    /// Opens the token of an existing database (refusing to create one by
    /// accident in a mistyped directory).
    pub fn open(target: &Target, rw: bool) -> Outcome<Token> {
        require_database(target)?;
        Token::load(target, rw, !rw)
    }

    pub(crate) fn load(target: &Target, rw: bool, read_only: bool) -> Outcome<Token> {
        let module = library::load(
            &target.libfile,
            module_params(target, read_only)?.as_deref(),
        )?;
        let (slot, login_required) = chosen_slot(&module, target)?;
        let p11 = &module.pkcs11;
        let session = if rw {
            p11.open_rw_session(slot)
        } else {
            p11.open_ro_session(slot)
        }
        .map_err(|e| p11_failure("C_OpenSession", e))?;
        Ok(Token {
            _module: module,
            session,
            login_required,
        })
    }

    /// Logs in when the token needs it.
    pub fn login(&self, password: &PasswordSource) -> Outcome<()> {
        if !self.login_required {
            return Ok(());
        }
        let pw = password.read("Password for the database")?;
        self.session
            .login(UserType::User, Some(&AuthPin::from(pw.as_str())))
            .map_err(|e| p11_failure("login failed", e))
    }

    pub(crate) fn find(&self, template: &[Attribute]) -> Outcome<Vec<ObjectHandle>> {
        self.session
            .find_objects(template)
            .map_err(|e| p11_failure("C_FindObjects", e))
    }

    pub(crate) fn attributes(
        &self,
        object: ObjectHandle,
        types: &[AttributeType],
    ) -> Outcome<Vec<Attribute>> {
        self.session
            .get_attributes(object, types)
            .map_err(|e| p11_failure("C_GetAttributeValue", e))
    }
}

/// Refuses a `--dbdir` that holds no database (a `sql:` directory of only
/// legacy files is one: the module reads them, and updates from them).
fn require_database(target: &Target) -> Outcome<()> {
    if let Some(dbdir) = &target.dbdir {
        let (prefix, dir) = database_dir(dbdir)?;
        let missing: Vec<&str> = database_files(&prefix)
            .into_iter()
            .filter(|f| !dir.join(f).exists())
            .collect();
        if missing.len() == 2 && (prefix == "dbm" || legacy_files(&dir).is_empty()) {
            return Err(Failure::new(
                Kind::NotFound,
                format!(
                    "{} holds no database ({} missing); make one with `softoken-modutil create`",
                    dir.display(),
                    missing.join(" and ")
                ),
            ));
        }
    }
    Ok(())
}

/// The legacy files (cert8.db, key3.db) a directory holds.
fn legacy_files(dir: &Path) -> Vec<&'static str> {
    database_files("dbm")
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect()
}

/// `upgrade`: NSS's update of a `sql:` directory from the legacy files in
/// it, done by the module: cert9.db and key4.db are made and take the
/// certificates, trust, CRLs and S/MIME records at once and the keys at the
/// login with the legacy password, which becomes the new database's. The
/// legacy files are only read. Reports what the new database holds.
pub fn upgrade(target: &Target, password: &PasswordSource) -> Outcome<Value> {
    let dbdir = target
        .dbdir
        .as_deref()
        .ok_or_else(|| Failure::new(Kind::Usage, "upgrade needs the directory: --dbdir sql:DIR"))?;
    let (prefix, dir) = database_dir(dbdir)?;
    if prefix == "dbm" {
        return Err(Failure::new(
            Kind::Usage,
            "upgrade makes an sql: database from a directory's legacy files: name it \
             --dbdir sql:DIR (a dbm: directory is used as it is, nothing converted)",
        ));
    }
    let legacy = legacy_files(&dir);
    if legacy.is_empty() {
        return Err(Failure::new(
            Kind::NotFound,
            format!(
                "{} holds no cert8.db or key3.db to upgrade from",
                dir.display()
            ),
        ));
    }
    let made = database_files(&prefix)
        .into_iter()
        .all(|f| !dir.join(f).exists());
    let token = Token::load(target, true, false)?;
    if token.login_required {
        let pw = password.read("Password of the legacy database (key3.db)")?;
        token
            .session
            .login(UserType::User, Some(&AuthPin::from(pw.as_str())))
            .map_err(|e| p11_failure("the legacy password was refused", e))?;
    }
    let count = |class| Ok::<_, Failure>(token.find(&[Attribute::Class(class)])?.len());
    Ok(json!({
        "upgraded": dir,
        "made_new_files": made,
        "certificates": count(ObjectClass::CERTIFICATE)?,
        "private_keys": count(ObjectClass::PRIVATE_KEY)?,
        "public_keys": count(ObjectClass::PUBLIC_KEY)?,
        "legacy_files_left_as_they_were": legacy,
    }))
}

/// The slot of the token `target` names (NSS's database slot by default)
/// and whether its token needs a login.
fn chosen_slot(module: &Module, target: &Target) -> Outcome<(cryptoki::slot::Slot, bool)> {
    let p11 = &module.pkcs11;
    // Every slot: one whose database did not open says why at
    // C_GetTokenInfo, which the user then reads.
    let slots = p11
        .get_all_slots()
        .map_err(|e| p11_failure("C_GetSlotList", e))?;
    let mut chosen = None;
    for slot in &slots {
        let info = p11
            .get_token_info(*slot)
            .map_err(|e| p11_failure("C_GetTokenInfo", e))?;
        let matches = match &target.token {
            Some(label) => info.label().trim_end() == label,
            // NSS's database slot has id 2 (ours too); otherwise the first.
            None => slot.id() == 2,
        };
        if matches {
            chosen = Some((*slot, info.login_required()));
            break;
        }
    }
    if chosen.is_none() && target.token.is_none() {
        if let Some(slot) = slots.first() {
            let info = p11
                .get_token_info(*slot)
                .map_err(|e| p11_failure("C_GetTokenInfo", e))?;
            chosen = Some((*slot, info.login_required()));
        }
    }
    chosen.ok_or_else(|| {
        Failure::new(
            Kind::NotFound,
            match &target.token {
                Some(label) => format!("no token labelled {label:?}"),
                None => "the module shows no token".to_string(),
            },
        )
    })
}

/// `reset`: C_InitToken on an existing database. On a database without an
/// SO PIN (every one NSS or Firefox made) the keys and the password go and
/// certificates and trust stay, as NSS's reset does; the SO PIN given is
/// set. Where an SO PIN is set it must be given, and every object goes.
/// Then the new password is set (by the SO, C_InitPIN). Returns the
/// token's label.
pub fn reset(
    target: &Target,
    so_pin: &Zeroizing<String>,
    new_password: &Zeroizing<String>,
    label: Option<&str>,
) -> Outcome<String> {
    require_database(target)?;
    let module = library::load(&target.libfile, module_params(target, false)?.as_deref())?;
    let (slot, _) = chosen_slot(&module, target)?;
    let label = match label {
        Some(l) => l.to_owned(),
        None => module
            .pkcs11
            .get_token_info(slot)
            .map_err(|e| p11_failure("C_GetTokenInfo", e))?
            .label()
            .trim_end()
            .to_owned(),
    };
    module
        .pkcs11
        .init_token(slot, &AuthPin::from(so_pin.as_str()), &label)
        .map_err(|e| p11_failure("C_InitToken", e))?;
    let session = module
        .pkcs11
        .open_rw_session(slot)
        .map_err(|e| p11_failure("C_OpenSession", e))?;
    session
        .login(UserType::So, Some(&AuthPin::from(so_pin.as_str())))
        .map_err(|e| p11_failure("C_Login as SO", e))?;
    session
        .init_pin(&AuthPin::from(new_password.as_str()))
        .map_err(|e| p11_failure("C_InitPIN", e))?;
    Ok(label)
}

/// `create`: a new database directory, its pkcs11.txt and databases, with
/// a password (or none, as `modutil -create` makes them).
pub fn create(target: &Target, password: Option<&PasswordSource>, force: bool) -> Outcome<PathBuf> {
    let dbdir = target
        .dbdir
        .as_deref()
        .ok_or_else(|| Failure::new(Kind::Usage, "create needs --dbdir DIR"))?;
    let (prefix, dir) = database_dir(dbdir)?;
    if prefix != "sql" {
        return Err(Failure::new(
            Kind::Failed,
            format!("new databases are made in the sql format, not {prefix}:"),
        ));
    }
    if let Some(existing) = database_files(&prefix)
        .into_iter()
        .find(|f| dir.join(f).exists())
    {
        return Err(Failure::new(
            Kind::Exists,
            format!("{} already holds a database ({existing})", dir.display()),
        ));
    }
    let new_password = password.map(|p| p.read_new("New password")).transpose()?;
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| Failure::io("create", &dir, e))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| Failure::io("set permissions of", &dir, e))?;
    }
    registry::update(&dir, force, true, |_| Ok(()))?;
    let token = Token::load(target, true, false)?;
    if let Some(pw) = new_password.filter(|p| !p.is_empty()) {
        token
            .session
            .set_pin(&AuthPin::from(""), &AuthPin::from(pw.as_str()))
            .map_err(|e| p11_failure("setting the password failed", e))?;
    }
    Ok(dir)
}

/// `passwd`: changes the database password (every private value is
/// re-encrypted by the module, in one transaction).
pub fn change_password(target: &Target, old: &PasswordSource, new: &PasswordSource) -> Outcome<()> {
    let token = Token::open(target, true)?;
    let old_pw = if token.login_required {
        old.read("Current password")?
    } else {
        Zeroizing::new(String::new())
    };
    let new_pw = new.read_new("New password")?;
    token
        .session
        .set_pin(
            &AuthPin::from(old_pw.as_str()),
            &AuthPin::from(new_pw.as_str()),
        )
        .map_err(|e| p11_failure("changing the password failed", e))
}

/// `tokens`: every slot with a token.
pub fn tokens(target: &Target) -> Outcome<Value> {
    let params = module_params(target, true)?;
    let module = library::load(&target.libfile, params.as_deref())?;
    let p11 = &module.pkcs11;
    // Where each token's database is, when the library is softoken (the
    // C API does not say): what softoken makes of the same parameters.
    let configured = softoken::admin::configured(params.as_deref()).ok();
    let ours = p11.get_library_info().is_ok_and(|i| {
        configured
            .as_ref()
            .is_some_and(|c| i.manufacturer_id().trim_end() == c.manufacturer)
    });
    let database_of = |slot: u64| {
        configured
            .iter()
            .filter(|_| ours)
            .flat_map(|c| &c.tokens)
            .find(|(id, _)| *id == slot)
            .map(|(_, location)| location.clone())
    };
    let mut out = Vec::new();
    for slot in p11
        .get_slots_with_token()
        .map_err(|e| p11_failure("C_GetSlotList", e))?
    {
        let s = p11
            .get_slot_info(slot)
            .map_err(|e| p11_failure("C_GetSlotInfo", e))?;
        let t = p11
            .get_token_info(slot)
            .map_err(|e| p11_failure("C_GetTokenInfo", e))?;
        out.push(json!({
            "slot_id": slot.id(),
            "database": database_of(slot.id()),
            "slot": s.slot_description().trim_end(),
            "label": t.label().trim_end(),
            "manufacturer": t.manufacturer_id().trim_end(),
            "model": t.model().trim_end(),
            "serial": t.serial_number().trim_end(),
            "login_required": t.login_required(),
            "initialized": t.token_initialized(),
            "user_pin_initialized": t.user_pin_initialized(),
            "write_protected": t.write_protected(),
        }));
    }
    Ok(Value::Array(out))
}

fn trust_letters(value: Option<u64>, client: Option<u64>, user: bool) -> String {
    let mut s = String::new();
    match value {
        Some(CKT_NSS_TRUSTED_DELEGATOR) => s.push('C'),
        Some(CKT_NSS_VALID_DELEGATOR) => s.push('c'),
        Some(CKT_NSS_TRUSTED) => s.push('P'),
        Some(CKT_NSS_NOT_TRUSTED) => s.push('p'),
        // MUST_VERIFY and UNKNOWN show no letter.
        _ => {}
    }
    if client == Some(CKT_NSS_TRUSTED_DELEGATOR) {
        s.push('T');
    }
    if user {
        s.push('u');
    }
    s
}

fn ck_ulong(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        8 => Some(u64::from_ne_bytes(bytes.try_into().ok()?)),
        4 => Some(u32::from_ne_bytes(bytes.try_into().ok()?) as u64),
        _ => None,
    }
}

/// `certs`: certificates with their trust, written as certutil writes it
/// (`CTu,Cu,Cu`: SSL, S/MIME, code signing).
pub fn certificates(target: &Target, password: &PasswordSource) -> Outcome<Value> {
    let token = Token::open(target, false)?;
    if token.login_required && password.file.is_some() {
        token.login(password)?;
    }
    let key_ids: Vec<Vec<u8>> = [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY]
        .into_iter()
        .map(|class| token.find(&[Attribute::Class(class)]))
        .collect::<Outcome<Vec<_>>>()?
        .into_iter()
        .flatten()
        .filter_map(|k| {
            token
                .attributes(k, &[AttributeType::Id])
                .ok()?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::Id(id) if !id.is_empty() => Some(id),
                    _ => None,
                })
        })
        .collect();
    let mut out = Vec::new();
    for cert in token.find(&[Attribute::Class(ObjectClass::CERTIFICATE)])? {
        let mut label = String::new();
        let (mut id, mut issuer, mut serial, mut value) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for a in token.attributes(
            cert,
            &[
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::Issuer,
                AttributeType::SerialNumber,
                AttributeType::Value,
            ],
        )? {
            match a {
                Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Id(v) => id = v,
                Attribute::Issuer(v) => issuer = v,
                Attribute::SerialNumber(v) => serial = v,
                Attribute::Value(v) => value = v,
                _ => {}
            }
        }
        let user = !id.is_empty() && key_ids.contains(&id);
        let mut trust = [None; 4];
        for object in token.find(&[
            Attribute::Issuer(issuer.clone()),
            Attribute::SerialNumber(serial.clone()),
        ])? {
            let types = [
                CKA_TRUST_SERVER_AUTH,
                CKA_TRUST_CLIENT_AUTH,
                CKA_TRUST_EMAIL_PROTECTION,
                CKA_TRUST_CODE_SIGNING,
            ]
            .map(AttributeType::VendorDefined);
            for a in token.attributes(object, &types)? {
                if let Attribute::VendorDefined((AttributeType::VendorDefined(t), v)) = a {
                    if let Some(i) = [
                        CKA_TRUST_SERVER_AUTH,
                        CKA_TRUST_CLIENT_AUTH,
                        CKA_TRUST_EMAIL_PROTECTION,
                        CKA_TRUST_CODE_SIGNING,
                    ]
                    .iter()
                    .position(|&x| x == t)
                    {
                        trust[i] = ck_ulong(&v);
                    }
                }
            }
        }
        let trust_text = format!(
            "{},{},{}",
            trust_letters(trust[0], trust[1], user),
            trust_letters(trust[2], None, user),
            trust_letters(trust[3], None, user)
        );
        let subject = x509_cert::Certificate::from_der(&value)
            .map(|c| c.tbs_certificate().subject().to_string())
            .unwrap_or_default();
        out.push(json!({
            "nickname": label,
            "trust": trust_text,
            "subject": subject,
            "id": hex::encode(&id),
        }));
    }
    Ok(Value::Array(out))
}

/// `keys`: private keys (after login).
pub fn keys(target: &Target, password: &PasswordSource) -> Outcome<Value> {
    let token = Token::open(target, false)?;
    token.login(password)?;
    let mut out = Vec::new();
    for key in token.find(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])? {
        let mut entry = json!({});
        for a in token.attributes(
            key,
            &[
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::KeyType,
                AttributeType::Modulus,
            ],
        )? {
            match a {
                Attribute::Label(l) => entry["label"] = json!(String::from_utf8_lossy(&l)),
                Attribute::Id(id) => entry["id"] = json!(hex::encode(id)),
                Attribute::KeyType(t) => {
                    entry["type"] = json!(t.to_string().trim_start_matches("CKK_").to_lowercase())
                }
                Attribute::Modulus(m) => {
                    let bits = m.iter().skip_while(|b| **b == 0).count() * 8;
                    entry["bits"] = json!(bits);
                }
                _ => {}
            }
        }
        out.push(entry);
    }
    Ok(Value::Array(out))
}

/// The public value NSS derives CKA_ID from (SHA-1 of it): the RSA
/// modulus, or the EC / Edwards point.
fn public_value(cert: &x509_cert::Certificate) -> Outcome<Vec<u8>> {
    const RSA: &str = "1.2.840.113549.1.1.1";
    let spki = cert.tbs_certificate().subject_public_key_info();
    let bits = spki.subject_public_key.raw_bytes();
    if spki.algorithm.oid.to_string() == RSA {
        let key: pkcs1::RsaPublicKey<der::asn1::UintRef<'_>> = pkcs1::RsaPublicKey::from_der(bits)
            .map_err(|e| Failure::new(Kind::Failed, format!("bad RSA key in certificate: {e}")))?;
        Ok(key.modulus.as_bytes().to_vec())
    } else {
        Ok(bits.to_vec())
    }
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn common_name(cert: &x509_cert::Certificate) -> Option<String> {
    cert.tbs_certificate()
        .subject()
        .to_string()
        .split(',')
        .find_map(|rdn| rdn.trim().strip_prefix("CN=").map(str::to_string))
}

/// A session AES key whose value this tool knows, to move private keys
/// through C_WrapKey/C_UnwrapKey as pk12util does.
/// A session AES key whose value this tool knows, for taking keys out of a
/// token wrapped under it (`wrap_out`) and putting them in.
pub(crate) fn transport_key(token: &Token) -> Outcome<(ObjectHandle, Zeroizing<Vec<u8>>)> {
    let mut value = Zeroizing::new(vec![0u8; 32]);
    aws_lc_rs::rand::fill(&mut value)
        .map_err(|_| Failure::new(Kind::Failed, "no random numbers"))?;
    let handle = token
        .session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(value.to_vec()),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
        ])
        .map_err(|e| p11_failure("creating a transport key", e))?;
    Ok((handle, value))
}

/// A key's secret part (a private key's PKCS#8, a secret key's value),
/// wrapped out of the token under the transport key `transport` (of value
/// `kek_value`) and unwrapped here.
pub(crate) fn wrap_out(
    token: &Token,
    transport: ObjectHandle,
    kek_value: &[u8],
    key: ObjectHandle,
) -> Outcome<Zeroizing<Vec<u8>>> {
    use aws_lc_rs::key_wrap::KeyWrapPadded;
    let wrapped = token
        .session
        .wrap_key(&Mechanism::AesKeyWrapPad, transport, key)
        .map_err(|e| p11_failure("taking the key out of its token (C_WrapKey)", e))?;
    let mut plain = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = kek(kek_value)?
        .unwrap_with_padding(&wrapped, &mut plain)
        .map_err(|_| Failure::new(Kind::Failed, "the module's wrapped key does not unwrap"))?
        .len();
    plain.truncate(len);
    Ok(plain)
}

fn kek(value: &[u8]) -> Outcome<aws_lc_rs::key_wrap::AesKek> {
    aws_lc_rs::key_wrap::AesKek::new(&aws_lc_rs::key_wrap::AES_256, value)
        .map_err(|_| Failure::new(Kind::Failed, "bad transport key"))
}

/// `import`: a PKCS#12 file's key, its certificate and the chain.
pub fn import_p12(
    target: &Target,
    file: &Path,
    password: &PasswordSource,
    p12_password: &PasswordSource,
    nickname: Option<&str>,
) -> Outcome<String> {
    use aws_lc_rs::key_wrap::KeyWrapPadded;

    let bytes = std::fs::read(file).map_err(|e| Failure::io("read", file, e))?;
    let p12_pw = p12_password.read("Password of the PKCS#12 file")?;
    let contents = crate::pkcs12::parse(&bytes, &p12_pw).map_err(|mut f| {
        f.message = format!("{}: {}", file.display(), f.message);
        f
    })?;
    let cert = x509_cert::Certificate::from_der(&contents.certificate)
        .map_err(|e| Failure::new(Kind::Failed, format!("bad certificate in the file: {e}")))?;
    let nickname = nickname
        .map(str::to_string)
        .or(contents.friendly_name.clone())
        .or_else(|| common_name(&cert))
        .ok_or_else(|| Failure::new(Kind::Failed, "the file names no nickname; give --nickname"))?;
    let id = sha1(&public_value(&cert)?);

    let token = Token::open(target, true)?;
    token.login(password)?;
    if !token
        .find(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Value(contents.certificate.clone()),
        ])?
        .is_empty()
    {
        return Err(Failure::new(
            Kind::Exists,
            format!(
                "the certificate of {} is already in the database",
                file.display()
            ),
        ));
    }
    let key_type = match cert
        .tbs_certificate()
        .subject_public_key_info()
        .algorithm
        .oid
        .to_string()
        .as_str()
    {
        "1.2.840.113549.1.1.1" => KeyType::RSA,
        "1.2.840.10045.2.1" => KeyType::EC,
        "1.3.101.112" => KeyType::EC_EDWARDS,
        other => {
            return Err(Failure::new(
                Kind::Failed,
                format!("unsupported key algorithm {other}"),
            ))
        }
    };
    let (transport, value) = transport_key(&token)?;
    let mut wrapped = vec![0u8; contents.private_key.len() + 16];
    let wrapped_len = kek(&value)?
        .wrap_with_padding(&contents.private_key, &mut wrapped)
        .map_err(|_| Failure::new(Kind::Failed, "wrapping the key failed"))?
        .len();
    wrapped.truncate(wrapped_len);
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Label(nickname.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
        Attribute::Sign(true),
    ];
    if key_type == KeyType::RSA {
        template.extend([Attribute::Decrypt(true), Attribute::Unwrap(true)]);
    }
    if key_type == KeyType::EC {
        template.push(Attribute::Derive(true));
    }
    token
        .session
        .unwrap_key(&Mechanism::AesKeyWrapPad, transport, &wrapped, &template)
        .map_err(|e| p11_failure("storing the private key", e))?;
    let _ = token.session.destroy_object(transport);

    let der_of = |name: &x509_cert::name::Name| name.to_der().unwrap_or_default();
    let store_cert = |der: &[u8], label: &str, id: Option<&[u8]>| -> Outcome<()> {
        let c = x509_cert::Certificate::from_der(der)
            .map_err(|e| Failure::new(Kind::Failed, format!("bad certificate in the file: {e}")))?;
        if !token
            .find(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Value(der.to_vec()),
            ])?
            .is_empty()
        {
            return Ok(());
        }
        let tbs = c.tbs_certificate();
        let mut template = vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(der_of(tbs.subject())),
            Attribute::Issuer(der_of(tbs.issuer())),
            Attribute::SerialNumber(tbs.serial_number().to_der().unwrap_or_default()),
            Attribute::Value(der.to_vec()),
        ];
        if let Some(id) = id {
            template.push(Attribute::Id(id.to_vec()));
        }
        token
            .session
            .create_object(&template)
            .map(|_| ())
            .map_err(|e| p11_failure("storing a certificate", e))
    };
    store_cert(&contents.certificate, &nickname, Some(&id))?;
    for (i, ca) in contents.chain.iter().enumerate() {
        let label = x509_cert::Certificate::from_der(ca)
            .ok()
            .and_then(|c| common_name(&c))
            .unwrap_or_else(|| format!("{nickname} CA {}", i + 1));
        store_cert(ca, &label, None)?;
    }
    Ok(nickname)
}

/// `export`: a certificate and its private key as a PKCS#12 file.
pub fn export_p12(
    target: &Target,
    nickname: &str,
    out: &Path,
    password: &PasswordSource,
    p12_password: &PasswordSource,
    iterations: u32,
) -> Outcome<()> {
    // Only a session object is made: a read-only session will do.
    let token = Token::open(target, false)?;
    token.login(password)?;
    let certs = token.find(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::Label(nickname.as_bytes().to_vec()),
    ])?;
    let cert = *certs.first().ok_or_else(|| {
        Failure::new(
            Kind::NotFound,
            format!("no certificate with nickname {nickname:?}"),
        )
    })?;
    let (mut id, mut value) = (Vec::new(), Vec::new());
    for a in token.attributes(cert, &[AttributeType::Id, AttributeType::Value])? {
        match a {
            Attribute::Id(v) => id = v,
            Attribute::Value(v) => value = v,
            _ => {}
        }
    }
    let chain = issuer_chain(&token, cert)?;
    let key = token
        .find(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id),
        ])?
        .first()
        .copied()
        .ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                format!("{nickname:?} has no private key in the database"),
            )
        })?;
    let (transport, kek_value) = transport_key(&token)?;
    let pkcs8 = wrap_out(&token, transport, &kek_value, key);
    let _ = token.session.destroy_object(transport);
    let pkcs8 = pkcs8?;
    let p12_pw = p12_password.read_new("Password for the PKCS#12 file")?;
    let progress = crate::progress::spinner("encrypting the PKCS#12 file");
    let file = crate::pkcs12::build(&pkcs8, &value, &chain, nickname, &p12_pw, iterations)?;
    progress.finish_and_clear();
    registry::write_atomically(out, &file, None)
}

/// What following a certificate's issuer needs of it.
struct ChainLink {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    value: Vec<u8>,
    label: Option<String>,
}

fn chain_link(token: &Token, cert: ObjectHandle) -> Outcome<ChainLink> {
    let mut link = ChainLink {
        subject: Vec::new(),
        issuer: Vec::new(),
        value: Vec::new(),
        label: None,
    };
    let types = [
        AttributeType::Subject,
        AttributeType::Issuer,
        AttributeType::Value,
        AttributeType::Label,
    ];
    for a in token.attributes(cert, &types)? {
        match a {
            Attribute::Subject(v) => link.subject = v,
            Attribute::Issuer(v) => link.issuer = v,
            Attribute::Value(v) => link.value = v,
            Attribute::Label(v) => link.label = Some(String::from_utf8_lossy(&v).into_owned()),
            _ => {}
        }
    }
    Ok(link)
}

/// The certificates that issued `cert` and their issuers, as far as the
/// token holds them (pk12util puts the chain in an export too): each with
/// its nickname, up to the self-signed root, at most 8.
fn issuer_chain(token: &Token, cert: ObjectHandle) -> Outcome<Vec<(Vec<u8>, Option<String>)>> {
    let mut link = chain_link(token, cert)?;
    let mut chain: Vec<(Vec<u8>, Option<String>)> = Vec::new();
    while link.subject != link.issuer && chain.len() < 8 {
        let found = token.find(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Subject(link.issuer.clone()),
        ])?;
        let Some(&next) = found.first() else {
            break;
        };
        link = chain_link(token, next)?;
        if chain.iter().any(|(v, _)| *v == link.value) {
            break;
        }
        chain.push((link.value.clone(), link.label.clone()));
    }
    Ok(chain)
}

/// The database opened by the library itself (for what no C API call does),
/// logged in with `password` when it has one.
fn admin_database(
    target: &Target,
    read_only: bool,
    password: Option<&PasswordSource>,
) -> Outcome<softoken::admin::Database> {
    let params = module_params(target, read_only)?;
    let db = open_admin_database(params.as_deref())?;
    if let Some(password) = password.filter(|_| db.login_required()) {
        login_admin_database(&db, password, "Password for the database")?;
    }
    Ok(db)
}

fn open_admin_database(params: Option<&str>) -> Outcome<softoken::admin::Database> {
    use softoken::admin::{Database, OpenError};
    Database::open(params).map_err(|e| match e {
        OpenError::BadLocation(rv) => {
            Failure::new(Kind::Failed, format!("bad database location: {rv:?}"))
        }
        OpenError::NoToken => Failure::new(Kind::Failed, "no database token configured"),
        OpenError::NoKeyDatabase { dir, file } => {
            Failure::new(Kind::NotFound, format!("{} holds no {file}", dir.display()))
        }
        OpenError::Open(rv) => match cryptoki::error::Rv::from(rv.code()) {
            cryptoki::error::Rv::Error(rv) => {
                crate::library::rv_failure("cannot open the database", rv)
            }
            cryptoki::error::Rv::Ok => Failure::new(Kind::Failed, "cannot open the database"),
        },
    })
}

fn login_admin_database(
    db: &softoken::admin::Database,
    password: &PasswordSource,
    prompt: &str,
) -> Outcome<()> {
    use softoken::admin::Rv;
    let pw = password.read(prompt)?;
    db.login(pw.as_bytes()).map_err(|e| match e {
        Rv::PinIncorrect => Failure::new(Kind::WrongPassword, format!("{prompt}: wrong password")),
        Rv::PinLocked => Failure::new(
            Kind::WrongPassword,
            "the password is locked after too many wrong ones: `softoken-modutil pin-policy --unlock`",
        ),
        other => Failure::new(Kind::Failed, format!("login failed: {other:?}")),
    })
}

/// What `merge` reads from.
pub enum MergeSource {
    /// A database directory (`sql:DIR`, `dbm:DIR`, or a `sql:` directory of
    /// legacy files), its files' prefix and its password.
    Database {
        dbdir: String,
        prefix: String,
        password: PasswordSource,
    },
    /// The token of another PKCS#11 module (by label, else its first),
    /// and its PIN.
    Module {
        libfile: PathBuf,
        token: Option<String>,
        pin: PasswordSource,
    },
}

/// `merge`: every object of the source merged into the target by NSS's
/// rules, as certutil --merge does, by the library itself: what the target
/// has already is not added again (a second run changes nothing), a
/// certificate whose nickname another one holds is renamed, trust is
/// reconciled. The source is only read. A source database's private
/// objects need its password (from its file, else the terminal; without
/// either they are left out and reported); another module's token is
/// logged in with its PIN, and its keys that cannot be wrapped out are
/// left there and reported.
pub fn merge(target: &Target, password: &PasswordSource, source: &MergeSource) -> Outcome<Value> {
    require_database(target)?;
    let write_failure = |e| match e {
        softoken::admin::Rv::TokenWriteProtected => {
            Failure::new(Kind::ReadOnly, "the target database cannot be written")
        }
        other => Failure::new(Kind::Failed, format!("the merge failed: {other:?}")),
    };
    let bar = crate::progress::bar("merging objects");
    let mut show = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let (named, report, mut left) = match source {
        MergeSource::Database {
            dbdir,
            prefix,
            password: source_password,
        } => {
            let (_, dir) = database_dir(dbdir)?;
            if !dir.is_dir() {
                return Err(Failure::new(
                    Kind::NotFound,
                    format!("{} is not a directory", dir.display()),
                ));
            }
            let from = open_admin_database(Some(&database_params(dbdir, prefix, true)?))?;
            if from.login_required()
                && (source_password.file.is_some() || std::io::stdin().is_terminal())
            {
                login_admin_database(&from, source_password, "Password of the source database")?;
            }
            let into = admin_database(target, false, Some(password))?;
            let report = into.merge_from(&from, &mut show).map_err(write_failure)?;
            let left: Vec<Value> = report
                .skipped
                .iter()
                .map(|(h, rv)| {
                    let why = match rv {
                        softoken::admin::Rv::UserNotLoggedIn => {
                            "private: give the source's password (--source-password-file)"
                        }
                        _ => "it fails its integrity check in the source (`softoken-modutil check` there)",
                    };
                    json!({
                        "label": from.describe(*h).unwrap_or_else(|| format!("object 0x{h:08x}")),
                        "why": why,
                    })
                })
                .collect();
            (dir.display().to_string(), report, left)
        }
        MergeSource::Module {
            libfile,
            token,
            pin,
        } => {
            let source_target = Target {
                libfile: libfile.clone(),
                dbdir: None,
                token: token.clone(),
                params: None,
            };
            let from = Token::load(&source_target, false, true)?;
            if from.login_required {
                let pin = pin.read("PIN of the source token")?;
                from.session
                    .login(UserType::User, Some(&AuthPin::from(pin.as_str())))
                    .map_err(|e| p11_failure("the source token's PIN was refused", e))?;
            }
            let read = crate::foreign::read(&from, &mut show)?;
            let into = admin_database(target, false, Some(password))?;
            let report = into
                .merge_foreign(read.objects, &mut show)
                .map_err(write_failure)?;
            let mut left = read.left;
            for (i, rv) in &report.skipped {
                let name = read.names.get(*i as usize).cloned().unwrap_or_default();
                left.push(json!({
                    "label": name,
                    "why": format!("this database does not take it as it is ({rv:?})"),
                }));
            }
            (libfile.display().to_string(), report, left)
        }
    };
    bar.finish_and_clear();
    left.sort_by_key(|v| v["label"].as_str().unwrap_or_default().to_owned());
    let c = report.counts;
    Ok(json!({
        "source": named,
        "added": c.added,
        "updated": c.updated,
        "unchanged": c.unchanged,
        "renamed": c.renamed,
        "skipped": left,
    }))
}

/// `pin-policy`: shows the database's PIN-guessing policy and count, and
/// sets it (after login) or unlocks a locked PIN (no login: it is locked).
pub fn pin_policy(
    target: &Target,
    password: &PasswordSource,
    set: Option<softoken::admin::PinPolicy>,
    unlock: bool,
) -> Outcome<Value> {
    fn failed(what: &'static str) -> impl Fn(softoken::admin::Rv) -> Failure {
        move |e| Failure::new(Kind::Failed, format!("{what}: {e:?}"))
    }
    // Reading or unlocking needs no password; setting is for the owner.
    let db = admin_database(target, false, set.is_some().then_some(password))?;
    if unlock {
        db.clear_pin_failures()
            .map_err(failed("unlocking failed"))?;
    }
    if let Some(policy) = set {
        db.set_pin_policy(policy)
            .map_err(failed("setting the policy failed"))?;
    }
    let (policy, failures) = db
        .pin_policy()
        .map_err(failed("reading the policy failed"))?;
    Ok(json!({
        "delay_ms": policy.delay_ms,
        "lockout": policy.lockout,
        "user_failures": failures.user,
        "so_failures": failures.so,
    }))
}

/// An attribute's name: NSS's own, else PKCS#11's, else its number.
fn attribute_name(t: u64) -> String {
    if let Some(name) = softoken::nss::attribute_name(t as std::ffi::c_ulong) {
        return name.to_owned();
    }
    match AttributeType::try_from(t as std::ffi::c_ulong) {
        Ok(AttributeType::VendorDefined(_)) | Err(_) => format!("0x{t:x}"),
        Ok(a) => a.to_string(),
    }
}

/// `check`: every private value decrypted and every integrity record
/// verified, by the library itself (this is no C API call).
pub fn check(target: &Target, password: &PasswordSource) -> Outcome<Value> {
    let db = admin_database(target, true, Some(password))?;
    let bar = crate::progress::bar("checking objects");
    let report = db
        .check(&mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(|e| Failure::new(Kind::Failed, format!("the check failed: {e:?}")))?;
    bar.finish_and_clear();
    let failures: Vec<Value> = report
        .failures
        .iter()
        .map(|(h, t, rv)| {
            json!({
                "object": format!("0x{h:08x}"),
                "label": db.describe(*h),
                "attribute": format!("0x{t:x}"),
                "attribute_name": attribute_name(*t),
                "error": format!("{rv:?}"),
            })
        })
        .collect();
    Ok(json!({
        "decrypted": report.decrypted,
        "verified": report.verified,
        "failures": failures,
        "orphaned_records": report.orphaned_records,
        "ok": report.failures.is_empty() && report.orphaned_records.is_empty(),
    }))
}
