//! softoken-modutil: registers PKCS#11 modules with NSS (`pkcs11.txt`),
//! Firefox and p11-kit, says why a library does not load, and administers
//! softoken's databases through the module.

mod db;
mod error;
mod firefox;
mod library;
mod p11kit;
mod pkcs12;
mod progress;
mod registry;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::db::{PasswordSource, Target};
use crate::error::{Failure, Kind, Outcome, EXIT_CODES};

#[derive(Parser)]
#[command(
    name = "softoken-modutil",
    version,
    about = "Register PKCS#11 modules with NSS, Firefox and p11-kit, and administer softoken databases",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The NSS database directory (`sql:DIR`, `dbm:DIR` or `DIR`).
    #[arg(long, short = 'd', global = true, value_name = "DIR")]
    dbdir: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Write even into a Firefox profile that Firefox has open.
    #[arg(long, global = true)]
    force: bool,
    #[command(subcommand)]
    command: Command,
}

/// Which module and token database commands work on.
#[derive(Args, Clone)]
struct ModuleArgs {
    /// The PKCS#11 library (default: libsoftoken.so beside this program).
    #[arg(long, value_name = "PATH")]
    libfile: Option<PathBuf>,
    /// The label of the token (default: the database token).
    #[arg(long, value_name = "LABEL")]
    token: Option<String>,
    /// More parameters for the module's C_Initialize.
    #[arg(long, value_name = "STRING")]
    params: Option<String>,
}

#[derive(Args, Clone)]
struct PasswordArgs {
    /// Read the database password from the first line of FILE.
    #[arg(long, short = 'f', value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct SlotArgs {
    /// Only this slot (its id, or its description); default: every slot.
    #[arg(long, value_name = "SLOT")]
    slot: Option<String>,
}

#[derive(Args, Clone)]
struct LibraryChoice {
    /// Name the module is registered under.
    #[arg(long, default_value = "softoken")]
    name: String,
    /// The module's library (default: libsoftoken.so beside this program).
    #[arg(long, value_name = "PATH")]
    libfile: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new database directory: pkcs11.txt, cert9.db and key4.db.
    Create {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// Leave the password empty (no login needed, as NSS's modutil -create).
        #[arg(long, conflicts_with = "password_file")]
        empty_password: bool,
    },
    /// Register a PKCS#11 module in pkcs11.txt (it is loaded first, to check it).
    Add {
        name: String,
        #[arg(long, value_name = "PATH")]
        libfile: PathBuf,
        /// The module's parameter string (NSS passes it to C_Initialize).
        #[arg(long, value_name = "STRING")]
        params: Option<String>,
        /// Mechanisms this module is the default for, as modutil: RSA:AES:...
        #[arg(long, value_name = "LIST")]
        mechanisms: Option<String>,
    },
    /// Remove a module from pkcs11.txt.
    Delete { name: String },
    /// List the modules in pkcs11.txt.
    List {
        /// Only this module.
        name: Option<String>,
        /// Load each library and report whether it works.
        #[arg(long)]
        check: bool,
    },
    /// Enable a module's slots (undo `disable`).
    Enable {
        name: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Disable a module's slots: NSS will not use them.
    Disable {
        name: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Make a module the default for mechanisms.
    Default {
        name: String,
        #[arg(long, value_name = "LIST")]
        mechanisms: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Stop a module being the default for mechanisms.
    Undefault {
        name: String,
        #[arg(long, value_name = "LIST")]
        mechanisms: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Say whether a library loads as a PKCS#11 module, and if not, why.
    CheckLibrary {
        path: PathBuf,
        #[arg(long, value_name = "STRING")]
        params: Option<String>,
    },
    /// Register the module in Firefox profiles (each profile's pkcs11.txt).
    FirefoxRegister {
        #[command(flatten)]
        library: LibraryChoice,
        /// A profile directory; without one, every profile of profiles.ini.
        #[arg(long, value_name = "DIR")]
        profile: Vec<PathBuf>,
        /// Firefox's directory holding profiles.ini (default ~/.mozilla/firefox).
        #[arg(long, value_name = "DIR")]
        firefox_dir: Option<PathBuf>,
    },
    /// Remove the module from Firefox profiles.
    FirefoxUnregister {
        #[arg(long, default_value = "softoken")]
        name: String,
        #[arg(long, value_name = "DIR")]
        profile: Vec<PathBuf>,
        #[arg(long, value_name = "DIR")]
        firefox_dir: Option<PathBuf>,
    },
    /// Print Firefox's enterprise policy that loads the module for every
    /// profile, or install it into policies.json.
    FirefoxPolicy {
        #[command(flatten)]
        library: LibraryChoice,
        /// Merge it into the policies file.
        #[arg(long)]
        install: bool,
        /// Take it out of the policies file.
        #[arg(long, conflicts_with = "install")]
        remove: bool,
        #[arg(long, value_name = "FILE", default_value = firefox::SYSTEM_POLICIES)]
        policies_file: PathBuf,
    },
    /// Install a p11-kit module file, so p11-kit clients see the token.
    P11kitInstall {
        #[command(flatten)]
        library: LibraryChoice,
        /// For every user (/etc/pkcs11/modules) rather than for you.
        #[arg(long)]
        system: bool,
        /// Another module directory.
        #[arg(long, value_name = "DIR", conflicts_with = "system")]
        dir: Option<PathBuf>,
        /// Parameters for the module's C_Initialize (x-init-reserved).
        #[arg(long, value_name = "STRING")]
        params: Option<String>,
    },
    /// Remove the p11-kit module file.
    P11kitRemove {
        #[arg(long, default_value = "softoken")]
        name: String,
        #[arg(long)]
        system: bool,
        #[arg(long, value_name = "DIR", conflicts_with = "system")]
        dir: Option<PathBuf>,
    },
    /// List the module's slots and tokens.
    Tokens {
        #[command(flatten)]
        module: ModuleArgs,
    },
    /// Change the database password.
    Passwd {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// Read the new password from FILE.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List certificates with their trust (as certutil -L).
    Certs {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List private keys (as certutil -K).
    Keys {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Import a key and its certificates from a PKCS#12 file.
    Import {
        file: PathBuf,
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long, value_name = "FILE")]
        p12_password_file: Option<PathBuf>,
        /// The nickname (default: the file's friendlyName).
        #[arg(long)]
        nickname: Option<String>,
    },
    /// Export a certificate and its key to a PKCS#12 file.
    Export {
        nickname: String,
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long, value_name = "FILE")]
        p12_password_file: Option<PathBuf>,
        /// PBKDF2 iterations (pk12util's default).
        #[arg(long, default_value_t = 600_000)]
        iterations: u32,
    },
    /// Verify every encrypted value and integrity record of the database.
    Check {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

fn registry_dir(cli: &Cli) -> Outcome<PathBuf> {
    let given = cli.dbdir.as_deref().ok_or_else(|| {
        Failure::new(
            Kind::Failed,
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

fn library_path(given: Option<&Path>) -> Outcome<PathBuf> {
    let path = given
        .map(Path::to_path_buf)
        .unwrap_or_else(library::default_module);
    if path.components().count() == 1 && given.is_none() {
        return Err(Failure::new(
            Kind::NotFound,
            "libsoftoken.so is not beside this program; give --libfile",
        ));
    }
    library::check_file(&path)?;
    std::path::absolute(&path).map_err(|e| Failure::io("resolve", &path, e))
}

fn target(cli: &Cli, module: &ModuleArgs) -> Outcome<Target> {
    Ok(Target {
        libfile: library_path(module.libfile.as_deref())?,
        dbdir: cli.dbdir.clone(),
        token: module.token.clone(),
        params: module.params.clone(),
    })
}

fn password(args: &PasswordArgs) -> PasswordSource {
    PasswordSource {
        file: args.password_file.clone(),
    }
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

fn print_module(i: usize, m: &Value) {
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
    println!("{:3}. {}{flags}", i + 1, m["name"].as_str().unwrap_or(""));
    let lib = m["library"].as_str().unwrap_or("");
    println!(
        "\tlibrary: {}",
        if lib.is_empty() {
            "(NSS's built-in softoken)"
        } else {
            lib
        }
    );
    if let Some(p) = m["parameters"].as_str().filter(|p| !p.is_empty()) {
        println!("\tparameters: {p}");
    }
    for s in m["slots"].as_array().into_iter().flatten() {
        println!(
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
        );
    }
    if let Some(status) = m.get("status").and_then(Value::as_str) {
        println!("\tstatus: {status}");
    }
}

fn run(cli: &Cli) -> Outcome<()> {
    let say = |text: String, value: Value| {
        if cli.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    };
    match &cli.command {
        Command::Create {
            module,
            password: pw,
            empty_password,
        } => {
            let t = target(cli, module)?;
            let source = password(pw);
            let dir = db::create(&t, (!empty_password).then_some(&source), cli.force)?;
            say(
                format!("Database created in {}", dir.display()),
                json!({"created": dir}),
            );
        }
        Command::Add {
            name,
            libfile,
            params,
            mechanisms,
        } => {
            let dir = registry_dir(cli)?;
            let flags = mechanisms
                .as_deref()
                .map(registry::mechanism_flags)
                .transpose()?
                .unwrap_or_default();
            let lib =
                std::path::absolute(libfile).map_err(|e| Failure::io("resolve", libfile, e))?;
            // NSS's modutil also loads a module before adding it.
            let module = library::load(&lib, params.as_deref())?;
            let slots: Vec<u64> = module.slots()?.iter().map(|s| s.id()).collect();
            drop(module);
            let mut stanza = registry::Stanza::new(name, &lib.to_string_lossy(), params.as_deref());
            if !flags.is_empty() {
                stanza.change_slot_flags(&slots, &flags, &[]);
            }
            registry::update(&dir, cli.force, false, |r| r.add(stanza))?;
            say(
                format!("Module {name:?} added to {}", dir.display()),
                json!({"added": name}),
            );
        }
        Command::Delete { name } => {
            let dir = registry_dir(cli)?;
            registry::update(&dir, cli.force, false, |r| r.remove(name))?;
            say(format!("Module {name:?} deleted"), json!({"deleted": name}));
        }
        Command::List { name, check } => {
            let dir = registry_dir(cli)?;
            let r = registry::load(&dir)?;
            let mut modules = Vec::new();
            for stanza in r.modules() {
                if name.as_deref().is_some_and(|n| n != stanza.name()) {
                    continue;
                }
                let mut m = module_json(stanza);
                if *check && !stanza.library().is_empty() {
                    m["status"] = json!(match library::load(
                        Path::new(stanza.library()),
                        Some(stanza.parameters())
                    ) {
                        Ok(module) =>
                            format!("loads, {} slot(s)", module.slots().map_or(0, |s| s.len())),
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
            if cli.json {
                println!("{}", Value::Array(modules));
            } else {
                println!("PKCS #11 modules in {}:", registry::path_in(&dir).display());
                for (i, m) in modules.iter().enumerate() {
                    print_module(i, m);
                }
            }
        }
        Command::Enable { name, slot } => {
            let ids = change_slots(cli, name, slot, &[], &[registry::DISABLE_FLAG])?;
            say(
                format!("Module {name:?}: {} slot(s) enabled", ids.len()),
                json!({"enabled": ids}),
            );
        }
        Command::Disable { name, slot } => {
            let ids = change_slots(cli, name, slot, &[registry::DISABLE_FLAG], &[])?;
            say(
                format!("Module {name:?}: {} slot(s) disabled", ids.len()),
                json!({"disabled": ids}),
            );
        }
        Command::Default {
            name,
            mechanisms,
            slot,
        } => {
            let flags = registry::mechanism_flags(mechanisms)?;
            change_slots(cli, name, slot, &flags, &[])?;
            say(
                format!("Module {name:?} is the default for {mechanisms}"),
                json!({"default": flags}),
            );
        }
        Command::Undefault {
            name,
            mechanisms,
            slot,
        } => {
            let flags = registry::mechanism_flags(mechanisms)?;
            change_slots(cli, name, slot, &[], &flags)?;
            say(
                format!("Module {name:?} is no longer the default for {mechanisms}"),
                json!({"undefault": flags}),
            );
        }
        Command::CheckLibrary { path, params } => {
            let module = library::load(path, params.as_deref())?;
            let info = module
                .pkcs11
                .get_library_info()
                .map_err(|e| library::p11_failure("C_GetInfo", e))?;
            let slots = module.slots()?;
            say(
                format!(
                    "{} is a working PKCS#11 module: {} ({}), version {}, {} slot(s)",
                    path.display(),
                    info.library_description().trim_end(),
                    info.manufacturer_id().trim_end(),
                    info.library_version(),
                    slots.len()
                ),
                json!({
                    "library": path,
                    "description": info.library_description().trim_end(),
                    "manufacturer": info.manufacturer_id().trim_end(),
                    "version": info.library_version().to_string(),
                    "cryptoki_version": info.cryptoki_version().to_string(),
                    "slots": slots.len(),
                }),
            );
        }
        Command::FirefoxRegister {
            library: lib,
            profile,
            firefox_dir,
        } => {
            let libfile = library_path(lib.libfile.as_deref())?;
            let profiles = firefox_profiles(profile, firefox_dir.as_deref())?;
            // Check every profile first, so none is half done.
            for p in &profiles {
                registry::refuse_if_in_use(p, cli.force)?;
            }
            for p in &profiles {
                registry::update(p, cli.force, true, |r| {
                    if r.find(&lib.name).is_some() {
                        r.remove(&lib.name)?;
                    }
                    r.add(registry::Stanza::new(
                        &lib.name,
                        &libfile.to_string_lossy(),
                        None,
                    ))
                })?;
                if !cli.json {
                    println!("Registered {:?} in {}", lib.name, p.display());
                }
            }
            if cli.json {
                println!("{}", json!({"registered": profiles}));
            }
        }
        Command::FirefoxUnregister {
            name,
            profile,
            firefox_dir,
        } => {
            let profiles = firefox_profiles(profile, firefox_dir.as_deref())?;
            for p in &profiles {
                registry::refuse_if_in_use(p, cli.force)?;
            }
            let mut removed = Vec::new();
            for p in &profiles {
                let present = registry::load(p).is_ok_and(|r| r.find(name).is_some());
                if present {
                    registry::update(p, cli.force, false, |r| r.remove(name).map(|_| ()))?;
                    removed.push(p.clone());
                    if !cli.json {
                        println!("Removed {name:?} from {}", p.display());
                    }
                }
            }
            if removed.is_empty() {
                return Err(Failure::new(
                    Kind::NotFound,
                    format!("no profile has a module named {name:?}"),
                ));
            }
            if cli.json {
                println!("{}", json!({"unregistered": removed}));
            }
        }
        Command::FirefoxPolicy {
            library: lib,
            install,
            remove,
            policies_file,
        } => {
            if !install && !remove {
                let libfile = library_path(lib.libfile.as_deref())?;
                let policy = firefox::policy(&lib.name, &libfile);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&policy).unwrap_or_default()
                );
                return Ok(());
            }
            let libfile = if *install {
                Some(library_path(lib.libfile.as_deref())?)
            } else {
                None
            };
            let existing = match std::fs::read_to_string(policies_file) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Failure::io("read", policies_file, e)),
            };
            if *remove && existing.is_none() {
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
            say(
                format!(
                    "{} {:?} in {}",
                    if *install { "Installed" } else { "Removed" },
                    lib.name,
                    policies_file.display()
                ),
                json!({"policies_file": policies_file}),
            );
        }
        Command::P11kitInstall {
            library: lib,
            system,
            dir,
            params,
        } => {
            let libfile = library_path(lib.libfile.as_deref())?;
            let dir = p11kit_dir(*system, dir.as_deref())?;
            let path = p11kit::install(&dir, &lib.name, &libfile, params.as_deref())?;
            if !*system && dir_is_users(&dir) && p11kit::running_as_root() {
                eprintln!(
                    "softoken-modutil: note: p11-kit ignores the user configuration of root; \
                     use --system for root's programs"
                );
            }
            say(
                format!("Wrote {}", path.display()),
                json!({"module_file": path}),
            );
        }
        Command::P11kitRemove { name, system, dir } => {
            let dir = p11kit_dir(*system, dir.as_deref())?;
            let path = p11kit::remove(&dir, name)?;
            say(
                format!("Removed {}", path.display()),
                json!({"removed": path}),
            );
        }
        Command::Tokens { module } => {
            let list = db::tokens(&target(cli, module)?)?;
            if cli.json {
                println!("{list}");
            } else {
                for t in list.as_array().into_iter().flatten() {
                    println!(
                        "slot 0x{:x} {:?}: token {:?} ({}){}",
                        t["slot_id"].as_u64().unwrap_or(0),
                        t["slot"].as_str().unwrap_or(""),
                        t["label"].as_str().unwrap_or(""),
                        t["manufacturer"].as_str().unwrap_or(""),
                        if t["login_required"] == json!(true) {
                            ", password set"
                        } else {
                            ", no password"
                        },
                    );
                }
            }
        }
        Command::Passwd {
            module,
            password: pw,
            new_password_file,
        } => {
            db::change_password(
                &target(cli, module)?,
                &password(pw),
                &PasswordSource {
                    file: new_password_file.clone(),
                },
            )?;
            say("Password changed".into(), json!({"changed": true}));
        }
        Command::Certs {
            module,
            password: pw,
        } => {
            let list = db::certificates(&target(cli, module)?, &password(pw))?;
            if cli.json {
                println!("{list}");
            } else {
                println!("{:<60} Trust Attributes", "Certificate Nickname");
                println!("{:<60} SSL,S/MIME,JAR/XPI\n", "");
                for c in list.as_array().into_iter().flatten() {
                    println!(
                        "{:<60} {}",
                        c["nickname"].as_str().unwrap_or(""),
                        c["trust"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Keys {
            module,
            password: pw,
        } => {
            let list = db::keys(&target(cli, module)?, &password(pw))?;
            if cli.json {
                println!("{list}");
            } else {
                for (i, k) in list.as_array().into_iter().flatten().enumerate() {
                    println!(
                        "<{i}> {:<6} {} {}",
                        k["type"].as_str().unwrap_or("?"),
                        k["id"].as_str().unwrap_or(""),
                        k["label"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Import {
            file,
            module,
            password: pw,
            p12_password_file,
            nickname,
        } => {
            let nick = db::import_p12(
                &target(cli, module)?,
                file,
                &password(pw),
                &PasswordSource {
                    file: p12_password_file.clone(),
                },
                nickname.as_deref(),
            )?;
            say(
                format!("Imported {nick:?} from {}", file.display()),
                json!({"imported": nick}),
            );
        }
        Command::Export {
            nickname,
            out,
            module,
            password: pw,
            p12_password_file,
            iterations,
        } => {
            db::export_p12(
                &target(cli, module)?,
                nickname,
                out,
                &password(pw),
                &PasswordSource {
                    file: p12_password_file.clone(),
                },
                *iterations,
            )?;
            say(
                format!("Exported {nickname:?} to {}", out.display()),
                json!({"exported": out}),
            );
        }
        Command::Check {
            module,
            password: pw,
        } => {
            let report = db::check(&target(cli, module)?, &password(pw))?;
            let ok = report["ok"] == json!(true);
            if cli.json {
                println!("{report}");
            } else {
                println!(
                    "{} values decrypted, {} integrity records verified",
                    report["decrypted"], report["verified"]
                );
                for f in report["failures"].as_array().into_iter().flatten() {
                    println!(
                        "FAILED: object {} attribute {}: {}",
                        f["object"].as_str().unwrap_or(""),
                        f["attribute"].as_str().unwrap_or(""),
                        f["error"].as_str().unwrap_or("")
                    );
                }
                for r in report["orphaned_records"].as_array().into_iter().flatten() {
                    println!(
                        "ORPHANED: integrity record {} has no object",
                        r.as_str().unwrap_or("")
                    );
                }
            }
            if !ok {
                return Err(Failure::new(
                    Kind::Failed,
                    "the database failed its integrity check",
                ));
            }
        }
    }
    Ok(())
}

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
    let dir = match firefox_dir {
        Some(d) => d.to_path_buf(),
        None => firefox::default_firefox_dir()?,
    };
    let profiles = firefox::profiles(&dir)?;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("softoken-modutil: {}", f.message);
            ExitCode::from(f.kind.exit_code() as u8)
        }
    }
}
