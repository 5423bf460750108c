//! Embedding JAVM in a host: load a program blob, pick the engine at run time (no
//! `#[cfg]` here: `auto` falls back to the interpreter where the recompiler cannot
//! run), answer two host calls, and page memory in after a fault.
//!
//! The guest (`examples/pager.s`) asks the host where its data is (`ecalli 1`), sums
//! the 64-bit words there and logs a message (`ecalli 2`). The data's pages are not
//! mapped: each first read faults, and the page-fault handler maps the page, fills
//! it, makes it read-only and resumes the run, which retries the read.
//!
//! ```text
//! cargo run -p javm --example embed              # auto
//! cargo run -p javm --example embed -- interp    # or jit
//! ```

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use javm::runner::{EngineChoice, HostAction, Runner, load_program};
use javm_exec::memory::PAGE_SIZE;
use javm_exec::{EngineKind, Exit, PageAccess, Reg};

/// Where the host places the data (unmapped in the standard layout).
const DATA: u32 = 0x4000_0000;
/// Words of data: 11 736 bytes, three pages.
const WORDS: u32 = 1467;

/// Data word `i`.
fn word(i: u64) -> u64 {
    i * i + 1
}

/// What a run did.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    engine: EngineKind,
    sum: u64,
    faults_served: u32,
    log: Vec<String>,
    gas_used: u64,
}

fn run(choice: EngineChoice) -> Result<Summary, String> {
    let program = load_program(include_bytes!("pager.pvm")).map_err(|e| e.to_string())?;
    let mut runner = Runner::new(choice).map_err(|e| e.to_string())?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let faults = Arc::new(Mutex::new(0u32));

    // Host call 1: where the data is.
    runner.host_function(1, |call| {
        call.set_reg(Reg::R7, u64::from(DATA));
        call.set_reg(Reg::R8, u64::from(WORDS));
        HostAction::Resume
    });
    // Host call 2: log the message at r7 (length r8, at most 256 bytes).
    let messages = Arc::clone(&log);
    runner.host_function(2, move |call| {
        let len = call.reg(Reg::R8).min(256) as usize;
        let mut buf = vec![0u8; len];
        match u32::try_from(call.reg(Reg::R7)) {
            Ok(at) if call.read_memory(at, &mut buf).is_ok() => {
                let text = String::from_utf8_lossy(&buf).into_owned();
                messages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(text);
                HostAction::Resume
            }
            _ => HostAction::Stop,
        }
    });
    // Page faults inside the data: map the page, fill it, make it read-only.
    let served = Arc::clone(&faults);
    runner.page_fault_handler(move |call, page| {
        let end = DATA + WORDS * 8;
        if !(DATA..end).contains(&page) {
            return HostAction::Stop;
        }
        let first = u64::from((page - DATA) / 8);
        let bytes: Vec<u8> = (first..u64::from(WORDS))
            .take((PAGE_SIZE / 8) as usize)
            .flat_map(|i| word(i).to_le_bytes())
            .collect();
        let paged = call
            .set_page_access(page, 1, PageAccess::ReadWrite)
            .and_then(|()| call.write_memory(page, &bytes))
            .and_then(|()| call.set_page_access(page, 1, PageAccess::ReadOnly));
        if paged.is_err() {
            return HostAction::Stop;
        }
        *served.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        HostAction::Resume
    });

    let out = runner
        .run(&program, &[], 1_000_000)
        .map_err(|e| e.to_string())?;
    if out.exit != Exit::Halt {
        return Err(format!(
            "the guest did not halt: {} at pc {}",
            out.exit, out.pc
        ));
    }
    let sum = out
        .output
        .as_deref()
        .and_then(|o| <[u8; 8]>::try_from(o).ok())
        .map(u64::from_le_bytes)
        .ok_or("the output is not 8 bytes")?;
    let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let faults_served = *faults.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Summary {
        engine: out.engine,
        sum,
        faults_served,
        log,
        gas_used: out.gas_used,
    })
}

fn main() -> ExitCode {
    let choice = match std::env::args().nth(1).as_deref() {
        None | Some("auto") => EngineChoice::Auto,
        Some("interp") => EngineChoice::Interp,
        Some("jit") => EngineChoice::Jit,
        Some(other) => {
            eprintln!("error: unknown engine `{other}` (expected auto, interp or jit)");
            return ExitCode::from(2);
        }
    };
    match run(choice) {
        Ok(s) => {
            println!(
                "engine: {}\nsum: {}\npage faults served: {}\nlog: {:?}\ngas used: {}",
                s.engine, s.sum, s.faults_served, s.log, s.gas_used
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_sums_the_paged_data_alike() {
        let want: u64 = (0..u64::from(WORDS)).map(word).sum();
        let mut choices = vec![EngineChoice::Auto, EngineChoice::Interp];
        if javm::jit_available() {
            choices.push(EngineChoice::Jit);
        }
        let mut gas = None;
        for choice in choices {
            let s = run(choice).unwrap();
            assert_eq!(s.sum, want, "{choice:?}");
            assert_eq!(s.faults_served, 3, "one per page of data");
            assert_eq!(s.log, ["summed"]);
            assert_eq!(*gas.get_or_insert(s.gas_used), s.gas_used, "{choice:?}");
        }
    }
}
