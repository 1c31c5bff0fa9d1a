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
    open_up(&[
        top.path(),
        &home,
        &home.join(".config"),
        &home.join(".config/pkcs11"),
        &home.join(".config/pkcs11/modules"),
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

    let mut cmd = tool();
    cmd.args(["p11kit-remove", "--name", "softoken-cli-test"]);
    install(&mut cmd);
    ok(&mut cmd);
    assert!(!list(&home).contains("softoken-cli-test"));
    let mut cmd = tool();
    cmd.args(["p11kit-remove", "--name", "softoken-cli-test"]);
    install(&mut cmd);
    fails(&mut cmd, 3, "cannot remove");
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
