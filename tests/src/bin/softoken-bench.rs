//! softoken-bench: the same PKCS#11 workload on several modules side by side
//! (ours, NSS's softoken, SoftHSMv2), each on a fresh token, printing per
//! row the median with min-max over rounds and the ratio to the best peer.
//!
//! One operation is C_xxxInit plus one call with a buffer already sized, as
//! a client does.
//!
//! Usage: softoken-bench [--quick] [--rounds N] [--only [=]TEXT] [--module NAME=PATH]...
//! Without --module: ours (beside this binary), NSS's libsoftokn3.so and
//! SoftHSMv2's libsofthsm2.so, those installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pkcs11_sys::*;
use softoken_tests::raw::{ecdh_param, gcm_param, mechanism, param_bytes, ul, Raw, TRUE};

/// A module under test, initialised on a fresh token and logged in.
struct Peer {
    name: String,
    raw: Raw,
    init_params: Option<String>,
    pin: String,
    s: std::cell::Cell<CK_SESSION_HANDLE>,
    /// Which slot of C_GetSlotList holds the token.
    slot_index: usize,
    _dir: tempfile::TempDir,
}

const USER_PIN: &str = "bench-pin";
const SO_PIN: &str = "bench-so-pin";

fn check(what: &str, rv: CK_RV) {
    assert_eq!(rv, CKR_OK, "{what}: {rv:#x}");
}

impl Peer {
    /// Loads `path` and prepares a token the way that module wants it.
    fn new(name: &str, path: &Path) -> Peer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        let nss_params = format!(
            "configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=",
            dir.path().display()
        );
        let (init_params, pin) = if file.contains("softokn3") {
            // NSS opens a database certutil made, with a password.
            std::fs::write(dir.path().join("pw"), USER_PIN).expect("password file");
            let made = Command::new("certutil")
                .args(["-N", "-d"])
                .arg(format!("sql:{}", dir.path().display()))
                .arg("-f")
                .arg(dir.path().join("pw"))
                .status()
                .expect("certutil (apt-get install libnss3-tools)");
            assert!(made.success(), "certutil -N");
            (Some(nss_params), USER_PIN.to_string())
        } else if file.contains("softhsm") {
            let tokens = dir.path().join("tokens");
            std::fs::create_dir(&tokens).expect("token directory");
            let conf = dir.path().join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    tokens.display()
                ),
            )
            .expect("softhsm2.conf");
            std::env::set_var("SOFTHSM2_CONF", &conf);
            (None, USER_PIN.to_string())
        } else {
            // Ours: the NSS parameter string; a password as NSS's has.
            (Some(nss_params), USER_PIN.to_string())
        };
        let raw = Raw::load_path(path);
        check("C_Initialize", raw.initialize(init_params.as_deref()));
        // NSS's first slot is its crypto-services slot; the database token
        // comes second.
        let slot_index = usize::from(file.contains("softokn3"));
        let mut slot = raw.slots()[slot_index];
        if file.contains("softhsm") {
            check("C_InitToken", raw.init_token(slot, SO_PIN, "bench"));
            // SoftHSM moves an initialised token to a new slot id.
            slot = raw.slots()[slot_index];
            let s = raw.open(slot, true).expect("session");
            check("SO login", raw.login(s, CKU_SO, SO_PIN));
            check("C_InitPIN", raw.init_pin(s, &pin));
            raw.close(s);
        } else if !file.contains("softokn3") {
            let s = raw.open(slot, true).expect("session");
            check("C_SetPIN", raw.set_pin(s, "", &pin));
            raw.close(s);
        }
        let s = raw.open(slot, true).expect("session");
        check(&format!("{name}: C_Login"), raw.login(s, CKU_USER, &pin));
        Peer {
            name: name.to_string(),
            raw,
            init_params,
            pin,
            s: std::cell::Cell::new(s),
            slot_index,
            _dir: dir,
        }
    }

    /// C_Initialize again, then a logged-in session as a client makes one
    /// (SoftHSMv2 lists its slots only when asked).
    fn start(&self) -> Option<CK_SESSION_HANDLE> {
        if self.raw.initialize(self.init_params.as_deref()) != CKR_OK {
            return None;
        }
        let slot = *self.raw.slots().get(self.slot_index)?;
        let s = self.raw.open(slot, true).ok()?;
        (self.raw.login(s, CKU_USER, &self.pin) == CKR_OK).then_some(s)
    }

    fn s(&self) -> CK_SESSION_HANDLE {
        self.s.get()
    }

    /// Whether this peer is softoken (not NSS's softoken or SoftHSMv2).
    fn is_softoken(&self) -> bool {
        let file = self.raw.path().file_name().and_then(|f| f.to_str());
        file.is_some_and(|f| f.contains("softoken"))
    }

    /// softoken's database opened by its owner (logged in), for settings
    /// no C API call makes.
    fn owner(&self) -> softoken::admin::Database {
        let db = softoken::admin::Database::open(self.init_params.as_deref())
            .unwrap_or_else(|e| panic!("{}: open the database: {e:?}", self.name));
        db.login(self.pin.as_bytes()).expect("owner login");
        db
    }

    /// Where the peer keeps its database.
    fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// A new session, so that the session objects a row made (thousands of
    /// generated keys) do not weigh on the rows after it.
    fn renew(&self) {
        let _ = self.raw.close(self.s());
        let s = self
            .raw
            .open(self.raw.slots()[self.slot_index], true)
            .expect("session");
        let _ = self.raw.login(s, CKU_USER, &self.pin);
        self.s.set(s);
    }

    fn f(&self) -> &CK_FUNCTION_LIST {
        self.raw.f()
    }
}

/// What one row measures, and how its rate reads.
enum Unit {
    Ops,
    /// Bytes processed per operation.
    Bytes(usize),
    /// A size in bytes, where less is better.
    Memory,
}

struct Row {
    name: String,
    unit: Unit,
    /// Per peer: the rate of each round (ops/s or bytes/s); None if the peer
    /// cannot run the row.
    rates: Vec<Option<Vec<f64>>>,
}

/// Runs `op` in rounds of about `round` each; returns each round's rate.
fn measure(rounds: usize, round: Duration, mut op: impl FnMut() -> bool) -> Option<Vec<f64>> {
    // Warm up and calibrate.
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < round / 4 || n == 0 {
        if !op() {
            return None;
        }
        n += 1;
    }
    let per_round = ((n as f64) * 4.0).max(1.0) as u64;
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            if !op() {
                return None;
            }
        }
        rates.push(per_round as f64 / t.elapsed().as_secs_f64());
    }
    Some(rates)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn human(rate: f64, unit: &Unit) -> String {
    match unit {
        Unit::Ops if rate >= 1e6 => format!("{:.2} M/s", rate / 1e6),
        Unit::Ops if rate >= 1e4 => format!("{:.1} k/s", rate / 1e3),
        Unit::Ops => format!("{rate:.1}/s"),
        Unit::Memory => format!("{:.1} MiB", rate / (1024.0 * 1024.0)),
        Unit::Bytes(b) => {
            let bytes = rate * *b as f64;
            if bytes >= 1e9 {
                format!("{:.2} GB/s", bytes / 1e9)
            } else {
                format!("{:.1} MB/s", bytes / 1e6)
            }
        }
    }
}

/// Session-object templates each module accepts.
fn aes_key(p: &Peer, len: usize) -> CK_OBJECT_HANDLE {
    let t = [
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_AES)),
        (CKA_VALUE, vec![0x5a; len]),
        (CKA_ENCRYPT, TRUE.to_vec()),
        (CKA_DECRYPT, TRUE.to_vec()),
    ];
    p.raw.create(p.s(), &t).expect("AES key")
}

fn hmac_key(p: &Peer) -> CK_OBJECT_HANDLE {
    let t = [
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_VALUE, vec![0x33; 32]),
        (CKA_SIGN, TRUE.to_vec()),
        (CKA_VERIFY, TRUE.to_vec()),
    ];
    p.raw.create(p.s(), &t).expect("HMAC key")
}

fn rsa_pair(p: &Peer) -> Option<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    p.raw
        .generate_key_pair(
            p.s(),
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            &[
                (CKA_MODULUS_BITS, ul(2048)),
                (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
                (CKA_VERIFY, TRUE.to_vec()),
            ],
            &[(CKA_SIGN, TRUE.to_vec()), (CKA_PRIVATE, TRUE.to_vec())],
        )
        .ok()
}

const P256: &[u8] = softoken_tests::P256_PARAMS;
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn ec_pair(p: &Peer, curve: &[u8]) -> Option<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    p.raw
        .generate_key_pair(
            p.s(),
            CKM_EC_KEY_PAIR_GEN,
            &[(CKA_EC_PARAMS, curve.to_vec()), (CKA_VERIFY, TRUE.to_vec())],
            &[
                (CKA_SIGN, TRUE.to_vec()),
                (CKA_DERIVE, TRUE.to_vec()),
                (CKA_PRIVATE, TRUE.to_vec()),
            ],
        )
        .ok()
}

type InitFn = unsafe extern "C" fn(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) -> CK_RV;
type OneShotFn = unsafe extern "C" fn(
    CK_SESSION_HANDLE,
    CK_BYTE_PTR,
    CK_ULONG,
    CK_BYTE_PTR,
    CK_ULONG_PTR,
) -> CK_RV;

/// An Init and its single-part call (C_Sign, C_Encrypt) into a buffer
/// already sized.
#[allow(clippy::too_many_arguments)]
fn init_and_run(
    p: &Peer,
    init: Option<InitFn>,
    run: Option<OneShotFn>,
    ty: CK_MECHANISM_TYPE,
    param: &mut [u8],
    key: CK_OBJECT_HANDLE,
    data: &[u8],
    out: &mut [u8],
) -> bool {
    let mut m = mechanism(ty, param);
    let mut len = out.len() as CK_ULONG;
    let (Some(init), Some(run)) = (init, run) else {
        return false;
    };
    // SAFETY: valid mechanism, buffers and lengths.
    unsafe {
        init(p.s(), &mut m, key) == CKR_OK
            && run(
                p.s(),
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
            ) == CKR_OK
    }
}

fn sign_once(
    p: &Peer,
    ty: CK_MECHANISM_TYPE,
    param: &mut [u8],
    key: CK_OBJECT_HANDLE,
    data: &[u8],
    out: &mut [u8],
) -> bool {
    init_and_run(p, p.f().C_SignInit, p.f().C_Sign, ty, param, key, data, out)
}

fn encrypt_once(
    p: &Peer,
    ty: CK_MECHANISM_TYPE,
    param: &mut [u8],
    key: CK_OBJECT_HANDLE,
    data: &[u8],
    out: &mut [u8],
) -> bool {
    init_and_run(
        p,
        p.f().C_EncryptInit,
        p.f().C_Encrypt,
        ty,
        param,
        key,
        data,
        out,
    )
}

fn verify_once(
    p: &Peer,
    ty: CK_MECHANISM_TYPE,
    param: &mut [u8],
    key: CK_OBJECT_HANDLE,
    data: &[u8],
    sig: &[u8],
) -> bool {
    let f = p.f();
    let mut m = mechanism(ty, param);
    // SAFETY: valid mechanism, buffers and lengths.
    unsafe {
        (f.C_VerifyInit.unwrap())(p.s(), &mut m, key) == CKR_OK
            && (f.C_Verify.unwrap())(
                p.s(),
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                sig.as_ptr() as *mut u8,
                sig.len() as CK_ULONG,
            ) == CKR_OK
    }
}

fn digest_once(p: &Peer, data: &[u8]) -> bool {
    let f = p.f();
    let mut m = mechanism(CKM_SHA256, &mut []);
    let mut out = [0u8; 32];
    let mut len = 32;
    // SAFETY: valid mechanism, buffers and lengths.
    unsafe {
        (f.C_DigestInit.unwrap())(p.s(), &mut m) == CKR_OK
            && (f.C_Digest.unwrap())(
                p.s(),
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
            ) == CKR_OK
    }
}

/// A persistent object with this label: a generic secret key, the kind of
/// token object all three keep (NSS refuses token data objects), stored
/// with its value encrypted.
fn create_token_object(p: &Peer, label: &str) -> Option<CK_OBJECT_HANDLE> {
    let made = p.raw.create(
        p.s(),
        &[
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_LABEL, label.as_bytes().to_vec()),
            (CKA_VALUE, vec![7; 32]),
        ],
    );
    report(p, "C_CreateObject", made)
}

/// The value, or None with the peer's return code on standard error (a
/// row a peer cannot run shows n/a).
fn report<T>(p: &Peer, what: &str, r: Result<T, CK_RV>) -> Option<T> {
    r.map_err(|rv| eprintln!("  {}: {what}: {rv:#x}", p.name))
        .ok()
}

fn find_by_label(p: &Peer, label: &str) -> bool {
    matches!(p.raw.find(p.s(), &[(CKA_LABEL, label.as_bytes().to_vec())]), Ok(v) if v.len() == 1)
}

struct Options {
    quick: bool,
    rounds: usize,
    round: Duration,
    find_sizes: Vec<usize>,
    /// Only the rows whose name contains this, or, after a leading `=`,
    /// the row of exactly this name (for profiling one path).
    only: Option<String>,
    modules: Vec<(String, PathBuf)>,
}

fn options() -> Options {
    let mut o = Options {
        quick: false,
        rounds: 5,
        round: Duration::from_millis(300),
        find_sizes: vec![1_000, 10_000, 100_000],
        only: None,
        modules: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--only" => o.only = Some(args.next().expect("--only TEXT")),
            "--quick" => {
                o.quick = true;
                o.rounds = 1;
                o.round = Duration::from_millis(20);
                o.find_sizes = vec![100];
            }
            "--rounds" => {
                o.rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds N")
            }
            "--module" => {
                let spec = args.next().expect("--module NAME=PATH");
                let (name, path) = spec.split_once('=').expect("--module NAME=PATH");
                o.modules.push((name.to_string(), PathBuf::from(path)));
            }
            "--help" | "-h" => {
                println!("usage: softoken-bench [--quick] [--rounds N] [--only [=]TEXT] [--module NAME=PATH]...");
                std::process::exit(0);
            }
            other => {
                eprintln!("softoken-bench: unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    if o.modules.is_empty() {
        o.modules
            .push(("softoken".into(), softoken_tests::module_path()));
        for (name, path) in [
            ("NSS", softoken_tests::NSS_SOFTOKEN),
            ("SoftHSMv2", "/usr/lib/softhsm/libsofthsm2.so"),
        ] {
            if Path::new(path).exists() {
                o.modules.push((name.into(), PathBuf::from(path)));
            }
        }
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, module, slot, params] = args.as_slice() {
        if flag == "--rss-probe" {
            rss_probe(Path::new(module), slot.parse().expect("slot index"), params);
        }
    }
    let o = options();
    let peers: Vec<Peer> = o.modules.iter().map(|(n, p)| Peer::new(n, p)).collect();
    let mut rows: Vec<Row> = Vec::new();
    let wanted = |name: &str| match o
        .only
        .as_deref()
        .map(|only| only.strip_prefix('=').ok_or(only))
    {
        None => true,
        Some(Ok(exact)) => name == exact,
        Some(Err(part)) => name.contains(part),
    };
    let mut row = |name: &str, unit: Unit, run: &dyn Fn(&Peer) -> Option<Vec<f64>>| {
        if !wanted(name) {
            return;
        }
        eprintln!("{name}...");
        rows.push(Row {
            name: name.to_string(),
            unit,
            rates: peers.iter().map(run).collect(),
        });
        peers.iter().for_each(Peer::renew);
    };
    let (rounds, round) = (o.rounds, o.round);
    let m = |op: &mut dyn FnMut() -> bool| measure(rounds, round, op);

    row("C_Initialize+OpenSession+Login", Unit::Ops, &|p| {
        // A second copy of the library state would differ per module: the
        // same library is finalised and initialised again.
        m(&mut || {
            let _ = p.raw.finalize();
            p.start().is_some()
        })
    });
    // How fast a caller can guess PINs: wrong C_Logins on a logged-out
    // session, without a guessing policy (every peer) and with softoken's
    // (a 100 ms delay, set in the database as its owner would). Each guess
    // differs: NSS caches the key of the last password tried.
    let guess = |p: &Peer| {
        let _ = p.raw.logout(p.s());
        let mut n = 0u64;
        m(&mut || {
            n += 1;
            p.raw.login(p.s(), CKU_USER, &format!("guess {n}")) == CKR_PIN_INCORRECT
        })
    };
    row("wrong C_Login (PIN guesses)", Unit::Ops, &guess);
    row(
        "wrong C_Login with a 100 ms guessing delay",
        Unit::Ops,
        &|p| {
            let owner = p.is_softoken().then(|| p.owner())?;
            let set = |delay_ms| {
                owner
                    .set_pin_policy(softoken::admin::PinPolicy {
                        delay_ms,
                        lockout: 0,
                    })
                    .expect("guessing policy")
            };
            set(100);
            let rates = guess(p);
            set(0);
            rates
        },
    );
    let digest = [0xabu8; 32];
    row("RSA-2048 key generation", Unit::Ops, &|p| {
        // Prime search takes a widely varying time: rounds three times as
        // long, so each median covers some 15 keys a module.
        measure(rounds, round * 3, || rsa_pair(p).is_some())
    });
    for (name, ty, pss) in [
        (
            "RSA-2048 PKCS#1 v1.5 SHA-256 sign",
            CKM_SHA256_RSA_PKCS,
            false,
        ),
        ("RSA-2048 PSS SHA-256 sign", CKM_SHA256_RSA_PKCS_PSS, true),
    ] {
        row(name, Unit::Ops, &|p| {
            let (_, private) = rsa_pair(p)?;
            let mut param = if pss { pss_param() } else { vec![] };
            let mut out = [0u8; 256];
            m(&mut || sign_once(p, ty, &mut param, private, b"data to sign", &mut out))
        });
    }
    row("RSA-2048 PKCS#1 v1.5 SHA-256 verify", Unit::Ops, &|p| {
        let (public, private) = rsa_pair(p)?;
        let mut sig = [0u8; 256];
        sign_once(p, CKM_SHA256_RSA_PKCS, &mut [], private, b"data", &mut sig).then_some(())?;
        m(&mut || verify_once(p, CKM_SHA256_RSA_PKCS, &mut [], public, b"data", &sig))
    });
    for (curve_name, curve, width) in [("P-256", P256, 64), ("P-384", P384, 96)] {
        row(
            &format!("EC {curve_name} key generation"),
            Unit::Ops,
            &|p| m(&mut || ec_pair(p, curve).is_some()),
        );
        row(&format!("ECDSA {curve_name} sign"), Unit::Ops, &|p| {
            let (_, private) = ec_pair(p, curve)?;
            let mut out = vec![0u8; width];
            m(&mut || sign_once(p, CKM_ECDSA, &mut [], private, &digest, &mut out))
        });
        row(&format!("ECDSA {curve_name} verify"), Unit::Ops, &|p| {
            let (public, private) = ec_pair(p, curve)?;
            let mut sig = vec![0u8; width];
            sign_once(p, CKM_ECDSA, &mut [], private, &digest, &mut sig).then_some(())?;
            m(&mut || verify_once(p, CKM_ECDSA, &mut [], public, &digest, &sig))
        });
    }
    // The same measurement with 1, 2 and 4 threads, each with its own
    // session, so the ratios between them show how signing scales.
    for threads in [1, 2, 4] {
        row(
            &format!("ECDSA P-256 sign, {threads} thread(s)"),
            Unit::Ops,
            &|p| {
                let (_, private) = ec_pair(p, P256)?;
                threaded_signing(p, threads, rounds, round, private, &digest)
            },
        );
    }
    row("ECDH P-256 derive", Unit::Ops, &|p| {
        let (public, private) = ec_pair(p, P256)?;
        let point = p.raw.get(p.s(), public, CKA_EC_POINT).ok()?;
        let template = [
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
            (CKA_VALUE_LEN, ul(32)),
        ];
        // Raw points for the peers that want them, DER-wrapped for others.
        let raw_point =
            if point.len() > 2 && point[0] == 0x04 && point[1] as usize == point.len() - 2 {
                point[2..].to_vec()
            } else {
                point.clone()
            };
        let derive = |pt: &[u8]| {
            let param = ecdh_param(CKD_NULL, &[], pt);
            let made = p
                .raw
                .derive(p.s(), CKM_ECDH1_DERIVE, param, private, &template);
            made.map(|h| p.raw.destroy(p.s(), h))
        };
        let try_derive = |pt: &[u8]| derive(pt).is_ok();
        let pt = if try_derive(&raw_point) {
            raw_point
        } else {
            point
        };
        report(p, "C_DeriveKey", derive(&pt))?;
        m(&mut || try_derive(&pt))
    });
    let mib = vec![0x42u8; 1 << 20];
    let small = [0x42u8; 64];
    for (name, data) in [
        ("AES-256-GCM encrypt 1 MiB", &mib[..]),
        ("AES-256-GCM encrypt 64 B", &small[..]),
    ] {
        row(name, Unit::Bytes(data.len()), &|p| {
            let key = aes_key(p, 32);
            let iv = [1u8; 12];
            let mut param = gcm_param(&iv, &[], 128);
            let mut out = vec![0u8; data.len() + 16];
            m(&mut || encrypt_once(p, CKM_AES_GCM, &mut param, key, data, &mut out))
        });
    }
    row(
        "AES-256-CBC-PAD encrypt 1 MiB",
        Unit::Bytes(mib.len()),
        &|p| {
            let key = aes_key(p, 32);
            let mut iv = [3u8; 16];
            let mut out = vec![0u8; mib.len() + 16];
            m(&mut || encrypt_once(p, CKM_AES_CBC_PAD, &mut iv, key, &mib, &mut out))
        },
    );
    row("SHA-256 1 MiB", Unit::Bytes(mib.len()), &|p| {
        m(&mut || digest_once(p, &mib))
    });
    for (name, data) in [
        ("HMAC-SHA256 1 MiB", &mib[..]),
        ("HMAC-SHA256 64 B", &small[..]),
    ] {
        row(name, Unit::Bytes(data.len()), &|p| {
            let key = hmac_key(p);
            let mut out = [0u8; 32];
            m(&mut || sign_once(p, CKM_SHA256_HMAC, &mut [], key, data, &mut out))
        });
    }
    row("token object creation (C_CreateObject)", Unit::Ops, &|p| {
        let mut n = 0;
        m(&mut || {
            n += 1;
            create_token_object(p, &format!("created {n}")).is_some()
        })
    });
    row("C_GetAttributeValue (CKA_LABEL)", Unit::Ops, &|p| {
        let h = create_token_object(p, "read me")?;
        m(&mut || p.raw.get(p.s(), h, CKA_LABEL).is_ok())
    });
    row("token object destruction", Unit::Ops, &|p| {
        // Each round destroys a batch made before its clock starts: timing
        // the making too would charge each module its creation rate.
        let batch = if o.quick { 5 } else { 100 };
        let mut n = 0;
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let mut made = Vec::with_capacity(batch);
            for _ in 0..batch {
                n += 1;
                made.push(create_token_object(p, &format!("doomed {n}"))?);
            }
            let start = Instant::now();
            for h in made {
                (p.raw.destroy(p.s(), h) == CKR_OK).then_some(())?;
            }
            rates.push(batch as f64 / start.elapsed().as_secs_f64());
        }
        Some(rates)
    });
    let mut sizes = o.find_sizes.clone();
    sizes.sort_unstable();
    let mut filled = vec![0; peers.len()];
    let biggest = sizes.last().copied();
    let rows_at = |size: usize| {
        [
            format!("C_FindObjects by CKA_LABEL among {size}"),
            format!("C_Initialize+OpenSession+Login with {size} objects"),
        ]
    };
    // Filling is skipped when no row left to run needs the objects.
    let objects_needed = |from: usize| {
        biggest.is_some_and(|b| wanted(&rss_row_name(b)))
            || sizes
                .iter()
                .filter(|&&s| s >= from)
                .any(|&s| rows_at(s).iter().any(|r| wanted(r)))
    };
    for &size in &sizes {
        if !objects_needed(size) {
            break;
        }
        let rows_here = rows_at(size);
        // Every token gets `size` more objects labelled "filler N"; the peers
        // stop at PEER_FILL_LIMIT (NSS creates about 140 a second).
        for (i, (p, done)) in peers.iter().zip(&mut filled).enumerate() {
            if i > 0 && size > PEER_FILL_LIMIT {
                continue;
            }
            eprintln!("  {}: filling to {size} objects", p.name);
            for n in *done..size {
                create_token_object(p, &format!("filler {n}"));
            }
            *done = size;
        }
        let holds = |p: &Peer| {
            peers
                .iter()
                .position(|q| std::ptr::eq(q, p))
                .is_some_and(|i| filled[i] >= size)
        };
        row(&rows_here[0], Unit::Ops, &|p| {
            holds(p).then_some(())?;
            let label = format!("filler {}", size / 2);
            m(&mut || find_by_label(p, &label))
        });
        row(&rows_here[1], Unit::Ops, &|p| {
            holds(p).then_some(())?;
            m(&mut || {
                let _ = p.raw.finalize();
                p.start().is_some()
            })
        });
    }
    if let Some(biggest) = biggest {
        // Our database, and NSS's softoken on a copy of it (the format is
        // the same), each opened by a fresh process.
        let ours = peers[0].dir();
        row(&rss_row_name(biggest), Unit::Memory, &|p| {
            rss_of_a_process_opening(p, ours)
        });
    }

    print_table(&o, &peers, &rows);
}

fn rss_row_name(objects: usize) -> String {
    format!("peak RSS of a process that opened a token of {objects} objects")
}

/// Objects the peers get at most (ours goes on to the largest size).
const PEER_FILL_LIMIT: usize = 10_000;

/// Signatures per second from `threads` threads, each with its own session.
fn threaded_signing(
    p: &Peer,
    threads: usize,
    rounds: usize,
    round: Duration,
    key: CK_OBJECT_HANDLE,
    digest: &[u8],
) -> Option<Vec<f64>> {
    let slot = *p.raw.slots().get(p.slot_index)?;
    let sessions = (0..threads)
        .map(|_| p.raw.open(slot, false).ok())
        .collect::<Option<Vec<_>>>()?;
    let raw = &p.raw;
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let total: Option<u64> = std::thread::scope(|scope| {
            let workers: Vec<_> = sessions
                .iter()
                .map(|&s| {
                    scope.spawn(move || {
                        let mut n = 0u64;
                        while start.elapsed() < round {
                            raw.sign(s, CKM_ECDSA, Vec::new(), key, digest).ok()?;
                            n += 1;
                        }
                        Some(n)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().ok().flatten()).sum()
        });
        rates.push(total? as f64 / start.elapsed().as_secs_f64());
    }
    for s in sessions {
        let _ = raw.close(s);
    }
    Some(rates)
}

/// The peak resident memory of a fresh process that loads the peer's
/// module, opens the database in `db` (ours, or a copy of it for NSS's
/// softoken), logs in and finds one object.
fn rss_of_a_process_opening(p: &Peer, db: &Path) -> Option<Vec<f64>> {
    let file = p.raw.path().file_name()?.to_str()?.to_string();
    if file.contains("softhsm") {
        return None;
    }
    let copy = tempfile::tempdir().ok()?;
    let dir = if file.contains("softokn3") {
        for f in ["cert9.db", "key4.db"] {
            std::fs::copy(db.join(f), copy.path().join(f)).ok()?;
        }
        copy.path()
    } else {
        db
    };
    let params = format!(
        "configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=",
        dir.display()
    );
    let out = Command::new(std::env::current_exe().ok()?)
        .arg("--rss-probe")
        .arg(p.raw.path())
        .arg(p.slot_index.to_string())
        .arg(params)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes: f64 = text.trim().parse().ok()?;
    Some(vec![bytes])
}

/// The child side of `rss_of_a_process_opening`: prints VmHWM in bytes.
fn rss_probe(module: &Path, slot_index: usize, params: &str) -> ! {
    let raw = Raw::load_path(module);
    check("C_Initialize", raw.initialize(Some(params)));
    let slot = raw.slots()[slot_index];
    let s = raw.open(slot, false).expect("session");
    check("C_Login", raw.login(s, CKU_USER, USER_PIN));
    let found = raw
        .find(s, &[(CKA_LABEL, b"filler 0".to_vec())])
        .expect("C_FindObjects");
    assert_eq!(found.len(), 1, "the probe finds its object");
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    println!("{}", kib * 1024);
    std::process::exit(0)
}

fn pss_param() -> Vec<u8> {
    let p = CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        sLen: 32,
    };
    param_bytes(&p)
}

fn print_table(o: &Options, peers: &[Peer], rows: &[Row]) {
    println!(
        "softoken-bench: {} round(s) of ~{} ms per row; median (min-max); ratio = softoken's median / the best peer's\n",
        o.rounds,
        o.round.as_millis()
    );
    let mut header = String::from("| operation |");
    for p in peers {
        header.push_str(&format!(" {} |", p.name));
    }
    header.push_str(" ratio |");
    println!("{header}");
    println!("|{}", "---|".repeat(peers.len() + 2));
    for r in rows {
        let mut line = format!("| {} |", r.name);
        for rates in &r.rates {
            match rates {
                Some(v) => {
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(0.0, f64::max);
                    line.push_str(&format!(
                        " {} ({}-{}) |",
                        human(median(v), &r.unit),
                        human(lo, &r.unit),
                        human(hi, &r.unit)
                    ));
                }
                None => line.push_str(" n/a |"),
            }
        }
        let ours = r.rates.first().and_then(|v| v.as_ref()).map(|v| median(v));
        // Ratios read "above 1 is better" for rates and for memory alike.
        let less_is_better = matches!(r.unit, Unit::Memory);
        let best_peer =
            r.rates[1..]
                .iter()
                .flatten()
                .map(|v| median(v))
                .fold(None, |b: Option<f64>, x| {
                    Some(b.map_or(x, |b| if less_is_better { b.min(x) } else { b.max(x) }))
                });
        match (ours, best_peer) {
            (Some(a), Some(b)) if less_is_better => line.push_str(&format!(" {:.2}x |", b / a)),
            (Some(a), Some(b)) => line.push_str(&format!(" {:.2}x |", a / b)),
            _ => line.push_str(" - |"),
        }
        println!("{line}");
    }
}
