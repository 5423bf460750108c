//! Long-running generated programs: loops with bounded trip counts, calls through the
//! jump table, memory walks and host calls, ending in a halt.
//!
//! The shape of [`crate::generate::spec`] mostly stops within a few blocks (a random
//! instruction faults, panics or runs out of gas early). A structured case instead
//! follows a plan that keeps its control state in registers no generated instruction
//! writes:
//!
//! | register | role |
//! |---|---|
//! | `r0` | the halt address `0xFFFF0000`; the program ends with `jump_ind r0, 0` |
//! | `r2`–`r4` | pointers to the start of mapped regions (mostly writable ones) |
//! | `r1` | the pointer a memory walk advances |
//! | `r9`, `r12` | inner and outer loop counters |
//! | `r10`, `r11` | return address and callee address of a call |
//! | `r5`–`r8` | free: every other instruction reads and writes only these |
//!
//! Main code is a list of [`Phase`]s — straight code, a counted loop (whose body may
//! call a function), a memory walk (a counted loop that loads or stores through `r1`
//! with a stride that stays inside the region), a call, or a host call — followed by
//! the halt; the functions follow it. A call is `load_imm r11, <callee>;
//! load_imm_jump_ind r10, r11, <return>, 0`, with both addresses jump-table entries,
//! and a function returns with `jump_ind r10, 0`. Every loop body starts after a
//! `fallthrough`, so its back edge targets a block start.
//!
//! The result is an ordinary [`Spec`], so the oracle, shrinking and regression files
//! treat it like any other case; most such cases run hundreds of blocks and halt.

use javm_exec::isa::Format;
use javm_exec::{GasProfile, Opcode, PageKind, Reg};
use proptest::prelude::*;
use proptest::sample::select;

use crate::generate::{
    Item, POINTERS, RegionSpec, SLOTS, Spec, TargetSpec, interesting_addresses, mapped_addresses,
    region, value_u64,
};

/// Registers generated instructions may read and write.
pub const FREE: [Reg; 4] = [Reg::R5, Reg::R6, Reg::R7, Reg::R8];
const WALK: Reg = Reg::R1;
const INNER: Reg = Reg::R9;
const OUTER: Reg = Reg::R12;
const LINK: Reg = Reg::R10;
const CALLEE: Reg = Reg::R11;

/// One piece of main code.
#[derive(Clone, Debug)]
pub enum Phase {
    /// Straight-line instructions.
    Straight(Vec<Item>),
    /// `trip` iterations of `body`, then (optionally) a call each iteration.
    Loop {
        /// Iterations (at least 1).
        trip: u32,
        /// The loop body.
        body: Vec<Item>,
        /// A function to call at the end of each iteration.
        call: Option<usize>,
    },
    /// A memory walk (see [`Walk`]).
    Walk(Walk),
    /// A call of function `n` (modulo the number of functions).
    Call(usize),
    /// `ecalli n`.
    Host(u32),
}

/// `trip` accesses through `r1`, starting at `pointer`, `stride` bytes apart.
#[derive(Clone, Debug)]
pub struct Walk {
    /// The pointer register the walk starts from.
    pub pointer: Reg,
    /// Iterations.
    pub trip: u32,
    /// Bytes between accesses.
    pub stride: i32,
    /// The access (a load or store through `r1`).
    pub access: Item,
}

/// One function: straight code and an optional memory walk, then a return.
#[derive(Clone, Debug)]
pub struct Function {
    /// Code before the walk.
    pub body: Vec<Item>,
    /// A memory walk.
    pub walk: Option<Walk>,
}

fn insn(op: Opcode, regs: [Reg; 3], imms: [i32; 2], target: u32) -> Item {
    Item::Insn {
        op,
        regs,
        imms,
        wide: 0,
        target: TargetSpec::Insn(target),
    }
}

/// Lay out main code, the halt and the functions as items and a jump table.
pub fn layout(phases: &[Phase], functions: &[Function]) -> (Vec<Item>, Vec<TargetSpec>) {
    let mut items: Vec<Item> = Vec::new();
    let mut table: Vec<TargetSpec> = Vec::new();
    // Calls whose callee address is patched once the functions are placed:
    // (index of the `load_imm r11` item, function).
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let nf = functions.len().max(1);
    let r = [Reg::R0; 3];
    let emit_call = |items: &mut Vec<Item>,
                     table: &mut Vec<TargetSpec>,
                     calls: &mut Vec<(usize, usize)>,
                     f: usize| {
        calls.push((items.len(), f % nf));
        items.push(insn(Opcode::LoadImm, [CALLEE, CALLEE, CALLEE], [0, 0], 0));
        // The return point is the item after the call, a block start.
        table.push(TargetSpec::Insn(items.len() as u32 + 1));
        let ret = 2 * table.len() as i32;
        items.push(insn(
            Opcode::LoadImmJumpInd,
            [LINK, CALLEE, LINK],
            [ret, 0],
            0,
        ));
    };
    let emit_loop =
        |items: &mut Vec<Item>, counter: Reg, trip: u32, body: &mut dyn FnMut(&mut Vec<Item>)| {
            items.push(insn(
                Opcode::LoadImm,
                [counter; 3],
                [trip.max(1) as i32, 0],
                0,
            ));
            items.push(insn(Opcode::Fallthrough, r, [0, 0], 0));
            let start = items.len() as u32;
            body(items);
            items.push(insn(Opcode::AddImm64, [counter; 3], [-1, 0], 0));
            items.push(insn(Opcode::BranchNeImm, [counter; 3], [0, 0], start));
        };
    let emit_walk = |items: &mut Vec<Item>, w: &Walk| {
        items.push(insn(
            Opcode::MoveReg,
            [w.pointer, w.pointer, WALK],
            [0, 0],
            0,
        ));
        emit_loop(items, INNER, w.trip, &mut |items| {
            items.push(w.access.clone());
            items.push(insn(Opcode::AddImm64, [WALK; 3], [w.stride, 0], 0));
        });
    };

    for p in phases {
        match p {
            Phase::Straight(v) => items.extend(v.iter().cloned()),
            Phase::Loop { trip, body, call } => {
                emit_loop(&mut items, OUTER, *trip, &mut |items| {
                    items.extend(body.iter().cloned());
                    if let Some(f) = call {
                        emit_call(items, &mut table, &mut calls, *f);
                    }
                });
            }
            Phase::Walk(w) => emit_walk(&mut items, w),
            Phase::Call(f) => emit_call(&mut items, &mut table, &mut calls, *f),
            Phase::Host(n) => items.push(insn(Opcode::Ecalli, r, [*n as i32, 0], 0)),
        }
    }
    items.push(insn(Opcode::JumpInd, r, [0, 0], 0));
    let mut entries = Vec::new();
    for f in functions {
        table.push(TargetSpec::Insn(items.len() as u32));
        entries.push(2 * table.len() as i32);
        items.extend(f.body.iter().cloned());
        if let Some(w) = &f.walk {
            emit_walk(&mut items, w);
        }
        items.push(insn(Opcode::JumpInd, [LINK; 3], [0, 0], 0));
    }
    for (at, f) in calls {
        if let (Some(Item::Insn { imms, .. }), Some(&addr)) = (items.get_mut(at), entries.get(f)) {
            imms[0] = addr;
        }
    }
    (items, table)
}

/// Opcodes that neither end a block, access memory, nor depend on the profile.
fn compute_ops() -> Vec<Opcode> {
    Opcode::ALL
        .into_iter()
        .filter(|o| !o.is_terminator() && o.memory_access().is_none() && *o != Opcode::Sbrk)
        .collect()
}

/// Loads and stores through a base register (`load_ind_*`, `store_ind_*`,
/// `store_imm_ind_*`).
fn indirect_memory_ops() -> Vec<Opcode> {
    Opcode::ALL
        .into_iter()
        .filter(|o| {
            o.memory_access().is_some()
                && matches!(o.format(), Format::RegRegImm | Format::RegImmImm)
        })
        .collect()
}

/// An access of kind `op` at `base + offset`, with a free register as the value.
fn access(op: Opcode, value: Reg, base: Reg, offset: i32, imm: i32) -> Item {
    let (regs, imms) = match op.format() {
        Format::RegImmImm => ([base, value, value], [offset, imm]),
        _ => ([value, base, value], [offset, imm]),
    };
    insn(op, regs, imms, 0)
}

fn free() -> impl Strategy<Value = Reg> {
    select(FREE.to_vec())
}

/// A non-terminator that reads and writes only free registers, or a load or store
/// near the start of a pointer register's region.
fn safe_item(mapped: Vec<u32>) -> impl Strategy<Value = Item> {
    let imm = prop_oneof![
        3 => select(crate::generate::EDGE_I32),
        3 => -64i32..64,
        1 => any::<i32>(),
    ];
    prop_oneof![
        4 => (select(compute_ops()), [free(), free(), free()], [imm.clone(), imm.clone()], value_u64(mapped))
            .prop_map(|(op, regs, imms, wide)| Item::Insn { op, regs, imms, wide, target: TargetSpec::Insn(0) }),
        2 => (select(indirect_memory_ops()), free(), select(POINTERS.to_vec()), 0i32..64, imm)
            .prop_map(|(op, v, p, off, x)| access(op, v, p, off, x)),
    ]
}

fn walk(pages: u32) -> impl Strategy<Value = Walk> {
    (
        select(POINTERS.to_vec()),
        select(vec![1i32, 2, 4, 8, 8, 16, 64]),
        1u32..=64,
        select(indirect_memory_ops()),
        free(),
        any::<i32>(),
    )
        .prop_map(move |(pointer, stride, trip, op, v, x)| {
            // Stay inside the smallest region a pointer may point at (8 bytes for
            // the widest access).
            let room = (pages * 4096 - 8) / stride as u32;
            Walk {
                pointer,
                trip: trip.min(room.max(1)),
                stride,
                access: access(op, v, WALK, 0, x),
            }
        })
}

fn phase(mapped: Vec<u32>) -> impl Strategy<Value = Phase> {
    let body = proptest::collection::vec(safe_item(mapped.clone()), 1..8);
    prop_oneof![
        2 => proptest::collection::vec(safe_item(mapped.clone()), 1..10).prop_map(Phase::Straight),
        5 => (2u32..100, body, proptest::option::weighted(0.5, 0usize..4))
            .prop_map(|(trip, body, call)| Phase::Loop { trip, body, call }),
        2 => walk(1).prop_map(Phase::Walk),
        1 => (0usize..4).prop_map(Phase::Call),
        1 => (0u32..4).prop_map(Phase::Host),
    ]
}

fn function(mapped: Vec<u32>) -> impl Strategy<Value = Function> {
    (
        proptest::collection::vec(safe_item(mapped), 1..8),
        proptest::option::weighted(0.4, walk(1)),
    )
        .prop_map(|(body, walk)| Function { body, walk })
}

/// Gas budgets: most run to the halt, some stop on the way.
fn gas() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => 0i64..20_000,
        9 => 200_000i64..5_000_000,
    ]
}

/// Structured test cases (see the module docs) under `profile`.
pub fn structured_spec(profile: impl Strategy<Value = GasProfile>) -> impl Strategy<Value = Spec> {
    // The first region is writable and never dropped (it is laid out first).
    let first = (
        select(SLOTS[1..7].to_vec()),
        select(vec![PageKind::EphemeralZero, PageKind::UnpinnedCapCow]),
        any::<u8>(),
    )
        .prop_map(|(start, kind, fill)| RegionSpec {
            start,
            pages: 1,
            kind,
            fill,
        });
    (profile, first, proptest::collection::vec(region(), 0..4))
        .prop_flat_map(|(profile, first, rest)| {
            // Drop regions that overlap an earlier one here, so that every pointer
            // points into a region of the layout.
            let mut regions = vec![first];
            for r in rest {
                let end = |r: &RegionSpec| u64::from(r.start) + u64::from(r.pages) * 4096;
                if regions
                    .iter()
                    .all(|q| end(&r) <= u64::from(q.start) || u64::from(r.start) >= end(q))
                {
                    regions.push(r);
                }
            }
            let mapped = mapped_addresses(&regions);
            let writable: Vec<u32> = regions
                .iter()
                .filter(|r| r.kind != PageKind::PinnedCapRo)
                .map(|r| r.start)
                .collect();
            let starts: Vec<u32> = regions.iter().map(|r| r.start).collect();
            let pointer = prop_oneof![
                12 => select(writable),
                1 => select(starts),
                1 => select(interesting_addresses()),
            ];
            (
                Just(profile),
                gas(),
                proptest::array::uniform13(value_u64(mapped.clone())),
                [pointer.clone(), pointer.clone(), pointer],
                Just(regions),
                proptest::collection::vec(phase(mapped.clone()), 3..9),
                proptest::collection::vec(function(mapped), 1..4),
                any::<u64>(),
            )
        })
        .prop_map(
            |(profile, gas, mut regs, pointers, regions, phases, functions, host_seed)| {
                regs[0] = 0xFFFF_0000;
                for (p, a) in POINTERS.iter().zip(pointers) {
                    regs[p.index()] = u64::from(a);
                }
                let (items, jump_table) = layout(&phases, &functions);
                Spec {
                    profile,
                    gas,
                    regs,
                    heap_top: u64::from(regions[0].start),
                    regions,
                    items,
                    jump_table,
                    host_seed,
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use javm_exec::Exit;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    /// With ample gas, structured programs mostly halt after many blocks: checked on
    /// the interpreter, block by block.
    #[test]
    fn structured_programs_run_long_and_halt() {
        let mut runner = TestRunner::deterministic();
        let engine = javm_exec::Interpreter::new();
        let (mut long_halts, n) = (0, 200);
        for _ in 0..n {
            let mut s = structured_spec(Just(GasProfile::Jar1))
                .new_tree(&mut runner)
                .unwrap()
                .current();
            s.gas = 10_000_000;
            let t = crate::oracle::compare(&engine, &engine, &(&s).into())
                .unwrap_or_else(|d| panic!("{d}\n{}", s.source()));
            if t.blocks >= 100 && t.exits.last() == Some(&Exit::Halt) {
                long_halts += 1;
            }
        }
        assert!(
            long_halts * 2 > n,
            "{long_halts} of {n} ran 100+ blocks and halted"
        );
    }
}
