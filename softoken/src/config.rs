//! Configuration: the NSS-style parameter string a client passes in
//! `CK_C_INITIALIZE_ARGS.pReserved` (what NSS passes from `pkcs11.txt`);
//! without one, the configuration file (the same keys), so that clients
//! that pass nothing (pkcs11-tool, GnuTLS, which ignores p11-kit's
//! `x-init-reserved`) open the same database. The database directory: the
//! parameter string's `configdir`, else the `SOFTOKEN_CONFIGDIR`
//! environment variable, else the file's `configdir`, else a default.

use std::path::{Path, PathBuf};

use crate::rv::{Result, Rv};
use crate::storage::backends::BACKENDS;

/// The environment variable naming the database for clients that pass no
/// parameters (pkcs11-tool, p11-kit).
pub const CONFIGDIR_ENV: &str = "SOFTOKEN_CONFIGDIR";

/// The configuration file under each XDG configuration directory.
pub const CONFIG_FILE: &str = "softoken/softoken.conf";
/// A configuration file longer than this is not one.
const CONFIG_FILE_MAX: u64 = 64 * 1024;

/// The default token label: softoken's own, so that no client confuses the
/// token with NSS's built-in "NSS Certificate DB" (tokenDescription= or
/// C_InitToken gives another).
pub const DEFAULT_TOKEN_LABEL: &str = "softoken";
/// The default slot description (NSS's, as NSS tools show for a database).
pub const DEFAULT_SLOT_DESCRIPTION: &str = "NSS User Private Key and Certificate Services";
pub const DEFAULT_MANUFACTURER: &str = "softoken";
pub const DEFAULT_LIBRARY_DESCRIPTION: &str = "softoken PKCS#11 soft token";

/// One database token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    /// The slot id the token's slot gets.
    pub slot_id: u64,
    /// The storage backend the configdir prefix chose.
    pub backend: &'static sdb::Backend,
    pub dir: PathBuf,
    /// Whether a missing `dir` is made: only for the default location. A
    /// named one that does not exist is a typo or a disk not mounted, and
    /// a new empty token there would hide the user's keys.
    pub create_dir: bool,
    pub cert_prefix: String,
    pub key_prefix: String,
    pub read_only: bool,
    /// Ask for login even when the password is empty.
    pub password_required: bool,
    pub min_pin_len: usize,
    /// A label given in the parameters; the label kept in the database wins
    /// over the default, this wins over both.
    pub token_description: Option<String>,
    pub slot_description: String,
    /// An application's legacy database to merge into this one once
    /// (NSS's Mode 3: updatedir and updateid).
    pub update: Option<UpdateFrom>,
}

/// NSS's merge source (`updatedir`, `updateCertPrefix`, `updateKeyPrefix`,
/// `updateid`, `updateTokenDescription`), and what to do when its
/// password is never given (`updateNoSourcePassword`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateFrom {
    pub dir: PathBuf,
    pub cert_prefix: String,
    pub key_prefix: String,
    /// Marks the merge done (metadata rows `upd_key_ID` / `upd_cert_ID`).
    pub id: String,
    /// The token label while the source's password is wanted.
    pub token_description: Option<String>,
    pub without_password: WithoutSourcePassword,
}

/// The NSS shared-database design's choices for a merge whose source
/// password is not supplied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithoutSourcePassword {
    /// Wait for it (NSS's behaviour): nothing is merged until a C_Login
    /// gives it, and each open asks again (`wait`, the default).
    Wait,
    /// Merge certificates, trust, CRLs and S/MIME records without asking,
    /// leaving the source's private keys behind (`public`).
    PublicOnly,
    /// Mark the source merged without merging anything (`skip`).
    Skip,
}

/// The whole module configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub manufacturer_id: String,
    pub library_description: String,
    /// The first is the main database token; further ones come from NSS's
    /// `tokens=` parameter.
    pub tokens: Vec<TokenConfig>,
}

/// The slot id of the main database token (NSS's id for its database slot).
pub const MAIN_SLOT_ID: u64 = 2;

/// Splits an NSS parameter string into (name, value) pairs. Values may be
/// quoted with '…', "…", {…}, (…), […] or <…>; a backslash escapes the next
/// character. Unterminated quotes take the rest of the string.
pub fn parse_pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            let close = match chars.peek() {
                Some('\'') => Some('\''),
                Some('"') => Some('"'),
                Some('{') => Some('}'),
                Some('(') => Some(')'),
                Some('[') => Some(']'),
                Some('<') => Some('>'),
                _ => None,
            };
            if let Some(close) = close {
                let open = chars.next();
                let mut depth = 0usize;
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                        continue;
                    }
                    if Some(c) == open && open != Some(close) {
                        depth += 1;
                    } else if c == close {
                        if depth == 0 {
                            break;
                        }
                        depth -= 1;
                    }
                    value.push(c);
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    chars.next();
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                        continue;
                    }
                    value.push(c);
                }
            }
        }
        out.push((name, value));
    }
    out
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn has_flag(flags: &str, flag: &str) -> bool {
    flags
        .split(',')
        .any(|f| f.trim().eq_ignore_ascii_case(flag))
}

/// Splits `PREFIX:DIR` where the prefix names a backend (`sql:`, `dbm:`,
/// NSS's `extern:`), or takes a plain `DIR`, whose backend comes from
/// `NSS_DEFAULT_DB_TYPE`, else sql as in NSS since 3.35.
pub fn parse_location(s: &str) -> Result<(&'static sdb::Backend, PathBuf)> {
    let (backend, dir) = match s.split_once(':') {
        // A word before the colon is a database type, which must be one we
        // have: `postgres:…` or a misspelt `sqll:` must not become a
        // directory of that name. (A directory whose name has a colon is
        // written `./a:b` or with its full path.)
        Some((prefix, dir))
            if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            let backend = BACKENDS.find(prefix).ok_or_else(|| {
                crate::log::line(format_args!(
                    "configdir {s:?}: no database type {prefix:?} here (known: {})",
                    BACKENDS.prefixes().join(", ")
                ));
                Rv::ArgumentsBad
            })?;
            (backend, dir)
        }
        _ => {
            let backend = std::env::var("NSS_DEFAULT_DB_TYPE")
                .ok()
                .and_then(|t| BACKENDS.find(&t))
                .unwrap_or(BACKENDS.default);
            (backend, s)
        }
    };
    if dir.is_empty() {
        return Err(Rv::ArgumentsBad);
    }
    Ok((backend, PathBuf::from(dir)))
}

/// The default database directory: `$XDG_DATA_HOME/softoken`, else
/// `~/.local/share/softoken`.
pub fn default_dir() -> Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        let xdg = PathBuf::from(xdg);
        if xdg.is_absolute() {
            return Ok(xdg.join("softoken"));
        }
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or(Rv::FunctionFailed)?;
    Ok(Path::new(&home).join(".local/share/softoken"))
}

fn token_from_pairs(
    pairs: &[(String, String)],
    slot_id: u64,
    location: (&'static sdb::Backend, PathBuf),
) -> Result<TokenConfig> {
    let flags = get(pairs, "flags").unwrap_or("");
    let min_pin_len = match get(pairs, "minPWLen") {
        Some(v) if !v.is_empty() => v.parse().map_err(|_| Rv::ArgumentsBad)?,
        _ => 0,
    };
    let description = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| get(pairs, n))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let update = match (get(pairs, "updatedir"), get(pairs, "updateid")) {
        (Some(dir), Some(id)) if !dir.is_empty() && !id.is_empty() => Some(UpdateFrom {
            // NSS reads the legacy files there; a `dbm:` prefix says so.
            dir: PathBuf::from(dir.strip_prefix("dbm:").unwrap_or(dir)),
            cert_prefix: get(pairs, "updateCertPrefix").unwrap_or("").to_owned(),
            key_prefix: get(pairs, "updateKeyPrefix").unwrap_or("").to_owned(),
            id: id.to_owned(),
            token_description: description(&["updateTokenDescription"]),
            without_password: match get(pairs, "updateNoSourcePassword").unwrap_or("wait") {
                "" | "wait" => WithoutSourcePassword::Wait,
                "public" => WithoutSourcePassword::PublicOnly,
                "skip" => WithoutSourcePassword::Skip,
                other => {
                    crate::log::line(format_args!(
                        "updateNoSourcePassword={other:?}: wait, public or skip"
                    ));
                    return Err(Rv::ArgumentsBad);
                }
            },
        }),
        _ => None,
    };
    Ok(TokenConfig {
        slot_id,
        backend: location.0,
        dir: location.1,
        create_dir: false,
        cert_prefix: get(pairs, "certPrefix").unwrap_or("").to_owned(),
        key_prefix: get(pairs, "keyPrefix").unwrap_or("").to_owned(),
        read_only: has_flag(flags, "readOnly"),
        password_required: has_flag(flags, "passwordRequired"),
        min_pin_len,
        token_description: description(&["tokenDescription", "dbTokenDescription"]),
        slot_description: description(&["slotDescription", "dbSlotDescription"])
            .unwrap_or_else(|| DEFAULT_SLOT_DESCRIPTION.to_owned()),
        update,
    })
}

/// The user's configuration directory: `$XDG_CONFIG_HOME`, else
/// `~/.config` (p11-kit's module files live there too).
pub fn user_config_dir() -> Option<PathBuf> {
    let absolute = |dir: PathBuf| Some(dir).filter(|d| d.is_absolute());
    std::env::var_os("XDG_CONFIG_HOME")
        .and_then(|d| absolute(d.into()))
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(|h| absolute(h.into()))
                .map(|h| h.join(".config"))
        })
}

/// The system's configuration directories: `$XDG_CONFIG_DIRS`, else
/// `/etc/xdg`.
pub fn system_config_dirs() -> Vec<PathBuf> {
    let dirs = std::env::var("XDG_CONFIG_DIRS")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/etc/xdg".to_owned());
    dirs.split(':')
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .collect()
}

/// Where the configuration file is looked for, the first found being
/// used: the user's configuration directory, then each of the system's,
/// each with [`CONFIG_FILE`] appended.
fn config_files() -> Vec<PathBuf> {
    user_config_dir()
        .into_iter()
        .chain(system_config_dirs())
        .map(|d| d.join(CONFIG_FILE))
        .collect()
}

/// The first configuration file there is, as a parameter string: its lines
/// joined, each holding `name=value` pairs as the parameter string does,
/// `#` starting a comment line. One that exists and cannot be read is an
/// error, not a reason to open the default database instead; one in a
/// directory this user may not search is none of this user's.
fn config_file_parameters() -> Result<Option<(PathBuf, String)>> {
    for path in config_files() {
        let refuse = |why: &dyn std::fmt::Display| {
            crate::log::line(format_args!("configuration file {}: {why}", path.display()));
            Rv::FunctionFailed
        };
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // A directory this user may not search (another user's HOME,
            // inherited through sudo) hides no file of this user's.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                crate::log::line(format_args!(
                    "configuration file {}: passed over ({e})",
                    path.display()
                ));
                continue;
            }
            Err(e) => return Err(refuse(&e)),
        };
        if !meta.is_file() || meta.len() > CONFIG_FILE_MAX {
            return Err(refuse(&format_args!(
                "not a file of at most {CONFIG_FILE_MAX} bytes"
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| refuse(&e))?;
        let params = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        return Ok(Some((path, params)));
    }
    Ok(None)
}

impl Config {
    /// Builds the configuration from the parameter string (None or empty
    /// when the client passed none: then the configuration file's) and the
    /// environment.
    pub fn from_parameters(params: Option<&str>) -> Result<Config> {
        match params.filter(|p| !p.trim().is_empty()) {
            Some(params) => {
                let pairs = parse_pairs(params);
                crate::log::configure(get(&pairs, "log"));
                Config::from_pairs(&pairs, false)
            }
            None => match config_file_parameters()? {
                Some((path, params)) => {
                    let pairs = parse_pairs(&params);
                    crate::log::configure(get(&pairs, "log"));
                    Config::from_pairs(&pairs, true).inspect_err(|_| {
                        crate::log::line(format_args!(
                            "configuration file {}: refused (see above)",
                            path.display()
                        ))
                    })
                }
                None => Config::from_pairs(&[], false),
            },
        }
    }

    /// `from_file`: the pairs are the configuration file's, whose
    /// `configdir` gives way to `SOFTOKEN_CONFIGDIR` (a parameter string's
    /// does not).
    fn from_pairs(pairs: &[(String, String)], from_file: bool) -> Result<Config> {
        let given = get(pairs, "configdir")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let env = std::env::var(CONFIGDIR_ENV).ok().filter(|v| !v.is_empty());
        let chosen = if from_file {
            env.or(given)
        } else {
            given.or(env)
        };
        let named = chosen.as_deref().map(parse_location).transpose()?;
        let default = named.is_none();
        let location = match named {
            Some(location) => location,
            None => (BACKENDS.default, default_dir()?),
        };
        let mut main = token_from_pairs(pairs, MAIN_SLOT_ID, location)?;
        main.create_dir = default;
        let mut tokens = vec![main];
        if let Some(extra) = get(pairs, "tokens") {
            for (slot, spec) in parse_pairs(extra) {
                let slot_id = parse_slot_id(&slot)?;
                if tokens.iter().any(|t| t.slot_id == slot_id) {
                    return Err(Rv::ArgumentsBad);
                }
                let token_pairs = parse_pairs(&spec);
                let dir = get(&token_pairs, "configdir")
                    .filter(|v| !v.is_empty())
                    .ok_or(Rv::ArgumentsBad)?;
                tokens.push(token_from_pairs(
                    &token_pairs,
                    slot_id,
                    parse_location(dir)?,
                )?);
            }
        }
        let text = |name: &str, default: &str| {
            get(pairs, name)
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
                .to_owned()
        };
        Ok(Config {
            manufacturer_id: text("manufacturerID", DEFAULT_MANUFACTURER),
            library_description: text("libraryDescription", DEFAULT_LIBRARY_DESCRIPTION),
            tokens,
        })
    }
}

fn parse_slot_id(s: &str) -> Result<u64> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| Rv::ArgumentsBad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nss_merge_parameters_in_both_forms() {
        let main = Config::from_parameters(Some(
            "configdir='sql:/shared' updatedir='dbm:/home/u/.app' updateCertPrefix='a-' \
             updateKeyPrefix='b-' updateID='app-1' updateTokenDescription='App Token' \
             updateNoSourcePassword=public",
        ))
        .unwrap();
        let u = main.tokens[0].update.clone().unwrap();
        assert_eq!(u.dir, PathBuf::from("/home/u/.app"));
        assert_eq!(
            (u.cert_prefix.as_str(), u.key_prefix.as_str()),
            ("a-", "b-")
        );
        assert_eq!(u.id, "app-1");
        assert_eq!(u.token_description.as_deref(), Some("App Token"));
        assert_eq!(u.without_password, WithoutSourcePassword::PublicOnly);
        let extra = Config::from_parameters(Some(
            "configdir='sql:/a' tokens=<0x4=[configdir='sql:/b' updatedir='/c' updateid='x']>",
        ))
        .unwrap();
        assert!(extra.tokens[0].update.is_none());
        let u = extra.tokens[1].update.clone().unwrap();
        assert_eq!((u.dir, u.id), (PathBuf::from("/c"), "x".to_owned()));
        assert_eq!(u.without_password, WithoutSourcePassword::Wait);
        // Without an id there is nothing to mark the merge done by.
        let no_id = Config::from_parameters(Some("configdir='sql:/a' updatedir='/c'")).unwrap();
        assert!(no_id.tokens[0].update.is_none());
    }

    #[test]
    fn parses_nss_parameter_string() {
        let s = "configdir='sql:/tmp/a b' certPrefix='' keyPrefix='x-' secmod='secmod.db' \
                 flags=readOnly,passwordRequired updatedir='' tokenDescription=\"My Token\"";
        let c = Config::from_parameters(Some(s)).unwrap();
        let t = &c.tokens[0];
        assert_eq!(t.dir, PathBuf::from("/tmp/a b"));
        assert_eq!(t.backend.prefix, "sql");
        assert_eq!(t.key_prefix, "x-");
        assert!(t.read_only && t.password_required);
        assert_eq!(t.token_description.as_deref(), Some("My Token"));
        assert_eq!(t.slot_id, MAIN_SLOT_ID);
    }

    #[test]
    fn parses_extra_tokens_and_nested_quotes() {
        let s = "configdir=dbm:/a tokens=<0x4=[configdir='sql:/b' tokenDescription='B (two)' \
                 flags=readOnly] 5=[configdir=/c]>";
        let c = Config::from_parameters(Some(s)).unwrap();
        assert_eq!(c.tokens.len(), 3);
        assert_eq!(c.tokens[0].backend.prefix, "dbm");
        assert_eq!(c.tokens[1].slot_id, 4);
        assert_eq!(c.tokens[1].dir, PathBuf::from("/b"));
        assert_eq!(c.tokens[1].token_description.as_deref(), Some("B (two)"));
        assert!(c.tokens[1].read_only);
        assert_eq!(c.tokens[2].slot_id, 5);
    }

    #[test]
    fn escapes_and_case_insensitive_names() {
        let pairs = parse_pairs(r"ConfigDir='/x\'y' a=b\ c");
        assert_eq!(get(&pairs, "configdir"), Some("/x'y"));
        assert_eq!(get(&pairs, "A"), Some("b c"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(
            Config::from_parameters(Some("configdir=sql: minPWLen=x")).unwrap_err(),
            Rv::ArgumentsBad
        );
        assert_eq!(
            Config::from_parameters(Some("configdir=/a tokens=<zz=[configdir=/b]>")).unwrap_err(),
            Rv::ArgumentsBad
        );
        assert_eq!(
            Config::from_parameters(Some("configdir=/a minPWLen=nope")).unwrap_err(),
            Rv::ArgumentsBad
        );
    }
}
