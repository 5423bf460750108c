//! The `Engine` / `Instance` contract on every engine: resuming after host calls,
//! ecalls, page faults and out of gas; `set_pc`; block stepping; host memory access;
//! and the errors for bad gas, mismatched schedules and finished instances.

use std::sync::Arc;

use differential_tests::{Case, engine_tests};
use javm_exec::asm::assemble;
use javm_exec::gas_const::COW_COST;
use javm_exec::{
    Engine, EngineError, Exit, GasProfile, GasSchedule, Instance, InstanceInit, MemTier,
    MemoryError, PageKind, PageState, Reg,
};

const RW: PageKind = PageKind::EphemeralZero;

fn host_call_resumes_at_the_next_instruction<E: Engine>(e: &E) {
    let c = Case::asm("load_imm r1, 1\necalli 5\nload_imm r2, 2\ntrap").gp();
    let mut o = c.run(e);
    // Under gp `ecalli` does not end the block: all four instructions are charged
    // on entry, and the run resumes after the call without a charge.
    assert_eq!((o.exit, o.pc, o.used), (Exit::HostCall(5), 3, 4));
    assert_eq!(o.inst.next_pc(), Some(5));
    o.inst.set_reg(Reg::R7, 99);
    let o = o.resume();
    assert_eq!(
        (o.exit, o.pc, o.used),
        (Exit::Trap, 8, 0),
        "the rest of the block was charged on entry"
    );
    assert_eq!((o.regs[1], o.regs[2], o.regs[7]), (1, 2, 99));
}

fn ecall_resumes_at_the_next_instruction<E: Engine>(e: &E) {
    let o = Case::asm("ecall\nload_imm r2, 2\ntrap").gp().run(e);
    assert_eq!((o.exit, o.pc), (Exit::Ecall, 0));
    assert_eq!(o.inst.next_pc(), Some(1));
    let o = o.resume();
    assert_eq!((o.exit, o.regs[2]), (Exit::Trap, 2));
}

fn page_fault_retries_without_recharging<E: Engine>(e: &E) {
    let o = Case::asm("load_imm r2, 5\nload_u8 r1, 0x20000\ntrap")
        .gp()
        .run(e);
    assert_eq!((o.exit, o.pc, o.used), (Exit::PageFault(0x20000), 3, 3));
    assert_eq!(o.inst.next_pc(), Some(3));
    let o = o.resume();
    assert_eq!(
        (o.exit, o.pc, o.used),
        (Exit::PageFault(0x20000), 3, 0),
        "retried, not recharged"
    );
}

fn finished_instances_need_a_new_pc<E: Engine>(e: &E) {
    let mut o = Case::asm("load_imm r1, 1\ntrap").gp().run(e);
    assert_eq!(o.exit, Exit::Trap);
    assert_eq!(o.inst.next_pc(), None);
    assert_eq!(o.inst.run(), Err(EngineError::Finished(Exit::Trap)));
    o.inst.set_pc(0);
    assert_eq!(o.inst.run(), Ok(Exit::Trap));
    assert_eq!(o.inst.gas(), 1_000_000 - 4, "block 0 charged twice");
}

fn set_pc_mid_block_runs_uncharged_to_the_next_block<E: Engine>(e: &E) {
    let c = Case::asm("load_imm r1, 1\nload_imm r2, 2\nfallthrough\nload_imm r3, 3\ntrap").gp();
    let mut inst = c.instance(e);
    inst.set_pc(3);
    assert_eq!(inst.next_pc(), Some(3));
    assert_eq!(inst.run(), Ok(Exit::Trap));
    assert_eq!(inst.regs()[1..4], [0, 2, 3]);
    assert_eq!(
        inst.gas(),
        1_000_000 - 2,
        "only the block at pc 7 was charged"
    );
    // A PC that is not an instruction panics there.
    for bad in [1, 100] {
        let mut inst = c.instance(e);
        inst.set_pc(bad);
        assert_eq!(inst.run(), Ok(Exit::Panic));
        assert_eq!(inst.pc(), bad);
    }
    // Entering at the implicit trap.
    let mut inst = c.instance(e);
    inst.set_pc(10);
    assert_eq!(inst.run(), Ok(Exit::Trap));
}

fn copy_on_write_beyond_the_gas_left_is_out_of_gas_at_the_instruction<E: Engine>(e: &E) {
    let c = Case::asm("load_imm r1, 1\nstore_imm_u8 0x20000, 9\ntrap")
        .region(0x20000, 0x1000, RW, &[])
        .gas(100);
    let mut inst = c.instance(e);
    inst.set_pc(3); // mid-block: the reserve was never checked
    assert_eq!(inst.run(), Ok(Exit::OutOfGas));
    assert_eq!(
        (inst.pc(), inst.gas(), inst.page_state(0x20000)),
        (3, 0, PageState::NotPresent)
    );
    inst.set_gas(1000).unwrap();
    assert_eq!(inst.next_pc(), Some(3));
    assert_eq!(inst.run(), Ok(Exit::Trap));
    assert_eq!(inst.gas(), 1000 - COW_COST as i64);
    let mut b = [0];
    inst.read_memory(0x20000, &mut b).unwrap();
    assert_eq!(b, [9]);
}

fn stepping_blocks_matches_running<E: Engine>(e: &E) {
    for (src, arg) in [
        (include_str!("../../examples/fib.s"), 30u32),
        (include_str!("../../examples/sieve.s"), 200),
        (include_str!("../../examples/sort.s"), 20),
    ] {
        let sp = assemble(src).unwrap().standard().unwrap();
        let (layout, regs) = sp.initial_state(&arg.to_le_bytes()).unwrap();
        let layout = Arc::new(layout);
        let module = e
            .prepare(
                &sp.program,
                GasSchedule::new(GasProfile::Jar1, layout.accessible_pages()),
            )
            .unwrap();
        let init = InstanceInit {
            layout,
            regs,
            pc: 0,
            gas: 10_000_000,
        };
        let mut a = e.instantiate(&module, init.clone()).unwrap();
        let mut b = e.instantiate(&module, init).unwrap();
        let exit_a = a.run().unwrap();
        let mut blocks = 0;
        let exit_b = loop {
            blocks += 1;
            if let Some(x) = b.step_block().unwrap() {
                break x;
            }
            let pc = b.pc();
            assert!(
                sp.program.block_starting_at(pc).is_some(),
                "paused at block start {pc}"
            );
        };
        assert!(blocks > 10);
        assert_eq!(exit_a, Exit::Halt);
        assert_eq!(
            (exit_a, a.pc(), a.gas(), a.regs()),
            (exit_b, b.pc(), b.gas(), b.regs())
        );
        let (mut ma, mut mb) = (vec![0u8; 4096], vec![0u8; 4096]);
        for (page, _) in a.accessible_pages() {
            a.read_memory(page, &mut ma).unwrap();
            b.read_memory(page, &mut mb).unwrap();
            assert_eq!(ma, mb);
            assert_eq!(a.page_state(page), b.page_state(page));
        }
    }
}

fn host_memory_access_follows_guest_rights<E: Engine>(e: &E) {
    let c = Case::asm("load_u8 r1, 0x21000\ntrap")
        .region(0x20000, 0x1000, PageKind::UnpinnedCapCow, &[1, 2, 3])
        .region(0x21000, 0x1000, RW, &[])
        .region(0x2F000, 0x1000, RW, &[])
        .region(0x30000, 0x1000, PageKind::PinnedCapRo, &[4]);
    let mut inst = c.instance(e);
    let mut buf = [0u8; 3];
    inst.read_memory(0x20000, &mut buf).unwrap();
    assert_eq!(buf, [1, 2, 3]);
    assert_eq!(
        inst.page_state(0x20000),
        PageState::NotPresent,
        "host reads change nothing"
    );
    let mut two = [0u8; 2];
    assert_eq!(
        inst.read_memory(0x21FFF, &mut two),
        Err(MemoryError::Inaccessible(0x22000))
    );
    assert_eq!(
        inst.read_memory(0xFFFF_FFFF, &mut two),
        Err(MemoryError::OutOfRange {
            addr: 0xFFFF_FFFF,
            len: 2
        })
    );
    assert_eq!(
        inst.write_memory(0x30000, &[9]),
        Err(MemoryError::ReadOnly(0x30000))
    );
    // All or nothing: the second page is read-only (or unmapped), so the first byte,
    // on a writable page, is not written either.
    assert_eq!(
        inst.write_memory(0x2FFFF, &[9, 9]),
        Err(MemoryError::ReadOnly(0x30000))
    );
    assert_eq!(
        inst.write_memory(0x21FFF, &[9, 9]),
        Err(MemoryError::Inaccessible(0x22000))
    );
    for addr in [0x2FFFF, 0x21FFF] {
        inst.read_memory(addr, &mut buf[..1]).unwrap();
        assert_eq!(buf[0], 0);
        assert_eq!(inst.page_state(addr), PageState::NotPresent);
    }
    // A host write materializes the page (keeping its contents) without charge.
    inst.write_memory(0x20001, &[7]).unwrap();
    assert_eq!(inst.page_state(0x20000), PageState::PresentRw);
    inst.read_memory(0x20000, &mut buf).unwrap();
    assert_eq!(buf, [1, 7, 3]);
    inst.write_memory(0x21000, &[5]).unwrap();
    let gas = inst.gas();
    assert_eq!(inst.run(), Ok(Exit::Trap));
    assert_eq!(inst.regs()[1], 5);
    assert_eq!(
        gas - inst.gas(),
        c.program.block_costs(c.schedule())[0].cost as i64
    );
}

fn registers_and_gas_accessors<E: Engine>(e: &E) {
    let mut inst = Case::asm("trap").instance(e);
    inst.set_reg(Reg::R12, 0xDEAD);
    assert_eq!(inst.reg(Reg::R12), 0xDEAD);
    assert_eq!(inst.set_gas(-1), Err(EngineError::InvalidGas(-1)));
    inst.set_gas(i64::MAX).unwrap();
    assert_eq!(inst.gas(), i64::MAX);
}

fn bad_instance_parameters_are_errors<E: Engine>(e: &E) {
    let c = Case::asm("trap");
    let module = e.prepare(&c.program, c.schedule()).unwrap();
    let init = InstanceInit {
        layout: Arc::new(c.layout.clone()),
        regs: [0; 13],
        pc: 0,
        gas: -5,
    };
    assert!(matches!(
        e.instantiate(&module, init),
        Err(EngineError::InvalidGas(-5))
    ));
    // A module priced for tier 2 with a layout of tier 1.
    let tier2 = e
        .prepare(&c.program, GasSchedule::Jar1(MemTier::new(2).unwrap()))
        .unwrap();
    let init = InstanceInit {
        layout: Arc::new(c.layout.clone()),
        regs: [0; 13],
        pc: 0,
        gas: 5,
    };
    assert!(matches!(
        e.instantiate(&tier2, init),
        Err(EngineError::ScheduleMismatch { .. })
    ));
    // An entry inside a block would run the rest of it uncharged; an entry that is
    // no instruction is accepted and panics when run.
    let c = Case::asm("load_imm r1, 1\nload_imm r2, 2\ntrap");
    let module = e.prepare(&c.program, c.schedule()).unwrap();
    let at = |pc| InstanceInit {
        layout: Arc::new(c.layout.clone()),
        regs: [0; 13],
        pc,
        gas: 5,
    };
    assert!(matches!(
        e.instantiate(&module, at(3)),
        Err(EngineError::EntryNotBlockStart(3))
    ));
    let mut i = e.instantiate(&module, at(1)).unwrap();
    assert_eq!(i.run(), Ok(Exit::Panic));
    assert!(e.instantiate(&module, at(0)).is_ok());
}

fn modules_are_cached_by_program_and_schedule<E: Engine>(e: &E) {
    let c = Case::asm("trap");
    let a = e.prepare(&c.program, c.schedule()).unwrap();
    let b = e
        .prepare(
            &Arc::new(assemble("trap").unwrap().program().unwrap()),
            c.schedule(),
        )
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b), "same program content, same module");
    let g = e.prepare(&c.program, GasSchedule::Gp).unwrap();
    assert!(!Arc::ptr_eq(&a, &g));
}

/// Engines recycle what backs an instance's memory (the interpreter's buffers, the
/// recompiler's guest windows). Whatever an instance wrote, an instance built after
/// it must start fresh: zero pages read zero, copy-on-write and pinned pages read
/// their source, every page starts `NotPresent`, and first touches are charged again.
fn a_later_instance_sees_nothing_of_an_earlier_one<E: Engine>(e: &E) {
    let cow: Vec<u8> = (0..4096).map(|i| (i % 251) as u8 + 1).collect();
    let layout = |c: Case| {
        c.region(0x20000, 0x2000, RW, &[])
            .region(0x30000, 0x1000, PageKind::UnpinnedCapCow, &cow)
            .region(0x40000, 0x1000, PageKind::PinnedCapRo, &[0xAB])
    };
    let writer = layout(Case::asm(
        "store_imm_u8 0x20008, 0x55\nstore_imm_u8 0x30008, 0x66\nstore_imm_u8 0x21FFF, 0x77\ntrap",
    ));
    let reader = layout(Case::asm(
        "load_u8 r1, 0x20008\nload_u8 r2, 0x30008\nload_u8 r3, 0x21FFF\nload_u8 r4, 0x40000\n\
         store_imm_u8 0x20010, 1\ntrap",
    ));
    let mut first_gas = None;
    for round in 0..40 {
        let mut w = writer.run(e);
        assert_eq!(w.exit, Exit::Trap);
        w.inst.write_memory(0x21000, &[9; 16]).unwrap();
        drop(w);
        let r = reader.run(e);
        assert_eq!(r.exit, Exit::Trap, "round {round}");
        assert_eq!(
            (r.regs[1], r.regs[2], r.regs[3], r.regs[4]),
            (0, u64::from(cow[8]), 0, 0xAB),
            "round {round}"
        );
        assert_eq!(r.mem(0x21000, 16), [0; 16], "round {round}");
        assert_eq!(r.inst.page_state(0x21000), PageState::PresentRo);
        assert_eq!(r.inst.page_state(0x30000), PageState::PresentRo);
        assert_eq!(r.inst.page_state(0x20000), PageState::PresentRw);
        assert_eq!(r.inst.dirty_pages(), vec![0x20000]);
        // The same charges every round (the store's copy-on-write included):
        // nothing was left materialized.
        assert_eq!(*first_gas.get_or_insert(r.used), r.used, "round {round}");
    }
}

/// Stores at the end of a written page whose next page is not yet written: those
/// that stay in the page proceed at no further charge, one that leaves it pays
/// copy-on-write for the next page, or faults (all-or-nothing) if that page is
/// read-only. (The recompiler's write shadow takes its in-page path for the first
/// kind and leaves compiled code for the others.)
fn stores_at_the_end_of_a_page<E: Engine>(e: &E) {
    let src = "store_imm_u8 0x20000, 1\n\
               store_imm_u64 0x20ff8, 0x01020304\n\
               store_ind_u32 r1, r2, 0\n\
               store_ind_u16 r1, r2, 2\n\
               store_ind_u64 r1, r2, 0\n\
               trap";
    let case = |next: PageKind| {
        Case::asm(src)
            .region(0x20000, 0x1000, RW, &[])
            .region(0x21000, 0x1000, next, &[9; 8])
            .reg(1, 0x0A0B_0C0D_0E0F_1011)
            .reg(2, 0x20FFC)
    };
    let c = case(PageKind::UnpinnedCapCow);
    let block = c.program.block_costs(c.schedule())[0].cost as i64;
    let o = c.run(e);
    assert_eq!(o.exit, Exit::Trap);
    assert_eq!(o.used, block + 2 * COW_COST as i64, "two pages written");
    assert_eq!(o.mem(0x20FF8, 4), [4, 3, 2, 1]);
    assert_eq!(
        o.mem(0x20FFC, 8),
        [0x11, 0x10, 0x0F, 0x0E, 0x0D, 0x0C, 0x0B, 0x0A]
    );
    assert_eq!(
        o.mem(0x21004, 1),
        [9],
        "the rest of the next page is its source"
    );

    let o = case(PageKind::PinnedCapRo).run(e);
    assert_eq!((o.exit, o.pc), (Exit::PageFault(0x21000), 20));
    assert_eq!(o.used, block + COW_COST as i64, "one page written");
    assert_eq!(
        o.mem(0x20FFC, 4),
        [0x11, 0x10, 0x11, 0x10],
        "nothing of the faulting store"
    );
    assert_eq!(o.inst.page_state(0x21000), PageState::NotPresent);
}

/// Everything observable after running `inst` to its end (host calls answered).
fn run_to_end<I: Instance>(
    inst: &mut I,
    pages: &[u32],
) -> (Vec<Exit>, i64, [u64; 13], Vec<PageState>, Vec<u8>) {
    let mut exits = Vec::new();
    loop {
        let e = inst.run().expect("run");
        exits.push(e);
        if !matches!(e, Exit::HostCall(_)) {
            break;
        }
        inst.set_reg(Reg::R7, 7);
    }
    let states = pages.iter().map(|&p| inst.page_state(p)).collect();
    let mut mem = vec![0u8; pages.len() * 4096];
    for (i, &p) in pages.iter().enumerate() {
        inst.read_memory(p, &mut mem[i * 4096..(i + 1) * 4096])
            .expect("mapped");
    }
    (exits, inst.gas(), inst.regs(), states, mem)
}

/// `reset` gives a run identical to a fresh instance's, after memory was written,
/// read and materialized; a rejected reset changes nothing.
fn reset_starts_a_fresh_run<E: Engine>(e: &E) {
    let src = "load_imm r2, 0x20000\nload_ind_u64 r3, r2, 8\nstore_imm_ind_u64 r2, 16, 77\n\
               store_ind_u64 r3, r2, 4096\necalli 9\nadd_64 r4, r3, r7\ntrap";
    let c = Case::asm(src)
        .region(0x20000, 0x2000, PageKind::UnpinnedCapCow, &[5; 64])
        .gas(100_000);
    let pages = [0x20000, 0x21000];
    let fresh = run_to_end(&mut c.instance(e), &pages);
    assert_eq!(fresh.0, [Exit::HostCall(9), Exit::Trap]);
    let mut inst = c.instance(e);
    let first = run_to_end(&mut inst, &pages);
    assert_eq!(first, fresh);
    inst.reset(c.regs, 0, 100_000).expect("reset");
    assert_eq!(inst.page_state(0x20000), PageState::NotPresent);
    assert_eq!(inst.dirty_pages(), Vec::<u32>::new());
    assert_eq!(
        run_to_end(&mut inst, &pages),
        fresh,
        "a reset run equals a fresh one"
    );
    // A bad entry or gas is refused and leaves the finished instance as it was.
    let pc = inst.pc();
    let inside = c.program.pcs()[1];
    assert_eq!(
        inst.reset(c.regs, inside, 100),
        Err(EngineError::EntryNotBlockStart(inside))
    );
    assert_eq!(inst.reset(c.regs, 0, -1), Err(EngineError::InvalidGas(-1)));
    assert_eq!(
        (inst.pc(), inst.page_state(0x20000)),
        (pc, PageState::PresentRw)
    );
    // Many resets of one instance, as a pooled runner would do.
    for _ in 0..50 {
        inst.reset(c.regs, 0, 100_000).expect("reset");
        assert_eq!(run_to_end(&mut inst, &pages), fresh);
    }
}

engine_tests!(
    reset_starts_a_fresh_run,
    stores_at_the_end_of_a_page,
    host_call_resumes_at_the_next_instruction,
    ecall_resumes_at_the_next_instruction,
    page_fault_retries_without_recharging,
    finished_instances_need_a_new_pc,
    set_pc_mid_block_runs_uncharged_to_the_next_block,
    copy_on_write_beyond_the_gas_left_is_out_of_gas_at_the_instruction,
    stepping_blocks_matches_running,
    host_memory_access_follows_guest_rights,
    registers_and_gas_accessors,
    bad_instance_parameters_are_errors,
    modules_are_cached_by_program_and_schedule,
    a_later_instance_sees_nothing_of_an_earlier_one,
);
