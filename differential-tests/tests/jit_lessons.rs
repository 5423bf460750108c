//! One test per failure mode of the previous implementation's recompiler (the ways
//! its engines drifted apart), on every engine. Modes covered elsewhere are listed here too:
//!
//! | Failure mode | Test |
//! |---|---|
//! | SIGFPE on `MIN / −1`; division by zero; 32-bit divisors with a zero low half | `min_over_minus_one_never_traps_the_host`, `semantics::division_by_zero_both_widths` |
//! | implicit-register clobber (RAX/RCX/RDX in div, mul, shifts, rotates) and 3-operand aliasing | `every_aliasing_of_implicit_register_ops` |
//! | flags clobbered between `cmp` and `setcc`; imm32 sign extension in 64-bit compares | `compares_sign_extend_immediates` |
//! | 8-byte access at 0xFFFFFFFC writing outside the window | `eight_byte_access_at_the_top_stays_in_the_address_space` |
//! | signal storm on an invalid opcode at a block head | `invalid_opcode_at_a_block_head_panics_once` |
//! | compile panic on a branch into the middle of a block | `branches_into_the_middle_of_a_block_panic_at_the_branch` |
//! | jump-table entry into the middle of a block (default-0 dispatch) | `jump_table_entries_into_the_middle_of_a_block_panic` |
//! | hard-coded gas of `unlikely`; gas-block boundary definitions | `unlikely_and_every_block_cost_what_the_model_says` |
//! | residual gas after out of gas; exit PC | `semantics::out_of_gas_stops_at_the_block_start_with_gas_zero` |
//! | end of code = trap at `len` | `semantics::running_off_the_end_traps_at_len` |
//! | trap vs panic taxonomy | `trap_and_panic_are_distinct_exits` |
//! | fault address = lowest inaccessible page; RO pages and holes | `semantics::straddling_access_faults_at_the_first_bad_page`, `semantics::store_to_read_only_and_holes_fault` |
//! | peephole state leaking across a loop back edge | `constants_do_not_leak_across_a_back_edge` |
//! | host calls: state live and changeable, O(1) re-entry | `engine_api::host_call_resumes_at_the_next_instruction`, `host_changes_registers_memory_and_gas_between_calls` |
//!
//! JIT-only modes (unknown faults passed on, W^X, threads, instance churn) are tested
//! in `javm-jit-x86/tests/`.

use differential_tests::{Case, engine_tests};
use javm_exec::{Engine, Exit, Instance, PageKind, PageState, Reg, ops};

const RW: PageKind = PageKind::EphemeralZero;

/// Registers that sit in RAX (r11), RCX (r12) and ordinary registers (r0, r5).
const REGS: [usize; 4] = [0, 5, 11, 12];

fn min_over_minus_one_never_traps_the_host<E: Engine>(e: &E) {
    for (op, f) in [
        ("div_s_32", ops::div_s32 as fn(u64, u64) -> u64),
        ("rem_s_32", ops::rem_s32),
        ("div_s_64", ops::div_s64),
        ("rem_s_64", ops::rem_s64),
    ] {
        for (a, b) in [
            (i64::MIN as u64, u64::MAX),
            (i32::MIN as i64 as u64, u64::MAX),
            (0xDEAD_BEEF_8000_0000, 0x1234_5678_FFFF_FFFF),
            (5, 0),
            (5, 1 << 32),
        ] {
            let o = Case::asm(&format!("{op} r3, r1, r2\ntrap"))
                .reg(1, a)
                .reg(2, b)
                .run(e);
            assert_eq!(
                (o.exit, o.regs[3]),
                (Exit::Trap, f(a, b)),
                "{op} {a:#x} {b:#x}"
            );
        }
    }
}

fn every_aliasing_of_implicit_register_ops<E: Engine>(e: &E) {
    type Op = fn(u64, u64) -> u64;
    let table: [(&str, Op); 22] = [
        ("div_u_32", ops::div_u32),
        ("div_s_32", ops::div_s32),
        ("rem_u_32", ops::rem_u32),
        ("rem_s_32", ops::rem_s32),
        ("div_u_64", ops::div_u64),
        ("div_s_64", ops::div_s64),
        ("rem_u_64", ops::rem_u64),
        ("rem_s_64", ops::rem_s64),
        ("mul_upper_s_s", ops::mul_upper_ss),
        ("mul_upper_u_u", ops::mul_upper_uu),
        ("mul_upper_s_u", ops::mul_upper_su),
        ("shlo_l_64", ops::shl64),
        ("shlo_r_64", ops::shr64),
        ("shar_r_64", ops::sar64),
        ("shlo_l_32", ops::shl32),
        ("shar_r_32", ops::sar32),
        ("rot_l_64", ops::rotl64),
        ("rot_r_64", ops::rotr64),
        ("rot_l_32", ops::rotl32),
        ("rot_r_32", ops::rotr32),
        ("sub_64", u64::wrapping_sub),
        ("max", ops::max_s),
    ];
    // Distinct values per register, so any clobber shows.
    let value = |r: usize| 0x8765_4321_0FED_CBA9u64.rotate_left(r as u32 * 7) ^ r as u64;
    for (op, f) in table {
        for d in REGS {
            for a in REGS {
                for b in REGS {
                    let mut case = Case::asm(&format!("{op} r{d}, r{a}, r{b}\ntrap"));
                    for r in 0..13 {
                        case = case.reg(r, value(r));
                    }
                    let o = case.run(e);
                    let mut want = [0u64; 13];
                    for (r, w) in want.iter_mut().enumerate() {
                        *w = value(r);
                    }
                    want[d] = f(value(a), value(b));
                    assert_eq!(o.regs, want, "{op} r{d}, r{a}, r{b}");
                }
            }
        }
    }
}

fn compares_sign_extend_immediates<E: Engine>(e: &E) {
    // set_lt_u_imm with imm −1 compares against 2^64 − 1, not 2^32 − 1.
    let src = "set_lt_u_imm r2, r1, -1\nset_gt_u_imm r3, r1, -1\nset_lt_s_imm r4, r1, -1\n\
               set_lt_u r5, r1, r6\ntrap";
    for v in [0u64, 0xFFFF_FFFF, u64::MAX, 1 << 63] {
        let o = Case::asm(src).reg(1, v).reg(6, v ^ 1).reg(5, 0xAA).run(e);
        assert_eq!(o.regs[2], ops::set_lt_u(v, u64::MAX), "{v:#x}");
        assert_eq!(o.regs[3], ops::set_lt_u(u64::MAX, v), "{v:#x}");
        assert_eq!(o.regs[4], ops::set_lt_s(v, u64::MAX), "{v:#x}");
        assert_eq!(
            o.regs[5],
            ops::set_lt_u(v, v ^ 1),
            "{v:#x}: the old r5 must not leak"
        );
    }
    for (imm, v, taken) in [(-1, 0xFFFF_FFFFu64, true), (-1, u64::MAX, false)] {
        let o = Case::asm(&format!(
            "branch_lt_u_imm r1, {imm}, @taken\nload_imm r2, 1\ntrap\ntaken:\nload_imm r2, 2\ntrap"
        ))
        .reg(1, v)
        .run(e);
        assert_eq!(o.regs[2], if taken { 2 } else { 1 }, "{v:#x} <u {imm}");
    }
}

fn eight_byte_access_at_the_top_stays_in_the_address_space<E: Engine>(e: &E) {
    for (width, op) in [(8u32, "u64"), (4, "u32"), (2, "u16")] {
        let addr = 0u32.wrapping_sub(width / 2);
        // Page 0 unmapped: a fault at page 0, nothing written, no state changed.
        let src = format!("store_ind_{op} r3, r1, 0\ntrap");
        let o = Case::asm(&src)
            .region(0xFFFF_F000, 0x1000, RW, &[])
            .reg(1, u64::from(addr))
            .reg(3, u64::MAX)
            .run(e);
        assert_eq!((o.exit, o.pc), (Exit::PageFault(0), 0), "{op}");
        assert_eq!(
            o.inst.page_state(0xFFFF_F000),
            PageState::NotPresent,
            "{op}"
        );
        assert_eq!(
            o.mem(0xFFFF_F000, 0x1000),
            vec![0; 0x1000],
            "{op}: all or nothing"
        );
        // Page 0 mapped: the access wraps to address 0, on both engines.
        let src = format!("store_ind_{op} r3, r1, 0\nload_ind_{op} r4, r1, 0\nload_u8 r5, 0\ntrap");
        let o = Case::asm(&src)
            .region(0, 0x1000, RW, &[])
            .region(0xFFFF_F000, 0x1000, RW, &[])
            .reg(1, u64::from(addr))
            .reg(3, 0x0102_0304_0506_0708)
            .run(e);
        assert_eq!(o.exit, Exit::Trap, "{op}");
        let mask = if width == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * width)) - 1
        };
        assert_eq!(o.regs[4], 0x0102_0304_0506_0708 & mask, "{op}");
        let low_byte = (0x0102_0304_0506_0708u64 >> (8 * (width / 2))) as u8;
        assert_eq!(
            o.regs[5],
            u64::from(low_byte),
            "{op}: the wrapped bytes are at 0"
        );
        assert_eq!(o.inst.page_state(0), PageState::PresentRw, "{op}");
    }
}

fn invalid_opcode_at_a_block_head_panics_once<E: Engine>(e: &E) {
    // At pc 0 (the first block), after a terminator, and reached by a branch.
    for (src, pc) in [
        (".raw 0xFF\ntrap", 0),
        ("fallthrough\n.raw 0xFF\ntrap", 1),
        ("trap\n.raw 0xFF\ntrap", 1),
    ] {
        let case = Case::asm(src).gas(100);
        let mut inst = case.instance(e);
        if pc > 0 {
            inst.set_pc(pc);
        }
        assert_eq!(inst.run(), Ok(Exit::Panic), "{src}");
        assert_eq!(inst.pc(), pc, "{src}: panic at the invalid opcode");
        assert!(
            inst.run().is_err(),
            "{src}: a finished instance does not run again"
        );
    }
    let o = Case::asm("jump @2\n.raw 0xFF\ntrap").run(e);
    assert_eq!(
        (o.exit, o.pc),
        (Exit::Panic, 0),
        "not in ϖ: panic at the jump"
    );
}

fn branches_into_the_middle_of_a_block_panic_at_the_branch<E: Engine>(e: &E) {
    // pc 3 is `load_imm r3` inside the block starting at pc 0 (which is one block:
    // load_imm, load_imm, then the branch terminator).
    for br in [
        "branch_eq r0, r0",
        "branch_ne r0, r1",
        "branch_lt_u r0, r1",
        "branch_lt_s r0, r1",
        "branch_ge_u r1, r0",
        "branch_ge_s r1, r0",
        "branch_eq_imm r0, 0",
        "branch_ne_imm r0, 1",
        "branch_lt_u_imm r0, 1",
        "branch_le_u_imm r0, 0",
        "branch_ge_u_imm r0, 0",
        "branch_gt_u_imm r1, 0",
        "branch_lt_s_imm r0, 1",
        "branch_le_s_imm r0, 0",
        "branch_ge_s_imm r0, 0",
        "branch_gt_s_imm r1, 0",
    ] {
        let src = format!("load_imm r2, 1\nload_imm r3, 1\n{br}, @3\ntrap");
        let o = Case::asm(&src).reg(1, 1).run(e);
        assert_eq!((o.exit, o.pc), (Exit::Panic, 6), "{br}");
    }
    let o = Case::asm("load_imm r2, 1\nload_imm r3, 1\nload_imm_jump r4, 5, @3\ntrap").run(e);
    assert_eq!((o.exit, o.pc, o.regs[4]), (Exit::Panic, 6, 5));
}

fn jump_table_entries_into_the_middle_of_a_block_panic<E: Engine>(e: &E) {
    let src =
        ".jump_table @3, @9\nload_imm r2, 1\nload_imm r3, 1\njump_ind r1, 0\nfallthrough\ntrap";
    // Entry 1 (address 2) → pc 3, mid-block: panic at the jump (pc 6).
    let o = Case::asm(src).reg(1, 2).run(e);
    assert_eq!((o.exit, o.pc), (Exit::Panic, 6));
    // Entry 2 (address 4) → pc 9, a block start: fine.
    let o = Case::asm(src).reg(1, 4).run(e);
    assert_eq!(o.exit, Exit::Trap);
}

fn unlikely_and_every_block_cost_what_the_model_says<E: Engine>(e: &E) {
    let src = "load_imm r1, 3\nfallthrough\nloop:\nadd_imm_64 r1, r1, -1\nunlikely\nbranch_ne_imm r1, 0, @loop\n\
               fallthrough\nmul_64 r2, r1, r1\ntrap";
    let case = Case::asm(src);
    let schedule = case.schedule();
    let costs = case.program.block_costs(schedule);
    // Step block by block: each step charges exactly its block's model price.
    let mut inst = case.instance(e);
    let mut steps = 0;
    loop {
        let before = inst.gas();
        let pc = inst.next_pc().expect("running");
        let b = case
            .program
            .block_starting_at(pc)
            .expect("at a block start") as usize;
        let exit = inst.step_block().expect("step");
        assert_eq!(
            before - inst.gas(),
            costs[b].cost as i64,
            "block at pc {pc}"
        );
        steps += 1;
        if exit.is_some() {
            break;
        }
    }
    assert_eq!(
        steps,
        1 + 3 * 2 + 1 + 1,
        "entry, 3 × (body, branch), fallthrough, exit"
    );
}

fn trap_and_panic_are_distinct_exits<E: Engine>(e: &E) {
    assert_eq!(Case::asm("trap").run(e).exit, Exit::Trap);
    assert_eq!(Case::asm(".raw 0xFF").run(e).exit, Exit::Panic);
    assert_eq!(
        Case::asm("load_imm r1, 1").run(e).exit,
        Exit::Trap,
        "end of code"
    );
    assert_eq!(
        Case::asm("jump_ind r0, 0").run(e).exit,
        Exit::Panic,
        "djump to 0"
    );
}

fn constants_do_not_leak_across_a_back_edge<E: Engine>(e: &E) {
    // r2 is a constant on entry but changes around the loop.
    let src = "load_imm r2, 7\nload_imm r1, 3\nfallthrough\nloop:\nadd_64 r3, r3, r2\nadd_imm_64 r2, r2, 1\n\
               add_imm_64 r1, r1, -1\nbranch_ne_imm r1, 0, @loop\ntrap";
    let o = Case::asm(src).run(e);
    assert_eq!(o.regs[3], 7 + 8 + 9);
}

fn host_changes_registers_memory_and_gas_between_calls<E: Engine>(e: &E) {
    let src = "loop:\necalli 5\nload_u32 r2, 0x20000\nadd_64 r3, r3, r2\nadd_imm_64 r1, r1, -1\n\
               branch_ne_imm r1, 0, @loop\ntrap";
    let case = Case::asm(src)
        .region(0x20000, 0x1000, RW, &[])
        .reg(1, 100)
        .gas(1_000_000);
    let mut inst = case.instance(e);
    let mut expected = 0u64;
    for i in 0..100u32 {
        assert_eq!(inst.run(), Ok(Exit::HostCall(5)));
        inst.write_memory(0x20000, &i.to_le_bytes()).unwrap();
        expected += u64::from(i);
        inst.set_reg(Reg::R5, u64::from(i));
        let g = inst.gas();
        inst.set_gas(g - 1).unwrap();
    }
    assert_eq!(inst.run(), Ok(Exit::Trap));
    assert_eq!(inst.reg(Reg::R3), expected);
    assert_eq!(inst.reg(Reg::R5), 99);
}

engine_tests!(
    min_over_minus_one_never_traps_the_host,
    every_aliasing_of_implicit_register_ops,
    compares_sign_extend_immediates,
    eight_byte_access_at_the_top_stays_in_the_address_space,
    invalid_opcode_at_a_block_head_panics_once,
    branches_into_the_middle_of_a_block_panic_at_the_branch,
    jump_table_entries_into_the_middle_of_a_block_panic,
    unlikely_and_every_block_cost_what_the_model_says,
    trap_and_panic_are_distinct_exits,
    constants_do_not_leak_across_a_back_edge,
    host_changes_registers_memory_and_gas_between_calls,
);
