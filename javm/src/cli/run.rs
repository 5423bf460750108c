//! `javm run`.

use std::process::ExitCode;
use std::sync::Arc;

use javm_exec::{
    Engine, EngineKind, Exit, GasSchedule, Instance, InstanceInit, Interpreter, NUM_REGS,
};

use super::load::load;
use super::out::{CliError, json_regs, json_u64, out};
use super::{RunArgs, engine};

/// Largest output printed (GP `Z_I`).
const MAX_OUTPUT: u64 = 1 << 24;

pub(super) fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let kind = engine(args.engine)?;
    let gas = super::parse_gas("--gas", &args.gas)? as i64;
    let input = match &args.arg_file {
        Some(f) => super::load::read(f)?,
        None => decode_hex(&args.arg)?,
    };
    if super::run_image::is_image(&args.program) {
        if args.output.is_some() {
            return Err(
                "--output is for program files; an image's result is its return value and memory"
                    .into(),
            );
        }
        return super::run_image::run_image(&args, kind, &input, gas as u64);
    }
    if args.endpoint != 0 {
        return Err(
            "--endpoint is for images (manifests and bundles); a program file starts at --entry PC"
                .into(),
        );
    }
    let loaded = load(&args.program, args.format)?;
    let sp = loaded.into_standard();
    let (layout, regs) = sp.initial_state(&input).map_err(|e| e.to_string())?;
    let init = InstanceInit {
        layout: Arc::new(layout),
        regs,
        pc: args.entry,
        gas,
    };
    match kind {
        EngineKind::Interp => execute(
            &Interpreter::new().with_memory_limit(args.max_memory),
            &sp.program,
            init,
            &args,
        ),
        #[cfg(jit)]
        EngineKind::Jit => execute(
            &super::recompiler()?.with_memory_limit(args.max_memory),
            &sp.program,
            init,
            &args,
        ),
        #[cfg(not(jit))]
        EngineKind::Jit => Err(super::JIT_UNAVAILABLE.into()),
    }
}

fn execute<E: Engine>(
    engine: &E,
    program: &Arc<javm_exec::Program>,
    init: InstanceInit,
    args: &RunArgs,
) -> Result<ExitCode, CliError> {
    let schedule = GasSchedule::new(args.profile.into(), init.layout.accessible_pages());
    let module = engine
        .prepare(program, schedule)
        .map_err(|e| e.to_string())?;
    let initial_gas = init.gas;
    let mut inst = engine
        .instantiate(&module, init)
        .map_err(|e| e.to_string())?;
    let exit = if args.trace {
        trace(&mut inst)?
    } else {
        inst.run().map_err(|e| e.to_string())?
    };
    let regs = inst.regs();
    let gas_left = inst.gas();
    let output = (exit == Exit::Halt).then(|| read_output(&inst, regs));
    // With `--output -` standard output carries only the output bytes.
    let raw_to_stdout = args.output.as_deref().is_some_and(super::load::is_stdio);
    let mut report = String::new();
    if args.json {
        let json = serde_json::json!({
            "exit": exit.name(),
            "page_fault_address": match exit { Exit::PageFault(a) => Some(a), _ => None },
            "host_call": match exit { Exit::HostCall(id) => Some(id), _ => None },
            "panic_reason": inst.panic_reason().map(|r| r.name()),
            "pc": inst.pc(),
            "gas_used": json_u64((initial_gas - gas_left) as u64),
            "gas_left": json_u64(gas_left as u64),
            "regs": json_regs(&regs),
            "output": output.as_ref().map(|o| o.as_ref().map(|b| hex(b)).ok()),
            "engine": engine.kind().name(),
            "profile": schedule.profile().name(),
        });
        report = format!("{json}\n");
    } else {
        let mut line = |l: String| {
            report.push_str(&l);
            report.push('\n');
        };
        match inst.panic_reason() {
            Some(why) => line(format!("exit: {exit} ({why})")),
            None => line(format!("exit: {exit}")),
        }
        if let Exit::HostCall(_) | Exit::Ecall = exit {
            line(
                "note: `javm run` provides no host functions; the program stopped at its host call"
                    .into(),
            );
        }
        line(format!("pc: {}", inst.pc()));
        line(format!(
            "gas: used {}, left {}",
            initial_gas - gas_left,
            gas_left
        ));
        line("registers:".into());
        for row in (0..NUM_REGS).collect::<Vec<_>>().chunks(4) {
            let cells: Vec<String> = row
                .iter()
                .map(|&i| format!("{:<4}= {:#018x}", format!("r{i}"), regs[i]))
                .collect();
            line(format!("  {}", cells.join("  ")));
        }
        match &output {
            Some(Ok(bytes)) => line(format!(
                "output: {} bytes: {}{}",
                bytes.len(),
                hex(bytes),
                printable(bytes)
                    .map(|s| format!(" ({s:?})"))
                    .unwrap_or_default()
            )),
            Some(Err(why)) => line(format!("output: none ({why})")),
            None => {}
        }
    }
    if let Some(path) = &args.output {
        match &output {
            Some(Ok(bytes)) => super::load::write(path, bytes)?,
            Some(Err(why)) => {
                eprint!("{report}");
                return Err(
                    format!("--output: the program halted but has no output: {why}").into(),
                );
            }
            // Not halted: no output; the report and exit status say why.
            None => {}
        }
    }
    if raw_to_stdout {
        eprint!("{report}");
    } else {
        out!("{report}");
    }
    Ok(if exit == Exit::Halt {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Run block by block, printing each block's PC, gas and changed registers.
fn trace<I: Instance>(inst: &mut I) -> Result<Exit, String> {
    loop {
        let start = inst.next_pc().unwrap_or(inst.pc());
        let (gas_before, regs_before) = (inst.gas(), inst.regs());
        let step = inst.step_block().map_err(|e| e.to_string())?;
        let changed: Vec<String> = inst
            .regs()
            .iter()
            .zip(regs_before)
            .enumerate()
            .filter(|(_, (a, b))| *a != b)
            .map(|(i, (a, _))| format!("r{i}={a:#x}"))
            .collect();
        eprintln!(
            "[trace] block @{start:<6} gas {gas_before} -> {}{}{}",
            inst.gas(),
            if changed.is_empty() { "" } else { "  " },
            changed.join(" ")
        );
        if let Some(exit) = step {
            match inst.panic_reason() {
                Some(why) => eprintln!("[trace] {exit} at pc {}: {why}", inst.pc()),
                None => eprintln!("[trace] {exit} at pc {}", inst.pc()),
            }
            return Ok(exit);
        }
    }
}

/// GP output: `mem[r7 .. r7 + r8]`, or nothing if that range is not readable.
fn read_output<I: Instance>(inst: &I, regs: [u64; NUM_REGS]) -> Result<Vec<u8>, String> {
    let (addr, len) = (regs[7], regs[8]);
    if len > MAX_OUTPUT {
        return Err(format!("r8 = {len} exceeds the 16 MiB output limit"));
    }
    let addr = u32::try_from(addr).map_err(|_| format!("r7 = {addr:#x} is not an address"))?;
    let mut buf = vec![0u8; len as usize];
    inst.read_memory(addr, &mut buf)
        .map_err(|e| format!("mem[r7 .. r7 + r8] is not readable: {e}"))?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn printable(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.is_empty() && s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'))
        .then(|| s.to_owned())
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err(format!("--arg: odd number of hex digits in `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("--arg: `{s}` is not hexadecimal"))
        })
        .collect()
}
