//! Measurements of the [`crate::Vm`] driver, shared by `javm bench` and the criterion
//! `vm` bench: invoking a cached instance that halts at once, a HOST_CALL round trip
//! into a cached child that replies at once, and settling an instance that dirtied
//! a number of pages of a larger mapping (the settle alone, timed around the same
//! function a reply calls).

use std::time::{Duration, Instant};

use javm_cap::{CacheDirectory, CapHash, Endpoint, MemoryMapping, NUM_REGS, SlotIdx};
use javm_exec::asm::assemble;
use javm_exec::{Engine, EngineKind, Exit, GasProfile, Instance, Interpreter};

use super::median;
use crate::build::{BuildCtx, Origin, build_frame};
use crate::driver::take_slot0;
use crate::image::{BuiltImage, ImageSpec};
use crate::image_cache::ImageCache;
use crate::{CallResult, InProcessKernel, Vm};

/// Where the settle workload's writable mapping starts.
const SETTLE_BASE: u64 = 0x10_0000;
/// Invokes per timing sample.
const INVOKES: u32 = 200;
/// Calls the caller makes per invoke.
pub const CALLS: u32 = 100;

/// An image of assembly `code` (entry label `main`) with `mappings`.
fn image(code: &str, mappings: Vec<MemoryMapping>) -> Result<BuiltImage, String> {
    let a = assemble(&format!(".code\n{code}")).map_err(|e| e.to_string())?;
    let entry = a.label("main").ok_or("no label main")?;
    let mut regs = [0u64; NUM_REGS];
    regs[0] = u64::from(javm_exec::program::HALT_ADDRESS);
    crate::image::build(ImageSpec {
        code: a.code,
        bitmask: a.bitmask,
        jump_table: a.jump_table,
        endpoints: vec![(
            0,
            Endpoint {
                entry_pc: entry,
                regs,
            },
        )],
        mappings,
        data: Vec::new(),
        yield_marker_slot: None,
    })
    .map_err(|e| e.to_string())
}

fn publish(
    cache: &CacheDirectory,
    code: &str,
    mappings: Vec<MemoryMapping>,
    slots: &[(SlotIdx, CapHash)],
) -> Result<CapHash, String> {
    image(code, mappings)?
        .publish(cache, slots)
        .map_err(|e| e.to_string())
}

/// The driver's figures on one engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct DriverFigures {
    /// `invoke_cached` of a cached instance that halts at once (frame cost, build,
    /// run, settle).
    pub invoke: Duration,
    /// One HOST_CALL round trip into a cached child that replies at once (the
    /// child's build, run and settle, the write-back into the caller's slot).
    pub call: Duration,
}

/// Measure invoke and call round trip on engine `kind`.
pub fn measure_driver(kind: EngineKind, samples: usize) -> Result<DriverFigures, String> {
    let cache = CacheDirectory::new();
    let halt = publish(&cache, "main:\n ecalli 0\n", Vec::new(), &[])?;
    let child = publish(&cache, "main:\n ecalli 0\n", Vec::new(), &[])?;
    let caller = publish(
        &cache,
        &format!(
            "main:\n load_imm r5, {CALLS}\n fallthrough\nloop:\n load_imm r7, 3\n load_imm r8, 0\n \
             ecalli 26\n add_imm_64 r5, r5, -1\n branch_ne_imm r5, 0, loop\n ecalli 0\n"
        ),
        Vec::new(),
        &[(SlotIdx(3), child)],
    )?;
    let mut vm = Vm::new(kind, InProcessKernel::new()).map_err(|e| e.to_string())?;
    let mut time = |inst: &CapHash, gas: u64| {
        median(samples, || {
            let t = Instant::now();
            for _ in 0..INVOKES {
                match vm.invoke_cached(&cache, inst, 0, [0; 4], gas) {
                    Ok(CallResult::Halt { .. }) => {}
                    Ok(other) => {
                        return Err(format!(
                            "the benchmark instance did not halt: {}",
                            other.kind()
                        ));
                    }
                    Err(e) => return Err(format!("the benchmark instance failed: {e}")),
                }
            }
            Ok(t.elapsed() / INVOKES)
        })
    };
    let invoke = time(&halt, 1_000_000)?;
    let with_calls = time(&caller, 100_000_000)?;
    Ok(DriverFigures {
        invoke,
        call: with_calls.saturating_sub(invoke) / CALLS,
    })
}

/// A source of settle timings: each call builds and runs a fresh frame of an instance
/// whose run dirties `dirty` pages of a `mapped_pages`-page zero mapping, then times
/// settling it.
pub type SettleSampler = Box<dyn FnMut() -> Result<Duration, String>>;

/// A [`SettleSampler`] on engine `kind`.
pub fn settle_sampler(
    kind: EngineKind,
    dirty: u32,
    mapped_pages: u32,
) -> Result<SettleSampler, String> {
    if dirty > mapped_pages {
        return Err(format!(
            "cannot dirty {dirty} pages of a {mapped_pages}-page mapping"
        ));
    }
    match kind {
        EngineKind::Interp => settle_on(Interpreter::new(), dirty, mapped_pages),
        #[cfg(jit)]
        EngineKind::Jit => settle_on(
            javm_jit_x86::Recompiler::new().map_err(|e| e.to_string())?,
            dirty,
            mapped_pages,
        ),
        #[cfg(not(jit))]
        EngineKind::Jit => Err("the x86-64 recompiler is not available on this host".into()),
    }
}

fn settle_on<E: Engine + 'static>(
    engine: E,
    dirty: u32,
    mapped_pages: u32,
) -> Result<SettleSampler, String> {
    let cache = CacheDirectory::new();
    let inst = publish(
        &cache,
        &format!(
            "main:\n load_imm r8, {SETTLE_BASE}\n fallthrough\nloop:\n \
             branch_eq_imm r7, 0, done\n store_imm_ind_u8 r8, 0, 1\n \
             add_imm_64 r8, r8, 4096\n add_imm_64 r7, r7, -1\n jump loop\ndone:\n ecalli 0\n"
        ),
        vec![MemoryMapping {
            start: SETTLE_BASE,
            size: u64::from(mapped_pages) << 12,
            source: None,
        }],
        &[],
    )?;
    let mut images = ImageCache::<E>::new(4);
    Ok(Box::new(move || {
        let mut ctx = BuildCtx {
            engine: &engine,
            images: &mut images,
            cache: &cache,
            profile: GasProfile::Jar1,
        };
        let mut frame = build_frame(&mut ctx, &inst, 0, [dirty.into(), 0, 0, 0], Origin::Top)
            .map_err(|e| e.to_string())?;
        frame
            .inst
            .set_gas(i64::MAX / 2)
            .map_err(|e| e.to_string())?;
        match frame.inst.run() {
            Ok(Exit::HostCall(0)) => {}
            Ok(other) => return Err(format!("the settle workload ended with {other}")),
            Err(e) => return Err(format!("the settle workload failed: {e}")),
        }
        if frame.inst.dirty_pages().len() != dirty as usize {
            return Err("the settle workload dirtied the wrong number of pages".into());
        }
        take_slot0(&mut frame.cnode);
        let t = Instant::now();
        crate::settle::settle(&cache, &frame).map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    }))
}

/// The median settle time of `dirty` pages of a `mapped_pages`-page mapping.
pub fn measure_settle(
    kind: EngineKind,
    dirty: u32,
    mapped_pages: u32,
    samples: usize,
) -> Result<Duration, String> {
    let mut s = settle_sampler(kind, dirty, mapped_pages)?;
    median(samples, &mut *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_measurements_run_and_check_their_results() {
        let kind = crate::auto_engine();
        let f = measure_driver(kind, 1).unwrap();
        assert!(f.invoke > Duration::ZERO);
        assert!(measure_settle(kind, 3, 16, 1).unwrap() > Duration::ZERO);
        assert!(measure_settle(kind, 17, 16, 1).is_err());
    }
}
