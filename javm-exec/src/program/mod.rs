//! [`Program`]: code, bitmask and jump table, validated once, decoded on demand.
//!
//! Loading finds every position and its opcode, partitions the positions into basic
//! blocks and resolves every jump-table entry to a block (or to "invalid → panic").
//! Instructions are decoded into [`Instruction`]s (static branch targets resolved
//! the same way) when an engine first needs them: the whole table at once for the
//! recompiler ([`Program::instructions`]), a block at a time, on its first entry,
//! for the interpreter ([`Program::decode_range`]); both use one decoder, so they
//! see the same instructions. Blocks are priced lazily per [`GasSchedule`].
//!
//! ## Positions, blocks and ϖ
//!
//! * **Positions**: every instruction start (bitmask bit set), position 0, the
//!   position `len(code)` (the implicit trap), and — closed under `pc + 1 + skip(pc)` —
//!   the non-start bytes that a skip capped at 24 lands on. Sequential execution always
//!   moves to the next position, so instruction `i + 1` follows instruction `i`.
//!   A position that is not a valid instruction decodes as [`Instruction::Invalid`].
//! * **Gas blocks** start at position 0 and right after every terminator; each ends at
//!   its first terminator. They partition the positions, so the block after block `b`
//!   is `b + 1`.
//! * **ϖ** (valid branch targets) is the set of block starts that hold a valid
//!   instruction inside the code. A static branch or jump-table entry that points
//!   anywhere else resolves to [`Target::INVALID`] and panics when taken.
//! * **Profiles.** The blocks above follow JAVM's terminator set `T_JAVM`, in which
//!   `ecalli` ends a block. The Gray Paper's set `T` has no `ecalli`, so under the
//!   `gp` profile a block that follows an `ecalli` *continues* its predecessor
//!   ([`Program::starts_block`]): it is priced with it ([`Program::block_costs`])
//!   and is no branch target (the engines panic on a branch to it). Execution
//!   resumes there after the host call without a charge.

mod build;

use std::sync::OnceLock;

use javm_cap::Hasher;
use thiserror::Error;

use crate::gas::{BlockCost, GasProfile, GasSchedule, model};
use crate::instruction::{Instruction, Target};
use crate::isa::{CodeView, Opcode};

pub use build::{MAX_CODE_LEN, MAX_JUMP_TABLE_LEN};

/// A program's content hash: SHA-256 over its canonical code blob parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramHash(pub [u8; 32]);

impl std::fmt::Display for ProgramHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Why code, bitmask and jump table do not form a program.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProgramError {
    /// The code is longer than [`MAX_CODE_LEN`].
    #[error("code is {len} bytes; the limit is {MAX_CODE_LEN}")]
    CodeTooLong {
        /// Code length.
        len: usize,
    },
    /// The jump table has more than [`MAX_JUMP_TABLE_LEN`] entries.
    #[error("jump table has {len} entries; the limit is {MAX_JUMP_TABLE_LEN}")]
    JumpTableTooLong {
        /// Number of entries.
        len: usize,
    },
    /// The bitmask does not have `ceil(len(code) / 8)` bytes.
    #[error("bitmask is {got} bytes; {expected} expected for {code_len} bytes of code")]
    BitmaskLength {
        /// Bytes present.
        got: usize,
        /// Bytes required.
        expected: usize,
        /// Code length.
        code_len: usize,
    },
    /// The bitmask's padding bits (past the end of the code) are not zero.
    #[error("bitmask padding bits past the end of the code are not zero")]
    BitmaskPadding,
}

/// A basic block (also the unit of gas charging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// PC of the first instruction.
    pub pc: u32,
    /// Index of the first instruction in [`Program::instructions`].
    pub first: u32,
    /// One past the index of the last instruction (its terminator).
    pub end: u32,
}

/// A validated program: its positions, blocks and resolved jump table; its
/// instructions are decoded on demand.
#[derive(Debug)]
pub struct Program {
    code: Box<[u8]>,
    bitmask: Box<[u8]>,
    jump_table: Box<[u32]>,
    /// [`Program::instructions`], decoded on first use.
    instructions: OnceLock<Box<[Instruction]>>,
    pcs: Box<[u32]>,
    /// The opcode at each position (same indexing as `pcs`); `None` where the
    /// position holds no valid instruction.
    opcodes: Box<[Option<Opcode>]>,
    /// (A vector, not a boxed slice: its few spare slots are not worth a
    /// reallocation on every load.)
    blocks: Vec<Block>,
    /// The blocks' start PCs, for resolving targets in constant time.
    block_starts: build::BlockStarts,
    jump_targets: Box<[Target]>,
    costs: [OnceLock<Box<[BlockCost]>>; 5],
    /// [`Program::interrupt_points`], computed on first use.
    polls: OnceLock<Box<[bool]>>,
    /// [`Program::hash`], computed on first use.
    hash: OnceLock<ProgramHash>,
}

impl Program {
    /// Validate a program from its parts (its instructions are decoded on demand). `bitmask` must have exactly
    /// `ceil(code.len() / 8)` bytes with zero padding bits.
    pub fn new(
        code: Vec<u8>,
        bitmask: Vec<u8>,
        jump_table: Vec<u32>,
    ) -> Result<Program, ProgramError> {
        build::build(code, bitmask, jump_table)
    }

    /// The code bytes.
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    /// The instruction-start bitmask.
    pub fn bitmask(&self) -> &[u8] {
        &self.bitmask
    }

    /// The raw jump table (target PCs).
    pub fn jump_table(&self) -> &[u32] {
        &self.jump_table
    }

    /// Code and bitmask as a [`CodeView`] for decoding.
    pub fn view(&self) -> CodeView<'_> {
        CodeView::new(&self.code, &self.bitmask)
    }

    /// Every position's instruction, in PC order; the last is the implicit trap at
    /// `len(code)`. Decoded on the first call (the recompiler's compilation makes
    /// it); the interpreter decodes a block at a time instead
    /// ([`Program::decode_range`]).
    pub fn instructions(&self) -> &[Instruction] {
        self.instructions
            .get_or_init(|| self.decode_range(0, self.pcs.len() as u32))
    }

    /// [`Program::instructions`], decoded on up to `threads` threads if it is not
    /// decoded yet: the table is cut into that many contiguous parts, the calling
    /// thread decodes the first and scoped threads the others. The same table as
    /// [`Program::instructions`] (each slot is decoded from the code alone), for
    /// large programs in less time; `threads` ≤ 1 decodes on the calling thread.
    pub fn instructions_on(&self, threads: usize) -> &[Instruction] {
        self.instructions.get_or_init(|| {
            let n = self.pcs.len();
            let part = n.div_ceil(threads.max(1)).max(1);
            if part >= n {
                return self.decode_range(0, n as u32);
            }
            let mut out = vec![Instruction::Invalid; n];
            // The pieces, taken in turn by the threads; the calling thread takes
            // what the others do not (all of them if no thread could be started).
            let pieces: Vec<std::sync::Mutex<Option<&mut [Instruction]>>> = out
                .chunks_mut(part)
                .map(|slots| std::sync::Mutex::new(Some(slots)))
                .collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let work = || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(piece) = pieces.get(i) else { break };
                    if let Some(slots) = piece.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        build::decode_into(self, (i * part) as u32, slots);
                    }
                }
            };
            std::thread::scope(|s| {
                for _ in 1..pieces.len() {
                    // A thread that cannot be started leaves its pieces to the others.
                    let _ = std::thread::Builder::new().spawn_scoped(s, work);
                }
                work();
            });
            drop(pieces);
            out.into_boxed_slice()
        })
    }

    /// Instructions `first..end` (indexes into [`Program::instructions`], clamped
    /// to the positions), decoded afresh: the same instructions the whole table
    /// holds there.
    pub fn decode_range(&self, first: u32, end: u32) -> Box<[Instruction]> {
        let end = end.min(self.pcs.len() as u32);
        let first = first.min(end);
        let mut out = vec![Instruction::Invalid; (end - first) as usize];
        build::decode_into(self, first, &mut out);
        out.into_boxed_slice()
    }

    /// The opcode of instruction `index`: `None` if it is no valid instruction or
    /// no position.
    #[inline]
    pub fn opcode(&self, index: u32) -> Option<Opcode> {
        self.opcodes.get(index as usize).copied().flatten()
    }

    /// The opcode of each instruction (same indexing as [`Program::instructions`]):
    /// `None` where the position holds no valid instruction (as [`Program::opcode`]).
    pub fn opcodes(&self) -> &[Option<Opcode>] {
        &self.opcodes
    }

    /// The PC of each instruction (same indexing as [`Program::instructions`]).
    pub fn pcs(&self) -> &[u32] {
        &self.pcs
    }

    /// The basic blocks, in PC order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Each jump-table entry resolved to a block (or [`Target::INVALID`]).
    pub fn jump_targets(&self) -> &[Target] {
        &self.jump_targets
    }

    /// The program's content hash, computed on the first call (the engines' module
    /// caches compare contents instead, [`crate::ModuleCache`]).
    pub fn hash(&self) -> ProgramHash {
        *self
            .hash
            .get_or_init(|| hash_parts(&self.code, &self.bitmask, &self.jump_table))
    }

    /// Whether `other` is the same program: the same code, bitmask and jump table
    /// (all else about a program follows from them).
    pub fn same_content(&self, other: &Program) -> bool {
        std::ptr::eq(self, other)
            || (self.code == other.code
                && self.bitmask == other.bitmask
                && self.jump_table == other.jump_table)
    }

    /// Index of the instruction at `pc`, if `pc` is a position.
    pub fn index_of(&self, pc: u32) -> Option<u32> {
        self.pcs.binary_search(&pc).ok().map(|i| i as u32)
    }

    /// Index of the block that starts at `pc`, if one does.
    pub fn block_starting_at(&self, pc: u32) -> Option<u32> {
        self.blocks
            .binary_search_by_key(&pc, |b| b.pc)
            .ok()
            .map(|i| i as u32)
    }

    /// Index of the block containing instruction `index`.
    pub fn block_of(&self, index: u32) -> u32 {
        (self.blocks.partition_point(|b| b.first <= index) as u32).saturating_sub(1)
    }

    /// Resolve a dynamic jump to address `a` (already reduced mod 2^32) by the GP
    /// rule: `0xFFFF0000` halts; 0, odd addresses, addresses past `2·|j|` and table
    /// entries outside ϖ panic; otherwise jump to entry `a/2 − 1`'s block.
    #[inline]
    pub fn resolve_dynamic_jump(&self, a: u32) -> DynamicJump {
        if a == HALT_ADDRESS {
            return DynamicJump::Halt;
        }
        if a == 0 || !a.is_multiple_of(2) {
            return DynamicJump::Panic;
        }
        match self
            .jump_targets
            .get((a / 2 - 1) as usize)
            .and_then(|t| t.block())
        {
            Some(b) => DynamicJump::Block(b),
            None => DynamicJump::Panic,
        }
    }

    /// Resolve a static target (an absolute position) to its block, or
    /// [`Target::INVALID`] if it is not in ϖ (see the module docs).
    pub fn resolve_target(&self, target: i64) -> Target {
        build::resolve_with(
            target,
            self.code.len() as u32,
            &self.blocks,
            &self.block_starts,
            &self.opcodes,
        )
    }

    /// Every block's price under `schedule` (computed on first use, then cached):
    /// [`Program::block_cost`] of each block.
    pub fn block_costs(&self, schedule: GasSchedule) -> &[BlockCost] {
        self.costs[schedule.slot()].get_or_init(|| {
            (0..self.blocks.len() as u32)
                .map(|b| self.block_cost(b, schedule))
                .collect()
        })
    }

    /// [`Program::block_costs`] if they are computed already (`None` otherwise:
    /// nothing is computed here).
    pub fn cached_block_costs(&self, schedule: GasSchedule) -> Option<&[BlockCost]> {
        self.costs[schedule.slot()].get().map(|c| &c[..])
    }

    /// The price of block `b` under `schedule`, as its entry charges it. Under `gp`
    /// a block that does not [start a block](Program::starts_block) costs nothing:
    /// its instructions are charged with the block it continues, whose price adds
    /// the prices of the blocks that continue it. Computed afresh on each call (an
    /// engine that prices lazily calls it once per block it enters); zero for a
    /// `b` that is no block.
    pub fn block_cost(&self, b: u32, schedule: GasSchedule) -> BlockCost {
        let zero = BlockCost {
            cost: 0,
            reserve: 0,
        };
        let profile = schedule.profile();
        if !self.starts_block(b, profile) {
            return zero;
        }
        let view = self.view();
        let mut total = zero;
        let mut next = b;
        while let Some(block) = self.blocks.get(next as usize) {
            if next != b && self.starts_block(next, profile) {
                break;
            }
            let c = model::block_cost_of(view, block.pc, self.block_walk(block), schedule);
            // Saturating sums of non-negative prices do not depend on their order.
            total.cost = total.cost.saturating_add(c.cost);
            total.reserve = total.reserve.saturating_add(c.reserve);
            next += 1;
        }
        total
    }

    /// The positions of `block` as [`model::BlockWalk`] yields them, from the
    /// loader's tables instead of the code bytes: a position that is no
    /// instruction start reads as `trap` (it ends its block), an undefined opcode
    /// byte as `None`.
    fn block_walk(&self, block: &Block) -> impl Iterator<Item = (u32, Option<Opcode>)> + '_ {
        let range = block.first as usize..block.end as usize;
        let view = self.view();
        self.pcs
            .get(range.clone())
            .unwrap_or_default()
            .iter()
            .zip(self.opcodes.get(range).unwrap_or_default())
            .map(move |(&pc, &op)| match op {
                None if !view.bit(u64::from(pc)) => (pc, Some(Opcode::Trap)),
                _ => (pc, op),
            })
    }

    /// Whether block `b` starts a basic block under `profile`. Every block does under
    /// `jar1`. Under `gp` a block right after an `ecalli` continues the block before
    /// it, since the Gray Paper's terminator set `T` has no `ecalli`: it is charged
    /// with that block, is not a branch target and is no entry point. `false` for a
    /// `b` that is no block.
    #[inline]
    pub fn starts_block(&self, b: u32, profile: GasProfile) -> bool {
        let Some(block) = self.blocks.get(b as usize) else {
            return false;
        };
        profile == GasProfile::Jar1
            || block.first == 0
            || self.opcode(block.first - 1) != Some(Opcode::Ecalli)
    }

    /// The blocks whose entry checks for an interrupt request
    /// ([`crate::InterruptHandle`]), indexed by block: every target of a backward
    /// (or self) static branch and every jump-table target. Every unbounded
    /// execution enters one of them again and again, so a request is seen after a
    /// bounded run of straight-line code, and other blocks do not pay for the check.
    /// Both engines check exactly these, so a request pending before a run stops it
    /// at the same place on both. Computed once per program.
    pub fn interrupt_points(&self) -> &[bool] {
        self.polls.get_or_init(|| self.find_interrupt_points())
    }

    /// Whether [`Program::interrupt_points`] has been computed.
    #[cfg(test)]
    pub(crate) fn interrupt_points_computed(&self) -> bool {
        self.polls.get().is_some()
    }

    fn find_interrupt_points(&self) -> Box<[bool]> {
        let mut polls = vec![false; self.blocks.len()];
        // Only terminators have static targets, and a terminator ends its block, so
        // each block's last instruction is the only one to look at (the program
        // tests compare this with a scan of every instruction); only its operands
        // are decoded, so that this decodes no table.
        let view = self.view();
        for (b, block) in self.blocks.iter().enumerate() {
            let Some(last) = block.end.checked_sub(1) else {
                continue;
            };
            if let Some(op) = self.opcode(last)
                && let (Some(&pc), Some(&next)) =
                    (self.pcs.get(last as usize), self.pcs.get(last as usize + 1))
                && let Some(raw) = view.decode_args(op.format(), pc, next - pc - 1).target()
                && let Some(t) = self.resolve_target(raw).block()
                && t as usize <= b
                && let Some(p) = polls.get_mut(t as usize)
            {
                *p = true;
            }
        }
        for t in self.jump_targets.iter().filter_map(|t| t.block()) {
            if let Some(p) = polls.get_mut(t as usize) {
                *p = true;
            }
        }
        polls.into_boxed_slice()
    }

    /// Whether `pc` starts a basic block under `profile` (see
    /// [`Program::starts_block`]): the rule for entry points.
    pub fn is_block_start(&self, pc: u32, profile: GasProfile) -> bool {
        self.block_starting_at(pc)
            .is_some_and(|b| self.starts_block(b, profile))
    }
}

/// Where a dynamic jump goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicJump {
    /// Halt (the address was `0xFFFF0000`).
    Halt,
    /// Enter this block.
    Block(u32),
    /// Panic at the jump.
    Panic,
}

/// A dynamic jump to this address halts (GP).
pub const HALT_ADDRESS: u32 = 0xFFFF_0000;

fn hash_parts(code: &[u8], bitmask: &[u8], jump_table: &[u32]) -> ProgramHash {
    let mut h = Hasher::new(b"javm.program.v1");
    h.u64(jump_table.len() as u64);
    for &t in jump_table {
        h.u32(t);
    }
    h.bytes(code).bytes(bitmask);
    ProgramHash(h.finish())
}

#[cfg(test)]
mod tests;
