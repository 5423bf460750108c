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
