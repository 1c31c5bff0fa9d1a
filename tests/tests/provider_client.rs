//! A client that drives the token as OpenSSL's pkcs11-provider does, run
//! against softoken and against NSS's own softoken (libsoftokn3.so) on
//! copies of one NSS-made database with a password: software keys and HKDF
//! inputs imported into a session that is not logged in with templates
//! that leave CKA_PRIVATE unset, TLS 1.3's expand-only HKDF, and the
//! context-specific login it sends after C_SignInit for a key marked
//! CKA_ALWAYS_AUTHENTICATE. Both modules must give the client the same
//! answers; where softoken is stricter by design (it enforces
//! CKA_ALWAYS_AUTHENTICATE, NSS ignores it) the client accepts both.

use pkcs11_sys::*;
use softoken_tests::raw::{hkdf_param, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

const PIN: &str = "fixture-pw";
const P256: &str = "06082a8648ce3d030107";
/// RFC 6979 A.2.5's P-256 private key.
const EC_SCALAR: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
/// RFC 5869 test case 1: the PRK, the info and the 42-byte OKM.
const PRK: &str = "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5";
const INFO: &str = "f0f1f2f3f4f5f6f7f8f9";
const OKM: &str =
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";

fn outcome<T>(r: Result<T, CK_RV>) -> String {
    match r {
        Ok(_) => "CKR_OK".into(),
        Err(rv) => format!("{rv:#x}"),
    }
}

fn ec_private(always_authenticate: bool) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    vec![
        (CKA_CLASS, ul(CKO_PRIVATE_KEY)),
        (CKA_KEY_TYPE, ul(CKK_EC)),
        (CKA_TOKEN, FALSE.to_vec()),
        (CKA_EC_PARAMS, unhex(P256)),
        (CKA_VALUE, unhex(EC_SCALAR)),
        (CKA_SIGN, TRUE.to_vec()),
        (
            CKA_ALWAYS_AUTHENTICATE,
            if always_authenticate { TRUE } else { FALSE }.to_vec(),
        ),
    ]
}

fn secret(token: bool, private: Option<bool>) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    let mut t = vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_TOKEN, if token { TRUE } else { FALSE }.to_vec()),
        (CKA_VALUE, unhex(PRK)),
        (CKA_DERIVE, TRUE.to_vec()),
        (CKA_LABEL, b"provider-client".to_vec()),
    ];
    if let Some(p) = private {
        t.push((CKA_PRIVATE, if p { TRUE } else { FALSE }.to_vec()));
    }
    t
}

/// ECDSA over a 32-byte hash.
const HASH: [u8; 32] = [7; 32];

/// The client's run: each step and what the module answered.
fn client_run(raw: &Raw, slot: CK_SLOT_ID) -> Vec<(&'static str, String)> {
    let mut steps = Vec::new();
    let s = raw.open(slot, true).unwrap();

    let ec = raw.create(s, &ec_private(false));
    steps.push(("import an EC key, not logged in", outcome(ec)));
    let ec = ec.unwrap_or(0);
    let private = raw.get(s, ec, CKA_PRIVATE).map(|v| v == TRUE);
    steps.push(("its CKA_PRIVATE", format!("{private:?}")));
    steps.push((
        "sign with it",
        outcome(raw.sign(s, CKM_ECDSA, vec![], ec, &HASH)),
    ));

    let prk = raw.create(s, &secret(false, None));
    steps.push(("import an HKDF input, not logged in", outcome(prk)));
    let (info, salt) = (unhex(INFO), Vec::new());
    let okm = raw
        .derive(
            s,
            CKM_HKDF_DERIVE,
            hkdf_param(false, true, 0, &salt, 0, &info),
            prk.unwrap_or(0),
            &[
                (CKA_CLASS, ul(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
                (CKA_VALUE_LEN, ul(42)),
                (CKA_SENSITIVE, FALSE.to_vec()),
                (CKA_EXTRACTABLE, TRUE.to_vec()),
            ],
        )
        .and_then(|h| raw.get(s, h, CKA_VALUE))
        .map(hex::encode);
    steps.push(("HKDF expand-only, salt type 0", format!("{okm:?}")));

    steps.push((
        "a session key with CKA_PRIVATE TRUE, not logged in",
        outcome(raw.create(s, &secret(false, Some(true)))),
    ));
    steps.push((
        "a token key with CKA_PRIVATE unset, not logged in",
        outcome(raw.create(s, &secret(true, None))),
    ));
    steps.push((
        "a token key with CKA_PRIVATE FALSE, not logged in",
        outcome(raw.create(s, &secret(true, Some(false)))),
    ));

    assert_eq!(raw.login(s, CKU_USER, PIN), CKR_OK);
    let stored = raw.find(
        s,
        &[
            (CKA_TOKEN, TRUE.to_vec()),
            (CKA_LABEL, b"provider-client".to_vec()),
        ],
    );
    steps.push((
        "token keys written while not logged in",
        format!("{:?}", stored.map(|h| h.len())),
    ));

    let marked = raw.create(s, &ec_private(true)).unwrap();
    steps.push(("C_SignInit, always-authenticate key", {
        format!("{:#x}", raw.sign_init(s, CKM_ECDSA, vec![], marked))
    }));
    let login = raw.login(s, CKU_CONTEXT_SPECIFIC, PIN);
    // pkcs11-provider takes either answer as a successful login.
    let accepted = matches!(login, CKR_OK | CKR_USER_ALREADY_LOGGED_IN);
    steps.push(("context-specific login accepted", accepted.to_string()));
    steps.push(("then C_Sign", outcome(raw.sign_data(s, &HASH))));
    raw.close(s);
    steps
}

#[test]
fn a_pkcs11_provider_client_gets_from_softoken_what_it_gets_from_nss() {
    let ours_dir = copy_fixture("sql-pw");
    let ours = Raw::with_params(&sql_params(ours_dir.path()));
    let ours_steps = client_run(&ours, ours.slots()[0]);

    let nss_dir = copy_fixture("sql-pw");
    let params = format!(
        "configdir='sql:{}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=",
        nss_dir.path().display()
    );
    let nss = nss_softoken(&params);
    // NSS's first slot is its crypto-services slot; the database's is next.
    let nss_steps = client_run(&nss, nss.slots()[1]);

    for (ours, nss) in ours_steps.iter().zip(&nss_steps) {
        assert_eq!(ours, nss, "softoken and NSS differ");
    }
    assert_eq!(ours_steps.len(), nss_steps.len());
    // And what the answers are.
    let expected = [
        ("import an EC key, not logged in", "CKR_OK".to_string()),
        ("its CKA_PRIVATE", "Ok(false)".into()),
        ("sign with it", "CKR_OK".into()),
        ("import an HKDF input, not logged in", "CKR_OK".into()),
        ("HKDF expand-only, salt type 0", format!("Ok({OKM:?})")),
        (
            "a session key with CKA_PRIVATE TRUE, not logged in",
            format!("{CKR_USER_NOT_LOGGED_IN:#x}"),
        ),
        (
            "a token key with CKA_PRIVATE unset, not logged in",
            format!("{CKR_USER_NOT_LOGGED_IN:#x}"),
        ),
        (
            "a token key with CKA_PRIVATE FALSE, not logged in",
            format!("{CKR_USER_NOT_LOGGED_IN:#x}"),
        ),
        ("token keys written while not logged in", "Ok(0)".into()),
        (
            "C_SignInit, always-authenticate key",
            format!("{CKR_OK:#x}"),
        ),
        ("context-specific login accepted", "true".into()),
        ("then C_Sign", "CKR_OK".into()),
    ];
    let got: Vec<(&str, String)> = ours_steps.clone();
    assert_eq!(got, expected.to_vec());
}
