//! Programs the recompiler compiles in parts, on several threads, and links
//! (`javm-jit-x86/src/codegen/link.rs`), against the interpreter: random programs
//! cut into parts of 1 to 16 instructions (jumps, fallthroughs, host calls, stubs
//! and checked copies across part boundaries), and a program of about 1 MB, which
//! the default part size cuts into parts too. The code must not depend on how
//! many threads compiled the parts.

#![cfg(jit)]

use std::sync::Arc;

use differential_tests::campaign::{CampaignConfig, run_campaign};
use differential_tests::oracle::{Case, compare};
use javm_exec::{Exit, GasProfile, GasSchedule, Interpreter, MemoryLayout, NUM_REGS, PageKind};
use javm_jit_x86::Recompiler;

fn in_parts(part: usize, threads: usize) -> Recompiler {
    Recompiler::new()
        .expect("the recompiler is available")
        .with_compile_part(part)
        .with_compile_threads(threads)
}

#[test]
fn programs_in_parts_run_as_the_interpreter_runs_them() {
    for (i, part) in [1, 2, 3, 7, 16].into_iter().enumerate() {
        let cfg = CampaignConfig {
            cases: 300,
            seed: 0x9A27_0000 + i as u64,
            profile: None,
        };
        let r = run_campaign(&Interpreter::new(), &in_parts(part, 3), &cfg);
        assert!(
            r.failure.is_none(),
            "parts of {part}: {:#?}",
            r.failure.map(|f| f.divergence)
        );
    }
}

#[test]
fn the_code_does_not_depend_on_the_threads() {
    let program = Arc::new(javm::bench::large_program(64 << 10).expect("a program"));
    for profile in [GasProfile::Jar1, GasProfile::Gp] {
        let schedule = GasSchedule::new(profile, 16);
        let one = in_parts(500, 1)
            .compile(&program, schedule)
            .expect("compiles");
        let three = in_parts(500, 3)
            .compile(&program, schedule)
            .expect("compiles");
        assert_eq!(one.native_code().1, three.native_code().1, "{profile}");
        // Smaller parts give other code, with more jumps between the parts.
        let whole = in_parts(usize::MAX, 3)
            .compile(&program, schedule)
            .expect("compiles");
        assert!(whole.code_size() < one.code_size(), "{profile}");
    }
}

#[test]
fn a_large_program_in_default_parts_runs_as_the_interpreter_runs_it() {
    let program = Arc::new(javm::bench::large_program(1 << 20).expect("a program"));
    let jit = Recompiler::new().expect("the recompiler is available");
    let module = jit
        .compile(&program, GasSchedule::new(GasProfile::Jar1, 16))
        .expect("compiles");
    // About 300 000 instructions: several parts of 32 768.
    assert!(program.instructions().len() > 4 * 32_768);
    drop(module);
    // r1 = r2 + r3 points at a zero page, so every block's load and store
    // succeeds, and each block branches to the next either way: the run goes
    // through every block of every part to the trap at the end.
    let mut layout = MemoryLayout::new();
    layout
        .add_region(0x20000, 0x1000, PageKind::EphemeralZero, &[])
        .expect("a region");
    let mut regs = [0; NUM_REGS];
    regs[2] = 0x20000;
    let program_blocks = program.blocks().len();
    let case = Case {
        program,
        layout: Arc::new(layout),
        regs,
        pc: 0,
        gas: 1 << 40,
        profile: GasProfile::Jar1,
        host_seed: 0,
    };
    let trace = compare(&Interpreter::new(), &jit, &case).expect("the engines agree");
    assert_eq!(trace.exits, [Exit::Trap]);
    assert!(
        trace.blocks as usize + 1 >= program_blocks,
        "{} blocks run",
        trace.blocks
    );
}
