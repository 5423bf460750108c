//! The `Vm` driver: invoking a cached instance that halts at once, and a HOST_CALL
//! round trip into a cached child that replies at once, on both engines.

#![allow(missing_docs, reason = "benchmark harness")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
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

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheDirectory::new();
    let halt = publish(dir.path(), &cache, "halt", "main:\n ecalli 0\n", &[]);
    // The caller makes 100 calls into the child per invoke.
    let child = publish(dir.path(), &cache, "child", "main:\n ecalli 0\n", &[]);
    let caller = publish(
        dir.path(),
        &cache,
        "caller",
        "main:\n load_imm r5, 100\n fallthrough\nloop:\n load_imm r7, 3\n load_imm r8, 0\n ecalli 26\n \
         add_imm_64 r5, r5, -1\n branch_ne_imm r5, 0, loop\n ecalli 0\n",
        &[(SlotIdx(3), child)],
    );
    let mut kinds = vec![EngineKind::Interp];
    if javm_jit_x86::is_available() {
        kinds.push(EngineKind::Jit);
    }
    for kind in kinds {
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
        c.bench_function(&format!("vm/{kind}/invoke-100-calls"), |b| {
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
