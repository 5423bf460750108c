//! Fusions: short runs of ALU instructions lowered as one sequence.
//!
//! Which runs fuse is decided by `javm_exec::fuse::find`, the rule the interpreter
//! uses too (it executes each run with one dispatch); this module only lowers them.
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
use javm_exec::Reg;
pub(crate) use javm_exec::fuse::{Fused, Shift, find};

use super::Cg;
use super::enc::GuestMem;
use super::lower::Fixup;
use super::regs::host;

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
                let last = idx + f.instructions() as u32 - 1;
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
