//! TLS 1.2's derivations on the token: its PRF (RFC 5246 §5, P_hash over
//! an HMAC), the master secret from the pre-master secret
//! (CKM_TLS12_MASTER_KEY_DERIVE, its _DH form, and NSS's extended master
//! secret of RFC 7627), the key block (CKM_TLS12_KEY_AND_MAC_DERIVE and
//! KEY_SAFE_DERIVE), the exporter of RFC 5705 (CKM_TLS12_KDF), and the
//! Finished messages' verify_data (CKM_TLS_MAC). The TLS 1.0/1.1 PRF
//! (CKM_TLS_PRF, MD5 with SHA-1) is not offered.

use aws_lc_rs::hmac;
use pkcs11_sys::*;
use zeroize::Zeroizing;

use crate::mechanism::hash;
use crate::mechanism::kdf::{derived_origin, made, template_key_type, wanted_len};
use crate::mechanism::op::{require_key, KeyTypes, SignOp, VerifyOp};
use crate::mechanism::param::{KdfParams, MechanismArg, TlsMasterSeed};
use crate::nss::CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE;
use crate::object::attrs::Attrs;
use crate::object::Generated;
use crate::rv::{Result, Rv};

/// A pre-master secret from RSA key exchange, and every master secret.
const SECRET_LEN: usize = 48;
/// Each hello's random.
const RANDOM_LEN: usize = 32;
/// The most handshake-hash input a Finished MAC buffers.
const MAX_MAC_INPUT: usize = 64 * 1024;
/// The most output one derivation gives.
const MAX_OUTPUT: usize = 64 * 1024;

/// The PRF's HMAC, named by its hash's digest mechanism (TLS 1.2 uses
/// SHA-256 or SHA-384; SHA-512 is allowed too).
fn prf_hmac(prf: CK_MECHANISM_TYPE) -> Result<hmac::Algorithm> {
    match prf {
        CKM_SHA256 | CKM_SHA384 | CKM_SHA512 => hash::by_digest(prf)
            .and_then(|h| h.hash.hmac_algorithm())
            .ok_or(Rv::MechanismParamInvalid),
        _ => Err(Rv::MechanismParamInvalid),
    }
}

/// TLS 1.2's PRF(secret, label, seed), `len` bytes: P_hash(secret, label
/// + seed).
pub fn prf(
    alg: hmac::Algorithm,
    secret: &[u8],
    label: &[u8],
    seed: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(alg, secret);
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    // A(1) = HMAC(secret, label + seed); A(i) = HMAC(secret, A(i - 1)).
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(label);
    ctx.update(seed);
    let mut a = ctx.sign();
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(label);
        ctx.update(seed);
        let block = ctx.sign();
        let take = (len - out.len()).min(block.as_ref().len());
        out.extend_from_slice(&block.as_ref()[..take]);
        a = hmac::sign(&key, a.as_ref());
    }
    out
}

/// A pre-master or master secret's template: a generic secret of 48
/// bytes, or silent on both.
fn require_48_byte_generic_secret(template: &Attrs) -> Result<()> {
    if template_key_type(template)? != CKK_GENERIC_SECRET
        || wanted_len(template, Some(SECRET_LEN))? != SECRET_LEN
    {
        return Err(Rv::TemplateInconsistent);
    }
    Ok(())
}

/// CKM_TLS_PRE_MASTER_KEY_GEN: a client's pre-master secret for RSA key
/// exchange, 48 bytes whose first two are the version its parameter (a
/// CK_VERSION) gives, the rest random.
pub fn pre_master_key(
    mechanism: CK_MECHANISM_TYPE,
    arg: &MechanismArg,
    template: &Attrs,
) -> Result<Generated> {
    let [major, minor] = arg.param[..] else {
        return Err(Rv::MechanismParamInvalid);
    };
    require_48_byte_generic_secret(template)?;
    let mut value = Zeroizing::new(vec![0u8; SECRET_LEN]);
    value[0] = major;
    value[1] = minor;
    crate::engine::random_fill(&mut value[2..])?;
    let mut generated = made(
        mechanism,
        template,
        value.to_vec(),
        crate::object::Origin::Generated,
        false,
    )?;
    if !template.contains(CKA_DERIVE) {
        generated.values.set_bool(CKA_DERIVE, true);
    }
    Ok(generated)
}

/// Whether a master-secret mechanism takes an RSA pre-master secret (48
/// bytes, whose first two are the client's version) rather than a
/// Diffie-Hellman one of any length.
fn takes_rsa_pre_master(mechanism: CK_MECHANISM_TYPE) -> bool {
    matches!(
        mechanism,
        CKM_TLS12_MASTER_KEY_DERIVE | CKM_NSS_TLS_EXTENDED_MASTER_KEY_DERIVE
    )
}

/// The base key's secret: a generic secret allowed to derive.
fn generic_secret(base: &Attrs) -> Result<&[u8]> {
    require_key(
        base,
        CKO_SECRET_KEY,
        KeyTypes::One(CKK_GENERIC_SECRET),
        CKA_DERIVE,
    )?;
    base.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)
}

/// The master secret: a 48-byte generic secret that may sign and verify
/// (the Finished MACs), and derive (the key block), unless the template
/// says otherwise, as NSS makes it.
pub fn master_key(arg: &MechanismArg, base: &Attrs, template: &Attrs) -> Result<Generated> {
    let Some(KdfParams::TlsMaster { prf: alg, seed, .. }) = &arg.kdf else {
        return Err(Rv::MechanismParamInvalid);
    };
    let alg = prf_hmac(*alg)?;
    let pre_master = generic_secret(base)?;
    if takes_rsa_pre_master(arg.ty) && pre_master.len() != SECRET_LEN {
        return Err(Rv::KeyTypeInconsistent);
    }
    require_48_byte_generic_secret(template)?;
    let master = match seed {
        TlsMasterSeed::Randoms {
            client_random,
            server_random,
        } => {
            if client_random.len() != RANDOM_LEN || server_random.len() != RANDOM_LEN {
                return Err(Rv::MechanismParamInvalid);
            }
            let randoms = [client_random.as_slice(), server_random].concat();
            prf(alg, pre_master, b"master secret", &randoms, SECRET_LEN)
        }
        TlsMasterSeed::SessionHash(hash) => {
            // The session hash is the PRF's own hash of the handshake.
            if hash.len() != alg.digest_algorithm().output_len {
                return Err(Rv::MechanismParamInvalid);
            }
            prf(alg, pre_master, b"extended master secret", hash, SECRET_LEN)
        }
    };
    let mut generated = made(
        arg.ty,
        template,
        master.to_vec(),
        derived_origin(&[base]),
        false,
    )?;
    for usage in [CKA_SIGN, CKA_VERIFY, CKA_DERIVE] {
        if !template.contains(usage) {
            generated.values.set_bool(usage, true);
        }
    }
    Ok(generated)
}

/// The client's version a master-secret derivation reports (pVersion):
/// the first two bytes of an RSA pre-master secret. As NSS does, only for
/// a session key the token did not derive (one made by
/// CKM_TLS_PRE_MASTER_KEY_GEN or unwrapped from the client's message);
/// otherwise 0xff.0xff, so that the call reveals no more of a secret than
/// TLS needs. None for the Diffie-Hellman forms, which have no version.
pub fn client_version(mechanism: CK_MECHANISM_TYPE, base: &Attrs) -> Option<CK_VERSION> {
    if !takes_rsa_pre_master(mechanism) {
        return None;
    }
    let derived = base.bool(CKA_LOCAL) != Some(true)
        && base.ulong(CKA_KEY_GEN_MECHANISM) != Some(CK_UNAVAILABLE_INFORMATION);
    let on_token = base.bool(CKA_TOKEN) == Some(true);
    let value = base.get(CKA_VALUE).unwrap_or_default();
    Some(match value {
        [major, minor, ..] if !derived && !on_token => CK_VERSION {
            major: *major,
            minor: *minor,
        },
        _ => CK_VERSION {
            major: 0xff,
            minor: 0xff,
        },
    })
}

/// What CKM_TLS12_KEY_AND_MAC_DERIVE makes: the keys to store, each
/// with its template, in CK_SSL3_KEY_MAT_OUT's order (client MAC secret,
/// server MAC secret, client key, server key; None where the cipher suite
/// has none), and the two IVs.
pub struct KeyMaterial {
    pub keys: [Option<(Attrs, Generated)>; 4],
    pub client_iv: Vec<u8>,
    pub server_iv: Vec<u8>,
}

/// CKM_TLS12_KEY_AND_MAC_DERIVE: the key block PRF(master secret, "key
/// expansion", server_random + client_random) cut into the MAC secrets
/// (generic secrets that sign and verify), the write keys (of the
/// template's type, as long as ulKeySizeInBits says) and the IVs, as RFC
/// 5246 §6.3 orders them. Export suites are refused (TLS 1.2 has none).
pub fn key_material(arg: &MechanismArg, base: &Attrs, template: &Attrs) -> Result<KeyMaterial> {
    let Some(KdfParams::TlsKeyMaterial {
        prf: alg,
        mac_len,
        key_len,
        iv_len,
        export,
        client_random,
        server_random,
        ..
    }) = &arg.kdf
    else {
        return Err(Rv::MechanismParamInvalid);
    };
    let alg = prf_hmac(*alg)?;
    if *export || client_random.len() != RANDOM_LEN || server_random.len() != RANDOM_LEN {
        return Err(Rv::MechanismParamInvalid);
    }
    let master = generic_secret(base)?;
    if master.len() != SECRET_LEN {
        return Err(Rv::KeyTypeInconsistent);
    }
    if *key_len > 0 && wanted_len(template, Some(*key_len))? != *key_len {
        return Err(Rv::TemplateInconsistent);
    }
    let seed = [server_random.as_slice(), client_random].concat();
    let block = prf(
        alg,
        master,
        b"key expansion",
        &seed,
        2 * (mac_len + key_len + iv_len),
    );
    let mut parts: &[u8] = &block;
    let mut take = |n: usize| {
        let (part, rest) = parts.split_at(n);
        parts = rest;
        part.to_vec()
    };
    let origin = derived_origin(&[base]);
    // The MAC secrets keep what the template says of storage and
    // protection; their type and usages are a MAC key's.
    let mut mac_template = Attrs::new();
    for t in [CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE] {
        if let Some(v) = template.get(t) {
            mac_template.set(t, v.to_vec());
        }
    }
    mac_template.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    mac_template.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    mac_template.set_bool(CKA_SIGN, true);
    mac_template.set_bool(CKA_VERIFY, true);
    let mac_key = |value: Vec<u8>| -> Result<Option<(Attrs, Generated)>> {
        if value.is_empty() {
            return Ok(None);
        }
        let made = made(arg.ty, &mac_template, value, origin, false)?;
        Ok(Some((mac_template.clone(), made)))
    };
    let client_mac = mac_key(take(*mac_len))?;
    let server_mac = mac_key(take(*mac_len))?;
    let write_key = |value: Vec<u8>| -> Result<Option<(Attrs, Generated)>> {
        if value.is_empty() {
            return Ok(None);
        }
        let made = made(arg.ty, template, value, origin, false)?;
        Ok(Some((template.clone(), made)))
    };
    let client_key = write_key(take(*key_len))?;
    let server_key = write_key(take(*key_len))?;
    Ok(KeyMaterial {
        keys: [client_mac, server_mac, client_key, server_key],
        client_iv: take(*iv_len),
        server_iv: take(*iv_len),
    })
}

/// CKM_TLS12_KDF: RFC 5705's exporter, PRF(secret, label, client_random +
/// server_random [+ the context's 16-bit length + the context]), as long as
/// the template's CKA_VALUE_LEN.
pub fn kdf(arg: &MechanismArg, base: &Attrs, template: &Attrs) -> Result<Generated> {
    let Some(KdfParams::TlsKdf {
        prf: alg,
        label,
        client_random,
        server_random,
        context,
    }) = &arg.kdf
    else {
        return Err(Rv::MechanismParamInvalid);
    };
    let alg = prf_hmac(*alg)?;
    let secret = generic_secret(base)?;
    if client_random.len() != RANDOM_LEN || server_random.len() != RANDOM_LEN {
        return Err(Rv::MechanismParamInvalid);
    }
    let len = wanted_len(template, None)?;
    if len == 0 || len > MAX_OUTPUT {
        return Err(Rv::TemplateInconsistent);
    }
    let mut seed = [client_random.as_slice(), server_random].concat();
    if let Some(context) = context {
        let context_len = u16::try_from(context.len()).map_err(|_| Rv::MechanismParamInvalid)?;
        seed.extend_from_slice(&context_len.to_be_bytes());
        seed.extend_from_slice(context);
    }
    let value = prf(alg, secret, label, &seed, len);
    made(
        arg.ty,
        template,
        value.to_vec(),
        derived_origin(&[base]),
        false,
    )
}

/// CKM_TLS_MAC: a Finished message's verify_data, PRF(master secret,
/// "client finished" or "server finished", the handshake hash given as
/// data), ulMacLength bytes (12 in TLS 1.2).
struct FinishedMac {
    alg: hmac::Algorithm,
    secret: Zeroizing<Vec<u8>>,
    label: &'static [u8],
    len: usize,
    data: Vec<u8>,
}

impl FinishedMac {
    /// CK_TLS_MAC_PARAMS (prfHashMechanism, ulMacLength, ulServerOrClient:
    /// 1 the server, 2 the client) over a master secret allowed `usage`.
    fn new(arg: &MechanismArg, key: &Attrs, usage: CK_ATTRIBUTE_TYPE) -> Result<FinishedMac> {
        if arg.param.len() != std::mem::size_of::<CK_TLS_MAC_PARAMS>() {
            return Err(Rv::MechanismParamInvalid);
        }
        let alg = prf_hmac(arg.word(0)?)?;
        let len = arg.word(1)? as usize;
        let label: &'static [u8] = match arg.word(2)? {
            1 => b"server finished",
            2 => b"client finished",
            _ => return Err(Rv::MechanismParamInvalid),
        };
        // NSS's floor: no shorter verify_data than TLS 1.2's 12 bytes.
        if !(12..=MAX_OUTPUT).contains(&len) {
            return Err(Rv::MechanismParamInvalid);
        }
        require_key(
            key,
            CKO_SECRET_KEY,
            KeyTypes::One(CKK_GENERIC_SECRET),
            usage,
        )?;
        let secret = key.get(CKA_VALUE).ok_or(Rv::KeyTypeInconsistent)?;
        Ok(FinishedMac {
            alg,
            secret: Zeroizing::new(secret.to_vec()),
            label,
            len,
            data: Vec::new(),
        })
    }

    fn update(&mut self, data: &[u8]) -> Result<()> {
        if self.data.len() + data.len() > MAX_MAC_INPUT {
            return Err(Rv::DataLenRange);
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn mac(&self) -> Zeroizing<Vec<u8>> {
        prf(self.alg, &self.secret, self.label, &self.data, self.len)
    }
}

impl SignOp for FinishedMac {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        FinishedMac::update(self, data)
    }
    fn output_len(&self) -> usize {
        self.len
    }
    fn sign(&mut self) -> Result<Vec<u8>> {
        Ok(self.mac().to_vec())
    }
}

impl VerifyOp for FinishedMac {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        FinishedMac::update(self, data)
    }
    fn verify(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.len {
            return Err(Rv::SignatureLenRange);
        }
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.mac(), signature)
            .map_err(|_| Rv::SignatureInvalid)
    }
}

pub fn mac_sign_op(arg: &MechanismArg, key: &Attrs) -> Result<Box<dyn SignOp>> {
    Ok(Box::new(FinishedMac::new(arg, key, CKA_SIGN)?))
}

pub fn mac_verify_op(arg: &MechanismArg, key: &Attrs) -> Result<Box<dyn VerifyOp>> {
    Ok(Box::new(FinishedMac::new(arg, key, CKA_VERIFY)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More than one HMAC block of output is the blocks in order, and a
    /// shorter request their prefix (the known answers, OpenSSL's, are in
    /// tests/tests/tls.rs).
    #[test]
    fn p_sha256_gives_100_bytes_from_several_blocks() {
        let out = prf(hmac::HMAC_SHA256, b"k", b"l", b"s", 100);
        assert_eq!(out.len(), 100);
        assert_eq!(
            &out[..32],
            prf(hmac::HMAC_SHA256, b"k", b"l", b"s", 32).as_slice()
        );
        assert_ne!(&out[..32], &out[32..64]);
    }
}
