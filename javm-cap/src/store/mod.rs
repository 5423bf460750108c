//! Persistent cap storage.
//!
//! [`CapStore`] is the small interface a node implements over its own database: two
//! tables of records keyed by 32-byte hashes, read one at a time and written in
//! atomic batches. Everything else — encoding, page deduplication, hash verification,
//! listing, verification and garbage collection — is written once, in [`CapStoreExt`],
//! over any `CapStore`. Two stores ship: [`MemStore`] (in memory) and [`RedbStore`]
//! (on disk, redb; the CLI's default).
//!
//! **Record layout.** The `caps` table maps a cap hash to one version byte
//! ([`RECORD_VERSION`]) followed by the cap's rkyv wire form with every page written
//! as its hash only. The `pages` table maps a page hash to the page's 4096 bytes, so a
//! page shared by many caps (copy-on-write versions of one memory) is stored once.
//! Every record read back is verified against its key: a cap is decoded and re-hashed,
//! a page re-hashed; a mismatch is [`StoreError::Corrupt`] naming the hash.

mod mem;
mod redb;

use std::collections::{BTreeMap, BTreeSet};

pub use self::mem::MemStore;
pub use self::redb::{DB_FILE, RedbStore};

use crate::cap::{Cap, CapError, CapKind, PageSlot};
use crate::encode::cap_hash;
use crate::hash::{CapHash, ZERO_HASH};
use crate::page::{PAGE_SIZE, PageBytes};
use crate::wire::{self, PageMode, WireError};

/// The version byte that starts every cap record.
pub const RECORD_VERSION: u8 = 1;

/// The two tables of a cap store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Cap records by cap hash.
    Caps,
    /// Page bytes by page hash.
    Pages,
}

/// A set of writes applied atomically by [`CapStore::apply`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Records to insert (or overwrite).
    pub puts: Vec<(Table, CapHash, Vec<u8>)>,
    /// Records to delete.
    pub deletes: Vec<(Table, CapHash)>,
}

impl Batch {
    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// A failure of the store or of the data in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database itself failed (I/O, locking, its own integrity checks).
    #[error("store backend: {0}")]
    Backend(String),
    /// A record does not match its hash, or cannot be decoded.
    #[error("corrupt {table} record {}: {reason}", crate::hash::hex(hash))]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// The record's key.
        hash: CapHash,
        /// What is wrong.
        reason: String,
    },
    /// A hash that had to be present is not.
    #[error("no cap {} in the store", crate::hash::hex(.0))]
    NotFound(CapHash),
    /// A cap cannot be stored (it holds an unsettled reference).
    #[error("{0}")]
    Cap(#[from] CapError),
}

/// The record-level interface a database implements to hold caps.
///
/// Implementations must make [`CapStore::apply`] atomic and durable: after it returns
/// `Ok`, every record of the batch survives a crash; if the process dies during it,
/// the store afterwards holds either all of the batch or none of it.
pub trait CapStore: Send + Sync {
    /// Read one record.
    fn read(&self, table: Table, key: &CapHash) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether a record exists.
    fn contains(&self, table: Table, key: &CapHash) -> Result<bool, StoreError> {
        Ok(self.read(table, key)?.is_some())
    }
    /// Apply every write of `batch` in one transaction.
    fn apply(&self, batch: Batch) -> Result<(), StoreError>;
    /// Every key of a table, in ascending order.
    fn keys(&self, table: Table) -> Result<Vec<CapHash>, StoreError>;
}

/// One cap of a store listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The cap's hash.
    pub hash: CapHash,
    /// Its kind, or why its record could not be read.
    pub kind: Result<CapKind, String>,
    /// The record's size in bytes (pages not included).
    pub record_bytes: usize,
}

/// What [`CapStoreExt::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Cap records checked.
    pub caps: usize,
    /// Page records checked.
    pub pages: usize,
    /// Corrupt records: table, hash and reason.
    pub corrupt: Vec<(&'static str, CapHash, String)>,
}

/// What [`CapStoreExt::gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Caps kept (reachable from the roots).
    pub kept_caps: usize,
    /// Pages kept.
    pub kept_pages: usize,
    /// Caps removed.
    pub removed_caps: usize,
    /// Pages removed.
    pub removed_pages: usize,
}

fn table_name(t: Table) -> &'static str {
    match t {
        Table::Caps => "cap",
        Table::Pages => "page",
    }
}

fn corrupt(table: Table, hash: &CapHash, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: table_name(table),
        hash: *hash,
        reason: reason.to_string(),
    }
}

/// Decode and verify a cap record (pages stay `Missing`).
fn decode_record(hash: &CapHash, record: &[u8]) -> Result<Cap, StoreError> {
    let Some((&version, body)) = record.split_first() else {
        return Err(corrupt(Table::Caps, hash, "empty record"));
    };
    if version != RECORD_VERSION {
        return Err(corrupt(
            Table::Caps,
            hash,
            format!("record version {version}, expected {RECORD_VERSION}"),
        ));
    }
    let cap = wire::decode_cap(body).map_err(|e: WireError| corrupt(Table::Caps, hash, e))?;
    let actual = cap_hash(&cap)?;
    if actual != *hash {
        return Err(corrupt(
            Table::Caps,
            hash,
            format!("contents hash to {}", crate::hash::hex(&actual)),
        ));
    }
    Ok(cap)
}

/// Verify a page record against its hash.
fn decode_page(hash: &CapHash, bytes: &[u8]) -> Result<PageBytes, StoreError> {
    if bytes.len() != PAGE_SIZE {
        return Err(corrupt(
            Table::Pages,
            hash,
            format!("{} bytes, not 4096", bytes.len()),
        ));
    }
    let page = PageBytes::from_content(bytes).expect("length checked");
    if page.hash() != hash {
        return Err(corrupt(
            Table::Pages,
            hash,
            format!("contents hash to {}", crate::hash::hex(page.hash())),
        ));
    }
    Ok(page)
}

/// The page hashes a cap refers to (zero pages excluded: they are never stored).
fn page_hashes(cap: &Cap) -> impl Iterator<Item = CapHash> + '_ {
    cap.page_slots()
        .map(PageSlot::hash)
        .filter(|h| **h != ZERO_HASH)
        .copied()
}

/// The cap-level operations every [`CapStore`] gets.
pub trait CapStoreExt: CapStore {
    /// Store `caps` in one transaction (all or none) and return their hashes in order.
    /// Storing a cap that is already present is a no-op; pages are stored once per
    /// hash. A cap holding a `Missing` page is stored as is.
    fn put_caps(&self, caps: &[&Cap]) -> Result<Vec<CapHash>, StoreError> {
        let mut batch = Batch::default();
        let mut hashes = Vec::with_capacity(caps.len());
        let mut queued = BTreeSet::new();
        for cap in caps {
            let hash = cap_hash(cap)?;
            hashes.push(hash);
            if !queued.insert((Table::Caps, hash)) || self.contains(Table::Caps, &hash)? {
                continue;
            }
            let mut record = vec![RECORD_VERSION];
            record.extend_from_slice(&wire::encode_cap(cap, PageMode::HashOnly)?);
            batch.puts.push((Table::Caps, hash, record));
            for slot in cap.page_slots() {
                if let PageSlot::Loaded(p) = slot {
                    let h = *p.hash();
                    if queued.insert((Table::Pages, h)) && !self.contains(Table::Pages, &h)? {
                        batch.puts.push((Table::Pages, h, p.bytes().to_vec()));
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.apply(batch)?;
        }
        Ok(hashes)
    }

    /// The cap `hash`, verified, with every page the store holds loaded (and each
    /// page verified). `Ok(None)` if the store has no such cap.
    fn get_cap(&self, hash: &CapHash) -> Result<Option<Cap>, StoreError> {
        let Some(record) = self.read(Table::Caps, hash)? else {
            return Ok(None);
        };
        let mut cap = decode_record(hash, &record)?;
        wire::fill_pages(&mut cap, |h| {
            self.read(Table::Pages, h)?
                .map(|b| decode_page(h, &b))
                .transpose()
        })?;
        Ok(Some(cap))
    }

    /// Every cap in the store with its kind.
    fn list(&self) -> Result<Vec<ListEntry>, StoreError> {
        let mut out = Vec::new();
        for hash in self.keys(Table::Caps)? {
            let record = self.read(Table::Caps, &hash)?.unwrap_or_default();
            let kind = decode_record(&hash, &record)
                .map(|c| c.kind())
                .map_err(|e| e.to_string());
            out.push(ListEntry {
                hash,
                kind,
                record_bytes: record.len(),
            });
        }
        Ok(out)
    }

    /// Re-hash every cap and page record and report the ones that do not match.
    fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for hash in self.keys(Table::Caps)? {
            report.caps += 1;
            let record = self.read(Table::Caps, &hash)?.unwrap_or_default();
            if let Err(StoreError::Corrupt { table, reason, .. }) = decode_record(&hash, &record) {
                report.corrupt.push((table, hash, reason));
            }
        }
        for hash in self.keys(Table::Pages)? {
            report.pages += 1;
            let bytes = self.read(Table::Pages, &hash)?.unwrap_or_default();
            if let Err(StoreError::Corrupt { table, reason, .. }) = decode_page(&hash, &bytes) {
                report.corrupt.push((table, hash, reason));
            }
        }
        Ok(report)
    }

    /// Remove every cap and page not reachable from `roots`, in one transaction.
    /// Fails, removing nothing, if a root is absent or a reachable record is corrupt.
    fn gc(&self, roots: &[CapHash]) -> Result<GcReport, StoreError> {
        let mut caps = BTreeSet::new();
        let mut pages = BTreeSet::new();
        let mut todo: Vec<(CapHash, bool)> = roots.iter().map(|h| (*h, true)).collect();
        while let Some((hash, is_root)) = todo.pop() {
            if caps.contains(&hash) {
                continue;
            }
            let Some(record) = self.read(Table::Caps, &hash)? else {
                if is_root {
                    return Err(StoreError::NotFound(hash));
                }
                continue; // a reference to a cap the store never held
            };
            let cap = decode_record(&hash, &record)?;
            caps.insert(hash);
            pages.extend(page_hashes(&cap));
            todo.extend(cap.children().into_iter().map(|h| (h, false)));
        }
        let mut batch = Batch::default();
        let mut report = GcReport {
            kept_caps: caps.len(),
            ..GcReport::default()
        };
        for hash in self.keys(Table::Caps)? {
            if !caps.contains(&hash) {
                batch.deletes.push((Table::Caps, hash));
                report.removed_caps += 1;
            }
        }
        for hash in self.keys(Table::Pages)? {
            if pages.contains(&hash) {
                report.kept_pages += 1;
            } else {
                batch.deletes.push((Table::Pages, hash));
                report.removed_pages += 1;
            }
        }
        if !batch.is_empty() {
            self.apply(batch)?;
        }
        Ok(report)
    }

    /// How many records each table holds.
    fn counts(&self) -> Result<BTreeMap<Table, usize>, StoreError> {
        [Table::Caps, Table::Pages]
            .into_iter()
            .map(|t| Ok((t, self.keys(t)?.len())))
            .collect()
    }
}

impl<S: CapStore + ?Sized> CapStoreExt for S {}

#[cfg(test)]
mod tests;
