//! One lowering per instruction variant. Conventions (see `regs.rs`): guest
//! registers are pinned, RDX is scratch, memory is addressed through GS (the guest
//! base) with the 32-bit address size (`enc.rs`, [`GuestMem`]), R15 holds the gas
//! counter. Every sequence reads all its sources before it
//! writes its destination, so any aliasing of `d`, `a` and `b` is correct.

use dynasmrt::{DynasmApi, dynasm};
use javm_exec::Instruction as I;
use javm_exec::Reg;

use super::enc::{GuestMem, MemOp, gs_mem};
use super::labels::Cc;
use super::narrow;
use super::regs::{RDX, host};
use super::stores::StoreCheck;
use super::{Cg, StoreAddr};
use crate::ctx::{ExitKind, off};
use crate::signal::{NO_BASE, SideEntry};
use crate::window::{SHADOW_DISP, SHADOW_FULL};

pub(crate) use javm_exec::fuse::Load;
use javm_exec::fuse::load_operands;

/// The register a folded run's last access stands in for (`fuse.rs`): on an exit
/// there, `reg = base + (index << scale)`, the index zero-extended from 32 bits
/// first if `zext_index`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fixup {
    pub(crate) reg: u8,
    pub(crate) zext_index: bool,
}

/// A store's source.
#[derive(Clone, Copy)]
enum Val {
    Reg(Reg),
    Imm(i32),
}

/// Division flavours.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Div {
    U,
    S,
}

macro_rules! asm {
    ($s:expr; $($t:tt)*) => { dynasm!($s.ops ; .arch x64 ; $($t)*) };
}

/// `d = d op b`-style 64-bit ALU with every aliasing handled.
macro_rules! alu3 {
    ($s:expr, $op:ident, $d:expr, $a:expr, $b:expr, $commutative:expr) => {{
        let (d, a, b) = (host($d), host($a), host($b));
        if d == a {
            asm!($s; $op Rq(d), Rq(b));
        } else if d == b && $commutative {
            asm!($s; $op Rq(d), Rq(a));
        } else if d != b {
            asm!($s; mov Rq(d), Rq(a) ; $op Rq(d), Rq(b));
        } else {
            asm!($s; mov rdx, Rq(a) ; $op rdx, Rq(b) ; mov Rq(d), rdx);
        }
    }};
}

/// 32-bit ALU: `d = sx32(a op b)`. In place when the destination is the first
/// source, or the second for a commutative `op`; otherwise computed in EDX.
macro_rules! alu32 {
    ($s:expr, $op:ident, $d:expr, $a:expr, $b:expr, $commutative:expr) => {{
        let (d, a, b) = (host($d), host($a), host($b));
        if d == a {
            asm!($s; $op Rd(d), Rd(b) ; movsxd Rq(d), Rd(d));
        } else if d == b && $commutative {
            asm!($s; $op Rd(d), Rd(a) ; movsxd Rq(d), Rd(d));
        } else {
            asm!($s; mov edx, Rd(a) ; $op edx, Rd(b) ; movsxd Rq(d), edx);
        }
    }};
}

/// `d = (a cond b) as u64` for a register or immediate `b`.
macro_rules! setcc {
    ($s:expr, $set:ident, $d:expr, $a:expr, reg $b:expr) => {{
        let (d, a, b) = (host($d), host($a), host($b));
        asm!($s; xor edx, edx ; cmp Rq(a), Rq(b) ; $set dl ; mov Rq(d), rdx);
    }};
    ($s:expr, $set:ident, $d:expr, $a:expr, imm $x:expr) => {{
        let d = host($d);
        asm!($s; xor edx, edx);
        $s.cmp_imm(host($a), $x);
        asm!($s; $set dl ; mov Rq(d), rdx);
    }};
}

/// Conditional branch to `target` (or a panic stub); falls through to the next block.
macro_rules! branch {
    ($s:expr, $idx:expr, $target:expr, $jcc:ident, $a:expr, reg $b:expr) => {{
        let l = $s.target($target, $idx)?;
        let (a, b) = (host($a), host($b));
        asm!($s; cmp Rq(a), Rq(b));
        $s.jcc(Cc::$jcc, l);
    }};
    ($s:expr, $idx:expr, $target:expr, $jcc:ident, $a:expr, imm $x:expr) => {{
        let l = $s.target($target, $idx)?;
        $s.cmp_imm(host($a), $x);
        $s.jcc(Cc::$jcc, l);
    }};
}

/// `d = f(a, b)` through a rotate by CL: RCX is borrowed and restored.
macro_rules! rot_cl {
    ($s:expr, $rot:ident, q, $d:expr, $v:expr, $count:expr) => {{
        let (d, c) = (host($d), host($count));
        asm!($s; gs mov [-0x30], rcx);
        match $v {
            Val::Reg(r) => asm!($s; mov rdx, Rq(host(r))),
            Val::Imm(x) => asm!($s; mov rdx, x),
        }
        asm!($s; mov ecx, Rd(c) ; $rot rdx, cl ; gs mov rcx, [-0x30] ; mov Rq(d), rdx);
    }};
    ($s:expr, $rot:ident, d, $d:expr, $v:expr, $count:expr) => {{
        let (d, c) = (host($d), host($count));
        asm!($s; gs mov [-0x30], rcx);
        match $v {
            Val::Reg(r) => asm!($s; mov edx, Rd(host(r))),
            Val::Imm(x) => asm!($s; mov edx, x),
        }
        asm!($s; mov ecx, Rd(c) ; $rot edx, cl ; gs mov rcx, [-0x30] ; movsxd Rq(d), edx);
    }};
}

// Context fields are addressed with literal displacements, which dynasm encodes in
// 8 bits (a constant's name would get 32): EXIT_IDX, SAVE_RCX, SAVE_RAX, T1, T0
// and JT_PTR, in this order.
const _: () = assert!(
    off::EXIT_IDX == -28
        && off::SAVE_RCX == -0x30
        && off::SAVE_RAX == -0x38
        && off::T1 == -0x40
        && off::T0 == -0x48
        && off::JT_PTR == -0x60
);

impl Cg<'_> {
    /// Emit instruction `idx` of block `block`.
    pub(super) fn lower(&mut self, ins: I, idx: u32, block: u32) -> Result<(), String> {
        if narrow::may_skip_extension(&ins) {
            let program = self.program;
            let next = program
                .blocks()
                .get(block as usize)
                .filter(|b| idx + 1 < b.end)
                .and_then(|_| program.instructions().get(idx as usize + 1));
            if narrow::extension_dead(&ins, next) && self.lower_unextended(ins) {
                return Ok(());
            }
        }
        if narrow::never_negative(&ins) && self.lower_unextended(ins) {
            return Ok(());
        }
        match ins {
            // Control flow.
            I::Trap(_) => self.exit(ExitKind::Trap, idx),
            I::Invalid => self.exit(ExitKind::Panic, idx),
            I::Fallthrough(_) | I::Unlikely(_) => self.fall_into(block)?,
            // Terminators: report the block, whose successor is the resume point.
            I::Ecall(_) => self.host_call(idx, block, None)?,
            I::Ecalli(o) => self.host_call(idx, block, Some(o.x as u32))?,
            I::Jump(o) => {
                if o.target.block() != Some(block + 1) {
                    let l = self.target(o.target, idx)?;
                    self.jmp(l);
                }
            }
            I::JumpInd(o) => {
                self.lea(false, RDX, host(o.a), o.x);
                self.djump(idx)?;
            }
            I::LoadImmJump(o) => {
                self.load_imm(host(o.a), o.x);
                if o.target.block() != Some(block + 1) {
                    let l = self.target(o.target, idx)?;
                    self.jmp(l);
                }
            }
            I::LoadImmJumpInd(o) => {
                // The address uses the old rB, even when rA == rB.
                self.lea(false, RDX, host(o.b), o.y);
                self.load_imm(host(o.a), o.x);
                self.djump(idx)?;
            }
            I::BranchEqImm(o) => branch!(self, idx, o.target, E, o.a, imm o.x),
            I::BranchNeImm(o) => branch!(self, idx, o.target, Ne, o.a, imm o.x),
            I::BranchLtUImm(o) => branch!(self, idx, o.target, B, o.a, imm o.x),
            I::BranchLeUImm(o) => branch!(self, idx, o.target, Be, o.a, imm o.x),
            I::BranchGeUImm(o) => branch!(self, idx, o.target, Ae, o.a, imm o.x),
            I::BranchGtUImm(o) => branch!(self, idx, o.target, A, o.a, imm o.x),
            I::BranchLtSImm(o) => branch!(self, idx, o.target, L, o.a, imm o.x),
            I::BranchLeSImm(o) => branch!(self, idx, o.target, Le, o.a, imm o.x),
            I::BranchGeSImm(o) => branch!(self, idx, o.target, Ge, o.a, imm o.x),
            I::BranchGtSImm(o) => branch!(self, idx, o.target, G, o.a, imm o.x),
            I::BranchEq(o) => branch!(self, idx, o.target, E, o.a, reg o.b),
            I::BranchNe(o) => branch!(self, idx, o.target, Ne, o.a, reg o.b),
            I::BranchLtU(o) => branch!(self, idx, o.target, B, o.a, reg o.b),
            I::BranchLtS(o) => branch!(self, idx, o.target, L, o.a, reg o.b),
            I::BranchGeU(o) => branch!(self, idx, o.target, Ae, o.a, reg o.b),
            I::BranchGeS(o) => branch!(self, idx, o.target, Ge, o.a, reg o.b),

            // Immediates and moves.
            I::LoadImm64(o) => {
                let x = o.x() as i64;
                asm!(self; mov Rq(host(o.a)), QWORD x);
            }
            I::LoadImm(o) => self.load_imm(host(o.a), o.x),
            I::MoveReg(o) => self.mov(o.d, o.a),
            I::Sbrk(_) => {
                let kind = if self.gp {
                    ExitKind::Sbrk
                } else {
                    ExitKind::Panic
                };
                self.exit(kind, idx);
            }

            // Loads.
            I::LoadU8(_)
            | I::LoadI8(_)
            | I::LoadU16(_)
            | I::LoadI16(_)
            | I::LoadU32(_)
            | I::LoadI32(_)
            | I::LoadU64(_)
            | I::LoadIndU8(_)
            | I::LoadIndI8(_)
            | I::LoadIndU16(_)
            | I::LoadIndI16(_)
            | I::LoadIndU32(_)
            | I::LoadIndI32(_)
            | I::LoadIndU64(_) => match load_operands(&ins) {
                Some((dst, Some(base), x, kind)) => self.load_ind(idx, dst, base, x, kind),
                Some((dst, None, x, kind)) => self.load_abs(idx, dst, x, kind),
                None => {
                    return Err(format!(
                        "instruction {idx}: a load the ISA table has no load access for"
                    ));
                }
            },

            // Stores.
            I::StoreImmU8(o) => self.store_abs(idx, o.x, Val::Imm(o.y), 1),
            I::StoreImmU16(o) => self.store_abs(idx, o.x, Val::Imm(o.y), 2),
            I::StoreImmU32(o) => self.store_abs(idx, o.x, Val::Imm(o.y), 4),
            I::StoreImmU64(o) => self.store_abs(idx, o.x, Val::Imm(o.y), 8),
            I::StoreU8(o) => self.store_abs(idx, o.x, Val::Reg(o.a), 1),
            I::StoreU16(o) => self.store_abs(idx, o.x, Val::Reg(o.a), 2),
            I::StoreU32(o) => self.store_abs(idx, o.x, Val::Reg(o.a), 4),
            I::StoreU64(o) => self.store_abs(idx, o.x, Val::Reg(o.a), 8),
            I::StoreImmIndU8(o) => self.store_ind(idx, o.a, o.x, Val::Imm(o.y), 1),
            I::StoreImmIndU16(o) => self.store_ind(idx, o.a, o.x, Val::Imm(o.y), 2),
            I::StoreImmIndU32(o) => self.store_ind(idx, o.a, o.x, Val::Imm(o.y), 4),
            I::StoreImmIndU64(o) => self.store_ind(idx, o.a, o.x, Val::Imm(o.y), 8),
            I::StoreIndU8(o) => self.store_ind(idx, o.b, o.x, Val::Reg(o.a), 1),
            I::StoreIndU16(o) => self.store_ind(idx, o.b, o.x, Val::Reg(o.a), 2),
            I::StoreIndU32(o) => self.store_ind(idx, o.b, o.x, Val::Reg(o.a), 4),
            I::StoreIndU64(o) => self.store_ind(idx, o.b, o.x, Val::Reg(o.a), 8),

            // Two registers.
            I::CountSetBits64(o) => asm!(self; popcnt Rq(host(o.d)), Rq(host(o.a))),
            I::CountSetBits32(o) => asm!(self; popcnt Rd(host(o.d)), Rd(host(o.a))),
            I::LeadingZeroBits64(o) => asm!(self; lzcnt Rq(host(o.d)), Rq(host(o.a))),
            I::LeadingZeroBits32(o) => asm!(self; lzcnt Rd(host(o.d)), Rd(host(o.a))),
            I::TrailingZeroBits64(o) => asm!(self; tzcnt Rq(host(o.d)), Rq(host(o.a))),
            I::TrailingZeroBits32(o) => asm!(self; tzcnt Rd(host(o.d)), Rd(host(o.a))),
            I::SignExtend8(o) => asm!(self; movsx Rq(host(o.d)), Rb(host(o.a))),
            I::SignExtend16(o) => asm!(self; movsx Rq(host(o.d)), Rw(host(o.a))),
            I::ZeroExtend16(o) => asm!(self; movzx Rd(host(o.d)), Rw(host(o.a))),
            I::ReverseBytes(o) => {
                self.mov(o.d, o.a);
                asm!(self; bswap Rq(host(o.d)));
            }

            // Two registers and an immediate: rA = f(rB, X).
            I::AddImm32(o) if o.x == 0 => asm!(self; movsxd Rq(host(o.a)), Rd(host(o.b))),
            I::AddImm32(o) => {
                self.lea(false, RDX, host(o.b), o.x);
                asm!(self; movsxd Rq(host(o.a)), edx)
            }
            I::AndImm(o) => self.and_imm(o.a, o.b, o.x),
            I::XorImm(o) => {
                self.mov(o.a, o.b);
                asm!(self; xor Rq(host(o.a)), o.x);
            }
            I::OrImm(o) => {
                self.mov(o.a, o.b);
                asm!(self; or Rq(host(o.a)), o.x);
            }
            I::MulImm32(o) => {
                asm!(self; imul edx, Rd(host(o.b)), o.x ; movsxd Rq(host(o.a)), edx)
            }
            I::SetLtUImm(o) => setcc!(self, setb, o.a, o.b, imm o.x),
            I::SetLtSImm(o) => setcc!(self, setl, o.a, o.b, imm o.x),
            I::SetGtUImm(o) => setcc!(self, seta, o.a, o.b, imm o.x),
            I::SetGtSImm(o) => setcc!(self, setg, o.a, o.b, imm o.x),
            I::ShloLImm32(o) => {
                let n = (o.x & 31) as i8;
                asm!(self; mov edx, Rd(host(o.b)) ; shl edx, n ; movsxd Rq(host(o.a)), edx)
            }
            I::ShloRImm32(o) => {
                let n = (o.x & 31) as i8;
                asm!(self; mov edx, Rd(host(o.b)) ; shr edx, n ; movsxd Rq(host(o.a)), edx)
            }
            I::SharRImm32(o) => {
                let n = (o.x & 31) as i8;
                asm!(self; mov edx, Rd(host(o.b)) ; sar edx, n ; movsxd Rq(host(o.a)), edx)
            }
            I::NegAddImm32(o) => {
                asm!(self; mov edx, o.x ; sub edx, Rd(host(o.b)) ; movsxd Rq(host(o.a)), edx)
            }
            I::ShloLImmAlt32(o) => {
                asm!(self; mov edx, o.x ; shlx edx, edx, Rd(host(o.b)) ; movsxd Rq(host(o.a)), edx)
            }
            I::ShloRImmAlt32(o) => {
                asm!(self; mov edx, o.x ; shrx edx, edx, Rd(host(o.b)) ; movsxd Rq(host(o.a)), edx)
            }
            I::SharRImmAlt32(o) => {
                asm!(self; mov edx, o.x ; sarx edx, edx, Rd(host(o.b)) ; movsxd Rq(host(o.a)), edx)
            }
            I::CmovIzImm(o) => {
                let (a, b) = (host(o.a), host(o.b));
                asm!(self; mov rdx, o.x ; test Rq(b), Rq(b) ; cmovz Rq(a), rdx);
            }
            I::CmovNzImm(o) => {
                let (a, b) = (host(o.a), host(o.b));
                asm!(self; mov rdx, o.x ; test Rq(b), Rq(b) ; cmovnz Rq(a), rdx);
            }
            I::AddImm64(o) => self.lea(true, host(o.a), host(o.b), o.x),
            I::MulImm64(o) => asm!(self; imul Rq(host(o.a)), Rq(host(o.b)), o.x),
            I::ShloLImm64(o) => {
                // `mov` + `shl`, not a scaled `lea`: on this Intel host the `lea`
                // made a multiply-and-shift loop 16% slower (BENCHMARKS, "Peepholes").
                self.mov(o.a, o.b);
                asm!(self; shl Rq(host(o.a)), (o.x & 63) as i8);
            }
            I::ShloRImm64(o) => {
                self.mov(o.a, o.b);
                asm!(self; shr Rq(host(o.a)), (o.x & 63) as i8);
            }
            I::SharRImm64(o) => {
                self.mov(o.a, o.b);
                asm!(self; sar Rq(host(o.a)), (o.x & 63) as i8);
            }
            I::NegAddImm64(o) => {
                asm!(self; mov rdx, o.x ; sub rdx, Rq(host(o.b)) ; mov Rq(host(o.a)), rdx)
            }
            I::ShloLImmAlt64(o) => {
                asm!(self; mov rdx, o.x ; shlx Rq(host(o.a)), rdx, Rq(host(o.b)))
            }
            I::ShloRImmAlt64(o) => {
                asm!(self; mov rdx, o.x ; shrx Rq(host(o.a)), rdx, Rq(host(o.b)))
            }
            I::SharRImmAlt64(o) => {
                asm!(self; mov rdx, o.x ; sarx Rq(host(o.a)), rdx, Rq(host(o.b)))
            }
            I::RotR64Imm(o) => {
                asm!(self; rorx Rq(host(o.a)), Rq(host(o.b)), (o.x & 63) as i8)
            }
            I::RotR64ImmAlt(o) => rot_cl!(self, ror, q, o.a, Val::Imm(o.x), o.b),
            I::RotR32Imm(o) => {
                let n = (o.x & 31) as i8;
                asm!(self; rorx edx, Rd(host(o.b)), n ; movsxd Rq(host(o.a)), edx)
            }
            I::RotR32ImmAlt(o) => rot_cl!(self, ror, d, o.a, Val::Imm(o.x), o.b),

            // Three registers: rD = f(rA, rB).
            I::Add32(o) => {
                self.add_rr(false, RDX, host(o.a), host(o.b));
                asm!(self; movsxd Rq(host(o.d)), edx)
            }
            I::Sub32(o) => alu32!(self, sub, o.d, o.a, o.b, false),
            I::Mul32(o) => alu32!(self, imul, o.d, o.a, o.b, true),
            I::DivU32(o) => self.div(o.d, o.a, o.b, Div::U, false, true),
            I::DivS32(o) => self.div(o.d, o.a, o.b, Div::S, false, true),
            I::RemU32(o) => self.div(o.d, o.a, o.b, Div::U, true, true),
            I::RemS32(o) => self.div(o.d, o.a, o.b, Div::S, true, true),
            I::ShloL32(o) => {
                asm!(self; shlx edx, Rd(host(o.a)), Rd(host(o.b)) ; movsxd Rq(host(o.d)), edx)
            }
            I::ShloR32(o) => {
                asm!(self; shrx edx, Rd(host(o.a)), Rd(host(o.b)) ; movsxd Rq(host(o.d)), edx)
            }
            I::SharR32(o) => {
                asm!(self; sarx edx, Rd(host(o.a)), Rd(host(o.b)) ; movsxd Rq(host(o.d)), edx)
            }
            I::Add64(o) => self.add_rr(true, host(o.d), host(o.a), host(o.b)),
            I::Sub64(o) => alu3!(self, sub, o.d, o.a, o.b, false),
            I::Mul64(o) => alu3!(self, imul, o.d, o.a, o.b, true),
            I::DivU64(o) => self.div(o.d, o.a, o.b, Div::U, false, false),
            I::DivS64(o) => self.div(o.d, o.a, o.b, Div::S, false, false),
            I::RemU64(o) => self.div(o.d, o.a, o.b, Div::U, true, false),
            I::RemS64(o) => self.div(o.d, o.a, o.b, Div::S, true, false),
            I::ShloL64(o) => {
                asm!(self; shlx Rq(host(o.d)), Rq(host(o.a)), Rq(host(o.b)))
            }
            I::ShloR64(o) => {
                asm!(self; shrx Rq(host(o.d)), Rq(host(o.a)), Rq(host(o.b)))
            }
            I::SharR64(o) => {
                asm!(self; sarx Rq(host(o.d)), Rq(host(o.a)), Rq(host(o.b)))
            }
            I::And(o) => alu3!(self, and, o.d, o.a, o.b, true),
            I::Xor(o) => alu3!(self, xor, o.d, o.a, o.b, true),
            I::Or(o) => alu3!(self, or, o.d, o.a, o.b, true),
            I::MulUpperSS(o) => {
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                asm!(self
                    ; gs mov [-0x48], Rq(a)
                    ; gs mov [-0x38], rax
                    ; mov rax, Rq(b)
                    ; gs imul QWORD [-0x48]
                    ; gs mov rax, [-0x38]
                    ; mov Rq(d), rdx
                );
            }
            I::MulUpperUU(o) => {
                // `mulx` multiplies RDX by its source: the high half goes to d, the
                // low half to RDX (discarded). Both sources are read first.
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                asm!(self; mov rdx, Rq(a) ; mulx Rq(d), rdx, Rq(b));
            }
            I::MulUpperSU(o) => {
                // hi(a ×s b) = hi(a ×u b) − (a < 0 ? b : 0)
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                if d != a && d != b {
                    asm!(self
                        ; mov rdx, Rq(a) ; mulx Rq(d), rdx, Rq(b)
                        ; mov rdx, Rq(a) ; sar rdx, 63 ; and rdx, Rq(b) ; sub Rq(d), rdx
                    );
                } else {
                    // d is a source: the correction waits in T0.
                    asm!(self
                        ; mov rdx, Rq(a) ; sar rdx, 63 ; and rdx, Rq(b) ; gs mov [-0x48], rdx
                        ; mov rdx, Rq(a) ; mulx Rq(d), rdx, Rq(b) ; gs sub Rq(d), [-0x48]
                    );
                }
            }
            I::SetLtU(o) => setcc!(self, setb, o.d, o.a, reg o.b),
            I::SetLtS(o) => setcc!(self, setl, o.d, o.a, reg o.b),
            I::CmovIz(o) => {
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                asm!(self; test Rq(b), Rq(b) ; cmovz Rq(d), Rq(a));
            }
            I::CmovNz(o) => {
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                asm!(self; test Rq(b), Rq(b) ; cmovnz Rq(d), Rq(a));
            }
            I::RotL64(o) => rot_cl!(self, rol, q, o.d, Val::Reg(o.a), o.b),
            I::RotL32(o) => rot_cl!(self, rol, d, o.d, Val::Reg(o.a), o.b),
            I::RotR64(o) => rot_cl!(self, ror, q, o.d, Val::Reg(o.a), o.b),
            I::RotR32(o) => rot_cl!(self, ror, d, o.d, Val::Reg(o.a), o.b),
            I::AndInv(o) => {
                // andn d, b, a = !b & a
                asm!(self; andn Rq(host(o.d)), Rq(host(o.b)), Rq(host(o.a)))
            }
            I::OrInv(o) => {
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                asm!(self; mov rdx, Rq(b) ; not rdx ; or rdx, Rq(a) ; mov Rq(d), rdx);
            }
            I::Xnor(o) => {
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                asm!(self; mov rdx, Rq(a) ; xor rdx, Rq(b) ; not rdx ; mov Rq(d), rdx);
            }
            I::Max(o) => self.minmax(o.d, o.a, o.b, MinMax::MaxS),
            I::MaxU(o) => self.minmax(o.d, o.a, o.b, MinMax::MaxU),
            I::Min(o) => self.minmax(o.d, o.a, o.b, MinMax::MinS),
            I::MinU(o) => self.minmax(o.d, o.a, o.b, MinMax::MinU),
        }
        Ok(())
    }

    /// `d = a & x` (x sign-extended): the masks of a byte and a half-word are zero
    /// extensions, -1 a move and 0 a clear.
    /// A 32-bit operation whose extension is dead or needless (`narrow.rs`): its
    /// result as the 32-bit operation leaves it, computed in place where it can be.
    /// False (and nothing emitted) for an instruction it has no such lowering for.
    fn lower_unextended(&mut self, ins: I) -> bool {
        match ins {
            I::Add32(o) => self.add_rr(false, host(o.d), host(o.a), host(o.b)),
            I::Sub32(o) => {
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                if d == a {
                    asm!(self; sub Rd(d), Rd(b));
                } else if d == b {
                    asm!(self; neg Rd(d) ; add Rd(d), Rd(a));
                } else {
                    asm!(self; mov Rd(d), Rd(a) ; sub Rd(d), Rd(b));
                }
            }
            I::Mul32(o) => {
                let (d, a, b) = (host(o.d), host(o.a), host(o.b));
                if d == a {
                    asm!(self; imul Rd(d), Rd(b));
                } else if d == b {
                    asm!(self; imul Rd(d), Rd(a));
                } else {
                    asm!(self; mov Rd(d), Rd(a) ; imul Rd(d), Rd(b));
                }
            }
            I::ShloL32(o) => asm!(self; shlx Rd(host(o.d)), Rd(host(o.a)), Rd(host(o.b))),
            I::ShloR32(o) => asm!(self; shrx Rd(host(o.d)), Rd(host(o.a)), Rd(host(o.b))),
            I::SharR32(o) => asm!(self; sarx Rd(host(o.d)), Rd(host(o.a)), Rd(host(o.b))),
            I::AddImm32(o) => self.lea(false, host(o.a), host(o.b), o.x),
            I::MulImm32(o) => asm!(self; imul Rd(host(o.a)), Rd(host(o.b)), o.x),
            I::ShloLImm32(o) | I::ShloRImm32(o) | I::SharRImm32(o) => {
                let (d, s, n) = (host(o.a), host(o.b), (o.x & 31) as i8);
                if d != s {
                    asm!(self; mov Rd(d), Rd(s));
                }
                match ins {
                    I::ShloLImm32(_) => asm!(self; shl Rd(d), n),
                    I::ShloRImm32(_) => asm!(self; shr Rd(d), n),
                    _ => asm!(self; sar Rd(d), n),
                }
            }
            I::RotR32Imm(o) => {
                asm!(self; rorx Rd(host(o.a)), Rd(host(o.b)), (o.x & 31) as i8)
            }
            I::ShloRImmAlt32(o) => {
                asm!(self; mov edx, o.x ; shrx Rd(host(o.a)), edx, Rd(host(o.b)))
            }
            _ => return false,
        }
        true
    }

    fn and_imm(&mut self, d: Reg, a: Reg, x: i32) {
        let (hd, ha) = (host(d), host(a));
        match x {
            0xff => asm!(self; movzx Rq(hd), Rb(ha)),
            0xffff => asm!(self; movzx Rq(hd), Rw(ha)),
            -1 => self.mov(d, a),
            0 => asm!(self; xor Rd(hd), Rd(hd)),
            _ => {
                self.mov(d, a);
                asm!(self; and Rq(hd), x);
            }
        }
    }

    fn mov(&mut self, d: Reg, a: Reg) {
        if d != a {
            asm!(self; mov Rq(host(d)), Rq(host(a)));
        }
    }

    /// A terminator that continues in the next block, which is emitted right after.
    fn fall_into(&mut self, block: u32) -> Result<(), String> {
        if block as usize + 1 >= self.block_count() {
            return Err(format!("block {block} falls off the end of the program"));
        }
        Ok(())
    }

    /// Dynamic jump to the address in EDX (GP rule): halt, a block, or panic.
    ///
    /// Rotating the address right by one maps each valid address 2(i + 1) to
    /// i + 1 and every odd address above 2^31, so one unsigned compare leaves the
    /// checks for an odd, zero or too large address and the halt address to the
    /// cold path ([`Cg::djump_fail`]), which needs the instruction's index in the
    /// context. The entry's native address is the table's (from the context) plus
    /// eight times the index: EDX is the only register the jump may change, so it
    /// adds the table to the scaled index and jumps through the sum.
    ///
    /// When every table entry leads to a block ([`Cg::table_all_blocks`], as in
    /// the tables of compiled programs), the jump subtracts one after the
    /// rotation, so that address 0 fails the compare too, and records its index
    /// only in a stub of its own on the failure path: a valid jump stores nothing.
    /// A store of the index on every jump made a call-heavy program about 30%
    /// slower than without it, wherever in the context page it went (BENCHMARKS,
    /// "Dynamic jumps without a store"). Otherwise the index goes to the context
    /// first, for the entries of invalid targets, which lead to the shared panic
    /// as entry 0 does.
    fn djump(&mut self, idx: u32) -> Result<(), String> {
        let len = i32::try_from(self.jump_table_len())
            .ok()
            .filter(|&n| n < i32::MAX)
            .ok_or_else(|| "jump table too long for the recompiler".to_string())?;
        let inline = crate::ctx::jt_inline(len as usize + 1);
        // The entry `skip` entries past the one EDX indexes.
        let through = |cg: &mut Self, skip: i32| {
            if inline {
                let disp = crate::ctx::off::JT_INLINE + 8 * skip;
                asm!(cg ; gs jmp QWORD [rdx * 8 + disp]);
            } else {
                asm!(cg
                    ; shl edx, 3
                    ; gs add rdx, [-0x60] // the jump table
                    ; jmp QWORD [rdx + 8 * skip]
                );
            }
        };
        if self.table_all_blocks() {
            let stub = self.label();
            self.stubs.push(super::Stub::DjumpFail { label: stub, idx });
            asm!(self ; ror edx, 1 ; sub edx, 1);
            self.cmp_imm(RDX, len);
            self.jcc(Cc::Ae, stub);
            through(self, 1);
        } else {
            let fail = self.djump_fail();
            asm!(self
                ; gs mov DWORD [-28], idx as i32
                ; ror edx, 1
            );
            self.cmp_imm(RDX, len + 1);
            self.jcc(Cc::Ae, fail);
            through(self, 0);
        }
        Ok(())
    }

    /// Record the memory access about to be emitted.
    /// Record the access about to be emitted; `fixup` names the register a folded
    /// run wrote (`fuse.rs`), which an exit from this access must set ([`Fixup`]).
    fn side(&mut self, idx: u32, width: u8, write: bool, m: GuestMem, fixup: Option<Fixup>) {
        let native = self.ops.offset().0 as u32;
        self.side.push(SideEntry {
            native,
            idx,
            width,
            write,
            base: m.base.unwrap_or(NO_BASE),
            index: m.index.unwrap_or(NO_BASE),
            scale: m.scale,
            zext_index: fixup.is_some_and(|f| f.zext_index),
            fixup: fixup.map_or(NO_BASE, |f| f.reg),
            disp: m.disp as u32,
        });
    }

    fn load_abs(&mut self, idx: u32, dst: Reg, x: i32, kind: Load) {
        let m = GuestMem {
            base: None,
            index: None,
            scale: 0,
            disp: x,
        };
        self.load(idx, dst, m, kind, None);
    }

    fn load_ind(&mut self, idx: u32, dst: Reg, base: Reg, x: i32, kind: Load) {
        let m = GuestMem {
            base: Some(host(base)),
            index: None,
            scale: 0,
            disp: x,
        };
        self.load(idx, dst, m, kind, None);
    }

    /// `dst = gs:[m]`, one instruction (the fault handler's unit, which finds the
    /// address from the side table's registers and displacement); `fixup` as in
    /// [`Cg::side`].
    pub(super) fn load(
        &mut self,
        idx: u32,
        dst: Reg,
        m: GuestMem,
        kind: Load,
        fixup: Option<Fixup>,
    ) {
        let (width, wide, opcode): (u8, bool, &'static [u8]) = match kind {
            // movzx r32, m8 / movsx r64, m8
            Load::U8 => (1, false, &[0x0F, 0xB6]),
            Load::I8 => (1, true, &[0x0F, 0xBE]),
            // movzx r32, m16 / movsx r64, m16
            Load::U16 => (2, false, &[0x0F, 0xB7]),
            Load::I16 => (2, true, &[0x0F, 0xBF]),
            // mov r32, m32 (zero-extends) / movsxd r64, m32
            Load::U32 => (4, false, &[0x8B]),
            Load::I32 => (4, true, &[0x63]),
            // mov r64, m64
            Load::U64 => (8, true, &[0x8B]),
        };
        self.side(idx, width, false, m, fixup);
        let op = MemOp {
            op16: false,
            wide,
            byte_reg: false,
            opcode,
        };
        gs_mem(&mut self.ops, op, host(dst), m, &[]);
    }

    /// A store to the fixed address `x`: check the write shadow byte of its granule,
    /// then store (see [`Cg::store_slow`] for the other outcomes).
    fn store_abs(&mut self, idx: u32, x: i32, v: Val, width: u8) {
        let granule = i64::from(x as u32 >> 3);
        let disp = i32::try_from(granule + i64::from(SHADOW_DISP)).unwrap_or(i32::MIN);
        let back = self.label();
        let slow = self.store_slow(idx, StoreAddr::Abs(x as u32), width, back);
        asm!(self; gs cmp BYTE [disp], SHADOW_FULL as i8);
        self.jcc(Cc::Ne, slow);
        self.bind(back);
        self.store(
            idx,
            GuestMem {
                base: None,
                index: None,
                scale: 0,
                disp: x,
            },
            v,
            width,
        );
    }

    /// A store to `base + x`: check the write shadow byte of its granule (or its
    /// group's range, `stores.rs`), then store.
    fn store_ind(&mut self, idx: u32, base: Reg, x: i32, v: Val, width: u8) {
        let b = host(base);
        let m = GuestMem {
            base: Some(b),
            index: None,
            scale: 0,
            disp: x,
        };
        match self.store_check(idx) {
            StoreCheck::Own => {}
            StoreCheck::Head { lo, last, retry } => {
                self.group_check(base, lo, last, retry);
                self.store(idx, m, v, width);
                return;
            }
            StoreCheck::Member => {
                self.store(idx, m, v, width);
                return;
            }
        }
        let back = self.label();
        let slow = self.store_slow(idx, StoreAddr::Ind(b, x), width, back);
        self.lea(false, RDX, b, x);
        asm!(self
            ; shr edx, 3
            ; gs cmp BYTE [rdx + SHADOW_DISP], SHADOW_FULL as i8
        );
        self.jcc(Cc::Ne, slow);
        self.bind(back);
        self.store(idx, m, v, width);
    }

    /// `gs:[m] = v`, one instruction (the fault handler's unit).
    fn store(&mut self, idx: u32, m: GuestMem, v: Val, width: u8) {
        self.side(idx, width, true, m, None);
        let op = |opcode| MemOp {
            op16: width == 2,
            wide: width == 8,
            byte_reg: width == 1,
            opcode,
        };
        match v {
            // mov m8, r8 / mov m, r
            Val::Reg(r) => {
                let opcode: &'static [u8] = if width == 1 { &[0x88] } else { &[0x89] };
                gs_mem(&mut self.ops, op(opcode), host(r), m, &[]);
            }
            // mov m8, imm8 / mov m, imm (C6 /0, C7 /0; 64-bit: imm32 sign-extended)
            Val::Imm(y) => {
                let opcode: &'static [u8] = if width == 1 { &[0xC6] } else { &[0xC7] };
                let imm = y.to_le_bytes();
                let imm = &imm[..usize::from(width.min(4))];
                gs_mem(&mut self.ops, op(opcode), 0, m, imm);
            }
        }
    }

    /// Division and remainder without SIGFPE: a zero divisor and `MIN / −1` take
    /// their own paths before `div`/`idiv` can see them. 32-bit forms look only at
    /// the low halves. The result is built in RDX, then moved to the destination.
    ///
    /// `div` takes its dividend in RAX (guest r11) and the divisor from a register
    /// or memory. RAX is borrowed: saved in the context unless it is the
    /// destination (then the result overwrites it anyway), and restored after the
    /// division. A divisor in RAX is divided from its saved copy, which then also
    /// restores RAX; any other divisor is used in its own register (RDX, the
    /// scratch, is never a guest register).
    fn div(&mut self, d: Reg, a: Reg, b: Reg, kind: Div, rem: bool, w32: bool) {
        const RAX: u8 = 0;
        let (d, a, b) = (host(d), host(a), host(b));
        // The generator's own labels (`labels.rs`): dynasm's dynamic labels cost
        // a relocation record each, resolved when the code is committed.
        let (zero, minus1, done) = (self.label(), self.label(), self.label());
        if w32 {
            asm!(self; test Rd(b), Rd(b));
        } else {
            asm!(self; test Rq(b), Rq(b));
        }
        self.jcc(Cc::E, zero);
        if kind == Div::S {
            if w32 {
                asm!(self; cmp Rd(b), -1);
            } else {
                asm!(self; cmp Rq(b), -1);
            }
            self.jcc(Cc::E, minus1);
        }
        // The divisor's copy (T1) doubles as RAX's saved value when it is RAX.
        let restore = d != RAX;
        if b == RAX {
            asm!(self; gs mov [-0x40], rax);
        } else if restore {
            asm!(self; gs mov [-0x38], rax);
        }
        if a != RAX {
            if w32 {
                asm!(self; mov eax, Rd(a));
            } else {
                asm!(self; mov rax, Rq(a));
            }
        }
        match (w32, kind, b == RAX) {
            (true, Div::U, true) => asm!(self; xor edx, edx ; gs div DWORD [-0x40]),
            (true, Div::U, false) => asm!(self; xor edx, edx ; div Rd(b)),
            (true, Div::S, true) => asm!(self; cdq ; gs idiv DWORD [-0x40]),
            (true, Div::S, false) => asm!(self; cdq ; idiv Rd(b)),
            (false, Div::U, true) => asm!(self; xor edx, edx ; gs div QWORD [-0x40]),
            (false, Div::U, false) => asm!(self; xor edx, edx ; div Rq(b)),
            (false, Div::S, true) => asm!(self; cqo ; gs idiv QWORD [-0x40]),
            (false, Div::S, false) => asm!(self; cqo ; idiv Rq(b)),
        }
        match (w32, rem) {
            (true, true) => asm!(self; movsxd rdx, edx),
            (true, false) => asm!(self; movsxd rdx, eax),
            (false, true) => {}
            (false, false) => asm!(self; mov rdx, rax),
        }
        if restore {
            if b == RAX {
                asm!(self; gs mov rax, [-0x40]);
            } else {
                asm!(self; gs mov rax, [-0x38]);
            }
        }
        self.jmp(done);
        // Neither path below has changed RAX or the operands.
        self.bind(zero);
        match (w32, rem) {
            (true, true) => asm!(self; movsxd rdx, Rd(a)),
            (false, true) => asm!(self; mov rdx, Rq(a)),
            (_, false) => asm!(self; mov rdx, -1),
        }
        if kind == Div::S {
            self.jmp(done);
            self.bind(minus1);
            match (w32, rem) {
                (_, true) => asm!(self; xor edx, edx),
                (true, false) => asm!(self; mov edx, Rd(a) ; neg edx ; movsxd rdx, edx),
                (false, false) => asm!(self; mov rdx, Rq(a) ; neg rdx),
            }
        }
        self.bind(done);
        asm!(self; mov Rq(d), rdx);
    }

    fn minmax(&mut self, d: Reg, a: Reg, b: Reg, which: MinMax) {
        let (d, a, b) = (host(d), host(a), host(b));
        asm!(self; mov rdx, Rq(b) ; cmp Rq(a), Rq(b));
        match which {
            MinMax::MaxS => asm!(self; cmovg rdx, Rq(a)),
            MinMax::MaxU => asm!(self; cmova rdx, Rq(a)),
            MinMax::MinS => asm!(self; cmovl rdx, Rq(a)),
            MinMax::MinU => asm!(self; cmovb rdx, Rq(a)),
        }
        asm!(self; mov Rq(d), rdx);
    }
}

#[derive(Clone, Copy)]
enum MinMax {
    MaxS,
    MaxU,
    MinS,
    MinU,
}
