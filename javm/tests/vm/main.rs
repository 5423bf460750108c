//! The `Vm` driver on both engines: the scenarios of the driver's design (trap, halt,
//! a return value, a call into a child, out of gas), every host op with its trap
//! cases, the depth limit, nested calls, yields and resumes, SET_IMAGE, DERIVE_SPAWN,
//! host functions, settling and bad input. Every scenario runs on the interpreter and
//! (where available) the recompiler, and both must give the same results.

mod ops;
mod support;

use javm::{CallResult, Fault, InProcessKernel, OUT_OF_GAS_MARKER, VmConfig, VmError};
use javm_cap::Cap;
use support::*;

#[test]
fn trap_is_faulted() {
    let w = World::new();
    let i = w.publish("trap", "main:\n trap\n", "", &[]);
    for_engines(|vm| {
        let r = vm.invoke_cached(&w.cache, &i, 0, [0; 4], GAS).unwrap();
        assert!(
            matches!(
                r,
                CallResult::Faulted {
                    reason: Fault::Trap,
                    reflected_slot0: None,
                    ..
                }
            ),
            "{r:?}"
        );
        r
    });
}

#[test]
fn ecalli_zero_halts_and_load_imm_returns_42() {
    let w = World::new();
    let halt = w.publish("halt", "main:\n ecalli 0\n", "", &[]);
    let ret = w.publish("ret", "main:\n load_imm r7, 42\n ecalli 0\n", "", &[]);
    for_engines(|vm| {
        let a = vm.invoke_cached(&w.cache, &halt, 0, [0; 4], GAS).unwrap();
        assert!(
            matches!(
                a,
                CallResult::Halt {
                    return_value: 0,
                    ..
                }
            ),
            "{a:?}"
        );
        let b = vm.invoke_cached(&w.cache, &ret, 0, [0; 4], GAS).unwrap();
        assert_eq!(ret_of(&b), 42);
        (a, b)
    });
}

#[test]
fn host_call_into_a_child_that_halts() {
    let w = World::new();
    let child = w.publish(
        "child",
        "main:\n add_imm_64 r7, r7, 40\n ecalli 0\n",
        "",
        &[],
    );
    let caller = w.publish(
        "caller",
        "main:\n load_imm r7, 3\n load_imm r8, 0\n load_imm r9, 2\n ecalli 26\n \
         add_imm_64 r7, r7, 100\n mul_imm_64 r8, r8, 1000\n add_64 r7, r7, r8\n ecalli 0\n",
        "",
        &[(3, child)],
    );
    for_engines(|vm| {
        let r = vm.invoke_cached(&w.cache, &caller, 0, [0; 4], GAS).unwrap();
        // The child got φ9 = 2 as its φ7 and replied 42; φ8 = 0 (OK).
        assert_eq!(ret_of(&r), 142);
        // The caller's slot 3 now holds the child's post-instance.
        let post = w.instance(&post_of(&r));
        let cnode = w.cnode_of(&post);
        let new_child = w.slot(&cnode, 3).unwrap();
        assert_ne!(new_child, child);
        assert_eq!(w.instance(&new_child).regs()[7], 42);
        r
    });
}

#[test]
fn out_of_gas_is_faulted() {
    let w = World::new();
    let spin = w.publish("spin", "main:\n jump main\n", "", &[]);
    for_engines(|vm| {
        // Not even the frame cost.
        let a = vm.invoke_cached(&w.cache, &spin, 0, [0; 4], 10).unwrap();
        assert_eq!(
            a,
            CallResult::Faulted {
                reason: Fault::OutOfGas,
                reflected_slot0: None,
                gas_used: 10
            }
        );
        let b = vm
            .invoke_cached(&w.cache, &spin, 0, [0; 4], 50_000)
            .unwrap();
        assert_eq!(
            b,
            CallResult::Faulted {
                reason: Fault::OutOfGas,
                reflected_slot0: None,
                gas_used: 50_000
            }
        );
        (a, b)
    });
}

#[test]
fn the_frame_cost_is_charged_at_the_top_level_invoke() {
    let w = World::new();
    let halt = w.publish("halt", "main:\n ecalli 0\n", "", &[]);
    for_engines(|vm| {
        let r = vm.invoke_cached(&w.cache, &halt, 0, [0; 4], GAS).unwrap();
        // CALL_FRAME_COST + one page of code; no read-only units; one ecalli block.
        let frame = javm_exec::gas_const::call_frame_cost(2, 0);
        assert!(
            r.gas_used() >= frame + javm_exec::gas_const::HOST_CALL_FLOOR,
            "{r:?}"
        );
        assert!(r.gas_used() < frame + 200, "{r:?}");
        r
    });
}

#[test]
fn settled_memory_is_what_the_next_invoke_sees() {
    let w = World::new();
    let counter = w.publish(
        "counter",
        "main:\n load_u8 r7, 0x20000\n add_imm_64 r7, r7, 1\n store_u8 r7, 0x20000\n ecalli 0\n",
        "[[mapping]]\nstart = 0x20000\nsize = 0x1000\n",
        &[],
    );
    for_engines(|vm| {
        let mut inst = counter;
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = vm.invoke_cached(&w.cache, &inst, 0, [0; 4], GAS).unwrap();
            seen.push(ret_of(&r));
            inst = post_of(&r);
        }
        assert_eq!(seen, [1, 2, 3]);
        let post = w.instance(&inst);
        assert_eq!(post.rw_overlays().len(), 1);
        assert_eq!(post.rw_overlays()[0].start(), 0x20000);
        inst
    });
}

#[test]
fn depth_limit_traps_the_call_that_would_pass_it() {
    let w = World::new();
    let (rec, _) = w.recursive();
    for depth in [8usize, javm::MAX_CALL_DEPTH] {
        let config = VmConfig {
            max_depth: depth,
            ..VmConfig::default()
        };
        for_engines_with(config, InProcessKernel::new, |vm| {
            // Ask for more levels than the limit allows.
            let r = vm
                .invoke_cached(&w.cache, &rec, 0, [0, 10_000, 0, 0], 100_000_000)
                .unwrap();
            // The frame at stack depth `depth` traps on its HOST_CALL; its caller
            // (level depth - 2) sees the trap status and replies its level.
            assert_eq!(ret_of(&r), depth as u64 - 2, "{r:?}");
            r
        });
    }
}

#[test]
fn nested_calls_three_deep() {
    let w = World::new();
    let (rec, _) = w.recursive();
    for_engines(|vm| {
        // Levels 0, 1, 2: the innermost replies its level with OK status all the way up.
        let r = vm
            .invoke_cached(&w.cache, &rec, 0, [0, 2, 0, 0], GAS)
            .unwrap();
        assert_eq!(ret_of(&r), 2 + 1000, "{r:?}");
        // Each level's post-instance holds its child's post-instance in slot 3.
        let mut inst = w.instance(&post_of(&r));
        let mut levels = 1;
        while let Some(child) = w.slot(&w.cnode_of(&inst), 3) {
            inst = w.instance(&child);
            levels += 1;
        }
        assert_eq!(levels, 3);
        r
    });
}

#[test]
fn yield_is_routed_to_a_catcher_and_resumed_with_a_scratchpad() {
    let w = World::new();
    let (catcher_inst, catcher, marker, worker) = w.yield_pair();
    let scratch = w.data(b"\x2a rest of the scratchpad");
    let kernel = || {
        let mut k = InProcessKernel::new();
        k.add_catcher(catcher, marker);
        k
    };
    for_engines_with(VmConfig::default(), kernel, |vm| {
        let a = vm
            .invoke_cached(&w.cache, &catcher_inst, 0, [0; 4], GAS)
            .unwrap();
        assert!(
            matches!(a, CallResult::Paused { marker_payload, .. } if marker_payload == marker),
            "{a:?}"
        );
        assert!(vm.is_paused());
        assert!(matches!(
            vm.invoke_cached(&w.cache, &catcher_inst, 0, [0; 4], GAS),
            Err(VmError::Busy)
        ));
        let b = vm.call_resume(&w.cache, Some(scratch)).unwrap();
        // The worker read the scratchpad's first byte (42) after resuming; the
        // catcher adds 1000 × the status (0).
        assert_eq!(ret_of(&b), 42, "{b:?}");
        assert!(!vm.is_paused());
        assert!(matches!(
            vm.call_resume(&w.cache, None),
            Err(VmError::NotPaused)
        ));
        let _ = worker;
        (a, b)
    });
}

#[test]
fn a_yield_nobody_catches_traps_the_yielder() {
    let w = World::new();
    let (catcher_inst, _, _, _) = w.yield_pair();
    for_engines(|vm| {
        // No catcher registered: the worker traps, the catcher sees status 1.
        let r = vm
            .invoke_cached(&w.cache, &catcher_inst, 0, [0; 4], GAS)
            .unwrap();
        assert_eq!(ret_of(&r), 1000, "{r:?}");
        r
    });
}

#[test]
fn out_of_gas_yield_is_resumed_after_a_top_up() {
    let w = World::new();
    let (catcher_inst, catcher, _, _) = w.yield_pair_spinning();
    let kernel = || {
        let mut k = InProcessKernel::new();
        k.add_catcher(catcher, OUT_OF_GAS_MARKER);
        k.set_meter(1, 10_000_000);
        k
    };
    for_engines_with(VmConfig::default(), kernel, |vm| {
        let mut results = Vec::new();
        let mut r = vm
            .invoke_cached(&w.cache, &catcher_inst, 0, [0; 4], 20_000)
            .unwrap();
        let mut pauses = 0;
        while let CallResult::Paused { marker_payload, .. } = r {
            assert_eq!(marker_payload, OUT_OF_GAS_MARKER);
            pauses += 1;
            let g = vm.kernel_mut().withdraw(1, 20_000);
            vm.top_up(g).unwrap();
            results.push(r);
            r = vm.call_resume(&w.cache, None).unwrap();
        }
        assert!(pauses >= 2, "{pauses}");
        // The worker counted to 300 and replied it.
        assert_eq!(ret_of(&r), 20_000, "{r:?}");
        results.push(r);
        results
    });
}

#[test]
fn out_of_gas_without_a_catcher_faults_the_whole_invocation() {
    let w = World::new();
    let (catcher_inst, ..) = w.yield_pair_spinning();
    for_engines(|vm| {
        let r = vm
            .invoke_cached(&w.cache, &catcher_inst, 0, [0; 4], 20_000)
            .unwrap();
        assert!(
            matches!(
                r,
                CallResult::Faulted {
                    reason: Fault::OutOfGas,
                    gas_used: 20_000,
                    ..
                }
            ),
            "{r:?}"
        );
        assert!(!vm.is_paused());
        r
    });
}

#[test]
fn set_image_reenters_with_the_same_registers_and_memory() {
    let w = World::new();
    let map = "[[mapping]]\nstart = 0x20000\nsize = 0x1000\n";
    // Both images share the prefix, so the PC after the SET_IMAGE starts a block in B.
    let b = w.image_hash(
        "b",
        "main:\n store_imm_u8 0x20000, 7\n load_imm r7, 3\n ecalli 17\n \
         load_u8 r7, 0x20000\n add_imm_64 r7, r7, 200\n ecalli 0\n",
        map,
    );
    let a = w.publish(
        "a",
        "main:\n store_imm_u8 0x20000, 5\n load_imm r7, 3\n ecalli 17\n \
         load_u8 r7, 0x20000\n add_imm_64 r7, r7, 100\n ecalli 0\n",
        map,
        &[(3, b)],
    );
    for_engines(|vm| {
        let r = vm.invoke_cached(&w.cache, &a, 0, [0; 4], GAS).unwrap();
        // A stored 5, switched to B, which read A's 5 and added 200.
        assert_eq!(ret_of(&r), 205, "{r:?}");
        let post = w.instance(&post_of(&r));
        assert_eq!(post.image_hash(), &b);
        let a_image = *w.instance(&a).image_hash();
        assert_eq!(
            post.image_hash_chain(),
            &javm::build::image_chain(&a_image, &b)
        );
        // Invoking the post-instance runs B from its endpoint on the settled memory.
        let r2 = vm
            .invoke_cached(&w.cache, &post_of(&r), 0, [0; 4], GAS)
            .unwrap();
        assert_eq!(ret_of(&r2), 207, "{r2:?}");
        (r, r2)
    });
}

#[test]
fn derive_spawn_then_host_call_into_the_child() {
    let w = World::new();
    let child_image = w.image_hash("kid", "main:\n load_imm r7, 7\n ecalli 0\n", "");
    let prepared = w
        .cache
        .put_cap(Cap::CNode(javm_cap::CNodeCap::new(8).unwrap()))
        .unwrap();
    let parent = w.publish(
        "parent",
        "main:\n load_imm r7, 4\n load_imm r8, 5\n load_imm r9, 3\n ecalli 18\n \
         load_imm r7, 3\n load_imm r8, 0\n ecalli 26\n ecalli 0\n",
        "",
        &[(4, child_image), (5, prepared)],
    );
    for_engines(|vm| {
        let r = vm.invoke_cached(&w.cache, &parent, 0, [0; 4], GAS).unwrap();
        assert_eq!(ret_of(&r), 7, "{r:?}");
        let post = w.instance(&post_of(&r));
        let cnode = w.cnode_of(&post);
        // The prepared cnode was consumed; the child's post-state is in slot 3.
        assert_eq!(w.slot(&cnode, 5), None);
        let child = w.instance(&w.slot(&cnode, 3).unwrap());
        assert_eq!(child.image_hash(), &child_image);
        assert_eq!(
            child.image_hash_chain(),
            &javm::build::image_chain(post.image_hash_chain(), &child_image)
        );
        r
    });
}

#[test]
fn host_function_reads_and_writes_guest_memory() {
    let w = World::new();
    let inst = w.publish(
        "hostfn",
        "main:\n store_imm_u32 0x20000, 0x04030201\n load_imm r7, 0x20000\n load_imm r8, 0x20100\n \
         ecalli 100\n load_u32 r9, 0x20100\n add_64 r7, r7, r9\n ecalli 0\n",
        "[[mapping]]\nstart = 0x20000\nsize = 0x1000\n",
        &[],
    );
    let kernel = || {
        let mut kernel = InProcessKernel::new();
        assert!(!kernel.register(26, |_| Ok(javm::HostReturn::Continue)));
        kernel.register(100, |g| {
            let mut b = [0u8; 4];
            if g.read(g.reg(7) as u32, &mut b).is_err() || !g.charge_gas(10) {
                return Ok(javm::HostReturn::Trap);
            }
            b.reverse();
            if g.write(g.reg(8) as u32, &b).is_err() {
                return Ok(javm::HostReturn::Trap);
            }
            g.set_reg(7, b.iter().map(|&x| u64::from(x)).sum());
            Ok(javm::HostReturn::Continue)
        });
        javm::Recording::new(kernel)
    };
    for_engines_with(VmConfig::default(), kernel, |vm| {
        let r = vm.invoke_cached(&w.cache, &inst, 0, [0; 4], GAS).unwrap();
        assert_eq!(ret_of(&r), 10 + 0x01020304, "{r:?}");
        let calls = &vm.kernel().calls;
        assert!(matches!(
            calls.last(),
            Some(javm::KernelCall::HostFunction { op: 100, .. })
        ));
        r
    });
}

#[test]
fn an_unregistered_host_function_and_an_unknown_op_trap() {
    let w = World::new();
    let a = w.publish("a", "main:\n ecalli 65\n ecalli 0\n", "", &[]);
    let b = w.publish("b", "main:\n ecalli 19\n ecalli 0\n", "", &[]);
    let c = w.publish(
        "c",
        "main:\n load_imm_64 r11, 0x100000000\n ecall\n ecalli 0\n",
        "",
        &[],
    );
    for_engines(|vm| {
        // A host function registered at the largest op number: an `ecall` whose φ11
        // does not fit 32 bits must not reach it.
        vm.kernel_mut()
            .register(u32::MAX, |_| Ok(javm::HostReturn::Continue));
        let mut out = Vec::new();
        for i in [a, b, c] {
            let r = vm.invoke_cached(&w.cache, &i, 0, [0; 4], GAS).unwrap();
            assert!(
                matches!(
                    r,
                    CallResult::Faulted {
                        reason: Fault::Trap,
                        ..
                    }
                ),
                "{r:?}"
            );
            out.push(r);
        }
        out
    });
}

#[test]
fn bad_input_is_a_typed_error() {
    let w = World::new();
    let halt = w.publish("halt", "main:\n ecalli 0\n", "", &[]);
    let data = w.data(b"not an instance");
    for_engines(|vm| {
        let missing = vm
            .invoke_cached(&w.cache, &[7; 32], 0, [0; 4], GAS)
            .unwrap_err();
        assert!(
            matches!(missing, VmError::Build(javm::BuildError::NotFound(h)) if h == [7; 32]),
            "{missing}"
        );
        let kind = vm
            .invoke_cached(&w.cache, &data, 0, [0; 4], GAS)
            .unwrap_err();
        assert!(
            matches!(kind, VmError::Build(javm::BuildError::WrongKind { .. })),
            "{kind}"
        );
        assert!(
            kind.to_string()
                .contains("is a data cap, not an instance cap"),
            "{kind}"
        );
        let ep = vm
            .invoke_cached(&w.cache, &halt, 5, [0; 4], GAS)
            .unwrap_err();
        assert!(
            matches!(ep, VmError::Build(javm::BuildError::EndpointUndefined(5))),
            "{ep}"
        );
        let gas = vm
            .invoke_cached(&w.cache, &halt, 0, [0; 4], u64::MAX)
            .unwrap_err();
        assert!(matches!(gas, VmError::InvalidGas(_)), "{gas}");
        // The driver is still usable.
        vm.invoke_cached(&w.cache, &halt, 0, [0; 4], GAS).unwrap()
    });
}

#[test]
fn a_second_invoke_reuses_the_prepared_image() {
    let w = World::new();
    let ret = w.publish("ret", "main:\n load_imm r7, 1\n ecalli 0\n", "", &[]);
    for_engines(|vm| {
        let a = vm.invoke_cached(&w.cache, &ret, 0, [0; 4], GAS).unwrap();
        assert_eq!(vm.cached_images(), 1);
        let b = vm
            .invoke_cached(&w.cache, &post_of(&a), 0, [0; 4], GAS)
            .unwrap();
        assert_eq!(vm.cached_images(), 1);
        (a.gas_used(), b.gas_used())
    });
}

#[test]
fn slot_zero_flows_into_the_callee_and_back() {
    let w = World::new();
    let payload = w.data(b"payload");
    // The callee returns whether its slot 0 holds the payload (SAME_TYPE with slot 4).
    let callee = w.publish(
        "callee",
        "main:\n load_imm r7, 0\n load_imm r8, 4\n ecalli 20\n ecalli 0\n",
        "",
        &[(4, payload)],
    );
    let caller = w.publish(
        "caller",
        "main:\n load_imm r7, 3\n load_imm r8, 0\n ecalli 26\n ecalli 0\n",
        "",
        &[(0, payload), (3, callee)],
    );
    for_engines(|vm| {
        let r = vm.invoke_cached(&w.cache, &caller, 0, [0; 4], GAS).unwrap();
        assert_eq!(ret_of(&r), 1, "{r:?}");
        // The callee's slot 0 flowed back to the caller and out of the invocation.
        assert!(matches!(r, CallResult::Halt { reflected_slot0: Some(h), .. } if h == payload));
        r
    });
}

#[test]
fn a_faulting_callee_gives_its_caller_a_status() {
    let w = World::new();
    let faulty = w.publish(
        "faulty",
        "main:\n load_u8 r7, 0x50000\n ecalli 0\n",
        "",
        &[],
    );
    let caller = w.publish(
        "caller",
        "main:\n load_imm r7, 3\n load_imm r8, 0\n ecalli 26\n shlo_l_imm_64 r8, r8, 32\n \
         add_64 r7, r7, r8\n ecalli 0\n",
        "",
        &[(3, faulty)],
    );
    for_engines(|vm| {
        let r = vm.invoke_cached(&w.cache, &caller, 0, [0; 4], GAS).unwrap();
        assert_eq!(ret_of(&r), (3 << 32) | 0x50000, "{r:?}");
        // A faulted callee leaves its slot unchanged.
        let post = w.instance(&post_of(&r));
        assert_eq!(w.slot(&w.cnode_of(&post), 3), Some(faulty));
        r
    });
}

#[test]
fn a_pinned_callee_slot_is_not_written_back() {
    let w = World::new();
    let counter = w.publish(
        "counter",
        "main:\n load_u8 r7, 0x20000\n add_imm_64 r7, r7, 1\n store_u8 r7, 0x20000\n ecalli 0\n",
        "[[mapping]]\nstart = 0x20000\nsize = 0x1000\n",
        &[],
    );
    let pinned_caller = w.publish_with_pinned(
        "pinned",
        "main:\n load_imm r7, 3\n load_imm r8, 0\n ecalli 26\n load_imm r7, 4\n load_imm r8, 0\n \
         ecalli 26\n ecalli 0\n",
        "",
        &[(3, counter)],
        &[(4, counter)],
    );
    for_engines(|vm| {
        let r = vm
            .invoke_cached(&w.cache, &pinned_caller, 0, [0; 4], GAS)
            .unwrap();
        // Call 1 (pinned slot 3): counter 1, not written back. Call 2 (slot 4): also 1.
        assert_eq!(ret_of(&r), 1, "{r:?}");
        let cnode = w.cnode_of(&w.instance(&post_of(&r)));
        assert_eq!(w.slot(&cnode, 3), Some(counter));
        assert_ne!(w.slot(&cnode, 4), Some(counter));
        r
    });
}
