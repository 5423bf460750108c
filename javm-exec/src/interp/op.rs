//! What the dispatch loop executes: every instruction as [`Instruction`] has it, plus
//! the runs of [`crate::fuse`] as one operation each.
//!
//! [`Op`] repeats [`Instruction`]'s variants (generated from the same ISA table, with
//! the same operand structs) so that one `match` dispatches on both; a nested enum
//! would dispatch twice. A block's code is built when it is first run
//! ([`block_code`]): a fused run's first slot holds the run (or its part the
//! interpreter fuses), its later slots keep their own instructions, for executions
//! that start inside the run (a resume after a fault, a host's `set_pc`); after
//! the last slot comes [`Op::End`], which lets the loop walk a block without
//! checking for its end at every op.

use crate::fuse::{self, Fused, Shift};
use crate::instruction::{Instruction, operands};
use crate::isa::{Reg, for_each_opcode};

/// [`Fused::Rotate`]: `d = rotr(x, n)`, with the two shift results kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rotate {
    pub(crate) x: Reg,
    pub(crate) d: Reg,
    pub(crate) n: u8,
    pub(crate) shifts: [Shift; 2],
}

/// [`Fused::ZeroExtend`]: `d = (s << 32) >> k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZeroExtend {
    pub(crate) s: Reg,
    pub(crate) d: Reg,
    pub(crate) k: u8,
}

/// The three instructions before the load of a [`Fused::AddLoad`] with `zext`:
/// `d = a + (b mod 2^32) · 2^scale`. The load itself stays in its own slot and runs
/// as written: fusing it too would put a copy of every load's fast path into the
/// loop for a saving of one dispatch (and, for the two-instruction form without
/// `zext`, of nothing else), and the loop's speed follows its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Index {
    pub(crate) d: Reg,
    pub(crate) a: Reg,
    pub(crate) b: Reg,
    pub(crate) scale: u8,
}

macro_rules! define_op {
    ($([$num:literal, $name:ident, $mnemonic:literal, $format:ident, $term:expr, $cost:expr]),* $(,)?) => {
        /// An [`Instruction`], or a fused run ([`crate::fuse`]) in its first slot.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Op {
            $($name(operands::$format),)*
            Invalid,
            /// Past a block's last slot (every block's code ends with it): the
            /// block ended without a terminator, which a [`crate::Program`] rules
            /// out; the walk stops here whatever the slots before it hold.
            End,
            Rotate(Rotate),
            ZeroExtend(ZeroExtend),
            Index(Index),
        }

        impl From<Instruction> for Op {
            #[inline]
            fn from(ins: Instruction) -> Op {
                match ins {
                    $(Instruction::$name(o) => Op::$name(o),)*
                    Instruction::Invalid => Op::Invalid,
                }
            }
        }
    };
}

for_each_opcode!(define_op);

// As small as an instruction: the loop walks them as densely as before.
const _: () = assert!(std::mem::size_of::<Op>() == std::mem::size_of::<Instruction>());

impl Op {
    /// The op a fused run `f` starts with, and the slots it covers; `None` for a
    /// run the interpreter does not fuse ([`Index`]).
    fn of(f: Fused) -> Option<(Op, usize)> {
        match f {
            Fused::Rotate { x, d, n, shifts } => Some((Op::Rotate(Rotate { x, d, n, shifts }), 3)),
            Fused::ZeroExtend { s, d, k } => Some((Op::ZeroExtend(ZeroExtend { s, d, k }), 2)),
            Fused::AddLoad {
                d,
                a,
                b,
                zext: Some(scale),
                ..
            } => Some((Op::Index(Index { d, a, b, scale }), 3)),
            Fused::AddLoad { zext: None, .. } => None,
        }
    }
}

/// A block's code from its instructions: one slot per instruction, each fused run
/// in its first slot when `fuse` ([`fuse_runs`]), then [`Op::End`].
pub(crate) fn block_code(ins: &[Instruction], fuse: bool) -> Box<[Op]> {
    let mut ops = Vec::with_capacity(ins.len() + 1);
    ops.extend(ins.iter().map(|&i| Op::from(i)));
    if fuse {
        fuse_runs(ins, &mut ops);
    }
    ops.push(Op::End);
    ops.into_boxed_slice()
}

/// Put into `ops` (one per instruction of `ins`) each fused run ([`fuse::find`],
/// runs taken from the start, not overlapping) that the interpreter fuses, in its
/// first slot; every other slot keeps its own instruction. A run lies within
/// `ins`, so the slots it covers do too.
fn fuse_runs(ins: &[Instruction], ops: &mut [Op]) {
    let mut k = 0;
    while let Some(rest) = ins.get(k..).filter(|r| !r.is_empty()) {
        // Every run the interpreter fuses starts with a shift by a constant; other
        // starts skip the search (which could only find an `add_64` + load).
        let shift = matches!(
            rest.first(),
            Some(Instruction::ShloLImm64(_) | Instruction::ShloRImm64(_))
        );
        match shift.then(|| fuse::find(rest)).flatten().and_then(Op::of) {
            Some((op, covered)) => {
                if let Some(slot) = ops.get_mut(k) {
                    *slot = op;
                }
                k += covered;
            }
            None => k += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn ops(src: &str) -> (Vec<Instruction>, Box<[Op]>) {
        let p = assemble(&format!("{src}\ntrap"))
            .unwrap()
            .program()
            .unwrap();
        let ins = p.instructions().to_vec();
        let ops = block_code(&ins, true);
        assert_eq!(ops.len(), ins.len() + 1);
        assert_eq!(ops.last(), Some(&Op::End));
        (ins, ops)
    }

    #[test]
    fn a_run_takes_its_first_slot_and_its_later_slots_keep_their_instructions() {
        let (ins, ops) = ops(
            "xor r1, r2, r3\nshlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r6\n\
             shlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r6, r6, 30\n\
             shlo_l_imm_64 r7, r8, 32\nshlo_r_imm_64 r7, r7, 29\nadd_64 r7, r2, r7\nload_ind_u64 r7, r7, 8",
        );
        assert!(
            matches!(ops[1], Op::Rotate(Rotate { n: 63, .. })),
            "{:?}",
            ops[1]
        );
        assert!(
            matches!(ops[4], Op::ZeroExtend(ZeroExtend { k: 30, .. })),
            "{:?}",
            ops[4]
        );
        assert!(
            matches!(ops[6], Op::Index(Index { scale: 3, .. })),
            "{:?}",
            ops[6]
        );
        for k in [0, 2, 3, 5, 7, 8, 9, 10] {
            assert_eq!(ops[k], Op::from(ins[k]), "slot {k}");
        }
    }

    #[test]
    fn unfused_code_is_one_slot_per_instruction_then_the_end() {
        let p = assemble("shlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r6, r6, 30\ntrap")
            .unwrap()
            .program()
            .unwrap();
        let ins = p.instructions();
        let mut want: Vec<Op> = ins.iter().map(|&i| Op::from(i)).collect();
        want.push(Op::End);
        assert_eq!(&block_code(ins, false)[..], &want[..]);
    }

    #[test]
    fn an_add_folded_into_its_load_alone_is_not_fused() {
        let (ins, ops) = ops("add_64 r7, r2, r3\nload_ind_u64 r7, r7, 8");
        assert_eq!(
            &ops[..ins.len()],
            &ins.iter().map(|&i| Op::from(i)).collect::<Vec<_>>()[..]
        );
    }
}
