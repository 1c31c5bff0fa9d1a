//! The state machine of the operations under way: sign, verify, digest and
//! cipher with their Update and Final. An error ends an operation, a length
//! query or a short buffer keeps it, and a single-part mechanism refuses an
//! Update; written once against `Output`, which the C boundary's view of a
//! caller's buffer implements.

use crate::mechanism::digest::DigestOp;
use crate::mechanism::op::{CipherOp, Part, SignOp, VerifyOp};
use crate::rv::Rv;
use pkcs11_sys::{CKF_DECRYPT, CKF_SIGN, CK_FLAGS, CK_OBJECT_HANDLE};

use crate::cache::kept::KeptContexts;
use crate::mechanism::param::MechanismArg;
use crate::mechanism::Mechanism;
use crate::object::attrs::Attrs;
use crate::session::{start_with_key, Active, FindOp, Session, SessionCell};
use crate::token::Token;

/// Starts a keyed operation (C_SignInit, C_EncryptInit...): the mechanism
/// must offer `function`; the key is fetched and the mechanism builds the
/// operation, which `slot` of the session then holds.
pub fn start<T: ?Sized>(
    session: &SessionCell,
    token: &Token,
    arg: crate::rv::Result<MechanismArg>,
    key: CK_OBJECT_HANDLE,
    function: CK_FLAGS,
    slot: fn(&mut Session) -> &mut Option<Active<T>>,
    make: fn(&MechanismArg, &Attrs, &mut KeptContexts) -> crate::rv::Result<Box<T>>,
) -> crate::rv::Result<()> {
    let arg = arg?;
    let found = crate::mechanism::find(arg.ty)?;
    if found.flags & function == 0 {
        return Err(Rv::MechanismInvalid);
    }
    start_with_key(
        session,
        token,
        key,
        found.single_part_only(),
        function & (CKF_SIGN | CKF_DECRYPT) != 0,
        slot,
        |key, contexts| make(&arg, key, contexts),
    )
}

/// C_DigestInit.
pub fn digest_init(s: &mut Session, mechanism: &Mechanism) -> crate::rv::Result<()> {
    if s.digest.is_some() {
        return Err(Rv::OperationActive);
    }
    s.digest = Some(crate::mechanism::digest_op(mechanism)?);
    Ok(())
}

/// C_FindObjectsInit: the handles of the objects matching the template.
/// A template of None (one that gives a type two values) matches nothing.
pub fn find_init(
    s: &mut Session,
    token: &Token,
    template: Option<&Attrs>,
) -> crate::rv::Result<()> {
    if s.find.is_some() {
        return Err(Rv::OperationActive);
    }
    let found = match template {
        Some(t) => token.find(t)?,
        None => Vec::new(),
    };
    s.find = Some(FindOp::new(found));
    Ok(())
}

/// C_FindObjects: up to `max` more handles.
pub fn find_next(s: &mut Session, max: usize) -> crate::rv::Result<Vec<CK_OBJECT_HANDLE>> {
    let find = s.find.as_mut().ok_or(Rv::OperationNotInitialized)?;
    Ok(find.next_batch(max))
}

/// C_FindObjectsFinal.
pub fn find_final(s: &mut Session) -> crate::rv::Result<()> {
    s.find.take().ok_or(Rv::OperationNotInitialized)?;
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
        .gate
        .pass()
        .and_then(|()| active.begin_parts())
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
    let (result, keep) = match active.gate.pass().and(data) {
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
    let (result, keep) = match active.gate.pass() {
        Ok(()) => deliver_signature(&mut *active.op, None, signature),
        Err(e) => (Err(e), false),
    };
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
    let (result, keep) = match (active.gate.pass().and(input), output) {
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
    let begun = active.gate.pass().and_then(|()| active.begin_parts());
    let (result, keep) = match begun.and(input) {
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
    let (result, keep) = match active.gate.pass() {
        Ok(()) => deliver_cipher(&mut *active.op, &[], Part::Last, output),
        Err(e) => (Err(e), false),
    };
    if !keep {
        *slot(s) = None;
    }
    result
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
}
