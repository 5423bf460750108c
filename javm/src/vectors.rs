//! The Gray Paper PVM conformance vectors (w3f JSON, docs/ISA.md §2.4): reading them,
//! running one on any [`Engine`] under the `gp` profile, and comparing every field.
//!
//! Reading is strict: integers must be exact (64-bit values are parsed without going
//! through floating point), unknown fields are rejected, and the page map and initial
//! memory must describe a valid layout. A malformed file is a [`VectorError`], never a
//! test failure and never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use javm_exec::{
    Engine, Exit, GasProfile, GasSchedule, Instance, InstanceInit, MemoryLayout, PageKind,
    blob::parse_code_blob,
};
use serde::Deserialize;
use thiserror::Error;

/// Final status of a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// GP panic (JAVM trap or panic).
    Panic,
    /// Dynamic jump to the halt address.
    Halt,
    /// Page fault.
    PageFault,
    /// Out of gas (no v0.4 vector uses it).
    OutOfGas,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Panic => "panic",
            Status::Halt => "halt",
            Status::PageFault => "page-fault",
            Status::OutOfGas => "out-of-gas",
        })
    }
}

/// A region of the initial page map.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PageRange {
    /// Start (page-aligned).
    pub address: u32,
    /// Length in bytes (page-aligned).
    pub length: u32,
    /// Writable (else read-only).
    pub is_writable: bool,
}

/// Bytes at an address.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryChunk {
    /// Start address.
    pub address: u32,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// One conformance vector.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[allow(
    missing_docs,
    reason = "fields are those of the w3f schema, SCHEMA.asn"
)]
pub struct Vector {
    pub name: String,
    pub initial_regs: [u64; 13],
    pub initial_pc: u32,
    pub initial_page_map: Vec<PageRange>,
    pub initial_memory: Vec<MemoryChunk>,
    pub initial_gas: i64,
    pub program: Vec<u8>,
    pub expected_status: Status,
    pub expected_regs: [u64; 13],
    pub expected_pc: u32,
    pub expected_memory: Vec<MemoryChunk>,
    pub expected_gas: i64,
    #[serde(default)]
    pub expected_page_fault_address: Option<u32>,
}

/// A vector file that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VectorError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid vector.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column for JSON errors.
        message: String,
    },
}

impl Vector {
    /// Parse a vector from JSON text.
    pub fn from_json(text: &str) -> Result<Vector, String> {
        let v: Vector =
            serde_json::from_str(text).map_err(|e| format!("invalid vector JSON: {e}"))?;
        v.layout()?;
        Ok(v)
    }

    /// Read and parse a vector file.
    pub fn load(path: &Path) -> Result<Vector, VectorError> {
        let bytes = std::fs::read(path).map_err(|source| VectorError::Io {
            path: path.to_owned(),
            source,
        })?;
        let malformed = |message: String| VectorError::Malformed {
            path: path.to_owned(),
            message,
        };
        let text =
            std::str::from_utf8(&bytes).map_err(|e| malformed(format!("not UTF-8 text: {e}")))?;
        Vector::from_json(text).map_err(malformed)
    }

    /// The initial memory layout: the page map with the initial memory written in.
    pub fn layout(&self) -> Result<MemoryLayout, String> {
        let mut contents: Vec<Vec<u8>> = vec![Vec::new(); self.initial_page_map.len()];
        for chunk in &self.initial_memory {
            let start = u64::from(chunk.address);
            let end = start + chunk.contents.len() as u64;
            let Some(i) = self.initial_page_map.iter().position(|r| {
                u64::from(r.address) <= start && end <= u64::from(r.address) + u64::from(r.length)
            }) else {
                return Err(format!(
                    "initial memory at {:#x} ({} bytes) is not inside one mapped region",
                    chunk.address,
                    chunk.contents.len()
                ));
            };
            let off = (start - u64::from(self.initial_page_map[i].address)) as usize;
            let buf = &mut contents[i];
            if buf.len() < off + chunk.contents.len() {
                buf.resize(off + chunk.contents.len(), 0);
            }
            buf[off..off + chunk.contents.len()].copy_from_slice(&chunk.contents);
        }
        let mut layout = MemoryLayout::new();
        for (r, data) in self.initial_page_map.iter().zip(&contents) {
            let kind = match (r.is_writable, data.iter().any(|&b| b != 0)) {
                (false, _) => PageKind::PinnedCapRo,
                (true, true) => PageKind::UnpinnedCapCow,
                (true, false) => PageKind::EphemeralZero,
            };
            let data: &[u8] = if kind == PageKind::EphemeralZero {
                &[]
            } else {
                data
            };
            layout
                .add_region(u64::from(r.address), u64::from(r.length), kind, data)
                .map_err(|e| format!("initial page map: {e}"))?;
        }
        Ok(layout)
    }
}

/// What running a vector produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The exit, mapped to the vector's status.
    pub status: Status,
    /// The raw exit.
    pub exit: Exit,
    /// Final registers.
    pub regs: [u64; 13],
    /// Final PC.
    pub pc: u32,
    /// Remaining gas.
    pub gas: i64,
    /// Every non-zero byte of accessible memory.
    pub memory: BTreeMap<u32, u8>,
}

/// Run `vector` on `engine` under the `gp` profile.
pub fn run<E: Engine>(engine: &E, vector: &Vector) -> Result<Outcome, String> {
    let program = Arc::new(parse_code_blob(&vector.program).map_err(|e| format!("program: {e}"))?);
    let layout = Arc::new(vector.layout()?);
    let schedule = GasSchedule::new(GasProfile::Gp, layout.accessible_pages());
    let module = engine
        .prepare(&program, schedule)
        .map_err(|e| e.to_string())?;
    let mut inst = engine
        .instantiate(
            &module,
            InstanceInit {
                layout,
                regs: vector.initial_regs,
                pc: vector.initial_pc,
                gas: vector.initial_gas,
            },
        )
        .map_err(|e| e.to_string())?;
    let exit = inst.run().map_err(|e| e.to_string())?;
    let status = match exit {
        Exit::Halt => Status::Halt,
        Exit::Panic | Exit::Trap => Status::Panic,
        Exit::PageFault(_) => Status::PageFault,
        Exit::OutOfGas => Status::OutOfGas,
        Exit::HostCall(_) | Exit::Ecall => {
            return Err(format!(
                "unexpected exit {exit}: vectors have no host calls"
            ));
        }
        other => return Err(format!("unexpected exit {other}")),
    };
    let mut memory = BTreeMap::new();
    let mut page = vec![0u8; 4096];
    for (addr, _) in inst.accessible_pages() {
        inst.read_memory(addr, &mut page)
            .map_err(|e| e.to_string())?;
        for (i, &b) in page.iter().enumerate() {
            if b != 0 {
                memory.insert(addr + i as u32, b);
            }
        }
    }
    Ok(Outcome {
        status,
        exit,
        regs: inst.regs(),
        pc: inst.pc(),
        gas: inst.gas(),
        memory,
    })
}

/// Every difference between `outcome` and what `vector` expects, one line each.
pub fn compare(vector: &Vector, outcome: &Outcome) -> Vec<String> {
    let mut diffs = Vec::new();
    if outcome.status != vector.expected_status {
        diffs.push(format!(
            "status: expected {}, got {} ({})",
            vector.expected_status, outcome.status, outcome.exit
        ));
    }
    if outcome.pc != vector.expected_pc {
        diffs.push(format!(
            "pc: expected {}, got {}",
            vector.expected_pc, outcome.pc
        ));
    }
    if outcome.gas != vector.expected_gas {
        diffs.push(format!(
            "gas: expected {}, got {}",
            vector.expected_gas, outcome.gas
        ));
    }
    for (i, (e, g)) in vector.expected_regs.iter().zip(&outcome.regs).enumerate() {
        if e != g {
            diffs.push(format!("r{i}: expected {e:#x}, got {g:#x}"));
        }
    }
    let fault = match outcome.exit {
        Exit::PageFault(a) => Some(a),
        _ => None,
    };
    if vector.expected_status == Status::PageFault && fault != vector.expected_page_fault_address {
        let show = |a: Option<u32>| a.map_or("none".to_owned(), |a| format!("{a:#x}"));
        diffs.push(format!(
            "page fault address: expected {}, got {}",
            show(vector.expected_page_fault_address),
            show(fault)
        ));
    }
    let mut expected = BTreeMap::new();
    for chunk in &vector.expected_memory {
        for (i, &b) in chunk.contents.iter().enumerate() {
            if b != 0 {
                expected.insert(chunk.address.wrapping_add(i as u32), b);
            }
        }
    }
    if expected != outcome.memory {
        let first = expected
            .iter()
            .find(|(a, b)| outcome.memory.get(a) != Some(b))
            .map(|(&a, _)| a)
            .or_else(|| {
                outcome
                    .memory
                    .keys()
                    .find(|a| !expected.contains_key(a))
                    .copied()
            });
        if let Some(a) = first {
            diffs.push(format!(
                "memory at {a:#x}: expected {:#04x}, got {:#04x}",
                expected.get(&a).copied().unwrap_or(0),
                outcome.memory.get(&a).copied().unwrap_or(0)
            ));
        }
    }
    diffs
}

/// Collect `*.json` files from files and directories: directories are searched
/// recursively, each directory's entries in name order; files named directly are
/// taken whatever their extension.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, VectorError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), VectorError> {
    let io = |source| VectorError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for e in entries {
        if e.is_dir() {
            walk(&e, out)?;
        } else if e.extension().is_some_and(|x| x == "json") {
            out.push(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use javm_exec::Interpreter;
    use proptest::prelude::*;

    const STORE_NOK: &str =
        include_str!("../../vectors/pvm-gp-0.4/inst_store_imm_indirect_u64_with_offset_nok.json");
    const STORE_OK: &str =
        include_str!("../../vectors/pvm-gp-0.4/inst_store_imm_indirect_u64_with_offset_ok.json");

    fn outcome(text: &str) -> (Vector, Outcome) {
        let v = Vector::from_json(text).unwrap();
        let o = run(&Interpreter::new(), &v).unwrap();
        (v, o)
    }

    #[test]
    fn a_passing_vector_has_no_differences() {
        for text in [STORE_NOK, STORE_OK] {
            let (v, o) = outcome(text);
            assert_eq!(compare(&v, &o), Vec::<String>::new(), "{}", v.name);
        }
    }

    #[test]
    fn compare_reports_every_kind_of_mismatch() {
        let (v, o) = outcome(STORE_NOK);
        let mut w = v.clone();
        w.expected_gas += 1;
        assert!(compare(&w, &o)[0].starts_with("gas"));
        let mut w = v.clone();
        w.expected_pc += 1;
        assert!(compare(&w, &o)[0].starts_with("pc"));
        let mut w = v.clone();
        w.expected_regs[12] ^= 1 << 63;
        assert!(compare(&w, &o)[0].starts_with("r12"));
        let mut w = v.clone();
        w.expected_status = Status::Panic;
        assert!(compare(&w, &o)[0].starts_with("status"));
        let mut w = v.clone();
        w.expected_page_fault_address = Some(0x20000);
        assert!(compare(&w, &o)[0].starts_with("page fault address"));
        let (v, o) = outcome(STORE_OK);
        let mut w = v.clone();
        w.expected_memory[0].contents[0] ^= 1;
        assert!(compare(&w, &o)[0].starts_with("memory"));
        let mut w = v;
        w.expected_memory.clear();
        assert!(compare(&w, &o)[0].starts_with("memory"));
    }

    #[test]
    fn malformed_vectors_are_errors() {
        assert!(Vector::from_json("").is_err());
        assert!(Vector::from_json("{}").is_err());
        let unknown = STORE_OK.replacen('{', "{\"extra\": 1,", 1);
        assert!(
            Vector::from_json(&unknown)
                .unwrap_err()
                .contains("unknown field")
        );
        // A register value above 2^64 - 1 is rejected, not rounded.
        let big = STORE_OK.replacen(
            "\"initial-regs\": [",
            "\"initial-regs\": [18446744073709551616,",
            1,
        );
        assert!(Vector::from_json(&big).is_err());
        // Initial memory outside the page map.
        let mut v = Vector::from_json(STORE_OK).unwrap();
        v.initial_memory.push(MemoryChunk {
            address: 0x90000,
            contents: vec![1],
        });
        assert!(v.layout().unwrap_err().contains("not inside"));
        // Overlapping page map entries.
        let mut v = Vector::from_json(STORE_OK).unwrap();
        let r = v.initial_page_map[0].clone();
        v.initial_page_map.push(r);
        assert!(v.layout().unwrap_err().contains("overlaps"));
    }

    #[test]
    fn exact_64_bit_integers() {
        let mut json: serde_json::Value = serde_json::from_str(STORE_OK).unwrap();
        json["initial-regs"][0] = serde_json::Value::from(u64::MAX);
        json["initial-regs"][1] = serde_json::Value::from((1u64 << 53) + 1);
        let v = Vector::from_json(&json.to_string()).unwrap();
        assert_eq!(v.initial_regs[0], u64::MAX);
        assert_eq!(v.initial_regs[1], (1 << 53) + 1, "no rounding through f64");
        // A float where an integer belongs is an error, not a conversion.
        json["initial-regs"][2] = serde_json::Value::from(1.5);
        assert!(Vector::from_json(&json.to_string()).is_err());
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in "\\PC{0,200}") {
            let _ = Vector::from_json(&s);
        }

        #[test]
        fn truncated_vectors_are_errors(cut in 0usize..1000) {
            let text = STORE_OK;
            prop_assume!(cut < text.len());
            // Every strict prefix of a JSON object is invalid JSON.
            prop_assert!(Vector::from_json(&text[..cut]).is_err());
        }

        #[test]
        fn byte_flips_never_panic(pos in 0usize..1000, byte in any::<u8>()) {
            let mut bytes = STORE_OK.as_bytes().to_vec();
            let pos = pos % bytes.len();
            bytes[pos] = byte;
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Ok(v) = Vector::from_json(text)
            {
                let _ = run(&Interpreter::new(), &v);
            }
        }
    }
}
