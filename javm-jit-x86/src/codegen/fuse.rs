//! Fusions: short runs of ALU instructions lowered as one sequence.
//!
//! Compilers targeting the PVM write a 64-bit rotate as two shifts and an `or`, and
//! a zero-extended, scaled 32-bit index as a shift left by 32 and a shift right. Each
//! instruction lowered alone costs two host instructions per shift (`mov` + shift)
//! and one or two for the `or`; fused, a rotate is one `rorx` plus whatever shift
//! results the guest can still see, and the zero extension is one 32-bit `mov`.
//!
//! An `add_64` whose sum only addresses the next instruction's load, which
//! overwrites it, folds into that load's address (`[a + b + x]`).
//!
//! Every register an instruction of the run writes keeps exactly the value it would
//! have had: the fused code computes each shift result that the run's last
//! instruction does not overwrite. Only pure ALU instructions are fused, so nothing
//! inside a run can fault or exit — except a folded load, the run's last
//! instruction, whose fault-handler entry names the sum's register: an exit there
//! (never a retry) first performs the `add_64` on the interrupted registers. Execution can still *start* inside a run (a
//! host's `set_pc`, stepping), so each run's later instructions are also lowered
//! one by one in a cold *tail copy*, which their resume offsets point to and which
//! jumps back after the run (`codegen::compile`). A run that lies in the part of a
//! block its store groups' checked copy covers (`stores.rs`) needs no tail: resumes
//! there enter the checked copy, which lowers every instruction on its own.

use dynasmrt::{DynasmApi, dynasm};
use javm_exec::Instruction as I;
use javm_exec::Reg;

use super::Cg;
use super::enc::GuestMem;
use super::lower::{Fixup, Load, indirect_load};
use super::regs::host;

/// A shift by a constant, as one instruction of a run computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shift {
    /// The register written.
    pub(crate) dst: Reg,
    /// Left (`shlo_l_imm_64`) or logical right (`shlo_r_imm_64`).
    pub(crate) left: bool,
    /// The amount, 1..=63.
    pub(crate) amount: u8,
}

/// A fusible run at the start of a block's remaining instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fused {
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
    pub(crate) fn len(&self) -> usize {
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
pub(crate) fn find(ins: &[I]) -> Option<Fused> {
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

impl Cg<'_> {
    /// Emit the fused lowering of `f`, a run starting at instruction `idx`.
    pub(super) fn emit_fused(&mut self, f: Fused, idx: u32) {
        match f {
            Fused::AddLoad {
                d,
                a,
                b,
                x,
                kind,
                zext,
            } => {
                let m = GuestMem {
                    base: Some(host(a)),
                    index: Some(host(b)),
                    scale: zext.unwrap_or(0),
                    disp: x,
                };
                let fixup = Fixup {
                    reg: host(d),
                    zext_index: zext.is_some(),
                };
                let last = idx + f.len() as u32 - 1;
                self.load(last, d, m, kind, Some(fixup));
            }
            Fused::Rotate { x, d, n, shifts } => {
                // Kept shift results that are not `x` first (they read `x`), then the
                // rotate (into `d`, which is none of them), then a kept result that
                // is `x` itself, shifted in place.
                let kept = shifts.iter().filter(|s| s.dst != d);
                for s in kept.clone().filter(|s| s.dst != x) {
                    self.shift_from(*s, x);
                }
                let (hd, hx) = (host(d), host(x));
                dynasm!(self.ops ; .arch x64 ; rorx Rq(hd), Rq(hx), n as i8);
                for s in kept.filter(|s| s.dst == x) {
                    self.shift_from(*s, x);
                }
            }
            Fused::ZeroExtend { s, d, k } => {
                let (hd, hs) = (host(d), host(s));
                dynasm!(self.ops ; .arch x64 ; mov Rd(hd), Rd(hs));
                match k {
                    32 => {}
                    1..32 => dynasm!(self.ops ; .arch x64 ; shl Rq(hd), (32 - k) as i8),
                    _ => dynasm!(self.ops ; .arch x64 ; shr Rd(hd), (k - 32) as i8),
                }
            }
        }
    }

    /// `s.dst = x shifted by s` (`x` read before `s.dst` is written).
    fn shift_from(&mut self, s: Shift, x: Reg) {
        let (hd, hx) = (host(s.dst), host(x));
        if hd != hx {
            dynasm!(self.ops ; .arch x64 ; mov Rq(hd), Rq(hx));
        }
        if s.left {
            dynasm!(self.ops ; .arch x64 ; shl Rq(hd), s.amount as i8);
        } else {
            dynasm!(self.ops ; .arch x64 ; shr Rq(hd), s.amount as i8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use javm_exec::asm::assemble;

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
