//! The token used end to end by the clients users drive it with: OpenSSL
//! through libp11's pkcs11 engine and `pkcs11:` URIs (a CSR, a
//! certificate, a TLS server whose key stays on the token), GnuTLS's
//! p11tool and certtool (a key made on the token, a certificate signed
//! with it), and p11-kit's server, the out-of-process mode: the module
//! served on a Unix socket and used through p11-kit's client module;
//! PyKCS11; OpenJDK (keytool, jarsigner, the SunPKCS11 provider); and
//! Firefox ESR, headless, authenticating to a TLS server with a token key.
//! Every server listens on loopback or a socket in the test's directory
//! and is stopped by its PID; every client runs under `timeout`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use softoken_tests::*;

const PIN: &str = "client-pin-1";
const ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";
const P11KIT_CLIENT: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";

/// A database with the password PIN, and a private copy of the module.
struct Setup {
    top: tempfile::TempDir,
    module: ModuleCopy,
}

impl Setup {
    fn new() -> Setup {
        let top = tempfile::tempdir().unwrap();
        let module = module_copy();
        let db = top.path().join("db");
        std::fs::create_dir(&db).unwrap();
        // The password (C_SetPIN from the new database's empty one).
        let raw = raw::Raw::with_params(&sql_params(&db));
        let session = raw.open(raw.slots()[0], true).unwrap();
        assert_eq!(raw.set_pin(session, "", PIN), pkcs11_sys::CKR_OK);
        assert_eq!(raw.finalize(), pkcs11_sys::CKR_OK);
        Setup { top, module }
    }
    fn dir(&self) -> &Path {
        self.top.path()
    }
    fn configdir(&self) -> String {
        format!("sql:{}", self.dir().join("db").display())
    }
    /// A client program, bounded in time, on this database.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg("60")
            .arg(program)
            .env("SOFTOKEN_CONFIGDIR", self.configdir())
            .env("HOME", self.dir())
            .current_dir(self.dir());
        cmd
    }
    fn tool(&self, program: &str, args: &[&str]) -> String {
        let mut cmd = self.command(program);
        if program == "pkcs11-tool" {
            cmd.arg("--module").arg(&self.module.path);
        }
        run(cmd.args(args))
    }
}

/// A server process, stopped by its PID when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `ready` holds (a server listening), at most 30 s.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} never came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Setup {
    /// An OpenSSL configuration loading libp11's engine on this module.
    fn openssl_conf(&self) -> PathBuf {
        let conf = self.dir().join("openssl.cnf");
        std::fs::write(
            &conf,
            format!(
                "openssl_conf = openssl_init\n[openssl_init]\nengines = engines\n\
                 [engines]\npkcs11 = pkcs11\n[pkcs11]\nengine_id = pkcs11\n\
                 dynamic_path = {ENGINE}\nMODULE_PATH = {}\ninit = 0\n\
                 [req]\ndistinguished_name = dn\n[dn]\n",
                self.module.path.display()
            ),
        )
        .unwrap();
        conf
    }
    fn openssl(&self, args: &[&str]) -> String {
        let mut cmd = self.command("openssl");
        cmd.env("OPENSSL_CONF", self.openssl_conf());
        run(cmd.args(args))
    }
}

#[test]
fn openssl_signs_a_request_and_a_certificate_and_serves_tls_with_token_keys() {
    let setup = Setup::new();
    for (key_type, label) in [("EC:prime256v1", "tls-ec"), ("rsa:2048", "tls-rsa")] {
        setup.tool(
            "pkcs11-tool",
            &[
                "--login",
                "--pin",
                PIN,
                "--keypairgen",
                "--key-type",
                key_type,
                "--label",
                label,
            ],
        );
        let key = format!("pkcs11:token=softoken;object={label};type=private;pin-value={PIN}");
        let engine = ["-engine", "pkcs11", "-keyform", "engine", "-key", &key];
        let csr = format!("{label}.csr");
        let cert = format!("{label}.pem");
        let mut args = vec!["req", "-new", "-subj", "/CN=token request", "-out", &csr];
        args.extend(engine);
        setup.openssl(&args);
        // Exits 1 when the request's signature does not verify.
        setup.openssl(&["req", "-in", &csr, "-verify", "-noout"]);
        let mut args = vec![
            "req",
            "-x509",
            "-subj",
            "/CN=127.0.0.1",
            "-days",
            "2",
            "-out",
            &cert,
        ];
        args.extend(engine);
        setup.openssl(&args);
        // The certificate's key is the token's: its public key is the
        // token's public key.
        let from_cert = setup.openssl(&["x509", "-in", &cert, "-noout", "-pubkey"]);
        let public = format!("pkcs11:token=softoken;object={label};type=public");
        let from_token = setup.openssl(&[
            "pkey", "-engine", "pkcs11", "-inform", "engine", "-in", &public, "-pubin", "-pubout",
        ]);
        assert_eq!(from_cert, from_token, "{label}");

        // A TLS 1.3 server whose key stays on the token.
        let port = free_port();
        let accept = format!("127.0.0.1:{port}");
        let mut server = setup.command("openssl");
        server
            .env("OPENSSL_CONF", setup.openssl_conf())
            .args(["s_server", "-accept", &accept, "-cert", &cert])
            .args(engine)
            // s_server ends at the end of its input: keep it open.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _server = Server(server.spawn().unwrap());
        wait_for("s_server", || std::net::TcpStream::connect(&accept).is_ok());
        let mut client = setup.command("openssl");
        client
            .env("OPENSSL_CONF", "/dev/null")
            .args(["s_client", "-connect", &accept, "-CAfile", &cert])
            .args([
                "-verify_return_error",
                "-tls1_3",
                "-servername",
                "127.0.0.1",
            ])
            .stdin(Stdio::null());
        let said = run(&mut client);
        assert!(said.contains("Verify return code: 0 (ok)"), "{said}");
        assert!(said.contains("TLSv1.3"), "{said}");
    }
}

#[test]
fn gnutls_makes_a_key_on_the_token_and_certifies_with_it() {
    let setup = Setup::new();
    let module = setup.module.path.display().to_string();
    let mut p11tool = setup.command("p11tool");
    p11tool
        .env("GNUTLS_PIN", PIN)
        .args([
            "--provider",
            &module,
            "--login",
            "--generate-privkey",
            "ECDSA",
        ])
        .args([
            "--curve",
            "secp256r1",
            "--label",
            "gnutls-key",
            "pkcs11:token=softoken",
        ]);
    run(&mut p11tool);
    let mut listed = setup.command("p11tool");
    listed.env("GNUTLS_PIN", PIN).args([
        "--provider",
        &module,
        "--login",
        "--list-privkeys",
        "pkcs11:token=softoken",
    ]);
    let listed = run(&mut listed);
    assert!(
        listed.contains("object=gnutls-key;type=private"),
        "{listed}"
    );

    std::fs::write(
        setup.dir().join("template"),
        "cn = \"gnutls token\"\nexpiration_days = 2\nca\ncert_signing_key\nsigning_key\n",
    )
    .unwrap();
    let mut certtool = setup.command("certtool");
    certtool
        .env("GNUTLS_PIN", PIN)
        .args(["--provider", &module, "--generate-self-signed"])
        .args([
            "--load-privkey",
            "pkcs11:token=softoken;object=gnutls-key;type=private",
        ])
        .args([
            "--load-pubkey",
            "pkcs11:token=softoken;object=gnutls-key;type=public",
        ])
        .args(["--template", "template", "--outfile", "gnutls.pem"]);
    run(&mut certtool);
    let mut verify = setup.command("certtool");
    verify.args([
        "--verify",
        "--load-ca-certificate",
        "gnutls.pem",
        "--infile",
        "gnutls.pem",
    ]);
    let verified = run(&mut verify);
    assert!(verified.contains("Verified."), "{verified}");
}

#[test]
fn p11_kit_server_serves_the_token_to_other_processes() {
    let setup = Setup::new();
    let socket = setup.dir().join("p11-kit.sock");
    let mut server = setup.command("p11-kit");
    server
        .arg("server")
        .arg("-f")
        .arg("--provider")
        .arg(&setup.module.path)
        .arg("-n")
        .arg(&socket)
        .arg("pkcs11:token=softoken")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = Server(server.spawn().unwrap());
    wait_for("p11-kit server", || socket.exists());
    let address = format!("unix:path={}", socket.display());
    let remote = |args: &[&str]| {
        let mut cmd = setup.command("pkcs11-tool");
        cmd.env("P11_KIT_SERVER_ADDRESS", &address)
            .args(["--module", P11KIT_CLIENT])
            .args(args);
        cmd
    };

    // Written through the server, read directly; and the other way.
    std::fs::write(setup.dir().join("payload"), b"through the socket").unwrap();
    run(remote(&[
        "--login",
        "--pin",
        PIN,
        "--write-object",
        "payload",
        "--type",
        "data",
        "--label",
        "via-server",
    ])
    .arg("--private"));
    let direct = setup.tool("pkcs11-tool", &["--login", "--pin", PIN, "-O"]);
    assert!(direct.contains("via-server"), "{direct}");
    setup.tool(
        "pkcs11-tool",
        &[
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "direct-key",
        ],
    );
    let served = run(&mut remote(&["--login", "--pin", PIN, "-O"]));
    assert!(
        served.contains("direct-key") && served.contains("via-server"),
        "{served}"
    );

    // A signature made through the server verifies with the token's key
    // (CKM_ECDSA over a SHA-256 digest: of the EC signatures, p11-kit 0.24's
    // protocol carries only ECDSA and ECDSA-SHA1).
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"signed far away");
    std::fs::write(setup.dir().join("digest"), digest.as_ref()).unwrap();
    let sign = "--login --pin PIN --sign -m ECDSA --label direct-key -i digest -o signature";
    let sign: Vec<&str> = sign
        .split(' ')
        .map(|a| if a == "PIN" { PIN } else { a })
        .collect();
    run(&mut remote(&sign));
    let verify = "--verify -m ECDSA --label direct-key -i digest --signature-file signature";
    setup.tool("pkcs11-tool", &verify.split(' ').collect::<Vec<_>>());

    // A wrong PIN reaches the client as the token's answer.
    let wrong = run_failing(&mut remote(&["--login", "--pin", "not-the-pin", "-O"]));
    assert!(wrong.contains("CKR_PIN_INCORRECT"), "{wrong}");
}

/// PyKCS11 (`pip install PyKCS11`): RSA and EC key pairs made on the
/// token, signatures made and verified, a changed message refused.
#[test]
fn pykcs11_signs_and_verifies() {
    let setup = Setup::new();
    let script = r#"
import sys, PyKCS11
from PyKCS11 import Mechanism, LowLevel as L
lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
slot = lib.getSlotList(tokenPresent=True)[0]
assert lib.getTokenInfo(slot).label.strip() == "softoken"
s = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
s.login(sys.argv[2])
P256 = bytes.fromhex("06082a8648ce3d030107")
pairs = {
    "ec": (PyKCS11.MechanismECGENERATEKEYPAIR,
           [(PyKCS11.CKA_EC_PARAMS, P256), (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_TOKEN, True)],
           [(PyKCS11.CKA_SIGN, True), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_SENSITIVE, True)],
           PyKCS11.CKM_ECDSA_SHA256),
    "rsa": (PyKCS11.MechanismRSAGENERATEKEYPAIR,
            [(PyKCS11.CKA_MODULUS_BITS, 2048), (PyKCS11.CKA_PUBLIC_EXPONENT, (1, 0, 1)),
             (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_TOKEN, True)],
            [(PyKCS11.CKA_SIGN, True), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_SENSITIVE, True)],
            PyKCS11.CKM_SHA256_RSA_PKCS),
}
for name, (gen, public, private, sign) in pairs.items():
    pub, priv = s.generateKeyPair(public, private, mecha=gen)
    message = b"signed from Python"
    signature = bytes(s.sign(priv, message, Mechanism(sign)))
    assert s.verify(pub, message, signature, Mechanism(sign)), name
    assert not s.verify(pub, b"signed from Pythom", signature, Mechanism(sign)), name
    print(name, "ok", len(signature))
s.logout()
s.closeSession()
"#;
    let out = run(setup
        .command("python3")
        .arg("-c")
        .arg(script)
        .arg(&setup.module.path)
        .arg(PIN));
    assert!(out.contains("ec ok") && out.contains("rsa ok 256"), "{out}");
}

/// OpenJDK's SunPKCS11 with a provider configuration: keytool makes RSA
/// and EC keys (and their certificates) on the token, jarsigner signs a
/// jar with one and verifies it, and `tests/java/Probe.java` uses
/// Signature, Cipher and Mac through the provider (a forged GCM tag must
/// surface as AEADBadTagException).
#[test]
fn java_keytool_jarsigner_and_the_provider_use_the_token() {
    let setup = Setup::new();
    let config = setup.dir().join("p11.cfg");
    std::fs::write(
        &config,
        format!(
            "name = softoken\nlibrary = {}\nslotListIndex = 0\n",
            setup.module.path.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let store = [
        "-keystore",
        "NONE",
        "-storetype",
        "PKCS11",
        "-addprovider",
        "SunPKCS11",
        "-providerArg",
        &config,
        "-storepass",
        PIN,
    ];
    for (alias, algorithm, size) in [("jrsa", "RSA", "2048"), ("jec", "EC", "256")] {
        let mut keytool = setup.command("keytool");
        keytool
            .args([
                "-genkeypair",
                "-alias",
                alias,
                "-keyalg",
                algorithm,
                "-keysize",
                size,
            ])
            .args(["-dname", &format!("CN=Java {alias}")])
            .args(store);
        run(&mut keytool);
    }
    let listed = run(setup.command("keytool").arg("-list").args(store));
    assert!(
        listed.contains("jrsa, PrivateKeyEntry") && listed.contains("jec, PrivateKeyEntry"),
        "{listed}"
    );

    std::fs::write(setup.dir().join("a.txt"), "in the jar\n").unwrap();
    run(setup.command("jar").args(["cf", "app.jar", "a.txt"]));
    run(setup
        .command("jarsigner")
        .args(store)
        .args(["app.jar", "jrsa"]));
    let verified = run(setup.command("jarsigner").args(["-verify", "app.jar"]));
    assert!(verified.contains("jar verified."), "{verified}");

    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("java/Probe.java");
    let said = run(setup.command("java").arg(&probe).arg(&config).arg(PIN));
    for line in [
        "SHA256withRSA ok",
        "SHA256withECDSA ok",
        "RSASSA-PSS ok",
        "AES/GCM ok",
        "forged tag: AEADBadTagException",
        "HmacSHA256 ok",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
}

/// Preferences that keep a test's Firefox off the network (updates,
/// telemetry, safe browsing, remote settings, captive portal and
/// connectivity checks, OCSP, DNS over HTTPS) and let it pick the client
/// certificate itself.
const FIREFOX_PREFS: &[(&str, &str)] = &[
    ("security.default_personal_cert", "\"Select Automatically\""),
    ("app.update.disabledForTesting", "true"),
    ("app.update.auto", "false"),
    ("browser.safebrowsing.malware.enabled", "false"),
    ("browser.safebrowsing.phishing.enabled", "false"),
    ("browser.safebrowsing.downloads.enabled", "false"),
    ("browser.safebrowsing.blockedURIs.enabled", "false"),
    ("browser.safebrowsing.provider.mozilla.updateURL", "\"\""),
    ("browser.shell.checkDefaultBrowser", "false"),
    ("browser.startup.homepage_override.mstone", "\"ignore\""),
    ("browser.startup.page", "0"),
    ("browser.newtabpage.enabled", "false"),
    ("datareporting.healthreport.uploadEnabled", "false"),
    ("datareporting.policy.dataSubmissionEnabled", "false"),
    ("toolkit.telemetry.enabled", "false"),
    ("toolkit.telemetry.server", "\"\""),
    ("network.captive-portal-service.enabled", "false"),
    ("network.connectivity-service.enabled", "false"),
    ("network.dns.disablePrefetch", "true"),
    ("network.prefetch-next", "false"),
    ("extensions.update.enabled", "false"),
    ("extensions.getAddons.cache.enabled", "false"),
    ("extensions.blocklist.enabled", "false"),
    ("services.settings.server", "\"http://127.0.0.1:9/\""),
    ("security.OCSP.enabled", "0"),
    ("security.remote_settings.crlite_filters.enabled", "false"),
    ("network.proxy.type", "0"),
    ("browser.region.network.url", "\"\""),
    ("geo.provider.network.url", "\"\""),
    ("media.gmp-manager.url", "\"\""),
    ("network.trr.mode", "5"),
];

/// A test PKI in `dir` (by openssl): a CA, a server certificate for
/// 127.0.0.1, and certificates issued to client requests.
struct Pki<'a> {
    dir: &'a Path,
}

impl Pki<'_> {
    fn new(dir: &Path) -> Pki<'_> {
        let pki = Pki { dir };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Test CA",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        pki.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        pki.issue("server.csr", "server.pem", "server.ext");
        pki
    }
    fn openssl(&self, args: &[&str]) -> String {
        run(Command::new("timeout")
            .args(["60", "openssl"])
            .args(args)
            .current_dir(self.dir)
            .env("OPENSSL_CONF", "/dev/null"))
    }
    /// A certificate for the request `csr`, signed by the CA.
    fn issue(&self, csr: &str, out: &str, ext: &str) {
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            out,
            "-extfile",
            ext,
        ]);
    }

    /// Firefox, headless, on `profile` (whose NSS database is made to trust
    /// the CA, and whose preferences keep it off the network and pick the
    /// client certificate), loads a page from an `openssl s_server` on
    /// 127.0.0.1 that requires a client certificate; the server's log.
    fn firefox_visit(&self, profile: &Path, home: &Path) -> String {
        let profile_db = format!("sql:{}", profile.display());
        if !profile.join("cert9.db").exists() {
            run(Command::new("certutil").args(["-N", "-d", &profile_db, "--empty-password"]));
        }
        run(Command::new("certutil")
            .args(["-A", "-d", &profile_db, "-n", "Test CA", "-t", "C,,", "-i"])
            .arg(self.dir.join("ca.pem")));
        let prefs: String = FIREFOX_PREFS
            .iter()
            .map(|(name, value)| format!("user_pref(\"{name}\", {value});\n"))
            .collect();
        std::fs::write(profile.join("user.js"), prefs).unwrap();

        let accept = format!("127.0.0.1:{}", free_port());
        let log = self.dir.join("s_server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut server = Command::new("openssl");
        server
            .args([
                "s_server",
                "-accept",
                &accept,
                "-cert",
                "server.pem",
                "-key",
                "server.key",
            ])
            .args(["-CAfile", "ca.pem", "-Verify", "1", "-www"])
            .current_dir(self.dir)
            .env("OPENSSL_CONF", "/dev/null")
            // s_server ends at the end of its input: keep it open. The
            // verification lines go to standard error.
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let _server = Server(server.spawn().unwrap());
        wait_for("s_server", || std::net::TcpStream::connect(&accept).is_ok());
        let firefox = run(Command::new("timeout")
            .args([
                "90",
                "firefox-esr",
                "--headless",
                "--no-remote",
                "--profile",
            ])
            .arg(profile)
            .arg("--screenshot")
            .arg(self.dir.join("page.png"))
            .arg(format!("https://{accept}/"))
            .env("HOME", home));
        let served = std::fs::read_to_string(&log).unwrap();
        assert!(
            served.contains("depth=0 CN = Token Client\nverify return:1"),
            "the server saw no token certificate:\n{served}\nFirefox said:\n{firefox}"
        );
        served
    }
}

/// Firefox ESR, headless, with a fresh profile where
/// `softoken-modutil firefox-register` put the module: an `openssl
/// s_server` on 127.0.0.1 requires a client certificate, the key (made on
/// the token) and its certificate (issued by the test's CA, which the
/// profile trusts) are on the token, and the server's log shows the
/// token's certificate presented and verified.
#[test]
fn firefox_authenticates_to_a_tls_server_with_the_token_key() {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path();
    let module = module_copy();
    let (token, profile, home) = (dir.join("token"), dir.join("profile"), dir.join("home"));
    for d in [&token, &profile, &home] {
        std::fs::create_dir(d).unwrap();
    }
    let configdir = format!("sql:{}", token.display());
    let pki = Pki::new(dir);

    // The client key on the token (an empty password: Firefox headless
    // asks nobody for a PIN), its request signed there, its certificate
    // written beside it.
    let pkcs11_tool = |args: &[&str]| {
        run(Command::new("timeout")
            .args(["60", "pkcs11-tool", "--module"])
            .arg(&module.path)
            .args(args)
            .current_dir(dir)
            .env("SOFTOKEN_CONFIGDIR", &configdir))
    };
    pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "firefox-client",
        "--id",
        "c1",
    ]);
    let conf = dir.join("openssl.cnf");
    std::fs::write(
        &conf,
        format!(
            "openssl_conf = openssl_init\n[openssl_init]\nengines = engines\n\
             [engines]\npkcs11 = pkcs11\n[pkcs11]\nengine_id = pkcs11\n\
             dynamic_path = {ENGINE}\nMODULE_PATH = {}\ninit = 0\n\
             [req]\ndistinguished_name = dn\n[dn]\n",
            module.path.display()
        ),
    )
    .unwrap();
    run(Command::new("openssl")
        .env("OPENSSL_CONF", &conf)
        .env("SOFTOKEN_CONFIGDIR", &configdir)
        .current_dir(dir)
        .args([
            "req",
            "-new",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            "pkcs11:token=softoken;object=firefox-client;type=private",
            "-subj",
            "/CN=Token Client",
            "-out",
            "client.csr",
        ]));
    pki.issue("client.csr", "client.pem", "client.ext");
    pki.openssl(&[
        "x509",
        "-in",
        "client.pem",
        "-outform",
        "DER",
        "-out",
        "client.der",
    ]);
    pkcs11_tool(&[
        "--write-object",
        "client.der",
        "--type",
        "cert",
        "--id",
        "c1",
        "--label",
        "firefox-client",
    ]);

    run(Command::new(modutil_path())
        .args(["firefox-register", "--profile"])
        .arg(&profile)
        .arg("--libfile")
        .arg(&module.path)
        .args(["--params", &format!("configdir='{configdir}'")]));
    pki.firefox_visit(&profile, &home);
}

/// The README's Firefox commands, exactly as written there, from a fresh
/// HOME where Firefox has made its profile: the module and tool installed
/// for the user, registered in the profile, a PKCS#12 identity imported
/// into the default token; Firefox then authenticates with its key.
#[test]
fn the_readme_takes_a_user_to_firefox_using_the_token() {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let section = readme
        .split("\n## Firefox in three commands")
        .nth(1)
        .expect("the README's Firefox section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its commands");
    let commands: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert!(commands.len() <= 3, "{commands:?}");
    // They run inside single quotes below.
    assert!(commands.iter().all(|c| !c.contains('\'')), "{commands:?}");

    let top = tempfile::tempdir().unwrap();
    let dir = top.path();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    // Firefox run once: it has a profile.
    run(Command::new("timeout")
        .args([
            "60",
            "firefox-esr",
            "--headless",
            "-CreateProfile",
            "everyday",
        ])
        .env("HOME", &home));
    // The identity a user brings: a key and certificate in a PKCS#12 file
    // (no password, so that the README's import asks nothing here).
    let pki = Pki::new(dir);
    pki.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=Token Client",
    ]);
    pki.issue("client.csr", "client.pem", "client.ext");
    pki.openssl(
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "client.key",
            "-in",
            "client.pem",
            "-name",
            "Token Client",
            "-passout",
            "pass:",
            "-out",
        ]
        .into_iter()
        .chain([home.join("identity.p12").to_str().unwrap()])
        .collect::<Vec<_>>(),
    );

    // Each on a terminal (util-linux's `script`), where the user presses
    // Enter at the PKCS#12 password prompt: the file has none.
    for command in &commands {
        let mut typed = Command::new("script");
        typed
            .args([
                "-qec",
                &format!("bash -euo pipefail -c '{command}'"),
                "/dev/null",
            ])
            .current_dir(repository())
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("SOFTOKEN_CONFIGDIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = typed.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let profiles = home.join(".config/mozilla/firefox");
    let profile = std::fs::read_dir(&profiles)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "everyday"))
        .expect("the profile");
    assert!(std::fs::read_to_string(profile.join("pkcs11.txt"))
        .unwrap()
        .contains(&format!(
            "library={}",
            home.join(".local/lib/pkcs11/libsoftoken.so").display()
        )));
    pki.firefox_visit(&profile, &home);
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}
