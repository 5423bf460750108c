//! The oracles behind the `fuzz/` targets, shared with the stable test that replays
//! their corpus (`tests/fuzz_corpus.rs`). Any panic is a finding.
//!
//! * [`loader`] (raw-bytes mode) feeds arbitrary bytes to every program loader.
//!   Whatever they accept must disassemble into text that reassembles to the same
//!   code, bitmask and jump table (for jump tables of at most 65 536 entries), and
//!   must agree on both engines under both gas profiles (the differential
//!   [`oracle`](crate::oracle)).
//! * [`diff`] (structured mode) turns the bytes into a generated program
//!   ([`Spec::from_bytes`]) and runs it through the differential oracle.

use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::blob::{StandardProgram, parse_code_blob};
use javm_exec::disasm::disassemble;
use javm_exec::{GasProfile, Interpreter, MemoryLayout, PageKind, Program};

use crate::generate::Spec;
use crate::oracle::{Case, compare};

/// Gas given to each fuzzed run.
const FUZZ_GAS: i64 = 200_000;

/// Feed `data` to every loader and check what they accept.
pub fn loader(data: &[u8]) {
    if let Ok(p) = parse_code_blob(data) {
        check_program(&Arc::new(p));
    }
    let standard = [
        StandardProgram::parse(data),
        StandardProgram::parse_with_metadata(data),
    ];
    for sp in standard.into_iter().flatten() {
        check_program(&sp.program);
        if let Ok((layout, regs)) = sp.initial_state(&[1, 2, 3, 4]) {
            check_runs(&sp.program, &layout, regs);
        }
    }
}

/// Jump-table entries above which [`check_program`] skips the text round trip.
/// A few bytes declare up to 2^24 entries of size 0; the round trip is linear
/// (about 0.5 µs per entry in a release build) but took 11 s for a 9-byte blob
/// of 1 638 535 entries under the fuzzer's instrumentation, which reports
/// units over 10 s. Such programs still run on both engines.
const ROUND_TRIP_MAX_ENTRIES: usize = 1 << 16;

/// Disassembly round trip (for jump tables of at most 65 536 entries), then runs
/// on a small fixed layout.
pub fn check_program(p: &Arc<Program>) {
    if p.jump_table().len() <= ROUND_TRIP_MAX_ENTRIES {
        check_round_trip(p);
    }
    let mut layout = MemoryLayout::new();
    let ok = layout
        .add_region(0x10000, 0x2000, PageKind::PinnedCapRo, b"fuzz")
        .and_then(|l| l.add_region(0x20000, 0x2000, PageKind::UnpinnedCapCow, &[7; 100]))
        .and_then(|l| l.add_region(0x30000, 0x1000, PageKind::EphemeralZero, &[]))
        .and_then(|l| l.add_region(0xFFFF_F000, 0x1000, PageKind::EphemeralZero, &[]))
        .is_ok();
    assert!(ok, "fixed fuzz layout is valid");
    let mut regs = [0u64; 13];
    regs[1] = 0x20800;
    regs[2] = 0x30000;
    check_runs(p, &layout, regs);
}

/// The disassembly of `p` reassembles to the same code, bitmask and jump table.
fn check_round_trip(p: &Program) {
    let text = disassemble(p);
    let a =
        assemble(&text).unwrap_or_else(|e| panic!("disassembly does not assemble: {e}\n{text}"));
    assert_eq!(a.code, p.code(), "code differs after disasm | asm\n{text}");
    assert_eq!(
        a.bitmask,
        p.bitmask(),
        "bitmask differs after disasm | asm\n{text}"
    );
    assert_eq!(
        a.jump_table,
        p.jump_table(),
        "jump table differs after disasm | asm\n{text}"
    );
}

/// Run under both profiles on both engines; they must agree.
fn check_runs(p: &Arc<Program>, layout: &MemoryLayout, regs: [u64; 13]) {
    let layout = Arc::new(layout.clone());
    for profile in [GasProfile::Jar1, GasProfile::Gp] {
        let case = Case {
            program: Arc::clone(p),
            layout: Arc::clone(&layout),
            regs,
            pc: 0,
            gas: FUZZ_GAS,
            profile,
            host_seed: 0,
        };
        if let Err(d) = compare_engines(&case) {
            panic!("{d}");
        }
    }
}

/// Structured mode: a generated program from `data`, through the differential oracle.
pub fn diff(data: &[u8]) {
    let spec = Spec::from_bytes(data);
    let case = Case::from(&spec);
    if let Err(d) = compare_engines(&case) {
        panic!("{d}\n{}", spec.source());
    }
}

/// The interpreter against the recompiler (against itself where there is none).
fn compare_engines(case: &Case) -> Result<(), crate::oracle::Divergence> {
    #[cfg(jit)]
    let r = compare(&Interpreter::new(), crate::jit(), case);
    #[cfg(not(jit))]
    let r = compare(&Interpreter::new(), &Interpreter::new(), case);
    r.map(|_| ())
}
