//! Image manifests: a human-written TOML description of an image (format in the
//! README, "Image manifests"), turned into an image and its data caps.
//!
//! ```toml
//! code = "callee.s"                 # assembly (.s), a standard program or a code blob
//! yield_marker_slot = 9             # optional
//!
//! [[endpoint]]
//! index = 0                         # 0 ..= 63
//! entry = "main"                    # an assembly label, or a PC
//! regs = { r7 = 5 }                 # optional; see below for the defaults
//!
//! [[data]]
//! slot = 3
//! pinned = true                     # read-only; otherwise copied on write
//! text = "hello"                    # or hex = "..", file = "..", zeros = BYTES
//! size = 8192                       # optional: zero-pad up to this many bytes
//!
//! [[mapping]]
//! start = 0x30000
//! source = 3                        # a data slot; omit for zero pages
//! size = 0x2000                     # optional with a source (default: its size)
//! ```
//!
//! Paths are relative to the manifest's directory. Code with `.ro`/`.rw`/`.heap`/
//! `.stack` sections (or a standard program blob) brings the standard layout
//! ([`crate::image::standard_spec`]); the manifest's entries add to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use javm_cap::cap::{MAX_DATA_PAGES, MAX_ENDPOINTS};
use javm_cap::{DataCap, Endpoint, MemoryMapping, NUM_REGS, PAGE_SIZE, SlotIdx, SlotPath};
use javm_exec::asm::assemble;
use javm_exec::blob::{StandardProgram, parse_code_blob};
use javm_exec::program::HALT_ADDRESS;
use serde::Deserialize;

use crate::image::{BuiltImage, ImageError, ImageSpec, build, standard_spec};

/// The largest data entry a manifest may declare (the 4 GiB address space).
const MAX_DATA_BYTES: u64 = (MAX_DATA_PAGES * PAGE_SIZE) as u64;

/// Why a manifest could not be turned into an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: String,
    },
    /// The manifest is not valid TOML or does not match the format.
    #[error("{path}: {message}")]
    Syntax {
        /// The manifest.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A field has a value the format does not allow.
    #[error("{path}: {message}")]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The code file does not load.
    #[error("{path}: {message}")]
    Code {
        /// The code file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The image is invalid.
    #[error("{path}: {error}")]
    Image {
        /// The manifest.
        path: PathBuf,
        /// Why.
        error: ImageError,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    code: String,
    #[serde(default)]
    endpoint: Vec<EndpointEntry>,
    #[serde(default)]
    data: Vec<DataEntry>,
    #[serde(default)]
    mapping: Vec<MappingEntry>,
    yield_marker_slot: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Pc(u32),
    Label(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    index: usize,
    entry: Entry,
    #[serde(default)]
    regs: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataEntry {
    slot: u32,
    #[serde(default)]
    pinned: bool,
    text: Option<String>,
    hex: Option<String>,
    file: Option<String>,
    zeros: Option<u64>,
    size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingEntry {
    start: u64,
    size: Option<u64>,
    source: Option<u32>,
}

/// Read the manifest at `path` and build its image.
pub fn load(path: &Path) -> Result<BuiltImage, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Read {
        path: path.to_owned(),
        error: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, dir)
}

/// Build the image described by manifest `text`; `name` names it in errors and
/// relative paths are resolved against `dir`.
pub fn parse(text: &str, name: &Path, dir: &Path) -> Result<BuiltImage, ManifestError> {
    let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        path: name.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    let invalid = |message: String| ManifestError::Invalid {
        path: name.to_owned(),
        message,
    };
    let code_path = dir.join(&m.code);
    let (mut spec, labels, standard) = load_code(&code_path)?;

    let mut base_regs = [0u64; NUM_REGS];
    base_regs[0] = u64::from(HALT_ADDRESS);
    if standard {
        base_regs = crate::image::standard_regs();
    }
    for e in &m.endpoint {
        if e.index >= MAX_ENDPOINTS {
            return Err(invalid(format!(
                "endpoint index {} is out of range (0 to 63)",
                e.index
            )));
        }
        let entry_pc = match &e.entry {
            Entry::Pc(pc) => *pc,
            Entry::Label(l) => *labels
                .get(l)
                .ok_or_else(|| invalid(format!("endpoint {}: no code label `{l}`", e.index)))?,
        };
        let mut regs = base_regs;
        for (name, value) in &e.regs {
            let i = name
                .strip_prefix('r')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&i| i < NUM_REGS && name.len() <= 3)
                .ok_or_else(|| {
                    invalid(format!(
                        "endpoint {}: `{name}` is not a register (r0 to r12)",
                        e.index
                    ))
                })?;
            regs[i] = *value;
        }
        if m.endpoint.iter().filter(|o| o.index == e.index).count() > 1 {
            return Err(invalid(format!("endpoint {} is defined twice", e.index)));
        }
        spec.endpoints.retain(|(i, _)| *i != e.index);
        spec.endpoints.push((e.index, Endpoint { entry_pc, regs }));
    }

    for d in &m.data {
        if spec.data.iter().any(|x| x.0 == SlotIdx(d.slot)) {
            return Err(invalid(format!("data slot {} is used twice", d.slot)));
        }
        let cap =
            data_entry(d, dir).map_err(|msg| invalid(format!("data slot {}: {msg}", d.slot)))?;
        spec.data.push((SlotIdx(d.slot), d.pinned, cap));
    }
    for map in &m.mapping {
        let size = match (map.size, map.source) {
            (Some(s), _) => s,
            (None, Some(slot)) => spec
                .data
                .iter()
                .find(|d| d.0 == SlotIdx(slot))
                .map(|d| d.2.len())
                .ok_or_else(|| {
                    invalid(format!("mapping at {:#x}: no data slot {slot}", map.start))
                })?,
            (None, None) => {
                return Err(invalid(format!(
                    "mapping at {:#x} needs a size or a source",
                    map.start
                )));
            }
        };
        spec.mappings.push(MemoryMapping {
            start: map.start,
            size,
            source: map.source.map(|s| SlotPath::slot(SlotIdx(s))),
        });
    }
    spec.yield_marker_slot = m.yield_marker_slot.map(SlotIdx);
    build(spec).map_err(|error| ManifestError::Image {
        path: name.to_owned(),
        error,
    })
}

type CodeSource = (ImageSpec, BTreeMap<String, u32>, bool);

fn load_code(path: &Path) -> Result<CodeSource, ManifestError> {
    let bytes = std::fs::read(path).map_err(|e| ManifestError::Read {
        path: path.to_owned(),
        error: e.to_string(),
    })?;
    let code_err = |message: String| ManifestError::Code {
        path: path.to_owned(),
        message,
    };
    let is_asm = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("s") || e.eq_ignore_ascii_case("asm"));
    let image_err = |error| ManifestError::Image {
        path: path.to_owned(),
        error,
    };
    if is_asm {
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| code_err(format!("assembly source is not UTF-8: {e}")))?;
        let a = assemble(text).map_err(|e| code_err(e.to_string()))?;
        let labels = a.code_labels.iter().cloned().collect();
        let standard = a.has_data();
        let sp = a.standard().map_err(|e| code_err(e.to_string()))?;
        let mut spec = standard_spec(&sp).map_err(image_err)?;
        if !standard {
            spec.endpoints.clear();
        }
        return Ok((spec, labels, standard));
    }
    if let Ok(sp) =
        StandardProgram::parse(&bytes).or_else(|_| StandardProgram::parse_with_metadata(&bytes))
    {
        return Ok((
            standard_spec(&sp).map_err(image_err)?,
            BTreeMap::new(),
            true,
        ));
    }
    let p = parse_code_blob(&bytes).map_err(|e| {
        code_err(format!(
            "neither assembly (.s), a standard program blob nor a code blob: {e}"
        ))
    })?;
    let spec = ImageSpec {
        code: p.code().to_vec(),
        bitmask: p.bitmask().to_vec(),
        jump_table: p.jump_table().to_vec(),
        ..ImageSpec::default()
    };
    Ok((spec, BTreeMap::new(), false))
}

fn data_entry(d: &DataEntry, dir: &Path) -> Result<DataCap, String> {
    let sources = [
        d.text.is_some(),
        d.hex.is_some(),
        d.file.is_some(),
        d.zeros.is_some(),
    ];
    if sources.iter().filter(|&&s| s).count() != 1 {
        return Err("give exactly one of text, hex, file, zeros".into());
    }
    let too_big = |n: u64| format!("{n} bytes is more than the 4 GiB address space");
    let size = d.size.unwrap_or(0);
    if size > MAX_DATA_BYTES {
        return Err(too_big(size));
    }
    let bytes = if let Some(t) = &d.text {
        t.as_bytes().to_vec()
    } else if let Some(h) = &d.hex {
        parse_hex(h)?
    } else if let Some(f) = &d.file {
        let path = dir.join(f);
        let len = std::fs::metadata(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if len > MAX_DATA_BYTES {
            return Err(too_big(len));
        }
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    } else {
        let n = d.zeros.unwrap_or(0);
        if n > MAX_DATA_BYTES {
            return Err(too_big(n));
        }
        let pages = n.max(size).div_ceil(PAGE_SIZE as u64) as usize;
        return DataCap::zeros(pages).map_err(|e| e.to_string());
    };
    let pages = (bytes.len() as u64).max(size).div_ceil(PAGE_SIZE as u64) as usize;
    let mut cap = DataCap::from_bytes(&bytes).map_err(|e| e.to_string())?;
    if cap.pages().len() < pages {
        let mut p = cap.pages().to_vec();
        p.resize(pages, javm_cap::PageSlot::Empty);
        cap = DataCap::from_pages(p).map_err(|e| e.to_string())?;
    }
    Ok(cap)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.is_ascii() {
        return Err("hex holds a character that is not a hex digit".into());
    }
    if !s.len().is_multiple_of(2) {
        return Err("hex has an odd number of digits".into());
    }
    (0..s.len() / 2)
        .map(|i| {
            u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("`{}` is not a hex byte", &s[2 * i..2 * i + 2]))
        })
        .collect()
}
