//! Building a running instance from caps (docs/ISA.md §1.3, §7): the memory layout from
//! the image's mappings, the instance's `mem_size` and overlays and the cnode's data
//! caps — data-cap pages shared into the layout as `PageRef`s, never copied — and the
//! entry registers.
//!
//! The rules, in one place:
//! * a mapping with no source is [`PageKind::EphemeralZero`]; one whose source is a
//!   pinned slot is [`PageKind::PinnedCapRo`] over the data cap the *image* pins
//!   there; any other source is [`PageKind::UnpinnedCapCow`] over the data cap the
//!   source path names in the instance's cnode — zeros if that slot is empty or holds
//!   no data cap (the guest may have moved it), and only the pages that fit the
//!   mapping;
//! * mappings, or the parts of them, at or above `mem_size` are not mapped;
//! * the overlays of earlier runs replace the pages they cover; they must lie in
//!   writable mappings (settling only ever writes such pages);
//! * registers: the endpoint's, then the instance's non-zero registers, then the four
//!   arguments in φ7..φ10; the PC is the endpoint's entry.

use std::sync::Arc;

use javm_cap::{
    CNodeCap, CNodeSlot, CacheDirectory, Cap, CapHash, CapHashOrRef, CapKind, DataCap, Hasher,
    ImageCap, InstanceCap, NUM_REGS, PageRef, PageSlot, SlotIdx, SlotPath, StoreError,
};
use javm_exec::memory::{LayoutError, PAGE_SIZE};
use javm_exec::{
    Engine, EngineError, GasProfile, GasSchedule, InstanceInit, MemoryLayout, PageKind,
};

use crate::image_cache::{ImageCache, ImageInfo};

/// Why an instance could not be built from its caps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A cap the instance needs is in neither the cache nor its store.
    #[error("cap {} not found", javm_cap::hash::hex(.0))]
    NotFound(CapHash),
    /// A cap has another kind than its place requires.
    #[error("cap {} is {} cap, not {} cap", javm_cap::hash::hex(.hash), article(.found.name()), article(.expected.name()))]
    WrongKind {
        /// The cap.
        hash: CapHash,
        /// The kind required.
        expected: CapKind,
        /// The kind found.
        found: CapKind,
    },
    /// The endpoint is not defined by the image.
    #[error("endpoint {0} is not defined by the image")]
    EndpointUndefined(u64),
    /// The image's code does not load, or an endpoint does not enter at a block start.
    #[error("image {} cannot run: {reason}", javm_cap::hash::hex(.hash))]
    BadImage {
        /// The image.
        hash: CapHash,
        /// Why.
        reason: String,
    },
    /// A data cap's page is known only by hash (the store did not supply it).
    #[error("a page of the data cap mapped at {start:#x} is missing")]
    MissingPage {
        /// The mapping.
        start: u64,
    },
    /// A working reference (a cap not yet published in the cache directory) in the
    /// instance could not be used.
    #[error("working reference {id}: {problem}")]
    Reference {
        /// The reference's id in its directory.
        id: u64,
        /// What is wrong with it.
        problem: String,
    },
    /// An overlay lies outside the image's writable mappings.
    #[error("the instance's overlay page {0:#x} lies outside the image's writable mappings")]
    OverlayOutside(u32),
    /// The layout is invalid.
    #[error("{0}")]
    Layout(#[from] LayoutError),
    /// The backing store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The engine could not build the instance.
    #[error("{0}")]
    Engine(#[from] EngineError),
}

fn article(kind: &str) -> String {
    let an = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if an { "an" } else { "a" })
}

impl BuildError {
    /// Whether this is a failure of the host (store, engine) rather than a property of
    /// the caps: inside a call, the former ends the invocation with an error, the
    /// latter traps the caller.
    pub(crate) fn is_host_failure(&self) -> bool {
        matches!(self, BuildError::Store(_) | BuildError::Engine(_))
    }
}

/// The cap `hash` from `cache`, which must be of kind `kind`.
pub(crate) fn get_kind(
    cache: &CacheDirectory,
    hash: &CapHash,
    kind: CapKind,
) -> Result<Arc<Cap>, BuildError> {
    let cap = cache.get_blob(hash)?.ok_or(BuildError::NotFound(*hash))?;
    if cap.kind() != kind {
        return Err(BuildError::WrongKind {
            hash: *hash,
            expected: kind,
            found: cap.kind(),
        });
    }
    Ok(cap)
}

/// The hash a cnode slot holds: a published cap, or one known only by hash.
pub(crate) fn slot_hash(cnode: &CNodeCap, slot: SlotIdx) -> Option<CapHash> {
    match cnode.slot(slot)? {
        CNodeSlot::Materialized(CapHashOrRef::Hash(h)) | CNodeSlot::Missing(h) => Some(*h),
        CNodeSlot::Materialized(CapHashOrRef::Ref(_)) => None,
    }
}

/// The image-hash chain after running `image` on top of `chain`.
pub fn image_chain(chain: &CapHash, image: &CapHash) -> CapHash {
    let mut h = Hasher::new(b"javm/image-chain/v1");
    h.raw(chain).raw(image);
    h.finish()
}

/// One region of an instance's layout before overlays.
#[derive(Clone, Debug)]
pub(crate) struct BaseRegion {
    start: u64,
    len: u64,
    kind: PageKind,
    pages: Vec<Option<PageRef>>,
}

/// Where a frame came from, and so where its post-state goes when it replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The top-level invoke.
    Top,
    /// A HOST_CALL from the caller's slot; `write_back` is false for a pinned slot
    /// (the call then leaves no trace in the caller).
    Slot {
        /// The caller's slot.
        slot: SlotIdx,
        /// Whether the post-instance replaces the slot's instance.
        write_back: bool,
    },
}

/// A running instance on the call stack.
pub(crate) struct Frame<I> {
    /// The engine's instance.
    pub inst: I,
    /// The image it runs.
    pub image: Arc<ImageInfo>,
    /// Its image-hash chain.
    pub chain: CapHash,
    /// Its working root cnode.
    pub cnode: CNodeCap,
    /// The layout's regions before overlays (kept for SET_IMAGE).
    pub base: Arc<Vec<BaseRegion>>,
    /// Pages of earlier runs (and of this run before a SET_IMAGE), ascending.
    pub overlays: Vec<(u32, PageSlot)>,
    /// The schedule its modules are prepared for.
    pub schedule: GasSchedule,
    /// Where it came from.
    pub origin: Origin,
    /// A host op to dispatch again before running (it ran out of gas).
    pub retry_op: Option<u32>,
}

/// What [`build_frame`] needs besides the caps.
pub(crate) struct BuildCtx<'a, E: Engine> {
    pub engine: &'a E,
    pub images: &'a mut ImageCache<E>,
    pub cache: &'a CacheDirectory,
    pub profile: GasProfile,
}

/// Build a frame for instance `hash` entered at `endpoint` with `args`, with no gas
/// (the caller moves the pool in).
pub(crate) fn build_frame<E: Engine>(
    ctx: &mut BuildCtx<'_, E>,
    hash: &CapHash,
    endpoint: u64,
    args: [u64; 4],
    origin: Origin,
) -> Result<Frame<E::Instance>, BuildError> {
    let cap = get_kind(ctx.cache, hash, CapKind::Instance)?;
    let Cap::Instance(inst) = &*cap else {
        return Err(BuildError::NotFound(*hash));
    };
    let info = ctx.images.info(ctx.cache, inst.image_hash())?;
    let image = info.image();
    let ep = usize::try_from(endpoint)
        .ok()
        .and_then(|i| image.endpoint(i))
        .ok_or(BuildError::EndpointUndefined(endpoint))?;
    let cnode = working_cnode(ctx.cache, inst)?;
    let base = base_regions(ctx.cache, image, &cnode, inst.mem_size())?;
    let overlays = flatten_overlays(inst);
    let layout = apply_overlays(&base, &overlays)?;
    let schedule = GasSchedule::new(ctx.profile, layout.accessible_pages());
    let module = ctx.images.module(ctx.engine, &info, schedule)?;
    let regs = entry_regs(&ep.regs, inst.regs(), args);
    let engine_inst = ctx.engine.instantiate(
        &module,
        InstanceInit {
            layout: Arc::new(layout),
            regs,
            pc: ep.entry_pc,
            gas: 0,
        },
    )?;
    Ok(Frame {
        inst: engine_inst,
        chain: *inst.image_hash_chain(),
        image: info,
        cnode,
        base: Arc::new(base),
        overlays,
        schedule,
        origin,
        retry_op: None,
    })
}

/// The instance's root cnode as a working copy, every slot by hash (working
/// references in it are settled, i.e. published, first).
fn working_cnode(cache: &CacheDirectory, inst: &InstanceCap) -> Result<CNodeCap, BuildError> {
    let cap = match inst.root_cnode() {
        CapHashOrRef::Hash(h) => get_kind(cache, h, CapKind::CNode)?,
        r @ CapHashOrRef::Ref(cap_ref) => {
            let cap = cache.get(r)?.ok_or_else(|| BuildError::Reference {
                id: cap_ref.id(),
                problem: "the root cnode is not in the cache directory".into(),
            })?;
            if cap.kind() != CapKind::CNode {
                return Err(BuildError::Reference {
                    id: cap_ref.id(),
                    problem: format!("the root cnode is {} cap", article(cap.kind().name())),
                });
            }
            cap
        }
    };
    let Cap::CNode(c) = &*cap else {
        return Err(BuildError::Engine(EngineError::Internal(
            "a cap checked to be a cnode is not one".into(),
        )));
    };
    let mut cnode = c.clone();
    let refs: Vec<(SlotIdx, javm_cap::CapRef)> = cnode
        .iter()
        .filter_map(|(i, s)| match s {
            CNodeSlot::Materialized(CapHashOrRef::Ref(r)) => Some((i, r.clone())),
            _ => None,
        })
        .collect();
    for (i, r) in refs {
        let h = cache.settle(&r).map_err(|e| BuildError::Reference {
            id: r.id(),
            problem: format!("slot {} holds it, and it cannot be settled: {e}", i.0),
        })?;
        // `i` came from the cnode's own slots, so it is in range.
        let _ = cnode.set(i, Some(CapHashOrRef::Hash(h)));
    }
    Ok(cnode)
}

/// The data cap a mapping source names, if any: a pinned slot's is the image's; an
/// initial (or nested) source is looked up through the cnode.
fn source_data(
    cache: &CacheDirectory,
    image: &ImageCap,
    cnode: &CNodeCap,
    path: &SlotPath,
) -> Result<(PageKind, Option<Arc<Cap>>), BuildError> {
    if let Some(slot) = path.single()
        && let Some(pinned) = image.pinned().iter().find(|p| p.slot == slot)
    {
        return Ok((
            PageKind::PinnedCapRo,
            Some(get_kind(cache, &pinned.hash, CapKind::Data)?),
        ));
    }
    // Walk the path: every step but the last must name a cnode.
    let mut node: Option<Arc<Cap>> = None;
    let steps = path.steps();
    for (i, &step) in steps.iter().enumerate() {
        let here = match &node {
            None => cnode,
            Some(c) => match &**c {
                Cap::CNode(c) => c,
                _ => return Ok((PageKind::UnpinnedCapCow, None)),
            },
        };
        let Some(h) = slot_hash(here, step) else {
            return Ok((PageKind::UnpinnedCapCow, None));
        };
        let cap = cache.get_blob(&h)?.ok_or(BuildError::NotFound(h))?;
        let last = i + 1 == steps.len();
        let fits = if last {
            cap.kind() == CapKind::Data
        } else {
            cap.kind() == CapKind::CNode
        };
        if !fits {
            return Ok((PageKind::UnpinnedCapCow, None));
        }
        node = Some(cap);
    }
    Ok((PageKind::UnpinnedCapCow, node))
}

/// The regions of an instance's layout before overlays.
pub(crate) fn base_regions(
    cache: &CacheDirectory,
    image: &ImageCap,
    cnode: &CNodeCap,
    mem_size: u64,
) -> Result<Vec<BaseRegion>, BuildError> {
    let mut out = Vec::with_capacity(image.mappings().len());
    for m in image.mappings() {
        if m.start >= mem_size {
            break;
        }
        let len = m.size.min(mem_size - m.start);
        let (kind, data) = match &m.source {
            None => (PageKind::EphemeralZero, None),
            Some(path) => source_data(cache, image, cnode, path)?,
        };
        let max_pages = (len / u64::from(PAGE_SIZE)) as usize;
        let pages = match data.as_deref() {
            Some(Cap::Data(d)) => data_pages(d, max_pages, m.start)?,
            _ => Vec::new(),
        };
        // A zero region never carries contents; a copy-on-write one with none is the
        // same as a zero one but keeps the kind its source gives it.
        out.push(BaseRegion {
            start: m.start,
            len,
            kind,
            pages,
        });
    }
    Ok(out)
}

/// The first `max` pages of `d` as shared slabs (`None` = zero page).
fn data_pages(d: &DataCap, max: usize, start: u64) -> Result<Vec<Option<PageRef>>, BuildError> {
    d.pages()
        .iter()
        .take(max)
        .map(|p| match p {
            PageSlot::Empty => Ok(None),
            PageSlot::Loaded(r) => Ok(Some(Arc::clone(r))),
            PageSlot::Missing(_) => Err(BuildError::MissingPage { start }),
        })
        .collect()
}

/// The instance's overlays as `(page address, page)`, ascending.
fn flatten_overlays(inst: &InstanceCap) -> Vec<(u32, PageSlot)> {
    let mut out = Vec::new();
    for o in inst.rw_overlays() {
        for (i, p) in o.pages().iter().enumerate() {
            out.push((o.start() + (i as u32) * PAGE_SIZE, p.clone()));
        }
    }
    out
}

/// The layout of `base` with `overlays` (ascending) applied: each run of overlay pages
/// becomes its own copy-on-write region, splitting the region it lies in.
pub(crate) fn apply_overlays(
    base: &[BaseRegion],
    overlays: &[(u32, PageSlot)],
) -> Result<MemoryLayout, BuildError> {
    let page = u64::from(PAGE_SIZE);
    let mut layout = MemoryLayout::new();
    let mut next = 0usize;
    for r in base {
        let end = r.start + r.len;
        // Overlays below this region lie outside every region.
        if let Some(&(a, _)) = overlays.get(next)
            && u64::from(a) < r.start
        {
            return Err(BuildError::OverlayOutside(a));
        }
        let first = next;
        while overlays.get(next).is_some_and(|&(a, _)| u64::from(a) < end) {
            next += 1;
        }
        let mine = &overlays[first..next];
        if mine.is_empty() {
            layout.add_region_pages(r.start, r.len, r.kind, r.pages.clone())?;
            continue;
        }
        if !r.kind.is_writable() {
            return Err(BuildError::OverlayOutside(mine[0].0));
        }
        let base_part = |from: u64, to: u64| -> Vec<Option<PageRef>> {
            let a = ((from - r.start) / page) as usize;
            let b = ((to - r.start) / page) as usize;
            r.pages
                .get(a.min(r.pages.len())..b.min(r.pages.len()))
                .map(<[_]>::to_vec)
                .unwrap_or_default()
        };
        let mut cursor = r.start;
        let mut i = 0;
        while i < mine.len() {
            let run_start = u64::from(mine[i].0);
            let mut j = i + 1;
            while j < mine.len() && u64::from(mine[j].0) == u64::from(mine[j - 1].0) + page {
                j += 1;
            }
            if run_start > cursor {
                layout.add_region_pages(
                    cursor,
                    run_start - cursor,
                    r.kind,
                    base_part(cursor, run_start),
                )?;
            }
            let pages = mine[i..j]
                .iter()
                .map(|(a, p)| match p {
                    PageSlot::Empty => Ok(None),
                    PageSlot::Loaded(p) => Ok(Some(Arc::clone(p))),
                    PageSlot::Missing(_) => Err(BuildError::MissingPage {
                        start: u64::from(*a),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let run_len = (j - i) as u64 * page;
            layout.add_region_pages(run_start, run_len, PageKind::UnpinnedCapCow, pages)?;
            cursor = run_start + run_len;
            i = j;
        }
        if cursor < end {
            layout.add_region_pages(cursor, end - cursor, r.kind, base_part(cursor, end))?;
        }
    }
    if let Some(&(a, _)) = overlays.get(next) {
        return Err(BuildError::OverlayOutside(a));
    }
    Ok(layout)
}

/// Whether page `addr` lies in a writable mapping of `image` below `mem_size` (the
/// pages a settled instance may keep as overlays).
pub(crate) fn in_writable_mapping(image: &ImageCap, mem_size: u64, addr: u32) -> bool {
    let a = u64::from(addr);
    if a >= mem_size {
        return false;
    }
    let maps = image.mappings();
    let i = maps.partition_point(|m| m.start <= a);
    let Some(m) = i.checked_sub(1).and_then(|i| maps.get(i)) else {
        return false;
    };
    a < m.end()
        && !m
            .source
            .as_ref()
            .and_then(SlotPath::single)
            .is_some_and(|s| image.is_pinned(s))
}

/// The entry registers: the endpoint's, then the instance's non-zero registers, then
/// the arguments in φ7..φ10.
pub(crate) fn entry_regs(
    endpoint: &[u64; NUM_REGS],
    inst: &[u64; NUM_REGS],
    args: [u64; 4],
) -> [u64; NUM_REGS] {
    let mut regs = *endpoint;
    for (r, &v) in regs.iter_mut().zip(inst) {
        if v != 0 {
            *r = v;
        }
    }
    regs[7..11].copy_from_slice(&args);
    regs
}
