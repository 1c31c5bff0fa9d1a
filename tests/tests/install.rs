//! `scripts/install`: the module where PKCS#11 modules live, stripped,
//! with its SONAME and its debug information in a file of its own that
//! the module names; the tool beside it finding the module by itself, and
//! registering that path; and the uninstall removing it all.

use std::path::{Path, PathBuf};
use std::process::Command;

use softoken_tests::*;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn readelf(args: &[&str], file: &Path) -> String {
    run(Command::new("readelf").args(args).arg(file))
}

#[test]
fn the_install_script_puts_a_stripped_module_where_modules_live() {
    let top = tempfile::tempdir().unwrap();
    let prefix = top.path().join("usr");
    let script = repository().join("scripts/install");
    let said = run(Command::new(&script)
        .arg("--prefix")
        .arg(&prefix)
        .arg("--no-p11-kit"));
    let module = prefix.join("lib/pkcs11/libsoftoken.so");
    let debug = prefix.join("lib/pkcs11/.debug/libsoftoken.so.debug");
    let tool = prefix.join("bin/softoken-modutil");
    let pages = [
        prefix.join("share/man/man1/softoken-modutil.1"),
        prefix.join("share/man/man1/softoken-modutil-merge.1"),
        prefix.join("share/man/man7/softoken.7"),
    ];
    assert!(
        said.contains(&format!("Installed {}", module.display())),
        "{said}"
    );
    for page in &pages {
        let shown = run(Command::new("man")
            .arg("-l")
            .arg(page)
            .env("MANPAGER", "cat"));
        assert!(shown.contains("softoken"), "{}: {shown}", page.display());
    }

    let dynamic = readelf(&["-d"], &module);
    assert!(
        dynamic.contains("Library soname: [libsoftoken.so]"),
        "{dynamic}"
    );
    let sections = readelf(&["-S", "-W"], &module);
    assert!(!sections.contains(".debug_info"), "{sections}");
    assert!(sections.contains(".gnu_debuglink"), "{sections}");
    assert!(readelf(&["-S", "-W"], &debug).contains(".debug_info"));
    let size = std::fs::metadata(&module).unwrap().len();
    assert!(size < 12 << 20, "the installed module is {size} bytes");
    // Only the PKCS#11 entry points are exported.
    let symbols = readelf(&["--dyn-syms", "-W"], &module);
    assert!(symbols.contains(" C_GetFunctionList"), "{symbols}");

    // The tool finds the module in ../lib/pkcs11 and registers that path.
    let home = top.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let tokens = run(Command::new(&tool)
        .arg("tokens")
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SOFTOKEN_CONFIGDIR"));
    assert!(tokens.contains("softoken"), "{tokens}");
    let modules = top.path().join("modules");
    run(Command::new(&tool)
        .args(["p11kit-install", "--dir"])
        .arg(&modules)
        .env("HOME", &home));
    let registered = std::fs::read_to_string(modules.join("softoken.module")).unwrap();
    assert!(
        registered.contains(&format!("\nmodule: {}\n", module.display())),
        "{registered}"
    );
    let listed = run(Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&module)
        .arg("-L")
        .env("HOME", &home));
    assert!(listed.contains("token label        : softoken"), "{listed}");

    run(Command::new(&script)
        .arg("--prefix")
        .arg(&prefix)
        .args(["--no-p11-kit", "--uninstall"]));
    for gone in [&module, &debug, &tool].into_iter().chain(&pages) {
        assert!(!gone.exists(), "{} is left", gone.display());
    }
}

/// The Debian package (cargo-deb, from the release build): the module in
/// p11-kit's module directory with p11-kit's module file beside SoftHSMv2's,
/// the tool finding the module there, debug information apart. (`.ci/run`
/// installs it with dpkg and lists it with p11-kit.)
#[test]
fn the_debian_package_holds_the_module_where_p11_kit_loads_it() {
    let top = tempfile::tempdir().unwrap();
    run(Command::new("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "softoken",
            "-p",
            "softoken-modutil",
        ])
        .current_dir(repository()));
    run(
        Command::new(repository().join("target/release/softoken-modutil"))
            .arg("man")
            .arg(repository().join("target/man")),
    );
    let deb = top.path().join("softoken.deb");
    run(Command::new("cargo")
        .args(["deb", "-p", "softoken-modutil", "--no-build", "--output"])
        .arg(&deb)
        .current_dir(repository()));
    let field = |name: &str| run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "softoken");
    assert!(field("Depends").contains("libc6"));
    let root = top.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let module = root.join("usr/lib/x86_64-linux-gnu/pkcs11/libsoftoken.so");
    let p11kit =
        std::fs::read_to_string(root.join("usr/share/p11-kit/modules/softoken.module")).unwrap();
    assert!(p11kit.contains("\nmodule: libsoftoken.so\n"), "{p11kit}");
    assert!(readelf(&["-d"], &module).contains("Library soname: [libsoftoken.so]"));
    assert!(!readelf(&["-S", "-W"], &module).contains(".debug_info"));
    let debug_files = run(Command::new("find")
        .arg(root.join("usr/lib/debug"))
        .args(["-name", "*.debug"]));
    assert_eq!(debug_files.lines().count(), 2, "{debug_files}");
    for page in [
        "man1/softoken-modutil.1.gz",
        "man1/softoken-modutil-keys.1.gz",
        "man7/softoken.7.gz",
    ] {
        assert!(root.join("usr/share/man").join(page).exists(), "{page}");
    }

    let home = top.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let tool = root.join("usr/bin/softoken-modutil");
    let checked = run(Command::new(&tool).arg("check-library").arg(&module));
    assert!(checked.contains("softoken"), "{checked}");
    let modules = top.path().join("modules");
    run(Command::new(&tool)
        .args(["p11kit-install", "--dir"])
        .arg(&modules)
        .env("HOME", &home));
    let registered = std::fs::read_to_string(modules.join("softoken.module")).unwrap();
    assert!(
        registered.contains(&format!(
            "\nmodule: {}\n",
            module.canonicalize().unwrap().display()
        )),
        "the tool found the packaged module: {registered}"
    );
}
