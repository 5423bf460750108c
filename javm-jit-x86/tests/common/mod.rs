//! Helpers shared by the recompiler's integration tests.
#![allow(dead_code, reason = "each test binary uses a subset")]

use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::{
    Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, MemoryLayout, PageKind, Program,
};

/// A loop that touches 16 pages (copy-on-write), makes a host call every 64
/// iterations and finally faults at 0x30000.
pub(crate) const WORKLOAD: &str = "load_imm r2, 0x20000\nfallthrough\nloop:\nand_imm r3, r1, 15\n\
    shlo_l_imm_64 r3, r3, 12\nadd_64 r3, r3, r2\nload_ind_u64 r4, r3, 8\nadd_64 r4, r4, r1\n\
    store_ind_u64 r4, r3, 8\nadd_imm_64 r1, r1, -1\nbranch_eq_imm r1, 0, @done\n\
    and_imm r5, r1, 63\nbranch_ne_imm r5, 0, @loop\necalli 1\njump @loop\n\
    done:\nload_u64 r6, 0x30000\ntrap";

pub(crate) fn program(src: &str) -> Arc<Program> {
    Arc::new(assemble(src).unwrap().program().unwrap())
}

pub(crate) fn layout() -> Arc<MemoryLayout> {
    let mut l = MemoryLayout::new();
    l.add_region(0x20000, 0x10000, PageKind::EphemeralZero, &[])
        .unwrap();
    Arc::new(l)
}

/// Everything observable after running the workload to its fault, servicing host
/// calls by incrementing r7.
pub(crate) fn run_workload<E: Engine>(
    engine: &E,
    module: &Arc<E::Module>,
    iterations: u64,
) -> (Exit, [u64; 13], i64, Vec<u8>) {
    let mut regs = [0u64; 13];
    regs[1] = iterations;
    let mut inst = engine
        .instantiate(
            module,
            InstanceInit {
                layout: layout(),
                regs,
                pc: 0,
                gas: 10_000_000,
            },
        )
        .unwrap();
    let exit = loop {
        match inst.run().unwrap() {
            Exit::HostCall(1) => {
                let r7 = inst.reg(javm_exec::Reg::R7);
                inst.set_reg(javm_exec::Reg::R7, r7 + 1);
            }
            e => break e,
        }
    };
    let mut mem = vec![0u8; 0x10000];
    inst.read_memory(0x20000, &mut mem).unwrap();
    (exit, inst.regs(), inst.gas(), mem)
}

pub(crate) fn schedule() -> GasSchedule {
    GasSchedule::new(GasProfile::Jar1, layout().accessible_pages())
}
