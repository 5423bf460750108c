#!/usr/bin/env bash
# Rebuilds programs/*.pbp from src/*.c, as the peer harness builds its nine
# workloads: C --clang (rv64em, lp64e)--> object --ld.lld--> ELF --elf2pb
# (polkavm-linker, opcodes renumbered to the Gray Paper's)--> NAME.pbp, with the
# result a native build of the same file prints as the expected A0.
#
# Needs clang-19 and ld.lld-19 (Debian: apt-get install clang-19 lld-19) and two
# things from the peer harness: ELF2PB=path of its elf2pb tool and
# PB_GUEST=the directory of its guest header (pb_guest.h).
#
# usage: ELF2PB=... PB_GUEST=... tools/peer-extra/build.sh [NAME ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${ELF2PB:?set ELF2PB to the peer harness's elf2pb}"
: "${PB_GUEST:?set PB_GUEST to the directory of the harness's pb_guest.h}"
CLANG="${CLANG:-clang-19}"
LLD="${LLD:-ld.lld-19}"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
# The harness's flags, plus -ffunction-sections: calls between functions of one
# section would otherwise be resolved by the assembler without the relocations
# polkavm-linker needs.
CFLAGS=(--target=riscv64-unknown-none-elf -mabi=lp64e -march=rv64em -O2
        -ffreestanding -fno-builtin -nostdlib -fno-stack-protector -fno-pic
        -mcmodel=medany -mno-relax -fno-asynchronous-unwind-tables
        -ffunction-sections -I"$PB_GUEST")
LDFLAGS=(--emit-relocs --no-relax -static -e 0)
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=(calls divs hashmap memops switch)
fi
for name in "${names[@]}"; do
  "$CLANG" -O2 -DPB_NATIVE -I"$PB_GUEST" "$here/src/$name.c" -o "$build/$name.native"
  expected="$("$build/$name.native")"
  "$CLANG" "${CFLAGS[@]}" -c "$here/src/$name.c" -o "$build/$name.o"
  "$LLD" "${LDFLAGS[@]}" "$build/$name.o" -o "$build/$name.elf"
  "$ELF2PB" "$build/$name.elf" -o "$here/programs/$name.pbp" --name "$name" \
    --export main --expect-a0 "$expected" --hostcall forbidden
  echo "$name: expected A0 $expected"
done
