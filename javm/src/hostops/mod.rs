//! The host-op table (docs/DESIGN-DECISIONS.md, the `Vm` driver): one definition of what each `ecalli imm` (or
//! `ecall` with φ11 = op) does, used whichever engine runs the guest.
//!
//! Slot operands are the low byte of their register. Any op error traps the running
//! instance; an op that cannot be paid for runs out of gas, and is dispatched again
//! if the invocation is resumed after a top-up.
//!
//! | op | name | registers | effect |
//! |---|---|---|---|
//! | 0 | HALT / REPLY | φ7 = return value | top level: `Halt`; nested: the caller gets φ7, slot 0, φ8 = 0 |
//! | 1 | COPY | φ7 src, φ8 dst | dst = src's cap (empty src or pinned dst: trap) |
//! | 2 | MOVE | φ7 src, φ8 dst | take src into dst (empty src, pinned src or dst: trap) |
//! | 3 | DROP | φ7 slot | empty the slot (pinned: trap) |
//! | 4 | CNODE_SWAP | φ7, φ8 | exchange two slots (pinned: trap) |
//! | 5 | CNODE_MINT | φ7 dst, φ8 size_log | publish an empty cnode (size_log ≤ 16) at dst |
//! | 16 | HOST_YIELD | φ7 marker slot | route to the nearest catcher below → `Paused`; none: trap |
//! | 17 | SET_IMAGE | φ7 image slot | run another image on the same registers and memory |
//! | 18 | DERIVE_SPAWN | φ7 image, φ8 prepared cnode, φ9 dst | publish a child instance at dst |
//! | 20 | SAME_TYPE | φ7, φ8 | φ7 = 1 if both slots hold the same cap, else 0 |
//! | 22 | READ_DATA_CAP | φ7 slot, φ8 addr, φ9 len | copy bytes into memory; φ7 = count |
//! | 23 | MINT_DATA_CAP | φ7 addr, φ8 len, φ9 quota, φ10 dst | publish memory bytes as a data cap |
//! | 26 | HOST_CALL | φ7 instance slot, φ8 endpoint, φ9..φ12 args | call the instance |
//! | ≥ 64 | host functions | φ7..φ12 | the embedder's [`crate::KernelAssist`] |
//!
//! Every other op traps.

mod call;
mod data;
mod mgmt;

use javm_cap::{CacheDirectory, CapHash, SlotIdx};
use javm_exec::{Engine, Instance, Reg};

use crate::build::Frame;
use crate::driver::{Driver, Step, internal};
use crate::kernel_assist::{Guest, HostReturn, KernelAssist};
use crate::vm::{Fault, VmError};

/// HALT / REPLY.
pub const HALT: u32 = 0;
/// Copy a slot.
pub const COPY: u32 = 1;
/// Move a slot.
pub const MOVE: u32 = 2;
/// Empty a slot.
pub const DROP: u32 = 3;
/// Exchange two slots.
pub const CNODE_SWAP: u32 = 4;
/// Publish an empty cnode.
pub const CNODE_MINT: u32 = 5;
/// Yield a marker to a catcher.
pub const HOST_YIELD: u32 = 16;
/// Switch the running image.
pub const SET_IMAGE: u32 = 17;
/// Publish a child instance of an image.
pub const DERIVE_SPAWN: u32 = 18;
/// Compare two slots.
pub const SAME_TYPE: u32 = 20;
/// Copy a data cap into memory.
pub const READ_DATA_CAP: u32 = 22;
/// Publish memory as a data cap.
pub const MINT_DATA_CAP: u32 = 23;
/// Call an instance.
pub const HOST_CALL: u32 = 26;
/// The first op passed to the embedder's kernel.
pub const FIRST_HOST_FUNCTION: u32 = 64;

/// φ8 of a caller after its call replied.
pub const CALL_OK: u64 = 0;
/// φ8 of a caller whose callee trapped (φ7 = 0).
pub const CALL_TRAP: u64 = 1;
/// φ8 of a caller whose callee panicked (φ7 = 0).
pub const CALL_PANIC: u64 = 2;
/// φ8 of a caller whose callee page-faulted (φ7 = the page's address).
pub const CALL_PAGE_FAULT: u64 = 3;

/// SHA-256 of `javm/kernel/out-of-gas`: the marker of the synthetic out-of-gas yield.
pub const OUT_OF_GAS_MARKER: CapHash = [
    0x23, 0x4a, 0x79, 0x6e, 0x2b, 0x0d, 0x52, 0x7e, 0x22, 0x89, 0x65, 0xf2, 0xdf, 0xb6, 0x51, 0x87,
    0x16, 0xc6, 0x7f, 0x62, 0x8e, 0x2a, 0x49, 0xd2, 0x1c, 0x59, 0x24, 0x74, 0xcc, 0x6c, 0x61, 0x4a,
];

/// The name of op `op`, `None` for an op that traps.
pub fn op_name(op: u32) -> Option<&'static str> {
    Some(match op {
        HALT => "HALT",
        COPY => "COPY",
        MOVE => "MOVE",
        DROP => "DROP",
        CNODE_SWAP => "CNODE_SWAP",
        CNODE_MINT => "CNODE_MINT",
        HOST_YIELD => "HOST_YIELD",
        SET_IMAGE => "SET_IMAGE",
        DERIVE_SPAWN => "DERIVE_SPAWN",
        SAME_TYPE => "SAME_TYPE",
        READ_DATA_CAP => "READ_DATA_CAP",
        MINT_DATA_CAP => "MINT_DATA_CAP",
        HOST_CALL => "HOST_CALL",
        op if op >= FIRST_HOST_FUNCTION => "host function",
        _ => return None,
    })
}

/// Dispatch op `op` of the running frame.
pub(crate) fn dispatch<E: Engine>(
    d: &mut Driver<E>,
    kernel: &mut dyn KernelAssist,
    cache: &CacheDirectory,
    op: u32,
) -> Result<Step<E::Instance>, VmError> {
    match op {
        HALT => Ok(Step::Reply),
        COPY..=CNODE_MINT | SAME_TYPE => mgmt::run(running(d)?, cache, op),
        HOST_YIELD => Ok(call::host_yield(running(d)?)),
        SET_IMAGE => call::set_image(d, cache),
        DERIVE_SPAWN => call::derive_spawn(d, cache),
        READ_DATA_CAP => data::read_data_cap(running(d)?, cache),
        MINT_DATA_CAP => data::mint_data_cap(running(d)?, kernel, cache),
        HOST_CALL => call::host_call(d, cache),
        op if op >= FIRST_HOST_FUNCTION => {
            let f = running(d)?;
            let mut guest = Guest::new(&mut f.inst);
            Ok(match kernel.host_function(op, &mut guest)? {
                HostReturn::Continue => Step::Continue,
                HostReturn::Trap => trap(),
                HostReturn::OutOfGas => Step::OutOfGas { retry: Some(op) },
            })
        }
        _ => Ok(trap()),
    }
}

/// The step of an op error.
pub(crate) fn trap<I>() -> Step<I> {
    Step::Fault(Fault::Trap)
}

fn running<E: Engine>(d: &mut Driver<E>) -> Result<&mut Frame<E::Instance>, VmError> {
    d.stack
        .running_mut()
        .ok_or_else(|| internal("a host op without a running instance"))
}

impl<I: Instance> Frame<I> {
    /// Register φ`i`.
    pub(crate) fn reg(&self, i: usize) -> u64 {
        Reg::new(i).map_or(0, |r| self.inst.reg(r))
    }

    /// Set register φ`i`.
    pub(crate) fn set_reg(&mut self, i: usize, v: u64) {
        if let Some(r) = Reg::new(i) {
            self.inst.set_reg(r, v);
        }
    }

    /// The slot operand in φ`i`: its low byte.
    pub(crate) fn slot_arg(&self, i: usize) -> SlotIdx {
        SlotIdx((self.reg(i) & 0xFF) as u32)
    }

    /// Whether `slot` is a slot of the working cnode.
    pub(crate) fn in_range(&self, slot: SlotIdx) -> bool {
        slot.0 < self.cnode.capacity()
    }

    /// The cap hash in `slot`, `None` if the slot is empty or beyond the cnode.
    pub(crate) fn slot_cap(&self, slot: SlotIdx) -> Option<javm_cap::CapHash> {
        if self.in_range(slot) {
            crate::build::slot_hash(&self.cnode, slot)
        } else {
            None
        }
    }

    /// Whether the running image pins `slot`.
    pub(crate) fn pinned(&self, slot: SlotIdx) -> bool {
        self.image.image().is_pinned(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_gas_marker_is_the_hash_of_its_name() {
        assert_eq!(
            OUT_OF_GAS_MARKER,
            javm_cap::sha256(b"javm/kernel/out-of-gas")
        );
    }

    #[test]
    fn every_named_op_is_dispatched_and_the_rest_trap() {
        let named: Vec<u32> = (0..70).filter(|&op| op_name(op).is_some()).collect();
        assert_eq!(
            named,
            [
                0, 1, 2, 3, 4, 5, 16, 17, 18, 20, 22, 23, 26, 64, 65, 66, 67, 68, 69
            ]
        );
    }
}
