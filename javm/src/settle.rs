//! Settling: publishing a frame's post-state as a new instance cap. The memory is the
//! instance's earlier overlays with the pages this run dirtied on top (read from the
//! engine, which lists them in time proportional to their number), kept where the
//! image has writable mappings; then the working cnode, registers, PC and gas.

use javm_cap::{CacheDirectory, Cap, CapHash, CapHashOrRef, InstanceCap, PageSlot};
use javm_exec::memory::PAGE_SIZE;
use javm_exec::{EngineError, Instance};

use crate::build::{Frame, in_writable_mapping};
use crate::vm::VmError;

/// `overlays` (ascending) with the pages `inst` dirtied applied on top, ascending.
pub(crate) fn merge_dirty<I: Instance>(
    inst: &I,
    overlays: &[(u32, PageSlot)],
) -> Result<Vec<(u32, PageSlot)>, VmError> {
    let dirty = inst.dirty_pages();
    let mut out = Vec::with_capacity(overlays.len() + dirty.len());
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    let mut old = overlays.iter().peekable();
    for page in dirty {
        while let Some((a, p)) = old.next_if(|(a, _)| *a < page) {
            out.push((*a, p.clone()));
        }
        old.next_if(|(a, _)| *a == page);
        inst.read_memory(page, &mut buf).map_err(|e| {
            VmError::Engine(EngineError::Internal(format!(
                "a dirty page is not readable: {e}"
            )))
        })?;
        out.push((
            page,
            PageSlot::from_page(javm_cap::PageBytes::from_content(&buf).ok_or_else(|| {
                VmError::Engine(EngineError::Internal(
                    "page buffer larger than a page".into(),
                ))
            })?),
        ));
    }
    out.extend(old.cloned());
    Ok(out)
}

/// Publish `frame`'s post-state (its slot 0 already taken out) into `cache`; returns
/// the new instance's hash.
pub(crate) fn settle<I: Instance>(
    cache: &CacheDirectory,
    frame: &Frame<I>,
) -> Result<CapHash, VmError> {
    let image = frame.image.image();
    let mem_size = image.mem_size();
    let pages = merge_dirty(&frame.inst, &frame.overlays)?
        .into_iter()
        .filter(|(a, _)| in_writable_mapping(image, mem_size, *a));
    let overlays = InstanceCap::overlays_from_pages(pages)?;
    let cnode = cache.put_cap(Cap::CNode(frame.cnode.clone()))?;
    let inst = InstanceCap::new(
        frame.chain,
        frame.image.hash,
        CapHashOrRef::Hash(cnode),
        overlays,
        mem_size,
        frame.inst.regs(),
        frame.inst.pc(),
        frame.inst.gas().max(0) as u64,
    )?;
    Ok(cache.put_cap(Cap::Instance(inst))?)
}
