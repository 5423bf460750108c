//! Gray Paper conformance: every `vectors/pvm-gp-0.4/*.json` file × every engine, as
//! one named trial each (`cargo test --test vectors -- interp::inst_add_32`).
//!
//! The vectors run under the `gp` profile and all must pass: there is no skip list.

use std::path::{Path, PathBuf};

use javm::vectors::{Vector, collect_files, compare, run};
use libtest_mimic::{Arguments, Failed, Trial};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/pvm-gp-0.4")
}

fn check<E: javm_exec::Engine>(engine: &E, path: &Path) -> Result<(), Failed> {
    let vector = Vector::load(path).map_err(|e| e.to_string())?;
    let outcome = run(engine, &vector)?;
    let diffs = compare(&vector, &outcome);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n").into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let files = collect_files(&[vector_dir()]).expect("the vector directory is readable");
    assert!(
        !files.is_empty(),
        "no vectors found in {}",
        vector_dir().display()
    );
    let mut trials = Vec::new();
    for file in files {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let f = file.clone();
        trials.push(Trial::test(format!("interp::{name}"), move || {
            check(&javm_exec::Interpreter::new(), &f)
        }));
        #[cfg(jit)]
        {
            let f = file.clone();
            trials.push(Trial::test(format!("jit::{name}"), move || {
                check(differential_tests::jit(), &f)
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
