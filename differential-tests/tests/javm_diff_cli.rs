//! The `javm-diff` binary as a CI job runs it: `--self-test` catches every wrong
//! engine and keeps its shrunk cases out of the tracked regression directory.

use std::path::Path;
use std::process::Command;

/// Every file of the tracked regression directory, with its contents.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn self_test_writes_no_tracked_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tracked = root.join("differential-tests/regressions");
    let before = snapshot(&tracked);
    let o = Command::new(env!("CARGO_BIN_EXE_javm-diff"))
        .args(["--self-test", "--seed", "3"])
        .current_dir(&root)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    let saved: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("saved "))
        .collect();
    assert_eq!(saved.len(), 3, "{out}");
    for p in saved {
        assert!(
            Path::new(p).starts_with(std::env::temp_dir()),
            "{p} is not under the temporary directory"
        );
        std::fs::remove_file(p).unwrap();
    }
    assert_eq!(
        snapshot(&tracked),
        before,
        "the tracked regressions changed"
    );
}
