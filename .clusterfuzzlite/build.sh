#!/bin/bash -eu
# Build every cargo-fuzz target with the sanitizer ClusterFuzzLite asks for, and ship
# each target's seed corpus next to it.
cd "$SRC/javm/fuzz"
cargo fuzz build -O
for t in $(cargo fuzz list); do
  cp "target/x86_64-unknown-linux-gnu/release/$t" "$OUT/"
  (cd "corpus/$t" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
done
