//! Deliberately wrong engines, for the harness's self-tests: each wraps a correct
//! engine and adds exactly one bug, through the public traits only. The
//! differential harness must report every one of them.

use std::sync::Arc;

use javm_exec::{
    Engine, EngineError, EngineKind, Exit, GasSchedule, Instance, InstanceInit, MemoryError,
    Opcode, PageKind, PageState, Program, Reg,
};

/// The bug an adapter adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// One extra unit of gas is charged after every host call.
    ExtraGasAfterHostCall,
    /// Bit 0 of r1 is flipped after every executed block that contains this opcode.
    FlipBitAfter(Opcode),
    /// A page that was written (`PresentRw`) still reports `PresentRo`: its state was
    /// not advanced.
    StalePageState,
    /// A host change to [`javm_exec::PageAccess::ZeroReadOnly`] keeps the pages'
    /// contents instead of zeroing them.
    ZeroKeepsContents,
}

/// An engine with one bug.
pub struct Buggy<E> {
    inner: E,
    bug: Bug,
}

impl<E> Buggy<E> {
    /// Wrap `inner` and add `bug`.
    pub fn new(inner: E, bug: Bug) -> Self {
        Buggy { inner, bug }
    }
}

/// A module of a [`Buggy`] engine: the inner module and the program.
pub struct BuggyModule<M> {
    inner: Arc<M>,
    program: Arc<Program>,
}

/// An instance of a [`Buggy`] engine.
pub struct BuggyInstance<I> {
    inner: I,
    bug: Bug,
    program: Arc<Program>,
}

impl<E: Engine> Engine for Buggy<E> {
    type Module = BuggyModule<E::Module>;
    type Instance = BuggyInstance<E::Instance>;

    fn kind(&self) -> EngineKind {
        self.inner.kind()
    }

    fn prepare(
        &self,
        program: &Arc<Program>,
        schedule: GasSchedule,
    ) -> Result<Arc<Self::Module>, EngineError> {
        Ok(Arc::new(BuggyModule {
            inner: self.inner.prepare(program, schedule)?,
            program: Arc::clone(program),
        }))
    }

    fn instantiate(
        &self,
        module: &Arc<Self::Module>,
        init: InstanceInit,
    ) -> Result<Self::Instance, EngineError> {
        Ok(BuggyInstance {
            inner: self.inner.instantiate(&module.inner, init)?,
            bug: self.bug,
            program: Arc::clone(&module.program),
        })
    }
}

impl<I: Instance> BuggyInstance<I> {
    /// Whether the block that starts at `start` ran an instruction with `op`.
    fn ran(&self, start: Option<u32>, exit_pc: Option<u32>, op: Opcode) -> bool {
        let p = &self.program;
        let Some(from) = start.and_then(|pc| p.index_of(pc)) else {
            return false;
        };
        let block = p.blocks()[p.block_of(from) as usize];
        let to = exit_pc
            .and_then(|pc| p.index_of(pc))
            .map_or(block.end, |i| i + 1);
        p.instructions()[from as usize..to as usize]
            .iter()
            .any(|i| i.opcode() == Some(op))
    }

    fn after(&mut self, result: &Result<Option<Exit>, EngineError>, start: Option<u32>) {
        match (self.bug, result) {
            (Bug::ExtraGasAfterHostCall, Ok(Some(Exit::HostCall(_)))) => {
                let g = self.inner.gas();
                let _ = self.inner.set_gas(if g > 0 { g - 1 } else { 1 });
            }
            (Bug::FlipBitAfter(op), Ok(step)) => {
                let exit_pc = step.map(|_| self.inner.pc());
                if step != &Some(Exit::OutOfGas) && self.ran(start, exit_pc, op) {
                    let v = self.inner.reg(Reg::R1);
                    self.inner.set_reg(Reg::R1, v ^ 1);
                }
            }
            _ => {}
        }
    }
}

impl<I: Instance> Instance for BuggyInstance<I> {
    fn run(&mut self) -> Result<Exit, EngineError> {
        loop {
            if let Some(exit) = self.step_block()? {
                return Ok(exit);
            }
        }
    }

    fn step_block(&mut self) -> Result<Option<Exit>, EngineError> {
        let start = self.inner.next_pc();
        let r = self.inner.step_block();
        self.after(&r, start);
        r
    }

    fn regs(&self) -> [u64; 13] {
        self.inner.regs()
    }

    fn interrupt_handle(&self) -> javm_exec::InterruptHandle {
        self.inner.interrupt_handle()
    }

    fn reset(&mut self, regs: [u64; 13], pc: u32, gas: i64) -> Result<(), EngineError> {
        self.inner.reset(regs, pc, gas)
    }

    fn set_reg(&mut self, r: Reg, value: u64) {
        self.inner.set_reg(r, value);
    }

    fn pc(&self) -> u32 {
        self.inner.pc()
    }

    fn next_pc(&self) -> Option<u32> {
        self.inner.next_pc()
    }

    fn panic_reason(&self) -> Option<javm_exec::PanicReason> {
        self.inner.panic_reason()
    }

    fn set_pc(&mut self, pc: u32) {
        self.inner.set_pc(pc);
    }

    fn gas(&self) -> i64 {
        self.inner.gas()
    }

    fn set_gas(&mut self, gas: i64) -> Result<(), EngineError> {
        self.inner.set_gas(gas)
    }

    fn read_memory(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read_memory(addr, buf)
    }

    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError> {
        self.inner.write_memory(addr, data)
    }

    fn set_page_access(
        &mut self,
        addr: u32,
        pages: u32,
        access: javm_exec::PageAccess,
    ) -> Result<(), MemoryError> {
        let access = match (self.bug, access) {
            (Bug::ZeroKeepsContents, javm_exec::PageAccess::ZeroReadOnly) => {
                javm_exec::PageAccess::ReadOnly
            }
            _ => access,
        };
        self.inner.set_page_access(addr, pages, access)
    }

    fn page_state(&self, addr: u32) -> PageState {
        match (self.bug, self.inner.page_state(addr)) {
            (Bug::StalePageState, PageState::PresentRw) => PageState::PresentRo,
            (_, s) => s,
        }
    }

    fn accessible_pages(&self) -> Vec<(u32, PageKind)> {
        self.inner.accessible_pages()
    }

    fn dirty_pages(&self) -> Vec<u32> {
        self.inner.dirty_pages()
    }
}
