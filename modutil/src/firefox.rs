//! Firefox: its profiles (each an NSS database directory with its own
//! `pkcs11.txt`), the lock that says Firefox has one open, and the
//! enterprise policy that adds a PKCS#11 module for every profile.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Failure, Kind, Outcome};

/// Where Debian's firefox-esr reads a system-wide policy.
pub const SYSTEM_POLICIES: &str = "/etc/firefox/policies/policies.json";

/// The process holding a profile open, if one does. A running Firefox keeps
/// a symbolic link `lock` in the profile pointing at `ADDRESS:+PID`; a link
/// left by a Firefox that crashed names a process that is gone.
pub fn profile_in_use(dir: &Path) -> Option<u32> {
    let target = fs::read_link(dir.join("lock")).ok()?;
    let pid: u32 = target.to_str()?.rsplit_once('+')?.1.parse().ok()?;
    Path::new("/proc")
        .join(pid.to_string())
        .exists()
        .then_some(pid)
}

/// Where Firefox keeps the user's profiles.ini, in the order Firefox looks:
/// the XDG location newer releases use (`$XDG_CONFIG_HOME/mozilla/firefox`,
/// else `~/.config/mozilla/firefox`), the classic `~/.mozilla/firefox`,
/// the snap's and the flatpak's.
pub fn firefox_dir_candidates() -> Outcome<Vec<PathBuf>> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Failure::new(Kind::NotFound, "HOME is not set; give --firefox-dir"))?;
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".config"));
    Ok(vec![
        config.join("mozilla/firefox"),
        home.join(".mozilla/firefox"),
        home.join("snap/firefox/common/.mozilla/firefox"),
        home.join(".var/app/org.mozilla.firefox/config/mozilla/firefox"),
        home.join(".var/app/org.mozilla.firefox/.mozilla/firefox"),
    ])
}

/// Every Firefox directory of the user that has a profiles.ini; none is a
/// NotFound that says where Firefox was looked for.
pub fn default_firefox_dirs() -> Outcome<Vec<PathBuf>> {
    let candidates = firefox_dir_candidates()?;
    let found: Vec<PathBuf> = candidates
        .iter()
        .filter(|d| d.join("profiles.ini").is_file())
        .cloned()
        .collect();
    if found.is_empty() {
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        return Err(Failure::new(
            Kind::NotFound,
            format!(
                "no Firefox profiles.ini in {}; start Firefox once, or give --firefox-dir or --profile",
                looked.join(", ")
            ),
        ));
    }
    Ok(found)
}

/// The profile directories `profiles.ini` lists, in its order.
pub fn profiles(firefox_dir: &Path) -> Outcome<Vec<PathBuf>> {
    let ini = firefox_dir.join("profiles.ini");
    let text = fs::read_to_string(&ini).map_err(|e| Failure::io("read", &ini, e))?;
    let mut found = Vec::new();
    let mut in_profile = false;
    let mut path: Option<String> = None;
    let mut relative = true;
    let mut flush = |in_profile: bool, path: &mut Option<String>, relative: bool| {
        if let (true, Some(p)) = (in_profile, path.take()) {
            found.push(if relative {
                firefox_dir.join(p)
            } else {
                PathBuf::from(p)
            });
        }
    };
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            flush(in_profile, &mut path, relative);
            in_profile = line.starts_with("[Profile");
            relative = true;
        } else if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "Path" => path = Some(v.trim().to_string()),
                "IsRelative" => relative = v.trim() != "0",
                _ => {}
            }
        }
    }
    flush(in_profile, &mut path, relative);
    if found.is_empty() {
        return Err(Failure::new(
            Kind::NotFound,
            format!("{} lists no profiles", ini.display()),
        ));
    }
    Ok(found)
}

/// The `SecurityDevices` policy that adds the module under `name`.
pub fn policy(name: &str, library: &Path) -> Value {
    json!({ "policies": { "SecurityDevices": { "Add": { name: library } } } })
}

/// Merges the policy into a `policies.json` (other policies kept), or
/// removes the module from it.
pub fn merge_policy(existing: Option<&str>, name: &str, library: Option<&Path>) -> Outcome<Value> {
    let mut doc: Value = match existing {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text)
            .map_err(|e| Failure::new(Kind::Failed, format!("policies.json is not JSON: {e}")))?,
        _ => json!({}),
    };
    let root = doc
        .as_object_mut()
        .ok_or_else(|| Failure::new(Kind::Failed, "policies.json is not a JSON object"))?;
    let policies = root.entry("policies").or_insert_with(|| json!({}));
    let devices = policies
        .as_object_mut()
        .ok_or_else(|| Failure::new(Kind::Failed, "\"policies\" is not an object"))?
        .entry("SecurityDevices")
        .or_insert_with(|| json!({}));
    let devices = devices
        .as_object_mut()
        .ok_or_else(|| Failure::new(Kind::Failed, "\"SecurityDevices\" is not an object"))?;
    let add = devices.entry("Add").or_insert_with(|| json!({}));
    let add = add
        .as_object_mut()
        .ok_or_else(|| Failure::new(Kind::Failed, "\"SecurityDevices.Add\" is not an object"))?;
    match library {
        Some(lib) => {
            add.insert(name.to_string(), json!(lib));
        }
        None => {
            add.remove(name);
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_ini_lists_relative_and_absolute_profiles() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("profiles.ini"),
            "[Install4F96D1932A9F858E]\nDefault=abc.default-esr\n\n[Profile1]\nName=work\n\
             IsRelative=0\nPath=/srv/work\n\n[Profile0]\nName=default\nIsRelative=1\n\
             Path=abc.default-esr\nDefault=1\n\n[General]\nStartWithLastProfile=1\n",
        )
        .unwrap();
        assert_eq!(
            profiles(dir.path()).unwrap(),
            [
                PathBuf::from("/srv/work"),
                dir.path().join("abc.default-esr")
            ]
        );
        fs::write(dir.path().join("profiles.ini"), "[General]\n").unwrap();
        assert_eq!(profiles(dir.path()).unwrap_err().kind, Kind::NotFound);
    }

    #[test]
    fn a_lock_of_a_live_process_means_in_use() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(profile_in_use(dir.path()), None);
        let me = std::process::id();
        std::os::unix::fs::symlink(format!("127.0.0.1:+{me}"), dir.path().join("lock")).unwrap();
        assert_eq!(profile_in_use(dir.path()), Some(me));
        fs::remove_file(dir.path().join("lock")).unwrap();
        // A crashed Firefox's link names a process that is gone.
        std::os::unix::fs::symlink("127.0.0.1:+4194999", dir.path().join("lock")).unwrap();
        assert_eq!(profile_in_use(dir.path()), None);
    }

    #[test]
    fn policies_are_merged_and_removed() {
        let existing = r#"{"policies": {"DisableTelemetry": true, "SecurityDevices": {"Add": {"other": "/o.so"}}}}"#;
        let merged = merge_policy(Some(existing), "softoken", Some(Path::new("/s.so"))).unwrap();
        assert_eq!(merged["policies"]["DisableTelemetry"], json!(true));
        assert_eq!(
            merged["policies"]["SecurityDevices"]["Add"]["other"],
            json!("/o.so")
        );
        assert_eq!(
            merged["policies"]["SecurityDevices"]["Add"]["softoken"],
            json!("/s.so")
        );
        let removed = merge_policy(Some(&merged.to_string()), "softoken", None).unwrap();
        assert!(removed["policies"]["SecurityDevices"]["Add"]
            .get("softoken")
            .is_none());
        assert!(merge_policy(Some("[1]"), "x", None).is_err());
        assert!(merge_policy(Some("{nope"), "x", None).is_err());
    }
}
