//! Cnode management: COPY, MOVE, DROP, CNODE_SWAP, CNODE_MINT and SAME_TYPE. They
//! change only the running instance's working cnode (CNODE_MINT also publishes the
//! new cnode); a pinned slot is never changed.

use javm_cap::cap::MAX_CNODE_SIZE_LOG;
use javm_cap::{CNodeCap, CacheDirectory, Cap, CapHashOrRef};
use javm_exec::Instance;

use super::{CNODE_MINT, CNODE_SWAP, COPY, DROP, MOVE, SAME_TYPE, trap};
use crate::build::{Frame, slot_hash};
use crate::driver::Step;
use crate::vm::VmError;

pub(super) fn run<I: Instance>(
    f: &mut Frame<I>,
    cache: &CacheDirectory,
    op: u32,
) -> Result<Step<I>, VmError> {
    let (a, b) = (f.slot_arg(7), f.slot_arg(8));
    let two = f.in_range(a) && f.in_range(b);
    match op {
        COPY => {
            if !two || f.pinned(b) {
                return Ok(trap());
            }
            let Some(src) = f.cnode.slot(a).cloned() else {
                return Ok(trap());
            };
            f.cnode.set_slot(b, Some(src))?;
        }
        MOVE => {
            if !two || f.pinned(a) || f.pinned(b) {
                return Ok(trap());
            }
            let Some(src) = f.cnode.take(a)? else {
                return Ok(trap());
            };
            f.cnode.set_slot(b, Some(src))?;
        }
        DROP => {
            if !f.in_range(a) || f.pinned(a) {
                return Ok(trap());
            }
            f.cnode.take(a)?;
        }
        CNODE_SWAP => {
            if !two || f.pinned(a) || f.pinned(b) {
                return Ok(trap());
            }
            let x = f.cnode.take(a)?;
            let y = f.cnode.take(b)?;
            f.cnode.set_slot(a, y)?;
            f.cnode.set_slot(b, x)?;
        }
        CNODE_MINT => {
            let size_log = f.reg(8);
            if !f.in_range(a) || f.pinned(a) || size_log > u64::from(MAX_CNODE_SIZE_LOG) {
                return Ok(trap());
            }
            let h = cache.put_cap(Cap::CNode(CNodeCap::new(size_log as u8)?))?;
            f.cnode.set(a, Some(CapHashOrRef::Hash(h)))?;
        }
        SAME_TYPE => {
            if !two {
                return Ok(trap());
            }
            let x = slot_hash(&f.cnode, a);
            let same = x.is_some() && x == slot_hash(&f.cnode, b);
            f.set_reg(7, u64::from(same));
        }
        _ => return Ok(trap()),
    }
    Ok(Step::Continue)
}
