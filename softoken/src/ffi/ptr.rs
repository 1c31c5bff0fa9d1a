//! A caller's output buffer as one checked view, made at the top of an
//! entry point; the code below it is safe. `OutBuf` is where the
//! specification's length-query protocol lives, once: a null buffer
//! learns the length, a short one gets CKR_BUFFER_TOO_SMALL and the
//! length, and neither ends an operation under way.

use pkcs11_sys::CK_ULONG;

use super::util::{items_mut, out};
use crate::rv::{Result, Rv};
use crate::session::Output;

/// A caller's buffer of `*len` items at `p` (null: the caller asks for
/// the length), and its length word.
pub struct OutBuf<'a, T = u8> {
    p: *mut T,
    len: &'a mut CK_ULONG,
}

impl<'a, T: Copy> OutBuf<'a, T> {
    /// The view of a caller's buffer and length word.
    ///
    /// # Safety
    /// `len` is null or valid for reads and writes of a CK_ULONG; `p` is
    /// null or valid for writes of `*len` items (the specification's
    /// promise of a caller).
    pub unsafe fn new(p: *mut T, len: *mut CK_ULONG) -> Result<OutBuf<'a, T>> {
        // SAFETY: the caller's promise, as stated above; `out` checks the
        // pointer first.
        let len = unsafe { out(len)? };
        Ok(OutBuf { p, len })
    }

    /// The caller's buffer as `need` writable items, when it holds them.
    fn room(&mut self, need: usize) -> Option<&mut [T]> {
        if self.p.is_null() || (*self.len as usize) < need {
            return None;
        }
        // SAFETY: `new`'s promise: `p` is valid for `*len` >= `need` items.
        unsafe { items_mut(self.p, need) }.ok()
    }

    /// The length-query protocol for an output of `need` items.
    fn reserve_items(&mut self, need: usize) -> std::result::Result<(), Result<()>> {
        if self.p.is_null() {
            *self.len = need as CK_ULONG;
            return Err(Ok(()));
        }
        if (*self.len as usize) < need {
            *self.len = need as CK_ULONG;
            return Err(Err(Rv::BufferTooSmall));
        }
        Ok(())
    }

    /// The whole protocol for an output known in advance.
    pub fn deliver(mut self, data: &[T]) -> Result<()> {
        if let Err(answer) = self.reserve_items(data.len()) {
            return answer;
        }
        let room = self.room(data.len()).ok_or(Rv::ArgumentsBad)?;
        room.copy_from_slice(data);
        *self.len = data.len() as CK_ULONG;
        Ok(())
    }
}

impl Output for OutBuf<'_, u8> {
    fn is_query(&self) -> bool {
        self.p.is_null()
    }

    fn reserve(&mut self, need: usize) -> std::result::Result<(), Result<()>> {
        self.reserve_items(need)
    }

    fn room_apart_from(&mut self, need: usize, input: &[u8]) -> Option<&mut [u8]> {
        let out_start = self.p as usize;
        let out_end = out_start + *self.len as usize;
        let in_start = input.as_ptr() as usize;
        if in_start < out_end && out_start < in_start + input.len() {
            return None;
        }
        self.room(need)
    }

    fn set_len(&mut self, written: usize) {
        *self.len = written as CK_ULONG;
    }

    fn write(self, data: &[u8]) -> Result<()> {
        self.deliver(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::deliver_with;

    /// The view of a local buffer.
    fn view<'a>(p: *mut u8, len: &'a mut CK_ULONG) -> Result<OutBuf<'a>> {
        // SAFETY: a local length word, and a buffer of at least `*len` bytes.
        unsafe { OutBuf::new(p, len) }
    }

    #[test]
    fn deliver_follows_the_length_protocol() {
        let mut len: CK_ULONG = 0;
        assert_eq!(
            view(std::ptr::null_mut(), &mut len)
                .unwrap()
                .deliver(b"abc"),
            Ok(())
        );
        assert_eq!(len, 3);
        let mut buf = [0u8; 2];
        len = 2;
        assert_eq!(
            view(buf.as_mut_ptr(), &mut len).unwrap().deliver(b"abc"),
            Err(Rv::BufferTooSmall)
        );
        assert_eq!(len, 3);
        let mut buf = [0u8; 8];
        len = 8;
        assert_eq!(
            view(buf.as_mut_ptr(), &mut len).unwrap().deliver(b"abc"),
            Ok(())
        );
        assert_eq!((len, &buf[..3]), (3, &b"abc"[..]));
        // SAFETY: a null length word, which the view refuses.
        let no_len = unsafe { OutBuf::new(buf.as_mut_ptr(), std::ptr::null_mut()) };
        assert_eq!(no_len.err(), Some(Rv::ArgumentsBad));
    }

    #[test]
    fn deliver_with_keeps_the_operation_only_when_answered_without_output() {
        let mut len: CK_ULONG = 0;
        let (r, keep) = deliver_with(view(std::ptr::null_mut(), &mut len).unwrap(), 4, || {
            panic!("a length query makes nothing")
        });
        assert_eq!((r, keep, len), (Ok(()), true, 4));
        let mut buf = [0u8; 4];
        len = 3;
        let (r, keep) = deliver_with(view(buf.as_mut_ptr(), &mut len).unwrap(), 4, || {
            panic!("a short buffer makes nothing")
        });
        assert_eq!((r, keep, len), (Err(Rv::BufferTooSmall), true, 4));
        len = 4;
        let (r, keep) = deliver_with(view(buf.as_mut_ptr(), &mut len).unwrap(), 4, || {
            Ok(b"xy".to_vec())
        });
        assert_eq!((r, keep, len, &buf[..2]), (Ok(()), false, 2, &b"xy"[..]));
    }
}
