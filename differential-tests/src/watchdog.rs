//! A watchdog that turns a comparison that never ends into a failure.
//!
//! Gas bounds every run of a correct engine, so every comparison ends. An engine
//! with a fault that loops without charging gas — compiled code that jumps into
//! the middle of a block, past its gas check — would instead hang its test,
//! campaign or fuzz run without a word. [`oracle::compare`] therefore runs under a
//! [`Watch`]: a background thread looks at the running comparisons every second
//! and, when one has run longer than the limit, prints the case it was running
//! (profile, gas, entry, registers and the program's disassembly) and ends the
//! process with exit code 101, the code of a failed test.
//!
//! The limit is [`DEFAULT_LIMIT`], or `JAVM_DIFF_WATCHDOG_SECS` seconds; 0 turns
//! the watchdog off.
//!
//! [`oracle::compare`]: crate::oracle::compare

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use javm_exec::{GasProfile, Program};

use crate::oracle::Case;

/// How long one comparison may run: far more than the longest case of any suite
/// takes (a few seconds), on a loaded machine too.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(300);

/// The environment variable that sets the limit in seconds (0: no watchdog).
pub const LIMIT_VAR: &str = "JAVM_DIFF_WATCHDOG_SECS";

/// Programs of at most this many instructions are printed in full when the
/// watchdog fires; larger ones by their hash.
const PRINT_MAX_INSTRUCTIONS: usize = 2000;

/// What a running comparison was given (formatted only if the watchdog fires).
struct Running {
    since: Instant,
    program: Arc<Program>,
    regs: [u64; 13],
    pc: u32,
    gas: i64,
    profile: GasProfile,
}

static RUNNING: Mutex<BTreeMap<u64, Running>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The limit from the environment, read once.
fn limit() -> Option<Duration> {
    static LIMIT: OnceLock<Option<Duration>> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let secs = match std::env::var(LIMIT_VAR) {
            Err(_) => return Some(DEFAULT_LIMIT),
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(s) => s,
                Err(_) => {
                    eprintln!(
                        "{LIMIT_VAR}={v:?} is not a number of seconds; the watchdog uses {} s",
                        DEFAULT_LIMIT.as_secs()
                    );
                    return Some(DEFAULT_LIMIT);
                }
            },
        };
        (secs > 0).then(|| Duration::from_secs(secs))
    })
}

/// A comparison registered with the watchdog until it is dropped.
#[must_use = "the comparison is watched only while the guard lives"]
pub struct Watch {
    id: Option<u64>,
}

impl Watch {
    /// Watch the comparison of `case` that starts now (nothing if the watchdog is
    /// off).
    pub fn start(case: &Case) -> Watch {
        let Some(limit) = limit() else {
            return Watch { id: None };
        };
        start_thread(limit);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let running = Running {
            since: Instant::now(),
            program: Arc::clone(&case.program),
            regs: case.regs,
            pc: case.pc,
            gas: case.gas,
            profile: case.profile,
        };
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, running);
        Watch { id: Some(id) }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            RUNNING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// Start the checking thread once.
fn start_thread(limit: Duration) {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let every = (limit / 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let spawned = std::thread::Builder::new()
            .name("javm-diff-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    check(limit);
                }
            });
        if let Err(e) = spawned {
            let _ = writeln!(
                std::io::stderr().lock(),
                "the differential watchdog could not start ({e}): hangs stay hangs"
            );
        }
    });
}

/// End the process if a comparison has run longer than `limit`.
fn check(limit: Duration) {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let Some(r) = running.values().find(|r| r.since.elapsed() > limit) else {
        return;
    };
    let program = if r.program.instructions().len() <= PRINT_MAX_INSTRUCTIONS {
        javm_exec::disasm::disassemble(&r.program)
    } else {
        format!(
            "({} instructions, hash {})\n",
            r.program.instructions().len(),
            r.program.hash()
        )
    };
    // Straight to the process's stderr: `eprintln!` in a thread a test started
    // goes to that test's captured output, which exiting would lose.
    let _ = writeln!(
        std::io::stderr().lock(),
        "javm-diff watchdog: a comparison has run for {} s (limit {} s): an engine \
         does not stop (a loop that passes no gas check?). The case: profile {}, gas \
         {}, pc {}, registers {:x?}; the program:\n{program}",
        r.since.elapsed().as_secs(),
        limit.as_secs(),
        r.profile.name(),
        r.gas,
        r.pc,
        r.regs,
    );
    std::process::exit(101);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Environment variable that makes the `child_*` tests act (they are ignored
    /// and return at once otherwise).
    const CHILD: &str = "JAVM_DIFF_WATCHDOG_CHILD";

    fn case() -> Case {
        let src = "loop:\njump @loop";
        Case {
            program: Arc::new(javm_exec::asm::assemble(src).unwrap().program().unwrap()),
            layout: Arc::new(javm_exec::MemoryLayout::new()),
            regs: [7; 13],
            pc: 0,
            gas: 1234,
            profile: GasProfile::Jar1,
            host_seed: 0,
        }
    }

    /// Run test `name` of this binary in a child process with a 1-second limit.
    fn child(name: &str) -> (Option<i32>, String, Duration) {
        let start = Instant::now();
        // Output captured as in any test run: the report must reach stderr anyway.
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--ignored", "--test-threads=1"])
            .env(CHILD, "1")
            .env(LIMIT_VAR, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr, start.elapsed())
    }

    #[test]
    #[ignore = "run by `a_comparison_past_the_limit_fails_the_process`"]
    fn child_hangs() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let _watch = Watch::start(&case());
        std::thread::sleep(Duration::from_secs(60));
    }

    #[test]
    #[ignore = "run by `a_finished_comparison_is_forgotten`"]
    fn child_finishes() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        drop(Watch::start(&case()));
        std::thread::sleep(Duration::from_secs(3));
    }

    #[test]
    fn a_comparison_past_the_limit_fails_the_process() {
        let (code, stderr, took) = child("watchdog::tests::child_hangs");
        assert_eq!(code, Some(101), "{stderr}");
        assert!(took < Duration::from_secs(30), "fired after {took:?}");
        assert!(stderr.contains("javm-diff watchdog"), "{stderr}");
        assert!(stderr.contains("gas 1234"), "{stderr}");
        assert!(stderr.contains("jump"), "the program is printed: {stderr}");
    }

    #[test]
    fn a_finished_comparison_is_forgotten() {
        let (code, stderr, _) = child("watchdog::tests::child_finishes");
        assert_eq!(code, Some(0), "{stderr}");
        assert!(!stderr.contains("javm-diff watchdog"), "{stderr}");
    }
}
