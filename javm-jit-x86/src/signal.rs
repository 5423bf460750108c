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
//!   ([`PageMap::plan`]): an accepted access materializes its pages (copy from the
//!   page-aligned source slab, or zeros), sets their protection from their new
//!   [`PageState`], charges copy-on-write from the live gas and resumes the
//!   instruction; anything else is redirected to the exit path with a reason.
//!
//! The handler allocates nothing and takes no locks: it reads plain memory, calls
//! `mprotect` and copies bytes.

use std::cell::Cell;
use std::sync::OnceLock;

use javm_cap::PageBytes;
use javm_exec::memory::{PAGE_SIZE, PageMap, PageState};

use crate::ctx::{ExitKind, JitContext};
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
    pub(crate) cow_cost: u64,
    /// Real gas = `ctx.gas + gas_bias` (non-zero only while stepping).
    pub(crate) gas_bias: i64,
    /// Address of the shared exit path.
    pub(crate) exit_addr: usize,
}

thread_local! {
    static CURRENT: Cell<*const Running> = const { Cell::new(std::ptr::null()) };
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
    static ALT_STACK: Cell<bool> = const { Cell::new(false) };
    /// Handlers installed and the alternate stack set for this thread.
    static READY: Cell<bool> = const { Cell::new(false) };
    static OWN_STACK: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
}

/// The previous handlers of SIGSEGV and SIGBUS.
static PREVIOUS: OnceLock<Result<[libc::sigaction; 2], String>> = OnceLock::new();

const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Install the handlers (once per process). Fails only if `sigaction` does.
pub(crate) fn install() -> Result<(), String> {
    PREVIOUS
        .get_or_init(|| {
            let mut prev = [empty_action(); 2];
            for (i, &sig) in SIGNALS.iter().enumerate() {
                let mut act = empty_action();
                act.sa_sigaction = handler as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                // SAFETY: `act` is a fully initialized sigaction whose handler has the
                // SA_SIGINFO signature; `prev[i]` receives the old action.
                let r = unsafe {
                    libc::sigemptyset(&mut act.sa_mask);
                    libc::sigaction(sig, &act, &mut prev[i])
                };
                if r != 0 {
                    return Err(format!(
                        "cannot install the fault handler: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
            Ok(prev)
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

fn empty_action() -> libc::sigaction {
    // SAFETY: sigaction is a plain C struct for which all-zero is a valid value
    // (SIG_DFL, empty mask, no flags).
    unsafe { std::mem::zeroed() }
}

/// An alternate signal stack this module allocated for the current thread.
struct AltStack {
    base: *mut libc::c_void,
    len: usize,
}

const ALT_STACK_SIZE: usize = 128 << 10;

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: if the thread's alternate stack is still ours, disable it before
        // unmapping it; `base`/`len` is the mapping this value owns.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            if libc::sigaltstack(std::ptr::null(), &mut cur) == 0
                && cur.ss_sp == self.base.add(4096)
            {
                let off = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&off, std::ptr::null_mut());
            }
            libc::munmap(self.base, self.len);
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
    let len = ALT_STACK_SIZE + 4096;
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(format!(
            "cannot map a signal stack: {}",
            std::io::Error::last_os_error()
        ));
    }
    let stack = AltStack { base, len };
    // SAFETY: the lowest page of our own mapping becomes a guard page; the stack is
    // the rest of it, registered for this thread only.
    let ok = unsafe {
        libc::mprotect(base, 4096, libc::PROT_NONE) == 0 && {
            let st = libc::stack_t {
                ss_sp: base.cast::<u8>().add(4096).cast(),
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            libc::sigaltstack(&st, std::ptr::null_mut()) == 0
        }
    };
    if !ok {
        return Err(format!(
            "cannot install a signal stack: {}",
            std::io::Error::last_os_error()
        ));
    }
    OWN_STACK.with(|s| *s.borrow_mut() = Some(stack));
    ALT_STACK.set(true);
    Ok(())
}

/// Prepare this thread to run guest code: handlers installed, alternate stack set.
/// After the first success on a thread this is one thread-local read.
#[inline]
pub(crate) fn prepare_thread() -> Result<(), String> {
    if READY.get() {
        return Ok(());
    }
    install()?;
    ensure_alt_stack()?;
    READY.set(true);
    Ok(())
}

/// Marks `running` as the instance on this thread until dropped.
pub(crate) struct ActiveGuard {
    prev: *const Running,
}

impl ActiveGuard {
    pub(crate) fn new(running: &Running) -> ActiveGuard {
        let prev = CURRENT.replace(running);
        ActiveGuard { prev }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        CURRENT.set(self.prev);
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
    let running = CURRENT.get();
    if running.is_null() || IN_HANDLER.get() || uctx.is_null() || info.is_null() {
        return chain(sig, info, uctx);
    }
    // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
    let uc = unsafe { &mut *uctx.cast::<libc::ucontext_t>() };
    // SAFETY: CURRENT is set only by ActiveGuard, whose `Running` outlives the guard,
    // and only on this thread.
    let r = unsafe { &*running };
    let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
    if rip < r.code_start || rip >= r.code_start + r.code_len {
        return chain(sig, info, uctx);
    }
    // SAFETY: `side`/`side_len` describe the module's side table, alive as long as
    // the instance that set CURRENT.
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
    // Every guest access addresses `r15 + rdx` with the 32-bit guest address in RDX.
    let addr = uc.uc_mcontext.gregs[libc::REG_RDX as usize] as u32;
    IN_HANDLER.set(true);
    let outcome = access(r, addr, u32::from(entry.width), entry.write);
    IN_HANDLER.set(false);
    if let Outcome::Exit(kind, arg) = outcome {
        // SAFETY: `ctx` is the running instance's context, not otherwise borrowed
        // while guest code runs.
        let ctx = unsafe { &mut *r.ctx };
        ctx.exit_kind = kind as u32;
        ctx.exit_idx = entry.idx;
        ctx.fault_addr = arg;
        uc.uc_mcontext.gregs[libc::REG_RIP as usize] = r.exit_addr as i64;
    }
}

/// The shared access rule, applied from the handler.
fn access(r: &Running, addr: u32, width: u32, write: bool) -> Outcome {
    // SAFETY: the page map belongs to the running instance and nothing else touches
    // it while its guest code runs on this thread.
    let map = unsafe { &mut *r.map };
    let plan = match map.plan(addr, width, write, r.cow_cost) {
        Ok(p) => p,
        Err(bad) => return Outcome::Exit(ExitKind::Fault, u64::from(bad.addr)),
    };
    if u64::from(addr) + u64::from(width) > 1 << 32 {
        // Accepted but wrapping past 2^32: the run loop performs it byte by byte.
        return Outcome::Exit(ExitKind::Emulate, 0);
    }
    // SAFETY: as for `map`: the context is the running instance's.
    let ctx = unsafe { &mut *r.ctx };
    let real_gas = i128::from(ctx.gas) + i128::from(r.gas_bias);
    if i128::from(plan.charge) > real_gas {
        return Outcome::Exit(ExitKind::CowOutOfGas, 0);
    }
    let mut changed = false;
    for &(page, before, after) in plan.pages() {
        if before == after {
            continue;
        }
        changed = true;
        // SAFETY: `page` is a page address below 2^32 inside this instance's window.
        let res =
            unsafe { materialize(r.guest_base, map.layout().source(page), page, before, after) };
        if let Err(errno) = res {
            return Outcome::Exit(ExitKind::HostError, errno as u64);
        }
    }
    if !changed {
        // The hardware refused an access the page states allow: never retry blindly.
        return Outcome::Exit(ExitKind::Inconsistent, u64::from(addr));
    }
    map.commit(&plan);
    ctx.gas -= plan.charge as i64;
    Outcome::Retry
}

/// Bring `page` from `before` to `after`: fill it from its source slab (the page's
/// layout contents) on first touch, then give it the protection of `after`.
///
/// # Safety
/// `base` is the guest base of a live window owned by the caller's instance, and
/// `page` a page address of it.
pub(crate) unsafe fn materialize(
    base: *mut u8,
    source: Option<&PageBytes>,
    page: u32,
    before: PageState,
    after: PageState,
) -> Result<(), i32> {
    if before == PageState::NotPresent
        && let Some(src) = source
    {
        // SAFETY: the page is inside the window (caller's contract); it was
        // inaccessible, so nothing reads it concurrently.
        unsafe {
            protect(base, page, libc::PROT_READ | libc::PROT_WRITE)?;
            std::ptr::copy_nonoverlapping(
                src.bytes().as_ptr(),
                base.add(page as usize),
                PAGE_SIZE as usize,
            );
        }
    }
    // SAFETY: as above.
    unsafe { protect(base, page, prot_of(after)) }
}

/// The protection that enforces a page state.
pub(crate) fn prot_of(state: PageState) -> libc::c_int {
    match state {
        PageState::NotPresent => libc::PROT_NONE,
        PageState::PresentRo => libc::PROT_READ,
        PageState::PresentRw => libc::PROT_READ | libc::PROT_WRITE,
    }
}

/// Pass a fault that is not ours to the previous handler.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    let idx = if sig == libc::SIGBUS { 1 } else { 0 };
    let prev = match PREVIOUS.get() {
        Some(Ok(p)) => p[idx],
        _ => empty_action(),
    };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default action and return: the fault repeats and the process
        // dies loudly, as it would have without us.
        let dfl = empty_action();
        // SAFETY: installing SIG_DFL for a fault signal.
        unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this
        // signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, uctx);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}
