//! The `Vm` driver on both engines: invoking a cached instance that halts at once,
//! HOST_CALL round trips into a cached child that replies at once, and settling an
//! instance that dirtied 1, 64 and 1024 pages of an 8 MiB and of a 1 GiB mapping
//! (the settle alone; its cost should follow the dirtied pages, not the mapping).

#![allow(missing_docs, reason = "benchmark harness")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use javm::bench::vm::{CALLS, settle_sampler};
use javm::{CallResult, InProcessKernel, Vm};
use javm_cap::{CacheDirectory, SlotIdx};
use javm_exec::EngineKind;

fn publish(
    dir: &std::path::Path,
    cache: &CacheDirectory,
    name: &str,
    asm: &str,
    slots: &[(SlotIdx, [u8; 32])],
) -> [u8; 32] {
    std::fs::write(dir.join(format!("{name}.s")), format!(".code\n{asm}")).unwrap();
    let toml = format!("code = \"{name}.s\"\n[[endpoint]]\nindex = 0\nentry = \"main\"\n");
    std::fs::write(dir.join(format!("{name}.toml")), toml).unwrap();
    javm::manifest::load(&dir.join(format!("{name}.toml")))
        .unwrap()
        .publish(cache, slots)
        .unwrap()
}

fn kinds() -> Vec<EngineKind> {
    let mut kinds = vec![EngineKind::Interp];
    if javm::jit_available() {
        kinds.push(EngineKind::Jit);
    }
    kinds
}

fn invoke(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheDirectory::new();
    let halt = publish(dir.path(), &cache, "halt", "main:\n ecalli 0\n", &[]);
    let child = publish(dir.path(), &cache, "child", "main:\n ecalli 0\n", &[]);
    let caller = publish(
        dir.path(),
        &cache,
        "caller",
        &format!(
            "main:\n load_imm r5, {CALLS}\n fallthrough\nloop:\n load_imm r7, 3\n load_imm r8, 0\n \
             ecalli 26\n add_imm_64 r5, r5, -1\n branch_ne_imm r5, 0, loop\n ecalli 0\n"
        ),
        &[(SlotIdx(3), child)],
    );
    for kind in kinds() {
        let mut vm = Vm::new(kind, InProcessKernel::new()).unwrap();
        c.bench_function(&format!("vm/{kind}/invoke-halt"), |b| {
            b.iter(|| {
                let r = vm
                    .invoke_cached(&cache, &halt, 0, [0; 4], 1_000_000)
                    .unwrap();
                assert!(matches!(r, CallResult::Halt { .. }));
                black_box(r)
            })
        });
        c.bench_function(&format!("vm/{kind}/invoke-{CALLS}-calls"), |b| {
            b.iter(|| {
                let r = vm
                    .invoke_cached(&cache, &caller, 0, [0; 4], 10_000_000)
                    .unwrap();
                assert!(matches!(r, CallResult::Halt { .. }), "{r:?}");
                black_box(r)
            })
        });
    }
}

fn settle(c: &mut Criterion) {
    for kind in kinds() {
        let mut g = c.benchmark_group(format!("vm/{kind}/settle"));
        for mapped in [2048u32, 1 << 18] {
            for dirty in [1u32, 64, 1024] {
                let mut sample = settle_sampler(kind, dirty, mapped).unwrap();
                let id = BenchmarkId::new(format!("mapped-{}MiB", mapped / 256), dirty);
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        (0..iters).fold(Duration::ZERO, |t, _| t + sample().unwrap())
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = invoke, settle
}
criterion_main!(benches);
