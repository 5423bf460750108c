//! The code buffer: the bytes emitted so far, written by `dynasm!` and by the hand
//! encoders (`enc.rs`, `labels.rs`).
//!
//! The code generator resolves its jumps itself (`labels.rs`) and uses no dynasm
//! labels or relocations, so the buffer is a plain vector with the
//! [`DynasmApi`] that `dynasm!` writes through — without the label and relocation
//! registries dynasm's own assemblers allocate for every compilation.

use std::cell::Cell;

use dynasmrt::{AssemblyOffset, DynasmApi};

/// Bytes of capacity a thread keeps for its next compilation (see [`recycle`]).
const MAX_SPARE: usize = 1 << 20;

thread_local! {
    /// The code buffer of this thread's last compilation, emptied, for the next one:
    /// a small program's compilation then allocates no buffer, and writes into memory
    /// the thread wrote recently.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Keep `bytes` (a compilation's code, already copied into its mapping) as this
/// thread's spare buffer, unless it is larger than [`MAX_SPARE`].
pub(crate) fn recycle(bytes: Vec<u8>) {
    if bytes.capacity() <= MAX_SPARE {
        // During thread teardown the slot may be gone; the buffer is then freed.
        let _ = SPARE.try_with(|s| s.set(bytes));
    }
}

/// Emitted bytes, in order.
#[derive(Debug, Default)]
pub(crate) struct CodeBuf {
    bytes: Vec<u8>,
}

impl CodeBuf {
    /// A buffer that writes into `bytes` (cleared first), reserving room for
    /// `capacity` bytes.
    pub(crate) fn reusing(mut bytes: Vec<u8>, capacity: usize) -> CodeBuf {
        bytes.clear();
        bytes.reserve(capacity);
        CodeBuf { bytes }
    }

    /// A buffer for a new compilation with room for `capacity` bytes: this thread's
    /// spare buffer if it has one (see [`recycle`]).
    pub(crate) fn new(capacity: usize) -> CodeBuf {
        CodeBuf::reusing(SPARE.try_with(Cell::take).unwrap_or_default(), capacity)
    }

    /// The bytes emitted.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Extend<u8> for CodeBuf {
    #[inline]
    fn extend<T: IntoIterator<Item = u8>>(&mut self, iter: T) {
        self.bytes.extend(iter);
    }
}

impl<'a> Extend<&'a u8> for CodeBuf {
    #[inline]
    fn extend<T: IntoIterator<Item = &'a u8>>(&mut self, iter: T) {
        self.bytes.extend(iter);
    }
}

impl DynasmApi for CodeBuf {
    #[inline]
    fn offset(&self) -> AssemblyOffset {
        AssemblyOffset(self.bytes.len())
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        self.bytes.push(byte);
    }

    fn align(&mut self, alignment: usize, with: u8) {
        let len = self.bytes.len().next_multiple_of(alignment.max(1));
        self.bytes.resize(len, with);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_buffer_is_reused_empty_and_a_large_one_is_not_kept() {
        let mut v = Vec::with_capacity(4096);
        v.extend_from_slice(&[1, 2, 3]);
        let at = v.as_ptr();
        recycle(v);
        let b = CodeBuf::new(100);
        assert_eq!(b.offset().0, 0);
        let v = b.into_bytes();
        assert_eq!(v.as_ptr(), at, "the spare buffer is the one recycled");
        recycle(Vec::with_capacity(MAX_SPARE + 1));
        assert_eq!(
            CodeBuf::new(0).into_bytes().capacity(),
            0,
            "nothing was kept"
        );
    }

    #[test]
    fn keeps_bytes_in_order_and_aligns_with_the_filler() {
        let mut b = CodeBuf::reusing(vec![9, 9, 9], 16);
        assert_eq!(b.offset().0, 0, "a reused vector starts empty");
        b.push(1);
        b.extend(&[2u8, 3]);
        b.extend([4u8]);
        b.align(8, 0xCC);
        assert_eq!(b.offset().0, 8);
        b.align(8, 0xCC);
        assert_eq!(b.offset().0, 8, "an aligned end stays");
        assert_eq!(b.into_bytes(), [1, 2, 3, 4, 0xCC, 0xCC, 0xCC, 0xCC]);
    }
}
