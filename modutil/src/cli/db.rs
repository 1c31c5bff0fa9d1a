//! The commands on a token's database, through the module's C API (and
//! `check` through softoken's admin facade).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{password, target, Cli, ModuleArgs, PasswordArgs, Report};
use crate::db::{self, PasswordSource};
use crate::error::{Failure, Kind, Outcome};

pub fn create(
    cli: &Cli,
    module: &ModuleArgs,
    pw: &PasswordArgs,
    empty_password: bool,
) -> Outcome<Report> {
    let t = target(cli, module)?;
    let source = password(pw);
    let dir = db::create(&t, (!empty_password).then_some(&source), cli.force)?;
    Ok(Report::new(
        format!("Database created in {}", dir.display()),
        json!({"created": dir}),
    ))
}

pub fn tokens(cli: &Cli, module: &ModuleArgs) -> Outcome<Report> {
    let list = db::tokens(&target(cli, module)?)?;
    let text: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "slot 0x{:x} {:?}: token {:?} ({}){}{}",
                t["slot_id"].as_u64().unwrap_or(0),
                t["slot"].as_str().unwrap_or(""),
                t["label"].as_str().unwrap_or(""),
                t["manufacturer"].as_str().unwrap_or(""),
                if t["login_required"] == json!(true) {
                    ", password set"
                } else {
                    ", no password"
                },
                t["database"]
                    .as_str()
                    .map(|d| format!(", database {d}"))
                    .unwrap_or_default(),
            )
        })
        .collect();
    Ok(Report::new(text.join("\n"), list))
}

pub fn passwd(
    cli: &Cli,
    module: &ModuleArgs,
    pw: &PasswordArgs,
    new_password_file: &Option<PathBuf>,
) -> Outcome<Report> {
    db::change_password(
        &target(cli, module)?,
        &password(pw),
        &PasswordSource {
            file: new_password_file.clone(),
        },
    )?;
    Ok(Report::new("Password changed", json!({"changed": true})))
}

pub fn reset(
    cli: &Cli,
    module: &ModuleArgs,
    so_pin_file: &Option<PathBuf>,
    new_password_file: &Option<PathBuf>,
    label: Option<&str>,
    yes: bool,
) -> Outcome<Report> {
    use std::io::IsTerminal;
    let t = target(cli, module)?;
    let terminal = std::io::stdin().is_terminal();
    if !yes {
        if !terminal {
            return Err(Failure::new(
                Kind::Failed,
                "reset destroys every key on the token, and they cannot be brought back: \
                 confirm with --yes",
            ));
        }
        eprintln!(
            "This destroys every private and secret key on the token and its password \
             (certificates and trust stay unless the token has an SO PIN)."
        );
        eprint!("Type \"reset\" to go on: ");
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Failure::new(Kind::Failed, format!("cannot read the answer: {e}")))?;
        if answer.trim() != "reset" {
            return Err(Failure::new(
                Kind::Failed,
                "not confirmed: nothing was changed",
            ));
        }
    }
    // Each secret from its file, else the terminal, else empty.
    let secret = |file: &Option<PathBuf>, prompt: &str, new: bool| {
        let source = PasswordSource { file: file.clone() };
        if file.is_none() && !terminal {
            Ok(zeroize::Zeroizing::new(String::new()))
        } else if new {
            source.read_new(prompt)
        } else {
            source.read(prompt)
        }
    };
    let so_pin = secret(so_pin_file, "SO PIN (empty for a database NSS made)", false)?;
    let new_password = secret(new_password_file, "New password", true)?;
    let label = db::reset(&t, &so_pin, &new_password, label)?;
    Ok(Report::new(
        format!("Token {label:?} reset: its keys are gone, certificates and trust kept unless it had an SO PIN"),
        json!({"reset": true, "label": label}),
    ))
}

pub fn pin_policy(
    cli: &Cli,
    module: &ModuleArgs,
    pw: &PasswordArgs,
    delay_ms: Option<u32>,
    lockout: Option<u32>,
    off: bool,
    unlock: bool,
) -> Outcome<Report> {
    use softoken::admin::{PinPolicy, MAX_DELAY_MS};
    let t = target(cli, module)?;
    let set = if off {
        Some(PinPolicy::default())
    } else if delay_ms.is_some() || lockout.is_some() {
        let delay_ms = delay_ms.unwrap_or(0);
        if delay_ms > MAX_DELAY_MS {
            return Err(Failure::new(
                Kind::Failed,
                format!("--delay-ms is at most {MAX_DELAY_MS}"),
            ));
        }
        Some(PinPolicy {
            delay_ms,
            lockout: lockout.unwrap_or(0),
        })
    } else {
        None
    };
    let state = db::pin_policy(&t, &password(pw), set, unlock)?;
    let text = if state["delay_ms"] == json!(0) && state["lockout"] == json!(0) {
        "No PIN-guessing policy (as NSS)".to_owned()
    } else {
        format!(
            "Each wrong PIN costs {} ms; {}; wrong PINs counted: user {}, SO {}",
            state["delay_ms"],
            match state["lockout"].as_u64() {
                Some(0) | None => "no lockout".to_owned(),
                Some(n) => format!("locked after {n} in a row"),
            },
            state["user_failures"],
            state["so_failures"],
        )
    };
    Ok(Report::new(text, state))
}

pub fn certs(cli: &Cli, module: &ModuleArgs, pw: &PasswordArgs) -> Outcome<Report> {
    let list = db::certificates(&target(cli, module)?, &password(pw))?;
    let mut text = vec![
        format!("{:<60} Trust Attributes", "Certificate Nickname"),
        format!("{:<60} SSL,S/MIME,JAR/XPI\n", ""),
    ];
    text.extend(list.as_array().into_iter().flatten().map(|c| {
        format!(
            "{:<60} {}",
            c["nickname"].as_str().unwrap_or(""),
            c["trust"].as_str().unwrap_or("")
        )
    }));
    Ok(Report::new(text.join("\n"), list))
}

pub fn keys(cli: &Cli, module: &ModuleArgs, pw: &PasswordArgs) -> Outcome<Report> {
    let list = db::keys(&target(cli, module)?, &password(pw))?;
    let text: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "<{i}> {:<6} {} {}",
                k["type"].as_str().unwrap_or("?"),
                k["id"].as_str().unwrap_or(""),
                k["label"].as_str().unwrap_or("")
            )
        })
        .collect();
    Ok(Report::new(text.join("\n"), list))
}

pub fn import(
    cli: &Cli,
    file: &Path,
    module: &ModuleArgs,
    pw: &PasswordArgs,
    p12_password_file: &Option<PathBuf>,
    nickname: Option<&str>,
) -> Outcome<Report> {
    let nick = db::import_p12(
        &target(cli, module)?,
        file,
        &password(pw),
        &PasswordSource {
            file: p12_password_file.clone(),
        },
        nickname,
    )?;
    Ok(Report::new(
        format!("Imported {nick:?} from {}", file.display()),
        json!({"imported": nick}),
    ))
}

#[allow(clippy::too_many_arguments)]
pub fn export(
    cli: &Cli,
    nickname: &str,
    out: &Path,
    module: &ModuleArgs,
    pw: &PasswordArgs,
    p12_password_file: &Option<PathBuf>,
    iterations: u32,
) -> Outcome<Report> {
    db::export_p12(
        &target(cli, module)?,
        nickname,
        out,
        &password(pw),
        &PasswordSource {
            file: p12_password_file.clone(),
        },
        iterations,
    )?;
    Ok(Report::new(
        format!("Exported {nickname:?} to {}", out.display()),
        json!({"exported": out}),
    ))
}

pub fn check(cli: &Cli, module: &ModuleArgs, pw: &PasswordArgs) -> Outcome<Report> {
    let report = db::check(&target(cli, module)?, &password(pw))?;
    let ok = report["ok"] == json!(true);
    let mut text = vec![format!(
        "{} values decrypted, {} integrity records verified",
        report["decrypted"], report["verified"]
    )];
    for f in report["failures"].as_array().into_iter().flatten() {
        let object = match f["label"].as_str().filter(|l| !l.is_empty()) {
            Some(label) => format!("{label:?} ({})", f["object"].as_str().unwrap_or("")),
            None => format!("{} (no label)", f["object"].as_str().unwrap_or("")),
        };
        text.push(format!(
            "FAILED: object {object}, {}: {} (changed or damaged on disk: restore the database \
             from a backup, or delete the object and import it again)",
            f["attribute_name"].as_str().unwrap_or(""),
            f["error"].as_str().unwrap_or("")
        ));
    }
    for r in report["orphaned_records"].as_array().into_iter().flatten() {
        text.push(format!(
            "ORPHANED: integrity record {} has no object",
            r.as_str().unwrap_or("")
        ));
    }
    let said = Report::new(text.join("\n"), report);
    Ok(if ok {
        said
    } else {
        said.then_fail(Failure::new(
            Kind::Failed,
            "the database failed its integrity check",
        ))
    })
}

pub fn upgrade(cli: &Cli, module: &ModuleArgs, pw: &PasswordArgs) -> Outcome<Report> {
    let done = db::upgrade(&target(cli, module)?, &password(pw))?;
    let text = format!(
        "{} now holds its legacy database in cert9.db and key4.db: {} certificates, \
         {} private keys, {} public keys. cert8.db and key3.db were only read; once \
         no program needs them they may be removed.",
        done["upgraded"].as_str().unwrap_or(""),
        done["certificates"],
        done["private_keys"],
        done["public_keys"],
    );
    Ok(Report::new(text, done))
}

pub fn merge(
    cli: &Cli,
    module: &ModuleArgs,
    pw: &PasswordArgs,
    source: &db::MergeSource,
) -> Outcome<Report> {
    let done = db::merge(&target(cli, module)?, &password(pw), source)?;
    let mut text = vec![format!(
        "Merged {}: {} objects added ({} of them certificates renamed), {} updated, {} already there",
        done["source"].as_str().unwrap_or(""),
        done["added"],
        done["renamed"],
        done["updated"],
        done["unchanged"],
    )];
    let skipped = done["skipped"].as_array().cloned().unwrap_or_default();
    for s in &skipped {
        text.push(format!(
            "NOT MERGED: {:?}: {}",
            s["label"].as_str().unwrap_or(""),
            s["why"].as_str().unwrap_or("")
        ));
    }
    let said = Report::new(text.join("\n"), done);
    Ok(if skipped.is_empty() {
        said
    } else {
        let n = skipped.len();
        said.then_fail(Failure::new(
            Kind::Failed,
            format!("{n} objects of the source were not merged"),
        ))
    })
}
