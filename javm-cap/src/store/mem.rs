//! An in-memory [`CapStore`]: two ordered maps behind one lock.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{Batch, CapStore, StoreError, Table};
use crate::hash::CapHash;

/// A cap store that lives in memory (tests, and embedders with their own persistence).
#[derive(Debug, Default)]
pub struct MemStore {
    tables: RwLock<[BTreeMap<CapHash, Vec<u8>>; 2]>,
}

fn index(t: Table) -> usize {
    match t {
        Table::Caps => 0,
        Table::Pages => 1,
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overwrite one record without any check: for tests that simulate corruption.
    pub fn poke(&self, table: Table, key: CapHash, bytes: Vec<u8>) {
        self.tables.write().unwrap_or_else(|e| e.into_inner())[index(table)].insert(key, bytes);
    }
}

impl CapStore for MemStore {
    fn read(&self, table: Table, key: &CapHash) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.tables.read().unwrap_or_else(|e| e.into_inner());
        Ok(t[index(table)].get(key).cloned())
    }

    fn contains(&self, table: Table, key: &CapHash) -> Result<bool, StoreError> {
        let t = self.tables.read().unwrap_or_else(|e| e.into_inner());
        Ok(t[index(table)].contains_key(key))
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut t = self.tables.write().unwrap_or_else(|e| e.into_inner());
        for (table, key, bytes) in batch.puts {
            t[index(table)].insert(key, bytes);
        }
        for (table, key) in batch.deletes {
            t[index(table)].remove(&key);
        }
        Ok(())
    }

    fn keys(&self, table: Table) -> Result<Vec<CapHash>, StoreError> {
        let t = self.tables.read().unwrap_or_else(|e| e.into_inner());
        Ok(t[index(table)].keys().copied().collect())
    }
}
