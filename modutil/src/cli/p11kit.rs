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
    let config = p11kit::config_file(system)?;
    p11kit::check_config(&config, params)?;
    let path = p11kit::install(&dir, &lib.name, &libfile, params)?;
    let config_done = p11kit::set_config(&config, params)?;
    if !system && dir_is_users(&dir) && p11kit::running_as_root() {
        eprintln!(
            "softoken-modutil: note: p11-kit ignores the user configuration of root; \
             use --system for root's programs"
        );
    }
    let same = p11kit::same_library_files(&path, &libfile);
    for other in &same {
        eprintln!(
            "softoken-modutil: warning: {} names the same library; p11-kit loads a library \
             once and uses only one of the two files (and its parameters): remove one",
            other.display()
        );
    }
    let mut text = format!("Wrote {}", path.display());
    if let Some(done) = config_done {
        text.push_str(&format!(
            "\n{done} {} (for clients that pass no parameters, such as GnuTLS)",
            config.display()
        ));
    }
    Ok(Report::new(
        text,
        json!({
            "module_file": path,
            "config_file": config_done.map(|_| &config),
            "same_library": same,
        }),
    ))
}

pub fn remove(name: &str, system: bool, dir: Option<&Path>) -> Outcome<Report> {
    let dir = p11kit_dir(system, dir)?;
    let path = p11kit::remove(&dir, name)?;
    let config = p11kit::config_file(system)?;
    let removed_config = p11kit::remove_config(&config)?.is_some();
    let mut text = format!("Removed {}", path.display());
    if removed_config {
        text.push_str(&format!("\nRemoved {}", config.display()));
    }
    Ok(Report::new(
        text,
        json!({"removed": path, "config_file_removed": removed_config.then_some(&config)}),
    ))
}
