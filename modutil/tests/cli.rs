//! softoken-modutil as a user runs it, checked against NSS's own tools,
//! p11-kit and a Firefox-style profile, with every failure's exit code.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/nss");

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_softoken-modutil"))
}

/// A private copy of the freshly built module (NSS loads a library once
/// per path, and tests run in parallel).
fn module_copy(dir: &Path) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_softoken-modutil"));
    let built = exe.parent().unwrap().join("deps/libsoftoken.so");
    let built = if built.exists() {
        built
    } else {
        exe.parent().unwrap().join("libsoftoken.so")
    };
    let copy = dir.join("libsoftoken-test.so");
    std::fs::copy(built, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("command runs")
}

/// Runs and expects success; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs and expects exit code `code` with `message` on stderr.
fn fails(cmd: &mut Command, code: i32, message: &str) {
    let out = output(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "{cmd:?}: {stderr:?} lacks {message:?}"
    );
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn nss_db(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    ok(Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", dir.display())));
}

fn is_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
}

/// As root, a command runs as `nobody` (for p11-kit's user configuration
/// and for permissions root would override).
fn unprivileged(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            program,
        ]);
        c
    } else {
        Command::new(program)
    }
}

fn open_up(paths: &[&Path]) {
    for p in paths {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

#[test]
fn modules_round_trip_with_nss_modutil() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let nssdb = top.path().join("nssdb");
    nss_db(&nssdb);
    let tokendb = top.path().join("tokendb");
    std::fs::create_dir(&tokendb).unwrap();
    let params = format!("configdir='sql:{}'", tokendb.display());

    // Ours adds; NSS lists and loads it.
    ok(tool()
        .args(["add", "ours", "--libfile"])
        .arg(&lib)
        .args(["--params", &params, "--mechanisms", "RSA:AES:FRIENDLY"])
        .arg("--dbdir")
        .arg(format!("sql:{}", nssdb.display())));
    let listed = ok(Command::new("modutil")
        .args(["-list", "ours", "-dbdir"])
        .arg(format!("sql:{}", nssdb.display())));
    assert!(listed.contains(&lib.display().to_string()), "{listed}");
    assert!(
        listed.contains("Default Mechanism Flags: RSA:AES:FRIENDLY"),
        "{listed}"
    );
    assert!(listed.contains("Token Name: softoken"), "{listed}");
    let tokens = ok(Command::new("certutil")
        .args(["-U", "-d"])
        .arg(format!("sql:{}", nssdb.display())));
    assert!(tokens.contains("softoken"), "{tokens}");

    // Disabled by ours, NSS sees it disabled; enabled again, it does not.
    ok(tool().args(["disable", "ours", "-d"]).arg(&nssdb));
    let listed = ok(Command::new("modutil")
        .args(["-list", "ours", "-dbdir"])
        .arg(format!("sql:{}", nssdb.display())));
    assert!(listed.contains("DISABLED"), "{listed}");
    ok(tool().args(["enable", "ours", "-d"]).arg(&nssdb));
    let listed = ok(Command::new("modutil")
        .args(["-list", "ours", "-dbdir"])
        .arg(format!("sql:{}", nssdb.display())));
    assert!(!listed.contains("DISABLED"), "{listed}");

    // NSS adds; ours lists and deletes it, keeping the rest byte for byte.
    let nss_lib = top.path().join("libnss-added.so");
    std::fs::copy(&lib, &nss_lib).unwrap();
    let mut nss_add = Command::new("modutil");
    nss_add
        .args(["-add", "nssadded", "-libfile"])
        .arg(&nss_lib)
        .args(["-string", &params, "-force", "-dbdir"])
        .arg(format!("sql:{}", nssdb.display()));
    ok(&mut nss_add);
    let before = std::fs::read_to_string(nssdb.join("pkcs11.txt")).unwrap();
    let json = ok(tool().args(["list", "--json", "-d"]).arg(&nssdb));
    let modules: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["NSS Internal PKCS #11 Module", "ours", "nssadded"]);
    ok(tool().args(["delete", "nssadded", "-d"]).arg(&nssdb));
    let after = std::fs::read_to_string(nssdb.join("pkcs11.txt")).unwrap();
    let nss_stanza_start = before
        .find(&format!("library={}", nss_lib.display()))
        .unwrap();
    assert_eq!(after, before[..nss_stanza_start], "only NSS's stanza went");
    let listed = ok(Command::new("modutil")
        .args(["-list", "-dbdir"])
        .arg(format!("sql:{}", nssdb.display())));
    assert!(
        !listed.contains("nssadded") && listed.contains("ours"),
        "{listed}"
    );

    // Failures.
    fails(
        tool().args(["delete", "absent", "-d"]).arg(&nssdb),
        3,
        "no module named",
    );
    fails(
        tool()
            .args(["delete", "NSS Internal PKCS #11 Module", "-d"])
            .arg(&nssdb),
        1,
        "internal module",
    );
    fails(
        tool()
            .args(["add", "ours", "--libfile"])
            .arg(&lib)
            .args(["--params", &params, "-d"])
            .arg(&nssdb),
        8,
        "already registered",
    );
    fails(
        tool()
            .args(["add", "x", "--libfile", "/nonexistent/lib.so", "-d"])
            .arg(&nssdb),
        3,
        "no such file",
    );
    fails(
        tool().args(["list", "-d"]).arg(top.path()),
        3,
        "pkcs11.txt does not exist",
    );
    // --dbdir may come before the subcommand too.
    let listed = ok(tool().arg("--dbdir").arg(&nssdb).arg("list"));
    assert!(listed.contains("ours"), "{listed}");
    fails(
        tool().args(["list", "-d", "/nonexistent"]),
        3,
        "is not a directory",
    );
    fails(
        tool().args(["add", "y", "--libfile"]).arg(&lib),
        2,
        "needs --dbdir",
    );
    // With --json a failure is JSON too, on standard output.
    let out = output(tool().args(["add", "y", "--json", "--libfile"]).arg(&lib));
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "usage");
    assert_eq!(doc["exit_code"], 2);
    assert!(doc["error"].as_str().unwrap().contains("needs --dbdir"));
    fails(
        tool()
            .args(["default", "ours", "--mechanisms", "NOPE", "-d"])
            .arg(&nssdb),
        1,
        "unknown mechanism",
    );
    fails(tool().args(["frobnicate"]), 2, "unrecognized subcommand");
}

#[test]
fn library_diagnostics_say_why() {
    let top = tempfile::tempdir().unwrap();
    let text = write(&top.path().join("text.so"), "not a library\n");
    fails(
        tool().arg("check-library").arg(&text),
        4,
        "is a text file, not a shared object",
    );
    fails(
        tool().args(["check-library", "/nonexistent.so"]),
        3,
        "no such file",
    );
    fails(
        tool().args(["check-library", "/lib/x86_64-linux-gnu/libz.so.1"]),
        4,
        "not a PKCS#11 module: it has no C_GetFunctionList",
    );
    // A library whose dependency is missing.
    let broken = top.path().join("broken.so");
    let mut bytes = std::fs::read("/lib/x86_64-linux-gnu/libz.so.1").unwrap();
    let needed = b"libc.so.6";
    let at = bytes
        .windows(needed.len())
        .position(|w| w == needed)
        .unwrap();
    bytes[at..at + needed.len()].copy_from_slice(b"libq.so.6");
    std::fs::write(&broken, bytes).unwrap();
    fails(tool().arg("check-library").arg(&broken), 4, "libq.so.6");
    // NSS's softoken without its parameters, then with them.
    let nss = "/usr/lib/x86_64-linux-gnu/libsoftokn3.so";
    fails(
        tool().args(["check-library", nss]),
        4,
        "C_Initialize failed: CKR_ARGUMENTS_BAD",
    );
    let db = top.path().join("db");
    nss_db(&db);
    let out = ok(tool().args(["check-library", nss, "--params"]).arg(format!(
        "configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=readOnly",
        db.display()
    )));
    assert!(out.contains("is a working PKCS#11 module"), "{out}");
    let lib = module_copy(top.path());
    let out = ok(tool().args(["check-library", "--json"]).arg(&lib));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["manufacturer"], "softoken");
}

#[test]
fn firefox_profiles_load_the_module() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let firefox = top.path().join("firefox");
    let profile = firefox.join("abcd.default-esr");
    nss_db(&profile);
    write(
        &firefox.join("profiles.ini"),
        "[Profile0]\nName=default-esr\nIsRelative=1\nPath=abcd.default-esr\nDefault=1\n\n[General]\nStartWithLastProfile=1\n",
    );
    let token_db = top.path().join("token");
    std::fs::create_dir(&token_db).unwrap();

    // A profile Firefox has open is refused.
    std::os::unix::fs::symlink(
        format!("127.0.0.1:+{}", std::process::id()),
        profile.join("lock"),
    )
    .unwrap();
    fails(
        tool()
            .args(["firefox-register", "--libfile"])
            .arg(&lib)
            .arg("--firefox-dir")
            .arg(&firefox),
        7,
        "Firefox profile in use",
    );
    std::fs::remove_file(profile.join("lock")).unwrap();

    ok(tool()
        .args(["firefox-register", "--libfile"])
        .arg(&lib)
        .arg("--firefox-dir")
        .arg(&firefox)
        .env("SOFTOKEN_CONFIGDIR", format!("sql:{}", token_db.display())));
    let listed = ok(Command::new("modutil")
        .args(["-list", "softoken", "-dbdir"])
        .arg(format!("sql:{}", profile.display()))
        .env("SOFTOKEN_CONFIGDIR", format!("sql:{}", token_db.display())));
    assert!(listed.contains("Token Name: softoken"), "{listed}");
    assert!(listed.contains("Manufacturer: softoken"), "{listed}");
    ok(tool()
        .args(["firefox-unregister", "--firefox-dir"])
        .arg(&firefox));
    let listed = ok(Command::new("modutil")
        .args(["-list", "-dbdir"])
        .arg(format!("sql:{}", profile.display())));
    assert!(!listed.contains("softoken"), "{listed}");
    fails(
        tool()
            .args(["firefox-unregister", "--firefox-dir"])
            .arg(&firefox),
        3,
        "no profile has a module",
    );
    // With a label and parameters: the token carries the label in NSS's
    // listing, and the parameters name the database.
    let params = format!("configdir='sql:{}'", token_db.display());
    ok(tool()
        .args([
            "firefox-register",
            "--label",
            "Bob's keys",
            "--params",
            &params,
            "--libfile",
        ])
        .arg(&lib)
        .arg("--firefox-dir")
        .arg(&firefox));
    let listed = ok(Command::new("modutil")
        .args(["-list", "softoken", "-dbdir"])
        .arg(format!("sql:{}", profile.display()))
        .env_remove("SOFTOKEN_CONFIGDIR"));
    assert!(listed.contains("Token Name: Bob's keys"), "{listed}");
    ok(tool()
        .args(["firefox-unregister", "--firefox-dir"])
        .arg(&firefox));
    fails(
        tool()
            .args(["firefox-register", "--libfile"])
            .arg(&lib)
            .arg("--firefox-dir")
            .arg(top.path()),
        3,
        "profiles.ini",
    );

    // The enterprise policy, printed and merged into an existing file.
    let printed = ok(tool().args(["firefox-policy", "--libfile"]).arg(&lib));
    let v: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        v["policies"]["SecurityDevices"]["Add"]["softoken"],
        lib.display().to_string()
    );
    let policies = write(
        &top.path().join("policies.json"),
        r#"{"policies":{"DisableAppUpdate":true}}"#,
    );
    ok(tool()
        .args(["firefox-policy", "--install", "--libfile"])
        .arg(&lib)
        .arg("--policies-file")
        .arg(&policies));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&policies).unwrap()).unwrap();
    assert_eq!(v["policies"]["DisableAppUpdate"], true);
    assert_eq!(
        v["policies"]["SecurityDevices"]["Add"]["softoken"],
        lib.display().to_string()
    );
    ok(tool()
        .args(["firefox-policy", "--remove", "--policies-file"])
        .arg(&policies));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&policies).unwrap()).unwrap();
    assert!(v["policies"]["SecurityDevices"]["Add"]
        .get("softoken")
        .is_none());
}

/// The parameters reach every p11-kit client: those that pass
/// `x-init-reserved` (p11-kit itself) and GnuTLS's p11tool, which ignores
/// it and so reads the configuration file install writes beside.
#[test]
fn p11kit_sees_the_token_after_install_and_not_after_removal() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let home = top.path().join("home");
    let token_db = top.path().join("token");
    std::fs::create_dir_all(home.join(".config")).unwrap();
    std::fs::create_dir(&token_db).unwrap();
    let params = format!("configdir='sql:{}'", token_db.display());
    let install = |cmd: &mut Command| {
        cmd.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"));
    };
    let mut cmd = tool();
    cmd.args(["p11kit-install", "--name", "softoken-cli-test", "--libfile"])
        .arg(&lib)
        .args(["--params", &params, "--label", "p11-kit keys"]);
    install(&mut cmd);
    ok(&mut cmd);
    let module_file = home.join(".config/pkcs11/modules/softoken-cli-test.module");
    assert!(module_file.exists());
    let config_file = home.join(".config/softoken/softoken.conf");
    let config = std::fs::read_to_string(&config_file).unwrap();
    assert!(config.contains(&params), "{config}");
    open_up(&[
        top.path(),
        &home,
        &home.join(".config"),
        &home.join(".config/pkcs11"),
        &home.join(".config/pkcs11/modules"),
        &home.join(".config/softoken"),
        &token_db,
    ]);
    let list = |home: &Path| {
        let mut c = unprivileged("p11-kit");
        c.arg("list-modules")
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"));
        ok(&mut c)
    };
    let listed = list(&home);
    assert!(listed.contains("softoken-cli-test:"), "{listed}");
    assert!(listed.contains("token: p11-kit keys"), "{listed}");
    assert!(
        token_db.join("cert9.db").exists(),
        "x-init-reserved reached the module"
    );
    let mut p11tool = unprivileged("p11tool");
    p11tool
        .arg("--list-tokens")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"));
    let tokens = ok(&mut p11tool);
    assert!(tokens.contains("Label: p11-kit keys"), "{tokens}");
    assert!(
        !home.join(".local/share/softoken").exists(),
        "p11tool opened the default database"
    );

    // A second module file for the same library is pointed out.
    let twin = home.join(".config/pkcs11/modules/twin.module");
    write(&twin, &format!("module: {}\n", lib.display()));
    let mut cmd = tool();
    cmd.args(["p11kit-install", "--name", "softoken-cli-test", "--libfile"])
        .arg(&lib)
        .args(["--params", &params, "--label", "p11-kit keys"]);
    install(&mut cmd);
    let out = output(&mut cmd);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("{} names the same library", twin.display())),
        "{said}"
    );
    std::fs::remove_file(&twin).unwrap();

    let mut cmd = tool();
    cmd.args(["p11kit-remove", "--name", "softoken-cli-test"]);
    install(&mut cmd);
    ok(&mut cmd);
    assert!(!list(&home).contains("softoken-cli-test"));
    assert!(!config_file.exists());
    let mut cmd = tool();
    cmd.args(["p11kit-remove", "--name", "softoken-cli-test"]);
    install(&mut cmd);
    fails(&mut cmd, 3, "cannot remove");

    // A configuration file of the user's own is neither replaced nor
    // removed, and nothing is installed beside it.
    write(&config_file, "configdir='sql:/mine'\n");
    let mut cmd = tool();
    cmd.args(["p11kit-install", "--name", "softoken-cli-test", "--libfile"])
        .arg(&lib)
        .args(["--params", &params]);
    install(&mut cmd);
    fails(&mut cmd, 8, "is not one softoken-modutil wrote");
    assert!(!module_file.exists());
    let mut cmd = tool();
    cmd.args(["p11kit-install", "--name", "softoken-cli-test", "--libfile"])
        .arg(&lib);
    install(&mut cmd);
    ok(&mut cmd);
    let mut cmd = tool();
    cmd.args(["p11kit-remove", "--name", "softoken-cli-test"]);
    install(&mut cmd);
    ok(&mut cmd);
    assert_eq!(
        std::fs::read_to_string(&config_file).unwrap(),
        "configdir='sql:/mine'\n"
    );
}

#[test]
fn databases_are_administered_through_the_module() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    let pw = write(&top.path().join("pw"), "s3cret\n");
    let wrong = write(&top.path().join("wrong"), "nope\n");
    let p12pw = PathBuf::from(FIXTURES).join("pkcs12/p12-password.txt");
    let p12 = PathBuf::from(FIXTURES).join("pkcs12/fixture-rsa-user.p12");
    let with_db = |args: &[&str]| {
        let mut c = tool();
        // The subcommand, the module and database, then the rest.
        c.arg(args[0])
            .arg("--libfile")
            .arg(&lib)
            .arg("--dbdir")
            .arg(format!("sql:{}", db.display()));
        c.args(&args[1..]);
        c
    };

    ok(with_db(&["create", "--password-file"]).arg(&pw));
    assert!(
        db.join("cert9.db").exists()
            && db.join("key4.db").exists()
            && db.join("pkcs11.txt").exists()
    );
    fails(
        &mut with_db(&["create", "--empty-password"]),
        8,
        "already holds a database",
    );
    let tokens = ok(&mut with_db(&["tokens", "--json"]));
    let t: serde_json::Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(t[0]["login_required"], true, "{tokens}");

    // Import the fixture's PKCS#12 (NSS-made: BER, PBES2, SHA-256 MAC).
    fails(
        with_db(&["import"])
            .arg(&p12)
            .arg("-f")
            .arg(&pw)
            .arg("--p12-password-file")
            .arg(&wrong),
        5,
        "wrong PKCS#12 password",
    );
    fails(
        with_db(&["import"])
            .arg(&p12)
            .arg("-f")
            .arg(&wrong)
            .arg("--p12-password-file")
            .arg(&p12pw),
        5,
        "CKR_PIN_INCORRECT",
    );
    ok(with_db(&["import"])
        .arg(&p12)
        .arg("-f")
        .arg(&pw)
        .arg("--p12-password-file")
        .arg(&p12pw));
    let keys = ok(with_db(&["keys", "--json", "-f"]).arg(&pw));
    let k: serde_json::Value = serde_json::from_str(&keys).unwrap();
    // The key's CKA_ID as NSS gave it, from the PKCS#12 fixture's manifest.
    let p12_manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(FIXTURES).join("pkcs12/MANIFEST.json")).unwrap(),
    )
    .unwrap();
    let key_id = p12_manifest["expected"]["key"]["nss_ckaid"]
        .as_str()
        .unwrap();
    assert_eq!(k[0]["id"], key_id, "{keys}");
    assert_eq!(k[0]["label"], "Fixture RSA User");
    assert_eq!(k[0]["bits"], 2048);
    let certs = ok(with_db(&["certs", "-f"]).arg(&pw));
    assert!(
        certs.contains("Fixture RSA User") && certs.contains("u,u,u"),
        "{certs}"
    );
    assert!(certs.contains("Fixture CA"), "{certs}");
    // NSS's own tools see the same.
    let nss_keys = ok(Command::new("certutil")
        .args(["-K", "-d"])
        .arg(format!("sql:{}", db.display()))
        .arg("-f")
        .arg(&pw));
    assert!(nss_keys.contains(key_id), "{nss_keys}");

    // Export, and NSS's pk12util imports the file into its own database.
    let out = top.path().join("out.p12");
    ok(
        with_db(&["export", "Fixture RSA User", "--iterations", "10000", "-o"])
            .arg(&out)
            .arg("-f")
            .arg(&pw)
            .arg("--p12-password-file")
            .arg(&p12pw),
    );
    let nssdb = top.path().join("nssdb");
    nss_db(&nssdb);
    ok(Command::new("pk12util")
        .arg("-i")
        .arg(&out)
        .arg("-d")
        .arg(format!("sql:{}", nssdb.display()))
        .arg("-w")
        .arg(&p12pw));
    let pem = ok(Command::new("openssl")
        .args(["pkcs12", "-nodes", "-in"])
        .arg(&out)
        .arg("-passin")
        .arg(format!("file:{}", p12pw.display())));
    assert!(pem.contains("BEGIN PRIVATE KEY") && pem.contains("BEGIN CERTIFICATE"));
    // The chain goes with it, as pk12util exports it: the CA the import
    // brought, under its nickname.
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "{pem}");
    assert!(pem.contains("friendlyName: Fixture CA"), "{pem}");
    let nss_keys = ok(Command::new("certutil")
        .args(["-K", "-d"])
        .arg(format!("sql:{}", nssdb.display())));
    assert!(nss_keys.contains(key_id), "{nss_keys}");
    fails(
        with_db(&["export", "absent", "-o"])
            .arg(&out)
            .arg("-f")
            .arg(&pw)
            .arg("--p12-password-file")
            .arg(&p12pw),
        3,
        "no certificate with nickname",
    );

    // Integrity, then a password change.
    let report = ok(with_db(&["check", "--json", "-f"]).arg(&pw));
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["ok"], true, "{report}");
    assert!(r["verified"].as_u64().unwrap() > 0);
    fails(with_db(&["check", "-f"]).arg(&wrong), 5, "wrong password");
    let new = write(&top.path().join("new"), "n3w\n");
    fails(
        with_db(&["passwd", "-f"])
            .arg(&wrong)
            .arg("--new-password-file")
            .arg(&new),
        5,
        "CKR_PIN_INCORRECT",
    );
    ok(with_db(&["passwd", "-f"])
        .arg(&pw)
        .arg("--new-password-file")
        .arg(&new));
    ok(with_db(&["check", "-f"]).arg(&new));
    fails(with_db(&["keys", "-f"]).arg(&pw), 5, "wrong password");

    // A tampered value is reported.
    tamper_private_value(&db);
    let out = output(with_db(&["check", "--json", "-f"]).arg(&new));
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!r["failures"].as_array().unwrap().is_empty(), "{r}");

    // An object removed behind the module's back leaves orphaned records.
    let conn = rusqlite::Connection::open(db.join("key4.db")).unwrap();
    conn.execute("DELETE FROM nssPrivate", []).unwrap();
    drop(conn);
    let out = output(with_db(&["check", "--json", "-f"]).arg(&new));
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["orphaned_records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("sig_key_")),
        "{r}"
    );

    // No database where one is named: a clear message, and none is made.
    let empty = top.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut c = tool();
    c.args(["keys", "--libfile"])
        .arg(&lib)
        .arg("-d")
        .arg(&empty)
        .arg("-f")
        .arg(&pw);
    fails(&mut c, 3, "holds no database");
    assert!(!empty.join("key4.db").exists());
}

/// Flips a bit of a stored key attribute behind the module's back.
fn tamper_private_value(db: &Path) {
    let conn = rusqlite::Connection::open(db.join("key4.db")).unwrap();
    let (id, mut value): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT id, a120 FROM nssPrivate WHERE a120 IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    *value.last_mut().unwrap() ^= 1;
    conn.execute(
        "UPDATE nssPrivate SET a120 = ?1 WHERE id = ?2",
        rusqlite::params![value, id],
    )
    .unwrap();
}

#[test]
fn read_only_directories_are_reported() {
    let top = tempfile::tempdir().unwrap();
    let nssdb = top.path().join("nssdb");
    nss_db(&nssdb);
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&nssdb, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(
        nssdb.join("pkcs11.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut c = unprivileged(env!("CARGO_BIN_EXE_softoken-modutil"));
    c.args([
        "disable",
        "NSS Internal PKCS #11 Module",
        "--slot",
        "1",
        "-d",
    ])
    .arg(&nssdb);
    fails(&mut c, 6, "cannot");
    std::fs::set_permissions(&nssdb, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn certificates_carry_certutils_trust_letters() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    std::fs::create_dir(&db).unwrap();
    for f in ["cert9.db", "key4.db", "pkcs11.txt"] {
        std::fs::copy(PathBuf::from(FIXTURES).join("sql-pw").join(f), db.join(f)).unwrap();
        std::fs::set_permissions(db.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pw = write(&top.path().join("pw"), "fixture-pw\n");
    let ours = ok(tool()
        .args(["certs", "--json", "--libfile"])
        .arg(&lib)
        .arg("-d")
        .arg(&db)
        .arg("-f")
        .arg(&pw));
    let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
    let nss = ok(Command::new("certutil")
        .args(["-L", "-d"])
        .arg(format!("sql:{}", db.display())));
    let mut compared = 0;
    for line in nss.lines().skip(3).filter(|l| !l.trim().is_empty()) {
        let (nick, trust) = line.trim_end().rsplit_once(' ').unwrap();
        let entry = ours
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["nickname"] == nick.trim_end())
            .unwrap_or_else(|| panic!("{nick} missing from {ours}"));
        assert_eq!(entry["trust"], trust, "{nick}");
        compared += 1;
    }
    assert_eq!(compared, 6, "{nss}");
}

#[test]
fn passwords_are_asked_on_the_terminal_without_echo() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    // `script` gives the tool a terminal; the answers go in one at a time.
    let create = |answers: &[&str]| {
        let mut feed = String::new();
        for a in answers {
            feed.push_str(&format!("sleep 0.5; printf '%s\\n' '{a}'; "));
        }
        let command = format!(
            "({feed}) | script -qec \"{} create --libfile {} -d {}\" /dev/null",
            env!("CARGO_BIN_EXE_softoken-modutil"),
            lib.display(),
            db.display()
        );
        output(Command::new("sh").arg("-c").arg(command))
    };
    let out = create(&["typed-pw", "other"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("do not match"), "{text}");
    assert!(!db.join("key4.db").exists());
    let out = create(&["typed-pw", "typed-pw"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("New password: ") && text.contains("Database created"),
        "{text}"
    );
    assert!(
        !text.contains("typed-pw"),
        "the password was echoed: {text}"
    );
    let pw = write(&top.path().join("pw"), "typed-pw\n");
    ok(tool()
        .args(["keys", "--libfile"])
        .arg(&lib)
        .arg("-d")
        .arg(&db)
        .arg("-f")
        .arg(&pw));
    // Without a terminal and without a password file: a clear message.
    let mut c = tool();
    c.args(["keys", "--libfile"])
        .arg(&lib)
        .arg("-d")
        .arg(&db)
        .stdin(std::process::Stdio::null());
    fails(&mut c, 1, "no terminal to ask on");
}

#[test]
fn a_database_this_user_cannot_write_is_read_only() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    let pw = write(&top.path().join("pw"), "pw1\n");
    let new = write(&top.path().join("new"), "pw2\n");
    ok(tool()
        .args(["create", "--libfile"])
        .arg(&lib)
        .arg("-d")
        .arg(&db)
        .arg("-f")
        .arg(&pw));
    for f in ["cert9.db", "key4.db"] {
        std::fs::set_permissions(db.join(f), std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    for p in [top.path(), &db] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in [&pw, &new] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut c = unprivileged(env!("CARGO_BIN_EXE_softoken-modutil"));
    c.args(["passwd", "--libfile"])
        .arg(&lib)
        .arg("-d")
        .arg(&db)
        .arg("-f")
        .arg(&pw)
        .arg("--new-password-file")
        .arg(&new);
    fails(&mut c, 6, "the database is read-only");
    // Reading still works.
    let mut c = unprivileged(env!("CARGO_BIN_EXE_softoken-modutil"));
    c.args(["keys", "--libfile"])
        .arg(&lib)
        .arg("-d")
        .arg(&db)
        .arg("-f")
        .arg(&pw);
    ok(&mut c);
}

#[test]
fn legacy_databases_are_listed_and_checked() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    std::fs::create_dir(&db).unwrap();
    for f in ["cert8.db", "key3.db", "secmod.db"] {
        std::fs::copy(PathBuf::from(FIXTURES).join("dbm-pw").join(f), db.join(f)).unwrap();
        std::fs::set_permissions(db.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pw = write(&top.path().join("pw"), "fixture-pw\n");
    let dbdir = format!("dbm:{}", db.display());
    let keys = ok(tool()
        .args(["keys", "--json", "--libfile"])
        .arg(&lib)
        .args(["-d", &dbdir, "-f"])
        .arg(&pw));
    let keys: serde_json::Value = serde_json::from_str(&keys).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 4, "{keys}");
    let report = ok(tool()
        .args(["check", "--json", "--libfile"])
        .arg(&lib)
        .args(["-d", &dbdir, "-f"])
        .arg(&pw));
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["ok"], true, "{report}");
    assert!(r["decrypted"].as_u64().unwrap() > 0);
}

/// `reset` asks before it destroys (a script must say --yes), then does
/// NSS's reset on a database NSS made: the keys go, the certificates stay
/// (certutil lists them), and the new password opens the token.
#[test]
fn reset_is_confirmed_and_keeps_certificates_of_an_nss_database() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    std::fs::create_dir(&db).unwrap();
    for f in ["cert9.db", "key4.db"] {
        std::fs::copy(PathBuf::from(FIXTURES).join("sql-pw").join(f), db.join(f)).unwrap();
        std::fs::set_permissions(db.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let old = write(&top.path().join("old"), "fixture-pw\n");
    let new = write(&top.path().join("new"), "after reset\n");
    let so = write(&top.path().join("so"), "so pin\n");
    let with_db = |args: &[&str]| {
        let mut c = tool();
        c.arg(args[0])
            .arg("--libfile")
            .arg(&lib)
            .arg("--dbdir")
            .arg(format!("sql:{}", db.display()));
        c.args(&args[1..]);
        c
    };
    let listed = || {
        ok(Command::new("certutil")
            .args(["-L", "-d"])
            .arg(format!("sql:{}", db.display())))
    };
    let certs_before = listed();
    let key4 = std::fs::read(db.join("key4.db")).unwrap();
    fails(
        with_db(&["reset", "--new-password-file"]).arg(&new),
        1,
        "confirm with --yes",
    );
    assert_eq!(std::fs::read(db.join("key4.db")).unwrap(), key4);
    let keys: serde_json::Value =
        serde_json::from_str(&ok(with_db(&["keys", "--json", "-f"]).arg(&old))).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 4, "{keys}");

    ok(with_db(&["reset", "--yes", "--so-pin-file"])
        .arg(&so)
        .arg("--new-password-file")
        .arg(&new));
    assert_eq!(listed(), certs_before);
    let keys = ok(with_db(&["keys", "--json", "-f"]).arg(&new));
    assert_eq!(keys.trim(), "[]", "{keys}");
    fails(with_db(&["keys", "-f"]).arg(&old), 5, "wrong password");
    ok(with_db(&["check", "-f"]).arg(&new));
    // Now the token has an SO PIN: a wrong one is refused, nothing changes.
    fails(
        with_db(&["reset", "--yes", "--so-pin-file"])
            .arg(&old)
            .arg("--new-password-file")
            .arg(&new),
        5,
        "CKR_PIN_INCORRECT",
    );
    assert_eq!(listed(), certs_before);
}

/// `pin-policy`: none at first; the owner sets a lockout, wrong passwords
/// lock the database for every command, `--unlock` lifts it (no password
/// asked: it is locked), `--off` removes the policy.
#[test]
fn pin_policy_locks_and_unlocks() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    let pw = write(&top.path().join("pw"), "s3cret\n");
    let wrong = write(&top.path().join("wrong"), "nope\n");
    let with_db = |args: &[&str]| {
        let mut c = tool();
        c.arg(args[0])
            .arg("--libfile")
            .arg(&lib)
            .arg("--dbdir")
            .arg(format!("sql:{}", db.display()));
        c.args(&args[1..]);
        c
    };
    let state = |c: &mut Command| -> serde_json::Value {
        serde_json::from_str(&ok(c.arg("--json"))).unwrap()
    };
    ok(with_db(&["create", "--password-file"]).arg(&pw));
    assert!(ok(&mut with_db(&["pin-policy"])).contains("No PIN-guessing policy"));
    fails(
        with_db(&["pin-policy", "--lockout", "2", "-f"]).arg(&wrong),
        5,
        "wrong password",
    );
    let set = state(with_db(&["pin-policy", "--lockout", "2", "--delay-ms", "10", "-f"]).arg(&pw));
    assert_eq!(
        (set["lockout"].as_u64(), set["delay_ms"].as_u64()),
        (Some(2), Some(10))
    );
    for _ in 0..2 {
        fails(with_db(&["keys", "-f"]).arg(&wrong), 5, "CKR_PIN_INCORRECT");
    }
    assert_eq!(state(&mut with_db(&["pin-policy"]))["user_failures"], 2);
    fails(with_db(&["keys", "-f"]).arg(&pw), 1, "CKR_PIN_LOCKED");
    ok(&mut with_db(&["pin-policy", "--unlock"]));
    ok(with_db(&["keys", "-f"]).arg(&pw));
    let off = state(with_db(&["pin-policy", "--off", "-f"]).arg(&pw));
    assert_eq!(off["lockout"], 0);
    fails(
        &mut with_db(&["pin-policy", "--delay-ms", "3600000"]),
        1,
        "at most 60000",
    );
}

/// `check` names what failed by label (a certificate's nickname for its
/// trust) and the attribute by name, and says what to do.
#[test]
fn check_names_tampered_objects_by_label() {
    use softoken::nss::{CKA_TRUST_EMAIL_PROTECTION, CKT_NSS_TRUSTED};
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    std::fs::create_dir(&db).unwrap();
    for f in ["cert9.db", "key4.db"] {
        std::fs::copy(PathBuf::from(FIXTURES).join("sql-pw").join(f), db.join(f)).unwrap();
        std::fs::set_permissions(db.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pw = write(&top.path().join("pw"), "fixture-pw\n");
    // Every trust object now trusts for e-mail: the peer's did not.
    let conn = rusqlite::Connection::open(db.join("cert9.db")).unwrap();
    let column = format!("a{CKA_TRUST_EMAIL_PROTECTION:x}");
    let changed = conn
        .execute(
            &format!("UPDATE nssPublic SET {column} = ?1 WHERE {column} IS NOT NULL"),
            [(CKT_NSS_TRUSTED as u32).to_be_bytes().to_vec()],
        )
        .unwrap();
    assert!(changed > 0);
    drop(conn);
    let out = output(
        tool()
            .args(["check", "--libfile"])
            .arg(&lib)
            .arg("--dbdir")
            .arg(format!("sql:{}", db.display()))
            .arg("-f")
            .arg(&pw),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED: object \"trust of Fixture Peer\"")
            && text.contains("CKA_TRUST_EMAIL_PROTECTION")
            && text.contains("restore the database"),
        "{text}"
    );
}

/// Without --firefox-dir, firefox-register finds the profiles where Firefox
/// keeps them today (~/.config/mozilla/firefox) as well as in the classic
/// place, and says where it looked when there are none.
#[test]
fn firefox_register_finds_the_xdg_profile_directory() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let home = top.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let register = || {
        let mut c = tool();
        c.args(["firefox-register", "--libfile"])
            .arg(&lib)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME");
        c
    };
    fails(&mut register(), 3, ".config/mozilla/firefox");
    let mut profiles = Vec::new();
    for (dir, name) in [
        (".config/mozilla/firefox", "xdg.default"),
        (".mozilla/firefox", "classic.default"),
    ] {
        let firefox = home.join(dir);
        nss_db(&firefox.join(name));
        write(
            &firefox.join("profiles.ini"),
            &format!("[Profile0]\nName=default\nIsRelative=1\nPath={name}\nDefault=1\n"),
        );
        profiles.push(firefox.join(name));
    }
    ok(&mut register());
    for profile in profiles {
        let listed = ok(Command::new("modutil")
            .args(["-list", "-dbdir"])
            .arg(format!("sql:{}", profile.display()))
            // The module opens its default database in this HOME.
            .env("HOME", &home)
            .env_remove("SOFTOKEN_CONFIGDIR"));
        assert!(
            listed.contains("softoken"),
            "{}: {listed}",
            profile.display()
        );
    }
}

/// A copy of a fixture directory's database files.
fn copy_fixture(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(Path::new(FIXTURES).join(name)).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        std::fs::copy(entry.path(), &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn upgrade_updates_legacy_files_and_leaves_them_as_they_were() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("profile");
    copy_fixture("dbm-pw", &db);
    let legacy_before = std::fs::read(db.join("key3.db")).unwrap();
    let pw = write(&top.path().join("pw"), "fixture-pw\n");
    let wrong = write(&top.path().join("wrong"), "nope\n");
    let run = |dbdir: &str, args: &[&str]| {
        let mut c = tool();
        c.arg("upgrade")
            .arg("--libfile")
            .arg(&lib)
            .arg("--dbdir")
            .arg(dbdir)
            .args(args);
        c
    };
    let sql = format!("sql:{}", db.display());
    // The listing commands read a directory of legacy files too.
    let certs = ok(tool()
        .args(["certs", "--libfile"])
        .arg(&lib)
        .args(["--dbdir", &sql]));
    assert!(certs.contains("Fixture CA"), "{certs}");

    fails(
        run(&sql, &["--password-file"]).arg(&wrong),
        5,
        "legacy password was refused",
    );
    fails(
        &mut run(&format!("dbm:{}", db.display()), &[]),
        2,
        "name it --dbdir sql:DIR",
    );
    let empty = top.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(
        &mut run(&format!("sql:{}", empty.display()), &[]),
        3,
        "no cert8.db or key3.db",
    );
    let out = ok(run(&sql, &["--json", "--password-file"]).arg(&pw));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["certificates"], 6, "{out}");
    assert_eq!(report["private_keys"], 4, "{out}");
    assert_eq!(report["public_keys"], 4, "{out}");
    assert_eq!(std::fs::read(db.join("key3.db")).unwrap(), legacy_before);

    // NSS lists the keys from key4.db alone.
    for f in ["cert8.db", "key3.db"] {
        std::fs::remove_file(db.join(f)).unwrap();
    }
    let keys = ok(Command::new("certutil")
        .args(["-K", "-d", &sql, "-f"])
        .arg(&pw));
    assert_eq!(
        keys.lines().filter(|l| l.starts_with('<')).count(),
        4,
        "{keys}"
    );
}

/// certutil's listing of a database's certificates and trust, in order.
fn nss_certificate_listing(dir: &Path, pw: &Path) -> Vec<String> {
    let out = ok(Command::new("certutil")
        .args(["-L", "-d"])
        .arg(format!("sql:{}", dir.display()))
        .arg("-f")
        .arg(pw));
    let mut lines: Vec<String> = out
        .lines()
        .skip(4)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

#[test]
fn merge_does_what_certutil_merge_does() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let ours = top.path().join("ours");
    let theirs = top.path().join("theirs");
    let source = top.path().join("source");
    copy_fixture("merge-sql/before", &ours);
    copy_fixture("merge-sql/before", &theirs);
    copy_fixture("merge-sql/source", &source);
    let target_pw = write(&top.path().join("target-pw"), "target-pw\n");
    let source_pw = write(&top.path().join("source-pw"), "fixture-pw\n");
    let wrong = write(&top.path().join("wrong"), "nope\n");
    let merge = |source: &Path, args: &[&str]| {
        let mut c = tool();
        c.args(["merge", "--libfile"])
            .arg(&lib)
            .arg("--dbdir")
            .arg(format!("sql:{}", ours.display()))
            .arg("--password-file")
            .arg(&target_pw)
            .arg("--source")
            .arg(format!("sql:{}", source.display()))
            .args(args);
        c
    };

    fails(
        &mut merge(&top.path().join("nowhere"), &[]),
        3,
        "is not a directory",
    );
    fails(
        merge(&source, &["--source-password-file"]).arg(&wrong),
        5,
        "Password of the source database: wrong password",
    );
    let out = ok(merge(&source, &["--json", "--source-password-file"]).arg(&source_pw));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["added"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(report["skipped"], serde_json::json!([]), "{out}");
    let again = ok(merge(&source, &["--json", "--source-password-file"]).arg(&source_pw));
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["added"], 0, "{again}");
    assert_eq!(again["updated"], 0, "{again}");

    // NSS's merge of the same databases lists the same certificates,
    // nicknames and trust, and the same keys.
    ok(Command::new("certutil")
        .args(["--merge", "-d"])
        .arg(format!("sql:{}", theirs.display()))
        .arg("-f")
        .arg(&target_pw)
        .arg("--source-dir")
        .arg(format!("sql:{}", source.display()))
        .arg("-@")
        .arg(&source_pw));
    assert_eq!(
        nss_certificate_listing(&ours, &target_pw),
        nss_certificate_listing(&theirs, &target_pw)
    );
    let keys = |dir: &Path| {
        let out = ok(Command::new("certutil")
            .args(["-K", "-d"])
            .arg(format!("sql:{}", dir.display()))
            .arg("-f")
            .arg(&target_pw));
        let mut names: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with('<'))
            .map(|l| l.rsplit("  ").next().unwrap_or("").trim().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(keys(&ours), keys(&theirs));
    ok(tool()
        .args(["check", "--libfile"])
        .arg(&lib)
        .arg("--dbdir")
        .arg(format!("sql:{}", ours.display()))
        .arg("--password-file")
        .arg(&target_pw));
}

#[test]
fn merge_reports_what_it_leaves_out() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let target_pw = write(&top.path().join("target-pw"), "target-pw\n");
    let source_pw = write(&top.path().join("source-pw"), "fixture-pw\n");
    let run = |target: &Path, source: &Path, args: &[&str]| {
        let mut c = tool();
        c.args(["merge", "--libfile"])
            .arg(&lib)
            .arg("--dbdir")
            .arg(format!("sql:{}", target.display()))
            .arg("--password-file")
            .arg(&target_pw)
            .arg("--source")
            .arg(format!("sql:{}", source.display()))
            .args(args)
            .stdin(std::process::Stdio::null());
        output(&mut c)
    };

    // No source password and no terminal to ask on: the private keys wait.
    let target = top.path().join("target");
    let source = top.path().join("source");
    copy_fixture("merge-sql/before", &target);
    copy_fixture("merge-sql/source", &source);
    let out = run(&target, &source, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("private: give the source's password"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("objects of the source were not merged"));
    let out = run(
        &target,
        &source,
        &["--source-password-file", source_pw.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");

    // A value changed on disk in the source is not carried over.
    let target = top.path().join("target2");
    let source = top.path().join("source2");
    copy_fixture("merge-sql/before", &target);
    copy_fixture("merge-sql/source", &source);
    tamper_private_value(&source);
    let out = run(
        &target,
        &source,
        &["--source-password-file", source_pw.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fails its integrity check"), "{stdout}");

    // A source whose files carry a prefix (certutil's --source-prefix).
    let target = top.path().join("target3");
    let source = top.path().join("source3");
    copy_fixture("merge-sql/before", &target);
    copy_fixture("merge-sql/source", &source);
    for f in ["cert9.db", "key4.db"] {
        std::fs::rename(source.join(f), source.join(format!("app-{f}"))).unwrap();
    }
    let pw = ["--source-password-file", source_pw.to_str().unwrap()];
    let out = run(&target, &source, &pw);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no key4.db"));
    let out = run(
        &target,
        &source,
        &[&pw[..], &["--source-prefix", "app-"]].concat(),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!source.join("cert9.db").exists());
}

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A command on a private SoftHSMv2 token store.
fn softhsm(program: &str, conf: &Path) -> Command {
    let mut c = Command::new(program);
    c.env("SOFTHSM2_CONF", conf);
    c
}

/// Moving off SoftHSMv2: its extractable keys, its certificate and their
/// labels merged into a softoken database; each key signs or encrypts as it
/// did there; a key that cannot leave its token is reported and left; a
/// second run adds nothing.
#[test]
fn merge_takes_a_softhsm_token() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let w = |name: &str| top.path().join(name);
    std::fs::create_dir(w("tokens")).unwrap();
    let conf = write(
        &w("softhsm2.conf"),
        &format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            w("tokens").display()
        ),
    );
    ok(softhsm("softhsm2-util", &conf).args([
        "--init-token",
        "--free",
        "--label",
        "Old HSM",
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]));
    let hsm = |args: &[&str]| {
        let mut c = softhsm("pkcs11-tool", &conf);
        c.args([
            "--module",
            SOFTHSM,
            "--token-label",
            "Old HSM",
            "--login",
            "--pin",
            "1234",
        ])
        .args(args);
        c
    };
    ok(&mut hsm(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--id",
        "01",
        "--label",
        "rsa key",
        "--extractable",
    ]));
    ok(&mut hsm(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "02",
        "--label",
        "ec key",
        "--extractable",
    ]));
    ok(&mut hsm(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--id",
        "03",
        "--label",
        "aes key",
        "--extractable",
    ]));
    ok(&mut hsm(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "04",
        "--label",
        "stuck key",
    ]));
    ok(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "5",
            "-subj",
            "/CN=hsm cert",
        ])
        .arg("-keyout")
        .arg(w("cert.key"))
        .args(["-outform", "DER", "-out"])
        .arg(w("cert.der")));
    ok(hsm(&["--write-object"])
        .arg(w("cert.der"))
        .args(["--type", "cert", "--id", "01", "--label", "rsa cert"]));

    let db = w("db");
    std::fs::create_dir(&db).unwrap();
    let pw = write(&w("pw"), "target-pw\n");
    let pin = write(&w("pin"), "1234\n");
    let sql = format!("sql:{}", db.display());
    ok(tool()
        .args(["create", "--libfile"])
        .arg(&lib)
        .args(["--dbdir", &sql, "-f"])
        .arg(&pw));
    let merge = || {
        let mut c = tool();
        c.env("SOFTHSM2_CONF", &conf)
            .args(["merge", "--json", "--libfile"])
            .arg(&lib)
            .args(["--dbdir", &sql, "-f"])
            .arg(&pw)
            .args([
                "--source-module",
                SOFTHSM,
                "--source-token",
                "Old HSM",
                "--source-pin-file",
            ])
            .arg(&pin);
        output(&mut c)
    };
    for run in 0..2 {
        let out = merge();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["added"], if run == 0 { 7 } else { 0 }, "{report}");
        assert_eq!(
            report["skipped"],
            serde_json::json!([{"label": "stuck key", "why": "not extractable: it cannot leave its token"}]),
            "{report}"
        );
    }

    // The keys work in softoken as they did in SoftHSM.
    let ours = |args: &[&str]| {
        let mut c = Command::new("pkcs11-tool");
        c.env("SOFTOKEN_CONFIGDIR", &sql)
            .arg("--module")
            .arg(&lib)
            .args(["--login", "--pin", "target-pw"])
            .args(args);
        c
    };
    std::fs::write(w("msg"), "moving off an HSM").unwrap();
    for (id, mechanism, public) in [
        ("01", "SHA256-RSA-PKCS", "rsa.pub"),
        ("02", "ECDSA-SHA256", "ec.pub"),
    ] {
        ok(hsm(&["--read-object", "--type", "pubkey", "--id", id, "-o"]).arg(w(public)));
        ok(ours(&[
            "--sign",
            "--mechanism",
            mechanism,
            "--signature-format",
            "openssl",
            "--id",
            id,
            "-i",
        ])
        .arg(w("msg"))
        .arg("-o")
        .arg(w("sig")));
        ok(Command::new("openssl")
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(w(public))
            .arg("-out")
            .arg(w("pub.pem")));
        ok(Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(w("pub.pem"))
            .arg("-signature")
            .arg(w("sig"))
            .arg(w("msg")));
    }
    std::fs::write(w("block"), [7u8; 16]).unwrap();
    let iv = "00112233445566778899aabbccddeeff";
    let encrypt = |mut c: Command, out: &str| {
        ok(c.args([
            "--encrypt",
            "--mechanism",
            "AES-CBC",
            "--iv",
            iv,
            "--id",
            "03",
            "-i",
        ])
        .arg(w("block"))
        .arg("-o")
        .arg(w(out)));
        std::fs::read(w(out)).unwrap()
    };
    assert_eq!(encrypt(hsm(&[]), "e-hsm"), encrypt(ours(&[]), "e-ours"));

    // Labels and the certificate are there, as NSS lists them.
    let certs = ok(tool()
        .args(["certs", "--libfile"])
        .arg(&lib)
        .args(["--dbdir", &sql, "-f"])
        .arg(&pw));
    assert!(certs.contains("rsa cert"), "{certs}");
    let keys = ok(tool()
        .args(["keys", "--libfile"])
        .arg(&lib)
        .args(["--dbdir", &sql, "-f"])
        .arg(&pw));
    assert!(
        keys.contains("rsa key") && keys.contains("ec key") && !keys.contains("stuck key"),
        "{keys}"
    );
    let listed = ok(Command::new("certutil").args(["-L", "-d", &sql]));
    assert!(listed.contains("rsa cert"), "{listed}");
}

/// PKCS#12 files of old exporters: OpenSSL's `-legacy` (3DES key, RC2-40
/// certificates) and RC2-128 certificates import, NSS lists the result,
/// and an encryption still unsupported is named, not given as an OID.
#[test]
fn legacy_pkcs12_files_import() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let w = |name: &str| top.path().join(name);
    let pw = write(&w("pw"), "s3cret\n");
    let p12pw = write(&w("p12pw"), "p12pw\n");
    let db = w("db");
    let sql = format!("sql:{}", db.display());
    ok(tool()
        .args(["create", "--libfile"])
        .arg(&lib)
        .args(["--dbdir", &sql, "-f"])
        .arg(&pw));
    let import = |file: &Path| {
        let mut c = tool();
        c.args(["import", "--libfile"])
            .arg(&lib)
            .args(["--dbdir", &sql, "-f"])
            .arg(&pw)
            .arg("--p12-password-file")
            .arg(&p12pw)
            .arg(file);
        c
    };
    for (name, extra) in [
        ("legacy", vec![]),
        ("rc2-128", vec!["-certpbe", "PBE-SHA1-RC2-128"]),
        (
            "rc4",
            vec![
                "-certpbe",
                "PBE-SHA1-RC4-128",
                "-keypbe",
                "PBE-SHA1-RC4-128",
            ],
        ),
    ] {
        ok(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "5",
            ])
            .args(["-subj", &format!("/CN={name} export")])
            .arg("-keyout")
            .arg(w(&format!("{name}.key")))
            .arg("-out")
            .arg(w(&format!("{name}.pem"))));
        ok(Command::new("openssl")
            .args(["pkcs12", "-export", "-legacy", "-passout", "pass:p12pw"])
            .args(&extra)
            .args(["-name", &format!("{name} export")])
            .arg("-inkey")
            .arg(w(&format!("{name}.key")))
            .arg("-in")
            .arg(w(&format!("{name}.pem")))
            .arg("-out")
            .arg(w(&format!("{name}.p12"))));
    }
    ok(&mut import(&w("legacy.p12")));
    ok(&mut import(&w("rc2-128.p12")));
    fails(
        &mut import(&w("rc4.p12")),
        1,
        "pbeWithSHAAnd128BitRC4 is not supported",
    );
    let keys = ok(Command::new("certutil")
        .args(["-K", "-d", &sql, "-f"])
        .arg(&pw));
    assert!(
        keys.contains("legacy export") && keys.contains("rc2-128 export"),
        "{keys}"
    );
    let certs = ok(Command::new("certutil").args(["-L", "-d", &sql]));
    assert!(
        certs.contains("legacy export") && certs.contains("rc2-128 export"),
        "{certs}"
    );
}

/// A database the module cannot use is named for what it is, with what to
/// do, and is left as it is: files that are not a database, and a
/// directory that is not there.
#[test]
fn databases_that_do_not_open_are_explained() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let bad = top.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let noise: Vec<u8> = (0..6000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(bad.join("key4.db"), &noise).unwrap();
    for command in ["keys", "check", "tokens"] {
        let mut cmd = tool();
        cmd.arg("--dbdir")
            .arg(format!("sql:{}", bad.display()))
            .arg(command)
            .arg("--libfile")
            .arg(&lib);
        fails(
            &mut cmd,
            1,
            "CKR_TOKEN_NOT_RECOGNIZED (the files there are not an NSS",
        );
    }
    assert_eq!(std::fs::read(bad.join("key4.db")).unwrap(), noise);
    assert!(!bad.join("cert9.db").exists());
    let mut cmd = tool();
    cmd.arg("--dbdir")
        .arg(format!("sql:{}", top.path().join("missing").display()))
        .arg("keys")
        .arg("--libfile")
        .arg(&lib);
    fails(&mut cmd, 3, "make one with `softoken-modutil create`");
    assert!(!top.path().join("missing").exists());
}

/// Options a command would ignore are refused (the user meant something by
/// them); a bare library name is the file here; `tokens` names each
/// token's database.
#[test]
fn options_and_paths_are_taken_as_meant() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let profile = top.path().join("profile");
    std::fs::create_dir(&profile).unwrap();
    let mut cmd = tool();
    cmd.args(["firefox-register", "--dbdir", "sql:/elsewhere", "--profile"])
        .arg(&profile)
        .arg("--libfile")
        .arg(&lib);
    fails(&mut cmd, 2, "this command takes no --dbdir");
    assert!(!profile.join("pkcs11.txt").exists());
    let db = top.path().join("db");
    let mut cmd = tool();
    cmd.args(["create", "--empty-password", "--dbdir"])
        .arg(format!("sql:{}", db.display()))
        .arg("--libfile")
        .arg(&lib);
    ok(&mut cmd);
    let mut cmd = tool();
    cmd.args(["--force", "keys", "--dbdir"])
        .arg(format!("sql:{}", db.display()))
        .arg("--libfile")
        .arg(&lib);
    fails(&mut cmd, 2, "this command takes no --force");

    let mut cmd = tool();
    cmd.args(["check-library", "libsoftoken-test.so"])
        .current_dir(top.path());
    let said = ok(&mut cmd);
    assert!(
        said.starts_with("./libsoftoken-test.so is a working PKCS#11 module"),
        "{said}"
    );

    let mut cmd = tool();
    cmd.args(["tokens", "--dbdir"])
        .arg(format!("sql:{}", db.display()))
        .arg("--libfile")
        .arg(&lib);
    let listed = ok(&mut cmd);
    assert!(
        listed.contains(&format!("database sql:{}", db.display())),
        "{listed}"
    );
}

/// A PKCS#12 file this user may not read is a failure to read it (exit 1),
/// not a read-only database (exit 6).
#[test]
fn an_unreadable_pkcs12_file_is_not_read_only() {
    let top = tempfile::tempdir().unwrap();
    let lib = module_copy(top.path());
    let db = top.path().join("db");
    let mut cmd = tool();
    cmd.args(["create", "--empty-password", "--dbdir"])
        .arg(format!("sql:{}", db.display()))
        .arg("--libfile")
        .arg(&lib);
    ok(&mut cmd);
    let p12 = write(&top.path().join("secret.p12"), "not for you");
    std::fs::set_permissions(&p12, std::fs::Permissions::from_mode(0o000)).unwrap();
    open_up(&[top.path(), &db]);
    for file in ["cert9.db", "key4.db"] {
        std::fs::set_permissions(db.join(file), std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let mut cmd = unprivileged(env!("CARGO_BIN_EXE_softoken-modutil"));
    cmd.args(["import"])
        .arg(&p12)
        .arg("--dbdir")
        .arg(format!("sql:{}", db.display()))
        .arg("--libfile")
        .arg(&lib)
        .env("HOME", top.path());
    fails(&mut cmd, 1, "cannot read");
}
