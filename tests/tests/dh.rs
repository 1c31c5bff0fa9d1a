//! PKCS #3 Diffie-Hellman (CKM_DH_PKCS_KEY_PAIR_GEN, CKM_DH_PKCS_DERIVE) in
//! RFC 7919's ffdhe2048 group: both sides agree, NSS's softoken agrees with
//! softoken in both directions (whole secrets and shortened ones), keys
//! kept on the token are NSS's to use, and bad public values and groups
//! are refused; and groups the token makes (CKM_DH_PKCS_PARAMETER_GEN).

use std::process::Command;

use pkcs11_sys::*;
use softoken_tests::raw::{ul, Raw, FALSE, TRUE};
use softoken_tests::*;

/// RFC 7919, appendix A.1: ffdhe2048's prime (its generator is 2).
const FFDHE2048: &str = "\
FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695A9E13641146433FBCC939DCE249B3EF9\
7D2FE363630C75D8F681B202AEC4617AD3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935\
984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797ABC0AB182B324FB61D108A94BB2C8E3FB\
B96ADAB760D7F4681D4F42A3DE394DF4AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61\
9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005C58EF1837D1683B2C6F34A26C1B2EFFA\
886B423861285C97FFFFFFFFFFFFFFFF";

fn group() -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    vec![(CKA_PRIME, unhex(FFDHE2048)), (CKA_BASE, vec![2])]
}

/// A key pair in the group; `token` keeps it on the token.
fn pair(raw: &Raw, s: CK_SESSION_HANDLE, token: bool) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let mut public = group();
    public.push((CKA_TOKEN, if token { TRUE } else { FALSE }.to_vec()));
    let private = vec![
        (CKA_TOKEN, if token { TRUE } else { FALSE }.to_vec()),
        (CKA_PRIVATE, TRUE.to_vec()),
        (CKA_SENSITIVE, TRUE.to_vec()),
        (CKA_DERIVE, TRUE.to_vec()),
    ];
    raw.generate_key_pair(s, CKM_DH_PKCS_KEY_PAIR_GEN, &public, &private)
        .unwrap()
}

/// The secret shared with `peer_public`, as an extractable generic secret
/// of `len` bytes (all of it without).
fn agree(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    private: CK_OBJECT_HANDLE,
    peer_public: &[u8],
    len: Option<usize>,
) -> Result<Vec<u8>, CK_RV> {
    let mut template = vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
    ];
    if let Some(len) = len {
        template.push((CKA_VALUE_LEN, ul(len as CK_ULONG)));
    }
    let key = raw.derive(
        s,
        CKM_DH_PKCS_DERIVE,
        peer_public.to_vec(),
        private,
        &template,
    )?;
    raw.get(s, key, CKA_VALUE)
}

#[test]
fn dh_agrees_with_itself_and_with_nss() {
    let (raw, s, _dir) = new_token_session();
    let (a_public, a_private) = pair(&raw, s, false);
    let (b_public, b_private) = pair(&raw, s, false);
    let a_value = raw.get(s, a_public, CKA_VALUE).unwrap();
    let b_value = raw.get(s, b_public, CKA_VALUE).unwrap();
    assert_eq!(
        raw.get(s, a_private, CKA_VALUE),
        Err(CKR_ATTRIBUTE_SENSITIVE)
    );
    let bits = raw.get(s, a_private, CKA_VALUE_BITS).unwrap();
    assert!(softoken_tests::raw::as_ul(&bits) > 200);
    let ab = agree(&raw, s, a_private, &b_value, None).unwrap();
    let ba = agree(&raw, s, b_private, &a_value, None).unwrap();
    assert_eq!(ab, ba);
    assert_eq!(ab.len(), 256, "as long as the prime");

    // NSS's softoken: its pair in the same group, each side deriving with
    // the other's public value.
    let (nss, ns, _nss_dir) = nss_session();
    let (n_public, n_private) = pair(&nss, ns, false);
    let n_value = nss.get(ns, n_public, CKA_VALUE).unwrap();
    for len in [None, Some(32), Some(255)] {
        let ours = agree(&raw, s, a_private, &n_value, len).unwrap();
        let theirs = agree(&nss, ns, n_private, &a_value, len).unwrap();
        assert_eq!(ours, theirs, "CKA_VALUE_LEN {len:?}");
    }
}

#[test]
fn bad_public_values_and_groups_are_refused() {
    let (raw, s, _dir) = new_token_session();
    let (_, private) = pair(&raw, s, false);
    let p = unhex(FFDHE2048);
    let mut p_minus_1 = p.clone();
    *p_minus_1.last_mut().unwrap() -= 1;
    for bad in [vec![], vec![0], vec![1], p_minus_1, p.clone()] {
        assert_eq!(
            agree(&raw, s, private, &bad, None),
            Err(CKR_MECHANISM_PARAM_INVALID),
            "{}",
            hex::encode(&bad)
        );
    }
    // More than the secret has.
    let (public, _) = pair(&raw, s, false);
    let value = raw.get(s, public, CKA_VALUE).unwrap();
    assert_eq!(
        agree(&raw, s, private, &value, Some(257)),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    // A 512-bit group, an even "prime", a generator of 1.
    let small = vec![(CKA_PRIME, p[..64].to_vec()), (CKA_BASE, vec![2])];
    let mut even = p.clone();
    *even.last_mut().unwrap() &= 0xfe;
    for public in [
        small,
        vec![(CKA_PRIME, even), (CKA_BASE, vec![2])],
        vec![(CKA_PRIME, p.clone()), (CKA_BASE, vec![1])],
    ] {
        assert_eq!(
            raw.generate_key_pair(s, CKM_DH_PKCS_KEY_PAIR_GEN, &public, &[]),
            Err(CKR_DOMAIN_PARAMS_INVALID)
        );
    }
    assert_eq!(
        raw.generate_key_pair(s, CKM_DH_PKCS_KEY_PAIR_GEN, &[(CKA_BASE, vec![2])], &[]),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
}

/// A key pair kept on a token with a password: stored as NSS stores DH
/// keys (the private value encrypted in key4.db), it derives after the
/// database is opened again, and NSS's softoken, on the same database,
/// derives the same secret with it.
#[test]
fn dh_keys_on_the_token_are_nss_s_to_use() {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let (public, private) = pair(&raw, s, true);
    assert_eq!(
        raw.set(s, private, &[(CKA_LABEL, b"dh on the token".to_vec())]),
        CKR_OK
    );
    let (peer_public, _) = pair(&raw, s, false);
    let own = raw.get(s, public, CKA_VALUE).unwrap();
    let peer = raw.get(s, peer_public, CKA_VALUE).unwrap();
    let before = agree(&raw, s, private, &peer, None).unwrap();
    assert_eq!(raw.finalize(), CKR_OK);
    let db = std::fs::read(dir.path().join("key4.db")).unwrap();
    assert!(
        !db.windows(16).any(|w| before.windows(16).any(|b| b == w)),
        "no secret in the file"
    );

    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let found = raw
        .find(s, &[(CKA_LABEL, b"dh on the token".to_vec())])
        .unwrap();
    assert_eq!(agree(&raw, s, found[0], &peer, None).unwrap(), before);
    assert_eq!(raw.finalize(), CKR_OK);

    let nss = nss_softoken(&sql_params(dir.path()));
    let ns = nss.open(nss.slots()[1], true).unwrap();
    assert_eq!(nss.login(ns, CKU_USER, "fixture-pw"), CKR_OK);
    let found = nss
        .find(ns, &[(CKA_LABEL, b"dh on the token".to_vec())])
        .unwrap();
    assert_eq!(found.len(), 1, "NSS finds the key");
    assert_eq!(agree(&nss, ns, found[0], &peer, None).unwrap(), before);
    // NSS's public half is the one made here.
    let nss_public = nss
        .find(
            ns,
            &[(CKA_CLASS, ul(CKO_PUBLIC_KEY)), (CKA_VALUE, own.clone())],
        )
        .unwrap();
    assert_eq!(nss_public.len(), 1);
    let report = open_token(dir.path());
    report.login(b"fixture-pw").unwrap();
    let checked = report.check(&mut |_, _| {}).unwrap();
    assert!(checked.failures.is_empty(), "{checked:?}");
}

/// Shifts a big-endian number right by one bit.
fn halved(n: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(n.len());
    let mut carry = 0u8;
    for b in n {
        out.push((b >> 1) | carry);
        carry = b << 7;
    }
    out
}

/// Whether OpenSSL finds a big-endian number prime.
fn openssl_says_prime(n: &[u8]) -> bool {
    let out = run(Command::new("openssl").args(["prime", "-hex", &hex::encode(n)]));
    assert!(
        out.contains("is prime") || out.contains("is not prime"),
        "{out}"
    );
    !out.contains("not prime")
}

/// CKM_DH_PKCS_PARAMETER_GEN: a domain-parameter object holding a safe
/// prime of the size asked and the generator 2; key pairs made in it agree.
#[test]
fn dh_groups_made_by_the_token() {
    let (raw, s, _dir) = new_token_session();
    let params = raw
        .generate_key(s, CKM_DH_PKCS_PARAMETER_GEN, &[(CKA_PRIME_BITS, ul(1024))])
        .unwrap();
    let ulong = |t| softoken_tests::raw::as_ul(&raw.get(s, params, t).unwrap());
    assert_eq!(ulong(CKA_CLASS), CKO_DOMAIN_PARAMETERS);
    assert_eq!(ulong(CKA_KEY_TYPE), CKK_DH);
    assert_eq!(ulong(CKA_PRIME_BITS), 1024);
    assert_eq!(raw.get(s, params, CKA_LOCAL).unwrap(), TRUE);
    let p = raw.get(s, params, CKA_PRIME).unwrap();
    let g = raw.get(s, params, CKA_BASE).unwrap();
    assert_eq!((p.len(), g.as_slice()), (128, &[2u8][..]));
    assert!(openssl_says_prime(&p), "p is prime");
    assert!(openssl_says_prime(&halved(&p)), "(p - 1) / 2 is prime");

    let group = vec![(CKA_PRIME, p), (CKA_BASE, g)];
    let private = [(CKA_DERIVE, TRUE.to_vec())];
    let (a_public, a_private) = raw
        .generate_key_pair(s, CKM_DH_PKCS_KEY_PAIR_GEN, &group, &private)
        .unwrap();
    let (b_public, b_private) = raw
        .generate_key_pair(s, CKM_DH_PKCS_KEY_PAIR_GEN, &group, &private)
        .unwrap();
    let a_value = raw.get(s, a_public, CKA_VALUE).unwrap();
    let b_value = raw.get(s, b_public, CKA_VALUE).unwrap();
    assert_eq!(
        agree(&raw, s, a_private, &b_value, None).unwrap(),
        agree(&raw, s, b_private, &a_value, None).unwrap()
    );

    for (template, want) in [
        (vec![], CKR_TEMPLATE_INCOMPLETE),
        (vec![(CKA_PRIME_BITS, ul(512))], CKR_ATTRIBUTE_VALUE_INVALID),
        (
            vec![(CKA_PRIME_BITS, ul(8192))],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (vec![(CKA_PRIME_BITS, vec![1])], CKR_ATTRIBUTE_VALUE_INVALID),
    ] {
        assert_eq!(
            raw.generate_key(s, CKM_DH_PKCS_PARAMETER_GEN, &template),
            Err(want),
            "{template:?}"
        );
    }
}
