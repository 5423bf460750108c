//! Differential testing in `cargo test`: bounded campaigns per gas profile, a
//! coverage assertion, self-tests showing the harness catches wrong engines, and the
//! replay of the regression corpus (`regressions/*.json`).
//!
//! Engines compared: the interpreter (the oracle) with the recompiler on x86-64
//! Linux; elsewhere the interpreter with itself, which still checks determinism and
//! block stepping against running. Longer campaigns: `cargo run --release -p differential-tests --bin
//! javm-diff -- --cases N --seed S`.

use std::path::Path;

use differential_tests::adapters::{Bug, Buggy};
use differential_tests::campaign::{CampaignConfig, CampaignResult, Coverage, run_campaign};
use differential_tests::oracle::compare;
use differential_tests::regress::Regression;
use javm_exec::{Engine, GasProfile, Interpreter, Opcode};

/// Cases per profile in the default run (override with JAVM_DIFF_CASES).
fn cases() -> u32 {
    std::env::var("JAVM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

fn campaign<B: Engine>(
    b: &B,
    profile: Option<GasProfile>,
    cases: u32,
    seed: u64,
) -> CampaignResult {
    run_campaign(
        &Interpreter::new(),
        b,
        &CampaignConfig {
            cases,
            seed,
            profile,
        },
    )
}

fn assert_agree(r: &CampaignResult) {
    if let Some(f) = &r.failure {
        panic!(
            "{}\nminimal case:\n{}\nlayout: {:?}\nregisters: {:x?}\ngas: {} ({:?})",
            f.divergence,
            f.spec.source(),
            f.spec.regions,
            f.spec.regs,
            f.spec.gas,
            f.spec.profile
        );
    }
}

#[test]
fn campaigns_agree_and_cover_every_opcode_and_exit() {
    let mut coverage = Coverage::default();
    for (profile, seed) in [(GasProfile::Jar1, 1), (GasProfile::Gp, 2)] {
        #[cfg(jit)]
        let r = campaign(differential_tests::jit(), Some(profile), cases(), seed);
        #[cfg(not(jit))]
        let r = campaign(&Interpreter::new(), Some(profile), cases(), seed);
        assert_agree(&r);
        println!(
            "{profile}: {} cases in {:.2?} ({:.0} cases/s)",
            r.coverage.cases,
            r.elapsed,
            r.coverage.cases as f64 / r.elapsed.as_secs_f64()
        );
        coverage.merge(&r.coverage);
    }
    println!("{}", coverage.report());
    let missing: Vec<&str> = coverage
        .missing_opcodes()
        .iter()
        .map(|o| o.mnemonic())
        .collect();
    assert!(
        missing.is_empty(),
        "opcodes never executed: {missing:?}\n{}",
        coverage.report()
    );
    assert!(
        coverage.missing_exits().is_empty(),
        "exits never reached: {:?}",
        coverage.missing_exits()
    );
    assert!(
        coverage.page_kinds.iter().all(|&n| n > 0),
        "page kinds: {:?}",
        coverage.page_kinds
    );
    assert!(
        coverage.page_changes.iter().all(|&n| n > 0),
        "host page-access changes per mode: {:?}",
        coverage.page_changes
    );
}

/// A wrong engine must be caught, with a difference naming `expected`.
fn detects(bug: Bug, expected: &str) {
    // The wrong engine wraps the recompiler where it exists.
    #[cfg(jit)]
    let wrong = Buggy::new(javm_jit_x86::Recompiler::new().expect("recompiler"), bug);
    #[cfg(not(jit))]
    let wrong = Buggy::new(Interpreter::new(), bug);
    let r = campaign(&wrong, None, 5000, 7);
    let f = r
        .failure
        .unwrap_or_else(|| panic!("{bug:?} went unnoticed in {} cases", r.coverage.cases));
    assert!(
        f.divergence.what.contains(expected),
        "{bug:?}: expected a difference in {expected}, got {}",
        f.divergence
    );
    assert!(
        f.divergence.localized.contains("first divergence"),
        "{}",
        f.divergence.localized
    );
    println!(
        "{bug:?} caught after {} cases; shrunk to:\n{}\n{}",
        r.coverage.cases,
        f.spec.source(),
        f.divergence
    );
}

#[test]
fn harness_detects_extra_gas_after_a_host_call() {
    detects(Bug::ExtraGasAfterHostCall, "gas");
}

#[test]
fn harness_detects_a_flipped_register_bit() {
    detects(Bug::FlipBitAfter(Opcode::AddImm64), "r1");
}

#[test]
fn harness_detects_a_page_state_not_advanced() {
    detects(Bug::StalePageState, "page state");
}

#[test]
fn harness_detects_a_page_access_change_that_keeps_contents() {
    detects(Bug::ZeroKeepsContents, "memory at");
}

/// Replays `regressions/*.json` on every engine pair and checks the recorded outcome.
/// With `JAVM_BLESS=1` it instead rewrites each file's expected outcome from the
/// interpreter (for new, hand-written cases; review the diff before committing).
#[test]
fn regression_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let files = Regression::load_dir(&dir).expect("readable regression corpus");
    assert!(
        !files.is_empty(),
        "no regression files in {}",
        dir.display()
    );
    let bless = std::env::var_os("JAVM_BLESS").is_some();
    for (path, mut reg) in files {
        let case = reg
            .case()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        #[cfg(jit)]
        let trace = compare(&Interpreter::new(), differential_tests::jit(), &case);
        #[cfg(not(jit))]
        let trace = compare(&Interpreter::new(), &Interpreter::new(), &case);
        let trace = trace.unwrap_or_else(|d| panic!("{}: {d}", path.display()));
        if bless {
            reg.expect = reg.outcome(&trace);
            reg.save(&dir).expect("writable regression corpus");
            continue;
        }
        let diffs = reg.check(&trace);
        assert!(diffs.is_empty(), "{}: {}", path.display(), diffs.join("; "));
    }
}
