//! NSS's module registry, `pkcs11.txt`: one stanza of `key=value` lines per
//! module, stanzas separated by blank lines. Stanzas this tool does not
//! change are written back byte for byte, unknown keys included; the file is
//! replaced atomically under a lock on its directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Failure, Kind, Outcome};
use crate::firefox;

pub const FILE_NAME: &str = "pkcs11.txt";
pub const INTERNAL_NAME: &str = "NSS Internal PKCS #11 Module";

/// Slot flags in the order NSS writes them, with the names modutil's
/// `-mechanisms` uses for them.
const SLOT_FLAGS: &[(&str, &str)] = &[
    ("RSA", "RSA"),
    ("DSA", "DSA"),
    ("RC4", "RC4"),
    ("RC2", "RC2"),
    ("DES", "DES"),
    ("DH", "DH"),
    ("FORTEZZA", "FORTEZZA"),
    ("RC5", "RC5"),
    ("SHA1", "SHA1"),
    ("MD5", "MD5"),
    ("MD2", "MD2"),
    ("SSL", "SSL"),
    ("TLS", "TLS"),
    ("AES", "AES"),
    ("SHA256", "SHA256"),
    ("SHA512", "SHA512"),
    ("Camellia", "CAMELLIA"),
    ("SEED", "SEED"),
    ("ECC", "ECC"),
    ("PublicCerts", "FRIENDLY"),
    ("Disable", "DISABLE"),
    ("RANDOM", "RANDOM"),
];

/// The slot flag that marks a slot the user disabled.
pub const DISABLE_FLAG: &str = "Disable";

/// Turns modutil's colon-separated mechanism list (`RSA:AES:FRIENDLY`) into
/// slot flag names; `Disable` is not a mechanism.
pub fn mechanism_flags(list: &str) -> Outcome<Vec<&'static str>> {
    let mut flags = Vec::new();
    for name in list.split(':').map(str::trim).filter(|n| !n.is_empty()) {
        let flag = SLOT_FLAGS
            .iter()
            .find(|(flag, alias)| {
                *flag != DISABLE_FLAG
                    && (alias.eq_ignore_ascii_case(name) || flag.eq_ignore_ascii_case(name))
            })
            .map(|(flag, _)| *flag)
            .ok_or_else(|| {
                let known: Vec<&str> = SLOT_FLAGS
                    .iter()
                    .filter(|(f, _)| *f != DISABLE_FLAG)
                    .map(|(_, alias)| *alias)
                    .collect();
                Failure::new(
                    Kind::Failed,
                    format!("unknown mechanism {name:?}; known: {}", known.join(":")),
                )
            })?;
        if !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    Ok(flags)
}

// ---- NSS's argument strings ----

/// The closing character of a quoted or bracketed value.
fn closer(open: char) -> Option<char> {
    match open {
        '"' => Some('"'),
        '\'' => Some('\''),
        '{' => Some('}'),
        '(' => Some(')'),
        '[' => Some(']'),
        '<' => Some('>'),
        _ => None,
    }
}

/// One `key=value` of an argument string, the value as written (quotes and
/// brackets kept), `None` for a bare word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub key: String,
    pub value: Option<String>,
}

/// Splits NSS's space-separated `key=value` list; values may be quoted or
/// bracketed (nested brackets of one kind, `\` escaping).
pub fn split_args(s: &str) -> Vec<Arg> {
    let chars: Vec<char> = s.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        if i >= chars.len() || chars[i] != '=' {
            args.push(Arg { key, value: None });
            continue;
        }
        i += 1;
        let vstart = i;
        if let Some(close) = chars.get(i).copied().and_then(closer) {
            let open = chars[i];
            let mut depth = 1usize;
            i += 1;
            while i < chars.len() && depth > 0 {
                let c = chars[i];
                if c == '\\' {
                    i += 2;
                    continue;
                }
                // For quotes open == close, so the first test wins.
                if c == close {
                    depth -= 1;
                } else if c == open {
                    depth += 1;
                }
                i += 1;
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
        }
        let value: String = chars[vstart..i.min(chars.len())].iter().collect();
        args.push(Arg {
            key,
            value: Some(value),
        });
    }
    args
}

/// A value without its outer quotes or brackets (escapes undone).
pub fn unquote(value: &str) -> String {
    let mut chars = value.chars();
    let inner = match (chars.next(), value.chars().last()) {
        (Some(open), Some(last)) if value.len() >= 2 && closer(open) == Some(last) => {
            &value[open.len_utf8()..value.len() - last.len_utf8()]
        }
        _ => value,
    };
    let mut out = String::new();
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// Quotes a value with `'`, escaping what needs it.
pub fn quote(value: &str) -> String {
    let mut out = String::from("'");
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn join_args(args: &[Arg]) -> String {
    args.iter()
        .map(|a| match &a.value {
            Some(v) => format!("{}={v}", a.key),
            None => a.key.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One slot's entry in `slotParams`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotParams {
    pub slot_id: u64,
    pub flags: Vec<String>,
    /// `askpw`, `timeout`, `rootFlags` and anything else, as written.
    pub other: Vec<Arg>,
}

fn parse_slot_id(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_slot_params(value: &str) -> Vec<SlotParams> {
    split_args(&unquote(value))
        .into_iter()
        .filter_map(|slot| {
            let slot_id = parse_slot_id(&slot.key)?;
            let mut flags = Vec::new();
            let mut other = Vec::new();
            for arg in split_args(&unquote(slot.value.as_deref().unwrap_or(""))) {
                if arg.key.eq_ignore_ascii_case("slotFlags") {
                    flags = unquote(arg.value.as_deref().unwrap_or(""))
                        .split(',')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .map(str::to_string)
                        .collect();
                } else {
                    other.push(arg);
                }
            }
            Some(SlotParams {
                slot_id,
                flags,
                other,
            })
        })
        .collect()
}

/// `slotParams` as NSS 3.87 writes it: `{0x00000002=[slotFlags=RSA,AES ] }`.
fn format_slot_params(slots: &[SlotParams]) -> String {
    let mut out = String::from("{");
    for slot in slots {
        let mut flags: Vec<&String> = slot.flags.iter().collect();
        flags.sort_by_key(|f| {
            SLOT_FLAGS
                .iter()
                .position(|(known, _)| known.eq_ignore_ascii_case(f))
                .unwrap_or(usize::MAX)
        });
        out.push_str(&format!("0x{:08x}=[", slot.slot_id));
        if !flags.is_empty() {
            let names: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
            out.push_str(&format!("slotFlags={} ", names.join(",")));
        }
        for arg in &slot.other {
            out.push_str(&join_args(std::slice::from_ref(arg)));
            out.push(' ');
        }
        out.push_str("] ");
    }
    out.push('}');
    out
}

/// The parsed `NSS=` line of a stanza.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NssArgs(Vec<Arg>);

impl NssArgs {
    pub fn parse(s: &str) -> NssArgs {
        NssArgs(split_args(s))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|a| a.key.eq_ignore_ascii_case(key))
            .and_then(|a| a.value.as_deref())
    }

    /// The `Flags=` list (internal, critical, FIPS, moduleDB, ...).
    pub fn flags(&self) -> Vec<String> {
        self.get("Flags")
            .map(|v| {
                unquote(v)
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags().iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    pub fn slot_params(&self) -> Vec<SlotParams> {
        self.get("slotParams")
            .map(parse_slot_params)
            .unwrap_or_default()
    }

    /// Replaces `slotParams`, dropping it when no slot says anything.
    pub fn set_slot_params(&mut self, slots: &[SlotParams]) {
        let slots: Vec<SlotParams> = slots
            .iter()
            .filter(|s| !s.flags.is_empty() || !s.other.is_empty())
            .cloned()
            .collect();
        let value = (!slots.is_empty()).then(|| format_slot_params(&slots));
        let at = self
            .0
            .iter()
            .position(|a| a.key.eq_ignore_ascii_case("slotParams"));
        match (at, value) {
            (Some(i), Some(v)) => self.0[i].value = Some(v),
            (Some(i), None) => {
                self.0.remove(i);
            }
            (None, Some(v)) => self.0.push(Arg {
                key: "slotParams".into(),
                value: Some(v),
            }),
            (None, None) => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn render(&self) -> String {
        join_args(&self.0)
    }
}

// ---- the file ----

/// One module's stanza, its lines as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stanza {
    lines: Vec<String>,
}

impl Stanza {
    /// A new module entry, in the key order NSS writes.
    pub fn new(name: &str, library: &str, parameters: Option<&str>) -> Stanza {
        let mut lines = vec![format!("library={library}"), format!("name={name}")];
        if let Some(p) = parameters.filter(|p| !p.is_empty()) {
            lines.push(format!("parameters={p}"));
        }
        Stanza { lines }
    }

    fn key_of(line: &str) -> Option<&str> {
        if line.trim_start().starts_with('#') {
            return None;
        }
        line.split_once('=').map(|(k, _)| k.trim())
    }

    /// The value of `key` (keys compare without case, as NSS's do); values
    /// run to the end of the line.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| {
            Stanza::key_of(l)
                .filter(|k| k.eq_ignore_ascii_case(key))
                .map(|_| l.split_once('=').map_or("", |(_, v)| v))
        })
    }

    pub fn set(&mut self, key: &str, value: &str) {
        let line = format!("{key}={value}");
        match self
            .lines
            .iter()
            .position(|l| Stanza::key_of(l).is_some_and(|k| k.eq_ignore_ascii_case(key)))
        {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.lines
            .retain(|l| !Stanza::key_of(l).is_some_and(|k| k.eq_ignore_ascii_case(key)));
    }

    pub fn name(&self) -> &str {
        self.get("name").unwrap_or("").trim_end()
    }

    pub fn library(&self) -> &str {
        self.get("library").unwrap_or("").trim_end()
    }

    pub fn parameters(&self) -> &str {
        self.get("parameters").unwrap_or("").trim_end()
    }

    pub fn nss(&self) -> NssArgs {
        NssArgs::parse(self.get("NSS").unwrap_or(""))
    }

    pub fn set_nss(&mut self, nss: &NssArgs) {
        if nss.is_empty() {
            self.remove("NSS");
        } else {
            self.set("NSS", &nss.render());
        }
    }

    pub fn is_internal(&self) -> bool {
        self.nss().has_flag("internal")
    }

    /// Adds and removes slot flags on the given slots (every slot the
    /// stanza names, plus `slot_ids`).
    pub fn change_slot_flags(&mut self, slot_ids: &[u64], add: &[&str], remove: &[&str]) {
        let mut nss = self.nss();
        let mut slots = nss.slot_params();
        for &id in slot_ids {
            if !slots.iter().any(|s| s.slot_id == id) {
                slots.push(SlotParams {
                    slot_id: id,
                    flags: Vec::new(),
                    other: Vec::new(),
                });
            }
        }
        for slot in slots.iter_mut().filter(|s| slot_ids.contains(&s.slot_id)) {
            slot.flags
                .retain(|f| !remove.iter().any(|r| r.eq_ignore_ascii_case(f)));
            for flag in add {
                if !slot.flags.iter().any(|f| f.eq_ignore_ascii_case(flag)) {
                    slot.flags.push(flag.to_string());
                }
            }
        }
        nss.set_slot_params(&slots);
        self.set_nss(&nss);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    /// A blank line, or a comment outside a stanza.
    Other(String),
    Stanza(Stanza),
}

/// The whole of a `pkcs11.txt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    items: Vec<Item>,
    crlf: bool,
}

impl Registry {
    pub fn parse(text: &str) -> Registry {
        let crlf = text.contains("\r\n");
        let mut items = Vec::new();
        let mut current: Option<Stanza> = None;
        for line in text.lines() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let blank = line.trim().is_empty();
            let comment = line.trim_start().starts_with('#');
            if blank {
                if let Some(s) = current.take() {
                    items.push(Item::Stanza(s));
                }
                items.push(Item::Other(line.to_string()));
            } else if let Some(s) = current.as_mut() {
                s.lines.push(line.to_string());
            } else if comment {
                items.push(Item::Other(line.to_string()));
            } else {
                current = Some(Stanza {
                    lines: vec![line.to_string()],
                });
            }
        }
        if let Some(s) = current {
            items.push(Item::Stanza(s));
        }
        Registry { items, crlf }
    }

    pub fn render(&self) -> String {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Other(line) => {
                    out.push_str(line);
                    out.push_str(eol);
                }
                Item::Stanza(s) => {
                    for line in &s.lines {
                        out.push_str(line);
                        out.push_str(eol);
                    }
                }
            }
        }
        out
    }

    /// What NSS writes for a new database: the internal module alone.
    pub fn new_database(dir: &Path) -> Registry {
        let dir = dir.to_string_lossy();
        let text = format!(
            "library=\nname={INTERNAL_NAME}\nparameters=configdir={} certPrefix='' keyPrefix='' \
             secmod='secmod.db' flags= updatedir='' updateCertPrefix='' updateKeyPrefix='' \
             updateid='' updateTokenDescription='' \nNSS=Flags=internal,critical trustOrder=75 \
             cipherOrder=100 slotParams=(1={{slotFlags=[ECC,RSA,DSA,DH,RC2,RC4,DES,RANDOM,SHA1,\
             MD5,MD2,SSL,TLS,AES,Camellia,SEED,SHA256,SHA512] askpw=any timeout=30}})\n\n",
            quote(&format!("sql:{dir}"))
        );
        Registry::parse(&text)
    }

    pub fn modules(&self) -> impl Iterator<Item = &Stanza> {
        self.items.iter().filter_map(|i| match i {
            Item::Stanza(s) => Some(s),
            Item::Other(_) => None,
        })
    }

    pub fn find(&self, name: &str) -> Option<&Stanza> {
        self.modules().find(|s| s.name() == name)
    }

    pub fn find_mut(&mut self, name: &str) -> Outcome<&mut Stanza> {
        self.items
            .iter_mut()
            .find_map(|i| match i {
                Item::Stanza(s) if s.name() == name => Some(s),
                _ => None,
            })
            .ok_or_else(|| Failure::new(Kind::NotFound, format!("no module named {name:?}")))
    }

    pub fn add(&mut self, stanza: Stanza) -> Outcome<()> {
        if self.find(stanza.name()).is_some() {
            return Err(Failure::new(
                Kind::Exists,
                format!("a module named {:?} is already registered", stanza.name()),
            ));
        }
        if !self.items.is_empty()
            && !matches!(self.items.last(), Some(Item::Other(l)) if l.trim().is_empty())
        {
            self.items.push(Item::Other(String::new()));
        }
        self.items.push(Item::Stanza(stanza));
        self.items.push(Item::Other(String::new()));
        Ok(())
    }

    /// Removes a module and the blank line after it; the internal module
    /// stays (NSS would only put it back).
    pub fn remove(&mut self, name: &str) -> Outcome<Stanza> {
        let i = self
            .items
            .iter()
            .position(|i| matches!(i, Item::Stanza(s) if s.name() == name))
            .ok_or_else(|| Failure::new(Kind::NotFound, format!("no module named {name:?}")))?;
        if let Item::Stanza(s) = &self.items[i] {
            if s.is_internal() {
                return Err(Failure::new(
                    Kind::Failed,
                    format!("{name:?} is NSS's internal module and cannot be deleted"),
                ));
            }
        }
        let Item::Stanza(removed) = self.items.remove(i) else {
            unreachable!("position matched a stanza")
        };
        if matches!(self.items.get(i), Some(Item::Other(l)) if l.trim().is_empty()) {
            self.items.remove(i);
        }
        Ok(removed)
    }
}

// ---- reading and writing the file, safely ----

/// The registry file of a database directory (`sql:` prefix allowed).
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// A database directory given as NSS gives them: `sql:DIR`, `dbm:DIR` or
/// `DIR`.
pub fn strip_prefix(dir: &str) -> (Option<&str>, PathBuf) {
    for prefix in ["sql:", "dbm:", "extern:", "rdb:"] {
        if let Some(rest) = dir.strip_prefix(prefix) {
            return (Some(&prefix[..prefix.len() - 1]), PathBuf::from(rest));
        }
    }
    (None, PathBuf::from(dir))
}

pub fn load(dir: &Path) -> Outcome<Registry> {
    let path = path_in(dir);
    match fs::read(&path) {
        Ok(bytes) => Ok(Registry::parse(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(
            Kind::NotFound,
            format!(
                "{} does not exist: {} is not an NSS database directory \
                 (make one with `softoken-modutil create --dbdir {}`)",
                path.display(),
                dir.display(),
                dir.display()
            ),
        )),
        Err(e) => Err(Failure::io("read", &path, e)),
    }
}

/// Refuses to write into a Firefox profile that Firefox has open, unless
/// forced: Firefox rewrites pkcs11.txt from its own memory when it exits.
pub fn refuse_if_in_use(dir: &Path, force: bool) -> Outcome<()> {
    if let Some(pid) = firefox::profile_in_use(dir) {
        if !force {
            return Err(Failure::new(
                Kind::InUse,
                format!(
                    "{} is a Firefox profile in use (Firefox process {pid}); \
                     close Firefox first, or pass --force",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads, changes and writes the registry with the directory locked against
/// another writer of this tool; the new file replaces the old one by
/// rename, so readers (NSS included) see the old file or the new, never a
/// part. `create` makes the file when it does not exist.
pub fn update<T>(
    dir: &Path,
    force: bool,
    create: bool,
    change: impl FnOnce(&mut Registry) -> Outcome<T>,
) -> Outcome<T> {
    refuse_if_in_use(dir, force)?;
    let dir_handle = fs::File::open(dir).map_err(|e| Failure::io("open", dir, e))?;
    dir_handle.lock().map_err(|e| Failure::io("lock", dir, e))?;
    let path = path_in(dir);
    let mut registry = match load(dir) {
        Ok(r) => r,
        Err(f) if f.kind == Kind::NotFound && create => Registry::new_database(dir),
        Err(f) => return Err(f),
    };
    let before = registry.clone();
    let result = change(&mut registry)?;
    if registry != before || !path.exists() {
        write_atomically(&path, registry.render().as_bytes(), None)?;
    }
    Ok(result)
}

/// Writes `bytes` to a temporary file beside `path`, flushes it and renames
/// it over `path`: readers see the old file or the new, never a part. The
/// file gets `mode`, else the old file's permissions, else 0600.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> Outcome<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mode = mode.unwrap_or_else(|| {
        fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o600)
    });
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Failure::io("write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NSS_387: &str = "library=\nname=NSS Internal PKCS #11 Module\nparameters=configdir='sql:/tmp/mu' certPrefix='' keyPrefix='' secmod='' flags= updatedir='' updateCertPrefix='' updateKeyPrefix='' updateid='' updateTokenDescription='' \nNSS=Flags=internal,critical trustOrder=75 cipherOrder=100 slotParams=(1={slotFlags=[ECC,RSA,DSA,DH,RC2,RC4,DES,RANDOM,SHA1,MD5,MD2,SSL,TLS,AES,Camellia,SEED,SHA256,SHA512] askpw=any timeout=30})\n\nlibrary=/work/lib.so\nname=softoken\nNSS=slotParams={0x00000002=[slotFlags=RSA,AES ] }  \n\n";

    #[test]
    fn unchanged_files_are_written_back_byte_for_byte() {
        for text in [
            NSS_387,
            "# comment\r\nlibrary=\r\nname=x\r\nx-unknown=1\r\n\r\n",
        ] {
            assert_eq!(Registry::parse(text).render(), text);
        }
    }

    #[test]
    fn both_slot_param_syntaxes_parse() {
        let r = Registry::parse(NSS_387);
        let internal = r.find(INTERNAL_NAME).unwrap();
        assert!(internal.is_internal());
        let slots = internal.nss().slot_params();
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].slot_id, 1);
        assert_eq!(slots[0].flags.len(), 18);
        assert_eq!(slots[0].other.len(), 2);
        let migrated = NssArgs::parse("trustOrder=75 cipherOrder=100 slotParams={0x00000001=[slotFlags=RSA,RC4 askpw=any timeout=30 ] }  Flags=internal,critical");
        assert!(migrated.has_flag("critical"));
        assert_eq!(migrated.slot_params()[0].flags, ["RSA", "RC4"]);
        assert_eq!(migrated.slot_params()[0].slot_id, 1);
    }

    #[test]
    fn slot_flags_are_written_as_nss_writes_them() {
        let mut r = Registry::parse(NSS_387);
        let s = r.find_mut("softoken").unwrap();
        s.change_slot_flags(&[2], &["RANDOM", "SHA256"], &["RSA"]);
        assert_eq!(
            s.get("NSS"),
            Some("slotParams={0x00000002=[slotFlags=AES,SHA256,RANDOM ] }")
        );
        s.change_slot_flags(&[2], &[DISABLE_FLAG], &[]);
        assert_eq!(
            s.get("NSS"),
            Some("slotParams={0x00000002=[slotFlags=AES,SHA256,Disable,RANDOM ] }")
        );
        s.change_slot_flags(&[2], &[], &["AES", "SHA256", "Disable", "RANDOM"]);
        assert_eq!(s.get("NSS"), None);
        // The internal module's line was not touched.
        assert!(r.render().contains("slotParams=(1={slotFlags=[ECC,RSA,DSA"));
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        update(dir.path(), false, true, |_| Ok(())).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let name = format!("m{w}-{i}");
                        update(&dir, false, false, |r| {
                            r.add(Stanza::new(&name, "/x.so", None))
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let r = load(dir.path()).unwrap();
        assert_eq!(r.modules().count(), 41);
    }

    #[test]
    fn add_and_remove_keep_the_rest() {
        let mut r = Registry::parse(NSS_387);
        r.add(Stanza::new("two", "/lib/two.so", Some("a='b c'")))
            .unwrap();
        assert_eq!(
            r.add(Stanza::new("two", "/x", None)).unwrap_err().kind,
            Kind::Exists
        );
        let text = r.render();
        assert!(text.starts_with(NSS_387));
        assert!(text.ends_with("library=/lib/two.so\nname=two\nparameters=a='b c'\n\n"));
        r.remove("two").unwrap();
        assert_eq!(r.render(), NSS_387);
        assert_eq!(r.remove(INTERNAL_NAME).unwrap_err().kind, Kind::Failed);
        assert_eq!(r.remove("absent").unwrap_err().kind, Kind::NotFound);
    }

    #[test]
    fn mechanism_names_map_to_slot_flags() {
        assert_eq!(
            mechanism_flags("rsa:FRIENDLY:camellia").unwrap(),
            ["RSA", "PublicCerts", "Camellia"]
        );
        assert!(mechanism_flags("RSA:NOPE").is_err());
        assert!(mechanism_flags("DISABLE").is_err());
    }

    #[test]
    fn argument_strings_split_on_quotes_and_brackets() {
        let args = split_args("configdir='sql:/a b' x=\"q\\\"r\" t=<0x4=[a='1' b=2] 0x5=[c]> bare");
        let keys: Vec<&str> = args.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["configdir", "x", "t", "bare"]);
        assert_eq!(unquote(args[0].value.as_deref().unwrap()), "sql:/a b");
        assert_eq!(unquote(args[1].value.as_deref().unwrap()), "q\"r");
        assert_eq!(args[2].value.as_deref(), Some("<0x4=[a='1' b=2] 0x5=[c]>"));
        assert_eq!(args[3].value, None);
        assert_eq!(unquote(&quote("it's")), "it's");
    }
}
