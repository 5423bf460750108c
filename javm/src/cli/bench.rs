//! `javm bench`: the built-in workloads on each engine, as one table of medians.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use javm::bench::vm::{measure_driver, measure_settle};
use javm::bench::{Figures, HOSTCALL, WORKLOADS, large_program, measure, measure_compile};
use javm_exec::{EngineKind, Interpreter};

use super::EngineArg;
use super::out::{CliError, outln};

/// Dirtied pages of the settle measurements.
const SETTLE_DIRTY: [u32; 3] = [1, 64, 1024];
/// Mapped pages of the settle measurements: 8 MiB and 1 GiB.
const SETTLE_SMALL: u32 = 2048;
const SETTLE_LARGE: u32 = 1 << 18;

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// The engines to measure: both by default.
fn engines(choice: Option<EngineArg>) -> Result<Vec<EngineKind>, String> {
    Ok(match choice {
        None => {
            let mut v = vec![EngineKind::Interp];
            if javm::jit_available() {
                v.push(EngineKind::Jit);
            }
            v
        }
        Some(e) => vec![super::engine(e)?],
    })
}

fn figures(kind: EngineKind, w: &javm::bench::Workload, samples: usize) -> Result<Figures, String> {
    match kind {
        EngineKind::Interp => measure(&Interpreter::new, w, samples),
        #[cfg(jit)]
        EngineKind::Jit => {
            super::recompiler()?;
            measure(
                &|| javm_jit_x86::Recompiler::new().expect("checked above"),
                w,
                samples,
            )
        }
        #[cfg(not(jit))]
        EngineKind::Jit => Err(super::JIT_UNAVAILABLE.into()),
    }
}

/// Compile times of `program`: with prices cached, with pricing, and (for the
/// recompiler, which compiles a program this large on several threads) with
/// pricing on one thread.
fn compile_large(
    kind: EngineKind,
    program: &Arc<javm_exec::Program>,
    samples: usize,
) -> Result<(Duration, Duration, Option<Duration>), String> {
    match kind {
        EngineKind::Interp => {
            measure_compile(&Interpreter::new, program, samples).map(|(a, b)| (a, b, None))
        }
        #[cfg(jit)]
        EngineKind::Jit => {
            super::recompiler()?;
            let (priced, fresh) = measure_compile(
                &|| javm_jit_x86::Recompiler::new().expect("checked above"),
                program,
                samples,
            )?;
            let (_, one) = measure_compile(
                &|| {
                    javm_jit_x86::Recompiler::new()
                        .expect("checked above")
                        .with_compile_threads(1)
                },
                program,
                samples,
            )?;
            Ok((priced, fresh, Some(one)))
        }
        #[cfg(not(jit))]
        EngineKind::Jit => Err(super::JIT_UNAVAILABLE.into()),
    }
}

pub(super) fn bench(choice: Option<EngineArg>, samples: usize) -> Result<ExitCode, CliError> {
    if samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    let kinds = engines(choice)?;
    outln!(
        "medians of {samples} samples (compile: {}); results and gas checked",
        samples * 4
    );
    outln!(
        "{:<10} {:<7} {:>11} {:>11} {:>11} {:>11} {:>12} {:>9}",
        "workload",
        "engine",
        "compile",
        "create",
        "lifecycle",
        "execute",
        "gas",
        "vs interp"
    );
    for w in WORKLOADS {
        let mut base: Option<Figures> = None;
        for &k in &kinds {
            let f = figures(k, w, samples)?;
            let ratio = match &base {
                Some(b) => {
                    if b.gas != f.gas {
                        return Err(format!(
                            "{}: gas differs between engines ({} vs {})",
                            w.name, b.gas, f.gas
                        )
                        .into());
                    }
                    format!("{:.1}×", b.execute.as_secs_f64() / f.execute.as_secs_f64())
                }
                None => String::new(),
            };
            outln!(
                "{:<10} {:<7} {:>11} {:>11} {:>11} {:>11} {:>12} {:>9}",
                w.name,
                k.name(),
                fmt(f.compile),
                fmt(f.create),
                fmt(f.lifecycle),
                fmt(f.execute),
                f.gas,
                ratio
            );
            if base.is_none() {
                base = Some(f);
            }
        }
    }
    for &k in &kinds {
        let f = figures(k, &HOSTCALL, samples)?;
        // A tenth of a nanosecond: a whole-nanosecond figure would truncate.
        let per_call = f.execute.as_secs_f64() * 1e9 / f64::from(HOSTCALL.n);
        outln!(
            "host call ({}): {per_call:.1} ns per exit and re-entry ({} calls in {})",
            k.name(),
            HOSTCALL.n,
            fmt(f.execute)
        );
    }
    let large = Arc::new(large_program(1 << 20)?);
    let mb = large.code().len() as f64 / 1e6;
    for &k in &kinds {
        let (priced, fresh, one) = compile_large(k, &large, samples)?;
        let one = one.map_or(String::new(), |d| {
            format!(
                "; on one thread {} = {:.0} MB/s",
                fmt(d),
                mb / d.as_secs_f64()
            )
        });
        outln!(
            "compile {:.2} MB of PVM code ({}): {} = {:.0} MB/s; with block pricing {} = {:.0} MB/s{one}",
            mb,
            k.name(),
            fmt(priced),
            mb / priced.as_secs_f64(),
            fmt(fresh),
            mb / fresh.as_secs_f64()
        );
    }
    // The driver last: settling allocates and frees many page slabs, which would
    // disturb the allocator-sensitive figures above.
    for &k in &kinds {
        let d = measure_driver(k, samples)?;
        outln!(
            "vm ({}): invoke of a cached instance that halts at once {}; HOST_CALL round trip {}",
            k.name(),
            fmt(d.invoke),
            fmt(d.call)
        );
    }
    for &k in &kinds {
        let mut row = Vec::new();
        for dirty in SETTLE_DIRTY {
            let small = measure_settle(k, dirty, SETTLE_SMALL, samples)?;
            let large = measure_settle(k, dirty, SETTLE_LARGE, samples)?;
            row.push(format!("{dirty}: {} / {}", fmt(small), fmt(large)));
        }
        outln!(
            "vm settle ({}), dirtied pages: time with 8 MiB / 1 GiB mapped: {}",
            k.name(),
            row.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
