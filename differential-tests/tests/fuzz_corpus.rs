//! Replays the fuzz corpora (`fuzz/corpus/*`) through the fuzz oracles on stable Rust,
//! so every fuzzing finding kept there is a regression test.

use std::path::Path;

/// libFuzzer names the inputs it adds by their SHA-1; those are not committed (see
/// fuzz/README.md), so the replay covers exactly the kept corpus.
fn generated(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn replay(target: &str, oracle: fn(&[u8]), at_least: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory exists") {
        let path = entry.expect("readable entry").path();
        if generated(&path) {
            continue;
        }
        let data = std::fs::read(&path).expect("readable corpus file");
        oracle(&data);
        n += 1;
    }
    assert!(
        n >= at_least,
        "expected the seed corpus, found {n} files in {}",
        dir.display()
    );
}

#[test]
fn loader_corpus_replays() {
    replay("loader", differential_tests::fuzz::loader, 200);
}

#[test]
fn diff_corpus_replays() {
    replay("diff", differential_tests::fuzz::diff, 20);
}
