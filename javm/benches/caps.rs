//! A cached image's memory layout: the image and its data caps are already decoded
//! in a `CacheDirectory`; building an instance's layout looks them up and shares
//! their pages by reference.
#![allow(missing_docs, reason = "benchmark harness")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use javm::image::{from_standard, memory_layout};
use javm_cap::wire::{PageMode, decode_cap, encode_cap};
use javm_cap::{CacheDirectory, Cap, SlotIdx};
use javm_exec::asm::assemble;

fn benches(c: &mut Criterion) {
    // A small standard program: 16 KiB read-only, 8 KiB read-write, heap, stack.
    let src = format!(
        ".ro\n.bytes {}\n.rw\n.bytes {}\n.heap 4\n.stack 65536\n.code\nmain:\n trap\n",
        vec!["1"; 16 * 1024].join(","),
        vec!["2"; 8 * 1024].join(",")
    );
    let built = from_standard(&assemble(&src).unwrap().standard().unwrap()).unwrap();
    let dir = CacheDirectory::new();
    let mut slots = Vec::new();
    for (slot, _, d) in &built.data {
        slots.push((*slot, dir.put_cap(Cap::Data(d.clone())).unwrap()));
    }
    let image_hash = dir.put_cap(Cap::Image(built.image.clone())).unwrap();

    c.bench_function("image/cached_layout_small", |b| {
        b.iter(|| {
            let image = dir.get_blob(black_box(&image_hash)).unwrap().unwrap();
            let Cap::Image(img) = &*image else {
                unreachable!()
            };
            let data: Vec<_> = slots
                .iter()
                .map(|(s, h)| (*s, dir.get_blob(h).unwrap().unwrap()))
                .collect();
            let find = |slot: SlotIdx| {
                data.iter().find(|d| d.0 == slot).and_then(|d| match &*d.1 {
                    Cap::Data(d) => Some(d),
                    _ => None,
                })
            };
            memory_layout(img, find).unwrap()
        })
    });

    let wire = encode_cap(&Cap::Image(built.image.clone()), PageMode::Inline).unwrap();
    c.bench_function("image/decode_then_layout_small", |b| {
        b.iter(|| {
            let Cap::Image(img) = decode_cap(black_box(&wire)).unwrap() else {
                unreachable!()
            };
            let find = |slot: SlotIdx| built.data.iter().find(|d| d.0 == slot).map(|d| &d.2);
            memory_layout(&img, find).unwrap()
        })
    });
}

criterion_group!(caps, benches);
criterion_main!(caps);
