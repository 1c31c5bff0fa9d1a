//! The commands on a database directory's `pkcs11.txt`: add, delete,
//! list, and the slot flags (enable, disable, default, undefault).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Cli, Report, SlotArgs};
use crate::error::{Failure, Kind, Outcome};
use crate::{library, registry};

pub fn registry_dir(cli: &Cli) -> Outcome<PathBuf> {
    let given = cli.dbdir.as_deref().ok_or_else(|| {
        Failure::new(
            Kind::Usage,
            "this command needs --dbdir DIR (the NSS database directory)",
        )
    })?;
    let (prefix, dir) = registry::strip_prefix(given);
    if prefix == Some("dbm") {
        return Err(Failure::new(
            Kind::Failed,
            "dbm: databases keep modules in secmod.db; this tool writes pkcs11.txt (sql:)",
        ));
    }
    if !dir.is_dir() {
        return Err(Failure::new(
            Kind::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    std::path::absolute(&dir).map_err(|e| Failure::io("resolve", &dir, e))
}

/// The slot ids a slot option means for a module: the one named, or every
/// slot the module has (loading it, as NSS's modutil does).
fn slot_ids(stanza: &registry::Stanza, slot: &SlotArgs) -> Outcome<Vec<u64>> {
    if let Some(id) = slot.slot.as_deref().and_then(|s| {
        s.strip_prefix("0x")
            .map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
    }) {
        return Ok(vec![id]);
    }
    if stanza.is_internal() {
        let named: Vec<u64> = stanza
            .nss()
            .slot_params()
            .iter()
            .map(|s| s.slot_id)
            .collect();
        return Ok(if named.is_empty() { vec![1, 2] } else { named });
    }
    let module = library::load(Path::new(stanza.library()), Some(stanza.parameters()))?;
    let slots = module.slots()?;
    let mut ids = Vec::new();
    for s in slots {
        let info = module
            .pkcs11
            .get_slot_info(s)
            .map_err(|e| library::p11_failure("C_GetSlotInfo", e))?;
        if slot
            .slot
            .as_deref()
            .is_none_or(|want| info.slot_description().trim_end() == want)
        {
            ids.push(s.id());
        }
    }
    if ids.is_empty() {
        return Err(Failure::new(
            Kind::NotFound,
            match &slot.slot {
                Some(want) => format!("module {:?} has no slot {want:?}", stanza.name()),
                None => format!("module {:?} has no slots", stanza.name()),
            },
        ));
    }
    Ok(ids)
}

fn change_slots(
    cli: &Cli,
    name: &str,
    slot: &SlotArgs,
    add: &[&str],
    remove: &[&str],
) -> Outcome<Vec<u64>> {
    let dir = registry_dir(cli)?;
    let current = registry::load(&dir)?;
    let stanza = current
        .find(name)
        .ok_or_else(|| Failure::new(Kind::NotFound, format!("no module named {name:?}")))?;
    let ids = slot_ids(stanza, slot)?;
    registry::update(&dir, cli.force, false, |r| {
        r.find_mut(name)?.change_slot_flags(&ids, add, remove);
        Ok(())
    })?;
    Ok(ids)
}

fn module_json(stanza: &registry::Stanza) -> Value {
    let nss = stanza.nss();
    let slots: Vec<Value> = nss
        .slot_params()
        .iter()
        .map(|s| {
            json!({
                "slot_id": s.slot_id,
                "flags": s.flags,
                "disabled": s.flags.iter().any(|f| f == registry::DISABLE_FLAG),
            })
        })
        .collect();
    json!({
        "name": stanza.name(),
        "library": stanza.library(),
        "parameters": stanza.parameters(),
        "internal": stanza.is_internal(),
        "flags": nss.flags(),
        "slots": slots,
    })
}

/// A module as `list` shows it to people.
fn module_text(i: usize, m: &Value) -> String {
    let mut out = Vec::new();
    let flags: Vec<String> = m["flags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" ({})", flags.join(", "))
    };
    out.push(format!(
        "{:3}. {}{flags}",
        i + 1,
        m["name"].as_str().unwrap_or("")
    ));
    let lib = m["library"].as_str().unwrap_or("");
    out.push(format!(
        "\tlibrary: {}",
        if lib.is_empty() {
            "(NSS's built-in softoken)"
        } else {
            lib
        }
    ));
    if let Some(p) = m["parameters"].as_str().filter(|p| !p.is_empty()) {
        out.push(format!("\tparameters: {p}"));
    }
    for s in m["slots"].as_array().into_iter().flatten() {
        out.push(format!(
            "\tslot 0x{:08x}: {}{}",
            s["slot_id"].as_u64().unwrap_or(0),
            s["flags"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default(),
            if s["disabled"] == json!(true) {
                "  [disabled]"
            } else {
                ""
            }
        ));
    }
    if let Some(status) = m.get("status").and_then(Value::as_str) {
        out.push(format!("\tstatus: {status}"));
    }
    out.join("\n")
}

pub fn add(
    cli: &Cli,
    name: &str,
    libfile: &Path,
    params: Option<&str>,
    mechanisms: Option<&str>,
) -> Outcome<Report> {
    let dir = registry_dir(cli)?;
    let flags = mechanisms
        .map(registry::mechanism_flags)
        .transpose()?
        .unwrap_or_default();
    let lib = std::path::absolute(libfile).map_err(|e| Failure::io("resolve", libfile, e))?;
    // NSS's modutil also loads a module before adding it.
    let module = library::load(&lib, params)?;
    let slots: Vec<u64> = module.slots()?.iter().map(|s| s.id()).collect();
    drop(module);
    let mut stanza = registry::Stanza::new(name, &lib.to_string_lossy(), params);
    if !flags.is_empty() {
        stanza.change_slot_flags(&slots, &flags, &[]);
    }
    registry::update(&dir, cli.force, false, |r| r.add(stanza))?;
    Ok(Report::new(
        format!("Module {name:?} added to {}", dir.display()),
        json!({"added": name}),
    ))
}

pub fn delete(cli: &Cli, name: &str) -> Outcome<Report> {
    let dir = registry_dir(cli)?;
    registry::update(&dir, cli.force, false, |r| r.remove(name))?;
    Ok(Report::new(
        format!("Module {name:?} deleted"),
        json!({"deleted": name}),
    ))
}

pub fn list(cli: &Cli, name: Option<&str>, check: bool) -> Outcome<Report> {
    let dir = registry_dir(cli)?;
    let r = registry::load(&dir)?;
    let mut modules = Vec::new();
    for stanza in r.modules() {
        if name.is_some_and(|n| n != stanza.name()) {
            continue;
        }
        let mut m = module_json(stanza);
        if check && !stanza.library().is_empty() {
            m["status"] = json!(match library::load(
                Path::new(stanza.library()),
                Some(stanza.parameters())
            ) {
                Ok(module) => format!("loads, {} slot(s)", module.slots().map_or(0, |s| s.len())),
                Err(f) => format!("does not load: {f}"),
            });
        }
        modules.push(m);
    }
    if let Some(n) = name {
        if modules.is_empty() {
            return Err(Failure::new(
                Kind::NotFound,
                format!("no module named {n:?}"),
            ));
        }
    }
    let mut text = vec![format!(
        "PKCS #11 modules in {}:",
        registry::path_in(&dir).display()
    )];
    text.extend(modules.iter().enumerate().map(|(i, m)| module_text(i, m)));
    Ok(Report::new(text.join("\n"), Value::Array(modules)))
}

pub fn enable(cli: &Cli, name: &str, slot: &SlotArgs) -> Outcome<Report> {
    let ids = change_slots(cli, name, slot, &[], &[registry::DISABLE_FLAG])?;
    Ok(Report::new(
        format!("Module {name:?}: {} slot(s) enabled", ids.len()),
        json!({"enabled": ids}),
    ))
}

pub fn disable(cli: &Cli, name: &str, slot: &SlotArgs) -> Outcome<Report> {
    let ids = change_slots(cli, name, slot, &[registry::DISABLE_FLAG], &[])?;
    Ok(Report::new(
        format!("Module {name:?}: {} slot(s) disabled", ids.len()),
        json!({"disabled": ids}),
    ))
}

pub fn default(cli: &Cli, name: &str, mechanisms: &str, slot: &SlotArgs) -> Outcome<Report> {
    let flags = registry::mechanism_flags(mechanisms)?;
    change_slots(cli, name, slot, &flags, &[])?;
    Ok(Report::new(
        format!("Module {name:?} is the default for {mechanisms}"),
        json!({"default": flags}),
    ))
}

pub fn undefault(cli: &Cli, name: &str, mechanisms: &str, slot: &SlotArgs) -> Outcome<Report> {
    let flags = registry::mechanism_flags(mechanisms)?;
    change_slots(cli, name, slot, &[], &flags)?;
    Ok(Report::new(
        format!("Module {name:?} is no longer the default for {mechanisms}"),
        json!({"undefault": flags}),
    ))
}
