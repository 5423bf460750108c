//! Both engines side by side: execution of the example workloads, instance creation,
//! first touch of fresh pages, compile speed on a 1 MB program, two programs
//! prepared on two threads, the host-call round trip, and (recompiler) a small
//! module's life after a larger one's. Every workload's
//! output is checked before it is measured.
//!
//! `cargo bench -p javm --bench engines` (or `javm bench` for a quick table).
#![allow(missing_docs, reason = "benchmark harness")]

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use javm::bench::{HOSTCALL, WORKLOADS, Workload, check, large_program, run_to_halt};
use javm_exec::{
    Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, Interpreter, MemoryLayout,
    PageKind,
};

fn execute<E: Engine>(c: &mut Criterion, engine: &E, w: &Workload) {
    let p = w.prepare().unwrap();
    let module = engine.prepare(&p.sp.program, p.schedule).unwrap();
    let mut inst = engine.instantiate(&module, p.init.clone()).unwrap();
    let (out, _) = run_to_halt(&mut inst).unwrap();
    check(w, &out).unwrap();
    let mut g = c.benchmark_group("execute");
    g.sample_size(20);
    g.bench_function(BenchmarkId::new(w.name, engine.kind().name()), |b| {
        b.iter_batched(
            || engine.instantiate(&module, p.init.clone()).unwrap(),
            |mut inst| run_to_halt(&mut inst).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn create<E: Engine>(c: &mut Criterion, engine: &E) {
    let p = WORKLOADS[0].prepare().unwrap();
    let module = engine.prepare(&p.sp.program, p.schedule).unwrap();
    c.bench_function(&format!("create/{}", engine.kind().name()), |b| {
        b.iter(|| engine.instantiate(&module, p.init.clone()).unwrap())
    });
    // Create, run one block, drop: includes discarding memory the run could touch.
    c.bench_function(&format!("lifecycle/{}", engine.kind().name()), |b| {
        b.iter(|| {
            let mut i = engine.instantiate(&module, p.init.clone()).unwrap();
            i.step_block().unwrap()
        })
    });
}

fn hostcall<E: Engine>(c: &mut Criterion, engine: &E) {
    let p = HOSTCALL.prepare().unwrap();
    let module = engine.prepare(&p.sp.program, p.schedule).unwrap();
    let mut g = c.benchmark_group("hostcall");
    g.throughput(Throughput::Elements(u64::from(HOSTCALL.n)));
    g.bench_function(engine.kind().name(), |b| {
        b.iter_batched(
            || engine.instantiate(&module, p.init.clone()).unwrap(),
            |mut inst| run_to_halt(&mut inst).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Pages each first-touch case walks.
const TOUCH_PAGES: u64 = 256;

/// First touch per page: an instance walks `TOUCH_PAGES` fresh zero pages once —
/// reading, writing, or reading then writing each — and the time is per page
/// (instance creation and teardown included, as a fresh instance is the point).
fn first_touch<E: Engine>(c: &mut Criterion, engine: &E) {
    let mut g = c.benchmark_group("first-touch");
    g.throughput(Throughput::Elements(TOUCH_PAGES));
    for (name, op) in [
        ("read", "load_ind_u8 r4, r2, 0"),
        ("write", "store_ind_u8 r4, r2, 0"),
        (
            "read-write",
            "load_ind_u8 r4, r2, 0\nstore_ind_u8 r4, r2, 0",
        ),
    ] {
        let src = format!(
            "load_imm r2, 0x100000\nload_imm r3, {TOUCH_PAGES}\nfallthrough\n\
             loop: {op}\nadd_imm_64 r2, r2, 4096\nadd_imm_64 r3, r3, -1\n\
             branch_ne_imm r3, 0, loop\ntrap"
        );
        let program = Arc::new(javm_exec::asm::assemble(&src).unwrap().program().unwrap());
        let mut layout = MemoryLayout::new();
        layout
            .add_region(0x100000, TOUCH_PAGES * 4096, PageKind::EphemeralZero, &[])
            .unwrap();
        let init = InstanceInit {
            layout: Arc::new(layout),
            regs: [0; 13],
            pc: 0,
            gas: 1 << 40,
        };
        let module = engine
            .prepare(&program, GasSchedule::new(GasProfile::Jar1, 0))
            .unwrap();
        g.bench_function(BenchmarkId::new(name, engine.kind().name()), |b| {
            b.iter(|| {
                let mut inst = engine.instantiate(&module, init.clone()).unwrap();
                assert_eq!(inst.run(), Ok(Exit::Trap));
            })
        });
    }
    g.finish();
}

fn compile<E: Engine>(c: &mut Criterion, make: &dyn Fn() -> E, program: &Arc<javm_exec::Program>) {
    let schedule = GasSchedule::new(GasProfile::Jar1, 16);
    let mut g = c.benchmark_group("compile-1mb");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(program.code().len() as u64));
    g.bench_function(make().kind().name(), |b| {
        b.iter_batched(
            || {
                let p = javm_exec::Program::new(
                    program.code().to_vec(),
                    program.bitmask().to_vec(),
                    program.jump_table().to_vec(),
                )
                .unwrap();
                (Arc::new(p), make())
            },
            |(p, engine)| engine.prepare(&p, schedule).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Two different programs prepared by one engine, on two threads at once and on one
/// thread one after the other: with the module cache's lock held while a module is
/// built, the two threads took as long as one thread doing both.
fn prepare_parallel<E: Engine + Sync>(
    c: &mut Criterion,
    engine: &E,
    programs: [&javm_exec::Program; 2],
) {
    let fresh = || {
        programs.map(|p| {
            Arc::new(
                javm_exec::Program::new(
                    p.code().to_vec(),
                    p.bitmask().to_vec(),
                    p.jump_table().to_vec(),
                )
                .unwrap(),
            )
        })
    };
    let schedule = GasSchedule::new(GasProfile::Jar1, 16);
    let mut g = c.benchmark_group("prepare-2x256k");
    g.sample_size(20);
    g.bench_function(BenchmarkId::new("two-threads", engine.kind().name()), |b| {
        b.iter_batched(
            fresh,
            |ps| {
                std::thread::scope(|s| {
                    let t: Vec<_> = ps
                        .iter()
                        .map(|p| s.spawn(move || engine.prepare(p, schedule).unwrap()))
                        .collect();
                    t.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
                })
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function(BenchmarkId::new("one-thread", engine.kind().name()), |b| {
        b.iter_batched(
            fresh,
            |ps| ps.map(|p| engine.prepare(&p, schedule).unwrap()),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The engine-independent part of preparing a program seen for the first time:
/// loading (validation, decoding, blocks, targets, hash) and `jar1` block pricing.
fn load(c: &mut Criterion, program: &javm_exec::Program) {
    let parts = || {
        (
            program.code().to_vec(),
            program.bitmask().to_vec(),
            program.jump_table().to_vec(),
        )
    };
    let mut g = c.benchmark_group("load-1mb");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(program.code().len() as u64));
    g.bench_function("program-new", |b| {
        b.iter_batched(
            parts,
            |(code, mask, table)| javm_exec::Program::new(code, mask, table).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    let schedule = GasSchedule::new(GasProfile::Jar1, 16);
    g.bench_function("price-jar1", |b| {
        b.iter_batched(
            || {
                let (code, mask, table) = parts();
                javm_exec::Program::new(code, mask, table).unwrap()
            },
            |p| p.block_costs(schedule).len(),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A small module's life — prepare (compile) and drop — right after a larger
/// module's, as in a host that compiles programs of mixed sizes: the recompiler
/// recycles code mappings, and a protection change costs in proportion to the
/// resident pages it covers (DESIGN-DECISIONS §118). The larger module is
/// prepared and dropped in the untimed set-up of every iteration.
#[cfg(jit)]
fn module_life_after_larger(c: &mut Criterion, jit: &javm_jit_x86::Recompiler) {
    let small = WORKLOADS[0].prepare().unwrap();
    let larger = Arc::new(large_program(6 * 1024).unwrap());
    let schedule = GasSchedule::new(GasProfile::Jar1, 16);
    let size = jit.prepare(&larger, schedule).unwrap().code_size();
    assert!(
        (16 << 10..=64 << 10).contains(&size),
        "the larger module's code ({size} bytes) should fill most of a recycled mapping"
    );
    let mut g = c.benchmark_group("module-life-after-larger");
    g.bench_function(BenchmarkId::new(WORKLOADS[0].name, "jit"), |b| {
        b.iter_batched(
            || drop(jit.prepare(&larger, schedule).unwrap()),
            |()| drop(jit.prepare(&small.sp.program, small.schedule).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let interp = Interpreter::new();
    #[cfg(jit)]
    let jit = javm_jit_x86::Recompiler::new().ok();
    for w in WORKLOADS {
        execute(c, &interp, w);
        #[cfg(jit)]
        if let Some(jit) = &jit {
            execute(c, jit, w);
        }
    }
    create(c, &interp);
    first_touch(c, &interp);
    hostcall(c, &interp);
    let large = Arc::new(large_program(1 << 20).unwrap());
    load(c, &large);
    compile(c, &Interpreter::new, &large);
    let quarters = [
        large_program(1 << 18).unwrap(),
        large_program((1 << 18) + 4096).unwrap(),
    ];
    prepare_parallel(c, &interp, [&quarters[0], &quarters[1]]);
    #[cfg(jit)]
    if let Some(jit) = &jit {
        create(c, jit);
        first_touch(c, jit);
        hostcall(c, jit);
        compile(c, &|| javm_jit_x86::Recompiler::new().unwrap(), &large);
        module_life_after_larger(c, jit);
        prepare_parallel(c, jit, [&quarters[0], &quarters[1]]);
    }
}

criterion_group!(engines, benches);
criterion_main!(engines);
