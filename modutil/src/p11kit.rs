//! p11-kit's module files: `NAME.module` in the user's or the system's
//! configuration makes the module visible to every p11-kit client
//! (GnuTLS, p11tool, the p11-kit proxy).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Failure, Kind, Outcome};
use crate::registry;

/// Where p11-kit reads system-wide module files that are not packaged.
pub const SYSTEM_DIR: &str = "/etc/pkcs11/modules";

/// The user's module directory: `$XDG_CONFIG_HOME/pkcs11/modules`, else
/// `~/.config/pkcs11/modules`.
pub fn user_dir() -> Outcome<PathBuf> {
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(config).join("pkcs11/modules"));
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".config/pkcs11/modules"))
        .ok_or_else(|| Failure::new(Kind::NotFound, "HOME is not set; give --dir"))
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
