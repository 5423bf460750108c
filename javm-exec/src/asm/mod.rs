//! The PVM text assembler. The format is documented in `docs/ASSEMBLY.md`; in short:
//!
//! ```text
//! ; comments start with ';' or '#'
//! .stack 4096              ; stack bytes (standard program)
//! .ro                      ; read-only data section
//! msg:  .ascii "hi"
//! .code                    ; code section (the default)
//! main:
//!     load_imm r1, 10      ; one instruction per line: mnemonic, operands
//!     load_imm r7, msg     ; a data label is its address
//! loop:
//!     add_imm_64 r1, r1, -1
//!     branch_ne_imm r1, 0, loop
//!     jump_ind r0, 0       ; r0 = 0xFFFF0000 in a standard program: halt
//! ```
//!
//! Operands follow the encoding order of each format (see [`crate::isa::Format`]);
//! three-register instructions name the destination first (`add_64 rD, rA, rB`).
//! Branch targets are code labels or absolute positions `@N`. `%label` is the
//! dynamic-jump address of `label`'s jump-table entry (added to the table if needed).
//! The assembler always emits the shortest encoding, so the disassembly of its output
//! reassembles to the same bytes.

mod assemble;
mod parse;

use thiserror::Error;

use crate::blob::{BlobError, StandardProgram, encode_code_blob};
use crate::program::{Program, ProgramError};

pub use assemble::assemble;

/// An assembly error, with the 1-based source line it occurred on.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct AsmError {
    /// Source line (1-based; 0 for errors about the whole program).
    pub line: usize,
    /// What is wrong.
    pub kind: AsmErrorKind,
}

/// What is wrong with a line of assembly.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AsmErrorKind {
    /// Not a known mnemonic.
    #[error("unknown mnemonic `{0}`")]
    UnknownMnemonic(String),
    /// Not a known directive.
    #[error("unknown directive `{0}`")]
    UnknownDirective(String),
    /// The instruction or directive takes another number of operands.
    #[error("`{mnemonic}` takes {expected} operands ({form}), got {got}")]
    OperandCount {
        /// The mnemonic.
        mnemonic: String,
        /// Operands expected.
        expected: usize,
        /// Operand form, e.g. `rD, rA, rB`.
        form: &'static str,
        /// Operands given.
        got: usize,
    },
    /// An operand has the wrong kind (register, number, target).
    #[error("operand {index} of `{mnemonic}`: expected {expected}, got `{got}`")]
    OperandKind {
        /// The mnemonic.
        mnemonic: String,
        /// 1-based operand position.
        index: usize,
        /// What was expected.
        expected: &'static str,
        /// The operand text.
        got: String,
    },
    /// A malformed token.
    #[error("cannot parse `{0}`")]
    Syntax(String),
    /// A number outside the field's range.
    #[error("{value} does not fit {field}")]
    OutOfRange {
        /// The value.
        value: i128,
        /// The field, e.g. "a sign-extended 32-bit immediate".
        field: &'static str,
    },
    /// A label defined twice.
    #[error("label `{0}` is defined twice")]
    DuplicateLabel(String),
    /// A label used but never defined.
    #[error("undefined label `{0}`")]
    UndefinedLabel(String),
    /// A label of the wrong section (e.g. a data label as a branch target).
    #[error("`{0}` is a {1} label and cannot be used here")]
    WrongLabelKind(String, &'static str),
    /// A label used as a branch target or jump-table entry does not start a basic
    /// block (taking the branch would panic).
    #[error(
        "branch target `{0}` does not start a basic block: put `fallthrough` before it \
         (or use @N to branch into a block on purpose)"
    )]
    NotABlockStart(String),
    /// Something only allowed in a code or data section.
    #[error("{0} is not allowed in the {1} section")]
    WrongSection(&'static str, &'static str),
    /// The assembled parts do not form a valid program.
    #[error("{0}")]
    Program(#[from] ProgramError),
    /// The assembled program does not fit the standard program format.
    #[error("{0}")]
    Blob(#[from] BlobError),
}

/// The output of [`assemble`]: code, bitmask, jump table and data sections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assembly {
    /// Code bytes.
    pub code: Vec<u8>,
    /// Instruction-start bitmask.
    pub bitmask: Vec<u8>,
    /// Jump table (target PCs).
    pub jump_table: Vec<u32>,
    /// Read-only data (`.ro`).
    pub ro_data: Vec<u8>,
    /// Read-write data (`.rw`).
    pub rw_data: Vec<u8>,
    /// Heap pages (`.heap`).
    pub heap_pages: u16,
    /// Stack bytes (`.stack`).
    pub stack_size: u32,
    /// The metadata blob that prefixes the standard program (`.metadata` section),
    /// if the source has one.
    pub metadata: Option<Vec<u8>>,
    /// The source asks for a GP code blob instead of a standard program
    /// (`.code_blob`).
    pub code_blob: bool,
    /// Code labels and their PCs.
    pub code_labels: Vec<(String, u32)>,
}

impl Assembly {
    /// Validate the code as a [`Program`].
    pub fn program(&self) -> Result<Program, ProgramError> {
        Program::new(
            self.code.clone(),
            self.bitmask.clone(),
            self.jump_table.clone(),
        )
    }

    /// The code as a GP code blob (data sections, heap and stack are not part of it).
    pub fn code_blob(&self) -> Vec<u8> {
        encode_code_blob(&self.code, &self.bitmask, &self.jump_table)
    }

    /// The whole assembly as a standard program.
    pub fn standard(&self) -> Result<StandardProgram, AsmError> {
        let err = |kind| AsmError { line: 0, kind };
        Ok(StandardProgram {
            ro_data: self.ro_data.clone(),
            rw_data: self.rw_data.clone(),
            heap_pages: self.heap_pages,
            stack_size: self.stack_size,
            program: std::sync::Arc::new(self.program().map_err(|e| err(e.into()))?),
        })
    }

    /// The whole assembly as a standard program blob.
    pub fn standard_blob(&self) -> Result<Vec<u8>, AsmError> {
        self.standard()?.encode().map_err(|e| AsmError {
            line: 0,
            kind: e.into(),
        })
    }

    /// Whether the source used data sections, heap, stack or metadata (and so needs
    /// the standard program format).
    pub fn has_data(&self) -> bool {
        !self.ro_data.is_empty()
            || !self.rw_data.is_empty()
            || self.heap_pages > 0
            || self.stack_size > 0
            || self.metadata.is_some()
    }

    /// The blob the source describes: a GP code blob if it says `.code_blob` (or
    /// `code_blob` is forced), else a standard program blob, prefixed by the
    /// metadata blob `E(|m|) ‖ m` if it has a `.metadata` section. A code blob
    /// cannot hold data, heap, stack or metadata.
    pub fn blob(&self, code_blob: bool) -> Result<Vec<u8>, AsmError> {
        if code_blob || self.code_blob {
            if self.has_data() {
                return Err(AsmError {
                    line: 0,
                    kind: AsmErrorKind::Syntax(
                        "a code blob cannot hold .ro/.rw data, .heap, .stack or .metadata; \
                         drop --code-blob or .code_blob"
                            .into(),
                    ),
                });
            }
            self.program().map_err(|e| AsmError {
                line: 0,
                kind: e.into(),
            })?;
            return Ok(self.code_blob());
        }
        let blob = self.standard_blob()?;
        Ok(match &self.metadata {
            Some(m) => StandardProgram::with_metadata(m, &blob),
            None => blob,
        })
    }

    /// The PC of a code label.
    pub fn label(&self, name: &str) -> Option<u32> {
        self.code_labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, pc)| pc)
    }
}

#[cfg(test)]
mod tests;
