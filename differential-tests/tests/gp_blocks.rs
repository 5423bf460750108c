//! Under `gp`, `ecalli` does not end a basic block (the Gray Paper's terminator set
//! `T` has no `ecalli`); under `jar1` it does (`T_JAVM`). Checked on every engine:
//! block prices, out-of-gas PCs, branch and jump-table targets, entry points,
//! `set_pc` and single-stepping across a host call.

use differential_tests::{Case, engine_tests};
use javm_exec::{Engine, EngineError, Exit, GasProfile, Instance};

/// A host call in the middle of a block, then two more instructions.
const MID: &str = "load_imm r1, 5\necalli 7\nadd_imm_64 r1, r1, 1\ntrap";

/// Under gp the whole block — through the `ecalli` and on to the `trap` — is charged
/// on entry; resuming after the host call charges nothing.
fn gp_charges_past_ecalli_on_entry<E: Engine>(e: &E) {
    let c = Case::asm(MID).gp();
    assert!(
        c.program.block_starting_at(c.program.pcs()[2]).is_some(),
        "ecalli ends a T_JAVM block"
    );
    let costs = c.program.block_costs(c.schedule());
    assert_eq!((costs[0].cost, costs[1].cost), (4, 0));
    assert!(!c.program.starts_block(1, GasProfile::Gp));
    assert!(c.program.starts_block(1, GasProfile::Jar1));

    let pcs = c.program.pcs();
    let o = c.clone().gas(4).run(e);
    assert_eq!((o.exit, o.pc, o.gas), (Exit::HostCall(7), pcs[1], 0));
    let o = o.resume();
    assert_eq!(
        (o.exit, o.pc, o.gas, o.used, o.regs[1]),
        (Exit::Trap, pcs[3], 0, 0, 6)
    );

    // Out of gas at the block start: the host call is never made.
    let o = c.gas(3).run(e);
    assert_eq!((o.exit, o.pc, o.gas, o.regs[1]), (Exit::OutOfGas, 0, 0, 0));
}

/// Under jar1 the instruction after the `ecalli` starts a block that is charged
/// when the run resumes.
fn jar1_charges_after_ecalli_on_resume<E: Engine>(e: &E) {
    let c = Case::asm(MID);
    let costs = c.program.block_costs(c.schedule());
    assert!(costs[1].cost > 0);
    let o = c.run(e).resume();
    assert_eq!((o.exit, o.used), (Exit::Trap, costs[1].cost as i64));
}

/// A static branch to the instruction after an `ecalli` panics at the branch under
/// gp and is taken under jar1.
fn branch_after_ecalli<E: Engine>(e: &E) {
    let src = "load_imm r1, 0\nbranch_eq_imm r1, 0, after\necalli 1\nafter:\nload_imm r2, 9\ntrap";
    let c = Case::asm(src).gp();
    let branch = c.program.pcs()[1];
    let o = c.run(e);
    assert_eq!((o.exit, o.pc, o.regs[2]), (Exit::Panic, branch, 0));
    let o = Case::asm(src).run(e);
    assert_eq!((o.exit, o.regs[2]), (Exit::Trap, 9));
}

/// A jump-table entry that points after an `ecalli` panics under gp.
fn jump_table_after_ecalli<E: Engine>(e: &E) {
    let src = "load_imm r1, %after\njump_ind r1, 0\necalli 1\nafter:\nload_imm r2, 9\ntrap";
    let o = Case::asm(src).gp().run(e);
    assert_eq!((o.exit, o.regs[2]), (Exit::Panic, 0));
    assert_eq!(o.pc, Case::asm(src).program.pcs()[1]);
    let o = Case::asm(src).run(e);
    assert_eq!((o.exit, o.regs[2]), (Exit::Trap, 9));
}

/// An entry PC right after an `ecalli` is inside a gp block: rejected under gp,
/// accepted under jar1. `set_pc` there continues uncharged, as inside any block.
fn entry_and_set_pc_after_ecalli<E: Engine>(e: &E) {
    let c = Case::asm(MID).gp();
    let after = c.program.pcs()[2];
    let module = e.prepare(&c.program, c.schedule()).expect("prepare");
    let init = |pc| javm_exec::InstanceInit {
        layout: std::sync::Arc::new(c.layout.clone()),
        regs: [0; javm_exec::NUM_REGS],
        pc,
        gas: 100,
    };
    assert_eq!(
        e.instantiate(&module, init(after)).err(),
        Some(EngineError::EntryNotBlockStart(after))
    );
    let jar1 = Case::asm(MID);
    let o = jar1.clone().pc(after).run(e);
    assert_eq!(o.exit, Exit::Trap);

    let mut inst = e.instantiate(&module, init(0)).expect("instantiate");
    inst.set_pc(after);
    assert_eq!(inst.next_pc(), Some(after));
    assert_eq!(inst.run(), Ok(Exit::Trap));
    assert_eq!(inst.gas(), 100);
}

/// Stepping block by block: under gp the host call and its continuation are one
/// block, so the step after the host call runs to the trap.
fn step_across_ecalli<E: Engine>(e: &E) {
    let mut inst = Case::asm(MID).gp().gas(10).instance(e);
    assert_eq!(inst.step_block(), Ok(Some(Exit::HostCall(7))));
    assert_eq!(inst.gas(), 6);
    assert_eq!(inst.step_block(), Ok(Some(Exit::Trap)));
    assert_eq!((inst.gas(), inst.regs()[1]), (6, 6));
}

/// `ecall` (JAVM only) and `unlikely` still end blocks under gp.
fn ecall_and_unlikely_end_gp_blocks<E: Engine>(e: &E) {
    let c = Case::asm("ecall\nload_imm r1, 1\ntrap").gp();
    assert!(c.program.starts_block(1, GasProfile::Gp));
    let o = c.run(e).resume();
    assert_eq!((o.exit, o.used), (Exit::Trap, 2));
    let c = Case::asm("unlikely\nload_imm r1, 1\ntrap").gp();
    assert!(c.program.starts_block(1, GasProfile::Gp));
    assert_eq!(c.program.block_costs(c.schedule())[0].cost, 1);
}

/// Several host calls in a row fold into one gp block.
fn consecutive_ecallis_fold<E: Engine>(e: &E) {
    let c = Case::asm("ecalli 1\necalli 2\necalli 3\ntrap").gp();
    let costs: Vec<u64> = c
        .program
        .block_costs(c.schedule())
        .iter()
        .map(|c| c.cost)
        .collect();
    assert_eq!(costs[..4], [4, 0, 0, 0]);
    let o = c.gas(4).run(e);
    assert_eq!((o.exit, o.gas), (Exit::HostCall(1), 0));
    let o = o.resume();
    assert_eq!(o.exit, Exit::HostCall(2));
    let o = o.resume().resume();
    assert_eq!((o.exit, o.gas), (Exit::Trap, 0));
}

engine_tests!(
    gp_charges_past_ecalli_on_entry,
    jar1_charges_after_ecalli_on_resume,
    branch_after_ecalli,
    jump_table_after_ecalli,
    entry_and_set_pc_after_ecalli,
    step_across_ecalli,
    ecall_and_unlikely_end_gp_blocks,
    consecutive_ecallis_fold,
);
