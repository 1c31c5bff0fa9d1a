//! The commands: their arguments (clap), the report each returns, and the
//! dispatch. Each command returns one `Report` that prints as text or as
//! JSON; the modules below hold the commands by what they work on.

mod db;
mod firefox;
mod library;
mod p11kit;
mod registry;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::db::{PasswordSource, Target};
use crate::error::{Failure, Kind, Outcome, EXIT_CODES};

#[derive(Parser)]
#[command(
    name = "softoken-modutil",
    version,
    about = "Register PKCS#11 modules with NSS, Firefox and p11-kit, and administer softoken databases",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The NSS database directory (`sql:DIR`, `dbm:DIR` or `DIR`).
    #[arg(long, short = 'd', global = true, value_name = "DIR")]
    pub dbdir: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Write even into a Firefox profile that Firefox has open.
    #[arg(long, global = true)]
    pub force: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Which module and token database commands work on.
#[derive(Args, Clone)]
pub struct ModuleArgs {
    /// The PKCS#11 library (default: libsoftoken.so beside this program).
    #[arg(long, value_name = "PATH")]
    pub libfile: Option<PathBuf>,
    /// The label of the token (default: the database token).
    #[arg(long, value_name = "LABEL")]
    pub token: Option<String>,
    /// More parameters for the module's C_Initialize.
    #[arg(long, value_name = "STRING")]
    pub params: Option<String>,
}

#[derive(Args, Clone)]
pub struct PasswordArgs {
    /// Read the database password from the first line of FILE.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct SlotArgs {
    /// Only this slot (its id, or its description); default: every slot.
    #[arg(long, value_name = "SLOT")]
    pub slot: Option<String>,
}

#[derive(Args, Clone)]
pub struct LibraryChoice {
    /// Name the module is registered under.
    #[arg(long, default_value = "softoken")]
    pub name: String,
    /// The module's library (default: libsoftoken.so beside this program).
    #[arg(long, value_name = "PATH")]
    pub libfile: Option<PathBuf>,
}

/// What a registration passes the module: its parameters and the label
/// its token shows.
#[derive(Args, Clone)]
pub struct RegistrationArgs {
    /// The module's parameter string (passed to its C_Initialize).
    #[arg(long, value_name = "STRING")]
    pub params: Option<String>,
    /// The label the token shows (the module's tokenDescription parameter).
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
}

impl RegistrationArgs {
    /// The parameter string to register: the one given, with the label as
    /// tokenDescription (quoted as NSS's parameter strings are).
    pub fn parameters(&self) -> Option<String> {
        let label = self.label.as_ref().map(|l| {
            let quoted: String = l
                .chars()
                .flat_map(|c| match c {
                    '\'' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("tokenDescription='{quoted}'")
        });
        match (self.params.as_deref(), label) {
            (Some(p), Some(l)) => Some(format!("{p} {l}")),
            (p, l) => p.map(str::to_owned).or(l),
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
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
        /// The name the module is registered under (modutil's -add NAME).
        name: String,
        /// The module's library.
        #[arg(long, value_name = "PATH")]
        libfile: PathBuf,
        #[command(flatten)]
        registration: RegistrationArgs,
        /// Mechanisms this module is the default for, as modutil: RSA:AES:...
        #[arg(long, value_name = "LIST")]
        mechanisms: Option<String>,
    },
    /// Remove a module from pkcs11.txt.
    Delete {
        /// The module's registered name.
        name: String,
    },
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
        /// The module's registered name.
        name: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Disable a module's slots: NSS will not use them.
    Disable {
        /// The module's registered name.
        name: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Make a module the default for mechanisms.
    Default {
        /// The module's registered name.
        name: String,
        /// Mechanism groups, as modutil names them: RSA:AES:SHA256:...
        #[arg(long, value_name = "LIST")]
        mechanisms: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Stop a module being the default for mechanisms.
    Undefault {
        /// The module's registered name.
        name: String,
        /// Mechanism groups, as modutil names them: RSA:AES:SHA256:...
        #[arg(long, value_name = "LIST")]
        mechanisms: String,
        #[command(flatten)]
        slot: SlotArgs,
    },
    /// Say whether a library loads as a PKCS#11 module, and if not, why.
    CheckLibrary {
        /// The library file (a name without a directory is the file here).
        path: PathBuf,
        /// A parameter string for its C_Initialize (pReserved), as NSS passes it.
        #[arg(long, value_name = "STRING")]
        params: Option<String>,
    },
    /// Register the module in Firefox profiles (each profile's pkcs11.txt).
    FirefoxRegister {
        #[command(flatten)]
        library: LibraryChoice,
        #[command(flatten)]
        registration: RegistrationArgs,
        /// A profile directory; without one, every profile of profiles.ini.
        #[arg(long, value_name = "DIR")]
        profile: Vec<PathBuf>,
        /// Firefox's directory holding profiles.ini (default: every one Firefox
        /// uses: ~/.config/mozilla/firefox, ~/.mozilla/firefox, snap, flatpak).
        #[arg(long, value_name = "DIR")]
        firefox_dir: Option<PathBuf>,
    },
    /// Remove the module from Firefox profiles.
    FirefoxUnregister {
        /// Name the module is registered under.
        #[arg(long, default_value = "softoken")]
        name: String,
        /// A profile directory; without one, every profile of profiles.ini.
        #[arg(long, value_name = "DIR")]
        profile: Vec<PathBuf>,
        /// Firefox's directory holding profiles.ini (default: every one Firefox uses).
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
        /// The policies file that --install and --remove change.
        #[arg(long, value_name = "FILE", default_value = crate::firefox::SYSTEM_POLICIES)]
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
        /// (--params and --label go into p11-kit's x-init-reserved.)
        #[command(flatten)]
        registration: RegistrationArgs,
    },
    /// Remove the p11-kit module file.
    P11kitRemove {
        /// Name the module file was installed under.
        #[arg(long, default_value = "softoken")]
        name: String,
        /// The file installed for every user (/etc/pkcs11/modules).
        #[arg(long)]
        system: bool,
        /// The file in another module directory.
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
    /// Reset the token (C_InitToken): every key and the password go. On a
    /// database without an SO PIN (NSS's, Firefox's) certificates and trust
    /// stay, as NSS's reset does, and the SO PIN given is set; where one is
    /// set it must be given, and every object goes.
    Reset {
        #[command(flatten)]
        module: ModuleArgs,
        /// Read the SO PIN from the first line of FILE (default: asked on
        /// the terminal; empty without one).
        #[arg(long, value_name = "FILE")]
        so_pin_file: Option<PathBuf>,
        /// The token's new label (default: the label it has).
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        /// Read the new database password from FILE (default: asked on the
        /// terminal; empty without one, as Firefox leaves a reset profile).
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        /// Do it without asking: the keys cannot be brought back.
        #[arg(long)]
        yes: bool,
    },
    /// Show or set the database's PIN-guessing policy: a delay after each
    /// wrong PIN and a lockout after N in a row, counted for every process
    /// that shares the database. None by default (NSS keeps no count).
    PinPolicy {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// Milliseconds each wrong PIN costs its caller (at most 60000).
        #[arg(long, value_name = "MS")]
        delay_ms: Option<u32>,
        /// Lock a PIN after N wrong ones in a row (0: never).
        #[arg(long, value_name = "N")]
        lockout: Option<u32>,
        /// Remove the policy and its counts.
        #[arg(long, conflicts_with_all = ["delay_ms", "lockout"])]
        off: bool,
        /// Forget the wrong PINs counted (unlocks a locked PIN).
        #[arg(long)]
        unlock: bool,
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
        /// The PKCS#12 (.p12, .pfx) file.
        file: PathBuf,
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// Read the PKCS#12 file's password from the first line of FILE
        /// (default: asked on the terminal).
        #[arg(long, value_name = "FILE")]
        p12_password_file: Option<PathBuf>,
        /// The nickname (default: the file's friendlyName).
        #[arg(long)]
        nickname: Option<String>,
    },
    /// Export a certificate and its key to a PKCS#12 file.
    Export {
        /// The certificate's nickname (as certs lists it).
        nickname: String,
        /// The PKCS#12 file to write (replaced whole if it exists).
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// Read the PKCS#12 file's password from the first line of FILE
        /// (default: asked on the terminal).
        #[arg(long, value_name = "FILE")]
        p12_password_file: Option<PathBuf>,
        /// PBKDF2 iterations (pk12util's default).
        #[arg(long, default_value_t = 600_000)]
        iterations: u32,
    },
    /// Update a `sql:` directory that holds NSS's legacy files (cert8.db,
    /// key3.db) to cert9.db/key4.db: NSS's "Mode 2", as NSS (and the module)
    /// does it when it opens such a directory read-write: certificates and
    /// trust at once, the keys with the legacy password (which the new
    /// database keeps). The legacy files are only read. Mode 1 is `dbm:DIR`,
    /// used as it is, nothing converted; Mode 3 (an application's legacy
    /// database merged into a shared one) is the module's own at login,
    /// given `updatedir=`/`updateid=` (see the README); `merge` merges any
    /// database or token on request.
    Upgrade {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Merge another database, or another PKCS#11 module's token, into this
    /// one, as certutil --merge does: objects the target has already are
    /// not added again (a second run changes nothing), a certificate whose
    /// nickname is taken is renamed ("Name #2"), trust is reconciled. The
    /// source is only read. A source database (`sql:DIR`, `dbm:DIR`, or a
    /// `sql:` directory of legacy files) without its password gives no
    /// private keys; a module's token (`--source-module`, SoftHSMv2 for
    /// example) gives the keys it lets out wrapped. What is left out is
    /// reported, and the command then exits 1.
    Merge {
        /// The database to merge from.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "source_module",
            conflicts_with = "source_module"
        )]
        source: Option<String>,
        /// The prefix of the source's file names (certutil's --source-prefix).
        #[arg(long, value_name = "PREFIX", default_value = "")]
        source_prefix: String,
        /// Read the source database's password from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        source_password_file: Option<PathBuf>,
        /// Merge the token of this PKCS#11 module instead.
        #[arg(long, value_name = "LIB")]
        source_module: Option<PathBuf>,
        /// The label of the module's token (default: its first).
        #[arg(long, value_name = "LABEL", requires = "source_module")]
        source_token: Option<String>,
        /// Read the module token's PIN from the first line of FILE.
        #[arg(long, value_name = "FILE", requires = "source_module")]
        source_pin_file: Option<PathBuf>,
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Verify every encrypted value and integrity record of the database.
    Check {
        #[command(flatten)]
        module: ModuleArgs,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Write the manual pages, softoken-modutil.1 and
    /// softoken-modutil-COMMAND.1 for each command, into DIR (the module's
    /// own page is docs/softoken.7).
    Man {
        /// The directory to write them into (made if missing).
        dir: PathBuf,
    },
}

/// What a command found or did: a text for people and a JSON value for
/// scripts, and, for a command that reports before it fails (a database
/// that fails its check), the failure.
pub struct Report {
    text: String,
    json: String,
    failure: Option<Failure>,
}

impl Report {
    pub fn new(text: impl Into<String>, json: Value) -> Report {
        Report {
            text: text.into(),
            json: json.to_string(),
            failure: None,
        }
    }

    /// A document printed the same way as text and as JSON.
    pub fn pretty(json: &Value) -> Report {
        let text = serde_json::to_string_pretty(json).unwrap_or_default();
        Report {
            json: text.clone(),
            text,
            failure: None,
        }
    }

    /// The report, then the command fails.
    pub fn then_fail(mut self, failure: Failure) -> Report {
        self.failure = Some(failure);
        self
    }

    /// Prints the report; the failure it ends in, if any.
    pub fn print(self, json: bool) -> Outcome<()> {
        println!("{}", if json { &self.json } else { &self.text });
        match self.failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

/// Runs the command line's command.
impl Command {
    /// Whether the command works on a database directory (`--dbdir`).
    fn uses_dbdir(&self) -> bool {
        !matches!(
            self,
            Command::CheckLibrary { .. }
                | Command::Man { .. }
                | Command::FirefoxRegister { .. }
                | Command::FirefoxUnregister { .. }
                | Command::FirefoxPolicy { .. }
                | Command::P11kitInstall { .. }
                | Command::P11kitRemove { .. }
        )
    }

    /// Whether the command writes a pkcs11.txt, which `--force` lets it
    /// write while Firefox has the profile open.
    fn uses_force(&self) -> bool {
        matches!(
            self,
            Command::Create { .. }
                | Command::Add { .. }
                | Command::Delete { .. }
                | Command::Enable { .. }
                | Command::Disable { .. }
                | Command::Default { .. }
                | Command::Undefault { .. }
                | Command::FirefoxRegister { .. }
                | Command::FirefoxUnregister { .. }
        )
    }
}

/// A global option the command would ignore is refused: the user meant
/// something by it.
fn refuse_unused_options(cli: &Cli) -> Outcome<()> {
    let unused = if cli.dbdir.is_some() && !cli.command.uses_dbdir() {
        "--dbdir (it works on no database directory: Firefox's profiles are \
         --profile DIR, p11-kit's module directory --dir DIR)"
    } else if cli.force && !cli.command.uses_force() {
        "--force (it writes no pkcs11.txt that Firefox could have open)"
    } else {
        return Ok(());
    };
    Err(Failure::new(
        Kind::Usage,
        format!("this command takes no {unused}"),
    ))
}

pub fn run(cli: &Cli) -> Outcome<Report> {
    refuse_unused_options(cli)?;
    match &cli.command {
        Command::Create {
            module,
            password: pw,
            empty_password,
        } => db::create(cli, module, pw, *empty_password),
        Command::Add {
            name,
            libfile,
            registration,
            mechanisms,
        } => registry::add(
            cli,
            name,
            libfile,
            registration.parameters().as_deref(),
            mechanisms.as_deref(),
        ),
        Command::Delete { name } => registry::delete(cli, name),
        Command::List { name, check } => registry::list(cli, name.as_deref(), *check),
        Command::Enable { name, slot } => registry::enable(cli, name, slot),
        Command::Disable { name, slot } => registry::disable(cli, name, slot),
        Command::Default {
            name,
            mechanisms,
            slot,
        } => registry::default(cli, name, mechanisms, slot),
        Command::Undefault {
            name,
            mechanisms,
            slot,
        } => registry::undefault(cli, name, mechanisms, slot),
        Command::CheckLibrary { path, params } => library::check(path, params.as_deref()),
        Command::FirefoxRegister {
            library: lib,
            registration,
            profile,
            firefox_dir,
        } => firefox::register(
            cli,
            lib,
            registration.parameters().as_deref(),
            profile,
            firefox_dir.as_deref(),
        ),
        Command::FirefoxUnregister {
            name,
            profile,
            firefox_dir,
        } => firefox::unregister(cli, name, profile, firefox_dir.as_deref()),
        Command::FirefoxPolicy {
            library: lib,
            install,
            remove,
            policies_file,
        } => firefox::policy(lib, *install, *remove, policies_file),
        Command::P11kitInstall {
            library: lib,
            system,
            dir,
            registration,
        } => p11kit::install(
            lib,
            *system,
            dir.as_deref(),
            registration.parameters().as_deref(),
        ),
        Command::P11kitRemove { name, system, dir } => {
            p11kit::remove(name, *system, dir.as_deref())
        }
        Command::Tokens { module } => db::tokens(cli, module),
        Command::Passwd {
            module,
            password: pw,
            new_password_file,
        } => db::passwd(cli, module, pw, new_password_file),
        Command::Reset {
            module,
            so_pin_file,
            label,
            new_password_file,
            yes,
        } => db::reset(
            cli,
            module,
            so_pin_file,
            new_password_file,
            label.as_deref(),
            *yes,
        ),
        Command::PinPolicy {
            module,
            password: pw,
            delay_ms,
            lockout,
            off,
            unlock,
        } => db::pin_policy(cli, module, pw, *delay_ms, *lockout, *off, *unlock),
        Command::Certs {
            module,
            password: pw,
        } => db::certs(cli, module, pw),
        Command::Keys {
            module,
            password: pw,
        } => db::keys(cli, module, pw),
        Command::Import {
            file,
            module,
            password: pw,
            p12_password_file,
            nickname,
        } => db::import(
            cli,
            file,
            module,
            pw,
            p12_password_file,
            nickname.as_deref(),
        ),
        Command::Export {
            nickname,
            out,
            module,
            password: pw,
            p12_password_file,
            iterations,
        } => db::export(
            cli,
            nickname,
            out,
            module,
            pw,
            p12_password_file,
            *iterations,
        ),
        Command::Upgrade {
            module,
            password: pw,
        } => db::upgrade(cli, module, pw),
        Command::Merge {
            source,
            source_prefix,
            source_password_file,
            source_module,
            source_token,
            source_pin_file,
            module,
            password: pw,
        } => {
            let from = match (source, source_module) {
                (_, Some(libfile)) => crate::db::MergeSource::Module {
                    libfile: libfile.clone(),
                    token: source_token.clone(),
                    pin: PasswordSource {
                        file: source_pin_file.clone(),
                    },
                },
                (dbdir, None) => crate::db::MergeSource::Database {
                    dbdir: dbdir.clone().unwrap_or_default(),
                    prefix: source_prefix.clone(),
                    password: PasswordSource {
                        file: source_password_file.clone(),
                    },
                },
            };
            db::merge(cli, module, pw, &from)
        }
        Command::Check {
            module,
            password: pw,
        } => db::check(cli, module, pw),
        Command::Man { dir } => manual_pages(dir),
    }
}

/// `man`: the pages clap_mangen makes of these definitions.
fn manual_pages(dir: &Path) -> Outcome<Report> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).map_err(|e| Failure::io("create", dir, e))?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(|e| Failure::io("write", dir, e))?;
    Ok(Report::new(
        format!("Wrote the manual pages into {}", dir.display()),
        serde_json::json!({"manual_pages": dir}),
    ))
}

pub fn library_path(given: Option<&Path>) -> Outcome<PathBuf> {
    let path = given
        .map(Path::to_path_buf)
        .unwrap_or_else(crate::library::default_module);
    if path.components().count() == 1 && given.is_none() {
        return Err(Failure::new(
            Kind::NotFound,
            format!(
                "libsoftoken.so is not where this program looks for it ({}, from its \
                 directory); give --libfile",
                crate::library::module_places().join(", ")
            ),
        ));
    }
    crate::library::check_file(&path)?;
    std::path::absolute(&path).map_err(|e| Failure::io("resolve", &path, e))
}

pub fn target(cli: &Cli, module: &ModuleArgs) -> Outcome<Target> {
    Ok(Target {
        libfile: library_path(module.libfile.as_deref())?,
        dbdir: cli.dbdir.clone(),
        token: module.token.clone(),
        params: module.params.clone(),
    })
}

pub fn password(args: &PasswordArgs) -> PasswordSource {
    PasswordSource {
        file: args.password_file.clone(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `--help` describes every command and every argument it takes.
    #[test]
    fn every_argument_has_a_description() {
        let cli = Cli::command();
        let mut undescribed = Vec::new();
        for command in cli.get_subcommands() {
            if command.get_about().is_none() {
                undescribed.push(command.get_name().to_string());
            }
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    undescribed.push(format!("{} {}", command.get_name(), arg.get_id()));
                }
            }
        }
        assert!(undescribed.is_empty(), "no help text: {undescribed:?}");
    }
}
