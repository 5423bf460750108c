//! Short encodings dynasm does not choose by itself. dynasm encodes a displacement
//! or immediate that is a run-time value (a guest offset, a block price) in 32
//! bits; most of them fit in 8. These helpers pick the short form — or a shorter
//! instruction with the same effect — where it exists, which makes the emitted code
//! about a fifth smaller (fewer bytes to emit, copy and fetch). Each helper's
//! result is checked by the golden listings (`tests/disas`), which iced-x86 decodes,
//! and by the differential suites, which reach every lowering.

#![allow(
    clippy::useless_conversion,
    reason = "dynasm! converts dynamic register operands with `.into()`"
)]

use dynasmrt::{DynasmApi, dynasm};

use super::Cg;

/// The ModRM `reg` field (opcode extension) of a group-1 operation on the gas
/// counter (`81 /n`, `83 /n`).
#[derive(Clone, Copy)]
#[repr(u8)]
pub(super) enum GasOp {
    /// `sub r15, imm`.
    Sub = 5,
    /// `cmp r15, imm`.
    Cmp = 7,
}

impl Cg<'_> {
    /// `op r15, imm` on the gas counter, which lives in R15 while compiled code
    /// runs, with an 8-bit immediate where it fits (4 bytes instead of 7).
    pub(super) fn gas_op(&mut self, op: GasOp, imm: i32) {
        // REX.W + REX.B (r15); ModRM mod = 11, reg = the group-1 operation, rm = 7.
        let modrm = 0xC0 | (op as u8) << 3 | 7;
        match i8::try_from(imm) {
            Ok(i) => self.ops.extend(&[0x49, 0x83, modrm, i as u8]),
            Err(_) => {
                self.ops.extend(&[0x49, 0x81, modrm]);
                self.ops.extend(&imm.to_le_bytes());
            }
        }
    }

    /// `dst = base + disp`, 64-bit (`wide`) or 32-bit zero-extended, as
    /// `lea dst, [base + disp]` with an 8-bit displacement where it fits, or a
    /// plain `mov` (or nothing) for a zero displacement.
    pub(super) fn lea(&mut self, wide: bool, dst: u8, base: u8, disp: i32) {
        if disp == 0 {
            match (wide, dst == base) {
                (true, true) => {}
                (true, false) => dynasm!(self.ops ; .arch x64 ; mov Rq(dst), Rq(base)),
                (false, _) => dynasm!(self.ops ; .arch x64 ; mov Rd(dst), Rd(base)),
            }
            return;
        }
        match i8::try_from(disp) {
            Ok(d) => {
                let rex = u8::from(wide) << 3 | (dst >> 3) << 2 | (base >> 3);
                if rex != 0 {
                    self.ops.push(0x40 | rex);
                }
                // ModRM mod = 01 (disp8); rm = 100 (RSP, R12) needs a SIB byte.
                self.ops.push(0x8D);
                self.ops.push(0x40 | (dst & 7) << 3 | (base & 7));
                if base & 7 == 4 {
                    self.ops.push(0x24);
                }
                self.ops.push(d as u8);
            }
            Err(_) if wide => dynasm!(self.ops ; .arch x64 ; lea Rq(dst), [Rq(base) + disp]),
            Err(_) => dynasm!(self.ops ; .arch x64 ; lea Rd(dst), [Rq(base) + disp]),
        }
    }

    /// `dst = a + b`, 64-bit (`wide`) or 32-bit zero-extended, without a
    /// displacement. `add` where `dst` is a source; otherwise `lea dst, [base +
    /// index]` encoded with no displacement byte — a two-operand `lea`, one cycle,
    /// where dynasm's form with a zero `disp8` (which it needs in case the base is
    /// RBP or R13) is a three-operand `lea`, two cycles on the AMD cores measured
    /// here. RBP and R13 go in the index slot; with both as sources, `mov` + `add`.
    pub(super) fn add_rr(&mut self, wide: bool, dst: u8, a: u8, b: u8) {
        let (base, index) = match (a & 7 == 5, b & 7 == 5) {
            _ if dst == a || dst == b => {
                let other = if dst == a { b } else { a };
                if wide {
                    dynasm!(self.ops ; .arch x64 ; add Rq(dst), Rq(other));
                } else {
                    dynasm!(self.ops ; .arch x64 ; add Rd(dst), Rd(other));
                }
                return;
            }
            (false, _) => (a, b),
            (true, false) => (b, a),
            (true, true) => {
                if wide {
                    dynasm!(self.ops ; .arch x64 ; mov Rq(dst), Rq(a) ; add Rq(dst), Rq(b));
                } else {
                    dynasm!(self.ops ; .arch x64 ; mov Rd(dst), Rd(a) ; add Rd(dst), Rd(b));
                }
                return;
            }
        };
        let rex = u8::from(wide) << 3 | (dst >> 3) << 2 | (index >> 3) << 1 | (base >> 3);
        if rex != 0 {
            self.ops.push(0x40 | rex);
        }
        // ModRM mod = 00, rm = 100 (a SIB byte follows); SIB scale 1.
        self.ops.push(0x8D);
        self.ops.push((dst & 7) << 3 | 0b100);
        self.ops.push((index & 7) << 3 | (base & 7));
    }

    /// Set the flags as `cmp reg, x` (64-bit, `x` sign-extended) does: `test` for
    /// zero (the same flags: CF and OF clear, ZF and SF from `reg`), an 8-bit
    /// immediate where it fits.
    pub(super) fn cmp_imm(&mut self, reg: u8, x: i32) {
        if x == 0 {
            dynasm!(self.ops ; .arch x64 ; test Rq(reg), Rq(reg));
            return;
        }
        match i8::try_from(x) {
            // REX.W (+ REX.B); 83 /7 ib with a register operand (mod = 11).
            Ok(i) => self
                .ops
                .extend([0x48 | (reg >> 3), 0x83, 0xF8 | (reg & 7), i as u8]),
            Err(_) => dynasm!(self.ops ; .arch x64 ; cmp Rq(reg), x),
        }
    }

    /// `reg = x` sign-extended to 64 bits: `xor` for zero, a 32-bit `mov` (which
    /// zero-extends) for a non-negative value. Either may change the flags, which
    /// no lowering keeps live from one instruction to the next.
    pub(super) fn load_imm(&mut self, reg: u8, x: i32) {
        if x == 0 {
            dynasm!(self.ops ; .arch x64 ; xor Rd(reg), Rd(reg));
        } else if x > 0 {
            dynasm!(self.ops ; .arch x64 ; mov Rd(reg), x);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov Rq(reg), x);
        }
    }
}
