//! p11-kit sees the module through a `.module` file in the user's
//! configuration, and every p11-kit client with it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use softoken_tests::*;

/// p11-kit ignores a user's configuration when running as root, so as root
/// the client runs as `nobody` (which then must be able to read and write
/// the test's files).
fn p11kit_list_modules(home: &std::path::Path, db: &std::path::Path) -> String {
    let mut cmd;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "p11-kit",
        ]);
    } else {
        cmd = Command::new("p11-kit");
    }
    cmd.arg("list-modules")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("SOFTOKEN_CONFIGDIR", format!("sql:{}", db.display()));
    run(&mut cmd)
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
