//! Cap storage benchmarks: page hashing, `put`/`get` of a 1 MiB data cap in memory
//! and on disk, and decoding an image from its wire form.
#![allow(missing_docs, reason = "benchmark harness")]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use javm_cap::store::CapStoreExt;
use javm_cap::wire::{PageMode, decode_cap, encode_cap};
use javm_cap::{
    CacheDirectory, Cap, DataCap, Endpoint, ImageCap, ImageParts, MemStore, MemoryMapping,
    PAGE_SIZE, PageBytes, RedbStore, SlotHash, SlotIdx, SlotPath, cap_hash,
};

fn one_mib(seed: u8) -> Cap {
    let bytes: Vec<u8> = (0..256 * PAGE_SIZE)
        .map(|i| (i as u8) ^ seed ^ ((i / PAGE_SIZE) as u8).wrapping_mul(37))
        .collect();
    Cap::Data(DataCap::from_exact_bytes(&bytes).unwrap())
}

/// A small image: 1 KiB of code, one endpoint, a pinned 4 KiB page and a stack.
fn small_image() -> Cap {
    let code = vec![0u8; 1024];
    Cap::Image(
        ImageCap::new(ImageParts {
            bitmask: vec![0xFF; 128],
            code,
            jump_table: vec![],
            endpoints: vec![(0, Endpoint::default())],
            mappings: vec![
                MemoryMapping {
                    start: 0x10000,
                    size: 0x1000,
                    source: Some(SlotPath::slot(SlotIdx(1))),
                },
                MemoryMapping {
                    start: 0xFEFD_0000,
                    size: 0x10000,
                    source: None,
                },
            ],
            pinned: vec![SlotHash {
                slot: SlotIdx(1),
                hash: [7; 32],
            }],
            initial: vec![],
            yield_marker_slot: None,
        })
        .unwrap(),
    )
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("page_hash");
    g.throughput(Throughput::Bytes(PAGE_SIZE as u64));
    let page = [0x5Au8; PAGE_SIZE];
    g.bench_function("sha256_4k", |b| {
        // The hash is computed on first use: ask for it.
        b.iter(|| PageBytes::from_content(black_box(&page)).map(|p| *p.hash()))
    });
    g.finish();

    let cap = one_mib(1);
    let hash = cap_hash(&cap).unwrap();
    let mut g = c.benchmark_group("data_1mib");
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("cache_put_cap", |b| {
        b.iter_batched(
            || (CacheDirectory::new(), cap.clone()),
            |(dir, cap)| dir.put_cap(cap).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let dir = CacheDirectory::new();
    dir.put_cap(cap.clone()).unwrap();
    g.bench_function("cache_get", |b| {
        b.iter(|| dir.get_blob(black_box(&hash)).unwrap())
    });
    g.bench_function("mem_store_put", |b| {
        b.iter_batched(
            MemStore::new,
            |s| s.put_caps(&[&cap]).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mem = MemStore::new();
    mem.put_caps(&[&cap]).unwrap();
    g.bench_function("mem_store_get", |b| {
        b.iter(|| mem.get_cap(black_box(&hash)).unwrap())
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0u32;
    g.sample_size(20);
    g.bench_function("disk_store_put", |b| {
        b.iter_batched(
            || {
                n += 1;
                RedbStore::open(&tmp.path().join(n.to_string())).unwrap()
            },
            |s| s.put_caps(&[&cap]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let disk = RedbStore::open(&tmp.path().join("get")).unwrap();
    disk.put_caps(&[&cap]).unwrap();
    g.bench_function("disk_store_get", |b| {
        b.iter(|| disk.get_cap(black_box(&hash)).unwrap())
    });
    g.finish();

    let image = small_image();
    let wire = encode_cap(&image, PageMode::Inline).unwrap();
    c.bench_function("image/decode_small", |b| {
        b.iter(|| decode_cap(black_box(&wire)).unwrap())
    });
}

criterion_group!(caps, benches);
criterion_main!(caps);
