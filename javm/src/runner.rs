//! The high-level path for running one program: [`Runner`].
//!
//! Load a program (a standard program blob, with or without a metadata prefix, a code
//! blob, or assembly text), pick the engine at run time ([`EngineChoice`]: `Auto`
//! takes the recompiler where it can run and the interpreter elsewhere, with no
//! `#[cfg]` in the caller), register host functions by `ecalli` id as closures that
//! read and write registers and memory, optionally a page-fault handler that maps
//! pages on demand, and run with an argument and a gas budget.
//! The result ([`Outcome`]) has the exit, why a panic panicked, gas used and left,
//! the registers and, on halt, the output `mem[r7 .. r7 + r8]`.
//!
//! Modules are prepared per gas schedule on demand and cached by the engine, so
//! arguments of any size (which change the memory tier of `jar1`) work with the same
//! runner.
//!
//! ```
//! use javm::runner::{EngineChoice, HostAction, Runner};
//! use javm_exec::Reg;
//!
//! let src = "load_imm r7, 40\necalli 1\nadd_imm_64 r7, r7, 2\nstore_ind_u64 r7, r1, -8\n\
//!            add_imm_64 r7, r1, -8\nload_imm r8, 8\njump_ind r0, 0\n.stack 4096";
//! let program = javm::runner::load_program(src.as_bytes()).unwrap();
//! let mut runner = Runner::new(EngineChoice::Auto).unwrap();
//! // Host call 1 doubles r7.
//! runner.host_function(1, |call| {
//!     call.set_reg(Reg::R7, call.reg(Reg::R7) * 2);
//!     HostAction::Resume
//! });
//! let out = runner.run(&program, &[], 10_000).unwrap();
//! assert_eq!(out.exit, javm_exec::Exit::Halt);
//! assert_eq!(out.output.as_deref(), Some(&82u64.to_le_bytes()[..]));
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::blob::{StandardProgram, parse_code_blob};
use javm_exec::memory::DEFAULT_MEMORY_LIMIT;
use javm_exec::{
    Engine, EngineError, EngineKind, Exit, GasProfile, GasSchedule, Instance, InstanceInit,
    Interpreter, MemoryError, NUM_REGS, PageAccess, PanicReason, Reg,
};
use thiserror::Error;

/// The largest output read on halt (the Gray Paper's `Z_I`, 16 MiB).
pub const MAX_OUTPUT: u64 = 1 << 24;

/// Which engine a [`Runner`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EngineChoice {
    /// The recompiler where it is compiled in and can run, else the interpreter.
    #[default]
    Auto,
    /// The interpreter (every platform).
    Interp,
    /// The x86-64 recompiler; [`Runner::new`] fails where it cannot run.
    Jit,
}

/// What a host function tells the run to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostAction {
    /// Continue after the `ecalli`.
    Resume,
    /// End the run with this host call as its exit.
    Stop,
}

/// A host function's (or the page-fault handler's) view of the calling instance.
pub struct Caller<'a> {
    inst: &'a mut dyn Instance,
    exit: Exit,
}

impl Caller<'_> {
    /// The exit being handled: [`Exit::HostCall`] in a host function,
    /// [`Exit::PageFault`] in the page-fault handler.
    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The `ecalli` id in a host function (0 in the page-fault handler).
    pub fn id(&self) -> u32 {
        match self.exit {
            Exit::HostCall(id) => id,
            _ => 0,
        }
    }

    /// A register.
    pub fn reg(&self, r: Reg) -> u64 {
        self.inst.reg(r)
    }

    /// Set a register.
    pub fn set_reg(&mut self, r: Reg, value: u64) {
        self.inst.set_reg(r, value);
    }

    /// Read guest memory (with the guest's read rights).
    pub fn read_memory(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inst.read_memory(addr, buf)
    }

    /// Write guest memory (with the guest's write rights; no gas is charged).
    pub fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError> {
        self.inst.write_memory(addr, data)
    }

    /// Give `pages` pages from `addr` (a page address) new access: map them as zero,
    /// read-only or read-write, or unmap them ([`Instance::set_page_access`]).
    pub fn set_page_access(
        &mut self,
        addr: u32,
        pages: u32,
        access: PageAccess,
    ) -> Result<(), MemoryError> {
        self.inst.set_page_access(addr, pages, access)
    }

    /// Remaining gas.
    pub fn gas(&self) -> i64 {
        self.inst.gas()
    }

    /// Set the remaining gas (0 to 2^63 − 1).
    pub fn set_gas(&mut self, gas: i64) -> Result<(), EngineError> {
        self.inst.set_gas(gas)
    }
}

type HostFn = Box<dyn FnMut(&mut Caller<'_>) -> HostAction + Send>;
type FaultFn = Box<dyn FnMut(&mut Caller<'_>, u32) -> HostAction + Send>;

/// Why a run could not be made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program bytes are no program this loader knows.
    #[error("not a program: {0}")]
    Load(String),
    /// The argument does not fit the standard program's argument area.
    #[error("{0}")]
    Argument(String),
    /// The gas budget is above 2^63 − 1.
    #[error("gas budget {0} is above the maximum 2^63 - 1")]
    Gas(u64),
    /// The engine failed (no recompiler here, out of host memory, the memory limit).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The result of [`Runner::run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How the run ended (a host call exit only for an id with no function, or one
    /// whose function said [`HostAction::Stop`]; a page fault only with no handler,
    /// one that said [`HostAction::Stop`], or one whose retried access faulted again
    /// at once).
    pub exit: Exit,
    /// Why it panicked, after [`Exit::Panic`].
    pub panic_reason: Option<PanicReason>,
    /// The PC of the exit.
    pub pc: u32,
    /// Gas used.
    pub gas_used: u64,
    /// Gas left.
    pub gas_left: u64,
    /// The registers at the exit.
    pub regs: [u64; NUM_REGS],
    /// On halt, `mem[r7 .. r7 + r8]` if that range is readable and at most
    /// [`MAX_OUTPUT`] bytes.
    pub output: Option<Vec<u8>>,
    /// The engine that ran it.
    pub engine: EngineKind,
}

enum AnyEngine {
    Interp(Interpreter),
    #[cfg(jit)]
    Jit(javm_jit_x86::Recompiler),
}

/// Runs standard programs with host functions on an engine chosen at run time.
pub struct Runner {
    engine: AnyEngine,
    profile: GasProfile,
    host: HashMap<u32, HostFn>,
    on_fault: Option<FaultFn>,
}

impl Runner {
    /// A runner on `choice`, under the `jar1` profile, with the default memory
    /// limit. Fails only for [`EngineChoice::Jit`] where the recompiler cannot run.
    pub fn new(choice: EngineChoice) -> Result<Runner, RunError> {
        Runner::with_memory_limit(choice, DEFAULT_MEMORY_LIMIT)
    }

    /// [`Runner::new`] with instances limited to `bytes` of written pages.
    pub fn with_memory_limit(choice: EngineChoice, bytes: u64) -> Result<Runner, RunError> {
        let kind = match choice {
            EngineChoice::Auto => crate::auto_engine(),
            EngineChoice::Interp => EngineKind::Interp,
            EngineChoice::Jit => EngineKind::Jit,
        };
        let engine = match kind {
            EngineKind::Interp => AnyEngine::Interp(Interpreter::new().with_memory_limit(bytes)),
            #[cfg(jit)]
            EngineKind::Jit if crate::jit_available() => {
                AnyEngine::Jit(javm_jit_x86::Recompiler::new()?.with_memory_limit(bytes))
            }
            EngineKind::Jit => {
                return Err(RunError::Engine(EngineError::Unavailable(
                    "the x86-64 recompiler is not available here (it needs x86-64 Linux with \
                     BMI1, BMI2, LZCNT and POPCNT, and the `jit` feature); use the interpreter"
                        .into(),
                )));
            }
        };
        Ok(Runner {
            engine,
            profile: GasProfile::Jar1,
            host: HashMap::new(),
            on_fault: None,
        })
    }

    /// Price gas under `profile` (default `jar1`).
    pub fn with_profile(mut self, profile: GasProfile) -> Runner {
        self.profile = profile;
        self
    }

    /// The engine this runner uses.
    pub fn engine(&self) -> EngineKind {
        match self.engine {
            AnyEngine::Interp(_) => EngineKind::Interp,
            #[cfg(jit)]
            AnyEngine::Jit(_) => EngineKind::Jit,
        }
    }

    /// Call `f` for every `ecalli id` (replacing an earlier function for `id`).
    pub fn host_function(
        &mut self,
        id: u32,
        f: impl FnMut(&mut Caller<'_>) -> HostAction + Send + 'static,
    ) -> &mut Runner {
        self.host.insert(id, Box::new(f));
        self
    }

    /// Call `f(caller, page)` when the guest page-faults at `page` (the address of
    /// the first inaccessible page it touched), so that the host can page memory in
    /// with [`Caller::set_page_access`]; [`HostAction::Resume`] retries the access.
    /// A retry that faults at the same instruction and page again ends the run with
    /// that fault (the handler did not make the access possible), so a handler
    /// cannot loop forever.
    pub fn page_fault_handler(
        &mut self,
        f: impl FnMut(&mut Caller<'_>, u32) -> HostAction + Send + 'static,
    ) -> &mut Runner {
        self.on_fault = Some(Box::new(f));
        self
    }

    /// Run `program` from its entry (PC 0) on the standard initial state for `args`
    /// with `gas`, calling host functions, until it exits otherwise.
    pub fn run(
        &mut self,
        program: &StandardProgram,
        args: &[u8],
        gas: u64,
    ) -> Result<Outcome, RunError> {
        let gas_i = i64::try_from(gas).map_err(|_| RunError::Gas(gas))?;
        let (layout, regs) = program
            .initial_state(args)
            .map_err(|e| RunError::Argument(e.to_string()))?;
        let init = InstanceInit {
            layout: Arc::new(layout),
            regs,
            pc: 0,
            gas: gas_i,
        };
        let handlers = Handlers {
            host: &mut self.host,
            on_fault: self.on_fault.as_mut(),
        };
        let profile = self.profile;
        match &self.engine {
            AnyEngine::Interp(e) => run_on(e, profile, handlers, &program.program, init),
            #[cfg(jit)]
            AnyEngine::Jit(e) => run_on(e, profile, handlers, &program.program, init),
        }
    }
}

/// A runner's host functions and page-fault handler, for one run.
struct Handlers<'a> {
    host: &'a mut HashMap<u32, HostFn>,
    on_fault: Option<&'a mut FaultFn>,
}

fn run_on<E: Engine>(
    engine: &E,
    profile: GasProfile,
    mut handlers: Handlers<'_>,
    program: &Arc<javm_exec::Program>,
    init: InstanceInit,
) -> Result<Outcome, RunError> {
    // Prepared for this layout's schedule (its memory tier), on demand and cached.
    let schedule = GasSchedule::new(profile, init.layout.accessible_pages());
    let module = engine.prepare(program, schedule)?;
    let initial = init.gas;
    let mut inst = engine.instantiate(&module, init)?;
    // The page fault the handler last answered, and where.
    let mut handled_fault = None;
    let exit = loop {
        let exit = inst.run()?;
        let action = match exit {
            Exit::HostCall(id) => match handlers.host.get_mut(&id) {
                Some(f) => f(&mut Caller {
                    inst: &mut inst,
                    exit,
                }),
                None => HostAction::Stop,
            },
            Exit::PageFault(page) => {
                let again = handled_fault.replace((inst.pc(), page)) == Some((inst.pc(), page));
                match handlers.on_fault.as_mut() {
                    Some(f) if !again => f(
                        &mut Caller {
                            inst: &mut inst,
                            exit,
                        },
                        page,
                    ),
                    _ => HostAction::Stop,
                }
            }
            _ => HostAction::Stop,
        };
        if !matches!(exit, Exit::PageFault(_)) {
            handled_fault = None;
        }
        if action == HostAction::Stop {
            break exit;
        }
    };
    let regs = inst.regs();
    let output = (exit == Exit::Halt)
        .then(|| {
            let (addr, len) = (regs[7], regs[8]);
            let addr = u32::try_from(addr).ok()?;
            if len > MAX_OUTPUT {
                return None;
            }
            let mut buf = vec![0u8; len as usize];
            inst.read_memory(addr, &mut buf).ok()?;
            Some(buf)
        })
        .flatten();
    let left = inst.gas();
    Ok(Outcome {
        exit,
        panic_reason: inst.panic_reason(),
        pc: inst.pc(),
        gas_used: initial.saturating_sub(left).max(0) as u64,
        gas_left: left.max(0) as u64,
        regs,
        output,
        engine: engine.kind(),
    })
}

/// Load a program from bytes: a standard program blob, one with a metadata prefix, a
/// GP code blob (which gets no data, heap or stack), or assembly text, tried in that
/// order.
pub fn load_program(bytes: &[u8]) -> Result<StandardProgram, RunError> {
    let std_err = match StandardProgram::parse(bytes) {
        Ok(sp) => return Ok(sp),
        Err(e) => e,
    };
    if let Ok(sp) = StandardProgram::parse_with_metadata(bytes) {
        return Ok(sp);
    }
    let code_err = match parse_code_blob(bytes) {
        Ok(p) => {
            return Ok(StandardProgram {
                ro_data: vec![],
                rw_data: vec![],
                heap_pages: 0,
                stack_size: 0,
                program: Arc::new(p),
            });
        }
        Err(e) => e,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| {
        RunError::Load(format!(
            "neither a standard program blob ({std_err}) nor a code blob ({code_err})"
        ))
    })?;
    let a = assemble(text).map_err(|e| RunError::Load(format!("assembly: {e}")))?;
    a.standard()
        .map_err(|e| RunError::Load(format!("assembly: {e}")))
}
