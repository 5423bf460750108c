//! Oracles for fuzzing the loaders, shared by the `fuzz/` targets and the stable test
//! that replays their corpus (`tests/fuzz_corpus.rs`).
//!
//! [`loader`] feeds arbitrary bytes to every program loader. Whatever they accept must
//! (1) disassemble into text that reassembles to the same code, bitmask and jump
//! table, and (2) run on the interpreter under both gas profiles without an engine
//! error, with block stepping reaching exactly the state that running does. Any
//! panic is a finding.

use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::blob::{StandardProgram, parse_code_blob};
use javm_exec::disasm::disassemble;
use javm_exec::{
    Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, Interpreter, MemoryLayout,
    PageKind, Program,
};

/// Gas given to each fuzzed run.
const FUZZ_GAS: i64 = 200_000;
/// Host calls and ecalls resumed per run before giving up.
const MAX_RESUMES: usize = 16;

/// Feed `data` to every loader and check what they accept.
pub fn loader(data: &[u8]) {
    if let Ok(p) = parse_code_blob(data) {
        check_program(&Arc::new(p));
    }
    let standard = [
        StandardProgram::parse(data),
        StandardProgram::parse_with_metadata(data),
    ];
    for sp in standard.into_iter().flatten() {
        check_program(&sp.program);
        if let Ok((layout, regs)) = sp.initial_state(&[1, 2, 3, 4]) {
            check_runs(&sp.program, &layout, regs);
        }
    }
}

/// Disassembly round trip, then runs on a small fixed layout.
pub fn check_program(p: &Arc<Program>) {
    let text = disassemble(p);
    let a =
        assemble(&text).unwrap_or_else(|e| panic!("disassembly does not assemble: {e}\n{text}"));
    assert_eq!(a.code, p.code(), "code differs after disasm | asm\n{text}");
    assert_eq!(
        a.bitmask,
        p.bitmask(),
        "bitmask differs after disasm | asm\n{text}"
    );
    assert_eq!(
        a.jump_table,
        p.jump_table(),
        "jump table differs after disasm | asm\n{text}"
    );

    let mut layout = MemoryLayout::new();
    let ok = layout
        .add_region(0x10000, 0x2000, PageKind::PinnedCapRo, b"fuzz")
        .and_then(|l| l.add_region(0x20000, 0x2000, PageKind::UnpinnedCapCow, &[7; 100]))
        .and_then(|l| l.add_region(0x30000, 0x1000, PageKind::EphemeralZero, &[]))
        .and_then(|l| l.add_region(0xFFFF_F000, 0x1000, PageKind::EphemeralZero, &[]))
        .is_ok();
    assert!(ok, "fixed fuzz layout is valid");
    let mut regs = [0u64; 13];
    regs[1] = 0x20800;
    regs[2] = 0x30000;
    check_runs(p, &layout, regs);
}

/// Run under both profiles; stepping block by block must agree with running.
fn check_runs(p: &Arc<Program>, layout: &MemoryLayout, regs: [u64; 13]) {
    let engine = Interpreter::new();
    let layout = Arc::new(layout.clone());
    for profile in [GasProfile::Jar1, GasProfile::Gp] {
        let schedule = GasSchedule::new(profile, layout.accessible_pages());
        let module = engine
            .prepare(p, schedule)
            .expect("prepare never fails on a valid program");
        let init = InstanceInit {
            layout: Arc::clone(&layout),
            regs,
            pc: 0,
            gas: FUZZ_GAS,
        };
        let mut a = engine
            .instantiate(&module, init.clone())
            .expect("instantiate");
        let mut b = engine.instantiate(&module, init).expect("instantiate");
        for _ in 0..MAX_RESUMES {
            let exit_a = a.run().expect("run never fails");
            let exit_b = loop {
                if let Some(x) = b.step_block().expect("step never fails") {
                    break x;
                }
            };
            assert_eq!(exit_a, exit_b);
            assert_eq!((a.pc(), a.gas(), a.regs()), (b.pc(), b.gas(), b.regs()));
            assert!(a.gas() >= 0);
            if !matches!(exit_a, Exit::HostCall(_) | Exit::Ecall) {
                break;
            }
        }
    }
}
