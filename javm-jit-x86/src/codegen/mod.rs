//! Single-pass code generation from a [`Program`]'s decoded instructions.
//!
//! Layout of the emitted code:
//! 1. the entry trampoline (`entry(guest_base, target)`) and the shared exit path;
//! 2. every block in program order: its label, the gas check, then each instruction
//!    (a block's successor follows it directly, so fallthrough costs nothing);
//! 3. the cold code: the fused runs' tails, the checked copies, the stubs (out of
//!    gas per block, panic and halt per instruction) and the exit tails.
//!
//! A program of more than [`link::Split::PART`] instructions is compiled in parts,
//! each laid out as 2 and 3 (the first with 1 before it), possibly on several
//! threads, and linked (`link.rs`).
//!
//! Everything the code generator needs comes from the `Program` (instructions,
//! resolved targets, blocks) and the block prices the schedule gives; nothing is
//! decoded or priced here. Generation is total: every label is bound, every dispatch
//! entry is a block or a panic stub, and an internal inconsistency is an `Err` that
//! rejects the program.

#![allow(
    clippy::useless_conversion,
    reason = "dynasm! converts dynamic register operands with `.into()`"
)]

pub(crate) mod buf;
mod enc;
mod fuse;
mod labels;
pub(crate) mod link;
mod lower;
mod narrow;
pub(crate) mod regs;
mod stores;

use buf::CodeBuf;
use dynasmrt::{DynasmApi, dynasm};
use javm_exec::Program;
use javm_exec::engine::{Exit, Resume};
use javm_exec::gas::{BlockCost, GasProfile};
use javm_exec::program::{HALT_ADDRESS, MAX_JUMP_TABLE_LEN};
use labels::{Cc, Label, Labels};

use crate::ctx::{ExitKind, off};
use crate::signal::SideEntry;
use crate::window::{SHADOW_DISP, SHADOW_IN_PAGE};
use enc::GasOp;
use regs::{GUEST, RDI, RDX};

/// Emitted code and its tables.
pub(crate) struct Compiled {
    /// Machine code, position independent: the first part, then `more_code`'s,
    /// laid out one after another (`link.rs`).
    pub(crate) code: Vec<u8>,
    /// The parts after the first (most programs have none).
    pub(crate) more_code: Vec<Vec<u8>>,
    /// Each block's price as (cost, need), saturated to `i64`.
    pub(crate) prices: Vec<(i64, i64)>,
    /// Offset of each block's entry (its gas check).
    pub(crate) block_offsets: Vec<u32>,
    /// Offset of each instruction's first byte (after the gas check for a block's
    /// first instruction): where a mid-block resume enters.
    pub(crate) ins_offsets: Vec<u32>,
    /// Offset just past each instruction's inline code (its cold stubs lie elsewhere).
    pub(crate) ins_ends: Vec<u32>,
    /// Where execution resuming at each instruction enters: its inline code, or its
    /// place in its block's checked copy (`stores.rs`).
    pub(crate) resume_offsets: Vec<u32>,
    /// Guest memory accesses, sorted by native offset.
    pub(crate) side: Vec<SideEntry>,
    /// Offset of the entry trampoline.
    pub(crate) entry: u32,
    /// Offset of the shared exit path, whose first instruction stores the gas
    /// counter (R15 while compiled code runs) into the context.
    pub(crate) exit: u32,
    /// Offset just past the trampoline's load of the gas counter into R15.
    pub(crate) gas_live: u32,
    /// Offset of the first block: the code from `exit` up to here, past the
    /// counter's store, and the trampoline up to `gas_live` keep the counter in
    /// the context rather than in R15.
    pub(crate) blocks_start: u32,
    /// The host-call sites (`ecalli`, `ecall`), in the order of their indices (the
    /// index their exit reports).
    pub(crate) host_sites: Vec<HostSite>,
    /// Offset of the shared panic of dynamic jumps, where the jump table's entry 0
    /// and its entries for invalid targets lead (`None`: no dynamic jumps).
    pub(crate) djump_panic: Option<u32>,
}

/// A host call (`ecalli` or `ecall`) in the code: its exit reports the site's index,
/// so the run loop finds what it reports with one lookup.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostSite {
    /// Where execution resumes: after the block the call ends
    /// ([`Resume::after_block`], decided here so that the exit needs no lookup).
    pub(crate) resume: Resume,
    /// The call's PC.
    pub(crate) pc: u32,
    /// The exit: [`Exit::HostCall`] with `ecalli`'s immediate (mod 2^32), or
    /// [`Exit::Ecall`]. Kept whole, so that the run loop copies its 8 bytes in
    /// one store rather than storing its two halves apart, which a caller that
    /// reads the exit as one 8-byte value could not have forwarded from the store
    /// buffer (docs/BENCHMARKS.md, "Host calls: the exit in one store").
    pub(crate) exit: Exit,
    /// The native offset of the block `resume` enters ([`Resume::Enter`]), which
    /// the run loop's direct entry takes; [`NO_ENTRY`] for any other resume
    /// point. Filled in once the parts are linked (`module.rs`).
    pub(crate) entry: u32,
}

/// [`HostSite::entry`] (and an instance's direct entry) when there is none.
pub(crate) const NO_ENTRY: u32 = u32::MAX;

/// A deferred cold stub.
enum Stub {
    /// Exit at the entry of block `block`: out of gas, or a biased counter
    /// (an interrupt request or stepping; see [`Cg::block_entry`]).
    OutOfGas { label: Label, block: u32 },
    /// Exit with `kind` at instruction `idx`.
    Exit {
        label: Label,
        kind: ExitKind,
        idx: u32,
    },
    /// A store whose granule's shadow byte is not [`crate::window::SHADOW_FULL`]: if it is
    /// [`SHADOW_IN_PAGE`] and the access stays in its page, go `back` and store;
    /// otherwise leave with [`ExitKind::Emulate`] at `idx` for the run loop to apply
    /// the access rule.
    StoreSlow {
        label: Label,
        back: Label,
        idx: u32,
        addr: StoreAddr,
        width: u8,
    },
    /// A dynamic jump at `idx` (of the form that records nothing on its way
    /// through the table, see `lower.rs`, `djump`) whose address is not a table
    /// entry's: restore the rotated address in EDX, record `idx` in the context
    /// and go to the shared failure path ([`Cg::djump_fail`]).
    DjumpFail { label: Label, idx: u32 },
}

/// How a store computes its guest address.
#[derive(Clone, Copy)]
pub(crate) enum StoreAddr {
    /// A fixed address.
    Abs(u32),
    /// Host register plus displacement (32-bit wrapping).
    Ind(u8, i32),
}

pub(crate) struct Cg<'p> {
    pub(crate) ops: CodeBuf,
    program: &'p Program,
    /// The code generator's own labels (`labels.rs`).
    labels: Labels,
    /// The first block of the part being compiled (`link.rs`).
    first_block: u32,
    /// The labels of the part's blocks, from `first_block` on.
    block_labels: Vec<Label>,
    /// Labels that other parts bind: never bound here, resolved when the parts
    /// are linked.
    externals: Vec<(Label, link::External)>,
    /// The shared exit path.
    exit_label: Label,
    /// See [`Compiled::gas_live`] and [`Compiled::blocks_start`].
    gas_live: u32,
    blocks_start: u32,
    stubs: Vec<Stub>,
    /// [`Cg::emit_stubs`]'s exit stubs, sorted by kind.
    exits: Vec<(ExitKind, Label, u32)>,
    /// The shared tail of each exit kind, made on first use (see [`Cg::exit`]).
    tails: Vec<(ExitKind, Label)>,
    /// The index of the part's first host-call site (the sites of the parts
    /// before it come first).
    host_site_base: u32,
    /// The part's host-call sites so far (see [`HostSite`]).
    pub(crate) host_sites: Vec<HostSite>,
    /// The shared failure path of dynamic jumps and its panic, made on first use
    /// (see [`Cg::djump_fail`]).
    djump: Option<(Label, Label)>,
    /// Whether every entry of the program's jump table leads to a block, found
    /// when a dynamic jump is first lowered (see `lower.rs`, `djump`).
    table_all_blocks: Option<bool>,
    /// The panic stub of the current instruction, if one was made.
    panic_label: Option<(u32, Label)>,
    pub(crate) side: Vec<SideEntry>,
    /// Whether the program runs under the `gp` profile (sbrk allowed).
    pub(crate) gp: bool,
    /// How each store of the block being emitted is checked, from instruction
    /// `checks_first` on (empty: every store checks itself).
    store_checks: Vec<stores::StoreCheck>,
    checks_first: u32,
    /// The store planner's buffers, reused from block to block.
    plan: stores::Plan,
    /// Instructions in the longest block (the planner's buffer size).
    longest_block: usize,
}

/// The later instructions of a fused run (`fuse.rs`), `first..end` of block
/// `block`, still to be lowered one by one; the copy jumps to `back`, just after
/// the run's fused code.
struct FusedTail {
    block: u32,
    first: u32,
    end: u32,
    back: Label,
}

/// A cluster's checked copy still to be emitted (`stores.rs`): instructions
/// `first..end` of block `block`, entered at `entries` by failed group checks; it
/// continues at `back`, bound at the inline code of instruction `end` (`None`: the
/// cluster ends the block, and the copy continues at the next block).
struct CheckedCopy {
    block: u32,
    first: u32,
    end: u32,
    entries: Vec<(u32, Label)>,
    back: Option<Label>,
}

/// The buffers a compilation uses only while it runs, kept per thread and reused
/// (emptied) by the thread's next compilation, so compiling a small program
/// allocates little besides the module's own tables. Their capacity is what the
/// largest compilation on the thread needed, bounded by [`MAX_SCRATCH_ITEMS`].
#[derive(Default)]
struct Scratch {
    labels: Labels,
    block_labels: Vec<Label>,
    stubs: Vec<Stub>,
    exits: Vec<(ExitKind, Label, u32)>,
    store_checks: Vec<stores::StoreCheck>,
    plan: stores::Plan,
    copies: Vec<CheckedCopy>,
    fused: Vec<FusedTail>,
}

/// Labels above which a compilation's scratch is freed rather than kept (a label
/// takes 4 bytes; the other buffers hold fewer items than the labels).
const MAX_SCRATCH_ITEMS: usize = 1 << 16;

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

impl Scratch {
    /// This thread's scratch (empty buffers if another compilation on the thread
    /// holds it, or the thread is ending).
    fn take() -> Scratch {
        SCRATCH.try_with(std::cell::Cell::take).unwrap_or_default()
    }

    /// Keep `self` for the thread's next compilation, unless it grew too large.
    fn keep(self) {
        if self.labels.capacity() <= MAX_SCRATCH_ITEMS {
            let _ = SCRATCH.try_with(|s| s.set(self));
        }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Compile one part of `program` (`link.rs`): the blocks `part.blocks`, with the
/// trampoline and the exit path first if `part.head`. Block `b` is priced with
/// `price(b)`. Offsets in the result are relative to the part's own code.
pub(crate) fn compile_part(
    program: &Program,
    part: &link::Part,
    price: &(dyn Fn(u32) -> BlockCost + Sync),
    gp: bool,
) -> Result<link::PartCode, String> {
    let all_blocks = program.blocks();
    let instructions = program.instructions();
    let blocks = all_blocks
        .get(part.blocks.start as usize..part.blocks.end as usize)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("no blocks {:?}", part.blocks))?;
    let first_ins = blocks[0].first;
    let end_ins = blocks[blocks.len() - 1].end;
    if first_ins > end_ins || end_ins as usize > instructions.len() {
        return Err(format!("blocks {:?} have no instructions", part.blocks));
    }
    let n = (end_ins - first_ins) as usize;
    // Reserve enough that the buffer rarely grows (a growth copies everything so far):
    // division-heavy code reaches about 22 bytes per instruction, and one-byte blocks
    // about 30. Untouched capacity costs address space only. dynasm's own labels
    // serve only local jumps (`labels.rs`).
    let ops = CodeBuf::new(n * 32 + 4096);
    let scratch = Scratch::take();
    // Labels: one per block and about one per instruction (stubs, store slow paths);
    // forward jumps: about one per instruction.
    let mut labels = scratch.labels.reuse(blocks.len() + n + 64, n + 64);
    let mut block_labels = scratch.block_labels;
    block_labels.clear();
    block_labels.extend((0..blocks.len()).map(|_| labels.make()));
    let exit_label = labels.make();
    // The first part binds the exit path in its trampoline (`Cg::trampoline`);
    // another part jumps to it there.
    let mut externals = Vec::new();
    if !part.head {
        externals.push((exit_label, link::External::Exit));
    }
    let mut stubs = scratch.stubs;
    stubs.clear();
    stubs.reserve(n / 4 + 16);
    let mut copies = scratch.copies;
    copies.clear();
    let mut fused = scratch.fused;
    fused.clear();
    let mut cg = Cg {
        exit_label,
        gas_live: 0,
        blocks_start: 0,
        ops,
        labels,
        program,
        first_block: part.blocks.start,
        block_labels,
        externals,
        stubs,
        exits: scratch.exits,
        tails: Vec::new(),
        djump: None,
        table_all_blocks: None,
        host_site_base: part.host_site_base,
        // Sized exactly: the module boxes this table as it is.
        host_sites: Vec::with_capacity(part.host_sites as usize),
        panic_label: None,
        // Room for an access per two instructions; it grows past that (the module
        // keeps this vector as it is, spare room included).
        side: Vec::with_capacity(n / 2 + 16),
        gp,
        store_checks: scratch.store_checks,
        checks_first: 0,
        plan: scratch.plan,
        longest_block: 0,
    };
    // The store planner's per-block buffers are sized once, for the longest block,
    // when a block first has stores to group.
    cg.longest_block = blocks
        .iter()
        .map(|b| b.end.saturating_sub(b.first) as usize)
        .max()
        .unwrap_or(0);

    let head = if part.head {
        let entry = cg.ops.offset().0 as u32;
        cg.trampoline();
        Some(link::Head {
            entry,
            exit: cg.labels.offset(cg.exit_label)?,
            gas_live: cg.gas_live,
            blocks_start: cg.blocks_start,
        })
    } else {
        None
    };

    // Indexed by instruction - `first_ins`.
    let mut ins_offsets = vec![0u32; n];
    let mut ins_ends = vec![0u32; n];
    let mut prices = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let b = part.blocks.start + i as u32;
        let cost = price(b);
        prices.push((to_i64(cost.cost), to_i64(cost.need())));
        let label = cg.block_labels[i];
        cg.bind(label);
        if cg.starts_block(b) {
            cg.block_entry(b, to_i64(cost.cost), to_i64(cost.need()))?;
        } else if cost.need() != 0 {
            return Err(format!(
                "block {b} continues its predecessor but has a price"
            ));
        }
        if block.end <= block.first || block.end as usize > instructions.len() {
            return Err(format!("block {b} has no instructions"));
        }
        cg.plan_store_checks(
            &instructions[block.first as usize..block.end as usize],
            block.first,
        );
        let block_copies = copies.len();
        let clusters = std::mem::take(&mut cg.plan.clusters);
        for &(first, end) in &clusters {
            let (first, end) = (block.first + first as u32, block.first + end as u32);
            let entries: Vec<(u32, Label)> = (first..end)
                .filter_map(|i| match cg.store_check(i) {
                    stores::StoreCheck::Head { retry, .. } => Some((i, retry)),
                    _ => None,
                })
                .collect();
            let back = (end < block.end).then(|| cg.label());
            copies.push(CheckedCopy {
                block: b,
                first,
                end,
                entries,
                back,
            });
        }
        cg.plan.clusters = clusters;
        let mut idx = block.first;
        while idx < block.end {
            // Where a cluster's copy comes back to the inline code.
            for c in &copies[block_copies..] {
                if let Some(back) = c.back.filter(|_| c.end == idx) {
                    cg.bind(back);
                }
            }
            let local = (idx - first_ins) as usize;
            let start = cg.ops.offset().0 as u32;
            ins_offsets[local] = start;
            cg.panic_label = None;
            let rest = &instructions[idx as usize..block.end as usize];
            if let Some(f) = fuse::find(rest) {
                cg.emit_fused(f, idx);
                let back = cg.label();
                cg.bind(back);
                let end = cg.ops.offset().0 as u32;
                let len = f.instructions();
                ins_ends[local] = end;
                for inner in local + 1..local + len {
                    ins_offsets[inner] = end;
                    ins_ends[inner] = end;
                }
                fused.push(FusedTail {
                    block: b,
                    first: idx + 1,
                    end: idx + len as u32,
                    back,
                });
                idx += len as u32;
                continue;
            }
            let ins = instructions[idx as usize];
            cg.lower(ins, idx, b)?;
            ins_ends[local] = cg.ops.offset().0 as u32;
            idx += 1;
        }
    }
    // The last block may continue in the next, which another part holds: the
    // cold code below must not come between them.
    if part.blocks.end < all_blocks.len() as u32 {
        let next = cg.block_label(part.blocks.end)?;
        cg.jmp(next);
    }
    cg.store_checks.clear();
    let mut resume_offsets = ins_offsets.clone();
    // The later instructions of each fused run, one by one, for execution that
    // starts inside the run (`fuse.rs`) — unless the run lies in a cluster's checked
    // copy, which then serves those resumes (it is emitted below and lowers every
    // instruction on its own). A run has no stores, so it lies wholly inside or
    // wholly outside a cluster, which starts and ends with stores.
    for tail in fused.drain(..) {
        if copies
            .iter()
            .any(|c| c.block == tail.block && c.first <= tail.first && tail.first < c.end)
        {
            continue;
        }
        for idx in tail.first..tail.end {
            resume_offsets[(idx - first_ins) as usize] = cg.ops.offset().0 as u32;
            cg.panic_label = None;
            cg.lower(instructions[idx as usize], idx, tail.block)?;
        }
        cg.jmp(tail.back);
    }
    for copy in copies.drain(..) {
        let mut entries = copy.entries.iter().peekable();
        for idx in copy.first..copy.end {
            if let Some(&(_, label)) = entries.next_if(|e| e.0 == idx) {
                cg.bind(label);
            }
            resume_offsets[(idx - first_ins) as usize] = cg.ops.offset().0 as u32;
            cg.panic_label = None;
            cg.lower(instructions[idx as usize], idx, copy.block)?;
        }
        match copy.back {
            Some(back) => cg.jmp(back),
            None => {
                if let Ok(next) = cg.block_label(copy.block + 1) {
                    cg.jmp(next);
                }
            }
        }
    }
    cg.emit_stubs();
    let djump_panic = cg.emit_djump_fail()?;

    // Sized exactly (a collect into a `Result` cannot know its length and grows by
    // reallocation), so the module's boxed table takes it without a reallocation.
    let mut block_offsets = Vec::with_capacity(cg.block_labels.len());
    for &l in &cg.block_labels {
        block_offsets.push(cg.labels.offset(l)?);
    }
    let side = std::mem::take(&mut cg.side);
    let host_sites = std::mem::take(&mut cg.host_sites);
    if !side.windows(2).all(|w| w[0].native < w[1].native) {
        return Err("memory access table is not sorted".into());
    }
    let mut code = cg.ops.into_bytes();
    // Every jump displacement fits 32 bits within 2 GiB of code.
    if i32::try_from(code.len()).is_err() {
        return Err("native code exceeds 2 GiB".into());
    }
    let unbound = cg.labels.patch(&mut code)?;
    let externals = link::resolve_unbound(unbound, &cg.externals)?;
    Scratch {
        labels: cg.labels,
        block_labels: cg.block_labels,
        stubs: cg.stubs,
        exits: cg.exits,
        store_checks: cg.store_checks,
        plan: cg.plan,
        copies,
        fused,
    }
    .keep();
    Ok(link::PartCode {
        code,
        externals,
        block_offsets,
        prices,
        ins_offsets,
        ins_ends,
        resume_offsets,
        side,
        host_sites,
        djump_panic,
        head,
    })
}

impl Cg<'_> {
    /// Plan the store checks of the block of `instructions` starting at instruction
    /// `first` (see `stores.rs`); its clusters are left in `self.plan.clusters`, as
    /// indices in the block.
    fn plan_store_checks(&mut self, instructions: &[javm_exec::Instruction], first: u32) {
        self.checks_first = first;
        self.store_checks.clear();
        self.plan.clusters.clear();
        if !stores::may_group(instructions) {
            return;
        }
        // No-ops once the buffers have the room (they are cleared, not freed).
        self.store_checks.reserve(self.longest_block);
        self.plan.reserve(self.longest_block);
        stores::plan(instructions, &mut self.plan);
        for &p in &self.plan.parts {
            self.store_checks.push(match p {
                stores::Planned::Own => stores::StoreCheck::Own,
                stores::Planned::Member => stores::StoreCheck::Member,
                stores::Planned::Head { lo, last } => stores::StoreCheck::Head {
                    lo,
                    last,
                    retry: self.labels.make(),
                },
            });
        }
    }

    /// `entry(guest_base: rdi, target: rdx) -> rdx`, called from the run loop's
    /// inline `asm!` (`instance.rs`, `enter`): save RBX and RBP, load the guest
    /// registers, jump to `target` (in RDX, the one register that holds no guest
    /// register and is free on the way out too, so neither end copies it). The
    /// shared `exit` path does the reverse and returns the exit's kind and index,
    /// packed by [`crate::ctx::pack_exit`] (a host call jumps to it with the
    /// packed exit as one immediate, see [`Cg::host_call`]). Every other register
    /// is declared clobbered at the call site, so the compiler saves only those
    /// it still needs (the run loop's own prologue already saves R12–R15); RBX
    /// and RBP cannot be named there, so they are saved here. Compiled code never moves
    /// RSP (no push, pop or call: the lowerings that borrow a register save it in
    /// the context) and needs no particular alignment (the fault handlers run on
    /// their own stack), and the fault handler sends its exits to the exit path
    /// with the RSP of the fault, so the exit path finds the host's stack where
    /// the trampoline left it.
    ///
    /// The blocks start at the next 64-byte boundary (the gap is `int3`), so
    /// where a program's loops land does not depend on the size of this code:
    /// the compiled code's speed depends on its placement (docs/BENCHMARKS.md,
    /// "The entry trampoline").
    fn trampoline(&mut self) {
        dynasm!(self.ops ; .arch x64
            ; push rbx ; push rbp
            ; mov r15, [rdi + off::GAS]
        );
        self.gas_live = self.ops.offset().0 as u32;
        // RDI (the base) holds a guest register too: it is loaded last.
        for (i, &r) in GUEST.iter().enumerate().filter(|&(_, &r)| r != RDI) {
            dynasm!(self.ops ; .arch x64 ; mov Rq(r), [rdi + off::reg(i)]);
        }
        let rdi_slot = GUEST.iter().position(|&r| r == RDI).unwrap_or(0);
        dynasm!(self.ops ; .arch x64 ; mov rdi, [rdi + off::reg(rdi_slot)] ; jmp rdx);
        // Reached with the exit in RDX, as `ctx::pack_exit` packs it, and returns
        // it there. Registers, not the context: a load of the two halves just
        // after two separate stores of them cannot be forwarded from the store
        // buffer, which cost a host call about a tenth of its round trip.
        self.bind(self.exit_label);
        dynasm!(self.ops ; .arch x64 ; gs mov [off::GAS], r15);
        for (i, &r) in GUEST.iter().enumerate() {
            dynasm!(self.ops ; .arch x64 ; gs mov [off::reg(i)], Rq(r));
        }
        dynasm!(self.ops ; .arch x64
            ; pop rbp ; pop rbx
            ; ret
        );
        let gap = self.ops.offset().0.next_multiple_of(64) - self.ops.offset().0;
        self.ops.extend(&[0xCC; 64][..gap]); // int3
        self.blocks_start = self.ops.offset().0 as u32;
    }

    /// Charge block `b` on entry: require `need`, deduct `cost`, or leave through
    /// an [`ExitKind::OutOfGas`] stub. Where [`subtracts_first`] holds the check
    /// deducts before it compares, so the stub is reached with the cost deducted
    /// (the run loop adds it back); otherwise with nothing deducted. The same exit
    /// serves interrupt requests and stepping, which bias the gas counter so that
    /// this check fails (`signal.rs`, "Interrupts"): compiled code polls nothing.
    fn block_entry(&mut self, b: u32, cost: i64, need: i64) -> Result<(), String> {
        if need < 1 || cost < 0 || cost > need {
            return Err(format!(
                "block {b} has an invalid price (cost {cost}, need {need})"
            ));
        }
        let label = self.label();
        match (i32::try_from(cost), i32::try_from(need)) {
            (Ok(c), Ok(_)) if subtracts_first(cost, need) => {
                // `jl` after `sub` compares the true (unwrapped) difference.
                self.gas_op(GasOp::Sub, c);
                self.jcc(Cc::L, label);
            }
            (Ok(c), Ok(nd)) => {
                self.gas_op(GasOp::Cmp, nd);
                self.jcc(Cc::L, label);
                self.gas_op(GasOp::Sub, c);
            }
            _ => {
                dynasm!(self.ops ; .arch x64
                    ; mov rdx, QWORD need ; cmp r15, rdx
                );
                self.jcc(Cc::L, label);
                dynasm!(self.ops ; .arch x64
                    ; mov rdx, QWORD cost ; sub r15, rdx
                );
            }
        }
        self.stubs.push(Stub::OutOfGas { label, block: b });
        Ok(())
    }

    /// Exit inline with `kind` at `idx` (an instruction, or a block for the kinds
    /// that report one): `mov edx, idx` and a jump to the kind's shared tail.
    pub(crate) fn exit(&mut self, kind: ExitKind, idx: u32) {
        let tail = self.tail(kind);
        dynasm!(self.ops ; .arch x64 ; mov edx, idx as i32);
        self.jmp(tail);
    }

    /// The shared tail of exit `kind`, which stores the kind and EDX as the exit's
    /// index and leaves (emitted with the stubs).
    fn tail(&mut self, kind: ExitKind) -> Label {
        if let Some(&(_, l)) = self.tails.iter().find(|(k, _)| *k == kind) {
            return l;
        }
        let l = self.label();
        self.tails.push((kind, l));
        l
    }

    /// Leave for the host call at instruction `idx`, which ends block `block`, with
    /// [`ExitKind::HostCall`] and the index of its [`HostSite`].
    pub(crate) fn host_call(
        &mut self,
        idx: u32,
        block: u32,
        id: Option<u32>,
    ) -> Result<(), String> {
        let site = u32::try_from(self.host_sites.len())
            .ok()
            .and_then(|s| s.checked_add(self.host_site_base))
            .ok_or_else(|| "too many host calls".to_string())?;
        let pc = self
            .program
            .pcs()
            .get(idx as usize)
            .copied()
            .ok_or_else(|| format!("no instruction {idx}"))?;
        let profile = if self.gp {
            GasProfile::Gp
        } else {
            GasProfile::Jar1
        };
        let resume = Resume::after_block(self.program, profile, block);
        let exit = id.map_or(Exit::Ecall, Exit::HostCall);
        self.host_sites.push(HostSite {
            resume,
            pc,
            exit,
            entry: NO_ENTRY,
        });
        // The hottest exit: the packed exit in one immediate, straight to the exit
        // path (no shared tail to pack it).
        let packed = crate::ctx::pack_exit(ExitKind::HostCall, site);
        match u32::try_from(packed) {
            // Zero-extended to RDX (the first site's).
            Ok(low) => dynasm!(self.ops ; .arch x64 ; mov edx, low as i32),
            Err(_) => dynasm!(self.ops ; .arch x64 ; mov rdx, QWORD packed as i64),
        }
        self.jmp(self.exit_label);
        Ok(())
    }

    /// The label of block `b`'s entry: bound in this part, or one that the part
    /// holding `b` binds (`link.rs`).
    pub(crate) fn block_label(&mut self, b: u32) -> Result<Label, String> {
        if let Some(&l) = b
            .checked_sub(self.first_block)
            .and_then(|i| self.block_labels.get(i as usize))
        {
            return Ok(l);
        }
        if b as usize >= self.program.blocks().len() {
            return Err(format!("no block {b}"));
        }
        // A label per reference: `link::resolve_unbound` finds it by its number.
        let l = self.label();
        self.externals.push((l, link::External::Block(b)));
        Ok(l)
    }

    /// The label of a cold stub that panics at instruction `idx`.
    pub(crate) fn panic_stub(&mut self, idx: u32) -> Label {
        if let Some((i, l)) = self.panic_label
            && i == idx
        {
            return l;
        }
        let label = self.label();
        self.stubs.push(Stub::Exit {
            label,
            kind: ExitKind::Panic,
            idx,
        });
        self.panic_label = Some((idx, label));
        label
    }

    /// Where a static branch at `idx` to `target` goes: the block, or a panic stub.
    pub(crate) fn target(&mut self, target: javm_exec::Target, idx: u32) -> Result<Label, String> {
        match target.block() {
            Some(b) if self.starts_block(b) => self.block_label(b),
            _ => Ok(self.panic_stub(idx)),
        }
    }

    /// Whether block `b` starts a block under the profile ([`Program::starts_block`]):
    /// only those are charged on entry and are branch targets.
    pub(crate) fn starts_block(&self, b: u32) -> bool {
        let profile = if self.gp {
            GasProfile::Gp
        } else {
            GasProfile::Jar1
        };
        self.program.starts_block(b, profile)
    }

    /// The label of the cold path of a store at instruction `idx` (see
    /// [`Stub::StoreSlow`]), which returns to `back` when the store may proceed.
    pub(crate) fn store_slow(
        &mut self,
        idx: u32,
        addr: StoreAddr,
        width: u8,
        back: Label,
    ) -> Label {
        let label = self.label();
        self.stubs.push(Stub::StoreSlow {
            label,
            back,
            idx,
            addr,
            width,
        });
        label
    }

    /// Emit a [`Stub::StoreSlow`], which leaves with [`ExitKind::Emulate`] at `idx`
    /// unless the store may proceed. On entry from the check of a `StoreAddr::Ind`
    /// store, RDX still holds the granule index.
    fn emit_store_slow(
        &mut self,
        label: Label,
        back: Label,
        (idx, addr, width): (u32, StoreAddr, u8),
    ) {
        let w = i32::from(width);
        let exit = self.label();
        self.bind(label);
        match addr {
            StoreAddr::Abs(a) if (a & 7) as i32 + w > 8 => {}
            StoreAddr::Abs(a) => {
                let granule = i64::from(a >> 3);
                let disp = i32::try_from(granule + i64::from(SHADOW_DISP)).unwrap_or(i32::MIN);
                dynasm!(self.ops ; .arch x64 ; gs cmp BYTE [disp], SHADOW_IN_PAGE as i8);
                self.jcc_short(Cc::Ne, exit);
                self.jmp(back);
            }
            StoreAddr::Ind(b, x) => {
                dynasm!(self.ops ; .arch x64
                    ; gs cmp BYTE [rdx + SHADOW_DISP], SHADOW_IN_PAGE as i8
                );
                self.jcc_short(Cc::Ne, exit);
                if w > 1 {
                    self.lea(false, RDX, b, x);
                    dynasm!(self.ops ; .arch x64 ; and edx, 7);
                    self.cmp_imm(RDX, 8 - w);
                    self.jcc_short(Cc::A, exit);
                }
                self.jmp(back);
            }
        }
        self.bind(exit);
        self.exit(ExitKind::Emulate, idx);
    }

    /// Number of blocks (in the program).
    pub(crate) fn block_count(&self) -> usize {
        self.program.blocks().len()
    }

    /// Number of jump-table entries.
    pub(crate) fn jump_table_len(&self) -> usize {
        self.program.jump_targets().len()
    }

    /// Whether every entry of the program's jump table leads to a block
    /// ([`table_block`]), computed once per part.
    pub(crate) fn table_all_blocks(&mut self) -> bool {
        if let Some(all) = self.table_all_blocks {
            return all;
        }
        let profile = if self.gp {
            GasProfile::Gp
        } else {
            GasProfile::Jar1
        };
        let program = self.program;
        let all = program
            .jump_targets()
            .iter()
            .all(|&t| table_block(program, profile, t).is_some());
        self.table_all_blocks = Some(all);
        all
    }

    /// Cold stubs. Each exit stub is `mov edx, index` and a short jump (7 bytes) to
    /// a relay after every [`STUBS_PER_RELAY`] stubs of its kind, which jumps to the
    /// kind's shared tail; the tail stores the kind and the index and leaves.
    fn emit_stubs(&mut self) {
        let mut exits = std::mem::take(&mut self.exits);
        exits.clear();
        let mut stubs = std::mem::take(&mut self.stubs);
        for stub in stubs.drain(..) {
            match stub {
                Stub::OutOfGas { label, block } => exits.push((ExitKind::OutOfGas, label, block)),
                Stub::Exit { label, kind, idx } => exits.push((kind, label, idx)),
                Stub::StoreSlow {
                    label,
                    back,
                    idx,
                    addr,
                    width,
                } => self.emit_store_slow(label, back, (idx, addr, width)),
                Stub::DjumpFail { label, idx } => {
                    let fail = self.djump_fail();
                    self.bind(label);
                    dynasm!(self.ops ; .arch x64
                        ; add edx, 1
                        ; gs mov DWORD [-28], idx as i32
                    );
                    self.jmp(fail);
                }
            }
        }
        // Stable: each kind's stubs stay in program order.
        exits.sort_by_key(|e| e.0 as u32);
        for group in exits.chunk_by(|a, b| a.0 == b.0) {
            let tail = self.tail(group[0].0);
            let chunks = group.chunks(STUBS_PER_RELAY);
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.enumerate() {
                let relay = if i == last { tail } else { self.label() };
                for &(_, label, idx) in chunk {
                    self.bind(label);
                    dynasm!(self.ops ; .arch x64 ; mov edx, idx as i32);
                    self.jmp_short(relay);
                }
                if i != last {
                    self.bind(relay);
                    self.jmp(tail);
                } else {
                    self.emit_tail(group[0].0);
                }
            }
        }
        // Tails of kinds with inline exits only.
        for i in 0..self.tails.len() {
            let kind = self.tails[i].0;
            if !exits.iter().any(|e| e.0 == kind) {
                self.emit_tail(kind);
            }
        }
        self.stubs = stubs;
        self.exits = exits;
    }

    /// The shared cold path of dynamic jumps (`lower.rs`, `djump`), entered with
    /// the instruction's index in the context and the rotated address in EDX.
    pub(crate) fn djump_fail(&mut self) -> Label {
        if let Some((fail, _)) = self.djump {
            return fail;
        }
        let labels = (self.label(), self.label());
        self.djump = Some(labels);
        labels.0
    }

    /// Emit [`Cg::djump_fail`]'s code if it was used: the halt address (rotated
    /// like every address) halts, any other address panics. Returns the offset of
    /// the panic, the target of the jump table's invalid entries.
    fn emit_djump_fail(&mut self) -> Result<Option<u32>, String> {
        let Some((fail, panic)) = self.djump else {
            return Ok(None);
        };
        let exit = self.exit_label;
        let halt = HALT_ADDRESS.rotate_right(1) as i32;
        // The index the dynamic jump left at EXIT_IDX (a literal displacement:
        // dynasm encodes it in 8 bits).
        const _: () = assert!(off::EXIT_IDX == -28);
        self.bind(fail);
        dynasm!(self.ops ; .arch x64 ; cmp edx, halt);
        self.jcc_short(Cc::Ne, panic);
        dynasm!(self.ops ; .arch x64 ; gs mov edx, [-28]);
        self.pack_exit(ExitKind::Halt);
        self.jmp(exit);
        let at = self.ops.offset().0;
        self.bind(panic);
        dynasm!(self.ops ; .arch x64 ; gs mov edx, [-28]);
        self.pack_exit(ExitKind::Panic);
        self.jmp(exit);
        u32::try_from(at)
            .map(Some)
            .map_err(|_| "native code exceeds 4 GiB".to_string())
    }

    /// The shared tail of `kind` (see [`Cg::tail`]).
    fn emit_tail(&mut self, kind: ExitKind) {
        let (label, exit) = (self.tail(kind), self.exit_label);
        self.bind(label);
        self.pack_exit(kind);
        self.jmp(exit);
    }

    /// Turn the exit index in EDX into the exit path's RDX: [`crate::ctx::pack_exit`]
    /// of `kind` and that index.
    fn pack_exit(&mut self, kind: ExitKind) {
        const _: () = assert!(
            crate::ctx::pack_exit(ExitKind::Inconsistent, 1)
                == (1 << 32) | ExitKind::Inconsistent as u64
        );
        let kind = kind as u8 as i8;
        dynasm!(self.ops ; .arch x64 ; shl rdx, 32 ; or rdx, BYTE kind);
    }
}

// A valid dynamic-jump table index (at most the table's length) never equals the
// rotated halt address, which `djump_fail` tells apart from the rest.
const _: () = assert!((MAX_JUMP_TABLE_LEN as u32) < HALT_ADDRESS.rotate_right(1));

/// The block a dynamic jump to jump-table entry `t` enters, or `None` if the
/// jump panics there (a target that does not start a block under `profile`):
/// the rule both the lowering of dynamic jumps and the module's table follow.
pub(crate) fn table_block(
    program: &Program,
    profile: GasProfile,
    t: javm_exec::Target,
) -> Option<u32> {
    t.block().filter(|&b| program.starts_block(b, profile))
}

/// Exit stubs per relay jump: a stub's short jump must reach past the rest of its
/// group (7 bytes each) to the relay.
const STUBS_PER_RELAY: usize = 16;

/// Whether a block's gas check deducts `cost` before it compares (a `sub` and a
/// `jl`: when the cost is the whole need and fits an immediate). A failed check of
/// that form leaves the cost deducted, and the run loop adds it back; the other
/// forms compare first.
pub(crate) fn subtracts_first(cost: i64, need: i64) -> bool {
    cost == need && i32::try_from(cost).is_ok()
}
