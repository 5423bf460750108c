//! Memory: the engine-independent layout, the materialization state machine, and the
//! per-page bookkeeping both engines share (docs/ISA.md §1.3).

mod arrays;
pub mod layout;
pub mod mat;
pub mod pagemap;

pub use layout::{LayoutError, MemoryLayout, Region};
pub use mat::{PageKind, PageState};
pub use pagemap::{AccessPlan, BadAccess, HostSpan, PageAccess, PageMap, StorageOp, WriteLimit};

use crate::engine::Exit;
use crate::gas::GasProfile;

/// The default limit on the memory an instance's guest may write (pages that become
/// `PresentRw`, 4 KiB each): 1 GiB. Engines take another with `with_memory_limit`.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

/// PVM page size in bytes.
pub const PAGE_SIZE: u32 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// GP `Z_Z`: under the `gp` profile an access whose first bad byte is below this
/// address panics instead of page-faulting.
pub const GP_INIT_ZONE: u32 = 0x10000;

/// The exit for a rejected access whose first bad byte is `addr`: a page fault at that
/// byte's page, or, under `gp`, a panic when the byte is below [`GP_INIT_ZONE`].
#[inline]
pub fn bad_access_exit(profile: GasProfile, addr: u32) -> Exit {
    if profile == GasProfile::Gp && addr < GP_INIT_ZONE {
        Exit::Panic
    } else {
        Exit::PageFault(addr & !(PAGE_SIZE - 1))
    }
}

/// Round `x` up to a multiple of the page size.
pub const fn page_align_up(x: u64) -> u64 {
    x.div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64
}

/// The pages of a host access `[addr, addr + len)` (which must not pass 2^32, see
/// [`check_host_range`]) as `(page address, offset in the page, range in the caller's
/// buffer)`. Both engines' `read_memory` / `write_memory` walk accesses with it.
pub fn host_spans(
    addr: u32,
    len: usize,
) -> impl Iterator<Item = (u32, usize, std::ops::Range<usize>)> {
    let page_size = PAGE_SIZE as usize;
    let mut done = 0usize;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let at = addr as usize + done;
        let offset = at % page_size;
        let n = (page_size - offset).min(len - done);
        let item = ((at - offset) as u32, offset, done..done + n);
        done += n;
        Some(item)
    })
}

/// Reject a host access that runs past the end of the 4 GiB address space.
pub fn check_host_range(addr: u32, len: usize) -> Result<(), crate::engine::MemoryError> {
    if u64::from(addr) + len as u64 > 1 << 32 {
        Err(crate::engine::MemoryError::OutOfRange { addr, len })
    } else {
        Ok(())
    }
}
