//! Driver-level differential testing in `cargo test`: generated multi-instance
//! scenarios (calls, yields, resumes, host ops, out of gas, settling) on the
//! interpreter and the recompiler, compared whole; a coverage check that the
//! generator reaches every host op and driver path; and a self-test showing that a
//! wrong engine under the driver is caught.
//!
//! Longer campaigns: `cargo run --release -p differential-tests --bin javm-diff --
//! --scenarios N --seed S`.

use differential_tests::adapters::{Bug, Buggy};
use differential_tests::scenario::{ScenarioCampaign, run_scenarios};
use javm::hostops::op_name;
use javm_exec::Interpreter;

/// Scenarios in the default run (override with JAVM_SCENARIOS).
fn cases() -> u32 {
    std::env::var("JAVM_SCENARIOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn campaign(cases: u32, seed: u64) -> ScenarioCampaign {
    #[cfg(jit)]
    let r = run_scenarios(
        Interpreter::new,
        || javm_jit_x86::Recompiler::new().expect("the recompiler is available"),
        cases,
        seed,
    );
    #[cfg(not(jit))]
    let r = run_scenarios(Interpreter::new, Interpreter::new, cases, seed);
    r
}

#[test]
fn scenarios_agree_and_reach_every_op_and_path() {
    let r = campaign(cases(), 1);
    if let Some((s, what)) = &r.failure {
        panic!("DIVERGENCE: {what}\nminimal scenario:\n{}", s.describe());
    }
    println!(
        "{} ({:.2?}, {:.0} scenarios/s)",
        r.report(),
        r.elapsed,
        r.scenarios as f64 / r.elapsed.as_secs_f64()
    );
    let s = &r.stats;
    for (op, c) in s.ops.iter().enumerate() {
        let Some(name) = op_name(op as u32) else {
            continue;
        };
        assert!(c.ok > 0, "{name} never completed: {}", r.report());
        // HALT cannot trap; SAME_TYPE traps only on a slot beyond a cnode smaller
        // than the root's 256 slots (a spawned child's), which the slot operands
        // rarely name: `javm/tests/vm/ops.rs` tests that case.
        if op != 0 && op != 20 {
            assert!(c.trapped > 0, "{name} never trapped: {}", r.report());
        }
    }
    assert!(s.host_functions.ok > 0 && s.host_functions.trapped > 0);
    assert!(s.host_functions.out_of_gas > 0, "{}", r.report());
    assert!(s.unknown_ops > 0 && s.nested_faults > 0 && s.settles > 0);
    assert!(s.out_of_gas_pauses > 0 && s.pauses > s.out_of_gas_pauses);
    assert!(s.max_depth >= 4, "{}", r.report());
    let res = &r.results;
    assert!(res.halts > 0 && res.pauses > 0 && res.errors > 0);
    assert!(res.faults.iter().all(|&n| n > 0), "{}", r.report());
}

#[test]
fn a_wrong_engine_under_the_driver_is_caught() {
    let r = run_scenarios(
        Interpreter::new,
        || Buggy::new(Interpreter::new(), Bug::ExtraGasAfterHostCall),
        500,
        7,
    );
    let (s, what) = r.failure.expect("the extra gas after host calls is caught");
    println!(
        "caught after {} scenarios: {what}\n{}",
        r.scenarios,
        s.describe()
    );
}
