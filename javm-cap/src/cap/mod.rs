//! The capability types (docs/CAPS.md): `Cap = Instance | Image | Data | CNode`, their
//! addresses ([`CapHash`], [`CapHashOrRef`], [`SlotIdx`], [`SlotPath`]) and the typed
//! errors their constructors return. Every constructor validates eagerly, so a value of
//! these types always satisfies the invariants its docs state.

mod cnode;
mod data;
mod image;
mod instance;

use std::fmt;
use std::sync::Arc;

pub use cnode::{CNodeCap, CNodeSlot, MAX_CNODE_SIZE_LOG, ROOT_CNODE_SIZE_LOG};
pub use data::{DataCap, MAX_DATA_PAGES, PageSlot};
pub use image::{
    Endpoint, ImageCap, ImageParts, MAX_ENDPOINTS, MAX_IMAGE_CODE, MAX_JUMP_TABLE, MemoryMapping,
    SlotHash, pack_bitmask,
};
pub use instance::{InstanceCap, RwOverlay};

use crate::hash::CapHash;

/// Number of PVM registers (φ0..φ12).
pub const NUM_REGS: usize = 13;
/// Maximum number of steps in a [`SlotPath`].
pub const MAX_SOURCE_DEPTH: usize = 8;
/// The size of the 32-bit guest address space.
pub const ADDRESS_SPACE: u64 = 1 << 32;

/// A capability: one immutable, content-addressed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cap {
    /// A runnable instance: an image plus its cnode, memory overlays and registers.
    Instance(InstanceCap),
    /// A program image: code, endpoints, memory mappings and the data they map.
    Image(ImageCap),
    /// Paged bytes.
    Data(DataCap),
    /// A table of capability slots.
    CNode(CNodeCap),
}

/// The kind of a [`Cap`], without its contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CapKind {
    /// [`Cap::Instance`].
    Instance,
    /// [`Cap::Image`].
    Image,
    /// [`Cap::Data`].
    Data,
    /// [`Cap::CNode`].
    CNode,
}

impl CapKind {
    /// The lowercase name used in messages and JSON (`instance`, `image`, `data`, `cnode`).
    pub fn name(self) -> &'static str {
        match self {
            CapKind::Instance => "instance",
            CapKind::Image => "image",
            CapKind::Data => "data",
            CapKind::CNode => "cnode",
        }
    }
}

impl fmt::Display for CapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Cap {
    /// The variant's kind.
    pub fn kind(&self) -> CapKind {
        match self {
            Cap::Instance(_) => CapKind::Instance,
            Cap::Image(_) => CapKind::Image,
            Cap::Data(_) => CapKind::Data,
            Cap::CNode(_) => CapKind::CNode,
        }
    }

    /// The hashes of the caps this one refers to directly (not pages), in encoding
    /// order. A [`CapHashOrRef::Ref`] contributes nothing: it is not content-addressed.
    pub fn children(&self) -> Vec<CapHash> {
        match self {
            Cap::Instance(i) => {
                let mut v = vec![*i.image_hash()];
                if let CapHashOrRef::Hash(h) = i.root_cnode() {
                    v.push(*h);
                }
                v
            }
            Cap::Image(img) => img
                .pinned()
                .iter()
                .chain(img.initial())
                .map(|s| s.hash)
                .collect(),
            Cap::Data(_) => Vec::new(),
            Cap::CNode(c) => c
                .iter()
                .filter_map(|(_, slot)| match slot {
                    CNodeSlot::Materialized(CapHashOrRef::Hash(h)) | CNodeSlot::Missing(h) => {
                        Some(*h)
                    }
                    CNodeSlot::Materialized(CapHashOrRef::Ref(_)) => None,
                })
                .collect(),
        }
    }

    /// The page slots this cap holds (a data cap's pages, an instance's overlays).
    pub fn page_slots(&self) -> Box<dyn Iterator<Item = &PageSlot> + '_> {
        match self {
            Cap::Data(d) => Box::new(d.pages().iter()),
            Cap::Instance(i) => Box::new(i.rw_overlays().iter().flat_map(|o| o.pages().iter())),
            Cap::Image(_) | Cap::CNode(_) => Box::new(std::iter::empty()),
        }
    }

    /// Whether the cap still holds a [`CapHashOrRef::Ref`] (and so cannot be hashed,
    /// encoded or stored until it is settled).
    pub fn has_ref(&self) -> bool {
        match self {
            Cap::Instance(i) => matches!(i.root_cnode(), CapHashOrRef::Ref(_)),
            Cap::CNode(c) => c
                .iter()
                .any(|(_, s)| matches!(s, CNodeSlot::Materialized(CapHashOrRef::Ref(_)))),
            Cap::Image(_) | Cap::Data(_) => false,
        }
    }
}

/// A handle to a mutable working entry in a [`crate::CacheDirectory`]. Cloning shares
/// the handle; the directory's [`crate::CacheDirectory::sweep_instances`] drops entries
/// no handle outside the directory refers to.
#[derive(Clone)]
pub struct CapRef(Arc<u64>);

impl CapRef {
    pub(crate) fn new(id: u64) -> Self {
        CapRef(Arc::new(id))
    }

    /// The entry's id in its directory (ids start at 1 and are never reused).
    pub fn id(&self) -> u64 {
        *self.0
    }

    /// How many handles to this entry exist (the directory holds one).
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl PartialEq for CapRef {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for CapRef {}

impl fmt::Debug for CapRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref({})", self.id())
    }
}

/// A cap address: a published hash, or a reference to working state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapHashOrRef {
    /// An immutable, published cap. Hashes as the hash itself.
    Hash(CapHash),
    /// Mutable working state in a [`crate::CacheDirectory`]; must be settled before
    /// anything that holds it can be hashed or stored.
    Ref(CapRef),
}

/// A slot index in a cnode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotIdx(pub u32);

/// A path of slot indices from a root cnode through nested cnodes: 1 to
/// [`MAX_SOURCE_DEPTH`] steps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlotPath {
    steps: Vec<SlotIdx>,
}

impl SlotPath {
    /// A path of the given steps (1 ..= 8 of them).
    pub fn new(steps: Vec<SlotIdx>) -> Result<Self, CapError> {
        if steps.is_empty() || steps.len() > MAX_SOURCE_DEPTH {
            return Err(CapError::PathDepth(steps.len()));
        }
        Ok(SlotPath { steps })
    }

    /// A one-step path.
    pub fn slot(slot: SlotIdx) -> Self {
        SlotPath { steps: vec![slot] }
    }

    /// The steps, outermost first.
    pub fn steps(&self) -> &[SlotIdx] {
        &self.steps
    }

    /// The single slot of a one-step path.
    pub fn single(&self) -> Option<SlotIdx> {
        match self.steps[..] {
            [s] => Some(s),
            _ => None,
        }
    }
}

/// Why a cap could not be built (or decoded): every constructor check has a variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    /// A slot path must have 1 to 8 steps.
    #[error("slot path has {0} steps (allowed: 1 to 8)")]
    PathDepth(usize),
    /// Endpoint indices are 0 ..= 63.
    #[error("endpoint index {0} is out of range (0 to 63)")]
    EndpointIndex(usize),
    /// An endpoint index is defined twice.
    #[error("endpoint {0} is defined twice")]
    DuplicateEndpoint(usize),
    /// Register indices are 0 ..= 12.
    #[error("register index {0} is out of range (0 to 12)")]
    RegisterIndex(usize),
    /// `size_log` of a cnode is at most 16.
    #[error("cnode size_log {0} is larger than 16")]
    CNodeSizeLog(u8),
    /// A slot index does not fit the cnode or image.
    #[error("slot {slot} is out of range for {what} of {slots} slots")]
    SlotRange {
        /// The slot.
        slot: u32,
        /// What it indexes.
        what: &'static str,
        /// How many slots there are.
        slots: u32,
    },
    /// A memory mapping's start or size is not a multiple of 4 KiB.
    #[error("mapping {start:#x}+{size:#x} is not page-aligned")]
    MappingUnaligned {
        /// Start address.
        start: u64,
        /// Size in bytes.
        size: u64,
    },
    /// A memory mapping is empty or runs past 2^32.
    #[error("mapping {start:#x}+{size:#x} is empty or runs past the 4 GiB address space")]
    MappingRange {
        /// Start address.
        start: u64,
        /// Size in bytes.
        size: u64,
    },
    /// Two memory mappings (or overlays) overlap or are out of order.
    #[error(
        "{what} at {start:#x} overlaps or does not follow the previous one (ending at {prev_end:#x})"
    )]
    Overlap {
        /// What overlaps.
        what: &'static str,
        /// Start of the later one.
        start: u64,
        /// End of the earlier one.
        prev_end: u64,
    },
    /// A mapping's source slot is neither pinned nor initial.
    #[error("mapping at {start:#x} names source slot {slot}, which is neither pinned nor initial")]
    UnknownSource {
        /// Mapping start.
        start: u64,
        /// The slot.
        slot: u32,
    },
    /// A slot list is not sorted by slot or repeats a slot.
    #[error("{what} list is not strictly sorted by slot (slot {slot})")]
    SlotListOrder {
        /// Which list.
        what: &'static str,
        /// The offending slot.
        slot: u32,
    },
    /// A slot is both pinned and initial.
    #[error("slot {0} is both pinned and initial")]
    PinnedAndInitial(u32),
    /// The packed bitmask has the wrong length or non-zero padding bits.
    #[error("bitmask has {got} bytes for {code_len} code bytes (want {want}, zero padding)")]
    Bitmask {
        /// Bytes given.
        got: usize,
        /// Bytes wanted.
        want: usize,
        /// Code length.
        code_len: usize,
    },
    /// A size does not fit a field or exceeds a limit.
    #[error("{what} is {value}, above the limit {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// An overlay must start on a page boundary, hold at least one page, and end
    /// inside the address space.
    #[error("overlay at {start:#x} with {pages} pages is unaligned, empty or past 4 GiB")]
    OverlayRange {
        /// Start.
        start: u64,
        /// Pages.
        pages: usize,
    },
    /// A data cap's length is not a multiple of the page size.
    #[error("data length {0} is not a multiple of 4096")]
    DataLength(usize),
    /// A cap still holds a working reference, so it has no hash and no encoding.
    #[error("the cap holds an unsettled working reference (ref {}); settle it first", .0.id())]
    UnsettledRef(CapRef),
}
