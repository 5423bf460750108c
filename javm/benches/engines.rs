//! Both engines side by side: execution of the example workloads, instance creation,
//! compile speed on a 1 MB program, and the host-call round trip. Every workload's
//! output is checked before it is measured.
//!
//! `cargo bench -p javm --bench engines` (or `javm bench` for a quick table).
#![allow(missing_docs, reason = "benchmark harness")]

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use javm::bench::{HOSTCALL, WORKLOADS, Workload, check, large_program, run_to_halt};
use javm_exec::{Engine, GasProfile, GasSchedule, Instance, Interpreter};

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

fn benches(c: &mut Criterion) {
    let interp = Interpreter::new();
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    let jit = javm_jit_x86::Recompiler::new().ok();
    for w in WORKLOADS {
        execute(c, &interp, w);
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if let Some(jit) = &jit {
            execute(c, jit, w);
        }
    }
    create(c, &interp);
    hostcall(c, &interp);
    let large = Arc::new(large_program(1 << 20).unwrap());
    compile(c, &Interpreter::new, &large);
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if let Some(jit) = &jit {
        create(c, jit);
        hostcall(c, jit);
        compile(c, &|| javm_jit_x86::Recompiler::new().unwrap(), &large);
    }
}

criterion_group!(engines, benches);
criterion_main!(engines);
