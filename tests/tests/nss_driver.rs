//! NSS drives the module as a third-party token: added with NSS's modutil,
//! certutil makes keys, certificates and requests on it, pk12util imports a
//! PKCS#12 file into it and exports it again (OpenSSL reads the export),
//! and cmsutil signs with a token key a message that cmsutil and OpenSSL
//! then verify.

use std::path::Path;
use std::process::{Command, Stdio};

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw};
use softoken_tests::*;

struct Nss {
    db: String,
    files: tempfile::TempDir,
    _dirs: (tempfile::TempDir, tempfile::TempDir, ModuleCopy),
    token_dir: std::path::PathBuf,
}

impl Nss {
    fn file(&self, name: &str) -> String {
        self.files.path().join(name).display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        run(Command::new(program).args(args).stdin(Stdio::null()))
    }
}

/// An NSS database with the module added (token "SoftTok", empty password).
fn nss_with_module() -> Nss {
    let nss_dir = tempfile::tempdir().unwrap();
    let token_dir = tempfile::tempdir().unwrap();
    let module = module_copy();
    let files = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", nss_dir.path().display());
    run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
    let params = format!(
        "configdir='sql:{}' tokenDescription='SoftTok'",
        token_dir.path().display()
    );
    let added = run(Command::new("modutil")
        .args([
            "-dbdir",
            &db,
            "-add",
            "softoken",
            "-libfile",
            &module.path.display().to_string(),
            "-string",
            &params,
            "-force",
        ])
        .stdin(Stdio::null()));
    assert!(added.contains("added to database"), "{added}");
    std::fs::write(files.path().join("pw"), "\n").unwrap();
    write_noise(files.path());
    let token_path = token_dir.path().to_owned();
    Nss {
        db,
        files,
        _dirs: (nss_dir, token_dir, module),
        token_dir: token_path,
    }
}

/// certutil's key generation reads seed noise from a file.
fn write_noise(dir: &Path) {
    let noise: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("noise"), noise).unwrap();
}

#[test]
fn certutil_pk12util_and_cmsutil_use_the_token() {
    let nss = nss_with_module();
    let listed = nss.run("modutil", &["-dbdir", &nss.db, "-list"]);
    assert!(listed.contains("token: SoftTok"), "{listed}");
    let (pw, noise) = (nss.file("pw"), nss.file("noise"));
    let db = nss.db.as_str();

    // Keys and self-signed certificates made on the token: RSA, EC, and a
    // signer trusted for e-mail (for cmsutil). Subjects and serials differ:
    // a self-signed certificate's issuer and serial must be unique, and
    // certutil's default serial comes from the clock.
    let certs: [(&str, &str, &str, &str, &[&str]); 3] = [
        (
            "tok rsa",
            "CN=Token RSA",
            "11",
            "u,u,u",
            &["-k", "rsa", "-g", "2048"],
        ),
        (
            "tok ec",
            "CN=Token EC",
            "12",
            "u,u,u",
            &["-k", "ec", "-q", "nistp256"],
        ),
        (
            "cms signer",
            "CN=CMS Signer,E=signer@example.com",
            "13",
            "CTu,CTu,CTu",
            &["-k", "rsa", "-g", "2048"],
        ),
    ];
    for (nick, subject, serial, trust, key) in certs {
        let mut args = vec![
            "-S", "-d", db, "-h", "SoftTok", "-n", nick, "-s", subject, "-m", serial, "-x", "-t",
            trust,
        ];
        args.extend_from_slice(key);
        args.extend_from_slice(&["-z", &noise, "-f", &pw]);
        nss.run("certutil", &args);
    }
    let certs = nss.run("certutil", &["-L", "-d", db, "-h", "SoftTok"]);
    for nick in ["SoftTok:tok rsa", "SoftTok:tok ec", "SoftTok:cms signer"] {
        assert!(certs.contains(nick), "{nick} missing:\n{certs}");
    }

    // A certificate request signed by a token key.
    let req = nss.file("req.der");
    nss.run(
        "certutil",
        &[
            "-R",
            "-d",
            db,
            "-h",
            "SoftTok",
            "-s",
            "CN=Request",
            "-k",
            "rsa",
            "-g",
            "2048",
            "-z",
            &noise,
            "-f",
            &pw,
            "-o",
            &req,
        ],
    );
    // openssl exits non-zero when the self-signature does not verify.
    run(Command::new("openssl").args(["req", "-inform", "DER", "-in", &req, "-verify", "-noout"]));

    // PKCS#12 import into the token.
    std::fs::write(nss.file("p12pw"), "p12-pw").unwrap();
    let p12 = fixtures()
        .join("pkcs12/fixture-rsa-user.p12")
        .display()
        .to_string();
    let imported = nss.run(
        "pk12util",
        &[
            "-i",
            &p12,
            "-d",
            db,
            "-h",
            "SoftTok",
            "-k",
            &pw,
            "-w",
            &nss.file("p12pw"),
        ],
    );
    assert!(imported.contains("IMPORT SUCCESSFUL"), "{imported}");
    let keys = nss.run("certutil", &["-K", "-d", db, "-h", "SoftTok", "-f", &pw]);
    assert!(
        keys.contains(&hex::encode(fixture_key_id("sql-pw", "Fixture RSA User")))
            && keys.contains("Fixture RSA User"),
        "{keys}"
    );

    // CMS: sign with the token key, verify, and a tampered signature fails.
    let msg = nss.file("msg.txt");
    std::fs::write(&msg, "a signed message\n").unwrap();
    let p7m = nss.file("msg.p7m");
    nss.run(
        "cmsutil",
        &[
            "-S",
            "-d",
            db,
            "-N",
            "SoftTok:cms signer",
            "-i",
            &msg,
            "-o",
            &p7m,
            "-p",
            "",
        ],
    );
    let out = nss.file("out.txt");
    nss.run(
        "cmsutil",
        &["-D", "-d", db, "-i", &p7m, "-p", "", "-o", &out],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a signed message\n");
    let mut tampered = std::fs::read(&p7m).unwrap();
    let at = tampered.len() - 100;
    tampered[at] ^= 1;
    let bad = nss.file("bad.p7m");
    std::fs::write(&bad, tampered).unwrap();
    let refused = run_failing(
        Command::new("cmsutil")
            .args(["-D", "-d", db, "-i", &bad, "-p", "", "-o", &out])
            .stdin(Stdio::null()),
    );
    assert!(refused.contains("BAD_SIGNATURE"), "{refused}");
    // OpenSSL verifies cmsutil's signature with the signer's certificate.
    let signer = nss.file("signer.pem");
    let pem = nss.run(
        "certutil",
        &["-L", "-d", db, "-n", "SoftTok:cms signer", "-a"],
    );
    std::fs::write(&signer, pem).unwrap();
    let verified = nss.file("verified.txt");
    run(Command::new("openssl").args([
        "cms", "-verify", "-binary", "-inform", "DER", "-in", &p7m, "-CAfile", &signer, "-purpose",
        "any", "-out", &verified,
    ]));
    assert_eq!(
        std::fs::read_to_string(&verified).unwrap(),
        "a signed message\n"
    );

    // PKCS#12 export from the token: the key NSS wraps out of it is the
    // key imported, and the file is OpenSSL's to read.
    let exported = nss.file("exported.p12");
    let said = nss.run(
        "pk12util",
        &[
            "-o",
            &exported,
            "-n",
            "SoftTok:Fixture RSA User",
            "-d",
            db,
            "-k",
            &pw,
            "-w",
            &nss.file("p12pw"),
        ],
    );
    assert!(said.contains("EXPORT SUCCESSFUL"), "{said}");
    let again = pkcs12_rsa_key(Path::new(&exported), "p12-pw");
    let original = pkcs12_rsa_key(&fixtures().join("pkcs12/fixture-rsa-user.p12"), "p12-pw");
    assert_eq!(again.private_exponent, original.private_exponent);

    // The imported key is the PKCS#12 file's key, stored encrypted.
    let expected = pkcs12_rsa_key(&fixtures().join("pkcs12/fixture-rsa-user.p12"), "p12-pw");
    let token = open_token(&nss.token_dir);
    let id = fixture_key_id("sql-pw", "Fixture RSA User");
    let found = token
        .find(&[(CKA_CLASS, ul(CKO_PRIVATE_KEY)), (CKA_ID, id)])
        .unwrap();
    assert_eq!(found.len(), 1);
    let key = token.attributes(found[0]).unwrap();
    assert_eq!(
        key.get(CKA_PRIVATE_EXPONENT).unwrap(),
        expected.private_exponent.as_slice()
    );
    let report = token.check(&mut |_, _| {}).unwrap();
    assert!(
        report.failures.is_empty() && report.orphaned_records.is_empty(),
        "{report:?}"
    );

    // And the module's own clients see what NSS put there.
    let raw = Raw::with_params(&sql_params(&nss.token_dir));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ul(CKO_CERTIFICATE))])
            .unwrap()
            .len(),
        4
    );
}
