//! Interpreter throughput on loops written with the assembler (`examples/*.s`).
//!
//! Each iteration builds a fresh instance from a prepared module and runs the program
//! to completion; the result is checked once before measuring. Throughput is reported
//! in PVM instructions executed (counted exactly, block by block, before measuring).
//! `interp/instantiate` measures creating and dropping one instance.
//!
//! `cargo bench -p javm-exec --bench interp`
#![allow(missing_docs, reason = "benchmark harness")]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use javm_exec::asm::assemble;
use javm_exec::blob::StandardProgram;
use javm_exec::{Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, Interpreter};

struct Workload {
    name: &'static str,
    source: &'static str,
    n: u32,
    /// Expected output bytes (checked before measuring).
    expected: &'static [u8],
}

const FIB_10M: u64 = 0x8b71_58ed_a9a6_0b3b;

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "fib",
        source: include_str!("../../examples/fib.s"),
        n: 10_000_000,
        // F(10^7) mod 2^64.
        expected: &FIB_10M.to_le_bytes(),
    },
    Workload {
        name: "sieve",
        source: include_str!("../../examples/sieve.s"),
        n: 1_000_000,
        expected: &78_498u32.to_le_bytes(),
    },
    Workload {
        name: "sort",
        source: include_str!("../../examples/sort.s"),
        n: 2_000,
        expected: &[],
    },
];

fn setup(
    w: &Workload,
) -> (
    Interpreter,
    Arc<javm_exec::interp::InterpModule>,
    InstanceInit,
) {
    let sp: StandardProgram = assemble(w.source).unwrap().standard().unwrap();
    let (layout, regs) = sp.initial_state(&w.n.to_le_bytes()).unwrap();
    let engine = Interpreter::new();
    let schedule = GasSchedule::new(GasProfile::Jar1, layout.accessible_pages());
    let module = engine.prepare(&sp.program, schedule).unwrap();
    let init = InstanceInit {
        layout: Arc::new(layout),
        regs,
        pc: 0,
        gas: i64::MAX,
    };
    (engine, module, init)
}

/// Run to completion one block at a time, counting instructions executed.
fn count_instructions(
    engine: &Interpreter,
    module: &Arc<javm_exec::interp::InterpModule>,
    init: &InstanceInit,
) -> u64 {
    let program = module.program();
    let mut inst = engine.instantiate(module, init.clone()).unwrap();
    let mut count = 0u64;
    loop {
        let start = inst.next_pc().unwrap();
        let block = &program.blocks()[program.block_starting_at(start).unwrap() as usize];
        match inst.step_block().unwrap() {
            None => count += u64::from(block.end - block.first),
            Some(exit) => {
                assert_eq!(exit, Exit::Halt);
                let at = program.index_of(inst.pc()).unwrap();
                return count + u64::from(at - block.first + 1);
            }
        }
    }
}

fn output(inst: &impl Instance) -> Vec<u8> {
    let regs = inst.regs();
    let mut out = vec![0u8; regs[8] as usize];
    inst.read_memory(regs[7] as u32, &mut out).unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("interp");
    group.sample_size(20);
    for w in WORKLOADS {
        let (engine, module, init) = setup(w);
        let mut check = engine.instantiate(&module, init.clone()).unwrap();
        assert_eq!(check.run().unwrap(), Exit::Halt, "{}", w.name);
        let out = output(&check);
        if !w.expected.is_empty() {
            assert_eq!(out, w.expected, "{} output", w.name);
        } else {
            assert_eq!(out[8], 1, "{}: array not sorted", w.name);
        }
        let instructions = count_instructions(&engine, &module, &init);
        group.throughput(Throughput::Elements(instructions));
        group.bench_function(w.name, |b| {
            b.iter(|| {
                let mut inst = engine.instantiate(&module, init.clone()).unwrap();
                let exit = inst.run().unwrap();
                assert_eq!(exit, Exit::Halt);
                inst.gas()
            })
        });
    }
    // Instance creation (and drop) for the standard layout of fib.s: the memory
    // reservation and page map, no page contents copied.
    let (engine, module, init) = setup(&WORKLOADS[0]);
    group.throughput(Throughput::Elements(1));
    group.bench_function("instantiate", |b| {
        b.iter(|| engine.instantiate(&module, init.clone()).unwrap().gas())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
