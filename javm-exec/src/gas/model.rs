//! The block pricing rules: `gp` instruction counts and the `jar1` single-pass
//! pipeline model (docs/ISA.md §5.2), both defined over one [`BlockWalk`].
//!
//! A block is walked from its start `pc`, following `pc + 1 + skip(pc)`, up to and
//! including the first terminator. The position `len(code)` reads as `trap` (ζ), so a
//! walk that runs off the end stops there. A position that is not an instruction
//! start (reachable only when `skip` is capped at 24) is priced as opcode 0, `trap`,
//! and ends the block, as in the Lean reference; an instruction start whose byte is
//! no defined opcode counts as an invalid instruction (1 cycle, 1 slot, not a
//! terminator).

use crate::gas_const::{HOST_CALL_FLOOR, MGMT_OP_COST, store_reserve};
use crate::isa::{CodeView, CostEntry, Cycles, Opcode, SRC_A, SRC_B, SRC_D, Slots};

use super::{BlockCost, GasSchedule, MemTier};

/// The positions of one basic block, from its start to its first terminator.
#[derive(Clone, Debug)]
pub struct BlockWalk<'a> {
    view: CodeView<'a>,
    next: Option<u32>,
}

impl<'a> BlockWalk<'a> {
    /// Walk the block that starts at `pc` (`pc ≤ len(code)`).
    pub fn new(view: CodeView<'a>, pc: u32) -> Self {
        BlockWalk {
            view,
            next: (pc <= view.len()).then_some(pc),
        }
    }
}

impl Iterator for BlockWalk<'_> {
    /// `(pc, opcode)`: `None` for a position that is not a valid instruction.
    type Item = (u32, Option<Opcode>);

    fn next(&mut self) -> Option<Self::Item> {
        let pc = self.next?;
        // As `CodeView::ends_block`, reading the bit and the opcode once.
        let (op, ends) = if self.view.bit(u64::from(pc)) {
            let op = Opcode::from_u8(self.view.byte(u64::from(pc)));
            (op, op.is_some_and(Opcode::is_terminator))
        } else {
            (Some(Opcode::Trap), true)
        };
        self.next = if ends {
            None
        } else {
            // pc < len here (position len is `trap`), so pc + 1 + skip ≤ len.
            Some(pc + 1 + self.view.skip(pc))
        };
        Some((pc, op))
    }
}

/// The price of the block starting at `pc` under `schedule`.
pub fn block_cost(view: CodeView<'_>, pc: u32, schedule: GasSchedule) -> BlockCost {
    block_cost_of(view, pc, BlockWalk::new(view, pc), schedule)
}

/// [`block_cost`] of the block at `pc` whose positions `walk` yields — what
/// [`BlockWalk`] yields, found some other way (a loaded program's tables).
pub fn block_cost_of(
    view: CodeView<'_>,
    pc: u32,
    walk: impl Iterator<Item = (u32, Option<Opcode>)>,
    schedule: GasSchedule,
) -> BlockCost {
    match schedule {
        GasSchedule::Gp => BlockCost {
            cost: walk.count() as u64,
            reserve: 0,
        },
        GasSchedule::Jar1(tier) => {
            let walk = single_pass(view, pc, walk, tier.mem_cycles());
            BlockCost {
                cost: jar1_floor(walk.cycles, walk.last),
                reserve: store_reserve(walk.stores),
            }
        }
    }
}

/// The jar1 cost of the block at `pc`: the single-pass model, then the `ecalli` /
/// `ecall` floors of docs/ISA.md §5.
pub fn jar1_cost(view: CodeView<'_>, pc: u32, tier: MemTier) -> u64 {
    let walk = single_pass(view, pc, BlockWalk::new(view, pc), tier.mem_cycles());
    jar1_floor(walk.cycles, walk.last)
}

/// The `ecalli` / `ecall` floors applied to a block's modelled `cycles`.
fn jar1_floor(cycles: u64, last: Option<Opcode>) -> u64 {
    match last {
        Some(Opcode::Ecalli) => cycles.max(HOST_CALL_FLOOR),
        Some(Opcode::Ecall) => cycles.max(MGMT_OP_COST),
        _ => cycles,
    }
}

/// What one walk of a block for the `jar1` model yields.
struct SinglePass {
    /// `max(max_done - 3, 1)`.
    cycles: u64,
    /// The last opcode costed.
    last: Option<Opcode>,
    /// The block's stores (for its reserve).
    stores: u64,
}

/// The single-pass pipeline model of docs/ISA.md §5.2 for the block at `start`,
/// whose positions `walk` yields ([`BlockWalk`]), and the block's store count, in
/// one walk.
///
/// Registers are tracked by their operand field clamped to 12 (as
/// [`Reg::from_field`](crate::isa::Reg::from_field) maps them), in a 16-slot table that needs no bounds checks.
#[inline]
fn single_pass(
    view: CodeView<'_>,
    start: u32,
    walk: impl Iterator<Item = (u32, Option<Opcode>)>,
    mem_cycles: u32,
) -> SinglePass {
    /// The register an operand field names (`Reg::from_field(f).index()`).
    #[inline(always)]
    fn reg(field: u8) -> usize {
        usize::from(field.min(12))
    }
    let code = view.code();
    let mut ready = [0u64; 16];
    let (mut cycle, mut used, mut max_done) = (0u64, 0u32, 0u64);
    let (mut last, mut stores) = (None, 0u64);
    for (pc, op) in walk {
        // The implicit trap past the end is not costed, unless the block starts there
        // (it is no store either way).
        if pc >= view.len() && pc != start {
            break;
        }
        last = op;
        let e = match op {
            Some(op) => {
                stores += u64::from(op.is_store());
                op.cost()
            }
            None => CostEntry::INVALID,
        };
        // The two bytes after the opcode, ζ: 0 past the end of the code.
        let at = pc as usize + 1;
        let (b1, b2) = match code.get(at..at + 2) {
            Some(&[x, y]) => (x, y),
            _ => (view.byte(at as u64), view.byte(at as u64 + 1)),
        };
        let (a, b, d) = (reg(b1 & 0x0F), reg(b1 >> 4), reg(b2 & 0x0F));
        let slots = u32::from(match e.slots {
            Slots::Fixed(s) => s,
            Slots::Ov1(x, y) => {
                if a == b {
                    x
                } else {
                    y
                }
            }
            Slots::Ov2(x, y) => {
                if a == b || a == d {
                    x
                } else {
                    y
                }
            }
            Slots::OvS(x, y) => {
                if b1 & 0x0F == b1 >> 4 {
                    x
                } else {
                    y
                }
            }
        });
        // A new decode cycle starts only once 4 or more slots are used.
        if used >= 4 {
            cycle += 1;
            used = slots;
        } else {
            used += slots;
        }
        let cycles = match e.cycles {
            Cycles::Rename => {
                ready[a] = ready[b];
                continue;
            }
            Cycles::Fixed(c) => u64::from(c),
            Cycles::Mem => u64::from(mem_cycles),
            Cycles::Branch => branch_cycles(view, pc),
        };
        let mut start_cycle = cycle;
        if e.srcs & SRC_A != 0 {
            start_cycle = start_cycle.max(ready[a]);
        }
        if e.srcs & SRC_B != 0 {
            start_cycle = start_cycle.max(ready[b]);
        }
        if e.srcs & SRC_D != 0 {
            start_cycle = start_cycle.max(ready[d]);
        }
        let done = start_cycle + cycles;
        if e.dst_a {
            ready[a] = done;
        }
        max_done = max_done.max(done);
    }
    SinglePass {
        cycles: max_done.saturating_sub(3).max(1),
        last,
        stores,
    }
}

/// `bc`: 1 if the branch's static target is a `trap` or `unlikely` instruction start
/// inside the code, else 20. Static: the same whether or not the branch is taken.
fn branch_cycles(view: CodeView<'_>, pc: u32) -> u64 {
    let target = view.decode(pc).args.target();
    let cheap = target.and_then(|t| u32::try_from(t).ok()).is_some_and(|t| {
        t < view.len() && view.bit(u64::from(t)) && matches!(view.byte(u64::from(t)), 0 | 2)
    });
    if cheap { 1 } else { 20 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(starts: &[u32], len: usize) -> Vec<u8> {
        let mut m = vec![0u8; len.div_ceil(8)];
        for &s in starts {
            m[s as usize / 8] |= 1 << (s % 8);
        }
        m
    }

    fn jar1(code: &[u8], starts: &[u32], tier: u8) -> u64 {
        let m = mask(starts, code.len());
        jar1_cost(CodeView::new(code, &m), 0, MemTier::new(tier).unwrap())
    }

    #[test]
    fn e1_div_not_seen_as_dependency_costs_58() {
        let code = [
            0x33, 0x01, 0x0a, 0x33, 0x02, 0x03, 0xcb, 0x21, 0x03, 0x95, 0x34, 0x01, 0x00,
        ];
        assert_eq!(jar1(&code, &[0, 3, 6, 9, 12], 1), 58);
    }

    #[test]
    fn e2_branch_to_trap_costs_1_and_18_otherwise() {
        let code = [
            0xc8, 0x21, 0x03, 0xc8, 0x54, 0x06, 0xc8, 0x87, 0x09, 0x51, 0x01, 0x03, 0x00,
        ];
        assert_eq!(jar1(&code, &[0, 3, 6, 9, 12], 1), 1);
        // Point the branch at pc 9 + 2 = 11, which is not an instruction start.
        let mut far = code;
        far[11] = 0x02;
        assert_eq!(jar1(&far, &[0, 3, 6, 9, 12], 1), 18);
    }

    #[test]
    fn e3_load_latency_and_rename_costs_23_and_98_at_tier_4() {
        let code = [0x82, 0x21, 0x64, 0x13, 0x95, 0x34, 0x01, 0x28, 0xf9];
        assert_eq!(jar1(&code, &[0, 2, 4, 7], 1), 23);
        assert_eq!(jar1(&code, &[0, 2, 4, 7], 4), 98);
    }

    #[test]
    fn register_fields_above_12_name_r12() {
        // E3 with the load writing field 15 and the move reading field 12: the
        // same dependency as through r1, so the same price.
        let code = [0x82, 0x2F, 0x64, 0xC3, 0x95, 0x34, 0x01, 0x28, 0xf9];
        assert_eq!(jar1(&code, &[0, 2, 4, 7], 1), 23);
        // The move reading field 11 instead: no dependency on the load.
        let mut other = code;
        other[3] = 0xB3;
        assert!(jar1(&other, &[0, 2, 4, 7], 1) < 23);
    }

    #[test]
    fn e4_fixed_cost_blocks() {
        assert_eq!(jar1(&[1], &[0], 1), 1, "fallthrough");
        assert_eq!(jar1(&[2], &[0], 1), 37, "unlikely");
        assert_eq!(jar1(&[0x32, 0x00], &[0], 1), 19, "jump_ind");
        // ecalli alone models 97 cycles; the host-call floor lifts it to 100.
        let view_code = [10u8];
        let m = mask(&[0], 1);
        let view = CodeView::new(&view_code, &m);
        assert_eq!(single_pass(view, 0, BlockWalk::new(view, 0), 25).cycles, 97);
        assert_eq!(jar1(&[10], &[0], 1), HOST_CALL_FLOOR);
        assert_eq!(
            jar1(&[0x33, 0x01, 0x05, 10], &[0, 3], 1),
            HOST_CALL_FLOOR,
            "load_imm; ecalli"
        );
        assert_eq!(jar1(&[3], &[0], 1), MGMT_OP_COST, "ecall floor");
    }

    #[test]
    fn e4_load_imm_jump_ind_same_regs_costs_21() {
        // load_imm r7, 0; add_imm_64 r7, r7, -100; load_imm_jump_ind r7, r7, 0, 0
        let code = [0x33, 0x07, 0x95, 0x77, 0x9c, 0xb4, 0x77, 0x00];
        assert_eq!(jar1(&code, &[0, 2, 5], 1), 21);
    }

    #[test]
    fn implicit_trap_is_not_costed_unless_it_starts_the_block() {
        // load_imm r1, 1 running off the end: model cost of the load alone = 1.
        assert_eq!(jar1(&[0x33, 0x01, 0x01], &[0], 1), 1);
        // A block that starts at len (after a terminator) costs 1.
        let code = [1u8];
        let m = mask(&[0], 1);
        assert_eq!(
            jar1_cost(CodeView::new(&code, &m), 1, MemTier::new(1).unwrap()),
            1
        );
    }

    #[test]
    fn gp_counts_instructions_including_the_implicit_trap() {
        // store_imm_ind_u64 then off the end: 2 (the inst_store_*_nok vectors).
        let code = [73, 23, 1, 170, 153, 136, 119];
        let m = mask(&[0], code.len());
        let c = block_cost(CodeView::new(&code, &m), 0, GasSchedule::Gp);
        assert_eq!(
            c,
            BlockCost {
                cost: 2,
                reserve: 0
            }
        );
    }

    #[test]
    fn jar1_reserve_counts_stores() {
        // store_imm_u8 0x20000, 1; store_imm_u8 0x20001, 2; trap
        let code = [
            30, 3, 0x00, 0x00, 0x02, 0x01, 30, 3, 0x01, 0x00, 0x02, 0x02, 0,
        ];
        let m = mask(&[0, 6, 12], code.len());
        let c = block_cost(
            CodeView::new(&code, &m),
            0,
            GasSchedule::Jar1(MemTier::new(1).unwrap()),
        );
        assert_eq!(c.reserve, 2 * 2 * 256);
    }

    #[test]
    fn walk_stops_at_first_terminator_and_at_the_end() {
        let code = [0x33, 0x01, 0x01, 1, 0x33, 0x02, 0x02];
        let m = mask(&[0, 3, 4], code.len());
        let v = CodeView::new(&code, &m);
        let w: Vec<u32> = BlockWalk::new(v, 0).map(|(pc, _)| pc).collect();
        assert_eq!(w, vec![0, 3]);
        let w: Vec<u32> = BlockWalk::new(v, 4).map(|(pc, _)| pc).collect();
        assert_eq!(w, vec![4, 7], "runs into the implicit trap at len");
    }
}
