//! Test suites that span crates, written against the [`javm_exec::Engine`] trait so
//! that every case runs on every engine:
//!
//! * `tests/vectors.rs` — the Gray Paper conformance vectors;
//! * `tests/opcodes.rs` — a hand-checked case for each of the 141 opcodes;
//! * `tests/semantics.rs` — the edge cases of docs/ISA.md §7;
//! * `tests/gas.rs` — the jar1 worked examples, reserves, floors, tiers and
//!   materialization charges;
//! * `tests/engine_api.rs` — resuming, stepping, host calls and host memory access.
//!
//! [`Case`] builds an instance from assembly text and an explicit memory layout;
//! [`engine_tests!`] turns generic test functions into one named test per engine.
//!
//! The differential harness: [`generate`] generates programs ([`structured`] long-running
//! ones), [`oracle`] runs one on two
//! engines and compares everything, [`campaign`] runs many with coverage and
//! shrinking, [`regress`] keeps shrunk cases as regression files, [`adapters`] holds
//! deliberately wrong engines for self-tests, and [`fuzz`] the oracles behind the
//! `fuzz/` targets; [`watchdog`] turns a comparison that never ends into a failure;
//! [`pbp`] reads the peer benchmark's program files (the compiled C programs
//! `tests/recorded.rs` records results of).
//! The engine pair is the interpreter (the oracle) and the recompiler
//! on x86-64 Linux; elsewhere the interpreter with itself, which still checks
//! determinism and stepping against running.
#![forbid(unsafe_code)]

pub mod adapters;
pub mod campaign;
pub mod fuzz;
pub mod generate;
pub mod oracle;
pub mod pbp;
pub mod regress;
pub mod scenario;
pub mod structured;
pub mod watchdog;

use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::{
    Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, MemoryLayout, NUM_REGS,
    PageKind, Program,
};

/// Expand generic test functions `fn name<E: Engine>(engine: &E)` into one `#[test]`
/// per engine: `interp::name`, and `jit::name` where the recompiler exists.
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod interp {
            $(
                #[test]
                fn $name() {
                    super::$name(&javm_exec::Interpreter::new());
                }
            )*
        }
        #[cfg(jit)]
        mod jit {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::jit());
                }
            )*
        }
    };
}

/// The process-wide recompiler the tests share (so its module cache is shared too).
/// Panics if the host cannot run it: the test suites require it on x86-64 Linux.
#[cfg(jit)]
pub fn jit() -> &'static javm_jit_x86::Recompiler {
    static JIT: std::sync::OnceLock<javm_jit_x86::Recompiler> = std::sync::OnceLock::new();
    JIT.get_or_init(|| javm_jit_x86::Recompiler::new().expect("the recompiler is available"))
}

/// A process-wide recompiler that compiles every program in parts of at most 5
/// instructions (whole blocks) on 3 threads and links them (`javm-jit-x86`
/// `codegen/link.rs`): what only programs of more than 32 768 instructions get
/// by default, for tests to compare with the interpreter on small programs.
#[cfg(jit)]
pub fn jit_in_parts() -> &'static javm_jit_x86::Recompiler {
    static JIT: std::sync::OnceLock<javm_jit_x86::Recompiler> = std::sync::OnceLock::new();
    JIT.get_or_init(|| {
        javm_jit_x86::Recompiler::new()
            .expect("the recompiler is available")
            .with_compile_part(5)
            .with_compile_threads(3)
    })
}

/// A program plus everything needed to instantiate it.
#[derive(Clone, Debug)]
pub struct Case {
    /// The program.
    pub program: Arc<Program>,
    /// The memory layout.
    pub layout: MemoryLayout,
    /// Initial registers.
    pub regs: [u64; NUM_REGS],
    /// Entry PC.
    pub pc: u32,
    /// Initial gas.
    pub gas: i64,
    /// Gas profile.
    pub profile: GasProfile,
}

impl Case {
    /// A case running `source` (assembly; data sections are ignored) with no memory,
    /// zero registers, 1 000 000 gas and the `jar1` profile.
    pub fn asm(source: &str) -> Case {
        let a = assemble(source).unwrap_or_else(|e| panic!("assembly failed: {e}\n{source}"));
        let program = a
            .program()
            .unwrap_or_else(|e| panic!("invalid program: {e}"));
        Case::program(program)
    }

    /// A case running raw code with the given instruction starts and jump table.
    pub fn code(code: &[u8], starts: &[u32], jump_table: &[u32]) -> Case {
        let mut mask = vec![0u8; code.len().div_ceil(8)];
        for &s in starts {
            mask[s as usize / 8] |= 1 << (s % 8);
        }
        Case::program(
            Program::new(code.to_vec(), mask, jump_table.to_vec()).expect("valid program"),
        )
    }

    fn program(program: Program) -> Case {
        Case {
            program: Arc::new(program),
            layout: MemoryLayout::new(),
            regs: [0; NUM_REGS],
            pc: 0,
            gas: 1_000_000,
            profile: GasProfile::Jar1,
        }
    }

    /// Use the `gp` profile.
    pub fn gp(mut self) -> Case {
        self.profile = GasProfile::Gp;
        self
    }

    /// Set the gas budget.
    pub fn gas(mut self, gas: i64) -> Case {
        self.gas = gas;
        self
    }

    /// Set a register.
    pub fn reg(mut self, r: usize, v: u64) -> Case {
        self.regs[r] = v;
        self
    }

    /// Set the entry PC.
    pub fn pc(mut self, pc: u32) -> Case {
        self.pc = pc;
        self
    }

    /// Map a region.
    pub fn region(mut self, start: u64, len: u64, kind: PageKind, contents: &[u8]) -> Case {
        self.layout
            .add_region(start, len, kind, contents)
            .unwrap_or_else(|e| panic!("bad test layout: {e}"));
        self
    }

    /// The schedule this case runs under.
    pub fn schedule(&self) -> GasSchedule {
        GasSchedule::new(self.profile, self.layout.accessible_pages())
    }

    /// Build an instance on `engine`.
    pub fn instance<E: Engine>(&self, engine: &E) -> E::Instance {
        let module = engine
            .prepare(&self.program, self.schedule())
            .expect("prepare");
        engine
            .instantiate(
                &module,
                InstanceInit {
                    layout: Arc::new(self.layout.clone()),
                    regs: self.regs,
                    pc: self.pc,
                    gas: self.gas,
                },
            )
            .expect("instantiate")
    }

    /// Run to the first exit.
    pub fn run<E: Engine>(&self, engine: &E) -> Outcome<E::Instance> {
        let mut inst = self.instance(engine);
        let exit = inst.run().expect("run");
        Outcome::new(exit, inst, self.gas)
    }
}

/// The state after an exit.
pub struct Outcome<I> {
    /// The exit.
    pub exit: Exit,
    /// PC reported.
    pub pc: u32,
    /// Remaining gas.
    pub gas: i64,
    /// Gas used since the case started.
    pub used: i64,
    /// Registers.
    pub regs: [u64; NUM_REGS],
    /// The instance, to inspect memory or continue.
    pub inst: I,
}

impl<I: Instance> Outcome<I> {
    fn new(exit: Exit, inst: I, initial_gas: i64) -> Self {
        Outcome {
            exit,
            pc: inst.pc(),
            gas: inst.gas(),
            used: initial_gas - inst.gas(),
            regs: inst.regs(),
            inst,
        }
    }

    /// Read `len` bytes of guest memory (panics if inaccessible).
    pub fn mem(&self, addr: u32, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.inst.read_memory(addr, &mut buf).expect("readable");
        buf
    }

    /// Continue after the exit; returns the next outcome.
    pub fn resume(mut self) -> Outcome<I> {
        let before = self.gas;
        let exit = self.inst.run().expect("run");
        let mut o = Outcome::new(exit, self.inst, before);
        o.used = before - o.gas;
        o
    }
}
