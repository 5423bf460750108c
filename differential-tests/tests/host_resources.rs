//! Host resources are bounded by the layout, not by the guest's access pattern: a
//! program that touches every other page of a large heap (reads or writes) runs to
//! the same result on both engines, two such instances stay alive (paused at a host
//! call) beside a third that runs normally, and the process's mapping count and
//! resident memory stay within the documented bound (DESIGN-DECISIONS §59).
//!
//! The default run walks 4 096 pages; `JAVM_FULL_RESOURCE_TEST=1` walks the
//! original report's 32 767 pages and ten times that.

#![cfg(jit)]

use differential_tests::Case;
use javm_exec::{Engine, Exit, Instance, Interpreter, PageKind};

const HEAP: u64 = 0x10_0000;
const PAGE: u64 = 4096;
/// Pages per materialization unit (2 MiB).
const UNIT_PAGES: u64 = 512;

/// Touch every other page of a `2 * pages`-page zero region with `op`, pause at
/// `ecalli 1`, then halt (trap).
fn walker(pages: u64, op: &str) -> Case {
    let src = format!(
        "load_imm r2, {HEAP}\nload_imm r3, {pages}\nfallthrough\n\
         loop: {op}\nadd_imm_64 r2, r2, 8192\nadd_imm_64 r3, r3, -1\n\
         branch_ne_imm r3, 0, loop\necalli 1\ntrap"
    );
    Case::asm(&src)
        .region(HEAP, 2 * pages * PAGE, PageKind::EphemeralZero, &[])
        .gas(1 << 40)
}

fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    resident * PAGE
}

/// The documented bound on the mappings one instance adds: two per unit of its
/// layout, plus a constant.
fn mapping_bound(pages: u64) -> usize {
    let units = (2 * pages).div_ceil(UNIT_PAGES) + 1;
    (2 * units + 8) as usize
}

/// Run the scenario on `e`; returns (exit, gas left, registers) of each walker and of
/// the bystander, for comparison across engines.
fn scenario<E: Engine>(e: &E, pages: u64) -> Vec<(Exit, i64, [u64; 13])> {
    let maps_before = map_count();
    let rss_before = resident_bytes();
    let mut alive = Vec::new();
    let mut out = Vec::new();
    for op in ["load_ind_u8 r4, r2, 0", "store_ind_u8 r3, r2, 0"] {
        let mut inst = walker(pages, op).instance(e);
        let exit = inst.run().expect("the walker runs");
        assert_eq!(exit, Exit::HostCall(1), "{op}: reached the pause");
        out.push((exit, inst.gas(), inst.regs()));
        alive.push(inst);
    }
    let added = map_count().saturating_sub(maps_before);
    let bound = 2 * mapping_bound(pages);
    assert!(
        added <= bound,
        "two paused walkers added {added} mappings (bound {bound})"
    );
    // Written pages are resident (4 KiB each, plus one write-shadow byte per 8
    // bytes in the recompiler); read pages are not.
    let grown = resident_bytes().saturating_sub(rss_before);
    let rss_bound = pages * PAGE * 5 / 4 + (64 << 20);
    assert!(
        grown <= rss_bound,
        "resident memory grew by {grown} bytes (bound {rss_bound})"
    );
    // A bystander runs normally beside them.
    let o = Case::asm("load_imm r1, 7\nstore_u64 r1, 0x20000\nload_u64 r2, 0x20000\ntrap")
        .region(0x20000, PAGE, PageKind::EphemeralZero, &[])
        .run(e);
    assert_eq!((o.exit, o.regs[2]), (Exit::Trap, 7), "the bystander ran");
    out.push((o.exit, o.gas, o.regs));
    for mut inst in alive {
        assert_eq!(inst.run(), Ok(Exit::Trap), "the walker finishes");
        out.push((Exit::Trap, inst.gas(), inst.regs()));
    }
    out
}

#[test]
fn alternating_pages_stay_within_the_mapping_and_memory_bounds() {
    let full = std::env::var_os("JAVM_FULL_RESOURCE_TEST").is_some();
    let sizes: &[u64] = if full { &[32_767, 327_670] } else { &[4096] };
    // The writer at 327 670 pages writes 1.25 GiB, past the default memory limit.
    let limit = 2 << 30;
    let interp = Interpreter::new().with_memory_limit(limit);
    let recompiler = javm_jit_x86::Recompiler::new()
        .unwrap()
        .with_memory_limit(limit);
    for &pages in sizes {
        let a = scenario(&interp, pages);
        let b = scenario(&recompiler, pages);
        assert_eq!(a, b, "{pages} pages: the engines agree");
    }
}

/// Writes past the instance's memory limit stop the run with
/// `EngineError::MemoryLimit` at the same access on both engines, whatever the gas
/// profile (under `gp` writes are otherwise free), and host writes past it fail.
#[test]
fn writes_past_the_memory_limit_stop_at_the_same_access() {
    use javm_exec::{EngineError, MemoryError, PageState};
    fn check<E: Engine>(e: &E) -> (u32, i64) {
        // Writes one byte to each of 8 pages; the limit allows 5.
        let c = walker(4, "store_ind_u8 r3, r2, 0\nstore_ind_u8 r3, r2, 4096").gp();
        let mut inst = c.instance(e);
        assert_eq!(inst.run(), Err(EngineError::MemoryLimit(5 * PAGE)));
        let written = (0..8)
            .filter(|p| inst.page_state((HEAP + p * PAGE) as u32) == PageState::PresentRw)
            .count();
        assert_eq!(written, 5, "nothing past the limit was written");
        assert_eq!(
            inst.write_memory((HEAP + 7 * PAGE) as u32, &[1]),
            Err(MemoryError::WriteLimit(5 * PAGE))
        );
        assert!(
            inst.write_memory(HEAP as u32, &[1]).is_ok(),
            "a written page stays writable"
        );
        (inst.pc(), inst.gas())
    }
    let a = check(&Interpreter::new().with_memory_limit(5 * PAGE + 100));
    let b = check(
        &javm_jit_x86::Recompiler::new()
            .unwrap()
            .with_memory_limit(5 * PAGE + 100),
    );
    assert_eq!(a, b, "the same access, the same gas");
}
