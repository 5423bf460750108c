//! The per-page materialization state machine shared by both engines (seed 000).
//!
//! Charges depend only on a page's dynamic [`PageState`] and static [`PageKind`],
//! never on the instruction, so a load followed by a store charges the same whichever
//! engine runs it. The only fault-driven charge is copy-on-write: the first write to a
//! writable page costs [`COW_COST`], once per page. Reads are free and only record
//! residency. Read-only regions are materialized in units (one data region ∩ one 2 MiB
//! cluster, [`unit_base`]); that grouping is a mapping optimization with no gas.

pub use crate::gas_const::CLUSTER_SHIFT;
use crate::gas_const::COW_COST;

use super::PAGE_SIZE;

/// The 2 MiB cluster index of `addr`.
#[inline]
pub const fn cluster_of(addr: u32) -> u32 {
    addr >> CLUSTER_SHIFT
}

/// The base address naming the read-only materialization unit that contains `addr`,
/// for a region starting at `cap_start`: `max(cluster start, cap_start)`. Two regions
/// sharing a cluster are two units, and each `(region, cluster)` pair has one name.
#[inline]
pub const fn unit_base(addr: u32, cap_start: u32) -> u32 {
    let cluster_lo = cluster_of(addr) << CLUSTER_SHIFT;
    if cluster_lo > cap_start {
        cluster_lo
    } else {
        cap_start
    }
}

/// Static kind of a mapped page (docs/ISA.md §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageKind {
    /// Read-only forever (a pinned data cap). A store page-faults and charges nothing.
    PinnedCapRo,
    /// Readable; the first write copies the page and charges `COW_COST`.
    UnpinnedCapCow,
    /// Reads see zeros; the first write materializes a fresh page for `COW_COST`.
    EphemeralZero,
}

impl PageKind {
    /// One-byte tag for per-page side arrays (0 is reserved for "unmapped").
    #[inline]
    pub const fn as_u8(self) -> u8 {
        match self {
            PageKind::PinnedCapRo => 1,
            PageKind::UnpinnedCapCow => 2,
            PageKind::EphemeralZero => 3,
        }
    }

    /// Inverse of [`PageKind::as_u8`]; `None` for an unmapped page.
    #[inline]
    pub const fn from_u8(v: u8) -> Option<PageKind> {
        match v {
            1 => Some(PageKind::PinnedCapRo),
            2 => Some(PageKind::UnpinnedCapCow),
            3 => Some(PageKind::EphemeralZero),
            _ => None,
        }
    }

    /// Whether a guest store to this kind of page is allowed.
    #[inline]
    pub const fn is_writable(self) -> bool {
        !matches!(self, PageKind::PinnedCapRo)
    }
}

/// Dynamic first-touch state of a page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PageState {
    /// Never touched: the next read pages it in, the next write copies it.
    #[default]
    NotPresent,
    /// Paged in read-only (it was read).
    PresentRo,
    /// Copied on write: writable.
    PresentRw,
}

impl PageState {
    /// One-byte tag: 0, 1, 2.
    #[inline]
    pub const fn as_u8(self) -> u8 {
        match self {
            PageState::NotPresent => 0,
            PageState::PresentRo => 1,
            PageState::PresentRw => 2,
        }
    }

    /// Inverse of [`PageState::as_u8`] (anything else reads as `NotPresent`).
    #[inline]
    pub const fn from_u8(v: u8) -> PageState {
        match v {
            1 => PageState::PresentRo,
            2 => PageState::PresentRw,
            _ => PageState::NotPresent,
        }
    }
}

/// A write to a pinned read-only page: a hard fault that charges nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardFault;

/// The charge and next state for one touch of a page:
///
/// * first read → 0, `PresentRo`;
/// * first write, or write after read → [`COW_COST`], `PresentRw`;
/// * already present for this access → 0, unchanged;
/// * write to [`PageKind::PinnedCapRo`] → [`HardFault`].
#[inline]
pub const fn charge_for(
    state: PageState,
    kind: PageKind,
    is_write: bool,
) -> Result<(u64, PageState), HardFault> {
    if is_write && !kind.is_writable() {
        return Err(HardFault);
    }
    Ok(match (state, is_write) {
        (PageState::NotPresent, false) => (0, PageState::PresentRo),
        (PageState::NotPresent, true) | (PageState::PresentRo, true) => {
            (COW_COST, PageState::PresentRw)
        }
        (PageState::PresentRo, false) => (0, PageState::PresentRo),
        (PageState::PresentRw, _) => (0, PageState::PresentRw),
    })
}

/// The pages one access touches: its first page, and the next one iff it straddles a
/// page boundary. Ordered in access order (low to high, wrapping at 2^32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSet {
    pages: [u32; 2],
    len: u8,
}

impl PageSet {
    /// The page base addresses, in access order.
    #[inline]
    pub fn as_slice(&self) -> &[u32] {
        &self.pages[..usize::from(self.len)]
    }

    /// Number of pages (1 or 2).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: an access touches at least one page.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The page set of a `width`-byte access at `addr` (`width` in 1..=8). Keyed only on
/// `addr` and `width`, so both engines compute the same set.
#[inline]
pub const fn access_pages(addr: u32, width: u32) -> PageSet {
    let mask = PAGE_SIZE - 1;
    let base = addr & !mask;
    if (addr & mask) + width > PAGE_SIZE {
        PageSet {
            pages: [base, base.wrapping_add(PAGE_SIZE)],
            len: 2,
        }
    } else {
        PageSet {
            pages: [base, 0],
            len: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_read_is_free() {
        let (c, s) = charge_for(PageState::NotPresent, PageKind::UnpinnedCapCow, false).unwrap();
        assert_eq!((c, s), (0, PageState::PresentRo));
    }

    #[test]
    fn first_write_pays_cow_once() {
        let (c, s) = charge_for(PageState::NotPresent, PageKind::EphemeralZero, true).unwrap();
        assert_eq!((c, s), (COW_COST, PageState::PresentRw));
        let (c, s) = charge_for(s, PageKind::EphemeralZero, true).unwrap();
        assert_eq!((c, s), (0, PageState::PresentRw));
    }

    #[test]
    fn write_after_read_pays_cow() {
        let (c, s) = charge_for(PageState::PresentRo, PageKind::UnpinnedCapCow, true).unwrap();
        assert_eq!((c, s), (COW_COST, PageState::PresentRw));
    }

    #[test]
    fn second_touch_is_free() {
        assert_eq!(
            charge_for(PageState::PresentRo, PageKind::UnpinnedCapCow, false),
            Ok((0, PageState::PresentRo))
        );
        assert_eq!(
            charge_for(PageState::PresentRw, PageKind::EphemeralZero, false),
            Ok((0, PageState::PresentRw))
        );
    }

    #[test]
    fn pinned_store_hard_faults_and_pinned_reads_are_free() {
        assert_eq!(
            charge_for(PageState::PresentRo, PageKind::PinnedCapRo, true),
            Err(HardFault)
        );
        assert_eq!(
            charge_for(PageState::NotPresent, PageKind::PinnedCapRo, true),
            Err(HardFault)
        );
        assert_eq!(
            charge_for(PageState::NotPresent, PageKind::PinnedCapRo, false),
            Ok((0, PageState::PresentRo))
        );
    }

    #[test]
    fn access_pages_single_and_straddle() {
        assert_eq!(access_pages(0x1000, 8).as_slice(), &[0x1000]);
        assert_eq!(access_pages(0x1FFC, 8).as_slice(), &[0x1000, 0x2000]);
        assert_eq!(access_pages(0x1FFE, 4).as_slice(), &[0x1000, 0x2000]);
        assert_eq!(access_pages(0x1FFF, 1).as_slice(), &[0x1000]);
        assert_eq!(access_pages(0x1FF8, 8).as_slice(), &[0x1000]);
    }

    #[test]
    fn access_pages_wraps_at_the_top_of_the_address_space() {
        assert_eq!(access_pages(0xFFFF_FFFC, 8).as_slice(), &[0xFFFF_F000, 0]);
    }

    #[test]
    fn units_are_keyed_by_region_and_cluster() {
        assert_eq!(cluster_of(0x0020_0000), 1);
        // A region starting mid-cluster names its first unit by its own start.
        assert_eq!(unit_base(0x0030_0000, 0x0028_0000), 0x0028_0000);
        // Further clusters of the same region are named by the cluster start.
        assert_eq!(unit_base(0x0050_0000, 0x0028_0000), 0x0040_0000);
    }

    #[test]
    fn tags_round_trip() {
        for k in [
            PageKind::PinnedCapRo,
            PageKind::UnpinnedCapCow,
            PageKind::EphemeralZero,
        ] {
            assert_eq!(PageKind::from_u8(k.as_u8()), Some(k));
        }
        assert_eq!(PageKind::from_u8(0), None);
        for s in [
            PageState::NotPresent,
            PageState::PresentRo,
            PageState::PresentRw,
        ] {
            assert_eq!(PageState::from_u8(s.as_u8()), s);
        }
    }
}
