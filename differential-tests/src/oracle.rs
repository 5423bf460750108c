//! The differential oracle: run one case on two engines, through the
//! [`Engine`]/[`Instance`] traits only, and compare everything.
//!
//! At every exit it compares the exit and its argument, the PC and resume PC, gas,
//! all 13 registers, the list of accessible pages with their kinds, every page's
//! [`PageState`], the dirty pages, and the contents of every page. After a host call
//! or ecall it applies the same deterministic host action to both instances
//! (registers, a memory write, gas, sometimes a page-access change); after a page
//! fault it maps the faulting page in a mode drawn from the seed, as an inner-VM
//! pager would, and resumes (the access is retried); it stops at halt, panic, trap or
//! out of gas (or after [`MAX_EXITS`] exits). Engine A runs block by block and engine B runs
//! straight through, so stepping is checked against running as a side effect.
//!
//! On a divergence, [`localize`] re-runs both engines block by block from the start
//! and reports the first block after which their states differ, with its disassembly.

use std::fmt::Write;
use std::sync::Arc;

use javm_exec::disasm::format_instruction;
use javm_exec::{
    Engine, EngineError, Exit, GasProfile, GasSchedule, Instance, InstanceInit, MemoryError,
    MemoryLayout, Opcode, PageAccess, PageKind, PageState, Program, Reg,
};

use crate::generate::{Spec, interesting_addresses};

/// Exits per case before the oracle stops resuming host calls.
pub const MAX_EXITS: usize = 8;

/// Above this many accessible pages, only pages that are materialized or have
/// initial contents are read (GP `sbrk` can map a million pages).
const FULL_READ_LIMIT: usize = 256;

/// Everything needed to instantiate a case on any engine.
#[derive(Clone, Debug)]
pub struct Case {
    /// The program.
    pub program: Arc<Program>,
    /// The layout.
    pub layout: Arc<MemoryLayout>,
    /// Initial registers.
    pub regs: [u64; 13],
    /// Entry PC.
    pub pc: u32,
    /// Initial gas.
    pub gas: i64,
    /// Gas profile.
    pub profile: GasProfile,
    /// Seed of the host actions.
    pub host_seed: u64,
}

impl From<&Spec> for Case {
    fn from(s: &Spec) -> Case {
        Case {
            program: s.program(),
            layout: Arc::new(s.layout()),
            regs: s.regs,
            pc: 0,
            gas: s.gas,
            profile: s.profile,
            host_seed: s.host_seed,
        }
    }
}

impl Case {
    /// A fresh instance of the case on `engine`.
    pub fn instance<E: Engine>(&self, engine: &E) -> Result<E::Instance, EngineError> {
        let schedule = GasSchedule::new(self.profile, self.layout.accessible_pages());
        let module = engine.prepare(&self.program, schedule)?;
        engine.instantiate(
            &module,
            InstanceInit {
                layout: Arc::clone(&self.layout),
                regs: self.regs,
                pc: self.pc,
                gas: self.gas,
            },
        )
    }
}

/// What a case did (on engine A; B agreed).
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The exits, in order.
    pub exits: Vec<Exit>,
    /// How many times each opcode was executed.
    pub executed: Vec<(Opcode, u64)>,
    /// Blocks executed (entered and run, wholly or up to an exit).
    pub blocks: u64,
    /// Successful host page-access changes, per mode (in `PageAccess::ALL` order).
    pub page_changes: [u32; 5],
    /// Kinds of the pages that were materialized (read or written) by the end.
    pub touched_kinds: Vec<PageKind>,
    /// Final PC, gas and registers.
    pub pc: u32,
    /// Final gas.
    pub gas: i64,
    /// Final registers.
    pub regs: [u64; 13],
}

/// Two engines disagreed.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// Which exit (0-based) the states differed at.
    pub exit_index: usize,
    /// The first difference found.
    pub what: String,
    /// The first differing block, from [`localize`].
    pub localized: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "engines diverge at exit {}: {}\n{}",
            self.exit_index, self.what, self.localized
        )
    }
}

/// The complete observable state of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    pc: u32,
    next_pc: Option<u32>,
    panic_reason: Option<javm_exec::PanicReason>,
    gas: i64,
    regs: [u64; 13],
    pages: Vec<(u32, PageKind, PageState)>,
    /// `Instance::dirty_pages`, and whether it lists every `PresentRw` page and
    /// only accessible pages.
    dirty: (Vec<u32>, bool),
    contents: Vec<(u32, Vec<u8>)>,
}

fn snapshot<I: Instance>(inst: &I, layout: &MemoryLayout) -> Snapshot {
    let pages: Vec<(u32, PageKind, PageState)> = inst
        .accessible_pages()
        .into_iter()
        .map(|(p, k)| (p, k, inst.page_state(p)))
        .collect();
    let dirty = inst.dirty_pages();
    let is_dirty = |p: u32| dirty.binary_search(&p).is_ok();
    let dirty_ok = dirty.is_sorted()
        && pages
            .iter()
            .all(|&(p, _, s)| s != PageState::PresentRw || is_dirty(p))
        && dirty
            .iter()
            .all(|&d| pages.binary_search_by_key(&d, |&(p, ..)| p).is_ok());
    let full = pages.len() <= FULL_READ_LIMIT;
    let contents = pages
        .iter()
        // Beyond the full-read limit: dirty pages (written, or changed by the host)
        // and pages with initial contents,
        // not the zero pages that were only read — a first touch makes a whole
        // materialization unit (up to 512 pages) present, and keeping 4 KiB of each
        // made a fuzz case of a large layout exceed 2 GB. Layouts within the limit
        // still have every page compared.
        .filter(|&&(p, _, _)| full || is_dirty(p) || layout.source(p).is_some())
        .map(|&(p, _, _)| {
            let mut buf = vec![0u8; 4096];
            // Accessible pages are always readable; an error is itself a difference.
            if inst.read_memory(p, &mut buf).is_err() {
                buf.clear();
            }
            (p, buf)
        })
        .collect();
    Snapshot {
        pc: inst.pc(),
        next_pc: inst.next_pc(),
        panic_reason: inst.panic_reason(),
        gas: inst.gas(),
        regs: inst.regs(),
        pages,
        dirty: (dirty, dirty_ok),
        contents,
    }
}

/// The first difference between two snapshots, if any.
fn diff(a: &Snapshot, b: &Snapshot) -> Option<String> {
    if a.pc != b.pc {
        return Some(format!("pc: {} vs {}", a.pc, b.pc));
    }
    if a.next_pc != b.next_pc {
        return Some(format!("next pc: {:?} vs {:?}", a.next_pc, b.next_pc));
    }
    if a.panic_reason != b.panic_reason {
        return Some(format!(
            "panic reason: {:?} vs {:?}",
            a.panic_reason, b.panic_reason
        ));
    }
    if a.gas != b.gas {
        return Some(format!("gas: {} vs {}", a.gas, b.gas));
    }
    for (i, (x, y)) in a.regs.iter().zip(&b.regs).enumerate() {
        if x != y {
            return Some(format!("r{i}: {x:#x} vs {y:#x}"));
        }
    }
    if a.pages.len() != b.pages.len() {
        return Some(format!(
            "accessible pages: {} vs {}",
            a.pages.len(),
            b.pages.len()
        ));
    }
    for (x, y) in a.pages.iter().zip(&b.pages) {
        if x.0 != y.0 || x.1 != y.1 {
            return Some(format!(
                "page map: {:#x} {:?} vs {:#x} {:?}",
                x.0, x.1, y.0, y.1
            ));
        }
        if x.2 != y.2 {
            return Some(format!("page state at {:#x}: {:?} vs {:?}", x.0, x.2, y.2));
        }
    }
    for (name, d) in [("first", &a.dirty), ("second", &b.dirty)] {
        if !d.1 {
            return Some(format!(
                "the {name} engine's dirty pages miss a PresentRw page or list an inaccessible one"
            ));
        }
    }
    if a.dirty.0 != b.dirty.0 {
        return Some(format!(
            "dirty pages: {} vs {}",
            a.dirty.0.len(),
            b.dirty.0.len()
        ));
    }
    if a.contents.len() != b.contents.len() {
        return Some("different sets of pages read".to_owned());
    }
    for ((pa, ca), (_, cb)) in a.contents.iter().zip(&b.contents) {
        if ca != cb {
            let i = ca.iter().zip(cb).position(|(x, y)| x != y).unwrap_or(0);
            return Some(format!(
                "memory at {:#x}: {:#04x} vs {:#04x}",
                pa + i as u32,
                ca.get(i).copied().unwrap_or(0),
                cb.get(i).copied().unwrap_or(0)
            ));
        }
    }
    None
}

/// A tiny deterministic generator (SplitMix64) for host actions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What the host did in response to an exit: an engine error, or the page-access
/// change it made, if any, with its result. Both engines must agree.
type Response = Result<Option<(PageAccess, Result<(), MemoryError>)>, EngineError>;

/// The host's response to the `n`-th resumed exit: [`host_action`] after a host
/// call or ecall, [`page_in`] after a page fault, nothing after an interrupt.
fn respond<I: Instance>(inst: &mut I, seed: u64, n: usize, exit: Exit) -> Response {
    match exit {
        Exit::HostCall(_) | Exit::Ecall => host_action(inst, seed, n),
        Exit::PageFault(page) => Ok(Some(page_in(inst, seed, n, page))),
        _ => Ok(None),
    }
}

/// Whether the oracle resumes after `exit`.
fn resumes(exit: Exit) -> bool {
    matches!(
        exit,
        Exit::HostCall(_) | Exit::Ecall | Exit::Interrupted | Exit::PageFault(_)
    )
}

/// The host's response to a page fault at `page`, as an inner-VM pager would: map
/// that page (sometimes with the one below, sometimes a few more) in a mode drawn
/// from the seed — mostly writable, sometimes read-only (a store then faults again),
/// keeping or zeroing the contents.
fn page_in<I: Instance>(
    inst: &mut I,
    seed: u64,
    n: usize,
    page: u32,
) -> (PageAccess, Result<(), MemoryError>) {
    let mut rng = SplitMix(seed ^ (n as u64).wrapping_mul(0x2000_0003) ^ 0x9A6E_0000_0000_0000);
    let access = match rng.next() % 8 {
        0 => PageAccess::ZeroReadOnly,
        1 => PageAccess::ReadOnly,
        2 | 3 => PageAccess::ZeroReadWrite,
        _ => PageAccess::ReadWrite,
    };
    let below = if rng.next().is_multiple_of(4) {
        PAGE
    } else {
        0
    };
    let pages = 1 + (rng.next() % 3) as u32;
    (
        access,
        inst.set_page_access(page.saturating_sub(below), pages, access),
    )
}

/// Bytes per page.
const PAGE: u32 = javm_exec::memory::PAGE_SIZE;

/// The host's response to the `n`-th host call: set r7 and r8, maybe write memory,
/// maybe change gas, maybe change the access of a few pages. Returns the page
/// change's result; the memory write's result shows in the states compared after.
fn host_action<I: Instance>(inst: &mut I, seed: u64, n: usize) -> Response {
    let mut rng = SplitMix(seed ^ (n as u64).wrapping_mul(0x1000_0001));
    inst.set_reg(Reg::R7, rng.next());
    inst.set_reg(Reg::R8, rng.next() & 0xFF);
    if rng.next().is_multiple_of(2) {
        let addrs = interesting_addresses();
        let addr = addrs[(rng.next() % addrs.len() as u64) as usize];
        let len = 1 + (rng.next() % 8) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Errors are part of the behaviour; the caller compares states after.
        let _ = inst.write_memory(addr, &data);
    }
    match rng.next() % 4 {
        0 => inst.set_gas(inst.gas().saturating_add((rng.next() % 1000) as i64))?,
        1 => inst.set_gas(inst.gas() / 2)?,
        _ => {}
    }
    // Sometimes an interrupt request, pending when the run resumes: both engines
    // must stop at the same loop head (a stream of its own, so that the actions
    // above stay what they were).
    if SplitMix(seed ^ (n as u64) ^ 0x1A7E_5EED_0000_0000)
        .next()
        .is_multiple_of(8)
    {
        inst.interrupt_handle().interrupt();
    }
    // Sometimes a page-access change around an interesting address, in any mode (a
    // stream of its own as well).
    let mut rng = SplitMix(seed ^ (n as u64) ^ 0x0ACC_E55E_0000_0000);
    if rng.next().is_multiple_of(4) {
        let addrs = interesting_addresses();
        let addr = addrs[(rng.next() % addrs.len() as u64) as usize] & !(PAGE - 1);
        let access = PageAccess::ALL[(rng.next() % PageAccess::ALL.len() as u64) as usize];
        let pages = (rng.next() % 4) as u32;
        return Ok(Some((access, inst.set_page_access(addr, pages, access))));
    }
    Ok(None)
}

/// Opcode execution counts for the step that ran instructions `[from, to)`.
fn count(program: &Program, from: usize, to: usize, counts: &mut [u64; 256]) {
    for ins in program.instructions().get(from..to).unwrap_or_default() {
        if let Some(op) = ins.opcode() {
            counts[usize::from(op.byte())] += 1;
        }
    }
}

/// Run `case` on both engines and compare every exit (under the [`watchdog`]).
///
/// [`watchdog`]: crate::watchdog
pub fn compare<A: Engine, B: Engine>(a: &A, b: &B, case: &Case) -> Result<Trace, Divergence> {
    // An engine that never stops fails the process instead of hanging it.
    let _watch = crate::watchdog::Watch::start(case);
    let program = &case.program;
    let diverge = |exit_index: usize, what: String| Divergence {
        exit_index,
        what,
        localized: localize(a, b, case),
    };
    let (mut ia, mut ib) = match (case.instance(a), case.instance(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(x), Err(y)) if x == y => return Ok(Trace::default()),
        (x, y) => {
            return Err(diverge(
                0,
                format!("instantiate: {:?} vs {:?}", x.err(), y.err()),
            ));
        }
    };
    let mut counts = [0u64; 256];
    let mut trace = Trace::default();
    for n in 0..MAX_EXITS {
        // A: block by block, counting executed instructions. B: straight through.
        let exit_a = loop {
            let start = ia
                .next_pc()
                .and_then(|pc| program.index_of(pc))
                .map(|i| i as usize);
            let step = ia.step_block();
            let from = start.unwrap_or(0);
            match step {
                Ok(None) => {
                    let end = program.blocks()[program.block_of(from as u32) as usize].end;
                    count(program, from, end as usize, &mut counts);
                    trace.blocks += 1;
                }
                Ok(Some(exit)) => {
                    let to = program.index_of(ia.pc()).map_or(from, |i| i as usize + 1);
                    // Out of gas at a block's entry executed nothing.
                    if start.is_some() && to > from && exit != Exit::OutOfGas {
                        count(program, from, to, &mut counts);
                        trace.blocks += 1;
                    }
                    break Ok(exit);
                }
                Err(e) => break Err(e),
            }
        };
        let exit_b = ib.run();
        if exit_a != exit_b {
            return Err(diverge(n, format!("exit: {exit_a:?} vs {exit_b:?}")));
        }
        let sa = snapshot(&ia, &case.layout);
        if let Some(d) = diff(&sa, &snapshot(&ib, &case.layout)) {
            return Err(diverge(n, d));
        }
        // Every panic says why, and nothing else claims a panic reason.
        if (exit_a == Ok(Exit::Panic)) != sa.panic_reason.is_some() {
            return Err(diverge(
                n,
                format!("exit {exit_a:?} with panic reason {:?}", sa.panic_reason),
            ));
        }
        let Ok(exit) = exit_a else { break };
        trace.exits.push(exit);
        if !resumes(exit) || n + 1 == MAX_EXITS {
            break;
        }
        let (ra, rb) = (
            respond(&mut ia, case.host_seed, n, exit),
            respond(&mut ib, case.host_seed, n, exit),
        );
        if ra != rb {
            return Err(diverge(n, format!("host action: {ra:?} vs {rb:?}")));
        }
        if let Ok(Some((access, Ok(())))) = ra
            && let Some(i) = PageAccess::ALL.iter().position(|&a| a == access)
        {
            trace.page_changes[i] += 1;
        }
    }
    trace.executed = Opcode::ALL
        .iter()
        .map(|&op| (op, counts[usize::from(op.byte())]))
        .filter(|&(_, c)| c > 0)
        .collect();
    trace.touched_kinds = ia
        .accessible_pages()
        .into_iter()
        .filter(|&(p, _)| ia.page_state(p) != PageState::NotPresent)
        .map(|(_, k)| k)
        .collect();
    trace.pc = ia.pc();
    trace.gas = ia.gas();
    trace.regs = ia.regs();
    Ok(trace)
}

/// Re-run both engines block by block and describe the first block after which their
/// states differ, with its disassembly.
pub fn localize<A: Engine, B: Engine>(a: &A, b: &B, case: &Case) -> String {
    let (mut ia, mut ib) = match (case.instance(a), case.instance(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => return format!("(instantiate: {:?} vs {:?})", x.err(), y.err()),
    };
    let mut resumed = 0;
    for step in 0..1_000_000u32 {
        let start = ia.next_pc();
        let (ra, rb) = (ia.step_block(), ib.step_block());
        let state = diff(&snapshot(&ia, &case.layout), &snapshot(&ib, &case.layout));
        if ra != rb || state.is_some() {
            let what = if ra != rb {
                format!("step result {ra:?} vs {rb:?}")
            } else {
                state.unwrap_or_default()
            };
            return format!(
                "first divergence in step {step}, the block at pc {}: {what}\n{}",
                start.map_or("?".to_owned(), |p| p.to_string()),
                start
                    .map(|pc| block_listing(&case.program, pc))
                    .unwrap_or_default()
            );
        }
        match ra {
            Ok(None) => {}
            Ok(Some(exit)) if resumes(exit) && resumed + 1 < MAX_EXITS => {
                let _ = respond(&mut ia, case.host_seed, resumed, exit);
                let _ = respond(&mut ib, case.host_seed, resumed, exit);
                resumed += 1;
            }
            _ => return "(stepping block by block, the engines agree: the divergence is in running without stepping)".to_owned(),
        }
    }
    "(no divergence within a million blocks)".to_owned()
}

/// The disassembly of the block containing `pc`.
pub fn block_listing(program: &Program, pc: u32) -> String {
    let Some(i) = program.index_of(pc) else {
        return format!("    (pc {pc} is not a position of the program)\n");
    };
    let block = program.blocks()[program.block_of(i) as usize];
    let view = program.view();
    let mut out = String::new();
    for &p in &program.pcs()[block.first as usize..block.end as usize] {
        let d = view.decode(p);
        let text = d.opcode.map_or_else(
            || "(invalid)".to_owned(),
            |op| format_instruction(op, &d.args),
        );
        let _ = writeln!(out, "    {p:>6}: {text}");
    }
    out
}
