//! Compiling a program in parts, on several threads, and linking the parts.
//!
//! A program is cut at block boundaries into parts of about [`Split::part`]
//! instructions (most programs are one part). Each part is compiled on its own
//! ([`super::compile_part`]): its blocks in program order, then its cold code (the
//! fused runs' tails, checked copies, stubs, exit tails); the first part also holds
//! the trampoline and the exit path. A part that does not end the program ends its
//! blocks with a jump to the next part's first block, since its cold code comes
//! in between. A jump into another part — to a block or to the exit path — is
//! emitted with its 4-byte displacement left empty and recorded ([`External`]);
//! linking lays the parts out one after another, each but the last padded with
//! `int3` to a multiple of 64 bytes (so that a part's loops are placed as they
//! would be in a program of its own: the trampoline pads the first part's blocks
//! the same way), writes those displacements and moves every offset table by its
//! part's start.
//!
//! The parts, and so the code, depend only on the program and the part size, not
//! on how many threads compiled them: the parts are compiled in any order, and
//! each is a function of the program alone. The block prices are computed by the
//! parts too (each prices its blocks), unless the program has them cached.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use javm_exec::gas::{GasProfile, GasSchedule};
use javm_exec::{Opcode, Program};

use super::labels::Label;
use super::{Compiled, HostSite};
use crate::signal::SideEntry;

/// How a compilation is cut into parts and how many threads compile them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// Instructions per part: a part ends with the first block that reaches it.
    pub(crate) part: usize,
    /// Threads compiling the parts, the calling thread included (at most one per
    /// part; 1: the calling thread alone).
    pub(crate) threads: usize,
}

impl Split {
    /// The default part size: large enough that a part's compilation (a few
    /// milliseconds) dwarfs starting a thread for it, and that a program of up to
    /// about 100 KiB of code is one part, compiled as it always was.
    pub(crate) const PART: usize = 1 << 15;

    /// The parts of `program`.
    fn parts(&self, program: &Program) -> Vec<Part> {
        let blocks = program.blocks();
        let part = self.part.max(1);
        let mut parts = Vec::with_capacity(program.pcs().len() / part + 1);
        let (mut start, mut sites, mut size) = (0u32, 0u32, 0usize);
        for (b, block) in (0u32..).zip(blocks) {
            size += block.end.saturating_sub(block.first) as usize;
            if size >= part || b as usize + 1 == blocks.len() {
                let first = blocks.get(start as usize).map_or(0, |s| s.first);
                let part_sites = host_calls(program, first..block.end);
                parts.push(Part {
                    blocks: start..b + 1,
                    host_site_base: sites,
                    host_sites: part_sites,
                    head: parts.is_empty(),
                });
                start = b + 1;
                sites += part_sites;
                size = 0;
            }
        }
        parts
    }
}

/// One part of a compilation.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    /// Its blocks.
    pub(crate) blocks: Range<u32>,
    /// The index of its first host-call site: the sites of the parts before it.
    pub(crate) host_site_base: u32,
    /// Its host-call sites (`ecalli` and `ecall` instructions).
    pub(crate) host_sites: u32,
    /// Whether it is the first part, which holds the trampoline and the exit path.
    pub(crate) head: bool,
}

/// Where a jump into another part leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum External {
    /// A block's entry.
    Block(u32),
    /// The shared exit path.
    Exit,
}

/// The first part's trampoline and exit path (see [`Compiled`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub(crate) entry: u32,
    pub(crate) exit: u32,
    pub(crate) gas_live: u32,
    pub(crate) blocks_start: u32,
}

/// One part's code and tables, with offsets from the part's own start.
pub(crate) struct PartCode {
    pub(crate) code: Vec<u8>,
    /// Jumps into other parts: the offset of each 4-byte displacement.
    pub(crate) externals: Vec<(u32, External)>,
    /// Per block of the part.
    pub(crate) block_offsets: Vec<u32>,
    /// (cost, need) per block, as [`Compiled::prices`].
    pub(crate) prices: Vec<(i64, i64)>,
    /// Per instruction of the part.
    pub(crate) ins_offsets: Vec<u32>,
    pub(crate) ins_ends: Vec<u32>,
    pub(crate) resume_offsets: Vec<u32>,
    pub(crate) side: Vec<SideEntry>,
    pub(crate) host_sites: Vec<HostSite>,
    pub(crate) djump_panic: Option<u32>,
    pub(crate) head: Option<Head>,
}

/// The jumps left unpatched in a part (`Labels::patch`), each with where it
/// leads: every unbound label must be one of the part's `externals` (sorted by
/// label, as they are made in order).
pub(crate) fn resolve_unbound(
    unbound: Vec<(u32, Label)>,
    externals: &[(Label, External)],
) -> Result<Vec<(u32, External)>, String> {
    unbound
        .into_iter()
        .map(|(at, label)| {
            externals
                .binary_search_by_key(&label, |e| e.0)
                .map(|i| (at, externals[i].1))
                .map_err(|_| format!("a jump at {at:#x} leads to a label never bound"))
        })
        .collect()
}

/// Compile `program` under `schedule`, in parts as `split` says.
pub(crate) fn compile(
    program: &Program,
    schedule: GasSchedule,
    split: Split,
) -> Result<Compiled, String> {
    let gp = schedule.profile() == GasProfile::Gp;
    // A program of at most one part's instructions is one part (`Split::parts`
    // cuts only after a part's worth), made without the list.
    let whole;
    let parts = if program.pcs().len() <= split.part {
        whole = [Part {
            blocks: 0..program.blocks().len() as u32,
            host_site_base: 0,
            host_sites: host_calls(program, 0..program.pcs().len() as u32),
            head: true,
        }];
        &whole[..]
    } else {
        &split.parts(program)[..]
    };
    let threads = split.threads.clamp(1, parts.len().max(1));
    let cached = if parts.len() == 1 {
        Some(program.block_costs(schedule))
    } else {
        program.cached_block_costs(schedule)
    };
    let price = |b: u32| match cached {
        Some(c) => c
            .get(b as usize)
            .copied()
            .unwrap_or_else(|| program.block_cost(b, schedule)),
        None => program.block_cost(b, schedule),
    };
    program.instructions_on(threads);
    let compile_one = |part: &Part| -> Result<PartCode, String> {
        let code = super::compile_part(program, part, &price, gp)?;
        if code.host_sites.len() != part.host_sites as usize {
            return Err(format!(
                "blocks {:?} have {} host calls but {} sites",
                part.blocks,
                part.host_sites,
                code.host_sites.len()
            ));
        }
        Ok(code)
    };
    if let [part] = parts {
        return link_one(compile_one(part)?, program);
    }
    let codes: Vec<PartCode> = if threads == 1 {
        parts.iter().map(compile_one).collect::<Result<_, _>>()?
    } else {
        // Parts are taken in order from a shared counter; each result goes to its
        // part's slot.
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<PartCode, String>>>> =
            parts.iter().map(|_| Mutex::new(None)).collect();
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let (Some(part), Some(slot)) = (parts.get(i), slots.get(i)) else {
                break;
            };
            let result = compile_one(part);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        };
        std::thread::scope(|s| {
            for _ in 1..threads {
                // A thread that cannot be started leaves its share to the others
                // (to the calling thread, at least).
                let _ = std::thread::Builder::new().spawn_scoped(s, work);
            }
            work();
        });
        slots
            .into_iter()
            .map(|s| {
                s.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err("a part was not compiled".into()))
            })
            .collect::<Result<_, _>>()?
    };
    link(codes, program)
}

/// The code of a program of one part (most programs): its tables are the
/// program's, as they are.
fn link_one(c: PartCode, program: &Program) -> Result<Compiled, String> {
    let head = c.head.ok_or("the first part has no trampoline")?;
    if !c.externals.is_empty() {
        return Err("a program of one part jumps into another".into());
    }
    if c.block_offsets.len() != program.blocks().len()
        || c.ins_offsets.len() != program.instructions().len()
    {
        return Err("the part does not cover the program".into());
    }
    Ok(Compiled {
        code: c.code,
        more_code: Vec::new(),
        prices: c.prices,
        block_offsets: c.block_offsets,
        ins_offsets: c.ins_offsets,
        ins_ends: c.ins_ends,
        resume_offsets: c.resume_offsets,
        side: c.side,
        entry: head.entry,
        exit: head.exit,
        gas_live: head.gas_live,
        blocks_start: head.blocks_start,
        host_sites: c.host_sites,
        djump_panic: c.djump_panic,
    })
}

/// Host-call instructions (`ecalli`, `ecall`) among instructions `range` (a
/// count over the opcode bytes, which the compiler vectorizes).
fn host_calls(program: &Program, range: Range<u32>) -> u32 {
    let opcodes = program.opcodes();
    let end = (range.end as usize).min(opcodes.len());
    let start = (range.start as usize).min(end);
    opcodes[start..end]
        .iter()
        .filter(|o| matches!(o, Some(Opcode::Ecalli | Opcode::Ecall)))
        .count() as u32
}

/// Lay the parts out, patch the jumps between them and merge their tables.
fn link(mut codes: Vec<PartCode>, program: &Program) -> Result<Compiled, String> {
    let n = program.instructions().len();
    let head = codes
        .first()
        .and_then(|c| c.head)
        .ok_or("the first part has no trampoline")?;

    // Each part's start; every part but the last padded to 64 bytes.
    let last = codes.len() - 1;
    let mut bases = Vec::with_capacity(codes.len());
    let mut at = 0usize;
    for (i, c) in codes.iter_mut().enumerate() {
        if i != last {
            let gap = c.code.len().next_multiple_of(64) - c.code.len();
            c.code.extend(std::iter::repeat_n(0xCC, gap)); // int3
        }
        bases.push(u32::try_from(at).map_err(|_| "native code exceeds 2 GiB")?);
        at += c.code.len();
    }
    if i32::try_from(at).is_err() {
        return Err("native code exceeds 2 GiB".into());
    }
    let mut block_offsets = Vec::with_capacity(program.blocks().len());
    for (c, &base) in codes.iter().zip(&bases) {
        block_offsets.extend(c.block_offsets.iter().map(|&o| o + base));
    }
    if block_offsets.len() != program.blocks().len() {
        return Err("the parts do not cover the blocks".into());
    }
    let mut tables = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let total = |f: fn(&PartCode) -> usize| codes.iter().map(f).sum::<usize>();
    let mut side = Vec::with_capacity(total(|c| c.side.len()));
    let mut host_sites = Vec::with_capacity(total(|c| c.host_sites.len()));
    let mut prices = Vec::with_capacity(total(|c| c.prices.len()));
    let mut djump_panic = None;
    for (c, &base) in codes.iter_mut().zip(&bases) {
        for &(at, to) in &c.externals {
            let target = match to {
                External::Block(b) => *block_offsets
                    .get(b as usize)
                    .ok_or_else(|| format!("a jump to block {b}, which is not"))?,
                External::Exit => head.exit,
            };
            let rel = i64::from(target) - (i64::from(base) + i64::from(at) + 4);
            let rel = i32::try_from(rel).map_err(|_| "native code exceeds 2 GiB")?;
            c.code
                .get_mut(at as usize..at as usize + 4)
                .ok_or("a jump outside its part")?
                .copy_from_slice(&rel.to_le_bytes());
        }
        // Moved in place, then copied: both loops the compiler vectorizes.
        for (table, part) in [
            (&mut tables.0, &mut c.ins_offsets),
            (&mut tables.1, &mut c.ins_ends),
            (&mut tables.2, &mut c.resume_offsets),
        ] {
            part.iter_mut().for_each(|o| *o += base);
            table.extend_from_slice(part);
        }
        c.side.iter_mut().for_each(|e| e.native += base);
        side.extend_from_slice(&c.side);
        host_sites.append(&mut c.host_sites);
        prices.append(&mut c.prices);
        djump_panic = djump_panic.or(c.djump_panic.map(|o| o + base));
    }
    if tables.0.len() != n {
        return Err("the parts do not cover the instructions".into());
    }
    Ok(Compiled {
        code: codes.remove(0).code,
        more_code: codes.into_iter().map(|c| c.code).collect(),
        prices,
        block_offsets,
        ins_offsets: tables.0,
        ins_ends: tables.1,
        resume_offsets: tables.2,
        side,
        entry: head.entry,
        exit: head.exit,
        gas_live: head.gas_live,
        blocks_start: head.blocks_start,
        host_sites,
        djump_panic,
    })
}
