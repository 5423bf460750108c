//! Building images: from a GP standard program (the standard layout) or from parts,
//! with the checks that need the execution layer — the code must load as a
//! [`Program`], and every defined endpoint must enter at a basic-block start
//! (entering mid-block would run the rest of that block uncharged).

use std::sync::Arc;

use javm_cap::{
    Cap, CapError, CapHash, CapHashOrRef, DataCap, Endpoint, ImageCap, ImageParts, InstanceCap,
    MemoryMapping, NUM_REGS, SlotHash, SlotIdx, SlotPath, cap_hash,
};
use javm_exec::blob::StandardProgram;
use javm_exec::blob::standard::{RO_BASE, STACK_TOP};
use javm_exec::memory::page_align_up;
use javm_exec::program::HALT_ADDRESS;
use javm_exec::{GasProfile, Program, ProgramError};

/// The root-cnode slot of a standard program's read-only data (pinned).
pub const STANDARD_RO_SLOT: SlotIdx = SlotIdx(1);
/// The root-cnode slot of a standard program's read-write data (initial).
pub const STANDARD_RW_SLOT: SlotIdx = SlotIdx(2);

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The code does not load.
    #[error("the code does not load: {0}")]
    Program(#[from] ProgramError),
    /// The image's structure is invalid.
    #[error("{0}")]
    Cap(#[from] CapError),
    /// An endpoint does not enter at a basic-block start under every gas profile.
    #[error(
        "endpoint {endpoint} enters at PC {pc}, which is not the start of a basic block under every gas profile"
    )]
    EntryNotBlockStart {
        /// Endpoint index.
        endpoint: usize,
        /// Its entry PC.
        pc: u32,
    },
    /// A data cap is larger than the mapping that maps it.
    #[error(
        "slot {slot} holds {data_len} bytes, more than its mapping at {start:#x} of {size} bytes"
    )]
    DataLargerThanMapping {
        /// The slot.
        slot: u32,
        /// Data length.
        data_len: u64,
        /// Mapping start.
        start: u64,
        /// Mapping size.
        size: u64,
    },
    /// An extra slot names a slot the image already fills.
    #[error("slot {0}: the image already puts its own data cap in that slot")]
    SlotTaken(u32),
    /// A data cap named by the pinned or initial list is not supplied.
    #[error("slot {0} names a data cap that was not supplied")]
    MissingData(u32),
}

/// An image together with the data caps its pinned and initial lists name.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The image.
    pub image: ImageCap,
    /// Its data caps, each with its slot and whether it is pinned.
    pub data: Vec<(SlotIdx, bool, DataCap)>,
    /// The code, validated (decoded on demand).
    pub program: Arc<Program>,
}

impl BuiltImage {
    /// Every cap of the image, data caps first and the image last (the order a store
    /// wants them in, so nothing refers to a cap stored after it).
    pub fn caps(&self) -> Vec<Cap> {
        let mut v: Vec<Cap> = self
            .data
            .iter()
            .map(|(_, _, d)| Cap::Data(d.clone()))
            .collect();
        v.push(Cap::Image(self.image.clone()));
        v
    }

    /// A fresh instance of the image: its root cnode (the image's pinned and initial
    /// data caps, plus `slots`, which must not name a slot the image fills) and the
    /// instance cap. Publish them after [`BuiltImage::caps`].
    pub fn fresh_instance(&self, slots: &[(SlotIdx, CapHash)]) -> Result<(Cap, Cap), ImageError> {
        let mut cnode = self.image.root_cnode();
        for &(slot, hash) in slots {
            if cnode.slot(slot).is_some() {
                return Err(ImageError::SlotTaken(slot.0));
            }
            cnode.set(slot, Some(CapHashOrRef::Hash(hash)))?;
        }
        let image_hash = cap_hash(&Cap::Image(self.image.clone()))?;
        let cnode = Cap::CNode(cnode);
        let cnode_hash = cap_hash(&cnode)?;
        let instance = Cap::Instance(InstanceCap::fresh(
            image_hash,
            CapHashOrRef::Hash(cnode_hash),
            self.image.mem_size(),
        )?);
        Ok((cnode, instance))
    }

    /// Publish the image, its data caps and a fresh instance (see
    /// [`BuiltImage::fresh_instance`]) into `cache`; returns the instance's hash.
    pub fn publish(
        &self,
        cache: &javm_cap::CacheDirectory,
        slots: &[(SlotIdx, CapHash)],
    ) -> Result<CapHash, ImageError> {
        let (cnode, instance) = self.fresh_instance(slots)?;
        for cap in self.caps().into_iter().chain([cnode]) {
            cache.put_cap(cap)?;
        }
        Ok(cache.put_cap(instance)?)
    }
}

/// The parts of an image whose data caps are given by value.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// Code bytes.
    pub code: Vec<u8>,
    /// Packed instruction-start bitmask.
    pub bitmask: Vec<u8>,
    /// Jump table.
    pub jump_table: Vec<u32>,
    /// Endpoints as `(index, endpoint)`.
    pub endpoints: Vec<(usize, Endpoint)>,
    /// Memory mappings.
    pub mappings: Vec<MemoryMapping>,
    /// Data caps: slot, pinned (else initial), contents.
    pub data: Vec<(SlotIdx, bool, DataCap)>,
    /// The yield-marker slot.
    pub yield_marker_slot: Option<SlotIdx>,
}

/// Validate and build an image: the code loads, the structure is valid, each endpoint
/// enters at a block start and each data cap fits the mapping that maps it.
pub fn build(spec: ImageSpec) -> Result<BuiltImage, ImageError> {
    let program = Arc::new(Program::new(
        spec.code.clone(),
        spec.bitmask.clone(),
        spec.jump_table.clone(),
    )?);
    let mut data = spec.data;
    data.sort_by_key(|d| d.0);
    let mut pinned = Vec::new();
    let mut initial = Vec::new();
    for (slot, is_pinned, d) in &data {
        let entry = SlotHash {
            slot: *slot,
            hash: cap_hash(&Cap::Data(d.clone()))?,
        };
        if *is_pinned {
            pinned.push(entry)
        } else {
            initial.push(entry)
        }
    }
    let image = ImageCap::new(ImageParts {
        code: spec.code,
        bitmask: spec.bitmask,
        jump_table: spec.jump_table,
        endpoints: spec.endpoints,
        mappings: spec.mappings,
        pinned,
        initial,
        yield_marker_slot: spec.yield_marker_slot,
    })?;
    check_entries(&image, &program)?;
    for m in image.mappings() {
        let Some(slot) = m.source.as_ref().and_then(SlotPath::single) else {
            continue;
        };
        let d = data
            .iter()
            .find(|d| d.0 == slot)
            .ok_or(ImageError::MissingData(slot.0))?;
        if d.2.len() > m.size {
            return Err(ImageError::DataLargerThanMapping {
                slot: slot.0,
                data_len: d.2.len(),
                start: m.start,
                size: m.size,
            });
        }
    }
    Ok(BuiltImage {
        image,
        data,
        program,
    })
}

/// Reject an image with an endpoint that does not enter at a basic-block start under
/// every gas profile (an image does not depend on the profile it runs under): the
/// start of a `jar1` block that does not directly follow an `ecalli`, which under
/// `gp` continues the block before it ([`Program::starts_block`]).
pub fn check_entries(image: &ImageCap, program: &Program) -> Result<(), ImageError> {
    for i in 0..javm_cap::cap::MAX_ENDPOINTS {
        if let Some(e) = image.endpoint(i)
            && !GasProfile::ALL
                .iter()
                .all(|&p| program.is_block_start(e.entry_pc, p))
        {
            return Err(ImageError::EntryNotBlockStart {
                endpoint: i,
                pc: e.entry_pc,
            });
        }
    }
    Ok(())
}

/// Why a memory layout could not be built from an image's caps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutBuildError {
    /// A mapping's source slot holds no data cap.
    #[error("mapping at {start:#x}: slot {slot} holds no data cap")]
    NoData {
        /// Mapping start.
        start: u64,
        /// The slot.
        slot: u32,
    },
    /// A data cap has a page the cache does not hold.
    #[error("mapping at {start:#x}: page {page} of its data cap is not loaded")]
    MissingPage {
        /// Mapping start.
        start: u64,
        /// Page index in the data cap.
        page: usize,
    },
    /// A data cap is larger than its mapping.
    #[error("mapping at {start:#x}: its data cap of {len} bytes does not fit {size} bytes")]
    TooLarge {
        /// Mapping start.
        start: u64,
        /// Data length.
        len: u64,
        /// Mapping size.
        size: u64,
    },
    /// Nested source paths are resolved by the driver, not here.
    #[error("mapping at {start:#x}: a nested source path needs the driver's cnode walk")]
    NestedSource {
        /// Mapping start.
        start: u64,
    },
    /// The layout rejected a region.
    #[error("{0}")]
    Layout(#[from] javm_exec::memory::LayoutError),
}

/// The memory layout of an image's mappings, with the data cap of each source slot
/// given by `data` (the driver resolves slots through the instance's cnode). Pinned
/// slots map as [`PageKind::PinnedCapRo`], other sources as
/// [`PageKind::UnpinnedCapCow`], mappings without a source as
/// [`PageKind::EphemeralZero`]. Data pages are shared by reference, never copied.
///
/// [`PageKind::PinnedCapRo`]: javm_exec::PageKind::PinnedCapRo
/// [`PageKind::UnpinnedCapCow`]: javm_exec::PageKind::UnpinnedCapCow
/// [`PageKind::EphemeralZero`]: javm_exec::PageKind::EphemeralZero
pub fn memory_layout<'a>(
    image: &ImageCap,
    mut data: impl FnMut(SlotIdx) -> Option<&'a DataCap>,
) -> Result<javm_exec::MemoryLayout, LayoutBuildError> {
    use javm_exec::PageKind;
    let mut layout = javm_exec::MemoryLayout::new();
    for m in image.mappings() {
        let Some(path) = &m.source else {
            layout.add_region_pages(m.start, m.size, PageKind::EphemeralZero, Vec::new())?;
            continue;
        };
        let slot = path
            .single()
            .ok_or(LayoutBuildError::NestedSource { start: m.start })?;
        let d = data(slot).ok_or(LayoutBuildError::NoData {
            start: m.start,
            slot: slot.0,
        })?;
        if d.len() > m.size {
            return Err(LayoutBuildError::TooLarge {
                start: m.start,
                len: d.len(),
                size: m.size,
            });
        }
        let pages = d
            .pages()
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                javm_cap::PageSlot::Empty => Ok(None),
                javm_cap::PageSlot::Loaded(r) => Ok(Some(Arc::clone(r))),
                javm_cap::PageSlot::Missing(_) => Err(LayoutBuildError::MissingPage {
                    start: m.start,
                    page: i,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kind = if image.is_pinned(slot) {
            PageKind::PinnedCapRo
        } else {
            PageKind::UnpinnedCapCow
        };
        layout.add_region_pages(m.start, m.size, kind, pages)?;
    }
    Ok(layout)
}

/// The registers a standard program starts with: `φ0` returns to the halt address,
/// `φ1` is the stack pointer; arguments arrive in φ7..φ10 from the caller.
pub fn standard_regs() -> [u64; NUM_REGS] {
    let mut r = [0u64; NUM_REGS];
    r[0] = u64::from(HALT_ADDRESS);
    r[1] = u64::from(STACK_TOP);
    r
}

/// The image of a GP standard program in the standard layout: read-only data pinned
/// at slot 1 and mapped at 0x10000, read-write data as the initial cap of slot 2,
/// heap and stack as zero mappings, endpoint 0 at PC 0 with [`standard_regs`].
pub fn standard_spec(sp: &StandardProgram) -> Result<ImageSpec, ImageError> {
    let p = &sp.program;
    let mut spec = ImageSpec {
        code: p.code().to_vec(),
        bitmask: p.bitmask().to_vec(),
        jump_table: p.jump_table().to_vec(),
        endpoints: vec![(
            0,
            Endpoint {
                entry_pc: 0,
                regs: standard_regs(),
            },
        )],
        ..ImageSpec::default()
    };
    let ro = page_align_up(sp.ro_data.len() as u64);
    if ro > 0 {
        spec.mappings.push(MemoryMapping {
            start: u64::from(RO_BASE),
            size: ro,
            source: Some(SlotPath::slot(STANDARD_RO_SLOT)),
        });
        spec.data
            .push((STANDARD_RO_SLOT, true, DataCap::from_bytes(&sp.ro_data)?));
    }
    let rw = page_align_up(sp.rw_data.len() as u64);
    if rw > 0 {
        spec.mappings.push(MemoryMapping {
            start: sp.rw_base(),
            size: rw,
            source: Some(SlotPath::slot(STANDARD_RW_SLOT)),
        });
        spec.data
            .push((STANDARD_RW_SLOT, false, DataCap::from_bytes(&sp.rw_data)?));
    }
    if sp.heap_pages > 0 {
        spec.mappings.push(MemoryMapping {
            start: sp.rw_base() + rw,
            size: u64::from(sp.heap_pages) * 4096,
            source: None,
        });
    }
    let stack = page_align_up(u64::from(sp.stack_size));
    if stack > 0 {
        spec.mappings.push(MemoryMapping {
            start: u64::from(STACK_TOP) - stack,
            size: stack,
            source: None,
        });
    }
    Ok(spec)
}

/// [`standard_spec`], built.
pub fn from_standard(sp: &StandardProgram) -> Result<BuiltImage, ImageError> {
    build(standard_spec(sp)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use javm_exec::asm::assemble;

    #[test]
    fn standard_layout_pins_ro_and_copies_rw() {
        let a = assemble(
            ".ro\n.ascii \"abc\"\n.rw\n.ascii \"xyz\"\n.heap 2\n.stack 8192\n.code\ntrap\n",
        )
        .unwrap();
        let b = from_standard(&a.standard().unwrap()).unwrap();
        let img = &b.image;
        assert_eq!(img.pinned().len(), 1);
        assert_eq!(img.pinned()[0].slot, STANDARD_RO_SLOT);
        assert_eq!(img.initial()[0].slot, STANDARD_RW_SLOT);
        assert_eq!(img.mappings().len(), 4);
        assert_eq!(img.mappings()[0].start, u64::from(RO_BASE));
        assert_eq!(img.mem_size(), u64::from(STACK_TOP));
        assert_eq!(img.endpoint(0).unwrap().regs, standard_regs());
        assert_eq!(b.caps().len(), 3);
    }

    #[test]
    fn layouts_share_data_pages_and_follow_the_slot_kinds() {
        use javm_exec::PageKind;
        let a = assemble(".ro\n.ascii \"abc\"\n.rw\n.ascii \"xyz\"\n.stack 8192\n.code\ntrap\n")
            .unwrap();
        let b = from_standard(&a.standard().unwrap()).unwrap();
        let by_slot = |s: SlotIdx| b.data.iter().find(|d| d.0 == s).map(|d| &d.2);
        let l = memory_layout(&b.image, by_slot).unwrap();
        let kinds: Vec<_> = l.regions().iter().map(|r| r.kind()).collect();
        assert_eq!(
            kinds,
            [
                PageKind::PinnedCapRo,
                PageKind::UnpinnedCapCow,
                PageKind::EphemeralZero
            ]
        );
        let ro = by_slot(STANDARD_RO_SLOT).unwrap().pages()[0]
            .page()
            .unwrap();
        let src = l.regions()[0].source(RO_BASE).unwrap();
        assert!(std::ptr::eq(src, &**ro), "the page is shared, not copied");
        assert!(matches!(
            memory_layout(&b.image, |_| None),
            Err(LayoutBuildError::NoData { slot: 1, .. })
        ));
    }

    #[test]
    fn entries_must_be_block_starts() {
        let a = assemble("fallthrough\nadd_imm_32 r1, r1, 1\ntrap\n").unwrap();
        let mut spec = standard_spec(&a.standard().unwrap()).unwrap();
        spec.endpoints.push((
            1,
            Endpoint {
                entry_pc: 1,
                regs: [0; 13],
            },
        ));
        assert!(build(spec.clone()).is_ok(), "PC 1 follows a terminator");
        spec.endpoints[1].1.entry_pc = 2;
        assert!(matches!(
            build(spec),
            Err(ImageError::EntryNotBlockStart { endpoint: 1, pc: 2 })
        ));
    }

    #[test]
    fn data_must_fit_its_mapping() {
        let a = assemble("trap\n").unwrap();
        let mut spec = standard_spec(&a.standard().unwrap()).unwrap();
        spec.data
            .push((SlotIdx(3), true, DataCap::zeros(2).unwrap()));
        spec.mappings.push(MemoryMapping {
            start: 0x40000,
            size: 0x1000,
            source: Some(SlotPath::slot(SlotIdx(3))),
        });
        assert!(matches!(
            build(spec),
            Err(ImageError::DataLargerThanMapping { slot: 3, .. })
        ));
    }
}
