//! The x86-64 recompiler engine of JAVM.
//!
//! [`Recompiler`] implements [`javm_exec::Engine`]: it compiles a
//! [`javm_exec::Program`]'s decoded instructions in a single pass with dynasm-rs into position-independent
//! machine code, cached by program content and shared by every instance and thread, and
//! runs instances in pooled 4 GiB guest windows whose pages are materialized on
//! demand by a SIGSEGV handler that applies the same [`javm_exec::memory::PageMap`]
//! rule as the interpreter. Gas, exits, registers, memory and page states match the
//! interpreter bit for bit.
//!
//! * `codegen` — lowering of every instruction, gas checks, exit stubs;
//! * `code` — W^X code buffers (written, then sealed read + execute);
//! * `window` — guest windows with a guard region, pooled;
//! * `signal` — the fault handler and per-thread signal stacks;
//! * `instance` — the run loop, exits, host access to guest memory;
//! * `native` — disassembly of the emitted code (iced-x86; cargo feature `disasm`).
//!
//! # Signals
//!
//! On first use in a process the engine installs handlers for SIGSEGV and SIGBUS
//! (guest page faults) and SIGURG (interrupt requests, which reach running code as
//! a signal to its thread: compiled code polls nothing), each with `SA_ONSTACK`, and
//! gives each thread that runs guest code an alternate signal stack. Anything that
//! is not about a running guest is passed to the handler installed before. A host
//! that installs its own handler for one of these signals later must chain to the
//! previous one, or guest faults crash and interrupts wait for the next entry.
//!
//! The crate builds on every platform, but the engine exists only on x86-64 Linux;
//! elsewhere [`Recompiler::new`] is absent and [`is_available`] returns false.
//!
//! # Example
//!
//! ```
//! # #[cfg(all(target_arch = "x86_64", target_os = "linux"))] {
//! use std::sync::Arc;
//! use javm_exec::asm::assemble;
//! use javm_exec::{Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, MemoryLayout};
//! use javm_jit_x86::Recompiler;
//!
//! let program = Arc::new(assemble("load_imm r7, 20\necalli 1\nadd_imm_64 r7, r7, 1\ntrap").unwrap().program().unwrap());
//! let layout = Arc::new(MemoryLayout::new());
//! let engine = Recompiler::new().unwrap();
//! let module = engine.prepare(&program, GasSchedule::new(GasProfile::Jar1, 0)).unwrap();
//! let mut vm = engine
//!     .instantiate(&module, InstanceInit { layout, regs: [0; 13], pc: 0, gas: 10_000 })
//!     .unwrap();
//! assert_eq!(vm.run().unwrap(), Exit::HostCall(1));
//! vm.set_reg(javm_exec::Reg::R7, 40);
//! assert_eq!(vm.run().unwrap(), Exit::Trap);
//! assert_eq!(vm.reg(javm_exec::Reg::R7), 41);
//! # }
//! ```

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod code;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod codegen;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod ctx;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod instance;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod module;
#[cfg(all(feature = "disasm", target_arch = "x86_64", target_os = "linux"))]
pub mod native;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod signal;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod window;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use instance::JitInstance;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use module::{JitModule, MAX_COMPILE_THREADS, Recompiler};

/// Whether the recompiler can run on this host (x86-64 Linux with BMI1, BMI2,
/// LZCNT and POPCNT).
pub fn is_available() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        module::Recompiler::is_available()
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}
