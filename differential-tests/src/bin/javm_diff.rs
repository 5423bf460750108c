//! `javm-diff`: long differential campaigns between the engines.
//!
//! ```sh
//! cargo run --release -p differential-tests --bin javm-diff -- --cases 100000 --seed 1
//! ```
//!
//! Runs `--cases` generated programs per gas profile, in chunks, printing cases per
//! second and coverage; on a divergence prints the shrunk case and its localization,
//! saves it as a regression file under `--save` and exits 1. `--self-test` instead
//! runs the deliberately wrong engines and shows that each is caught.
//!
//! `--scenarios N` runs N driver-level scenarios instead (several instances calling
//! each other through the `Vm` host ops, yields, resumes, out of gas, settling; see
//! `differential_tests::scenario`), printing scenarios per second and what they
//! reached; a divergence prints the shrunk scenario and exits 1 (the same `--seed`
//! reproduces it).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use differential_tests::adapters::{Bug, Buggy};
use differential_tests::campaign::{CampaignConfig, Coverage, Failure, run_campaign};
use differential_tests::oracle::{Case, compare};
use differential_tests::regress::Regression;
use differential_tests::scenario::{ScenarioCampaign, run_scenarios};
use javm_exec::{GasProfile, Interpreter, Opcode};

/// Differential campaigns between the JAVM engines.
#[derive(Parser, Debug)]
#[command(name = "javm-diff", version, about)]
struct Args {
    /// Generated programs per gas profile.
    #[arg(long, default_value_t = 100_000)]
    cases: u64,
    /// Generator seed (the same seed generates the same programs).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Gas profile(s) to test.
    #[arg(long, value_enum, default_value_t = ProfileArg::Both)]
    profile: ProfileArg,
    /// Where to save shrunk divergences as regression files.
    #[arg(long, default_value = "differential-tests/regressions")]
    save: PathBuf,
    /// Run the wrong-engine self-tests instead (and save their shrunk cases).
    #[arg(long)]
    self_test: bool,
    /// Run this many driver-level scenarios instead of programs.
    #[arg(long, value_name = "N")]
    scenarios: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    Jar1,
    Gp,
    Both,
}

/// Cases per chunk (one progress line each).
const CHUNK: u64 = 10_000;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.self_test {
        return self_test(&args);
    }
    if let Some(n) = args.scenarios {
        return scenarios(n, args.seed);
    }
    let profiles = match args.profile {
        ProfileArg::Jar1 => vec![GasProfile::Jar1],
        ProfileArg::Gp => vec![GasProfile::Gp],
        ProfileArg::Both => vec![GasProfile::Jar1, GasProfile::Gp],
    };
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    let b = match javm_jit_x86::Recompiler::new() {
        Ok(b) => {
            eprintln!("engines: interp vs jit");
            b
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let b = {
        eprintln!("engines: interp vs interp (no recompiler on this host)");
        Interpreter::new()
    };
    for profile in profiles {
        let mut coverage = Coverage::default();
        let start = Instant::now();
        let mut done = 0u64;
        let mut chunk = 0u64;
        while done < args.cases {
            let n = CHUNK.min(args.cases - done);
            let seed = args.seed.wrapping_mul(1_000_003).wrapping_add(chunk);
            let cfg = CampaignConfig {
                cases: n as u32,
                seed,
                profile: Some(profile),
            };
            let r = run_campaign(&Interpreter::new(), &b, &cfg);
            coverage.merge(&r.coverage);
            done += r.coverage.cases;
            if let Some(f) = r.failure {
                report_failure(&args, profile, &f);
                return ExitCode::from(1);
            }
            chunk += 1;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{profile}: {done} cases, {:.1} s, {:.0} cases/s, no divergence",
                secs,
                done as f64 / secs
            );
        }
        println!("{profile}: {}", coverage.report());
    }
    ExitCode::SUCCESS
}

fn scenarios(total: u64, seed: u64) -> ExitCode {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    let jit = || javm_jit_x86::Recompiler::new();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let jit = || Ok::<_, javm_exec::EngineError>(Interpreter::new());
    if let Err(e) = jit() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let b = move || jit().expect("the engine was available a moment ago");
    let start = Instant::now();
    let mut done = 0u64;
    let mut chunk = 0u64;
    let mut stats = javm::VmStats::default();
    let mut results = differential_tests::scenario::Results::default();
    while done < total {
        let n = CHUNK.min(total - done);
        let chunk_seed = seed.wrapping_mul(1_000_003).wrapping_add(chunk);
        let r = run_scenarios(Interpreter::new, b, n as u32, chunk_seed);
        done += r.scenarios;
        stats.merge(&r.stats);
        results.merge(&r.results);
        if let Some((s, what)) = r.failure {
            println!("DIVERGENCE (scenario chunk seed {chunk_seed}): {what}");
            println!("minimal scenario:\n{}", s.describe());
            println!("{s:?}");
            return ExitCode::from(1);
        }
        chunk += 1;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "scenarios: {done}, {secs:.1} s, {:.0} scenarios/s, no divergence",
            done as f64 / secs
        );
    }
    let summary = ScenarioCampaign {
        scenarios: done,
        stats,
        results,
        failure: None,
        elapsed: start.elapsed(),
    };
    println!("{}", summary.report());
    ExitCode::SUCCESS
}

fn report_failure(args: &Args, profile: GasProfile, f: &Failure) {
    println!("DIVERGENCE ({profile}): {}", f.divergence);
    println!("minimal case:\n{}", f.spec.source());
    let name = format!("divergence-{profile}-seed{}", args.seed);
    save(
        args,
        &name,
        "a divergence found by javm-diff; expectations are the interpreter's",
        f,
    );
}

fn save(args: &Args, name: &str, note: &str, f: &Failure) {
    // Record the correct (interpreter's) outcome of the case.
    let case = Case::from(&f.spec);
    match compare(&Interpreter::new(), &Interpreter::new(), &case) {
        Ok(trace) => match Regression::new(name, note, &f.spec, &trace).save(&args.save) {
            Ok(path) => println!("saved {}", path.display()),
            Err(e) => eprintln!("error: cannot save the regression file: {e}"),
        },
        Err(d) => eprintln!("error: the interpreter disagrees with itself: {d}"),
    }
}

fn self_test(args: &Args) -> ExitCode {
    let bugs = [
        (Bug::ExtraGasAfterHostCall, "extra-gas-after-host-call"),
        (Bug::FlipBitAfter(Opcode::AddImm64), "flipped-register-bit"),
        (Bug::StalePageState, "page-state-not-advanced"),
    ];
    let mut ok = true;
    for (bug, name) in bugs {
        let cfg = CampaignConfig {
            cases: 5000,
            seed: args.seed,
            profile: None,
        };
        let r = run_campaign(
            &Interpreter::new(),
            &Buggy::new(Interpreter::new(), bug),
            // (The self-test wraps the interpreter so that it runs on every host.)
            &cfg,
        );
        match r.failure {
            Some(f) => {
                println!(
                    "{bug:?}: caught after {} cases: {}",
                    r.coverage.cases, f.divergence.what
                );
                println!("{}", f.spec.source());
                let note = format!(
                    "shrunk case that exposed a deliberately wrong engine ({bug:?}); \
                     expectations are the interpreter's"
                );
                save(args, &format!("selftest-{name}"), &note, &f);
            }
            None => {
                println!("{bug:?}: NOT caught in {} cases", r.coverage.cases);
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
