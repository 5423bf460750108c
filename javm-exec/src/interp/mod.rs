//! The interpreter engine.
//!
//! It executes a [`Program`]'s predecoded [`crate::Instruction`]s directly: one
//! `match` per instruction, registers in a local array, gas charged once per block on
//! entry (checked against cost + reserve, deducting the cost), and memory through
//! `memory::FlatMemory`'s fast path. The loop is re-entered after every exit.
//! The dispatch loop and its handlers are in `run.rs` (register arithmetic calls the
//! shared [`crate::ops`]); loads and stores go through `memory.rs`.

mod instance;
pub(crate) mod memory;
mod run;

use std::sync::Arc;

use crate::engine::{
    Engine, EngineError, EngineKind, InstanceInit, ModuleCache, check_schedule, check_start,
};
use crate::gas::GasSchedule;
use crate::memory::{DEFAULT_MEMORY_LIMIT, PageMap};
use crate::program::Program;

pub use instance::InterpInstance;

/// The interpreter engine. Cheap to create; holds a cache of prepared modules.
pub struct Interpreter {
    cache: ModuleCache<InterpModule>,
    memory_limit: u64,
}

impl Default for Interpreter {
    fn default() -> Self {
        Interpreter {
            cache: ModuleCache::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

impl Interpreter {
    /// A new interpreter with an empty module cache and the default memory limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same interpreter with instances limited to `bytes` of written pages
    /// (default [`DEFAULT_MEMORY_LIMIT`]): a run whose writes would pass it fails with
    /// [`EngineError::MemoryLimit`].
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }
}

/// A block's entry data in the interpreter's own table.
#[derive(Clone, Copy, Debug)]
struct BlockEntry {
    /// Index of the block's first instruction.
    first: u32,
    /// One past the index of its last instruction.
    end: u32,
    /// PC of the block's first instruction.
    pc: u32,
    /// Gas deducted on entry.
    cost: i64,
    /// Whether entering checks for an interrupt request
    /// ([`Program::interrupt_points`]).
    poll: bool,
    /// Gas required on entry (cost + reserve), compared unsigned with the
    /// (non-negative) gas; [`NOT_A_TARGET`] for a block that is no branch target.
    need: u64,
}

/// [`BlockEntry::need`] of a block that does not start a block under the module's
/// profile ([`Program::starts_block`]): no gas suffices, and the slow path of a
/// branch there panics. Runs only reach such a block by resuming after a host call.
pub(super) const NOT_A_TARGET: u64 = u64::MAX;

/// A program prepared for the interpreter under one gas schedule.
#[derive(Debug)]
pub struct InterpModule {
    program: Arc<Program>,
    schedule: GasSchedule,
    blocks: Box<[BlockEntry]>,
}

impl InterpModule {
    /// The program.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// The schedule its blocks are priced under.
    pub fn schedule(&self) -> GasSchedule {
        self.schedule
    }
}

impl Engine for Interpreter {
    type Module = InterpModule;
    type Instance = InterpInstance;

    fn kind(&self) -> EngineKind {
        EngineKind::Interp
    }

    fn prepare(
        &self,
        program: &Arc<Program>,
        schedule: GasSchedule,
    ) -> Result<Arc<InterpModule>, EngineError> {
        self.cache
            .get_or_try_insert((program.hash(), schedule), || {
                let costs = program.block_costs(schedule);
                let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let profile = schedule.profile();
                let polls = program.interrupt_points();
                let blocks = (0u32..)
                    .zip(program.blocks().iter().zip(costs))
                    .map(|(i, (b, c))| BlockEntry {
                        poll: polls.get(i as usize).copied().unwrap_or(false),
                        first: b.first,
                        end: b.end,
                        pc: b.pc,
                        cost: to_i64(c.cost),
                        need: if program.starts_block(i, profile) {
                            to_i64(c.need()) as u64
                        } else {
                            NOT_A_TARGET
                        },
                    })
                    .collect();
                Ok(InterpModule {
                    program: Arc::clone(program),
                    schedule,
                    blocks,
                })
            })
    }

    fn instantiate(
        &self,
        module: &Arc<InterpModule>,
        init: InstanceInit,
    ) -> Result<InterpInstance, EngineError> {
        let gas = check_start(
            &module.program,
            module.schedule.profile(),
            init.pc,
            init.gas,
        )?;
        check_schedule(module.schedule, &init.layout)?;
        let map = PageMap::for_instance(init.layout, self.memory_limit)?;
        let mem = memory::FlatMemory::new(map, module.schedule)?;
        Ok(InterpInstance::new(
            Arc::clone(module),
            init.regs,
            init.pc,
            gas,
            mem,
        ))
    }
}
