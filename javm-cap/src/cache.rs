//! `CacheDirectory`: the caps a running VM sees.
//!
//! Two tiers (docs/CAPS.md §4): **blobs**, immutable caps by hash (`put_cap` is idempotent
//! and returns the hash; `get_blob`), and **working entries**, mutable caps by
//! reference ([`CapRef`]), which the driver edits while instances run and publishes
//! with [`CacheDirectory::settle`]. Every method takes `&self`; readers run
//! concurrently (a read-write lock per tier).
//!
//! A directory may sit on a [`CapStore`]: a blob missing from memory is read through
//! from the store (verified) and kept, and [`CacheDirectory::commit`] writes every blob
//! published since the last commit to the store in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::cap::{CNodeSlot, Cap, CapError, CapHashOrRef, CapRef};
use crate::encode::cap_hash;
use crate::hash::CapHash;
use crate::store::{CapStore, CapStoreExt, StoreError};

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The reference names no working entry of this directory.
    #[error("no working entry {0}")]
    UnknownRef(u64),
    /// Working entries refer to each other in a cycle, so none can be settled.
    #[error("working entries refer to each other in a cycle (through entry {0})")]
    RefCycle(u64),
    /// The cap is invalid.
    #[error("{0}")]
    Cap(#[from] CapError),
    /// The backing store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

type Entries = BTreeMap<u64, (CapRef, Arc<Cap>)>;

/// Immutable caps by hash plus mutable working entries by reference.
#[derive(Default)]
pub struct CacheDirectory {
    blobs: RwLock<HashMap<CapHash, Arc<Cap>>>,
    entries: RwLock<Entries>,
    next_id: AtomicU64,
    store: Option<Arc<dyn CapStore>>,
    unsaved: Mutex<Vec<CapHash>>,
}

impl std::fmt::Debug for CacheDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheDirectory")
            .field("blobs", &self.blob_count())
            .field("entries", &self.entry_count())
            .field("store", &self.store.is_some())
            .finish()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl CacheDirectory {
    /// An empty directory with no backing store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty directory that reads missing blobs from `store` and commits to it.
    pub fn with_store(store: Arc<dyn CapStore>) -> Self {
        CacheDirectory {
            store: Some(store),
            ..Self::default()
        }
    }

    /// Publish `cap` and return its hash. Idempotent: publishing equal content again
    /// returns the same hash and keeps the first copy.
    pub fn put_cap(&self, cap: Cap) -> Result<CapHash, CapError> {
        let hash = cap_hash(&cap)?;
        self.insert_blob(hash, Arc::new(cap));
        Ok(hash)
    }

    /// Publish a cap whose hash the caller already computed (checked in debug builds).
    pub fn put_cap_with_hash(&self, hash: CapHash, cap: Arc<Cap>) {
        debug_assert_eq!(
            cap_hash(&cap).ok(),
            Some(hash),
            "put_cap_with_hash: wrong hash"
        );
        self.insert_blob(hash, cap);
    }

    fn insert_blob(&self, hash: CapHash, cap: Arc<Cap>) {
        let mut blobs = write(&self.blobs);
        if let std::collections::hash_map::Entry::Vacant(v) = blobs.entry(hash) {
            v.insert(cap);
            if self.store.is_some() {
                self.unsaved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(hash);
            }
        }
    }

    /// The blob `hash`: from memory, else from the backing store (verified, then
    /// kept in memory). `Ok(None)` if neither has it.
    pub fn get_blob(&self, hash: &CapHash) -> Result<Option<Arc<Cap>>, StoreError> {
        if let Some(c) = read(&self.blobs).get(hash) {
            return Ok(Some(Arc::clone(c)));
        }
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let Some(cap) = store.get_cap(hash)? else {
            return Ok(None);
        };
        let cap = Arc::new(cap);
        write(&self.blobs)
            .entry(*hash)
            .or_insert_with(|| Arc::clone(&cap));
        Ok(Some(cap))
    }

    /// Whether the blob is in memory (the backing store is not asked).
    pub fn contains_blob(&self, hash: &CapHash) -> bool {
        read(&self.blobs).contains_key(hash)
    }

    /// Blobs held in memory.
    pub fn blob_count(&self) -> usize {
        read(&self.blobs).len()
    }

    /// Add a working entry holding `cap`; the returned handle names it.
    pub fn put_instance(&self, cap: Cap) -> CapRef {
        self.put_instance_arc(Arc::new(cap))
    }

    fn put_instance_arc(&self, cap: Arc<Cap>) -> CapRef {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let r = CapRef::new(id);
        write(&self.entries).insert(id, (r.clone(), cap));
        r
    }

    /// Start a working entry from a published blob (shares it; no copy).
    pub fn promote_blob_to_instance(&self, hash: &CapHash) -> Result<Option<CapRef>, StoreError> {
        Ok(self.get_blob(hash)?.map(|c| self.put_instance_arc(c)))
    }

    /// The current value of a working entry.
    pub fn get_instance(&self, r: &CapRef) -> Option<Arc<Cap>> {
        read(&self.entries).get(&r.id()).map(|(_, c)| Arc::clone(c))
    }

    /// Replace the value of a working entry.
    pub fn set_instance(&self, r: &CapRef, cap: Cap) -> Result<(), CacheError> {
        let mut entries = write(&self.entries);
        let e = entries
            .get_mut(&r.id())
            .ok_or(CacheError::UnknownRef(r.id()))?;
        e.1 = Arc::new(cap);
        Ok(())
    }

    /// Working entries held.
    pub fn entry_count(&self) -> usize {
        read(&self.entries).len()
    }

    /// Resolve an address: a blob by hash or a working entry by reference.
    pub fn get(&self, target: &CapHashOrRef) -> Result<Option<Arc<Cap>>, StoreError> {
        match target {
            CapHashOrRef::Hash(h) => self.get_blob(h),
            CapHashOrRef::Ref(r) => Ok(self.get_instance(r)),
        }
    }

    /// Publish working entry `r` and return its hash. Working entries it refers to
    /// are settled first (depth first) and replaced by their hashes; the entries stay
    /// in the directory until [`Self::sweep_instances`] drops them.
    pub fn settle(&self, r: &CapRef) -> Result<CapHash, CacheError> {
        let mut path = Vec::new();
        self.settle_inner(r, &mut path)
    }

    fn settle_inner(&self, r: &CapRef, path: &mut Vec<u64>) -> Result<CapHash, CacheError> {
        if path.contains(&r.id()) {
            return Err(CacheError::RefCycle(r.id()));
        }
        let cap = self.get_instance(r).ok_or(CacheError::UnknownRef(r.id()))?;
        if !cap.has_ref() {
            let hash = cap_hash(&cap)?;
            self.insert_blob(hash, cap);
            return Ok(hash);
        }
        path.push(r.id());
        let mut cap = (*cap).clone();
        match &mut cap {
            Cap::Instance(i) => {
                if let CapHashOrRef::Ref(inner) = i.root_cnode().clone() {
                    let h = self.settle_inner(&inner, path)?;
                    i.set_root_cnode(CapHashOrRef::Hash(h));
                }
            }
            Cap::CNode(c) => {
                let refs: Vec<_> = c
                    .iter()
                    .filter_map(|(i, s)| match s {
                        CNodeSlot::Materialized(CapHashOrRef::Ref(inner)) => {
                            Some((i, inner.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                for (i, inner) in refs {
                    let h = self.settle_inner(&inner, path)?;
                    c.set(i, Some(CapHashOrRef::Hash(h)))?;
                }
            }
            Cap::Image(_) | Cap::Data(_) => {}
        }
        path.pop();
        let hash = cap_hash(&cap)?;
        self.insert_blob(hash, Arc::new(cap));
        Ok(hash)
    }

    /// Drop working entries that no handle outside the directory refers to, repeating
    /// until none is left to drop (dropping one may release the handles it held).
    /// Returns how many were dropped.
    pub fn sweep_instances(&self) -> usize {
        let mut dropped = 0;
        loop {
            let victims: Vec<(CapRef, Arc<Cap>)> = {
                let mut entries = write(&self.entries);
                let ids: Vec<u64> = entries
                    .iter()
                    .filter(|(_, (r, _))| r.handles() == 1)
                    .map(|(&id, _)| id)
                    .collect();
                ids.iter().filter_map(|id| entries.remove(id)).collect()
            };
            if victims.is_empty() {
                return dropped;
            }
            dropped += victims.len();
            // Dropped here, outside the lock: their caps release the handles they held.
            drop(victims);
        }
    }

    /// Write every blob published since the last commit to the backing store, in one
    /// transaction; returns how many. Without a store, does nothing. On failure the
    /// blobs stay queued for the next commit.
    pub fn commit(&self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let mut unsaved = self.unsaved.lock().unwrap_or_else(|e| e.into_inner());
        let caps: Vec<Arc<Cap>> = {
            let blobs = read(&self.blobs);
            unsaved
                .iter()
                .filter_map(|h| blobs.get(h).cloned())
                .collect()
        };
        let refs: Vec<&Cap> = caps.iter().map(|c| &**c).collect();
        store.put_caps(&refs)?;
        let n = unsaved.len();
        unsaved.clear();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::{CNodeCap, DataCap, InstanceCap, SlotIdx};
    use crate::store::MemStore;

    fn data(b: u8) -> Cap {
        Cap::Data(DataCap::from_bytes(&[b; 10]).unwrap())
    }

    #[test]
    fn put_cap_is_idempotent() {
        let c = CacheDirectory::new();
        let a = c.put_cap(data(1)).unwrap();
        assert_eq!(c.put_cap(data(1)).unwrap(), a);
        assert_eq!(c.blob_count(), 1);
        assert_eq!(&*c.get_blob(&a).unwrap().unwrap(), &data(1));
        assert!(c.get_blob(&[0; 32]).unwrap().is_none());
    }

    #[test]
    fn settle_publishes_nested_refs_first() {
        let c = CacheDirectory::new();
        let d = c.put_instance(data(2));
        let mut cn = CNodeCap::new(8).unwrap();
        cn.set(SlotIdx(3), Some(CapHashOrRef::Ref(d.clone())))
            .unwrap();
        let cn = c.put_instance(Cap::CNode(cn));
        let inst = InstanceCap::fresh([5; 32], CapHashOrRef::Ref(cn.clone()), 0).unwrap();
        let inst = c.put_instance(Cap::Instance(inst));
        let h = c.settle(&inst).unwrap();
        let Cap::Instance(i) = &*c.get_blob(&h).unwrap().unwrap() else {
            panic!("not an instance")
        };
        let CapHashOrRef::Hash(ch) = i.root_cnode() else {
            panic!("root still a ref")
        };
        let Cap::CNode(n) = &*c.get_blob(ch).unwrap().unwrap() else {
            panic!("not a cnode")
        };
        assert_eq!(
            n.get(SlotIdx(3)),
            Some(&CapHashOrRef::Hash(cap_hash(&data(2)).unwrap()))
        );
    }

    #[test]
    fn ref_cycles_are_an_error_not_a_hang() {
        let c = CacheDirectory::new();
        let a = c.put_instance(Cap::CNode(CNodeCap::new(2).unwrap()));
        let mut cn = CNodeCap::new(2).unwrap();
        cn.set(SlotIdx(0), Some(CapHashOrRef::Ref(a.clone())))
            .unwrap();
        c.set_instance(&a, Cap::CNode(cn)).unwrap();
        assert!(matches!(c.settle(&a), Err(CacheError::RefCycle(_))));
        // Break the cycle so the entries can be swept.
        c.set_instance(&a, data(0)).unwrap();
    }

    #[test]
    fn sweep_drops_unreferenced_entries_transitively() {
        let c = CacheDirectory::new();
        let inner = c.put_instance(data(3));
        let mut cn = CNodeCap::new(2).unwrap();
        cn.set(SlotIdx(1), Some(CapHashOrRef::Ref(inner.clone())))
            .unwrap();
        let outer = c.put_instance(Cap::CNode(cn));
        drop(inner);
        assert_eq!(
            c.sweep_instances(),
            0,
            "outer is held, and outer holds inner"
        );
        drop(outer);
        assert_eq!(c.sweep_instances(), 2);
        assert_eq!(c.entry_count(), 0);
    }

    #[test]
    fn store_read_through_and_commit() {
        let store = Arc::new(MemStore::new());
        let h = store.put_caps(&[&data(4)]).unwrap()[0];
        let c = CacheDirectory::with_store(store.clone());
        assert!(!c.contains_blob(&h));
        assert_eq!(&*c.get_blob(&h).unwrap().unwrap(), &data(4));
        assert!(c.contains_blob(&h));
        let n = c.put_cap(data(5)).unwrap();
        assert!(store.get_cap(&n).unwrap().is_none(), "not committed yet");
        assert_eq!(c.commit().unwrap(), 1);
        assert_eq!(store.get_cap(&n).unwrap().unwrap(), data(5));
        assert_eq!(c.commit().unwrap(), 0);
    }

    #[test]
    fn concurrent_readers_see_every_blob() {
        let c = Arc::new(CacheDirectory::new());
        let hashes: Vec<_> = (0..64).map(|i| c.put_cap(data(i)).unwrap()).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let c = &c;
                let hashes = &hashes;
                s.spawn(move || {
                    for h in hashes {
                        assert!(c.get_blob(h).unwrap().is_some());
                    }
                });
            }
        });
    }
}
