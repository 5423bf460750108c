//! Regression cases: shrunk divergences (and other cases worth keeping) stored as
//! readable JSON files in `differential-tests/regressions/`, replayed by
//! `tests/differential.rs` on every engine pair and checked against the outcome
//! recorded with them.
//!
//! A file holds the assembly source (one string per line), the layout (regions with
//! their contents in hex), the registers, gas, profile and host-action seed, and the
//! expected exits, PC, gas and registers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::{GasProfile, MemoryLayout, PageKind};
use serde::{Deserialize, Serialize};

use crate::generate::Spec;
use crate::oracle::{Case, Trace};

/// One stored case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    /// Short name.
    pub name: String,
    /// Why it is kept (the divergence it reproduces, what it covers).
    pub note: String,
    /// `jar1` or `gp`.
    pub profile: String,
    /// Initial gas.
    pub gas: i64,
    /// Entry PC.
    pub pc: u32,
    /// Initial registers, hexadecimal.
    pub regs: Vec<String>,
    /// Initial heap top for GP `sbrk`, hexadecimal.
    pub heap_top: String,
    /// Seed of the host actions, hexadecimal.
    pub host_seed: String,
    /// Mapped regions.
    pub regions: Vec<RegionFile>,
    /// Assembly source, one line per string.
    pub source: Vec<String>,
    /// The expected outcome.
    pub expect: Expect,
}

/// A region of a stored layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFile {
    /// Start address, hexadecimal.
    pub start: String,
    /// Length in pages.
    pub pages: u32,
    /// `pinned-ro`, `copy-on-write` or `zero`.
    pub kind: String,
    /// Initial contents, hexadecimal, 32 bytes per string; trailing zeros omitted.
    pub contents: Vec<String>,
}

/// The recorded outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Every exit, as `javm run` prints them.
    pub exits: Vec<String>,
    /// Final PC.
    pub pc: u32,
    /// Final gas.
    pub gas: i64,
    /// Final registers, hexadecimal.
    pub regs: Vec<String>,
}

fn hex64(v: u64) -> String {
    format!("{v:#x}")
}

fn parse_hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("`{s}`: {e}"))
}

fn kind_name(k: PageKind) -> &'static str {
    match k {
        PageKind::PinnedCapRo => "pinned-ro",
        PageKind::UnpinnedCapCow => "copy-on-write",
        PageKind::EphemeralZero => "zero",
    }
}

impl Regression {
    /// Record `spec` with the outcome `trace` (normally the interpreter's).
    pub fn new(name: &str, note: &str, spec: &Spec, trace: &Trace) -> Regression {
        let layout = spec.layout();
        let regions = layout
            .regions()
            .iter()
            .map(|r| {
                let mut bytes = Vec::new();
                for p in 0..r.pages() {
                    let addr = r.start() + p * 4096;
                    match r.source(addr) {
                        Some(page) => bytes.extend_from_slice(page.bytes()),
                        None => bytes.extend_from_slice(&[0; 4096]),
                    }
                }
                let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                RegionFile {
                    start: format!("{:#x}", r.start()),
                    pages: r.pages(),
                    kind: kind_name(r.kind()).to_owned(),
                    contents: bytes[..used]
                        .chunks(32)
                        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
                        .collect(),
                }
            })
            .collect();
        Regression {
            name: name.to_owned(),
            note: note.to_owned(),
            profile: spec.profile.name().to_owned(),
            gas: spec.gas,
            pc: 0,
            regs: spec.regs.iter().map(|&r| hex64(r)).collect(),
            heap_top: hex64(spec.heap_top),
            host_seed: hex64(spec.host_seed),
            regions,
            source: spec.source().lines().map(str::to_owned).collect(),
            expect: Expect {
                exits: trace.exits.iter().map(|e| e.to_string()).collect(),
                pc: trace.pc,
                gas: trace.gas,
                regs: trace.regs.iter().map(|&r| hex64(r)).collect(),
            },
        }
    }

    /// The case to run.
    pub fn case(&self) -> Result<Case, String> {
        let source = self.source.join("\n");
        let program = assemble(&source)
            .map_err(|e| format!("source: {e}"))?
            .program()
            .map_err(|e| format!("program: {e}"))?;
        let mut layout = MemoryLayout::new();
        for r in &self.regions {
            let kind = match r.kind.as_str() {
                "pinned-ro" => PageKind::PinnedCapRo,
                "copy-on-write" => PageKind::UnpinnedCapCow,
                "zero" => PageKind::EphemeralZero,
                other => return Err(format!("unknown page kind `{other}`")),
            };
            let hex: String = r.contents.concat();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|d| u8::from_str_radix(d, 16).ok())
                        .ok_or_else(|| format!("bad contents hex at {i}"))
                })
                .collect::<Result<Vec<u8>, String>>()?;
            layout
                .add_region(
                    parse_hex(&r.start)?,
                    u64::from(r.pages) * 4096,
                    kind,
                    &bytes,
                )
                .map_err(|e| e.to_string())?;
        }
        layout.set_heap_top(parse_hex(&self.heap_top)?);
        let regs: Vec<u64> = self
            .regs
            .iter()
            .map(|r| parse_hex(r))
            .collect::<Result<_, _>>()?;
        Ok(Case {
            program: Arc::new(program),
            layout: Arc::new(layout),
            regs: regs
                .try_into()
                .map_err(|_| "there must be 13 registers".to_owned())?,
            pc: self.pc,
            gas: self.gas,
            profile: self.profile.parse::<GasProfile>()?,
            host_seed: parse_hex(&self.host_seed)?,
        })
    }

    /// The outcome `trace` describes, in the file's form.
    pub fn outcome(&self, trace: &Trace) -> Expect {
        Expect {
            exits: trace.exits.iter().map(|e| e.to_string()).collect(),
            pc: trace.pc,
            gas: trace.gas,
            regs: trace.regs.iter().map(|&r| hex64(r)).collect(),
        }
    }

    /// Differences between `trace` and the recorded outcome.
    pub fn check(&self, trace: &Trace) -> Vec<String> {
        let got = self.outcome(trace);
        let e = &self.expect;
        let mut d = Vec::new();
        if got.exits != e.exits {
            d.push(format!(
                "exits: expected {:?}, got {:?}",
                e.exits, got.exits
            ));
        }
        if got.pc != e.pc {
            d.push(format!("pc: expected {}, got {}", e.pc, got.pc));
        }
        if got.gas != e.gas {
            d.push(format!("gas: expected {}, got {}", e.gas, got.gas));
        }
        if got.regs != e.regs {
            d.push(format!(
                "registers: expected {:?}, got {:?}",
                e.regs, got.regs
            ));
        }
        d
    }

    /// Write as pretty JSON to `dir/<name>.json`.
    pub fn save(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.name));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&path, text + "\n")?;
        Ok(path)
    }

    /// Read every `*.json` regression file in `dir`, sorted by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Regression)>, String> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let r =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                out.push((path, r));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
