//! Why a run panicked: [`PanicReason`], derived by one rule for both engines.
//!
//! Both engines stop a panicking run at the instruction that panicked, and what an
//! instruction can panic for follows from what it is: an invalid position panics
//! because it is no instruction, a static branch because its target is outside ϖ, a
//! dynamic jump because the jump table does not map the address, `sbrk` because
//! `jar1` has no GP heap, a load or store (under `gp`) because its address is below
//! 0x10000. [`panic_reason`] applies that rule to the program, the profile and the
//! panic's PC; `Instance::panic_reason` is it, after a panic exit.

use std::fmt;

use crate::gas::GasProfile;
use crate::instruction::Instruction;
use crate::isa::{Format, Opcode};
use crate::program::Program;

/// Why a run ended in [`crate::Exit::Panic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PanicReason {
    /// The PC holds no valid instruction: an undefined opcode, or a byte that is not
    /// an instruction start (reached by a capped skip).
    InvalidInstruction,
    /// A static branch or jump was taken to a target that does not start a basic
    /// block (outside ϖ, or under `gp` right after an `ecalli`).
    InvalidBranchTarget,
    /// A dynamic jump to an address the jump table does not map: 0, odd, past the
    /// table, or an entry whose target does not start a basic block.
    InvalidJumpAddress,
    /// `sbrk` under `jar1`, where the heap is an ordinary mapping.
    SbrkUnavailable,
    /// Under `gp`, a load or store at an inaccessible address below 0x10000.
    AccessBelowLowLimit,
    /// The run started or resumed at a PC that is no instruction of the program.
    InvalidPc,
}

impl PanicReason {
    /// A short machine-friendly name (`invalid-instruction`, …).
    pub fn name(self) -> &'static str {
        match self {
            PanicReason::InvalidInstruction => "invalid-instruction",
            PanicReason::InvalidBranchTarget => "invalid-branch-target",
            PanicReason::InvalidJumpAddress => "invalid-jump-address",
            PanicReason::SbrkUnavailable => "sbrk-unavailable",
            PanicReason::AccessBelowLowLimit => "access-below-0x10000",
            PanicReason::InvalidPc => "invalid-pc",
        }
    }
}

impl fmt::Display for PanicReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PanicReason::InvalidInstruction => "invalid instruction",
            PanicReason::InvalidBranchTarget => {
                "branch to a target that does not start a basic block"
            }
            PanicReason::InvalidJumpAddress => {
                "dynamic jump to an address the jump table does not map"
            }
            PanicReason::SbrkUnavailable => "sbrk is not available under the jar1 profile",
            PanicReason::AccessBelowLowLimit => {
                "memory access below 0x10000 (the gp profile panics there)"
            }
            PanicReason::InvalidPc => "the PC is not an instruction of the program",
        })
    }
}

/// Why a run of `program` under `profile` that panicked at `pc` panicked, or `None`
/// if the instruction there cannot panic (an engine bug; the differential harness
/// checks that every panic has a reason).
pub fn panic_reason(program: &Program, profile: GasProfile, pc: u32) -> Option<PanicReason> {
    let Some(i) = program.index_of(pc) else {
        return Some(PanicReason::InvalidPc);
    };
    let ins = program.instructions().get(i as usize)?;
    let op = match ins {
        Instruction::Invalid => return Some(PanicReason::InvalidInstruction),
        _ => ins.opcode()?,
    };
    match op {
        Opcode::JumpInd | Opcode::LoadImmJumpInd => Some(PanicReason::InvalidJumpAddress),
        Opcode::Sbrk if profile == GasProfile::Jar1 => Some(PanicReason::SbrkUnavailable),
        _ if matches!(
            op.format(),
            Format::Offset | Format::RegImmOffset | Format::RegRegOffset
        ) =>
        {
            Some(PanicReason::InvalidBranchTarget)
        }
        _ if profile == GasProfile::Gp && op.memory_access().is_some() => {
            Some(PanicReason::AccessBelowLowLimit)
        }
        _ => None,
    }
}
