//! Every host op: its success case and each of its trap cases, on both engines.
//!
//! Each case is a program run at the top level; a trap is `Faulted(Trap)`, success
//! is a `Halt` with the value the program computes from what the op did.

use javm::{CallResult, Fault, InProcessKernel, VmConfig};
use javm_cap::{Cap, CapHash};

use crate::support::*;

/// Run `asm` with `slots` (and pinned data cap `pinned` in slot 9) on every engine,
/// with a kernel that has storage quota 1 of 8192 bytes.
fn run(w: &World, asm: &str, slots: &[(u32, CapHash)]) -> CallResult {
    let pinned = w.data(b"pinned");
    let inst = w.publish_with_pinned("op", asm, MEM, &[(9, pinned)], slots);
    let mut out = None;
    let kernel = || {
        let mut k = InProcessKernel::new();
        k.set_quota(1, 8192);
        k
    };
    for_engines_with(VmConfig::default(), kernel, |vm| {
        let r = vm.invoke_cached(&w.cache, &inst, 0, [0; 4], GAS).unwrap();
        out = Some(r.clone());
        r
    });
    out.unwrap()
}

fn traps(w: &World, asm: &str, slots: &[(u32, CapHash)]) {
    let r = run(w, asm, slots);
    assert!(
        matches!(
            r,
            CallResult::Faulted {
                reason: Fault::Trap,
                ..
            }
        ),
        "{asm}: {r:?}"
    );
}

fn slot_after(w: &World, r: &CallResult, slot: u32) -> Option<CapHash> {
    w.slot(&w.cnode_of(&w.instance(&post_of(r))), slot)
}

/// `op a, b` followed by a reply.
fn op2(op: u32, a: u64, b: u64) -> String {
    format!("main:\n load_imm r7, {a}\n load_imm r8, {b}\n ecalli {op}\n ecalli 0\n")
}

#[test]
fn copy() {
    let w = World::new();
    let d = w.data(b"d");
    let r = run(&w, &op2(1, 3, 4), &[(3, d)]);
    assert_eq!(
        (slot_after(&w, &r, 3), slot_after(&w, &r, 4)),
        (Some(d), Some(d))
    );
    traps(&w, &op2(1, 3, 4), &[]); // empty src
    traps(&w, &op2(1, 3, 9), &[(3, d)]); // pinned dst
    // A pinned source may be copied.
    let r = run(&w, &op2(1, 9, 4), &[]);
    assert!(slot_after(&w, &r, 4).is_some());
}

#[test]
fn move_() {
    let w = World::new();
    let d = w.data(b"d");
    let r = run(&w, &op2(2, 3, 4), &[(3, d)]);
    assert_eq!(
        (slot_after(&w, &r, 3), slot_after(&w, &r, 4)),
        (None, Some(d))
    );
    traps(&w, &op2(2, 3, 4), &[]); // empty src
    traps(&w, &op2(2, 9, 4), &[]); // pinned src
    traps(&w, &op2(2, 3, 9), &[(3, d)]); // pinned dst
}

#[test]
fn drop_() {
    let w = World::new();
    let d = w.data(b"d");
    let r = run(&w, &op2(3, 3, 0), &[(3, d)]);
    assert_eq!(slot_after(&w, &r, 3), None);
    // Dropping an empty slot is fine; a pinned one traps.
    run(&w, &op2(3, 4, 0), &[]);
    traps(&w, &op2(3, 9, 0), &[]);
}

#[test]
fn cnode_swap() {
    let w = World::new();
    let (d, e) = (w.data(b"d"), w.data(b"e"));
    let r = run(&w, &op2(4, 3, 4), &[(3, d), (4, e)]);
    assert_eq!(
        (slot_after(&w, &r, 3), slot_after(&w, &r, 4)),
        (Some(e), Some(d))
    );
    traps(&w, &op2(4, 9, 4), &[]);
    traps(&w, &op2(4, 3, 9), &[]);
}

#[test]
fn cnode_mint() {
    let w = World::new();
    let r = run(&w, &op2(5, 3, 4), &[]);
    let h = slot_after(&w, &r, 3).unwrap();
    match &*w.cache.get_blob(&h).unwrap().unwrap() {
        Cap::CNode(c) => assert_eq!((c.size_log(), c.occupied()), (4, 0)),
        other => panic!("{:?}", other.kind()),
    }
    traps(&w, &op2(5, 3, 17), &[]); // size_log > 16
    traps(&w, &op2(5, 9, 4), &[]); // pinned dst
}

#[test]
fn same_type() {
    let w = World::new();
    let (d, e) = (w.data(b"d"), w.data(b"e"));
    let same = |a: u64, b: u64, slots: &[(u32, CapHash)]| ret_of(&run(&w, &op2(20, a, b), slots));
    assert_eq!(same(3, 4, &[(3, d), (4, d)]), 1);
    assert_eq!(same(3, 4, &[(3, d), (4, e)]), 0);
    assert_eq!(same(3, 4, &[]), 0); // two empty slots hold no cap
    // Only the low byte names the slot: 0x103 is slot 3.
    assert_eq!(same(0x103, 4, &[(3, d), (4, d)]), 1);
}

#[test]
fn host_yield_traps_on_an_empty_slot() {
    let w = World::new();
    traps(&w, "main:\n load_imm r7, 3\n ecalli 16\n ecalli 0\n", &[]);
}

#[test]
fn set_image_traps() {
    let w = World::new();
    let d = w.data(b"not an image");
    let asm = "main:\n load_imm r7, 3\n ecalli 17\n ecalli 0\n";
    traps(&w, asm, &[]); // empty slot
    traps(&w, asm, &[(3, d)]); // not an image
    // The PC after the SET_IMAGE (4) does not start a block of this image's code.
    let other = w.image_hash("other", "main:\n load_imm r7, 0x12345\n ecalli 0\n", "");
    traps(
        &w,
        "main:\n load_imm r7, 3\n ecalli 17\n ecalli 0\n",
        &[(3, other)],
    );
}

#[test]
fn derive_spawn_traps() {
    let w = World::new();
    let image = w.image_hash("kid", "main:\n ecalli 0\n", "");
    let prepared = w
        .cache
        .put_cap(Cap::CNode(javm_cap::CNodeCap::new(8).unwrap()))
        .unwrap();
    let d = w.data(b"d");
    let spawn = |dst: u64| {
        format!(
            "main:\n load_imm r7, 3\n load_imm r8, 4\n load_imm r9, {dst}\n ecalli 18\n ecalli 0\n"
        )
    };
    let r = run(&w, &spawn(5), &[(3, image), (4, prepared)]);
    assert!(slot_after(&w, &r, 5).is_some());
    assert_eq!(slot_after(&w, &r, 4), None);
    traps(&w, &spawn(9), &[(3, image), (4, prepared)]); // pinned dst
    traps(&w, &spawn(5), &[(4, prepared)]); // no image
    traps(&w, &spawn(5), &[(3, d), (4, prepared)]); // not an image
    traps(&w, &spawn(5), &[(3, image)]); // no prepared cnode
    traps(&w, &spawn(5), &[(3, image), (4, d)]); // not a cnode
}

const MEM: &str = "[[mapping]]\nstart = 0x20000\nsize = 0x2000\n";

#[test]
fn read_data_cap() {
    let w = World::new();
    let d = w.data(b"\x05\x06\x07");
    let read = |addr: u64, len: u64| {
        format!(
            "main:\n load_imm r7, 3\n load_imm r8, {addr}\n load_imm r9, {len}\n ecalli 22\n \
             load_u8 r8, 0x20002\n shlo_l_imm_64 r7, r7, 8\n add_64 r7, r7, r8\n ecalli 0\n"
        )
    };
    let publish = |asm: &str, slots: &[(u32, CapHash)]| {
        let inst = w.publish("rd", asm, MEM, slots);
        let mut out = None;
        for_engines(|vm| {
            let r = vm.invoke_cached(&w.cache, &inst, 0, [0; 4], GAS).unwrap();
            out = Some(r.clone());
            r
        });
        out.unwrap()
    };
    // count = min(len, 4096); byte 2 is 7.
    assert_eq!(
        ret_of(&publish(&read(0x20000, 100_000), &[(3, d)])),
        (4096 << 8) | 7
    );
    assert_eq!(ret_of(&publish(&read(0x20000, 2), &[(3, d)])), 2 << 8);
    let trap = |r: CallResult| {
        assert!(
            matches!(
                r,
                CallResult::Faulted {
                    reason: Fault::Trap,
                    ..
                }
            ),
            "{r:?}"
        )
    };
    trap(publish(&read(0x20000, 8), &[])); // empty slot
    trap(publish(&read(0x50000, 8), &[(3, d)])); // unmapped destination
    trap(publish(&read(0x21800, 4096), &[(3, d)])); // runs past the mapping
}

#[test]
fn mint_data_cap() {
    let w = World::new();
    let mint = |len: u64, quota: u64, dst: u64| {
        format!(
            "main:\n store_imm_u8 0x20000, 0x61\n load_imm r7, 0x20000\n load_imm r8, {len}\n \
             load_imm r9, {quota}\n load_imm r10, {dst}\n ecalli 23\n ecalli 0\n"
        )
    };
    let go = |asm: &str| {
        let inst = w.publish("mint", asm, MEM, &[]);
        let mut out = None;
        let kernel = || {
            let mut k = InProcessKernel::new();
            k.set_quota(1, 8192);
            k
        };
        for_engines_with(VmConfig::default(), kernel, |vm| {
            let r = vm.invoke_cached(&w.cache, &inst, 0, [0; 4], GAS).unwrap();
            let left = vm.kernel().quota(1);
            out = Some(r.clone());
            (r, left)
        });
        out.unwrap()
    };
    let r = go(&mint(5000, 1, 3));
    let h = slot_after(&w, &r, 3).unwrap();
    match &*w.cache.get_blob(&h).unwrap().unwrap() {
        Cap::Data(d) => {
            assert_eq!(d.len(), 8192);
            assert_eq!(d.read(0, 2).unwrap(), b"a\0");
        }
        other => panic!("{:?}", other.kind()),
    }
    let trap = |r: CallResult| {
        assert!(
            matches!(
                r,
                CallResult::Faulted {
                    reason: Fault::Trap,
                    ..
                }
            ),
            "{r:?}"
        )
    };
    trap(go(&mint(8193, 1, 3))); // padded to 12288 > quota
    trap(go(&mint(10, 2, 3))); // unknown quota
    traps(&w, &mint(10, 1, 9), &[]); // pinned dst
    trap(go(&mint(0x3000, 1, 3)
        .replace("load_imm r8, 12288", "load_imm r8, 8192")
        .replace("load_imm r7, 0x20000", "load_imm r7, 0x21000"))); // runs past the mapping
}

#[test]
fn host_call_traps() {
    let w = World::new();
    let d = w.data(b"d");
    let call = |slot: u64, ep: u64| {
        format!("main:\n load_imm r7, {slot}\n load_imm r8, {ep}\n ecalli 26\n ecalli 0\n")
    };
    let child = w.publish("child", "main:\n ecalli 0\n", "", &[]);
    assert!(matches!(
        run(&w, &call(3, 0), &[(3, child)]),
        CallResult::Halt { .. }
    ));
    traps(&w, &call(3, 0), &[]); // empty slot
    traps(&w, &call(3, 0), &[(3, d)]); // not an instance
    traps(&w, &call(3, 1), &[(3, child)]); // undefined endpoint
    traps(&w, &call(0, 0), &[(0, child)]); // slot 0 carries the argument
    traps(&w, &call(3, 0), &[(3, [0xEE; 32])]); // not in the cache
}

/// Slot operands beyond the working cnode trap. A root cnode has 256 slots, so only a
/// smaller one (a child spawned with a small prepared cnode, built here directly)
/// has slots a low byte can name but the cnode lacks.
#[test]
fn a_slot_beyond_a_small_cnode_traps() {
    use javm_cap::{CNodeCap, CapHashOrRef, InstanceCap, SlotIdx};
    let w = World::new();
    let d = w.data(b"d");
    for (asm, expect_trap) in [
        (op2(20, 3, 4), false),
        (op2(20, 200, 4), true),
        (op2(20, 3, 16), true),
        (op2(1, 3, 200), true),
        (op2(3, 200, 0), true),
        (op2(4, 3, 17), true),
        (op2(16, 200, 0), true),
    ] {
        let b = w.build("small", &asm, "");
        for c in b.caps() {
            w.cache.put_cap(c).unwrap();
        }
        let image = javm_cap::cap_hash(&Cap::Image(b.image.clone())).unwrap();
        let mut cnode = CNodeCap::new(4).unwrap();
        cnode.set(SlotIdx(3), Some(CapHashOrRef::Hash(d))).unwrap();
        cnode.set(SlotIdx(4), Some(CapHashOrRef::Hash(d))).unwrap();
        let cnode = w.cache.put_cap(Cap::CNode(cnode)).unwrap();
        let inst = w
            .cache
            .put_cap(Cap::Instance(
                InstanceCap::fresh(image, CapHashOrRef::Hash(cnode), 0).unwrap(),
            ))
            .unwrap();
        for_engines(|vm| {
            let r = vm.invoke_cached(&w.cache, &inst, 0, [0; 4], GAS).unwrap();
            let trapped = matches!(
                r,
                CallResult::Faulted {
                    reason: Fault::Trap,
                    ..
                }
            );
            assert_eq!(trapped, expect_trap, "{asm}: {r:?}");
            if !trapped {
                assert_eq!(ret_of(&r), 1, "slots 3 and 4 hold the same cap");
            }
            r
        });
    }
}
