//! Entry points of the cryptographic operations and key generation.

use pkcs11_sys::*;

use super::ptr::OutBuf;
use super::util::{bytes, items_mut, mechanism, out, template, with_module};
use crate::mechanism;
use crate::session::{self, decrypt_slot, encrypt_slot, Output, Session};

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        session::start(
            &session,
            token,
            arg,
            hKey,
            CKF_SIGN,
            |s: &mut Session| &mut s.sign,
            mechanism::sign_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's data and signature buffer, of the lengths it
    // gives.
    let (data, signature) = unsafe {
        (
            bytes(pData, ulDataLen),
            OutBuf::new(pSignature, pulSignatureLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::sign(&mut s, data, signature)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's part, of the length it gives.
    let part = unsafe { bytes(pPart, ulPartLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::sign_update(&mut s, part)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: CK_BYTE_PTR,
    pulSignatureLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's signature buffer and length.
    let signature = unsafe { OutBuf::new(pSignature, pulSignatureLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::sign_final(&mut s, signature)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        session::start(
            &session,
            token,
            arg,
            hKey,
            CKF_VERIFY,
            |s: &mut Session| &mut s.verify,
            mechanism::verify_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's data and signature, of the lengths it gives.
    let (data, sig) = unsafe { (bytes(pData, ulDataLen), bytes(pSignature, ulSignatureLen)) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::verify(&mut s, data, sig)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's part, of the length it gives.
    let part = unsafe { bytes(pPart, ulPartLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::verify_update(&mut s, part)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: CK_BYTE_PTR,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    // SAFETY: the caller's signature, of the length it gives.
    let sig = unsafe { bytes(pSignature, ulSignatureLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::verify_final(&mut s, sig)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulCount: CK_ULONG,
    phKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointers.
        let (arg, attrs, handle) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pTemplate, ulCount)?,
                out(phKey)?,
            )
        };
        let generated = mechanism::generate_key(&arg, &attrs)?;
        *handle = token.store_generated(acc, attrs, generated)?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    pPublicKeyTemplate: CK_ATTRIBUTE_PTR,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: CK_ATTRIBUTE_PTR,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: CK_OBJECT_HANDLE_PTR,
    phPrivateKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (acc, token) = m.access(hSession)?;
        // SAFETY: caller's pointers.
        let (arg, public, private, public_out, private_out) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?,
                template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?,
                out(phPublicKey)?,
                out(phPrivateKey)?,
            )
        };
        let (public_made, private_made) = mechanism::generate_key_pair(&arg, &public, &private)?;
        let (h_public, h_private) =
            token.store_generated_pair(acc, (public, public_made), (private, private_made))?;
        *public_out = h_public;
        *private_out = h_private;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        session::start(
            &session,
            token,
            arg,
            hKey,
            CKF_ENCRYPT,
            encrypt_slot,
            mechanism::encrypt_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    hSession: CK_SESSION_HANDLE,
    pData: CK_BYTE_PTR,
    ulDataLen: CK_ULONG,
    pEncryptedData: CK_BYTE_PTR,
    pulEncryptedDataLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's input and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pData, ulDataLen),
            OutBuf::new(pEncryptedData, pulEncryptedDataLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::cipher(&mut s, encrypt_slot, input, output)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: CK_BYTE_PTR,
    ulPartLen: CK_ULONG,
    pEncryptedPart: CK_BYTE_PTR,
    pulEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (part, output) = unsafe {
        (
            bytes(pPart, ulPartLen),
            OutBuf::new(pEncryptedPart, pulEncryptedPartLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::cipher_update(&mut s, encrypt_slot, part, output).map(|_| ())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastEncryptedPart: CK_BYTE_PTR,
    pulLastEncryptedPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's output buffer and length.
    let output = unsafe { OutBuf::new(pLastEncryptedPart, pulLastEncryptedPartLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::cipher_final(&mut s, encrypt_slot, output)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: the caller's mechanism, read and copied here.
    let arg = unsafe { mechanism(pMechanism) };
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        session::start(
            &session,
            token,
            arg,
            hKey,
            CKF_DECRYPT,
            decrypt_slot,
            mechanism::decrypt_op,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: CK_BYTE_PTR,
    ulEncryptedDataLen: CK_ULONG,
    pData: CK_BYTE_PTR,
    pulDataLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's input and output buffer, of the lengths it gives.
    let (input, output) = unsafe {
        (
            bytes(pEncryptedData, ulEncryptedDataLen),
            OutBuf::new(pData, pulDataLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::cipher(&mut s, decrypt_slot, input, output)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: CK_BYTE_PTR,
    ulEncryptedPartLen: CK_ULONG,
    pPart: CK_BYTE_PTR,
    pulPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's part and output buffer, of the lengths it gives.
    let (part, output) = unsafe {
        (
            bytes(pEncryptedPart, ulEncryptedPartLen),
            OutBuf::new(pPart, pulPartLen),
        )
    };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::cipher_update(&mut s, decrypt_slot, part, output).map(|_| ())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: CK_BYTE_PTR,
    pulLastPartLen: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: the caller's output buffer and length.
    let output = unsafe { OutBuf::new(pLastPart, pulLastPartLen) };
    with_module(|m| {
        let (session, _) = m.session(hSession)?;
        let mut s = session.lock();
        session::cipher_final(&mut s, decrypt_slot, output)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hBaseKey: CK_OBJECT_HANDLE,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulAttributeCount: CK_ULONG,
    phKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, acc, token) = m.session_access(hSession)?;
        // SAFETY: the caller's mechanism and template.
        let (arg, attrs) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pTemplate, ulAttributeCount)?,
            )
        };
        if let Some(crate::mechanism::param::KdfParams::TlsKeyMaterial {
            iv_len, out: at, ..
        }) = arg.kdf
        {
            // Its keys go into the parameter's CK_SSL3_KEY_MAT_OUT; phKey
            // is unused.
            // SAFETY: the caller's structure, checked.
            let returned = unsafe { out(at as *mut CK_SSL3_KEY_MAT_OUT)? };
            let (keys, client_iv, server_iv) =
                session::derive_key_material(&session, acc, token, &arg, hBaseKey, &attrs)?;
            [
                returned.hClientMacSecret,
                returned.hServerMacSecret,
                returned.hClientKey,
                returned.hServerKey,
            ] = keys;
            if iv_len > 0 {
                // SAFETY: the caller's IV buffers, of the IV size it gave.
                unsafe {
                    items_mut(returned.pIVClient, iv_len)?.copy_from_slice(&client_iv);
                    items_mut(returned.pIVServer, iv_len)?.copy_from_slice(&server_iv);
                }
            }
            return Ok(());
        }
        // SAFETY: the caller's handle location.
        let handle = unsafe { out(phKey)? };
        // A TLS master secret's parameter carries where the client's
        // version goes (NULL: nowhere).
        let version_out = match &arg.kdf {
            Some(crate::mechanism::param::KdfParams::TlsMaster { version_out, .. }) => {
                *version_out as *mut CK_VERSION
            }
            _ => std::ptr::null_mut(),
        };
        let (key, version) = session::derive_key(&session, acc, token, arg, hBaseKey, attrs)?;
        *handle = key;
        if let (Some(version), false) = (version, version_out.is_null()) {
            // SAFETY: the caller's CK_VERSION, checked.
            *unsafe { out(version_out)? } = version;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hWrappingKey: CK_OBJECT_HANDLE,
    hKey: CK_OBJECT_HANDLE,
    pWrappedKey: CK_BYTE_PTR,
    pulWrappedKeyLen: CK_ULONG_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, token) = m.session(hSession)?;
        // SAFETY: the caller's mechanism, and its buffer and length.
        let (arg, mut wrapped) = unsafe {
            (
                mechanism(pMechanism)?,
                OutBuf::new(pWrappedKey, pulWrappedKeyLen)?,
            )
        };
        let wrapping = session::wrap_key(&session, token, &arg, hWrappingKey, hKey)?;
        if let Err(answer) = wrapped.reserve(wrapping.output_len()) {
            return answer;
        }
        wrapped.deliver(&wrapping.run()?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: CK_MECHANISM_PTR,
    hUnwrappingKey: CK_OBJECT_HANDLE,
    pWrappedKey: CK_BYTE_PTR,
    ulWrappedKeyLen: CK_ULONG,
    pTemplate: CK_ATTRIBUTE_PTR,
    ulAttributeCount: CK_ULONG,
    phKey: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    with_module(|m| {
        let (session, acc, token) = m.session_access(hSession)?;
        // SAFETY: the caller's mechanism, wrapped key, template and handle
        // location.
        let (arg, wrapped, attrs, handle) = unsafe {
            (
                mechanism(pMechanism)?,
                bytes(pWrappedKey, ulWrappedKeyLen)?,
                template(pTemplate, ulAttributeCount)?,
                out(phKey)?,
            )
        };
        *handle = session::unwrap_key(&session, acc, token, &arg, hUnwrappingKey, wrapped, &attrs)?;
        Ok(())
    })
}
