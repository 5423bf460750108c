//! `javm-diff`: long differential campaigns between the engines.
//!
//! ```sh
//! cargo run --release -p differential-tests --bin javm-diff -- --cases 100000 --seed 1
//! ```
//!
//! Runs `--cases` generated programs per gas profile, in chunks, printing cases per
//! second and coverage; on a divergence prints the shrunk case and its localization,
//! saves it as a regression file under `--save` (default: a new directory under the
//! system's temporary directory, so a run never rewrites tracked files) and exits 1.
//! `--self-test` instead runs the deliberately wrong engines and shows that each is
//! caught.
//!
//! `--jobs N` runs chunks of 10 000 on N threads (default: every core); a chunk's
//! seed depends only on `--seed` and its index, so any `--jobs` tests the same cases.
//!
//! `--jit-part N` has the recompiler compile each program in parts of at most N
//! instructions on three threads and link them, as it does by default only for
//! programs of more than 32 768 instructions.
//!
//! `--scenarios N` runs N driver-level scenarios instead (several instances calling
//! each other through the `Vm` host ops, yields, resumes, out of gas, settling; see
//! `differential_tests::scenario`), printing scenarios per second and what they
//! reached; a divergence prints the shrunk scenario and exits 1 (the same `--seed`
//! reproduces it).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Where to save shrunk divergences as regression files [default: a fresh
    /// directory under the system's temporary directory]. Pass
    /// `differential-tests/regressions` to add them to the replayed suite.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// Run the wrong-engine self-tests instead (and save their shrunk cases).
    #[arg(long)]
    self_test: bool,
    /// Run this many driver-level scenarios instead of programs.
    #[arg(long, value_name = "N")]
    scenarios: Option<u64>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Have the recompiler compile every program in parts of at most this many
    /// instructions (whole blocks), on 3 threads, and link them — what programs of
    /// more than 32 768 instructions get by default [default: one part].
    #[arg(long, value_name = "INSTRUCTIONS")]
    jit_part: Option<usize>,
}

/// The worker count for `--jobs`.
fn jobs(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Run `chunks` chunks with `run(index)` on `jobs` threads, in index order per thread,
/// until all ran or one returns `Err`; `done(index, result)` sees every `Ok` result
/// under a lock, as it arrives. Returns the failure with the lowest index.
fn parallel<R: Send, F: Send>(
    jobs: usize,
    chunks: u64,
    run: impl Fn(u64) -> Result<R, F> + Sync,
    done: impl FnMut(u64, R) + Send,
) -> Option<(u64, F)> {
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let done = Mutex::new(done);
    let failure: Mutex<Option<(u64, F)>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks {
                        break;
                    }
                    match run(i) {
                        Ok(r) => (done.lock().unwrap_or_else(|e| e.into_inner()))(i, r),
                        Err(f) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = failure.lock().unwrap_or_else(|e| e.into_inner());
                            if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                                *slot = Some((i, f));
                            }
                        }
                    }
                }
            });
        }
    });
    failure.into_inner().unwrap_or_else(|e| e.into_inner())
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
    let jobs = jobs(args.jobs);
    if let Some(n) = args.scenarios {
        return scenarios(n, args.seed, jobs);
    }
    let profiles = match args.profile {
        ProfileArg::Jar1 => vec![GasProfile::Jar1],
        ProfileArg::Gp => vec![GasProfile::Gp],
        ProfileArg::Both => vec![GasProfile::Jar1, GasProfile::Gp],
    };
    #[cfg(jit)]
    let b = match javm_jit_x86::Recompiler::new() {
        Ok(b) => match args.jit_part {
            Some(part) => {
                eprintln!("engines: interp vs jit (compiled in parts of {part} instructions)");
                b.with_compile_part(part).with_compile_threads(3)
            }
            None => {
                eprintln!("engines: interp vs jit");
                b
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(not(jit))]
    let b = {
        eprintln!("engines: interp vs interp (no recompiler on this host)");
        Interpreter::new()
    };
    eprintln!("jobs: {jobs}");
    for profile in profiles {
        let mut coverage = Coverage::default();
        let start = Instant::now();
        let mut done = 0u64;
        let chunks = args.cases.div_ceil(CHUNK);
        let failure = parallel(
            jobs,
            chunks,
            |chunk| {
                let n = CHUNK.min(args.cases - chunk * CHUNK);
                let cfg = CampaignConfig {
                    cases: n as u32,
                    seed: args.seed.wrapping_mul(1_000_003).wrapping_add(chunk),
                    profile: Some(profile),
                };
                let r = run_campaign(&Interpreter::new(), &b, &cfg);
                match r.failure {
                    Some(f) => Err(Box::new(f)),
                    None => Ok(r.coverage),
                }
            },
            |_, c: Coverage| {
                coverage.merge(&c);
                done += c.cases;
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{profile}: {done} cases, {:.1} s, {:.0} cases/s, no divergence",
                    secs,
                    done as f64 / secs
                );
            },
        );
        if let Some((_, f)) = failure {
            report_failure(&args, profile, &f);
            return ExitCode::from(1);
        }
        println!("{profile}: {}", coverage.report());
    }
    ExitCode::SUCCESS
}

fn scenarios(total: u64, seed: u64, jobs: usize) -> ExitCode {
    #[cfg(jit)]
    let jit = || javm_jit_x86::Recompiler::new();
    #[cfg(not(jit))]
    let jit = || Ok::<_, javm_exec::EngineError>(Interpreter::new());
    if let Err(e) = jit() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let b = move || jit().expect("the engine was available a moment ago");
    let start = Instant::now();
    let mut done = 0u64;
    let mut stats = javm::VmStats::default();
    let mut results = differential_tests::scenario::Results::default();
    let failure = parallel(
        jobs,
        total.div_ceil(CHUNK),
        |chunk| {
            let n = CHUNK.min(total - chunk * CHUNK);
            let chunk_seed = seed.wrapping_mul(1_000_003).wrapping_add(chunk);
            let r = run_scenarios(Interpreter::new, b, n as u32, chunk_seed);
            match r.failure {
                Some((s, what)) => Err(Box::new((chunk_seed, s, what))),
                None => Ok((r.scenarios, r.stats, r.results)),
            }
        },
        |_, (n, s, r)| {
            done += n;
            stats.merge(&s);
            results.merge(&r);
            let secs = start.elapsed().as_secs_f64();
            println!(
                "scenarios: {done}, {secs:.1} s, {:.0} scenarios/s, no divergence",
                done as f64 / secs
            );
        },
    );
    if let Some((_, failed)) = failure {
        let (chunk_seed, s, what) = *failed;
        println!("DIVERGENCE (scenario chunk seed {chunk_seed}): {what}");
        println!("minimal scenario:\n{}", s.describe());
        println!("{s:?}");
        return ExitCode::from(1);
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
        Ok(trace) => match save_dir(args)
            .and_then(|dir| Regression::new(name, note, &f.spec, &trace).save(&dir))
        {
            Ok(path) => println!("saved {}", path.display()),
            Err(e) => eprintln!("error: cannot save the regression file: {e}"),
        },
        Err(d) => eprintln!("error: the interpreter disagrees with itself: {d}"),
    }
}

/// The `--save` directory, or a fresh one under the temporary directory (created).
fn save_dir(args: &Args) -> std::io::Result<PathBuf> {
    let dir = match &args.save {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("javm-diff-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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

#[cfg(test)]
mod tests {
    use super::parallel;

    #[test]
    fn parallel_runs_every_chunk_once_and_reports_the_first_failure() {
        let mut seen = Vec::new();
        let f = parallel(3, 50, |i| Ok::<u64, ()>(i * 2), |i, r| seen.push((i, r)));
        assert!(f.is_none());
        seen.sort();
        assert_eq!(seen, (0..50).map(|i| (i, i * 2)).collect::<Vec<_>>());
        let f = parallel(
            2,
            50,
            |i| if i == 7 || i == 30 { Err(i) } else { Ok(i) },
            |_, _| {},
        );
        assert_eq!(f, Some((7, 7)), "the failure with the lowest index");
    }
}
