//! JAVM execution core: everything both engines share, and the interpreter.
//!
//! * [`isa`] — the instruction set, defined once (the `for_each_opcode!` table),
//!   with single-instruction decoding and encoding;
//! * [`Program`] — code validated once into basic blocks, the jump table resolved,
//!   and decoded on demand into [`Instruction`]s with their branch targets resolved;
//! * [`blob`] — the GP code blob and standard program blob loaders;
//! * [`gas`] — the `jar1` and `gp` profiles and block pricing; constants in
//!   [`gas_const`];
//! * [`memory`] — layouts, the materialization state machine ([`memory::mat`]) and
//!   the per-page rules both engines apply, host page-access changes included
//!   ([`PageAccess`]);
//! * [`memop`] — the generic reading of a load or store's operands;
//! * [`ops`] — arithmetic semantics with every edge case written once;
//! * [`Engine`] / [`Instance`] — the trait both engines implement, and
//!   [`Interpreter`], the first implementation;
//! * [`asm`] and [`disasm`] — the text assembler and disassembler.
//!
//! This crate has no `unsafe` code but two items in `interp/run.rs` that place the
//! interpreter's loop in a 64-byte aligned code section (a `link_section`
//! attribute and an alignment directive); the recompiler lives in `javm-jit-x86`.
//!
//! # Example
//!
//! Assemble a program, prepare it once, run an instance, and service its host call:
//!
//! ```
//! use std::sync::Arc;
//! use javm_exec::asm::assemble;
//! use javm_exec::{
//!     Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, Interpreter,
//!     MemoryLayout, PageKind, Reg,
//! };
//!
//! let program = Arc::new(
//!     assemble("load_imm r7, 20\necalli 1\nadd_imm_64 r7, r7, 1\ntrap")?.program()?,
//! );
//! let mut layout = MemoryLayout::new();
//! layout.add_region(0x20000, 0x1000, PageKind::EphemeralZero, &[])?;
//! let layout = Arc::new(layout);
//!
//! let engine = Interpreter::new();
//! let schedule = GasSchedule::new(GasProfile::Jar1, layout.accessible_pages());
//! let module = engine.prepare(&program, schedule)?; // cached by program content
//! let mut vm = engine.instantiate(
//!     &module,
//!     InstanceInit { layout, regs: [0; 13], pc: 0, gas: 10_000 },
//! )?;
//!
//! assert_eq!(vm.run()?, Exit::HostCall(1));
//! vm.set_reg(Reg::R7, vm.reg(Reg::R7) * 2); // the host's answer
//! assert_eq!(vm.run()?, Exit::Trap); // resumes after the ecalli
//! assert_eq!(vm.reg(Reg::R7), 41);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

pub mod asm;
pub mod blob;
pub mod disasm;
pub mod engine;
pub mod fuse;
pub mod gas;
pub mod gas_const;
pub mod instruction;
pub mod interp;
pub mod isa;
pub mod memop;
pub mod memory;
pub mod ops;
pub mod panic;
pub mod program;

pub use engine::{
    CachedModule, Engine, EngineError, EngineKind, Exit, Instance, InstanceInit, InterruptHandle,
    InterruptNotify, MemoryError, ModuleCache,
};
pub use gas::{GasProfile, GasSchedule, MemTier};
pub use instruction::{Instruction, Target};
pub use interp::{InterpInstance, Interpreter};
pub use isa::{NUM_REGS, Opcode, Reg};
pub use memory::{MemoryLayout, PageAccess, PageKind, PageState};
pub use panic::PanicReason;
pub use program::{Program, ProgramError, ProgramHash};
