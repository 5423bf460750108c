//! Results recorded before performance work, which no optimization may change
//! (`tests/recorded.txt`): the block costs of many programs under every schedule
//! (random code and bitmasks, so odd skips and non-instruction positions are
//! priced too, plus the example programs), and the complete outcome of running each
//! example program on every engine — exit, PC, gas, registers, output and page
//! states — and of each compiled C program of the peer comparisons
//! (`programs/peerbench`, `tools/peer-extra/programs`), whose expected results
//! are checked too.
//!
//! `JAVM_BLESS=1 cargo test -p differential-tests --test recorded` rewrites the
//! file; a change to it is a change of results and needs a reason.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use differential_tests::pbp::{self, HostCalls, PbpProgram};
use javm_exec::blob::StandardProgram;
use javm_exec::{
    Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, MemTier, PageState, Program, Reg,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// FNV-1a over 64-bit words.
#[derive(Clone, Copy)]
struct Digest(u64);

impl Digest {
    fn new() -> Digest {
        Digest(0xCBF2_9CE4_8422_2325)
    }
    fn add(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }
}

/// Every schedule: `gp` and `jar1` at each memory tier.
fn schedules() -> Vec<GasSchedule> {
    let mut v = vec![GasSchedule::Gp];
    for t in 1..=4 {
        v.push(GasSchedule::Jar1(MemTier::new(t).expect("tier")));
    }
    v
}

fn cost_digest(program: &Program, schedule: GasSchedule, d: &mut Digest) {
    for c in program.block_costs(schedule) {
        d.add(c.cost);
        d.add(c.reserve);
    }
}

/// Programs of random bytes and bitmasks, from a fixed generator.
fn random_programs() -> Vec<Program> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..400)
        .map(|i| {
            let len = 1 + (next() % 600) as usize;
            let code: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let density = 1 + i % 12;
            let mut mask = vec![0u8; len.div_ceil(8)];
            for p in 0..len {
                if p == 0 || next() % density == 0 {
                    mask[p / 8] |= 1 << (p % 8);
                }
            }
            let table: Vec<u32> = (0..(i % 5)).map(|_| (next() % len as u64) as u32).collect();
            Program::new(code, mask, table).expect("a well-formed random program")
        })
        .collect()
}

fn examples() -> Vec<(String, StandardProgram)> {
    let dir = root().join("javm/examples");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pvm"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable");
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let sp = StandardProgram::parse(&bytes).expect("a standard program");
            (name, sp)
        })
        .collect()
}

/// `sp` prepared under `profile` and started at `pc` with `gas` and the registers
/// its standard layout gives it for `args` (returned too).
fn start<E: Engine>(
    engine: &E,
    sp: &StandardProgram,
    args: &[u8],
    profile: GasProfile,
    pc: u32,
    gas: i64,
) -> (E::Instance, [u64; 13]) {
    let (layout, regs) = sp.initial_state(args).expect("initial state");
    let schedule = GasSchedule::new(profile, layout.accessible_pages());
    let module = engine.prepare(&sp.program, schedule).expect("prepare");
    let init = InstanceInit {
        layout: Arc::new(layout),
        regs,
        pc,
        gas,
    };
    (
        engine.instantiate(&module, init).expect("instantiate"),
        regs,
    )
}

/// Run an example to its end (host calls answered with r7 = 0, at most 10 000), and
/// describe everything observable.
fn run_example<E: Engine>(engine: &E, sp: &StandardProgram, profile: GasProfile) -> String {
    let (mut inst, _) = start(engine, sp, &[], profile, 0, 1_000_000_000);
    let mut exits = 0;
    let exit = loop {
        let e = inst.run().expect("run");
        exits += 1;
        if !matches!(e, Exit::HostCall(_)) || exits == 10_000 {
            break e;
        }
        inst.set_reg(Reg::R7, 0);
    };
    let mut d = Digest::new();
    for r in inst.regs() {
        d.add(r);
    }
    for (page, _) in inst.accessible_pages() {
        d.add(u64::from(page));
        d.add(inst.page_state(page) as u64);
    }
    let (at, len) = (inst.reg(Reg::R7), inst.reg(Reg::R8).min(1 << 16));
    let mut out = vec![0u8; len as usize];
    let readable = u32::try_from(at).is_ok_and(|a| inst.read_memory(a, &mut out).is_ok());
    for b in out.iter().filter(|_| readable) {
        d.add(u64::from(*b));
    }
    format!(
        "{} pc {} exits {exits} gas-left {} state {:016x}",
        exit,
        inst.pc(),
        inst.gas(),
        d.0
    )
}

/// The compiled C programs of the peer comparisons: the peer harness's nine
/// (`programs/peerbench`) and the five of `tools/peer-extra/programs`.
fn c_programs() -> Vec<(String, PbpProgram)> {
    let mut all = Vec::new();
    for dir in [
        "differential-tests/programs/peerbench",
        "tools/peer-extra/programs",
    ] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pbp"))
            .collect();
        paths.sort();
        for p in paths {
            let bytes = std::fs::read(&p).expect("readable");
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let file = pbp::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            all.push((name, file));
        }
    }
    all
}

/// Run a compiled program from its file to its end, answering host calls as the
/// file says; check the result it expects (under `check`); describe everything
/// observable: exit, PC, host calls, gas, registers, page states and the contents
/// of every written page.
fn run_c_program<E: Engine>(
    engine: &E,
    p: &PbpProgram,
    profile: GasProfile,
    check: bool,
) -> String {
    let sp = StandardProgram::parse(&p.blob).expect("a standard program");
    let gas = i64::try_from(p.gas_limit).expect("a gas limit below 2^63");
    let (mut inst, regs) = start(engine, &sp, &p.args, profile, p.entry_pc, gas);
    assert_eq!(
        regs, p.regs,
        "{}: the initial registers the file records",
        p.name
    );
    let mut calls = 0u64;
    let exit = loop {
        let e = inst.run().expect("run");
        if !matches!(e, Exit::HostCall(_)) {
            break e;
        }
        calls += 1;
        match p.host_calls {
            HostCalls::Forbidden => break e,
            HostCalls::Counter(r) => inst.set_reg(Reg::ALL[r], calls),
            HostCalls::Constant(r, v) => inst.set_reg(Reg::ALL[r], v),
        }
    };
    if check {
        if p.expect_halt {
            assert_eq!(exit, Exit::Halt, "{}: the exit", p.name);
        }
        if let Some(a0) = p.expect_a0 {
            assert_eq!(inst.reg(Reg::R7), a0, "{}: A0", p.name);
        }
        if let Some(n) = p.expect_host_calls {
            assert_eq!(calls, n, "{}: host calls", p.name);
        }
    }
    let mut d = Digest::new();
    for r in inst.regs() {
        d.add(r);
    }
    let mut page = vec![0u8; 4096];
    for (addr, _) in inst.accessible_pages() {
        let state = inst.page_state(addr);
        d.add(u64::from(addr));
        d.add(state as u64);
        if state == PageState::PresentRw {
            inst.read_memory(addr, &mut page)
                .expect("a written page reads");
            for w in page.chunks_exact(8) {
                d.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            }
        }
    }
    format!(
        "{} pc {} host-calls {calls} gas-left {} state {:016x}",
        exit,
        inst.pc(),
        inst.gas(),
        d.0
    )
}

fn current() -> String {
    let mut out = String::new();
    let randoms = random_programs();
    let examples = examples();
    for s in schedules() {
        let mut d = Digest::new();
        for p in &randoms {
            cost_digest(p, s, &mut d);
        }
        let _ = writeln!(out, "costs random {s}: {:016x}", d.0);
        for (name, sp) in &examples {
            let mut d = Digest::new();
            cost_digest(&sp.program, s, &mut d);
            let _ = writeln!(out, "costs {name} {s}: {:016x}", d.0);
        }
    }
    for (name, sp) in &examples {
        for profile in [GasProfile::Jar1, GasProfile::Gp] {
            let interp = run_example(&javm_exec::Interpreter::new(), sp, profile);
            #[cfg(jit)]
            assert_eq!(
                run_example(differential_tests::jit(), sp, profile),
                interp,
                "{name} {profile}: the engines differ"
            );
            // Compiled in parts of a few instructions on several threads, linked.
            #[cfg(jit)]
            assert_eq!(
                run_example(differential_tests::jit_in_parts(), sp, profile),
                interp,
                "{name} {profile}: the recompiler in parts differs"
            );
            let _ = writeln!(out, "run {name} {profile}: {interp}");
        }
    }
    for (name, file) in &c_programs() {
        // The files' gas limits and expected results are for the profile the
        // comparisons run (`jar1`); under `gp` the run is recorded as it ends.
        for (profile, check) in [(GasProfile::Jar1, true), (GasProfile::Gp, false)] {
            let interp = run_c_program(&javm_exec::Interpreter::new(), file, profile, check);
            #[cfg(jit)]
            assert_eq!(
                run_c_program(differential_tests::jit(), file, profile, check),
                interp,
                "{name} {profile}: the engines differ"
            );
            #[cfg(jit)]
            assert_eq!(
                run_c_program(differential_tests::jit_in_parts(), file, profile, check),
                interp,
                "{name} {profile}: the recompiler in parts differs"
            );
            let _ = writeln!(out, "run c-program {name} {profile}: {interp}");
        }
    }
    out
}

#[test]
fn results_are_the_recorded_ones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recorded.txt");
    let now = current();
    if std::env::var_os("JAVM_BLESS").is_some() {
        std::fs::write(&path, &now).expect("write the record");
        return;
    }
    let recorded = std::fs::read_to_string(&path).expect("tests/recorded.txt");
    for (a, b) in recorded.lines().zip(now.lines()) {
        assert_eq!(a, b, "a recorded result changed");
    }
    assert_eq!(
        recorded.lines().count(),
        now.lines().count(),
        "lines recorded"
    );
}
