//! One hand-checked case for every opcode, on every engine.
//!
//! Each row is `(program, initial state, expected state)`. The program runs with a
//! read-only page at 0x10000 holding `81 82 83 84 85 86 87 88` and two zero writable
//! pages at 0x20000, and a `trap` appended. Expectations are space-separated:
//! `rN=V` (register), `[ADDR]=HEX` (memory bytes), `exit=…` (default `trap`);
//! registers not mentioned must keep their initial values. `profile=gp` in the
//! initial state selects the gp profile (default jar1). `table_covers_all_opcodes`
//! checks that the rows use all 141 opcodes.

use std::collections::BTreeSet;

use differential_tests::{Case, engine_tests};
use javm_exec::{Engine, Exit, Opcode, PageKind};

/// Branch template: r12 = 2 if taken, 1 if not.
macro_rules! br {
    ($insn:literal) => {
        concat!($insn, ", t\nload_imm r12, 1\ntrap\nt: load_imm r12, 2")
    };
}

const CASES: &[(&str, &str, &str)] = &[
    // F0
    ("trap", "", "exit=trap pc=0"),
    ("fallthrough\nload_imm r1, 7", "", "r1=7"),
    ("unlikely\nload_imm r1, 7", "", "r1=7"),
    ("ecall", "", "exit=ecall pc=0"),
    // F1, F2, F3, F4
    ("ecalli 42", "", "exit=host:42 pc=0"),
    (
        "load_imm_64 r1, 0x123456789abcdef0",
        "",
        "r1=0x123456789abcdef0",
    ),
    ("store_imm_u8 0x20001, -2", "", "[0x20000]=00fe00"),
    ("store_imm_u16 0x20002, -2", "", "[0x20002]=feff00"),
    (
        "store_imm_u32 0x20004, 0x12345678",
        "",
        "[0x20004]=7856341200",
    ),
    (
        "store_imm_u64 0x20008, -2",
        "",
        "[0x20008]=feffffffffffffff00",
    ),
    (
        "jump t\nload_imm r1, 1\ntrap\nt: load_imm r2, 2",
        "",
        "r2=2",
    ),
    // F5
    (
        ".jump_table t\nload_imm r3, 4\njump_ind r3, -2\nload_imm r1, 1\ntrap\nt: load_imm r2, 2",
        "",
        "r3=4 r2=2",
    ),
    ("load_imm r1, -5", "", "r1=0xfffffffffffffffb"),
    ("load_u8 r1, 0x10000", "", "r1=0x81"),
    ("load_i8 r1, 0x10000", "", "r1=0xffffffffffffff81"),
    ("load_u16 r1, 0x10000", "", "r1=0x8281"),
    ("load_i16 r1, 0x10000", "", "r1=0xffffffffffff8281"),
    ("load_u32 r1, 0x10000", "", "r1=0x84838281"),
    ("load_i32 r1, 0x10000", "", "r1=0xffffffff84838281"),
    ("load_u64 r1, 0x10000", "", "r1=0x8887868584838281"),
    (
        "store_u8 r1, 0x20000",
        "r1=0x1122334455667788",
        "[0x20000]=8800",
    ),
    (
        "store_u16 r1, 0x20000",
        "r1=0x1122334455667788",
        "[0x20000]=887700",
    ),
    (
        "store_u32 r1, 0x20000",
        "r1=0x1122334455667788",
        "[0x20000]=8877665500",
    ),
    (
        "store_u64 r1, 0x20000",
        "r1=0x1122334455667788",
        "[0x20000]=887766554433221100",
    ),
    // F6
    (
        "store_imm_ind_u8 r1, 5, 0x7f",
        "r1=0x20000",
        "[0x20004]=007f00",
    ),
    (
        "store_imm_ind_u16 r1, 6, -1",
        "r1=0x20000",
        "[0x20006]=ffff00",
    ),
    (
        "store_imm_ind_u32 r1, 8, 0x01020304",
        "r1=0x20000",
        "[0x20008]=0403020100",
    ),
    (
        "store_imm_ind_u64 r1, 16, -3",
        "r1=0x20000",
        "[0x20010]=fdffffffffffffff00",
    ),
    // F7
    (
        "load_imm_jump r1, 9, t\nload_imm r2, 1\ntrap\nt: load_imm r3, 3",
        "",
        "r1=9 r3=3",
    ),
    (br!("branch_eq_imm r1, 5"), "r1=5", "r12=2"),
    (br!("branch_ne_imm r1, 5"), "r1=5", "r12=1"),
    (br!("branch_lt_u_imm r1, -1"), "r1=5", "r12=2"),
    (br!("branch_le_u_imm r1, 5"), "r1=5", "r12=2"),
    (br!("branch_ge_u_imm r1, -1"), "r1=5", "r12=1"),
    (br!("branch_gt_u_imm r1, 4"), "r1=5", "r12=2"),
    (br!("branch_lt_s_imm r1, 0"), "r1=-1", "r12=2"),
    (br!("branch_le_s_imm r1, -1"), "r1=-1", "r12=2"),
    (br!("branch_ge_s_imm r1, 0"), "r1=-1", "r12=1"),
    (br!("branch_gt_s_imm r1, -2"), "r1=-1", "r12=2"),
    // F8
    ("move_reg r2, r1", "r1=7", "r2=7"),
    (
        "sbrk r2, r1\nsbrk r3, r4\nstore_imm_u8 0x10, 5",
        "profile=gp r1=4096",
        "r2=0 r3=4096 [0x10]=05",
    ),
    ("count_set_bits_64 r2, r1", "r1=0xf0f0f0f0f0f0f0f0", "r2=32"),
    ("count_set_bits_32 r2, r1", "r1=0xffffffff0000000f", "r2=4"),
    ("leading_zero_bits_64 r2, r1", "r1=1", "r2=63"),
    (
        "leading_zero_bits_32 r2, r1",
        "r1=0xffffffff00000001",
        "r2=31",
    ),
    ("trailing_zero_bits_64 r2, r1", "r1=0", "r2=64"),
    (
        "trailing_zero_bits_32 r2, r1",
        "r1=0xffffffff00000000",
        "r2=32",
    ),
    ("sign_extend_8 r2, r1", "r1=0x180", "r2=0xffffffffffffff80"),
    (
        "sign_extend_16 r2, r1",
        "r1=0x18000",
        "r2=0xffffffffffff8000",
    ),
    (
        "zero_extend_16 r2, r1",
        "r1=0xffffffffffff8001",
        "r2=0x8001",
    ),
    (
        "reverse_bytes r2, r1",
        "r1=0x0102030405060708",
        "r2=0x0807060504030201",
    ),
    // F9: memory
    (
        "store_ind_u8 r1, r2, 1",
        "r1=0xab r2=0x20000",
        "[0x20000]=00ab00",
    ),
    (
        "store_ind_u16 r1, r2, 2",
        "r1=0xabcd r2=0x20000",
        "[0x20002]=cdab00",
    ),
    (
        "store_ind_u32 r1, r2, 4",
        "r1=0x11223344 r2=0x20000",
        "[0x20004]=4433221100",
    ),
    (
        "store_ind_u64 r1, r2, 8",
        "r1=0x1122334455667788 r2=0x20000",
        "[0x20008]=887766554433221100",
    ),
    ("load_ind_u8 r1, r2, 1", "r2=0x10000", "r1=0x82"),
    (
        "load_ind_i8 r1, r2, 1",
        "r2=0x10000",
        "r1=0xffffffffffffff82",
    ),
    ("load_ind_u16 r1, r2, 2", "r2=0x10000", "r1=0x8483"),
    (
        "load_ind_i16 r1, r2, 2",
        "r2=0x10000",
        "r1=0xffffffffffff8483",
    ),
    ("load_ind_u32 r1, r2, 4", "r2=0x10000", "r1=0x88878685"),
    (
        "load_ind_i32 r1, r2, 4",
        "r2=0x10000",
        "r1=0xffffffff88878685",
    ),
    (
        "load_ind_u64 r1, r2, 0",
        "r2=0x10000",
        "r1=0x8887868584838281",
    ),
    // F9: arithmetic, rA = f(rB, X)
    (
        "add_imm_32 r1, r2, 1",
        "r2=0x7fffffff",
        "r1=0xffffffff80000000",
    ),
    ("and_imm r1, r2, -16", "r2=0x1234", "r1=0x1230"),
    ("xor_imm r1, r2, -1", "r2=0xf", "r1=0xfffffffffffffff0"),
    ("or_imm r1, r2, 0x100", "r2=1", "r1=0x101"),
    ("mul_imm_32 r1, r2, 3", "r2=0x60000000", "r1=0x20000000"),
    ("set_lt_u_imm r1, r2, -1", "r2=5", "r1=1"),
    ("set_lt_s_imm r1, r2, -1", "r2=5", "r1=0"),
    (
        "shlo_l_imm_32 r1, r2, 33",
        "r2=0x40000000",
        "r1=0xffffffff80000000",
    ),
    (
        "shlo_r_imm_32 r1, r2, 4",
        "r2=0xffffffff80000000",
        "r1=0x8000000",
    ),
    (
        "shar_r_imm_32 r1, r2, 4",
        "r2=0x80000000",
        "r1=0xfffffffff8000000",
    ),
    ("neg_add_imm_32 r1, r2, 5", "r2=7", "r1=0xfffffffffffffffe"),
    ("set_gt_u_imm r1, r2, 5", "r2=6", "r1=1"),
    ("set_gt_s_imm r1, r2, 5", "r2=-1", "r1=0"),
    (
        "shlo_l_imm_alt_32 r1, r2, 3",
        "r2=30",
        "r1=0xffffffffc0000000",
    ),
    ("shlo_r_imm_alt_32 r1, r2, -1", "r2=36", "r1=0xfffffff"),
    (
        "shar_r_imm_alt_32 r1, r2, -256",
        "r2=4",
        "r1=0xfffffffffffffff0",
    ),
    ("cmov_iz_imm r1, r2, 9", "r1=1 r2=0", "r1=9"),
    ("cmov_nz_imm r1, r2, 9", "r1=1 r2=0", "r1=1"),
    ("add_imm_64 r1, r2, -1", "r2=0", "r1=0xffffffffffffffff"),
    ("mul_imm_64 r1, r2, -2", "r2=3", "r1=0xfffffffffffffffa"),
    ("shlo_l_imm_64 r1, r2, 63", "r2=1", "r1=0x8000000000000000"),
    ("shlo_r_imm_64 r1, r2, 68", "r2=0x100", "r1=0x10"),
    (
        "shar_r_imm_64 r1, r2, 4",
        "r2=0x8000000000000000",
        "r1=0xf800000000000000",
    ),
    ("neg_add_imm_64 r1, r2, 0", "r2=1", "r1=0xffffffffffffffff"),
    ("shlo_l_imm_alt_64 r1, r2, 1", "r2=65", "r1=2"),
    ("shlo_r_imm_alt_64 r1, r2, -1", "r2=60", "r1=0xf"),
    (
        "shar_r_imm_alt_64 r1, r2, -16",
        "r2=2",
        "r1=0xfffffffffffffffc",
    ),
    ("rot_r_64_imm r1, r2, 4", "r2=1", "r1=0x1000000000000000"),
    (
        "rot_r_64_imm_alt r1, r2, 1",
        "r2=1",
        "r1=0x8000000000000000",
    ),
    ("rot_r_32_imm r1, r2, 1", "r2=1", "r1=0xffffffff80000000"),
    ("rot_r_32_imm_alt r1, r2, 2", "r2=1", "r1=1"),
    // F10
    (br!("branch_eq r1, r2"), "r1=5 r2=5", "r12=2"),
    (br!("branch_ne r1, r2"), "r1=5 r2=5", "r12=1"),
    (br!("branch_lt_u r1, r2"), "r1=1 r2=-1", "r12=2"),
    (br!("branch_lt_s r1, r2"), "r1=1 r2=-1", "r12=1"),
    (br!("branch_ge_u r1, r2"), "r1=-1 r2=1", "r12=2"),
    (br!("branch_ge_s r1, r2"), "r1=-1 r2=1", "r12=1"),
    // F11
    (
        ".jump_table t\nload_imm_jump_ind r1, r2, 7, 0\nload_imm r12, 1\ntrap\nt: load_imm r12, 2",
        "r2=2",
        "r1=7 r12=2",
    ),
    // F12: rD = f(rA, rB)
    (
        "add_32 r3, r1, r2",
        "r1=0x7fffffff r2=1",
        "r3=0xffffffff80000000",
    ),
    ("sub_32 r3, r1, r2", "r1=0 r2=1", "r3=0xffffffffffffffff"),
    ("mul_32 r3, r1, r2", "r1=0x10000 r2=0x10000", "r3=0"),
    (
        "div_u_32 r3, r1, r2",
        "r1=0x80000000 r2=1",
        "r3=0xffffffff80000000",
    ),
    ("div_s_32 r3, r1, r2", "r1=-7 r2=2", "r3=0xfffffffffffffffd"),
    ("rem_u_32 r3, r1, r2", "r1=100 r2=7", "r3=2"),
    ("rem_s_32 r3, r1, r2", "r1=-7 r2=2", "r3=0xffffffffffffffff"),
    (
        "shlo_l_32 r3, r1, r2",
        "r1=1 r2=31",
        "r3=0xffffffff80000000",
    ),
    ("shlo_r_32 r3, r1, r2", "r1=0x80000000 r2=31", "r3=1"),
    (
        "shar_r_32 r3, r1, r2",
        "r1=0x80000000 r2=31",
        "r3=0xffffffffffffffff",
    ),
    ("add_64 r3, r1, r2", "r1=-1 r2=2", "r3=1"),
    ("sub_64 r3, r1, r2", "r1=1 r2=2", "r3=0xffffffffffffffff"),
    ("mul_64 r3, r1, r2", "r1=0x100000000 r2=0x100000000", "r3=0"),
    ("div_u_64 r3, r1, r2", "r1=-1 r2=2", "r3=0x7fffffffffffffff"),
    ("div_s_64 r3, r1, r2", "r1=-7 r2=2", "r3=0xfffffffffffffffd"),
    ("rem_u_64 r3, r1, r2", "r1=-1 r2=10", "r3=5"),
    ("rem_s_64 r3, r1, r2", "r1=-7 r2=2", "r3=0xffffffffffffffff"),
    (
        "shlo_l_64 r3, r1, r2",
        "r1=1 r2=63",
        "r3=0x8000000000000000",
    ),
    (
        "shlo_r_64 r3, r1, r2",
        "r1=0x8000000000000000 r2=63",
        "r3=1",
    ),
    (
        "shar_r_64 r3, r1, r2",
        "r1=0x8000000000000000 r2=63",
        "r3=0xffffffffffffffff",
    ),
    ("and r3, r1, r2", "r1=0xff00 r2=0x0ff0", "r3=0x0f00"),
    ("xor r3, r1, r2", "r1=0xff00 r2=0x0ff0", "r3=0xf0f0"),
    ("or r3, r1, r2", "r1=0xff00 r2=0x0ff0", "r3=0xfff0"),
    ("mul_upper_s_s r3, r1, r2", "r1=-1 r2=-1", "r3=0"),
    (
        "mul_upper_u_u r3, r1, r2",
        "r1=-1 r2=-1",
        "r3=0xfffffffffffffffe",
    ),
    (
        "mul_upper_s_u r3, r1, r2",
        "r1=-1 r2=2",
        "r3=0xffffffffffffffff",
    ),
    ("set_lt_u r3, r1, r2", "r1=1 r2=2", "r3=1"),
    ("set_lt_s r3, r1, r2", "r1=-1 r2=0", "r3=1"),
    ("cmov_iz r3, r1, r2", "r1=7 r2=0 r3=1", "r3=7"),
    ("cmov_nz r3, r1, r2", "r1=7 r2=0 r3=1", "r3=1"),
    ("rot_l_64 r3, r1, r2", "r1=0x8000000000000001 r2=1", "r3=3"),
    ("rot_l_32 r3, r1, r2", "r1=0x80000001 r2=1", "r3=3"),
    ("rot_r_64 r3, r1, r2", "r1=3 r2=1", "r3=0x8000000000000001"),
    ("rot_r_32 r3, r1, r2", "r1=3 r2=1", "r3=0xffffffff80000001"),
    ("and_inv r3, r1, r2", "r1=0xff r2=0x0f", "r3=0xf0"),
    (
        "or_inv r3, r1, r2",
        "r1=0x10 r2=0xffffffffffffff00",
        "r3=0xff",
    ),
    ("xnor r3, r1, r2", "r1=0 r2=0", "r3=0xffffffffffffffff"),
    ("max r3, r1, r2", "r1=-1 r2=1", "r3=1"),
    ("max_u r3, r1, r2", "r1=-1 r2=1", "r3=0xffffffffffffffff"),
    ("min r3, r1, r2", "r1=-1 r2=1", "r3=0xffffffffffffffff"),
    ("min_u r3, r1, r2", "r1=-1 r2=1", "r3=1"),
];

fn value(s: &str) -> u64 {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let v = match digits.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => digits.parse::<u64>(),
    }
    .unwrap_or_else(|e| panic!("bad number `{s}`: {e}"));
    if neg { v.wrapping_neg() } else { v }
}

fn reg_index(s: &str) -> usize {
    s.strip_prefix('r')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad register `{s}`"))
}

fn case(src: &str, init: &str) -> Case {
    let mut c = Case::asm(&format!("{src}\ntrap"))
        .region(
            0x10000,
            0x1000,
            PageKind::PinnedCapRo,
            &[0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88],
        )
        .region(0x20000, 0x2000, PageKind::EphemeralZero, &[]);
    for tok in init.split_whitespace() {
        let (k, v) = tok
            .split_once('=')
            .unwrap_or_else(|| panic!("bad token `{tok}`"));
        if k == "profile" {
            assert_eq!(v, "gp");
            c = c.gp();
        } else {
            c = c.reg(reg_index(k), value(v));
        }
    }
    c
}

fn check_case<E: Engine>(engine: &E, src: &str, init: &str, expect: &str) {
    let c = case(src, init);
    let out = c.run(engine);
    let ctx = format!("`{}` with {init:?}", src.replace('\n', "; "));
    let mut expected_regs = c.regs;
    let mut expected_exit = Exit::Trap;
    for tok in expect.split_whitespace() {
        let (k, v) = tok
            .split_once('=')
            .unwrap_or_else(|| panic!("bad token `{tok}`"));
        if let Some(addr) = k.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
            let bytes: Vec<u8> = (0..v.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&v[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(
                out.mem(value(addr) as u32, bytes.len()),
                bytes,
                "memory at {addr}: {ctx}"
            );
        } else if k == "exit" {
            expected_exit = match v.split_once(':') {
                None if v == "trap" => Exit::Trap,
                None if v == "ecall" => Exit::Ecall,
                None if v == "halt" => Exit::Halt,
                None if v == "panic" => Exit::Panic,
                Some(("host", id)) => Exit::HostCall(value(id) as u32),
                _ => panic!("bad exit `{v}`"),
            };
        } else if k == "pc" {
            assert_eq!(u64::from(out.pc), value(v), "pc: {ctx}");
        } else {
            expected_regs[reg_index(k)] = value(v);
        }
    }
    assert_eq!(out.exit, expected_exit, "exit: {ctx}");
    for (i, (want, got)) in expected_regs.iter().zip(out.regs).enumerate() {
        assert_eq!(*want, got, "r{i}: {ctx}: expected {want:#x}, got {got:#x}");
    }
}

fn every_opcode_case<E: Engine>(engine: &E) {
    for (src, init, expect) in CASES {
        check_case(engine, src, init, expect);
    }
}

engine_tests!(every_opcode_case);

#[test]
fn table_covers_all_opcodes() {
    let mut used = BTreeSet::new();
    for (src, init, _) in CASES {
        let c = case(src, init);
        used.extend(c.program.instructions().iter().filter_map(|i| i.opcode()));
    }
    let missing: Vec<&str> = Opcode::ALL
        .iter()
        .filter(|op| !used.contains(op))
        .map(|op| op.mnemonic())
        .collect();
    assert!(missing.is_empty(), "opcodes without a case: {missing:?}");
    assert_eq!(used.len(), 141);
}
