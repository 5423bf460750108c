//! Guest windows: per instance, one reservation of
//! `[context page | 4 GiB guest window | guard]`, all `PROT_NONE` except the context.
//!
//! Compiled code addresses guest memory as `R15 + (32-bit address)`, so it can reach
//! at most `4 GiB + 7` bytes past the base: the guard (64 KiB) catches the bytes an
//! access puts past 2^32, and the next reservation (whose first page is a context
//! page) is never adjacent to a window. Windows are pooled: releasing one discards its
//! pages and makes it inaccessible again, so a reused window is indistinguishable from
//! a fresh one.

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
    pub(crate) fn release(self) {
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
        let w = Window { start };
        // SAFETY: the context page is the first page of the reservation `w` owns.
        if unsafe { libc::mprotect(p, CTX_PAGE, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(w)
    }

    /// Discard every guest page (they read as zero again) and make the window
    /// inaccessible; zero the context.
    fn reset(&self) -> io::Result<()> {
        // SAFETY: replaces exactly the guest range of this reservation, which no
        // instance uses any more, with a fresh inaccessible anonymous mapping.
        let p = unsafe {
            libc::mmap(
                self.guest_base().cast(),
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
        // SAFETY: the context page is mapped read-write and owned by this window.
        unsafe { std::ptr::write_bytes(self.start.as_ptr(), 0, CTX_PAGE) };
        Ok(())
    }

    /// The context, at the end of the context page (just below guest address 0).
    pub(crate) fn ctx(&self) -> *mut JitContext {
        // SAFETY: CTX_SIZE ≤ CTX_PAGE: the context lies inside the context page.
        unsafe { self.start.as_ptr().add(CTX_PAGE - CTX_SIZE).cast() }
    }

    /// Guest address 0.
    pub(crate) fn guest_base(&self) -> *mut u8 {
        // SAFETY: CTX_PAGE < TOTAL: the result stays inside the reservation.
        unsafe { self.start.as_ptr().add(CTX_PAGE) }
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
