//! Single-pass code generation from a predecoded [`Program`].
//!
//! Layout of the emitted code:
//! 1. the entry trampoline (`entry(guest_base, target)`) and the shared exit path;
//! 2. every block in program order: its label, the gas check, then each instruction
//!    (a block's successor follows it directly, so fallthrough costs nothing);
//! 3. the cold stubs: out of gas per block, panic and halt per instruction.
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

mod enc;
mod fuse;
mod lower;
pub(crate) mod regs;
mod stores;

use dynasmrt::x64::X64Relocation;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler, dynasm};
use javm_exec::Program;
use javm_exec::engine::Resume;
use javm_exec::gas::{BlockCost, GasProfile};
use javm_exec::program::{HALT_ADDRESS, MAX_JUMP_TABLE_LEN};

use crate::ctx::{ExitKind, off};
use crate::signal::SideEntry;
use crate::window::{SHADOW_DISP, SHADOW_IN_PAGE};
use enc::GasOp;
use regs::{GUEST, RDX};

/// Emitted code and its tables.
pub(crate) struct Compiled {
    /// Machine code, position independent.
    pub(crate) code: Vec<u8>,
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
    /// Offset of the shared exit path.
    pub(crate) exit: u32,
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
    /// `ecalli`'s immediate (mod 2^32); `None` for `ecall`.
    pub(crate) id: Option<u32>,
}

/// A deferred cold stub.
enum Stub {
    /// Exit at the entry of block `block`: out of gas, or an interrupt request
    /// (see [`Cg::block_entry`]).
    OutOfGas { label: DynamicLabel, block: u32 },
    /// Exit with `kind` at instruction `idx`.
    Exit {
        label: DynamicLabel,
        kind: ExitKind,
        idx: u32,
    },
    /// A store whose granule's shadow byte is not [`crate::window::SHADOW_FULL`]: if it is
    /// [`SHADOW_IN_PAGE`] and the access stays in its page, go `back` and store;
    /// otherwise leave with [`ExitKind::Emulate`] at `idx` for the run loop to apply
    /// the access rule.
    StoreSlow {
        label: DynamicLabel,
        back: DynamicLabel,
        idx: u32,
        addr: StoreAddr,
        width: u8,
    },
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
    pub(crate) ops: VecAssembler<X64Relocation>,
    program: &'p Program,
    block_labels: Vec<DynamicLabel>,
    /// The shared exit path.
    exit_label: DynamicLabel,
    stubs: Vec<Stub>,
    /// The shared tail of each exit kind, made on first use (see [`Cg::exit`]).
    tails: Vec<(ExitKind, DynamicLabel)>,
    /// The host-call sites so far (see [`HostSite`]).
    pub(crate) host_sites: Vec<HostSite>,
    /// The shared failure path of dynamic jumps and its panic, made on first use
    /// (see [`Cg::djump_fail`]).
    djump: Option<(DynamicLabel, DynamicLabel)>,
    /// The panic stub of the current instruction, if one was made.
    panic_label: Option<(u32, DynamicLabel)>,
    pub(crate) side: Vec<SideEntry>,
    /// Whether the program runs under the `gp` profile (sbrk allowed).
    pub(crate) gp: bool,
    /// How each store of the block being emitted is checked, from instruction
    /// `checks_first` on (empty: every store checks itself).
    store_checks: Vec<stores::StoreCheck>,
    checks_first: u32,
}

/// The later instructions of a fused run (`fuse.rs`), `first..end` of block
/// `block`, still to be lowered one by one; the copy jumps to `back`, just after
/// the run's fused code.
struct FusedTail {
    block: u32,
    first: u32,
    end: u32,
    back: DynamicLabel,
}

/// A block's checked copy still to be emitted: from instruction `first` to the
/// block's end, entered at `entries` by failed group checks.
struct CheckedCopy {
    block: u32,
    first: u32,
    entries: Vec<(u32, DynamicLabel)>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Compile `program` with the given block prices.
pub(crate) fn compile(
    program: &Program,
    costs: &[BlockCost],
    gp: bool,
) -> Result<Compiled, String> {
    let blocks = program.blocks();
    if costs.len() != blocks.len() {
        return Err(format!(
            "{} block prices for {} blocks",
            costs.len(),
            blocks.len()
        ));
    }
    let n = program.instructions().len();
    // Reserve enough that the buffer rarely grows (a growth copies everything so far):
    // division-heavy code reaches about 22 bytes per instruction. Untouched capacity
    // costs address space only.
    // Labels: one per block, and per instruction about one (stubs, store slow
    // paths and their way back); relocations: about two per instruction (the gas
    // check's branch, a store's branch out and back). Growing either vector copies
    // it; capacity that is never touched costs address space only.
    let mut ops = VecAssembler::<X64Relocation>::new_with_capacity(
        0,
        n * 40 + 4096,
        0,
        4,
        2 * blocks.len() + n + 64,
        4,
        2 * (n + blocks.len()),
    );
    let block_labels: Vec<DynamicLabel> =
        (0..blocks.len()).map(|_| ops.new_dynamic_label()).collect();
    let exit_label = ops.new_dynamic_label();
    let mut cg = Cg {
        exit_label,
        ops,
        program,
        block_labels,
        stubs: Vec::with_capacity(n / 4 + 16),
        tails: Vec::new(),
        djump: None,
        host_sites: Vec::new(),
        panic_label: None,
        side: Vec::with_capacity(n / 4),
        gp,
        store_checks: Vec::new(),
        checks_first: 0,
    };
    let mut copies: Vec<CheckedCopy> = Vec::new();
    let mut tails: Vec<FusedTail> = Vec::new();

    let entry = cg.ops.offset().0 as u32;
    cg.trampoline();
    let exit = cg
        .ops
        .labels()
        .resolve_dynamic(cg.exit_label)
        .map_err(|e| format!("exit label: {e}"))?
        .0 as u32;

    let mut ins_offsets = vec![0u32; n];
    let mut ins_ends = vec![0u32; n];
    let instructions = program.instructions();
    let polls = program.interrupt_points();
    for (b, (block, cost)) in blocks.iter().zip(costs).enumerate() {
        let label = cg.block_labels[b];
        dynasm!(cg.ops ; .arch x64 ; =>label);
        if cg.starts_block(b as u32) {
            cg.block_entry(b as u32, to_i64(cost.cost), to_i64(cost.need()), polls[b])?;
        } else if cost.need() != 0 {
            return Err(format!(
                "block {b} continues its predecessor but has a price"
            ));
        }
        if block.end <= block.first || block.end as usize > n {
            return Err(format!("block {b} has no instructions"));
        }
        cg.plan_store_checks(
            &instructions[block.first as usize..block.end as usize],
            block.first,
        );
        let entries: Vec<(u32, DynamicLabel)> = cg
            .store_checks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match *c {
                stores::StoreCheck::Head { retry, .. } => Some((block.first + i as u32, retry)),
                _ => None,
            })
            .collect();
        if let Some(&(first, _)) = entries.first() {
            copies.push(CheckedCopy {
                block: b as u32,
                first,
                entries,
            });
        }
        let mut idx = block.first;
        while idx < block.end {
            let start = cg.ops.offset().0 as u32;
            ins_offsets[idx as usize] = start;
            cg.panic_label = None;
            let rest = &instructions[idx as usize..block.end as usize];
            if let Some(f) = fuse::find(rest) {
                cg.emit_fused(f);
                let back = cg.ops.new_dynamic_label();
                dynasm!(cg.ops ; .arch x64 ; =>back);
                let end = cg.ops.offset().0 as u32;
                let len = f.len() as u32;
                ins_ends[idx as usize] = end;
                for inner in idx + 1..idx + len {
                    ins_offsets[inner as usize] = end;
                    ins_ends[inner as usize] = end;
                }
                tails.push(FusedTail {
                    block: b as u32,
                    first: idx + 1,
                    end: idx + len,
                    back,
                });
                idx += len;
                continue;
            }
            let ins = instructions[idx as usize];
            cg.lower(ins, idx, b as u32)?;
            ins_ends[idx as usize] = cg.ops.offset().0 as u32;
            idx += 1;
        }
    }
    cg.store_checks.clear();
    let mut resume_offsets = ins_offsets.clone();
    // The later instructions of each fused run, one by one, for execution that
    // starts inside the run (`fuse.rs`) — unless the run lies in its block's checked
    // copy, which then serves those resumes (it is emitted below and lowers every
    // instruction on its own).
    for tail in tails {
        if copies
            .iter()
            .any(|c| c.block == tail.block && c.first <= tail.first)
        {
            continue;
        }
        for idx in tail.first..tail.end {
            resume_offsets[idx as usize] = cg.ops.offset().0 as u32;
            cg.panic_label = None;
            cg.lower(instructions[idx as usize], idx, tail.block)?;
        }
        dynasm!(cg.ops ; .arch x64 ; jmp =>tail.back);
    }
    for copy in copies {
        let block = &blocks[copy.block as usize];
        for idx in copy.first..block.end {
            if let Some(&(_, label)) = copy.entries.iter().find(|e| e.0 == idx) {
                dynasm!(cg.ops ; .arch x64 ; =>label);
            }
            resume_offsets[idx as usize] = cg.ops.offset().0 as u32;
            cg.panic_label = None;
            cg.lower(instructions[idx as usize], idx, copy.block)?;
        }
        if let Ok(next) = cg.block_label(copy.block + 1) {
            dynasm!(cg.ops ; .arch x64 ; jmp =>next);
        }
    }
    cg.emit_stubs();
    let djump_panic = cg.emit_djump_fail()?;

    cg.ops
        .commit()
        .map_err(|e| format!("unresolved label: {e}"))?;
    let mut block_offsets = Vec::with_capacity(blocks.len());
    for &l in &cg.block_labels {
        let o = cg
            .ops
            .labels()
            .resolve_dynamic(l)
            .map_err(|e| format!("unbound block label: {e}"))?;
        block_offsets.push(o.0 as u32);
    }
    let side = std::mem::take(&mut cg.side);
    let host_sites = std::mem::take(&mut cg.host_sites);
    if !side.windows(2).all(|w| w[0].native < w[1].native) {
        return Err("memory access table is not sorted".into());
    }
    let code = cg.ops.finalize().map_err(|e| format!("finalize: {e}"))?;
    if u32::try_from(code.len()).is_err() {
        return Err("native code exceeds 4 GiB".into());
    }
    Ok(Compiled {
        code,
        block_offsets,
        ins_offsets,
        ins_ends,
        resume_offsets,
        side,
        entry,
        exit,
        host_sites,
        djump_panic,
    })
}

impl Cg<'_> {
    /// Plan the store checks of the block of `instructions` starting at instruction
    /// `first` (see `stores.rs`).
    fn plan_store_checks(&mut self, instructions: &[javm_exec::Instruction], first: u32) {
        self.checks_first = first;
        self.store_checks.clear();
        if !stores::may_group(instructions) {
            return;
        }
        let planned = stores::plan(instructions);
        for p in planned {
            self.store_checks.push(match p {
                stores::Planned::Own => stores::StoreCheck::Own,
                stores::Planned::Member => stores::StoreCheck::Member,
                stores::Planned::Head { lo, hi } => stores::StoreCheck::Head {
                    lo,
                    hi,
                    retry: self.ops.new_dynamic_label(),
                },
            });
        }
    }

    /// `entry(guest_base: rdi, target: rsi)`: save the host's callee-saved registers,
    /// remember the host stack, load the guest registers, jump to `target`. The shared
    /// `exit` path does the reverse; the host-call tail comes right before it.
    fn trampoline(&mut self) {
        dynasm!(self.ops ; .arch x64
            ; push rbx ; push rbp ; push r12 ; push r13 ; push r14 ; push r15
            ; sub rsp, 8
            ; mov r15, rdi
            ; mov [r15 + off::HOST_RSP], rsp
            ; mov rdx, rsi
        );
        for (i, &r) in GUEST.iter().enumerate() {
            dynasm!(self.ops ; .arch x64 ; mov Rq(r), [r15 + off::reg(i)]);
        }
        dynasm!(self.ops ; .arch x64 ; jmp rdx);
        // The host-call tail falls into the exit path: the hottest exit takes no
        // jump to the cold end of the code and back.
        let host_call = self.tail(ExitKind::HostCall);
        dynasm!(self.ops ; .arch x64
            ; =>host_call
            ; mov DWORD [r15 + off::EXIT_KIND], ExitKind::HostCall as i32
            ; mov [r15 + off::EXIT_IDX], edx
            ; =>self.exit_label
        );
        for (i, &r) in GUEST.iter().enumerate() {
            dynasm!(self.ops ; .arch x64 ; mov [r15 + off::reg(i)], Rq(r));
        }
        dynasm!(self.ops ; .arch x64
            ; mov rsp, [r15 + off::HOST_RSP]
            ; add rsp, 8
            ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbp ; pop rbx
            ; ret
        );
    }

    /// Charge block `b` on entry: require `need`, deduct `cost`; with `poll`, also
    /// leave if the instance's interrupt mirror is set. Both checks lead to one
    /// [`ExitKind::OutOfGas`] stub, which the run loop tells apart: where
    /// [`subtracts_first`] holds, the gas check deducts before it compares and the
    /// poll follows it, so the stub is reached with the cost deducted either way
    /// (the run loop adds it back); otherwise the poll sits between the compare and
    /// the deduction, and the stub is reached with nothing deducted. The poll's
    /// place does not matter to the result: a block left at its entry is not
    /// charged, and the run loop takes an interrupt before it looks at the gas,
    /// as the interpreter does.
    fn block_entry(&mut self, b: u32, cost: i64, need: i64, poll: bool) -> Result<(), String> {
        if need < 1 || cost < 0 || cost > need {
            return Err(format!(
                "block {b} has an invalid price (cost {cost}, need {need})"
            ));
        }
        let label = self.ops.new_dynamic_label();
        let poll = |cg: &mut Self| {
            if poll {
                dynasm!(cg.ops ; .arch x64
                    ; cmp BYTE [r15 + off::INTERRUPT], 0
                    ; jne =>label
                );
            }
        };
        match (i32::try_from(cost), i32::try_from(need)) {
            (Ok(c), Ok(_)) if subtracts_first(cost, need) => {
                // `jl` after `sub` compares the true (unwrapped) difference.
                self.gas_op(GasOp::Sub, c);
                dynasm!(self.ops ; .arch x64 ; jl =>label);
                poll(self);
            }
            (Ok(c), Ok(nd)) => {
                self.gas_op(GasOp::Cmp, nd);
                dynasm!(self.ops ; .arch x64 ; jl =>label);
                poll(self);
                self.gas_op(GasOp::Sub, c);
            }
            _ => {
                dynasm!(self.ops ; .arch x64
                    ; mov rdx, QWORD need ; cmp [r15 + off::GAS], rdx ; jl =>label
                );
                poll(self);
                dynasm!(self.ops ; .arch x64
                    ; mov rdx, QWORD cost ; sub [r15 + off::GAS], rdx
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
        dynasm!(self.ops ; .arch x64 ; mov edx, idx as i32 ; jmp =>tail);
    }

    /// The shared tail of exit `kind`, which stores the kind and EDX as the exit's
    /// index and leaves (emitted with the stubs).
    fn tail(&mut self, kind: ExitKind) -> DynamicLabel {
        if let Some(&(_, l)) = self.tails.iter().find(|(k, _)| *k == kind) {
            return l;
        }
        let l = self.ops.new_dynamic_label();
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
        let site =
            u32::try_from(self.host_sites.len()).map_err(|_| "too many host calls".to_string())?;
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
        self.host_sites.push(HostSite { resume, pc, id });
        self.exit(ExitKind::HostCall, site);
        Ok(())
    }

    /// The label of block `b`'s entry.
    pub(crate) fn block_label(&self, b: u32) -> Result<DynamicLabel, String> {
        self.block_labels
            .get(b as usize)
            .copied()
            .ok_or_else(|| format!("no block {b}"))
    }

    /// The label of a cold stub that panics at instruction `idx`.
    pub(crate) fn panic_stub(&mut self, idx: u32) -> DynamicLabel {
        if let Some((i, l)) = self.panic_label
            && i == idx
        {
            return l;
        }
        let label = self.ops.new_dynamic_label();
        self.stubs.push(Stub::Exit {
            label,
            kind: ExitKind::Panic,
            idx,
        });
        self.panic_label = Some((idx, label));
        label
    }

    /// Where a static branch at `idx` to `target` goes: the block, or a panic stub.
    pub(crate) fn target(
        &mut self,
        target: javm_exec::Target,
        idx: u32,
    ) -> Result<DynamicLabel, String> {
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
        back: DynamicLabel,
    ) -> DynamicLabel {
        let label = self.ops.new_dynamic_label();
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
        label: DynamicLabel,
        back: DynamicLabel,
        (idx, addr, width): (u32, StoreAddr, u8),
    ) {
        let w = i32::from(width);
        let exit = self.ops.new_dynamic_label();
        dynasm!(self.ops ; .arch x64 ; =>label);
        match addr {
            StoreAddr::Abs(a) if (a & 7) as i32 + w > 8 => {}
            StoreAddr::Abs(a) => {
                let granule = i64::from(a >> 3);
                let disp = i32::try_from(granule + i64::from(SHADOW_DISP)).unwrap_or(i32::MIN);
                dynasm!(self.ops ; .arch x64
                    ; cmp BYTE [r15 + disp], SHADOW_IN_PAGE as i8
                    ; jne BYTE =>exit
                    ; jmp =>back
                );
            }
            StoreAddr::Ind(b, x) => {
                dynasm!(self.ops ; .arch x64
                    ; cmp BYTE [r15 + rdx + SHADOW_DISP], SHADOW_IN_PAGE as i8
                    ; jne BYTE =>exit
                );
                if w > 1 {
                    self.lea(false, RDX, b, x);
                    dynasm!(self.ops ; .arch x64
                        ; and edx, 7
                    );
                    self.cmp_imm(RDX, 8 - w);
                    dynasm!(self.ops ; .arch x64 ; ja BYTE =>exit);
                }
                dynasm!(self.ops ; .arch x64 ; jmp =>back);
            }
        }
        dynasm!(self.ops ; .arch x64 ; =>exit);
        self.exit(ExitKind::Emulate, idx);
    }

    /// Number of blocks.
    pub(crate) fn block_count(&self) -> usize {
        self.block_labels.len()
    }

    /// Number of jump-table entries.
    pub(crate) fn jump_table_len(&self) -> usize {
        self.program.jump_targets().len()
    }

    /// Cold stubs. Each exit stub is `mov edx, index` and a short jump (7 bytes) to
    /// a relay after every [`STUBS_PER_RELAY`] stubs of its kind, which jumps to the
    /// kind's shared tail; the tail stores the kind and the index and leaves.
    fn emit_stubs(&mut self) {
        let mut exits: Vec<(ExitKind, DynamicLabel, u32)> = Vec::with_capacity(self.stubs.len());
        for stub in std::mem::take(&mut self.stubs) {
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
            }
        }
        // Stable: each kind's stubs stay in program order.
        exits.sort_by_key(|e| e.0 as u32);
        for group in exits.chunk_by(|a, b| a.0 == b.0) {
            let tail = self.tail(group[0].0);
            let chunks = group.chunks(STUBS_PER_RELAY);
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.enumerate() {
                let relay = if i == last {
                    tail
                } else {
                    self.ops.new_dynamic_label()
                };
                for &(_, label, idx) in chunk {
                    dynasm!(self.ops ; .arch x64
                        ; =>label ; mov edx, idx as i32 ; jmp BYTE =>relay
                    );
                }
                if i != last {
                    dynasm!(self.ops ; .arch x64 ; =>relay ; jmp =>tail);
                }
                if i == last {
                    self.emit_tail(group[0].0);
                }
            }
        }
        // Tails of kinds with inline exits only (the host-call tail is part of the
        // trampoline).
        let tails: Vec<ExitKind> = self.tails.iter().map(|t| t.0).collect();
        for kind in tails {
            if kind != ExitKind::HostCall && !exits.iter().any(|e| e.0 == kind) {
                self.emit_tail(kind);
            }
        }
    }

    /// The shared cold path of dynamic jumps (`lower.rs`, `djump`), entered with
    /// the instruction's index in the context and the rotated address in EDX.
    pub(crate) fn djump_fail(&mut self) -> DynamicLabel {
        if let Some((fail, _)) = self.djump {
            return fail;
        }
        let labels = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
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
        dynasm!(self.ops ; .arch x64
            ; =>fail
            ; cmp edx, halt
            ; jne BYTE =>panic
            ; mov DWORD [r15 + off::EXIT_KIND], ExitKind::Halt as i32
            ; jmp =>exit
        );
        let at = self.ops.offset().0;
        dynasm!(self.ops ; .arch x64
            ; =>panic
            ; mov DWORD [r15 + off::EXIT_KIND], ExitKind::Panic as i32
            ; jmp =>exit
        );
        u32::try_from(at)
            .map(Some)
            .map_err(|_| "native code exceeds 4 GiB".to_string())
    }

    /// The shared tail of `kind` (see [`Cg::tail`]).
    fn emit_tail(&mut self, kind: ExitKind) {
        let (label, exit) = (self.tail(kind), self.exit_label);
        dynasm!(self.ops ; .arch x64
            ; =>label
            ; mov DWORD [r15 + off::EXIT_KIND], kind as i32
            ; mov [r15 + off::EXIT_IDX], edx
            ; jmp =>exit
        );
    }
}

// A valid dynamic-jump table index (at most the table's length) never equals the
// rotated halt address, which `djump_fail` tells apart from the rest.
const _: () = assert!((MAX_JUMP_TABLE_LEN as u32) < HALT_ADDRESS.rotate_right(1));

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
