//! The interpreter's memory: one flat byte buffer covering the address space up to
//! the highest mapped page, plus the shared [`PageMap`] (kind and state per page).
//!
//! The buffer is an anonymous mapping reserved without swap (`MAP_NORESERVE`), so an
//! address space that spans 4 GiB (as every standard program's does: its stack sits
//! just below 0xFEFE0000) costs only the pages actually touched. Failing to reserve it
//! is an [`EngineError::OutOfMemory`], never an abort.
//!
//! On 64-bit hosts every buffer covers the whole address space (and one page past
//! it, never accessed, so that the fast path's accesses need no index checks), and
//! buffers are recycled through a small pool: mapping and unmapping one was most of
//! the cost of a short-lived instance (a call between instances builds and drops
//! one). A released
//! buffer is zeroed over exactly the pages its map materialized — the only bytes any
//! path writes, since a page is written only once it has left `NotPresent` — in
//! place if there were at most [`RECYCLE_MAX_PAGES`] of them (they stay resident for
//! the next instance), otherwise by giving them back to the kernel, and kept.
//!
//! Fast path ([`FastView`]): an access that stays within one page whose state byte
//! allows it (any present state for loads, `PresentRw` for stores) touches the
//! buffer directly. On 64-bit hosts the view's page states and buffer are
//! fixed-size arrays over the whole address space, so the page of a 32-bit address
//! and an in-page access of up to 8 bytes are in bounds by their types: an access
//! is two checks (in the page, the state byte) and the access itself.
//! Everything else — first touch, copy-on-write, straddling or wrapping accesses,
//! faults — goes through [`PageMap::plan`] / [`PageMap::commit`], the rule both
//! engines share. Pages are materialized from their layout slabs on first touch, so
//! building an instance copies no page contents.

use std::sync::Mutex;

use memmap2::{MmapMut, MmapOptions};

use crate::engine::{EngineError, Exit, MemoryError};
use crate::gas::GasSchedule;
use crate::memory::pagemap::Unit;
use crate::memory::{
    MemoryLayout, PAGE_SHIFT, PAGE_SIZE, PageAccess, PageMap, PageState, StorageOp, bad_access_exit,
};

/// Why a guest access did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemFault {
    /// The access is rejected: page fault or (gp, below 0x10000) panic.
    Exit(Exit),
    /// The copy-on-write charge exceeds the remaining gas. Only possible when the
    /// host lowered gas or moved the PC into a block, skipping its reserve.
    OutOfGas,
    /// The write would pass the instance's memory limit (bytes).
    Limit(u64),
}

const PRESENT_RW: u8 = PageState::PresentRw.as_u8();

#[derive(Debug)]
pub(crate) struct FlatMemory {
    /// The buffer; `None` only while dropping (its reservation went back to the pool).
    bytes: Option<MmapMut>,
    map: PageMap,
    schedule: GasSchedule,
}

/// Bytes per page, as an index.
const PAGE: usize = PAGE_SIZE as usize;
/// Pages of the 32-bit address space.
#[cfg(target_pointer_width = "64")]
const SPACE_PAGES: usize = 1 << (32 - PAGE_SHIFT);
/// Bytes of a whole-space buffer: the 32-bit address space and one page past it,
/// never accessed, so that an access of up to 8 bytes at any 32-bit address lies
/// in the buffer by its type alone (see [`FastView`]).
#[cfg(target_pointer_width = "64")]
const WHOLE_LEN: usize = (1 << 32) + PAGE;

/// The page states a [`FastView`] reads. On 64-bit hosts an array over the whole
/// address space, as the page map always has it, so that indexing it by the page
/// of a 32-bit address needs no check (the page is below 2^20).
#[cfg(target_pointer_width = "64")]
type States<'a> = &'a [u8; SPACE_PAGES];
/// The buffer a [`FastView`] accesses. On 64-bit hosts every buffer is a
/// whole-space one ([`WHOLE`]), so an access of `N` ≤ 8 bytes at a 32-bit address
/// needs no index check: it ends at most 7 bytes past 2^32.
#[cfg(target_pointer_width = "64")]
type Bytes<'a> = &'a mut [u8; WHOLE_LEN];
#[cfg(not(target_pointer_width = "64"))]
type States<'a> = &'a [u8];
#[cfg(not(target_pointer_width = "64"))]
type Bytes<'a> = &'a mut [u8];

/// The fast path of [`FlatMemory`]'s accesses over borrowed page states and buffer
/// ([`FlatMemory::view`]): an access that stays within one page whose state byte
/// allows it (any present state for loads, `PresentRw` for stores) touches the
/// buffer directly; anything else is declined, for the slow path.
#[derive(Debug)]
pub(crate) struct FastView<'a> {
    states: States<'a>,
    bytes: Bytes<'a>,
}

impl FastView<'_> {
    /// The `N` bytes at `addr`, or `None` if the access needs the slow path.
    #[inline(always)]
    pub(crate) fn load<const N: usize>(&self, addr: u32) -> Option<[u8; N]> {
        let a = addr as usize;
        let in_page = (a & (PAGE - 1)) <= PAGE - N;
        if in_page && self.states.get(a >> PAGE_SHIFT).is_some_and(|&s| s != 0) {
            return self
                .bytes
                .get(a..a + N)
                .and_then(|s| <[u8; N]>::try_from(s).ok());
        }
        None
    }

    /// Store `value` at `addr`; `false` (nothing written) if the access needs the
    /// slow path.
    #[inline(always)]
    pub(crate) fn store<const N: usize>(&mut self, addr: u32, value: [u8; N]) -> bool {
        let a = addr as usize;
        let in_page = (a & (PAGE - 1)) <= PAGE - N;
        if in_page
            && self.states.get(a >> PAGE_SHIFT) == Some(&PRESENT_RW)
            && let Some(dst) = self.bytes.get_mut(a..a + N)
        {
            dst.copy_from_slice(&value);
            return true;
        }
        false
    }
}

/// Bytes of a whole-space buffer (the 32-bit address space and one page of slack),
/// if this host can reserve that much.
#[cfg(target_pointer_width = "64")]
const WHOLE: Option<usize> = Some(WHOLE_LEN);
#[cfg(not(target_pointer_width = "64"))]
const WHOLE: Option<usize> = None;
/// Whole-space buffers kept for reuse.
const POOL_MAX: usize = 16;
/// The most materialized pages a released buffer may have for it to be zeroed in
/// place, its pages kept resident (zeroing more would cost more than the kernel's
/// discarding them, and keeping them would keep their memory resident).
pub(crate) const RECYCLE_MAX_PAGES: u32 = 64;

static POOL: Mutex<Vec<MmapMut>> = Mutex::new(Vec::new());

/// A zero buffer of at least `len` bytes: a recycled whole-space one where possible.
fn acquire(len: usize) -> Result<MmapMut, EngineError> {
    match WHOLE {
        Some(whole) if len <= whole => {
            let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match pooled {
                Some(b) => Ok(b),
                None => reserve(whole),
            }
        }
        _ => reserve(len),
    }
}

/// Reserve `len` zero bytes (at least one page) of lazily backed memory.
fn reserve(len: usize) -> Result<MmapMut, EngineError> {
    MmapOptions::new()
        .len(len.max(PAGE_SIZE as usize))
        .no_reserve_swap()
        .map_anon()
        .map_err(|e| {
            EngineError::OutOfMemory(format!("cannot reserve {len} bytes of guest memory: {e}"))
        })
}

impl FlatMemory {
    pub(crate) fn new(map: PageMap, schedule: GasSchedule) -> Result<FlatMemory, EngineError> {
        let bytes = acquire(map.page_count() << PAGE_SHIFT)?;
        Ok(FlatMemory {
            bytes: Some(bytes),
            map,
            schedule,
        })
    }

    /// Back to the initial state: the pages any path wrote zeroed again and a fresh
    /// page map of the same layout and limit. Nothing changes if the map cannot be
    /// built.
    pub(crate) fn reset(&mut self) -> Result<(), EngineError> {
        let fresh = self.map.fresh()?;
        let buffer = self.bytes.as_deref_mut().unwrap_or_default();
        self.map.for_each_filled_run(|page, pages| {
            let start = page as usize;
            let end = start + ((pages as usize) << PAGE_SHIFT);
            if let Some(b) = buffer.get_mut(start..end) {
                b.fill(0);
            }
        });
        self.map = fresh;
        Ok(())
    }

    /// The buffer's bytes.
    #[inline(always)]
    fn buf(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or_default()
    }

    /// The buffer's bytes, mutably.
    #[inline(always)]
    fn buf_mut(&mut self) -> &mut [u8] {
        self.bytes.as_deref_mut().unwrap_or_default()
    }

    pub(crate) fn map(&self) -> &PageMap {
        &self.map
    }

    /// The fast path's view: the page states and the buffer, borrowed once for
    /// as long as no slow access (or other change) intervenes. The dispatch loop
    /// keeps it across instructions instead of reaching both through `self` for
    /// every access.
    ///
    /// `None` only if the buffer is gone (while dropping) or, on a 64-bit host,
    /// does not cover the whole address space, which [`FlatMemory::new`] never
    /// builds.
    #[inline(always)]
    pub(crate) fn view(&mut self) -> Option<FastView<'_>> {
        Some(FastView {
            states: self.map.state_bytes().try_into().ok()?,
            bytes: self.bytes.as_deref_mut()?.try_into().ok()?,
        })
    }

    /// Load `N` bytes at `addr` where [`FastView::load`] declined: the shared rule,
    /// charging `gas` for materialization if needed.
    #[cold]
    #[inline(never)]
    pub(crate) fn load_slow<const N: usize>(
        &mut self,
        addr: u32,
        gas: &mut i64,
    ) -> Result<[u8; N], MemFault> {
        let mut out = [0u8; N];
        self.access_slow(addr, &mut out, false, gas)?;
        Ok(out)
    }

    /// Store `value` at `addr`: the fast path, else the slow one (what the dispatch
    /// loop does through its view).
    #[cfg(test)]
    fn store<const N: usize>(
        &mut self,
        addr: u32,
        value: [u8; N],
        gas: &mut i64,
    ) -> Result<(), MemFault> {
        if self.view().is_some_and(|mut v| v.store(addr, value)) {
            return Ok(());
        }
        self.store_slow(addr, value, gas)
    }

    /// Store `value` at `addr` where [`FastView::store`] declined: the shared
    /// rule, charging `gas` for copy-on-write if needed.
    #[cold]
    #[inline(never)]
    pub(crate) fn store_slow<const N: usize>(
        &mut self,
        addr: u32,
        value: [u8; N],
        gas: &mut i64,
    ) -> Result<(), MemFault> {
        let mut v = value;
        self.access_slow(addr, &mut v, true, gas)
    }

    /// The shared access rule: check every page, charge, materialize, then copy.
    /// For loads `buf` receives the bytes; for stores it holds them.
    #[cold]
    #[inline(never)]
    fn access_slow(
        &mut self,
        addr: u32,
        buf: &mut [u8],
        is_write: bool,
        gas: &mut i64,
    ) -> Result<(), MemFault> {
        let width = buf.len() as u32;
        let plan = self
            .map
            .plan(addr, width, is_write, self.schedule.cow_cost())
            .map_err(|bad| MemFault::Exit(bad_access_exit(self.schedule.profile(), bad.addr)))?;
        self.map
            .check_write_limit(&plan)
            .map_err(|_| MemFault::Limit(self.map.write_limit()))?;
        let charge = i64::try_from(plan.charge).unwrap_or(i64::MAX);
        if charge > *gas {
            return Err(MemFault::OutOfGas);
        }
        for &(page, before, _) in plan.pages() {
            if before == PageState::NotPresent
                && let Some(unit) = self.map.unit_to_materialize(page)
            {
                self.materialize(&unit);
                self.map.mark_unit_present(&unit);
            }
        }
        self.map.commit(&plan);
        *gas -= charge;
        let bytes = self.buf_mut();
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr.wrapping_add(i as u32) as usize;
            if is_write {
                bytes[a] = *b;
            } else {
                *b = bytes[a];
            }
        }
        Ok(())
    }

    /// Copy a unit's initial contents into the buffer (zero pages need nothing: the
    /// buffer starts zeroed and a unit is materialized at most once).
    fn materialize(&mut self, unit: &Unit) {
        let bytes = self.bytes.as_deref_mut().unwrap_or_default();
        fill_unit(bytes, unit, self.map.layout());
    }

    /// GP `sbrk`: grow the heap, and the buffer to cover any new pages. The first
    /// growth moves the contents to a reservation of the whole 4 GiB address space
    /// (only touched pages cost memory), so a program that calls `sbrk` in a loop
    /// pays for at most one move. Only materialized pages are copied: every other page
    /// is zero in both buffers, and touching it would commit memory.
    pub(crate) fn sbrk(&mut self, size: u64) -> Result<u64, EngineError> {
        self.grow(self.map.sbrk_end(size) << PAGE_SHIFT)?;
        Ok(self.map.sbrk(size))
    }

    /// Make the buffer cover at least `needed` bytes (see [`FlatMemory::sbrk`]).
    fn grow(&mut self, needed: usize) -> Result<(), EngineError> {
        if self.buf().len() < needed {
            let whole = usize::try_from(1u64 << 32).unwrap_or(usize::MAX);
            let mut bigger = reserve(needed.max(whole))?;
            // Pages past the old buffer were never materialized; of the others only
            // the filled ones can hold anything but zeros.
            let old = self.buf();
            self.map.for_each_filled_run(|page, pages| {
                let start = page as usize;
                let end = (start + ((pages as usize) << PAGE_SHIFT)).min(old.len());
                if start < end {
                    bigger[start..end].copy_from_slice(&old[start..end]);
                }
            });
            self.bytes = Some(bigger);
        }
        Ok(())
    }

    /// A host change of page access: [`PageMap::change_access`] over the buffer
    /// (grown first if the pages lie past it; zeroing a run clears its bytes, and the
    /// buffer needs no protection change).
    pub(crate) fn set_access(
        &mut self,
        addr: u32,
        pages: u32,
        access: PageAccess,
    ) -> Result<(), MemoryError> {
        self.map.check_access_change(addr, pages)?;
        self.grow(self.map.access_change_end(addr, pages, access) << PAGE_SHIFT)
            .map_err(|_| MemoryError::Host(addr))?;
        let bytes = self.bytes.as_deref_mut().unwrap_or_default();
        let bytes = std::cell::RefCell::new(bytes);
        self.map.change_access(
            addr,
            pages,
            access,
            |unit, layout| {
                fill_unit(&mut bytes.borrow_mut(), unit, layout);
                Ok(())
            },
            |page, n, op| {
                if matches!(op, StorageOp::Discard | StorageOp::Zero) {
                    let start = page as usize;
                    let end = start + ((n as usize) << PAGE_SHIFT);
                    if let Some(b) = bytes.borrow_mut().get_mut(start..end) {
                        b.fill(0);
                    }
                }
                Ok(())
            },
        )
    }

    /// Whether the buffer would be zeroed in place if dropped now, rather than
    /// have its pages discarded (for tests).
    #[cfg(test)]
    pub(crate) fn zeroed_in_place(&self) -> bool {
        Some(self.buf().len()) == WHOLE && self.present_pages() <= RECYCLE_MAX_PAGES
    }

    fn present_pages(&self) -> u32 {
        let mut n = 0u32;
        self.map
            .for_each_filled_run(|_, pages| n = n.saturating_add(pages));
        n
    }

    /// Host read: [`PageMap::host_read`] over the buffer.
    pub(crate) fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError> {
        let bytes = self.buf();
        self.map.host_read(addr, buf, |at, dst| {
            let at = at as usize;
            dst.copy_from_slice(&bytes[at..at + dst.len()]);
        })
    }

    /// Host write: [`PageMap::host_write_bytes`] over the buffer (a page's contents
    /// are copied in on first touch; the buffer needs no protection change).
    pub(crate) fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError> {
        let bytes = self.bytes.as_deref_mut().unwrap_or_default();
        let bytes = std::cell::RefCell::new(bytes);
        self.map.host_write_bytes(
            addr,
            data,
            |unit, layout| {
                fill_unit(&mut bytes.borrow_mut(), unit, layout);
                Ok(())
            },
            |span| {
                let at = span.addr as usize;
                bytes.borrow_mut()[at..at + span.bytes.len()].copy_from_slice(span.bytes);
                Ok(())
            },
        )
    }
}

/// Copy the initial contents of `unit`'s pages that have a layout slab into `bytes`.
fn fill_unit(bytes: &mut [u8], unit: &Unit, layout: &MemoryLayout) {
    for page in unit.page_addrs() {
        if let Some(src) = layout.source(page) {
            let p = page as usize;
            if let Some(dst) = bytes.get_mut(p..p + PAGE_SIZE as usize) {
                dst.copy_from_slice(src.bytes());
            }
        }
    }
}

impl FlatMemory {
    /// Take the buffer for the pool, zero wherever any path wrote it: in place if
    /// few pages were materialized, else by discarding their runs. `None` if the
    /// buffer is not a whole-space one, is gone, or a discard failed (it is then
    /// unmapped as it drops).
    fn take_for_reuse(&mut self) -> Option<MmapMut> {
        if Some(self.buf().len()) != WHOLE {
            return None;
        }
        let zero_in_place = self.present_pages() <= RECYCLE_MAX_PAGES;
        let mut buffer = self.bytes.take()?;
        let mut zero = true;
        self.map.for_each_filled_run(|page, pages| {
            let start = page as usize;
            let len = (pages as usize) << PAGE_SHIFT;
            if zero_in_place {
                if let Some(b) = buffer.get_mut(start..start + len) {
                    b.fill(0);
                }
            } else if zero {
                zero = discard(&mut buffer, start, len);
            }
        });
        zero.then_some(buffer)
    }
}

impl Drop for FlatMemory {
    fn drop(&mut self) {
        let Some(buffer) = self.take_for_reuse() else {
            return;
        };
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(buffer);
        }
    }
}

/// Give `len` bytes of `buffer` at `start` back to the kernel: they read as zero
/// from then on and take no memory until touched again. Whether it succeeded.
///
/// A buffer whose instance materialized more than [`RECYCLE_MAX_PAGES`] pages
/// used to be unmapped rather than zeroed and kept, so the next instance reserved
/// a fresh 4 GiB buffer (about 1.3 µs more per instantiate, warm, and a
/// cold-cache prepare about 5 µs slower; docs/BENCHMARKS.md, "Recycled interpreter
/// buffers after large runs"). Discarding the runs keeps the reservation for the
/// pool without keeping its pages resident.
#[allow(unsafe_code)]
fn discard(buffer: &mut MmapMut, start: usize, len: usize) -> bool {
    if start.checked_add(len).is_none_or(|end| end > buffer.len()) {
        return false;
    }
    // SAFETY: `buffer` is a private anonymous mapping that this dropping memory
    // owns, with no reference into it left (the `&mut` borrow); the range lies
    // inside it (checked above). `MADV_DONTNEED` on a private anonymous mapping
    // drops the pages, and later reads see zero: exactly the pool's invariant, and
    // nothing else about the mapping changes.
    unsafe {
        buffer
            .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gas::GasProfile;
    use crate::memory::PageKind;

    /// A memory of `pages` zero pages with the first `touched` of them written.
    fn touched(pages: u32, touched: u32) -> FlatMemory {
        let mut l = MemoryLayout::new();
        l.add_region(
            0x10000,
            u64::from(pages) << PAGE_SHIFT,
            PageKind::EphemeralZero,
            &[],
        )
        .unwrap();
        let map = PageMap::new(Arc::new(l)).unwrap();
        let mut m = FlatMemory::new(map, GasSchedule::new(GasProfile::Gp, 0)).unwrap();
        let mut gas = 0;
        for p in 0..touched {
            m.store::<1>(0x10000 + (p << PAGE_SHIFT), [1], &mut gas)
                .unwrap();
        }
        m
    }

    /// The fast view indexes fixed-size arrays on 64-bit hosts: it exists for every
    /// buffer an instance gets, reaches the last bytes below 2^32, and declines an
    /// access that crosses 2^32 (the slow path wraps it) or a page not present.
    #[test]
    fn the_fast_view_reaches_the_top_of_the_address_space_and_no_further() {
        if WHOLE.is_none() {
            return;
        }
        let mut l = MemoryLayout::new();
        l.add_region(0xFFFF_F000, 0x1000, PageKind::EphemeralZero, &[])
            .unwrap();
        let map = PageMap::new(Arc::new(l)).unwrap();
        let mut m = FlatMemory::new(map, GasSchedule::new(GasProfile::Gp, 0)).unwrap();
        let mut gas = 0;
        assert!(
            m.view()
                .is_some_and(|mut v| !v.store(0xFFFF_FFF8, [1u8; 8])),
            "the first write takes the slow path"
        );
        m.store::<8>(0xFFFF_FFF8, 7u64.to_le_bytes(), &mut gas)
            .unwrap();
        let mut v = m.view().expect("a whole-space buffer has a fast view");
        assert_eq!(v.load::<8>(0xFFFF_FFF8), Some(7u64.to_le_bytes()));
        assert!(v.store(0xFFFF_FFFC, 9u32.to_le_bytes()));
        assert_eq!(v.load::<4>(0xFFFF_FFFC), Some(9u32.to_le_bytes()));
        assert_eq!(v.load::<1>(0xFFFF_FFFF), Some([0]));
        assert_eq!(v.load::<2>(0xFFFF_FFFF), None, "crosses 2^32");
        assert_eq!(v.load::<8>(0xFFFF_FFFC), None, "crosses 2^32");
        assert_eq!(v.load::<1>(0xFFFF_EFFF), None, "a page not mapped");
        assert_eq!(Some(m.buf().len()), WHOLE);
    }

    #[test]
    fn only_buffers_with_few_materialized_pages_are_zeroed_in_place() {
        if WHOLE.is_none() {
            return;
        }
        let limit = RECYCLE_MAX_PAGES;
        assert!(touched(limit + 10, 0).zeroed_in_place());
        assert!(touched(limit + 10, limit).zeroed_in_place());
        assert!(!touched(limit + 10, limit + 1).zeroed_in_place());
    }

    /// Both ways of releasing a buffer (zeroing its pages in place, or discarding
    /// them when there are many) leave it zero where it was written, ready for the
    /// pool. (Taken directly rather than through the process-wide pool, where a
    /// concurrent test could take it first.)
    #[test]
    fn released_buffers_are_zero_for_the_pool() {
        if WHOLE.is_none() {
            return;
        }
        let limit = RECYCLE_MAX_PAGES;
        for written in [limit, 3 * limit] {
            let mut m = touched(3 * limit, written);
            assert_eq!(m.zeroed_in_place(), written <= limit);
            let range = 0x10000..0x10000 + ((3 * limit as usize) << PAGE_SHIFT);
            assert!(
                m.buf()[range.clone()].iter().any(|&b| b != 0),
                "the pages were written"
            );
            let back = m.take_for_reuse().expect("a whole-space buffer is reused");
            assert!(
                back[range].iter().all(|&b| b == 0),
                "{written} pages written: the released buffer is not zero"
            );
        }
    }
}
