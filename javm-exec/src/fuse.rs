//! Idioms both engines execute as one step: short runs of instructions inside a
//! block that compilers emit for one operation.
//!
//! Compilers targeting the PVM write a 64-bit rotate as two shifts and an `or`, a
//! zero-extended, scaled 32-bit index as a shift left by 32 and a shift right, and
//! an indexed load as an `add_64` whose sum only addresses the next load. [`find`]
//! recognizes them; the recompiler lowers a run as one host sequence
//! (`javm-jit-x86`, `codegen/fuse.rs`), the interpreter executes it with one
//! dispatch (`interp/op.rs`).
//!
//! Every register an instruction of the run writes keeps exactly the value it would
//! have had. Only pure ALU instructions are fused, so nothing inside a run can fault
//! or exit — except a folded load, the run's last instruction, which sees the state
//! after the instructions before it. Execution can still *start* inside a run (a
//! host's `set_pc`, stepping, a resume after a fault); each engine keeps the run's
//! later instructions executable on their own for that.

use crate::instruction::Instruction as I;
use crate::isa::{AccessKind, MemAccess, Opcode, Reg};

/// How a load extends its value: its width and signedness, from the ISA table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs, reason = "the load opcodes' suffixes")]
pub enum Load {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
}

impl Load {
    /// The kind of a load, from the ISA table's width and extension; `None` for a
    /// store.
    pub fn of(access: MemAccess) -> Option<Load> {
        use AccessKind::{LoadSigned as S, LoadUnsigned as U};
        Some(match (access.width, access.kind) {
            (1, U) => Load::U8,
            (1, S) => Load::I8,
            (2, U) => Load::U16,
            (2, S) => Load::I16,
            (4, U) => Load::U32,
            (4, S) => Load::I32,
            (8, U | S) => Load::U64,
            _ => return None,
        })
    }
}

/// The load `ins` as `(destination, base register (none for a fixed address),
/// offset, kind)`; its width and extension come from the ISA table.
pub fn load_operands(ins: &I) -> Option<(Reg, Option<Reg>, i32, Load)> {
    let kind = Load::of(ins.opcode().and_then(Opcode::memory_access)?)?;
    match *ins {
        I::LoadU8(o)
        | I::LoadI8(o)
        | I::LoadU16(o)
        | I::LoadI16(o)
        | I::LoadU32(o)
        | I::LoadI32(o)
        | I::LoadU64(o) => Some((o.a, None, o.x, kind)),
        I::LoadIndU8(o)
        | I::LoadIndI8(o)
        | I::LoadIndU16(o)
        | I::LoadIndI16(o)
        | I::LoadIndU32(o)
        | I::LoadIndI32(o)
        | I::LoadIndU64(o) => Some((o.a, Some(o.b), o.x, kind)),
        _ => None,
    }
}

/// The indirect load `ins` as `(destination, base, offset, kind)`.
pub fn indirect_load(ins: &I) -> Option<(Reg, Reg, i32, Load)> {
    let (dst, base, x, kind) = load_operands(ins)?;
    Some((dst, base?, x, kind))
}

/// A shift by a constant, as one instruction of a run computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    /// The register written.
    pub dst: Reg,
    /// Left (`shlo_l_imm_64`) or logical right (`shlo_r_imm_64`).
    pub left: bool,
    /// The amount, 1..=63.
    pub amount: u8,
}

/// A fusible run at the start of a block's remaining instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "the fields name the run's registers as its variant's text does"
)]
pub enum Fused {
    /// `d = rotr(x, n)` from `x >> n` and `x << (64 − n)` (in either order) combined
    /// by `or`, `xor` or `add_64` (the bits do not overlap): three instructions. The
    /// shift results not overwritten by `d` are kept.
    Rotate {
        x: Reg,
        d: Reg,
        n: u8,
        shifts: [Shift; 2],
    },
    /// `d = (s << 32) >> k` (logical, `k` in 1..=63): `shlo_l_imm_64 d, s, 32;
    /// shlo_r_imm_64 d, d, k`, two instructions — the zero extension of the low half
    /// of `s`, shifted left by `32 − k` or right by `k − 32`.
    ZeroExtend { s: Reg, d: Reg, k: u8 },
    /// `add_64 d, a, b; load_ind d, d, x`: one load from `a + b + x` (a base and an
    /// index register, the 32-bit address size); the sum is dead, since the load
    /// overwrites it. If the load exits (a fault, or an access the run loop
    /// performs), the fault handler first sets `d = a + b` (the side table's
    /// `fixup`), so the state is the one after the `add_64`.
    ///
    /// With `zext`, the run is four instructions, an array index: `shlo_l_imm_64
    /// d, b, 32; shlo_r_imm_64 d, d, 32 − scale; add_64 d, a, d` (or `d, d, a`);
    /// `load_ind d, d, x` — one load from `a + (b mod 2^32) · 2^scale + x`, the
    /// index register scaled in the address (`scale` 0..=3, `a` not `d`), and the
    /// fix-up `d = a + (zext32(b) << scale)`.
    AddLoad {
        d: Reg,
        a: Reg,
        b: Reg,
        x: i32,
        kind: Load,
        zext: Option<u8>,
    },
}

impl Fused {
    /// Instructions the run covers.
    pub fn instructions(&self) -> usize {
        match self {
            Fused::Rotate { .. } => 3,
            Fused::ZeroExtend { .. } | Fused::AddLoad { zext: None, .. } => 2,
            Fused::AddLoad { zext: Some(_), .. } => 4,
        }
    }
}

/// The shift instruction `ins` as `(dst, src, shift)`, for a non-zero amount.
fn shift(ins: &I) -> Option<(Reg, Shift)> {
    let (o, left) = match *ins {
        I::ShloLImm64(o) => (o, true),
        I::ShloRImm64(o) => (o, false),
        _ => return None,
    };
    let amount = (o.x & 63) as u8;
    (amount != 0).then_some((
        o.b,
        Shift {
            dst: o.a,
            left,
            amount,
        },
    ))
}

/// The four-instruction [`Fused::AddLoad`] (`zext`) that `ins` starts with, if any.
fn scaled_load(ins: &[I]) -> Option<Fused> {
    let [
        I::ShloLImm64(l),
        I::ShloRImm64(r),
        I::Add64(add),
        ref load,
        ..,
    ] = *ins
    else {
        return None;
    };
    let d = l.a;
    let (dst, base, x, kind) = indirect_load(load)?;
    let a = match (add.a == d, add.b == d) {
        (true, false) => add.b,
        (false, true) => add.a,
        _ => return None,
    };
    // The net shift left, 0..=3, of a right shift by 29..=32.
    let scale = 32u8.checked_sub((r.x & 63) as u8).filter(|&s| s <= 3)?;
    let fits = l.x & 63 == 32 && r.a == d && r.b == d;
    (fits && add.d == d && dst == d && base == d).then_some(Fused::AddLoad {
        d,
        a,
        b: l.b,
        x,
        kind,
        zext: Some(scale),
    })
}

/// The fusible run `ins` starts with, if any.
///
/// Every run starts with a 64-bit shift by an immediate or an `add_64`; for any
/// other first instruction (most of them) this is a few instructions inline,
/// without the call that saves and restores six registers.
#[inline]
pub fn find(ins: &[I]) -> Option<Fused> {
    match ins.first()? {
        I::ShloLImm64(_) | I::ShloRImm64(_) | I::Add64(_) => find_run(ins),
        _ => None,
    }
}

/// [`find`] past its first check.
#[inline(never)]
fn find_run(ins: &[I]) -> Option<Fused> {
    let (first, second) = (ins.first()?, ins.get(1)?);
    if let Some(f) = scaled_load(ins) {
        return Some(f);
    }
    if let I::Add64(o) = *first
        && let Some((dst, base, x, kind)) = indirect_load(second)
        && dst == o.d
        && base == o.d
    {
        return Some(Fused::AddLoad {
            d: o.d,
            a: o.a,
            b: o.b,
            x,
            kind,
            zext: None,
        });
    }
    let (x, s1) = shift(first)?;
    let (x2, s2) = shift(second)?;
    if let Some(third) = ins.get(2)
        && let I::Or(o) | I::Xor(o) | I::Add64(o) = *third
        && x2 == x
        // The first result must not feed the second shift, nor be overwritten by it.
        && s1.dst != x
        && s2.dst != s1.dst
        && s1.left != s2.left
        && u32::from(s1.amount) + u32::from(s2.amount) == 64
        && ((o.a == s1.dst && o.b == s2.dst) || (o.a == s2.dst && o.b == s1.dst))
    {
        let n = if s1.left { s2.amount } else { s1.amount };
        return Some(Fused::Rotate {
            x,
            d: o.d,
            n,
            shifts: [s1, s2],
        });
    }
    if s1.left && s1.amount == 32 && !s2.left && x2 == s1.dst && s2.dst == s1.dst {
        return Some(Fused::ZeroExtend {
            s: x,
            d: s1.dst,
            k: s2.amount,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn block(src: &str) -> Vec<I> {
        let p = assemble(&format!("{src}\ntrap"))
            .unwrap()
            .program()
            .unwrap();
        p.instructions().to_vec()
    }

    fn r(i: usize) -> Reg {
        Reg::ALL[i]
    }

    #[test]
    fn finds_rotates_in_either_order_with_any_combining_op() {
        for (src, d, n) in [
            (
                "shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r6",
                6,
                63,
            ),
            (
                "shlo_l_imm_64 r0, r5, 8\nshlo_r_imm_64 r6, r5, 56\nxor r7, r6, r0",
                7,
                56,
            ),
            (
                "shlo_r_imm_64 r5, r12, 28\nshlo_l_imm_64 r12, r12, 36\nadd_64 r12, r12, r5",
                12,
                28,
            ),
        ] {
            match find(&block(src)) {
                Some(Fused::Rotate { d: got, n: m, .. }) => {
                    assert_eq!((got, m), (r(d), n), "{src}");
                }
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_what_is_not_a_rotate() {
        for src in [
            // The first result feeds the second shift.
            "shlo_r_imm_64 r5, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r5",
            // The second shift overwrites the first result.
            "shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r6, r5, 1\nor r6, r6, r6",
            // Amounts that do not add up to 64.
            "shlo_r_imm_64 r6, r5, 60\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r6",
            // Two shifts of the same direction.
            "shlo_l_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r6",
            // Different sources.
            "shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r4, 1\nor r6, r0, r6",
            // Combined with something else.
            "shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r7",
            "shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nand r6, r0, r6",
        ] {
            assert!(
                !matches!(find(&block(src)), Some(Fused::Rotate { .. })),
                "{src}"
            );
        }
    }

    #[test]
    fn finds_zero_extensions_only_in_place() {
        assert_eq!(
            find(&block("shlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r6, r6, 30")),
            Some(Fused::ZeroExtend {
                s: r(4),
                d: r(6),
                k: 30
            })
        );
        for src in [
            "shlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r7, r6, 30",
            "shlo_l_imm_64 r6, r4, 31\nshlo_r_imm_64 r6, r6, 30",
            "shlo_l_imm_64 r6, r4, 32\nshlo_l_imm_64 r6, r6, 2",
            "shlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r6, r6, 64",
        ] {
            assert_eq!(find(&block(src)), None, "{src}");
        }
    }
}
