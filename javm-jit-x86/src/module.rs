//! [`Recompiler`] (the engine) and [`JitModule`] (a compiled program).

use std::sync::Arc;

use javm_exec::Program;
use javm_exec::engine::{
    CachedModule, Engine, EngineError, EngineKind, InstanceInit, ModuleCache, Resume,
    check_schedule, check_start,
};
use javm_exec::gas::GasSchedule;
use javm_exec::memory::{DEFAULT_MEMORY_LIMIT, PageMap};

use crate::code::{ExecutableCode, WritableCode};
use crate::codegen::{self, HostSite, NO_ENTRY};
use crate::instance::JitInstance;
use crate::signal::{self, SideEntry};
use crate::window::Window;

/// The x86-64 recompiler engine. Holds a cache of compiled modules.
pub struct Recompiler {
    cache: ModuleCache<JitModule>,
    memory_limit: u64,
    /// Threads that compile a program of several parts (`None`: one per core, at
    /// most [`MAX_COMPILE_THREADS`]).
    compile_threads: Option<usize>,
    /// Instructions per part of a compilation (`codegen::link`).
    part: usize,
}

/// The most threads a compilation uses by default.
pub const MAX_COMPILE_THREADS: usize = 4;

/// The threads a compilation uses by default: one per core the process may use,
/// at most [`MAX_COMPILE_THREADS`] (looked up once).
fn default_compile_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_COMPILE_THREADS)
    })
}

impl std::fmt::Debug for Recompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recompiler")
            .field("cached_modules", &self.cache.len())
            .finish()
    }
}

/// CPU features the generated code uses.
const REQUIRED_FEATURES: &str = "BMI1, BMI2, LZCNT and POPCNT";

/// Whether this CPU runs the generated code.
fn cpu_supported() -> bool {
    std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("lzcnt")
        && std::arch::is_x86_feature_detected!("popcnt")
}

impl Recompiler {
    /// A recompiler, if this host can run one: the CPU must have BMI1, BMI2, LZCNT
    /// and POPCNT, and the fault handlers must install.
    pub fn new() -> Result<Recompiler, EngineError> {
        if !cpu_supported() {
            return Err(EngineError::Unavailable(format!(
                "the recompiler needs a CPU with {REQUIRED_FEATURES}; use --engine=interp"
            )));
        }
        signal::install().map_err(EngineError::Unavailable)?;
        Ok(Recompiler {
            cache: ModuleCache::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            compile_threads: None,
            part: codegen::link::Split::PART,
        })
    }

    /// The same recompiler compiling large programs on at most `threads` threads,
    /// the calling one included (default: one per core, at most
    /// [`MAX_COMPILE_THREADS`]; 0 counts as 1). A program is compiled in parts of
    /// about 32 768 instructions (about 100 KiB of code), so only a program of
    /// several parts uses more than the calling thread; the code is the same
    /// whatever the number of threads.
    pub fn with_compile_threads(mut self, threads: usize) -> Self {
        self.compile_threads = Some(threads.max(1));
        self
    }

    /// The same recompiler cutting programs into parts of about `instructions`
    /// instructions (0 counts as 1) instead of 32 768. Smaller parts let smaller
    /// programs compile on several threads, but each part adds a few jumps and its
    /// own exit stubs; this setting is mainly for tests, which compile small
    /// programs in many parts to check that linking them changes no result.
    pub fn with_compile_part(mut self, instructions: usize) -> Self {
        self.part = instructions.max(1);
        self
    }

    /// How this recompiler cuts and runs a compilation.
    fn split(&self) -> codegen::link::Split {
        codegen::link::Split {
            part: self.part,
            threads: self.compile_threads.unwrap_or_else(default_compile_threads),
        }
    }

    /// The same recompiler with instances limited to `bytes` of written pages
    /// (default [`DEFAULT_MEMORY_LIMIT`]): a run whose writes would pass it fails with
    /// [`EngineError::MemoryLimit`].
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Whether [`Recompiler::new`] would succeed on this host.
    pub fn is_available() -> bool {
        cpu_supported()
    }

    /// Compile without the cache (for benchmarks of compilation itself).
    pub fn compile(
        &self,
        program: &Arc<Program>,
        schedule: GasSchedule,
    ) -> Result<JitModule, EngineError> {
        JitModule::compile(program, schedule, self.split())
    }
}

/// A program compiled for one gas schedule: immutable machine code and its tables,
/// shared by every instance and thread.
#[derive(Debug)]
pub struct JitModule {
    pub(crate) program: Arc<Program>,
    pub(crate) schedule: GasSchedule,
    pub(crate) code: ExecutableCode,
    pub(crate) block_offsets: Box<[u32]>,
    pub(crate) ins_offsets: Box<[u32]>,
    /// Where a resume at each instruction enters (see `Compiled::resume_offsets`).
    pub(crate) resume_offsets: Box<[u32]>,
    pub(crate) ins_ends: Box<[u32]>,
    /// The memory accesses, by native offset (`signal`). A vector, not a boxed
    /// slice: its length is known only once the code is emitted, and shrinking it
    /// to a slice cost a reallocation per compilation.
    pub(crate) side: Vec<SideEntry>,
    /// The host calls, by the index their exits report.
    pub(crate) host_sites: Box<[HostSite]>,
    /// The dynamic-jump table as compiled code indexes it: entry 0 and the entries
    /// of invalid targets hold the address of the shared panic, entry i + 1 the
    /// absolute native address of the program's jump-table entry i (its block).
    pub(crate) jump_table: Box<[u64]>,
    /// Each block's (cost, need).
    pub(crate) prices: Box<[(i64, i64)]>,
    pub(crate) entry: u32,
    pub(crate) exit: u32,
    /// See `codegen::Compiled::gas_live`.
    pub(crate) gas_live: u32,
    /// See `codegen::Compiled::blocks_start`.
    pub(crate) blocks_start: u32,
}

/// The native offset at which a run continuing at `resume` enters compiled code
/// directly: block `b`'s entry for [`Resume::Enter`]`(b)`, else (and for a block
/// the table does not have) [`NO_ENTRY`], which leaves the resume to the run
/// loop.
pub(crate) fn entry_of(block_offsets: &[u32], resume: Resume) -> u32 {
    match resume {
        Resume::Enter(b) => block_offsets.get(b as usize).copied().unwrap_or(NO_ENTRY),
        Resume::At(_) | Resume::BadPc | Resume::Done(_) => NO_ENTRY,
    }
}

impl JitModule {
    fn compile(
        program: &Arc<Program>,
        schedule: GasSchedule,
        split: codegen::link::Split,
    ) -> Result<JitModule, EngineError> {
        let mut c = codegen::link::compile(program, schedule, split)
            .map_err(|e| EngineError::Internal(format!("cannot compile the program: {e}")))?;
        let code = WritableCode::new(&c.code, &c.more_code, split.threads)
            .and_then(WritableCode::finalize)
            .map_err(|e| EngineError::OutOfMemory(format!("cannot map code: {e}")))?;
        // The bytes are in the mapping now; a buffer serves the thread's next compile.
        codegen::buf::recycle(std::mem::take(&mut c.code));
        let start = code.start() as u64;
        // Entry 0 (address 0) and the entries of invalid targets lead to the
        // dynamic jumps' shared panic; entry i + 1 is the table's entry i
        // (`codegen::lower`, `djump`).
        let invalid = c.djump_panic.map_or(0, |o| start + u64::from(o));
        let jump_table = std::iter::once(invalid)
            .chain(program.jump_targets().iter().map(|t| {
                match codegen::table_block(program, schedule.profile(), *t)
                    .and_then(|b| c.block_offsets.get(b as usize))
                {
                    Some(&o) => start + u64::from(o),
                    None => invalid,
                }
            }))
            .collect();
        let prices = std::mem::take(&mut c.prices).into();
        let mut host_sites: Box<[HostSite]> = c.host_sites.into();
        for site in host_sites.iter_mut() {
            site.entry = entry_of(&c.block_offsets, site.resume);
        }
        Ok(JitModule {
            program: Arc::clone(program),
            schedule,
            code,
            block_offsets: c.block_offsets.into(),
            ins_offsets: c.ins_offsets.into(),
            resume_offsets: c.resume_offsets.into(),
            ins_ends: c.ins_ends.into(),
            side: c.side,
            host_sites,
            jump_table,
            prices,
            entry: c.entry,
            exit: c.exit,
            gas_live: c.gas_live,
            blocks_start: c.blocks_start,
        })
    }

    /// The program.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// The schedule its blocks are priced under.
    pub fn schedule(&self) -> GasSchedule {
        self.schedule
    }

    /// Bytes of machine code.
    pub fn code_size(&self) -> usize {
        self.code.len()
    }

    /// The machine code emitted for instruction `index` (for a block's first
    /// instruction, including the block's gas check), or `None` past the end.
    pub fn native_code_of(&self, index: usize) -> Option<(u64, &[u8])> {
        let program = &self.program;
        let start = if let Some(b) = program.block_starting_at(*program.pcs().get(index)?) {
            self.block_offsets[b as usize]
        } else {
            self.ins_offsets[index]
        };
        let end = *self.ins_ends.get(index)?;
        let bytes = self.code.bytes().get(start as usize..end as usize)?;
        Some((self.code.start() as u64 + u64::from(start), bytes))
    }

    /// All the machine code, with its address. It is position independent, so
    /// two compilations of a program with the same settings give the same bytes.
    pub fn native_code(&self) -> (u64, &[u8]) {
        (self.code.start() as u64, self.code.bytes())
    }

    /// The cold code after the last instruction's inline code (out-of-gas, exit and
    /// store slow-path stubs), with its address. For a program compiled in parts
    /// (see [`Recompiler::with_compile_part`]), the last part's.
    pub fn cold_code(&self) -> (u64, &[u8]) {
        let start = self.ins_ends.iter().copied().max().unwrap_or(0) as usize;
        let bytes = self.code.bytes().get(start..).unwrap_or_default();
        (self.code.start() as u64 + start as u64, bytes)
    }
}

impl CachedModule for JitModule {
    fn program(&self) -> &Program {
        &self.program
    }
}

impl Engine for Recompiler {
    type Module = JitModule;
    type Instance = JitInstance;

    fn kind(&self) -> EngineKind {
        EngineKind::Jit
    }

    fn prepare(
        &self,
        program: &Arc<Program>,
        schedule: GasSchedule,
    ) -> Result<Arc<JitModule>, EngineError> {
        self.cache.get_or_try_insert(program, schedule, || {
            JitModule::compile(program, schedule, self.split())
        })
    }

    fn instantiate(
        &self,
        module: &Arc<JitModule>,
        init: InstanceInit,
    ) -> Result<JitInstance, EngineError> {
        let gas = check_start(
            &module.program,
            module.schedule.profile(),
            init.pc,
            init.gas,
        )?;
        check_schedule(module.schedule, &init.layout)?;
        let map = PageMap::for_instance(init.layout, self.memory_limit)?;
        let window = Window::acquire().map_err(|e| {
            EngineError::OutOfMemory(format!("cannot reserve a 4 GiB guest window: {e}"))
        })?;
        Ok(JitInstance::new(
            Arc::clone(module),
            window,
            map,
            init.regs,
            init.pc,
            gas,
        ))
    }
}
