//! The PIN-guessing policy: none by default (as NSS, and nothing written),
//! and once the owner sets one, wrong PINs are counted for every process
//! sharing the database, the token-info flags say how many tries are left,
//! and a locked PIN is refused even when right, until the owner unlocks it.

use std::process::Command;

use pkcs11_sys::*;
use sdb::SdbRead;
use softoken::admin::{PinFailures, PinPolicy};
use softoken_tests::raw::Raw;
use softoken_tests::*;

const PIN: &str = "fixture-pw";
const PIN_FLAGS: CK_FLAGS = CKF_USER_PIN_COUNT_LOW
    | CKF_USER_PIN_FINAL_TRY
    | CKF_USER_PIN_LOCKED
    | CKF_SO_PIN_COUNT_LOW
    | CKF_SO_PIN_FINAL_TRY
    | CKF_SO_PIN_LOCKED;

fn pin_flags(raw: &Raw) -> CK_FLAGS {
    raw.token_info(raw.slots()[0]).flags & PIN_FLAGS
}

fn login(raw: &Raw, pin: &str) -> CK_RV {
    let s = raw.open(raw.slots()[0], false).unwrap();
    let rv = raw.login(s, CKU_USER, pin);
    assert_eq!(raw.close(s), CKR_OK);
    rv
}

fn counted(dir: &std::path::Path) -> Option<Vec<u8>> {
    open_databases(dir, true)
        .key
        .get_metadata("softoken-pin-failures")
        .unwrap()
        .map(|m| m.item1)
}

#[test]
fn without_a_policy_wrong_pins_are_not_counted_in_the_database() {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    for _ in 0..5 {
        assert_eq!(login(&raw, "guess"), CKR_PIN_INCORRECT);
    }
    assert_eq!(pin_flags(&raw), CKF_USER_PIN_COUNT_LOW);
    assert_eq!(counted(dir.path()), None);
    assert_eq!(login(&raw, PIN), CKR_OK);
    assert_eq!(pin_flags(&raw), 0);
}

#[test]
fn a_lockout_is_shared_by_every_process_and_lifted_by_the_owner() {
    let dir = copy_fixture("sql-pw");
    let owner = open_token(dir.path());
    owner.login(PIN.as_bytes()).unwrap();
    owner
        .set_pin_policy(PinPolicy {
            delay_ms: 1,
            lockout: 3,
        })
        .unwrap();
    let one = Raw::with_params(&sql_params(dir.path()));
    let other = Raw::with_params(&sql_params(dir.path()));

    assert_eq!(login(&one, "guess"), CKR_PIN_INCORRECT);
    assert_eq!(pin_flags(&other), CKF_USER_PIN_COUNT_LOW);
    assert_eq!(login(&one, "guess"), CKR_PIN_INCORRECT);
    assert_eq!(
        pin_flags(&other),
        CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY
    );
    // A right PIN clears the count.
    assert_eq!(login(&other, PIN), CKR_OK);
    assert_eq!(pin_flags(&one), 0);

    for _ in 0..3 {
        assert_eq!(login(&other, "guess"), CKR_PIN_INCORRECT);
    }
    assert_eq!(
        pin_flags(&one),
        CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED
    );
    // Locked: the right PIN is refused too, in every process and call.
    assert_eq!(login(&one, PIN), CKR_PIN_LOCKED);
    assert_eq!(login(&other, PIN), CKR_PIN_LOCKED);
    let s = one.open(one.slots()[0], true).unwrap();
    assert_eq!(one.set_pin(s, PIN, "new"), CKR_PIN_LOCKED);
    assert_eq!(one.close(s), CKR_OK);
    let tool = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(one.path())
        .arg("-T")
        .env(
            "SOFTOKEN_CONFIGDIR",
            format!("sql:{}", dir.path().display()),
        )
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tool.stdout);
    assert!(shown.contains("user PIN locked"), "{shown}");
    assert_eq!(
        owner.pin_policy().unwrap().1,
        PinFailures { user: 3, so: 0 }
    );

    // The owner (who can write the files) unlocks it.
    let owner = open_token(dir.path());
    owner.clear_pin_failures().unwrap();
    assert_eq!(pin_flags(&one), 0);
    assert_eq!(login(&one, PIN), CKR_OK);

    // A caller that opens the database read-only is counted all the same.
    let read_only = Raw::with_params(&format!("{}readOnly", sql_params(dir.path())));
    assert_eq!(login(&read_only, "guess"), CKR_PIN_INCORRECT);
    assert_eq!(owner.pin_policy().unwrap().1.user, 1);
    assert_eq!(login(&read_only, PIN), CKR_OK);
    assert_eq!(owner.pin_policy().unwrap().1.user, 0);

    // The SO's PIN is counted apart, and C_InitToken keeps the policy.
    let s = one.open(one.slots()[0], true).unwrap();
    assert_eq!(one.login(s, CKU_SO, "so guess"), CKR_PIN_INCORRECT);
    assert_eq!(pin_flags(&other), CKF_SO_PIN_COUNT_LOW);
    assert_eq!(one.close(s), CKR_OK);
    assert_eq!(one.init_token(one.slots()[0], "", "reset"), CKR_OK);
    let (policy, failures) = open_token(dir.path()).pin_policy().unwrap();
    assert_eq!(policy.lockout, 3);
    assert_eq!(failures, PinFailures::default());
    assert_eq!(
        one.init_token(one.slots()[0], "x", "reset"),
        CKR_PIN_INCORRECT
    );
    assert_eq!(pin_flags(&other), CKF_SO_PIN_COUNT_LOW);
}

/// Setting a policy is the owner's: it needs the password.
#[test]
fn only_the_owner_sets_a_policy() {
    let dir = copy_fixture("sql-pw");
    let stranger = open_token(dir.path());
    assert_eq!(
        stranger.set_pin_policy(PinPolicy {
            delay_ms: 0,
            lockout: 1
        }),
        Err(softoken::admin::Rv::UserNotLoggedIn)
    );
    assert_eq!(counted(dir.path()), None);
}
