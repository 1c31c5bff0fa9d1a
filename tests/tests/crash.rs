//! Writers killed with SIGKILL at random moments: while they create token
//! objects, while they destroy them, and during C_SetPIN over 200 private
//! keys. After every kill the database opens, SQLite's integrity_check and
//! the token's own check pass (every value decrypts and matches its
//! record), every acknowledged key set is there once and works, every set
//! acknowledged as destroyed is gone, and the password is the old or the
//! new one. Records of objects a killed writer never finished are removed
//! by the next writer. The same for C_SetPIN on a legacy key3.db, for trust
//! changes, for the updates and merges from legacy files and for the merge
//! of one database into another. `SOFTOKEN_CRASH_KILLS` sets
//! the kills per phase (default 70); docs/RELIABILITY.md has the latest
//! long run.

use std::collections::BTreeSet;
use std::io::{BufRead, Read};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pkcs11_sys::*;
use softoken_tests::raw::Raw;
use softoken_tests::*;

const PINS: [&str; 2] = ["crash-pin-a", "crash-pin-b"];

/// A small deterministic generator: the seed is printed, so a failing run
/// can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn kills_per_phase() -> usize {
    std::env::var("SOFTOKEN_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(70)
}

/// Runs `cmd`, kills it (SIGKILL, by its PID) `after` its "ready" line
/// (its module loaded and logged in, so that the kill lands in its work,
/// however slowly a busy machine starts processes) unless it has ended,
/// and returns the lines it printed and whether it was killed.
fn run_until_killed(cmd: &mut Command, after: Duration) -> (Vec<String>, bool) {
    let mut child = cmd.spawn().expect("softoken-stress");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let deadline = Instant::now() + after;
    let mut ended = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if !ended {
        let _ = child.kill();
    }
    child.wait().unwrap();
    let mut out = first;
    stdout.read_to_string(&mut out).unwrap();
    assert!(!out.contains("error"), "the writer failed: {out}");
    (out.lines().map(str::to_owned).collect(), !ended)
}

fn numbers(lines: &[String], word: &str) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(word)?.trim().parse().ok())
        .collect()
}

/// Which of the two PINs the database has.
fn current_pin(dir: &Path) -> &'static str {
    let token = open_token(dir);
    let works: Vec<&str> = PINS
        .into_iter()
        .filter(|p| token.login(p.as_bytes()).is_ok())
        .collect();
    assert_eq!(
        works.len(),
        1,
        "the password is neither the old nor the new one"
    );
    works[0]
}

#[test]
fn killed_writers_leave_whole_objects_and_one_password() {
    std::env::set_var("NSS_MAX_MP_PBE_ITERATION_COUNT", "10");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let kills = kills_per_phase();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().display().to_string();
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.set_pin(s, "", PINS[0]), CKR_OK);
    assert_eq!(raw.login(s, CKU_USER, PINS[0]), CKR_OK);

    // Creation. `live` holds every acknowledged set.
    let mut live: BTreeSet<String> = BTreeSet::new();
    let mut hit = 0;
    for round in 0..kills {
        let prefix = format!("c{round}");
        let after = Duration::from_millis(rng.below(60));
        let (lines, killed) = run_until_killed(
            &mut stress::command(
                env!("CARGO_BIN_EXE_softoken-stress"),
                &["create", &db, PINS[0], &prefix],
            ),
            after,
        );
        assert!(killed);
        let acked = numbers(&lines, "ack");
        hit += usize::from(!acked.is_empty());
        stress::sqlite_integrity(dir.path());
        stress::token_check(dir.path(), PINS[0]);
        for n in acked {
            let label = format!("{prefix}-{n}");
            stress::set_works(&raw, s, &label);
            live.insert(label);
        }
    }
    // Every kill lands in the writer's work (after its "ready"); some
    // after it acknowledged sets, the others inside its first.
    eprintln!(
        "creation: {kills} kills, {hit} after some sets were acknowledged, {} sets",
        live.len()
    );

    // Destruction: a set acknowledged gone has no object left; one the
    // writer was destroying when it died keeps whole objects only.
    let mut uncertain: BTreeSet<String> = BTreeSet::new();
    let rounds: Vec<usize> = (0..kills).collect();
    let mut killed_during = 0;
    for k in 0..kills {
        let round = rounds[k % rounds.len()];
        let prefix = format!("c{round}");
        let (lines, killed) = run_until_killed(
            &mut stress::command(
                env!("CARGO_BIN_EXE_softoken-stress"),
                &["destroy", &db, PINS[0], &prefix, "0", "10000"],
            ),
            Duration::from_millis(rng.below(40)),
        );
        killed_during += usize::from(killed);
        stress::sqlite_integrity(dir.path());
        stress::token_check(dir.path(), PINS[0]);
        let gone = numbers(&lines, "gone");
        for n in &gone {
            let label = format!("{prefix}-{n}");
            assert!(
                stress::set_objects(&raw, s, &label).is_empty(),
                "{label} left objects"
            );
            live.remove(&label);
            uncertain.remove(&label);
        }
        if killed {
            let next = gone.last().map_or(0, |n| n + 1);
            let label = format!("{prefix}-{next}");
            if live.remove(&label) {
                uncertain.insert(label);
            }
        }
    }
    for label in &live {
        stress::set_works(&raw, s, label);
    }
    eprintln!(
        "destruction: {kills} runs, {killed_during} killed, {} sets left, {} half-destroyed",
        live.len(),
        uncertain.len()
    );

    // C_SetPIN over at least 200 private keys.
    let have = live.len();
    if have < 200 {
        let count = 200 - have;
        let out = stress::command(
            env!("CARGO_BIN_EXE_softoken-stress"),
            &["create", &db, PINS[0], "fill", &count.to_string()],
        )
        .output()
        .unwrap();
        assert!(out.status.success());
        live.extend((0..count).map(|n| format!("fill-{n}")));
    }
    assert_eq!(raw.finalize(), CKR_OK);
    let timed = Instant::now();
    let out = stress::command(
        env!("CARGO_BIN_EXE_softoken-stress"),
        &["setpin", &db, PINS[0], PINS[1]],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let full = timed.elapsed();
    let mut pin = PINS[1];
    let mut changed = 0;
    killed_during = 0;
    for _ in 0..kills {
        let other = if pin == PINS[0] { PINS[1] } else { PINS[0] };
        let window = full.as_millis() as u64 + 10;
        let (lines, killed) = run_until_killed(
            &mut stress::command(
                env!("CARGO_BIN_EXE_softoken-stress"),
                &["setpin", &db, pin, other],
            ),
            Duration::from_millis(rng.below(window)),
        );
        stress::sqlite_integrity(dir.path());
        let now = current_pin(dir.path());
        if lines.iter().any(|l| l == "changed") {
            assert_eq!(now, other, "C_SetPIN acknowledged, the old password stayed");
        }
        changed += usize::from(now != pin);
        pin = now;
        stress::token_check(dir.path(), pin);
        killed_during += usize::from(killed);
    }
    eprintln!(
        "C_SetPIN over {} keys: {kills} runs, {killed_during} killed, {changed} changed \
         the password, one full run {full:?}",
        live.len().max(200)
    );

    // The next writer removes what killed writers left; everything left
    // works under the password the database has.
    let out = stress::command(
        env!("CARGO_BIN_EXE_softoken-stress"),
        &["create", &db, pin, "last", "1"],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(
        stress::token_check(dir.path(), pin),
        0,
        "orphaned records stayed"
    );
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], false).unwrap();
    assert_eq!(raw.login(s, CKU_USER, pin), CKR_OK);
    for label in &live {
        stress::set_works(&raw, s, label);
    }
}

/// No two objects of one database are the same one by NSS's identity
/// (class and issuer/serial, CKA_ID, subject and address).
fn assert_no_duplicates(dir: &Path) {
    use sdb::SdbRead;
    let dbs = open_databases(dir, true);
    for db in [&dbs.cert as &dyn SdbRead, &dbs.key] {
        let mut seen = BTreeSet::new();
        for id in db.find(&[]).unwrap().next_batch(usize::MAX) {
            let who = db
                .get_attributes(
                    id,
                    &[
                        CKA_CLASS,
                        CKA_ISSUER,
                        CKA_SERIAL_NUMBER,
                        CKA_ID,
                        CKA_SUBJECT,
                        softoken::nss::CKA_NSS_EMAIL,
                    ],
                )
                .unwrap();
            assert!(seen.insert(who.clone()), "object {id:#x} twice: {who:?}");
        }
    }
}

/// Whether key4.db of `dir` has the password the update copies last.
fn update_done(dir: &Path) -> bool {
    use sdb::SdbRead;
    dir.join("key4.db").exists()
        && open_databases(dir, true)
            .key
            .get_password_entry()
            .unwrap()
            .is_some()
}

/// Kills during the update of legacy files (at open, which copies the
/// certificate side, and at C_Login, which copies the keys): the legacy
/// files stay byte-identical, what was copied is whole and there once, and
/// the next run finishes with exactly what NSS's own update lists.
#[test]
fn killed_updates_leave_the_legacy_files_and_finish_once() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let legacy = ["cert8.db", "key3.db"];
    let pw = manifest("dbm-pw")["password"].as_str().unwrap().to_owned();
    let expected = nss_listed_objects("dbm-pw-upgraded");
    let mut dir = copy_fixture("dbm-pw");
    let original: Vec<Vec<u8>> = legacy
        .iter()
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
    let (mut killed_pending, mut killed_done, mut finished) = (0, 0, 0);
    for _ in 0..kills_per_phase() {
        let db = dir.path().display().to_string();
        let (lines, killed) = run_until_killed(
            &mut stress::command(env!("CARGO_BIN_EXE_softoken-stress"), &["update", &db, &pw]),
            Duration::from_millis(rng.below(150)),
        );
        for (f, bytes) in legacy.iter().zip(&original) {
            assert_eq!(&std::fs::read(dir.path().join(f)).unwrap(), bytes, "{f}");
        }
        if dir.path().join("key4.db").exists() {
            stress::sqlite_integrity(dir.path());
            assert_no_duplicates(dir.path());
        }
        let done = update_done(dir.path());
        assert!(!lines.iter().any(|l| l == "updated") || done);
        if killed && !done {
            killed_pending += 1;
            continue;
        }
        killed_done += usize::from(killed);
        finished += 1;
        let raw = Raw::with_params(&sql_params(dir.path()));
        let s = raw.open(raw.slots()[0], false).unwrap();
        assert_eq!(raw.login(s, CKU_USER, &pw), CKR_OK);
        assert_eq!(listed_objects(&raw, s), expected);
        assert_eq!(raw.find(s, &[]).unwrap().len(), expected.len());
        assert_eq!(raw.finalize(), CKR_OK);
        assert_eq!(stress::token_check(dir.path(), &pw), 0);
        dir = copy_fixture("dbm-pw");
    }
    eprintln!(
        "update: {killed_pending} killed before it was done, {killed_done} killed after, \
         {finished} finished and checked"
    );
}

/// Kills during a Mode 3 merge (at open and at each of its two C_Logins):
/// the source stays byte-identical, the shared database stays whole with
/// nothing twice, and the next run finishes with what NSS's merge lists.
#[test]
fn killed_merges_leave_the_source_and_finish_once() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let expected = nss_listed_objects("mode3-upgraded");
    let source = copy_fixture("mode3-upgraded/legacy");
    let original: Vec<Vec<u8>> = ["cert8.db", "key3.db"]
        .iter()
        .map(|f| std::fs::read(source.path().join(f)).unwrap())
        .collect();
    let src = source.path().display().to_string();
    let mut target = copy_fixture("mode3-upgraded/before");
    let (mut killed_before, mut finished) = (0, 0);
    for _ in 0..kills_per_phase() {
        let db = target.path().display().to_string();
        let (lines, killed) = run_until_killed(
            &mut stress::command(
                env!("CARGO_BIN_EXE_softoken-stress"),
                &["merge", &db, &src, "fixture-pw", "shared-pw"],
            ),
            Duration::from_millis(rng.below(200)),
        );
        for (f, bytes) in ["cert8.db", "key3.db"].iter().zip(&original) {
            assert_eq!(&std::fs::read(source.path().join(f)).unwrap(), bytes, "{f}");
        }
        stress::sqlite_integrity(target.path());
        assert_no_duplicates(target.path());
        if killed && !lines.iter().any(|l| l == "merged") {
            killed_before += 1;
            // Whatever the kill left, the shared database still opens
            // and checks under its own password.
            stress::token_check(target.path(), "shared-pw");
            continue;
        }
        finished += 1;
        let raw = Raw::with_params(&sql_params(target.path()));
        let s = raw.open(raw.slots()[0], false).unwrap();
        assert_eq!(raw.login(s, CKU_USER, "shared-pw"), CKR_OK);
        assert_eq!(listed_objects(&raw, s), expected);
        assert_eq!(raw.find(s, &[]).unwrap().len(), expected.len());
        assert_eq!(raw.finalize(), CKR_OK);
        stress::token_check(target.path(), "shared-pw");
        target = copy_fixture("mode3-upgraded/before");
    }
    eprintln!("merge: {killed_before} killed before it was done, {finished} finished and checked");
}

/// Kills during C_SetPIN on a legacy key3.db: the file is replaced whole,
/// so after every kill it opens with the old password or the new one, and
/// every key decrypts to the same key under it.
#[test]
fn killed_key3_password_changes_leave_one_password() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let first = manifest("dbm-pw")["password"].as_str().unwrap().to_owned();
    let pins = [first.as_str(), "crash-pin-b"];
    let dir = copy_fixture("dbm-pw");
    let db = format!("dbm:{}", dir.path().display());
    let values = |pin: &str| {
        let token = open_token_with(&dbm_params(dir.path()));
        let works: Vec<&str> = pins
            .into_iter()
            .filter(|p| token.login(p.as_bytes()).is_ok())
            .collect();
        assert_eq!(works, [pin], "the password is not the one expected");
        let mut keys: Vec<Vec<u8>> = token
            .find(&[(CKA_CLASS, raw::ul(CKO_PRIVATE_KEY))])
            .unwrap()
            .into_iter()
            .map(|h| {
                let v = token.attributes(h).unwrap();
                v.get(CKA_PRIVATE_EXPONENT)
                    .or(v.get(CKA_VALUE))
                    .unwrap()
                    .to_vec()
            })
            .collect();
        keys.sort();
        keys
    };
    let original = values(pins[0]);
    assert_eq!(original.len(), 4);
    let timed = Instant::now();
    let out = stress::command(
        env!("CARGO_BIN_EXE_softoken-stress"),
        &["setpin", &db, pins[0], pins[1]],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let full = timed.elapsed();
    let mut pin = pins[1];
    let (mut killed_during, mut changed) = (0, 0);
    for _ in 0..kills_per_phase() {
        let other = if pin == pins[0] { pins[1] } else { pins[0] };
        let (lines, killed) = run_until_killed(
            &mut stress::command(
                env!("CARGO_BIN_EXE_softoken-stress"),
                &["setpin", &db, pin, other],
            ),
            Duration::from_millis(rng.below(full.as_millis() as u64 + 10)),
        );
        let now = [pin, other]
            .into_iter()
            .find(|p| {
                open_token_with(&dbm_params(dir.path()))
                    .login(p.as_bytes())
                    .is_ok()
            })
            .expect("the password is neither the old nor the new one");
        if lines.iter().any(|l| l == "changed") {
            assert_eq!(now, other, "C_SetPIN acknowledged, the old password stayed");
        }
        assert_eq!(values(now), original);
        changed += usize::from(now != pin);
        killed_during += usize::from(killed);
        pin = now;
    }
    eprintln!(
        "C_SetPIN on key3.db: {} runs, {killed_during} killed, {changed} changed the \
         password, one full run {full:?}",
        kills_per_phase()
    );
}

/// Kills during `softoken-modutil merge` of one database into another:
/// the source stays byte-identical, the target whole and checked with
/// nothing twice, and the next run finishes with what NSS's merge lists.
#[test]
fn killed_database_merges_leave_the_source_and_finish_once() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let expected = nss_listed_objects("merge-sql");
    let source = copy_fixture("merge-sql/source");
    let original: Vec<Vec<u8>> = ["cert9.db", "key4.db"]
        .iter()
        .map(|f| std::fs::read(source.path().join(f)).unwrap())
        .collect();
    let src = source.path().display().to_string();
    let merge = |target: &Path| {
        stress::command(
            env!("CARGO_BIN_EXE_softoken-stress"),
            &[
                "merge-db",
                &target.display().to_string(),
                &src,
                "fixture-pw",
                "target-pw",
            ],
        )
    };
    // One whole run, timed: the kills land anywhere in one, or (half of
    // them) after it.
    let timed = Instant::now();
    let whole = copy_fixture("merge-sql/before");
    assert!(merge(whole.path()).output().unwrap().status.success());
    let window = 2 * timed.elapsed().as_millis() as u64 + 10;
    let mut target = copy_fixture("merge-sql/before");
    let (mut killed_before, mut finished) = (0, 0);
    for _ in 0..kills_per_phase() {
        let (lines, killed) = run_until_killed(
            &mut merge(target.path()),
            Duration::from_millis(rng.below(window)),
        );
        for (f, bytes) in ["cert9.db", "key4.db"].iter().zip(&original) {
            assert_eq!(&std::fs::read(source.path().join(f)).unwrap(), bytes, "{f}");
        }
        stress::sqlite_integrity(target.path());
        assert_no_duplicates(target.path());
        stress::token_check(target.path(), "target-pw");
        if killed && !lines.iter().any(|l| l == "merged") {
            killed_before += 1;
            continue;
        }
        finished += 1;
        let raw = Raw::with_params(&sql_params(target.path()));
        let s = raw.open(raw.slots()[0], false).unwrap();
        assert_eq!(raw.login(s, CKU_USER, "target-pw"), CKR_OK);
        assert_eq!(listed_objects(&raw, s), expected);
        assert_eq!(raw.find(s, &[]).unwrap().len(), expected.len());
        assert_eq!(raw.finalize(), CKR_OK);
        target = copy_fixture("merge-sql/before");
    }
    eprintln!(
        "database merge: {killed_before} killed before it was done, {finished} finished and \
         checked, kills within {window} ms"
    );
}

/// Kills during trust changes (C_SetAttributeValue of an authenticated
/// cert9.db attribute: its record commits in key4.db first, its value in
/// cert9.db second): after every kill each trust value reads, as the last
/// acknowledged change set it or as the change in flight would have.
#[test]
fn killed_trust_changes_leave_every_trust_readable() {
    use softoken::nss::{CKA_TRUST_SERVER_AUTH, CKO_NSS_TRUST};
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let pin = manifest("sql-pw")["password"].as_str().unwrap().to_owned();
    let dir = copy_fixture("sql-pw");
    let db = dir.path().display().to_string();
    let (mut next, mut in_window) = (0u64, 0);
    for _ in 0..kills_per_phase() {
        let (lines, _) = run_until_killed(
            &mut stress::command(
                env!("CARGO_BIN_EXE_softoken-stress"),
                &["trust", &db, &pin, &next.to_string()],
            ),
            Duration::from_millis(rng.below(400)),
        );
        let acked = numbers(&lines, "ack ");
        stress::sqlite_integrity(dir.path());
        stress::token_check(dir.path(), &pin);
        let raw = Raw::with_params(&sql_params(dir.path()));
        let s = raw.open(raw.slots()[0], false).unwrap();
        assert_eq!(raw.login(s, CKU_USER, &pin), CKR_OK);
        let values: BTreeSet<Vec<u8>> = raw
            .find(s, &[(CKA_CLASS, raw::ul(CKO_NSS_TRUST))])
            .unwrap()
            .into_iter()
            .map(|h| raw.get(s, h, CKA_TRUST_SERVER_AUTH).expect("trust reads"))
            .collect();
        assert_eq!(raw.finalize(), CKR_OK);
        // Each object has the last acknowledged value or the one in flight.
        in_window += usize::from(values.len() > 1);
        if let Some(last) = acked.last() {
            next = last + 1;
        }
    }
    eprintln!(
        "trust changes: {} kills, {in_window} left trust objects of both values (a change in flight)",
        kills_per_phase()
    );
}
