//! The per-opcode entry of the JAVM single-pass gas model (docs/ISA.md §5.2).
//!
//! Each opcode's row in the ISA table carries one [`CostEntry`]: its latency in
//! cycles, how many decode slots it takes (possibly depending on operand overlap), and
//! which operand *fields* the model reads and writes. The model is a function of the
//! encoding, not a data-flow model: for three-register ops it treats field A as the
//! destination and B, D as sources (docs/ISA.md §5.2), and the gas pass in
//! [`crate::gas::model`] replicates that exactly.

/// Latency of an instruction in the pipeline model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cycles {
    /// A fixed number of cycles.
    Fixed(u8),
    /// The memory tier's cycles (`25 × s`, see [`crate::gas::MemTier`]).
    Mem,
    /// Branch cost: 1 if the static target is a `trap` or `unlikely` instruction
    /// start inside the code, else 20.
    Branch,
    /// `move_reg`: a zero-cycle rename (`ready[A] = ready[B]`, `max_done` untouched).
    Rename,
}

/// Decode slots an instruction takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slots {
    /// A fixed number of slots.
    Fixed(u8),
    /// `(x, y)`: `x` slots if A == B (fields clamped to r12), else `y`.
    Ov1(u8, u8),
    /// `(x, y)`: `x` slots if A ∈ {B, D}, else `y`.
    Ov2(u8, u8),
    /// `(x, y)`: `x` slots if the *raw* nibbles of A and B are equal, else `y`
    /// (shifts and rotates; the Rust v2 rule, RECOMMENDED in docs/ISA.md §4, the slots column).
    OvS(u8, u8),
}

/// Source field A.
pub const SRC_A: u8 = 1;
/// Source field B.
pub const SRC_B: u8 = 2;
/// Source field D.
pub const SRC_D: u8 = 4;

/// One opcode's entry in the single-pass gas model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostEntry {
    /// Latency.
    pub cycles: Cycles,
    /// Decode slots.
    pub slots: Slots,
    /// Source fields, a set of [`SRC_A`], [`SRC_B`], [`SRC_D`].
    pub srcs: u8,
    /// Whether field A is written.
    pub dst_a: bool,
}

impl CostEntry {
    /// Build an entry (used by the ISA table).
    pub const fn new(cycles: Cycles, slots: Slots, srcs: u8, dst_a: bool) -> CostEntry {
        CostEntry {
            cycles,
            slots,
            srcs,
            dst_a,
        }
    }

    /// The entry for a position that is not a valid instruction: 1 cycle, 1 slot,
    /// no registers, does not end the block (docs/ISA.md §3.1).
    pub const INVALID: CostEntry = CostEntry::new(Cycles::Fixed(1), Slots::Fixed(1), 0, false);
}
