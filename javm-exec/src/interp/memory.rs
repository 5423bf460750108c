//! The interpreter's memory: one flat byte buffer covering the address space up to
//! the highest mapped page, plus the shared [`PageMap`] (kind and state per page).
//!
//! The buffer is an anonymous mapping reserved without swap (`MAP_NORESERVE`), so an
//! address space that spans 4 GiB (as every standard program's does: its stack sits
//! just below 0xFEFE0000) costs only the pages actually touched. Failing to reserve it
//! is an [`EngineError::OutOfMemory`], never an abort.
//!
//! Fast path: an access that stays within one page whose state byte allows it (any
//! present state for loads, `PresentRw` for stores) touches the buffer directly.
//! Everything else — first touch, copy-on-write, straddling or wrapping accesses,
//! faults — goes through [`PageMap::plan`] / [`PageMap::commit`], the rule both
//! engines share. Pages are materialized from their layout slabs on first touch, so
//! building an instance copies no page contents.

use memmap2::{MmapMut, MmapOptions};

use crate::engine::{EngineError, Exit, MemoryError};
use crate::gas::GasSchedule;
use crate::memory::{PAGE_SHIFT, PAGE_SIZE, PageMap, PageState, bad_access_exit};

/// Why a guest access did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemFault {
    /// The access is rejected: page fault or (gp, below 0x10000) panic.
    Exit(Exit),
    /// The copy-on-write charge exceeds the remaining gas. Only possible when the
    /// host lowered gas or moved the PC into a block, skipping its reserve.
    OutOfGas,
}

const PRESENT_RW: u8 = PageState::PresentRw.as_u8();

#[derive(Debug)]
pub(crate) struct FlatMemory {
    bytes: MmapMut,
    map: PageMap,
    schedule: GasSchedule,
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
        let bytes = reserve(map.page_count() << PAGE_SHIFT)?;
        Ok(FlatMemory {
            bytes,
            map,
            schedule,
        })
    }

    pub(crate) fn map(&self) -> &PageMap {
        &self.map
    }

    /// Load `N` bytes at `addr`, charging `gas` for materialization if needed.
    #[inline(always)]
    pub(crate) fn load<const N: usize>(
        &mut self,
        addr: u32,
        gas: &mut i64,
    ) -> Result<[u8; N], MemFault> {
        let a = addr as usize;
        let in_page = (a & (PAGE_SIZE as usize - 1)) <= PAGE_SIZE as usize - N;
        if in_page
            && self
                .map
                .state_bytes()
                .get(a >> PAGE_SHIFT)
                .is_some_and(|&s| s != 0)
            && let Some(b) = self
                .bytes
                .get(a..a + N)
                .and_then(|s| <[u8; N]>::try_from(s).ok())
        {
            return Ok(b);
        }
        let mut out = [0u8; N];
        self.access_slow(addr, &mut out, false, gas)?;
        Ok(out)
    }

    /// Store `N` bytes at `addr`, charging `gas` for copy-on-write if needed.
    #[inline(always)]
    pub(crate) fn store<const N: usize>(
        &mut self,
        addr: u32,
        value: [u8; N],
        gas: &mut i64,
    ) -> Result<(), MemFault> {
        let a = addr as usize;
        let in_page = (a & (PAGE_SIZE as usize - 1)) <= PAGE_SIZE as usize - N;
        if in_page
            && self.map.state_bytes().get(a >> PAGE_SHIFT) == Some(&PRESENT_RW)
            && let Some(dst) = self.bytes.get_mut(a..a + N)
        {
            dst.copy_from_slice(&value);
            return Ok(());
        }
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
        let charge = i64::try_from(plan.charge).unwrap_or(i64::MAX);
        if charge > *gas {
            return Err(MemFault::OutOfGas);
        }
        for &(page, before, _) in plan.pages() {
            if before == PageState::NotPresent {
                self.materialize(page);
            }
        }
        self.map.commit(&plan);
        *gas -= charge;
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr.wrapping_add(i as u32) as usize;
            if is_write {
                self.bytes[a] = *b;
            } else {
                *b = self.bytes[a];
            }
        }
        Ok(())
    }

    /// Copy a page's initial contents into the buffer (zero pages need nothing: the
    /// buffer starts zeroed and a page is materialized at most once).
    fn materialize(&mut self, page: u32) {
        if let Some(src) = self.map.layout().source(page) {
            let p = page as usize;
            self.bytes[p..p + PAGE_SIZE as usize].copy_from_slice(src.bytes());
        }
    }

    /// GP `sbrk`: grow the heap, and the buffer to cover any new pages. The first
    /// growth moves the contents to a reservation of the whole 4 GiB address space
    /// (only touched pages cost memory), so a program that calls `sbrk` in a loop
    /// pays for at most one move. Only materialized pages are copied: every other page
    /// is zero in both buffers, and touching it would commit memory.
    pub(crate) fn sbrk(&mut self, size: u64) -> Result<u64, EngineError> {
        let needed = self.map.sbrk_end(size) << PAGE_SHIFT;
        if self.bytes.len() < needed {
            let whole = usize::try_from(1u64 << 32).unwrap_or(usize::MAX);
            let mut bigger = reserve(needed.max(whole))?;
            // Pages past the old buffer were never materialized.
            let old_pages = self.bytes.len() >> PAGE_SHIFT;
            let states = self.map.state_bytes().get(..old_pages).unwrap_or_default();
            let present = states.iter().enumerate().filter(|(_, s)| **s != 0);
            for (page, _) in present {
                let range = page << PAGE_SHIFT..(page + 1) << PAGE_SHIFT;
                bigger[range.clone()].copy_from_slice(&self.bytes[range]);
            }
            self.bytes = bigger;
        }
        Ok(self.map.sbrk(size))
    }

    /// Host read: [`PageMap::host_read`] over the buffer.
    pub(crate) fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError> {
        let bytes = &self.bytes;
        self.map.host_read(addr, buf, |at, dst| {
            let at = at as usize;
            dst.copy_from_slice(&bytes[at..at + dst.len()]);
        })
    }

    /// Host write: [`PageMap::host_write_bytes`] over the buffer (a page's contents
    /// are copied in on first touch; the buffer needs no protection change).
    pub(crate) fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError> {
        let bytes = &mut self.bytes;
        self.map.host_write_bytes(addr, data, |span| {
            if let (PageState::NotPresent, Some(src)) = (span.state, span.source) {
                let p = span.page as usize;
                bytes[p..p + PAGE_SIZE as usize].copy_from_slice(src.bytes());
            }
            let at = span.addr as usize;
            bytes[at..at + span.bytes.len()].copy_from_slice(span.bytes);
            Ok(())
        })
    }
}
