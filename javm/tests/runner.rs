//! `javm::runner`: the high-level path — load, pick the engine at run time, host
//! functions over registers and memory, run, read the outcome.

use javm::runner::{EngineChoice, HostAction, Runner, load_program};
use javm_exec::{Exit, GasProfile, PageAccess, PanicReason, Reg};

fn choices() -> Vec<EngineChoice> {
    let mut v = vec![EngineChoice::Auto, EngineChoice::Interp];
    if javm::jit_available() {
        v.push(EngineChoice::Jit);
    }
    v
}

/// Host call 1 writes "hi!" at the stack top − 16 and points r7/r8 at it; the guest
/// then halts, so the output is those bytes.
const GREET: &str = ".stack 4096\n\
    ecalli 1\n\
    jump_ind r0, 0";

#[test]
fn host_functions_read_and_write_registers_and_memory() {
    for choice in choices() {
        let program = load_program(GREET.as_bytes()).unwrap();
        let mut runner = Runner::new(choice).unwrap();
        runner.host_function(1, |call| {
            let at = call.reg(Reg::R1) as u32 - 16;
            call.write_memory(at, b"hi!").unwrap();
            let mut back = [0u8; 3];
            call.read_memory(at, &mut back).unwrap();
            assert_eq!(&back, b"hi!");
            call.set_reg(Reg::R7, u64::from(at));
            call.set_reg(Reg::R8, 3);
            HostAction::Resume
        });
        let out = runner.run(&program, &[], 10_000).unwrap();
        assert_eq!(out.exit, Exit::Halt, "{choice:?}");
        assert_eq!(out.output.as_deref(), Some(&b"hi!"[..]));
        assert_eq!(out.gas_used + out.gas_left, 10_000);
        if choice == EngineChoice::Interp {
            assert_eq!(out.engine, javm_exec::EngineKind::Interp);
        }
    }
}

#[test]
fn unknown_ids_and_stop_end_the_run_at_the_host_call() {
    for choice in choices() {
        let program = load_program(GREET.as_bytes()).unwrap();
        let mut runner = Runner::new(choice).unwrap();
        let out = runner.run(&program, &[], 10_000).unwrap();
        assert_eq!((out.exit, out.output), (Exit::HostCall(1), None));
        runner.host_function(1, |_| HostAction::Stop);
        assert_eq!(
            runner.run(&program, &[], 10_000).unwrap().exit,
            Exit::HostCall(1)
        );
    }
}

#[test]
fn panics_say_why_and_profiles_apply() {
    for choice in choices() {
        let program = load_program(b"load_imm r1, 3\njump_ind r1, 0").unwrap();
        let mut runner = Runner::new(choice).unwrap().with_profile(GasProfile::Gp);
        let out = runner.run(&program, &[], 100).unwrap();
        assert_eq!(out.exit, Exit::Panic);
        assert_eq!(out.panic_reason, Some(PanicReason::InvalidJumpAddress));
        assert_eq!(out.gas_used, 2, "gp: one per instruction");
    }
}

/// A large argument selects another jar1 memory tier; the same runner prepares the
/// module for it on demand, and both runs work.
#[test]
fn arguments_of_any_size_use_the_same_runner() {
    let program = load_program(include_bytes!("../examples/fib.pvm")).unwrap();
    for choice in choices() {
        let mut runner = Runner::new(choice).unwrap();
        let small = runner
            .run(&program, &10u32.to_le_bytes(), 1_000_000)
            .unwrap();
        assert_eq!(small.output.as_deref(), Some(&55u64.to_le_bytes()[..]));
        let mut big = vec![0u8; 12 << 20];
        big[..4].copy_from_slice(&10u32.to_le_bytes());
        let large = runner.run(&program, &big, 1_000_000).unwrap();
        assert_eq!(large.output.as_deref(), Some(&55u64.to_le_bytes()[..]));
        assert_ne!(
            small.gas_used, large.gas_used,
            "another memory tier prices loads higher"
        );
    }
}

#[test]
fn loading_and_engine_errors_are_typed() {
    assert!(load_program(&[0xFF; 7]).is_err());
    let code = javm_exec::asm::assemble("trap").unwrap().code_blob();
    assert!(load_program(&code).is_ok());
    if !javm::jit_available() {
        assert!(Runner::new(EngineChoice::Jit).is_err());
        assert_eq!(
            Runner::new(EngineChoice::Auto).unwrap().engine(),
            javm_exec::EngineKind::Interp
        );
    }
    let program = load_program(b"trap").unwrap();
    assert!(
        Runner::new(EngineChoice::Interp)
            .unwrap()
            .run(&program, &[], u64::MAX)
            .is_err()
    );
}

/// Reads two pages of unmapped memory at 0x4000_0000 and halts with the sum of the
/// two words read.
const PAGED: &str = ".stack 4096\n\
    load_imm r2, 0x40000000\n\
    load_ind_u64 r3, r2, 0\n\
    load_ind_u64 r4, r2, 4096\n\
    add_64 r3, r3, r4\n\
    add_imm_64 r1, r1, -8\n\
    store_ind_u64 r3, r1, 0\n\
    move_reg r7, r1\n\
    load_imm r8, 8\n\
    jump_ind r0, 0";

#[test]
fn a_page_fault_handler_maps_pages_and_the_run_resumes() {
    for choice in choices() {
        let program = load_program(PAGED.as_bytes()).unwrap();
        let mut runner = Runner::new(choice).unwrap();
        // No handler: the fault ends the run.
        let out = runner.run(&program, &[], 10_000).unwrap();
        assert_eq!(out.exit, Exit::PageFault(0x4000_0000));
        runner.page_fault_handler(|call, page| {
            assert_eq!(call.exit(), Exit::PageFault(page));
            call.set_page_access(page, 1, PageAccess::ZeroReadWrite)
                .unwrap();
            call.write_memory(page, &u64::from(page >> 12).to_le_bytes())
                .unwrap();
            HostAction::Resume
        });
        let out = runner.run(&program, &[], 10_000).unwrap();
        assert_eq!(out.exit, Exit::Halt, "{choice:?}");
        let sum = (0x4000_0000u64 >> 12) * 2 + 1;
        assert_eq!(out.output.as_deref(), Some(&sum.to_le_bytes()[..]));
    }
}

#[test]
fn a_handler_that_does_not_map_the_page_ends_the_run() {
    for choice in choices() {
        let program = load_program(PAGED.as_bytes()).unwrap();
        let mut runner = Runner::new(choice).unwrap();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = std::sync::Arc::clone(&calls);
        runner.page_fault_handler(move |_, _| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            HostAction::Resume
        });
        let out = runner.run(&program, &[], 10_000).unwrap();
        assert_eq!(out.exit, Exit::PageFault(0x4000_0000));
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A read-only mapping does not make a store possible either.
        let store = load_program(
            ".stack 4096\nload_imm r2, 0x40000000\nstore_imm_ind_u8 r2, 0, 1\ntrap".as_bytes(),
        )
        .unwrap();
        runner.page_fault_handler(|call, page| {
            call.set_page_access(page, 1, PageAccess::ReadOnly).unwrap();
            HostAction::Resume
        });
        let out = runner.run(&store, &[], 10_000).unwrap();
        assert_eq!(out.exit, Exit::PageFault(0x4000_0000));
    }
}
