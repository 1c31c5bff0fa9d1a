//! The message API's state: a message cipher with its key and IV counter,
//! a message given in parts, and message signing.

use pkcs11_sys::*;

use std::sync::Arc;

use crate::cache::kept::Kept;
use crate::engine::secret::SecretVec;
use crate::engine::{AeadContext, Direction};
use crate::mechanism::op::{SignOp, SignatureUse, VerifyOp};
use crate::mechanism::param::MechanismArg;
use crate::rv::{Result, Rv};
use crate::session::{operation_key, LoginGate, Output, Session, SessionCell};
use crate::token::Token;

/// The AEADs of the message API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageAead {
    /// AES-GCM (CK_GCM_MESSAGE_PARAMS: IVs the caller gives or has made).
    Gcm,
    /// ChaCha20-Poly1305 (CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS: the
    /// caller's nonce, a 16-byte tag).
    ChaCha20Poly1305,
}

/// A message-based AEAD session (C_MessageEncryptInit...): its key, the
/// counter for generated IVs, and the message being built part by part.
/// The counter starts again with each Init (as NSS's does): the caller's
/// fixed IV bits are what tell one such context from another.
pub struct MessageCipher {
    pub aead: MessageAead,
    pub key: SecretVec,
    /// The key built for each tag length the messages use.
    pub contexts: crate::cache::kept::Kept<crate::engine::AeadContext>,
    pub counter: u64,
    pub pending: Option<PendingMessage>,
    /// Each message decrypted with an always-authenticate key waits for
    /// its own context-specific login.
    pub gate: LoginGate,
}

impl MessageCipher {
    /// A message's IV in `iv`: the caller's as it is (CKG_NO_GENERATE), or
    /// one made here after the caller's first `fixed_bits` (random, or the
    /// next of this key's counter). Only an encrypting side makes IVs, and
    /// never one it made before: a counter that outgrew its free bits is
    /// CKR_KEY_EXHAUSTED.
    pub fn make_iv(
        &mut self,
        iv: &mut [u8],
        fixed_bits: usize,
        generator: CK_GENERATOR_FUNCTION,
        direction: crate::engine::Direction,
    ) -> crate::rv::Result<()> {
        let free_bits = (iv.len() * 8).saturating_sub(fixed_bits);
        match generator {
            CKG_NO_GENERATE => return Ok(()),
            _ if direction == crate::engine::Direction::Decrypt || free_bits == 0 => {
                return Err(Rv::MechanismParamInvalid)
            }
            CKG_GENERATE_RANDOM => {
                let mut fresh = vec![0u8; iv.len()];
                crate::engine::random_fill(&mut fresh)?;
                set_free_bits(iv, &fresh, fixed_bits);
            }
            CKG_GENERATE | CKG_GENERATE_COUNTER => {
                let next = self.counter.checked_add(1).ok_or(Rv::KeyExhausted)?;
                if free_bits < 64 && next >> free_bits != 0 {
                    return Err(Rv::KeyExhausted);
                }
                self.counter = next;
                let mut count = vec![0u8; iv.len()];
                let n = iv.len().min(8);
                let len = iv.len();
                count[len - n..].copy_from_slice(&next.to_be_bytes()[8 - n..]);
                set_free_bits(iv, &count, fixed_bits);
            }
            _ => return Err(Rv::MechanismParamInvalid),
        }
        Ok(())
    }
}

/// Sets the bits after the first `fixed` bits of `iv` from `source`.
fn set_free_bits(iv: &mut [u8], source: &[u8], fixed: usize) {
    for (i, (b, s)) in iv.iter_mut().zip(source).enumerate() {
        let first_free_bit = (fixed.saturating_sub(i * 8)).min(8);
        let keep = if first_free_bit == 0 {
            0
        } else {
            0xffu8 << (8 - first_free_bit)
        };
        *b = (*b & keep) | (*s & !keep);
    }
}

/// A message given in parts (C_EncryptMessageBegin/Next).
pub struct PendingMessage {
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub data: crate::engine::secret::SecretVec,
}

/// Message-based signing or verification: the mechanism and key each
/// message uses, and the operation of a message given in parts.
pub struct MessageSign {
    pub mechanism: crate::mechanism::param::MechanismArg,
    pub key: std::sync::Arc<crate::object::attrs::Attrs>,
    pub sign: Option<Box<dyn SignOp>>,
    pub verify: Option<Box<dyn VerifyOp>>,
    /// Each message signed with an always-authenticate key waits for its
    /// own context-specific login.
    pub gate: LoginGate,
}

/// A message's parameter as the caller gave it (CK_GCM_MESSAGE_PARAMS or
/// CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS), its IV and tag buffers as
/// slices.
pub struct MessageParams<'a> {
    pub aead: MessageAead,
    pub iv: &'a mut [u8],
    pub fixed_bits: usize,
    pub generator: CK_ULONG,
    pub tag: &'a mut [u8],
}

impl MessageParams<'_> {
    /// The message's IV: the caller's, or one made here after the caller's
    /// fixed bits (random or counting) and written back to the caller. The
    /// parameter must be of the operation's AEAD.
    pub fn iv(&mut self, cipher: &mut MessageCipher, direction: Direction) -> Result<Vec<u8>> {
        if self.aead != cipher.aead {
            return Err(Rv::MechanismParamInvalid);
        }
        cipher.make_iv(self.iv, self.fixed_bits, self.generator, direction)?;
        Ok(self.iv.to_vec())
    }
}

fn context(cipher: &mut MessageCipher, tag_len: usize) -> Result<Arc<AeadContext>> {
    let key = &cipher.key;
    let aead = cipher.aead;
    cipher
        .contexts
        .get_or_build(key, tag_len as u64, || match aead {
            MessageAead::Gcm => AeadContext::gcm(key, tag_len),
            MessageAead::ChaCha20Poly1305 => AeadContext::chacha20_poly1305(key),
        })
}

/// Seals a message, handing the tag back in the caller's tag buffer.
fn seal_apart(
    context: &AeadContext,
    iv: &[u8],
    aad: &[u8],
    plaintext: Vec<u8>,
    tag: &mut [u8],
) -> Result<SecretVec> {
    let len = plaintext.len();
    let mut sealed = context.seal_in_place(iv, aad, plaintext)?;
    let sealed_tag = sealed.get(len..).ok_or(Rv::GeneralError)?;
    if sealed_tag.len() != tag.len() {
        return Err(Rv::GeneralError);
    }
    tag.copy_from_slice(sealed_tag);
    sealed.truncate(len);
    Ok(SecretVec::from(sealed))
}

/// Opens a message whose tag comes apart.
fn open_apart(
    context: &AeadContext,
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<SecretVec> {
    let sealed = SecretVec::from([ciphertext, tag].concat());
    context.open_in_place(iv, aad, sealed)
}

type MessageCipherSlot = fn(&mut Session) -> &mut Option<MessageCipher>;

fn encrypt_slot(s: &mut Session) -> &mut Option<MessageCipher> {
    &mut s.message_encrypt
}

fn decrypt_slot(s: &mut Session) -> &mut Option<MessageCipher> {
    &mut s.message_decrypt
}

/// C_MessageEncryptInit / C_MessageDecryptInit.
pub fn cipher_init(
    session: &SessionCell,
    token: &Token,
    ty: Result<CK_MECHANISM_TYPE>,
    key: CK_OBJECT_HANDLE,
    direction: Direction,
) -> Result<()> {
    let ty = ty?;
    let flag = if direction == Direction::Encrypt {
        CKF_MESSAGE_ENCRYPT
    } else {
        CKF_MESSAGE_DECRYPT
    };
    if crate::mechanism::find(ty)?.info_flags() & flag == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    if slot(&mut session.lock()).is_some() {
        return Err(Rv::OperationActive);
    }
    let key = operation_key(session, token, key)?;
    let usage = if direction == Direction::Encrypt {
        CKA_ENCRYPT
    } else {
        CKA_DECRYPT
    };
    let (aead, value) = match ty {
        CKM_CHACHA20_POLY1305 => (
            MessageAead::ChaCha20Poly1305,
            SecretVec::from(crate::mechanism::chacha::key_value(&key, usage)?.to_vec()),
        ),
        _ => (
            MessageAead::Gcm,
            SecretVec::from(crate::mechanism::aes::message_key(&key, direction)?.to_vec()),
        ),
    };
    *slot(&mut session.lock()) = Some(MessageCipher {
        aead,
        key: value,
        contexts: Kept::default(),
        counter: 0,
        pending: None,
        gate: LoginGate::for_key(&key, direction == Direction::Decrypt),
    });
    Ok(())
}

/// One whole message: C_EncryptMessage / C_DecryptMessage.
pub fn cipher_message<O: Output>(
    s: &mut Session,
    direction: Direction,
    params: Result<MessageParams<'_>>,
    aad: Result<&[u8]>,
    input: Result<&[u8]>,
    output: Result<O>,
) -> Result<()> {
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    let cipher = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if cipher.pending.is_some() {
        return Err(Rv::OperationActive);
    }
    cipher.gate.pass()?;
    let (mut params, aad, input, mut output) = (params?, aad?, input?, output?);
    // The ciphertext is as long as the plaintext (the tag goes apart).
    if let Err(answer) = output.reserve(input.len()) {
        return answer;
    }
    cipher.gate.close();
    let iv = params.iv(cipher, direction)?;
    let tag = params.tag;
    let context = context(cipher, tag.len())?;
    let result = if direction == Direction::Encrypt {
        seal_apart(&context, &iv, aad, input.to_vec(), tag)?
    } else {
        open_apart(&context, &iv, aad, input, tag)?
    };
    output.write(&result)
}

pub fn cipher_begin(
    s: &mut Session,
    direction: Direction,
    params: Result<MessageParams<'_>>,
    aad: Result<&[u8]>,
) -> Result<()> {
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    let cipher = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if cipher.pending.is_some() {
        return Err(Rv::OperationActive);
    }
    cipher.gate.pass()?;
    let (mut params, aad) = (params?, aad?);
    let iv = params.iv(cipher, direction)?;
    // The message begun is the use its login authorised.
    cipher.gate.close();
    cipher.pending = Some(PendingMessage {
        iv,
        aad: aad.to_vec(),
        data: SecretVec::default(),
    });
    Ok(())
}

/// A part of a message; the whole comes out with the last part (AES-GCM
/// checks the tag over everything before releasing any plaintext).
pub fn cipher_next<O: Output>(
    s: &mut Session,
    direction: Direction,
    params: Result<MessageParams<'_>>,
    input: Result<&[u8]>,
    output: Result<O>,
    flags: CK_FLAGS,
) -> Result<()> {
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    let cipher = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let pending = cipher.pending.as_ref().ok_or(Rv::OperationNotInitialized)?;
    let (input, mut output) = (input?, output?);
    let last = flags & CKF_END_OF_MESSAGE != 0;
    // Only the last part has output (the whole message's).
    let need = if last {
        pending.data.len() + input.len()
    } else {
        0
    };
    if need > 0 {
        if let Err(answer) = output.reserve(need) {
            return answer;
        }
    }
    let pending = cipher.pending.as_mut().ok_or(Rv::OperationNotInitialized)?;
    pending.data.extend_from_slice(input);
    if !last {
        output.set_len(0);
        return Ok(());
    }
    let message = cipher.pending.take().ok_or(Rv::OperationNotInitialized)?;
    // The parameter is needed now, for its tag.
    let tag = params?.tag;
    let context = context(cipher, tag.len())?;
    let result = if direction == Direction::Encrypt {
        let plaintext = message.data.into_inner();
        seal_apart(&context, &message.iv, &message.aad, plaintext, tag)?
    } else {
        open_apart(&context, &message.iv, &message.aad, &message.data, tag)?
    };
    output.write(&result)
}

/// C_MessageEncryptFinal / C_MessageDecryptFinal.
pub fn cipher_final(s: &mut Session, direction: Direction) -> Result<()> {
    let slot: MessageCipherSlot = if direction == Direction::Encrypt {
        encrypt_slot
    } else {
        decrypt_slot
    };
    slot(s).take().ok_or(Rv::OperationNotInitialized)?;
    Ok(())
}

type MessageSignSlot = fn(&mut Session) -> &mut Option<MessageSign>;

fn sign_slot(s: &mut Session) -> &mut Option<MessageSign> {
    &mut s.message_sign
}

fn verify_slot(s: &mut Session) -> &mut Option<MessageSign> {
    &mut s.message_verify
}

fn signing_slot(side: SignatureUse) -> MessageSignSlot {
    match side {
        SignatureUse::Sign => sign_slot,
        SignatureUse::Verify => verify_slot,
    }
}

/// C_MessageSignInit / C_MessageVerifyInit: the mechanism and key every
/// message will use, checked now by building the operation once.
pub fn sign_init(
    session: &SessionCell,
    token: &Token,
    arg: Result<MechanismArg>,
    key: CK_OBJECT_HANDLE,
    side: SignatureUse,
) -> Result<()> {
    let arg = arg?;
    let flag = match side {
        SignatureUse::Sign => CKF_MESSAGE_SIGN,
        SignatureUse::Verify => CKF_MESSAGE_VERIFY,
    };
    if crate::mechanism::find(arg.ty)?.info_flags() & flag == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let slot = signing_slot(side);
    if slot(&mut session.lock()).is_some() {
        return Err(Rv::OperationActive);
    }
    let key = operation_key(session, token, key)?;
    match side {
        SignatureUse::Sign => {
            crate::mechanism::sign_op(&arg, &key, &mut Default::default())?;
        }
        SignatureUse::Verify => {
            crate::mechanism::verify_op(&arg, &key, &mut Default::default())?;
        }
    }
    let gate = LoginGate::for_key(&key, side == SignatureUse::Sign);
    *slot(&mut session.lock()) = Some(MessageSign {
        mechanism: arg,
        key,
        sign: None,
        verify: None,
        gate,
    });
    Ok(())
}

/// C_MessageSignFinal / C_MessageVerifyFinal.
pub fn sign_final(s: &mut Session, side: SignatureUse) -> Result<()> {
    signing_slot(side)(s)
        .take()
        .ok_or(Rv::OperationNotInitialized)?;
    Ok(())
}

/// The session's message signing or verification context, with no message
/// given in parts under way.
fn idle_message(s: &mut Session, side: SignatureUse) -> Result<&mut MessageSign> {
    let ms = signing_slot(side)(s)
        .as_mut()
        .ok_or(Rv::OperationNotInitialized)?;
    if ms.sign.is_some() || ms.verify.is_some() {
        return Err(Rv::OperationActive);
    }
    ms.gate.pass()?;
    Ok(ms)
}

/// A message given in more than one part: refused, as an Update is, for a
/// mechanism that is single-part only.
fn more_parts(mechanism: &MechanismArg) -> Result<()> {
    if crate::mechanism::find(mechanism.ty)?.single_part_only() {
        return Err(Rv::OperationNotInitialized);
    }
    Ok(())
}

/// C_SignMessage: one message, its own operation.
pub fn sign_message<O: Output>(
    s: &mut Session,
    data: Result<&[u8]>,
    signature: Result<O>,
) -> Result<()> {
    let ms = idle_message(s, SignatureUse::Sign)?;
    let mut op = crate::mechanism::sign_op(&ms.mechanism, &ms.key, &mut Default::default())?;
    let (result, answered_without_signing) =
        crate::session::deliver_signature(&mut *op, Some(data?), signature);
    if !answered_without_signing {
        ms.gate.close();
    }
    result
}

/// C_SignMessageBegin / C_VerifyMessageBegin.
pub fn message_begin(s: &mut Session, side: SignatureUse) -> Result<()> {
    let ms = idle_message(s, side)?;
    match side {
        SignatureUse::Sign => {
            ms.sign = Some(crate::mechanism::sign_op(
                &ms.mechanism,
                &ms.key,
                &mut Default::default(),
            )?);
            // The message begun is the use its login authorised.
            ms.gate.close();
        }
        SignatureUse::Verify => {
            ms.verify = Some(crate::mechanism::verify_op(
                &ms.mechanism,
                &ms.key,
                &mut Default::default(),
            )?);
        }
    }
    Ok(())
}

/// C_SignMessageNext: another part (no signature buffer), or the last.
pub fn sign_message_next<O: Output>(
    s: &mut Session,
    data: Result<&[u8]>,
    signature: Option<Result<O>>,
) -> Result<()> {
    let ms = sign_slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let op = ms.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
    let data = data?;
    let Some(signature) = signature else {
        let result = more_parts(&ms.mechanism).and_then(|()| op.update(data));
        if result.is_err() {
            ms.sign = None;
        }
        return result;
    };
    let (result, keep) = crate::session::deliver_signature(&mut **op, Some(data), signature);
    if !keep {
        ms.sign = None;
    }
    result
}

/// C_VerifyMessage: one message, its own operation.
pub fn verify_message(s: &mut Session, data: Result<&[u8]>, sig: Result<&[u8]>) -> Result<()> {
    let ms = idle_message(s, SignatureUse::Verify)?;
    let mut op = crate::mechanism::verify_op(&ms.mechanism, &ms.key, &mut Default::default())?;
    let (data, sig) = (data?, sig?);
    op.update(data)?;
    op.verify(sig)
}

/// C_VerifyMessageNext: another part (no signature), or the last.
pub fn verify_message_next(
    s: &mut Session,
    data: Result<&[u8]>,
    sig: Option<Result<&[u8]>>,
) -> Result<()> {
    let ms = verify_slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let op = ms.verify.as_mut().ok_or(Rv::OperationNotInitialized)?;
    let data = data?;
    let Some(sig) = sig else {
        let result = more_parts(&ms.mechanism).and_then(|()| op.update(data));
        if result.is_err() {
            ms.verify = None;
        }
        return result;
    };
    op.update(data)?;
    let result = op.verify(sig?);
    ms.verify = None;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_iv_bits_keep_the_fixed_prefix() {
        let mut iv = [0xaa; 12];
        set_free_bits(&mut iv, &[0x55; 12], 12);
        assert_eq!(iv[0], 0xaa);
        assert_eq!(iv[1], 0xa5);
        assert_eq!(&iv[2..], &[0x55; 10]);
    }
}
