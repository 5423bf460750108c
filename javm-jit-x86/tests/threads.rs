//! Recompiler instances on several threads at once, sharing one compiled module,
//! with page faults, copy-on-write materialization and host calls on every thread.

mod common;

use std::sync::Arc;

use common::{WORKLOAD, program, run_workload, schedule};
use javm_exec::{Engine, Exit, Interpreter};
use javm_jit_x86::Recompiler;

#[test]
fn instances_on_many_threads_agree_with_the_interpreter() {
    let p = program(WORKLOAD);
    let jit = Arc::new(Recompiler::new().unwrap());
    let module = jit.prepare(&p, schedule()).unwrap();
    let interp = Interpreter::new();
    let imod = interp.prepare(&p, schedule()).unwrap();
    let threads = 8;
    let per_thread = 25u64;
    let results: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (jit, module) = (Arc::clone(&jit), Arc::clone(&module));
                s.spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let n = 500 + t * 97 + i * 13;
                            (n, run_workload(&*jit, &module, n))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (n, got) in results.into_iter().flatten() {
        assert_eq!(got.0, Exit::PageFault(0x30000));
        let want = run_workload(&interp, &imod, n);
        assert_eq!(got, want, "iterations {n}");
        assert_eq!(got.1[7], (n - 1) / 64, "host calls serviced");
    }
}

/// Instances of one module run in turns on one thread, each from host call to host
/// call: every entry after another instance's changes the thread's GS base (the
/// recorded base no longer matches), and two entries in a row of one instance keep
/// it. Each must see only its own window: registers, gas, memory and exits as the
/// interpreter's instance of the same run has them.
#[test]
fn instances_taking_turns_on_one_thread_each_run_in_their_own_window() {
    use javm_exec::{Instance, InstanceInit, Reg};
    let p = program(WORKLOAD);
    let jit = Recompiler::new().unwrap();
    let module = jit.prepare(&p, schedule()).unwrap();
    let interp = Interpreter::new();
    let imod = interp.prepare(&p, schedule()).unwrap();
    let counts = [300u64, 517, 777, 1024];
    let mut insts: Vec<_> = counts
        .iter()
        .map(|&n| {
            let mut regs = [0u64; 13];
            regs[1] = n;
            let init = InstanceInit {
                layout: common::layout(),
                regs,
                pc: 0,
                gas: 10_000_000,
            };
            Some(jit.instantiate(&module, init).unwrap())
        })
        .collect();
    let mut exits = vec![None; counts.len()];
    let mut round = 0usize;
    while exits.iter().any(Option::is_none) {
        for (k, slot) in insts.iter_mut().enumerate() {
            let Some(inst) = slot.as_mut() else { continue };
            // Every third round, each instance takes two turns in a row.
            for _ in 0..1 + usize::from(round.is_multiple_of(3)) {
                match inst.run().unwrap() {
                    Exit::HostCall(1) => {
                        let r7 = inst.reg(Reg::R7);
                        inst.set_reg(Reg::R7, r7 + 1);
                    }
                    e => {
                        exits[k] = Some(e);
                        break;
                    }
                }
            }
            if exits[k].is_some() {
                let mut mem = vec![0u8; 0x10000];
                inst.read_memory(0x20000, &mut mem).unwrap();
                let got = (exits[k].unwrap(), inst.regs(), inst.gas(), mem);
                assert_eq!(got, run_workload(&interp, &imod, counts[k]), "instance {k}");
                *slot = None;
            }
        }
        round += 1;
    }
    assert!(round > 10, "the instances took turns ({round} rounds)");
}
