//! The engine-independent description of an address space (docs/ISA.md §1.3).
//!
//! A [`MemoryLayout`] is a sorted list of page-aligned, non-overlapping [`Region`]s,
//! each with a [`PageKind`] and its initial contents as shared page slabs
//! ([`PageRef`]). Engines build instances from a layout without copying contents:
//! pages are materialized from their slabs on first touch. Everything not in a region
//! is inaccessible.

use std::sync::Arc;

use javm_cap::{PageBytes, PageRef};
use thiserror::Error;

use super::{PAGE_SIZE, PageKind};

/// One page-aligned region of a layout.
#[derive(Clone, Debug)]
pub struct Region {
    start: u32,
    pages: u32,
    kind: PageKind,
    /// Initial contents of the first `data.len()` pages (`None` = zero page); the
    /// remaining pages are zero.
    data: Vec<Option<PageRef>>,
}

impl Region {
    /// First address (page-aligned).
    pub fn start(&self) -> u32 {
        self.start
    }

    /// Number of pages.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// One past the last address, as a `u64` (may be 2^32).
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.pages) * u64::from(PAGE_SIZE)
    }

    /// The kind of every page in the region.
    pub fn kind(&self) -> PageKind {
        self.kind
    }

    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: u32) -> bool {
        addr >= self.start && u64::from(addr) < self.end()
    }

    /// Initial contents of the page containing `addr` (`None` for a zero page or an
    /// address outside the region).
    pub fn source(&self, addr: u32) -> Option<&PageBytes> {
        if !self.contains(addr) {
            return None;
        }
        let i = ((addr - self.start) / PAGE_SIZE) as usize;
        self.data.get(i).and_then(|p| p.as_deref())
    }
}

/// Why a region cannot be added to a layout. Adding is all-or-nothing: on error the
/// layout is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Start or length is not a multiple of the page size.
    #[error("region {start:#x}+{len:#x} is not page-aligned")]
    Unaligned {
        /// Requested start.
        start: u64,
        /// Requested length.
        len: u64,
    },
    /// The region has no pages.
    #[error("region at {start:#x} is empty")]
    Empty {
        /// Requested start.
        start: u64,
    },
    /// The region extends past 2^32.
    #[error("region {start:#x}+{len:#x} extends past the 4 GiB address space")]
    OutOfRange {
        /// Requested start.
        start: u64,
        /// Requested length.
        len: u64,
    },
    /// The region overlaps an existing one.
    #[error("region {start:#x}+{len:#x} overlaps the region at {other:#x}")]
    Overlap {
        /// Requested start.
        start: u64,
        /// Requested length.
        len: u64,
        /// Start of the region it overlaps.
        other: u32,
    },
    /// More initial contents than the region holds.
    #[error("{contents} bytes of contents do not fit in a region of {len} bytes")]
    ContentsTooLong {
        /// Content length.
        contents: usize,
        /// Region length.
        len: u64,
    },
    /// Non-zero contents for a zero-filled (ephemeral) region.
    #[error("an ephemeral zero region at {start:#x} cannot have non-zero contents")]
    ContentsInZeroRegion {
        /// Requested start.
        start: u64,
    },
}

/// An address space: regions plus the initial heap top used by GP `sbrk`.
#[derive(Clone, Debug, Default)]
pub struct MemoryLayout {
    regions: Vec<Region>,
    heap_top: u64,
}

impl MemoryLayout {
    /// An empty layout: every address inaccessible.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a region of `len` bytes at `start` with initial `contents` (the rest of the
    /// region is zero). `start` and `len` must be page-aligned.
    pub fn add_region(
        &mut self,
        start: u64,
        len: u64,
        kind: PageKind,
        contents: &[u8],
    ) -> Result<&mut Self, LayoutError> {
        if contents.len() as u64 > len {
            return Err(LayoutError::ContentsTooLong {
                contents: contents.len(),
                len,
            });
        }
        let data: Vec<Option<PageRef>> = contents
            .chunks(PAGE_SIZE as usize)
            .map(|chunk| {
                PageBytes::from_content(chunk)
                    .filter(|p| !p.is_zero())
                    .map(Arc::new)
            })
            .collect();
        self.add_region_pages(start, len, kind, data)
    }

    /// Add a region whose first pages share existing slabs (`None` = zero page).
    pub fn add_region_pages(
        &mut self,
        start: u64,
        len: u64,
        kind: PageKind,
        mut data: Vec<Option<PageRef>>,
    ) -> Result<&mut Self, LayoutError> {
        let page = u64::from(PAGE_SIZE);
        if !start.is_multiple_of(page) || !len.is_multiple_of(page) {
            return Err(LayoutError::Unaligned { start, len });
        }
        if len == 0 {
            return Err(LayoutError::Empty { start });
        }
        if start.checked_add(len).is_none_or(|end| end > 1 << 32) {
            return Err(LayoutError::OutOfRange { start, len });
        }
        let pages = len / page;
        if data.len() as u64 > pages {
            return Err(LayoutError::ContentsTooLong {
                contents: data.len() * PAGE_SIZE as usize,
                len,
            });
        }
        if kind == PageKind::EphemeralZero && data.iter().flatten().any(|p| !p.is_zero()) {
            return Err(LayoutError::ContentsInZeroRegion { start });
        }
        while data.last().is_some_and(Option::is_none) {
            data.pop();
        }
        let at = self.regions.partition_point(|r| u64::from(r.start) < start);
        let overlaps = |r: &Region| u64::from(r.start) < start + len && start < r.end();
        if let Some(r) = [at.checked_sub(1), Some(at)]
            .into_iter()
            .flatten()
            .filter_map(|i| self.regions.get(i))
            .find(|r| overlaps(r))
        {
            return Err(LayoutError::Overlap {
                start,
                len,
                other: r.start,
            });
        }
        self.regions.insert(
            at,
            Region {
                start: start as u32,
                pages: pages as u32,
                kind,
                data,
            },
        );
        Ok(self)
    }

    /// Set the heap top that GP `sbrk` grows from (default 0).
    pub fn set_heap_top(&mut self, top: u64) -> &mut Self {
        self.heap_top = top.min(1 << 32);
        self
    }

    /// The initial heap top.
    pub fn heap_top(&self) -> u64 {
        self.heap_top
    }

    /// The regions, sorted by start address.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Total number of accessible pages (this selects the jar1 memory tier).
    pub fn accessible_pages(&self) -> u64 {
        self.regions.iter().map(|r| u64::from(r.pages)).sum()
    }

    /// The region containing `addr`, if any.
    pub fn region_of(&self, addr: u32) -> Option<&Region> {
        let i = self.regions.partition_point(|r| r.start <= addr);
        i.checked_sub(1)
            .and_then(|i| self.regions.get(i))
            .filter(|r| r.contains(addr))
    }

    /// The kind of the page containing `addr`, `None` if it is inaccessible.
    pub fn kind_of(&self, addr: u32) -> Option<PageKind> {
        self.region_of(addr).map(Region::kind)
    }

    /// The initial contents of the page containing `addr` (`None` = zeros).
    pub fn source(&self, addr: u32) -> Option<&PageBytes> {
        self.region_of(addr).and_then(|r| r.source(addr))
    }

    /// One past the highest accessible address (0 for an empty layout).
    pub fn end(&self) -> u64 {
        self.regions.last().map_or(0, Region::end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_stay_sorted_and_lookups_work() {
        let mut l = MemoryLayout::new();
        l.add_region(0x20000, 0x2000, PageKind::EphemeralZero, &[])
            .unwrap();
        l.add_region(0x10000, 0x1000, PageKind::PinnedCapRo, &[1, 2, 3])
            .unwrap();
        assert_eq!(l.regions()[0].start(), 0x10000);
        assert_eq!(l.kind_of(0x10FFF), Some(PageKind::PinnedCapRo));
        assert_eq!(l.kind_of(0x11000), None);
        assert_eq!(l.kind_of(0x21FFF), Some(PageKind::EphemeralZero));
        assert_eq!(l.source(0x10000).unwrap().bytes()[..3], [1, 2, 3]);
        assert!(l.source(0x20000).is_none());
        assert_eq!(l.accessible_pages(), 3);
        assert_eq!(l.end(), 0x22000);
    }

    #[test]
    fn bad_regions_are_rejected_and_leave_the_layout_unchanged() {
        let mut l = MemoryLayout::new();
        l.add_region(0x10000, 0x2000, PageKind::EphemeralZero, &[])
            .unwrap();
        let before = l.regions().len();
        assert!(matches!(
            l.add_region(0x10800, 0x1000, PageKind::EphemeralZero, &[]),
            Err(LayoutError::Unaligned { .. })
        ));
        assert!(matches!(
            l.add_region(0x11000, 0x1000, PageKind::EphemeralZero, &[]),
            Err(LayoutError::Overlap { other: 0x10000, .. })
        ));
        assert!(matches!(
            l.add_region(0xF000, 0x2000, PageKind::EphemeralZero, &[]),
            Err(LayoutError::Overlap { .. })
        ));
        assert!(matches!(
            l.add_region(0xFFFF_F000, 0x2000, PageKind::EphemeralZero, &[]),
            Err(LayoutError::OutOfRange { .. })
        ));
        assert!(matches!(
            l.add_region(0x30000, 0, PageKind::EphemeralZero, &[]),
            Err(LayoutError::Empty { .. })
        ));
        assert!(matches!(
            l.add_region(0x30000, 0x1000, PageKind::PinnedCapRo, &[0; 0x1001]),
            Err(LayoutError::ContentsTooLong { .. })
        ));
        assert!(matches!(
            l.add_region(0x30000, 0x1000, PageKind::EphemeralZero, &[1]),
            Err(LayoutError::ContentsInZeroRegion { .. })
        ));
        assert_eq!(l.regions().len(), before);
    }

    #[test]
    fn top_page_region_is_allowed() {
        let mut l = MemoryLayout::new();
        l.add_region(0xFFFF_F000, 0x1000, PageKind::EphemeralZero, &[])
            .unwrap();
        assert_eq!(l.end(), 1 << 32);
        assert_eq!(l.kind_of(0xFFFF_FFFF), Some(PageKind::EphemeralZero));
    }

    #[test]
    fn zero_pages_in_contents_are_not_stored() {
        let mut l = MemoryLayout::new();
        let mut contents = vec![0u8; 3 * 4096];
        contents[4096] = 7;
        l.add_region(0, 4 * 4096, PageKind::UnpinnedCapCow, &contents)
            .unwrap();
        assert!(l.source(0).is_none());
        assert_eq!(l.source(4096).unwrap().bytes()[0], 7);
        assert!(l.source(2 * 4096).is_none());
    }
}
