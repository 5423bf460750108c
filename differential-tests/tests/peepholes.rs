//! Single-instruction peepholes of the recompiler (`javm-jit-x86/src/codegen/
//! lower.rs`) against the interpreter: `and_imm` with the masks it lowers as zero
//! extensions, moves and clears; the high multiplies lowered with `mulx`; small
//! shifts left, whose `lea` form was tried and not kept, next to them; `sub_32`
//! and `mul_32`, computed in place when the destination is a source; 32-bit
//! results whose sign extension the next instruction makes dead; logical right
//! shifts whose result is never negative, left unextended wherever they stand. Every
//! aliasing of destination and sources, register values with the sign and high
//! bits that tell a wrong extension apart, and near-miss immediates.

#![cfg(jit)]

use std::sync::Arc;

use differential_tests::jit;
use differential_tests::oracle::{Case, compare};
use javm_exec::asm::assemble;
use javm_exec::{GasProfile, Interpreter, MemoryLayout};
use proptest::prelude::*;

fn item() -> impl Strategy<Value = String> {
    let reg = || 0u8..13;
    let mask = prop_oneof![
        Just(255i64),
        Just(65535),
        Just(-1),
        Just(0),
        Just(254),
        Just(256),
        Just(65534),
        Just(0x7fff_ffff),
        any::<i32>().prop_map(i64::from),
    ];
    let amount = prop_oneof![4 => 1u8..4, 1 => 0u8..64];
    let mul = prop_oneof![
        Just("mul_upper_u_u"),
        Just("mul_upper_s_u"),
        Just("mul_upper_s_s")
    ];
    prop_oneof![
        1 => (reg(), reg(), mask).prop_map(|(d, a, x)| format!("and_imm r{d}, r{a}, {x}")),
        1 => (reg(), reg(), amount.clone())
            .prop_map(|(d, a, n)| format!("shlo_l_imm_64 r{d}, r{a}, {n}")),
        1 => (reg(), reg(), amount).prop_map(|(d, a, n)| format!("shlo_l_imm_32 r{d}, r{a}, {n}")),
        1 => (mul, reg(), reg(), reg()).prop_map(|(op, d, a, b)| format!("{op} r{d}, r{a}, r{b}")),
        // A 32-bit logical right shift (by an immediate, or of an immediate) and a
        // 64-bit reader of its whole result: by 1..31 places, or of a non-negative
        // immediate, it is never negative; by 0 or 32 places, or of a negative
        // immediate, it may be.
        1 => (
            prop::bool::ANY,
            reg(),
            reg(),
            prop_oneof![Just(0i32), Just(1), Just(31), Just(32), Just(33), Just(-1), any::<i32>()],
        )
            .prop_map(|(alt, d, a, x)| {
                let op = if alt { "shlo_r_imm_alt_32" } else { "shlo_r_imm_32" };
                format!("{op} r{d}, r{a}, {x}\nadd_64 r{d}, r{d}, r{d}")
            }),
        1 => (
            prop_oneof![Just("sub_32"), Just("mul_32")],
            reg(),
            reg(),
            reg()
        )
            .prop_map(|(op, d, a, b)| format!("{op} r{d}, r{a}, r{b}")),
        // A 32-bit result and the instruction after it, which mostly reads it and
        // overwrites it (its extension is then dead), sometimes only one of the two.
        3 => (
            0..PRODUCERS,
            0..CONSUMERS.len(),
            reg(),
            reg(),
            reg(),
            reg(),
            any::<i32>(),
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(p, c, d, a, b, e, x, reads, writes)| {
                let src = if reads { d } else { a };
                let dst = if writes { d } else { e };
                format!(
                    "{}\n{}",
                    form(CONSUMERS[p], d, a, b, x),
                    form(CONSUMERS[c], dst, src, b, x / 3)
                )
            }),
    ]
}

/// Instructions with their operand shape (3: `d, a, b`; 2: `d, a, imm`; 1: `d, a`):
/// the first `PRODUCERS` are the 32-bit operations that may skip their extension
/// (`javm-jit-x86/src/codegen/narrow.rs`), then the other instructions that read
/// only a low half, then near misses that read all 64 bits.
const CONSUMERS: [(&str, u8); 23] = [
    ("add_32", 3),
    ("sub_32", 3),
    ("mul_32", 3),
    ("shlo_l_32", 3),
    ("shlo_r_32", 3),
    ("shar_r_32", 3),
    ("add_imm_32", 2),
    ("mul_imm_32", 2),
    ("shlo_l_imm_32", 2),
    ("shlo_r_imm_32", 2),
    ("shar_r_imm_32", 2),
    ("rot_r_32_imm", 2),
    ("neg_add_imm_32", 2),
    ("shlo_l_imm_alt_32", 2),
    ("shlo_r_imm_alt_32", 2),
    ("shar_r_imm_alt_32", 2),
    ("rot_r_32_imm_alt", 2),
    ("and_imm", 2),
    ("zero_extend_16", 1),
    ("sign_extend_8", 1),
    ("sign_extend_16", 1),
    ("add_64", 3),
    ("shlo_r_imm_64", 2),
];
const PRODUCERS: usize = 12;

fn form((op, shape): (&str, u8), d: u8, a: u8, b: u8, x: i32) -> String {
    match shape {
        3 => format!("{op} r{d}, r{a}, r{b}"),
        2 => format!("{op} r{d}, r{a}, {x}"),
        _ => format!("{op} r{d}, r{a}"),
    }
}

/// Register values whose high halves, sign bits and low bytes all matter.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(u64::MAX),
        Just(1u64 << 63),
        Just(0x8000_0000),
        Just(0xffff_ffff),
        Just(0x80),
        Just(0x8080),
        (0u64..512),
    ]
}

fn case(src: &str, regs: [u64; 13], profile: GasProfile) -> Case {
    Case {
        program: Arc::new(assemble(src).unwrap().program().unwrap()),
        layout: Arc::new(MemoryLayout::new()),
        regs,
        pc: 0,
        gas: 1 << 20,
        profile,
        host_seed: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]
    #[test]
    fn peepholes_agree_with_the_interpreter(
        items in proptest::collection::vec(item(), 1..10),
        regs in proptest::array::uniform13(value()),
        gp in any::<bool>(),
    ) {
        let profile = if gp { GasProfile::Gp } else { GasProfile::Jar1 };
        let src = items.join("\n") + "\ntrap";
        let c = case(&src, regs, profile);
        if let Err(d) = compare(&Interpreter::new(), jit(), &c) {
            panic!("divergence: {}\n{}\n{src}", d.what, d.localized);
        }
    }
}

/// The golden listing's program (`javm-jit-x86/tests/disas/peepholes.txt`), from
/// registers holding values whose every byte differs.
#[test]
fn the_golden_peepholes_agree() {
    let src = "and_imm r1, r0, 255\nand_imm r2, r5, 255\nand_imm r6, r6, 255\n\
               and_imm r3, r6, 65535\nand_imm r4, r4, -1\nand_imm r7, r8, 0\n\
               and_imm r9, r10, 4095\nshlo_l_imm_64 r1, r0, 1\nshlo_l_imm_64 r2, r3, 2\n\
               shlo_l_imm_64 r4, r12, 3\nshlo_l_imm_64 r5, r5, 3\nshlo_l_imm_64 r6, r7, 4\n\
               shlo_l_imm_32 r1, r0, 1\nshlo_l_imm_32 r8, r8, 3\nshlo_l_imm_32 r9, r4, 5\n\
               mul_upper_u_u r1, r2, r3\nmul_upper_u_u r11, r11, r12\n\
               mul_upper_s_u r1, r2, r3\nmul_upper_s_u r12, r11, r12\ntrap";
    let regs = std::array::from_fn(|i| 0xf0e1_d2c3_b4a5_9687_u64.rotate_left(11 * i as u32));
    for profile in [GasProfile::Jar1, GasProfile::Gp] {
        if let Err(d) = compare(&Interpreter::new(), jit(), &case(src, regs, profile)) {
            panic!("divergence: {}\n{}", d.what, d.localized);
        }
    }
}

/// The golden listing's program (`javm-jit-x86/tests/disas/never_negative.txt`),
/// from registers whose low halves have bit 31 set and whose shift registers hold
/// 1, 31 and (for the negative immediate, which a shift by 0 leaves negative) 0.
#[test]
fn the_golden_never_negative_shifts_agree() {
    let mut regs = [0xf0e1_d2c3_b4a5_9687_u64; 13];
    regs[7] = 1;
    regs[9] = 31;
    regs[10] = 0;
    for profile in [GasProfile::Jar1, GasProfile::Gp] {
        let c = case(NEVER_NEGATIVE, regs, profile);
        if let Err(d) = compare(&Interpreter::new(), jit(), &c) {
            panic!("divergence: {}\n{}", d.what, d.localized);
        }
    }
}

/// Keep in step with the `never_negative` case of `javm-jit-x86/tests/disas.rs`.
const NEVER_NEGATIVE: &str = "shlo_r_imm_32 r1, r2, 16\nshlo_r_imm_32 r3, r3, 1\n\
    shlo_r_imm_32 r4, r5, 32\nshlo_r_imm_alt_32 r6, r7, 1000\n\
    shlo_r_imm_alt_32 r9, r9, 0x7fffffff\nshlo_r_imm_alt_32 r8, r10, -1\n\
    add_64 r0, r1, r3\ntrap";
