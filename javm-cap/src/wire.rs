//! The rkyv wire and disk form of caps, decoded with validation.
//!
//! The wire types mirror the cap types field by field. Encoding copies a cap into its
//! wire form and serializes it; decoding validates the archive with bytecheck (so
//! hostile or truncated bytes are a [`WireError`], never undefined behaviour or a
//! panic), then rebuilds the cap through its validating constructors. A decoded page
//! is re-allocated in a fresh 4 KiB-aligned slab and its hash recomputed from its
//! bytes, so a wire page can never carry a false hash. A working reference cannot be
//! encoded.

use std::sync::Arc;

use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::cap::{
    CNodeCap, CNodeSlot, Cap, CapError, CapHashOrRef, DataCap, Endpoint, ImageCap, ImageParts,
    InstanceCap, MAX_ENDPOINTS, MemoryMapping, NUM_REGS, PageSlot, RwOverlay, SlotHash, SlotIdx,
    SlotPath,
};
use crate::hash::CapHash;
use crate::page::{PAGE_SIZE, PageBytes};

/// Why bytes could not be decoded as a cap (or a cap could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes are not a valid archive (truncated, corrupt, or another format).
    #[error("malformed cap encoding: {0}")]
    Malformed(String),
    /// The archive is well-formed but describes an invalid cap.
    #[error("invalid cap: {0}")]
    Invalid(#[from] CapError),
    /// A loaded page is not exactly 4096 bytes.
    #[error("a page holds {0} bytes, not 4096")]
    PageLength(usize),
    /// A bundle file does not start with the bundle magic.
    #[error("not a JAVM cap bundle (bad magic)")]
    BadMagic,
}

#[derive(Archive, Serialize, Deserialize)]
enum WPage {
    Empty,
    Loaded(Vec<u8>),
    Missing([u8; 32]),
}

#[derive(Archive, Serialize, Deserialize)]
enum WTarget {
    Hash([u8; 32]),
    Missing([u8; 32]),
}

#[derive(Archive, Serialize, Deserialize)]
struct WOverlay {
    start: u32,
    pages: Vec<WPage>,
}

#[derive(Archive, Serialize, Deserialize)]
struct WInstance {
    image_hash_chain: [u8; 32],
    image_hash: [u8; 32],
    root_cnode: [u8; 32],
    rw_overlays: Vec<WOverlay>,
    mem_size: u64,
    regs: [u64; NUM_REGS],
    pc: u32,
    gas_remaining: u64,
}

#[derive(Archive, Serialize, Deserialize)]
struct WEndpoint {
    index: u8,
    entry_pc: u32,
    regs: [u64; NUM_REGS],
}

#[derive(Archive, Serialize, Deserialize)]
struct WMapping {
    start: u64,
    size: u64,
    source: Vec<u32>,
}

#[derive(Archive, Serialize, Deserialize)]
struct WSlotHash {
    slot: u32,
    hash: [u8; 32],
}

#[derive(Archive, Serialize, Deserialize)]
struct WImage {
    code: Vec<u8>,
    bitmask: Vec<u8>,
    jump_table: Vec<u32>,
    endpoints: Vec<WEndpoint>,
    mappings: Vec<WMapping>,
    pinned: Vec<WSlotHash>,
    initial: Vec<WSlotHash>,
    yield_marker_slot: Option<u32>,
}

#[derive(Archive, Serialize, Deserialize)]
struct WCNode {
    size_log: u8,
    slots: Vec<(u32, WTarget)>,
}

#[derive(Archive, Serialize, Deserialize)]
enum WCap {
    Instance(WInstance),
    Image(WImage),
    Data(Vec<WPage>),
    CNode(WCNode),
}

#[derive(Archive, Serialize, Deserialize)]
struct WBundle {
    caps: Vec<WCap>,
}

/// Whether the wire form carries a page's bytes or only its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageMode {
    /// Loaded pages carry their 4096 bytes (a self-contained cap).
    Inline,
    /// Every page is written as its hash only (`Missing`); the disk store keeps the
    /// bytes apart, deduplicated by hash.
    HashOnly,
}

fn target(t: &CapHashOrRef) -> Result<[u8; 32], CapError> {
    match t {
        CapHashOrRef::Hash(h) => Ok(*h),
        CapHashOrRef::Ref(r) => Err(CapError::UnsettledRef(r.clone())),
    }
}

fn wpages(pages: &[PageSlot], mode: PageMode) -> Vec<WPage> {
    pages
        .iter()
        .map(|p| match (p, mode) {
            (PageSlot::Empty, _) => WPage::Empty,
            (PageSlot::Loaded(b), PageMode::Inline) => WPage::Loaded(b.bytes().to_vec()),
            (PageSlot::Loaded(b), PageMode::HashOnly) => WPage::Missing(*b.hash()),
            (PageSlot::Missing(h), _) => WPage::Missing(*h),
        })
        .collect()
}

fn to_wire(cap: &Cap, mode: PageMode) -> Result<WCap, CapError> {
    Ok(match cap {
        Cap::Instance(i) => WCap::Instance(WInstance {
            image_hash_chain: *i.image_hash_chain(),
            image_hash: *i.image_hash(),
            root_cnode: target(i.root_cnode())?,
            rw_overlays: i
                .rw_overlays()
                .iter()
                .map(|o| WOverlay {
                    start: o.start(),
                    pages: wpages(o.pages(), mode),
                })
                .collect(),
            mem_size: i.mem_size(),
            regs: *i.regs(),
            pc: i.pc(),
            gas_remaining: i.gas_remaining(),
        }),
        Cap::Image(img) => WCap::Image(WImage {
            code: img.code().to_vec(),
            bitmask: img.bitmask().to_vec(),
            jump_table: img.jump_table().to_vec(),
            endpoints: img
                .endpoints()
                .iter()
                .enumerate()
                .filter(|(i, e)| *i == 0 || **e != Endpoint::default())
                .map(|(i, e)| WEndpoint {
                    index: i as u8,
                    entry_pc: e.entry_pc,
                    regs: e.regs,
                })
                .collect(),
            mappings: img
                .mappings()
                .iter()
                .map(|m| WMapping {
                    start: m.start,
                    size: m.size,
                    source: m
                        .source
                        .as_ref()
                        .map_or(Vec::new(), |p| p.steps().iter().map(|s| s.0).collect()),
                })
                .collect(),
            pinned: wslots(img.pinned()),
            initial: wslots(img.initial()),
            yield_marker_slot: img.yield_marker_slot().map(|s| s.0),
        }),
        Cap::Data(d) => WCap::Data(wpages(d.pages(), mode)),
        Cap::CNode(c) => WCap::CNode(WCNode {
            size_log: c.size_log(),
            slots: c
                .iter()
                .map(|(i, s)| {
                    Ok((
                        i.0,
                        match s {
                            CNodeSlot::Materialized(t) => WTarget::Hash(target(t)?),
                            CNodeSlot::Missing(h) => WTarget::Missing(*h),
                        },
                    ))
                })
                .collect::<Result<_, CapError>>()?,
        }),
    })
}

fn wslots(list: &[SlotHash]) -> Vec<WSlotHash> {
    list.iter()
        .map(|s| WSlotHash {
            slot: s.slot.0,
            hash: s.hash,
        })
        .collect()
}

fn from_pages(pages: &rkyv::vec::ArchivedVec<ArchivedWPage>) -> Result<Vec<PageSlot>, WireError> {
    pages
        .iter()
        .map(|p| {
            Ok(match p {
                ArchivedWPage::Empty => PageSlot::Empty,
                ArchivedWPage::Loaded(bytes) => {
                    if bytes.len() != PAGE_SIZE {
                        return Err(WireError::PageLength(bytes.len()));
                    }
                    let page = PageBytes::from_content(bytes.as_slice())
                        .ok_or(WireError::PageLength(bytes.len()))?;
                    PageSlot::from_page(page)
                }
                ArchivedWPage::Missing(h) => PageSlot::Missing(*h),
            })
        })
        .collect()
}

fn from_wire(w: &ArchivedWCap) -> Result<Cap, WireError> {
    Ok(match w {
        ArchivedWCap::Instance(i) => {
            let overlays = i
                .rw_overlays
                .iter()
                .map(|o| Ok(RwOverlay::new(o.start.to_native(), from_pages(&o.pages)?)?))
                .collect::<Result<Vec<_>, WireError>>()?;
            Cap::Instance(InstanceCap::new(
                i.image_hash_chain,
                i.image_hash,
                CapHashOrRef::Hash(i.root_cnode),
                overlays,
                i.mem_size.to_native(),
                i.regs.map(|r| r.to_native()),
                i.pc.to_native(),
                i.gas_remaining.to_native(),
            )?)
        }
        ArchivedWCap::Image(img) => {
            let mut endpoints = Vec::with_capacity(img.endpoints.len());
            for e in img.endpoints.iter() {
                let index = usize::from(e.index);
                if index >= MAX_ENDPOINTS {
                    return Err(CapError::EndpointIndex(index).into());
                }
                endpoints.push((
                    index,
                    Endpoint {
                        entry_pc: e.entry_pc.to_native(),
                        regs: e.regs.map(|r| r.to_native()),
                    },
                ));
            }
            let mappings = img
                .mappings
                .iter()
                .map(|m| {
                    let source = if m.source.is_empty() {
                        None
                    } else {
                        Some(SlotPath::new(
                            m.source.iter().map(|s| SlotIdx(s.to_native())).collect(),
                        )?)
                    };
                    Ok(MemoryMapping {
                        start: m.start.to_native(),
                        size: m.size.to_native(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, CapError>>()?;
            let slots = |l: &rkyv::vec::ArchivedVec<ArchivedWSlotHash>| {
                l.iter()
                    .map(|s| SlotHash {
                        slot: SlotIdx(s.slot.to_native()),
                        hash: s.hash,
                    })
                    .collect::<Vec<_>>()
            };
            Cap::Image(ImageCap::new(ImageParts {
                code: img.code.as_slice().to_vec(),
                bitmask: img.bitmask.as_slice().to_vec(),
                jump_table: img.jump_table.iter().map(|t| t.to_native()).collect(),
                endpoints,
                mappings,
                pinned: slots(&img.pinned),
                initial: slots(&img.initial),
                yield_marker_slot: img
                    .yield_marker_slot
                    .as_ref()
                    .map(|s| SlotIdx(s.to_native())),
            })?)
        }
        ArchivedWCap::Data(pages) => Cap::Data(DataCap::from_pages(from_pages(pages)?)?),
        ArchivedWCap::CNode(c) => {
            let mut node = CNodeCap::new(c.size_log)?;
            let mut prev = None;
            for (idx, t) in c.slots.iter().map(|e| (&e.0, &e.1)) {
                let idx = idx.to_native();
                if prev.is_some_and(|p| p >= idx) {
                    return Err(CapError::SlotListOrder {
                        what: "cnode slot",
                        slot: idx,
                    }
                    .into());
                }
                prev = Some(idx);
                let slot = match t {
                    ArchivedWTarget::Hash(h) => CNodeSlot::Materialized(CapHashOrRef::Hash(*h)),
                    ArchivedWTarget::Missing(h) => CNodeSlot::Missing(*h),
                };
                node.set_slot(SlotIdx(idx), Some(slot))?;
            }
            Cap::CNode(node)
        }
    })
}

fn malformed(e: RkyvError) -> WireError {
    WireError::Malformed(e.to_string())
}

fn aligned(bytes: &[u8]) -> AlignedVec {
    let mut v = AlignedVec::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

/// Encode a cap in its wire form. Fails if the cap holds a working reference.
pub fn encode_cap(cap: &Cap, mode: PageMode) -> Result<Vec<u8>, CapError> {
    let w = to_wire(cap, mode)?;
    Ok(rkyv::to_bytes::<RkyvError>(&w)
        .expect("serializing owned wire values into memory cannot fail")
        .into_vec())
}

/// Decode a cap from its wire form, validating every byte.
pub fn decode_cap(bytes: &[u8]) -> Result<Cap, WireError> {
    let buf = aligned(bytes);
    let archived = rkyv::access::<ArchivedWCap, RkyvError>(&buf).map_err(malformed)?;
    from_wire(archived)
}

/// The magic that starts a bundle file.
pub const BUNDLE_MAGIC: &[u8; 8] = b"JAVMBND1";

/// Encode several caps as one bundle file: [`BUNDLE_MAGIC`], then the rkyv list.
/// Pages are inline, so a bundle is self-contained.
pub fn encode_bundle(caps: &[Cap]) -> Result<Vec<u8>, CapError> {
    let w = WBundle {
        caps: caps
            .iter()
            .map(|c| to_wire(c, PageMode::Inline))
            .collect::<Result<_, _>>()?,
    };
    let mut out = BUNDLE_MAGIC.to_vec();
    out.extend_from_slice(
        &rkyv::to_bytes::<RkyvError>(&w).expect("serializing owned wire values cannot fail"),
    );
    Ok(out)
}

/// Decode a bundle file into its caps, in order.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Cap>, WireError> {
    let body = bytes
        .strip_prefix(BUNDLE_MAGIC.as_slice())
        .ok_or(WireError::BadMagic)?;
    let buf = aligned(body);
    let archived = rkyv::access::<ArchivedWBundle, RkyvError>(&buf).map_err(malformed)?;
    archived.caps.iter().map(from_wire).collect()
}

/// Replace every `Missing` page of `cap` whose bytes `lookup` can provide.
pub fn fill_pages(
    cap: &mut Cap,
    mut lookup: impl FnMut(&CapHash) -> Result<Option<PageBytes>, crate::store::StoreError>,
) -> Result<(), crate::store::StoreError> {
    let mut fill = |pages: &mut [PageSlot]| -> Result<(), crate::store::StoreError> {
        for p in pages {
            if let PageSlot::Missing(h) = p {
                if *h == crate::hash::ZERO_HASH {
                    *p = PageSlot::Empty;
                } else if let Some(bytes) = lookup(h)? {
                    *p = PageSlot::Loaded(Arc::new(bytes));
                }
            }
        }
        Ok(())
    };
    match cap {
        Cap::Data(d) => fill(d.pages_mut()),
        Cap::Instance(i) => {
            for o in i.rw_overlays_mut() {
                fill(o.pages_mut())?;
            }
            Ok(())
        }
        Cap::Image(_) | Cap::CNode(_) => Ok(()),
    }
}
