//! API hygiene checked at compile time: instances of both engines can move between
//! threads, and engines, modules and the driver's inputs can be shared.

fn send<T: Send>() {}
fn sync<T: Sync>() {}

#[test]
fn instances_are_send_and_engines_are_shared() {
    send::<javm_exec::InterpInstance>();
    sync::<javm_exec::Interpreter>();
    send::<javm_exec::Interpreter>();
    sync::<javm_exec::interp::InterpModule>();
    #[cfg(jit)]
    {
        send::<javm_jit_x86::JitInstance>();
        sync::<javm_jit_x86::Recompiler>();
        sync::<javm_jit_x86::JitModule>();
    }
    send::<javm::Vm<javm::InProcessKernel>>();
}

/// A paused instance resumes on another thread, on every engine.
fn resumes_on_another_thread<E: javm_exec::Engine>(e: &E)
where
    E::Instance: Send + 'static,
{
    use javm_exec::{Exit, Instance};
    let mut inst =
        differential_tests::Case::asm("load_imm r7, 1\necalli 5\nadd_imm_64 r7, r7, 1\ntrap")
            .instance(e);
    assert_eq!(inst.run(), Ok(Exit::HostCall(5)));
    let (exit, r7) = std::thread::spawn(move || (inst.run(), inst.regs()[7]))
        .join()
        .unwrap();
    assert_eq!((exit, r7), (Ok(Exit::Trap), 2));
}

differential_tests::engine_tests!(resumes_on_another_thread);
