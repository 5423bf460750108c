//! Store checks shared by a block's stores through one base register.
//!
//! Every compiled store checks the window's write shadow (`window.rs`) before it
//! writes. Within a basic block, stores through the same base register that no
//! instruction in between may change, at offsets less than a page apart, form a
//! *group*: the group's first store checks the shadow granules of the group's first
//! and last byte once, and the group's stores then write without further checks.
//!
//! Why that is enough: the first byte's granule must be `SHADOW_FULL`, so its page
//! is `PresentRw` and is not the top page of the address space (which is never
//! `SHADOW_FULL`); the last byte's granule must be `SHADOW_FULL` or
//! `SHADOW_IN_PAGE`, so its page is `PresentRw`. The range is at most a page long,
//! so it does not wrap past 2^32 (it starts below the top page) and lies in those
//! two pages, which holds every byte a group store writes. The last byte's granule
//! may be `SHADOW_IN_PAGE` because nothing is written past that byte: a group that
//! fills a stack frame up to the top of the stack, whose next page is read-only,
//! passes its check.
//!
//! A failed check must not run the group's later stores unchecked, so the
//! instructions a group spans (its first store to its last) also get a *checked copy*,
//! in which every store checks for itself; a failed group check continues there, at
//! the same instruction. Overlapping spans share one copy (a *cluster*), which jumps
//! back to the inline code after the cluster's last store, where no group is open.
//! Execution that resumes inside a cluster (after a fault, a store the run loop
//! performed, or `sbrk`) resumes in the copy too, so no check made before an exit is
//! trusted after it.
//!
//! The copy doubles the native code of what it spans, so a group never spans an
//! instruction whose lowering is long ([`costly`]: divisions, high multiplies,
//! rotates through RCX): such an instruction closes every open group. With it, a
//! copied instruction costs at most twice the cheap lowerings, and no input can
//! make the copies dominate the code (`tests/amplification.rs`).

use dynasmrt::{DynasmApi, dynasm};
use javm_exec::Instruction as I;
use javm_exec::{Opcode, Reg};

use super::Cg;
use super::labels::{Cc, Label};
use super::regs::{RDX, host};
use crate::window::{SHADOW_DISP, SHADOW_FULL, SHADOW_IN_PAGE};

/// Fewest stores for which a group check pays (two granule checks against one per
/// store).
const MIN_GROUP: usize = 3;
/// Largest distance between a group's first and last byte: the range then spans at
/// most two pages.
const MAX_SPAN: i64 = 4096 - 1;

/// How one store of a block is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreCheck {
    /// On its own (also every store of a checked copy).
    Own,
    /// First store of a group: checks offsets `lo` (the first byte written) and
    /// `last` (the last) of its base register for the whole group; on failure
    /// continues in the checked copy at `retry`.
    Head { lo: i32, last: i32, retry: Label },
    /// A later store of a group: no check.
    Member,
}

/// The base register, offset and width (from the ISA's access table) of a store
/// through a register, `None` for anything else.
pub(crate) fn indirect_store(ins: &I) -> Option<(Reg, i32, u32)> {
    let (base, x) = match *ins {
        I::StoreImmIndU8(o)
        | I::StoreImmIndU16(o)
        | I::StoreImmIndU32(o)
        | I::StoreImmIndU64(o) => (o.a, o.x),
        I::StoreIndU8(o) | I::StoreIndU16(o) | I::StoreIndU32(o) | I::StoreIndU64(o) => (o.b, o.x),
        _ => return None,
    };
    let width = ins.opcode().and_then(Opcode::memory_access)?.width;
    Some((base, x, width))
}

/// Whether a block has enough stores through registers for a group (a cheap scan
/// that spares most blocks the planning).
pub(crate) fn may_group(block: &[I]) -> bool {
    block
        .iter()
        .filter(|i| indirect_store(i).is_some())
        .nth(MIN_GROUP - 1)
        .is_some()
}

/// An open group: its base register, its stores (indices in the block: the first,
/// the last, and the links between them in `plan`'s `next`), how many, and the
/// offsets of the first and the last byte its stores write.
struct Open {
    base: Reg,
    first: usize,
    tail: usize,
    count: usize,
    lo: i64,
    last: i64,
}

impl Open {
    fn new(base: Reg, pos: usize, x: i32, width: u32) -> Open {
        Open {
            base,
            first: pos,
            tail: pos,
            count: 1,
            lo: i64::from(x),
            last: i64::from(x) + i64::from(width) - 1,
        }
    }
}

/// A store's part in a group, as planned (before labels exist).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Planned {
    /// Not in a group (or not a store).
    Own,
    /// First store of a group whose stores write offsets `lo..=last` of the base
    /// (`last` as a 32-bit displacement: mod 2^32, like the addresses).
    Head { lo: i32, last: i32 },
    /// A later store of a group.
    Member,
}

/// Whether an instruction's lowering is long enough that a checked copy must not
/// duplicate it (see the module documentation): a division or remainder, a high
/// multiply, or a rotate through RCX — about 10 to 34 native bytes per PVM byte,
/// against at most 7 for every other instruction a group can span.
pub(crate) fn costly(ins: &I) -> bool {
    matches!(
        ins,
        I::DivU32(_)
            | I::DivS32(_)
            | I::RemU32(_)
            | I::RemS32(_)
            | I::DivU64(_)
            | I::DivS64(_)
            | I::RemU64(_)
            | I::RemS64(_)
            | I::MulUpperSS(_)
            | I::MulUpperUU(_)
            | I::MulUpperSU(_)
            | I::RotL64(_)
            | I::RotL32(_)
            | I::RotR64(_)
            | I::RotR32(_)
            | I::RotR64ImmAlt(_)
            | I::RotR32ImmAlt(_)
    )
}

/// A block's store groups, as planned: the part of each instruction (in order), and
/// the clusters — runs `first..end` of instructions (indices in the block) covered
/// by overlapping group spans, in order, each starting at a group's first store and
/// ending after a group's last. Reused from block to block (its buffers keep their
/// capacity), with the planner's working lists.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) parts: Vec<Planned>,
    pub(crate) clusters: Vec<(usize, usize)>,
    /// The next store of the same group after each store: a list per group,
    /// linked through the block's positions.
    next: Vec<usize>,
    spans: Vec<(usize, usize)>,
    open: Vec<Open>,
}

impl Plan {
    /// Room for blocks of up to `n` instructions.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.parts.reserve(n);
        self.next.reserve(n);
    }
}

/// Plan the store groups of `block` into `plan`.
pub(crate) fn plan(block: &[I], plan: &mut Plan) {
    let Plan {
        parts: out,
        clusters,
        next,
        spans,
        open,
    } = plan;
    out.clear();
    out.resize(block.len(), Planned::Own);
    next.clear();
    next.resize(block.len(), 0);
    spans.clear();
    open.clear();
    clusters.clear();
    let mut close = |g: Open, out: &mut Vec<Planned>, next: &Vec<usize>| {
        if g.count < MIN_GROUP {
            return;
        }
        spans.push((g.first, g.tail + 1));
        // `lo` is a store's offset; `last` may exceed `i32::MAX` by up to 7, and is
        // taken mod 2^32 as the displacement of a 32-bit address computation.
        let (lo, last) = (g.lo as i32, g.last as i32);
        out[g.first] = Planned::Head { lo, last };
        let mut pos = g.first;
        while pos != g.tail {
            pos = next[pos];
            out[pos] = Planned::Member;
        }
    };
    for (pos, ins) in block.iter().enumerate() {
        if let Some((base, x, width)) = indirect_store(ins) {
            let new = Open::new(base, pos, x, width);
            match open.iter().position(|g| g.base == base) {
                Some(i) => {
                    let g = &mut open[i];
                    let (lo, last) = (g.lo.min(new.lo), g.last.max(new.last));
                    if last - lo > MAX_SPAN {
                        let g = open.swap_remove(i);
                        close(g, out, next);
                        open.push(new);
                    } else {
                        next[g.tail] = pos;
                        g.tail = pos;
                        g.count += 1;
                        (g.lo, g.last) = (lo, last);
                    }
                }
                None => open.push(new),
            }
            continue;
        }
        let costly = costly(ins);
        let mut i = 0;
        while i < open.len() {
            if costly || ins.may_write(open[i].base) {
                let g = open.swap_remove(i);
                close(g, out, next);
            } else {
                i += 1;
            }
        }
    }
    for g in open.drain(..) {
        close(g, out, next);
    }
    spans.sort_unstable();
    for &(first, end) in spans.iter() {
        match clusters.last_mut() {
            Some(c) if first < c.1 => c.1 = c.1.max(end),
            _ => clusters.push((first, end)),
        }
    }
}

impl Cg<'_> {
    /// The check of the store at instruction `idx` of the block being emitted.
    pub(crate) fn store_check(&self, idx: u32) -> StoreCheck {
        self.store_checks
            .get(idx.wrapping_sub(self.checks_first) as usize)
            .copied()
            .unwrap_or(StoreCheck::Own)
    }

    /// The group check of a head store through `base` (see the module
    /// documentation): the granule of the first byte `SHADOW_FULL` and that of the
    /// last byte `SHADOW_FULL` or `SHADOW_IN_PAGE` (at least `SHADOW_FULL`), or
    /// continue at `retry`. A group that writes one byte only needs its page.
    pub(crate) fn group_check(&mut self, base: Reg, lo: i32, last: i32, retry: Label) {
        const _: () = assert!(SHADOW_IN_PAGE > SHADOW_FULL && SHADOW_FULL > 0);
        let b = host(base);
        let checks = [(lo, Cc::Ne), (last, Cc::B)];
        for &(x, fail) in &checks[if lo == last { 1 } else { 0 }..] {
            self.lea(false, RDX, b, x);
            dynasm!(self.ops ; .arch x64
                ; shr edx, 3
                ; gs cmp BYTE [rdx + SHADOW_DISP], SHADOW_FULL as i8
            );
            self.jcc(fail, retry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use javm_exec::asm::assemble;

    fn planned(b: &[I]) -> Plan {
        let mut p = Plan::default();
        plan(b, &mut p);
        p
    }

    fn block(src: &str) -> Vec<I> {
        let p = assemble(src).unwrap().program().unwrap();
        p.instructions().to_vec()
    }

    #[test]
    fn groups_need_three_stores_through_an_unchanged_base() {
        let b = block(
            "store_ind_u64 r1, r2, 0\nstore_ind_u64 r3, r2, 16\nload_ind_u64 r4, r2, 8\n\
             store_imm_ind_u8 r2, 40, 7\nstore_ind_u64 r1, r5, 0\ntrap",
        );
        let p = planned(&b).parts;
        assert_eq!(
            p[0],
            Planned::Head { lo: 0, last: 40 },
            "with the group's range"
        );
        assert_eq!(
            (p[1], p[2], p[3]),
            (Planned::Member, Planned::Own, Planned::Member)
        );
        assert_eq!(p[4], Planned::Own, "one store through r5 checks itself");
    }

    #[test]
    fn a_write_to_the_base_or_a_wide_span_ends_a_group() {
        let b = block(
            "store_ind_u64 r1, r2, 0\nstore_ind_u64 r1, r2, 8\nadd_imm_64 r2, r2, 8\n\
             store_ind_u64 r1, r2, 0\nstore_ind_u64 r1, r2, 8\nstore_ind_u64 r1, r2, 4089\ntrap",
        );
        assert!(
            planned(&b).parts.iter().all(|p| *p == Planned::Own),
            "{:?}",
            planned(&b).parts
        );
        let b = block(
            "store_ind_u64 r1, r2, 0\nstore_ind_u64 r1, r2, 8\nload_ind_u64 r2, r3, 0\n\
             store_ind_u64 r1, r2, 16\ntrap",
        );
        assert!(
            planned(&b).parts.iter().all(|p| *p == Planned::Own),
            "a load into the base ends it"
        );
    }

    #[test]
    fn a_costly_instruction_ends_every_group() {
        let b = block(
            "store_ind_u64 r1, r2, 0\nstore_ind_u64 r1, r2, 8\ndiv_s_64 r3, r4, r5\n\
             store_ind_u64 r1, r2, 16\ntrap",
        );
        assert!(planned(&b).parts.iter().all(|p| *p == Planned::Own));
        assert!(costly(&b[2]) && !costly(&b[0]));
    }

    #[test]
    fn clusters_cover_overlapping_spans_only() {
        // Group of r2 at 0..=3, group of r3 at 2..=6 (overlapping: one cluster),
        // then a move that is in no span, then a group of r4 at 8..=10.
        let b = block(
            "store_ind_u64 r1, r2, 0\nstore_ind_u64 r1, r2, 8\nstore_ind_u64 r1, r3, 0\n\
             store_ind_u64 r1, r2, 16\nstore_ind_u64 r1, r3, 8\nadd_64 r6, r6, r6\n\
             store_ind_u64 r1, r3, 16\nmove_reg r7, r6\nstore_ind_u64 r1, r4, 0\n\
             store_ind_u64 r1, r4, 8\nstore_ind_u64 r1, r4, 16\nadd_64 r6, r6, r6\ntrap",
        );
        assert_eq!(planned(&b).clusters, vec![(0, 7), (8, 11)]);
    }
}
