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
use super::buf::CodeBuf;

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

/// A guest memory operand, `gs:[base32 + disp]` or `gs:[disp32]`, always with
/// the 32-bit address size (prefix `67`): the processor computes the effective
/// address modulo 2^32 and zero-extends it before adding the GS base, so a guest
/// address needs no separate truncating `lea` and the upper half of the base
/// register is ignored, exactly as PVM addressing wraps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuestMem {
    /// Host register holding the guest base, or `None` for a fixed address.
    pub(crate) base: Option<u8>,
    /// Host register added to the base, if any; never RSP. Only with a base.
    pub(crate) index: Option<u8>,
    /// The index is multiplied by `1 << scale` (0..=3).
    pub(crate) scale: u8,
    /// Displacement (the whole address without a base), taken modulo 2^32.
    pub(crate) disp: i32,
}

/// The encoding of one instruction with a [`GuestMem`] operand.
#[derive(Clone, Copy, Debug)]
pub(super) struct MemOp {
    /// Operand-size prefix `66` (16-bit operand).
    pub(super) op16: bool,
    /// REX.W (64-bit operand).
    pub(super) wide: bool,
    /// The `reg` operand is an 8-bit register: SPL, BPL, SIL and DIL need a REX
    /// prefix (without one, 4–7 name AH, CH, DH and BH).
    pub(super) byte_reg: bool,
    /// Opcode bytes (after any prefix).
    pub(super) opcode: &'static [u8],
}

/// Where [`gs_mem`] writes: the code generator's buffer, or a plain vector in
/// tests.
pub(super) trait Sink {
    fn put(&mut self, b: u8);
    fn put_all(&mut self, bs: &[u8]);
}

impl Sink for CodeBuf {
    #[inline]
    fn put(&mut self, b: u8) {
        self.push(b);
    }

    #[inline]
    fn put_all(&mut self, bs: &[u8]) {
        self.extend(bs);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: u8) {
        self.push(b);
    }

    fn put_all(&mut self, bs: &[u8]) {
        self.extend_from_slice(bs);
    }
}

/// Emit `op` with the ModRM `reg` field `reg` (a register, or an opcode
/// extension), the guest memory operand `m` and the immediate bytes `imm` (empty
/// if the instruction has none) into `e`. Displacements take 8 bits where they fit; the
/// fixed-address form is the SIB no-base form (mod 00, rm 100, base 101), since
/// mod 00 rm 101 would be relative to the instruction pointer.
#[inline]
pub(super) fn gs_mem(e: &mut impl Sink, op: MemOp, reg: u8, m: GuestMem, imm: &[u8]) {
    e.put(0x65);
    if op.op16 {
        e.put(0x66);
    }
    e.put(0x67);
    let b = m.base.unwrap_or(0);
    let x = m.index.unwrap_or(0);
    let rex = u8::from(op.wide) << 3 | (reg >> 3) << 2 | (x >> 3) << 1 | (b >> 3);
    if rex != 0 || (op.byte_reg && (4..8).contains(&reg)) {
        e.put(0x40 | rex);
    }
    // One or two opcode bytes, and below at most four immediate bytes: put one by
    // one, since a slice append of a length unknown here calls `memcpy`.
    for &b in op.opcode {
        e.put(b);
    }
    let r = (reg & 7) << 3;
    match m.base {
        None => {
            e.put_all(&[r | 0b100, 0x25]);
            e.put_all(&m.disp.to_le_bytes());
        }
        Some(b) => {
            // mod 00 with rm 101 (RBP, R13) would mean no base: they take a zero disp8.
            let short = i8::try_from(m.disp).ok();
            let mode = match short {
                Some(0) if b & 7 != 5 => 0x00,
                Some(_) => 0x40,
                None => 0x80,
            };
            match m.index {
                Some(i) => {
                    // rm 100: a SIB byte: the scale, the index, the base.
                    e.put(mode | r | 0b100);
                    e.put((m.scale & 3) << 6 | (i & 7) << 3 | (b & 7));
                }
                None => {
                    e.put(mode | r | (b & 7));
                    if b & 7 == 4 {
                        // RSP, R12: a SIB byte with no index.
                        e.put(0x24);
                    }
                }
            }
            match (mode, short) {
                (0x40, Some(d)) => e.put(d as u8),
                (0x80, _) => e.put_all(&m.disp.to_le_bytes()),
                _ => {}
            }
        }
    }
    for &b in imm {
        e.put(b);
    }
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

#[cfg(all(test, feature = "disasm"))]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, MemorySize, OpKind, Register as R};

    const R64: [R; 16] = [
        R::RAX,
        R::RCX,
        R::RDX,
        R::RBX,
        R::RSP,
        R::RBP,
        R::RSI,
        R::RDI,
        R::R8,
        R::R9,
        R::R10,
        R::R11,
        R::R12,
        R::R13,
        R::R14,
        R::R15,
    ];
    const R32: [R; 16] = [
        R::EAX,
        R::ECX,
        R::EDX,
        R::EBX,
        R::ESP,
        R::EBP,
        R::ESI,
        R::EDI,
        R::R8D,
        R::R9D,
        R::R10D,
        R::R11D,
        R::R12D,
        R::R13D,
        R::R14D,
        R::R15D,
    ];
    // With a REX prefix, 4–7 are SPL…DIL, never AH…BH.
    const R8: [R; 16] = [
        R::AL,
        R::CL,
        R::DL,
        R::BL,
        R::SPL,
        R::BPL,
        R::SIL,
        R::DIL,
        R::R8L,
        R::R9L,
        R::R10L,
        R::R11L,
        R::R12L,
        R::R13L,
        R::R14L,
        R::R15L,
    ];

    /// Every base register (and none), displacement class and register of the
    /// operand shapes the lowerings use decodes, with iced-x86, to exactly the
    /// instruction asked for: GS, the 32-bit address size, the base as a 32-bit
    /// register, the displacement, the operand size, the register and the immediate.
    #[test]
    fn every_guest_memory_operand_decodes_as_asked() {
        let op = |op16, wide, byte_reg, opcode| MemOp {
            op16,
            wide,
            byte_reg,
            opcode,
        };
        // (operation, memory size, register file of the `reg` operand or None for an
        // immediate of that many bytes)
        type Shape = (MemOp, MemorySize, Option<&'static [R; 16]>, &'static [u8]);
        let shapes: [Shape; 6] = [
            (
                op(false, true, false, &[0x8B]),
                MemorySize::UInt64,
                Some(&R64),
                &[],
            ),
            (
                op(false, false, false, &[0x0F, 0xB6]),
                MemorySize::UInt8,
                Some(&R32),
                &[],
            ),
            (
                op(false, true, false, &[0x63]),
                MemorySize::Int32,
                Some(&R64),
                &[],
            ),
            (
                op(false, false, true, &[0x88]),
                MemorySize::UInt8,
                Some(&R8),
                &[],
            ),
            (
                op(true, false, false, &[0xC7]),
                MemorySize::UInt16,
                None,
                &[0x34, 0x12],
            ),
            (
                op(false, true, false, &[0xC7]),
                MemorySize::UInt64,
                None,
                &[0x78, 0x56, 0x34, 0x92],
            ),
        ];
        let disps = [0, 1, -1, 127, -128, 128, -129, 0x7FFF_FFFF, i32::MIN];
        let mut bases: Vec<Option<u8>> = (0..16).map(Some).collect();
        bases.push(None);
        for (op, size, regs, imm) in shapes {
            for &base in &bases {
                for &disp in &disps {
                    for reg in 0..16u8 {
                        let reg = if regs.is_some() { reg } else { 0 };
                        let index = base.and_then(|b| (reg != 4 && b != 15).then_some(reg ^ b));
                        let index = index.filter(|&i| i != 4 && reg % 3 == 0);
                        let scale = (reg / 3) & 3;
                        let mut e = Vec::new();
                        gs_mem(
                            &mut e,
                            op,
                            reg,
                            GuestMem {
                                base,
                                index,
                                scale,
                                disp,
                            },
                            imm,
                        );
                        let what =
                            format!("{op:?} base {base:?} index {index:?} disp {disp} reg {reg}");
                        let i = Decoder::new(64, e.as_slice(), DecoderOptions::NONE).decode();
                        assert!(!i.is_invalid(), "{what}: invalid");
                        assert_eq!(i.len(), e.as_slice().len(), "{what}: length");
                        assert_eq!(i.segment_prefix(), R::GS, "{what}");
                        let want_base = base.map_or(R::None, |b| R32[usize::from(b)]);
                        assert_eq!(i.memory_base(), want_base, "{what}: base");
                        let want_index = index.map_or(R::None, |x| R32[usize::from(x)]);
                        assert_eq!(i.memory_index(), want_index, "{what}: index");
                        let want_scale = if index.is_some() { 1 << scale } else { 1 };
                        assert_eq!(i.memory_index_scale(), want_scale, "{what}: scale");
                        assert_eq!(i.memory_displacement32(), disp as u32, "{what}: disp");
                        assert_eq!(i.memory_size(), size, "{what}: size");
                        let mem = (0..i.op_count()).position(|k| i.op_kind(k) == OpKind::Memory);
                        let other = if mem == Some(0) { 1 } else { 0 };
                        match regs {
                            Some(file) => {
                                assert_eq!(i.op_register(other), file[usize::from(reg)], "{what}")
                            }
                            None => {
                                let mut want = [0u8; 8];
                                want[..imm.len()].copy_from_slice(imm);
                                let mut want = u64::from_le_bytes(want);
                                if imm.len() == 4 && size == MemorySize::UInt64 {
                                    want = want as u32 as i32 as i64 as u64;
                                }
                                assert_eq!(i.immediate(other), want, "{what}: immediate");
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}
