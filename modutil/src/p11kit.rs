//! p11-kit's module files: `NAME.module` in the user's or the system's
//! configuration makes the module visible to every p11-kit client
//! (GnuTLS, p11tool, the p11-kit proxy). The parameters go into the module
//! file (`x-init-reserved`) and into the module's configuration file, which
//! clients that pass none read: GnuTLS ignores `x-init-reserved`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Failure, Kind, Outcome};
use crate::registry;

/// Where p11-kit reads system-wide module files that are not packaged.
pub const SYSTEM_DIR: &str = "/etc/pkcs11/modules";

/// Where packaged module files are (p11-kit's own, SoftHSMv2's).
const PACKAGE_DIR: &str = "/usr/share/p11-kit/modules";

/// Where p11-kit looks for a module file's library named without a path.
const MODULE_PATH: &str = "/usr/lib/x86_64-linux-gnu/pkcs11";

/// The first line of a configuration file this tool wrote, which it may
/// therefore replace or remove; any other is the user's own.
const CONFIG_HEADER: &str =
    "# Written by softoken-modutil p11kit-install: the module's parameters \
     for clients that pass none.";

/// The user's module directory: `$XDG_CONFIG_HOME/pkcs11/modules`, else
/// `~/.config/pkcs11/modules`.
pub fn user_dir() -> Outcome<PathBuf> {
    user_config_dir().map(|d| d.join("pkcs11/modules"))
}

fn user_config_dir() -> Outcome<PathBuf> {
    softoken::admin::user_config_dir()
        .ok_or_else(|| Failure::new(Kind::NotFound, "HOME is not set; give --dir"))
}

/// The module's configuration file: the user's, or with `system` the one
/// for every user (`/etc/xdg/softoken/softoken.conf`).
pub fn config_file(system: bool) -> Outcome<PathBuf> {
    let dir = if system {
        let dirs = softoken::admin::system_config_dirs();
        dirs.into_iter()
            .next()
            .ok_or_else(|| Failure::new(Kind::NotFound, "XDG_CONFIG_DIRS names no directory"))?
    } else {
        user_config_dir()?
    };
    Ok(dir.join(softoken::admin::CONFIG_FILE))
}

/// Whether `path` is a configuration file this tool may replace: absent,
/// or written by it.
fn config_is_ours(path: &Path) -> Outcome<bool> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text.starts_with(CONFIG_HEADER)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Failure::io("read", path, e)),
    }
}

/// Before anything is written: a configuration file of the user's own is
/// never replaced.
pub fn check_config(path: &Path, params: Option<&str>) -> Outcome<()> {
    if params.is_some_and(|p| !p.is_empty()) && !config_is_ours(path)? {
        return Err(Failure::new(
            Kind::Exists,
            format!(
                "{} is not one softoken-modutil wrote: put the parameters there yourself, \
                 or move it away and install again",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Writes the parameters into the configuration file, or with none
/// removes the file this tool wrote (a file of the user's own stays).
/// Returns what it did to the file, if anything.
pub fn set_config(path: &Path, params: Option<&str>) -> Outcome<Option<&'static str>> {
    match params.filter(|p| !p.is_empty()) {
        Some(p) => {
            check_config(path, Some(p))?;
            let dir = path.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir).map_err(|e| Failure::io("create", dir, e))?;
            let text = format!("{CONFIG_HEADER}\n{p}\n");
            registry::write_atomically(path, text.as_bytes(), Some(0o644))?;
            Ok(Some("Wrote"))
        }
        None => remove_config(path),
    }
}

/// Removes the configuration file if this tool wrote it.
pub fn remove_config(path: &Path) -> Outcome<Option<&'static str>> {
    if !path.exists() || !config_is_ours(path)? {
        return Ok(None);
    }
    fs::remove_file(path).map_err(|e| Failure::io("remove", path, e))?;
    Ok(Some("Removed"))
}

/// Other module files, in the directories p11-kit reads, that name the
/// same library as `ours`: p11-kit loads a library once and uses one of
/// them, silently.
pub fn same_library_files(ours: &Path, library: &Path) -> Vec<PathBuf> {
    let wanted = fs::canonicalize(library).unwrap_or_else(|_| library.to_path_buf());
    let dirs = [
        user_dir().ok(),
        Some(PathBuf::from(SYSTEM_DIR)),
        Some(PathBuf::from(PACKAGE_DIR)),
        ours.parent().map(Path::to_path_buf),
    ];
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in dirs.into_iter().flatten() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "module")
                || path == ours
                || found.contains(&path)
            {
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let named = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("module:"))
                .map(|m| PathBuf::from(m.trim()));
            let Some(named) = named else {
                continue;
            };
            let named = if named.is_absolute() {
                named
            } else {
                Path::new(MODULE_PATH).join(named)
            };
            if fs::canonicalize(&named).unwrap_or(named) == wanted {
                found.push(path);
            }
        }
    }
    found
}

/// Whether this process runs as root, whose user configuration p11-kit
/// ignores.
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A module name usable as a file name.
pub fn check_name(name: &str) -> Outcome<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            Kind::Failed,
            format!("{name:?} cannot name a p11-kit module file (use letters, digits, - _ .)"),
        ))
    }
}

/// The module file's text. `params` reach the module's C_Initialize as
/// NSS's parameter string does (p11-kit's `x-init-reserved`).
pub fn module_file(library: &Path, params: Option<&str>) -> String {
    let mut text = format!(
        "# Written by softoken-modutil; remove with `softoken-modutil p11kit-remove`.\nmodule: {}\n",
        library.display()
    );
    if let Some(p) = params.filter(|p| !p.is_empty()) {
        text.push_str(&format!("x-init-reserved: {p}\n"));
    }
    text
}

pub fn install(dir: &Path, name: &str, library: &Path, params: Option<&str>) -> Outcome<PathBuf> {
    check_name(name)?;
    fs::create_dir_all(dir).map_err(|e| Failure::io("create", dir, e))?;
    let path = dir.join(format!("{name}.module"));
    registry::write_atomically(&path, module_file(library, params).as_bytes(), Some(0o644))?;
    Ok(path)
}

pub fn remove(dir: &Path, name: &str) -> Outcome<PathBuf> {
    check_name(name)?;
    let path = dir.join(format!("{name}.module"));
    fs::remove_file(&path).map_err(|e| Failure::io("remove", &path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_files_are_written_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("pkcs11/modules");
        let path = install(
            &modules,
            "softoken",
            Path::new("/lib/s.so"),
            Some("configdir='sql:/d'"),
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\nmodule: /lib/s.so\n"), "{text}");
        assert!(
            text.contains("\nx-init-reserved: configdir='sql:/d'\n"),
            "{text}"
        );
        remove(&modules, "softoken").unwrap();
        assert!(!path.exists());
        assert_eq!(
            remove(&modules, "softoken").unwrap_err().kind,
            Kind::NotFound
        );
        assert!(install(&modules, "../evil", Path::new("/x"), None).is_err());
    }
}
