//! TLS 1.2 on the token: the pre-master secret (CKM_TLS_PRE_MASTER_KEY_GEN),
//! the master secret (CKM_TLS12_MASTER_KEY_DERIVE, its _DH form and NSS's
//! extended master secret), the exporter (CKM_TLS12_KDF) and the Finished
//! MAC (CKM_TLS_MAC), each checked against OpenSSL's TLS1-PRF (the known
//! answer, computed independently) and against NSS's softoken given the
//! same secrets; the client version reported as NSS reports it; bad
//! parameters refused.

use std::process::Command;

use pkcs11_sys::*;
use softoken::nss::CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE;
use softoken_tests::raw::{param_bytes, ul, Raw, FALSE, TRUE};
use softoken_tests::*;

const CLIENT_RANDOM: [u8; 32] = [0xc1; 32];
const SERVER_RANDOM: [u8; 32] = [0x5e; 32];

/// OpenSSL's TLS 1.2 PRF (`openssl kdf TLS1-PRF`): `len` bytes of
/// PRF(secret, label, seed), the label being the seed's start.
fn openssl_prf(digest: &str, secret: &[u8], label_and_seed: &[u8], len: usize) -> Vec<u8> {
    let out = run(Command::new("openssl").args([
        "kdf",
        "-keylen",
        &len.to_string(),
        "-kdfopt",
        &format!("digest:{digest}"),
        "-kdfopt",
        &format!("hexsecret:{}", hex::encode(secret)),
        "-kdfopt",
        &format!("hexseed:{}", hex::encode(label_and_seed)),
        "TLS1-PRF",
    ]));
    hex::decode(out.trim().replace(':', "")).unwrap()
}

fn randoms() -> CK_SSL3_RANDOM_DATA {
    CK_SSL3_RANDOM_DATA {
        pClientRandom: CLIENT_RANDOM.as_ptr() as *mut u8,
        ulClientRandomLen: 32,
        pServerRandom: SERVER_RANDOM.as_ptr() as *mut u8,
        ulServerRandomLen: 32,
    }
}

/// A readable generic secret's template.
fn readable() -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET)),
        (CKA_SENSITIVE, FALSE.to_vec()),
        (CKA_EXTRACTABLE, TRUE.to_vec()),
    ]
}

/// CKM_TLS12_MASTER_KEY_DERIVE(_DH) from `pms` with `prf`: the master
/// secret's handle and the version written to pVersion.
fn master(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_TYPE,
    prf: CK_MECHANISM_TYPE,
    pms: CK_OBJECT_HANDLE,
) -> Result<(CK_OBJECT_HANDLE, CK_VERSION), CK_RV> {
    let mut version = CK_VERSION { major: 0, minor: 0 };
    let params = CK_TLS12_MASTER_KEY_DERIVE_PARAMS {
        RandomInfo: randoms(),
        pVersion: if mech == CKM_TLS12_MASTER_KEY_DERIVE {
            &mut version
        } else {
            std::ptr::null_mut()
        },
        prfHashMechanism: prf,
    };
    let key = raw.derive(s, mech, param_bytes(&params), pms, &readable())?;
    Ok((key, version))
}

/// A generic secret of these bytes that may derive.
fn secret(raw: &Raw, s: CK_SESSION_HANDLE, value: &[u8]) -> CK_OBJECT_HANDLE {
    raw.create_secret(
        s,
        CKK_GENERIC_SECRET,
        value,
        &[(CKA_DERIVE, TRUE.to_vec()), (CKA_SENSITIVE, FALSE.to_vec())],
    )
    .unwrap()
}

fn finished_mac(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    master: CK_OBJECT_HANDLE,
    server_or_client: CK_ULONG,
    handshake_hash: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let params = CK_TLS_MAC_PARAMS {
        prfHashMechanism: CKM_SHA256,
        ulMacLength: 12,
        ulServerOrClient: server_or_client,
    };
    raw.sign(s, CKM_TLS_MAC, param_bytes(&params), master, handshake_hash)
}

#[test]
fn tls12_master_secret_finished_and_exporter_match_openssl_and_nss() {
    let (raw, s, _dir) = new_token_session();
    let pms = raw
        .generate_key_with(
            s,
            CKM_TLS_PRE_MASTER_KEY_GEN,
            vec![3, 3],
            &[(CKA_SENSITIVE, FALSE.to_vec())],
        )
        .unwrap();
    let pms_value = raw.get(s, pms, CKA_VALUE).unwrap();
    assert_eq!((pms_value.len(), &pms_value[..2]), (48, &[3u8, 3][..]));
    let randoms = [CLIENT_RANDOM, SERVER_RANDOM].concat();
    let (nss, ns, _nss_dir) = nss_session();
    let nss_pms = secret(&nss, ns, &pms_value);

    for (prf, digest) in [(CKM_SHA256, "SHA256"), (CKM_SHA384, "SHA384")] {
        let (key, version) = master(&raw, s, CKM_TLS12_MASTER_KEY_DERIVE, prf, pms).unwrap();
        assert_eq!(
            (version.major, version.minor),
            (3, 3),
            "the client's version"
        );
        let value = raw.get(s, key, CKA_VALUE).unwrap();
        let label_seed = [b"master secret".as_slice(), &randoms].concat();
        assert_eq!(value, openssl_prf(digest, &pms_value, &label_seed, 48));
        for usage in [CKA_SIGN, CKA_VERIFY, CKA_DERIVE] {
            assert_eq!(raw.get(s, key, usage).unwrap(), TRUE);
        }
        let (nss_key, nss_version) =
            master(&nss, ns, CKM_TLS12_MASTER_KEY_DERIVE, prf, nss_pms).unwrap();
        assert_eq!(nss.get(ns, nss_key, CKA_VALUE).unwrap(), value);
        // An imported session key's version too, as here.
        assert_eq!((nss_version.major, nss_version.minor), (3, 3));
    }

    // The master secret signs both Finished messages.
    let (key, _) = master(&raw, s, CKM_TLS12_MASTER_KEY_DERIVE, CKM_SHA256, pms).unwrap();
    let master_value = raw.get(s, key, CKA_VALUE).unwrap();
    let nss_master = secret(&nss, ns, &master_value);
    assert_eq!(
        nss.set(
            ns,
            nss_master,
            &[(CKA_SIGN, TRUE.to_vec()), (CKA_VERIFY, TRUE.to_vec())]
        ),
        CKR_OK
    );
    let handshake_hash = [0x4a; 32];
    for (who, label) in [(1, b"server finished"), (2, b"client finished")] {
        let mac = finished_mac(&raw, s, key, who, &handshake_hash).unwrap();
        let label_seed = [label.as_slice(), &handshake_hash].concat();
        assert_eq!(mac, openssl_prf("SHA256", &master_value, &label_seed, 12));
        // NSS answers a length query for this MAC with a length that is
        // too small; a 12-byte buffer it fills.
        let params = CK_TLS_MAC_PARAMS {
            prfHashMechanism: CKM_SHA256,
            ulMacLength: 12,
            ulServerOrClient: who,
        };
        assert_eq!(
            nss.sign_init(ns, CKM_TLS_MAC, param_bytes(&params), nss_master),
            CKR_OK
        );
        let mut theirs = [0u8; 12];
        let mut len: CK_ULONG = 12;
        // SAFETY: valid buffers and lengths.
        let rv = unsafe {
            (nss.f().C_Sign.unwrap())(
                ns,
                handshake_hash.as_ptr() as *mut u8,
                32,
                theirs.as_mut_ptr(),
                &mut len,
            )
        };
        assert_eq!((rv, &theirs[..len as usize]), (CKR_OK, mac.as_slice()));
        let params = CK_TLS_MAC_PARAMS {
            prfHashMechanism: CKM_SHA256,
            ulMacLength: 12,
            ulServerOrClient: who,
        };
        assert_eq!(
            raw.verify(
                s,
                CKM_TLS_MAC,
                param_bytes(&params),
                key,
                &handshake_hash,
                &mac
            ),
            CKR_OK
        );
        let mut forged = mac.clone();
        forged[0] ^= 1;
        assert_eq!(
            raw.verify(
                s,
                CKM_TLS_MAC,
                param_bytes(&params),
                key,
                &handshake_hash,
                &forged
            ),
            CKR_SIGNATURE_INVALID
        );
    }

    // The exporter, without a context and with one.
    let label = b"EXPORTER-test";
    let context = b"a context";
    for with_context in [false, true] {
        let params = CK_TLS_KDF_PARAMS {
            prfMechanism: CKM_SHA256,
            pLabel: label.as_ptr() as *mut u8,
            ulLabelLength: label.len() as CK_ULONG,
            RandomInfo: self::randoms(),
            pContextData: if with_context {
                context.as_ptr() as *mut u8
            } else {
                std::ptr::null_mut()
            },
            ulContextDataLength: if with_context {
                context.len() as CK_ULONG
            } else {
                0
            },
        };
        let mut template = readable();
        template.push((CKA_VALUE_LEN, ul(70)));
        let exported = raw
            .derive(s, CKM_TLS12_KDF, param_bytes(&params), key, &template)
            .unwrap();
        let mut seed = [label.as_slice(), &randoms].concat();
        if with_context {
            seed.extend_from_slice(&(context.len() as u16).to_be_bytes());
            seed.extend_from_slice(context);
        }
        assert_eq!(
            raw.get(s, exported, CKA_VALUE).unwrap(),
            openssl_prf("SHA256", &master_value, &seed, 70),
            "context {with_context}"
        );
    }
}

#[test]
fn extended_and_dh_master_secrets() {
    let (raw, s, _dir) = new_token_session();
    let (nss, ns, _nss_dir) = nss_session();
    let pms_value: Vec<u8> = [vec![3, 3], vec![0x77; 46]].concat();
    let pms = secret(&raw, s, &pms_value);
    let nss_pms = secret(&nss, ns, &pms_value);
    let session_hash = [0x2b; 32];
    let derive_extended = |raw: &Raw, s, base| {
        let mut version = CK_VERSION { major: 0, minor: 0 };
        // CK_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE_PARAMS.
        let params: [CK_ULONG; 4] = [
            CKM_SHA256,
            session_hash.as_ptr() as CK_ULONG,
            session_hash.len() as CK_ULONG,
            &mut version as *mut CK_VERSION as CK_ULONG,
        ];
        let key = raw
            .derive(
                s,
                CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE,
                param_bytes(&params),
                base,
                &readable(),
            )
            .unwrap();
        (raw.get(s, key, CKA_VALUE).unwrap(), version)
    };
    let (ours, version) = derive_extended(&raw, s, pms);
    let label_seed = [b"extended master secret".as_slice(), &session_hash].concat();
    assert_eq!(ours, openssl_prf("SHA256", &pms_value, &label_seed, 48));
    assert_eq!(derive_extended(&nss, ns, nss_pms).0, ours);
    assert_eq!((version.major, version.minor), (3, 3));
    // A token key's, or a derived one's, is not reported: 0xff.0xff.
    let on_token = raw
        .create_secret(
            s,
            CKK_GENERIC_SECRET,
            &pms_value,
            &[(CKA_DERIVE, TRUE.to_vec()), (CKA_TOKEN, TRUE.to_vec())],
        )
        .unwrap();
    let zeros = [0u8; 48];
    let xor = CK_KEY_DERIVATION_STRING_DATA {
        pData: zeros.as_ptr() as *mut u8,
        ulLen: 48,
    };
    let derived = raw
        .derive(
            s,
            CKM_XOR_BASE_AND_DATA,
            param_bytes(&xor),
            pms,
            &[(CKA_CLASS, ul(CKO_SECRET_KEY)), (CKA_DERIVE, TRUE.to_vec())],
        )
        .unwrap();
    for base in [on_token, derived] {
        assert_eq!(derive_extended(&raw, s, base).1.major, 0xff);
    }

    // A Diffie-Hellman pre-master secret has any length and no version.
    let dh_value = vec![0x19; 256];
    let dh_pms = secret(&raw, s, &dh_value);
    let (key, _) = master(&raw, s, CKM_TLS12_MASTER_KEY_DERIVE_DH, CKM_SHA256, dh_pms).unwrap();
    let label_seed = [b"master secret".as_slice(), &CLIENT_RANDOM, &SERVER_RANDOM].concat();
    assert_eq!(
        raw.get(s, key, CKA_VALUE).unwrap(),
        openssl_prf("SHA256", &dh_value, &label_seed, 48)
    );
    let nss_dh_pms = secret(&nss, ns, &dh_value);
    let (nss_key, _) = master(
        &nss,
        ns,
        CKM_TLS12_MASTER_KEY_DERIVE_DH,
        CKM_SHA256,
        nss_dh_pms,
    )
    .unwrap();
    assert_eq!(
        nss.get(ns, nss_key, CKA_VALUE).unwrap(),
        raw.get(s, key, CKA_VALUE).unwrap()
    );
}

#[test]
fn bad_tls_parameters_are_refused() {
    let (raw, s, _dir) = new_token_session();
    let pms = secret(&raw, s, &[3; 48]);
    // The TLS 1.0 PRF and hashes TLS 1.2 does not use.
    for prf in [CKM_TLS_PRF, CKM_MD5, CKM_SHA_1] {
        assert_eq!(
            master(&raw, s, CKM_TLS12_MASTER_KEY_DERIVE, prf, pms).err(),
            Some(CKR_MECHANISM_PARAM_INVALID)
        );
    }
    // An RSA pre-master secret is 48 bytes.
    let short = secret(&raw, s, &[3; 47]);
    assert_eq!(
        master(&raw, s, CKM_TLS12_MASTER_KEY_DERIVE, CKM_SHA256, short).err(),
        Some(CKR_KEY_TYPE_INCONSISTENT)
    );
    // Randoms of 32 bytes, a structure of its size.
    let mut params = CK_TLS12_MASTER_KEY_DERIVE_PARAMS {
        RandomInfo: randoms(),
        pVersion: std::ptr::null_mut(),
        prfHashMechanism: CKM_SHA256,
    };
    params.RandomInfo.ulClientRandomLen = 31;
    assert_eq!(
        raw.derive(
            s,
            CKM_TLS12_MASTER_KEY_DERIVE,
            param_bytes(&params),
            pms,
            &readable()
        ),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    assert_eq!(
        raw.derive(s, CKM_TLS12_MASTER_KEY_DERIVE, vec![0; 8], pms, &readable()),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
    // A master secret is a 48-byte generic secret.
    let mut aes = readable();
    aes[1] = (CKA_KEY_TYPE, ul(CKK_AES));
    let params = CK_TLS12_MASTER_KEY_DERIVE_PARAMS {
        RandomInfo: randoms(),
        pVersion: std::ptr::null_mut(),
        prfHashMechanism: CKM_SHA256,
    };
    assert_eq!(
        raw.derive(
            s,
            CKM_TLS12_MASTER_KEY_DERIVE,
            param_bytes(&params),
            pms,
            &aes
        ),
        Err(CKR_TEMPLATE_INCONSISTENT)
    );
    // Finished: server (1) or client (2), 12 bytes or more.
    let (key, _) = master(&raw, s, CKM_TLS12_MASTER_KEY_DERIVE, CKM_SHA256, pms).unwrap();
    for (len, who) in [(12, 3), (11, 1)] {
        let params = CK_TLS_MAC_PARAMS {
            prfHashMechanism: CKM_SHA256,
            ulMacLength: len,
            ulServerOrClient: who,
        };
        assert_eq!(
            raw.sign_init(s, CKM_TLS_MAC, param_bytes(&params), key),
            CKR_MECHANISM_PARAM_INVALID
        );
    }
    // A pre-master secret's parameter is a CK_VERSION.
    assert_eq!(
        raw.generate_key_with(s, CKM_TLS_PRE_MASTER_KEY_GEN, vec![3], &[]),
        Err(CKR_MECHANISM_PARAM_INVALID)
    );
}

/// The four handles of CK_SSL3_KEY_MAT_OUT, and the client's and the
/// server's IV.
type KeyBlock = ([CK_OBJECT_HANDLE; 4], Vec<u8>, Vec<u8>);

/// CKM_TLS12_KEY_AND_MAC_DERIVE(`mech`) from `master`: the four handles
/// and the two IVs (`iv_len` bytes each).
fn key_and_mac(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_TYPE,
    master: CK_OBJECT_HANDLE,
    (mac_len, key_len, iv_len): (usize, usize, usize),
    template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> Result<KeyBlock, CK_RV> {
    let mut client_iv = vec![0u8; iv_len];
    let mut server_iv = vec![0u8; iv_len];
    let mut returned = CK_SSL3_KEY_MAT_OUT {
        hClientMacSecret: 0,
        hServerMacSecret: 0,
        hClientKey: 0,
        hServerKey: 0,
        pIVClient: client_iv.as_mut_ptr(),
        pIVServer: server_iv.as_mut_ptr(),
    };
    let params = CK_TLS12_KEY_MAT_PARAMS {
        ulMacSizeInBits: 8 * mac_len as CK_ULONG,
        ulKeySizeInBits: 8 * key_len as CK_ULONG,
        ulIVSizeInBits: 8 * iv_len as CK_ULONG,
        bIsExport: 0,
        RandomInfo: randoms(),
        pReturnedKeyMaterial: &mut returned,
        prfHashMechanism: CKM_SHA256,
    };
    let mut param = param_bytes(&params);
    let mut m = CK_MECHANISM {
        mechanism: mech,
        pParameter: param.as_mut_ptr() as *mut _,
        ulParameterLen: param.len() as CK_ULONG,
    };
    let mut tmpl: Vec<CK_ATTRIBUTE> = template
        .iter()
        .map(|(t, v)| CK_ATTRIBUTE {
            type_: *t,
            pValue: v.as_ptr() as *mut _,
            ulValueLen: v.len() as CK_ULONG,
        })
        .collect();
    // SAFETY: valid mechanism and template; phKey unused (NULL).
    let rv = unsafe {
        (raw.f().C_DeriveKey.unwrap())(
            s,
            &mut m,
            master,
            tmpl.as_mut_ptr(),
            tmpl.len() as CK_ULONG,
            std::ptr::null_mut(),
        )
    };
    if rv != CKR_OK {
        return Err(rv);
    }
    Ok((
        [
            returned.hClientMacSecret,
            returned.hServerMacSecret,
            returned.hClientKey,
            returned.hServerKey,
        ],
        client_iv,
        server_iv,
    ))
}

/// The key block of a CBC suite with HMAC-SHA256 (MAC 32, AES-128 key 16,
/// IV 16) and of an AEAD suite (no MAC, AES-256 key 32, IV 4), cut as RFC
/// 5246 §6.3 says: OpenSSL's PRF gives the bytes, NSS's softoken the same
/// keys; KEY_SAFE_DERIVE gives no IVs.
#[test]
fn tls12_key_block_matches_openssl_and_nss() {
    let (raw, s, _dir) = new_token_session();
    let (nss, ns, _nss_dir) = nss_session();
    let master_value = [0x3c; 48];
    let ours = secret(&raw, s, &master_value);
    let theirs = secret(&nss, ns, &master_value);
    let seed = [b"key expansion".as_slice(), &SERVER_RANDOM, &CLIENT_RANDOM].concat();
    for (sizes, key_type) in [((32, 16, 16), CKK_AES), ((0, 32, 4), CKK_AES)] {
        let (mac_len, key_len, iv_len) = sizes;
        let block = openssl_prf(
            "SHA256",
            &master_value,
            &seed,
            2 * (mac_len + key_len + iv_len),
        );
        let template = vec![
            (CKA_CLASS, ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, ul(key_type)),
            (CKA_VALUE_LEN, ul(key_len as CK_ULONG)),
            (CKA_ENCRYPT, TRUE.to_vec()),
            (CKA_SENSITIVE, FALSE.to_vec()),
            (CKA_EXTRACTABLE, TRUE.to_vec()),
        ];
        let (keys, client_iv, server_iv) = key_and_mac(
            &raw,
            s,
            CKM_TLS12_KEY_AND_MAC_DERIVE,
            ours,
            sizes,
            &template,
        )
        .unwrap();
        let (nss_keys, nss_client_iv, nss_server_iv) = key_and_mac(
            &nss,
            ns,
            CKM_TLS12_KEY_AND_MAC_DERIVE,
            theirs,
            sizes,
            &template,
        )
        .unwrap();
        let lens = [mac_len, mac_len, key_len, key_len];
        let mut at = 0;
        for i in 0..4 {
            let part = &block[at..at + lens[i]];
            at += lens[i];
            if lens[i] == 0 {
                // NSS makes an empty MAC secret here; there is none.
                assert_eq!(keys[i], CK_INVALID_HANDLE, "no MAC keys");
                continue;
            }
            assert_eq!(raw.get(s, keys[i], CKA_VALUE).unwrap(), part, "key {i}");
            assert_eq!(nss.get(ns, nss_keys[i], CKA_VALUE).unwrap(), part);
        }
        assert_eq!(
            raw.get(s, keys[0].max(keys[2]), CKA_CLASS).unwrap(),
            ul(CKO_SECRET_KEY)
        );
        if mac_len > 0 {
            assert_eq!(raw.get(s, keys[0], CKA_SIGN).unwrap(), TRUE);
            assert_eq!(
                raw.get(s, keys[0], CKA_KEY_TYPE).unwrap(),
                ul(CKK_GENERIC_SECRET)
            );
        }
        assert_eq!(raw.get(s, keys[2], CKA_KEY_TYPE).unwrap(), ul(key_type));
        assert_eq!(client_iv, &block[at..at + iv_len]);
        assert_eq!(server_iv, &block[at + iv_len..at + 2 * iv_len]);
        assert_eq!((nss_client_iv, nss_server_iv), (client_iv, server_iv));
    }
    // KEY_SAFE_DERIVE writes no IVs.
    let template = vec![
        (CKA_CLASS, ul(CKO_SECRET_KEY)),
        (CKA_KEY_TYPE, ul(CKK_AES)),
        (CKA_VALUE_LEN, ul(16)),
    ];
    let (keys, client_iv, _) = key_and_mac(
        &raw,
        s,
        CKM_TLS12_KEY_SAFE_DERIVE,
        ours,
        (32, 16, 16),
        &template,
    )
    .unwrap();
    assert!(keys.iter().all(|h| *h != 0));
    assert_eq!(client_iv, vec![0; 16]);
    // A key length the template contradicts; a master secret of 47 bytes.
    let mut wrong = template.clone();
    wrong[2] = (CKA_VALUE_LEN, ul(32));
    assert_eq!(
        key_and_mac(
            &raw,
            s,
            CKM_TLS12_KEY_AND_MAC_DERIVE,
            ours,
            (32, 16, 16),
            &wrong
        )
        .err(),
        Some(CKR_TEMPLATE_INCONSISTENT)
    );
    let short = secret(&raw, s, &[1; 47]);
    assert_eq!(
        key_and_mac(
            &raw,
            s,
            CKM_TLS12_KEY_AND_MAC_DERIVE,
            short,
            (32, 16, 16),
            &template
        )
        .err(),
        Some(CKR_KEY_TYPE_INCONSISTENT)
    );
}
