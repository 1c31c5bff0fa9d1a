//! The key calls and their policy: C_WrapKey, C_UnwrapKey, C_DeriveKey.

use pkcs11_sys::*;

use crate::mechanism::op::{CipherOp, CipherUse, Part};
use crate::mechanism::param::{HkdfSalt, KdfParams, MechanismArg};
use crate::rv::Rv;
use crate::session::{operation_key, SessionCell};

/// A key to wrap, checked against the policy C_WrapKey enforces, and the
/// wrapping cipher set up for it.
pub struct Wrapping {
    op: Box<dyn CipherOp>,
    plaintext: zeroize::Zeroizing<Vec<u8>>,
}

impl Wrapping {
    /// The wrapped key's length, at most.
    pub fn output_len(&self) -> usize {
        self.op.output_len(self.plaintext.len(), Part::Last)
    }

    /// The wrapped key. A key the mechanism cannot hold (too long for an
    /// RSA block, too short for RFC 3394) is CKR_KEY_SIZE_RANGE, C_WrapKey's
    /// code for it.
    pub fn run(mut self) -> crate::rv::Result<Vec<u8>> {
        run_cipher(&mut *self.op, &self.plaintext).map_err(|e| match e {
            Rv::DataLenRange | Rv::DataInvalid => Rv::KeySizeRange,
            other => other,
        })
    }
}

/// Runs a wrapping cipher over all of `input` at once.
fn run_cipher(op: &mut dyn CipherOp, input: &[u8]) -> crate::rv::Result<Vec<u8>> {
    let mut out = op.update(input)?;
    out.extend_from_slice(&op.finish()?);
    Ok(out)
}

/// A handle error about a wrapping key says so.
fn wrapping_key_error(e: Rv, invalid: Rv) -> Rv {
    if e == Rv::KeyHandleInvalid {
        invalid
    } else {
        e
    }
}

/// C_WrapKey's checks: the mechanism wraps, the key is extractable, and a
/// key marked CKA_WRAP_WITH_TRUSTED goes only under a CKA_TRUSTED key.
pub fn wrap_key(
    session: &SessionCell,
    token: &crate::token::Token,
    arg: &MechanismArg,
    wrapping_key: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> crate::rv::Result<Wrapping> {
    let found = crate::mechanism::find(arg.ty)?;
    if found.flags & CKF_WRAP == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let wrapping = operation_key(session, token, wrapping_key)
        .map_err(|e| wrapping_key_error(e, Rv::WrappingKeyHandleInvalid))?;
    let key_handle = key;
    let key = operation_key(session, token, key_handle)?;
    // Only secret and private keys are wrapped (a public key has no
    // CKA_EXTRACTABLE to refuse it by).
    if !matches!(key.ulong(CKA_CLASS), Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY)) {
        return Err(Rv::KeyNotWrappable);
    }
    if key.bool(CKA_EXTRACTABLE) != Some(true) {
        return Err(Rv::KeyUnextractable);
    }
    token.check_wrappable(key_handle)?;
    if key.bool(CKA_WRAP_WITH_TRUSTED) == Some(true) && wrapping.bool(CKA_TRUSTED) != Some(true) {
        return Err(Rv::KeyNotWrappable);
    }
    let mut plaintext = crate::mechanism::pkcs8::key_bytes(&key)?;
    if let Some(block) = found.wrap_block() {
        // Into a buffer of the final size: growing the old one in place
        // could leave a copy of the key in memory it frees.
        let len = plaintext.len().next_multiple_of(block);
        let mut padded = zeroize::Zeroizing::new(Vec::with_capacity(len));
        padded.extend_from_slice(&plaintext);
        padded.resize(len, 0);
        plaintext = padded;
    }
    let op = crate::mechanism::cipher_op(arg, &wrapping, CipherUse::Wrap, &mut Default::default())?;
    Ok(Wrapping { op, plaintext })
}

/// C_UnwrapKey: the key inside `wrapped`, made an object of the template
/// (an unwrapped key is an imported one: the checks and defaults of
/// C_CreateObject apply).
pub fn unwrap_key(
    session: &SessionCell,
    acc: crate::token::Access,
    token: &crate::token::Token,
    arg: &MechanismArg,
    unwrapping_key: CK_OBJECT_HANDLE,
    wrapped: &[u8],
    template: &crate::object::attrs::Attrs,
) -> crate::rv::Result<CK_OBJECT_HANDLE> {
    let found = crate::mechanism::find(arg.ty)?;
    if found.flags & CKF_UNWRAP == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let unwrapping = operation_key(session, token, unwrapping_key)
        .map_err(|e| wrapping_key_error(e, Rv::UnwrappingKeyHandleInvalid))?;
    let mut op =
        crate::mechanism::cipher_op(arg, &unwrapping, CipherUse::Unwrap, &mut Default::default())?;
    let plaintext =
        zeroize::Zeroizing::new(run_cipher(&mut *op, wrapped).map_err(|e| match e {
            Rv::EncryptedDataInvalid => Rv::WrappedKeyInvalid,
            Rv::EncryptedDataLenRange | Rv::DataLenRange => Rv::WrappedKeyLenRange,
            other => other,
        })?);
    let value = found.unwrapped_value(&plaintext, template);
    let key = crate::mechanism::pkcs8::unwrapped_key(value, template)?;
    token.create_object(acc, key)
}

/// C_DeriveKey: an HKDF salt given as a key handle is that secret key's
/// value; the derived key is stored by the template. Returns its handle
/// and, for a TLS master secret from an RSA pre-master secret, the
/// client's version the caller asked for.
pub fn derive_key(
    session: &SessionCell,
    acc: crate::token::Access,
    token: &crate::token::Token,
    mut arg: MechanismArg,
    base_key: CK_OBJECT_HANDLE,
    template: crate::object::attrs::Attrs,
) -> crate::rv::Result<(CK_OBJECT_HANDLE, Option<CK_VERSION>)> {
    if crate::mechanism::find(arg.ty)?.flags & CKF_DERIVE == 0 {
        return Err(Rv::MechanismInvalid);
    }
    if let Some(KdfParams::Hkdf { salt, .. }) = &mut arg.kdf {
        if let HkdfSalt::Key(h) = *salt {
            let key = operation_key(session, token, h).map_err(|_| Rv::MechanismParamInvalid)?;
            if key.ulong(CKA_CLASS) != Some(CKO_SECRET_KEY) {
                return Err(Rv::MechanismParamInvalid);
            }
            *salt = HkdfSalt::Data(key.get(CKA_VALUE).unwrap_or_default().to_vec());
        }
    }
    let base = operation_key(session, token, base_key)?;
    // CKM_CONCATENATE_BASE_AND_KEY's parameter is the other key's handle.
    let other = match arg.ty {
        CKM_CONCATENATE_BASE_AND_KEY => {
            if arg.param.len() != std::mem::size_of::<CK_OBJECT_HANDLE>() {
                return Err(Rv::MechanismParamInvalid);
            }
            let h = crate::mechanism::param::param_word(&arg.param, 0)?;
            Some(operation_key(session, token, h)?)
        }
        _ => None,
    };
    let derived = crate::mechanism::derive_key(&arg, &base, other.as_deref(), &template)?;
    let version = crate::mechanism::tls::client_version(arg.ty, &base);
    Ok((token.store_generated(acc, template, derived)?, version))
}

/// C_DeriveKey with CKM_TLS12_KEY_AND_MAC_DERIVE (or KEY_SAFE_DERIVE): the
/// handles of the keys made, in CK_SSL3_KEY_MAT_OUT's order
/// (CK_INVALID_HANDLE where the suite has none), and the client's and the
/// server's IV. All the keys are stored, or none.
pub fn derive_key_material(
    session: &SessionCell,
    acc: crate::token::Access,
    token: &crate::token::Token,
    arg: &MechanismArg,
    base_key: CK_OBJECT_HANDLE,
    template: &crate::object::attrs::Attrs,
) -> crate::rv::Result<([CK_OBJECT_HANDLE; 4], Vec<u8>, Vec<u8>)> {
    if crate::mechanism::find(arg.ty)?.flags & CKF_DERIVE == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let base = operation_key(session, token, base_key)?;
    let material = crate::mechanism::tls::key_material(arg, &base, template)?;
    let mut handles = [CK_INVALID_HANDLE; 4];
    for (slot, key) in handles.iter_mut().zip(material.keys) {
        let Some((key_template, generated)) = key else {
            continue;
        };
        match token.store_generated(acc, key_template, generated) {
            Ok(h) => *slot = h,
            Err(e) => {
                for h in handles.iter().filter(|h| **h != CK_INVALID_HANDLE) {
                    let _ = token.destroy_object(acc, *h);
                }
                return Err(e);
            }
        }
    }
    Ok((handles, material.client_iv, material.server_iv))
}
