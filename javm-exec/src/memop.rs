//! The generic reading of a load or store: which address it touches, how many bytes,
//! and what it writes or where the loaded value goes (docs/ISA.md §4).
//!
//! The interpreter's dispatch loop and the recompiler's lowering specialise each memory
//! opcode for speed; code that handles an access generically — the recompiler's
//! software path for accesses that wrap past 2^32 — evaluates it here instead of
//! restating the width and extension of every opcode. Width and kind come from the ISA
//! table ([`Opcode::memory_access`]).

use crate::instruction::{Instruction, imm};
use crate::isa::{AccessKind, MemAccess, NUM_REGS, Opcode, Reg};

/// A load or store evaluated against the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryOp {
    /// Width and direction.
    pub access: MemAccess,
    /// The first byte's address (the effective address, already wrapped to 32 bits).
    pub addr: u32,
    /// The destination of a load or the value of a store.
    pub data: MemData,
}

/// What a [`MemoryOp`] moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemData {
    /// A load into this register (extended with [`MemAccess::extend`]).
    Load(Reg),
    /// A store of this value's low `width` bytes, little-endian.
    Store(u64),
}

impl MemAccess {
    /// Extend the `width` low bytes of `raw` (little-endian memory contents) to the
    /// 64-bit register value a load of this kind produces. Stores return `raw`
    /// truncated to their width.
    pub const fn extend(self, raw: u64) -> u64 {
        let bits = self.width * 8;
        let low = if bits >= 64 {
            raw
        } else {
            raw & ((1u64 << bits) - 1)
        };
        match self.kind {
            AccessKind::LoadSigned if bits < 64 => {
                let shift = 64 - bits;
                (((low << shift) as i64) >> shift) as u64
            }
            _ => low,
        }
    }
}

impl Instruction {
    /// The access this instruction performs with registers `regs`, `None` if it is
    /// not a load or store.
    pub fn memory_op(&self, regs: &[u64; NUM_REGS]) -> Option<MemoryOp> {
        use Instruction as I;
        let access = self.opcode().and_then(Opcode::memory_access)?;
        let r = |x: Reg| regs[x.index()];
        let ea = |base: Reg, offset: i32| (r(base) as u32).wrapping_add(offset as u32);
        let reg_data = |a: Reg| match access.kind {
            AccessKind::Store => MemData::Store(r(a)),
            AccessKind::LoadSigned | AccessKind::LoadUnsigned => MemData::Load(a),
        };
        // Grouped by operand format; the opcode table says which of them are stores.
        let (addr, data) = match *self {
            // `rA` ↔ [X]
            I::LoadU8(o)
            | I::LoadI8(o)
            | I::LoadU16(o)
            | I::LoadI16(o)
            | I::LoadU32(o)
            | I::LoadI32(o)
            | I::LoadU64(o)
            | I::StoreU8(o)
            | I::StoreU16(o)
            | I::StoreU32(o)
            | I::StoreU64(o) => (o.x as u32, reg_data(o.a)),
            // [X] = Y
            I::StoreImmU8(o) | I::StoreImmU16(o) | I::StoreImmU32(o) | I::StoreImmU64(o) => {
                (o.x as u32, MemData::Store(imm(o.y)))
            }
            // `rA` ↔ [rB + X]
            I::LoadIndU8(o)
            | I::LoadIndI8(o)
            | I::LoadIndU16(o)
            | I::LoadIndI16(o)
            | I::LoadIndU32(o)
            | I::LoadIndI32(o)
            | I::LoadIndU64(o)
            | I::StoreIndU8(o)
            | I::StoreIndU16(o)
            | I::StoreIndU32(o)
            | I::StoreIndU64(o) => (ea(o.b, o.x), reg_data(o.a)),
            // [rA + X] = Y
            I::StoreImmIndU8(o)
            | I::StoreImmIndU16(o)
            | I::StoreImmIndU32(o)
            | I::StoreImmIndU64(o) => (ea(o.a, o.x), MemData::Store(imm(o.y))),
            _ => return None,
        };
        Some(MemoryOp { access, addr, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::isa::Format;
    use crate::{
        Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, Interpreter, MemoryLayout,
        PageKind,
    };
    use std::sync::Arc;

    fn sample(op: Opcode) -> Instruction {
        use crate::isa::Args;
        let args = match op.format() {
            Format::RegImm => Args::RegImm { a: Reg::R1, x: -4 },
            Format::ImmImm => Args::ImmImm { x: -4, y: -2 },
            Format::RegRegImm => Args::RegRegImm {
                a: Reg::R1,
                b: Reg::R2,
                x: -4,
            },
            Format::RegImmImm => Args::RegImmImm {
                a: Reg::R2,
                x: -4,
                y: -2,
            },
            f => panic!("{op:?}: memory opcode with format {f:?}"),
        };
        Instruction::resolve(Some(op), &args, &|_| crate::Target(0))
    }

    #[test]
    fn every_memory_opcode_has_a_memory_op_and_no_other_does() {
        let mut regs = [0u64; NUM_REGS];
        regs[1] = 0x1122_3344_5566_7788;
        regs[2] = 0xFFFF_FFFF_0000_0010;
        for op in Opcode::ALL {
            let Some(access) = op.memory_access() else {
                continue;
            };
            let m = sample(op).memory_op(&regs).expect("memory op");
            assert_eq!(m.access, access, "{op:?}");
            let indirect = matches!(op.format(), Format::RegRegImm | Format::RegImmImm);
            // rB (or rA) = 0x…_0000_0010; its low 32 bits plus −4 wrap to 0xC.
            assert_eq!(m.addr, if indirect { 0xC } else { 0xFFFF_FFFC }, "{op:?}");
            match (access.kind, m.data) {
                (AccessKind::Store, MemData::Store(v)) => {
                    let imm_form = matches!(op.format(), Format::ImmImm | Format::RegImmImm);
                    assert_eq!(v, if imm_form { imm(-2) } else { regs[1] }, "{op:?}");
                }
                (AccessKind::LoadSigned | AccessKind::LoadUnsigned, MemData::Load(r)) => {
                    assert_eq!(r, Reg::R1, "{op:?}");
                }
                (k, d) => panic!("{op:?}: kind {k:?} with data {d:?}"),
            }
        }
        for op in Opcode::ALL
            .into_iter()
            .filter(|o| o.memory_access().is_none())
        {
            let i =
                Instruction::resolve(Some(op), &crate::isa::Args::NoArgs, &|_| crate::Target(0));
            assert_eq!(i.memory_op(&regs), None, "{op:?}");
        }
    }

    /// `extend` agrees with the interpreter's own load arms for every load opcode and
    /// a byte pattern with every top bit set.
    #[test]
    fn extend_agrees_with_the_interpreter() {
        const BYTES: u64 = 0x8899_AABB_CCDD_EEFF;
        let mut layout = MemoryLayout::new();
        layout
            .add_region(0x20000, 0x1000, PageKind::EphemeralZero, &[])
            .unwrap();
        let layout = Arc::new(layout);
        let engine = Interpreter::new();
        for op in Opcode::ALL {
            let Some(access) = op.memory_access() else {
                continue;
            };
            if access.kind == AccessKind::Store {
                continue;
            }
            let load = match op.format() {
                Format::RegImm => format!("{} r1, 0x20000", op.mnemonic()),
                _ => format!("{} r1, r2, 0x20000", op.mnemonic()),
            };
            let src = format!("load_imm_64 r3, {BYTES:#x}\nstore_u64 r3, 0x20000\n{load}\ntrap");
            let program = Arc::new(assemble(&src).unwrap().program().unwrap());
            let schedule = GasSchedule::new(GasProfile::Jar1, layout.accessible_pages());
            let module = engine.prepare(&program, schedule).unwrap();
            let init = InstanceInit {
                layout: Arc::clone(&layout),
                regs: [0; NUM_REGS],
                pc: 0,
                gas: 100_000,
            };
            let mut vm = engine.instantiate(&module, init).unwrap();
            assert_eq!(vm.run().unwrap(), Exit::Trap, "{op:?}");
            assert_eq!(vm.reg(Reg::R1), access.extend(BYTES), "{op:?}");
        }
    }
}
