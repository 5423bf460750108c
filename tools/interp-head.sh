#!/usr/bin/env bash
# Where the interpreter's dispatch head lies in a built binary, and whether it
# crosses a 32-byte boundary.
#
# The head is the block every op of the dispatch loop (`run_to_exit`, in
# javm-exec/src/interp/run.rs) jumps back to: the deferred register write, the
# load of the next op and the jump through the jump table. The loop ran 10-30%
# slower with those ~27 bytes across a 64-byte line, and about 4% slower with
# them across a 32-byte boundary inside one, and any edit to the loop (or to how
# callers reach it) can move them (docs/BENCHMARKS.md, "The interpreter's block
# entry through one gate word"; docs/DESIGN-DECISIONS.md, 115). Run this on the
# binaries you time before and after such an edit.
#
# Usage: tools/interp-head.sh BINARY...   (needs objdump and nm from binutils)
# Prints one line per binary; exits 1 if a head crosses a 32-byte boundary, 2 if
# the loop is not found.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: tools/interp-head.sh BINARY..." >&2
    exit 2
fi
status=0
for bin in "$@"; do
    if [ ! -f "$bin" ]; then
        echo "$bin: no such file" >&2
        status=2
        continue
    fi
    line=$(nm -S "$bin" | grep 'interp3run6placed11run_to_exit' | head -n1 || true)
    if [ -z "$line" ]; then
        echo "$bin: no interpreter loop (run_to_exit) found" >&2
        status=2
        continue
    fi
    read -r start size _ _ <<<"$line"
    stop=$(printf '0x%x' $((0x$start + 0x$size)))
    objdump -d --no-show-raw-insn -M intel --start-address="0x$start" \
        --stop-address="$stop" "$bin" |
        awk -v bin="$bin" -v start=$((0x$start)) '
        function hex(s,   v, k) {
            v = 0
            for (k = 1; k <= length(s); k++) v = v * 16 + index("0123456789abcdef", substr(s, k, 1)) - 1
            return v
        }
        /^ *[0-9a-f]+:/ {
            a = $1; sub(":", "", a); addr[n] = hex(a); text[n] = $0; n++
            if ($2 == "jmp" && $3 ~ /^[0-9a-f]+$/) jumps[hex($3)]++
        }
        END {
            best = -1
            for (t in jumps) if (jumps[t] > best) { best = jumps[t]; head = t + 0 }
            if (best < 0) { printf "%s: no jumps in the loop to find its head in\n", bin > "/dev/stderr"; exit 2 }
            for (i = 0; i < n && addr[i] != head; i++) {}
            for (j = i; j < n && text[j] !~ /jmp +r[a-z0-9]+$/; j++) {}
            len = addr[j + 1] - head
            off = head % 64
            line = off + len > 64
            half = (head % 32) + len > 32
            printf "%s: loop at %#x, head at +%#x (%d mod 64), %d bytes, %d jumps to it: %s\n",
                bin, start, head - start, off, len, best,
                line ? "STRADDLES a 64-byte line" : half ? "CROSSES a 32-byte boundary" : "within one 32-byte block"
            exit (line || half) ? 1 : 0
        }' || status=$?
done
exit "$status"
