//! The benchmark runs one short round against our module and prints a row
//! for every operation it measures (its numbers are for docs/BENCHMARKS.md,
//! never checked here).

use std::process::Command;

#[test]
fn one_quick_round_against_softoken() {
    let module = softoken_tests::module_copy();
    let out = Command::new(env!("CARGO_BIN_EXE_softoken-bench"))
        .arg("--quick")
        .arg("--module")
        .arg(format!("softoken={}", module.path.display()))
        .output()
        .expect("run softoken-bench");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "C_Initialize+OpenSession+Login",
        "RSA-2048 PSS SHA-256 sign",
        "ECDSA P-256 sign",
        "ECDH P-256 derive",
        "AES-256-GCM encrypt 64 B",
        "HMAC-SHA256 1 MiB",
        "token object creation",
        "C_FindObjects by CKA_LABEL among 100",
        "ECDSA P-256 sign, 2 thread(s)",
        "C_Initialize+OpenSession+Login with 100 objects",
        "peak RSS of a process that opened a token of 100 objects",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {row}")))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{table}"));
        assert!(!line.contains("n/a"), "{line}");
    }
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_softoken-bench"))
        .arg("--frobnicate")
        .output()
        .expect("run softoken-bench");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
}
