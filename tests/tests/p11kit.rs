//! p11-kit sees the module through a `.module` file in the user's
//! configuration, and every p11-kit client with it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use softoken_tests::*;

/// p11-kit ignores a user's configuration when running as root, so as root
/// the client runs as `nobody` (which then must be able to read and write
/// the test's files).
fn p11kit_list_modules(home: &std::path::Path, db: &std::path::Path) -> String {
    run(p11kit_client("p11-kit", home, db).arg("list-modules"))
}

/// A p11-kit client run with the user configuration of `home`, on the
/// database `db`.
fn p11kit_client(program: &str, home: &std::path::Path, db: &std::path::Path) -> Command {
    let mut cmd;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "timeout",
            "60",
            program,
        ]);
    } else {
        cmd = Command::new("timeout");
        cmd.args(["60", program]);
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("SOFTOKEN_CONFIGDIR", format!("sql:{}", db.display()));
    cmd
}

#[test]
fn p11kit_lists_module_slot_and_token() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let modules = home.join(".config/pkcs11/modules");
    let db = top.path().join("db");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let so = top.path().join("libsoftoken.so");
    std::fs::copy(module_path(), &so).unwrap();
    std::fs::write(
        modules.join("softoken-test.module"),
        format!("module: {}\n", so.display()),
    )
    .unwrap();
    for p in [
        top.path(),
        &home,
        &home.join(".config"),
        &home.join(".config/pkcs11"),
        &modules,
        &db,
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o755)).unwrap();

    let listed = p11kit_list_modules(&home, &db);
    let ours = listed
        .split("\n")
        .skip_while(|l| !l.starts_with("softoken-test:"))
        .take_while(|l| l.starts_with("softoken-test:") || l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ours.contains(&so.display().to_string()), "{listed}");
    assert!(
        ours.contains("library-description: softoken PKCS#11 soft token"),
        "{ours}"
    );
    assert!(ours.contains("token: softoken"), "{ours}");
    assert!(
        ours.contains("token-initialized") && ours.contains("user-pin-initialized"),
        "{ours}"
    );
    // The database was made where the module was told.
    assert!(db.join("cert9.db").exists() && db.join("key4.db").exists());

    std::fs::remove_file(modules.join("softoken-test.module")).unwrap();
    let listed = p11kit_list_modules(&home, &db);
    assert!(!listed.contains("softoken-test"), "{listed}");
}

/// p11-kit's remote mode: the module runs in a `p11-kit remote` process
/// that p11-kit starts for a module file's `remote: |COMMAND`, and its
/// token reaches p11-kit's clients (p11-kit itself, GnuTLS's p11tool)
/// through p11-kit's protocol.
#[test]
fn p11kit_remote_serves_the_token_from_another_process() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let modules = home.join(".config/pkcs11/modules");
    let db = top.path().join("db");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let so = top.path().join("libsoftoken.so");
    std::fs::copy(module_path(), &so).unwrap();
    std::fs::write(
        modules.join("softoken-remote.module"),
        format!("remote: |p11-kit remote {}\n", so.display()),
    )
    .unwrap();
    for p in [
        top.path(),
        &home,
        &home.join(".config"),
        &home.join(".config/pkcs11"),
        &modules,
        &db,
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o755)).unwrap();

    let listed = p11kit_list_modules(&home, &db);
    let ours = listed
        .split('\n')
        .skip_while(|l| !l.starts_with("softoken-remote:"))
        .take_while(|l| l.starts_with("softoken-remote:") || l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ours.contains("token: softoken"), "{listed}");
    assert!(
        db.join("key4.db").exists(),
        "the remote module opened the database"
    );

    let tokens = run(p11kit_client("p11tool", &home, &db).arg("--list-tokens"));
    assert!(tokens.contains("Label: softoken"), "{tokens}");
    // An object made directly is listed through the remote module.
    let raw = softoken_tests::raw::Raw::with_params(&sql_params(&db));
    let s = raw.open(raw.slots()[0], true).unwrap();
    raw.create(
        s,
        &[
            (
                pkcs11_sys::CKA_CLASS,
                softoken_tests::raw::ul(pkcs11_sys::CKO_DATA),
            ),
            (pkcs11_sys::CKA_TOKEN, softoken_tests::raw::TRUE.to_vec()),
            (pkcs11_sys::CKA_LABEL, b"made directly".to_vec()),
        ],
    )
    .unwrap();
    assert_eq!(raw.finalize(), pkcs11_sys::CKR_OK);
    for file in ["cert9.db", "key4.db"] {
        std::fs::set_permissions(db.join(file), std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let all =
        run(p11kit_client("p11tool", &home, &db).args(["--list-all", "pkcs11:token=softoken"]));
    assert!(
        all.contains("made%20directly") || all.contains("made directly"),
        "{all}"
    );
}
