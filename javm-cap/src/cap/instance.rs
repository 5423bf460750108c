//! Instance caps: an image, a root cnode, the memory a previous run left (overlays),
//! registers, PC and gas.

use super::{ADDRESS_SPACE, CapError, CapHashOrRef, MAX_DATA_PAGES, NUM_REGS, PageSlot};
use crate::hash::CapHash;
use crate::page::PAGE_SIZE;

/// A run of consecutive pages written by an earlier run, applied on top of the
/// image's mappings when the instance is built. `Empty` means the page is zero (it
/// may shadow non-zero initial data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RwOverlay {
    start: u32,
    pages: Vec<PageSlot>,
}

impl RwOverlay {
    /// An overlay of `pages` starting at the page-aligned address `start`.
    pub fn new(start: u32, pages: Vec<PageSlot>) -> Result<Self, CapError> {
        let end = u64::from(start) + pages.len() as u64 * PAGE_SIZE as u64;
        if !start.is_multiple_of(PAGE_SIZE as u32) || pages.is_empty() || end > ADDRESS_SPACE {
            return Err(CapError::OverlayRange {
                start: start.into(),
                pages: pages.len(),
            });
        }
        Ok(RwOverlay { start, pages })
    }

    /// First address.
    pub fn start(&self) -> u32 {
        self.start
    }

    /// One past the last address.
    pub fn end(&self) -> u64 {
        u64::from(self.start) + self.pages.len() as u64 * PAGE_SIZE as u64
    }

    /// The pages, from `start` upward.
    pub fn pages(&self) -> &[PageSlot] {
        &self.pages
    }

    pub(crate) fn pages_mut(&mut self) -> &mut [PageSlot] {
        &mut self.pages
    }
}

/// A runnable instance of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceCap {
    image_hash_chain: CapHash,
    image_hash: CapHash,
    root_cnode: CapHashOrRef,
    rw_overlays: Vec<RwOverlay>,
    mem_size: u64,
    regs: [u64; NUM_REGS],
    pc: u32,
    gas_remaining: u64,
}

impl InstanceCap {
    /// A fresh instance of `image_hash`: its chain starts at the image hash, no
    /// overlays, zero registers, PC 0, no gas.
    pub fn fresh(
        image_hash: CapHash,
        root_cnode: CapHashOrRef,
        mem_size: u64,
    ) -> Result<Self, CapError> {
        Self::new(
            image_hash,
            image_hash,
            root_cnode,
            Vec::new(),
            mem_size,
            [0; NUM_REGS],
            0,
            0,
        )
    }

    /// An instance with every field given. Overlays must be sorted, pairwise
    /// separated by at least one page (adjacent runs are one overlay, so each memory
    /// state has one form) and end within `mem_size`; `mem_size` is at most 2^32.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        image_hash_chain: CapHash,
        image_hash: CapHash,
        root_cnode: CapHashOrRef,
        rw_overlays: Vec<RwOverlay>,
        mem_size: u64,
        regs: [u64; NUM_REGS],
        pc: u32,
        gas_remaining: u64,
    ) -> Result<Self, CapError> {
        if mem_size > ADDRESS_SPACE {
            return Err(CapError::TooLarge {
                what: "mem_size",
                value: mem_size,
                limit: ADDRESS_SPACE,
            });
        }
        let mut prev_end = None::<u64>;
        let mut total = 0usize;
        for o in &rw_overlays {
            let start = u64::from(o.start);
            if prev_end.is_some_and(|e| start <= e) {
                return Err(CapError::Overlap {
                    what: "overlay",
                    start,
                    prev_end: prev_end.unwrap_or(0),
                });
            }
            if o.end() > mem_size {
                return Err(CapError::TooLarge {
                    what: "overlay end",
                    value: o.end(),
                    limit: mem_size,
                });
            }
            prev_end = Some(o.end());
            total += o.pages.len();
        }
        debug_assert!(total <= MAX_DATA_PAGES, "overlays end within 4 GiB");
        Ok(InstanceCap {
            image_hash_chain,
            image_hash,
            root_cnode,
            rw_overlays,
            mem_size,
            regs,
            pc,
            gas_remaining,
        })
    }

    /// Build overlays from `(page address, slot)` pairs in ascending address order,
    /// merging consecutive pages into runs (the canonical form [`Self::new`] wants).
    pub fn overlays_from_pages(
        pages: impl IntoIterator<Item = (u32, PageSlot)>,
    ) -> Result<Vec<RwOverlay>, CapError> {
        let mut out: Vec<RwOverlay> = Vec::new();
        for (addr, slot) in pages {
            match out.last_mut() {
                Some(o) if o.end() == u64::from(addr) => o.pages.push(slot),
                Some(o) if o.end() > u64::from(addr) => {
                    return Err(CapError::Overlap {
                        what: "overlay page",
                        start: addr.into(),
                        prev_end: o.end(),
                    });
                }
                _ => out.push(RwOverlay::new(addr, vec![slot])?),
            }
        }
        Ok(out)
    }

    /// The hash chain of the images this instance has run (genesis: the image hash).
    pub fn image_hash_chain(&self) -> &CapHash {
        &self.image_hash_chain
    }

    /// The image.
    pub fn image_hash(&self) -> &CapHash {
        &self.image_hash
    }

    /// The root cnode.
    pub fn root_cnode(&self) -> &CapHashOrRef {
        &self.root_cnode
    }

    /// Replace the root cnode (the driver does this when it settles).
    pub fn set_root_cnode(&mut self, root: CapHashOrRef) {
        self.root_cnode = root;
    }

    /// Memory overlays, sorted and disjoint.
    pub fn rw_overlays(&self) -> &[RwOverlay] {
        &self.rw_overlays
    }

    pub(crate) fn rw_overlays_mut(&mut self) -> &mut [RwOverlay] {
        &mut self.rw_overlays
    }

    /// Size of the address space in use (the image's largest mapping end).
    pub fn mem_size(&self) -> u64 {
        self.mem_size
    }

    /// Registers φ0..φ12 saved at the last halt.
    pub fn regs(&self) -> &[u64; NUM_REGS] {
        &self.regs
    }

    /// PC saved at the last halt (0 for a fresh instance).
    pub fn pc(&self) -> u32 {
        self.pc
    }

    /// Gas left at the last halt.
    pub fn gas_remaining(&self) -> u64 {
        self.gas_remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(b: u8) -> PageSlot {
        PageSlot::from_content(&[b]).unwrap()
    }

    #[test]
    fn overlays_merge_into_runs() {
        let runs = InstanceCap::overlays_from_pages([
            (0x1000, page(1)),
            (0x2000, page(2)),
            (0x5000, PageSlot::Empty),
        ])
        .unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].pages().len(), 2);
        assert_eq!(runs[1].start(), 0x5000);
        assert!(InstanceCap::overlays_from_pages([(0x2000, page(1)), (0x1000, page(1))]).is_err());
    }

    #[test]
    fn overlays_must_be_separated_and_inside_mem_size() {
        let a = RwOverlay::new(0x1000, vec![page(1)]).unwrap();
        let b = RwOverlay::new(0x2000, vec![page(2)]).unwrap();
        let mk = |o: Vec<RwOverlay>, mem| {
            InstanceCap::new(
                [0; 32],
                [0; 32],
                CapHashOrRef::Hash([0; 32]),
                o,
                mem,
                [0; 13],
                0,
                0,
            )
        };
        assert!(matches!(
            mk(vec![a.clone(), b.clone()], 0x10000),
            Err(CapError::Overlap { .. })
        ));
        assert!(matches!(
            mk(vec![b.clone()], 0x2000),
            Err(CapError::TooLarge { .. })
        ));
        assert!(mk(vec![b], 0x3000).is_ok());
        assert!(matches!(
            mk(vec![], ADDRESS_SPACE + 1),
            Err(CapError::TooLarge { .. })
        ));
    }

    #[test]
    fn overlay_range_is_checked() {
        assert!(RwOverlay::new(0x10, vec![page(1)]).is_err());
        assert!(RwOverlay::new(0x1000, vec![]).is_err());
        assert!(RwOverlay::new(0xFFFF_F000, vec![page(1), page(1)]).is_err());
        assert!(RwOverlay::new(0xFFFF_F000, vec![page(1)]).is_ok());
    }
}
