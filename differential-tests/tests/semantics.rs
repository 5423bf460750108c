//! The edge cases of docs/ISA.md §7 ("Semantics") and the list, on every engine:
//! division edge cases, 32-bit ops on non-canonical inputs, shift masking, dynamic
//! jumps, static targets outside ϖ, invalid opcodes, running off the end, memory
//! faults (straddling, wrapping, read-only, holes, the gp low zone), `sbrk`,
//! `load_imm_jump_ind` with rA == rB, and out of gas.

use differential_tests::{Case, engine_tests};
use javm_exec::{Engine, Exit, Instance, PageKind, PageState};

const RW: PageKind = PageKind::EphemeralZero;
const RO: PageKind = PageKind::PinnedCapRo;
const MIN64: u64 = i64::MIN as u64;
const MIN32: u64 = i32::MIN as i64 as u64;
const NEG1: u64 = u64::MAX;

fn division_by_zero_both_widths<E: Engine>(e: &E) {
    let src = "div_u_32 r3, r1, r2\ndiv_s_32 r4, r1, r2\nrem_u_32 r5, r1, r2\nrem_s_32 r6, r1, r2\n\
               div_u_64 r7, r1, r2\ndiv_s_64 r8, r1, r2\nrem_u_64 r9, r1, r2\nrem_s_64 r10, r1, r2\ntrap";
    let o = Case::asm(src).reg(1, 0x1_8000_0007).reg(2, 0).run(e);
    assert_eq!(o.exit, Exit::Trap);
    assert_eq!(
        &o.regs[3..11],
        &[
            NEG1,
            NEG1,
            0xFFFF_FFFF_8000_0007,
            0xFFFF_FFFF_8000_0007,
            NEG1,
            NEG1,
            0x1_8000_0007,
            0x1_8000_0007
        ]
    );
    // A 32-bit divisor whose low half is zero is zero.
    let o = Case::asm(src).reg(1, 9).reg(2, 1 << 32).run(e);
    assert_eq!(&o.regs[3..7], &[NEG1, NEG1, 9, 9]);
    assert_eq!(o.regs[7], 0, "64-bit ops see the whole divisor");
}

fn min_over_minus_one_both_widths<E: Engine>(e: &E) {
    let src = "div_s_32 r3, r1, r2\nrem_s_32 r4, r1, r2\ndiv_s_64 r5, r11, r12\nrem_s_64 r6, r11, r12\ntrap";
    // Upper halves of the 32-bit operands are junk: only the low halves count.
    let o = Case::asm(src)
        .reg(1, 0xDEAD_BEEF_8000_0000)
        .reg(2, 0x1234_5678_FFFF_FFFF)
        .reg(11, MIN64)
        .reg(12, NEG1)
        .run(e);
    assert_eq!(o.exit, Exit::Trap);
    assert_eq!(&o.regs[3..7], &[MIN32, 0, MIN64, 0]);
}

fn thirty_two_bit_ops_ignore_upper_halves<E: Engine>(e: &E) {
    let src = "add_32 r3, r1, r2\nsub_32 r4, r1, r2\nmul_32 r5, r1, r2\nshlo_r_32 r6, r1, r2\n\
               count_set_bits_32 r7, r1\nadd_imm_32 r8, r1, 0\ntrap";
    let o = Case::asm(src)
        .reg(1, 0xFFFF_0000_8000_0001)
        .reg(2, 0xAAAA_AAAA_0000_0001)
        .run(e);
    assert_eq!(o.regs[3], 0xFFFF_FFFF_8000_0002);
    assert_eq!(o.regs[4], MIN32);
    assert_eq!(o.regs[5], 0xFFFF_FFFF_8000_0001);
    assert_eq!(o.regs[6], 0x4000_0000);
    assert_eq!(o.regs[7], 2);
    assert_eq!(
        o.regs[8], 0xFFFF_FFFF_8000_0001,
        "add_imm_32 sign-extends the low half"
    );
}

fn shift_counts_are_masked<E: Engine>(e: &E) {
    let src = "shlo_l_64 r3, r1, r2\nshlo_l_32 r4, r1, r2\nrot_l_64 r5, r1, r2\nshar_r_64 r6, r11, r2\n\
               shlo_l_imm_64 r7, r1, 129\nshar_r_imm_32 r8, r11, 33\ntrap";
    let o = Case::asm(src)
        .reg(1, 1)
        .reg(2, 65)
        .reg(11, (-3i64) as u64)
        .run(e);
    assert_eq!(&o.regs[3..9], &[2, 2, 2, (-2i64) as u64, 2, (-2i64) as u64]);
}

fn dynamic_jumps_follow_the_gp_rule<E: Engine>(e: &E) {
    // Jump table [t]; `jump_ind r1, 0` with various r1.
    let src = ".jump_table t\njump_ind r1, 0\ntrap\nt: load_imm r12, 2\ntrap";
    let run = |r1: u64| Case::asm(src).reg(1, r1).run(e);
    let o = run(2);
    assert_eq!((o.exit, o.regs[12]), (Exit::Trap, 2), "entry 0");
    let o = run(0x1_0000_0002);
    assert_eq!(o.regs[12], 2, "the address is taken mod 2^32");
    let o = run(0xFFFF_0000);
    assert_eq!(
        (o.exit, o.pc),
        (Exit::Halt, 0),
        "halt address, reported at the jump"
    );
    for bad in [0, 1, 3, 4, 0xFFFF_0002] {
        let o = run(bad);
        assert_eq!(
            (o.exit, o.pc, o.regs[12]),
            (Exit::Panic, 0, 0),
            "address {bad:#x}"
        );
    }
}

fn jump_table_entry_outside_varpi_panics<E: Engine>(e: &E) {
    // Entry 0 points into the middle of a block (pc 3), entry 1 at an invalid opcode
    // that starts a block, entry 2 past the end.
    let src = ".jump_table @3, @7, @100\njump_ind r1, 0\nload_imm r2, 1\nload_imm r3, 1\ntrap\n.raw 4\ntrap";
    for addr in [2, 4, 6] {
        let o = Case::asm(src).reg(1, addr).run(e);
        assert_eq!((o.exit, o.pc), (Exit::Panic, 0), "entry at {addr}");
        assert_eq!(o.regs[2], 0, "nothing after the jump ran");
    }
}

fn branch_to_a_non_block_start_panics_at_the_branch<E: Engine>(e: &E) {
    // pc 0: branch_eq_imm r1, 0 → @6 (inside the second block: 3 load_imm; 6 load_imm).
    let src = "branch_eq_imm r1, 0, @6\nload_imm r2, 1\nload_imm r3, 1\ntrap";
    let o = Case::asm(src).gp().run(e);
    assert_eq!((o.exit, o.pc), (Exit::Panic, 0));
    assert_eq!((o.regs[2], o.regs[3]), (0, 0));
    assert_eq!(o.used, 1, "only the branch's own block was charged");
    // Not taken: no panic.
    let o = Case::asm(src).gp().reg(1, 1).run(e);
    assert_eq!((o.exit, o.regs[2], o.regs[3]), (Exit::Trap, 1, 1));
    // Targets before the code or at its end are outside ϖ too.
    for t in ["@-4", "@12"] {
        let o = Case::asm(&format!("jump {t}\nload_imm r2, 1\nload_imm r3, 1\ntrap")).run(e);
        assert_eq!((o.exit, o.pc), (Exit::Panic, 0), "target {t}");
    }
}

fn load_imm_jump_keeps_its_write_when_the_jump_fails<E: Engine>(e: &E) {
    // @5 is inside `load_imm r2, 1` (pcs 4..6): not an instruction start.
    let o = Case::asm("load_imm_jump r1, 9, @5\nload_imm r2, 1\ntrap").run(e);
    assert_eq!((o.exit, o.pc, o.regs[1]), (Exit::Panic, 0, 9));
    let o = Case::asm("load_imm_jump_ind r1, r2, 7, 0\ntrap").run(e);
    assert_eq!((o.exit, o.pc, o.regs[1]), (Exit::Panic, 0, 7), "djump to 0");
    let o = Case::asm("load_imm_jump_ind r1, r2, 7, 0\ntrap")
        .reg(2, 0xFFFF_0000)
        .run(e);
    assert_eq!((o.exit, o.regs[1]), (Exit::Halt, 7), "write kept on halt");
}

fn load_imm_jump_ind_with_ra_eq_rb_reads_the_old_value<E: Engine>(e: &E) {
    let src = ".jump_table t\nload_imm_jump_ind r1, r1, 100, 0\ntrap\nt: load_imm r12, 2\ntrap";
    let o = Case::asm(src).reg(1, 2).run(e);
    assert_eq!((o.exit, o.regs[1], o.regs[12]), (Exit::Trap, 100, 2));
}

fn calls_through_jump_table_addresses<E: Engine>(e: &E) {
    // The calling convention of docs/ASSEMBLY.md: `%ret` is ret's jump-table address.
    let src = "load_imm r1, 5\nload_imm_jump r0, %ret, double\n\
               ret: load_imm_jump r0, %ret2, double\n\
               ret2: trap\n\
               double: add_64 r1, r1, r1\njump_ind r0, 0";
    let o = Case::asm(src).run(e);
    assert_eq!((o.exit, o.regs[1]), (Exit::Trap, 20));
    assert_eq!(o.regs[0], 4, "ret2 is the second jump-table entry");
}

fn a_write_overwrites_the_one_before_it_in_every_form<E: Engine>(e: &E) {
    // Each pair writes one register twice, the second time by another form (an
    // immediate, a taken conditional move, a jump that writes, a fused rotate's
    // result after its shifts); the second value stays, whatever the engine
    // defers (the interpreter writes an op's result at its loop's head).
    let src = "add_imm_64 r7, r8, 100\nload_imm r7, 5\n\
               load_imm r9, 9\ncmov_iz_imm r9, r8, 3\n\
               add_64 r11, r7, r9\ncmov_nz r11, r7, r7\n\
               load_imm r10, 1\nload_imm_jump r10, 2, next\n\
               next: add_64 r12, r10, r7\n\
               load_imm r5, 6\nload_imm r0, 77\n\
               shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r6\n\
               trap";
    let o = Case::asm(src).reg(8, 0).run(e);
    assert_eq!(o.exit, Exit::Trap);
    assert_eq!(
        (o.regs[7], o.regs[9], o.regs[11], o.regs[10], o.regs[12]),
        (5, 3, 5, 2, 7)
    );
    // A rotate (fused by the interpreter): its shift overwrites r0, its result r6.
    assert_eq!((o.regs[0], o.regs[6]), (12, 12), "6 << 1, then | 6 >> 63");
}

fn arithmetic_shifts_round_down<E: Engine>(e: &E) {
    let o = Case::asm("shar_r_64 r3, r1, r2\nshar_r_32 r4, r1, r2\nshar_r_imm_64 r5, r1, 1\ntrap")
        .reg(1, (-3i64) as u64)
        .reg(2, 1)
        .run(e);
    assert_eq!(&o.regs[3..6], &[(-2i64) as u64; 3]);
}

fn three_register_rd_is_min_12_byte2<E: Engine>(e: &E) {
    // add_64 with byte 2 = 0x10 writes r12 (not r0); 0xFF too.
    for rd in [0x0C, 0x10, 0xFF] {
        let o = Case::code(&[200, 0x21, rd, 0], &[0, 3], &[])
            .reg(1, 5)
            .reg(2, 6)
            .run(e);
        assert_eq!((o.regs[12], o.regs[0]), (11, 0), "byte2 = {rd:#x}");
    }
}

fn invalid_opcode_in_sequence_panics_at_its_pc<E: Engine>(e: &E) {
    let o = Case::asm("load_imm r1, 1\n.raw 4\nload_imm r2, 1\ntrap")
        .gp()
        .run(e);
    assert_eq!((o.exit, o.pc, o.regs[1], o.regs[2]), (Exit::Panic, 3, 1, 0));
    assert_eq!(
        o.used, 4,
        "the block [load_imm, invalid, load_imm, trap] is charged first"
    );
    // After a terminator, the invalid opcode starts a block of its own: charged, then
    // it panics.
    let o = Case::asm("fallthrough\n.raw 0xFF\ntrap").gp().run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Panic, 1, 3));
}

fn invalid_opcode_as_a_target_panics_at_the_jump<E: Engine>(e: &E) {
    // pc 0: jump → 2 (a block start holding opcode 4): not in ϖ.
    let o = Case::asm("jump @2\n.raw 4\ntrap").gp().run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Panic, 0, 1));
    let o = Case::asm(".jump_table @2\njump_ind r1, 0\n.raw 4\ntrap")
        .gp()
        .reg(1, 2)
        .run(e);
    assert_eq!((o.exit, o.pc), (Exit::Panic, 0));
}

fn running_off_the_end_traps_at_len<E: Engine>(e: &E) {
    let o = Case::asm("load_imm r1, 1").gp().run(e);
    assert_eq!((o.exit, o.pc, o.regs[1], o.used), (Exit::Trap, 3, 1, 2));
    // jar1: the implicit trap is not costed within a block...
    let o = Case::asm("load_imm r1, 1").run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Trap, 3, 1));
    // ...but costs 1 as a block of its own after a terminator.
    let o = Case::asm("fallthrough").run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Trap, 1, 2));
    // An empty program traps at 0.
    let o = Case::code(&[], &[], &[]).run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Trap, 0, 1));
}

fn straddling_access_faults_at_the_first_bad_page<E: Engine>(e: &E) {
    let c = |src: &str| {
        Case::asm(src)
            .region(0x20000, 0x1000, RW, &[])
            .reg(1, 0x20FFC)
            .reg(2, 0x1122_3344_5566_7788)
    };
    let o = c("load_ind_u64 r3, r1, 0\ntrap").reg(3, 42).run(e);
    assert_eq!(
        (o.exit, o.pc, o.regs[3]),
        (Exit::PageFault(0x21000), 0, 42),
        "destination untouched"
    );
    let o = c("store_ind_u64 r2, r1, 0\ntrap").run(e);
    assert_eq!(o.exit, Exit::PageFault(0x21000));
    assert_eq!(o.mem(0x20FFC, 4), [0; 4], "no partial write");
    assert_eq!(
        o.inst.page_state(0x20000),
        PageState::NotPresent,
        "nothing materialized"
    );
    // Starting in an unmapped page reports that page.
    let o = c("load_ind_u32 r3, r1, 0\ntrap").reg(1, 0x1FFFE).run(e);
    assert_eq!(o.exit, Exit::PageFault(0x1F000));
}

fn store_to_read_only_and_holes_fault<E: Engine>(e: &E) {
    let c = |src: &str| {
        Case::asm(src)
            .region(0x20000, 0x1000, RW, &[])
            .region(0x21000, 0x1000, RO, &[9])
            .region(0x23000, 0x1000, RW, &[])
    };
    let o = c("store_imm_u8 0x21000, 1\ntrap").run(e);
    assert_eq!(
        (o.exit, o.mem(0x21000, 1)[0]),
        (Exit::PageFault(0x21000), 9)
    );
    // A straddling store into the read-only page writes nothing to the first page.
    let o = c("store_ind_u32 r2, r1, 0\ntrap")
        .reg(1, 0x20FFE)
        .reg(2, u64::MAX)
        .run(e);
    assert_eq!(
        (o.exit, o.mem(0x20FFE, 2)),
        (Exit::PageFault(0x21000), vec![0, 0])
    );
    // The hole between 0x22000 and 0x23000.
    let o = c("load_u8 r3, 0x22800\ntrap").run(e);
    assert_eq!(o.exit, Exit::PageFault(0x22000));
    // Reads of the read-only page are fine.
    let o = c("load_u8 r3, 0x21000\ntrap").run(e);
    assert_eq!((o.exit, o.regs[3]), (Exit::Trap, 9));
}

fn accesses_wrap_at_2_pow_32<E: Engine>(e: &E) {
    let top = |c: Case| c.region(0xFFFF_F000, 0x1000, RW, &[]).reg(1, 0xFFFF_FFFC);
    // Page 0 unmapped: jar1 faults at page 0; gp panics (first bad byte below 0x10000).
    let o = top(Case::asm("load_ind_u64 r2, r1, 0\ntrap")).run(e);
    assert_eq!(o.exit, Exit::PageFault(0));
    let o = top(Case::asm("load_ind_u64 r2, r1, 0\ntrap").gp()).run(e);
    assert_eq!((o.exit, o.pc), (Exit::Panic, 0));
    // Page 0 mapped: the access wraps around.
    let o = top(Case::asm(
        "store_ind_u64 r3, r1, 0\nload_u32 r4, 0\nload_ind_u64 r5, r1, 0\ntrap",
    ))
    .region(0, 0x1000, RW, &[])
    .reg(3, 0x1122_3344_5566_7788)
    .run(e);
    assert_eq!(o.exit, Exit::Trap);
    assert_eq!(o.regs[4], 0x1122_3344);
    assert_eq!(o.regs[5], 0x1122_3344_5566_7788);
    assert_eq!(o.mem(0xFFFF_FFFC, 4), [0x88, 0x77, 0x66, 0x55]);
    // Base + offset also wraps: 0x10 + (-0x20) = 0xFFFFFFF0.
    let o = top(Case::asm("load_ind_u8 r2, r1, -0x20\ntrap"))
        .reg(1, 0x10)
        .run(e);
    assert_eq!(o.exit, Exit::Trap);
    // A load whose address the recompiler folds (an `add_64`, a scaled zero-
    // extended index) wraps the same way; the run loop performs it, after the
    // fault handler has written the sum the folded instructions stand for.
    // (program, r2, the sum r3 holds after the folded instructions); r1 =
    // 0xFFFFFFFC, so each load reads 0xFFFFFFFC..0x100000004.
    let folded = [
        (
            "add_64 r3, r1, r2\nload_ind_u64 r3, r3, 0\ntrap",
            0xFFFF_FFFF_0000_0000u64,
            0xFFFF_FFFF_FFFF_FFFCu64,
        ),
        (
            "shlo_l_imm_64 r3, r2, 32\nshlo_r_imm_64 r3, r3, 30\nadd_64 r3, r1, r3\nload_ind_u64 r3, r3, 0\ntrap",
            0xFFFF_FFFF_4000_0000,
            0x1_FFFF_FFFC,
        ),
    ];
    for (src, r2, sum) in folded {
        let o = top(Case::asm(src))
            .region(0, 0x1000, RW, &[])
            .reg(2, r2)
            .run(e);
        assert_eq!((o.exit, o.regs[3]), (Exit::Trap, 0), "{src}: zero pages");
        // Page 0 unmapped: a fault at page 0, with the sum in r3.
        let o = top(Case::asm(src)).reg(2, r2).run(e);
        assert_eq!((o.exit, o.regs[3]), (Exit::PageFault(0), sum), "{src}");
    }
    // Absolute addresses are immediates mod 2^32 too.
    let o = top(Case::asm(
        "store_imm_u8 0xFFFFFFFF, 7\nload_u8 r2, -1\ntrap",
    ))
    .run(e);
    assert_eq!((o.exit, o.regs[2]), (Exit::Trap, 7));
}

fn gp_low_zone_panics_jar1_faults<E: Engine>(e: &E) {
    let o = Case::asm("load_u8 r1, 0x1000\ntrap").gp().run(e);
    assert_eq!((o.exit, o.pc), (Exit::Panic, 0));
    let o = Case::asm("load_u8 r1, 0x1000\ntrap").run(e);
    assert_eq!(o.exit, Exit::PageFault(0x1000));
    // The first bad byte decides: an access from 0xFFFC into unmapped 0x10000 panics
    // under gp only if 0xFFFC itself is bad.
    let o = Case::asm("load_ind_u64 r2, r1, 0\ntrap")
        .gp()
        .region(0xF000, 0x1000, RW, &[])
        .reg(1, 0xFFFC)
        .run(e);
    assert_eq!(o.exit, Exit::PageFault(0x10000));
    let o = Case::asm("load_ind_u64 r2, r1, 0\ntrap")
        .gp()
        .reg(1, 0xFFFC)
        .run(e);
    assert_eq!(o.exit, Exit::Panic);
}

fn sbrk_panics_under_jar1<E: Engine>(e: &E) {
    let o = Case::asm("load_imm r1, 1\nsbrk r2, r1\ntrap").run(e);
    assert_eq!((o.exit, o.pc, o.regs[1]), (Exit::Panic, 3, 1));
}

fn sbrk_grows_the_heap_under_gp<E: Engine>(e: &E) {
    // The heap grows past the highest mapped page, so the engine's storage grows too;
    // what was written before must survive.
    let src = "store_imm_u8 0x20010, 9\nsbrk r2, r1\nstore_ind_u8 r1, r2, 0x1FFF\n\
               sbrk r3, r4\nload_u8 r5, 0x20010\ntrap";
    let mut c = Case::asm(src)
        .gp()
        .reg(1, 0x2000)
        .region(0x20000, 0x1000, RW, &[]);
    c.layout.set_heap_top(0x30000);
    let o = c.run(e);
    assert_eq!(
        (o.exit, o.regs[2], o.regs[3], o.regs[5]),
        (Exit::Trap, 0x30000, 0x32000, 9)
    );
    assert_eq!(o.mem(0x31FFF, 1), [0x00]);
    assert!(o.inst.accessible_pages().iter().any(|&(p, _)| p == 0x31000));
    // Too large: returns 0 and maps nothing.
    let o = Case::asm("sbrk r2, r1\ntrap")
        .gp()
        .reg(1, (1 << 32) + 1)
        .reg(2, 5)
        .run(e);
    assert_eq!((o.exit, o.regs[2]), (Exit::Trap, 0));
}

fn out_of_gas_stops_at_the_block_start_with_gas_zero<E: Engine>(e: &E) {
    // gp: block 0 = [load_imm, fallthrough] costs 2; block 1 (pc 4) costs 3.
    let src = "load_imm r1, 1\nfallthrough\nload_imm r2, 2\nload_imm r3, 3\ntrap";
    let o = Case::asm(src).gp().gas(4).run(e);
    assert_eq!((o.exit, o.pc, o.gas), (Exit::OutOfGas, 4, 0));
    assert_eq!(
        (o.regs[1], o.regs[2], o.regs[3]),
        (1, 0, 0),
        "nothing of block 1 ran"
    );
    // Topped up, it resumes at the block start and charges it.
    let mut inst = o.inst;
    inst.set_gas(10).unwrap();
    assert_eq!(inst.next_pc(), Some(4));
    assert_eq!(inst.run().unwrap(), Exit::Trap);
    assert_eq!((inst.regs()[2], inst.regs()[3], inst.gas()), (2, 3, 7));
    // Not even the first block: PC 0, registers untouched.
    let o = Case::asm(src).gp().gas(1).run(e);
    assert_eq!((o.exit, o.pc, o.gas, o.regs[1]), (Exit::OutOfGas, 0, 0, 0));
    // Exactly enough gas is enough.
    let o = Case::asm(src).gp().gas(5).run(e);
    assert_eq!((o.exit, o.gas), (Exit::Trap, 0));
}

/// The guest address of an indirect access is `(base + offset) mod 2^32` whatever
/// the base register's upper half holds, through every register as the base, with
/// the destination the base itself or another register, and a load that faults
/// (whose handler finds the address from the base register) reports the address
/// and leaves the base untouched.
fn every_base_register_addresses_modulo_2_pow_32<E: Engine>(e: &E) {
    // (base value, offset): upper garbage, a sum carrying past 2^32, a negative offset.
    let forms: [(u64, i64); 3] = [
        (0xDEAD_BEEF_0002_0010, -0x10),
        (0x0000_0001_FFFF_FFF0, 0x2_0010),
        (0x8000_0000_0002_1000, -0x1000),
    ];
    let value = 0x1122_3344_5566_7788u64;
    // `value` at 0x20000, register `b` = `base`.
    let run = |src: &str, b: usize, base: u64| {
        Case::asm(src)
            .region(
                0x20000,
                0x1000,
                PageKind::UnpinnedCapCow,
                &value.to_le_bytes(),
            )
            .reg(b, base)
            .run(e)
    };
    for b in 0..13usize {
        for (base, x) in forms {
            let other = (b + 1) % 13;
            for d in [b, other] {
                let what = format!("base r{b}, dst r{d}, base value {base:#x}, offset {x}");
                let src = format!(
                    "load_ind_u64 r{d}, r{b}, {x}\nstore_ind_u32 r{d}, r{b}, {y}\nload_u32 r{s}, 0x20020\ntrap",
                    y = x + 0x20,
                    // The check's destination: neither the base nor the first load's.
                    s = (0..13).find(|&r| r != b && r != d).unwrap(),
                );
                // The store goes through the base register again, which the load
                // overwrote when d == b: then its address is the loaded value's.
                let o = run(&src, b, base);
                if d == b {
                    // value + x + 0x20 mod 2^32 = 0x5566_7788 + 0x10 (or + 0x20010, - 0xFE0): unmapped.
                    let addr = (value as u32).wrapping_add((x + 0x20) as u32);
                    assert_eq!(o.exit, Exit::PageFault(addr & !0xFFF), "{what}");
                    assert_eq!(o.regs[b], value, "{what}");
                    continue;
                }
                assert_eq!(o.exit, Exit::Trap, "{what}");
                assert_eq!(o.regs[d], value, "{what}");
                assert_eq!(o.regs[b], base, "{what}: base unchanged");
                let s = (0..13).find(|&r| r != b && r != d).unwrap();
                assert_eq!(o.regs[s], value & 0xFFFF_FFFF, "{what}: stored at 0x20020");
            }
            // A load from an unmapped page through the same base faults there with
            // the base (here also the destination) unchanged.
            let src = format!("load_ind_u64 r{b}, r{b}, {}\ntrap", x + 0x1000);
            let o = run(&src, b, base);
            assert_eq!(o.exit, Exit::PageFault(0x21000), "r{b} {base:#x} {x}");
            assert_eq!(o.regs[b], base, "r{b} {base:#x} {x}");
        }
    }
}

engine_tests!(
    division_by_zero_both_widths,
    min_over_minus_one_both_widths,
    thirty_two_bit_ops_ignore_upper_halves,
    shift_counts_are_masked,
    dynamic_jumps_follow_the_gp_rule,
    jump_table_entry_outside_varpi_panics,
    branch_to_a_non_block_start_panics_at_the_branch,
    load_imm_jump_keeps_its_write_when_the_jump_fails,
    load_imm_jump_ind_with_ra_eq_rb_reads_the_old_value,
    calls_through_jump_table_addresses,
    a_write_overwrites_the_one_before_it_in_every_form,
    arithmetic_shifts_round_down,
    three_register_rd_is_min_12_byte2,
    invalid_opcode_in_sequence_panics_at_its_pc,
    invalid_opcode_as_a_target_panics_at_the_jump,
    running_off_the_end_traps_at_len,
    straddling_access_faults_at_the_first_bad_page,
    store_to_read_only_and_holes_fault,
    accesses_wrap_at_2_pow_32,
    every_base_register_addresses_modulo_2_pow_32,
    gp_low_zone_panics_jar1_faults,
    sbrk_panics_under_jar1,
    sbrk_grows_the_heap_under_gp,
    out_of_gas_stops_at_the_block_start_with_gas_zero,
);
