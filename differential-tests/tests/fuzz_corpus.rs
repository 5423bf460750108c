//! Replays the fuzz corpus (`fuzz/corpus/*`) through the fuzz oracles on stable Rust,
//! so every fuzzing finding kept there is a regression test.

use std::path::Path;

#[test]
fn loader_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/loader");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        differential_tests::fuzz::loader(&data);
        n += 1;
    }
    assert!(
        n >= 200,
        "expected the seed corpus, found {n} files in {}",
        dir.display()
    );
}
