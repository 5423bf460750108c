//! jar1 gas, end to end on every engine: the worked examples of docs/ISA.md §5.4, the block
//! reserve, the ecalli/ecall floors, the memory tiers, and materialization charges.

use differential_tests::{Case, engine_tests};
use javm_exec::blob::parse_code_blob;
use javm_exec::gas_const::{COW_COST, HOST_CALL_FLOOR, MGMT_OP_COST};
use javm_exec::{Engine, Exit, GasSchedule, Instance, MemTier, PageKind, PageState};

const RW: PageKind = PageKind::EphemeralZero;
const COW: i64 = COW_COST as i64;

/// E1 — a div whose result the model does not see as a dependency: 58.
fn e1_costs_58<E: Engine>(e: &E) {
    let code = [
        0x33, 0x01, 0x0a, 0x33, 0x02, 0x03, 0xcb, 0x21, 0x03, 0x95, 0x34, 0x01, 0x00,
    ];
    let c = Case::code(&code, &[0, 3, 6, 9, 12], &[]);
    let o = c.clone().gas(58).run(e);
    assert_eq!((o.exit, o.pc, o.gas), (Exit::Trap, 12, 0));
    assert_eq!((o.regs[3], o.regs[4]), (3, 4));
    let o = c.gas(57).run(e);
    assert_eq!((o.exit, o.pc, o.gas, o.regs[1]), (Exit::OutOfGas, 0, 0, 0));
}

/// E2 — a branch to a trap costs 1; to anything else 18.
fn e2_branch_to_trap_is_cheap<E: Engine>(e: &E) {
    let mut code = [
        0xc8, 0x21, 0x03, 0xc8, 0x54, 0x06, 0xc8, 0x87, 0x09, 0x51, 0x01, 0x03, 0x00,
    ];
    let starts = [0, 3, 6, 9, 12];
    let c = Case::code(&code, &starts, &[]);
    assert_eq!(c.program.block_costs(c.schedule())[0].cost, 1);
    let o = c.run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Trap, 12, 1 + 1));
    code[12] = 1; // the target is now `fallthrough`
    let c = Case::code(&code, &starts, &[]);
    assert_eq!(c.program.block_costs(c.schedule())[0].cost, 18);
    let o = c.run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Trap, 13, 18 + 1 + 1));
}

/// E3 — load latency and `move_reg` renaming: 23 per iteration, 98 at tier 4.
fn e3_load_loop_costs_23_and_98_at_tier_4<E: Engine>(e: &E) {
    let code = [0x82, 0x21, 0x64, 0x13, 0x95, 0x34, 0x01, 0x28, 0xf9];
    let starts = [0, 2, 4, 7];
    let c = Case::code(&code, &starts, &[])
        .region(0x20000, 0x1000, PageKind::UnpinnedCapCow, &[41])
        .reg(2, 0x20000);
    assert_eq!(c.program.block_costs(c.schedule())[0].cost, 23);
    // Exactly one iteration's gas: the step leaves exactly 0, the next entry fails.
    let mut inst = c.clone().gas(23).instance(e);
    assert_eq!(inst.step_block(), Ok(None));
    assert_eq!((inst.gas(), inst.regs()[4]), (0, 42));
    assert_eq!(inst.run(), Ok(Exit::OutOfGas));
    let o = c.gas(23 * 10 + 22).run(e);
    assert_eq!((o.exit, o.pc, o.gas, o.regs[4]), (Exit::OutOfGas, 0, 0, 42));
    // More than 65536 accessible pages selects the 100-cycle tier.
    let big = Case::code(&code, &starts, &[])
        .region(0x100000, 65537 * 4096, RW, &[])
        .reg(2, 0x100000);
    assert_eq!(big.schedule(), GasSchedule::Jar1(MemTier::new(4).unwrap()));
    assert_eq!(big.program.block_costs(big.schedule())[0].cost, 98);
    let mut inst = big.clone().gas(98 * 3).instance(e);
    for _ in 0..3 {
        assert_eq!(inst.step_block(), Ok(None));
    }
    assert_eq!(inst.gas(), 0, "three iterations cost exactly 3 × 98");
    assert_eq!(inst.run(), Ok(Exit::OutOfGas));
    let mut inst = big.gas(97).instance(e);
    assert_eq!(inst.run(), Ok(Exit::OutOfGas));
    assert_eq!(
        (inst.pc(), inst.gas(), inst.regs()[4]),
        (0, 0, 0),
        "97 < 98: nothing ran"
    );
}

/// E4 — fixed-cost blocks.
fn e4_fixed_cost_blocks<E: Engine>(e: &E) {
    let o = Case::asm("fallthrough\ntrap").run(e);
    assert_eq!(o.used, 1 + 1);
    let o = Case::asm("unlikely\ntrap").run(e);
    assert_eq!(o.used, 37 + 1);
    let o = Case::asm("jump_ind r0, 0").reg(0, 0xFFFF_0000).run(e);
    assert_eq!((o.exit, o.used), (Exit::Halt, 19));
    // The [V] program inst_load_imm_and_jump_indirect_same_regs_with_offset_ok.
    let blob = [
        1, 1, 23, 13, 51, 7, 2, 149, 119, 156, 180, 119, 2, 210, 4, 100, 0, 20, 9, 239, 190, 173,
        222, 0, 0, 0, 0, 73, 48, 0,
    ];
    let p = parse_code_blob(&blob).unwrap();
    assert_eq!(
        p.block_costs(GasSchedule::Jar1(MemTier::new(1).unwrap()))[0].cost,
        21
    );
}

/// A block ending in `ecalli` costs at least HOST_CALL_FLOOR, `ecall` MGMT_OP_COST.
fn ecalli_and_ecall_floors<E: Engine>(e: &E) {
    let o = Case::asm("ecalli 7").run(e);
    assert_eq!(
        (o.exit, o.used),
        (Exit::HostCall(7), HOST_CALL_FLOOR as i64)
    );
    let o = Case::asm("load_imm r1, 5\necalli 7").run(e);
    assert_eq!(o.used, HOST_CALL_FLOOR as i64);
    let o = Case::asm("ecall").run(e);
    assert_eq!((o.exit, o.used), (Exit::Ecall, MGMT_OP_COST as i64));
    // Under gp there are no floors: one per instruction, and the block goes on past
    // the `ecalli` to the implicit trap at the end of the code.
    let o = Case::asm("ecalli 7").gp().run(e);
    assert_eq!(o.used, 2);
    // Not enough for the floor: out of gas before the host call.
    let o = Case::asm("ecalli 7").gas(99).run(e);
    assert_eq!((o.exit, o.pc, o.gas), (Exit::OutOfGas, 0, 0));
}

/// Entering a block needs cost + 2 × COW_COST per store; only the cost is deducted.
fn block_reserve<E: Engine>(e: &E) {
    let src = "store_imm_u8 0x20000, 1\nstore_imm_u8 0x20001, 2\ntrap";
    let c = Case::asm(src).region(0x20000, 0x1000, RW, &[]);
    let cost = c.program.block_costs(c.schedule())[0];
    assert_eq!(cost.cost, 22);
    assert_eq!(cost.reserve, 2 * 2 * COW_COST);
    let need = (cost.cost + cost.reserve) as i64;
    let o = c.clone().gas(need - 1).run(e);
    assert_eq!((o.exit, o.pc, o.gas), (Exit::OutOfGas, 0, 0));
    assert_eq!(o.mem(0x20000, 2), [0, 0], "nothing ran");
    let o = c.gas(need).run(e);
    assert_eq!(o.exit, Exit::Trap);
    // One copy-on-write for the page, not one per store.
    assert_eq!(o.gas, need - 22 - COW);
    assert_eq!(o.mem(0x20000, 2), [1, 2]);
}

/// The memory tier follows the number of accessible pages.
fn memory_tiers<E: Engine>(e: &E) {
    for (pages, cost) in [
        (2048u64, 22),
        (2049, 47),
        (8192, 47),
        (8193, 72),
        (65536, 72),
        (65537, 97),
    ] {
        let o = Case::asm("load_u8 r1, 0x100000\ntrap")
            .region(0x100000, pages * 4096, RW, &[])
            .run(e);
        assert_eq!(o.exit, Exit::Trap);
        assert_eq!(o.used, cost, "{pages} pages");
    }
}

/// Reads charge nothing; the first write to a page charges COW_COST once.
fn materialization_charges<E: Engine>(e: &E) {
    let c = |src: &str| {
        Case::asm(src)
            .region(0x20000, 0x2000, PageKind::UnpinnedCapCow, &[7])
            .region(0x30000, 0x1000, PageKind::PinnedCapRo, &[8])
    };
    let block = |c: &Case| c.program.block_costs(c.schedule())[0].cost as i64;

    let read = c("load_u8 r1, 0x20000\nload_u8 r2, 0x30000\ntrap");
    let o = read.run(e);
    assert_eq!((o.exit, o.regs[1], o.regs[2]), (Exit::Trap, 7, 8));
    assert_eq!(o.used, block(&read), "reads are free");
    assert_eq!(o.inst.page_state(0x20000), PageState::PresentRo);
    // The first touch materializes the page's whole unit (region ∩ 2 MiB cluster).
    assert_eq!(o.inst.page_state(0x21000), PageState::PresentRo);

    let rw = c(
        "load_u8 r1, 0x20000\nstore_imm_u8 0x20001, 1\nstore_imm_u8 0x20002, 1\nstore_imm_u8 0x21000, 1\ntrap",
    );
    let o = rw.run(e);
    assert_eq!(o.exit, Exit::Trap);
    assert_eq!(o.used, block(&rw) + 2 * COW, "one charge per page written");
    assert_eq!(o.inst.page_state(0x20000), PageState::PresentRw);
    assert_eq!(o.inst.page_state(0x21000), PageState::PresentRw);
    assert_eq!(
        o.mem(0x20000, 3),
        [7, 1, 1],
        "copy-on-write kept the original byte"
    );

    let pinned = c("store_imm_u8 0x30000, 1\ntrap");
    let o = pinned.run(e);
    assert_eq!((o.exit, o.pc), (Exit::PageFault(0x30000), 0));
    assert_eq!(
        o.used,
        block(&pinned),
        "a store to a pinned page charges nothing"
    );
    assert_eq!(o.inst.page_state(0x30000), PageState::NotPresent);

    // Straddling two writable pages: both charged. Into a read-only page: nothing.
    let both = c("store_ind_u64 r2, r1, 0\ntrap").reg(1, 0x20FFC);
    let o = both.run(e);
    assert_eq!((o.exit, o.used), (Exit::Trap, block(&both) + 2 * COW));
    let into_ro = Case::asm("store_ind_u64 r2, r1, 0\ntrap")
        .region(0x20000, 0x1000, RW, &[])
        .region(0x21000, 0x1000, PageKind::PinnedCapRo, &[])
        .reg(1, 0x20FFC);
    let o = into_ro.run(e);
    assert_eq!(
        (o.exit, o.used),
        (Exit::PageFault(0x21000), block(&into_ro))
    );
    assert_eq!(
        o.inst.page_state(0x20000),
        PageState::NotPresent,
        "all or nothing"
    );

    // The gp profile tracks states but charges nothing.
    let o = c("store_imm_u8 0x20001, 1\ntrap").gp().run(e);
    assert_eq!(o.used, 2);
    assert_eq!(o.inst.page_state(0x20000), PageState::PresentRw);
}

/// A block walk whose skip is capped at 24 lands on a byte that is no instruction
/// start: it is priced as opcode 0 (`trap`) and ends the block, as in the Lean
/// reference (ISA ambiguity settled in DESIGN-DECISIONS §60); executing it panics,
/// and the instruction after it does not become a jump target.
fn a_capped_skip_landing_is_priced_as_trap<E: Engine>(e: &E) {
    // 0: add_imm_64 r1, r1, 1; the next start is 31, so skip(0) = 24 and the walk
    // lands on 25; 31: trap.
    let mut code = vec![0u8; 32];
    code[0] = 149;
    code[1] = 0x11;
    code[2] = 1;
    code[31] = 0;
    let c = Case::code(&code, &[0, 31], &[]).gp();
    let b = c.program.blocks();
    assert_eq!(
        (b[0].pc, b[0].end - b[0].first),
        (0, 2),
        "the block ends at 25"
    );
    let o = c.run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::Panic, 25, 2));
    assert_eq!(o.regs[1], 1, "the add ran");
    let o = Case::code(&code, &[0, 31], &[]).run(e);
    assert_eq!(o.exit, Exit::Panic);
    let priced = Case::code(&code, &[0, 31], &[]);
    let cost = priced.program.block_costs(priced.schedule())[0].cost as i64;
    assert_eq!(o.used, cost);

    // 0: jump 31; 5: add_imm_64 with skip capped (landing on 30); 31: trap. The
    // position after the landing starts a block, but it is not in ϖ: the jump panics.
    let mut code = vec![0u8; 32];
    code[0] = 40;
    code[1] = 31;
    code[5] = 149;
    code[6] = 0x11;
    let o = Case::code(&code, &[0, 5, 31], &[]).gp().run(e);
    assert_eq!((o.exit, o.pc), (Exit::Panic, 0));
}

engine_tests!(
    a_capped_skip_landing_is_priced_as_trap,
    e1_costs_58,
    e2_branch_to_trap_is_cheap,
    e3_load_loop_costs_23_and_98_at_tier_4,
    e4_fixed_cost_blocks,
    ecalli_and_ecall_floors,
    block_reserve,
    memory_tiers,
    materialization_charges,
);
