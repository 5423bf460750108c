//! Golden disassembly of a few lowerings (`tests/disas/*.txt`). A change in the
//! emitted code shows up as a diff to review. Regenerate with
//! `JAVM_BLESS=1 cargo test -p javm-jit-x86 --features disasm --test disas`.

use std::path::Path;
use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::{Engine, GasProfile, GasSchedule};
use javm_jit_x86::Recompiler;

const CASES: &[(&str, &str)] = &[
    (
        "alu_aliasing",
        "add_64 r1, r1, r2\nsub_64 r2, r1, r2\nsub_64 r3, r1, r2\nadd_32 r4, r4, r4\nmul_upper_u_u r11, r12, r11\nsub_32 r5, r5, r6\nsub_32 r6, r5, r6\nsub_32 r7, r5, r6\nsub_32 r11, r11, r11\nmul_32 r8, r8, r9\nmul_32 r9, r8, r9\nmul_32 r10, r8, r9\ntrap",
    ),
    (
        "division",
        "div_s_64 r11, r12, r11\nrem_u_32 r1, r2, r3\ndiv_u_64 r11, r4, r5\nrem_s_32 r6, r11, r7\ndiv_s_32 r8, r11, r11\ntrap",
    ),
    (
        "memory",
        "load_ind_u64 r1, r2, 16\nstore_ind_u8 r5, r6, -1\nstore_imm_u64 0x20000, -2\nload_i16 r3, 0x20010\nstore_ind_u32 r5, r6, 8\nstore_u16 r1, 0x20ffd\ntrap",
    ),
    (
        "store_group",
        "store_ind_u64 r1, r2, 8\nload_ind_u64 r3, r2, 0\nstore_imm_ind_u32 r2, 0, 7\nstore_ind_u8 r4, r2, 24\ntrap",
    ),
    (
        // A host call leaves with its packed exit (site index << 32 | kind) as one
        // immediate: 32 bits for the first site, 64 for the others.
        "control",
        "fallthrough\nloop:\nadd_imm_64 r1, r1, -1\nbranch_ne_imm r1, 0, @loop\nbranch_eq r1, r2, @3\necalli 7\necalli 8\njump_ind r0, 0",
    ),
    (
        // `codegen/lower.rs` `djump`, a table whose entries all lead to blocks: no
        // store on the way through the table; the index goes to the context in the
        // jump's own failure stub (cold), which hands the rotated address on. The
        // table is short, so the jumps index its copy in the context page through
        // GS (`djump_large_table`, built in the test, shows a long one).
        "djump_table",
        ".jump_table @a, @b\njump_ind r1, 0\na:\nload_imm_jump_ind r0, r2, 2, 4\nb:\njump_ind r0, 0",
    ),
    (
        // The same jump in a program whose table has an entry that is no block
        // start: the index goes to the context before the table, for the shared
        // panic that entry leads to.
        "djump_invalid_entry",
        ".jump_table @2\nload_imm r1, 1\nadd_imm_64 r1, r1, 2\njump_ind r0, 0",
    ),
    (
        // `codegen/enc.rs`: xor / 32-bit mov / mov for immediates; mov, disp8 (with
        // the SIB byte R12 needs) and disp32 address forms; test, imm8 and imm32
        // compares.
        "short_encodings",
        "load_imm r1, 0\nload_imm r2, 100000\nload_imm r3, -5\nadd_imm_64 r2, r2, 0\nadd_imm_64 r4, r2, 0\nadd_imm_64 r3, r3, -128\nadd_imm_64 r5, r4, 127\nadd_imm_64 r0, r2, 128\nadd_imm_32 r6, r7, 0\nadd_imm_32 r3, r2, 5\nload_ind_u32 r1, r2, 0\nload_ind_u8 r1, r3, 4\nset_lt_u_imm r8, r9, 100\nbranch_eq_imm r1, 0, @end\nbranch_ne_imm r4, 5, @end\nbranch_lt_s_imm r3, 1000, @end\nbranch_ge_u_imm r3, -1, @end\nend:\ntrap",
    ),
    (
        // `codegen/enc.rs` `add_rr`: add where the destination is a source, else a
        // lea without displacement (RBP/R13 as index), mov + add when both are.
        "add_forms",
        "add_64 r1, r1, r2\nadd_64 r1, r2, r1\nadd_64 r4, r2, r12\nadd_64 r4, r0, r2\nadd_64 r4, r2, r3\nadd_64 r4, r0, r3\nadd_64 r11, r10, r9\nadd_32 r4, r2, r12\nadd_32 r4, r3, r0\nadd_32 r3, r3, r3\ntrap",
    ),
    (
        // `codegen/fuse.rs`: rotates written as two shifts and an or (the shift
        // result the or does not overwrite is kept; in the last one it is the source
        // itself), zero extensions; the later instructions of each run appear again,
        // one by one, in the cold tail copies.
        "fusions",
        "shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r6\nshlo_l_imm_64 r0, r5, 8\nshlo_r_imm_64 r6, r5, 56\nxor r7, r6, r0\nshlo_r_imm_64 r5, r12, 28\nshlo_l_imm_64 r12, r12, 36\nadd_64 r9, r12, r5\nshlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r6, r6, 30\nshlo_l_imm_64 r2, r2, 32\nshlo_r_imm_64 r2, r2, 32\nshlo_l_imm_64 r3, r4, 32\nshlo_r_imm_64 r3, r3, 40\ntrap",
    ),
    (
        // `codegen/narrow.rs`: logical right shifts by 1..31 places, or of a
        // non-negative immediate, stay unextended (in place when the destination is
        // the source); by 32 places (0 mod 32) or of a negative immediate they keep
        // the `movsxd`. The same program runs against the interpreter in
        // `differential-tests/tests/peepholes.rs`.
        "never_negative",
        "shlo_r_imm_32 r1, r2, 16\nshlo_r_imm_32 r3, r3, 1\nshlo_r_imm_32 r4, r5, 32\nshlo_r_imm_alt_32 r6, r7, 1000\nshlo_r_imm_alt_32 r9, r9, 0x7fffffff\nshlo_r_imm_alt_32 r8, r10, -1\nadd_64 r0, r1, r3\ntrap",
    ),
    (
        // `codegen/narrow.rs`: 32-bit results whose next instruction reads only
        // their low half and overwrites them stay unextended (in place, `neg` +
        // `add` for a subtraction into its second source); a 64-bit reader keeps
        // the `movsxd`.
        "narrow",
        "sub_32 r12, r9, r12\nsub_32 r12, r12, r2\nand_imm r12, r12, 255\nadd_imm_32 r1, r2, 5\nshlo_l_imm_32 r1, r1, 3\nmul_32 r4, r5, r4\nsign_extend_8 r4, r4\nadd_32 r6, r7, r8\nadd_64 r6, r6, r6\ntrap",
    ),
    (
        // `codegen/fuse.rs` `AddLoad`: an `add_64` folded into the load that
        // overwrites its sum, as a base and an index (RBP as the base needs a zero
        // displacement byte); the load appears again alone in the tail copy; a load
        // into another register is not folded; a zero-extended, scaled index (two
        // shifts) folds too, as the index's scale, with its three later
        // instructions in the tail copy.
        "fused_add_load",
        "add_64 r1, r2, r3\nload_ind_u64 r1, r1, 8\nadd_64 r0, r0, r3\nload_ind_u8 r0, r0, 0\nadd_64 r3, r4, r4\nload_ind_i32 r3, r3, -4\nadd_64 r5, r6, r7\nload_ind_u32 r8, r5, 0\nshlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r6, r6, 30\nadd_64 r6, r7, r6\nload_ind_i32 r6, r6, 0\nshlo_l_imm_64 r9, r9, 32\nshlo_r_imm_64 r9, r9, 29\nadd_64 r9, r9, r0\nload_ind_u64 r9, r9, 16\ntrap",
    ),
    (
        // `codegen/lower.rs` peepholes: masks as zero extensions (byte registers of
        // RBP, RSI and RDI need a REX prefix), -1 and 0 masks, `mulx` for the
        // unsigned and mixed high multiplies (with the destination a source too);
        // small shifts stay `mov` + `shl` (a scaled `lea` measured slower).
        "peepholes",
        "and_imm r1, r0, 255\nand_imm r2, r5, 255\nand_imm r6, r6, 255\nand_imm r3, r6, 65535\nand_imm r4, r4, -1\nand_imm r7, r8, 0\nand_imm r9, r10, 4095\nshlo_l_imm_64 r1, r0, 1\nshlo_l_imm_64 r2, r3, 2\nshlo_l_imm_64 r4, r12, 3\nshlo_l_imm_64 r5, r5, 3\nshlo_l_imm_64 r6, r7, 4\nshlo_l_imm_32 r1, r0, 1\nshlo_l_imm_32 r8, r8, 3\nshlo_l_imm_32 r9, r4, 5\nmul_upper_u_u r1, r2, r3\nmul_upper_u_u r11, r11, r12\nmul_upper_s_u r1, r2, r3\nmul_upper_s_u r12, r11, r12\ntrap",
    ),
    (
        "shifts_and_rotates",
        "shlo_l_64 r1, r2, r12\nshar_r_imm_32 r3, r4, 5\nrot_r_64 r12, r11, r12\nrot_r_32_imm r5, r6, 9\ntrap",
    ),
];

#[test]
fn lowerings_match_their_golden_listings() {
    let jit = Recompiler::new().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/disas");
    let bless = std::env::var_os("JAVM_BLESS").is_some();
    let mut failures = Vec::new();
    // A jump table too long to be held in the context page (`ctx::JT_INLINE_ENTRIES`,
    // 256 entries with entry 0): its jumps load the table's address from the
    // context, add the scaled index and jump through the sum.
    let large = format!(
        ".jump_table {}\njump_ind r1, 0\na:\nload_imm_jump_ind r0, r2, 2, 4\ntrap",
        vec!["@a"; 256].join(", ")
    );
    let cases = CASES
        .iter()
        .map(|&(name, src)| (name, src.to_owned()))
        .chain([("djump_large_table", large)]);
    for (name, src) in cases {
        let program = Arc::new(assemble(&src).unwrap().program().unwrap());
        let module = jit
            .prepare(&program, GasSchedule::new(GasProfile::Jar1, 0))
            .unwrap();
        let got = javm_jit_x86::native::listing(&module);
        let path = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{name}: listing changed\n--- golden\n{want}\n--- now\n{got}"
            )),
            Err(e) => failures.push(format!("{}: {e} (JAVM_BLESS=1 creates it)", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The exit path returns to the host with the RSP it finds (`codegen`'s trampoline):
/// no lowering, stub or tail may push, pop, call, return or otherwise touch RSP. Every
/// opcode is compiled in a short program (three copies, so stores also form a group)
/// and its whole listing, cold code included, is searched.
#[test]
fn compiled_code_never_touches_rsp() {
    use javm_exec::isa::{Args, Format, encode};
    use javm_exec::{Opcode, Program, Reg};
    let jit = Recompiler::new().unwrap();
    let (a, b, d) = (Reg::R1, Reg::R2, Reg::R12);
    let mut checked = 0;
    for op in Opcode::ALL {
        let mut code = Vec::new();
        let mut starts = Vec::new();
        for _ in 0..3 {
            let pc = code.len() as u32;
            let t = i64::from(pc);
            let args = match op.format() {
                Format::NoArgs => Args::NoArgs,
                Format::Imm => Args::Imm { x: 7 },
                Format::RegImm64 => Args::RegImm64 { a, x: u64::MAX - 2 },
                Format::ImmImm => Args::ImmImm { x: 0x20000, y: 5 },
                Format::Offset => Args::Offset { target: t },
                Format::RegImm => Args::RegImm { a, x: 0x20008 },
                Format::RegImmImm => Args::RegImmImm { a, x: 16, y: 9 },
                Format::RegImmOffset => Args::RegImmOffset { a, x: 3, target: t },
                Format::RegReg => Args::RegReg { d, a },
                Format::RegRegImm => Args::RegRegImm { a, b, x: 24 },
                Format::RegRegOffset => Args::RegRegOffset { a, b, target: t },
                Format::RegRegImmImm => Args::RegRegImmImm { a, b, x: 2, y: 0 },
                Format::RegRegReg => Args::RegRegReg { d, a, b },
            };
            let Ok(e) = encode(op, &args, pc) else {
                break;
            };
            starts.push(code.len());
            code.extend_from_slice(e.as_slice());
        }
        starts.push(code.len());
        code.push(0);
        let mut bitmask = vec![0u8; code.len().div_ceil(8)];
        for s in starts {
            bitmask[s / 8] |= 1 << (s % 8);
        }
        let program = Arc::new(Program::new(code, bitmask, vec![]).unwrap());
        let module = jit
            .prepare(&program, GasSchedule::new(GasProfile::Jar1, 0))
            .unwrap();
        for line in javm_jit_x86::native::listing(&module).lines() {
            let ins = line.trim_start();
            let mnemonic = ins.split_whitespace().nth(1).unwrap_or("");
            assert!(
                !line.contains("rsp")
                    && !line.contains("esp")
                    && ![
                        "push", "pushf", "pushfq", "pop", "popf", "popfq", "call", "ret", "enter",
                        "leave"
                    ]
                    .contains(&mnemonic),
                "{}: compiled code touches RSP: {line}",
                op.mnemonic()
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} opcodes compiled");
}
