#!/usr/bin/env bash
# Run every fuzz target for a while, as a CI job would.
#
#   fuzz/run.sh [SECONDS]          each target for SECONDS (default 600), side by side
#   fuzz/run.sh --minimize         minimize each target's corpus (cargo fuzz cmin)
#   JOBS=1 fuzz/run.sh 60          one target at a time
#
# Installs cargo-fuzz if it is missing. Needs a nightly toolchain (`rustup toolchain
# install nightly`). Each target runs on a scratch copy of its corpus, so the tracked
# seed corpus is never rewritten; findings (crash-*, leak-*, timeout-*) land in
# fuzz/artifacts/<target>/ and the script exits 1 if there is any. Logs go to
# fuzz/artifacts/<target>.log.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
toolchain=${FUZZ_TOOLCHAIN:-nightly}
if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
  echo "error: the $toolchain toolchain is missing: rustup toolchain install $toolchain" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
targets=$(cargo fuzz list)

if [[ ${1:-} == --minimize ]]; then
  for t in $targets; do
    echo "minimizing corpus/$t" >&2
    cargo "+$toolchain" fuzz cmin "$t" "corpus/$t"
  done
  exit 0
fi

seconds=${1:-600}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "error: $seconds is not a number of seconds" >&2; exit 2; }
jobs=${JOBS:-$(nproc)}
mkdir -p artifacts
for t in $targets; do cargo "+$toolchain" fuzz build "$t"; done

run() {
  local t=$1 work
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/"
  mkdir -p "artifacts/$t"
  if cargo "+$toolchain" fuzz run "$t" "$work" -- -max_total_time="$seconds" \
      -artifact_prefix="artifacts/$t/" >"artifacts/$t.log" 2>&1; then
    echo "$t: $(grep -E '^Done [0-9]+ runs' "artifacts/$t.log" | tail -1)"
  else
    echo "$t: FAILED (see fuzz/artifacts/$t.log and fuzz/artifacts/$t/)"
  fi
  rm -rf "$work"
}

running=0
for t in $targets; do
  run "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then wait -n; running=$((running - 1)); fi
done
wait
if compgen -G "artifacts/*/*" >/dev/null; then
  echo "findings:" >&2
  ls artifacts/*/ >&2
  exit 1
fi
