//! Decoded operands, one variant per [`Format`](super::Format), with semantic values:
//! immediates sign-extended to 64 bits and branch targets as absolute positions.

use super::Reg;

/// The operands of one instruction as the encoding states them.
///
/// Immediates other than `load_imm_64`'s are sign-extended values of at most 4 bytes,
/// so they always lie in `i32` range. Targets are `pc + offset` computed as integers,
/// so they may be negative or beyond the code (such targets make a branch panic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(
    missing_docs,
    reason = "field names follow docs/ISA.md §3.3: a, b, d registers; x, y immediates"
)]
pub enum Args {
    NoArgs,
    Imm { x: i64 },
    RegImm64 { a: Reg, x: u64 },
    ImmImm { x: i64, y: i64 },
    Offset { target: i64 },
    RegImm { a: Reg, x: i64 },
    RegImmImm { a: Reg, x: i64, y: i64 },
    RegImmOffset { a: Reg, x: i64, target: i64 },
    RegReg { d: Reg, a: Reg },
    RegRegImm { a: Reg, b: Reg, x: i64 },
    RegRegOffset { a: Reg, b: Reg, target: i64 },
    RegRegImmImm { a: Reg, b: Reg, x: i64, y: i64 },
    RegRegReg { d: Reg, a: Reg, b: Reg },
}

impl Args {
    /// The format these operands belong to.
    pub const fn format(&self) -> super::Format {
        use super::Format as F;
        match self {
            Args::NoArgs => F::NoArgs,
            Args::Imm { .. } => F::Imm,
            Args::RegImm64 { .. } => F::RegImm64,
            Args::ImmImm { .. } => F::ImmImm,
            Args::Offset { .. } => F::Offset,
            Args::RegImm { .. } => F::RegImm,
            Args::RegImmImm { .. } => F::RegImmImm,
            Args::RegImmOffset { .. } => F::RegImmOffset,
            Args::RegReg { .. } => F::RegReg,
            Args::RegRegImm { .. } => F::RegRegImm,
            Args::RegRegOffset { .. } => F::RegRegOffset,
            Args::RegRegImmImm { .. } => F::RegRegImmImm,
            Args::RegRegReg { .. } => F::RegRegReg,
        }
    }

    /// The static branch target, for the formats that have one.
    pub const fn target(&self) -> Option<i64> {
        match *self {
            Args::Offset { target }
            | Args::RegImmOffset { target, .. }
            | Args::RegRegOffset { target, .. } => Some(target),
            _ => None,
        }
    }
}
