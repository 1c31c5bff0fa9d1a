//! A session's own state: its slot, its mode and the operations under way.

use pkcs11_sys::*;

use crate::mechanism::digest::DigestOp;
use crate::mechanism::op::{CipherOp, CipherUse, Part, SignOp, VerifyOp};
use crate::mechanism::param::{HkdfSalt, KdfParams, MechanismArg};
use crate::rv::Rv;

/// An operation under way, and whether an `…Update` call started its
/// multi-part form (after which the single-part call is not allowed).
pub struct Active<T: ?Sized> {
    pub op: Box<T>,
    pub multi_part: bool,
    /// The mechanism allows single-part calls only.
    single_part_only: bool,
}

impl<T: ?Sized> Active<T> {
    pub fn new(op: Box<T>, single_part_only: bool) -> Active<T> {
        Active {
            op,
            multi_part: false,
            single_part_only,
        }
    }

    /// An `…Update` call begins the multi-part form. A mechanism that is
    /// single-part only refuses with CKR_OPERATION_NOT_INITIALIZED (as NSS
    /// and SoftHSMv2 answer); the caller then ends the operation, as every
    /// failed Update does.
    pub fn begin_parts(&mut self) -> crate::rv::Result<()> {
        if self.single_part_only {
            return Err(crate::rv::Rv::OperationNotInitialized);
        }
        self.multi_part = true;
        Ok(())
    }
}

/// A search begun by C_FindObjectsInit.
pub struct FindOp {
    handles: std::vec::IntoIter<CK_OBJECT_HANDLE>,
}

impl FindOp {
    pub fn new(handles: Vec<CK_OBJECT_HANDLE>) -> FindOp {
        FindOp {
            handles: handles.into_iter(),
        }
    }

    pub fn next_batch(&mut self, max: usize) -> Vec<CK_OBJECT_HANDLE> {
        self.handles.by_ref().take(max).collect()
    }
}

/// A session as the module's table holds it. The slot and the access it
/// was opened with never change, so they are read without taking its lock
/// (one lock less on every call).
pub struct SessionCell {
    pub slot: CK_SLOT_ID,
    pub rw: bool,
    state: parking_lot::Mutex<Session>,
}

impl SessionCell {
    pub fn new(slot: CK_SLOT_ID, rw: bool) -> SessionCell {
        SessionCell {
            slot,
            rw,
            state: parking_lot::Mutex::new(Session::new()),
        }
    }

    pub fn lock(&self) -> parking_lot::MutexGuard<'_, Session> {
        self.state.lock()
    }
}

/// What a session does: the operations under way.
pub struct Session {
    pub find: Option<FindOp>,
    pub digest: Option<DigestOp>,
    pub sign: Option<Active<dyn SignOp>>,
    pub verify: Option<Active<dyn VerifyOp>>,
    pub encrypt: Option<Active<dyn CipherOp>>,
    pub decrypt: Option<Active<dyn CipherOp>>,
    pub message_encrypt: Option<MessageCipher>,
    pub message_decrypt: Option<MessageCipher>,
    pub message_sign: Option<MessageSign>,
    pub message_verify: Option<MessageSign>,
    pub sign_recover: Option<crate::mechanism::rsa::RecoverOp>,
    pub verify_recover: Option<crate::mechanism::rsa::RecoverOp>,
    pub key_cache: crate::token::key_cache::KeyCache,
    pub kept: crate::cache::kept::KeptContexts,
}

/// A message-based AES-GCM session (C_MessageEncryptInit...): its key, the
/// counter for generated IVs, and the message being built part by part.
/// The counter starts again with each Init (as NSS's does): the caller's
/// fixed IV bits are what tell one such context from another.
pub struct MessageCipher {
    pub key: crate::mechanism::aes::AesKey,
    /// The key built for each tag length the messages use.
    pub contexts: crate::cache::kept::Kept<crate::engine::GcmContext>,
    pub counter: u64,
    pub pending: Option<PendingMessage>,
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
}

/// A key for an operation in a session, through the session's cache of
/// decrypted key material. The session is not locked while the key is read
/// and decrypted.
pub fn operation_key(
    session: &SessionCell,
    token: &crate::token::Token,
    h: CK_OBJECT_HANDLE,
) -> crate::rv::Result<std::sync::Arc<crate::object::attrs::Attrs>> {
    let mut cache = std::mem::take(&mut session.lock().key_cache);
    let key = token.operation_key(h, &mut cache);
    session.lock().key_cache = cache;
    key
}

/// Starts an operation in `slot` of the session: builds it with the key `h`
/// (through the session's key cache) and installs it. The session is
/// locked twice, before and after, and not while the key is read.
pub fn start_with_key<T: ?Sized>(
    session: &SessionCell,
    token: &crate::token::Token,
    h: CK_OBJECT_HANDLE,
    single_part_only: bool,
    slot: fn(&mut Session) -> &mut Option<Active<T>>,
    make: impl FnOnce(
        &crate::object::attrs::Attrs,
        &mut crate::cache::kept::KeptContexts,
    ) -> crate::rv::Result<Box<T>>,
) -> crate::rv::Result<()> {
    let (mut cache, mut contexts) = {
        let mut s = session.lock();
        if slot(&mut s).is_some() {
            return Err(crate::rv::Rv::OperationActive);
        }
        (
            std::mem::take(&mut s.key_cache),
            std::mem::take(&mut s.kept),
        )
    };
    let made = token
        .operation_key(h, &mut cache)
        .and_then(|key| make(&key, &mut contexts));
    let mut s = session.lock();
    s.key_cache = cache;
    s.kept = contexts;
    // Another thread may have started one meanwhile on the same session.
    if slot(&mut s).is_some() {
        return Err(crate::rv::Rv::OperationActive);
    }
    *slot(&mut s) = Some(Active::new(made?, single_part_only));
    Ok(())
}

/// A caller's output buffer as the length-query protocol sees it. The C
/// boundary's view of a buffer implements it; the operations below are
/// written once against it.
pub trait Output {
    /// Whether the caller gave no buffer (a length query).
    fn is_query(&self) -> bool;
    /// Ok when the buffer holds `need` bytes; otherwise the call's answer
    /// (Ok for a length query, CKR_BUFFER_TOO_SMALL for a short buffer),
    /// with the length set to `need`.
    fn reserve(&mut self, need: usize) -> std::result::Result<(), crate::rv::Result<()>>;
    /// `need` writable bytes of the buffer, when it holds them and does not
    /// overlap `input` (a caller encrypting in place).
    fn room_apart_from(&mut self, need: usize, input: &[u8]) -> Option<&mut [u8]>;
    /// Records that the buffer's first `written` bytes are the output.
    fn set_len(&mut self, written: usize);
    /// Writes the output (for which `reserve` found room).
    fn write(self, data: &[u8]) -> crate::rv::Result<()>;
}

/// The length-query protocol for an output of at most `need` bytes that
/// `make` produces once the buffer holds them. Returns whether an operation
/// under way goes on (the call was answered without output).
pub fn deliver_with<O: Output>(
    mut out: O,
    need: usize,
    make: impl FnOnce() -> crate::rv::Result<Vec<u8>>,
) -> (crate::rv::Result<()>, bool) {
    if let Err(answer) = out.reserve(need) {
        return (answer, true);
    }
    (make().and_then(|output| out.write(&output)), false)
}

/// Delivers a signature (over `data` too, if given) by the length-query
/// protocol; returns whether the operation goes on.
pub fn deliver_signature<O: Output>(
    op: &mut dyn SignOp,
    data: Option<&[u8]>,
    signature: crate::rv::Result<O>,
) -> (crate::rv::Result<()>, bool) {
    match signature {
        Ok(signature) => deliver_with(signature, op.output_len(), || {
            if let Some(data) = data {
                op.update(data)?;
            }
            op.sign()
        }),
        Err(e) => (Err(e), false),
    }
}

/// The sign or verify slot of a session.
type SignatureSlot<T> = fn(&mut Session) -> &mut Option<Active<T>>;

/// One more part of a multi-part signature or verification; an error ends
/// the operation.
fn signature_part<T: ?Sized>(
    s: &mut Session,
    slot: SignatureSlot<T>,
    part: crate::rv::Result<&[u8]>,
    update: fn(&mut T, &[u8]) -> crate::rv::Result<()>,
) -> crate::rv::Result<()> {
    let active = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let result = active
        .begin_parts()
        .and(part)
        .and_then(|part| update(&mut *active.op, part));
    if result.is_err() {
        *slot(s) = None;
    }
    result
}

/// C_Sign: single-part; the operation ends unless the call was answered
/// without a signature.
pub fn sign<O: Output>(
    s: &mut Session,
    data: crate::rv::Result<&[u8]>,
    signature: crate::rv::Result<O>,
) -> crate::rv::Result<()> {
    let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
    if active.multi_part {
        return Err(Rv::OperationActive);
    }
    let (result, keep) = match data {
        Ok(data) => deliver_signature(&mut *active.op, Some(data), signature),
        Err(e) => (Err(e), false),
    };
    if !keep {
        s.sign = None;
    }
    result
}

/// C_SignUpdate.
pub fn sign_update(s: &mut Session, part: crate::rv::Result<&[u8]>) -> crate::rv::Result<()> {
    signature_part(
        s,
        |s| &mut s.sign,
        part,
        |op: &mut (dyn SignOp + 'static), d| op.update(d),
    )
}

/// C_SignFinal.
pub fn sign_final<O: Output>(
    s: &mut Session,
    signature: crate::rv::Result<O>,
) -> crate::rv::Result<()> {
    let active = s.sign.as_mut().ok_or(Rv::OperationNotInitialized)?;
    let (result, keep) = deliver_signature(&mut *active.op, None, signature);
    if !keep {
        s.sign = None;
    }
    result
}

/// C_Verify: single-part; the operation ends with the call.
pub fn verify(
    s: &mut Session,
    data: crate::rv::Result<&[u8]>,
    signature: crate::rv::Result<&[u8]>,
) -> crate::rv::Result<()> {
    let mut active = s.verify.take().ok_or(Rv::OperationNotInitialized)?;
    if active.multi_part {
        s.verify = Some(active);
        return Err(Rv::OperationActive);
    }
    active.op.update(data?)?;
    active.op.verify(signature?)
}

/// C_VerifyUpdate.
pub fn verify_update(s: &mut Session, part: crate::rv::Result<&[u8]>) -> crate::rv::Result<()> {
    signature_part(
        s,
        |s| &mut s.verify,
        part,
        |op: &mut (dyn VerifyOp + 'static), d| op.update(d),
    )
}

/// C_VerifyFinal: the operation ends with the call.
pub fn verify_final(s: &mut Session, signature: crate::rv::Result<&[u8]>) -> crate::rv::Result<()> {
    let mut active = s.verify.take().ok_or(Rv::OperationNotInitialized)?;
    active.op.verify(signature?)
}

/// Delivers a digest (over `data` too, if given) by the length-query
/// protocol; returns whether the operation goes on.
fn deliver_digest<O: Output>(
    op: &mut DigestOp,
    data: Option<&[u8]>,
    digest: crate::rv::Result<O>,
) -> (crate::rv::Result<()>, bool) {
    match digest {
        Ok(digest) => deliver_with(digest, op.output_len(), || {
            if let Some(data) = data {
                op.update(data);
            }
            op.result()
        }),
        Err(e) => (Err(e), false),
    }
}

/// C_Digest: single-part.
pub fn digest<O: Output>(
    s: &mut Session,
    data: crate::rv::Result<&[u8]>,
    digest: crate::rv::Result<O>,
) -> crate::rv::Result<()> {
    let op = s.digest.as_mut().ok_or(Rv::OperationNotInitialized)?;
    if op.multi_part {
        return Err(Rv::OperationActive);
    }
    let (result, keep) = match data {
        Ok(data) => deliver_digest(op, Some(data), digest),
        Err(e) => (Err(e), false),
    };
    if !keep {
        s.digest = None;
    }
    result
}

/// C_DigestUpdate and C_DigestKey: more input; an error ends the digest.
pub fn digest_update(s: &mut Session, part: crate::rv::Result<&[u8]>) -> crate::rv::Result<()> {
    let op = s.digest.as_mut().ok_or(Rv::OperationNotInitialized)?;
    match part {
        Ok(part) => {
            op.update(part);
            op.multi_part = true;
            Ok(())
        }
        Err(e) => {
            s.digest = None;
            Err(e)
        }
    }
}

/// C_DigestFinal.
pub fn digest_final<O: Output>(
    s: &mut Session,
    digest: crate::rv::Result<O>,
) -> crate::rv::Result<()> {
    let op = s.digest.as_mut().ok_or(Rv::OperationNotInitialized)?;
    let (result, keep) = deliver_digest(op, None, digest);
    if !keep {
        s.digest = None;
    }
    result
}

/// The encryption or decryption slot of a session.
pub type CipherSlot = fn(&mut Session) -> &mut Option<Active<dyn CipherOp>>;

pub fn encrypt_slot(s: &mut Session) -> &mut Option<Active<dyn CipherOp>> {
    &mut s.encrypt
}

pub fn decrypt_slot(s: &mut Session) -> &mut Option<Active<dyn CipherOp>> {
    &mut s.decrypt
}

/// Delivers cipher output by the length-query protocol: `input` is more
/// data (if any), `Part::Last` ends the operation. Returns whether the
/// operation goes on.
fn deliver_cipher<O: Output>(
    op: &mut dyn CipherOp,
    input: &[u8],
    part: Part,
    output: crate::rv::Result<O>,
) -> (crate::rv::Result<()>, bool) {
    let need = op.output_len(input.len(), part);
    let (result, waiting) = match output {
        Ok(output) => deliver_with(output, need, || {
            let mut out = op.update(input)?;
            if part == Part::Last {
                out.extend_from_slice(&op.finish()?);
            }
            Ok(out)
        }),
        Err(e) => (Err(e), false),
    };
    // An update that went through leaves the operation open for more.
    let goes_on = waiting || (result.is_ok() && part == Part::More);
    (result, goes_on)
}

/// A single-part operation straight into the caller's buffer, when the
/// buffer is there and large enough and the mechanism can (None otherwise:
/// the general path answers length queries and short buffers).
fn single_into<O: Output>(
    op: &mut dyn CipherOp,
    input: &[u8],
    output: &mut O,
) -> Option<crate::rv::Result<()>> {
    let need = op.output_len(input.len(), Part::Last);
    let room = output.room_apart_from(need, input)?;
    Some(
        op.single_into(input, room)?
            .map(|written| output.set_len(written)),
    )
}

/// C_Encrypt / C_Decrypt: single-part.
pub fn cipher<O: Output>(
    s: &mut Session,
    slot: CipherSlot,
    input: crate::rv::Result<&[u8]>,
    output: crate::rv::Result<O>,
) -> crate::rv::Result<()> {
    let active = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    if active.multi_part {
        return Err(Rv::OperationActive);
    }
    let (result, keep) = match (input, output) {
        (Ok(data), Ok(mut output)) => match single_into(&mut *active.op, data, &mut output) {
            Some(done) => (done, false),
            None => deliver_cipher(&mut *active.op, data, Part::Last, Ok(output)),
        },
        (Err(e), _) | (_, Err(e)) => (Err(e), false),
    };
    if !keep {
        *slot(s) = None;
    }
    result
}

/// C_EncryptUpdate / C_DecryptUpdate: one part through the cipher in
/// `slot`. Returns whether the part went through (not a length query).
pub fn cipher_update<O: Output>(
    s: &mut Session,
    slot: CipherSlot,
    input: crate::rv::Result<&[u8]>,
    output: crate::rv::Result<O>,
) -> crate::rv::Result<bool> {
    let active = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let query = output.as_ref().is_ok_and(|o| o.is_query());
    let (result, keep) = match active.begin_parts().and(input) {
        Ok(data) => deliver_cipher(&mut *active.op, data, Part::More, output),
        Err(e) => (Err(e), false),
    };
    if !keep {
        *slot(s) = None;
    }
    result.map(|()| !query)
}

/// C_EncryptFinal / C_DecryptFinal.
pub fn cipher_final<O: Output>(
    s: &mut Session,
    slot: CipherSlot,
    output: crate::rv::Result<O>,
) -> crate::rv::Result<()> {
    let active = slot(s).as_mut().ok_or(Rv::OperationNotInitialized)?;
    let (result, keep) = deliver_cipher(&mut *active.op, &[], Part::Last, output);
    if !keep {
        *slot(s) = None;
    }
    result
}

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

    /// The wrapped key.
    pub fn run(mut self) -> crate::rv::Result<Vec<u8>> {
        run_cipher(&mut *self.op, &self.plaintext)
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
    if crate::mechanism::find(arg.ty)?.flags & CKF_WRAP == 0 {
        return Err(Rv::MechanismInvalid);
    }
    let wrapping = operation_key(session, token, wrapping_key)
        .map_err(|e| wrapping_key_error(e, Rv::WrappingKeyHandleInvalid))?;
    let key = operation_key(session, token, key)?;
    if key.bool(CKA_EXTRACTABLE) != Some(true) {
        return Err(Rv::KeyUnextractable);
    }
    if key.bool(CKA_WRAP_WITH_TRUSTED) == Some(true) && wrapping.bool(CKA_TRUSTED) != Some(true) {
        return Err(Rv::KeyNotWrappable);
    }
    let plaintext = crate::mechanism::pkcs8::key_bytes(&key)?;
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
    if crate::mechanism::find(arg.ty)?.flags & CKF_UNWRAP == 0 {
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
    let key = crate::mechanism::pkcs8::unwrapped_key(&plaintext, template)?;
    token.create_object(acc, key)
}

/// C_DeriveKey: an HKDF salt given as a key handle is that secret key's
/// value; the derived key is stored by the template.
pub fn derive_key(
    session: &SessionCell,
    acc: crate::token::Access,
    token: &crate::token::Token,
    mut arg: MechanismArg,
    base_key: CK_OBJECT_HANDLE,
    template: crate::object::attrs::Attrs,
) -> crate::rv::Result<CK_OBJECT_HANDLE> {
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
    let derived = crate::mechanism::derive_key(&arg, &base, &template)?;
    token.store_generated(acc, template, derived)
}

impl Session {
    fn new() -> Session {
        Session {
            find: None,
            digest: None,
            sign: None,
            verify: None,
            encrypt: None,
            decrypt: None,
            message_encrypt: None,
            message_decrypt: None,
            message_sign: None,
            message_verify: None,
            sign_recover: None,
            verify_recover: None,
            key_cache: Default::default(),
            kept: Default::default(),
        }
    }

    /// Forgets the key material kept for the session's operations (at
    /// logout).
    pub fn forget_keys(&mut self) {
        self.key_cache.clear();
        self.kept.clear();
    }

    /// Ends the operations the flags name (C_SessionCancel).
    pub fn cancel(&mut self, flags: CK_FLAGS) {
        if flags & CKF_FIND_OBJECTS != 0 {
            self.find = None;
        }
        if flags & CKF_DIGEST != 0 {
            self.digest = None;
        }
        if flags & CKF_SIGN != 0 {
            self.sign = None;
        }
        if flags & CKF_VERIFY != 0 {
            self.verify = None;
        }
        if flags & CKF_ENCRYPT != 0 {
            self.encrypt = None;
        }
        if flags & CKF_DECRYPT != 0 {
            self.decrypt = None;
        }
        if flags & CKF_MESSAGE_ENCRYPT != 0 {
            self.message_encrypt = None;
        }
        if flags & CKF_MESSAGE_DECRYPT != 0 {
            self.message_decrypt = None;
        }
        if flags & CKF_MESSAGE_SIGN != 0 {
            self.message_sign = None;
        }
        if flags & CKF_MESSAGE_VERIFY != 0 {
            self.message_verify = None;
        }
        if flags & CKF_SIGN_RECOVER != 0 {
            self.sign_recover = None;
        }
        if flags & CKF_VERIFY_RECOVER != 0 {
            self.verify_recover = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature of four bytes.
    struct FourBytes;

    impl SignOp for FourBytes {
        fn update(&mut self, _: &[u8]) -> crate::rv::Result<()> {
            Ok(())
        }
        fn output_len(&self) -> usize {
            4
        }
        fn sign(&mut self) -> crate::rv::Result<Vec<u8>> {
            Ok(b"sig!".to_vec())
        }
    }

    /// A caller's buffer of `room` bytes (None: a length query).
    struct Buffer {
        room: Option<usize>,
        len: usize,
        data: Vec<u8>,
    }

    impl Output for &mut Buffer {
        fn is_query(&self) -> bool {
            self.room.is_none()
        }
        fn reserve(&mut self, need: usize) -> std::result::Result<(), crate::rv::Result<()>> {
            match self.room {
                None => {
                    self.len = need;
                    Err(Ok(()))
                }
                Some(room) if room < need => {
                    self.len = need;
                    Err(Err(Rv::BufferTooSmall))
                }
                Some(_) => Ok(()),
            }
        }
        fn room_apart_from(&mut self, _: usize, _: &[u8]) -> Option<&mut [u8]> {
            None
        }
        fn set_len(&mut self, written: usize) {
            self.len = written;
        }
        fn write(self, data: &[u8]) -> crate::rv::Result<()> {
            self.data = data.to_vec();
            self.len = data.len();
            Ok(())
        }
    }

    #[test]
    fn a_signature_keeps_its_operation_until_it_is_delivered() {
        let mut s = Session::new();
        s.sign = Some(Active::new(Box::new(FourBytes), false));
        let mut query = Buffer {
            room: None,
            len: 0,
            data: Vec::new(),
        };
        assert_eq!(sign(&mut s, Ok(b"data"), Ok(&mut query)), Ok(()));
        assert!(query.len == 4 && s.sign.is_some());
        let mut short = Buffer {
            room: Some(2),
            len: 0,
            data: Vec::new(),
        };
        assert_eq!(
            sign(&mut s, Ok(b"data"), Ok(&mut short)),
            Err(Rv::BufferTooSmall)
        );
        assert!(short.len == 4 && s.sign.is_some());
        let mut room = Buffer {
            room: Some(8),
            len: 0,
            data: Vec::new(),
        };
        assert_eq!(sign(&mut s, Ok(b"data"), Ok(&mut room)), Ok(()));
        assert_eq!((room.len, room.data.as_slice()), (4, &b"sig!"[..]));
        assert!(s.sign.is_none());
        assert_eq!(
            sign(&mut s, Ok(b"data"), Ok(&mut room)),
            Err(Rv::OperationNotInitialized)
        );
        // A bad input pointer ends the operation.
        s.sign = Some(Active::new(Box::new(FourBytes), false));
        assert_eq!(
            sign::<&mut Buffer>(&mut s, Err(Rv::ArgumentsBad), Ok(&mut room)),
            Err(Rv::ArgumentsBad)
        );
        assert!(s.sign.is_none());
    }

    #[test]
    fn a_single_part_mechanism_ends_at_its_first_update() {
        let mut s = Session::new();
        s.sign = Some(Active::new(Box::new(FourBytes), true));
        assert_eq!(
            sign_update(&mut s, Ok(b"part")),
            Err(Rv::OperationNotInitialized)
        );
        assert!(s.sign.is_none());
    }

    #[test]
    fn generated_iv_bits_keep_the_fixed_prefix() {
        let mut iv = [0xaa; 12];
        set_free_bits(&mut iv, &[0x55; 12], 12);
        assert_eq!(iv[0], 0xaa);
        assert_eq!(iv[1], 0xa5);
        assert_eq!(&iv[2..], &[0x55; 10]);
    }
}
