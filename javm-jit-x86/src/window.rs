//! Guest windows: per instance, one reservation of
//! `[protection record | write shadow | context page | 4 GiB guest window | guard]`,
//! the guest window and guard `PROT_NONE` until units are materialized.
//!
//! **The write shadow** has one byte per 8-byte granule of guest memory (512 MiB,
//! reserved without swap, so only the parts written cost memory). Compiled stores
//! check it instead of relying on page protection: [`SHADOW_FULL`] means any access
//! of up to 8 bytes starting in the granule may store without further checks (its
//! page is `PresentRw`, and so is the next page if the granule is its page's last);
//! [`SHADOW_IN_PAGE`] means the page is `PresentRw` but the next is not, so only an
//! access that stays in the page may; zero sends the store to the run loop, which
//! applies the shared access rule. Guest pages are thus accessible a whole
//! materialization unit at a time and never change protection per page, so no guest
//! can split its window into more mappings than its layout has units.
//!
//! Compiled code addresses guest memory as `GS base + (32-bit address)`, so it can reach
//! at most `4 GiB + 7` bytes past the base: the guard (64 KiB) catches the bytes an
//! access puts past 2^32, and the next reservation (whose first pages are a
//! protection record) is never adjacent to a window.
//!
//! **The protection record** holds one bit per guest page, set by [`protect`] — the
//! only function that changes a guest page's protection — *before* it calls
//! `mprotect`, plus a summary bit per record word. A guest page can differ from a
//! fresh reservation (be accessible, or hold bytes) only if `protect` was called for
//! it, so the record names a superset of the pages to restore; a second bitmap says
//! which recorded pages are read-write now. Windows are pooled: releasing one makes
//! exactly the recorded pages inaccessible and zero (one `mprotect` over the span of
//! the recorded pages, so the reservation's mappings merge back into one, except
//! the ranges it keeps — see below), which costs time proportional to
//! what the instance touched — nothing for an instance that touched no page. Pages
//! that are read-write and resident are zeroed where they are, up to
//! [`RETAIN_PAGES`] per window, so the next instance does not fault them in again;
//! the rest are discarded (`madvise(MADV_DONTNEED)`). Past
//! [`MAX_RESET_RUNS`] runs the whole guest range is replaced by a fresh reservation
//! instead (one 4 GiB `mmap(MAP_FIXED)`). A reused window is indistinguishable from a
//! fresh one to any guest and to the host (see [`Window::prime`]); only its
//! mappings may differ:
//!
//! **Kept ranges.** Making part of an inaccessible mapping read-write splits it,
//! and a split costs more than the protection change itself. So up to
//! [`KEPT_RANGES`] ranges that `protect` made read-write (in practice the units an
//! instance materialized) are marked to stay mappings of their own after a reset
//! ([`Kept`]), and the next instance that materializes the same unit changes a
//! whole mapping's protection. A window's guest range thus has at most
//! `2 × KEPT_RANGES + 1` mappings while pooled, all inaccessible.

use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::Mutex;

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, mprotect, munmap};

use crate::ctx::{CTX_GAP, CTX_PAGE, CTX_SIZE, JitContext, KICK, Kick};

/// Bytes of guest address space.
pub(crate) const GUEST_SIZE: usize = 1 << 32;
/// Inaccessible bytes after the guest window.
pub(crate) const GUARD_SIZE: usize = 64 << 10;
/// Guest pages.
const PAGES: usize = GUEST_SIZE >> 12;
/// Words of the record: one bit per guest page.
const RECORD_WORDS: usize = PAGES / 64;
/// Words of the summary: one bit per record word.
const SUMMARY_WORDS: usize = RECORD_WORDS / 64;
/// Read-write ranges a window keeps as mappings of their own (see [`Kept`]).
const KEPT_RANGES: usize = 16;
/// Bytes of the protection record, a page multiple.
const RECORD_SIZE: usize =
    ((2 + 2 + KEPT_RANGES + SUMMARY_WORDS + 2 * RECORD_WORDS) * 8).next_multiple_of(4096);
/// Bytes of the write shadow: one per 8-byte granule of the guest range.
const SHADOW_SIZE: usize = GUEST_SIZE >> 3;
/// Shadow value: stores of up to 8 bytes starting in this granule may proceed.
pub(crate) const SHADOW_FULL: u8 = 2;
/// Shadow value: the granule's page is writable, the next page is not.
pub(crate) const SHADOW_IN_PAGE: u8 = 3;
/// Displacement of the shadow from the guest base: the byte of granule `g` is at
/// `base + SHADOW_DISP + g` (`gs:[SHADOW_DISP + g]` in compiled code).
pub(crate) const SHADOW_DISP: i32 = -((SHADOW_SIZE + CTX_PAGE) as i32);
/// Bytes before guest address 0: the record, the shadow and the context page.
const HEADER: usize = RECORD_SIZE + SHADOW_SIZE + CTX_PAGE;
const TOTAL: usize = HEADER + GUEST_SIZE + GUARD_SIZE;
/// Windows kept for reuse.
const POOL_MAX: usize = 32;
/// Guest pages a reset may zero in place instead of discarding, per window: their
/// memory stays with the pooled window (at most `POOL_MAX × 256 KiB` = 8 MiB, plus
/// their shadow pages), and the next instance using the window does not fault them
/// in again — on the development machine a fresh anonymous page's first touch costs
/// more than zeroing it.
const RETAIN_PAGES: usize = 64;
/// Runs of recorded pages a release restores one by one; past this many, it
/// replaces the whole guest range. Measured on the development machine: restoring a
/// run (`mprotect` + `madvise`) costs about 4 µs, a new guest range with its priming
/// about 23 µs plus 1 µs per run it replaces; they cross between 8 and 16 runs.
pub(crate) const MAX_RESET_RUNS: usize = 8;

/// The ranges of guest pages that [`protect`] made read-write and marked as
/// excluded from core dumps (`MADV_DONTDUMP`), so that each stays a mapping of its
/// own, separate from its inaccessible neighbours, when a reset makes it
/// inaccessible again: the kernel merges neighbouring mappings only if their flags
/// agree. The next instance that makes the same range read-write (an instance of
/// the same layout materializing the same unit) then changes the protection of a
/// whole mapping instead of splitting one, which costs a third as much here
/// (DESIGN-DECISIONS §112). The flag changes nothing a guest or the host can
/// observe but the mappings, and at most [`KEPT_RANGES`] ranges are kept: a range
/// beyond them is not marked, and the next reset clears every mark, so the guest
/// range merges back into one mapping.
#[repr(C)]
#[derive(Default)]
struct Kept {
    /// Entries of `ranges` in use.
    len: u64,
    /// Non-zero once a range could not be kept (the list was full).
    overflowed: u64,
    /// (first page number, pages) of each kept range.
    ranges: [(u32, u32); KEPT_RANGES],
}

impl Kept {
    /// Keep the range of `pages` pages from page number `n`, at `at` in the window:
    /// mark it unless it is kept already. A failed mark is ignored: the range is
    /// then simply split and merged as before.
    ///
    /// # Safety
    /// `at` must be the range's first byte inside a live window owned by the
    /// caller's instance.
    unsafe fn keep(&mut self, at: NonNull<libc::c_void>, n: u32, pages: u32) {
        let len = (self.len as usize).min(KEPT_RANGES);
        if self.ranges[..len].contains(&(n, pages)) {
            return;
        }
        if len == KEPT_RANGES {
            self.overflowed = 1;
            return;
        }
        // SAFETY: the range lies inside the window (caller's contract); the flag
        // only keeps its pages out of core dumps.
        let marked =
            unsafe { madvise(at, (pages as usize) << 12, MmapAdvise::MADV_DONTDUMP) }.is_ok();
        if marked {
            self.ranges[len] = (n, pages);
            self.len = len as u64 + 1;
        }
    }
}

/// The protection record at the start of a reservation.
#[repr(C)]
struct Record {
    /// Summary words `lo..hi` hold every set bit (`lo >= hi`: none); a fresh
    /// reservation's zeros read as "none".
    lo: u64,
    hi: u64,
    /// The read-write ranges kept as mappings of their own.
    kept: Kept,
    summary: [u64; SUMMARY_WORDS],
    words: [u64; RECORD_WORDS],
    /// One bit per guest page: set while its protection is read-write (a subset of
    /// `words`), so a reset knows which pages it may zero in place.
    rw: [u64; RECORD_WORDS],
}

impl Record {
    /// The summary words that may hold set bits.
    fn span(&self) -> std::ops::Range<usize> {
        (self.lo as usize).min(SUMMARY_WORDS)..(self.hi as usize).min(SUMMARY_WORDS)
    }

    /// Whether page number `n` (`< 2^20`) is read-write.
    fn is_rw(&self, n: usize) -> bool {
        self.rw[n / 64] & (1 << (n % 64)) != 0
    }

    /// Record page number `n` (`< 2^20`) with its new protection.
    #[inline(always)]
    fn insert_with(&mut self, n: usize, rw: bool) {
        self.insert(n);
        if rw {
            self.rw[n / 64] |= 1 << (n % 64);
        } else {
            self.rw[n / 64] &= !(1 << (n % 64));
        }
    }

    /// Record page number `n` (`< 2^20`).
    #[inline(always)]
    fn insert(&mut self, n: usize) {
        let (w, si) = (n / 64, n / 4096);
        self.words[w] |= 1 << (n % 64);
        self.summary[si] |= 1 << (w % 64);
        if self.lo >= self.hi {
            (self.lo, self.hi) = (si as u64, si as u64 + 1);
        } else {
            self.lo = self.lo.min(si as u64);
            self.hi = self.hi.max(si as u64 + 1);
        }
    }
}

const _: () = assert!(std::mem::size_of::<Record>() <= RECORD_SIZE);

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

    /// Return a window to the pool after restoring its guest pages (or unmap it).
    pub(crate) fn release(mut self) {
        if self.reset().is_ok() {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        }
    }

    fn reserve() -> io::Result<Window> {
        const LEN: NonZeroUsize = NonZeroUsize::new(TOTAL).expect("the window is not empty");
        // SAFETY: a fresh anonymous reservation at an address of the kernel's choice
        // aliases nothing.
        let p = unsafe {
            mmap_anonymous(
                None,
                LEN,
                ProtFlags::PROT_NONE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
            )
        }?;
        let mut w = Window { start: p.cast() };
        // SAFETY: the record, the shadow and the context page are the first `HEADER`
        // bytes of the reservation `w` owns.
        unsafe { mprotect(p, HEADER, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE) }?;
        w.prime()?;
        Ok(w)
    }

    /// Give the (fresh, unsplit) guest mapping its anonymous-memory bookkeeping
    /// before anything splits it: write one byte with the whole range writable, then
    /// make it inaccessible and zero again. Every piece that protection changes split
    /// off later shares that bookkeeping, which is what lets the kernel merge the
    /// pieces back into one mapping when a reset restores them (pieces that each got
    /// their own on first touch never merge, and a pooled window would collect
    /// mappings towards `vm.max_map_count`).
    fn prime(&mut self) -> io::Result<()> {
        let base = self.guest_range();
        // SAFETY: the guest range of this reservation, used by no instance: it is
        // made writable as a whole (one mapping, so no split), one byte is written,
        // and the range is made inaccessible and discarded again.
        unsafe {
            mprotect(
                base,
                GUEST_SIZE,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            )?;
            base.cast::<u8>().write_volatile(1);
            mprotect(base, GUEST_SIZE, ProtFlags::PROT_NONE)?;
            madvise(base, 4096, MmapAdvise::MADV_DONTNEED)?;
        }
        Ok(())
    }

    fn record(&mut self) -> &mut Record {
        // SAFETY: the record occupies the first bytes of the reservation, mapped
        // read-write for the window's lifetime; `&mut self` makes the access
        // exclusive (no guest code runs while the window is being reset).
        unsafe { &mut *self.start.as_ptr().cast::<Record>() }
    }

    /// The runs of recorded pages as `(first page, pages)`, or `None` if there are
    /// more than [`MAX_RESET_RUNS`].
    fn recorded_runs(&mut self) -> Option<Vec<(usize, usize)>> {
        let rec = self.record();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for si in rec.span() {
            let mut s = rec.summary[si];
            while s != 0 {
                let w = si * 64 + s.trailing_zeros() as usize;
                s &= s - 1;
                let mut bits = rec.words.get(w).copied().unwrap_or(0);
                while bits != 0 {
                    let page = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    match runs.last_mut() {
                        Some((first, n)) if *first + *n == page => *n += 1,
                        _ => {
                            if runs.len() == MAX_RESET_RUNS {
                                return None;
                            }
                            runs.push((page, 1));
                        }
                    }
                }
            }
        }
        Some(runs)
    }

    /// Make every recorded page inaccessible and zero again, clear the record and the
    /// context.
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        if self.record().span().is_empty() {
            // SAFETY: the context lies in the context page, mapped read-write and
            // owned by this window.
            unsafe { std::ptr::write_bytes(self.ctx().cast::<u8>(), 0, CTX_SIZE) };
            return Ok(());
        }
        match self.recorded_runs() {
            Some(runs) => {
                // Unrecorded pages are inaccessible already, so one `mprotect` over the
                // span of all runs (below) restores every protection at once: one
                // system call and one TLB flush, and the mapping merges back whole
                // but for the kept ranges.
                let span = match (runs.first(), runs.last()) {
                    (Some(&(first, _)), Some(&(last, n))) => Some((first, last + n - first)),
                    _ => None,
                };
                let mut budget = RETAIN_PAGES;
                let mut resident = Vec::new();
                for (page, n) in runs {
                    // Split the run where its pages' protection changes between
                    // read-write (which may be zeroed in place) and anything else.
                    let mut i = page;
                    while i < page + n {
                        let rw = self.record().is_rw(i);
                        let mut j = i + 1;
                        while j < page + n && self.record().is_rw(j) == rw {
                            j += 1;
                        }
                        if !(rw && self.zero_in_place(i, j - i, &mut budget, &mut resident)?) {
                            self.restore(i, j - i)?;
                        }
                        i = j;
                    }
                }
                if let Some((first, n)) = span {
                    let base = self.guest_range();
                    // SAFETY: the span lies inside this window's guest range, which no
                    // instance uses any more; its pages outside the runs were
                    // inaccessible already.
                    unsafe { mprotect(base.byte_add(first << 12), n << 12, ProtFlags::PROT_NONE)? };
                }
            }
            None => {
                self.discard_guest_range()?;
                self.discard_shadow(0, PAGES)?;
                // A fresh mapping: no range is marked any more.
                self.record().kept = Kept::default();
            }
        }
        if self.record().kept.overflowed != 0 {
            // More ranges than a window keeps: clear every mark, so that the guest
            // range (inaccessible everywhere by now) merges back into one mapping.
            let base = self.guest_range();
            // SAFETY: the whole guest range of this window, which no instance uses
            // any more; the flag only concerns core dumps.
            unsafe { madvise(base, GUEST_SIZE, MmapAdvise::MADV_DODUMP)? };
            self.record().kept = Kept::default();
        }
        let rec = self.record();
        for si in rec.span() {
            let mut s = std::mem::take(&mut rec.summary[si]);
            while s != 0 {
                let w = si * 64 + s.trailing_zeros() as usize;
                s &= s - 1;
                if let Some(word) = rec.words.get_mut(w) {
                    *word = 0;
                }
                if let Some(word) = rec.rw.get_mut(w) {
                    *word = 0;
                }
            }
        }
        (rec.lo, rec.hi) = (0, 0);
        // SAFETY: the context lies in the context page, mapped read-write and owned
        // by this window.
        unsafe { std::ptr::write_bytes(self.ctx().cast::<u8>(), 0, CTX_SIZE) };
        Ok(())
    }

    /// Discard the contents of guest pages `page..page + n` (and their shadow bytes);
    /// the caller makes them inaccessible.
    fn restore(&mut self, page: usize, n: usize) -> io::Result<()> {
        let base = self.guest_range();
        // SAFETY: the run lies inside this window's guest range (pages < 2^20), which
        // no instance uses any more: discarding its anonymous pages affects nothing
        // else.
        unsafe {
            let p = base.byte_add(page << 12);
            madvise(p, n << 12, MmapAdvise::MADV_DONTNEED)?;
        }
        self.discard_shadow(page, n)
    }

    /// Zero the read-write guest pages `page..page + n` where they are, keeping
    /// their memory so the next instance of this window does not fault it in again
    /// (the caller makes them inaccessible) — if their resident pages fit in
    /// `budget` (which they then use up). `Ok(false)`: they do not fit, or residency is unknown; the
    /// caller restores them the usual way. `resident` is scratch space.
    fn zero_in_place(
        &mut self,
        page: usize,
        n: usize,
        budget: &mut usize,
        resident: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let p = self.guest_range().as_ptr().cast::<u8>();
        resident.clear();
        resident.resize(n, 0);
        // SAFETY: `page..page + n` lies inside this window's guest range; `mincore`
        // only reports residency into `resident`, which has one byte per page. (nix
        // has no wrapper for `mincore`.)
        let r = unsafe { libc::mincore(p.add(page << 12).cast(), n << 12, resident.as_mut_ptr()) };
        if r != 0 {
            return Ok(false);
        }
        let count = resident.iter().filter(|&&b| b & 1 != 0).count();
        if count > *budget {
            return Ok(false);
        }
        *budget -= count;
        for (k, _) in resident.iter().enumerate().filter(|(_, b)| **b & 1 != 0) {
            // SAFETY: the page is read-write (the record says so: every protection
            // change goes through `protect`), inside this window, and no instance
            // uses the window any more. Reading first spares pages that are still
            // zero (such as the kernel's shared zero page after a read) a write.
            unsafe {
                let at = p.add((page + k) << 12);
                let bytes = std::slice::from_raw_parts(at, 4096);
                if !all_zero(bytes) {
                    std::ptr::write_bytes(at, 0, 4096);
                }
            }
        }
        self.zero_shadow_in_place(page, n);
        Ok(true)
    }

    /// Zero the shadow bytes of guest pages `page..page + n` where they are, writing
    /// only where they are not zero already (a shadow page no store ever checked
    /// maps the kernel's zero page on this read; one that was written is resident).
    fn zero_shadow_in_place(&mut self, page: usize, n: usize) {
        let (lo, hi) = (page << 9, (page + n) << 9);
        let shadow = self.shadow().as_ptr().cast::<u8>();
        // SAFETY: `lo..hi` lies inside the shadow (pages < 2^20), mapped read-write
        // for the window's lifetime, and no instance uses the window any more.
        unsafe {
            let bytes = std::slice::from_raw_parts_mut(shadow.add(lo), hi - lo);
            for chunk in bytes.chunks_mut(512) {
                if !all_zero(chunk) {
                    chunk.fill(0);
                }
            }
        }
    }

    /// Zero the shadow bytes of guest pages `page..page + n` (rounded out to whole
    /// shadow pages: only recorded pages ever have non-zero shadow bytes, and the
    /// whole window is being reset).
    fn discard_shadow(&mut self, page: usize, n: usize) -> io::Result<()> {
        let lo = (page << 9) & !4095;
        let hi = ((page + n) << 9).next_multiple_of(4096).min(SHADOW_SIZE);
        // SAFETY: `lo..hi` lies inside this window's shadow, read-write for the
        // window's lifetime and used by no instance now; discarding anonymous pages
        // makes them read as zero.
        unsafe {
            madvise(
                self.shadow().byte_add(lo),
                hi.saturating_sub(lo),
                MmapAdvise::MADV_DONTNEED,
            )?;
        }
        Ok(())
    }

    /// The first byte of the write shadow.
    fn shadow(&mut self) -> NonNull<libc::c_void> {
        // SAFETY: the shadow starts right after the record, inside the reservation.
        unsafe { self.start.add(RECORD_SIZE).cast() }
    }

    /// The guest range's first byte, for protection changes of the whole window.
    fn guest_range(&mut self) -> NonNull<libc::c_void> {
        // SAFETY: HEADER < TOTAL: the result stays inside the reservation.
        unsafe { self.start.add(HEADER).cast() }
    }

    /// Replace the guest range with a fresh inaccessible reservation.
    fn discard_guest_range(&mut self) -> io::Result<()> {
        const LEN: NonZeroUsize = NonZeroUsize::new(GUEST_SIZE).expect("4 GiB");
        let at = NonZeroUsize::new(self.guest_range().as_ptr() as usize);
        // SAFETY: replaces exactly the guest range of this reservation, which no
        // instance uses any more, with a fresh inaccessible anonymous mapping.
        unsafe {
            mmap_anonymous(
                at,
                LEN,
                ProtFlags::PROT_NONE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE | MapFlags::MAP_FIXED,
            )
        }?;
        self.prime()
    }

    /// The context, at the end of the context page (just below guest address 0).
    pub(crate) fn ctx(&self) -> *mut JitContext {
        // SAFETY: CTX_SIZE + CTX_GAP ≤ CTX_PAGE: the context lies inside the context
        // page, CTX_GAP bytes below the guest base.
        unsafe { self.start.as_ptr().add(HEADER - CTX_GAP - CTX_SIZE).cast() }
    }

    /// The inline jump table (`ctx::JT_INLINE_ENTRIES` entries) at the start of
    /// the context page.
    pub(crate) fn jt_inline(&self) -> *mut u64 {
        // SAFETY: the context page is the last CTX_PAGE bytes of the header; the
        // table fits before the context (asserted in `ctx`).
        unsafe { self.start.as_ptr().add(HEADER - CTX_PAGE).cast() }
    }

    /// The instance's [`Kick`], in the context page after the context.
    pub(crate) fn kick(&self) -> *const Kick {
        // SAFETY: KICK ≤ CTX_GAP < CTX_PAGE: the slot lies inside the context page,
        // after the context, and is 8-byte aligned (the page and HEADER are).
        unsafe { self.start.as_ptr().add(HEADER - KICK).cast() }
    }

    /// Guest address 0, for reading present pages only.
    pub(crate) fn guest_base(&self) -> *const u8 {
        // SAFETY: HEADER < TOTAL: the result stays inside the reservation.
        unsafe { self.start.as_ptr().add(HEADER) }
    }

    /// Guest address 0, for anything that may change the guest range: running guest
    /// code, the fault handler, protection changes (through [`protect`], which
    /// records them), stores.
    pub(crate) fn guest_base_mut(&mut self) -> *mut u8 {
        // SAFETY: HEADER < TOTAL: the result stays inside the reservation.
        unsafe { self.start.as_ptr().add(HEADER) }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmapping the reservation this value owns.
        let _ = unsafe { munmap(self.start.cast(), TOTAL) };
    }
}

/// Change the protection of the `pages` guest pages from page address `first` of the
/// window at `base`, recording them in the window's protection record first (see the
/// module documentation), and keeping a range made read-write as a mapping of its
/// own ([`Kept`]). Async-signal-safe (plain stores and at most two system calls),
/// so the fault handler uses it too.
///
/// # Safety
/// `base` must be the guest base of a live window owned by the caller's instance, and
/// the pages must lie below 2^32.
pub(crate) unsafe fn protect(
    base: *mut u8,
    first: u32,
    pages: u32,
    prot: ProtFlags,
) -> Result<(), i32> {
    let n = (first >> 12) as usize;
    let rw = prot == ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // SAFETY: the record starts `HEADER` bytes below the guest base of the window
    // (caller's contract), is mapped read-write, and only the owning instance's
    // thread touches it.
    let record = unsafe { &mut *base.sub(HEADER).cast::<Record>() };
    for i in n..(n + pages as usize).min(PAGES) {
        // `i < 2^20`, so both indices are in bounds.
        record.insert_with(i, rw);
    }
    // SAFETY: the pages lie inside the window (caller's contract), so the address is
    // not null.
    let at = unsafe { NonNull::new_unchecked(base.add(first as usize).cast()) };
    if rw {
        // SAFETY: as above: the range lies inside the window.
        unsafe { record.kept.keep(at, n as u32, pages) };
    }
    // SAFETY: as above.
    unsafe { mprotect(at, (pages as usize) << 12, prot) }.map_err(|e| e as i32)
}

/// Discard the contents of the `pages` guest pages from page address `first` of the
/// window at `base` (they read as zero afterwards; their protection is unchanged).
/// The pages were made accessible through [`protect`] before, so they are recorded.
///
/// # Safety
/// `base` must be the guest base of a live window owned by the caller's instance,
/// with no guest code running, and the pages must lie below 2^32.
pub(crate) unsafe fn discard(base: *mut u8, first: u32, pages: u32) -> Result<(), i32> {
    // SAFETY: the pages lie inside the window (caller's contract), so the address is
    // not null, and discarding private anonymous pages touches nothing else.
    unsafe {
        let at = NonNull::new_unchecked(base.add(first as usize).cast());
        madvise(at, (pages as usize) << 12, MmapAdvise::MADV_DONTNEED).map_err(|e| e as i32)
    }
}

/// Clear the shadow bytes of guest page `page` (a page address), which just left
/// `PresentRw`, so that stores to it go to the run loop again; if the page below is
/// `PresentRw` (`below_rw`), its last granule no longer lets a store run into `page`.
///
/// # Safety
/// As for [`mark_writable`].
pub(crate) unsafe fn mark_unwritable(base: *mut u8, page: u32, below_rw: bool) {
    let n = (page >> 12) as usize;
    // SAFETY: as in `mark_writable`: the shadow has a byte for each granule of every
    // page `< 2^20`, including the last granule of page `n - 1`.
    unsafe {
        let granules = base.offset(SHADOW_DISP as isize).add(n << 9);
        std::ptr::write_bytes(granules, 0, 512);
        if below_rw && n > 0 {
            *granules.sub(1) = SHADOW_IN_PAGE;
        }
    }
}

/// Set the shadow bytes of guest page `page` (a page address), which just became
/// `PresentRw`, and of the last granule of the page below it. `below_rw` / `above_rw`:
/// whether the neighbouring pages are `PresentRw`.
///
/// # Safety
/// `base` must be the guest base of a live window owned by the caller's instance,
/// with no guest code running.
pub(crate) unsafe fn mark_writable(base: *mut u8, page: u32, below_rw: bool, above_rw: bool) {
    let n = (page >> 12) as usize;
    // SAFETY: the shadow lies `-SHADOW_DISP` bytes below the guest base (caller's
    // contract) and has a byte for each granule of every page `< 2^20`, so the
    // granules of page `n` and the last granule of page `n - 1` are inside it.
    unsafe {
        let shadow = base.offset(SHADOW_DISP as isize);
        let granules = shadow.add(n << 9);
        if n + 1 == PAGES {
            // The top page is never `SHADOW_FULL`: a store range that reaches it may
            // wrap past 2^32 (see `codegen/stores.rs`).
            std::ptr::write_bytes(granules, SHADOW_IN_PAGE, 512);
        } else {
            std::ptr::write_bytes(granules, SHADOW_FULL, 511);
            *granules.add(511) = if above_rw {
                SHADOW_FULL
            } else {
                SHADOW_IN_PAGE
            };
        }
        if below_rw && n > 0 {
            *granules.sub(1) = SHADOW_FULL;
        }
    }
}

/// Whether `bytes` are all zero. Folds each 256-byte stretch with OR, which the
/// compiler vectorizes, instead of stopping at the first non-zero byte, which it
/// does not: a recycled window reads every resident page it keeps, most of which
/// are zero or nearly so.
fn all_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(256)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_sees_any_non_zero_byte() {
        let mut page = vec![0u8; 4096];
        assert!(all_zero(&page));
        assert!(all_zero(&page[..1]));
        assert!(all_zero(&[]));
        for at in [0, 1, 255, 256, 2047, 4094, 4095] {
            for value in [1u8, 0x80, 0xff] {
                page[at] = value;
                assert!(!all_zero(&page), "byte {at} = {value:#x}");
                page[at] = 0;
            }
        }
        // A slice that is not a whole number of stretches.
        assert!(!all_zero(&[0, 0, 0, 7]));
        assert!(all_zero(&page));
    }

    /// The mappings of `/proc/self/maps` that overlap `[lo, hi)`, as
    /// `(start, end, permissions)`.
    fn maps_in(lo: usize, hi: usize) -> Vec<(usize, usize, String)> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (range, perms) = (f.next()?, f.next()?);
                let (a, b) = range.split_once('-')?;
                let a = usize::from_str_radix(a, 16).ok()?;
                let b = usize::from_str_radix(b, 16).ok()?;
                (a < hi && lo < b).then(|| (a, b, perms.to_owned()))
            })
            .collect()
    }

    fn guest_range(w: &Window) -> (usize, usize) {
        let lo = w.guest_base() as usize;
        (lo, lo + GUEST_SIZE)
    }

    /// Make `pages` (page numbers) read-write through `protect` and write to them.
    fn touch(w: &mut Window, pages: &[usize]) {
        let base = w.guest_base_mut();
        for &p in pages {
            // SAFETY: page `p` of the window this test owns.
            unsafe {
                protect(
                    base,
                    (p << 12) as u32,
                    1,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                )
            }
            .unwrap();
            // SAFETY: the page was just made writable.
            unsafe { *base.add((p << 12) + 5) = 7 };
        }
    }

    /// After a reset the guest range is inaccessible everywhere, split at most by
    /// its kept ranges, and the touched pages read as zero.
    fn assert_fresh(w: &mut Window, pages: &[usize]) {
        let (lo, hi) = guest_range(w);
        let maps = maps_in(lo, hi);
        let kept = w.record().kept.len as usize;
        assert!(
            maps.len() <= 2 * kept + 1,
            "{kept} kept ranges split the guest range into {maps:x?}"
        );
        assert_eq!(
            (maps[0].0 <= lo, maps[maps.len() - 1].1 >= hi),
            (true, true)
        );
        assert!(
            maps.iter().all(|m| m.2 == "---p"),
            "the guest range is inaccessible: {maps:x?}"
        );
        let base = w.guest_base_mut();
        for &p in pages {
            // SAFETY: as in `touch`.
            unsafe { protect(base, (p << 12) as u32, 1, ProtFlags::PROT_READ) }.unwrap();
            // SAFETY: the page is readable.
            assert_eq!(unsafe { *base.add((p << 12) + 5) }, 0, "page {p:#x} zero");
        }
        w.reset().unwrap();
    }

    #[test]
    fn a_reset_restores_exactly_the_recorded_pages() {
        let mut w = Window::reserve().unwrap();
        assert_eq!(
            w.recorded_runs(),
            Some(vec![]),
            "a fresh window records nothing"
        );
        let pages = [5, 6, 7, 0x100, 0xFFFFF, 0];
        touch(&mut w, &pages);
        assert_eq!(
            w.recorded_runs(),
            Some(vec![(0, 1), (5, 3), (0x100, 1), (0xFFFFF, 1)])
        );
        let (lo, hi) = guest_range(&w);
        assert!(maps_in(lo, hi).len() > 1, "protection split the mapping");
        w.reset().unwrap();
        assert_eq!(w.recorded_runs(), Some(vec![]));
        assert_fresh(&mut w, &pages);
        // Reuse after reuse leaves an inaccessible range.
        for round in 0..3 {
            let more = [round, 40 + round, 0x200 + 3 * round];
            touch(&mut w, &more);
            w.reset().unwrap();
            assert_fresh(&mut w, &more);
        }
    }

    /// Make the `pages` pages from page number `first` read-write through
    /// `protect`, as one range.
    fn protect_rw(w: &mut Window, first: usize, pages: u32) {
        let base = w.guest_base_mut();
        // SAFETY: pages of the window this test owns.
        unsafe {
            protect(
                base,
                (first << 12) as u32,
                pages,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            )
        }
        .unwrap();
    }

    #[test]
    fn a_kept_range_stays_a_mapping_of_its_own_until_too_many_are_kept() {
        let mut w = Window::reserve().unwrap();
        let (lo, hi) = guest_range(&w);
        assert_eq!(maps_in(lo, hi).len(), 1, "a fresh window is one mapping");
        // A unit of 16 pages, made read-write, reset, and made read-write again:
        // after the first time it is a mapping of its own, so protecting it again
        // splits nothing (three mappings throughout).
        for round in 0..3 {
            protect_rw(&mut w, 0x30, 16);
            let maps = maps_in(lo, hi);
            assert_eq!(maps.len(), 3, "round {round}: {maps:x?}");
            assert_eq!(maps[1].2, "rw-p", "round {round}: {maps:x?}");
            assert_eq!(maps[1].1 - maps[1].0, 16 << 12);
            w.reset().unwrap();
            let maps = maps_in(lo, hi);
            assert_eq!(maps.len(), 3, "round {round}, after the reset: {maps:x?}");
            assert!(maps.iter().all(|m| m.2 == "---p"), "{maps:x?}");
        }
        // More ranges than a window keeps (here single pages side by side, one run
        // for the reset): the next reset merges the guest range back into one
        // mapping, and keeping starts afresh.
        for i in 0..=KEPT_RANGES {
            protect_rw(&mut w, 0x100 + i, 1);
        }
        assert_eq!(w.recorded_runs().map(|r| r.len()), Some(1));
        assert_eq!(w.record().kept.len as usize, KEPT_RANGES);
        assert_ne!(w.record().kept.overflowed, 0);
        w.reset().unwrap();
        assert_eq!(maps_in(lo, hi).len(), 1, "{:x?}", maps_in(lo, hi));
        assert_eq!(w.record().kept.len, 0);
        assert_fresh(&mut w, &[0x30, 0x100]);
    }

    #[test]
    fn more_runs_than_the_limit_replace_the_whole_range() {
        let mut w = Window::reserve().unwrap();
        let pages: Vec<usize> = (0..=MAX_RESET_RUNS).map(|i| 3 + 2 * i).collect();
        touch(&mut w, &pages);
        assert_eq!(w.recorded_runs(), None);
        w.reset().unwrap();
        assert_eq!(w.recorded_runs(), Some(vec![]));
        assert_fresh(&mut w, &pages);
    }
}
