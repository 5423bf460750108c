//! Per-instance page bookkeeping shared by both engines: each page's kind and
//! [`PageState`], the GP access rule, materialization units, and GP `sbrk`.
//!
//! **Units.** Pages are made resident a unit at a time: a unit is the run of pages
//! of one region (a layout region, or one run of pages `sbrk` added) inside one
//! 2 MiB cluster ([`super::mat::unit_base`]). The first touch of any page of a unit
//! — a read, a write or a host write — makes every page of the unit `PresentRo`
//! ([`PageMap::unit_to_materialize`], [`PageMap::mark_unit_present`]) before the
//! access's own transition applies, so a unit is materialized exactly once and
//! whole. No gas depends on it (reads are free; copy-on-write stays per page), and
//! both engines follow the same rule, so they record the same page states. It lets
//! the recompiler change page protections only a whole unit at a time, which bounds
//! the mappings a guest can create.
//!
//! The interpreter consults a [`PageMap`] in software; the recompiler's fault handler
//! and run loop call the very same [`PageMap::plan`] / [`PageMap::commit`] pair (they never
//! allocate), so both engines accept, charge and fault the same accesses in the same
//! order.
//!
//! Both per-page arrays cover all 2^20 pages of the address space. They are
//! anonymous mappings reserved without swap, so they read as zero (unmapped,
//! `NotPresent`) until written: building a map costs time proportional to the mapped
//! pages, not to the address space they span, and `sbrk` never has to grow them.
//! Dropping a map recycles its arrays (the private `memory::arrays` pool); every write to them is
//! confined to the map's `ranges`, which is what makes zeroing them on release exact.

use std::sync::Arc;

mod access;

pub use access::{PageAccess, StorageOp};

use super::arrays::Arrays;
use super::mat::{CLUSTER_SHIFT, HardFault, PageKind, PageState, access_pages, charge_for};
use super::{MemoryLayout, PAGE_SHIFT, PAGE_SIZE, check_host_range, host_spans};
use crate::engine::{EngineError, MemoryError};

/// The first inaccessible byte of a rejected access (GP rule, docs/ISA.md §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAccess {
    /// Address of the first byte, in access order, that is not readable (loads) or
    /// not writable (stores).
    pub addr: u32,
}

/// An accepted access: the pages it touches, their state transitions and the total
/// charge. Nothing changes until [`PageMap::commit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessPlan {
    pages: [(u32, PageState, PageState); 2],
    len: u8,
    /// Gas charged for materialization (copy-on-write).
    pub charge: u64,
}

impl AccessPlan {
    /// `(page address, state before, state after)` for each page, in access order.
    pub fn pages(&self) -> &[(u32, PageState, PageState)] {
        &self.pages[..usize::from(self.len)]
    }
}

/// One page's part of a host write (see [`PageMap::host_write_bytes`]).
#[derive(Clone, Copy, Debug)]
pub struct HostSpan<'a> {
    /// The page's address.
    pub page: u32,
    /// Its state before the write (never `NotPresent`: its unit was materialized).
    pub state: PageState,
    /// Where the bytes go.
    pub addr: u32,
    /// The bytes.
    pub bytes: &'a [u8],
}

/// Marks, in a page's kind byte, the first page of a region (a unit never extends
/// below it).
const UNIT_START: u8 = 0x80;
/// Pages per 2 MiB cluster.
const CLUSTER_PAGES: usize = 1 << (CLUSTER_SHIFT - PAGE_SHIFT);

/// A unit being materialized (see the module documentation): pages
/// `first..first + pages` (page addresses `first << 12`…), all of kind `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Address of its first page.
    pub first: u32,
    /// Number of pages (1..=512).
    pub pages: u32,
    /// The kind of every page of it.
    pub kind: PageKind,
}

impl Unit {
    /// The page addresses of the unit, ascending.
    pub fn page_addrs(&self) -> impl Iterator<Item = u32> + use<> {
        let first = self.first;
        (0..self.pages).map(move |i| first + (i << PAGE_SHIFT))
    }
}

/// Kinds and states of every page of one instance.
#[derive(Debug)]
pub struct PageMap {
    layout: Arc<MemoryLayout>,
    /// The kind and state bytes of all 2^20 pages; `None` only while dropping.
    arrays: Option<Arrays>,
    /// One past the highest page ever mapped.
    end_page: usize,
    /// Mapped page ranges `[first, end)` in page numbers, sorted and disjoint: the
    /// layout's regions, the pages `sbrk` added, the pages a host mapped. No byte of
    /// either array outside them is ever written.
    ranges: Vec<(u32, u32)>,
    heap_top: u64,
    /// Pages that became `PresentRw`.
    written: u32,
    /// The most pages that may become `PresentRw` (see [`PageMap::set_write_limit`]).
    write_limit: u32,
}

/// An access or host write would make more pages `PresentRw` than the map's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteLimit {
    /// The limit, in pages.
    pub pages: u32,
}

impl PageMap {
    /// The page map of a fresh instance of `layout`: every page `NotPresent`. Fails
    /// only if the pool is empty and the host cannot reserve two 1 MiB arrays.
    pub fn new(layout: Arc<MemoryLayout>) -> std::io::Result<PageMap> {
        let mut arrays = Arrays::acquire()?;
        let mut ranges = Vec::with_capacity(layout.regions().len());
        for r in layout.regions() {
            let first = r.start() >> PAGE_SHIFT;
            let end = first + r.pages();
            arrays.kinds[first as usize..end as usize].fill(r.kind().as_u8());
            if let Some(k) = arrays.kinds.get_mut(first as usize) {
                *k |= UNIT_START;
            }
            ranges.push((first, end));
        }
        let mut map = PageMap {
            heap_top: layout.heap_top(),
            end_page: layout.end().div_ceil(u64::from(PAGE_SIZE)) as usize,
            layout,
            arrays: Some(arrays),
            ranges,
            written: 0,
            write_limit: limit_pages(super::DEFAULT_MEMORY_LIMIT),
        };
        map.merge_ranges();
        Ok(map)
    }

    /// The page map of a new instance of `layout` whose guest may write `limit`
    /// bytes of pages (see [`PageMap::set_write_limit`]); both engines' `instantiate`
    /// build theirs with it. Fails only if the host cannot reserve the arrays.
    pub fn for_instance(layout: Arc<MemoryLayout>, limit: u64) -> Result<PageMap, EngineError> {
        let mut m = PageMap::new(layout)
            .map_err(|e| EngineError::OutOfMemory(format!("cannot reserve the page map: {e}")))?;
        m.set_write_limit(limit);
        Ok(m)
    }

    /// A fresh map of the same layout with the same write limit (for an instance
    /// reset).
    pub fn fresh(&self) -> Result<PageMap, EngineError> {
        PageMap::for_instance(Arc::clone(&self.layout), self.write_limit())
    }

    /// Limit the pages that may become `PresentRw` to `bytes` worth (rounded down to
    /// whole pages). A write that would pass it is refused before anything changes
    /// ([`PageMap::check_write_limit`], and host writes), so both engines stop at the
    /// same access. Without a limit a `gp` guest, which pays nothing for copy-on-write,
    /// could make its host commit up to 4 GiB.
    pub fn set_write_limit(&mut self, bytes: u64) {
        self.write_limit = limit_pages(bytes);
    }

    /// The write limit in bytes.
    pub fn write_limit(&self) -> u64 {
        u64::from(self.write_limit) << PAGE_SHIFT
    }

    /// Refuse an accepted plan that would make more pages `PresentRw` than the limit.
    #[inline]
    pub fn check_write_limit(&self, plan: &AccessPlan) -> Result<(), WriteLimit> {
        let new = plan
            .pages()
            .iter()
            .filter(|(_, before, after)| {
                *after == PageState::PresentRw && *before != PageState::PresentRw
            })
            .count() as u32;
        if new > 0 && self.written.saturating_add(new) > self.write_limit {
            Err(WriteLimit {
                pages: self.write_limit,
            })
        } else {
            Ok(())
        }
    }

    /// Kind bytes of all pages.
    #[inline(always)]
    fn kinds(&self) -> &[u8] {
        self.arrays.as_ref().map_or(&[], |a| &a.kinds[..])
    }

    /// The layout this map was built from (for initial page contents).
    pub fn layout(&self) -> &Arc<MemoryLayout> {
        &self.layout
    }

    /// The kind of the page containing `addr`, `None` if inaccessible.
    #[inline]
    pub fn kind(&self, addr: u32) -> Option<PageKind> {
        PageKind::from_u8(
            self.kinds()
                .get((addr >> PAGE_SHIFT) as usize)
                .copied()
                .unwrap_or(0)
                & !UNIT_START,
        )
    }

    /// The state of the page containing `addr`.
    #[inline]
    pub fn state(&self, addr: u32) -> PageState {
        PageState::from_u8(
            self.state_bytes()
                .get((addr >> PAGE_SHIFT) as usize)
                .copied()
                .unwrap_or(0),
        )
    }

    /// Per-page state bytes (`PageState::as_u8`), indexed by page number (all 2^20),
    /// for fast paths: a load may proceed without [`PageMap::plan`] when the byte is
    /// non-zero, a store when it is `PresentRw`.
    #[inline(always)]
    pub fn state_bytes(&self) -> &[u8] {
        self.arrays.as_ref().map_or(&[], |a| &a.states[..])
    }

    /// One past the highest page ever mapped (engines size their storage by it).
    pub fn page_count(&self) -> usize {
        self.end_page
    }

    /// Mapped pages as `(page address, kind)`, in ascending order of address.
    pub fn mapped_pages(&self) -> impl Iterator<Item = (u32, PageKind)> + '_ {
        self.ranges.iter().flat_map(move |&(first, end)| {
            (first..end).filter_map(move |p| {
                let addr = p << PAGE_SHIFT;
                self.kind(addr).map(|k| (addr, k))
            })
        })
    }

    /// Check a `width`-byte access at `addr` (`width` in 1..=8) without changing
    /// anything. Every page is checked before any is charged; the first bad byte in
    /// access order decides the outcome. `cow_cost` is the schedule's copy-on-write
    /// charge (0 under `gp`).
    #[inline]
    pub fn plan(
        &self,
        addr: u32,
        width: u32,
        is_write: bool,
        cow_cost: u64,
    ) -> Result<AccessPlan, BadAccess> {
        let set = access_pages(addr, width);
        let mut plan = AccessPlan {
            pages: [(0, PageState::NotPresent, PageState::NotPresent); 2],
            len: 0,
            charge: 0,
        };
        for (i, &page) in set.as_slice().iter().enumerate() {
            // The first byte of the access in this page.
            let first_byte = if i == 0 { addr } else { page };
            let bad = BadAccess { addr: first_byte };
            let kind = self.kind(page).ok_or(bad)?;
            let before = self.state(page);
            let (charge, after) = match charge_for(before, kind, is_write) {
                Ok((charge, after)) => (charge, after),
                Err(HardFault) => return Err(bad),
            };
            plan.pages[i] = (page, before, after);
            plan.len += 1;
            if charge > 0 {
                plan.charge += cow_cost;
            }
        }
        Ok(plan)
    }

    /// The unit containing the page at `page`, if that page is mapped and still
    /// `NotPresent` (its unit not yet materialized). Never allocates.
    pub fn unit_to_materialize(&self, page: u32) -> Option<Unit> {
        let n = (page >> PAGE_SHIFT) as usize;
        let kinds = self.kinds();
        let kind = PageKind::from_u8(*kinds.get(n)? & !UNIT_START)?;
        if self.state(page) != PageState::NotPresent {
            return None;
        }
        let cluster = n & !(CLUSTER_PAGES - 1);
        let mut first = n;
        while first > cluster && kinds[first] & UNIT_START == 0 && kinds[first - 1] != 0 {
            first -= 1;
        }
        let mut end = n + 1;
        while end < cluster + CLUSTER_PAGES
            && kinds
                .get(end)
                .is_some_and(|&k| k != 0 && k & UNIT_START == 0)
        {
            end += 1;
        }
        Some(Unit {
            first: (first << PAGE_SHIFT) as u32,
            pages: (end - first) as u32,
            kind,
        })
    }

    /// Record `unit` (from [`PageMap::unit_to_materialize`]) as materialized: every
    /// page of it `PresentRo`. The engine has filled its storage first (each page from
    /// its layout slab, or zeros). Never allocates.
    pub fn mark_unit_present(&mut self, unit: &Unit) {
        let first = (unit.first >> PAGE_SHIFT) as usize;
        let layout = Arc::clone(&self.layout);
        let Some(arrays) = self.arrays.as_mut() else {
            return;
        };
        let end = (first + unit.pages as usize).min(arrays.states.len());
        for n in first..end {
            if arrays.states[n] == PageState::NotPresent.as_u8() {
                arrays.states[n] = PageState::PresentRo.as_u8();
                if layout.source((n << PAGE_SHIFT) as u32).is_some() {
                    arrays.filled.insert(n);
                }
            }
        }
    }

    /// Apply the state transitions of an accepted plan. Never allocates. Every page
    /// that was `NotPresent` must have had its unit materialized first.
    #[inline]
    pub fn commit(&mut self, plan: &AccessPlan) {
        for &(page, before, after) in plan.pages() {
            self.set_state(page, before, after);
        }
    }

    /// Move the page at `page` from `before` to `after`, recording it as dirty when it
    /// becomes `PresentRw`. Never allocates.
    #[inline(always)]
    fn set_state(&mut self, page: u32, before: PageState, after: PageState) {
        let Some(arrays) = self.arrays.as_mut() else {
            return;
        };
        let n = (page >> PAGE_SHIFT) as usize;
        if let Some(s) = arrays.states.get_mut(n) {
            *s = after.as_u8();
            if after == PageState::PresentRw && before != PageState::PresentRw {
                arrays.dirty.insert(n);
                self.written = self.written.saturating_add(1);
            }
            if after == PageState::PresentRw && before != PageState::PresentRw {
                arrays.filled.insert(n);
            }
        }
    }

    /// Every page that is `PresentRw` (written by the guest or the host since the map
    /// was built), as page addresses in ascending order. Takes time proportional to the
    /// number of such pages, not to the mapped memory: this is what settling an
    /// instance's memory costs.
    pub fn dirty_pages(&self) -> Vec<u32> {
        let mut out = Vec::new();
        if let Some(a) = self.arrays.as_ref()
            && !a.dirty.is_empty()
        {
            a.dirty.for_each(|n| out.push((n as u32) << PAGE_SHIFT));
        }
        out
    }

    /// Call `f(page address, pages)` for every run of consecutive pages whose
    /// storage an engine may have made non-zero since the map was built (pages filled
    /// from a layout slab, and pages that became `PresentRw`), ascending, in time
    /// proportional to their number.
    pub fn for_each_filled_run(&self, mut f: impl FnMut(u32, u32)) {
        if let Some(a) = self.arrays.as_ref() {
            a.filled
                .for_each_run(|first, n| f((first as u32) << PAGE_SHIFT, n as u32));
        }
    }

    /// Mark the page containing `addr` as written by the host (`PresentRw`, no charge;
    /// its unit is already materialized). Returns false if the page is not writable.
    fn host_write(&mut self, addr: u32) -> bool {
        match self.kind(addr) {
            Some(k) if k.is_writable() => {
                let page = addr & !(PAGE_SIZE - 1);
                self.set_state(page, self.state(page), PageState::PresentRw);
                true
            }
            _ => false,
        }
    }

    /// A host read of `buf.len()` bytes at `addr` (the rule of
    /// [`crate::Instance::read_memory`] for both engines): guest read rights,
    /// all-or-nothing, no state change. Pages not yet materialized read from their
    /// layout slab (or as zeros); present bytes come from the engine's storage through
    /// `present(address, destination)`.
    pub fn host_read(
        &self,
        addr: u32,
        buf: &mut [u8],
        mut present: impl FnMut(u32, &mut [u8]),
    ) -> Result<(), MemoryError> {
        check_host_range(addr, buf.len())?;
        if let Some(bad) = host_spans(addr, buf.len()).find(|&(p, ..)| self.kind(p).is_none()) {
            return Err(MemoryError::Inaccessible(bad.0.max(addr)));
        }
        for (page, offset, range) in host_spans(addr, buf.len()) {
            let dst = &mut buf[range];
            if self.state(page) == PageState::NotPresent {
                match self.layout.source(page) {
                    Some(src) => dst.copy_from_slice(&src.bytes()[offset..offset + dst.len()]),
                    None => dst.fill(0),
                }
            } else {
                present(page + offset as u32, dst);
            }
        }
        Ok(())
    }

    /// A host write of `data` at `addr` (the rule of
    /// [`crate::Instance::write_memory`] for both engines): guest write rights, checked
    /// for every page before anything changes, no charge, every touched page ends
    /// `PresentRw`. A page whose unit is not yet materialized has it materialized
    /// first through `materialize(unit, layout)` (the engine fills the unit's storage
    /// from the layout's slabs, or zeros, and makes it accessible); then each page's
    /// span goes to `store(span)`, which makes the engine's storage writable if the
    /// page was not `PresentRw` and stores the bytes.
    pub fn host_write_bytes(
        &mut self,
        addr: u32,
        data: &[u8],
        mut materialize: impl FnMut(&Unit, &MemoryLayout) -> Result<(), MemoryError>,
        mut store: impl FnMut(HostSpan<'_>) -> Result<(), MemoryError>,
    ) -> Result<(), MemoryError> {
        check_host_range(addr, data.len())?;
        let mut new = 0u32;
        for (page, ..) in host_spans(addr, data.len()) {
            let first = page.max(addr);
            match self.kind(page) {
                None => return Err(MemoryError::Inaccessible(first)),
                Some(k) if !k.is_writable() => return Err(MemoryError::ReadOnly(first)),
                Some(_) => {}
            }
            if self.state(page) != PageState::PresentRw {
                new += 1;
            }
        }
        if new > 0 && self.written.saturating_add(new) > self.write_limit {
            return Err(MemoryError::WriteLimit(self.write_limit()));
        }
        for (page, offset, range) in host_spans(addr, data.len()) {
            if let Some(unit) = self.unit_to_materialize(page) {
                materialize(&unit, &self.layout)?;
                self.mark_unit_present(&unit);
            }
            store(HostSpan {
                page,
                state: self.state(page),
                addr: page + offset as u32,
                bytes: &data[range],
            })?;
            self.host_write(page);
        }
        Ok(())
    }

    /// The current heap top used by GP `sbrk`.
    pub fn heap_top(&self) -> u64 {
        self.heap_top
    }

    /// [`PageMap::page_count`] after `sbrk(size)` (for callers that must grow their
    /// own storage first, so that a failure changes nothing).
    pub fn sbrk_end(&self, size: u64) -> usize {
        let new_top = self.heap_top.saturating_add(size);
        if size == 0 || size > 1 << 32 || new_top > 1 << 32 {
            return self.end_page;
        }
        self.end_page
            .max(new_top.div_ceil(u64::from(PAGE_SIZE)) as usize)
    }

    /// GP `sbrk` (the simplified allocator of docs/ISA.md §6): returns the old heap top
    /// and maps every inaccessible page overlapping `[heap_top, heap_top + size)` as
    /// [`PageKind::EphemeralZero`]. `size > 2^32`, or a heap that would pass 2^32,
    /// returns 0 and changes nothing; `size == 0` queries the heap top.
    pub fn sbrk(&mut self, size: u64) -> u64 {
        const LIMIT: u64 = 1 << 32;
        if size > LIMIT {
            return 0;
        }
        if size == 0 {
            return self.heap_top;
        }
        let new_top = self.heap_top + size;
        if new_top > LIMIT {
            return 0;
        }
        let first = (self.heap_top >> PAGE_SHIFT) as u32;
        let end = new_top.div_ceil(u64::from(PAGE_SIZE)) as u32;
        self.end_page = self.end_page.max(end as usize);
        let mut run_start = None;
        let mut added = Vec::new();
        let Some(arrays) = self.arrays.as_mut() else {
            return 0;
        };
        for p in first..end {
            // `end ≤ 2^20`: the heap top stays within 2^32.
            let Some(k) = arrays.kinds.get_mut(p as usize) else {
                break;
            };
            if *k == 0 {
                *k = PageKind::EphemeralZero.as_u8();
                if run_start.is_none() {
                    // Each run `sbrk` adds is a region of its own (its own units).
                    *k |= UNIT_START;
                    run_start = Some(p);
                }
            } else if let Some(s) = run_start.take() {
                added.push((s, p));
            }
        }
        if let Some(s) = run_start {
            added.push((s, end));
        }
        self.add_ranges(&added);
        let old = self.heap_top;
        self.heap_top = new_top;
        old
    }
}

impl PageMap {
    /// Add mapped page ranges to `ranges`, keeping it sorted and free of overlaps
    /// (so [`PageMap::mapped_pages`] lists each page once, in ascending order).
    fn add_ranges(&mut self, added: &[(u32, u32)]) {
        if added.is_empty() {
            return;
        }
        self.ranges.extend_from_slice(added);
        self.merge_ranges();
    }

    /// Sort [`PageMap::ranges`] and merge the ranges that overlap or touch, in
    /// place.
    fn merge_ranges(&mut self) {
        self.ranges.sort_unstable();
        // `dedup_by` hands each range with the last one kept before it; a range
        // that starts within (or right after) the kept one extends it and goes.
        self.ranges.dedup_by(|&mut (s, e), (_, end)| {
            let joins = s <= *end;
            if joins {
                *end = (*end).max(e);
            }
            joins
        });
    }
}

/// `bytes` as whole pages, saturating at 2^32 - 1.
fn limit_pages(bytes: u64) -> u32 {
    u32::try_from(bytes >> PAGE_SHIFT).unwrap_or(u32::MAX)
}

impl Drop for PageMap {
    fn drop(&mut self) {
        if let Some(arrays) = self.arrays.take() {
            arrays.release(&self.ranges);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gas_const::COW_COST;

    fn map() -> PageMap {
        let mut l = MemoryLayout::new();
        l.add_region(0x10000, 0x1000, PageKind::PinnedCapRo, &[1])
            .unwrap();
        l.add_region(0x20000, 0x2000, PageKind::EphemeralZero, &[])
            .unwrap();
        l.add_region(0x22000, 0x1000, PageKind::UnpinnedCapCow, &[5])
            .unwrap();
        PageMap::new(Arc::new(l)).unwrap()
    }

    #[test]
    fn mapped_ranges_are_kept_sorted_and_merged() {
        let mut m = map();
        // The layout's regions: 0x10 alone, 0x20..0x23 merged from two regions.
        assert_eq!(m.ranges, [(0x10, 0x11), (0x20, 0x23)]);
        // Added out of order: one inside, one touching at each end, one apart,
        // one bridging two ranges.
        m.add_ranges(&[(0x40, 0x42), (0x21, 0x22), (0x0f, 0x10), (0x23, 0x25)]);
        assert_eq!(m.ranges, [(0x0f, 0x11), (0x20, 0x25), (0x40, 0x42)]);
        m.add_ranges(&[(0x11, 0x20), (0x30, 0x30)]);
        assert_eq!(m.ranges, [(0x0f, 0x25), (0x30, 0x30), (0x40, 0x42)]);
        m.add_ranges(&[]);
        assert_eq!(m.ranges, [(0x0f, 0x25), (0x30, 0x30), (0x40, 0x42)]);
    }

    #[test]
    fn first_write_charges_cow_once_and_reads_charge_nothing() {
        let mut m = map();
        let p = m.plan(0x20010, 4, false, COW_COST).unwrap();
        assert_eq!(p.charge, 0);
        m.commit(&p);
        assert_eq!(m.state(0x20000), PageState::PresentRo);
        let p = m.plan(0x20010, 4, true, COW_COST).unwrap();
        assert_eq!(p.charge, COW_COST);
        m.commit(&p);
        assert_eq!(m.state(0x20000), PageState::PresentRw);
        assert_eq!(m.plan(0x20010, 8, true, COW_COST).unwrap().charge, 0);
    }

    /// Apply an access the way an engine does: materialize the units of its
    /// `NotPresent` pages, then commit. Returns the charge.
    pub(super) fn access(m: &mut PageMap, addr: u32, width: u32, write: bool) -> u64 {
        let p = m.plan(addr, width, write, COW_COST).unwrap();
        for &(page, before, _) in p.pages() {
            if before == PageState::NotPresent
                && let Some(u) = m.unit_to_materialize(page)
            {
                m.mark_unit_present(&u);
            }
        }
        m.commit(&p);
        p.charge
    }

    #[test]
    fn filled_runs_are_the_sourced_and_written_pages() {
        let mut m = map();
        let runs = |m: &PageMap| {
            let mut v = Vec::new();
            m.for_each_filled_run(|p, n| v.push((p, n)));
            v
        };
        assert_eq!(runs(&m), []);
        // A read of a zero page fills nothing; a write does; a read of a sourced
        // page fills it (from its slab).
        access(&mut m, 0x21000, 1, false);
        assert_eq!(runs(&m), []);
        access(&mut m, 0x20000, 1, true);
        access(&mut m, 0x22010, 1, false);
        access(&mut m, 0x10000, 1, false);
        assert_eq!(runs(&m), [(0x10000, 1), (0x20000, 1), (0x22000, 1)]);
        access(&mut m, 0x21000, 1, true);
        assert_eq!(runs(&m), [(0x10000, 1), (0x20000, 3)]);
    }

    #[test]
    fn a_first_touch_materializes_its_whole_unit() {
        let mut l = MemoryLayout::new();
        // Two zero regions back to back, the second crossing a 2 MiB boundary.
        l.add_region(0x1F_0000, 0x4000, PageKind::EphemeralZero, &[])
            .unwrap();
        l.add_region(0x1F_4000, 0x1_0000, PageKind::EphemeralZero, &[])
            .unwrap();
        let mut m = PageMap::new(Arc::new(l)).unwrap();
        let unit = |m: &PageMap, a| m.unit_to_materialize(a).map(|u| (u.first, u.pages));
        assert_eq!(unit(&m, 0x1F_2000), Some((0x1F_0000, 4)));
        assert_eq!(
            unit(&m, 0x1F_5000),
            Some((0x1F_4000, 12)),
            "to the cluster end"
        );
        assert_eq!(
            unit(&m, 0x20_3000),
            Some((0x20_0000, 4)),
            "from the cluster start"
        );
        assert_eq!(unit(&m, 0x20_4000), None, "unmapped");
        // A write in the middle unit: the page is PresentRw, the rest of its unit
        // PresentRo, the neighbouring units untouched; one COW charge.
        assert_eq!(access(&mut m, 0x1F_8000, 8, true), COW_COST);
        assert_eq!(m.state(0x1F_8000), PageState::PresentRw);
        for a in [0x1F_4000, 0x1F_7000, 0x1F_F000] {
            assert_eq!(m.state(a), PageState::PresentRo, "{a:#x}");
        }
        for a in [0x1F_3000, 0x20_0000] {
            assert_eq!(m.state(a), PageState::NotPresent, "{a:#x}");
        }
        assert_eq!(unit(&m, 0x1F_9000), None, "materialized once");
        // A later write in the unit charges COW again for its own page only.
        assert_eq!(access(&mut m, 0x1F_9000, 1, true), COW_COST);
        assert_eq!(access(&mut m, 0x1F_9001, 1, false), 0);
        // sbrk adds a region of its own.
        let mut l = MemoryLayout::new();
        l.add_region(0x40_0000, 0x1000, PageKind::EphemeralZero, &[])
            .unwrap();
        l.set_heap_top(0x40_1000);
        let mut m = PageMap::new(Arc::new(l)).unwrap();
        m.sbrk(0x2000);
        assert_eq!(unit(&m, 0x40_0000), Some((0x40_0000, 1)));
        assert_eq!(unit(&m, 0x40_2000), Some((0x40_1000, 2)));
    }

    #[test]
    fn pinned_store_faults_at_its_first_byte_and_charges_nothing() {
        let m = map();
        assert_eq!(
            m.plan(0x10004, 2, true, COW_COST),
            Err(BadAccess { addr: 0x10004 })
        );
        assert!(m.plan(0x10004, 2, false, COW_COST).is_ok());
    }

    #[test]
    fn straddling_access_is_all_or_nothing() {
        let mut m = map();
        // 0x21FFC..0x22004 straddles EphemeralZero and UnpinnedCapCow: both charged.
        let p = m.plan(0x21FFC, 8, true, COW_COST).unwrap();
        assert_eq!(p.charge, 2 * COW_COST);
        assert_eq!(p.pages().len(), 2);
        // 0x22FFC..0x23004 runs into unmapped 0x23000: fault at that page, nothing
        // charged or changed for 0x22000.
        assert_eq!(
            m.plan(0x22FFC, 8, true, COW_COST),
            Err(BadAccess { addr: 0x23000 })
        );
        assert_eq!(m.state(0x22000), PageState::NotPresent);
        // Starting in an unmapped page: the start address itself is the first bad byte.
        assert_eq!(
            m.plan(0x1FFFC, 8, false, 0),
            Err(BadAccess { addr: 0x1FFFC })
        );
        m.commit(&p);
        assert_eq!(m.state(0x21000), PageState::PresentRw);
        assert_eq!(m.state(0x22000), PageState::PresentRw);
    }

    #[test]
    fn access_wrapping_past_the_top_checks_page_zero() {
        let mut l = MemoryLayout::new();
        l.add_region(0xFFFF_F000, 0x1000, PageKind::EphemeralZero, &[])
            .unwrap();
        let m = PageMap::new(Arc::new(l)).unwrap();
        assert_eq!(m.plan(0xFFFF_FFFC, 8, false, 0), Err(BadAccess { addr: 0 }));
        assert!(m.plan(0xFFFF_FFF8, 8, false, 0).is_ok());
    }

    #[test]
    fn sbrk_maps_pages_from_the_heap_top() {
        let mut l = MemoryLayout::new();
        l.add_region(0x20000, 0x1000, PageKind::EphemeralZero, &[])
            .unwrap();
        l.set_heap_top(0x20800);
        let mut m = PageMap::new(Arc::new(l)).unwrap();
        assert_eq!(m.sbrk(0), 0x20800);
        assert_eq!(
            m.sbrk_end(0x1000),
            0x22,
            "pages covered after growing to 0x21800"
        );
        assert_eq!(
            m.sbrk_end(1 << 32),
            m.page_count(),
            "a failing sbrk needs nothing"
        );
        assert_eq!(m.sbrk(0x1000), 0x20800);
        assert_eq!(m.heap_top(), 0x21800);
        assert_eq!(m.kind(0x21000), Some(PageKind::EphemeralZero));
        assert_eq!(m.kind(0x22000), None);
        assert_eq!(m.sbrk((1 << 32) + 1), 0);
        assert_eq!(m.sbrk(1 << 32), 0, "would pass 2^32");
        assert_eq!(m.heap_top(), 0x21800, "failed sbrk changes nothing");
        let pages: Vec<u32> = m.mapped_pages().map(|(a, _)| a).collect();
        assert_eq!(pages, vec![0x20000, 0x21000]);
    }

    /// Dropping a map recycles its arrays; whatever it wrote (kinds of its regions
    /// and of `sbrk` pages, states from commits and host writes) must be gone when a
    /// later map gets them.
    #[test]
    fn a_dropped_map_leaves_no_trace_in_recycled_arrays() {
        let mut m = map();
        m.sbrk(0x3000);
        access(&mut m, 0x21FFC, 8, true);
        m.host_write_bytes(0x20000, &[1], |_, _| Ok(()), |_| Ok(()))
            .unwrap();
        access(&mut m, 0x10000, 1, false);
        let heap = m.sbrk(0);
        access(&mut m, heap as u32 - 1, 1, true);
        drop(m);
        // Every pooled pair (ours among them, whatever other tests do meanwhile) is
        // all zero; the extra acquire past the pool's size makes sure ours was seen.
        let held: Vec<Arrays> = (0..=super::super::arrays::POOL_MAX)
            .map(|_| Arrays::acquire().unwrap())
            .collect();
        assert!(held.iter().all(Arrays::is_zero));
    }
}
