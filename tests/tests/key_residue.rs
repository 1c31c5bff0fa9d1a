//! No copy of a private key outlives the login: after an ECDSA signature
//! with a sensitive token key, C_Logout and C_Finalize, the process's
//! memory (every readable mapping: heap, stacks, the module's data) holds
//! the private scalar nowhere, in either byte order (big-endian as PKCS#11
//! and our code carry it, little-endian as aws-lc's BIGNUMs hold it).
//!
//! The copies showed only in the optimised build (the debug build's frames
//! differ): `.ci/run` runs this test on the release module too
//! (SOFTOKEN_MODULE).
//!
//! The test never holds the scalar itself, which would be found: it keeps
//! it masked (scalar = masked ^ mask) and unmasks it only into the
//! template buffer, wiped after C_CreateObject.

use std::io::{Read, Seek, SeekFrom};

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw, TRUE};
use softoken_tests::*;

const P256: &[u8] = softoken_tests::P256_PARAMS;

/// Where the scalar (masked ^ mask, or reversed) occurs in this process's
/// readable memory: the mappings' names.
fn copies(masked: &[u8; 32], mask: &[u8; 32]) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
    let mut found = Vec::new();
    let mut buf = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        let name = fields.nth(3).unwrap_or("[anon]").to_string();
        if !perms.starts_with('r') || name == "[vvar]" || name == "[vsyscall]" {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        buf.clear();
        buf.resize((end - start) as usize, 0);
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        let at = |p: usize, i: usize| buf[p + i] ^ mask[i] == masked[i];
        let at_reversed = |p: usize, i: usize| buf[p + 31 - i] ^ mask[i] == masked[i];
        for p in 0..buf.len().saturating_sub(31) {
            if (0..32).all(|i| at(p, i)) || (0..32).all(|i| at_reversed(p, i)) {
                found.push(format!("{name} at {:#x}", start + p as u64));
            }
        }
        buf.fill(0);
    }
    found
}

#[test]
fn no_copy_of_an_ec_private_key_outlives_logout() {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let slot = raw.slots()[0];
    let s = raw.open(slot, true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);

    let mut mask = [0u8; 32];
    let mut masked = [0u8; 32];
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    urandom.read_exact(&mut mask).unwrap();
    urandom.read_exact(&mut masked).unwrap();
    // Below the curve's order whatever the random bytes are.
    masked[0] = mask[0] ^ 0x7f;
    let mut template = vec![
        (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
        (CKA_KEY_TYPE, ul(CKK_EC)),
        (CKA_TOKEN, TRUE.to_vec()),
        (CKA_SENSITIVE, TRUE.to_vec()),
        (CKA_SIGN, TRUE.to_vec()),
        (CKA_EC_PARAMS, P256.to_vec()),
        (CKA_VALUE, (0..32).map(|i| masked[i] ^ mask[i]).collect()),
    ];
    let key = raw.create(s, &template).unwrap();
    template[6].1.fill(0);
    std::hint::black_box(&template);
    drop(template);

    raw.sign(s, CKM_ECDSA_SHA256, vec![], key, b"data").unwrap();
    // The scan finds the key where it is meant to be while logged in (the
    // built key the module keeps for the next signature).
    let while_logged_in = copies(&masked, &mask);
    assert!(!while_logged_in.is_empty(), "the scan finds nothing");
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(
        copies(&masked, &mask),
        Vec::<String>::new(),
        "after C_Logout"
    );
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(
        copies(&masked, &mask),
        Vec::<String>::new(),
        "after C_Finalize"
    );
}
