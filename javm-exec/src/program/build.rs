//! Building a [`Program`]: validation, position discovery, decoding, block partition
//! and target resolution. Linear in the code length.

use std::sync::OnceLock;

use super::{Block, Program, ProgramError, hash_parts};
use crate::instruction::{Instruction, Target};
use crate::isa::CodeView;

/// Largest accepted code: 16 MiB (JAM service code is a few MiB at most). Predecoding
/// costs about 20 bytes per instruction, so this bounds what a hostile blob can make
/// the loader allocate.
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
pub(super) fn resolve_target(
    target: i64,
    len: u32,
    blocks: &[Block],
    valid_at: impl Fn(u32) -> bool,
    terminator_at: impl Fn(u32) -> bool,
) -> Target {
    let Ok(t) = u32::try_from(target) else {
        return Target::INVALID;
    };
    if t >= len {
        return Target::INVALID;
    }
    match blocks.binary_search_by_key(&t, |b| b.pc) {
        Ok(b)
            if valid_at(blocks[b].first)
                && (blocks[b].first == 0 || terminator_at(blocks[b].first - 1)) =>
        {
            Target(b as u32)
        }
        _ => Target::INVALID,
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

    // Positions: instruction starts, 0, len, closed under pc + 1 + skip(pc).
    let mut is_pos = vec![false; len as usize + 1];
    is_pos[0] = true;
    is_pos[len as usize] = true;
    for pc in 0..len {
        if view.bit(u64::from(pc)) {
            is_pos[pc as usize] = true;
        }
        if is_pos[pc as usize] {
            is_pos[(pc + 1 + view.skip(pc)) as usize] = true;
        }
    }
    let pcs: Vec<u32> = (0..=len).filter(|&pc| is_pos[pc as usize]).collect();
    drop(is_pos);

    // Blocks start at 0 and after every terminator; decode once to find them.
    let decoded: Vec<_> = pcs.iter().map(|&pc| view.decode(pc)).collect();
    let mut blocks = Vec::new();
    let mut first = 0u32;
    for (i, &pc) in pcs.iter().enumerate() {
        if view.ends_block(pc) || i + 1 == decoded.len() {
            let end = i as u32 + 1;
            blocks.push(Block {
                pc: pcs[first as usize],
                first,
                end,
            });
            first = end;
        }
    }

    let resolve = |target: i64| {
        resolve_target(
            target,
            len,
            &blocks,
            |i| decoded[i as usize].opcode.is_some(),
            |i| {
                decoded[i as usize]
                    .opcode
                    .is_some_and(|op| op.is_terminator())
            },
        )
    };
    let instructions: Vec<Instruction> = decoded
        .iter()
        .map(|d| Instruction::resolve(d.opcode, &d.args, &resolve))
        .collect();
    let jump_targets: Vec<Target> = jump_table.iter().map(|&t| resolve(i64::from(t))).collect();
    let hash = hash_parts(&code, &bitmask, &jump_table);

    Ok(Program {
        code: code.into_boxed_slice(),
        bitmask: bitmask.into_boxed_slice(),
        jump_table: jump_table.into_boxed_slice(),
        instructions: instructions.into_boxed_slice(),
        pcs: pcs.into_boxed_slice(),
        blocks: blocks.into_boxed_slice(),
        jump_targets: jump_targets.into_boxed_slice(),
        costs: std::array::from_fn(|_| OnceLock::new()),
        polls: OnceLock::new(),
        hash,
    })
}
