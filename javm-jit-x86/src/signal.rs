//! The fault handler: page materialization for running guests, and nothing else.
//!
//! * Handlers for SIGSEGV and SIGBUS are installed once per process; the previous
//!   handlers are kept and every fault that is not ours is passed to them.
//! * Each thread that runs guest code gets an alternate signal stack (unless it
//!   already has one, as threads started by Rust's std do).
//! * A thread-local pointer names the instance running on this thread. A fault is
//!   ours only if that pointer is set, the handler is not already active on this
//!   thread, RIP is *exactly* the address of a guest memory access recorded in the
//!   module's side table, and the faulting address lies in the instance's window
//!   (guest range plus guard).
//! * For such a fault the handler applies the shared access rule
//!   ([`PageMap::plan`]): an accepted access materializes the units of its pages
//!   (made accessible in one `mprotect`, its pages copied from their page-aligned
//!   source slabs, or left zero) and resumes the instruction; anything else is
//!   redirected to the exit path with a reason. Only loads fault this way: compiled
//!   stores check the window's write shadow and leave for the run loop instead.
//!
//! The handler allocates nothing and takes no locks: it reads plain memory, calls
//! `mprotect` and copies bytes.
//!
//! **Interrupts** (DESIGN-DECISIONS §80). Compiled code does not poll for interrupt
//! requests. A request ([`javm_exec::InterruptHandle::interrupt`]) sets its flag,
//! swaps the instance's [`Kick::tid`] (the thread that entered its code last) for
//! 0, and sends SIGURG (`tgkill`) to that thread. The SIGURG handler, if this
//! thread is running an instance whose flag is set, *biases* that instance's gas
//! counter: subtracts `i64::MAX` (wrapping) once, marked in [`Kick::biased`], so
//! the gas check of the next block entered fails and compiled code leaves for the
//! run loop, which removes the bias and decides (`instance.rs`).
//!
//! An entry marks this thread as running the instance first, then compares
//! `Kick::tid` with its own id: equal means no request came since the last look
//! at the flag, and the entry costs nothing more. Otherwise (first entry on this
//! thread, or a request cleared it) it stores its id and then loads the flag, both
//! sequentially consistent against the request's flag store and `tid` swap, and
//! biases the counter itself if the flag is set. So a request is never missed:
//! either the entry sees the flag, or the request's signal reaches the thread
//! after the mark. An exit that finds the bias removes it and clears `tid` again,
//! since the request may still be pending (a host-call exit, or a block that is
//! not an interrupt point). Bias and handler go through one atomic swap of
//! `biased`, so the bias is applied at most once; only this thread changes the
//! counter, and signals arrive between instructions, so the handler never splits
//! compiled code's `sub r15, cost`. Where the counter is depends on where the
//! signal lands (DESIGN-DECISIONS §87): in R15 from the trampoline's load of it to
//! the exit path's store of it, and then the handler biases the R15 the kernel
//! saved and restores; in the context everywhere else (the run loop, the
//! trampoline before the load, the exit path after the store). Any other SIGURG (no instance running here,
//! or its flag clear) is passed to the previous handler; SIGURG's default action
//! is to ignore it, and the handler is installed with `SA_RESTART`, so a stray one
//! interrupts no system call that restarts.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, mprotect, munmap};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use javm_exec::memory::pagemap::Unit;
use javm_exec::memory::{MemoryLayout, PAGE_SIZE, PageMap, PageState};

use crate::ctx::{ExitKind, JitContext, Kick};
use crate::window::{GUARD_SIZE, GUEST_SIZE, protect};

/// A guest memory access in compiled code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SideEntry {
    /// Offset of the load or store instruction in the module's code.
    pub(crate) native: u32,
    /// The PVM instruction's index.
    pub(crate) idx: u32,
    /// Access width in bytes.
    pub(crate) width: u8,
    /// Store (true) or load.
    pub(crate) write: bool,
    /// The host register holding the guest base address, or [`NO_BASE`] for a
    /// fixed address. The access addresses `gs:[base32 + index32 * 2^scale +
    /// disp]` with the 32-bit address size, so its guest address is that sum
    /// modulo 2^32.
    pub(crate) base: u8,
    /// The host register added to the base, or [`NO_BASE`].
    pub(crate) index: u8,
    /// The index is multiplied by `1 << scale`.
    pub(crate) scale: u8,
    /// The fix-up zero-extends the index from 32 bits before scaling it.
    pub(crate) zext_index: bool,
    /// The register of a folded `add_64` (`codegen/fuse.rs`, `AddLoad`), or
    /// [`NO_BASE`]: the access is the last instruction of a run whose earlier
    /// ones, ending in `fixup = base + (index << scale)` (the index zero-extended
    /// first if `zext_index`), were not performed separately, so an exit here sets
    /// it to that 64-bit sum of the interrupted registers (still unchanged, since
    /// the access did not happen) before leaving.
    pub(crate) fixup: u8,
    /// The displacement added to the base (the whole address without one).
    pub(crate) disp: u32,
}

/// [`SideEntry::base`] of an access to a fixed address.
pub(crate) const NO_BASE: u8 = 0xFF;

/// The `ucontext` general-register slot of each host register number (RAX = 0 …
/// R15 = 15).
const GREG: [libc::c_int; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

impl SideEntry {
    /// The guest address of this access, from the interrupted registers.
    fn guest_addr(&self, gregs: &[libc::greg_t]) -> u32 {
        (self.sum(gregs) as u32).wrapping_add(self.disp)
    }

    /// `base + (index << scale)`, 64-bit, the index zero-extended first if
    /// `zext_index` (which the address, taken modulo 2^32, does not notice).
    fn sum(&self, gregs: &[libc::greg_t]) -> u64 {
        let mut index = read(gregs, self.index);
        if self.zext_index {
            index &= u64::from(u32::MAX);
        }
        read(gregs, self.base).wrapping_add(index << (self.scale & 3))
    }

    /// Perform the folded run this access stands for, if any, in `gregs`.
    fn fix_up(&self, gregs: &mut [libc::greg_t]) {
        if let Some(&slot) = GREG.get(usize::from(self.fixup)) {
            gregs[slot as usize] = self.sum(gregs) as libc::greg_t;
        }
    }
}

/// The value of host register `reg` in `gregs`, 0 for [`NO_BASE`].
fn read(gregs: &[libc::greg_t], reg: u8) -> u64 {
    match GREG.get(usize::from(reg)) {
        Some(&slot) => gregs[slot as usize] as u64,
        None => 0,
    }
}

/// What the handler needs to know about the instance running on this thread. Lives
/// in the instance; the thread-local pointer to it is set only while guest code runs.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) code_start: usize,
    pub(crate) code_len: usize,
    pub(crate) side: *const SideEntry,
    pub(crate) side_len: usize,
    pub(crate) guest_base: *mut u8,
    pub(crate) map: *mut PageMap,
    pub(crate) ctx: *mut JitContext,
    /// Address of the trampoline through which the run loop enters compiled code.
    pub(crate) entry_addr: usize,
    /// Address of the shared exit path, whose first instruction stores the gas
    /// counter from R15 into the context.
    pub(crate) exit_addr: usize,
    /// Address just past the trampoline's load of the counter into R15.
    pub(crate) gas_live_addr: usize,
    /// Address of the first block.
    pub(crate) blocks_addr: usize,
    /// The instance's interrupt request flag (its `InterruptHandle`'s, which the
    /// instance holds).
    pub(crate) interrupt: *const std::sync::atomic::AtomicBool,
    /// The instance's [`Kick`], in its context page.
    pub(crate) kick: *const Kick,
}

thread_local! {
    /// What entries into compiled code and the fault handler keep per thread.
    static THREAD: ThreadState = const {
        ThreadState {
            current: Cell::new(std::ptr::null()),
            in_handler: Cell::new(false),
            gs_base: Cell::new(0),
            tid: Cell::new(0),
        }
    };
    static ALT_STACK: Cell<bool> = const { Cell::new(false) };
    static OWN_STACK: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
}

/// A thread's state for running compiled code: one thread-local (constant
/// initializer, no destructor, so the fault handler may read it), so that an
/// entry finds everything it checks and marks at one address.
struct ThreadState {
    /// The instance whose compiled code this thread runs, while it runs
    /// ([`ActiveGuard`]); null otherwise.
    current: Cell<*const Running>,
    /// Whether the fault handler is handling a fault on this thread.
    in_handler: Cell<bool>,
    /// The GS base this thread last set for compiled code; 0 (no window's base)
    /// until [`enter_window`] first set one, which it does only after preparing
    /// the thread.
    gs_base: Cell<usize>,
    /// This thread's id (`gettid`) once handlers are installed and the alternate
    /// stack set for it; 0 before.
    tid: Cell<i32>,
}

/// The previous handlers of SIGSEGV, SIGBUS and SIGURG.
static PREVIOUS: OnceLock<Result<[SigAction; 3], String>> = OnceLock::new();

const SIGNALS: [Signal; 2] = [Signal::SIGSEGV, Signal::SIGBUS];

/// The signal that carries interrupt requests to a running thread.
const KICK_SIGNAL: Signal = Signal::SIGURG;

/// Install the handlers (once per process). Fails only if `sigaction` does.
pub(crate) fn install() -> Result<(), String> {
    PREVIOUS
        .get_or_init(|| {
            let act = SigAction::new(
                SigHandler::SigAction(handler),
                SaFlags::SA_SIGINFO | SaFlags::SA_ONSTACK,
                SigSet::empty(),
            );
            let mut prev = [default_action(); 3];
            for (i, &sig) in SIGNALS.iter().enumerate() {
                // SAFETY: `handler` has the SA_SIGINFO signature, is async-signal-safe
                // (it allocates nothing and takes no locks) and passes every fault
                // that is not ours to the previous handler kept here.
                prev[i] = unsafe { sigaction(sig, &act) }
                    .map_err(|e| format!("cannot install the fault handler: {e}"))?;
            }
            let kick = SigAction::new(
                SigHandler::SigAction(kick_handler),
                SaFlags::SA_SIGINFO | SaFlags::SA_ONSTACK | SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            // SAFETY: `kick_handler` has the SA_SIGINFO signature, is async-signal-safe
            // (two atomic operations and a volatile update of the running instance's
            // gas counter) and passes every other SIGURG to the previous handler.
            prev[2] = unsafe { sigaction(KICK_SIGNAL, &kick) }
                .map_err(|e| format!("cannot install the interrupt handler: {e}"))?;
            Ok(prev)
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

fn default_action() -> SigAction {
    SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty())
}

/// An alternate signal stack this module allocated for the current thread.
struct AltStack {
    base: NonNull<libc::c_void>,
    len: usize,
}

const ALT_STACK_SIZE: usize = 128 << 10;

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: if the thread's alternate stack is still ours, disable it before
        // unmapping it (raw libc: nix has no wrapper for sigaltstack); `base`/`len`
        // is the mapping this value owns.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            if libc::sigaltstack(std::ptr::null(), &mut cur) == 0
                && cur.ss_sp == self.base.byte_add(4096).as_ptr()
            {
                let off = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&off, std::ptr::null_mut());
            }
            let _ = munmap(self.base, self.len);
        }
    }
}

/// Make sure this thread has an alternate signal stack.
fn ensure_alt_stack() -> Result<(), String> {
    if ALT_STACK.get() {
        return Ok(());
    }
    // SAFETY: querying the current alternate stack into a zeroed stack_t.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) } != 0 {
        return Err(format!("sigaltstack: {}", std::io::Error::last_os_error()));
    }
    if cur.ss_flags & libc::SS_DISABLE == 0 && cur.ss_size >= libc::MINSIGSTKSZ {
        ALT_STACK.set(true);
        return Ok(());
    }
    const LEN: NonZeroUsize = NonZeroUsize::new(ALT_STACK_SIZE + 4096).expect("not empty");
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let base = unsafe {
        mmap_anonymous(
            None,
            LEN,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE,
        )
    }
    .map_err(|e| format!("cannot map a signal stack: {e}"))?;
    let stack = AltStack {
        base,
        len: LEN.get(),
    };
    // SAFETY: the lowest page of our own mapping becomes a guard page.
    unsafe { mprotect(base, 4096, ProtFlags::PROT_NONE) }
        .map_err(|e| format!("cannot install a signal stack: {e}"))?;
    let st = libc::stack_t {
        // SAFETY: 4096 < LEN: the stack is the rest of the mapping.
        ss_sp: unsafe { base.byte_add(4096).as_ptr() },
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: registers the stack, which `OWN_STACK` keeps mapped while it is
    // registered, for this thread only (nix has no wrapper for sigaltstack).
    if unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) } != 0 {
        return Err(format!(
            "cannot install a signal stack: {}",
            std::io::Error::last_os_error()
        ));
    }
    OWN_STACK.with(|s| *s.borrow_mut() = Some(stack));
    ALT_STACK.set(true);
    Ok(())
}

/// Make this thread ready to run the compiled code of the window whose guest base
/// is `base` (never null): handlers installed and alternate stack set (once per
/// thread), `base` the thread's GS base, through which compiled code addresses
/// guest memory and its context. Returns the thread's id. When the window is the
/// one this thread entered last, this is one thread-local read and one compare: a
/// GS base is recorded only after the thread was prepared.
#[inline(always)]
pub(crate) fn enter_window(base: *mut u8) -> Result<i32, String> {
    let (gs_base, tid) = THREAD.with(|t| (t.gs_base.get(), t.tid.get()));
    if gs_base == base as usize {
        return Ok(tid);
    }
    enter_window_slow(base as usize)
}

/// [`enter_window`] on a thread's first entry or after it ran another window.
#[cold]
#[inline(never)]
fn enter_window_slow(base: usize) -> Result<i32, String> {
    let mut tid = THREAD.with(|t| t.tid.get());
    if tid == 0 {
        install()?;
        ensure_alt_stack()?;
        tid = nix::unistd::gettid().as_raw();
        THREAD.with(|t| t.tid.set(tid));
    }
    set_gs_base(base)?;
    THREAD.with(|t| t.gs_base.set(base));
    Ok(tid)
}

/// Subtract the interrupt bias from the gas counter `gas` unless `kick` says it
/// carries it already. Called on the running thread only: by the run loop before it
/// enters compiled code and by [`kick_handler`].
///
/// # Safety
/// `gas` is the running instance's gas counter and `kick` its [`Kick`]; no Rust
/// reference covers the counter while this runs.
#[inline]
pub(crate) unsafe fn bias(gas: *mut i64, kick: &Kick) {
    if kick.biased.swap(1, Ordering::SeqCst) == 0 {
        // SAFETY: the caller's contract; volatile, as a signal handler may do this
        // between any two instructions of the thread that owns the counter.
        unsafe { gas.write_volatile(gas.read_volatile().wrapping_sub(i64::MAX)) };
    }
}

/// Remove the interrupt bias, if the counter carries it, after compiled code has
/// returned, and then clear [`Kick::tid`] so that the next entry looks at the flag
/// again. On the path of every exit, so it is one plain load when there is no
/// bias: with this thread no longer marked as running the instance, [`kick_handler`]
/// leaves `kick` alone, and nothing else changes `biased`.
///
/// # Safety
/// As for [`bias`], and this thread is not marked as running the instance (no
/// [`ActiveGuard`] for it is alive).
#[inline]
pub(crate) unsafe fn unbias(gas: *mut i64, kick: &Kick) {
    if kick.biased.load(Ordering::Relaxed) != 0 {
        kick.biased.store(0, Ordering::Relaxed);
        // A request may still be pending (the exit was not at an interrupt point,
        // or was a host call): the next entry must look at the flag.
        kick.tid.store(0, Ordering::Relaxed);
        // SAFETY: as in `bias`.
        unsafe { gas.write_volatile(gas.read_volatile().wrapping_add(i64::MAX)) };
    }
}

/// Ask thread `tid` of this process to look at its running instance's interrupt
/// flag (see the module documentation). A thread that has exited meanwhile is not
/// an error: the request stays in the flag for the instance's next entry.
pub(crate) fn kick(tid: i32) {
    if tid == 0 {
        return;
    }
    let pid = nix::unistd::getpid().as_raw();
    // SAFETY: `tgkill` only sends a signal, to a thread of this very process (nix
    // has no wrapper for it); SIGURG's handler is installed (`tid` entered compiled
    // code, so `install` succeeded), and a thread id reused meanwhile by another
    // thread of this process gets a SIGURG its handler ignores.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::c_long::from(pid),
            libc::c_long::from(tid),
            libc::c_long::from(libc::SIGURG),
        );
    }
}

extern "C" fn kick_handler(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let running = THREAD.with(|t| t.current.get());
    if !running.is_null() && !uctx.is_null() {
        // SAFETY: `current` is set only by ActiveGuard, whose `Running` outlives the
        // guard, and only on this thread; its flag and kick live as long as the
        // instance, and its context's gas counter is changed by this thread only.
        // The kernel passes a valid ucontext for SA_SIGINFO handlers.
        unsafe {
            let r = &*running;
            if (*r.interrupt).load(Ordering::SeqCst) {
                let uc = &mut *uctx.cast::<libc::ucontext_t>();
                let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
                if gas_in_r15(r, rip) {
                    // The interrupted code keeps the counter in R15: bias the saved
                    // register, which the kernel restores on return.
                    if (*r.kick).biased.swap(1, Ordering::SeqCst) == 0 {
                        let g = &mut uc.uc_mcontext.gregs[libc::REG_R15 as usize];
                        *g = g.wrapping_sub(i64::MAX);
                    }
                } else {
                    bias(&raw mut (*r.ctx).gas, &*r.kick);
                }
                return;
            }
        }
    }
    chain(sig, info, uctx);
}

/// Whether code interrupted at `rip` holds the gas counter in R15: anywhere in the
/// compiled code except the trampoline before its load of the counter and the exit
/// path after its store (up to the first block).
fn gas_in_r15(r: &Running, rip: usize) -> bool {
    rip >= r.gas_live_addr
        && rip < r.code_start + r.code_len
        && !(rip > r.exit_addr && rip < r.blocks_addr)
}

/// Whether this host lets user code write the GS base with `wrgsbase` (the CPU's
/// FSGSBASE feature, enabled by Linux 5.9 and later); elsewhere it is set with the
/// `arch_prctl` system call.
fn gs_base_writable() -> bool {
    const HWCAP2_FSGSBASE: libc::c_ulong = 1 << 1;
    // SAFETY: `getauxval` only reads the process's auxiliary vector.
    unsafe { libc::getauxval(libc::AT_HWCAP2) & HWCAP2_FSGSBASE != 0 }
}

/// Make `b` this thread's GS base (for [`enter_window_slow`], which records it).
fn set_gs_base(b: usize) -> Result<(), String> {
    /// `arch_prctl` code that sets the GS base (asm/prctl.h).
    const ARCH_SET_GS: libc::c_int = 0x1001;
    static WRITABLE: OnceLock<bool> = OnceLock::new();
    if *WRITABLE.get_or_init(gs_base_writable) {
        // SAFETY: `wrgsbase` is enabled (checked above) and changes only this
        // thread's GS base, which neither Rust nor the C library uses on x86-64
        // Linux.
        unsafe { std::arch::asm!("wrgsbase {}", in(reg) b, options(nostack, preserves_flags)) };
    } else {
        // SAFETY: as above, through the system call older kernels offer.
        if unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, b) } != 0 {
            return Err(format!(
                "cannot set the GS base for compiled code: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Marks `running` as the instance on this thread until dropped. Guards never
/// nest: one lives only around a call into compiled code, which cannot call back
/// into the host, so dropping one leaves no instance marked. It holds this
/// thread's [`ThreadState::current`] slot, so that the unmarking needs no second
/// thread-local lookup (the raw pointer also keeps the guard on its thread: it is
/// not `Send`).
pub(crate) struct ActiveGuard(*const Cell<*const Running>);

impl ActiveGuard {
    #[inline]
    pub(crate) fn new(running: &Running) -> ActiveGuard {
        THREAD.with(|t| {
            debug_assert!(t.current.get().is_null(), "nested entry into compiled code");
            t.current.set(running);
            ActiveGuard(&t.current)
        })
    }
}

impl Drop for ActiveGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the pointer is this thread's `current` slot, which lives as long
        // as the thread; the guard cannot leave the thread (it is not `Send`) and
        // is dropped within the call that made it.
        unsafe { (*self.0).set(std::ptr::null()) };
    }
}

/// What to do with a fault of ours.
enum Outcome {
    /// The pages are ready: re-execute the instruction.
    Retry,
    /// Leave through the exit path.
    Exit(ExitKind, u64),
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let (running, in_handler) = THREAD.with(|t| (t.current.get(), t.in_handler.get()));
    if running.is_null() || in_handler || uctx.is_null() || info.is_null() {
        return chain(sig, info, uctx);
    }
    // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
    let uc = unsafe { &mut *uctx.cast::<libc::ucontext_t>() };
    // SAFETY: `current` is set only by ActiveGuard, whose `Running` outlives the
    // guard, and only on this thread.
    let r = unsafe { &*running };
    let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
    if rip < r.code_start || rip >= r.code_start + r.code_len {
        return chain(sig, info, uctx);
    }
    // SAFETY: `side`/`side_len` describe the module's side table, alive as long as
    // the instance that set `current`.
    let side = unsafe { std::slice::from_raw_parts(r.side, r.side_len) };
    let native = (rip - r.code_start) as u32;
    let Ok(i) = side.binary_search_by_key(&native, |e| e.native) else {
        return chain(sig, info, uctx);
    };
    let entry = side[i];
    // SAFETY: `info` is the kernel's siginfo for a fault signal.
    let fault = unsafe { (*info).si_addr() } as usize;
    let base = r.guest_base as usize;
    if fault < base || fault >= base + GUEST_SIZE + GUARD_SIZE {
        return chain(sig, info, uctx);
    }
    // The access has not happened, so its base register still holds its operand.
    let addr = entry.guest_addr(&uc.uc_mcontext.gregs);
    THREAD.with(|t| t.in_handler.set(true));
    let outcome = access(r, addr, u32::from(entry.width), entry.write);
    THREAD.with(|t| t.in_handler.set(false));
    if let Outcome::Exit(kind, arg) = outcome {
        // SAFETY: `ctx` is the running instance's context, not otherwise borrowed
        // while guest code runs.
        let ctx = unsafe { &mut *r.ctx };
        ctx.fault_addr = arg;
        entry.fix_up(&mut uc.uc_mcontext.gregs);
        // The exit path takes the exit in RDX, the scratch register.
        uc.uc_mcontext.gregs[libc::REG_RDX as usize] =
            crate::ctx::pack_exit(kind, entry.idx) as i64;
        uc.uc_mcontext.gregs[libc::REG_RIP as usize] = r.exit_addr as i64;
    }
}

/// The shared access rule, applied from the handler.
fn access(r: &Running, addr: u32, width: u32, write: bool) -> Outcome {
    // SAFETY: the page map belongs to the running instance and nothing else touches
    // it while its guest code runs on this thread.
    let map = unsafe { &mut *r.map };
    if write {
        // Compiled stores check the write shadow and never fault on a page the
        // states allow; a store that reaches the hardware is a bug, not a retry.
        return Outcome::Exit(ExitKind::Inconsistent, u64::from(addr));
    }
    let plan = match map.plan(addr, width, false, 0) {
        Ok(p) => p,
        Err(bad) => return Outcome::Exit(ExitKind::Fault, u64::from(bad.addr)),
    };
    if u64::from(addr) + u64::from(width) > 1 << 32 {
        // Accepted but wrapping past 2^32: the run loop performs it byte by byte.
        return Outcome::Exit(ExitKind::Emulate, 0);
    }
    let mut changed = false;
    for &(page, before, _) in plan.pages() {
        if before != PageState::NotPresent {
            continue;
        }
        let Some(unit) = map.unit_to_materialize(page) else {
            continue;
        };
        changed = true;
        // SAFETY: the unit's pages lie inside this instance's window.
        if let Err(errno) = unsafe { materialize_unit(r.guest_base, &unit, map.layout()) } {
            return Outcome::Exit(ExitKind::HostError, errno as u64);
        }
        map.mark_unit_present(&unit);
    }
    if !changed {
        // The hardware refused an access the page states allow: never retry blindly.
        return Outcome::Exit(ExitKind::Inconsistent, u64::from(addr));
    }
    map.commit(&plan);
    Outcome::Retry
}

/// Make `unit` accessible: make it readable and writable in one `mprotect`, then
/// fill its pages from their source slabs (zero pages need nothing: the window's
/// pages are zero until materialized, and a unit is materialized once). Every unit
/// is read-write in hardware, pinned ones too: compiled stores are checked against
/// the write shadow, which never allows a page that is not `PresentRw`, and a second
/// `mprotect` per pinned unit would cost as much as the rest of its first touch.
///
/// # Safety
/// `base` is the guest base of a live window owned by the caller's instance, `unit`
/// a unit of that instance's page map and `layout` its layout.
pub(crate) unsafe fn materialize_unit(
    base: *mut u8,
    unit: &Unit,
    layout: &MemoryLayout,
) -> Result<(), i32> {
    // SAFETY: the unit's pages are inside the window (caller's contract); they were
    // inaccessible, so nothing reads them concurrently.
    unsafe {
        protect(
            base,
            unit.first,
            unit.pages,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        )?;
        for page in unit.page_addrs() {
            if let Some(src) = layout.source(page) {
                std::ptr::copy_nonoverlapping(
                    src.bytes().as_ptr(),
                    base.add(page as usize),
                    PAGE_SIZE as usize,
                );
            }
        }
    }
    Ok(())
}

/// Pass a signal that is not ours to the previous handler.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let idx = match sig {
        libc::SIGBUS => 1,
        libc::SIGURG => 2,
        _ => 0,
    };
    let prev = match PREVIOUS.get() {
        Some(Ok(p)) => p[idx],
        _ => default_action(),
    };
    match prev.handler() {
        SigHandler::SigDfl | SigHandler::SigIgn if sig == libc::SIGURG => {
            // Ignored by default: nothing to do.
        }
        SigHandler::SigDfl | SigHandler::SigIgn => {
            // Restore the default action and return: the fault repeats and the
            // process dies loudly, as it would have without us.
            if let Ok(signal) = Signal::try_from(sig) {
                // SAFETY: installing SIG_DFL for a fault signal.
                let _ = unsafe { sigaction(signal, &default_action()) };
            }
        }
        SigHandler::Handler(f) => f(sig),
        SigHandler::SigAction(f) => f(sig, info, uctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Running` with only the code addresses set: code at 0x1000..0x2000, the
    /// trampoline at its start, the counter loaded at 0x1010, the exit path at
    /// 0x1040, the first block at 0x1080.
    fn running() -> Running {
        Running {
            code_start: 0x1000,
            code_len: 0x1000,
            side: std::ptr::null(),
            side_len: 0,
            guest_base: std::ptr::null_mut(),
            map: std::ptr::null_mut(),
            ctx: std::ptr::null_mut(),
            entry_addr: 0x1000,
            exit_addr: 0x1040,
            gas_live_addr: 0x1010,
            blocks_addr: 0x1080,
            interrupt: std::ptr::null(),
            kick: std::ptr::null(),
        }
    }

    #[test]
    fn the_counter_is_in_r15_exactly_between_its_load_and_its_store() {
        let r = running();
        for (rip, live) in [
            (0x0fff, false), // host code before the code
            (0x1000, false), // the trampoline, before the load
            (0x100f, false),
            (0x1010, true), // just past the load
            (0x1030, true), // between the two
            (0x1040, true), // the exit path, its store not yet executed
            (0x1041, false),
            (0x1049, false), // past the store
            (0x107f, false), // the padding before the first block
            (0x1080, true),  // the blocks and their stubs
            (0x1fff, true),
            (0x2000, false), // past the code
        ] {
            assert_eq!(gas_in_r15(&r, rip), live, "rip {rip:#x}");
        }
    }
}
