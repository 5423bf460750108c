//! 32-bit results whose sign extension nothing can see.
//!
//! A 32-bit operation's result is sign-extended to 64 bits (`movsxd`). When the
//! next instruction of the same block reads that register only through its low 32
//! bits (or fewer) and overwrites it, the extension is dead: nothing can observe
//! the register in between — an exit happens only at a block's gas check, at a
//! memory access or at a terminator, and the next instruction is none of these —
//! and after it the register holds the next instruction's own result. The
//! lowering then leaves the upper half as the 32-bit operation leaves it (zero)
//! and saves the `movsxd`, and the operation can work on the destination in place.
//!
//! Every path that executes the producer executes the consumer right after it: the
//! inline code, a fused run's tail copy (which jumps back to the next
//! instruction's inline code) and a store cluster's checked copy (which lowers
//! every instruction of its span on its own). No consumer starts a fused run, so
//! the consumer is always lowered on its own too.

use javm_exec::Instruction as I;
use javm_exec::Reg;

/// The register a 32-bit operation that can skip its extension writes.
fn narrow_result(ins: &I) -> Option<Reg> {
    match *ins {
        I::Add32(o) | I::Sub32(o) | I::Mul32(o) | I::ShloL32(o) | I::ShloR32(o) | I::SharR32(o) => {
            Some(o.d)
        }
        I::AddImm32(o)
        | I::MulImm32(o)
        | I::ShloLImm32(o)
        | I::ShloRImm32(o)
        | I::SharRImm32(o)
        | I::RotR32Imm(o) => Some(o.a),
        _ => None,
    }
}

/// The register `ins` writes, if it reads every source only through its low 32
/// bits or fewer, cannot exit, and is lowered on its own (starts no fused run):
/// the producers themselves and a few more.
fn low_half_consumer(ins: &I) -> Option<Reg> {
    narrow_result(ins).or(match *ins {
        I::NegAddImm32(o)
        | I::ShloLImmAlt32(o)
        | I::ShloRImmAlt32(o)
        | I::SharRImmAlt32(o)
        | I::RotR32ImmAlt(o) => Some(o.a),
        // A non-negative mask clears the upper half whatever it held.
        I::AndImm(o) if o.x >= 0 => Some(o.a),
        I::ZeroExtend16(o) | I::SignExtend8(o) | I::SignExtend16(o) => Some(o.d),
        _ => None,
    })
}

/// Whether `ins` is a 32-bit operation that could skip its extension (a cheap
/// test before looking at the next instruction).
pub(crate) fn may_skip_extension(ins: &I) -> bool {
    narrow_result(ins).is_some()
}

/// Whether `ins` is a 32-bit operation whose result never has bit 31 set — a
/// logical right shift by 1 to 31 places, or of a non-negative immediate — so
/// that its sign extension is the zero extension every 32-bit x86 operation
/// makes anyway: its unextended lowering is exact wherever it stands, whatever
/// comes next.
pub(crate) fn never_negative(ins: &I) -> bool {
    match *ins {
        I::ShloRImm32(o) => o.x & 31 != 0,
        I::ShloRImmAlt32(o) => o.x >= 0,
        _ => false,
    }
}

/// Whether `ins`, followed in its block by `next`, may leave its result
/// unextended.
pub(crate) fn extension_dead(ins: &I, next: Option<&I>) -> bool {
    let Some(d) = narrow_result(ins) else {
        return false;
    };
    next.and_then(low_half_consumer) == Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use javm_exec::asm::assemble;

    fn pair(src: &str) -> bool {
        let ins = assemble(&format!("{src}\ntrap"))
            .unwrap()
            .program()
            .unwrap();
        let ins = ins.instructions();
        extension_dead(&ins[0], ins.get(1))
    }

    #[test]
    fn only_a_low_half_consumer_that_overwrites_the_result_kills_it() {
        assert!(pair("sub_32 r1, r2, r1\nsub_32 r1, r1, r3"));
        assert!(pair("sub_32 r1, r2, r1\nand_imm r1, r1, 255"));
        assert!(pair("add_imm_32 r1, r2, 5\nshlo_l_imm_32 r1, r1, 3"));
        assert!(pair("mul_32 r4, r4, r5\nsign_extend_8 r4, r4"));
        // Does not overwrite it, reads all 64 bits, may exit, or masks with a
        // negative (upper-half-keeping) immediate.
        assert!(!pair("sub_32 r1, r2, r1\nsub_32 r2, r1, r3"));
        assert!(!pair("sub_32 r1, r2, r1\nadd_64 r1, r1, r3"));
        assert!(!pair("sub_32 r1, r2, r1\nload_ind_u32 r1, r1, 0"));
        assert!(!pair("sub_32 r1, r2, r1\nand_imm r1, r1, -256"));
        assert!(!pair("sub_64 r1, r2, r1\nsub_32 r1, r1, r3"));
        assert!(!pair("sub_32 r1, r2, r1"));
    }

    #[test]
    fn only_a_shift_that_clears_bit_31_is_never_negative() {
        let one = |src: &str| {
            let p = assemble(&format!("{src}\ntrap"))
                .unwrap()
                .program()
                .unwrap();
            never_negative(&p.instructions()[0])
        };
        assert!(one("shlo_r_imm_32 r1, r2, 1"));
        assert!(one("shlo_r_imm_32 r1, r2, 31"));
        assert!(one("shlo_r_imm_32 r1, r2, 33"), "the amount counts mod 32");
        assert!(one("shlo_r_imm_alt_32 r1, r2, 0x7fffffff"));
        assert!(one("shlo_r_imm_alt_32 r1, r2, 0"));
        // A shift by 0 mod 32 keeps bit 31; a negative immediate shifted by 0 has
        // it; an arithmetic shift copies it.
        assert!(!one("shlo_r_imm_32 r1, r2, 0"));
        assert!(!one("shlo_r_imm_32 r1, r2, 32"));
        assert!(!one("shlo_r_imm_alt_32 r1, r2, -1"));
        assert!(!one("shar_r_imm_32 r1, r2, 4"));
        assert!(!one("shlo_r_32 r1, r2, r3"));
    }
}
