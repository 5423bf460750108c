//! The engine-facing instruction: one variant per opcode, generated from the ISA
//! table, with operands already decoded and branch targets resolved to basic blocks.
//!
//! Both engines consume only this form (via [`crate::Program`]); neither re-decodes
//! bytes. Immediates are stored as `i32` (every immediate but `load_imm_64`'s is a
//! sign-extended ≤ 4-byte value); use [`imm`] to get the 64-bit register value.

use crate::isa::{Args, CodeView, Format, Opcode, Reg, for_each_opcode};

/// A static branch target: the index of the target's basic block in
/// [`crate::Program::blocks`], or [`Target::INVALID`] when the target is not a
/// basic-block start (taking such a branch panics at the branch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target(pub u32);

impl Target {
    /// Marker for a target outside ϖ.
    pub const INVALID: Target = Target(u32::MAX);

    /// The block index, or `None` for an invalid target.
    #[inline]
    pub fn block(self) -> Option<u32> {
        (self != Target::INVALID).then_some(self.0)
    }
}

/// The 64-bit value of a sign-extended immediate.
#[inline(always)]
pub const fn imm(x: i32) -> u64 {
    x as i64 as u64
}

/// Operand structs, one per [`crate::isa::Format`]; field names follow docs/ISA.md §3.3.
#[allow(missing_docs, reason = "field names follow docs/ISA.md §3.3")]
pub mod operands {
    use super::{Reg, Target};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct NoArgs;
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Imm {
        pub x: i32,
    }
    /// `load_imm_64`'s operands. The 64-bit immediate is stored as two halves so
    /// that [`super::Instruction`] stays 16 bytes; read it with [`RegImm64::x`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegImm64 {
        pub a: Reg,
        halves: [u32; 2],
    }

    impl RegImm64 {
        /// Operands for `rA = x`.
        pub const fn new(a: Reg, x: u64) -> Self {
            RegImm64 {
                a,
                halves: [x as u32, (x >> 32) as u32],
            }
        }

        /// The 64-bit immediate.
        #[inline(always)]
        pub const fn x(&self) -> u64 {
            self.halves[0] as u64 | (self.halves[1] as u64) << 32
        }
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ImmImm {
        pub x: i32,
        pub y: i32,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Offset {
        pub target: Target,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegImm {
        pub a: Reg,
        pub x: i32,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegImmImm {
        pub a: Reg,
        pub x: i32,
        pub y: i32,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegImmOffset {
        pub a: Reg,
        pub x: i32,
        pub target: Target,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegReg {
        pub d: Reg,
        pub a: Reg,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegRegImm {
        pub a: Reg,
        pub b: Reg,
        pub x: i32,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegRegOffset {
        pub a: Reg,
        pub b: Reg,
        pub target: Target,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegRegImmImm {
        pub a: Reg,
        pub b: Reg,
        pub x: i32,
        pub y: i32,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RegRegReg {
        pub d: Reg,
        pub a: Reg,
        pub b: Reg,
    }
}

/// The register operands of an operand struct.
trait NamedRegs {
    fn named_regs(&self) -> [Option<Reg>; 3];
}

macro_rules! impl_named_regs {
    ($($ty:ident: |$o:ident| $body:expr;)*) => {
        $(impl NamedRegs for operands::$ty {
            fn named_regs(&self) -> [Option<Reg>; 3] {
                let $o = self;
                $body
            }
        })*
    };
}

impl_named_regs! {
    NoArgs: |_o| [None, None, None];
    Imm: |_o| [None, None, None];
    RegImm64: |o| [Some(o.a), None, None];
    ImmImm: |_o| [None, None, None];
    Offset: |_o| [None, None, None];
    RegImm: |o| [Some(o.a), None, None];
    RegImmImm: |o| [Some(o.a), None, None];
    RegImmOffset: |o| [Some(o.a), None, None];
    RegReg: |o| [Some(o.d), Some(o.a), None];
    RegRegImm: |o| [Some(o.a), Some(o.b), None];
    RegRegOffset: |o| [Some(o.a), Some(o.b), None];
    RegRegImmImm: |o| [Some(o.a), Some(o.b), None];
    RegRegReg: |o| [Some(o.d), Some(o.a), Some(o.b)];
}

/// The static branch target of an operand struct, if its format has one.
trait StaticTarget {
    fn static_target(&self) -> Option<Target> {
        None
    }
}

impl StaticTarget for operands::NoArgs {}
impl StaticTarget for operands::Imm {}
impl StaticTarget for operands::RegImm64 {}
impl StaticTarget for operands::ImmImm {}
impl StaticTarget for operands::RegImm {}
impl StaticTarget for operands::RegImmImm {}
impl StaticTarget for operands::RegReg {}
impl StaticTarget for operands::RegRegImm {}
impl StaticTarget for operands::RegRegImmImm {}
impl StaticTarget for operands::RegRegReg {}
impl StaticTarget for operands::Offset {
    fn static_target(&self) -> Option<Target> {
        Some(self.target)
    }
}
impl StaticTarget for operands::RegImmOffset {
    fn static_target(&self) -> Option<Target> {
        Some(self.target)
    }
}
impl StaticTarget for operands::RegRegOffset {
    fn static_target(&self) -> Option<Target> {
        Some(self.target)
    }
}

/// Immediates decoded from ≤ 4 bytes always fit; saturate defensively otherwise.
fn i32_of(x: i64) -> i32 {
    i32::try_from(x).unwrap_or(if x < 0 { i32::MIN } else { i32::MAX })
}

/// Convert decoded operands into the resolved operand struct of their format.
fn resolve_operands<T: FromArgs>(args: &Args, resolve: &dyn Fn(i64) -> Target) -> Option<T> {
    T::from_args(args, resolve)
}

trait FromArgs: Sized {
    fn from_args(args: &Args, resolve: &dyn Fn(i64) -> Target) -> Option<Self>;
}

macro_rules! impl_from_args {
    (|$resolve:ident| $($ty:ident: $pat:pat => $body:expr;)*) => {
        $(impl FromArgs for operands::$ty {
            #[allow(unused_variables, reason = "not every format has a target")]
            fn from_args(args: &Args, $resolve: &dyn Fn(i64) -> Target) -> Option<Self> {
                #[allow(clippy::infallible_destructuring_match, reason = "uniform macro arms")]
                match *args {
                    $pat => Some($body),
                    _ => None,
                }
            }
        })*
    };
}

impl_from_args! { |resolve|
    NoArgs: Args::NoArgs => operands::NoArgs;
    Imm: Args::Imm { x } => operands::Imm { x: i32_of(x) };
    RegImm64: Args::RegImm64 { a, x } => operands::RegImm64::new(a, x);
    ImmImm: Args::ImmImm { x, y } => operands::ImmImm { x: i32_of(x), y: i32_of(y) };
    Offset: Args::Offset { target } => operands::Offset { target: resolve(target) };
    RegImm: Args::RegImm { a, x } => operands::RegImm { a, x: i32_of(x) };
    RegImmImm: Args::RegImmImm { a, x, y } => operands::RegImmImm { a, x: i32_of(x), y: i32_of(y) };
    RegImmOffset: Args::RegImmOffset { a, x, target } =>
        operands::RegImmOffset { a, x: i32_of(x), target: resolve(target) };
    RegReg: Args::RegReg { d, a } => operands::RegReg { d, a };
    RegRegImm: Args::RegRegImm { a, b, x } => operands::RegRegImm { a, b, x: i32_of(x) };
    RegRegOffset: Args::RegRegOffset { a, b, target } =>
        operands::RegRegOffset { a, b, target: resolve(target) };
    RegRegImmImm: Args::RegRegImmImm { a, b, x, y } =>
        operands::RegRegImmImm { a, b, x: i32_of(x), y: i32_of(y) };
    RegRegReg: Args::RegRegReg { d, a, b } => operands::RegRegReg { d, a, b };
}

macro_rules! define_instruction {
    ($([$num:literal, $name:ident, $mnemonic:literal, $format:ident, $term:expr, $cost:expr]),* $(,)?) => {
        /// A decoded, resolved instruction. `Invalid` stands for every position that is
        /// not a valid instruction start (undefined opcode byte, or a clear bitmask bit);
        /// executing it panics.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(missing_docs, reason = "variants mirror Opcode")]
        pub enum Instruction {
            $($name(operands::$format),)*
            Invalid,
        }

        impl Instruction {
            /// The opcode, `None` for [`Instruction::Invalid`].
            pub const fn opcode(&self) -> Option<Opcode> {
                match self {
                    $(Instruction::$name(_) => Some(Opcode::$name),)*
                    Instruction::Invalid => None,
                }
            }

            /// The resolved static target of a jump or branch (possibly
            /// [`Target::INVALID`]), `None` for every other instruction.
            pub fn target(&self) -> Option<Target> {
                match self {
                    $(Instruction::$name(o) => o.static_target(),)*
                    Instruction::Invalid => None,
                }
            }

            /// Every register this instruction names as an operand.
            pub fn named_regs(&self) -> [Option<Reg>; 3] {
                match self {
                    $(Instruction::$name(o) => o.named_regs(),)*
                    Instruction::Invalid => [None, None, None],
                }
            }

            /// Decode the instruction at `pc` of `view` — whose opcode is `opcode`
            /// (`view.opcode_at(pc)`) and skip `skip` — into `out`, resolving its
            /// static target with `resolve`: what [`Instruction::resolve_into`]
            /// makes of [`CodeView::decode_with_skip`], with one dispatch on the
            /// opcode (each arm decodes its own format), where decoding the
            /// operands first dispatched on the format and then on the opcode.
            #[inline]
            pub fn decode_into(
                out: &mut Instruction,
                view: &CodeView<'_>,
                pc: u32,
                skip: u32,
                opcode: Option<Opcode>,
                resolve: &dyn Fn(i64) -> Target,
            ) {
                let Some(opcode) = opcode else {
                    *out = Instruction::Invalid;
                    return;
                };
                match opcode {
                    $(Opcode::$name => {
                        let args = view.decode_args(Format::$format, pc, skip);
                        match resolve_operands(&args, resolve) {
                            Some(o) => *out = Instruction::$name(o),
                            None => *out = Instruction::Invalid,
                        }
                    })*
                }
            }

            /// Build the resolved instruction for `opcode` with decoded `args`,
            /// resolving static targets with `resolve`. Returns `Invalid` if the
            /// operands do not match the opcode's format (the decoder never does that).
            pub fn resolve(
                opcode: Option<Opcode>,
                args: &Args,
                resolve: &dyn Fn(i64) -> Target,
            ) -> Instruction {
                let mut out = Instruction::Invalid;
                Instruction::resolve_into(&mut out, opcode, args, resolve);
                out
            }

            /// [`Instruction::resolve`] written into `out` (the one definition of
            /// the resolution; `Invalid` when there is no opcode or the operands do
            /// not fit its format). The loader fills its table this way: each arm
            /// stores its fields straight into the slot, where a returned value is
            /// assembled on the stack and copied with wider loads than the stores
            /// that built it (a store-forwarding stall per instruction).
            #[inline]
            pub fn resolve_into(
                out: &mut Instruction,
                opcode: Option<Opcode>,
                args: &Args,
                resolve: &dyn Fn(i64) -> Target,
            ) {
                let Some(opcode) = opcode else {
                    *out = Instruction::Invalid;
                    return;
                };
                match opcode {
                    $(Opcode::$name => match resolve_operands(args, resolve) {
                        Some(o) => *out = Instruction::$name(o),
                        None => *out = Instruction::Invalid,
                    },)*
                }
            }
        }
    };
}
for_each_opcode!(define_instruction);

impl Instruction {
    /// Whether executing this instruction may change register `r`: never for a
    /// store, only its destination for a load, and — conservatively — for any other
    /// instruction, whether it names `r` at all (PVM instructions write only
    /// registers they name).
    pub fn may_write(&self, r: Reg) -> bool {
        let Some(access) = self.opcode().and_then(crate::isa::Opcode::memory_access) else {
            return self.named_regs().contains(&Some(r));
        };
        match access.kind {
            crate::isa::AccessKind::Store => false,
            // A load's destination is the first register it names (its operand
            // `a`): `loads_name_their_destination_first` checks this against the
            // load's `memory_op` for every load opcode.
            _ => self.named_regs()[0] == Some(r),
        }
    }

    /// Whether executing this instruction ends a basic block.
    pub fn is_terminator(&self) -> bool {
        self.opcode().is_some_and(Opcode::is_terminator)
    }
}

// The interpreter copies one instruction per dispatch; keep it two words.
const _: () = assert!(std::mem::size_of::<Instruction>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn may_write_names_destinations_and_never_store_operands() {
        let p = crate::asm::assemble(
            "load_ind_u64 r1, r2, 0\nstore_ind_u64 r3, r4, 0\nadd_64 r5, r6, r7\nload_imm r8, 1\ntrap",
        )
        .unwrap()
        .program()
        .unwrap();
        let i = p.instructions();
        let writes = |k: usize| -> Vec<usize> {
            (0..13)
                .filter(|&r| i[k].may_write(Reg::new(r).unwrap()))
                .collect()
        };
        assert_eq!(writes(0), [1], "a load writes its destination only");
        assert_eq!(writes(1), Vec::<usize>::new(), "a store writes nothing");
        assert_eq!(writes(2), [5, 6, 7], "others: every register they name");
        assert_eq!(writes(3), [8]);
    }

    #[test]
    fn loads_name_their_destination_first() {
        let mut loads = 0;
        for op in (0..=255u8).filter_map(Opcode::from_u8) {
            if op
                .memory_access()
                .is_none_or(|a| a.kind == crate::isa::AccessKind::Store)
            {
                continue;
            }
            // Registers r3 and r7 in both fields, an immediate that is an address.
            let code = [op.byte(), 0x73, 0x00, 0x00, 0x01, 0x00];
            let view = CodeView::new(&code, &[0b0000_0001]);
            let d = view.decode(0);
            let ins = Instruction::resolve(d.opcode, &d.args, &|_| Target::INVALID);
            let Some(crate::memop::MemoryOp {
                data: crate::memop::MemData::Load(d),
                ..
            }) = ins.memory_op(&[0; crate::isa::NUM_REGS])
            else {
                panic!("{op:?} is a load without a load's memory op");
            };
            assert_eq!(ins.named_regs()[0], Some(d), "{op:?}");
            loads += 1;
        }
        assert_eq!(loads, 14, "7 widths, absolute and indirect");
    }

    #[test]
    fn every_opcode_resolves_to_its_own_variant() {
        for op in Opcode::ALL {
            let args = match op.format() {
                crate::isa::Format::NoArgs => Args::NoArgs,
                crate::isa::Format::Imm => Args::Imm { x: 1 },
                crate::isa::Format::RegImm64 => Args::RegImm64 { a: Reg::R1, x: 2 },
                crate::isa::Format::ImmImm => Args::ImmImm { x: 1, y: 2 },
                crate::isa::Format::Offset => Args::Offset { target: 0 },
                crate::isa::Format::RegImm => Args::RegImm { a: Reg::R1, x: 2 },
                crate::isa::Format::RegImmImm => Args::RegImmImm {
                    a: Reg::R1,
                    x: 1,
                    y: 2,
                },
                crate::isa::Format::RegImmOffset => Args::RegImmOffset {
                    a: Reg::R1,
                    x: 1,
                    target: 0,
                },
                crate::isa::Format::RegReg => Args::RegReg {
                    d: Reg::R1,
                    a: Reg::R2,
                },
                crate::isa::Format::RegRegImm => Args::RegRegImm {
                    a: Reg::R1,
                    b: Reg::R2,
                    x: 3,
                },
                crate::isa::Format::RegRegOffset => Args::RegRegOffset {
                    a: Reg::R1,
                    b: Reg::R2,
                    target: 0,
                },
                crate::isa::Format::RegRegImmImm => Args::RegRegImmImm {
                    a: Reg::R1,
                    b: Reg::R2,
                    x: 1,
                    y: 2,
                },
                crate::isa::Format::RegRegReg => Args::RegRegReg {
                    d: Reg::R1,
                    a: Reg::R2,
                    b: Reg::R3,
                },
            };
            let i = Instruction::resolve(Some(op), &args, &|_| Target(0));
            assert_eq!(i.opcode(), Some(op));
            // A mismatched format never produces a different opcode.
            let wrong = if op.format() == crate::isa::Format::NoArgs {
                Args::Imm { x: 0 }
            } else {
                Args::NoArgs
            };
            assert_eq!(
                Instruction::resolve(Some(op), &wrong, &|_| Target(0)),
                Instruction::Invalid
            );
        }
    }
}
