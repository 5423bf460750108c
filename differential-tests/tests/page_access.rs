//! Host changes of page access (`Instance::set_page_access`) on every engine: paging
//! memory in after a fault and resuming, read-only pages refusing stores (also on
//! the recompiler's fast store path), unmapping, zeroing, kept contents, bad
//! arguments and resets. The differential campaign compares the engines on random
//! changes (the oracle's pager and host actions); these pin the rule itself.

use differential_tests::{Case, engine_tests};
use javm_exec::gas_const::COW_COST;
use javm_exec::{Engine, Exit, Instance, MemoryError, PageAccess, PageKind, PageState, Reg};

const RW: PageKind = PageKind::EphemeralZero;

/// A fault on an unmapped page; the host maps it and the run retries the access.
fn a_host_pages_memory_in_after_a_fault<E: Engine>(e: &E) {
    let c = Case::asm("load_u64 r1, 0x30000\nstore_imm_u8 0x30008, 5\nload_u8 r2, 0x30008\ntrap")
        .region(0x20000, 0x1000, RW, &[]);
    let mut o = c.run(e);
    assert_eq!(o.exit, Exit::PageFault(0x30000));
    // Keep contents: a page that was not mapped holds zeros; the host fills it.
    o.inst
        .set_page_access(0x30000, 1, PageAccess::ReadWrite)
        .unwrap();
    assert_eq!(o.inst.page_state(0x30000), PageState::PresentRo);
    o.inst.write_memory(0x30000, &[42]).unwrap();
    let o = o.resume();
    assert_eq!((o.exit, o.regs[1], o.regs[2]), (Exit::Trap, 42, 5));
    assert_eq!(o.used, 0, "the host wrote the page: no copy-on-write");
    assert!(o.inst.accessible_pages().contains(&(0x30000, RW)));
    assert_eq!(o.inst.dirty_pages(), [0x30000]);

    // A zero page mapped by the host charges copy-on-write on the first store.
    let mut o = c.run(e);
    o.inst
        .set_page_access(0x30000, 1, PageAccess::ZeroReadWrite)
        .unwrap();
    let o = o.resume();
    assert_eq!((o.exit, o.regs[1], o.regs[2]), (Exit::Trap, 0, 5));
    assert_eq!(o.used, COW_COST as i64);
    assert_eq!(o.inst.page_state(0x30000), PageState::PresentRw);
}

/// A written page made read-only refuses the next store (in-page and straddling
/// from the page below) and still reads; made writable again, a store pays
/// copy-on-write once more.
fn a_page_made_read_only_refuses_stores<E: Engine>(e: &E) {
    let c = Case::asm(
        "store_imm_u64 0x20ff8, 1\nstore_imm_u8 0x21000, 2\necalli 1\n\
         store_imm_u8 0x21010, 3\necalli 2\nstore_imm_u64 0x20ffc, 4\necalli 3\n\
         store_imm_u8 0x21010, 5\ntrap",
    )
    .region(0x20000, 0x2000, RW, &[]);
    let mut o = c.run(e);
    assert_eq!(o.exit, Exit::HostCall(1));
    o.inst
        .set_page_access(0x21000, 1, PageAccess::ReadOnly)
        .unwrap();
    assert_eq!(o.inst.page_state(0x21000), PageState::PresentRo);
    let mut o = o.resume();
    assert_eq!(o.exit, Exit::PageFault(0x21000), "in-page store");
    assert_eq!(o.mem(0x21000, 1), [2], "contents kept");
    // Skip the store: the next instruction is the host call.
    let next = c.program.pcs()[4];
    o.inst.set_pc(next);
    let o = o.resume();
    assert_eq!(o.exit, Exit::HostCall(2));
    let mut o = o.resume();
    assert_eq!(o.exit, Exit::PageFault(0x21000), "straddling store");
    assert_eq!(o.mem(0x20FFC, 4), [0; 4], "nothing of it was stored");
    o.inst.set_pc(c.program.pcs()[6]);
    let mut o = o.resume();
    assert_eq!(o.exit, Exit::HostCall(3));
    o.inst
        .set_page_access(0x21000, 1, PageAccess::ReadWrite)
        .unwrap();
    assert_eq!(
        o.inst.accessible_pages()[1],
        (0x21000, PageKind::UnpinnedCapCow)
    );
    let o = o.resume();
    assert_eq!(o.exit, Exit::Trap);
    let last = c.program.block_costs(c.schedule())[c.program.block_of(7) as usize].cost;
    assert_eq!(
        o.used,
        (COW_COST + last) as i64,
        "copy-on-write again, and the last block"
    );
    assert_eq!(o.mem(0x21000, 1), [2]);
    assert_eq!(o.mem(0x21010, 1), [5]);
}

/// Unmapping discards the contents: the page faults, is no longer listed, and a
/// later mapping that keeps contents sees zeros. Zeroing modes clear pages with
/// layout contents, and keeping modes keep a page's slab even if it was never
/// touched.
fn unmapping_and_zeroing_discard_contents<E: Engine>(e: &E) {
    let c = Case::asm("store_imm_u8 0x20000, 9\necalli 0\nload_u8 r1, 0x20000\ntrap")
        .region(0x20000, 0x1000, RW, &[])
        .region(0x21000, 0x2000, PageKind::UnpinnedCapCow, &[7; 16]);
    let mut o = c.run(e);
    assert_eq!(o.exit, Exit::HostCall(0));
    o.inst
        .set_page_access(0x20000, 1, PageAccess::Unmapped)
        .unwrap();
    assert_eq!(o.inst.page_state(0x20000), PageState::NotPresent);
    assert_eq!(o.inst.dirty_pages(), Vec::<u32>::new());
    assert!(o.inst.accessible_pages().iter().all(|&(p, _)| p != 0x20000));
    let mut buf = [0u8; 1];
    assert_eq!(
        o.inst.read_memory(0x20000, &mut buf),
        Err(MemoryError::Inaccessible(0x20000))
    );
    let mut o = o.resume();
    assert_eq!(o.exit, Exit::PageFault(0x20000));
    o.inst
        .set_page_access(0x20000, 1, PageAccess::ReadOnly)
        .unwrap();
    let mut o = o.resume();
    assert_eq!((o.exit, o.regs[1]), (Exit::Trap, 0), "the old byte is gone");

    // Keep: the untouched page's slab. Zero: the other's slab is gone.
    o.inst
        .set_page_access(0x21000, 1, PageAccess::ReadOnly)
        .unwrap();
    o.inst
        .set_page_access(0x22000, 1, PageAccess::ZeroReadOnly)
        .unwrap();
    assert_eq!(o.mem(0x21000, 2), [7, 7]);
    assert_eq!(o.mem(0x22000, 2), [0, 0]);
    assert_eq!(
        o.inst.write_memory(0x22000, &[1]),
        Err(MemoryError::ReadOnly(0x22000))
    );
    assert_eq!(o.inst.dirty_pages(), [0x20000, 0x21000, 0x22000]);
}

/// Bad arguments are refused before anything changes; an empty range changes
/// nothing.
fn bad_arguments_change_nothing<E: Engine>(e: &E) {
    let c = Case::asm("trap").region(0x20000, 0x1000, RW, &[]);
    let mut inst = c.instance(e);
    assert_eq!(
        inst.set_page_access(0x20800, 1, PageAccess::Unmapped),
        Err(MemoryError::Unaligned(0x20800))
    );
    assert!(matches!(
        inst.set_page_access(0xFFFF_F000, 2, PageAccess::ReadWrite),
        Err(MemoryError::OutOfRange {
            addr: 0xFFFF_F000,
            ..
        })
    ));
    inst.set_page_access(0x20000, 0, PageAccess::Unmapped)
        .unwrap();
    assert_eq!(inst.accessible_pages(), [(0x20000, RW)]);
    // The last page of the address space can be mapped.
    inst.set_page_access(0xFFFF_F000, 1, PageAccess::ZeroReadWrite)
        .unwrap();
    inst.write_memory(0xFFFF_FFFF, &[1]).unwrap();
    assert_eq!(inst.run(), Ok(Exit::Trap));
}

/// A reset forgets every change: the next run equals a fresh instance's.
fn a_reset_forgets_page_changes<E: Engine>(e: &E) {
    let c = Case::asm("load_u8 r1, 0x20000\nstore_imm_u8 0x20001, 1\ntrap").region(
        0x20000,
        0x1000,
        PageKind::UnpinnedCapCow,
        &[3],
    );
    let fresh = c.run(e);
    let mut inst = c.instance(e);
    inst.set_page_access(0x20000, 1, PageAccess::ZeroReadOnly)
        .unwrap();
    inst.set_page_access(0x40000, 4, PageAccess::ReadWrite)
        .unwrap();
    inst.write_memory(0x40000, &[1; 8]).unwrap();
    assert_eq!(inst.run(), Ok(Exit::PageFault(0x20000)));
    inst.reset(c.regs, 0, c.gas).unwrap();
    assert_eq!(
        inst.accessible_pages(),
        [(0x20000, PageKind::UnpinnedCapCow)]
    );
    assert_eq!(inst.run(), Ok(fresh.exit));
    assert_eq!((inst.regs(), inst.gas()), (fresh.regs, fresh.gas));
    assert_eq!(inst.reg(Reg::R1), 3);
}

engine_tests!(
    a_host_pages_memory_in_after_a_fault,
    a_page_made_read_only_refuses_stores,
    unmapping_and_zeroing_discard_contents,
    bad_arguments_change_nothing,
    a_reset_forgets_page_changes,
);
