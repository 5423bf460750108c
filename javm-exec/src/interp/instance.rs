//! [`InterpInstance`]: one running instance and its resume state.

use std::sync::Arc;

use super::InterpModule;
use super::memory::FlatMemory;
pub(super) use crate::engine::Resume;
use crate::engine::{
    EngineError, Exit, Instance, InterruptHandle, MemoryError, check_gas, check_start,
};
use crate::isa::{NUM_REGS, Reg};
use crate::memory::{PageAccess, PageKind, PageState};

/// An interpreter instance.
#[derive(Debug)]
pub struct InterpInstance {
    pub(super) module: Arc<InterpModule>,
    /// Registers r0..r12 in slots 0..13; slots 13..16 exist so that the dispatch loop
    /// can index with `& 15` and never bounds-check. Boxed: the loop's register
    /// stores then do not sit next to the Rust stack it also uses.
    pub(super) regs: Box<[u64; 16]>,
    pub(super) gas: i64,
    pub(super) mem: FlatMemory,
    pub(super) pc: u32,
    pub(super) resume: Resume,
    pub(super) interrupt: InterruptHandle,
}

impl InterpInstance {
    pub(super) fn new(
        module: Arc<InterpModule>,
        regs: [u64; NUM_REGS],
        pc: u32,
        gas: i64,
        mem: FlatMemory,
    ) -> Self {
        let mut file = Box::new([0u64; 16]);
        file[..NUM_REGS].copy_from_slice(&regs);
        let mut inst = InterpInstance {
            module,
            regs: file,
            gas,
            mem,
            pc,
            resume: Resume::BadPc,
            interrupt: InterruptHandle::new(),
        };
        inst.set_pc(pc);
        inst
    }

    /// The module this instance runs.
    pub fn module(&self) -> &Arc<InterpModule> {
        &self.module
    }
}

impl Instance for InterpInstance {
    fn run(&mut self) -> Result<Exit, EngineError> {
        super::run::run_to_exit(self)
    }

    fn step_block(&mut self) -> Result<Option<Exit>, EngineError> {
        super::run::run_step(self)
    }

    fn regs(&self) -> [u64; NUM_REGS] {
        let mut out = [0u64; NUM_REGS];
        out.copy_from_slice(&self.regs[..NUM_REGS]);
        out
    }

    fn set_reg(&mut self, r: Reg, value: u64) {
        self.regs[r.index()] = value;
    }

    fn pc(&self) -> u32 {
        self.pc
    }

    fn next_pc(&self) -> Option<u32> {
        self.resume.next_pc(&self.module.program, self.pc)
    }

    fn panic_reason(&self) -> Option<crate::PanicReason> {
        let profile = self.module.schedule.profile();
        self.resume
            .panic_reason(&self.module.program, profile, self.pc)
    }

    fn interrupt_handle(&self) -> InterruptHandle {
        // Requests can only be made through the handle: the blocks that check
        // for them are marked before it is given out.
        self.module.enable_interrupts();
        self.interrupt.clone()
    }

    fn reset(&mut self, regs: [u64; NUM_REGS], pc: u32, gas: i64) -> Result<(), EngineError> {
        let gas = check_start(
            &self.module.program,
            self.module.schedule.profile(),
            pc,
            gas,
        )?;
        self.mem.reset()?;
        self.regs.fill(0);
        self.regs[..NUM_REGS].copy_from_slice(&regs);
        self.gas = gas;
        self.set_pc(pc);
        Ok(())
    }

    fn set_pc(&mut self, pc: u32) {
        self.pc = pc;
        self.resume = Resume::at_pc(&self.module.program, self.module.schedule.profile(), pc);
    }

    fn gas(&self) -> i64 {
        self.gas
    }

    fn set_gas(&mut self, gas: i64) -> Result<(), EngineError> {
        self.gas = check_gas(i128::from(gas))?;
        Ok(())
    }

    fn read_memory(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.mem.read(addr, buf)
    }

    fn write_memory(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError> {
        self.mem.write(addr, data)
    }

    fn set_page_access(
        &mut self,
        addr: u32,
        pages: u32,
        access: PageAccess,
    ) -> Result<(), MemoryError> {
        self.mem.set_access(addr, pages, access)
    }

    fn page_state(&self, addr: u32) -> PageState {
        self.mem.map().state(addr)
    }

    fn accessible_pages(&self) -> Vec<(u32, PageKind)> {
        self.mem.map().mapped_pages().collect()
    }

    fn dirty_pages(&self) -> Vec<u32> {
        self.mem.map().dirty_pages()
    }
}
