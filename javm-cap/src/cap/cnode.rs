//! CNodes: tables of `2^size_log` capability slots (`size_log ≤ 16`), stored sparsely.

use std::collections::BTreeMap;

use super::{CapError, CapHashOrRef, SlotIdx};
use crate::hash::CapHash;

/// The largest `size_log` of a cnode.
pub const MAX_CNODE_SIZE_LOG: u8 = 16;
/// The `size_log` of an instance's root cnode: 256 slots, one per value of a
/// register's low byte (slot operands are the low byte of the register).
pub const ROOT_CNODE_SIZE_LOG: u8 = 8;

/// An occupied cnode slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CNodeSlot {
    /// The slot holds this cap.
    Materialized(CapHashOrRef),
    /// The slot holds a cap known only by hash (not in the cache). Reads like an
    /// empty slot; hashes like `Materialized(Hash(h))`.
    Missing(CapHash),
}

/// A table of `2^size_log` slots; unoccupied slots are empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CNodeCap {
    size_log: u8,
    slots: BTreeMap<u32, CNodeSlot>,
}

impl CNodeCap {
    /// An empty cnode of `2^size_log` slots.
    pub fn new(size_log: u8) -> Result<Self, CapError> {
        if size_log > MAX_CNODE_SIZE_LOG {
            return Err(CapError::CNodeSizeLog(size_log));
        }
        Ok(CNodeCap {
            size_log,
            slots: BTreeMap::new(),
        })
    }

    /// `log2` of the slot count.
    pub fn size_log(&self) -> u8 {
        self.size_log
    }

    /// The number of slots, `2^size_log`.
    pub fn capacity(&self) -> u32 {
        1 << self.size_log
    }

    fn check(&self, idx: SlotIdx) -> Result<u32, CapError> {
        if idx.0 >= self.capacity() {
            return Err(CapError::SlotRange {
                slot: idx.0,
                what: "a cnode",
                slots: self.capacity(),
            });
        }
        Ok(idx.0)
    }

    /// The cap in slot `idx`; `None` for an empty slot, a `Missing` one, or an index
    /// out of range.
    pub fn get(&self, idx: SlotIdx) -> Option<&CapHashOrRef> {
        match self.slots.get(&idx.0) {
            Some(CNodeSlot::Materialized(t)) => Some(t),
            Some(CNodeSlot::Missing(_)) | None => None,
        }
    }

    /// The raw slot (distinguishing `Missing` from empty).
    pub fn slot(&self, idx: SlotIdx) -> Option<&CNodeSlot> {
        self.slots.get(&idx.0)
    }

    /// Set slot `idx` (`None` empties it) and return what it held.
    pub fn set(
        &mut self,
        idx: SlotIdx,
        value: Option<CapHashOrRef>,
    ) -> Result<Option<CNodeSlot>, CapError> {
        self.set_slot(idx, value.map(CNodeSlot::Materialized))
    }

    /// Set slot `idx` to a raw slot value (`None` empties it) and return what it held.
    pub fn set_slot(
        &mut self,
        idx: SlotIdx,
        value: Option<CNodeSlot>,
    ) -> Result<Option<CNodeSlot>, CapError> {
        let i = self.check(idx)?;
        Ok(match value {
            Some(v) => self.slots.insert(i, v),
            None => self.slots.remove(&i),
        })
    }

    /// Empty slot `idx` and return what it held.
    pub fn take(&mut self, idx: SlotIdx) -> Result<Option<CNodeSlot>, CapError> {
        self.set_slot(idx, None)
    }

    /// The occupied slots in ascending index order.
    pub fn iter(&self) -> impl Iterator<Item = (SlotIdx, &CNodeSlot)> {
        self.slots.iter().map(|(&i, s)| (SlotIdx(i), s))
    }

    /// The number of occupied slots.
    pub fn occupied(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_log_is_bounded() {
        assert!(CNodeCap::new(16).is_ok());
        assert_eq!(CNodeCap::new(17), Err(CapError::CNodeSizeLog(17)));
    }

    #[test]
    fn slots_are_range_checked() {
        let mut c = CNodeCap::new(2).unwrap();
        assert!(c.set(SlotIdx(3), Some(CapHashOrRef::Hash([1; 32]))).is_ok());
        assert!(matches!(
            c.set(SlotIdx(4), Some(CapHashOrRef::Hash([1; 32]))),
            Err(CapError::SlotRange { slot: 4, .. })
        ));
        assert_eq!(c.get(SlotIdx(99)), None);
    }

    #[test]
    fn missing_reads_as_empty_and_set_returns_the_old_value() {
        let mut c = CNodeCap::new(8).unwrap();
        c.set_slot(SlotIdx(1), Some(CNodeSlot::Missing([2; 32])))
            .unwrap();
        assert_eq!(c.get(SlotIdx(1)), None);
        assert_eq!(c.slot(SlotIdx(1)), Some(&CNodeSlot::Missing([2; 32])));
        let old = c
            .set(SlotIdx(1), Some(CapHashOrRef::Hash([3; 32])))
            .unwrap();
        assert_eq!(old, Some(CNodeSlot::Missing([2; 32])));
        assert!(c.take(SlotIdx(1)).unwrap().is_some());
        assert_eq!(c.occupied(), 0);
    }
}
