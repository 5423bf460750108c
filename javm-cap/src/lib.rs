//! JAVM capabilities: the cap types, their canonical encoding and hashes, the rkyv
//! wire form, the in-memory [`CacheDirectory`] and the persistent [`CapStore`]
//! (the types and byte formats are specified in `docs/CAPS.md`).
//!
//! * [`cap`]: `Cap = Instance | Image | Data | CNode`, [`CapHashOrRef`], slots and
//!   paths, all validated on construction;
//! * [`encode`]: the canonical encoding and [`cap_hash`] (SHA-256 over it), with the
//!   substitution invariant (a page known by hash hashes like the loaded page);
//! * [`page`]: [`PageBytes`], one 4 KiB page in a 4 KiB-aligned slab, shared as
//!   [`PageRef`];
//! * [`wire`]: the rkyv form, decoded with validation: hostile bytes are an error;
//! * [`cache`]: [`CacheDirectory`], immutable blobs by hash plus mutable working
//!   instances by reference;
//! * [`store`]: the [`CapStore`] trait a node implements over its database, an
//!   in-memory store and the on-disk redb store.
//!
//! ```
//! use javm_cap::{Cap, CNodeCap, DataCap, cap_hash};
//! let data = Cap::Data(DataCap::from_bytes(b"hello").unwrap());
//! let h = cap_hash(&data).unwrap();
//! // Content addressing: the same content always has the same hash.
//! assert_eq!(h, cap_hash(&Cap::Data(DataCap::from_bytes(b"hello").unwrap())).unwrap());
//! assert_ne!(h, cap_hash(&Cap::CNode(CNodeCap::new(8).unwrap())).unwrap());
//! ```
#![forbid(unsafe_code)]

pub mod cache;
pub mod cap;
pub mod encode;
pub mod hash;
pub mod page;
pub mod store;
pub mod wire;

pub use cache::CacheDirectory;
pub use cap::{
    CNodeCap, CNodeSlot, Cap, CapError, CapHashOrRef, CapKind, CapRef, DataCap, Endpoint, ImageCap,
    ImageParts, InstanceCap, MemoryMapping, NUM_REGS, PageSlot, RwOverlay, SlotHash, SlotIdx,
    SlotPath,
};
pub use encode::{canonical_bytes, cap_hash};
pub use hash::{CapHash, Hasher, ZERO_HASH, sha256};
pub use page::{PAGE_SIZE, PageBytes, PageRef};
pub use store::{CapStore, MemStore, RedbStore, StoreError};
pub use wire::WireError;
