//! Host changes of page access: the one rule both engines follow when a host maps a
//! range of pages as zero, read-only or read-write, or unmaps it
//! ([`crate::Instance::set_page_access`], docs/ISA.md §1.3).
//!
//! **Pages a host changed are always present.** A page that stays mapped leaves the
//! change `PresentRo` (or `PresentRw`, if it was and stays writable with its
//! contents), never `NotPresent`: `NotPresent` and `PresentRo` charge the same for
//! every access ([`crate::memory::mat::charge_for`]), so no gas depends on it, and no later
//! materialization can copy a layout slab over contents the host set. A page the
//! host unmaps is `NotPresent` with kind "unmapped", its storage zero. Every changed
//! page starts a materialization unit of its own, and so does the page after the
//! range, so the units still waiting for their first touch are never mixed with
//! changed pages.
//!
//! **Contents.** The zeroing modes zero the pages; the keeping modes keep them (a
//! page that was not mapped holds zeros), materializing from their slabs the units of
//! mapped pages not yet touched. Unmapping discards the contents.
//!
//! **Bookkeeping.** A page that leaves `PresentRw` no longer counts against the write
//! limit. Every page the change leaves mapped joins the dirty set (its contents may
//! differ from the layout's); every page it unmaps leaves it.
//!
//! No gas is charged, and the gas schedule of a `jar1` module (its memory tier) stays
//! the one chosen from the layout at instantiation.

use super::{PageMap, UNIT_START};
use crate::engine::MemoryError;
use crate::memory::pagemap::Unit;
use crate::memory::{MemoryLayout, PAGE_SHIFT, PAGE_SIZE, PageKind, PageState};

/// What [`crate::Instance::set_page_access`] makes of a range of pages: the five
/// modes of the Gray Paper's `pages` host call, in its order ([`PageAccess::gp_mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PageAccess {
    /// Inaccessible; the contents are discarded (a later mapping that keeps contents
    /// sees zeros).
    Unmapped,
    /// Readable only, every byte zero.
    ZeroReadOnly,
    /// Readable and writable, every byte zero; the first guest write to each page
    /// charges copy-on-write, as for any fresh zero page.
    ZeroReadWrite,
    /// Readable only, the contents kept.
    ReadOnly,
    /// Readable and writable, the contents kept. A page that was already written
    /// stays `PresentRw`; the first guest write to any other charges copy-on-write.
    ReadWrite,
}

impl PageAccess {
    /// Every mode, in the order of their Gray Paper numbers.
    pub const ALL: [PageAccess; 5] = [
        PageAccess::Unmapped,
        PageAccess::ZeroReadOnly,
        PageAccess::ZeroReadWrite,
        PageAccess::ReadOnly,
        PageAccess::ReadWrite,
    ];

    /// The mode's number in the Gray Paper's `pages` host call (0–4).
    pub const fn gp_mode(self) -> u64 {
        match self {
            PageAccess::Unmapped => 0,
            PageAccess::ZeroReadOnly => 1,
            PageAccess::ZeroReadWrite => 2,
            PageAccess::ReadOnly => 3,
            PageAccess::ReadWrite => 4,
        }
    }

    /// The mode numbered `mode` in the Gray Paper's `pages` host call, `None` past 4.
    pub const fn from_gp_mode(mode: u64) -> Option<PageAccess> {
        match mode {
            0 => Some(PageAccess::Unmapped),
            1 => Some(PageAccess::ZeroReadOnly),
            2 => Some(PageAccess::ZeroReadWrite),
            3 => Some(PageAccess::ReadOnly),
            4 => Some(PageAccess::ReadWrite),
            _ => None,
        }
    }

    /// A short name: `unmapped`, `zero-ro`, `zero-rw`, `ro`, `rw`.
    pub const fn name(self) -> &'static str {
        match self {
            PageAccess::Unmapped => "unmapped",
            PageAccess::ZeroReadOnly => "zero-ro",
            PageAccess::ZeroReadWrite => "zero-rw",
            PageAccess::ReadOnly => "ro",
            PageAccess::ReadWrite => "rw",
        }
    }

    /// Whether mapped pages keep their contents.
    const fn keeps_contents(self) -> bool {
        matches!(self, PageAccess::ReadOnly | PageAccess::ReadWrite)
    }

    /// The kind of a page of kind `old` after the change (`None`: unmapped).
    const fn kind(self, old: Option<PageKind>) -> Option<PageKind> {
        match self {
            PageAccess::Unmapped => None,
            PageAccess::ZeroReadOnly | PageAccess::ReadOnly => Some(PageKind::PinnedCapRo),
            PageAccess::ZeroReadWrite => Some(PageKind::EphemeralZero),
            PageAccess::ReadWrite => match old {
                Some(k) if k.is_writable() => Some(k),
                Some(_) => Some(PageKind::UnpinnedCapCow),
                None => Some(PageKind::EphemeralZero),
            },
        }
    }
}

impl std::fmt::Display for PageAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an engine does to the storage of a run of pages during an access change
/// (the `storage` callback of [`PageMap::change_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// The pages were present and are being unmapped: zero them and make them
    /// inaccessible.
    Discard,
    /// The pages were present and stay mapped with zero contents: zero them, keep
    /// them accessible.
    Zero,
    /// The pages were not present (their storage is zero and inaccessible) and are
    /// being mapped: make them accessible.
    Map,
}

impl PageMap {
    /// Check the arguments of an access change of `pages` pages from `addr`: a page
    /// address, and a range that ends at or below 2^32.
    pub fn check_access_change(&self, addr: u32, pages: u32) -> Result<(), MemoryError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MemoryError::Unaligned(addr));
        }
        if u64::from(addr) + (u64::from(pages) << PAGE_SHIFT) > 1 << 32 {
            return Err(MemoryError::OutOfRange {
                addr,
                len: usize::try_from(u64::from(pages) << PAGE_SHIFT).unwrap_or(usize::MAX),
            });
        }
        Ok(())
    }

    /// [`PageMap::page_count`] after mapping `pages` pages from `addr` (for engines
    /// that grow their storage first, so that a failure changes nothing).
    pub fn access_change_end(&self, addr: u32, pages: u32, access: PageAccess) -> usize {
        if access == PageAccess::Unmapped {
            return self.end_page;
        }
        let end = (u64::from(addr) >> PAGE_SHIFT) + u64::from(pages);
        self.end_page
            .max(usize::try_from(end.min(1 << 20)).unwrap_or(1 << 20))
    }

    /// Give `pages` pages from `addr` the access `access` (see the module
    /// documentation). After [`PageMap::check_access_change`], the units of mapped
    /// pages not yet present are materialized through `materialize(unit, layout)` if
    /// the contents are kept (as for a host write); then `storage(first page address,
    /// pages, op)` is called for each maximal run of pages that needs the same
    /// [`StorageOp`], in ascending order; then the map records the change. An error
    /// of either callback stops the change there, with the map not yet changed.
    pub fn change_access(
        &mut self,
        addr: u32,
        pages: u32,
        access: PageAccess,
        mut materialize: impl FnMut(&Unit, &MemoryLayout) -> Result<(), MemoryError>,
        mut storage: impl FnMut(u32, u32, StorageOp) -> Result<(), MemoryError>,
    ) -> Result<(), MemoryError> {
        self.check_access_change(addr, pages)?;
        let first = addr >> PAGE_SHIFT;
        let end = first + pages;
        if access.keeps_contents() {
            for n in first..end {
                if let Some(unit) = self.unit_to_materialize(n << PAGE_SHIFT) {
                    materialize(&unit, &self.layout)?;
                    self.mark_unit_present(&unit);
                }
            }
        }
        let op_for = |present: bool| match (access, present) {
            (PageAccess::Unmapped, true) => Some(StorageOp::Discard),
            (PageAccess::Unmapped, false) => None,
            (PageAccess::ZeroReadOnly | PageAccess::ZeroReadWrite, true) => Some(StorageOp::Zero),
            (_, false) => Some(StorageOp::Map),
            (PageAccess::ReadOnly | PageAccess::ReadWrite, true) => None,
        };
        let mut run: Option<(u32, u32, StorageOp)> = None;
        for n in first..end {
            let op = op_for(self.state(n << PAGE_SHIFT) != PageState::NotPresent);
            match (&mut run, op) {
                (Some((_, len, o)), Some(op)) if *o == op => *len += 1,
                _ => {
                    if let Some((p, len, o)) = run.take() {
                        storage(p << PAGE_SHIFT, len, o)?;
                    }
                    run = op.map(|op| (n, 1, op));
                }
            }
        }
        if let Some((p, len, o)) = run {
            storage(p << PAGE_SHIFT, len, o)?;
        }
        self.record_access(first, end, access);
        Ok(())
    }

    /// The map's side of [`PageMap::change_access`] for page numbers `first..end`.
    fn record_access(&mut self, first: u32, end: u32, access: PageAccess) {
        let Some(arrays) = self.arrays.as_mut() else {
            return;
        };
        let mut added: Vec<(u32, u32)> = Vec::new();
        for n in first..end {
            let i = n as usize;
            let (Some(kind), Some(state)) = (arrays.kinds.get_mut(i), arrays.states.get_mut(i))
            else {
                break;
            };
            let old_kind = PageKind::from_u8(*kind & !UNIT_START);
            let old_state = PageState::from_u8(*state);
            let new_kind = access.kind(old_kind);
            let new_state = match new_kind {
                None => PageState::NotPresent,
                Some(_) if access == PageAccess::ReadWrite && old_state == PageState::PresentRw => {
                    PageState::PresentRw
                }
                Some(_) => PageState::PresentRo,
            };
            *kind = new_kind.map_or(0, |k| k.as_u8() | UNIT_START);
            *state = new_state.as_u8();
            if old_state == PageState::PresentRw && new_state != PageState::PresentRw {
                self.written = self.written.saturating_sub(1);
            }
            if new_kind.is_some() {
                arrays.dirty.insert(i);
            } else {
                arrays.dirty.remove(i);
            }
            if old_kind.is_none() && new_kind.is_some() {
                match added.last_mut() {
                    Some((_, e)) if *e == n => *e = n + 1,
                    _ => added.push((n, n + 1)),
                }
            }
        }
        // The page after the range starts a unit of its own.
        if let Some(k) = arrays.kinds.get_mut(end as usize)
            && *k != 0
        {
            *k |= UNIT_START;
        }
        if let Some(&(_, e)) = added.last() {
            self.end_page = self.end_page.max(e as usize);
        }
        self.add_ranges(&added);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gas_const::COW_COST;

    /// A map with a sourced read-only page, a 3-page zero region, then nothing.
    fn map() -> PageMap {
        let mut l = MemoryLayout::new();
        l.add_region(0x10000, 0x1000, PageKind::PinnedCapRo, &[7])
            .unwrap();
        l.add_region(0x20000, 0x3000, PageKind::EphemeralZero, &[])
            .unwrap();
        PageMap::new(Arc::new(l)).unwrap()
    }

    /// Apply a change the way an engine does, recording the storage calls.
    fn change(m: &mut PageMap, addr: u32, pages: u32, a: PageAccess) -> Vec<(u32, u32, StorageOp)> {
        let mut ops = Vec::new();
        m.change_access(
            addr,
            pages,
            a,
            |_, _| Ok(()),
            |p, n, op| {
                ops.push((p, n, op));
                Ok(())
            },
        )
        .unwrap();
        ops
    }

    /// A one-byte guest write, as an engine applies it.
    fn write(m: &mut PageMap, addr: u32) -> u64 {
        super::super::tests::access(m, addr, 1, true)
    }

    #[test]
    fn arguments_are_checked_before_anything_changes() {
        let mut m = map();
        let e = m.change_access(
            0x20001,
            1,
            PageAccess::Unmapped,
            |_, _| Ok(()),
            |_, _, _| Ok(()),
        );
        assert_eq!(e, Err(MemoryError::Unaligned(0x20001)));
        let e = m.change_access(
            0xFFFF_F000,
            2,
            PageAccess::ReadWrite,
            |_, _| Ok(()),
            |_, _, _| Ok(()),
        );
        assert!(matches!(e, Err(MemoryError::OutOfRange { .. })));
        assert_eq!(m.kind(0x20000), Some(PageKind::EphemeralZero));
        // The top page itself is fine, and so is an empty range.
        change(&mut m, 0xFFFF_F000, 1, PageAccess::ReadWrite);
        assert_eq!(change(&mut m, 0x20000, 0, PageAccess::Unmapped), []);
        assert_eq!(m.kind(0xFFFF_F000), Some(PageKind::EphemeralZero));
    }

    #[test]
    fn modes_give_kinds_states_and_storage_ops() {
        let mut m = map();
        assert_eq!(write(&mut m, 0x21000), COW_COST);
        assert_eq!(m.dirty_pages(), [0x21000]);
        // Keep read-write over a written page, an untouched page (its unit, the
        // whole region, was materialized by the write) and an unmapped one.
        let ops = change(&mut m, 0x21000, 3, PageAccess::ReadWrite);
        assert_eq!(ops, [(0x23000, 1, StorageOp::Map)]);
        assert_eq!(m.state(0x21000), PageState::PresentRw);
        assert_eq!(m.state(0x22000), PageState::PresentRo);
        assert_eq!(m.kind(0x23000), Some(PageKind::EphemeralZero));
        assert_eq!(m.state(0x23000), PageState::PresentRo);
        assert_eq!(m.dirty_pages(), [0x21000, 0x22000, 0x23000]);
        assert_eq!(m.page_count(), 0x24);
        // Read-only: the written page loses PresentRw and stores fault.
        assert_eq!(change(&mut m, 0x21000, 1, PageAccess::ReadOnly), []);
        assert_eq!(m.state(0x21000), PageState::PresentRo);
        assert!(m.plan(0x21000, 1, true, COW_COST).is_err());
        assert!(m.plan(0x21000, 1, false, COW_COST).is_ok());
        assert_eq!(m.written, 0);
        // Zero: present pages are zeroed, the unmapped one mapped.
        let ops = change(&mut m, 0x22000, 3, PageAccess::ZeroReadWrite);
        assert_eq!(
            ops,
            [(0x22000, 2, StorageOp::Zero), (0x24000, 1, StorageOp::Map)]
        );
        assert_eq!(write(&mut m, 0x24000), COW_COST, "a fresh zero page");
        // Unmap: present pages discarded, absent ones need nothing.
        let ops = change(&mut m, 0x23000, 3, PageAccess::Unmapped);
        assert_eq!(ops, [(0x23000, 2, StorageOp::Discard)]);
        assert_eq!(m.kind(0x23000), None);
        assert_eq!(m.state(0x24000), PageState::NotPresent);
        assert_eq!(m.dirty_pages(), [0x21000, 0x22000]);
        assert_eq!(m.written, 0);
        assert!(m.plan(0x23000, 1, false, COW_COST).is_err());
        // Each mapped page is listed once, in ascending order.
        let pages: Vec<u32> = m.mapped_pages().map(|(a, _)| a).collect();
        assert_eq!(pages, [0x10000, 0x20000, 0x21000, 0x22000]);
    }

    #[test]
    fn kept_contents_materialize_untouched_units_first() {
        let mut m = map();
        let mut units = Vec::new();
        m.change_access(
            0x10000,
            1,
            PageAccess::ReadWrite,
            |u, _| {
                units.push((u.first, u.pages));
                Ok(())
            },
            |_, _, _| Ok(()),
        )
        .unwrap();
        assert_eq!(units, [(0x10000, 1)]);
        assert_eq!(m.kind(0x10000), Some(PageKind::UnpinnedCapCow));
        assert_eq!(m.state(0x10000), PageState::PresentRo);
        // Zeroing needs no materialization.
        m.change_access(
            0x20000,
            1,
            PageAccess::ZeroReadOnly,
            |_, _| panic!("no unit is materialized"),
            |_, _, _| Ok(()),
        )
        .unwrap();
    }

    #[test]
    fn changed_pages_split_the_units_around_them() {
        let mut m = map();
        change(&mut m, 0x21000, 1, PageAccess::ZeroReadOnly);
        let unit = |m: &PageMap, a| m.unit_to_materialize(a).map(|u| (u.first, u.pages));
        assert_eq!(unit(&m, 0x20000), Some((0x20000, 1)));
        assert_eq!(unit(&m, 0x22000), Some((0x22000, 1)));
        assert_eq!(unit(&m, 0x21000), None, "changed pages are present");
        // Unmapping in the middle of an untouched region leaves two units.
        let mut m = map();
        change(&mut m, 0x21000, 1, PageAccess::Unmapped);
        assert_eq!(unit(&m, 0x20000), Some((0x20000, 1)));
        assert_eq!(unit(&m, 0x22000), Some((0x22000, 1)));
    }

    #[test]
    fn gp_modes_round_trip() {
        for (i, a) in PageAccess::ALL.into_iter().enumerate() {
            assert_eq!(a.gp_mode(), i as u64);
            assert_eq!(PageAccess::from_gp_mode(i as u64), Some(a));
        }
        assert_eq!(PageAccess::from_gp_mode(5), None);
    }
}
