//! `Instance::panic_reason`: every kind of panic, on every engine.

use differential_tests::generate::invalid_opcodes;
use differential_tests::{Case, engine_tests};
use javm_exec::{Engine, Exit, Instance, PanicReason};

fn reason<E: Engine>(e: &E, c: &Case) -> (Exit, Option<PanicReason>) {
    let o = c.run(e);
    (o.exit, o.inst.panic_reason())
}

fn every_panic_has_its_reason<E: Engine>(e: &E) {
    let bad = invalid_opcodes()[0];
    let c = Case::code(&[bad], &[0], &[]);
    assert_eq!(
        reason(e, &c),
        (Exit::Panic, Some(PanicReason::InvalidInstruction))
    );
    let c = Case::asm("load_imm r1, 1\njump @1");
    assert_eq!(
        reason(e, &c),
        (Exit::Panic, Some(PanicReason::InvalidBranchTarget))
    );
    let c = Case::asm("load_imm r1, 3\njump_ind r1, 0");
    assert_eq!(
        reason(e, &c),
        (Exit::Panic, Some(PanicReason::InvalidJumpAddress))
    );
    let c = Case::asm("sbrk r1, r2\ntrap");
    assert_eq!(
        reason(e, &c),
        (Exit::Panic, Some(PanicReason::SbrkUnavailable))
    );
    let c = Case::asm("load_u8 r1, 0x100\ntrap").gp();
    assert_eq!(
        reason(e, &c),
        (Exit::Panic, Some(PanicReason::AccessBelowLowLimit))
    );
    let mut inst = Case::asm("load_imm r1, 1\ntrap").instance(e);
    inst.set_pc(1);
    assert_eq!(inst.run(), Ok(Exit::Panic));
    assert_eq!(inst.panic_reason(), Some(PanicReason::InvalidPc));
}

fn other_exits_have_no_panic_reason<E: Engine>(e: &E) {
    for src in ["trap", "ecalli 3", "load_u8 r1, 0x100\ntrap"] {
        let (exit, why) = reason(e, &Case::asm(src));
        assert_ne!(exit, Exit::Panic);
        assert_eq!(why, None, "{src}");
    }
    let c = Case::asm("load_imm r1, 0\njump_ind r0, 0").reg(0, 0xFFFF_0000);
    assert_eq!(reason(e, &c), (Exit::Halt, None));
}

engine_tests!(every_panic_has_its_reason, other_exits_have_no_panic_reason);
