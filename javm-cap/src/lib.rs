//! JAVM capabilities: content hashing and the page storage both engines share.
//!
//! Today this crate holds the parts the execution core needs:
//!
//! * [`hash`]: SHA-256 content hashes ([`CapHash`]) with explicit domain separation;
//! * [`page`]: [`PageBytes`], one 4 KiB page in a 4 KiB-aligned slab with its content
//!   hash, and [`PageRef`], the refcounted handle through which memory layouts share
//!   pages without copying them.
//!
//! The capability types (`Cap = Instance | Image | Data | CNode`), the `CacheDirectory`
//! and the on-disk store of DESIGN.md §6 will live here too; they are not built yet and
//! nothing in this crate pretends otherwise.
#![forbid(unsafe_code)]

pub mod hash;
pub mod page;

pub use hash::{CapHash, Hasher, ZERO_HASH, sha256};
pub use page::{PAGE_SIZE, PageBytes, PageRef};
