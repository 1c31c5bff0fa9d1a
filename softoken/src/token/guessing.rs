//! The PIN-guessing policy of a database: a delay after each wrong PIN and,
//! optionally, a lockout after N wrong PINs in a row. Policy and counters
//! are metadata rows of key4.db, so every process that shares the database
//! applies them and sees the same count. A database has no policy until
//! its owner sets one (`softoken-modutil pin-policy`): NSS keeps no counter,
//! and a database NSS also opens behaves as NSS's does.
//!
//! What it stops: guessing through the module by callers who cannot read
//! the files (a p11-kit server's clients, a sandboxed application). Whoever
//! can copy key4.db can guess offline, and whoever can write it can reset
//! the counter; the PBKDF2 cost of each guess is the only defence there.

use std::time::Duration;

use pkcs11_sys::*;

use sdb::Sdb;

use crate::rv::{Result, Rv};
use crate::token::Token;

/// The policy's row: `delay_ms=N lockout=N`.
pub(super) const POLICY_ROW: &str = "softoken-pin-policy";
/// The counters' row: `user=N so=N` (wrong PINs since the last right one).
const FAILURES_ROW: &str = "softoken-pin-failures";
/// The longest delay a policy may ask for: a row from disk must not stall
/// a caller for hours.
pub const MAX_DELAY_MS: u32 = 60_000;

/// A database's PIN-guessing policy; all zero is none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinPolicy {
    /// Milliseconds each wrong PIN costs its caller.
    pub delay_ms: u32,
    /// Wrong PINs in a row after which that PIN is locked; 0 for never.
    pub lockout: u32,
}

/// Whose PIN is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PinOwner {
    User,
    So,
}

/// Wrong PINs since the last right one, per owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinFailures {
    pub user: u32,
    pub so: u32,
}

/// `name=N` pairs of a row; an unreadable row reads as none.
fn fields(text: &[u8]) -> impl Iterator<Item = (&str, u32)> {
    std::str::from_utf8(text)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|pair| {
            let (name, n) = pair.split_once('=')?;
            Some((name, n.parse().ok()?))
        })
}

impl PinPolicy {
    fn parse(text: &[u8]) -> PinPolicy {
        let mut policy = PinPolicy::default();
        for (name, n) in fields(text) {
            match name {
                "delay_ms" => policy.delay_ms = n.min(MAX_DELAY_MS),
                "lockout" => policy.lockout = n,
                _ => {}
            }
        }
        policy
    }

    fn is_on(&self) -> bool {
        *self != PinPolicy::default()
    }
}

impl PinFailures {
    fn parse(text: &[u8]) -> PinFailures {
        let mut failures = PinFailures::default();
        for (name, n) in fields(text) {
            match name {
                "user" => failures.user = n,
                "so" => failures.so = n,
                _ => {}
            }
        }
        failures
    }

    fn of(&mut self, owner: PinOwner) -> &mut u32 {
        match owner {
            PinOwner::User => &mut self.user,
            PinOwner::So => &mut self.so,
        }
    }
}

fn write_failures_to(db: &dyn Sdb, change: impl FnOnce(&mut PinFailures)) -> Result<()> {
    let mut txn = db.begin()?;
    let mut failures = txn
        .get_metadata(FAILURES_ROW)?
        .map_or_else(PinFailures::default, |m| PinFailures::parse(&m.item1));
    let before = failures;
    change(&mut failures);
    if failures == before {
        return Ok(());
    }
    let text = format!("user={} so={}", failures.user, failures.so);
    txn.put_metadata(FAILURES_ROW, text.as_bytes(), None)?;
    Ok(txn.commit()?)
}

/// The token-info flags of `failures` wrong PINs under `lockout`.
fn flags_of(failures: u32, lockout: u32, [low, final_try, locked]: [CK_FLAGS; 3]) -> CK_FLAGS {
    let mut flags = 0;
    if failures > 0 {
        flags |= low;
    }
    if lockout > 0 && failures >= lockout {
        flags |= locked;
    } else if lockout > 0 && failures + 1 == lockout {
        flags |= final_try;
    }
    flags
}

impl Token {
    /// The database's policy (none when it has no row).
    pub fn pin_policy(&self) -> Result<PinPolicy> {
        Ok(self
            .key
            .get_metadata(POLICY_ROW)?
            .map_or_else(PinPolicy::default, |m| PinPolicy::parse(&m.item1)))
    }

    /// The wrong PINs counted in the database.
    pub fn pin_failures(&self) -> Result<PinFailures> {
        Ok(self
            .key
            .get_metadata(FAILURES_ROW)?
            .map_or_else(PinFailures::default, |m| PinFailures::parse(&m.item1)))
    }

    /// Sets the policy (none removes it, and its counters): for the owner,
    /// who must be logged in (or have the empty password).
    pub fn set_pin_policy(&self, policy: PinPolicy) -> Result<()> {
        self.keys().ok_or(Rv::UserNotLoggedIn)?;
        if policy.delay_ms > MAX_DELAY_MS {
            return Err(Rv::ArgumentsBad);
        }
        let mut txn = self.key.begin()?;
        if policy.is_on() {
            let text = format!("delay_ms={} lockout={}", policy.delay_ms, policy.lockout);
            txn.put_metadata(POLICY_ROW, text.as_bytes(), None)?;
        } else {
            txn.delete_metadata(POLICY_ROW)?;
            txn.delete_metadata(FAILURES_ROW)?;
        }
        Ok(txn.commit()?)
    }

    /// Forgets the wrong PINs counted: unlocks a locked PIN.
    pub fn clear_pin_failures(&self) -> Result<()> {
        self.write_failures(|f| *f = PinFailures::default())
    }

    /// Changes the counts. A token opened read-only at the caller's request
    /// still counts (through a writable handle of its own): the owner's
    /// lockout outranks a caller's wish not to write.
    fn write_failures(&self, change: impl FnOnce(&mut PinFailures)) -> Result<()> {
        if !self.key.is_read_only() {
            return write_failures_to(&*self.key, change);
        }
        let writable = super::open_databases(&self.cfg, false)?;
        write_failures_to(&*writable.key, change)
    }

    /// Runs one PIN check under the policy: a locked PIN is not tried
    /// (CKR_PIN_LOCKED), a wrong one is counted where every process sees
    /// it and costs its caller the delay, a right one clears the count.
    /// Without a policy, a wrong PIN only raises this process's COUNT_LOW.
    pub(super) fn counted<T>(
        &self,
        owner: PinOwner,
        attempt: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let policy = self.pin_policy()?;
        if !policy.is_on() {
            let result = attempt();
            if matches!(result, Ok(_) | Err(Rv::PinIncorrect)) {
                let wrong = result.is_err();
                let mut login = self.login.write();
                match owner {
                    PinOwner::User => login.user_pin_failed = wrong,
                    PinOwner::So => login.so_pin_failed = wrong,
                }
            }
            return result;
        }
        let failed_before = *self.pin_failures()?.of(owner);
        if policy.lockout > 0 && failed_before >= policy.lockout {
            return Err(Rv::PinLocked);
        }
        let result = attempt();
        let counted = match &result {
            Err(Rv::PinIncorrect) => self.write_failures(|f| *f.of(owner) += 1),
            Ok(_) if failed_before > 0 => self.write_failures(|f| *f.of(owner) = 0),
            _ => Ok(()),
        };
        if let Err(e) = counted {
            // A database this process may not write cannot count; but this
            // process can read it, so copy it and guess offline anyway.
            // The delay still applies.
            crate::log::line(format_args!(
                "{}: a PIN attempt could not be counted: {e:?}",
                self.cfg.dir.display()
            ));
        }
        if matches!(result, Err(Rv::PinIncorrect)) {
            std::thread::sleep(Duration::from_millis(policy.delay_ms.into()));
        }
        result
    }

    /// CKF_USER_PIN_* and CKF_SO_PIN_* of the token-info flags.
    pub(super) fn pin_flags(&self) -> CK_FLAGS {
        const USER: [CK_FLAGS; 3] = [
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        ];
        const SO: [CK_FLAGS; 3] = [
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        ];
        let policy = self.pin_policy().unwrap_or_default();
        if policy.is_on() {
            let failures = self.pin_failures().unwrap_or_default();
            return flags_of(failures.user, policy.lockout, USER)
                | flags_of(failures.so, policy.lockout, SO);
        }
        let login = self.login.read();
        flags_of(login.user_pin_failed.into(), 0, USER)
            | flags_of(login.so_pin_failed.into(), 0, SO)
    }
}
