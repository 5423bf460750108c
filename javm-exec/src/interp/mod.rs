//! The interpreter engine.
//!
//! It executes a [`Program`]'s decoded [`crate::Instruction`]s directly: one
//! `match` per instruction (or per fused run of [`crate::fuse`], `op.rs`), registers in a local array, gas charged once per block on
//! entry (checked against cost + reserve, deducting the cost; a block is priced the
//! first time any instance enters it, and decoded the first time any instance runs
//! it, so preparing a module decodes nothing), and memory through
//! `memory::FlatMemory`'s fast path. The loop is re-entered after every exit.
//! The dispatch loop and its handlers are in `run.rs` (register arithmetic calls the
//! shared [`crate::ops`]); loads and stores go through `memory.rs`.

mod instance;
pub(crate) mod memory;
mod op;
mod run;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Once, OnceLock};

use crate::engine::{
    CachedModule, Engine, EngineError, EngineKind, InstanceInit, ModuleCache, check_schedule,
    check_start,
};
use crate::gas::GasSchedule;
use crate::memory::{DEFAULT_MEMORY_LIMIT, PageMap};
use crate::program::Program;

pub use instance::InterpInstance;
use op::Op;

/// The interpreter engine. Cheap to create; holds a cache of prepared modules.
pub struct Interpreter {
    cache: ModuleCache<InterpModule>,
    memory_limit: u64,
    fuse: bool,
}

impl Default for Interpreter {
    fn default() -> Self {
        Interpreter {
            cache: ModuleCache::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            fuse: true,
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

    /// The same interpreter executing every instruction on its own: the runs of
    /// [`crate::fuse`] that it otherwise executes as one step are not fused. The
    /// results are the same either way; this is the reference the fused runs are
    /// tested against.
    pub fn without_fusion(mut self) -> Self {
        self.fuse = false;
        self
    }
}

/// A block's entry data in the interpreter's own table.
///
/// Blocks are priced lazily: `prepare` leaves every block that starts a block
/// [`UNPRICED`], which no gas satisfies, so its first entry (by any instance of the
/// module, on any thread) takes the slow path of the gas check, which prices it
/// ([`InterpModule::price`]) and checks again. Pricing is deterministic, so threads
/// that race to price a block store the same values. The price is written before
/// `need` (release), and entries read `need` first (acquire), so an entry that sees
/// a price sees its cost.
#[derive(Debug)]
struct BlockEntry {
    /// Index of the block's first instruction.
    first: u32,
    /// One past the index of its last instruction.
    end: u32,
    /// PC of the block's first instruction.
    pc: u32,
    /// Whether entering checks for an interrupt request
    /// ([`Program::interrupt_points`]): set for every block of the module once an
    /// instance first gives out its [`InterruptHandle`] (see
    /// [`InterpModule::enable_interrupts`]); until then no request can be made, so
    /// no block needs to check.
    ///
    /// [`InterruptHandle`]: crate::InterruptHandle
    poll: AtomicBool,
    /// Gas deducted on entry (once priced).
    cost: AtomicI64,
    /// Gas required on entry (cost + reserve), compared unsigned with the
    /// (non-negative) gas; [`NOT_A_TARGET`] for a block that is no branch target,
    /// [`UNPRICED`] before the block's first entry.
    need: AtomicU64,
    /// The block's ops, decoded (and their runs fused) on its first run
    /// ([`BlockEntry::code`]).
    code: OnceLock<Box<[Op]>>,
}

impl BlockEntry {
    /// The block's ops (`module` is its module): decoded by the first run that
    /// reaches the block, on any thread (a run that reaches it while another
    /// decodes it waits for that decoding).
    #[inline(always)]
    fn code(&self, module: &InterpModule) -> &[Op] {
        match self.code.get() {
            Some(code) => code,
            None => self.decode(module),
        }
    }

    #[cold]
    #[inline(never)]
    fn decode(&self, module: &InterpModule) -> &[Op] {
        self.code.get_or_init(|| {
            let ins = module.program.decode_range(self.first, self.end);
            op::block_code(&ins, module.fuse)
        })
    }
}

/// [`BlockEntry::need`] of a block that does not start a block under the module's
/// profile ([`Program::starts_block`]): no gas suffices, and the slow path of a
/// branch there panics. Runs only reach such a block by resuming after a host call.
pub(super) const NOT_A_TARGET: u64 = u64::MAX;

/// [`BlockEntry::need`] of a block not priced yet: above any gas (which is at most
/// `i64::MAX`), so the gas check's slow path prices it.
pub(super) const UNPRICED: u64 = u64::MAX - 1;

/// A program prepared for the interpreter under one gas schedule.
#[derive(Debug)]
pub struct InterpModule {
    program: Arc<Program>,
    schedule: GasSchedule,
    blocks: Box<[BlockEntry]>,
    /// Whether blocks are decoded with their runs fused ([`op::block_code`]).
    fuse: bool,
    /// Marks the blocks' [`BlockEntry::poll`] bits, once.
    polls: Once,
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

    /// Mark the interrupt points' entries ([`BlockEntry::poll`]), once per
    /// module: called by every instance before it gives out its interrupt handle,
    /// the only way a request can be made, so a prepare that is never interrupted
    /// neither computes [`Program::interrupt_points`] nor copies it. The bits are
    /// stored before the `Once` completes; a run of the instance comes after the
    /// call on the same thread, or on another one the instance moved to after it.
    pub(super) fn enable_interrupts(&self) {
        self.polls.call_once(|| {
            for (e, &p) in self.blocks.iter().zip(self.program.interrupt_points()) {
                e.poll.store(p, Ordering::Relaxed);
            }
        });
    }

    /// Price block `b` ([`Program::block_cost`]), record the price in its entry
    /// and return its need. Called on the slow path of the first entries of a
    /// block that starts a block; `b` indexes the block table.
    #[cold]
    #[inline(never)]
    fn price(&self, b: u32) -> u64 {
        let c = self.program.block_cost(b, self.schedule);
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let need = to_i64(c.need()) as u64;
        if let Some(e) = self.blocks.get(b as usize) {
            e.cost.store(to_i64(c.cost), Ordering::Relaxed);
            e.need.store(need, Ordering::Release);
        }
        need
    }
}

impl CachedModule for InterpModule {
    fn program(&self) -> &Program {
        &self.program
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
        self.cache.get_or_try_insert(program, schedule, || {
            let profile = schedule.profile();
            let blocks = (0u32..)
                .zip(program.blocks())
                .map(|(i, b)| BlockEntry {
                    poll: AtomicBool::new(false),
                    first: b.first,
                    end: b.end,
                    pc: b.pc,
                    cost: AtomicI64::new(0),
                    need: AtomicU64::new(if program.starts_block(i, profile) {
                        UNPRICED
                    } else {
                        NOT_A_TARGET
                    }),
                    code: OnceLock::new(),
                })
                .collect();
            Ok(InterpModule {
                program: Arc::clone(program),
                schedule,
                blocks,
                fuse: self.fuse,
                polls: Once::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::engine::{Exit, Instance};
    use crate::gas::GasProfile;
    use crate::memory::MemoryLayout;

    /// Nested loops over several blocks, with a store (a block with a reserve) and
    /// a host call (under `gp`, the block after it continues the one before).
    const LOOPS: &str = "load_imm r2, 40\nload_imm r5, 0x20000\nfallthrough\n\
        outer: load_imm r3, 7\nfallthrough\n\
        inner: add_imm_64 r4, r4, 3\nstore_ind_u64 r4, r5, 0\nadd_imm_64 r3, r3, -1\n\
        branch_ne_imm r3, 0, inner\n\
        ecalli 1\nadd_imm_64 r2, r2, -1\nbranch_ne_imm r2, 0, outer\ntrap";

    fn init(gas: i64) -> InstanceInit {
        let mut layout = MemoryLayout::new();
        layout
            .add_region(0x20000, 0x1000, crate::memory::PageKind::EphemeralZero, &[])
            .unwrap();
        InstanceInit {
            layout: Arc::new(layout),
            regs: [0; crate::NUM_REGS],
            pc: 0,
            gas,
        }
    }

    /// Run to the end, answering host calls; the exits and the final gas and
    /// registers.
    fn run(engine: &Interpreter, module: &Arc<InterpModule>, gas: i64) -> (Vec<Exit>, i64, u64) {
        let mut vm = engine.instantiate(module, init(gas)).unwrap();
        let mut exits = Vec::new();
        loop {
            let exit = vm.run().unwrap();
            exits.push(exit);
            if !matches!(exit, Exit::HostCall(_)) {
                return (exits, vm.gas(), vm.reg(crate::Reg::R4));
            }
        }
    }

    #[test]
    fn interrupt_points_are_marked_when_a_handle_is_first_given_out() {
        let program = Arc::new(assemble(LOOPS).unwrap().program().unwrap());
        let engine = Interpreter::new();
        let module = engine
            .prepare(&program, GasSchedule::new(GasProfile::Jar1, 1))
            .unwrap();
        let polls = |m: &InterpModule| -> Vec<bool> {
            m.blocks
                .iter()
                .map(|e| e.poll.load(Ordering::Relaxed))
                .collect()
        };
        // Prepared and run without a handle: nothing computed, nothing marked.
        let (exits, ..) = run(&engine, &module, 1 << 40);
        assert_eq!(exits.last(), Some(&Exit::Trap));
        assert!(!program.interrupt_points_computed());
        assert!(polls(&module).iter().all(|&p| !p));
        // The first handle marks every instance's blocks, as the program says.
        let vm = engine.instantiate(&module, init(1 << 40)).unwrap();
        let handle = vm.interrupt_handle();
        assert_eq!(polls(&module), program.interrupt_points());
        assert!(polls(&module).iter().any(|&p| p), "the loops' heads check");
        // A request made through it stops another instance of the module at
        // the first loop head it enters.
        drop(vm);
        let mut other = engine.instantiate(&module, init(1 << 40)).unwrap();
        other.interrupt_handle().interrupt();
        drop(handle);
        assert_eq!(other.run().unwrap(), Exit::Interrupted);
        let outer = program
            .blocks()
            .iter()
            .position(|b| b.pc == other.pc())
            .unwrap();
        assert!(program.interrupt_points()[outer], "stopped at a loop head");
    }

    #[test]
    fn lazily_priced_blocks_charge_what_the_eager_prices_say() {
        let program = Arc::new(assemble(LOOPS).unwrap().program().unwrap());
        for profile in [GasProfile::Jar1, GasProfile::Gp] {
            let schedule = GasSchedule::new(profile, 1);
            // Every entry's price, once priced, is the one `block_costs` gives.
            let engine = Interpreter::new();
            let module = engine.prepare(&program, schedule).unwrap();
            let (exits, gas, r4) = run(&engine, &module, 1 << 40);
            assert_eq!(exits.last(), Some(&Exit::Trap), "{profile:?}");
            assert_eq!(r4, 40 * 7 * 3);
            let costs = program.block_costs(schedule);
            for (b, e) in module.blocks.iter().enumerate() {
                let need = e.need.load(Ordering::Relaxed);
                if need == UNPRICED || need == NOT_A_TARGET {
                    continue;
                }
                assert_eq!(need, costs[b].need(), "{profile:?} block {b}");
                assert_eq!(e.cost.load(Ordering::Relaxed) as u64, costs[b].cost);
            }
            // Every budget up to the total: the run stops at the same place, with
            // the same gas, whether the module is fresh or already priced.
            let used = (1i64 << 40) - gas;
            for budget in (0..=used + 1).step_by(7) {
                let fresh = Interpreter::new();
                let fresh_module = fresh.prepare(&program, schedule).unwrap();
                assert_eq!(
                    run(&fresh, &fresh_module, budget),
                    run(&engine, &module, budget),
                    "{profile:?} budget {budget}"
                );
            }
        }
    }

    /// The blocks a run has decoded.
    fn decoded(module: &InterpModule) -> Vec<bool> {
        module
            .blocks
            .iter()
            .map(|e| e.code.get().is_some())
            .collect()
    }

    #[test]
    fn blocks_are_decoded_on_their_first_run_and_only_then() {
        // Block 0 jumps over block 1 (never run) to block 2, which halts; block 3
        // is reached only by moving the PC into its middle.
        let program = Arc::new(
            assemble(
                "load_imm r2, 5\njump skip\n\
                 load_imm r2, 6\ntrap\n\
                 skip: add_imm_64 r2, r2, 1\njump_ind r0, 0\n\
                 load_imm r3, 7\nload_imm r4, 8\nadd_64 r5, r3, r4\njump_ind r0, 0",
            )
            .unwrap()
            .program()
            .unwrap(),
        );
        let engine = Interpreter::new();
        let schedule = GasSchedule::new(GasProfile::Jar1, 1);
        let module = engine.prepare(&program, schedule).unwrap();
        // (Block 4 is the implicit trap at the end.)
        assert_eq!(decoded(&module), [false; 5], "prepare decodes nothing");
        let mut vm = engine.instantiate(&module, init(1000)).unwrap();
        let mut regs = [0; crate::NUM_REGS];
        regs[0] = u64::from(crate::program::HALT_ADDRESS);
        for (r, v) in regs.iter().enumerate() {
            vm.set_reg(crate::Reg::new(r).unwrap(), *v);
        }
        assert_eq!(vm.run().unwrap(), Exit::Halt);
        assert_eq!(vm.reg(crate::Reg::R2), 6);
        assert_eq!(decoded(&module), [true, false, true, false, false]);
        // Resuming mid-block (at `load_imm r4, 8`) decodes that block, and runs
        // only its rest.
        let b3 = &program.blocks()[3];
        let mid = program.pcs()[b3.first as usize + 1];
        let mut vm = engine.instantiate(&module, init(1000)).unwrap();
        vm.set_reg(crate::Reg::R0, regs[0]);
        vm.set_reg(crate::Reg::R3, 100);
        vm.set_pc(mid);
        assert_eq!(vm.run().unwrap(), Exit::Halt);
        assert_eq!(vm.reg(crate::Reg::R5), 108);
        assert_eq!(decoded(&module), [true, false, true, true, false]);
        // The decoded blocks are the program's instructions (with its runs fused).
        for (e, b) in module.blocks.iter().zip(program.blocks()) {
            if let Some(code) = e.code.get() {
                let ins = &program.instructions()[b.first as usize..b.end as usize];
                assert_eq!(&code[..], &op::block_code(ins, true)[..]);
            }
        }
    }

    #[test]
    fn threads_racing_to_price_a_module_agree() {
        let program = Arc::new(assemble(LOOPS).unwrap().program().unwrap());
        let schedule = GasSchedule::new(GasProfile::Jar1, 1);
        let reference = {
            let engine = Interpreter::new();
            let module = engine.prepare(&program, schedule).unwrap();
            run(&engine, &module, 1 << 40)
        };
        for _ in 0..20 {
            let engine = Interpreter::new();
            let module = engine.prepare(&program, schedule).unwrap();
            std::thread::scope(|s| {
                let runs: Vec<_> = (0..4)
                    .map(|_| s.spawn(|| run(&engine, &module, 1 << 40)))
                    .collect();
                for r in runs {
                    assert_eq!(r.join().unwrap(), reference);
                }
            });
        }
    }
}
