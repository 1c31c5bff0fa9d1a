//! The commands on p11-kit's module files.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{library_path, LibraryChoice, Report};
use crate::error::Outcome;
use crate::p11kit;

fn p11kit_dir(system: bool, dir: Option<&Path>) -> Outcome<PathBuf> {
    match (system, dir) {
        (_, Some(d)) => Ok(d.to_path_buf()),
        (true, None) => Ok(PathBuf::from(p11kit::SYSTEM_DIR)),
        (false, None) => p11kit::user_dir(),
    }
}

fn dir_is_users(dir: &Path) -> bool {
    p11kit::user_dir().is_ok_and(|u| u == dir)
}

pub fn install(
    lib: &LibraryChoice,
    system: bool,
    dir: Option<&Path>,
    params: Option<&str>,
) -> Outcome<Report> {
    let libfile = library_path(lib.libfile.as_deref())?;
    let dir = p11kit_dir(system, dir)?;
    let path = p11kit::install(&dir, &lib.name, &libfile, params)?;
    if !system && dir_is_users(&dir) && p11kit::running_as_root() {
        eprintln!(
            "softoken-modutil: note: p11-kit ignores the user configuration of root; \
             use --system for root's programs"
        );
    }
    Ok(Report::new(
        format!("Wrote {}", path.display()),
        json!({"module_file": path}),
    ))
}

pub fn remove(name: &str, system: bool, dir: Option<&Path>) -> Outcome<Report> {
    let dir = p11kit_dir(system, dir)?;
    let path = p11kit::remove(&dir, name)?;
    Ok(Report::new(
        format!("Removed {}", path.display()),
        json!({"removed": path}),
    ))
}
