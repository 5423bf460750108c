//! The [`Vm`] driver (docs/DESIGN-DECISIONS.md, the `Vm` driver): invoking instances by hash on either engine,
//! calls between instances, yields routed to catchers and resumed, and settling the
//! post-state into new instance caps.
//!
//! A `Vm` owns an engine, a cache of prepared images (decoded and compiled once)
//! and one call stack; the [`CacheDirectory`] of caps is the caller's and is borrowed
//! per call. Guest behaviour — a trap, a fault, running out of gas — is a
//! [`CallResult`]; a [`VmError`] is a failure of the host or of the caller's input,
//! and never a panic.

use javm_cap::{CacheDirectory, CapError, CapHash, StoreError};
use javm_exec::{Engine, EngineError, EngineKind, GasProfile, Interpreter};

use crate::build::BuildError;
use crate::driver::Driver;
use crate::kernel_assist::{HostError, KernelAssist};
pub use crate::stats::{OpCount, VmStats};

/// The largest call depth (instance entries on the stack).
pub const MAX_CALL_DEPTH: usize = 256;

/// How a guest fault ended an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// `trap`, the implicit trap past the code, or a host-op error.
    Trap,
    /// An invalid instruction or jump, and why.
    Panic(javm_exec::PanicReason),
    /// An access to an inaccessible page (the page's address).
    PageFault(u32),
    /// The gas pool ran out and no catcher took the out-of-gas marker.
    OutOfGas,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Trap => f.write_str("trap"),
            Fault::Panic(why) => write!(f, "panic ({why})"),
            Fault::PageFault(a) => write!(f, "page-fault {a:#x}"),
            Fault::OutOfGas => f.write_str("out-of-gas"),
        }
    }
}

impl CallResult {
    /// How the call ended, in words: `halt`, `faulted (<reason>)` or `paused`.
    pub fn kind(&self) -> String {
        match self {
            CallResult::Halt { .. } => "halt".into(),
            CallResult::Faulted { reason, .. } => format!("faulted ({reason})"),
            CallResult::Paused { .. } => "paused".into(),
        }
    }
}

/// The outcome of [`Vm::invoke_cached`] or [`Vm::call_resume`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// The instance replied (`ecalli 0`, or a jump to the halt address).
    Halt {
        /// φ7 at the reply.
        return_value: u64,
        /// The settled post-state, published in the cache.
        post_instance_hash: CapHash,
        /// What the instance left in its slot 0 (taken out of the post-state).
        reflected_slot0: Option<CapHash>,
        /// Gas used by this call (including the frame cost of every CALL).
        gas_used: u64,
    },
    /// The instance faulted; nothing was published.
    Faulted {
        /// Why.
        reason: Fault,
        /// What the top-level instance held in slot 0 at the fault.
        reflected_slot0: Option<CapHash>,
        /// Gas used by this call.
        gas_used: u64,
    },
    /// A yield (or the out-of-gas marker) was caught: resume with
    /// [`Vm::call_resume`], after a [`Vm::top_up`] for out of gas.
    Paused {
        /// The marker yielded ([`OUT_OF_GAS_MARKER`] for out of gas).
        marker_payload: CapHash,
        /// Gas used by this call so far.
        gas_used: u64,
    },
}

impl CallResult {
    /// Gas used.
    pub fn gas_used(&self) -> u64 {
        match self {
            CallResult::Halt { gas_used, .. }
            | CallResult::Faulted { gas_used, .. }
            | CallResult::Paused { gas_used, .. } => *gas_used,
        }
    }
}

/// The marker of the synthetic yield an out-of-gas raises: SHA-256 of
/// `javm/kernel/out-of-gas`. A catcher whose marker set holds it receives a `Paused`
/// instead of the invocation faulting.
pub const OUT_OF_GAS_MARKER: CapHash = crate::hostops::OUT_OF_GAS_MARKER;

/// A failure of the host or of the caller's input (never of the guest).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// The instance could not be built from its caps.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// The gas budget is above 2^63 - 1.
    #[error("gas budget {0} is above the maximum 2^63 - 1")]
    InvalidGas(u64),
    /// `invoke_cached` while an invocation is paused.
    #[error("an invocation is paused: resume it with call_resume or drop it with abandon")]
    Busy,
    /// `call_resume` or `top_up` with no paused invocation.
    #[error("no invocation is paused")]
    NotPaused,
    /// The cap store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A cap could not be built or hashed.
    #[error("{0}")]
    Cap(#[from] CapError),
    /// The engine failed.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The embedder's kernel failed.
    #[error("kernel: {0}")]
    Host(#[from] HostError),
}

/// Configuration of a [`Vm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Gas profile (default `jar1`).
    pub profile: GasProfile,
    /// Call-depth limit, at most [`MAX_CALL_DEPTH`] (default).
    pub max_depth: usize,
    /// Decoded images kept (default 1024).
    pub image_cache_capacity: usize,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            profile: GasProfile::Jar1,
            max_depth: MAX_CALL_DEPTH,
            image_cache_capacity: 1024,
        }
    }
}

/// Whether the recompiler is compiled in (cargo feature `jit`) and can run on this
/// host (x86-64 Linux with BMI1, BMI2, LZCNT and POPCNT).
pub fn jit_available() -> bool {
    #[cfg(jit)]
    {
        javm_jit_x86::is_available()
    }
    #[cfg(not(jit))]
    {
        false
    }
}

/// The engine `auto` picks: the recompiler where it runs, else the interpreter.
pub fn auto_engine() -> EngineKind {
    if jit_available() {
        EngineKind::Jit
    } else {
        EngineKind::Interp
    }
}

/// The driver on an engine chosen at compile time: the same driver as [`Vm`], for
/// embedders (and test harnesses) that bring their own [`Engine`] implementation.
pub struct EngineVm<E: Engine, K: KernelAssist> {
    kernel: K,
    driver: Driver<E>,
}

impl<E: Engine, K: KernelAssist> EngineVm<E, K> {
    /// A driver on `engine`; `config.max_depth` is clamped to 1..=[`MAX_CALL_DEPTH`].
    pub fn new(engine: E, kernel: K, config: VmConfig) -> Self {
        let config = VmConfig {
            max_depth: config.max_depth.clamp(1, MAX_CALL_DEPTH),
            ..config
        };
        EngineVm {
            kernel,
            driver: Driver::new(engine, config),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.driver.engine
    }

    /// The kernel.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// The kernel, mutably (to top up meters, register catchers, ...).
    pub fn kernel_mut(&mut self) -> &mut K {
        &mut self.kernel
    }

    /// See [`Vm::invoke_cached`].
    pub fn invoke_cached(
        &mut self,
        cache: &CacheDirectory,
        instance: &CapHash,
        endpoint: u32,
        args: [u64; 4],
        gas_budget: u64,
    ) -> Result<CallResult, VmError> {
        self.driver.invoke(
            &mut self.kernel,
            cache,
            instance,
            endpoint,
            args,
            gas_budget,
        )
    }

    /// See [`Vm::call_resume`].
    pub fn call_resume(
        &mut self,
        cache: &CacheDirectory,
        scratchpad: Option<CapHash>,
    ) -> Result<CallResult, VmError> {
        self.driver.resume(&mut self.kernel, cache, scratchpad)
    }

    /// See [`Vm::top_up`].
    pub fn top_up(&mut self, gas: u64) -> Result<(), VmError> {
        self.driver.top_up(gas)
    }

    /// See [`Vm::is_paused`].
    pub fn is_paused(&self) -> bool {
        self.driver.is_paused()
    }

    /// See [`Vm::abandon`].
    pub fn abandon(&mut self) {
        self.driver.abandon()
    }

    /// See [`Vm::cached_images`].
    pub fn cached_images(&self) -> usize {
        self.driver.cached_images()
    }

    /// See [`Vm::stats`].
    pub fn stats(&self) -> &VmStats {
        &self.driver.stats
    }

    /// See [`Vm::reset_stats`].
    pub fn reset_stats(&mut self) {
        self.driver.stats = VmStats::default();
    }
}

enum Core<K: KernelAssist> {
    Interp(EngineVm<Interpreter, K>),
    #[cfg(jit)]
    Jit(EngineVm<javm_jit_x86::Recompiler, K>),
}

macro_rules! with_core {
    ($core:expr, $d:ident => $body:expr) => {
        match $core {
            Core::Interp($d) => $body,
            #[cfg(jit)]
            Core::Jit($d) => $body,
        }
    };
}

/// The driver: runs instances by hash on one engine, with a [`KernelAssist`].
pub struct Vm<K: KernelAssist> {
    core: Core<K>,
}

impl<K: KernelAssist> Vm<K> {
    /// A driver on engine `kind` with the default configuration.
    pub fn new(kind: EngineKind, kernel: K) -> Result<Self, VmError> {
        Self::with_config(kind, kernel, VmConfig::default())
    }

    /// A driver on engine `kind`. Fails if the engine is not available here.
    pub fn with_config(kind: EngineKind, kernel: K, config: VmConfig) -> Result<Self, VmError> {
        let core = match kind {
            EngineKind::Interp => Core::Interp(EngineVm::new(Interpreter::new(), kernel, config)),
            #[cfg(jit)]
            EngineKind::Jit => Core::Jit(EngineVm::new(
                javm_jit_x86::Recompiler::new()?,
                kernel,
                config,
            )),
            #[cfg(not(jit))]
            EngineKind::Jit => {
                return Err(VmError::Engine(EngineError::Unavailable(
                    "the x86-64 recompiler is not available on this host; use the interpreter"
                        .into(),
                )));
            }
        };
        Ok(Vm { core })
    }

    /// The engine this driver runs.
    pub fn engine(&self) -> EngineKind {
        match &self.core {
            Core::Interp(_) => EngineKind::Interp,
            #[cfg(jit)]
            Core::Jit(_) => EngineKind::Jit,
        }
    }

    /// The kernel.
    pub fn kernel(&self) -> &K {
        with_core!(&self.core, v => v.kernel())
    }

    /// The kernel, mutably (to top up meters, register catchers, ...).
    pub fn kernel_mut(&mut self) -> &mut K {
        with_core!(&mut self.core, v => v.kernel_mut())
    }

    /// Invoke instance `instance` (published in `cache` or its store) at `endpoint`
    /// with `args` in φ7..φ10 and a gas pool of `gas_budget`, charging
    /// `call_frame_cost` first. On `Halt` the post-instance is published in `cache`
    /// (commit the cache to persist it).
    pub fn invoke_cached(
        &mut self,
        cache: &CacheDirectory,
        instance: &CapHash,
        endpoint: u32,
        args: [u64; 4],
        gas_budget: u64,
    ) -> Result<CallResult, VmError> {
        with_core!(&mut self.core, v => v.invoke_cached(cache, instance, endpoint, args, gas_budget))
    }

    /// Resume a paused invocation; `scratchpad`, if given, is put in the resumed
    /// instance's slot 0.
    pub fn call_resume(
        &mut self,
        cache: &CacheDirectory,
        scratchpad: Option<CapHash>,
    ) -> Result<CallResult, VmError> {
        with_core!(&mut self.core, v => v.call_resume(cache, scratchpad))
    }

    /// Add `gas` to a paused invocation's pool.
    pub fn top_up(&mut self, gas: u64) -> Result<(), VmError> {
        with_core!(&mut self.core, v => v.top_up(gas))
    }

    /// Whether an invocation is paused.
    pub fn is_paused(&self) -> bool {
        with_core!(&self.core, v => v.is_paused())
    }

    /// Drop a paused invocation (nothing of it is published).
    pub fn abandon(&mut self) {
        with_core!(&mut self.core, v => v.abandon())
    }

    /// Number of decoded images held by the image cache.
    pub fn cached_images(&self) -> usize {
        with_core!(&self.core, v => v.cached_images())
    }

    /// Counters of what this driver has done since it was built (or since
    /// [`Vm::reset_stats`]): host ops by outcome, calls, pauses, the deepest stack.
    pub fn stats(&self) -> &VmStats {
        with_core!(&self.core, v => v.stats())
    }

    /// Zero the counters of [`Vm::stats`].
    pub fn reset_stats(&mut self) {
        with_core!(&mut self.core, v => v.reset_stats())
    }
}

impl<K: KernelAssist + std::fmt::Debug> std::fmt::Debug for Vm<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("engine", &self.engine())
            .field("paused", &self.is_paused())
            .field("kernel", self.kernel())
            .finish()
    }
}
