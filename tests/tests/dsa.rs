//! DSA (CKM_DSA_PARAMETER_GEN, CKM_DSA_KEY_PAIR_GEN, CKM_DSA and the
//! hashed DSA mechanisms): a new group as a domain-parameter object, key
//! pairs in it, signatures single- and multi-part that NSS's softoken
//! verifies and whose NSS-made counterparts softoken verifies, keys kept on
//! the token that NSS signs with, and bad groups and signatures refused.
//! Wycheproof's vectors are in wycheproof.rs.

use pkcs11_sys::*;
use softoken::nss::CKA_NSS_DB;
use softoken_tests::raw::{as_ul, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

/// The hashed mechanisms, and whether NSS has each too (it lacks SHA3).
const HASHED: [(CK_MECHANISM_TYPE, bool); 9] = [
    (CKM_DSA_SHA1, true),
    (CKM_DSA_SHA224, true),
    (CKM_DSA_SHA256, true),
    (CKM_DSA_SHA384, true),
    (CKM_DSA_SHA512, true),
    (CKM_DSA_SHA3_224, false),
    (CKM_DSA_SHA3_256, false),
    (CKM_DSA_SHA3_384, false),
    (CKM_DSA_SHA3_512, false),
];

/// A group as its three attributes.
type Group = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// A new group of `bits` through CKM_DSA_PARAMETER_GEN, read back from the
/// domain-parameter object.
fn new_group(raw: &Raw, s: CK_SESSION_HANDLE, bits: CK_ULONG) -> Group {
    let params = raw
        .generate_key(s, CKM_DSA_PARAMETER_GEN, &[(CKA_PRIME_BITS, ul(bits))])
        .unwrap();
    [CKA_PRIME, CKA_SUBPRIME, CKA_BASE]
        .into_iter()
        .map(|t| (t, raw.get(s, params, t).unwrap()))
        .collect()
}

/// A key pair in `group`; `token` keeps it on the token.
fn pair(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    group: &Group,
    token: bool,
) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let on_token = (CKA_TOKEN, if token { TRUE } else { FALSE }.to_vec());
    let mut public = group.clone();
    public.extend([on_token.clone(), (CKA_VERIFY, TRUE.to_vec())]);
    let private = vec![
        on_token,
        (CKA_PRIVATE, TRUE.to_vec()),
        (CKA_SENSITIVE, TRUE.to_vec()),
        (CKA_SIGN, TRUE.to_vec()),
    ];
    raw.generate_key_pair(s, CKM_DSA_KEY_PAIR_GEN, &public, &private)
        .unwrap()
}

/// C_SignInit, then C_SignUpdate per part and C_SignFinal (with a length
/// query).
fn sign_parts(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_TYPE,
    key: CK_OBJECT_HANDLE,
    parts: &[&[u8]],
) -> Vec<u8> {
    assert_eq!(raw.sign_init(s, mech, vec![], key), CKR_OK);
    let f = raw.f();
    // SAFETY: valid buffers and lengths.
    unsafe {
        for part in parts {
            let rv = (f.C_SignUpdate.unwrap())(s, part.as_ptr() as *mut u8, part.len() as CK_ULONG);
            assert_eq!(rv, CKR_OK);
        }
        let mut len = 0;
        assert_eq!(
            (f.C_SignFinal.unwrap())(s, std::ptr::null_mut(), &mut len),
            CKR_OK
        );
        let mut out = vec![0u8; len as usize];
        assert_eq!(
            (f.C_SignFinal.unwrap())(s, out.as_mut_ptr(), &mut len),
            CKR_OK
        );
        out.truncate(len as usize);
        out
    }
}

#[test]
fn dsa_groups_keys_and_signatures_agree_with_nss() {
    let (raw, s, _dir) = new_token_session();
    let params = raw
        .generate_key(
            s,
            CKM_DSA_PARAMETER_GEN,
            &[(CKA_PRIME_BITS, ul(2048)), (CKA_LABEL, b"group".to_vec())],
        )
        .unwrap();
    assert_eq!(
        as_ul(&raw.get(s, params, CKA_CLASS).unwrap()),
        CKO_DOMAIN_PARAMETERS
    );
    assert_eq!(as_ul(&raw.get(s, params, CKA_KEY_TYPE).unwrap()), CKK_DSA);
    assert_eq!(as_ul(&raw.get(s, params, CKA_PRIME_BITS).unwrap()), 2048);
    assert_eq!(as_ul(&raw.get(s, params, CKA_SUB_PRIME_BITS).unwrap()), 256);
    assert_eq!(raw.get(s, params, CKA_LOCAL).unwrap(), TRUE);
    let group: Group = [CKA_PRIME, CKA_SUBPRIME, CKA_BASE]
        .into_iter()
        .map(|t| (t, raw.get(s, params, t).unwrap()))
        .collect();
    assert_eq!(group[0].1.len(), 256);
    assert_eq!(group[1].1.len(), 32);

    let (public, private) = pair(&raw, s, &group, false);
    assert_eq!(raw.get(s, private, CKA_VALUE), Err(CKR_ATTRIBUTE_SENSITIVE));
    assert_eq!(raw.get(s, private, CKA_SUBPRIME).unwrap(), group[1].1);
    let y = raw.get(s, public, CKA_VALUE).unwrap();
    let message = b"an old signature format, still in use".repeat(5);

    // NSS's softoken: a key pair in the same group, and the public half
    // of ours imported there.
    let (nss, ns, _nss_dir) = nss_session();
    let (n_public, n_private) = pair(&nss, ns, &group, false);
    let n_y = nss.get(ns, n_public, CKA_VALUE).unwrap();
    let import = |raw: &Raw, s, value: &[u8]| {
        let mut t = group.clone();
        t.extend([
            (CKA_CLASS, ul(CKO_PUBLIC_KEY)),
            (CKA_KEY_TYPE, ul(CKK_DSA)),
            (CKA_VALUE, value.to_vec()),
            (CKA_VERIFY, TRUE.to_vec()),
        ]);
        raw.create(s, &t).unwrap()
    };
    let ours_at_nss = import(&nss, ns, &y);
    let theirs_here = import(&raw, s, &n_y);

    for (mech, nss_has_it) in HASHED {
        let sig = raw.sign(s, mech, vec![], private, &message).unwrap();
        assert_eq!(sig.len(), 64, "{mech:#x}: r || s, 32 bytes each");
        assert_eq!(raw.verify(s, mech, vec![], public, &message, &sig), CKR_OK);
        let parts = sign_parts(&raw, s, mech, private, &[&message[..7], &[], &message[7..]]);
        assert_eq!(
            raw.verify(s, mech, vec![], public, &message, &parts),
            CKR_OK
        );
        let mut bad = sig.clone();
        bad[40] ^= 1;
        assert_eq!(
            raw.verify(s, mech, vec![], public, &message, &bad),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            raw.verify(s, mech, vec![], public, b"another message", &sig),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            raw.verify(s, mech, vec![], public, &message, &sig[..63]),
            CKR_SIGNATURE_LEN_RANGE
        );
        // Each side checks the other's.
        if nss_has_it {
            assert_eq!(
                nss.verify(ns, mech, vec![], ours_at_nss, &message, &sig),
                CKR_OK,
                "NSS verifies {mech:#x}"
            );
            let theirs = nss.sign(ns, mech, vec![], n_private, &message).unwrap();
            assert_eq!(
                raw.verify(s, mech, vec![], theirs_here, &message, &theirs),
                CKR_OK,
                "softoken verifies NSS's {mech:#x}"
            );
        }
    }

    // CKM_DSA over a caller's digest is the hashed mechanism's signature.
    let digest = hex::decode(sha256_hex(&message)).unwrap();
    let sig = raw.sign(s, CKM_DSA, vec![], private, &digest).unwrap();
    assert_eq!(
        raw.verify(s, CKM_DSA_SHA256, vec![], public, &message, &sig),
        CKR_OK
    );
    assert_eq!(
        nss.verify(ns, CKM_DSA, vec![], ours_at_nss, &digest, &sig),
        CKR_OK
    );
    // Raw DSA is single-part only.
    assert_eq!(raw.sign_init(s, CKM_DSA, vec![], private), CKR_OK);
    // SAFETY: a valid buffer.
    let rv = unsafe {
        (raw.f().C_SignUpdate.unwrap())(s, digest.as_ptr() as *mut u8, digest.len() as CK_ULONG)
    };
    assert_eq!(rv, CKR_OPERATION_NOT_INITIALIZED);
    // A public key does not sign, a private one does not verify.
    assert_eq!(
        raw.sign_init(s, CKM_DSA_SHA256, vec![], public),
        CKR_KEY_TYPE_INCONSISTENT
    );
    let info = raw.mechanism_info(raw.slots()[0], CKM_DSA_SHA256).unwrap();
    assert_eq!(
        (info.ulMinKeySize, info.ulMaxKeySize),
        (1024, 3072),
        "key sizes in bits of p"
    );
    assert_ne!(info.flags & CKF_SIGN, 0);
    assert_ne!(info.flags & CKF_VERIFY, 0);
}

#[test]
fn a_1024_bit_group_has_a_160_bit_subprime_and_signs() {
    let (raw, s, _dir) = new_token_session();
    let group = new_group(&raw, s, 1024);
    assert_eq!(group[0].1.len(), 128);
    assert_eq!(group[1].1.len(), 20);
    let (public, private) = pair(&raw, s, &group, false);
    let sig = raw
        .sign(s, CKM_DSA_SHA1, vec![], private, b"for old peers")
        .unwrap();
    assert_eq!(sig.len(), 40);
    assert_eq!(
        raw.verify(s, CKM_DSA_SHA1, vec![], public, b"for old peers", &sig),
        CKR_OK
    );
}

#[test]
fn bad_groups_and_parameter_requests_are_refused() {
    let (raw, s, _dir) = new_token_session();
    for (template, want) in [
        (vec![], CKR_TEMPLATE_INCOMPLETE),
        (
            vec![(CKA_PRIME_BITS, ul(1000))],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (vec![(CKA_PRIME_BITS, ul(512))], CKR_ATTRIBUTE_VALUE_INVALID),
        (
            vec![(CKA_PRIME_BITS, ul(4096))],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            vec![(CKA_PRIME_BITS, ul(2048)), (CKA_SUB_PRIME_BITS, ul(160))],
            CKR_TEMPLATE_INCONSISTENT,
        ),
    ] {
        assert_eq!(
            raw.generate_key(s, CKM_DSA_PARAMETER_GEN, &template),
            Err(want),
            "{template:?}"
        );
    }
    let group = new_group(&raw, s, 1024);
    let with = |t: CK_ATTRIBUTE_TYPE, v: Vec<u8>| -> Group {
        group
            .iter()
            .map(|(a, old)| (*a, if *a == t { v.clone() } else { old.clone() }))
            .collect()
    };
    let mut even = group[0].1.clone();
    *even.last_mut().unwrap() &= 0xfe;
    for bad in [
        with(CKA_PRIME, even),
        with(CKA_PRIME, group[0].1[..64].to_vec()),
        with(CKA_SUBPRIME, vec![0x7f; 25]),
        with(CKA_BASE, vec![1]),
        with(CKA_BASE, group[0].1.clone()),
    ] {
        assert_eq!(
            raw.generate_key_pair(s, CKM_DSA_KEY_PAIR_GEN, &bad, &[]),
            Err(CKR_DOMAIN_PARAMS_INVALID)
        );
    }
    assert_eq!(
        raw.generate_key_pair(s, CKM_DSA_KEY_PAIR_GEN, &group[..2], &[]),
        Err(CKR_TEMPLATE_INCOMPLETE)
    );
    // A signature with r or s zero, or as large as q, is invalid.
    let (public, _) = pair(&raw, s, &group, false);
    let q = &group[1].1;
    for sig in [
        [vec![0; 20], vec![1; 20]].concat(),
        [vec![1; 20], vec![0; 20]].concat(),
        [q.clone(), vec![1; 20]].concat(),
    ] {
        assert_eq!(
            raw.verify(s, CKM_DSA_SHA1, vec![], public, b"m", &sig),
            CKR_SIGNATURE_INVALID
        );
    }
}

/// A key pair kept on a token with a password: stored as NSS stores DSA
/// keys (the private value encrypted in key4.db), it signs after the
/// database is opened again, NSS's softoken signs with it on the same
/// database, and the database checks clean.
#[test]
fn dsa_keys_on_the_token_are_nss_s_to_use() {
    let dir = copy_fixture("sql-pw");
    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let group = new_group(&raw, s, 2048);
    let (public, private) = pair(&raw, s, &group, true);
    assert_eq!(
        raw.set(s, private, &[(CKA_LABEL, b"dsa on the token".to_vec())]),
        CKR_OK
    );
    let y = raw.get(s, public, CKA_VALUE).unwrap();
    assert_eq!(raw.finalize(), CKR_OK);

    let raw = Raw::with_params(&sql_params(dir.path()));
    let s = raw.open(raw.slots()[0], true).unwrap();
    assert_eq!(raw.login(s, CKU_USER, "fixture-pw"), CKR_OK);
    let found = raw
        .find(s, &[(CKA_LABEL, b"dsa on the token".to_vec())])
        .unwrap();
    assert_eq!(found.len(), 1);
    let sig = raw
        .sign(s, CKM_DSA_SHA256, vec![], found[0], b"kept")
        .unwrap();
    let public = raw
        .find(
            s,
            &[(CKA_CLASS, ul(CKO_PUBLIC_KEY)), (CKA_VALUE, y.clone())],
        )
        .unwrap();
    assert_eq!(public.len(), 1);
    assert_eq!(
        raw.verify(s, CKM_DSA_SHA256, vec![], public[0], b"kept", &sig),
        CKR_OK
    );
    assert_eq!(raw.finalize(), CKR_OK);

    let nss = nss_softoken(&sql_params(dir.path()));
    let ns = nss.open(nss.slots()[1], true).unwrap();
    assert_eq!(nss.login(ns, CKU_USER, "fixture-pw"), CKR_OK);
    let found = nss
        .find(ns, &[(CKA_LABEL, b"dsa on the token".to_vec())])
        .unwrap();
    assert_eq!(found.len(), 1, "NSS finds the key");
    let theirs = nss
        .sign(ns, CKM_DSA_SHA256, vec![], found[0], b"kept")
        .unwrap();
    let nss_public = nss
        .find(ns, &[(CKA_CLASS, ul(CKO_PUBLIC_KEY)), (CKA_VALUE, y)])
        .unwrap();
    assert_eq!(nss_public.len(), 1, "NSS finds the public half");
    assert_eq!(
        nss.verify(ns, CKM_DSA_SHA256, vec![], nss_public[0], b"kept", &theirs),
        CKR_OK
    );
    let report = open_token(dir.path());
    report.login(b"fixture-pw").unwrap();
    let checked = report.check(&mut |_, _| {}).unwrap();
    assert!(checked.failures.is_empty(), "{checked:?}");
}

/// A DSA private key wrapped as PKCS#8 (RFC 3279's Dss-Parms) with
/// AES-CBC-PAD: unwrapped here it signs, NSS's softoken unwraps the same
/// bytes into a key whose signatures softoken's public half verifies, and
/// a key NSS wrapped unwraps here.
#[test]
fn dsa_private_keys_wrap_as_pkcs8_both_ways() {
    let (raw, s, _dir) = new_token_session();
    let group = new_group(&raw, s, 2048);
    let (public, private) = pair(&raw, s, &group, false);
    let aes = [0x5au8; 32];
    let usage = [(CKA_WRAP, TRUE.to_vec()), (CKA_UNWRAP, TRUE.to_vec())];
    let kek = raw.create_secret(s, CKK_AES, &aes, &usage).unwrap();
    let iv = vec![7u8; 16];
    let wrapped = raw
        .wrap_key(s, CKM_AES_CBC_PAD, iv.clone(), kek, private)
        .unwrap();
    let template = vec![
        (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
        (CKA_KEY_TYPE, ul(CKK_DSA)),
        (CKA_SIGN, TRUE.to_vec()),
    ];
    let here = raw
        .unwrap_key(s, CKM_AES_CBC_PAD, iv.clone(), kek, &wrapped, &template)
        .unwrap();
    assert_eq!(raw.get(s, here, CKA_PRIME).unwrap(), group[0].1);
    let sig = raw
        .sign(s, CKM_DSA_SHA256, vec![], here, b"unwrapped")
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_DSA_SHA256, vec![], public, b"unwrapped", &sig),
        CKR_OK
    );

    // NSS unwraps a DSA key only with its public value in the template
    // (as NSS's own PK11_UnwrapPrivKey passes it).
    let (nss, ns, _nss_dir) = nss_session();
    let nss_kek = nss.create_secret(ns, CKK_AES, &aes, &usage).unwrap();
    let mut nss_template = template.clone();
    nss_template.push((CKA_NSS_DB, raw.get(s, public, CKA_VALUE).unwrap()));
    let there = nss
        .unwrap_key(ns, CKM_AES_CBC_PAD, iv, nss_kek, &wrapped, &nss_template)
        .unwrap();
    let sig = nss
        .sign(ns, CKM_DSA_SHA256, vec![], there, b"unwrapped by NSS")
        .unwrap();
    assert_eq!(
        raw.verify(s, CKM_DSA_SHA256, vec![], public, b"unwrapped by NSS", &sig),
        CKR_OK
    );

    // And the other way: NSS's key, wrapped by NSS, unwrapped here.
    let (n_public, n_private) = pair(&nss, ns, &group, false);
    let iv = vec![9u8; 16];
    let wrapped = nss
        .wrap_key(ns, CKM_AES_CBC_PAD, iv.clone(), nss_kek, n_private)
        .unwrap();
    let here = raw
        .unwrap_key(s, CKM_AES_CBC_PAD, iv, kek, &wrapped, &template)
        .unwrap();
    let sig = raw
        .sign(s, CKM_DSA_SHA256, vec![], here, b"from NSS")
        .unwrap();
    assert_eq!(
        nss.verify(ns, CKM_DSA_SHA256, vec![], n_public, b"from NSS", &sig),
        CKR_OK
    );
}
