//! OpenSC's pkcs11-tool against the built module: each command is its own
//! process, as a user runs them, on a database named by SOFTOKEN_CONFIGDIR.

use std::path::Path;
use std::process::{Command, Output};

use softoken_tests::*;

struct Tool {
    module: ModuleCopy,
    db: tempfile::TempDir,
}

impl Tool {
    fn new() -> Tool {
        Tool {
            module: module_copy(),
            db: tempfile::tempdir().unwrap(),
        }
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&self.module.path)
            .args(args)
            .env(
                "SOFTOKEN_CONFIGDIR",
                format!("sql:{}", self.db.path().display()),
            )
            .output()
            .expect("pkcs11-tool (apt-get install opensc)")
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?} failed\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args)).unwrap()
    }

    /// Runs a command that must fail with the given code in its message.
    fn fails_with(&self, args: &[&str], code: &str) {
        let out = self.output(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "pkcs11-tool {args:?} succeeded:\n{text}"
        );
        assert!(
            text.contains(code),
            "pkcs11-tool {args:?}: expected {code} in\n{text}"
        );
    }
}

/// Arguments with a login as user "pw" in front.
fn with_login<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--login", "--pin", "pw"][..], args].concat()
}

#[test]
fn info_slots_and_mechanisms() {
    let t = Tool::new();
    assert!(t.text(&["-I"]).contains("softoken"));
    let slots = t.text(&["-L"]);
    assert!(slots.contains("Slot 0 (0x2)"), "{slots}");
    assert!(slots.contains("token label        : softoken"), "{slots}");
    assert!(slots.contains("PIN initialized"), "{slots}");
    assert!(
        !slots.contains("login required"),
        "a new database has the empty password: {slots}"
    );
    let tokens = t.text(&["-T"]);
    assert!(tokens.contains("token label        : softoken"), "{tokens}");
    let mechs = t.text(&["-M"]);
    for m in [
        "SHA-1, digest",
        "SHA256, digest",
        "SHA512, digest",
        "SHA3-256, digest",
        "DES3-CBC-PAD, keySize={16,24}, encrypt, decrypt, wrap, unwrap",
        "DES3-CMAC, keySize={16,24}, sign, verify",
        "DES2-KEY-GEN, keySize={16,16}, generate",
    ] {
        assert!(mechs.contains(m), "{m} missing from\n{mechs}");
    }
}

#[test]
fn init_token_pins_and_login() {
    let t = Tool::new();
    assert!(t
        .text(&[
            "--init-token",
            "--so-pin",
            "sopin1",
            "--label",
            "tool token"
        ])
        .contains("successfully initialized"));
    assert!(t
        .text(&["--init-pin", "--so-pin", "sopin1", "--pin", "user1"])
        .contains("successfully initialized"));
    t.fails_with(
        &["--init-pin", "--so-pin", "wrong-so", "--pin", "user1"],
        "CKR_PIN_INCORRECT",
    );
    let token = t.text(&["-T"]);
    assert!(token.contains("token label        : tool token"), "{token}");
    assert!(token.contains("login required"), "{token}");

    t.ok(&["--login", "--pin", "user1", "-O"]);
    t.fails_with(&["--login", "--pin", "wrong", "-O"], "CKR_PIN_INCORRECT");
    assert!(t
        .text(&[
            "--login",
            "--pin",
            "user1",
            "--change-pin",
            "--new-pin",
            "user2"
        ])
        .contains("PIN successfully changed"));
    t.fails_with(&["--login", "--pin", "user1", "-O"], "CKR_PIN_INCORRECT");
    t.ok(&["--login", "--pin", "user2", "-O"]);
    // Initialising again needs the SO PIN set the first time.
    t.fails_with(
        &["--init-token", "--so-pin", "not-the-so-pin", "--label", "x"],
        "CKR_PIN_INCORRECT",
    );
}

#[test]
fn objects_written_read_and_deleted() {
    let t = Tool::new();
    let files = tempfile::tempdir().unwrap();
    let cert = fixtures().join("exports/Fixture_Peer.der");
    let data = files.path().join("data.bin");
    std::fs::write(&data, b"some data \x00\x01\x02").unwrap();
    let s = |p: &Path| p.display().to_string();

    t.ok(&["--init-token", "--so-pin", "so", "--label", "objects"]);
    t.ok(&["--init-pin", "--so-pin", "so", "--pin", "pw"]);
    t.ok(&with_login(&[
        "--write-object",
        &s(&cert),
        "--type",
        "cert",
        "--label",
        "peer",
        "--id",
        "0a0b",
    ]));
    t.ok(&with_login(&[
        "--write-object",
        &s(&data),
        "--type",
        "data",
        "--label",
        "blob",
    ]));
    t.ok(&with_login(&[
        "--write-object",
        &s(&data),
        "--type",
        "data",
        "--label",
        "secret",
        "--private",
    ]));

    // Certificates and plain data objects are public; the private one is
    // hidden until login.
    let listed = t.text(&["-O"]);
    assert!(
        listed.contains("label:      peer") && listed.contains("ID:         0a0b"),
        "{listed}"
    );
    assert!(
        listed.contains("'blob'") && !listed.contains("'secret'"),
        "{listed}"
    );
    assert!(t.text(&with_login(&["-O"])).contains("'secret'"));
    assert_eq!(
        t.ok(&["--read-object", "--type", "cert", "--label", "peer"]),
        std::fs::read(&cert).unwrap()
    );
    assert_eq!(
        t.ok(&["--read-object", "--type", "data", "--label", "blob"]),
        std::fs::read(&data).unwrap()
    );
    assert_eq!(
        t.ok(&with_login(&[
            "--read-object",
            "--type",
            "data",
            "--label",
            "secret"
        ])),
        std::fs::read(&data).unwrap()
    );

    t.ok(&with_login(&[
        "--delete-object",
        "--type",
        "data",
        "--label",
        "blob",
    ]));
    let listed = t.text(&["-O"]);
    assert!(
        !listed.contains("'blob'") && listed.contains("peer"),
        "{listed}"
    );
    // The private object survives a PIN change.
    t.ok(&with_login(&["--change-pin", "--new-pin", "pw2"]));
    assert_eq!(
        t.ok(&[
            "--login",
            "--pin",
            "pw2",
            "--read-object",
            "--type",
            "data",
            "--label",
            "secret"
        ]),
        std::fs::read(&data).unwrap()
    );
}

#[test]
fn hash_and_random() {
    let t = Tool::new();
    let files = tempfile::tempdir().unwrap();
    let input = files.path().join("in");
    std::fs::write(&input, vec![0x5a; 100_000]).unwrap();
    let input = input.display().to_string();
    for (mech, expected) in [
        ("SHA256", sha256_hex(&[0x5a; 100_000])),
        ("SHA-1", sha1_hex(&[0x5a; 100_000])),
    ] {
        assert_eq!(
            hex::encode(t.ok(&["--hash", "-m", mech, "-i", &input])),
            expected,
            "{mech}"
        );
    }
    let a = t.ok(&["--generate-random", "64"]);
    let b = t.ok(&["--generate-random", "64"]);
    assert_eq!((a.len(), b.len()), (64, 64));
    assert_ne!(a, b);
}

/// Several clients opening a new database at the same instant all succeed
/// and agree on one database (NSS's own softoken fails some of them).
#[test]
fn simultaneous_first_opens() {
    let t = Tool::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new("pkcs11-tool")
                .arg("--module")
                .arg(&t.module.path)
                .arg("-L")
                .env(
                    "SOFTOKEN_CONFIGDIR",
                    format!("sql:{}", t.db.path().display()),
                )
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("pkcs11-tool")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("PIN initialized"));
    }
    assert!(!t.text(&["-T"]).contains("login required"));
}

/// EC key pairs on each NIST curve generated by one pkcs11-tool process
/// sign in another and verify in a third.
#[test]
fn ec_keys_across_processes() {
    let t = Tool::new();
    let files = tempfile::tempdir().unwrap();
    let data = files.path().join("data");
    std::fs::write(&data, b"sign me").unwrap();
    let sig = files.path().join("sig");
    let s = |p: &Path| p.display().to_string();
    let curves = [
        ("prime256v1", "e1", "ECDSA-SHA256", 256, 64),
        ("secp384r1", "e2", "ECDSA-SHA384", 384, 96),
        // pkcs11-tool counts whole bytes of a coordinate: 66 for P-521.
        ("secp521r1", "e3", "ECDSA-SHA512", 528, 132),
    ];
    for (curve, id, mech, bits, sig_len) in curves {
        let made = t.text(&[
            "--keypairgen",
            "--key-type",
            &format!("EC:{curve}"),
            "--id",
            id,
            "--label",
            curve,
        ]);
        assert!(made.contains(&format!("EC_POINT {bits} bits")), "{made}");
        std::fs::write(&data, b"sign me").unwrap();
        t.ok(&[
            "--sign",
            "-m",
            mech,
            "--id",
            id,
            "-i",
            &s(&data),
            "-o",
            &s(&sig),
        ]);
        assert_eq!(std::fs::read(&sig).unwrap().len(), sig_len, "{curve}");
        let verify = [
            "--verify",
            "-m",
            mech,
            "--id",
            id,
            "-i",
            &s(&data),
            "--signature-file",
            &s(&sig),
        ];
        let verified = t.text(&verify);
        assert!(
            verified.contains("Signature is valid"),
            "{curve}: {verified}"
        );
        std::fs::write(&data, b"sign me!").unwrap();
        let out = t.output(&verify);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("Signature is valid"), "{curve}: {text}");
    }
}

/// RSA-2048 and RSA-4096 key pairs generated by pkcs11-tool sign (PKCS#1
/// v1.5 and PSS) in later processes, and the signatures verify.
#[test]
fn rsa_keys_across_processes() {
    let t = Tool::new();
    let files = tempfile::tempdir().unwrap();
    let data = files.path().join("data");
    std::fs::write(&data, b"sign me with RSA").unwrap();
    let sig = files.path().join("sig");
    let s = |p: &Path| p.display().to_string();
    for (bits, id) in [(2048, "a1"), (4096, "a2")] {
        let made = t.text(&[
            "--keypairgen",
            "--key-type",
            &format!("rsa:{bits}"),
            "--id",
            id,
            "--label",
            "rsa key",
        ]);
        assert!(made.contains(&format!("RSA {bits} bits")), "{made}");
        for mech in ["SHA256-RSA-PKCS", "SHA256-RSA-PKCS-PSS"] {
            t.ok(&[
                "--sign",
                "-m",
                mech,
                "--id",
                id,
                "-i",
                &s(&data),
                "-o",
                &s(&sig),
            ]);
            assert_eq!(std::fs::read(&sig).unwrap().len(), bits / 8);
            let verified = t.text(&[
                "--verify",
                "-m",
                mech,
                "--id",
                id,
                "-i",
                &s(&data),
                "--signature-file",
                &s(&sig),
            ]);
            assert!(
                verified.contains("Signature is valid"),
                "{bits} {mech}: {verified}"
            );
        }
    }
}

/// pkcs11-tool's own self-test (digests, random, RSA verification and
/// decryption with PKCS#1 v1.5, X.509 and OAEP with a label) passes with
/// an RSA and an EC key on the token. Its signature section runs only for
/// mechanisms flagged CKF_HW, which a software token (like NSS's and
/// SoftHSMv2) truthfully does not claim; signing is tested above instead.
#[test]
fn pkcs11_tool_self_test() {
    let t = Tool::new();
    t.ok(&["--init-token", "--so-pin", "so", "--label", "self test"]);
    t.ok(&["--init-pin", "--so-pin", "so", "--pin", "pw"]);
    t.ok(&with_login(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--id",
        "01",
        "--label",
        "rsa",
    ]));
    t.ok(&with_login(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "02",
        "--label",
        "ec",
    ]));
    let out = t.output(&with_login(&["--test"]));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("No errors"), "{text}");
    assert!(
        text.contains("RSA-PKCS-OAEP") && text.contains("SHA1-RSA-PKCS: OK"),
        "{text}"
    );
    assert!(!text.contains("ERR") && !text.contains("FAIL"), "{text}");
}

/// An Ed25519 key pair made by pkcs11-tool (which names the curve by
/// GnuPG's OID) signs in another process and verifies in a third.
#[test]
fn ed25519_keys_across_processes() {
    let t = Tool::new();
    let files = tempfile::tempdir().unwrap();
    let data = files.path().join("data");
    std::fs::write(&data, b"sign me with Ed25519").unwrap();
    let sig = files.path().join("sig");
    let s = |p: &Path| p.display().to_string();
    t.ok(&[
        "--keypairgen",
        "--key-type",
        "EC:edwards25519",
        "--id",
        "ed",
        "--label",
        "ed key",
    ]);
    t.ok(&[
        "--sign",
        "-m",
        "EDDSA",
        "--id",
        "ed",
        "-i",
        &s(&data),
        "-o",
        &s(&sig),
    ]);
    assert_eq!(std::fs::read(&sig).unwrap().len(), 64);
    let verified = t.text(&[
        "--verify",
        "-m",
        "EDDSA",
        "--id",
        "ed",
        "-i",
        &s(&data),
        "--signature-file",
        &s(&sig),
    ]);
    assert!(verified.contains("Signature is valid"), "{verified}");
}

/// pkcs11-tool's AES keys encrypt, decrypt, wrap and unwrap across
/// processes; an RSA key decrypts what OpenSSL encrypted to its public key
/// (pkcs11-tool 0.23 encrypts with secret keys only).
#[test]
fn encryption_and_wrapping_across_processes() {
    let t = Tool::new();
    let files = tempfile::tempdir().unwrap();
    let f = |n: &str| files.path().join(n).display().to_string();
    std::fs::write(f("plain"), b"some plaintext to protect").unwrap();
    let iv = "000102030405060708090a0b0c0d0e0f";
    t.ok(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--id",
        "01",
        "--label",
        "data key",
        "--extractable",
    ]);
    t.ok(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--id",
        "02",
        "--label",
        "kek",
        "--usage-wrap",
    ]);
    t.ok(&[
        "--encrypt",
        "-m",
        "AES-CBC-PAD",
        "--iv",
        iv,
        "--id",
        "01",
        "-i",
        &f("plain"),
        "-o",
        &f("ct"),
    ]);
    assert_eq!(std::fs::read(f("ct")).unwrap().len(), 32);
    t.ok(&[
        "--wrap",
        "-m",
        "AES-KEY-WRAP",
        "--id",
        "02",
        "--application-id",
        "01",
        "-o",
        &f("wrapped"),
    ]);
    assert_eq!(std::fs::read(f("wrapped")).unwrap().len(), 40);
    t.ok(&[
        "--unwrap",
        "-m",
        "AES-KEY-WRAP",
        "--id",
        "02",
        "-i",
        &f("wrapped"),
        "--key-type",
        "AES:",
        "--application-id",
        "03",
        "--application-label",
        "unwrapped",
    ]);
    // The unwrapped key decrypts what the original encrypted.
    t.ok(&[
        "--decrypt",
        "-m",
        "AES-CBC-PAD",
        "--iv",
        iv,
        "--id",
        "03",
        "-i",
        &f("ct"),
        "-o",
        &f("back"),
    ]);
    assert_eq!(
        std::fs::read(f("back")).unwrap(),
        b"some plaintext to protect"
    );

    t.ok(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--id",
        "0b",
        "--usage-decrypt",
    ]);
    std::fs::write(
        f("pub.der"),
        t.ok(&["--read-object", "--type", "pubkey", "--id", "0b"]),
    )
    .unwrap();
    run(Command::new("openssl").args([
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        &f("pub.der"),
        "-out",
        &f("pub.pem"),
    ]));
    run(Command::new("openssl").args([
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &f("pub.pem"),
        "-in",
        &f("plain"),
        "-out",
        &f("rsa-ct"),
    ]));
    t.ok(&[
        "--decrypt",
        "-m",
        "RSA-PKCS",
        "--id",
        "0b",
        "-i",
        &f("rsa-ct"),
        "-o",
        &f("rsa-back"),
    ]);
    assert_eq!(
        std::fs::read(f("rsa-back")).unwrap(),
        b"some plaintext to protect"
    );
}

/// A database in a directory the user may not write (the files themselves
/// writable): SQLite cannot make its journal there, so every write answers
/// CKR_TOKEN_WRITE_PROTECTED, and the token's flags say so
/// (CKF_WRITE_PROTECTED, "readonly" in pkcs11-tool's words). Run as the
/// user `nobody` on root's directory when the tests run as root, whom
/// permissions do not bind.
#[test]
fn a_directory_the_user_may_not_write_shows_as_write_protected() {
    use std::os::unix::fs::PermissionsExt;
    let tool = Tool::new();
    tool.ok(&["-T"]);
    let shared = tempfile::tempdir().unwrap();
    let module = shared.path().join("libsoftoken.so");
    std::fs::copy(&tool.module.path, &module).unwrap();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
    mode(shared.path(), 0o755).unwrap();
    mode(&module, 0o755).unwrap();
    for file in ["cert9.db", "key4.db"] {
        mode(&tool.db.path().join(file), 0o666).unwrap();
    }
    let as_root = euid_is_root();
    mode(tool.db.path(), if as_root { 0o755 } else { 0o555 }).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = if as_root {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "pkcs11-tool",
            ]);
            c
        } else {
            Command::new("pkcs11-tool")
        };
        cmd.arg("--module")
            .arg(&module)
            .args(args)
            .env(
                "SOFTOKEN_CONFIGDIR",
                format!("sql:{}", tool.db.path().display()),
            )
            .output()
            .unwrap()
    };
    let info = run(&["-T"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{text}");
    let flags = text.lines().find(|l| l.contains("token flags")).unwrap();
    assert!(flags.contains("readonly"), "{flags}");
    let write = run(&[
        "--write-object",
        "/etc/hostname",
        "--type",
        "data",
        "--label",
        "x",
    ]);
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("CKR_TOKEN_WRITE_PROTECTED"),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    mode(tool.db.path(), 0o700).unwrap();
}

/// Whether the tests run as root (by /proc, without unsafe code).
fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// SOFTOKEN_CONFIGDIR with a typo: the slot shows no token (pkcs11-tool
/// lists it "(empty)" and finds no token to use), the log says the
/// directory does not exist, and none is made. Without it (and without
/// parameters) the default location is made, private to the user; where
/// it cannot be made (a parent the user may not write) the token answers
/// CKR_DEVICE_ERROR and the log gives the directory and the OS's cause.
#[test]
fn a_mistyped_configdir_is_not_made_and_the_default_one_is() {
    use std::os::unix::fs::PermissionsExt;
    let module = module_copy();
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("softoken.log");
    let typo = home.path().join("tokn");
    let listing = |configdir: Option<&Path>| {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(&module.path)
            .arg("-L")
            .env("HOME", home.path())
            .env_remove("XDG_DATA_HOME")
            .env_remove("SOFTOKEN_CONFIGDIR")
            .env("SOFTOKEN_LOG", &log);
        if let Some(dir) = configdir {
            cmd.env("SOFTOKEN_CONFIGDIR", format!("sql:{}", dir.display()));
        }
        cmd.output().expect("pkcs11-tool")
    };
    let out = listing(Some(&typo));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(empty)"), "{text}");
    assert!(!typo.exists());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("{}: no such directory", typo.display())),
        "{logged}"
    );

    let out = listing(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let default = home.path().join(".local/share/softoken");
    assert!(default.join("key4.db").exists());
    let mode = std::fs::metadata(&default).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    // A default location under a parent this user may not write: as
    // `nobody` when the tests run as root, whom permissions do not bind.
    let shared = tempfile::tempdir().unwrap();
    let module_copy = shared.path().join("libsoftoken.so");
    std::fs::copy(&module.path, &module_copy).unwrap();
    let locked = shared.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
    mode(shared.path(), 0o755).unwrap();
    mode(&module_copy, 0o755).unwrap();
    let as_root = euid_is_root();
    mode(&locked, if as_root { 0o755 } else { 0o555 }).unwrap();
    let mut cmd = if as_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "pkcs11-tool",
        ]);
        c
    } else {
        Command::new("pkcs11-tool")
    };
    let out = cmd
        .arg("--module")
        .arg(&module_copy)
        .arg("-O")
        .env("HOME", &locked)
        .env("XDG_DATA_HOME", locked.join("data"))
        .env_remove("SOFTOKEN_CONFIGDIR")
        .env("SOFTOKEN_LOG", "stderr")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("CKR_DEVICE_ERROR"), "{said}");
    assert!(
        said.contains(&format!(
            "{}: cannot be made: Permission denied",
            locked.join("data/softoken").display()
        )),
        "{said}"
    );
    mode(&locked, 0o700).unwrap();
}

/// A client that passes no parameters (pkcs11-tool, GnuTLS) gets the
/// configuration file's: the user's, else the system's (XDG), with the
/// parameter string's keys; SOFTOKEN_CONFIGDIR still names the database.
/// A file there that cannot be read fails the open, logged, rather than
/// opening the default database in its place.
#[test]
fn clients_without_parameters_read_the_configuration_file() {
    let module = module_copy();
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let user_conf = home.join(".config/softoken/softoken.conf");
    let system_dir = top.path().join("xdg");
    let system_conf = system_dir.join("softoken/softoken.conf");
    let (db, other) = (top.path().join("db"), top.path().join("other"));
    for dir in [
        user_conf.parent().unwrap(),
        system_conf.parent().unwrap(),
        &db,
        &other,
    ] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let log = top.path().join("softoken.log");
    let listing = |configdir_env: Option<&Path>| {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(&module.path)
            .arg("-L")
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env("XDG_CONFIG_DIRS", &system_dir)
            .env_remove("XDG_DATA_HOME")
            .env_remove("SOFTOKEN_CONFIGDIR")
            .env("SOFTOKEN_LOG", &log);
        if let Some(dir) = configdir_env {
            cmd.env("SOFTOKEN_CONFIGDIR", format!("sql:{}", dir.display()));
        }
        cmd.output().expect("pkcs11-tool")
    };
    let listed = |configdir_env: Option<&Path>| {
        let out = listing(configdir_env);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    std::fs::write(
        &user_conf,
        format!(
            "# the user's token\nconfigdir='sql:{}'\n\ntokenDescription='From the file'\n",
            db.display()
        ),
    )
    .unwrap();
    let text = listed(None);
    assert!(
        text.contains("token label        : From the file"),
        "{text}"
    );
    assert!(db.join("key4.db").exists());
    assert!(
        !home.join(".local/share/softoken").exists(),
        "no default database"
    );

    // The environment names the database; the file still gives the label.
    let text = listed(Some(&other));
    assert!(
        text.contains("token label        : From the file"),
        "{text}"
    );
    assert!(other.join("key4.db").exists());

    // No user file: the system's.
    std::fs::remove_file(&user_conf).unwrap();
    std::fs::write(&system_conf, "tokenDescription='Site token'\n").unwrap();
    let text = listed(Some(&db));
    assert!(text.contains("token label        : Site token"), "{text}");

    // A user file that is not a readable file: refused, logged.
    std::fs::create_dir(&user_conf).unwrap();
    assert!(!listing(Some(&db)).status.success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("configuration file {}", user_conf.display())),
        "{logged}"
    );
}

/// OpenSC's pkcs11-spy between pkcs11-tool and the module: it writes into
/// the function tables a module hands out, which must therefore be
/// writable, as NSS's are (it crashed on read-only ones). The spy logs
/// every call and the token works through it.
#[test]
fn pkcs11_spy_wraps_the_module() {
    let spy = [
        "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so",
        "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("pkcs11-spy.so (apt-get install opensc)");
    let t = Tool::new();
    let log = t.db.path().join("spy.log");
    let run = |args: &[&str]| {
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(spy)
            .args(args)
            .env("PKCS11SPY", &t.module.path)
            .env("PKCS11SPY_OUTPUT", &log)
            .env(
                "SOFTOKEN_CONFIGDIR",
                format!("sql:{}", t.db.path().display()),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} through pkcs11-spy: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["-L"]).contains("Slot 0 (0x2)"));
    run(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "spied",
    ]);
    assert!(run(&["-O"]).contains("spied"));
    let logged = std::fs::read_to_string(&log).unwrap();
    for call in ["C_GetSlotList", "C_GenerateKeyPair", "C_FindObjectsInit"] {
        assert!(logged.contains(call), "the spy did not log {call}");
    }
}

/// The log switched on by the `log=` parameter, for configurations where
/// no environment variable reaches the program (pkcs11.txt, p11-kit module
/// files): in the configuration file, and in a parameter string.
#[test]
fn the_log_parameter_switches_the_log_on() {
    let module = module_copy();
    let top = tempfile::tempdir().unwrap();
    let missing = top.path().join("missing");
    let conf_dir = top.path().join("config/softoken");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let from_file = top.path().join("from-file.log");
    std::fs::write(
        conf_dir.join("softoken.conf"),
        format!(
            "configdir='sql:{}'\nlog='{}'\n",
            missing.display(),
            from_file.display()
        ),
    )
    .unwrap();
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&module.path)
        .arg("-L")
        .env("XDG_CONFIG_HOME", top.path().join("config"))
        .env_remove("SOFTOKEN_LOG")
        .env_remove("SOFTOKEN_CONFIGDIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let logged = std::fs::read_to_string(&from_file).unwrap();
    assert!(
        logged.contains(&format!("{}: no such directory", missing.display())),
        "{logged}"
    );

    let from_parameters = top.path().join("from-parameters.log");
    let params = format!(
        "configdir='sql:{}' log='{}'",
        missing.display(),
        from_parameters.display()
    );
    let out = Command::new(modutil_path())
        .args(["check-library", "--params", &params])
        .arg(&module.path)
        .env_remove("SOFTOKEN_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logged = std::fs::read_to_string(&from_parameters).unwrap();
    assert!(logged.contains("no such directory"), "{logged}");
}
