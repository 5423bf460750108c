//! Operand formats (docs/ISA.md §3.3), shared by the decoder, the encoder and the
//! disassembler.

/// How an instruction's operand bytes are laid out. Names follow the operands:
/// `Reg` a register nibble, `Imm` a sign-extended immediate of at most 4 bytes,
/// `Imm64` the raw 8-byte immediate of `load_imm_64`, `Offset` a signed branch offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// F0 `[op]`.
    NoArgs,
    /// F1 `[op][X…]`, `lX = min(4, ℓ)`.
    Imm,
    /// F2 `[op][rA][X: 8 bytes]`.
    RegImm64,
    /// F3 `[op][lX][X][Y]`.
    ImmImm,
    /// F4 `[op][offset…]`.
    Offset,
    /// F5 `[op][rA][X…]`.
    RegImm,
    /// F6 `[op][rA | lX<<4][X][Y]`.
    RegImmImm,
    /// F7 `[op][rA | lX<<4][X][offset]`.
    RegImmOffset,
    /// F8 `[op][rD | rA<<4]`.
    RegReg,
    /// F9 `[op][rA | rB<<4][X…]`.
    RegRegImm,
    /// F10 `[op][rA | rB<<4][offset…]`.
    RegRegOffset,
    /// F11 `[op][rA | rB<<4][lX][X][Y]`.
    RegRegImmImm,
    /// F12 `[op][rA | rB<<4][rD]`.
    RegRegReg,
}

impl Format {
    /// The operands in assembler order (`docs/ASSEMBLY.md`), e.g. `rA, rB, X`; empty
    /// for [`Format::NoArgs`].
    pub const fn operands(self) -> &'static str {
        match self {
            Format::NoArgs => "",
            Format::Imm => "X",
            Format::RegImm64 | Format::RegImm => "rA, X",
            Format::ImmImm => "X, Y",
            Format::Offset => "target",
            Format::RegImmImm => "rA, X, Y",
            Format::RegImmOffset => "rA, X, target",
            Format::RegReg => "rD, rA",
            Format::RegRegImm => "rA, rB, X",
            Format::RegRegOffset => "rA, rB, target",
            Format::RegRegImmImm => "rA, rB, X, Y",
            Format::RegRegReg => "rD, rA, rB",
        }
    }
}
