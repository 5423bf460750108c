//! Image caps (stage A): byte-PVM code with its instruction-start bitmask and jump
//! table, 64 dense endpoints, memory mappings and the data caps they map.
//!
//! The structure is validated here, eagerly; instruction semantics (valid opcodes,
//! block starts, jump-table targets) are the execution layer's business and are
//! checked when the image is built or published (`javm`), never here.

use super::{ADDRESS_SPACE, ROOT_CNODE_SIZE_LOG};
use super::{CNodeCap, CNodeSlot, CapError, CapHashOrRef, NUM_REGS, SlotIdx, SlotPath};
use crate::hash::CapHash;
use crate::page::PAGE_SIZE;

/// The number of endpoints of an image.
pub const MAX_ENDPOINTS: usize = 64;
/// The largest code an image may hold (16 MiB, the loader's limit).
pub const MAX_IMAGE_CODE: usize = 1 << 24;
/// The largest jump table an image may hold.
pub const MAX_JUMP_TABLE: usize = 1 << 24;

/// An entry point: the PC to start at and the registers to start with.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// The entry PC. `0` marks an undefined endpoint, except endpoint 0, which always
    /// exists and defaults to PC 0 (the start of the code).
    pub entry_pc: u32,
    /// Initial registers φ0..φ12.
    pub regs: [u64; NUM_REGS],
}

impl Endpoint {
    /// An endpoint at `entry_pc` whose registers are zero except `regs`, given as
    /// `(index, value)` pairs with `index < 13`.
    pub fn with_regs(entry_pc: u32, regs: &[(usize, u64)]) -> Result<Self, CapError> {
        let mut r = [0u64; NUM_REGS];
        for &(i, v) in regs {
            *r.get_mut(i).ok_or(CapError::RegisterIndex(i))? = v;
        }
        Ok(Endpoint { entry_pc, regs: r })
    }
}

/// A page-aligned range of guest memory and the data cap it maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryMapping {
    /// First address (page-aligned).
    pub start: u64,
    /// Size in bytes (a positive page multiple; `start + size ≤ 2^32`).
    pub size: u64,
    /// The cnode path of the data cap mapped here: a pinned slot maps read-only, an
    /// initial slot (or a nested path) copy-on-write; `None` maps zero pages.
    pub source: Option<SlotPath>,
}

impl MemoryMapping {
    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// A `(slot, cap hash)` pair of an image's pinned or initial list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotHash {
    /// The root-cnode slot.
    pub slot: SlotIdx,
    /// The data cap placed there.
    pub hash: CapHash,
}

/// The fields of an image before validation; [`ImageCap::new`] checks them.
#[derive(Clone, Debug, Default)]
pub struct ImageParts {
    /// Code bytes.
    pub code: Vec<u8>,
    /// Packed instruction-start bitmask: one bit per code byte, LSB first.
    pub bitmask: Vec<u8>,
    /// Jump table (target PCs).
    pub jump_table: Vec<u32>,
    /// Defined endpoints as `(index, endpoint)`, `index < 64`, each index once.
    pub endpoints: Vec<(usize, Endpoint)>,
    /// Memory mappings, in any order (they are sorted by start).
    pub mappings: Vec<MemoryMapping>,
    /// Pinned data caps (read-only; guests cannot overwrite the slot), sorted by slot.
    pub pinned: Vec<SlotHash>,
    /// Initial data caps (copied on write), sorted by slot.
    pub initial: Vec<SlotHash>,
    /// The slot whose cap marks this image's yields.
    pub yield_marker_slot: Option<SlotIdx>,
}

/// A validated image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageCap {
    code: Vec<u8>,
    bitmask: Vec<u8>,
    jump_table: Vec<u32>,
    endpoints: Box<[Endpoint; MAX_ENDPOINTS]>,
    mappings: Vec<MemoryMapping>,
    pinned: Vec<SlotHash>,
    initial: Vec<SlotHash>,
    yield_marker_slot: Option<SlotIdx>,
}

/// Pack one flag per code byte into the image's bitmask form (LSB first).
pub fn pack_bitmask(starts: impl IntoIterator<Item = bool>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, s) in starts.into_iter().enumerate() {
        if i % 8 == 0 {
            out.push(0);
        }
        if s {
            *out.last_mut().expect("pushed above") |= 1 << (i % 8);
        }
    }
    out
}

fn root_slot(slot: SlotIdx, what: &'static str) -> Result<(), CapError> {
    let slots = 1u32 << ROOT_CNODE_SIZE_LOG;
    if slot.0 >= slots {
        return Err(CapError::SlotRange {
            slot: slot.0,
            what,
            slots,
        });
    }
    Ok(())
}

fn check_slot_list(list: &[SlotHash], what: &'static str) -> Result<(), CapError> {
    for (i, s) in list.iter().enumerate() {
        root_slot(s.slot, what)?;
        if i > 0 && list[i - 1].slot >= s.slot {
            return Err(CapError::SlotListOrder {
                what,
                slot: s.slot.0,
            });
        }
    }
    Ok(())
}

impl ImageCap {
    /// Validate `parts` and build the image.
    pub fn new(parts: ImageParts) -> Result<Self, CapError> {
        let ImageParts {
            code,
            bitmask,
            jump_table,
            endpoints: defined,
            mut mappings,
            pinned,
            initial,
            yield_marker_slot,
        } = parts;
        if code.len() > MAX_IMAGE_CODE {
            return Err(CapError::TooLarge {
                what: "code length",
                value: code.len() as u64,
                limit: MAX_IMAGE_CODE as u64,
            });
        }
        if jump_table.len() > MAX_JUMP_TABLE {
            return Err(CapError::TooLarge {
                what: "jump table length",
                value: jump_table.len() as u64,
                limit: MAX_JUMP_TABLE as u64,
            });
        }
        let want = code.len().div_ceil(8);
        let padding_ok = match (code.len() % 8, bitmask.last()) {
            (0, _) | (_, None) => true,
            (used, Some(&last)) => last >> used == 0,
        };
        if bitmask.len() != want || !padding_ok {
            return Err(CapError::Bitmask {
                got: bitmask.len(),
                want,
                code_len: code.len(),
            });
        }
        let mut endpoints: Box<[Endpoint; MAX_ENDPOINTS]> =
            Box::new(std::array::from_fn(|_| Endpoint::default()));
        let mut seen = [false; MAX_ENDPOINTS];
        for (i, e) in defined {
            if i >= MAX_ENDPOINTS {
                return Err(CapError::EndpointIndex(i));
            }
            if std::mem::replace(&mut seen[i], true) {
                return Err(CapError::DuplicateEndpoint(i));
            }
            endpoints[i] = e;
        }
        check_slot_list(&pinned, "pinned")?;
        check_slot_list(&initial, "initial")?;
        if let Some(s) = pinned
            .iter()
            .find(|p| initial.iter().any(|i| i.slot == p.slot))
        {
            return Err(CapError::PinnedAndInitial(s.slot.0));
        }
        if let Some(s) = yield_marker_slot {
            root_slot(s, "the yield marker")?;
        }
        if mappings.len() > crate::cap::MAX_DATA_PAGES {
            return Err(CapError::TooLarge {
                what: "mapping count",
                value: mappings.len() as u64,
                limit: crate::cap::MAX_DATA_PAGES as u64,
            });
        }
        mappings.sort_by_key(|m| m.start);
        let page = PAGE_SIZE as u64;
        let mut prev_end = 0u64;
        for m in &mappings {
            if !m.start.is_multiple_of(page) || !m.size.is_multiple_of(page) {
                return Err(CapError::MappingUnaligned {
                    start: m.start,
                    size: m.size,
                });
            }
            if m.size == 0
                || m.start
                    .checked_add(m.size)
                    .is_none_or(|e| e > ADDRESS_SPACE)
            {
                return Err(CapError::MappingRange {
                    start: m.start,
                    size: m.size,
                });
            }
            if m.start < prev_end {
                return Err(CapError::Overlap {
                    what: "mapping",
                    start: m.start,
                    prev_end,
                });
            }
            prev_end = m.end();
            if let Some(slot) = m.source.as_ref().and_then(SlotPath::single) {
                let known = |l: &[SlotHash]| l.iter().any(|s| s.slot == slot);
                if !known(&pinned) && !known(&initial) {
                    return Err(CapError::UnknownSource {
                        start: m.start,
                        slot: slot.0,
                    });
                }
            }
        }
        Ok(ImageCap {
            code,
            bitmask,
            jump_table,
            endpoints,
            mappings,
            pinned,
            initial,
            yield_marker_slot,
        })
    }

    /// Code bytes.
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    /// Packed instruction-start bitmask.
    pub fn bitmask(&self) -> &[u8] {
        &self.bitmask
    }

    /// Jump table.
    pub fn jump_table(&self) -> &[u32] {
        &self.jump_table
    }

    /// All 64 endpoint slots, defined or not.
    pub fn endpoints(&self) -> &[Endpoint; MAX_ENDPOINTS] {
        &self.endpoints
    }

    /// Endpoint `index` if it is defined: index below 64, and a non-zero entry PC
    /// unless it is endpoint 0.
    pub fn endpoint(&self, index: usize) -> Option<&Endpoint> {
        self.endpoints
            .get(index)
            .filter(|e| index == 0 || e.entry_pc != 0)
    }

    /// Memory mappings, sorted by start, disjoint.
    pub fn mappings(&self) -> &[MemoryMapping] {
        &self.mappings
    }

    /// Pinned `(slot, data cap)` pairs, sorted by slot.
    pub fn pinned(&self) -> &[SlotHash] {
        &self.pinned
    }

    /// Initial `(slot, data cap)` pairs, sorted by slot.
    pub fn initial(&self) -> &[SlotHash] {
        &self.initial
    }

    /// Whether `slot` of the root cnode is pinned (guests cannot write it).
    pub fn is_pinned(&self, slot: SlotIdx) -> bool {
        self.pinned.binary_search_by_key(&slot, |s| s.slot).is_ok()
    }

    /// The yield-marker slot.
    pub fn yield_marker_slot(&self) -> Option<SlotIdx> {
        self.yield_marker_slot
    }

    /// The memory size: the largest end address over all mappings (0 without any).
    pub fn mem_size(&self) -> u64 {
        self.mappings.last().map_or(0, MemoryMapping::end)
    }

    /// The number of read-only units — one pinned mapping ∩ one `2^cluster_shift`-byte
    /// cluster — over the image's pinned mappings: the `ro_units` of
    /// `call_frame_cost` (docs/ISA.md §5.3).
    pub fn ro_units(&self, cluster_shift: u32) -> u64 {
        let mut units = 0u64;
        for m in &self.mappings {
            let pinned = m
                .source
                .as_ref()
                .and_then(SlotPath::single)
                .is_some_and(|s| self.is_pinned(s));
            if pinned {
                let first = m.start >> cluster_shift;
                let last = (m.end() - 1) >> cluster_shift;
                units += last - first + 1;
            }
        }
        units
    }

    /// The root cnode of a fresh instance of this image: the pinned and initial data
    /// caps at their slots, every other slot empty.
    pub fn root_cnode(&self) -> CNodeCap {
        let mut c = CNodeCap::new(ROOT_CNODE_SIZE_LOG).expect("8 <= 16");
        for s in self.pinned.iter().chain(&self.initial) {
            c.set_slot(
                s.slot,
                Some(CNodeSlot::Materialized(CapHashOrRef::Hash(s.hash))),
            )
            .expect("slots were checked against the root cnode size");
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> ImageParts {
        ImageParts {
            code: vec![0],
            bitmask: vec![1],
            ..ImageParts::default()
        }
    }

    fn mapping(start: u64, size: u64, slot: Option<u32>) -> MemoryMapping {
        MemoryMapping {
            start,
            size,
            source: slot.map(|s| SlotPath::slot(SlotIdx(s))),
        }
    }

    #[test]
    fn bitmask_length_and_padding_are_checked() {
        let mut p = parts();
        p.bitmask = vec![];
        assert!(matches!(ImageCap::new(p), Err(CapError::Bitmask { .. })));
        let mut p = parts();
        p.bitmask = vec![0b11];
        assert!(matches!(ImageCap::new(p), Err(CapError::Bitmask { .. })));
    }

    #[test]
    fn endpoint_zero_is_always_defined_others_need_a_pc() {
        let mut p = parts();
        p.endpoints = vec![(5, Endpoint::with_regs(7, &[(1, 9)]).unwrap())];
        let img = ImageCap::new(p).unwrap();
        assert_eq!(img.endpoint(0).unwrap().entry_pc, 0);
        assert_eq!(img.endpoint(5).unwrap().regs[1], 9);
        assert!(img.endpoint(6).is_none());
        assert!(img.endpoint(64).is_none());
    }

    #[test]
    fn endpoint_and_register_indices_are_checked() {
        let mut p = parts();
        p.endpoints = vec![(64, Endpoint::default())];
        assert_eq!(ImageCap::new(p), Err(CapError::EndpointIndex(64)));
        let mut p = parts();
        p.endpoints = vec![(1, Endpoint::default()), (1, Endpoint::default())];
        assert_eq!(ImageCap::new(p), Err(CapError::DuplicateEndpoint(1)));
        assert_eq!(
            Endpoint::with_regs(0, &[(13, 1)]),
            Err(CapError::RegisterIndex(13))
        );
    }

    #[test]
    fn mappings_are_aligned_in_range_disjoint_and_sourced() {
        let bad = [
            (mapping(0x1001, 0x1000, None), "unaligned"),
            (mapping(0x1000, 0, None), "empty"),
            (mapping(0xFFFF_F000, 0x2000, None), "past 4 GiB"),
            (mapping(0x1000, 0x1000, Some(3)), "unknown source"),
        ];
        for (m, why) in bad {
            let mut p = parts();
            p.mappings = vec![m];
            assert!(ImageCap::new(p).is_err(), "{why}");
        }
        let mut p = parts();
        p.mappings = vec![mapping(0x3000, 0x1000, None), mapping(0x2000, 0x2000, None)];
        assert!(matches!(
            ImageCap::new(p),
            Err(CapError::Overlap { start: 0x3000, .. })
        ));
        let mut p = parts();
        p.pinned = vec![SlotHash {
            slot: SlotIdx(1),
            hash: [1; 32],
        }];
        p.mappings = vec![
            mapping(0x3000, 0x1000, None),
            mapping(0x10000, 0x1000, Some(1)),
        ];
        let img = ImageCap::new(p).unwrap();
        assert_eq!(img.mappings()[0].start, 0x3000, "sorted");
        assert_eq!(img.mem_size(), 0x11000);
        assert_eq!(img.ro_units(21), 1);
    }

    #[test]
    fn slot_lists_are_sorted_disjoint_and_in_range() {
        let sh = |s| SlotHash {
            slot: SlotIdx(s),
            hash: [s as u8; 32],
        };
        let mut p = parts();
        p.pinned = vec![sh(2), sh(1)];
        assert!(matches!(
            ImageCap::new(p),
            Err(CapError::SlotListOrder { .. })
        ));
        let mut p = parts();
        p.pinned = vec![sh(1)];
        p.initial = vec![sh(1)];
        assert_eq!(ImageCap::new(p), Err(CapError::PinnedAndInitial(1)));
        let mut p = parts();
        p.initial = vec![sh(256)];
        assert!(matches!(ImageCap::new(p), Err(CapError::SlotRange { .. })));
        let mut p = parts();
        p.pinned = vec![sh(1)];
        p.initial = vec![sh(4)];
        let root = ImageCap::new(p).unwrap().root_cnode();
        assert_eq!(root.get(SlotIdx(4)), Some(&CapHashOrRef::Hash([4; 32])));
        assert_eq!(root.occupied(), 2);
    }

    #[test]
    fn pack_bitmask_is_lsb_first() {
        assert_eq!(
            pack_bitmask([true, false, true, false, false, false, false, false, true]),
            vec![0b101, 1]
        );
    }
}
