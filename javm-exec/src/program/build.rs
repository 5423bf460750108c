//! Building a [`Program`]: validation, position discovery, block partition and
//! jump-table resolution, linear in the code length (no hash: [`Program::hash`] is
//! computed on demand); and the decoder that fills instruction tables on demand
//! ([`decode_into`]).

use std::sync::OnceLock;

use super::{Block, Program, ProgramError};
use crate::instruction::{Instruction, Target};
use crate::isa::{CodeView, MAX_SKIP, Opcode};

/// Largest accepted code: 16 MiB (JAM service code is a few MiB at most). Loading
/// costs at most about 27 bytes per code byte and decoding 16 more per instruction,
/// so this bounds what a hostile blob can make the loader and the engines allocate.
pub const MAX_CODE_LEN: usize = 1 << 24;
/// Largest accepted jump table.
pub const MAX_JUMP_TABLE_LEN: usize = 1 << 24;

/// ϖ: a target is valid iff it is a block start inside the code whose first
/// instruction (index given to `valid_at`) is a valid instruction. The one definition
/// used for static targets, jump-table entries and [`Program::resolve_target`].
/// Resolve a static or jump-table target to its block, or [`Target::INVALID`]. A
/// target is in ϖ if it starts a block inside the code, holds a valid instruction
/// (`valid_at(position index)`) and is position 0 or follows a terminator
/// (`terminator_at(position index)`) — not a position that only ends its block because
/// it is no instruction start (DESIGN-DECISIONS §60). The loader and
/// [`super::Program::resolve_target`] both use this one rule.
/// `block_at(pc)` names the block starting at `pc`, if one does.
pub(super) fn resolve_target(
    target: i64,
    len: u32,
    blocks: &[Block],
    block_at: impl Fn(u32) -> Option<u32>,
    valid_at: impl Fn(u32) -> bool,
    terminator_at: impl Fn(u32) -> bool,
) -> Target {
    let Ok(t) = u32::try_from(target) else {
        return Target::INVALID;
    };
    if t >= len {
        return Target::INVALID;
    }
    match block_at(t) {
        Some(b)
            if valid_at(blocks[b as usize].first)
                && (blocks[b as usize].first == 0
                    || terminator_at(blocks[b as usize].first - 1)) =>
        {
            Target(b)
        }
        _ => Target::INVALID,
    }
}

/// [`resolve_target`] over the loader's tables: the block starts as bits, and the
/// opcode at each position (`None`: no valid instruction).
pub(super) fn resolve_with(
    target: i64,
    len: u32,
    blocks: &[Block],
    starts: &BlockStarts,
    opcodes: &[Option<Opcode>],
) -> Target {
    resolve_target(
        target,
        len,
        blocks,
        |pc| starts.at(pc),
        |i| opcodes.get(i as usize).is_some_and(Option::is_some),
        |i| {
            opcodes
                .get(i as usize)
                .copied()
                .flatten()
                .is_some_and(Opcode::is_terminator)
        },
    )
}

/// Decode `program`'s instructions from index `first` on into `out`, one per slot
/// (a slot past the last position reads `Invalid`), resolving their static
/// targets. The one decoder of the instruction table, whether it is filled whole
/// ([`Program::instructions`]) or a block at a time (the interpreter).
pub(super) fn decode_into(program: &Program, first: u32, out: &mut [Instruction]) {
    let view = program.view();
    let len = view.len();
    let resolve = |target: i64| {
        resolve_with(
            target,
            len,
            &program.blocks,
            &program.block_starts,
            &program.opcodes,
        )
    };
    let first = first as usize;
    for (i, slot) in (first..).zip(out.iter_mut()) {
        let (Some(&pc), Some(&opcode)) = (program.pcs.get(i), program.opcodes.get(i)) else {
            *slot = Instruction::Invalid;
            continue;
        };
        // The next position is `pc + 1 + skip(pc)` (see `positions`); the last
        // position, `len`, reads as `trap` with its own skip.
        let skip = match program.pcs.get(i + 1) {
            Some(&next) => next - pc - 1,
            None => view.skip(pc),
        };
        Instruction::decode_into(slot, &view, pc, skip, opcode, &resolve);
    }
}

/// The block starts of a program as a bit per PC with a running count per 64 PCs:
/// the block starting at a PC in constant time, for resolving the jump table while
/// loading and every static target while decoding (a binary search over the blocks
/// was a fifth of loading, its loads dependent and scattered). One table, so one
/// allocation per load.
#[derive(Debug)]
pub(super) struct BlockStarts {
    words: Vec<StartWord>,
}

/// 64 PCs of [`BlockStarts`]: a bit per PC that starts a block, and how many
/// blocks start before the first of them.
#[derive(Clone, Copy, Debug)]
struct StartWord {
    bits: u64,
    before: u32,
}

impl BlockStarts {
    fn new(len: u32, blocks: &[Block]) -> BlockStarts {
        let mut words = vec![StartWord { bits: 0, before: 0 }; (len as usize + 1).div_ceil(64)];
        for b in blocks {
            if let Some(w) = words.get_mut(b.pc as usize / 64) {
                w.bits |= 1 << (b.pc % 64);
            }
        }
        let mut count = 0u32;
        for w in &mut words {
            w.before = count;
            count += w.bits.count_ones();
        }
        BlockStarts { words }
    }

    /// The index of the block starting at `pc`, if one does.
    #[inline]
    pub(super) fn at(&self, pc: u32) -> Option<u32> {
        let (w, b) = (pc as usize / 64, pc % 64);
        let StartWord { bits, before } = *self.words.get(w)?;
        (bits >> b & 1 == 1).then(|| before + (bits & ((1u64 << b) - 1)).count_ones())
    }
}

pub(super) fn build(
    code: Vec<u8>,
    bitmask: Vec<u8>,
    jump_table: Vec<u32>,
) -> Result<Program, ProgramError> {
    if code.len() > MAX_CODE_LEN {
        return Err(ProgramError::CodeTooLong { len: code.len() });
    }
    if jump_table.len() > MAX_JUMP_TABLE_LEN {
        return Err(ProgramError::JumpTableTooLong {
            len: jump_table.len(),
        });
    }
    let expected = code.len().div_ceil(8);
    if bitmask.len() != expected {
        return Err(ProgramError::BitmaskLength {
            got: bitmask.len(),
            expected,
            code_len: code.len(),
        });
    }
    if !code.len().is_multiple_of(8) {
        let used_bits = code.len() % 8;
        if bitmask[expected - 1] >> used_bits != 0 {
            return Err(ProgramError::BitmaskPadding);
        }
    }

    let view = CodeView::new(&code, &bitmask);
    let len = view.len();

    let starts: usize = bitmask.iter().map(|b| b.count_ones() as usize).sum();
    // One pass over the positions records each one's opcode and partitions them
    // into blocks. Blocks start at 0 and after every terminator; a position that is
    // no instruction start ends its block too (`CodeView::ends_block`). Operands
    // are not decoded here: `decode_into` decodes them on demand, straight into
    // the instruction table or an engine's block (a table of decoded operands cost
    // a store-forwarding stall per instruction when it was copied).
    // The positions are the starts, `len`, and 0 if it is no start (plus the
    // landings of long gaps, rare): sized exactly, the tables need no shrinking.
    let positions_known = starts + 1 + usize::from(bitmask.first().is_none_or(|b| b & 1 == 0));
    let mut pcs: Vec<u32> = Vec::with_capacity(positions_known);
    let mut opcodes: Vec<Option<Opcode>> = Vec::with_capacity(positions_known);
    // About one block per four instructions; the rest is trimmed below if it is
    // much more than that.
    let mut blocks = Vec::with_capacity(starts / 4 + 4);
    let mut first = 0u32;
    positions(&bitmask, len, |pc, is_start| {
        // ζ: the position `len` (always a start) reads as opcode 0, `trap`.
        let opcode = if is_start {
            Opcode::from_u8(code.get(pc as usize).copied().unwrap_or(0))
        } else {
            None
        };
        pcs.push(pc);
        opcodes.push(opcode);
        if !is_start || opcode.is_some_and(Opcode::is_terminator) {
            let end = pcs.len() as u32;
            blocks.push(Block {
                pc: pcs.get(first as usize).copied().unwrap_or(pc),
                first,
                end,
            });
            first = end;
        }
    });

    // Trimmed only when the spare room is worth a reallocation (16 KiB); a small
    // program's few hundred spare bytes are not.
    if (blocks.capacity() - blocks.len()) * std::mem::size_of::<Block>() > 16 << 10 {
        blocks.shrink_to_fit();
    }
    let block_starts = BlockStarts::new(len, &blocks);
    let jump_targets: Vec<Target> = jump_table
        .iter()
        .map(|&t| resolve_with(i64::from(t), len, &blocks, &block_starts, &opcodes))
        .collect();

    Ok(Program {
        code: code.into_boxed_slice(),
        bitmask: bitmask.into_boxed_slice(),
        jump_table: jump_table.into_boxed_slice(),
        instructions: OnceLock::new(),
        pcs: pcs.into_boxed_slice(),
        opcodes: opcodes.into_boxed_slice(),
        blocks,
        block_starts,
        jump_targets: jump_targets.into_boxed_slice(),
        costs: std::array::from_fn(|_| OnceLock::new()),
        polls: OnceLock::new(),
        hash: OnceLock::new(),
    })
}

/// Visit the positions of a program of `len` code bytes whose instruction starts
/// are `bitmask`'s set bits, in order, with whether each is an instruction start
/// (`len` counts as one: its bit reads as set): every start, 0 and `len`, closed
/// under `pc + 1 + skip(pc)`. From a position the walk reaches the next start (or
/// `len`) if it lies at most `MAX_SKIP + 1` bytes on, and otherwise lands
/// `MAX_SKIP + 1` bytes on and goes on from there; so the positions are the starts
/// with those landings (no starts) filled into the gaps. Reading the set bits a
/// word at a time replaces a walk whose every step waited for the last. As a
/// consequence the position after `pc` is always `pc + 1 + skip(pc)`.
#[inline(always)]
fn positions(bitmask: &[u8], len: u32, mut visit: impl FnMut(u32, bool)) {
    // The last position visited; 0 is visited before the first set bit.
    let first_is_start = bitmask.first().is_some_and(|b| b & 1 == 1) || len == 0;
    visit(0, first_is_start);
    let mut at = 0u32;
    for (w, chunk) in bitmask.chunks(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        let mut word = u64::from_le_bytes(bytes);
        while word != 0 {
            // Bits past `len` are zero (the loader checked the padding), so every
            // set bit is a position below `len`, and `w * 64 < len ≤ 2^32`.
            let pc = (w as u32) * 64 + word.trailing_zeros();
            word &= word - 1;
            next_position(&mut at, pc, &mut visit);
        }
    }
    next_position(&mut at, len, &mut visit);
}

/// Visit the positions after `at` up to the start `next`: the landings of the gaps
/// longer than `MAX_SKIP + 1` bytes, then `next` (see [`positions`]).
#[inline(always)]
fn next_position(at: &mut u32, next: u32, visit: &mut impl FnMut(u32, bool)) {
    const STEP: u32 = MAX_SKIP + 1;
    if next == *at {
        return;
    }
    while next - *at > STEP {
        *at += STEP;
        visit(*at, false);
    }
    visit(next, true);
    *at = next;
}
