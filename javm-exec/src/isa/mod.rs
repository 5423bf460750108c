//! The PVM instruction set, defined once.
//!
//! `for_each_opcode!` is the single table of all 141 JAVM opcodes: number, enum
//! variant, mnemonic, operand [`Format`], terminator flag (the RECOMMENDED set
//! `T_JAVM` of docs/ISA.md §3.2) and [`CostEntry`] for the single-pass gas model (ISA.md
//! §5.2). Everything else is derived from it: [`Opcode`] and its lookups here, the
//! engine-facing [`crate::Instruction`] enum, the decoder, encoder, assembler,
//! disassembler and gas pass. Adding or changing an opcode means editing one row.

mod args;
mod cost;
mod decode;
mod encode;
mod format;
mod reg;
mod semantics;

pub use args::Args;
pub use cost::{CostEntry, Cycles, SRC_A, SRC_B, SRC_D, Slots};
pub use decode::{CodeView, Decoded, MAX_SKIP, sign_extend};
pub use encode::{EncodeError, Encoded, encode, imm_len};
pub use format::Format;
pub use reg::{NUM_REGS, Reg};

#[cfg(test)]
pub(crate) use encode::tests as encode_tests_support;

/// Invokes `$m!` with every row of the ISA table:
/// `[number, Variant, "mnemonic", Format, is_terminator, cost_entry]`.
macro_rules! for_each_opcode {
    ($m:ident) => {
        $m! {
            // F0: no arguments.
            [0, Trap, "trap", NoArgs, true, e(C(2), S(1), 0, N)],
            [1, Fallthrough, "fallthrough", NoArgs, true, e(C(2), S(1), 0, N)],
            [2, Unlikely, "unlikely", NoArgs, true, e(C(40), S(1), 0, N)],
            [3, Ecall, "ecall", NoArgs, true, e(C(1), S(1), 0, N)],
            // F1, F2, F3, F4.
            [10, Ecalli, "ecalli", Imm, true, e(C(100), S(4), 0, N)],
            [20, LoadImm64, "load_imm_64", RegImm64, false, e(C(1), S(2), 0, W)],
            [30, StoreImmU8, "store_imm_u8", ImmImm, false, e(MEM, S(1), 0, N)],
            [31, StoreImmU16, "store_imm_u16", ImmImm, false, e(MEM, S(1), 0, N)],
            [32, StoreImmU32, "store_imm_u32", ImmImm, false, e(MEM, S(1), 0, N)],
            [33, StoreImmU64, "store_imm_u64", ImmImm, false, e(MEM, S(1), 0, N)],
            [40, Jump, "jump", Offset, true, e(C(15), S(1), 0, N)],
            // F5: one register and one immediate.
            [50, JumpInd, "jump_ind", RegImm, true, e(C(22), S(1), 0, N)],
            [51, LoadImm, "load_imm", RegImm, false, e(C(1), S(1), 0, W)],
            [52, LoadU8, "load_u8", RegImm, false, e(MEM, S(1), SRC_B, W)],
            [53, LoadI8, "load_i8", RegImm, false, e(MEM, S(1), SRC_B, W)],
            [54, LoadU16, "load_u16", RegImm, false, e(MEM, S(1), SRC_B, W)],
            [55, LoadI16, "load_i16", RegImm, false, e(MEM, S(1), SRC_B, W)],
            [56, LoadU32, "load_u32", RegImm, false, e(MEM, S(1), SRC_B, W)],
            [57, LoadI32, "load_i32", RegImm, false, e(MEM, S(1), SRC_B, W)],
            [58, LoadU64, "load_u64", RegImm, false, e(MEM, S(1), SRC_B, W)],
            [59, StoreU8, "store_u8", RegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            [60, StoreU16, "store_u16", RegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            [61, StoreU32, "store_u32", RegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            [62, StoreU64, "store_u64", RegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            // F6: one register and two immediates.
            [70, StoreImmIndU8, "store_imm_ind_u8", RegImmImm, false, e(MEM, S(1), SRC_A, N)],
            [71, StoreImmIndU16, "store_imm_ind_u16", RegImmImm, false, e(MEM, S(1), SRC_A, N)],
            [72, StoreImmIndU32, "store_imm_ind_u32", RegImmImm, false, e(MEM, S(1), SRC_A, N)],
            [73, StoreImmIndU64, "store_imm_ind_u64", RegImmImm, false, e(MEM, S(1), SRC_A, N)],
            // F7: one register, an immediate and an offset.
            [80, LoadImmJump, "load_imm_jump", RegImmOffset, true, e(C(15), S(1), 0, W)],
            [81, BranchEqImm, "branch_eq_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [82, BranchNeImm, "branch_ne_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [83, BranchLtUImm, "branch_lt_u_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [84, BranchLeUImm, "branch_le_u_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [85, BranchGeUImm, "branch_ge_u_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [86, BranchGtUImm, "branch_gt_u_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [87, BranchLtSImm, "branch_lt_s_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [88, BranchLeSImm, "branch_le_s_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [89, BranchGeSImm, "branch_ge_s_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            [90, BranchGtSImm, "branch_gt_s_imm", RegImmOffset, true, e(BR, S(1), SRC_A, N)],
            // F8: two registers (rD = low nibble, rA = high nibble).
            [100, MoveReg, "move_reg", RegReg, false, e(RN, S(1), SRC_B, W)],
            [101, Sbrk, "sbrk", RegReg, false, e(C(2), S(1), 0, N)],
            [102, CountSetBits64, "count_set_bits_64", RegReg, false, e(C(1), S(1), SRC_B, W)],
            [103, CountSetBits32, "count_set_bits_32", RegReg, false, e(C(1), S(1), SRC_B, W)],
            [104, LeadingZeroBits64, "leading_zero_bits_64", RegReg, false, e(C(1), S(1), SRC_B, W)],
            [105, LeadingZeroBits32, "leading_zero_bits_32", RegReg, false, e(C(1), S(1), SRC_B, W)],
            [106, TrailingZeroBits64, "trailing_zero_bits_64", RegReg, false, e(C(2), S(1), SRC_B, W)],
            [107, TrailingZeroBits32, "trailing_zero_bits_32", RegReg, false, e(C(2), S(1), SRC_B, W)],
            [108, SignExtend8, "sign_extend_8", RegReg, false, e(C(1), S(1), SRC_B, W)],
            [109, SignExtend16, "sign_extend_16", RegReg, false, e(C(1), S(1), SRC_B, W)],
            [110, ZeroExtend16, "zero_extend_16", RegReg, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [111, ReverseBytes, "reverse_bytes", RegReg, false, e(C(1), S(1), SRC_B, W)],
            // F9: two registers and one immediate (rA = low nibble, rB = high nibble).
            [120, StoreIndU8, "store_ind_u8", RegRegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            [121, StoreIndU16, "store_ind_u16", RegRegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            [122, StoreIndU32, "store_ind_u32", RegRegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            [123, StoreIndU64, "store_ind_u64", RegRegImm, false, e(MEM, S(1), SRC_A | SRC_B, N)],
            [124, LoadIndU8, "load_ind_u8", RegRegImm, false, e(MEM, S(1), SRC_B, W)],
            [125, LoadIndI8, "load_ind_i8", RegRegImm, false, e(MEM, S(1), SRC_B, W)],
            [126, LoadIndU16, "load_ind_u16", RegRegImm, false, e(MEM, S(1), SRC_B, W)],
            [127, LoadIndI16, "load_ind_i16", RegRegImm, false, e(MEM, S(1), SRC_B, W)],
            [128, LoadIndU32, "load_ind_u32", RegRegImm, false, e(MEM, S(1), SRC_B, W)],
            [129, LoadIndI32, "load_ind_i32", RegRegImm, false, e(MEM, S(1), SRC_B, W)],
            [130, LoadIndU64, "load_ind_u64", RegRegImm, false, e(MEM, S(1), SRC_B, W)],
            [131, AddImm32, "add_imm_32", RegRegImm, false, e(C(2), Ov1(2, 3), SRC_B, W)],
            [132, AndImm, "and_imm", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [133, XorImm, "xor_imm", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [134, OrImm, "or_imm", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [135, MulImm32, "mul_imm_32", RegRegImm, false, e(C(4), Ov1(2, 3), SRC_B, W)],
            [136, SetLtUImm, "set_lt_u_imm", RegRegImm, false, e(C(3), S(3), SRC_B, W)],
            [137, SetLtSImm, "set_lt_s_imm", RegRegImm, false, e(C(3), S(3), SRC_B, W)],
            [138, ShloLImm32, "shlo_l_imm_32", RegRegImm, false, e(C(2), Ov1(2, 3), SRC_B, W)],
            [139, ShloRImm32, "shlo_r_imm_32", RegRegImm, false, e(C(2), Ov1(2, 3), SRC_B, W)],
            [140, SharRImm32, "shar_r_imm_32", RegRegImm, false, e(C(2), Ov1(2, 3), SRC_B, W)],
            [141, NegAddImm32, "neg_add_imm_32", RegRegImm, false, e(C(3), S(4), SRC_B, W)],
            [142, SetGtUImm, "set_gt_u_imm", RegRegImm, false, e(C(3), S(3), SRC_B, W)],
            [143, SetGtSImm, "set_gt_s_imm", RegRegImm, false, e(C(3), S(3), SRC_B, W)],
            [144, ShloLImmAlt32, "shlo_l_imm_alt_32", RegRegImm, false, e(C(2), S(4), SRC_B, W)],
            [145, ShloRImmAlt32, "shlo_r_imm_alt_32", RegRegImm, false, e(C(2), S(4), SRC_B, W)],
            [146, SharRImmAlt32, "shar_r_imm_alt_32", RegRegImm, false, e(C(2), S(4), SRC_B, W)],
            [147, CmovIzImm, "cmov_iz_imm", RegRegImm, false, e(C(2), S(3), SRC_B, W)],
            [148, CmovNzImm, "cmov_nz_imm", RegRegImm, false, e(C(2), S(3), SRC_B, W)],
            [149, AddImm64, "add_imm_64", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [150, MulImm64, "mul_imm_64", RegRegImm, false, e(C(3), Ov1(1, 2), SRC_B, W)],
            [151, ShloLImm64, "shlo_l_imm_64", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [152, ShloRImm64, "shlo_r_imm_64", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [153, SharRImm64, "shar_r_imm_64", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [154, NegAddImm64, "neg_add_imm_64", RegRegImm, false, e(C(2), S(3), SRC_B, W)],
            [155, ShloLImmAlt64, "shlo_l_imm_alt_64", RegRegImm, false, e(C(1), S(3), SRC_B, W)],
            [156, ShloRImmAlt64, "shlo_r_imm_alt_64", RegRegImm, false, e(C(1), S(3), SRC_B, W)],
            [157, SharRImmAlt64, "shar_r_imm_alt_64", RegRegImm, false, e(C(1), S(3), SRC_B, W)],
            [158, RotR64Imm, "rot_r_64_imm", RegRegImm, false, e(C(1), Ov1(1, 2), SRC_B, W)],
            [159, RotR64ImmAlt, "rot_r_64_imm_alt", RegRegImm, false, e(C(1), S(3), SRC_B, W)],
            [160, RotR32Imm, "rot_r_32_imm", RegRegImm, false, e(C(2), Ov1(2, 3), SRC_B, W)],
            [161, RotR32ImmAlt, "rot_r_32_imm_alt", RegRegImm, false, e(C(2), S(4), SRC_B, W)],
            // F10: two registers and an offset.
            [170, BranchEq, "branch_eq", RegRegOffset, true, e(BR, S(1), SRC_A | SRC_B, N)],
            [171, BranchNe, "branch_ne", RegRegOffset, true, e(BR, S(1), SRC_A | SRC_B, N)],
            [172, BranchLtU, "branch_lt_u", RegRegOffset, true, e(BR, S(1), SRC_A | SRC_B, N)],
            [173, BranchLtS, "branch_lt_s", RegRegOffset, true, e(BR, S(1), SRC_A | SRC_B, N)],
            [174, BranchGeU, "branch_ge_u", RegRegOffset, true, e(BR, S(1), SRC_A | SRC_B, N)],
            [175, BranchGeS, "branch_ge_s", RegRegOffset, true, e(BR, S(1), SRC_A | SRC_B, N)],
            // F11: two registers and two immediates.
            [180, LoadImmJumpInd, "load_imm_jump_ind", RegRegImmImm, true, e(C(22), S(1), SRC_B, W)],
            // F12: three registers (rD = whole byte 2).
            [190, Add32, "add_32", RegRegReg, false, e(C(2), Ov2(2, 3), BD, W)],
            [191, Sub32, "sub_32", RegRegReg, false, e(C(2), Ov2(2, 3), BD, W)],
            [192, Mul32, "mul_32", RegRegReg, false, e(C(4), Ov2(2, 3), BD, W)],
            [193, DivU32, "div_u_32", RegRegReg, false, e(C(60), S(4), BD, W)],
            [194, DivS32, "div_s_32", RegRegReg, false, e(C(60), S(4), BD, W)],
            [195, RemU32, "rem_u_32", RegRegReg, false, e(C(60), S(4), BD, W)],
            [196, RemS32, "rem_s_32", RegRegReg, false, e(C(60), S(4), BD, W)],
            [197, ShloL32, "shlo_l_32", RegRegReg, false, e(C(2), OvS(3, 4), BD, W)],
            [198, ShloR32, "shlo_r_32", RegRegReg, false, e(C(2), OvS(3, 4), BD, W)],
            [199, SharR32, "shar_r_32", RegRegReg, false, e(C(2), OvS(3, 4), BD, W)],
            [200, Add64, "add_64", RegRegReg, false, e(C(1), Ov2(1, 2), BD, W)],
            [201, Sub64, "sub_64", RegRegReg, false, e(C(1), Ov2(1, 2), BD, W)],
            [202, Mul64, "mul_64", RegRegReg, false, e(C(3), Ov2(1, 2), BD, W)],
            [203, DivU64, "div_u_64", RegRegReg, false, e(C(60), S(4), BD, W)],
            [204, DivS64, "div_s_64", RegRegReg, false, e(C(60), S(4), BD, W)],
            [205, RemU64, "rem_u_64", RegRegReg, false, e(C(60), S(4), BD, W)],
            [206, RemS64, "rem_s_64", RegRegReg, false, e(C(60), S(4), BD, W)],
            [207, ShloL64, "shlo_l_64", RegRegReg, false, e(C(1), OvS(2, 3), BD, W)],
            [208, ShloR64, "shlo_r_64", RegRegReg, false, e(C(1), OvS(2, 3), BD, W)],
            [209, SharR64, "shar_r_64", RegRegReg, false, e(C(1), OvS(2, 3), BD, W)],
            [210, And, "and", RegRegReg, false, e(C(1), Ov2(1, 2), BD, W)],
            [211, Xor, "xor", RegRegReg, false, e(C(1), Ov2(1, 2), BD, W)],
            [212, Or, "or", RegRegReg, false, e(C(1), Ov2(1, 2), BD, W)],
            [213, MulUpperSS, "mul_upper_s_s", RegRegReg, false, e(C(4), S(4), BD, W)],
            [214, MulUpperUU, "mul_upper_u_u", RegRegReg, false, e(C(4), S(4), BD, W)],
            [215, MulUpperSU, "mul_upper_s_u", RegRegReg, false, e(C(6), S(4), BD, W)],
            [216, SetLtU, "set_lt_u", RegRegReg, false, e(C(3), S(3), BD, W)],
            [217, SetLtS, "set_lt_s", RegRegReg, false, e(C(3), S(3), BD, W)],
            [218, CmovIz, "cmov_iz", RegRegReg, false, e(C(2), S(2), BD, W)],
            [219, CmovNz, "cmov_nz", RegRegReg, false, e(C(2), S(2), BD, W)],
            [220, RotL64, "rot_l_64", RegRegReg, false, e(C(1), OvS(2, 3), BD, W)],
            [221, RotL32, "rot_l_32", RegRegReg, false, e(C(2), OvS(3, 4), BD, W)],
            [222, RotR64, "rot_r_64", RegRegReg, false, e(C(1), OvS(2, 3), BD, W)],
            [223, RotR32, "rot_r_32", RegRegReg, false, e(C(2), OvS(3, 4), BD, W)],
            [224, AndInv, "and_inv", RegRegReg, false, e(C(2), S(3), BD, W)],
            [225, OrInv, "or_inv", RegRegReg, false, e(C(2), S(3), BD, W)],
            [226, Xnor, "xnor", RegRegReg, false, e(C(2), Ov2(2, 3), BD, W)],
            [227, Max, "max", RegRegReg, false, e(C(3), Ov2(2, 3), BD, W)],
            [228, MaxU, "max_u", RegRegReg, false, e(C(3), Ov2(2, 3), BD, W)],
            [229, Min, "min", RegRegReg, false, e(C(3), Ov2(2, 3), BD, W)],
            [230, MinU, "min_u", RegRegReg, false, e(C(3), Ov2(2, 3), BD, W)],
        }
    };
}
pub(crate) use for_each_opcode;

// Short names used by the table rows above.
use Cycles::{Branch as BR, Fixed as C, Mem as MEM, Rename as RN};
use Slots::{Fixed as S, Ov1, Ov2, OvS};
const N: bool = false;
const W: bool = true;
const BD: u8 = SRC_B | SRC_D;
const fn e(cycles: Cycles, slots: Slots, srcs: u8, dst_a: bool) -> CostEntry {
    CostEntry::new(cycles, slots, srcs, dst_a)
}

/// Number of defined opcodes.
pub const NUM_OPCODES: usize = 141;

macro_rules! define_opcode {
    ($([$num:literal, $name:ident, $mnemonic:literal, $format:ident, $term:expr, $cost:expr]),* $(,)?) => {
        /// A defined PVM opcode (JAVM: the 139 of GP 0.7.1 plus `unlikely` and `ecall`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[allow(missing_docs, reason = "each variant is documented by its mnemonic and docs/ISA.md §4")]
        pub enum Opcode {
            $($name = $num,)*
        }

        impl Opcode {
            /// Every opcode, in numeric order.
            pub const ALL: [Opcode; NUM_OPCODES] = [$(Opcode::$name,)*];

            /// The opcode with byte value `byte`, if it is defined.
            #[inline(always)]
            pub const fn from_u8(byte: u8) -> Option<Opcode> {
                BY_BYTE[byte as usize]
            }

            /// The assembler mnemonic.
            pub const fn mnemonic(self) -> &'static str {
                match self {
                    $(Opcode::$name => $mnemonic,)*
                }
            }

            /// The operand format.
            #[inline(always)]
            pub const fn format(self) -> Format {
                FORMATS[self as usize]
            }

            /// Whether the instruction ends a basic block (`T_JAVM`, docs/ISA.md §3.2).
            #[inline(always)]
            pub const fn is_terminator(self) -> bool {
                TERMINATORS[self as usize]
            }

            /// The opcode's entry in the single-pass gas model.
            #[inline(always)]
            pub const fn cost(self) -> CostEntry {
                COSTS[self as usize]
            }
        }

        // The table's columns indexed by opcode byte, built at compile time from the
        // rows above: loading, pricing and compiling look these up per instruction,
        // where a 141-arm match was an out-of-line call.
        const BY_BYTE: [Option<Opcode>; 256] = {
            let mut t = [None; 256];
            $(t[$num] = Some(Opcode::$name);)*
            t
        };
        const FORMATS: [Format; 256] = {
            let mut t = [Format::NoArgs; 256];
            $(t[$num] = Format::$format;)*
            t
        };
        const TERMINATORS: [bool; 256] = {
            let mut t = [false; 256];
            $(t[$num] = $term;)*
            t
        };
        const COSTS: [CostEntry; 256] = {
            let mut t = [CostEntry::INVALID; 256];
            $(t[$num] = $cost;)*
            t
        };
    };
}
for_each_opcode!(define_opcode);

impl Opcode {
    /// The opcode's byte value.
    #[inline]
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// Look an opcode up by its mnemonic.
    pub fn from_mnemonic(s: &str) -> Option<Opcode> {
        Opcode::ALL.into_iter().find(|op| op.mnemonic() == s)
    }

    /// The access width in bytes and direction of a load or store, `None` for other
    /// instructions. A table lookup (the compiler asks per instruction, several
    /// times), built at compile time from the match that defines it.
    #[inline(always)]
    pub const fn memory_access(self) -> Option<MemAccess> {
        MEMORY_ACCESS[self as usize]
    }

    /// The definition of [`Opcode::memory_access`].
    const fn memory_access_by_match(self) -> Option<MemAccess> {
        use Opcode::*;
        let (width, kind) = match self {
            LoadU8 | LoadIndU8 => (1, AccessKind::LoadUnsigned),
            LoadI8 | LoadIndI8 => (1, AccessKind::LoadSigned),
            LoadU16 | LoadIndU16 => (2, AccessKind::LoadUnsigned),
            LoadI16 | LoadIndI16 => (2, AccessKind::LoadSigned),
            LoadU32 | LoadIndU32 => (4, AccessKind::LoadUnsigned),
            LoadI32 | LoadIndI32 => (4, AccessKind::LoadSigned),
            LoadU64 | LoadIndU64 => (8, AccessKind::LoadUnsigned),
            StoreImmU8 | StoreU8 | StoreImmIndU8 | StoreIndU8 => (1, AccessKind::Store),
            StoreImmU16 | StoreU16 | StoreImmIndU16 | StoreIndU16 => (2, AccessKind::Store),
            StoreImmU32 | StoreU32 | StoreImmIndU32 | StoreIndU32 => (4, AccessKind::Store),
            StoreImmU64 | StoreU64 | StoreImmIndU64 | StoreIndU64 => (8, AccessKind::Store),
            _ => return None,
        };
        Some(MemAccess { width, kind })
    }

    /// Whether this is a store (it counts towards the block reserve, docs/ISA.md §5).
    pub const fn is_store(self) -> bool {
        matches!(
            self.memory_access(),
            Some(MemAccess {
                kind: AccessKind::Store,
                ..
            })
        )
    }

    /// Whether the instruction's immediate `X` is an absolute address (the F3 and F5
    /// memory forms). The disassembler prints such immediates as hexadecimal `u32`.
    pub const fn has_absolute_address(self) -> bool {
        matches!(self.format(), Format::ImmImm)
            || (matches!(self.format(), Format::RegImm) && self.memory_access().is_some())
    }
}

/// Direction (and, for loads, extension) of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// A load that zero-extends.
    LoadUnsigned,
    /// A load that sign-extends.
    LoadSigned,
    /// A store.
    Store,
}

/// [`Opcode::memory_access`] of every opcode, by opcode byte.
const MEMORY_ACCESS: [Option<MemAccess>; 256] = {
    let mut t = [None; 256];
    let mut i = 0;
    while i < NUM_OPCODES {
        let op = Opcode::ALL[i];
        t[op as usize] = op.memory_access_by_match();
        i += 1;
    }
    t
};

/// Width and kind of a load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccess {
    /// Bytes accessed: 1, 2, 4 or 8.
    pub width: u32,
    /// Load or store.
    pub kind: AccessKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_141_unique_opcodes_in_order() {
        assert_eq!(Opcode::ALL.len(), 141);
        for w in Opcode::ALL.windows(2) {
            assert!(w[0].byte() < w[1].byte(), "{:?} before {:?}", w[0], w[1]);
        }
        let defined = (0..=255u8)
            .filter(|&b| Opcode::from_u8(b).is_some())
            .count();
        assert_eq!(defined, 141);
        for op in Opcode::ALL {
            assert_eq!(Opcode::from_u8(op.byte()), Some(op));
            assert_eq!(Opcode::from_mnemonic(op.mnemonic()), Some(op));
        }
    }

    #[test]
    fn gp_numbering() {
        // docs/ISA.md §3.1: sbrk = 101, count_set_bits_64 … reverse_bytes = 102 … 111.
        assert_eq!(Opcode::Sbrk.byte(), 101);
        assert_eq!(Opcode::CountSetBits64.byte(), 102);
        assert_eq!(Opcode::ReverseBytes.byte(), 111);
        assert_eq!(Opcode::Unlikely.byte(), 2);
        assert_eq!(Opcode::Ecall.byte(), 3);
    }

    #[test]
    fn valid_opcode_set_matches_isa_section_3_1() {
        let ranges: &[(u8, u8)] = &[
            (0, 3),
            (10, 10),
            (20, 20),
            (30, 33),
            (40, 40),
            (50, 62),
            (70, 73),
            (80, 90),
            (100, 111),
            (120, 161),
            (170, 175),
            (180, 180),
            (190, 230),
        ];
        for b in 0..=255u8 {
            let expected = ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b));
            assert_eq!(Opcode::from_u8(b).is_some(), expected, "opcode byte {b}");
        }
    }

    #[test]
    fn terminators_are_t_javm() {
        let mut expected = vec![0u8, 1, 2, 3, 10, 40, 50, 80, 180];
        expected.extend(81..=90);
        expected.extend(170..=175);
        let got: Vec<u8> = Opcode::ALL
            .iter()
            .filter(|op| op.is_terminator())
            .map(|op| op.byte())
            .collect();
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn memory_access_looks_up_its_definition() {
        for op in Opcode::ALL {
            assert_eq!(op.memory_access(), op.memory_access_by_match(), "{op:?}");
        }
    }

    #[test]
    fn memory_access_table() {
        let stores: Vec<u8> = Opcode::ALL
            .iter()
            .filter(|o| o.is_store())
            .map(|o| o.byte())
            .collect();
        let mut expected: Vec<u8> = (30..=33)
            .chain(59..=62)
            .chain(70..=73)
            .chain(120..=123)
            .collect();
        expected.sort();
        assert_eq!(stores, expected);
        let loads = Opcode::ALL
            .iter()
            .filter(|o| matches!(o.memory_access(), Some(m) if m.kind != AccessKind::Store))
            .count();
        assert_eq!(loads, 14);
        assert_eq!(Opcode::LoadI16.memory_access().unwrap().width, 2);
        assert_eq!(Opcode::StoreImmIndU64.memory_access().unwrap().width, 8);
    }
}
