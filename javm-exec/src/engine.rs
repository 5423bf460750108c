//! The [`Engine`] trait both engines implement, the guest [`Exit`]s
//! they return as values, and the [`ModuleCache`] they share programs through.
//!
//! Guest outcomes (halt, panic, trap, out of gas, page fault, host call, ecall) are
//! [`Exit`] values. Failures of the host or the engine itself are [`EngineError`]s.
//! Nothing here panics on guest input.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use thiserror::Error;

use crate::gas::{GasProfile, GasSchedule};
use crate::isa::{NUM_REGS, Reg};
use crate::memory::{MemoryLayout, PageAccess, PageKind, PageState};
use crate::program::Program;

/// Why [`Instance::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exit {
    /// A dynamic jump to `0xFFFF0000`.
    Halt,
    /// An invalid instruction, a bad jump target, `sbrk` under `jar1`, or (under
    /// `gp`) a bad access below 0x10000; [`Instance::panic_reason`] says which.
    Panic,
    /// `trap` (opcode 0), including the implicit trap past the end of the code.
    Trap,
    /// Not enough gas to enter a block (remaining gas is reported as 0).
    OutOfGas,
    /// An access to an inaccessible page (or a store to a read-only one); the page's
    /// address. Resuming retries the instruction.
    PageFault(u32),
    /// `ecalli`: a host call with the given id. Resuming continues after it.
    HostCall(u32),
    /// `ecall` (opcode 3). Resuming continues after it.
    Ecall,
    /// An [`InterruptHandle`] stopped the run at the start of a block (not yet
    /// charged). Resuming continues there.
    Interrupted,
}

impl Exit {
    /// The exit's kind as a short name: `halt`, `panic`, `trap`, `out-of-gas`,
    /// `page-fault`, `host-call` or `ecall`.
    pub fn name(&self) -> &'static str {
        match self {
            Exit::Halt => "halt",
            Exit::Panic => "panic",
            Exit::Trap => "trap",
            Exit::OutOfGas => "out-of-gas",
            Exit::PageFault(_) => "page-fault",
            Exit::HostCall(_) => "host-call",
            Exit::Ecall => "ecall",
            Exit::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::PageFault(a) => write!(f, "page-fault {a:#x}"),
            Exit::HostCall(id) => write!(f, "host-call {id}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Stops a running instance from another thread ([`Instance::interrupt_handle`]).
///
/// [`InterruptHandle::interrupt`] asks the instance to stop; it stops at the next
/// point where it checks — the interpreter at every block entry, the recompiler at
/// the entry of every block that a backward branch or the jump table can reach, so
/// within a bounded run of straight-line code — with [`Exit::Interrupted`], before
/// that block is charged. The request stays pending until a run takes it, so an
/// interrupt made between runs stops the next run at its first check. Checking
/// costs no gas: a run that is never interrupted has the same gas, state and exits
/// as without a handle.
#[derive(Clone, Default)]
pub struct InterruptHandle(Arc<InterruptShared>);

/// The request flag and the engine's notifier, shared by every clone of a handle.
#[derive(Default)]
struct InterruptShared {
    /// Whether a request is pending: the truth every engine decides by.
    flag: AtomicBool,
    /// Told of every request as it is made, if the engine installed one.
    notify: Mutex<Option<Box<dyn InterruptNotify>>>,
}

/// What an engine installs on its instance's [`InterruptHandle`] to hear of each
/// request as it is made ([`InterruptHandle::set_notify`]).
///
/// The recompiler uses it to signal the thread running the instance, whose
/// compiled code polls nothing. A notifier is only a hint: an engine that stops
/// must still [`InterruptHandle::take`] the request, and one that finds nothing to
/// take carries on.
pub trait InterruptNotify: Send {
    /// A request was just made (the flag is already set).
    fn notify(&self);
}

impl fmt::Debug for InterruptHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptHandle")
            .field("pending", &self.is_pending())
            .finish_non_exhaustive()
    }
}

impl InterruptHandle {
    /// A handle with no request pending.
    pub fn new() -> InterruptHandle {
        InterruptHandle::default()
    }

    /// Ask the instance to stop at its next check. Callable from any thread, any
    /// number of times (one pending request at most).
    pub fn interrupt(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        if let Some(n) = &*self.notifier() {
            n.notify();
        }
    }

    /// Whether a request is pending.
    pub fn is_pending(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Take the pending request, if any (engines call this when they stop).
    pub fn take(&self) -> bool {
        self.0.flag.swap(false, Ordering::SeqCst)
    }

    /// The flag itself (non-zero byte: a request is pending), for engines that
    /// read it directly: the interpreter at its interrupt points, the recompiler's
    /// signal handler.
    pub fn flag(&self) -> &AtomicBool {
        &self.0.flag
    }

    /// Install (or with `None`, remove) the notifier every later
    /// [`InterruptHandle::interrupt`] calls, on every clone of this handle. A call
    /// in progress on another thread finishes before this returns, so an engine may
    /// free what its notifier points to once it has removed it.
    pub fn set_notify(&self, notify: Option<Box<dyn InterruptNotify>>) {
        *self.notifier() = notify;
    }

    fn notifier(&self) -> std::sync::MutexGuard<'_, Option<Box<dyn InterruptNotify>>> {
        // A notifier that panicked leaves nothing half-done: the flag is set first.
        self.0
            .notify
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Which engine to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// The interpreter (every platform).
    Interp,
    /// The x86-64 recompiler (x86-64 Linux only).
    Jit,
}

impl EngineKind {
    /// The engine's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Interp => "interp",
            EngineKind::Jit => "jit",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "interp" => Ok(EngineKind::Interp),
            "jit" => Ok(EngineKind::Jit),
            _ => Err(format!("unknown engine `{s}` (expected `interp` or `jit`)")),
        }
    }
}

/// A failure of the host or the engine (never a guest outcome).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Gas must be in `0..=i64::MAX`.
    #[error("gas {0} is out of range: it must be between 0 and 2^63 - 1")]
    InvalidGas(i128),
    /// The module was prepared for another schedule than the layout needs.
    #[error("module priced for {module} but the layout needs {layout}")]
    ScheduleMismatch {
        /// The module's schedule.
        module: GasSchedule,
        /// The schedule the layout selects.
        layout: GasSchedule,
    },
    /// `run` after a halt, panic or trap, with no new PC set.
    #[error("the instance has finished ({0}); set a new PC to run it again")]
    Finished(Exit),
    /// The host could not provide memory for the instance.
    #[error("out of host memory: {0}")]
    OutOfMemory(String),
    /// The entry PC of a new instance is an instruction inside a basic block, so
    /// running from it would skip the charge for the rest of that block.
    #[error("entry PC {0} is not the start of a basic block (gas is charged per block on entry)")]
    EntryNotBlockStart(u32),
    /// The guest's writes reached the instance's memory limit (bytes of pages that
    /// became `PresentRw`); the access was not performed, and raising the limit does
    /// not apply to a live instance.
    #[error("the guest reached its memory limit of {0} bytes of written pages")]
    MemoryLimit(u64),
    /// The engine is not available on this host or build.
    #[error("{0}")]
    Unavailable(String),
    /// An internal invariant was broken: a JAVM bug.
    #[error("internal error (a JAVM bug): {0}")]
    Internal(String),
}

/// A host access to guest memory that the guest could not make either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The page at this address is inaccessible.
    #[error("address {0:#x} is not accessible")]
    Inaccessible(u32),
    /// The page at this address is read-only.
    #[error("address {0:#x} is read-only")]
    ReadOnly(u32),
    /// The range runs past the end of the 4 GiB address space.
    #[error("range of {len} bytes at {addr:#x} runs past 2^32")]
    OutOfRange {
        /// Start address.
        addr: u32,
        /// Length.
        len: usize,
    },
    /// A page-access change was given an address that is not a page address.
    #[error("address {0:#x} is not the start of a page")]
    Unaligned(u32),
    /// The host could not change the protection of guest memory at this address;
    /// the instance cannot run again (its next run reports the host's error).
    #[error("the host could not change guest memory at {0:#x}; the instance is unusable")]
    Host(u32),
    /// The write would make more pages `PresentRw` than the instance's memory limit
    /// (bytes).
    #[error("the write would pass the instance's memory limit of {0} bytes of written pages")]
    WriteLimit(u64),
}

/// Everything an engine needs to build an instance.
#[derive(Clone, Debug)]
pub struct InstanceInit {
    /// The address space.
    pub layout: Arc<MemoryLayout>,
    /// Initial registers.
    pub regs: [u64; NUM_REGS],
    /// Entry PC. An instruction there must start a basic block under the module's
    /// profile (its gas is charged on entry; see [`Program::starts_block`]):
    /// `instantiate` rejects one in the middle of a block with
    /// [`EngineError::EntryNotBlockStart`]. A PC that is no instruction at all is
    /// accepted and panics when run, as a jump there would.
    pub pc: u32,
    /// Initial gas, `0..=i64::MAX`.
    pub gas: i64,
}

/// An execution engine: prepares programs once and builds instances of them.
pub trait Engine: Send + Sync {
    /// A program prepared for this engine under one gas schedule (a block table for
    /// the interpreter, which decodes a block on its first run; compiled for the
    /// recompiler). Shared by instances and threads.
    type Module: Send + Sync + 'static;
    /// A running instance.
    type Instance: Instance;

    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// Prepare `program` for `schedule`, reusing an earlier preparation of the same
    /// program (the same code, bitmask and jump table, [`ModuleCache`]) and schedule
    /// if one is still alive.
    fn prepare(
        &self,
        program: &Arc<Program>,
        schedule: GasSchedule,
    ) -> Result<Arc<Self::Module>, EngineError>;

    /// Build an instance. Under `jar1` the module's memory tier must be the one the
    /// layout selects (see [`GasSchedule::new`]).
    fn instantiate(
        &self,
        module: &Arc<Self::Module>,
        init: InstanceInit,
    ) -> Result<Self::Instance, EngineError>;
}

/// One instance of a program: registers, PC, gas and memory.
///
/// ## Running and resuming
///
/// [`Instance::run`] executes until an [`Exit`]. Afterwards [`Instance::pc`] is the PC
/// of the instruction that exited (for out of gas: the start of the block that could
/// not be entered). The host may change registers, gas and memory and call `run`
/// again: after a host call or ecall execution resumes at the next instruction; after
/// a page fault it retries the faulting instruction; after out of gas it retries the
/// block. Entering a block charges its gas; resuming in the middle of a block (a page
/// fault retry, or [`Instance::set_pc`] to a PC that is not a block start) charges
/// nothing until the next block. After halt, panic or trap, `run` returns
/// [`EngineError::Finished`] until [`Instance::set_pc`] is called.
///
/// ## Host memory access
///
/// [`Instance::read_memory`] and [`Instance::write_memory`] follow the guest's access
/// rights, are all-or-nothing, and charge no gas. Reads leave page states unchanged;
/// a write moves every page it touches to [`PageState::PresentRw`].
pub trait Instance {
    /// Run until the guest exits.
    fn run(&mut self) -> Result<Exit, EngineError>;

    /// Run at most one basic block: enter (and charge) the current block, execute it,
    /// and stop before entering the next one. Returns `Some(exit)` if the guest exited
    /// within the block, `None` if it completed it; then [`Instance::pc`] is the start
    /// of the next block, not yet charged.
    fn step_block(&mut self) -> Result<Option<Exit>, EngineError>;

    /// All 13 registers.
    fn regs(&self) -> [u64; NUM_REGS];
    /// One register.
    fn reg(&self, r: Reg) -> u64 {
        self.regs()[r.index()]
    }
    /// Set one register.
    fn set_reg(&mut self, r: Reg, value: u64);

    /// The PC of the last exit (see the trait docs), or the entry PC before any run.
    fn pc(&self) -> u32;
    /// Where the next `run` continues, `None` after halt, panic or trap.
    fn next_pc(&self) -> Option<u32>;
    /// Why the run panicked, after an [`Exit::Panic`] (`None` otherwise); the same
    /// on both engines ([`crate::panic::panic_reason`]).
    fn panic_reason(&self) -> Option<crate::PanicReason>;
    /// Continue at `pc` on the next `run`, charging its block if `pc` starts one.
    /// A `pc` inside a block continues there *without* charging the rest of that
    /// block: that is how a run resumes after a page fault or a host action, and it
    /// is the host's responsibility — entry points that come from a program or an
    /// image must be block starts (see [`InstanceInit::pc`]), and the `javm` driver
    /// never uses `set_pc` to enter code.
    fn set_pc(&mut self, pc: u32);

    /// Remaining gas (0 after out of gas).
    fn gas(&self) -> i64;
    /// Set the remaining gas.
    fn set_gas(&mut self, gas: i64) -> Result<(), EngineError>;

    /// Read `buf.len()` bytes at `addr`.
    fn read_memory(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Write `data` at `addr`.
    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError>;
    /// Give the `pages` pages from `addr` (a page address) the access `access`: map
    /// them as zero, read-only or read-write, or unmap them — what a host needs to
    /// page memory in after an [`Exit::PageFault`] (the run then retries the access)
    /// or to implement the Gray Paper's `pages` host call ([`PageAccess::gp_mode`]).
    /// Both engines follow one rule and reach the same page kinds, states and
    /// contents ([`crate::memory::PageMap::change_access`]); no gas is charged, and a
    /// `jar1` instance keeps the memory tier its layout chose. An unaligned address
    /// or a range past 2^32 is refused before anything changes;
    /// [`MemoryError::Host`] means the host's memory system failed midway and the
    /// instance cannot run again.
    fn set_page_access(
        &mut self,
        addr: u32,
        pages: u32,
        access: PageAccess,
    ) -> Result<(), MemoryError>;
    /// The materialization state of the page containing `addr`.
    fn page_state(&self, addr: u32) -> PageState;
    /// Every accessible page as `(page address, kind)`, in ascending order of region.
    fn accessible_pages(&self) -> Vec<(u32, PageKind)>;
    /// A handle that stops this instance's runs from another thread (see
    /// [`InterruptHandle`]); every call returns a handle to the same request flag.
    fn interrupt_handle(&self) -> InterruptHandle;

    /// Start a fresh run in this instance's memory reservation: every page back to
    /// its initial contents and `NotPresent`, the registers, PC and gas as given
    /// (checked as [`Engine::instantiate`] checks an [`InstanceInit`]), the same
    /// module, layout and memory limit. It costs what restoring the touched pages
    /// costs, and keeps the reservation (the recompiler's 4 GiB window, the
    /// interpreter's buffer) that dropping and instantiating would release and take
    /// again. On an error nothing changes.
    fn reset(&mut self, regs: [u64; NUM_REGS], pc: u32, gas: i64) -> Result<(), EngineError>;

    /// The pages whose contents may differ from the layout's, as page addresses in
    /// ascending order, in time proportional to their number: every page in
    /// [`PageState::PresentRw`] (written by the guest or the host), and every
    /// accessible page whose access the host changed
    /// ([`Instance::set_page_access`]).
    fn dirty_pages(&self) -> Vec<u32>;
}

/// Check that a module priced for `module` can run an instance of `layout` (under
/// `jar1` the memory tier must be the one the layout selects). Both engines'
/// `instantiate` call this.
pub fn check_schedule(module: GasSchedule, layout: &MemoryLayout) -> Result<(), EngineError> {
    let wanted = GasSchedule::new(module.profile(), layout.accessible_pages());
    if wanted == module {
        Ok(())
    } else {
        Err(EngineError::ScheduleMismatch {
            module,
            layout: wanted,
        })
    }
}

/// Where an instance's next `run` continues: the one resume rule both engines use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Enter (and charge) this block.
    Enter(u32),
    /// Continue at this instruction index without charging (mid-block).
    At(u32),
    /// The PC is not a position of the program: the next run panics there.
    BadPc,
    /// Halted, panicked or trapped.
    Done(Exit),
}

impl Resume {
    /// The resume point for [`Instance::set_pc`]`(pc)`: a block start (under
    /// `profile`, [`Program::starts_block`]) is entered and charged, any other
    /// position continues uncharged, anything else panics.
    pub fn at_pc(program: &Program, profile: GasProfile, pc: u32) -> Resume {
        if let Some(b) = program
            .block_starting_at(pc)
            .filter(|&b| program.starts_block(b, profile))
        {
            Resume::Enter(b)
        } else if let Some(i) = program.index_of(pc) {
            Resume::At(i)
        } else {
            Resume::BadPc
        }
    }

    /// [`Instance::panic_reason`] for an instance at this resume point whose last
    /// exit was at `pc`: the reason only once a run has ended in a panic.
    pub fn panic_reason(
        self,
        program: &Program,
        profile: GasProfile,
        pc: u32,
    ) -> Option<crate::PanicReason> {
        (self == Resume::Done(Exit::Panic))
            .then(|| crate::panic::panic_reason(program, profile, pc))
            .flatten()
    }

    /// [`Instance::next_pc`] for this resume point (`pc` is the instance's current PC).
    pub fn next_pc(self, program: &Program, pc: u32) -> Option<u32> {
        match self {
            Resume::Enter(b) => program.blocks().get(b as usize).map(|b| b.pc),
            Resume::At(i) => program.pcs().get(i as usize).copied(),
            Resume::BadPc => Some(pc),
            Resume::Done(_) => None,
        }
    }

    /// Where a run continues after block `b` ended in a host exit (`ecalli`,
    /// `ecall`): block `b + 1`, entered and charged — or, under `gp` after an
    /// `ecalli`, continued uncharged, since that block was charged with `b`.
    ///
    /// Under `jar1` every block starts one ([`Program::starts_block`]), which the
    /// inlined part decides without looking at the program: a host call's exit in
    /// a dispatch loop costs no call.
    #[inline]
    pub fn after_block(program: &Program, profile: GasProfile, b: u32) -> Resume {
        match profile {
            GasProfile::Jar1 => Resume::Enter(b + 1),
            GasProfile::Gp => Self::after_block_looked_up(program, profile, b),
        }
    }

    /// [`Resume::after_block`] by the program's blocks.
    #[inline(never)]
    fn after_block_looked_up(program: &Program, profile: GasProfile, b: u32) -> Resume {
        let next = b + 1;
        match program.blocks().get(next as usize) {
            Some(blk) if !program.starts_block(next, profile) => Resume::At(blk.first),
            _ => Resume::Enter(next),
        }
    }
}

/// Validate the entry PC of a new instance of `program` under `profile` (see
/// [`InstanceInit::pc`]).
pub fn check_entry(
    program: &crate::Program,
    profile: GasProfile,
    pc: u32,
) -> Result<(), EngineError> {
    if program.pcs().binary_search(&pc).is_ok() && !program.is_block_start(pc, profile) {
        Err(EngineError::EntryNotBlockStart(pc))
    } else {
        Ok(())
    }
}

/// Validate the start of a run — the entry PC and the gas — as `instantiate` and
/// `reset` both do: returns the gas.
pub fn check_start(
    program: &Program,
    profile: GasProfile,
    pc: u32,
    gas: i64,
) -> Result<i64, EngineError> {
    let gas = check_gas(i128::from(gas))?;
    check_entry(program, profile, pc)?;
    Ok(gas)
}

/// Validate an initial or host-set gas value.
pub fn check_gas(gas: i128) -> Result<i64, EngineError> {
    i64::try_from(gas)
        .ok()
        .filter(|g| *g >= 0)
        .ok_or(EngineError::InvalidGas(gas))
}

/// A prepared module that knows its program: what [`ModuleCache`] compares.
pub trait CachedModule {
    /// The program the module was prepared from.
    fn program(&self) -> &Program;
}

/// The most live modules a [`ModuleCache`] compares a program with (those of its
/// code and jump-table lengths and schedule). Past it, a new module is returned
/// uncached, so that programs made to share their lengths cannot make every
/// lookup compare more.
const MAX_SAME_SHAPE: usize = 8;

/// A thread-safe cache of prepared modules, keyed by program content and schedule.
///
/// A program is looked up by its code and jump-table lengths and the schedule, and
/// matches a cached module's program only if their code, bitmask and jump table
/// are equal byte for byte, so a hit is always the same program (no hash is
/// computed: a program's SHA-256, [`Program::hash`], cost more than the rest of
/// preparing it for the interpreter). It holds weak references: a module lives as
/// long as some instance or caller holds it, and a later `prepare` of the same
/// program reuses it while it does.
pub struct ModuleCache<M> {
    map: Mutex<Shapes<M>>,
}

/// The cached modules by [`Shape`], and when to next drop the dead ones.
struct Shapes<M> {
    by_shape: HashMap<Shape, Vec<Weak<M>>, ShapeHash>,
    /// The number of shapes at which an insertion drops every dead module (the
    /// shape inserted into is pruned on every insertion), so that inserting costs
    /// amortized constant time however many modules are cached.
    prune_at: usize,
}

/// What [`ModuleCache`] looks a program up by: its code length, its jump-table
/// length and the schedule.
type Shape = (usize, usize, GasSchedule);

/// The hash of [`ModuleCache`]'s map: a folded multiply of each word of a
/// [`Shape`] with a per-cache random seed. A shape is three small integers, and
/// SipHash (the standard map's default), run for the lookup and the insertion,
/// was about 600 instructions per prepare and a fifth of a cold interpreter
/// prepare's instruction-cache misses; this is a few multiplies. The seed, drawn from the standard library's random keys when
/// the cache is made, keeps collisions unpredictable to a guest choosing its
/// program's lengths (DESIGN-DECISIONS §114).
#[derive(Clone, Copy, Debug)]
struct ShapeHash {
    seed: u64,
}

impl ShapeHash {
    fn random() -> ShapeHash {
        ShapeHash {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x4A41_564D_u64),
        }
    }
}

/// The low and the high half of the 128-bit product `a × b`, combined.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// An odd constant (the fractional part of π) the words are multiplied with.
const SHAPE_MIX: u64 = 0x243F_6A88_85A3_08D3;

impl BuildHasher for ShapeHash {
    type Hasher = ShapeHasher;

    #[inline]
    fn build_hasher(&self) -> ShapeHasher {
        ShapeHasher { state: self.seed }
    }
}

/// The [`Hasher`] of [`ShapeHash`]: every integer written is mixed in with one
/// folded multiply.
#[derive(Debug)]
struct ShapeHasher {
    state: u64,
}

impl ShapeHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, SHAPE_MIX);
    }
}

impl Hasher for ShapeHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.mix(u64::from(x));
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.mix(u64::from(x));
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.mix(x);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.mix(x as u64);
    }

    #[inline]
    fn write_isize(&mut self, x: isize) {
        self.mix(x as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

impl<M> Default for ModuleCache<M> {
    fn default() -> Self {
        ModuleCache {
            map: Mutex::new(Shapes {
                by_shape: HashMap::with_hasher(ShapeHash::random()),
                prune_at: PRUNE_MIN,
            }),
        }
    }
}

/// The fewest shapes at which [`ModuleCache`] prunes the whole map.
const PRUNE_MIN: usize = 16;

impl<M: CachedModule> ModuleCache<M> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached module of `program` under `schedule`, or the one `make` builds
    /// (which is then cached).
    ///
    /// `make` runs without the cache's lock, so prepares of different programs on
    /// different threads proceed in parallel (and `make` may itself use the
    /// cache). Threads that miss on the same program at the same time may each
    /// build it; the first to finish caches its module and the others return that
    /// one, dropping theirs, so callers still share one module per program.
    pub fn get_or_try_insert<E>(
        &self,
        program: &Program,
        schedule: GasSchedule,
        make: impl FnOnce() -> Result<M, E>,
    ) -> Result<Arc<M>, E> {
        let key = (program.code().len(), program.jump_table().len(), schedule);
        if let Some(m) = self.lock().find(&key, program) {
            return Ok(m);
        }
        let made = Arc::new(make()?);
        Ok(self.lock().insert_or_find(key, program, made))
    }

    /// The map, locked. A poisoned lock only means another thread panicked while
    /// holding it; the map itself is always consistent, so keep using it.
    fn lock(&self) -> std::sync::MutexGuard<'_, Shapes<M>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<M: CachedModule> Shapes<M> {
    /// A live module of `program` among those of shape `key`.
    fn find(&self, key: &Shape, program: &Program) -> Option<Arc<M>> {
        self.by_shape
            .get(key)?
            .iter()
            .filter_map(Weak::upgrade)
            .find(|m| m.program().same_content(program))
    }

    /// The live module of `program` among those of shape `key` if another thread
    /// cached one meanwhile; else `m`, cached under `key` unless [`MAX_SAME_SHAPE`]
    /// live modules have that shape. Drops dead entries as it goes.
    fn insert_or_find(&mut self, key: Shape, program: &Program, m: Arc<M>) -> Arc<M> {
        if self.by_shape.len() >= self.prune_at {
            self.by_shape.retain(|_, ms| {
                ms.retain(|w| w.strong_count() > 0);
                !ms.is_empty()
            });
            self.prune_at = (2 * self.by_shape.len()).max(PRUNE_MIN);
        }
        let same_shape = self.by_shape.entry(key).or_default();
        if let Some(cached) = same_shape
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.program().same_content(program))
        {
            return cached;
        }
        same_shape.retain(|w| w.strong_count() > 0);
        if same_shape.len() < MAX_SAME_SHAPE {
            same_shape.push(Arc::downgrade(&m));
        }
        m
    }
}

impl<M> ModuleCache<M> {
    /// Number of live cached modules.
    pub fn len(&self) -> usize {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.by_shape
            .values()
            .flatten()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Whether no module is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_range() {
        assert_eq!(check_gas(0), Ok(0));
        assert_eq!(check_gas(i64::MAX as i128), Ok(i64::MAX));
        assert!(check_gas(-1).is_err());
        assert!(check_gas(1 << 63).is_err());
    }

    /// A module in a test cache: its program and a tag.
    struct Tagged(Arc<Program>, u32);

    impl CachedModule for Tagged {
        fn program(&self) -> &Program {
            &self.0
        }
    }

    fn program(code: &[u8], bitmask: u8, jump_table: &[u32]) -> Arc<Program> {
        Arc::new(Program::new(code.to_vec(), vec![bitmask], jump_table.to_vec()).unwrap())
    }

    #[test]
    fn after_block_decides_jar1_as_the_blocks_do() {
        let p = crate::asm::assemble(
            ".code\nmain:\n ecalli 1\n ecall\n add_imm_64 r1, r1, 1\n ecalli 2\n trap\n",
        )
        .unwrap()
        .program()
        .unwrap();
        let blocks = p.blocks().len() as u32;
        assert!(blocks >= 4, "{blocks} blocks");
        for b in 0..=blocks {
            for profile in [GasProfile::Jar1, GasProfile::Gp] {
                assert_eq!(
                    Resume::after_block(&p, profile, b),
                    Resume::after_block_looked_up(&p, profile, b),
                    "block {b}, {profile:?}"
                );
            }
            // Under gp the block after an `ecalli` is continued, not entered.
            if b + 1 < blocks
                && p.opcode(p.blocks()[b as usize + 1].first - 1)
                    == Some(crate::isa::Opcode::Ecalli)
            {
                assert_eq!(
                    Resume::after_block(&p, GasProfile::Gp, b),
                    Resume::At(p.blocks()[b as usize + 1].first)
                );
            }
        }
    }

    #[test]
    fn shapes_hash_apart_and_the_seed_changes_every_hash() {
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        let (a, b) = (ShapeHash::random(), ShapeHash::random());
        assert_ne!(a.seed, b.seed, "each cache draws its own seed");
        let schedules = [
            GasSchedule::Gp,
            GasSchedule::Jar1(crate::gas::MemTier::for_pages(1)),
            GasSchedule::Jar1(crate::gas::MemTier::for_pages(1 << 20)),
        ];
        let mut seen = HashSet::new();
        for code in 0..256usize {
            for table in 0..8usize {
                for s in schedules {
                    let shape: Shape = (code, table, s);
                    let h = a.hash_one(shape);
                    assert_eq!(h, a.hash_one(shape), "a shape always hashes alike");
                    assert_ne!(
                        h,
                        b.hash_one(shape),
                        "{shape:?} hashes alike under two seeds"
                    );
                    assert!(seen.insert(h), "{shape:?} collides with another shape");
                }
            }
        }
        // The bucket bits (the low ones) and the tag bits (the top seven) of a
        // table of 64 buckets spread: no bucket holds more than a few times its
        // share of 6 144 shapes.
        let mut buckets = [0u32; 64];
        let mut tags = [0u32; 128];
        for &h in &seen {
            buckets[(h & 63) as usize] += 1;
            tags[(h >> 57) as usize] += 1;
        }
        let share = seen.len() as u32 / 64;
        assert!(buckets.iter().all(|&n| n < 2 * share), "{buckets:?}");
        assert!(tags.iter().all(|&n| n < share), "{tags:?}");
    }

    #[test]
    fn cache_reuses_live_modules_only() {
        let cache: ModuleCache<Tagged> = ModuleCache::new();
        let p = program(&[1, 0], 0b11, &[]);
        let key = GasSchedule::Gp;
        let a = cache
            .get_or_try_insert(&p, key, || Ok::<_, ()>(Tagged(p.clone(), 7)))
            .unwrap();
        let b = cache
            .get_or_try_insert(&p, key, || Ok::<_, ()>(Tagged(p.clone(), 8)))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // The same content parsed again is the same program.
        let again = program(&[1, 0], 0b11, &[]);
        let c = cache
            .get_or_try_insert(&again, key, || Ok::<_, ()>(Tagged(again.clone(), 9)))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &c));
        drop((a, b, c));
        assert!(cache.is_empty());
        let d = cache
            .get_or_try_insert(&p, key, || Ok::<_, ()>(Tagged(p.clone(), 10)))
            .unwrap();
        assert_eq!(d.1, 10);
    }

    #[test]
    fn cache_hits_only_the_same_content_and_schedule() {
        let cache: ModuleCache<Tagged> = ModuleCache::new();
        let base = program(&[1, 0], 0b11, &[0]);
        // Same lengths, one part different each: code, bitmask, jump table.
        let others = [
            program(&[1, 1], 0b11, &[0]),
            program(&[1, 0], 0b01, &[0]),
            program(&[1, 0], 0b11, &[1]),
        ];
        let m = cache
            .get_or_try_insert(&base, GasSchedule::Gp, || {
                Ok::<_, ()>(Tagged(base.clone(), 0))
            })
            .unwrap();
        let mut kept = vec![m.clone()];
        for (i, p) in others.iter().enumerate() {
            let n = cache
                .get_or_try_insert(p, GasSchedule::Gp, || {
                    Ok::<_, ()>(Tagged(p.clone(), i as u32 + 1))
                })
                .unwrap();
            assert_eq!(n.1, i as u32 + 1, "program {i} is not the base program");
            kept.push(n);
        }
        let tier = crate::gas::GasSchedule::new(crate::gas::GasProfile::Jar1, 1);
        let n = cache
            .get_or_try_insert(&base, tier, || Ok::<_, ()>(Tagged(base.clone(), 9)))
            .unwrap();
        assert_eq!(n.1, 9, "another schedule is another module");
        kept.push(n);
        assert_eq!(cache.len(), 5);
        // Past the bound for one shape, modules are built but not cached.
        let shape: Vec<_> = (0..20u8).map(|i| program(&[i, 2], 0b11, &[0])).collect();
        for p in &shape {
            kept.push(
                cache
                    .get_or_try_insert(p, GasSchedule::Gp, || Ok::<_, ()>(Tagged(p.clone(), 0)))
                    .unwrap(),
            );
        }
        assert_eq!(cache.len(), MAX_SAME_SHAPE + 1);
    }

    #[test]
    fn modules_are_built_without_the_lock() {
        // `make` of one program prepares another through the same cache: with the
        // lock held across `make`, this would deadlock.
        let cache: ModuleCache<Tagged> = ModuleCache::new();
        let (outer, inner) = (program(&[1, 0], 0b11, &[]), program(&[0], 0b1, &[]));
        let m = cache
            .get_or_try_insert(&outer, GasSchedule::Gp, || {
                let i = cache.get_or_try_insert(&inner, GasSchedule::Gp, || {
                    Ok::<_, ()>(Tagged(inner.clone(), 2))
                })?;
                assert_eq!(i.1, 2);
                Ok::<_, ()>(Tagged(outer.clone(), 1))
            })
            .unwrap();
        assert_eq!(m.1, 1);
    }

    #[test]
    fn racing_misses_share_the_first_module_cached() {
        let cache: ModuleCache<Tagged> = ModuleCache::new();
        let p = program(&[1, 0], 0b11, &[]);
        let start = std::sync::Barrier::new(8);
        let built = std::sync::atomic::AtomicU32::new(0);
        let got: Vec<Arc<Tagged>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        cache
                            .get_or_try_insert(&p, GasSchedule::Gp, || {
                                let n = built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                std::thread::sleep(std::time::Duration::from_millis(20));
                                Ok::<_, ()>(Tagged(p.clone(), n))
                            })
                            .unwrap()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(
            got.iter().all(|m| Arc::ptr_eq(m, &got[0])),
            "every caller gets the module that was cached"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn dead_modules_are_dropped_from_the_map() {
        let cache: ModuleCache<Tagged> = ModuleCache::new();
        // Many shapes, each module dropped at once: the map keeps no more shapes
        // than twice the live ones (at least its minimum).
        for len in 1..200usize {
            let p = Arc::new(Program::new(vec![0; len], vec![0; len.div_ceil(8)], vec![]).unwrap());
            drop(
                cache.get_or_try_insert(&p, GasSchedule::Gp, || Ok::<_, ()>(Tagged(p.clone(), 0))),
            );
            let shapes = cache.map.lock().unwrap().by_shape.len();
            assert!(
                shapes <= 2 * PRUNE_MIN,
                "{shapes} shapes after {len} dead modules"
            );
        }
        assert!(cache.is_empty());
    }
}
