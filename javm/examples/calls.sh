#!/bin/sh
# The README's walk-through of calls between instances, as one script:
#   cargo build --release -p javm && JAVM=target/release/javm sh examples/calls.sh
# (or with `javm` on PATH). It uses a fresh store in a temporary directory unless
# JAVM_STORE names one; JAVM_ENGINE picks the engine (auto, interp or jit).
set -eu
javm=${JAVM:-javm}
engine=${JAVM_ENGINE:-auto}
JAVM_STORE=${JAVM_STORE:-$(mktemp -d)}
export JAVM_STORE
# `hash KIND [SLOT]`: the hash of a `store put` output line.
hash() { awk -v k="$1" -v s="${2:-}" '$1 == k && (s == "" || $4 == s) { print $2 }'; }

echo "== a caller passes a data cap to a callee, which counts its words"
W=$($javm store put examples/wordcount.toml | hash instance)
C=$($javm store put examples/client.toml --slot 3="$W" | hash instance)
OUT=$($javm store invoke --engine "$engine" "$C")
echo "$OUT"
POST=$(echo "$OUT" | hash post-instance:)
echo "== the settled post-instance continues from the running total"
$javm store invoke --engine "$engine" "$POST"

echo "== a worker yields, its supervisor catches, the embedder resumes it with input"
OUT=$($javm store put examples/worker.toml)
MARKER=$(echo "$OUT" | hash data 5)
INPUT=$(echo "$OUT" | hash data 6)
WORKER=$(echo "$OUT" | hash instance)
OUT=$($javm store put examples/supervisor.toml --slot 3="$WORKER")
CATCHER=$(echo "$OUT" | hash data 4)
SUPERVISOR=$(echo "$OUT" | hash instance)
$javm store invoke --engine "$engine" "$SUPERVISOR" --catch "$CATCHER=$MARKER" --resume 1 --scratchpad "$INPUT"

echo "== out of gas is a yield too: caught, topped up and resumed"
$javm store invoke --engine "$engine" "$SUPERVISOR" --gas 4000 --catch "$CATCHER=$MARKER" --catch "$CATCHER=oog" \
    --resume 2 --top-up 100000 --scratchpad "$INPUT"

echo "== uncaught, the yield traps the worker; the supervisor sees status 1"
$javm store invoke --engine "$engine" "$SUPERVISOR"
