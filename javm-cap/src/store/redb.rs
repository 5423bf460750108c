//! The on-disk [`CapStore`]: one redb database file (`caps.redb`) in a directory.
//!
//! redb is a pure-Rust embedded key-value store with ACID transactions and
//! copy-on-write B-trees: a committed transaction is durable (fsync before commit
//! returns), and a process killed mid-transaction leaves the last committed state.
//! Each [`Batch`] is one write transaction.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use super::{Batch, CapStore, StoreError, Table};
use crate::hash::CapHash;

const CAPS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("caps");
const PAGES: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("pages");

/// The name of the database file inside a store directory.
pub const DB_FILE: &str = "caps.redb";

fn def(t: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    match t {
        Table::Caps => CAPS,
        Table::Pages => PAGES,
    }
}

/// A cap store in a directory on disk.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStore {
    /// Open the store in directory `dir`, creating the directory and the database on
    /// first use. Fails if another process has the store open.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Backend(format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create store directory", &e))?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|e| fail("cannot open store", &e))?;
        let store = RedbStore { db, path };
        // Create both tables once, so readers never meet a missing table.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        for t in [Table::Caps, Table::Pages] {
            txn.open_table(def(t)).map_err(|e| store.err(e))?;
        }
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Backend(format!("{}: {}", self.path.display(), e.into()))
    }
}

impl CapStore for RedbStore {
    fn read(&self, table: Table, key: &CapHash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(def(table)).map_err(|e| self.err(e))?;
        let v = t.get(key.as_slice()).map_err(|e| self.err(e))?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    fn contains(&self, table: Table, key: &CapHash) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(def(table)).map_err(|e| self.err(e))?;
        Ok(t.get(key.as_slice()).map_err(|e| self.err(e))?.is_some())
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut caps = txn.open_table(CAPS).map_err(|e| self.err(e))?;
            let mut pages = txn.open_table(PAGES).map_err(|e| self.err(e))?;
            for (table, key, bytes) in &batch.puts {
                let t = match table {
                    Table::Caps => &mut caps,
                    Table::Pages => &mut pages,
                };
                t.insert(key.as_slice(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
            for (table, key) in &batch.deletes {
                let t = match table {
                    Table::Caps => &mut caps,
                    Table::Pages => &mut pages,
                };
                t.remove(key.as_slice()).map_err(|e| self.err(e))?;
            }
        }
        // Dropping an uncommitted transaction aborts it: an error above writes nothing.
        txn.commit().map_err(|e| self.err(e))
    }

    fn keys(&self, table: Table) -> Result<Vec<CapHash>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(def(table)).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let key: CapHash = k.value().try_into().map_err(|_| StoreError::Corrupt {
                table: "key",
                hash: [0; 32],
                reason: format!("a key of {} bytes, not 32", k.value().len()),
            })?;
            out.push(key);
        }
        Ok(out)
    }
}
