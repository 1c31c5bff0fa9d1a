//! Eight processes writing one database at once while NSS's certutil adds
//! and deletes certificates in it: every call succeeds (a busy database is
//! waited for, never reported), nothing is lost, and the database checks
//! clean. `SOFTOKEN_LOAD_SETS` sets the key sets per process (default 40;
//! docs/RELIABILITY.md has the latest run of 500).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use pkcs11_sys::*;
use softoken_tests::raw::Raw;
use softoken_tests::*;

const PIN: &str = "load-pin";
const WRITERS: usize = 8;

#[test]
fn eight_writers_and_certutil_lose_nothing_and_see_no_busy_error() {
    std::env::set_var("NSS_MAX_MP_PBE_ITERATION_COUNT", "10");
    let sets: usize = std::env::var("SOFTOKEN_LOAD_SETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().display().to_string();
    {
        let raw = Raw::with_params(&sql_params(dir.path()));
        let s = raw.open(raw.slots()[0], true).unwrap();
        assert_eq!(raw.set_pin(s, "", PIN), CKR_OK);
    }
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PIN).unwrap();
    let cert = fixtures().join("exports").join("Fixture_Peer.der");
    let writing = AtomicBool::new(true);
    let started = Instant::now();
    let (outputs, certutil_rounds) = std::thread::scope(|scope| {
        let certutil = scope.spawn(|| {
            let mut rounds = 0;
            while writing.load(Ordering::Acquire) {
                let nick = format!("certutil {}", rounds % 4);
                for args in [
                    vec!["-A", "-n", &nick, "-t", "C,,", "-i"],
                    vec!["-D", "-n", &nick],
                ] {
                    let mut c = Command::new("timeout");
                    c.args(["60", "certutil"]).args(&args);
                    if args[0] == "-A" {
                        c.arg(&cert);
                    }
                    c.args(["-d", &format!("sql:{db}"), "-f"]).arg(&pw);
                    run(&mut c);
                }
                rounds += 1;
            }
            rounds
        });
        let count = sets.to_string();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                stress::command(
                    env!("CARGO_BIN_EXE_softoken-stress"),
                    &["create", &db, PIN, &format!("w{w}"), &count],
                )
                .spawn()
                .expect("softoken-stress")
            })
            .collect();
        let outputs: Vec<String> = writers
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                let text = String::from_utf8(out.stdout).unwrap();
                assert!(out.status.success(), "a writer failed: {text}");
                text
            })
            .collect();
        writing.store(false, Ordering::Release);
        (outputs, certutil.join().unwrap())
    });
    let elapsed = started.elapsed();
    let slowest: u64 = outputs
        .iter()
        .filter_map(|o| {
            o.lines()
                .find_map(|l| l.strip_prefix("slowest ")?.parse().ok())
        })
        .max()
        .unwrap();
    eprintln!(
        "{WRITERS} writers x {sets} sets in {elapsed:?} beside {certutil_rounds} certutil \
         rounds; the slowest set took {slowest} ms"
    );
    assert!(certutil_rounds > 0);
    for (w, out) in outputs.iter().enumerate() {
        let acks = out.lines().filter(|l| l.starts_with("ack ")).count();
        assert_eq!(acks, sets, "writer {w}");
    }
    stress::sqlite_integrity(dir.path());
    assert_eq!(stress::token_check(dir.path(), PIN), 0);
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, PIN), CKR_OK);
    for w in 0..WRITERS {
        for n in 0..sets {
            stress::set_works(&raw, s, &format!("w{w}-{n}"));
        }
    }
    let listed = run(Command::new("certutil").args(["-L", "-d", &format!("sql:{db}")]));
    assert!(
        !listed.contains("certutil "),
        "certutil's deletions were lost: {listed}"
    );
}
