//! Creating and dropping thousands of instances leaks neither memory nor address
//! space: windows are pooled and reset, page maps and code are freed.
//! (Its own test binary, so no other test's instances disturb the counts.)

mod common;

use common::{WORKLOAD, program, run_workload, schedule};
use javm_exec::{Engine, InstanceInit};
use javm_jit_x86::Recompiler;

/// (virtual size in KiB, resident size in KiB, number of mappings) of this process.
fn usage() -> (u64, u64, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    (field("VmSize:"), field("VmRSS:"), maps)
}

#[test]
fn thousands_of_instances_leak_nothing() {
    let jit = Recompiler::new().unwrap();
    let p = program(WORKLOAD);
    let module = jit.prepare(&p, schedule()).unwrap();
    let churn = |n: u64| {
        for i in 0..n {
            if i % 2 == 0 {
                // Run: faults, materializes 16 pages, host calls.
                run_workload(&jit, &module, 100 + i % 50);
            } else {
                // Created and dropped without running.
                let inst = jit
                    .instantiate(
                        &module,
                        InstanceInit {
                            layout: common::layout(),
                            regs: [0; 13],
                            pc: 0,
                            gas: 1,
                        },
                    )
                    .unwrap();
                drop(inst);
            }
        }
    };
    churn(200); // warm up the window pool and allocator
    let before = usage();
    churn(5000);
    let after = usage();
    println!("before {before:?}, after {after:?}");
    assert!(
        after.0 <= before.0 + 4 * 1024,
        "virtual size grew: {before:?} → {after:?}"
    );
    assert!(
        after.1 <= before.1 + 16 * 1024,
        "resident size grew: {before:?} → {after:?}"
    );
    assert!(
        after.2 <= before.2 + 8,
        "mappings grew: {before:?} → {after:?}"
    );
    // Many modules compiled and dropped: code buffers are unmapped.
    let before = usage();
    for i in 0..500 {
        let p = program(&format!("load_imm r1, {i}\ntrap"));
        let m = jit.prepare(&p, schedule()).unwrap();
        drop(m);
    }
    let after = usage();
    assert!(
        after.2 <= before.2 + 8,
        "code mappings leaked: {before:?} → {after:?}"
    );
}
