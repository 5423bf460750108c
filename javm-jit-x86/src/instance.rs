//! [`JitInstance`]: one guest window, its page map and context, and the run loop that
//! enters compiled code and turns its exits into [`Exit`]s.

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, compiler_fence};

use javm_exec::engine::{
    EngineError, Exit, Instance, InterruptHandle, InterruptNotify, MemoryError, Resume, check_gas,
    check_start,
};
use javm_exec::instruction::Instruction as I;
use javm_exec::memop::MemData;
use javm_exec::memory::{
    PAGE_SHIFT, PAGE_SIZE, PageAccess, PageKind, PageMap, PageState, StorageOp, bad_access_exit,
};
use javm_exec::{GasProfile, NUM_REGS, Reg};
use nix::sys::mman::ProtFlags;

use crate::codegen::{HostSite, NO_ENTRY};
use crate::ctx::{ExitKind, JitContext, Kick};
use crate::module::{JitModule, entry_of};
use crate::signal::{self, ActiveGuard, Running, materialize_unit};
use crate::window::{Window, discard, mark_unwritable, mark_writable, protect};

/// The error for a failed protection change of this instance's window.
fn protection_error(errno: i32) -> EngineError {
    EngineError::OutOfMemory(format!(
        "cannot change the protection of guest memory: {}",
        std::io::Error::from_raw_os_error(errno)
    ))
}

/// A recompiler instance.
#[derive(Debug)]
pub struct JitInstance {
    module: Arc<JitModule>,
    window: ManuallyDrop<Window>,
    map: Box<PageMap>,
    pc: u32,
    /// Where the next run continues; written only through [`Self::set_resume`]
    /// and [`Self::take_host_call`], which keep `entry` with it.
    resume: Resume,
    /// The native offset at which the next run enters compiled code directly:
    /// the block of `resume` when that is [`Resume::Enter`] and the instance is
    /// not broken ([`entry_of`]), else [`NO_ENTRY`] (the run loop decides). The
    /// common resume, after a host call, thus costs `run` one compare.
    entry: u32,
    /// Set when the host failed mid-access; the instance cannot continue.
    /// Written only through [`Self::set_broken`] (and cleared by `reset`).
    broken: Option<EngineError>,
    /// The interrupt request flag (`signal.rs`, "Interrupts": a request biases the
    /// gas counter of the running code).
    interrupt: InterruptHandle,
    /// Whether `interrupt` carries a [`KickNotify`] notifier (installed when the
    /// first handle is given out, removed before the window goes).
    notifying: AtomicBool,
    /// What the fault handler needs while this instance runs, built once; the page
    /// map pointer and the gas bias are refreshed at each entry.
    running: Running,
}

// SAFETY: the raw pointers in `running` point into memory this instance owns (its
// module's code and side table through the `Arc`, its window, its boxed page map) and
// move with it; the fault handler reads them only through the thread-local set while
// `enter` runs on the current thread, so sending the instance to another thread
// between runs is sound, as it was before `running` was kept in the instance.
unsafe impl Send for JitInstance {}

/// Instances can be moved between threads (between runs).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<JitInstance>();
};

impl JitInstance {
    pub(crate) fn new(
        module: Arc<JitModule>,
        window: Window,
        map: PageMap,
        regs: [u64; NUM_REGS],
        pc: u32,
        gas: i64,
    ) -> JitInstance {
        let mut window = ManuallyDrop::new(window);
        let interrupt = InterruptHandle::new();
        // A recycled window keeps the slot of its last instance (it lies outside the
        // context that a reset clears): start from "no entry yet, no bias".
        // SAFETY: the slot lies in this window's context page, mapped read-write for
        // the window's lifetime; no thread runs the window and no notifier points
        // at it any more (the last instance removed its notifier before release).
        let kick = unsafe { &*window.kick() };
        kick.tid.store(0, Ordering::SeqCst);
        kick.biased.store(0, Ordering::SeqCst);
        let running = Running {
            code_start: module.code.start(),
            code_len: module.code.len(),
            side: module.side.as_ptr(),
            side_len: module.side.len(),
            guest_base: window.guest_base_mut(),
            map: std::ptr::null_mut(),
            ctx: window.ctx(),
            entry_addr: module.code.start() + module.entry as usize,
            exit_addr: module.code.start() + module.exit as usize,
            gas_live_addr: module.code.start() + module.gas_live as usize,
            blocks_addr: module.code.start() + module.blocks_start as usize,
            interrupt: interrupt.flag(),
            kick: window.kick(),
        };
        let mut inst = JitInstance {
            module,
            window,
            map: Box::new(map),
            pc,
            resume: Resume::BadPc,
            entry: NO_ENTRY,
            broken: None,
            interrupt,
            notifying: AtomicBool::new(false),
            running,
        };
        inst.start(regs, pc, gas);
        inst
    }

    /// Set up the context for a run from `pc` (a fresh or reset window's context is
    /// zero): registers, gas and the jump table.
    fn start(&mut self, regs: [u64; NUM_REGS], pc: u32, gas: i64) {
        let table = &self.module.jump_table;
        if crate::ctx::jt_inline(table.len()) {
            // SAFETY: the window's inline table holds JT_INLINE_ENTRIES entries,
            // at least `table.len()`; it lies in the context page, which this
            // instance owns and no guest code runs on now.
            unsafe {
                std::ptr::copy_nonoverlapping(table.as_ptr(), self.window.jt_inline(), table.len())
            };
        }
        let jt = self.module.jump_table.as_ptr() as u64;
        let ctx = self.ctx_mut();
        ctx.regs[..NUM_REGS].copy_from_slice(&regs);
        ctx.gas = gas;
        ctx.jt_ptr = jt;
        self.set_pc(pc);
    }

    /// Continue the next run at `resume`.
    fn set_resume(&mut self, resume: Resume) {
        self.resume = resume;
        self.entry = if self.broken.is_none() {
            entry_of(&self.module.block_offsets, resume)
        } else {
            NO_ENTRY
        };
    }

    /// The host failed mid-access: every later run reports `e`.
    fn set_broken(&mut self, e: EngineError) {
        self.broken = Some(e);
        self.entry = NO_ENTRY;
    }

    /// Take a pending interrupt request.
    fn take_interrupt(&self) -> bool {
        self.interrupt.take()
    }

    /// The module this instance runs.
    pub fn module(&self) -> &Arc<JitModule> {
        &self.module
    }

    fn ctx(&self) -> &JitContext {
        // SAFETY: the window's context page is mapped read-write for the window's
        // lifetime and only this instance uses it; guest code does not run while
        // `self` is borrowed.
        unsafe { &*self.window.ctx() }
    }

    fn ctx_mut(&mut self) -> &mut JitContext {
        // SAFETY: as in `ctx`, and `&mut self` makes the access exclusive.
        unsafe { &mut *self.window.ctx() }
    }

    fn profile(&self) -> GasProfile {
        self.module.schedule.profile()
    }

    /// Run compiled code from native offset `target` until it exits, and return the
    /// exit's raw kind (see [`Self::exit_kind`]) and index. With `step`,
    /// or when an interrupt is requested, the gas counter carries the bias
    /// (`signal.rs`, "Interrupts") while the code runs, so it leaves at the next
    /// block's gas check; the bias is gone when this returns.
    #[inline(always)]
    fn enter(&mut self, target: u32, step: bool) -> Result<(u32, u32), EngineError> {
        let base = self.running.guest_base;
        let tid = signal::enter_window(base).map_err(EngineError::Unavailable)?;
        // A fresh pointer to the page map at every entry: the host may have used the
        // map through `&mut` since the last one.
        self.running.map = &mut *self.map;
        let code_start = self.running.code_start;
        let entry = self.running.entry_addr;
        // SAFETY: the slot lies in the window's context page, mapped read-write for
        // the window's lifetime, which this instance owns; every access to it is
        // atomic, and no Rust reference to the context covers it.
        let kick: &Kick = unsafe { &*self.running.kick };
        let exit = {
            let _active = ActiveGuard::new(&self.running);
            compiler_fence(Ordering::SeqCst);
            // Marked as running first, then the check: a request that this check
            // does not see signals a thread that runs the instance.
            if step || kick.tid.load(Ordering::Relaxed) != tid {
                // The counter through a raw pointer: the signal handler may change
                // it while `_active` is alive, so no reference covers it then.
                // SAFETY: `ctx` points to this instance's context, mapped for the
                // window's lifetime; only the field's address is taken.
                let gas = unsafe { &raw mut (*self.running.ctx).gas };
                self.enter_slow(step, tid, gas, kick);
            }
            let exit: u64;
            // SAFETY: `entry` is the trampoline emitted by `codegen` (`trampoline`):
            // it takes the guest base in RDI and the target in RDX, saves and
            // restores RBX and RBP itself, returns the packed exit in RDX and may
            // change every other register, which the operands below declare (the
            // sysv64 caller-saved set and R12–R15); it moves RSP only by its own
            // balanced pushes, the call's return address and the matching `ret`,
            // for which the block is not `nostack`. The code is finalized (read +
            // execute) and owned by the module this instance holds; `base` is this
            // instance's window with its context just below, and this thread's GS
            // base (`set_gs_base` above), through which compiled code addresses
            // both; R15 carries the gas counter inside; `target` is a block
            // or instruction entry of the same code. Guest code touches only the
            // window and the context; faults in it are handled by `signal` using
            // `self.running`, which outlives the call and which nothing else
            // touches while it runs.
            unsafe {
                std::arch::asm!(
                    "call {entry}",
                    entry = in(reg) entry,
                    in("rdi") base,
                    inout("rdx") code_start + target as usize => exit,
                    out("r12") _,
                    out("r13") _,
                    out("r14") _,
                    out("r15") _,
                    clobber_abi("sysv64"),
                );
            }
            compiler_fence(Ordering::SeqCst);
            exit
        };
        // The guard's unmarking stays before the bias's removal below.
        compiler_fence(Ordering::SeqCst);
        // Taken again from `self.running` rather than kept across the call, which
        // changes every register the compiler could have kept them in.
        // SAFETY: as above.
        let (gas, kick) = unsafe { (&raw mut (*self.running.ctx).gas, &*self.running.kick) };
        // SAFETY: `gas` is this instance's counter and `kick` its Kick; the guard is
        // gone, so this thread no longer runs the instance and the handler leaves
        // both alone from here on.
        unsafe { signal::unbias(gas, kick) };
        Ok(crate::ctx::unpack_exit(exit))
    }

    /// The [`ExitKind`] of a raw kind that [`Self::enter`] returned.
    fn exit_kind(kind: u32) -> Result<ExitKind, EngineError> {
        ExitKind::from_u32(kind).ok_or_else(|| {
            EngineError::Internal(format!("compiled code returned exit kind {kind}"))
        })
    }

    /// The part of [`Self::enter`] that runs when stepping, on this instance's first
    /// entry on this thread, or after an interrupt request (each of which clears
    /// [`Kick::tid`]): record this thread as the one to signal, then bias the gas
    /// counter if stepping or if a request is pending. Runs while this thread is
    /// marked as running the instance.
    #[cold]
    #[inline(never)]
    fn enter_slow(&self, step: bool, tid: i32, gas: *mut i64, kick: &Kick) {
        if kick.tid.load(Ordering::Relaxed) != tid {
            // Sequentially consistent with the flag's load below and with the
            // requesting thread's store of the flag and swap of `tid`: either this
            // entry sees the request, or the request signals this thread.
            kick.tid.store(tid, Ordering::SeqCst);
        }
        if step || self.interrupt.is_pending() {
            // SAFETY: `gas` is this instance's counter and `kick` its Kick (alive as
            // long as the window); no reference covers the counter.
            unsafe { signal::bias(gas, kick) };
        }
    }

    fn run_loop(&mut self, step: bool) -> Result<Option<Exit>, EngineError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        // SAFETY: `self.module` is an `Arc` this instance owns and never replaces, so
        // the module it points to lives, unchanged, at least as long as `self`; no
        // `&mut` to it exists. Borrowing through the pointer (instead of cloning the
        // `Arc`, two atomic operations per run) leaves `self` free to be mutated.
        let module: &JitModule = unsafe { &*Arc::as_ptr(&self.module) };
        let program = &*module.program;
        loop {
            let target = match self.resume {
                Resume::Done(e) => return Err(EngineError::Finished(e)),
                Resume::BadPc => {
                    self.set_resume(Resume::Done(Exit::Panic));
                    return Ok(Some(Exit::Panic));
                }
                Resume::Enter(b) => {
                    if step {
                        let (cost, need) = *module.prices.get(b as usize).ok_or_else(|| {
                            EngineError::Internal(format!("resume at unknown block {b}"))
                        })?;
                        // The check compiled code makes at the block's entry.
                        if program.interrupt_points().get(b as usize) == Some(&true)
                            && self.take_interrupt()
                        {
                            self.pc = program.blocks()[b as usize].pc;
                            return Ok(Some(Exit::Interrupted));
                        }
                        // Charge the first block here; compiled code then runs it
                        // with the bias and stops before the next block.
                        let gas = self.ctx().gas;
                        if gas < need {
                            self.ctx_mut().gas = 0;
                            self.pc = program.blocks()[b as usize].pc;
                            return Ok(Some(Exit::OutOfGas));
                        }
                        self.ctx_mut().gas = gas - cost;
                        let first = program.blocks()[b as usize].first;
                        module.resume_offsets[first as usize]
                    } else {
                        *module.block_offsets.get(b as usize).ok_or_else(|| {
                            EngineError::Internal(format!("resume at unknown block {b}"))
                        })?
                    }
                }
                Resume::At(i) => module.resume_offsets[i as usize],
            };
            // With `step`, compiled code runs with the bias and stops before the next
            // block. A failed `sub`-first check leaves its cost deducted below the
            // bias (compiled code's `jl` saw the true, overflowed difference); the
            // wrapping removal of the bias brings the sum into range again.
            let (kind, idx) = self.enter(target, step)?;
            let kind = Self::exit_kind(kind)?;
            match self.on_exit(kind, idx, step)? {
                Flow::Return(exit) => return Ok(exit),
                Flow::Continue => {}
            }
        }
    }

    /// Turn an exit of compiled code into the run's result or into the next entry.
    /// A host call, the exit a host sees most often, is taken here; the others in
    /// [`Self::on_other_exit`].
    #[inline]
    fn on_exit(&mut self, kind: ExitKind, idx: u32, step: bool) -> Result<Flow, EngineError> {
        if kind == ExitKind::HostCall {
            return self.on_host_call(idx);
        }
        self.on_other_exit(kind, idx, step)
    }

    /// The exit of the host call at site `idx` ([`HostSite`]); the
    /// call ends its block, so execution resumes at the next, from the site's
    /// precomputed resume point.
    #[inline]
    fn on_host_call(&mut self, idx: u32) -> Result<Flow, EngineError> {
        let Some(site) = self.module.host_sites.get(idx as usize).copied() else {
            return Err(EngineError::Internal(format!(
                "exit at unknown host call {idx}"
            )));
        };
        Ok(Flow::Return(Some(self.take_host_call(site))))
    }

    /// Stop at host-call site `site`: the exit, and the resume point after it
    /// with its direct entry (the instance is not broken: its code just ran).
    #[inline(always)]
    fn take_host_call(&mut self, site: HostSite) -> Exit {
        debug_assert!(self.broken.is_none());
        self.pc = site.pc;
        self.resume = site.resume;
        self.entry = site.entry;
        site.exit
    }

    /// The rest of [`Instance::run`]: the exit `left` (kind and index) of the
    /// compiled code it entered directly, if it did, then the general loop.
    #[inline(never)]
    fn run_rest(&mut self, left: Option<(u32, u32)>) -> Result<Exit, EngineError> {
        if let Some((kind, idx)) = left {
            match self.on_exit(Self::exit_kind(kind)?, idx, false)? {
                Flow::Return(exit) => return exit.ok_or_else(stopped),
                Flow::Continue => {}
            }
        }
        self.run_loop(false)?.ok_or_else(stopped)
    }

    /// [`Self::on_exit`] for every kind but a host call.
    #[inline(never)]
    fn on_other_exit(&mut self, kind: ExitKind, idx: u32, step: bool) -> Result<Flow, EngineError> {
        // SAFETY: as in `run_loop`.
        let module: &JitModule = unsafe { &*Arc::as_ptr(&self.module) };
        let program = &*module.program;
        let pc_at = |i: u32| program.pcs().get(i as usize).copied().unwrap_or(u32::MAX);
        // The argument of a fault or host-error exit, which the fault handler wrote.
        let arg = self.ctx().fault_addr;
        macro_rules! finish {
            ($exit:expr, $resume:expr, $pc:expr) => {{
                self.pc = $pc;
                self.set_resume($resume);
                return Ok(Flow::Return(Some($exit)));
            }};
        }
        match kind {
            ExitKind::Trap => finish!(Exit::Trap, Resume::Done(Exit::Trap), pc_at(idx)),
            ExitKind::Panic => finish!(Exit::Panic, Resume::Done(Exit::Panic), pc_at(idx)),
            ExitKind::Halt => finish!(Exit::Halt, Resume::Done(Exit::Halt), pc_at(idx)),
            ExitKind::HostCall => return self.on_host_call(idx),
            // Left at the entry of block `idx` (`codegen::Cg::block_entry`):
            // an interrupt request first, as the interpreter checks it first,
            // then the gas.
            ExitKind::OutOfGas => {
                let (cost, need) = *module
                    .prices
                    .get(idx as usize)
                    .ok_or_else(|| EngineError::Internal(format!("exit at unknown block {idx}")))?;
                if crate::codegen::subtracts_first(cost, need) {
                    let gas = self.ctx().gas.wrapping_add(cost);
                    self.ctx_mut().gas = gas;
                }
                let pc = program.blocks()[idx as usize].pc;
                if program.interrupt_points().get(idx as usize) == Some(&true)
                    && self.take_interrupt()
                {
                    finish!(Exit::Interrupted, Resume::Enter(idx), pc)
                }
                if step {
                    // Stopped before entering block `idx`: not an exit.
                    self.pc = pc;
                    self.set_resume(Resume::Enter(idx));
                    return Ok(Flow::Return(None));
                }
                if self.ctx().gas >= need {
                    if self.interrupt.is_pending() {
                        // A request waits for the next interrupt point (§66), and
                        // this block is none: charge it here and run it from after
                        // its gas check, with the bias again, to the next block.
                        self.ctx_mut().gas -= cost;
                        let first = program.blocks()[idx as usize].first;
                        self.set_resume(Resume::At(first));
                        return Ok(Flow::Continue);
                    }
                    // The bias was for a request taken by someone else since:
                    // enter the block.
                    self.set_resume(Resume::Enter(idx));
                    return Ok(Flow::Continue);
                }
                self.ctx_mut().gas = 0;
                finish!(Exit::OutOfGas, Resume::Enter(idx), pc)
            }
            ExitKind::Fault => match bad_access_exit(self.profile(), arg as u32) {
                e @ Exit::PageFault(_) => finish!(e, Resume::At(idx), pc_at(idx)),
                e => finish!(e, Resume::Done(e), pc_at(idx)),
            },
            ExitKind::Emulate => {
                if let Some(e) = self.emulate(idx)? {
                    return Ok(Flow::Return(Some(e)));
                }
                self.set_resume(Resume::At(idx + 1));
            }
            ExitKind::Sbrk => {
                let Some(I::Sbrk(o)) = program.instructions().get(idx as usize).copied() else {
                    return Err(EngineError::Internal(
                        "sbrk exit at another instruction".into(),
                    ));
                };
                let size = self.ctx().regs[o.a.index()];
                let v = self.map.sbrk(size);
                self.ctx_mut().regs[o.d.index()] = v;
                self.set_resume(Resume::At(idx + 1));
            }
            ExitKind::HostError => {
                let e = EngineError::OutOfMemory(format!(
                    "cannot change the protection of a guest page: {}",
                    std::io::Error::from_raw_os_error(arg as i32)
                ));
                self.pc = pc_at(idx);
                self.set_broken(e.clone());
                return Err(e);
            }
            ExitKind::Inconsistent => {
                let e = EngineError::Internal(format!(
                    "a guest access at {:#x} faulted although its pages allow it",
                    arg
                ));
                self.set_broken(e.clone());
                return Err(e);
            }
        }
        Ok(Flow::Continue)
    }
}

/// The error for a run (not a step) that returned without an exit.
fn stopped() -> EngineError {
    EngineError::Internal("run stopped without an exit".into())
}

/// What the run loop does after an exit of compiled code.
enum Flow {
    /// Return this from the run (`None`: a step that stopped before a block).
    Return(Option<Exit>),
    /// Enter compiled code again, at the instance's resume point.
    Continue,
}

impl JitInstance {
    /// Record in the window's write shadow that `page` is now `PresentRw`.
    fn mark_writable(&mut self, page: u32) {
        let rw = |p: u32| self.map.state(p) == PageState::PresentRw;
        let below = page != 0 && rw(page.wrapping_sub(PAGE_SIZE));
        let above = page != 0u32.wrapping_sub(PAGE_SIZE) && rw(page.wrapping_add(PAGE_SIZE));
        let base = self.window.guest_base_mut();
        // SAFETY: `base` is this instance's window; no guest code runs.
        unsafe { mark_writable(base, page, below, above) };
    }

    /// Record in the window's write shadow that `page` is no longer `PresentRw`.
    fn mark_unwritable(&mut self, page: u32) {
        let below =
            page != 0 && self.map.state(page.wrapping_sub(PAGE_SIZE)) == PageState::PresentRw;
        let base = self.window.guest_base_mut();
        // SAFETY: `base` is this instance's window; no guest code runs.
        unsafe { mark_unwritable(base, page, below) };
    }

    /// Perform the access of memory instruction `idx` in software: a store the
    /// write shadow does not allow outright (first write to a page, a store that may
    /// leave its page, a fault) or a load that wraps past 2^32. `Some(exit)` if it
    /// exits instead.
    fn emulate(&mut self, idx: u32) -> Result<Option<Exit>, EngineError> {
        let module = Arc::clone(&self.module);
        let program = &*module.program;
        let pc = program.pcs().get(idx as usize).copied().unwrap_or(u32::MAX);
        let ins = program
            .instructions()
            .get(idx as usize)
            .copied()
            .ok_or_else(|| {
                EngineError::Internal(format!("emulate at unknown instruction {idx}"))
            })?;
        let mut regs = [0u64; NUM_REGS];
        regs.copy_from_slice(&self.ctx().regs[..NUM_REGS]);
        let op = ins.memory_op(&regs).ok_or_else(|| {
            EngineError::Internal(format!(
                "emulate a non-memory instruction ({})",
                ins.opcode().map_or("invalid", |o| o.mnemonic())
            ))
        })?;
        let (width, write) = (op.access.width, matches!(op.data, MemData::Store(_)));
        let schedule = module.schedule;
        let plan = match self.map.plan(op.addr, width, write, schedule.cow_cost()) {
            Ok(p) => p,
            Err(bad) => {
                let e = bad_access_exit(schedule.profile(), bad.addr);
                self.pc = pc;
                self.set_resume(if matches!(e, Exit::PageFault(_)) {
                    Resume::At(idx)
                } else {
                    Resume::Done(e)
                });
                return Ok(Some(e));
            }
        };
        if self.map.check_write_limit(&plan).is_err() {
            self.pc = pc;
            self.set_resume(Resume::At(idx));
            return Err(EngineError::MemoryLimit(self.map.write_limit()));
        }
        let charge = i64::try_from(plan.charge).unwrap_or(i64::MAX);
        if charge > self.ctx().gas {
            self.ctx_mut().gas = 0;
            self.pc = pc;
            self.set_resume(Resume::At(idx));
            return Ok(Some(Exit::OutOfGas));
        }
        let base = self.window.guest_base_mut();
        for &(page, before, _) in plan.pages() {
            if before == PageState::NotPresent
                && let Some(unit) = self.map.unit_to_materialize(page)
            {
                // SAFETY: the unit is a unit of this instance's page map, inside its
                // window; no guest code runs.
                unsafe { materialize_unit(base, &unit, self.map.layout()) }
                    .map_err(protection_error)?;
                self.map.mark_unit_present(&unit);
            }
        }
        self.map.commit(&plan);
        self.ctx_mut().gas -= charge;
        for &(page, before, after) in plan.pages() {
            if after == PageState::PresentRw && before != PageState::PresentRw {
                self.mark_writable(page);
            }
        }
        let value = match op.data {
            MemData::Store(v) => v,
            MemData::Load(_) => 0,
        };
        let mut bytes = value.to_le_bytes();
        for (i, b) in bytes.iter_mut().enumerate().take(width as usize) {
            let a = op.addr.wrapping_add(i as u32) as usize;
            // SAFETY: every page of the access was just made readable (and, for
            // stores, writable); `a < 2^32` lies inside the window.
            unsafe {
                if write {
                    *base.add(a) = *b;
                } else {
                    *b = *base.add(a);
                }
            }
        }
        if let MemData::Load(dst) = op.data {
            self.ctx_mut().regs[dst.index()] = op.access.extend(u64::from_le_bytes(bytes));
        }
        Ok(None)
    }
}

/// The notifier that signals the thread running an instance (`signal.rs`,
/// "Interrupts") from the requesting thread.
struct KickNotify(*const Kick);

// SAFETY: the pointer is only dereferenced in `notify`, which `InterruptHandle` calls
// under its notifier lock; the instance removes the notifier (taking that lock)
// before its window, and so the slot, goes away.
unsafe impl Send for KickNotify {}

impl InterruptNotify for KickNotify {
    fn notify(&self) {
        // SAFETY: see `unsafe impl Send for KickNotify`: the slot is alive while the
        // notifier is installed; the swap is atomic and follows the flag's store.
        // Cleared, so that the instance's next entry looks at the flag.
        let tid = unsafe { (*self.0).tid.swap(0, Ordering::SeqCst) };
        signal::kick(tid);
    }
}

impl Drop for JitInstance {
    fn drop(&mut self) {
        // SAFETY: the window is taken exactly once, here; nothing uses it afterwards.
        let window = unsafe { ManuallyDrop::take(&mut self.window) };
        if *self.notifying.get_mut() {
            // Returns once no `interrupt` call can still be reading the slot.
            self.interrupt.set_notify(None);
        }
        window.release();
    }
}

impl Instance for JitInstance {
    // Inlined into the caller's loop (a host's, the driver's): the common round —
    // straight into compiled code at a block, back out at a host call — then
    // hands its exit over in registers, not through a returned `Result` in
    // memory; every other case goes through `run_rest`.
    #[inline]
    fn run(&mut self) -> Result<Exit, EngineError> {
        // The common entry, at a block (a start, or the block after a host call),
        // goes straight in and takes a host call's exit without the general loop.
        let target = self.entry;
        if target != NO_ENTRY {
            debug_assert!(
                self.broken.is_none()
                    && target == entry_of(&self.module.block_offsets, self.resume)
            );
            let (kind, idx) = self.enter(target, false)?;
            if kind == ExitKind::HostCall as u32
                && let Some(&site) = self.module.host_sites.get(idx as usize)
            {
                return Ok(self.take_host_call(site));
            }
            return self.run_rest(Some((kind, idx)));
        }
        self.run_rest(None)
    }

    fn step_block(&mut self) -> Result<Option<Exit>, EngineError> {
        self.run_loop(true)
    }

    fn regs(&self) -> [u64; NUM_REGS] {
        let mut out = [0u64; NUM_REGS];
        out.copy_from_slice(&self.ctx().regs[..NUM_REGS]);
        out
    }

    fn set_reg(&mut self, r: Reg, value: u64) {
        self.ctx_mut().regs[r.index()] = value;
    }

    fn pc(&self) -> u32 {
        self.pc
    }

    fn next_pc(&self) -> Option<u32> {
        self.resume.next_pc(&self.module.program, self.pc)
    }

    fn panic_reason(&self) -> Option<javm_exec::PanicReason> {
        let profile = self.module.schedule.profile();
        self.resume
            .panic_reason(&self.module.program, profile, self.pc)
    }

    fn interrupt_handle(&self) -> InterruptHandle {
        if !self.notifying.swap(true, Ordering::Relaxed) {
            let notify = KickNotify(self.window.kick());
            self.interrupt.set_notify(Some(Box::new(notify)));
        }
        self.interrupt.clone()
    }

    fn reset(&mut self, regs: [u64; NUM_REGS], pc: u32, gas: i64) -> Result<(), EngineError> {
        let gas = check_start(
            &self.module.program,
            self.module.schedule.profile(),
            pc,
            gas,
        )?;
        let fresh = self.map.fresh()?;
        self.window
            .reset()
            .map_err(|e| EngineError::OutOfMemory(format!("cannot restore guest memory: {e}")))?;
        *self.map = fresh;
        self.broken = None;
        self.start(regs, pc, gas);
        Ok(())
    }

    fn set_pc(&mut self, pc: u32) {
        self.pc = pc;
        self.set_resume(Resume::at_pc(
            &self.module.program,
            self.module.schedule.profile(),
            pc,
        ));
    }

    fn gas(&self) -> i64 {
        self.ctx().gas
    }

    fn set_gas(&mut self, gas: i64) -> Result<(), EngineError> {
        self.ctx_mut().gas = check_gas(i128::from(gas))?;
        Ok(())
    }

    fn read_memory(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError> {
        let base = self.window.guest_base();
        self.map.host_read(addr, buf, |at, dst| {
            // SAFETY: `host_read` passes only spans of present pages, which are mapped
            // at least readable in this window; `at + dst.len()` stays in the page.
            unsafe {
                std::ptr::copy_nonoverlapping(base.add(at as usize), dst.as_mut_ptr(), dst.len())
            };
        })
    }

    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError> {
        let base = self.window.guest_base_mut();
        let mut failed = None;
        let result = self.map.host_write_bytes(
            addr,
            data,
            |unit, layout| {
                // SAFETY: the unit is a unit of this instance's page map, inside its
                // window; no guest code runs while the host writes.
                unsafe { materialize_unit(base, unit, layout) }.map_err(|errno| {
                    failed = Some(protection_error(errno));
                    MemoryError::Inaccessible(unit.first.max(addr))
                })
            },
            |span| {
                // SAFETY: the page's unit is materialized and the page writable (host
                // writes to pinned pages are refused before any span), so it is
                // mapped read-write; the span stays within it.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        span.bytes.as_ptr(),
                        base.add(span.addr as usize),
                        span.bytes.len(),
                    )
                };
                Ok(())
            },
        );
        if let Some(e) = failed {
            self.set_broken(e);
        }
        if result.is_ok() && !data.is_empty() {
            let last = addr + (data.len() as u32 - 1);
            let mut page = addr & !(PAGE_SIZE - 1);
            loop {
                self.mark_writable(page);
                if page >= last & !(PAGE_SIZE - 1) {
                    break;
                }
                page += PAGE_SIZE;
            }
        }
        result
    }

    fn set_page_access(
        &mut self,
        addr: u32,
        pages: u32,
        access: PageAccess,
    ) -> Result<(), MemoryError> {
        self.map.check_access_change(addr, pages)?;
        // The pages that are writable now; those the change leaves read-only or
        // unmapped lose their write shadow afterwards.
        let first = addr >> PAGE_SHIFT;
        let was_rw: Vec<u32> = (first..first + pages)
            .map(|n| n << PAGE_SHIFT)
            .filter(|&p| self.map.state(p) == PageState::PresentRw)
            .collect();
        let base = self.window.guest_base_mut();
        let failed = std::cell::Cell::new(None::<i32>);
        let result = self.map.change_access(
            addr,
            pages,
            access,
            |unit, layout| {
                // SAFETY: the unit is a unit of this instance's page map, inside its
                // window; no guest code runs while the host changes memory.
                unsafe { materialize_unit(base, unit, layout) }.map_err(|errno| {
                    failed.set(Some(errno));
                    MemoryError::Host(unit.first)
                })
            },
            |page, n, op| {
                // SAFETY: the run lies in this instance's window below 2^32 (the
                // change was checked); no guest code runs. Present pages were made
                // accessible through `protect`, so discarding them needs no record.
                let r = unsafe {
                    match op {
                        StorageOp::Discard => protect(base, page, n, ProtFlags::PROT_NONE)
                            .and_then(|()| discard(base, page, n)),
                        StorageOp::Zero => discard(base, page, n),
                        StorageOp::Map => {
                            protect(base, page, n, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE)
                        }
                    }
                };
                r.map_err(|errno| {
                    failed.set(Some(errno));
                    MemoryError::Host(page)
                })
            },
        );
        if let Some(errno) = failed.get() {
            self.set_broken(protection_error(errno));
        }
        result?;
        for page in was_rw {
            if self.map.state(page) != PageState::PresentRw {
                self.mark_unwritable(page);
            }
        }
        Ok(())
    }

    fn page_state(&self, addr: u32) -> PageState {
        self.map.state(addr)
    }

    fn accessible_pages(&self) -> Vec<(u32, PageKind)> {
        self.map.mapped_pages().collect()
    }

    fn dirty_pages(&self) -> Vec<u32> {
        self.map.dirty_pages()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Recompiler;
    use javm_exec::asm::assemble;
    use javm_exec::{Engine, GasSchedule, InstanceInit, MemoryLayout};

    fn instance(src: &str) -> JitInstance {
        let program = Arc::new(assemble(src).unwrap().program().unwrap());
        let engine = Recompiler::new().unwrap();
        let module = engine
            .prepare(&program, GasSchedule::new(GasProfile::Jar1, 0))
            .unwrap();
        let init = InstanceInit {
            layout: Arc::new(MemoryLayout::new()),
            regs: [0; NUM_REGS],
            pc: 0,
            gas: 10_000,
        };
        engine.instantiate(&module, init).unwrap()
    }

    #[test]
    fn the_direct_entry_follows_the_resume_point_and_a_break() {
        let mut vm = instance("ecalli 1\nload_imm r2, 1\necalli 2\nload_imm r3, 1\ntrap");
        assert_eq!(
            vm.entry, vm.module.block_offsets[0],
            "a fresh instance enters block 0"
        );
        assert_eq!(vm.run(), Ok(Exit::HostCall(1)));
        assert_eq!(
            vm.entry, vm.module.block_offsets[1],
            "after a call, the next block"
        );
        assert_eq!(vm.run(), Ok(Exit::HostCall(2)));
        // A break stops every later run, the direct entry included.
        let e = EngineError::OutOfMemory("the host failed".into());
        vm.set_broken(e.clone());
        assert_eq!(vm.entry, NO_ENTRY);
        assert_eq!(vm.run(), Err(e));
        assert_eq!(vm.reg(Reg::R3), 0, "the block after the call did not run");
        vm.set_pc(0);
        assert_eq!(vm.entry, NO_ENTRY, "a new PC does not mend a break");
        // A resume point inside a block leaves the entry to the run loop.
        let mut vm = instance("ecalli 1\nload_imm r2, 1\necalli 2\nload_imm r3, 1\ntrap");
        let mid = vm.module.program.pcs()[2];
        vm.set_pc(mid);
        assert_eq!(vm.entry, NO_ENTRY);
        assert_eq!(vm.run(), Ok(Exit::HostCall(2)));
        assert_eq!(vm.reg(Reg::R2), 0, "started at the call, not its block");
    }
}
