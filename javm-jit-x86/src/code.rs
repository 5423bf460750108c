//! Code memory with W^X as a type state: [`WritableCode`] can be written but not run,
//! [`ExecutableCode`] can be run but never written again. No mapping is ever writable
//! and executable at once, and every executable buffer is followed by a guard page.
//!
//! Small mappings are recycled: dropping the code of a module of at most
//! [`POOL_CODE_MAX`] bytes makes its mapping read-write — no longer executable —
//! and keeps it (up to [`POOL_MAX`] of each size), and a later module that fits
//! takes it as it is, instead of a fresh mapping: one protection change per
//! module's life (to read + execute when it is finalized) besides the one back to
//! read-write. Its pages stay resident, so writing the new code takes no page
//! faults (each costs microseconds on virtualised hosts, several per small
//! module); everything past the new code is overwritten with `int3`.
//!
//! Recycled mappings come in a few sizes ([`CLASSES`], powers of two) and a module
//! takes the smallest that holds its code, so at most half of its mapping's code
//! pages are unused. A protection change costs in proportion to the resident
//! pages it covers (on the development machine about 1 µs for one page and 4 µs
//! for sixteen, DESIGN-DECISIONS §118), and a recycled mapping's pages stay
//! resident, so a small module in a large mapping would pay for pages it does not
//! use, twice per life.

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::Mutex;

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, mprotect, munmap};

const PAGE: usize = 4096;
/// Code sizes from which the buffer is pre-faulted in one call (256 KiB).
const POPULATE_MIN: usize = 64 * PAGE;
/// Pages of code in each size of recycled mapping, smallest first (see the module
/// documentation).
const CLASSES: [usize; 5] = [1, 2, 4, 8, 16];
/// Largest code whose mapping is recycled: the largest class.
const POOL_CODE_MAX: usize = CLASSES[CLASSES.len() - 1] * PAGE;
/// Recycled mappings kept of each size (at most 1.1 MiB in all with their guard
/// pages, as when there was one size and twice as many).
const POOL_MAX: usize = 8;

/// The class of a module with `len` bytes of code: the smallest that holds it.
fn class_of(len: usize) -> Option<usize> {
    if len > POOL_CODE_MAX {
        return None;
    }
    CLASSES.iter().position(|&pages| len <= pages * PAGE)
}

/// A recycled mapping: its class's code pages, read-write and not executable,
/// then a guard page; the first `.1` bytes held code (the rest was never written).
struct Pooled(NonNull<u8>, usize);

// SAFETY: a pooled mapping is owned by the pool alone; moving the address between
// threads shares nothing.
unsafe impl Send for Pooled {}

/// The recycled mappings of each class.
static POOLS: [Mutex<Vec<Pooled>>; CLASSES.len()] =
    [const { Mutex::new(Vec::new()) }; CLASSES.len()];

/// A recycled mapping of `class` (writable), and how many of its bytes held code,
/// if one is pooled.
fn take_pooled(class: usize) -> Option<(NonNull<u8>, usize)> {
    let p = POOLS
        .get(class)?
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()?;
    Some((p.0, p.1))
}

/// Keep the mapping of `map_len` bytes at `ptr`, whose first `used` bytes hold code,
/// for reuse if it has a class's size, else unmap it.
///
/// # Safety
/// The caller owns the mapping, and nothing uses it any more.
unsafe fn recycle(ptr: NonNull<u8>, map_len: usize, used: usize) {
    let class = CLASSES
        .iter()
        .position(|&pages| map_len == (pages + 1) * PAGE);
    if let Some(pool) = class.and_then(|c| POOLS.get(c)) {
        // SAFETY: the caller owns the mapping; without execute permission its
        // stale code cannot run while it is pooled, and it is writable for the
        // module that takes it next. Its code pages are all but the last.
        if unsafe {
            mprotect(
                ptr.cast(),
                map_len - PAGE,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            )
        }
        .is_ok()
        {
            let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(Pooled(ptr, used));
                return;
            }
        }
    }
    // SAFETY: the caller owns the mapping and nothing uses it.
    let _ = unsafe { munmap(ptr.cast(), map_len) };
}

/// A fresh read-write mapping for code (not executable).
pub(crate) struct WritableCode {
    ptr: NonNull<u8>,
    /// Bytes of code (≤ `map_len - PAGE`).
    len: usize,
    /// Whole mapping: code pages plus one guard page.
    map_len: usize,
}

/// Finalized code: read + execute, then a `PROT_NONE` guard page. Immutable.
#[derive(Debug)]
pub(crate) struct ExecutableCode {
    ptr: NonNull<u8>,
    len: usize,
    map_len: usize,
}

// SAFETY: `ExecutableCode` owns its mapping exclusively and never writes to it after
// construction; sharing read-only executable memory between threads is sound.
unsafe impl Send for ExecutableCode {}
// SAFETY: as above: the bytes are immutable for the mapping's whole lifetime.
unsafe impl Sync for ExecutableCode {}

impl WritableCode {
    /// Map a writable buffer holding a copy of `first` and then of `more`, one
    /// after another. With `threads` > 1 and several parts, the parts are copied on
    /// up to that many threads (scoped; the caller is one), each pre-faulting the
    /// pages it writes.
    pub(crate) fn new(first: &[u8], more: &[Vec<u8>], threads: usize) -> io::Result<WritableCode> {
        let parts = || std::iter::once(first).chain(more.iter().map(Vec::as_slice));
        let len = parts().map(<[u8]>::len).sum::<usize>();
        let class = class_of(len);
        if let Some(c) = class
            && let Some((ptr, old)) = take_pooled(c)
        {
            let w = WritableCode {
                ptr,
                len,
                map_len: (CLASSES[c] + 1) * PAGE,
            };
            // SAFETY: the code pages (the class's, which hold `len` and `old`
            // bytes) are writable and owned by `w` alone. What is left of the
            // earlier module's code gets `int3`; the pages past it were never
            // written.
            unsafe {
                copy_parts(ptr, parts());
                if old > len {
                    std::ptr::write_bytes(ptr.as_ptr().add(len), 0xCC, old - len);
                }
            }
            return Ok(w);
        }
        // Small code gets a mapping of its class's size, so it can be recycled.
        let code_pages = match class {
            Some(c) => CLASSES[c] * PAGE,
            None => len.div_ceil(PAGE) * PAGE,
        };
        let map_len = code_pages + PAGE;
        let map_size =
            NonZeroUsize::new(map_len).ok_or_else(|| io::Error::other("empty mapping"))?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choice
        // cannot alias any existing Rust object.
        let p = unsafe {
            mmap_anonymous(
                None,
                map_size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }?;
        // The guard page is made inaccessible once, here: only the code pages change
        // protection afterwards (finalizing, pooling, reuse), so every mapping, fresh
        // or recycled, has its guard from the start.
        // SAFETY: the last page of the mapping just created, which nothing uses.
        if let Err(e) = unsafe { mprotect(p.byte_add(code_pages), PAGE, ProtFlags::PROT_NONE) } {
            // SAFETY: unmapping the mapping just created, which nothing uses.
            let _ = unsafe { munmap(p, map_len) };
            return Err(e.into());
        }
        let mut w = WritableCode {
            ptr: p.cast::<u8>(),
            len,
            map_len,
        };
        let code = w.bytes_mut();
        if threads <= 1 || more.is_empty() {
            populate(code);
            let mut rest = code;
            for part in parts() {
                let (dst, tail) = rest.split_at_mut(part.len());
                dst.copy_from_slice(part);
                rest = tail;
            }
            return Ok(w);
        }
        // Each part's destination, taken in turn by the threads.
        let mut slots = Vec::with_capacity(more.len() + 1);
        let mut rest = code;
        for part in parts() {
            let (dst, tail) = rest.split_at_mut(part.len());
            slots.push(Mutex::new(Some((dst, part))));
            rest = tail;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            while let Some(slot) =
                slots.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            {
                if let Some((dst, src)) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    populate(dst);
                    dst.copy_from_slice(src);
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads.min(slots.len()) {
                // A thread that cannot be started leaves its share to the others
                // (to the calling thread, at least).
                let _ = std::thread::Builder::new().spawn_scoped(s, work);
            }
            work();
        });
        Ok(w)
    }

    /// The code bytes, writable.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping holds `len` bytes of code pages, read-write while the
        // handle exists, owned by it alone; the borrow of `self` covers the slice.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Make the code read + execute (the guard page after it is inaccessible since
    /// the mapping was created). Consumes the writable handle, so nothing can write
    /// the code afterwards.
    pub(crate) fn finalize(self) -> io::Result<ExecutableCode> {
        let me = std::mem::ManuallyDrop::new(self);
        let code_pages = me.map_len - PAGE;
        let exec = ExecutableCode {
            ptr: me.ptr,
            len: me.len,
            map_len: me.map_len,
        };
        // SAFETY: the code pages lie inside the mapping `exec` owns; changing their
        // protection affects no other object.
        unsafe {
            mprotect(
                exec.ptr.cast(),
                code_pages,
                ProtFlags::PROT_READ | ProtFlags::PROT_EXEC,
            )?;
        }
        // On an error above `exec` unmaps on drop.
        Ok(exec)
    }
}

/// Pre-fault the pages `bytes` lies in when they are many: each is written right
/// after, and one advice for the whole range is cheaper than a page fault per
/// page (for a few pages it is not). Only a hint: kernels before 5.14 reject it.
fn populate(bytes: &mut [u8]) {
    let start = (bytes.as_mut_ptr() as usize) & !(PAGE - 1);
    let end = bytes.as_mut_ptr() as usize + bytes.len();
    if end - start >= POPULATE_MIN
        && let Some(p) = NonNull::new(start as *mut libc::c_void)
    {
        // SAFETY: the pages of `bytes`, which the caller may write; advising
        // changes no contents.
        let _ = unsafe { madvise(p, end - start, MmapAdvise::MADV_POPULATE_WRITE) };
    }
}

/// Copy `parts` one after another to `dst`.
///
/// # Safety
/// `dst` is valid for writes of the parts' total length and overlaps none of them.
unsafe fn copy_parts<'a>(dst: NonNull<u8>, parts: impl Iterator<Item = &'a [u8]>) {
    let mut at = 0;
    for p in parts {
        // SAFETY: `at + p.len()` is at most the total length (caller's guarantee).
        unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), dst.as_ptr().add(at), p.len()) };
        at += p.len();
    }
}

impl Drop for WritableCode {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns; no references into it remain.
        unsafe { recycle(self.ptr, self.map_len, self.len) };
    }
}

impl ExecutableCode {
    /// Address of the first byte.
    pub(crate) fn start(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Number of code bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The code bytes (for disassembly).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the mapping are initialized and readable,
        // and immutable for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for ExecutableCode {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns; instances hold an `Arc` of the
        // module, so no code runs from it any more.
        unsafe { recycle(self.ptr, self.map_len, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping of `addr` in /proc/self/maps, as its permission string.
    fn perms(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut it = line.split_whitespace();
            let range = it.next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            );
            if (a..b).contains(&addr) {
                return it.next().unwrap().to_string();
            }
        }
        panic!("{addr:#x} not mapped");
    }

    #[test]
    fn code_is_never_writable_and_executable() {
        let w = WritableCode::new(&[0xC3; 10], &[], 1).unwrap();
        let start = w.ptr.as_ptr() as usize;
        assert_eq!(&perms(start)[..3], "rw-");
        let x = w.finalize().unwrap();
        assert_eq!(&perms(x.start())[..3], "r-x");
        assert_eq!(
            &perms(x.start() + x.map_len - PAGE)[..3],
            "---",
            "guard page after the code pages"
        );
        assert_eq!(x.bytes(), &[0xC3; 10]);
    }

    #[test]
    fn recycled_mappings_hold_no_earlier_code_and_keep_w_xor_x() {
        // A larger module, then a smaller one of the same class, in every class.
        let sizes = [
            (3000, 10),
            (8000, 4097),
            (16000, 8193),
            (30000, 16385),
            (60000, 32769),
        ];
        for round in 0..4 {
            for (c, &(big, small)) in sizes.iter().enumerate() {
                assert_eq!((class_of(big), class_of(small)), (Some(c), Some(c)));
                let class_bytes = CLASSES[c] * PAGE;
                let a = WritableCode::new(&vec![0x90; big], &[], 1)
                    .unwrap()
                    .finalize()
                    .unwrap();
                drop(a);
                let w = WritableCode::new(&vec![0xC3; small], &[], 1).unwrap();
                assert_eq!(w.map_len, class_bytes + PAGE, "the class's size");
                let start = w.ptr.as_ptr() as usize;
                assert_eq!(&perms(start)[..3], "rw-", "round {round}, class {c}");
                // SAFETY: the mapping has its class's code pages, readable.
                let rest = unsafe {
                    std::slice::from_raw_parts(w.ptr.as_ptr().add(small), class_bytes - small)
                };
                assert!(
                    rest.iter().all(|&b| b == 0xCC || b == 0),
                    "round {round}, class {c}: earlier code left behind"
                );
                let x = w.finalize().unwrap();
                assert_eq!(&perms(x.start())[..3], "r-x");
                assert_eq!(&perms(x.start() + class_bytes)[..3], "---");
                assert_eq!(x.bytes(), &vec![0xC3; small][..]);
            }
        }
    }

    #[test]
    fn a_module_takes_the_smallest_class_that_holds_its_code() {
        assert_eq!(class_of(0), Some(0));
        assert_eq!(class_of(PAGE), Some(0));
        assert_eq!(class_of(PAGE + 1), Some(1));
        assert_eq!(class_of(2 * PAGE), Some(1));
        assert_eq!(class_of(4 * PAGE + 1), Some(3));
        assert_eq!(class_of(8 * PAGE + 1), Some(4));
        assert_eq!(class_of(POOL_CODE_MAX), Some(4));
        assert_eq!(class_of(POOL_CODE_MAX + 1), None);
        let x = WritableCode::new(&[0xC3; 100], &[], 1)
            .unwrap()
            .finalize()
            .unwrap();
        assert_eq!(x.map_len, 2 * PAGE, "one code page and the guard");
        let y = WritableCode::new(&vec![0xC3; POOL_CODE_MAX + 1], &[], 1)
            .unwrap()
            .finalize()
            .unwrap();
        assert_eq!(
            y.map_len,
            POOL_CODE_MAX + 2 * PAGE,
            "unpooled: its pages and the guard"
        );
    }
}
