//! A client that writes a token for as long as it lives, for the tests that
//! kill it (crash.rs) and run many at once (load.rs). It prints one line
//! per finished unit of work, flushed, so that its killer knows what was
//! acknowledged (and "ready" first, once logged in):
//!
//!   softoken-stress create DIR PIN PREFIX [COUNT]   "ack N" per key set,
//!                                                   then "slowest MS"
//!   softoken-stress destroy DIR PIN PREFIX FIRST LAST  "gone N" per set
//!   softoken-stress setpin DIR OLD NEW                "changed"
//!                                    (DIR as `dbm:DIR`: a legacy key3.db)
//!   softoken-stress update DIR PIN   "ready" before the module opens a
//!                                    directory of legacy files, "updated"
//!                                    once C_Login copied them
//!   softoken-stress merge DIR SOURCE SOURCE_PIN PIN   "ready" before the
//!                                    module opens DIR to merge the legacy
//!                                    files of SOURCE into it (Mode 3,
//!                                    updateid "stress"), "merged" once
//!                                    the two C_Logins did it
//!   softoken-stress trust DIR PIN FIRST  sets the server-auth trust of
//!                                    every trust object, alternately
//!                                    TRUSTED_DELEGATOR and MUST_VERIFY from
//!                                    change FIRST on, "ack N" per change
//!   softoken-stress merge-db DIR SOURCE SOURCE_PIN PIN   "ready", then the
//!                                    sql: database SOURCE merged into DIR
//!                                    as `softoken-modutil merge` does it,
//!                                    "merged" once done
//!
//! A key set N is an EC P-256 key pair (the public key in cert9.db with
//! its integrity records, the private key in key4.db) and an AES key whose
//! value is `set_value(PREFIX-N)`, all labelled `PREFIX-N`. A call that
//! fails prints "error FUNCTION RV" and the process exits with 1.

use std::io::Write;

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw, FALSE, TRUE};
use softoken_tests::stress::set_value;
use softoken_tests::{dbm_params, sql_params};

fn fail(what: &str, rv: CK_RV) -> ! {
    println!("error {what} {rv:#x}");
    std::process::exit(1)
}

fn ok(what: &str, rv: CK_RV) {
    if rv != CKR_OK {
        fail(what, rv);
    }
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A logged-in read-write session on the token of `dir`.
/// The module's parameters for DIR, or for `dbm:DIR`.
fn params(dir: &str) -> String {
    match dir.strip_prefix("dbm:") {
        Some(legacy) => dbm_params(std::path::Path::new(legacy)),
        None => sql_params(std::path::Path::new(dir)),
    }
}

fn session(dir: &str, pin: &str) -> (Raw, CK_SESSION_HANDLE) {
    let raw = Raw::load_path(&softoken_tests::module_path());
    ok("C_Initialize", raw.initialize(Some(&params(dir))));
    let s = raw
        .open(raw.slots()[0], true)
        .unwrap_or_else(|rv| fail("C_OpenSession", rv));
    let rv = raw.login(s, CKU_USER, pin);
    if rv != CKR_USER_ALREADY_LOGGED_IN {
        ok("C_Login", rv);
    }
    say(format_args!("ready"));
    (raw, s)
}

fn create(raw: &Raw, s: CK_SESSION_HANDLE, label: &str) {
    let key = |class| {
        vec![
            (CKA_CLASS, ul(class)),
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_LABEL, label.as_bytes().to_vec()),
        ]
    };
    let mut public = key(CKO_PUBLIC_KEY);
    public.push((CKA_EC_PARAMS, softoken_tests::P256_PARAMS.to_vec()));
    public.push((CKA_VERIFY, TRUE.to_vec()));
    let mut private = key(CKO_PRIVATE_KEY);
    private.push((CKA_SIGN, TRUE.to_vec()));
    private.push((CKA_SENSITIVE, TRUE.to_vec()));
    raw.generate_key_pair(s, CKM_EC_KEY_PAIR_GEN, &public, &private)
        .unwrap_or_else(|rv| fail("C_GenerateKeyPair", rv));
    let mut secret = key(CKO_SECRET_KEY);
    secret.extend([
        (CKA_KEY_TYPE, ul(CKK_AES)),
        (CKA_VALUE, set_value(label)),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
        (CKA_ENCRYPT, TRUE.to_vec()),
    ]);
    raw.create(s, &secret)
        .unwrap_or_else(|rv| fail("C_CreateObject", rv));
}

fn destroy(raw: &Raw, s: CK_SESSION_HANDLE, label: &str) {
    let found = raw
        .find(s, &[(CKA_LABEL, label.as_bytes().to_vec())])
        .unwrap_or_else(|rv| fail("C_FindObjects", rv));
    for h in found {
        ok("C_DestroyObject", raw.destroy(s, h));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: see the top of tests/src/bin/softoken-stress.rs");
            std::process::exit(2)
        })
    };
    let number = |i: usize| arg(i).parse::<u64>().expect("a number");
    match arg(0) {
        "create" => {
            let (raw, s) = session(arg(1), arg(2));
            let count = args.get(4).map_or(u64::MAX, |_| number(4));
            let mut slowest = std::time::Duration::ZERO;
            for n in 0..count {
                let started = std::time::Instant::now();
                create(&raw, s, &format!("{}-{n}", arg(3)));
                slowest = slowest.max(started.elapsed());
                say(format_args!("ack {n}"));
            }
            say(format_args!("slowest {}", slowest.as_millis()));
        }
        "destroy" => {
            let (raw, s) = session(arg(1), arg(2));
            for n in number(4)..=number(5) {
                destroy(&raw, s, &format!("{}-{n}", arg(3)));
                say(format_args!("gone {n}"));
            }
        }
        "setpin" => {
            let (raw, s) = session(arg(1), arg(2));
            ok("C_SetPIN", raw.set_pin(s, arg(2), arg(3)));
            say(format_args!("changed"));
        }
        "update" => {
            let raw = Raw::load_path(&softoken_tests::module_path());
            say(format_args!("ready"));
            ok(
                "C_Initialize",
                raw.initialize(Some(&sql_params(std::path::Path::new(arg(1))))),
            );
            let s = raw
                .open(raw.slots()[0], false)
                .unwrap_or_else(|rv| fail("C_OpenSession", rv));
            ok("C_Login", raw.login(s, CKU_USER, arg(2)));
            say(format_args!("updated"));
        }
        "merge" => {
            let raw = Raw::load_path(&softoken_tests::module_path());
            say(format_args!("ready"));
            let params = format!(
                "{} updatedir='{}' updateid='stress'",
                sql_params(std::path::Path::new(arg(1))),
                arg(2)
            );
            ok("C_Initialize", raw.initialize(Some(&params)));
            let slot = raw.slots()[0];
            // Labelled by the update id while the source's password is
            // wanted (an earlier run may have merged already).
            let label = raw.token_info(slot).label;
            if String::from_utf8_lossy(&label).trim_end() == "stress" {
                let s = raw
                    .open(slot, false)
                    .unwrap_or_else(|rv| fail("C_OpenSession", rv));
                ok("C_Login (source)", raw.login(s, CKU_USER, arg(3)));
            }
            // The token was "removed" for the second password.
            let s = raw
                .open(slot, false)
                .unwrap_or_else(|rv| fail("C_OpenSession", rv));
            let rv = raw.login(s, CKU_USER, arg(4));
            if rv != CKR_USER_ALREADY_LOGGED_IN {
                ok("C_Login (target)", rv);
            }
            say(format_args!("merged"));
        }
        "trust" => {
            use softoken::nss::{
                CKA_TRUST_SERVER_AUTH, CKO_NSS_TRUST, CKT_NSS_MUST_VERIFY_TRUST,
                CKT_NSS_TRUSTED_DELEGATOR,
            };
            let (raw, s) = session(arg(1), arg(2));
            let trust = raw
                .find(s, &[(CKA_CLASS, ul(CKO_NSS_TRUST))])
                .unwrap_or_else(|rv| fail("C_FindObjects", rv));
            for n in number(3).. {
                let value = if n % 2 == 0 {
                    CKT_NSS_TRUSTED_DELEGATOR
                } else {
                    CKT_NSS_MUST_VERIFY_TRUST
                };
                for h in &trust {
                    ok(
                        "C_SetAttributeValue",
                        raw.set(s, *h, &[(CKA_TRUST_SERVER_AUTH, ul(value))]),
                    );
                }
                say(format_args!("ack {n}"));
            }
        }
        "merge-db" => {
            use softoken::admin::Database;
            say(format_args!("ready"));
            let open = |dir: &str, extra: &str| {
                Database::open(Some(&format!(
                    "{}{extra}",
                    sql_params(std::path::Path::new(dir))
                )))
                .unwrap_or_else(|e| {
                    println!("error open {e:?}");
                    std::process::exit(1)
                })
            };
            let into = open(arg(1), "");
            let from = open(arg(2), "readOnly");
            for (db, pin) in [(&from, arg(3)), (&into, arg(4))] {
                if let Err(rv) = db.login(pin.as_bytes()) {
                    println!("error login {rv:?}");
                    std::process::exit(1)
                }
            }
            match into.merge_from(&from, &mut |_, _| {}) {
                Ok(report) if report.skipped.is_empty() => say(format_args!("merged")),
                other => {
                    println!("error merge {other:?}");
                    std::process::exit(1)
                }
            }
        }
        other => {
            eprintln!("softoken-stress: no command {other:?}");
            std::process::exit(2)
        }
    }
}
