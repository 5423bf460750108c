//! The CLI's standard output and its errors.
//!
//! Every write to standard output is checked ([`outln!`], [`out!`]): a closed pipe
//! (`javm run … | head -1`) ends the command quietly with status 0, as `cat` and
//! other filters do; any other output error (`> /dev/full`) is a one-line `error:`
//! with status 2, like every other error.

use std::fmt;
use std::io::{self, Write};

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad usage or bad input; printed as `error: <message>`.
    Message(String),
    /// Standard output could not be written.
    Output(io::Error),
}

impl CliError {
    /// Whether this is a write to a closed pipe, which ends the command quietly.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Message(m) => f.write_str(m),
            CliError::Output(e) => write!(f, "cannot write to standard output: {e}"),
        }
    }
}

impl From<String> for CliError {
    fn from(m: String) -> Self {
        CliError::Message(m)
    }
}

impl From<&str> for CliError {
    fn from(m: &str) -> Self {
        CliError::Message(m.to_owned())
    }
}

/// Write formatted text to standard output.
pub(crate) fn write(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(CliError::Output)
}

/// Write raw bytes to standard output.
pub(crate) fn write_bytes(bytes: &[u8]) -> Result<(), CliError> {
    io::stdout()
        .lock()
        .write_all(bytes)
        .map_err(CliError::Output)
}

/// Flush standard output (its buffer holds any text after the last newline).
pub(crate) fn flush() -> Result<(), CliError> {
    io::stdout().lock().flush().map_err(CliError::Output)
}

/// A 64-bit value in JSON output: a `0x…` hex string, which jq and JavaScript read
/// without rounding (their numbers are doubles, exact only below 2^53).
pub(crate) fn json_u64(v: u64) -> serde_json::Value {
    serde_json::Value::String(format!("{v:#x}"))
}

/// A register file in JSON output: one [`json_u64`] per register.
pub(crate) fn json_regs(regs: &[u64]) -> serde_json::Value {
    regs.iter().map(|&r| json_u64(r)).collect()
}

/// `println!` to standard output, returning a [`CliError`] from the enclosing
/// function when the write fails.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` to standard output, returning a [`CliError`] when the write fails.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))?
    };
}

pub(crate) use {out, outln};
