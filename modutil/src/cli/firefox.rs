//! The commands on Firefox: registering the module in profiles, and the
//! enterprise policy that loads it for every profile.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{library_path, Cli, LibraryChoice, Report};
use crate::error::{Failure, Kind, Outcome};
use crate::{firefox, registry};

fn firefox_profiles(given: &[PathBuf], firefox_dir: Option<&Path>) -> Outcome<Vec<PathBuf>> {
    if !given.is_empty() {
        for p in given {
            if !p.is_dir() {
                return Err(Failure::new(
                    Kind::NotFound,
                    format!("profile {} is not a directory", p.display()),
                ));
            }
        }
        return given
            .iter()
            .map(|p| std::path::absolute(p).map_err(|e| Failure::io("resolve", p, e)))
            .collect();
    }
    let dirs = match firefox_dir {
        Some(d) => vec![d.to_path_buf()],
        None => firefox::default_firefox_dirs()?,
    };
    let mut profiles = Vec::new();
    for dir in &dirs {
        profiles.extend(firefox::profiles(dir)?);
    }
    for p in &profiles {
        if !p.is_dir() {
            return Err(Failure::new(
                Kind::NotFound,
                format!(
                    "profiles.ini lists {}, which is not a directory",
                    p.display()
                ),
            ));
        }
    }
    Ok(profiles)
}

pub fn register(
    cli: &Cli,
    lib: &LibraryChoice,
    params: Option<&str>,
    profile: &[PathBuf],
    firefox_dir: Option<&Path>,
) -> Outcome<Report> {
    let libfile = library_path(lib.libfile.as_deref())?;
    let profiles = firefox_profiles(profile, firefox_dir)?;
    // Check every profile first, so none is half done.
    for p in &profiles {
        registry::refuse_if_in_use(p, cli.force)?;
    }
    let mut text = Vec::new();
    for p in &profiles {
        registry::update(p, cli.force, true, |r| {
            if r.find(&lib.name).is_some() {
                r.remove(&lib.name)?;
            }
            r.add(registry::Stanza::new(
                &lib.name,
                &libfile.to_string_lossy(),
                params,
            ))
        })?;
        text.push(format!("Registered {:?} in {}", lib.name, p.display()));
    }
    Ok(Report::new(
        text.join("\n"),
        json!({"registered": profiles}),
    ))
}

pub fn unregister(
    cli: &Cli,
    name: &str,
    profile: &[PathBuf],
    firefox_dir: Option<&Path>,
) -> Outcome<Report> {
    let profiles = firefox_profiles(profile, firefox_dir)?;
    for p in &profiles {
        registry::refuse_if_in_use(p, cli.force)?;
    }
    let mut removed = Vec::new();
    let mut text = Vec::new();
    for p in &profiles {
        let present = registry::load(p).is_ok_and(|r| r.find(name).is_some());
        if present {
            registry::update(p, cli.force, false, |r| r.remove(name).map(|_| ()))?;
            removed.push(p.clone());
            text.push(format!("Removed {name:?} from {}", p.display()));
        }
    }
    if removed.is_empty() {
        return Err(Failure::new(
            Kind::NotFound,
            format!("no profile has a module named {name:?}"),
        ));
    }
    Ok(Report::new(
        text.join("\n"),
        json!({"unregistered": removed}),
    ))
}

pub fn policy(
    lib: &LibraryChoice,
    install: bool,
    remove: bool,
    policies_file: &Path,
) -> Outcome<Report> {
    if !install && !remove {
        let libfile = library_path(lib.libfile.as_deref())?;
        return Ok(Report::pretty(&firefox::policy(&lib.name, &libfile)));
    }
    let libfile = if install {
        Some(library_path(lib.libfile.as_deref())?)
    } else {
        None
    };
    let existing = match std::fs::read_to_string(policies_file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Failure::io("read", policies_file, e)),
    };
    if remove && existing.is_none() {
        return Err(Failure::new(
            Kind::NotFound,
            format!("{} does not exist", policies_file.display()),
        ));
    }
    let doc = firefox::merge_policy(existing.as_deref(), &lib.name, libfile.as_deref())?;
    let dir = policies_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Failure::io("create", dir, e))?;
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    registry::write_atomically(policies_file, text.as_bytes(), Some(0o644))?;
    Ok(Report::new(
        format!(
            "{} {:?} in {}",
            if install { "Installed" } else { "Removed" },
            lib.name,
            policies_file.display()
        ),
        json!({"policies_file": policies_file}),
    ))
}
