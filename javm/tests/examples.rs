//! The shipped examples through the `javm` binary, as the README shows them:
//! `examples/calls.sh` (caller/callee with a data cap in slot 0, settled state seen
//! by the next invoke, a yield caught and resumed with a scratchpad, an out-of-gas
//! pause topped up, an uncaught yield) on each engine, which must print the same
//! results and hashes; and `javm run` of an image manifest.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn engines() -> Vec<&'static str> {
    if javm::jit_available() {
        vec!["interp", "jit"]
    } else {
        vec!["interp"]
    }
}

fn stdout(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_calls_walk_through_prints_the_same_on_every_engine() {
    let mut first: Option<String> = None;
    for engine in engines() {
        let store = tempfile::tempdir().unwrap();
        let o = Command::new("sh")
            .arg("examples/calls.sh")
            .current_dir(root())
            .env("JAVM", env!("CARGO_BIN_EXE_javm"))
            .env("JAVM_STORE", store.path())
            .env("JAVM_ENGINE", engine)
            .output()
            .expect("sh runs");
        let out = stdout(&o);
        let returns: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("halt: return value "))
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        // 9 words, 18 after the second invoke, the input's length after a resume
        // (twice), 1000 when the worker's yield is not caught.
        assert_eq!(returns, ["9", "18", "18", "18", "1000"], "{engine}:\n{out}");
        assert_eq!(out.matches("paused:").count(), 3, "{out}");
        assert!(out.contains("(out of gas)"), "{out}");
        match &first {
            None => first = Some(out),
            Some(f) => assert_eq!(f, &out, "engines print different results"),
        }
    }
}

#[test]
fn run_takes_an_image_manifest_with_its_argument_in_slot_0() {
    for engine in engines() {
        let o = Command::new(env!("CARGO_BIN_EXE_javm"))
            .args([
                "run",
                "examples/wordcount.toml",
                "--json",
                "--engine",
                engine,
            ])
            .args([
                "--arg",
                &"one two three"
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            ])
            .current_dir(root())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["result"], "halt");
        assert_eq!(v["return_value"], "0x3", "64-bit values are hex strings");
        assert_eq!(v["engine"], engine);
        // Without an argument slot 0 is empty: READ_DATA_CAP traps; exit status 1.
        let o = Command::new(env!("CARGO_BIN_EXE_javm"))
            .args(["run", "examples/wordcount.toml", "--engine", engine])
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("faulted: trap"));
    }
    // Options that belong to program files are refused with one line.
    for bad in [&["--trace"][..], &["--entry", "4"], &["--format", "std"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_javm"))
            .args(["run", "examples/greeter.toml"])
            .args(bad)
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    }
}
