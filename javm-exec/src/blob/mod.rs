//! Program file formats (docs/ISA.md §1.4, §2.1).
//!
//! * [`code`] — the GP code blob ("deblob"): jump table, code and bitmask;
//! * [`standard`] — the GP standard program blob: read-only data, read-write data,
//!   heap and stack sizes, and a code blob; it also builds the initial layout and
//!   registers of Y(p, a);
//! * [`codec`] — the JAM compact natural and fixed-width integers they use.
//!
//! Every reader is total: malformed input gives a [`BlobError`] naming what is wrong
//! and where (a byte offset), and nothing is allocated before sizes are checked
//! against the bytes actually present.

pub mod code;
pub mod codec;
pub mod standard;

use thiserror::Error;

use crate::program::ProgramError;

pub use code::{encode_code_blob, parse_code_blob};
pub use standard::StandardProgram;

/// Why a blob could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The blob ends before a field.
    #[error("truncated: {what} at byte {offset} needs {needed} more bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Its byte offset.
        offset: usize,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left.
        available: usize,
    },
    /// A compact natural is not in its shortest form.
    #[error("non-canonical compact integer for {what} at byte {offset}")]
    NonCanonicalVarint {
        /// The field being read.
        what: &'static str,
        /// Its byte offset.
        offset: usize,
    },
    /// A size field exceeds what this loader accepts.
    #[error("{what} is {value}, above the limit of {limit}")]
    TooLarge {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// Jump-table entries wider than 4 bytes.
    #[error("jump table entry width {0} at byte 1 is not supported (at most 4 bytes)")]
    JumpEntryWidth(u8),
    /// Bytes remain after the last field.
    #[error("{extra} unexpected trailing bytes at byte {offset}")]
    TrailingBytes {
        /// Where they start.
        offset: usize,
        /// How many.
        extra: usize,
    },
    /// The standard program's regions do not fit in the 4 GiB address space.
    #[error("standard program layout needs {needed:#x} bytes of address space; at most 2^32 fit")]
    LayoutTooLarge {
        /// Address space needed by the GP formula.
        needed: u64,
    },
    /// The parts do not form a valid program.
    #[error("invalid program: {0}")]
    Program(#[from] ProgramError),
}
