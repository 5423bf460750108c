//! Guest windows: per instance, one reservation of
//! `[context page | 4 GiB guest window | guard]`, all `PROT_NONE` except the context.
//!
//! Compiled code addresses guest memory as `R15 + (32-bit address)`, so it can reach
//! at most `4 GiB + 7` bytes past the base: the guard (64 KiB) catches the bytes an
//! access puts past 2^32, and the next reservation (whose first page is a context
//! page) is never adjacent to a window. Windows are pooled: releasing one discards its
//! pages and makes it inaccessible again, so a reused window is indistinguishable from
//! a fresh one.
//!
//! Discarding costs a 4 GiB `mmap(MAP_FIXED)`, so it is skipped for a window whose
//! guest range was never handed out for writing: the only way to get a mutable guest
//! base (which every protection change, fault handler and store needs) is
//! [`Window::guest_base_mut`], and that marks the window dirty. An instance that was
//! created and dropped without running or host writes returns its window untouched.

use std::io;
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::ctx::{CTX_PAGE, CTX_SIZE, JitContext};

/// Bytes of guest address space.
pub(crate) const GUEST_SIZE: usize = 1 << 32;
/// Inaccessible bytes after the guest window.
pub(crate) const GUARD_SIZE: usize = 64 << 10;
const TOTAL: usize = CTX_PAGE + GUEST_SIZE + GUARD_SIZE;
/// Windows kept for reuse.
const POOL_MAX: usize = 32;

/// One reservation. Owns its address range; dropping it unmaps the range.
#[derive(Debug)]
pub(crate) struct Window {
    start: NonNull<u8>,
    /// Whether the guest range may differ from a fresh reservation.
    dirty: bool,
}

// SAFETY: a `Window` is a plain owned address range; the pool moves it between
// threads only while no instance uses it.
unsafe impl Send for Window {}

static POOL: Mutex<Vec<Window>> = Mutex::new(Vec::new());

impl Window {
    /// Take a clean window from the pool, or reserve a new one.
    pub(crate) fn acquire() -> io::Result<Window> {
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(w) => Ok(w),
            None => Window::reserve(),
        }
    }

    /// Return a window to the pool after discarding its guest pages (or unmap it).
    pub(crate) fn release(mut self) {
        if self.reset().is_ok() {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        }
    }

    fn reserve() -> io::Result<Window> {
        // SAFETY: a fresh anonymous reservation at an address of the kernel's choice
        // aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                TOTAL,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let w = Window {
            start,
            dirty: false,
        };
        // SAFETY: the context page is the first page of the reservation `w` owns.
        if unsafe { libc::mprotect(p, CTX_PAGE, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(w)
    }

    /// Discard every guest page (they read as zero again) and make the window
    /// inaccessible, unless it is clean; zero the context.
    fn reset(&mut self) -> io::Result<()> {
        if self.dirty {
            self.discard_guest_range()?;
            self.dirty = false;
        }
        // SAFETY: the context page is mapped read-write and owned by this window.
        unsafe { std::ptr::write_bytes(self.start.as_ptr(), 0, CTX_PAGE) };
        Ok(())
    }

    /// Replace the guest range with a fresh inaccessible reservation.
    fn discard_guest_range(&self) -> io::Result<()> {
        // SAFETY: replaces exactly the guest range of this reservation, which no
        // instance uses any more, with a fresh inaccessible anonymous mapping.
        let p = unsafe {
            libc::mmap(
                self.start.as_ptr().wrapping_add(CTX_PAGE).cast(),
                GUEST_SIZE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The context, at the end of the context page (just below guest address 0).
    pub(crate) fn ctx(&self) -> *mut JitContext {
        // SAFETY: CTX_SIZE ≤ CTX_PAGE: the context lies inside the context page.
        unsafe { self.start.as_ptr().add(CTX_PAGE - CTX_SIZE).cast() }
    }

    /// Guest address 0, for reading present pages only.
    pub(crate) fn guest_base(&self) -> *const u8 {
        // SAFETY: CTX_PAGE < TOTAL: the result stays inside the reservation.
        unsafe { self.start.as_ptr().add(CTX_PAGE) }
    }

    /// Guest address 0, for anything that may change the guest range: running guest
    /// code, the fault handler, protection changes, stores. Marks the window dirty,
    /// so that releasing it discards the guest range.
    pub(crate) fn guest_base_mut(&mut self) -> *mut u8 {
        self.dirty = true;
        // SAFETY: CTX_PAGE < TOTAL: the result stays inside the reservation.
        unsafe { self.start.as_ptr().add(CTX_PAGE) }
    }

    /// Whether releasing this window would discard its guest range.
    #[cfg(test)]
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmapping the reservation this value owns.
        unsafe { libc::munmap(self.start.as_ptr().cast(), TOTAL) };
    }
}

/// Change the protection of guest page `page` (a page address) of the window at
/// `base`. Async-signal-safe (one system call), so the fault handler uses it too.
///
/// # Safety
/// `base` must be the guest base of a live window owned by the caller's instance.
pub(crate) unsafe fn protect(base: *mut u8, page: u32, prot: libc::c_int) -> Result<(), i32> {
    // SAFETY: `page < 2^32` lies inside the window (caller's contract).
    let r = unsafe { libc::mprotect(base.add(page as usize).cast(), 4096, prot) };
    if r == 0 {
        Ok(())
    } else {
        // SAFETY: reading errno right after the failing call.
        Err(unsafe { *libc::__errno_location() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether guest page `page` of the window at `base` is mapped with some access
    /// (from `/proc/self/maps`).
    fn accessible(base: *const u8, page: u32) -> bool {
        let addr = base as usize + page as usize;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next().unwrap(), f.next().unwrap());
            let (lo, hi) = range.split_once('-').unwrap();
            let lo = usize::from_str_radix(lo, 16).unwrap();
            let hi = usize::from_str_radix(hi, 16).unwrap();
            (lo..hi).contains(&addr) && perms != "---p"
        })
    }

    #[test]
    fn only_a_window_handed_out_for_writing_is_discarded() {
        let mut w = Window::reserve().unwrap();
        assert!(!w.is_dirty(), "a fresh window is clean");
        let _ = w.guest_base();
        assert!(!w.is_dirty(), "reading the base does not dirty it");
        let base = w.guest_base_mut();
        assert!(w.is_dirty());
        // SAFETY: page 0x5000 of the window this test owns.
        unsafe { protect(base, 0x5000, libc::PROT_READ | libc::PROT_WRITE) }.unwrap();
        // SAFETY: the page was just made writable.
        unsafe { *base.add(0x5000) = 7 };
        assert!(accessible(base, 0x5000));
        w.reset().unwrap();
        assert!(!w.is_dirty());
        assert!(!accessible(w.guest_base(), 0x5000), "protection discarded");
        let base = w.guest_base_mut();
        // SAFETY: as above.
        unsafe { protect(base, 0x5000, libc::PROT_READ) }.unwrap();
        // SAFETY: the page is readable.
        assert_eq!(unsafe { *base.add(0x5000) }, 0, "contents discarded");
    }
}
