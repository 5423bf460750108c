//! The benchmark workloads and measurements shared by `javm bench` and the criterion
//! benches (`cargo bench -p javm --bench engines`, `--bench vm`); [`vm`] measures the
//! driver.
//!
//! Every measurement checks its result first (output bytes and, across engines, gas),
//! and reports the median of its samples. Compile time is measured from the code
//! blob: decoding into a [`Program`] plus preparing it on an engine with an empty
//! cache, so both engines pay the same front end.

pub mod vm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use javm_exec::asm::assemble;
use javm_exec::blob::{StandardProgram, parse_code_blob};
use javm_exec::{Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, Program};

/// A program run to completion, with its argument and expected output.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Name in tables.
    pub name: &'static str,
    /// Assembly source.
    pub source: &'static str,
    /// The 4-byte argument.
    pub n: u32,
    /// The expected output (`mem[r7 .. r7 + r8]` at halt).
    pub expected: fn(u32) -> Vec<u8>,
}

fn fib(n: u32) -> Vec<u8> {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a.to_le_bytes().to_vec()
}

fn sieve(n: u32) -> Vec<u8> {
    let n = n as usize;
    let mut composite = vec![false; n.max(2)];
    let mut count = 0u32;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
    }
    count.to_le_bytes().to_vec()
}

/// sort.s outputs its checksum and a sorted flag; only the flag is checked here.
fn sorted(_: u32) -> Vec<u8> {
    Vec::new()
}

fn fnv(n: u32) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut bytes = Vec::with_capacity(n as usize + 8);
    while bytes.len() < n as usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for &b in &bytes[..n as usize] {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    h.to_le_bytes().to_vec()
}

fn digits(n: u32) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut sum = 0u64;
    for _ in 0..n {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut v = x;
        while v != 0 {
            sum += v % 10;
            v /= 10;
        }
    }
    sum.to_le_bytes().to_vec()
}

fn calls(n: u32) -> Vec<u8> {
    u64::from(n).to_le_bytes().to_vec()
}

/// The execution workloads (examples/*.s).
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "fib",
        source: include_str!("../../examples/fib.s"),
        n: 10_000_000,
        expected: fib,
    },
    Workload {
        name: "sieve",
        source: include_str!("../../examples/sieve.s"),
        n: 1_000_000,
        expected: sieve,
    },
    Workload {
        name: "sort",
        source: include_str!("../../examples/sort.s"),
        n: 2_000,
        expected: sorted,
    },
    Workload {
        name: "hash",
        source: include_str!("../../examples/hash.s"),
        n: 1_000_000,
        expected: fnv,
    },
    Workload {
        name: "digits",
        source: include_str!("../../examples/digits.s"),
        n: 100_000,
        expected: digits,
    },
    Workload {
        name: "divide",
        source: include_str!("../../examples/divide.s"),
        n: 20_000,
        // The same sums as `digits`, by division instructions.
        expected: digits,
    },
];

/// The host-call workload: `n` `ecalli 0` exits, each answered by doing nothing.
pub const HOSTCALL: Workload = Workload {
    name: "hostcall",
    source: include_str!("../../examples/hostcall.s"),
    n: 100_000,
    expected: calls,
};

/// A workload assembled and ready to instantiate.
pub struct Prepared {
    /// The standard program.
    pub sp: StandardProgram,
    /// Its initial state for the workload's argument.
    pub init: InstanceInit,
    /// Its schedule (jar1).
    pub schedule: GasSchedule,
}

impl Workload {
    /// Assemble and lay out the workload.
    pub fn prepare(&self) -> Result<Prepared, String> {
        let a = assemble(self.source).map_err(|e| format!("{}: {e}", self.name))?;
        let sp = a.standard().map_err(|e| format!("{}: {e}", self.name))?;
        let (layout, regs) = sp
            .initial_state(&self.n.to_le_bytes())
            .map_err(|e| e.to_string())?;
        let schedule = GasSchedule::new(GasProfile::Jar1, layout.accessible_pages());
        let init = InstanceInit {
            layout: Arc::new(layout),
            regs,
            pc: 0,
            gas: i64::MAX,
        };
        Ok(Prepared { sp, init, schedule })
    }
}

/// Run `inst` to its halt, answering host calls, and return (output, gas used).
pub fn run_to_halt<I: Instance>(inst: &mut I) -> Result<(Vec<u8>, i64), String> {
    let start = inst.gas();
    loop {
        match inst.run().map_err(|e| e.to_string())? {
            Exit::HostCall(_) => {}
            Exit::Halt => break,
            e => return Err(format!("unexpected exit {e} at pc {}", inst.pc())),
        }
    }
    let regs = inst.regs();
    let len = usize::try_from(regs[8])
        .map_err(|_| "output too long")?
        .min(1 << 24);
    let mut out = vec![0u8; len];
    inst.read_memory(regs[7] as u32, &mut out)
        .map_err(|e| e.to_string())?;
    Ok((out, start - inst.gas()))
}

/// Check a workload's output.
pub fn check(w: &Workload, out: &[u8]) -> Result<(), String> {
    let want = (w.expected)(w.n);
    let ok = if want.is_empty() {
        out.get(8) == Some(&1)
    } else {
        out == want
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{}: wrong output {out:02x?}", w.name))
    }
}

/// A large synthetic program (about `bytes` of code: ALU work, loads, stores and a
/// branch per block) for measuring compile speed.
pub fn large_program(bytes: usize) -> Result<Program, String> {
    let mut src = String::with_capacity(bytes * 8);
    let mut i = 0usize;
    let mut code = 0usize;
    while code < bytes {
        src.push_str(&format!(
            "b{i}:\nadd_64 r1, r2, r3\nxor r4, r1, r5\nload_ind_u32 r6, r1, 16\n\
             store_ind_u32 r6, r2, 32\nshlo_l_imm_64 r7, r4, 3\nmul_64 r8, r7, r9\n\
             div_u_64 r10, r8, r3\nbranch_ne_imm r8, {}, @b{}\n",
            i & 0x7F,
            i + 1
        ));
        // About 26 bytes of code per block.
        code += 26;
        i += 1;
    }
    src.push_str(&format!("b{i}:\ntrap\n"));
    let a = assemble(&src).map_err(|e| e.to_string())?;
    a.program().map_err(|e| e.to_string())
}

/// The median of `samples` timings of `f`.
pub fn median(
    samples: usize,
    mut f: impl FnMut() -> Result<Duration, String>,
) -> Result<Duration, String> {
    let mut v = (0..samples.max(1))
        .map(|_| f())
        .collect::<Result<Vec<_>, _>>()?;
    v.sort();
    Ok(v[v.len() / 2])
}

/// One engine's figures for one workload.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Compile (decode + prepare) time of the workload's program.
    pub compile: Duration,
    /// Instance creation (and drop) time, for an instance that never runs.
    pub create: Duration,
    /// A whole short life: create, run one block (step mode), drop. Unlike
    /// [`Figures::create`] this includes discarding memory the guest could touch.
    pub lifecycle: Duration,
    /// Execution time (instance already created).
    pub execute: Duration,
    /// Gas used.
    pub gas: i64,
}

/// Measure `w` on `engine` (a fresh cache per compile sample: `make` builds one).
pub fn measure<E: Engine>(
    make: &dyn Fn() -> E,
    w: &Workload,
    samples: usize,
) -> Result<Figures, String> {
    let p = w.prepare()?;
    let blob = assemble(w.source).map_err(|e| e.to_string())?.code_blob();
    let engine = make();
    let module = engine
        .prepare(&p.sp.program, p.schedule)
        .map_err(|e| e.to_string())?;
    let mut inst = engine
        .instantiate(&module, p.init.clone())
        .map_err(|e| e.to_string())?;
    let (out, gas) = run_to_halt(&mut inst)?;
    check(w, &out)?;
    let compile = median(samples * 4, || {
        let fresh = make();
        let t = Instant::now();
        let program = Arc::new(parse_code_blob(&blob).map_err(|e| e.to_string())?);
        let m = fresh
            .prepare(&program, p.schedule)
            .map_err(|e| e.to_string())?;
        let d = t.elapsed();
        drop(m);
        Ok(d)
    })?;
    let create = median(samples, || {
        const N: u32 = 100;
        let t = Instant::now();
        for _ in 0..N {
            let i = engine
                .instantiate(&module, p.init.clone())
                .map_err(|e| e.to_string())?;
            drop(i);
        }
        Ok(t.elapsed() / N)
    })?;
    let lifecycle = median(samples, || {
        const N: u32 = 100;
        let t = Instant::now();
        for _ in 0..N {
            let mut i = engine
                .instantiate(&module, p.init.clone())
                .map_err(|e| e.to_string())?;
            i.step_block().map_err(|e| e.to_string())?;
            drop(i);
        }
        Ok(t.elapsed() / N)
    })?;
    let execute = median(samples, || {
        let mut inst = engine
            .instantiate(&module, p.init.clone())
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        run_to_halt(&mut inst)?;
        Ok(t.elapsed())
    })?;
    Ok(Figures {
        compile,
        create,
        lifecycle,
        execute,
        gas,
    })
}

/// Median times to prepare `program` on a fresh engine cache:
/// `(blocks already priced, pricing included)`. Pricing belongs to the shared
/// [`Program`] (computed once per schedule, then cached), so the first figure is the
/// engine's own work and the second what a program seen for the first time costs.
pub fn measure_compile<E: Engine>(
    make: &dyn Fn() -> E,
    program: &Arc<Program>,
    samples: usize,
) -> Result<(Duration, Duration), String> {
    let schedule = GasSchedule::new(GasProfile::Jar1, 16);
    let fresh_program = || -> Result<Arc<Program>, String> {
        Program::new(
            program.code().to_vec(),
            program.bitmask().to_vec(),
            program.jump_table().to_vec(),
        )
        .map(Arc::new)
        .map_err(|e| e.to_string())
    };
    let time = |priced: bool| {
        median(samples, || {
            let p = fresh_program()?;
            if priced {
                p.block_costs(schedule);
            }
            let fresh = make();
            let t = Instant::now();
            let m = fresh.prepare(&p, schedule).map_err(|e| e.to_string())?;
            let d = t.elapsed();
            drop(m);
            Ok(d)
        })
    };
    Ok((time(true)?, time(false)?))
}
