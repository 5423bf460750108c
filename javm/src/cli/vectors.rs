//! `javm test-vectors`.

use std::path::PathBuf;
use std::process::ExitCode;

use javm::vectors::{Vector, collect_files, compare, run};
use javm_exec::{Engine, EngineKind, Interpreter};

pub(super) fn test_vectors(paths: &[PathBuf], kind: EngineKind) -> Result<ExitCode, String> {
    let files = collect_files(paths).map_err(|e| e.to_string())?;
    if files.is_empty() {
        return Err("no vector files found (expected *.json files or directories of them)".into());
    }
    // Load everything first: a malformed file stops the run before anything executes.
    let mut vectors = Vec::with_capacity(files.len());
    let mut malformed = Vec::new();
    for f in &files {
        match Vector::load(f) {
            Ok(v) => vectors.push(v),
            Err(e) => malformed.push(e.to_string()),
        }
    }
    if !malformed.is_empty() {
        let n = malformed.len();
        for m in &malformed[..n - 1] {
            eprintln!("error: {m}");
        }
        return Err(malformed[n - 1].clone());
    }
    let (passed, failed) = match kind {
        EngineKind::Interp => run_all(&Interpreter::new(), &vectors),
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        EngineKind::Jit => run_all(&super::recompiler()?, &vectors),
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        EngineKind::Jit => return Err(super::JIT_UNAVAILABLE.into()),
    };
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_all<E: Engine>(engine: &E, vectors: &[Vector]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for v in vectors {
        let diffs = match run(engine, v) {
            Ok(outcome) => compare(v, &outcome),
            Err(e) => vec![e],
        };
        if diffs.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            println!("FAIL {}: {}", v.name, diffs.join("; "));
        }
    }
    (passed, failed)
}
