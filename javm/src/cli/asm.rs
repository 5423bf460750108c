//! `javm asm` and `javm disasm`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use javm_exec::asm::assemble;
use javm_exec::disasm::{disassemble_code_blob, disassemble_standard, disassemble_with_metadata};

use javm_exec::GasProfile;

use super::FormatArg;
use super::load::{Loaded, display, is_stdio, load, read, write};
use super::out::{CliError, out};

pub(super) fn asm(
    input: &Path,
    output: Option<PathBuf>,
    code_blob: bool,
) -> Result<ExitCode, CliError> {
    let bytes = read(input)?;
    let name = display(input);
    let text = std::str::from_utf8(&bytes).map_err(|e| format!("{name}: not UTF-8: {e}"))?;
    let a = assemble(text).map_err(|e| format!("{name}: {e}"))?;
    let blob = a.blob(code_blob).map_err(|e| format!("{name}: {e}"))?;
    // Standard input assembles to standard output unless -o says otherwise.
    let out = output.unwrap_or_else(|| {
        if is_stdio(input) {
            PathBuf::from("-")
        } else {
            input.with_extension("pvm")
        }
    });
    write(&out, &blob)?;
    eprintln!(
        "wrote {} ({} bytes, {} bytes of code)",
        if is_stdio(&out) {
            "<stdout>".to_owned()
        } else {
            out.display().to_string()
        },
        blob.len(),
        a.code.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `native`: print the recompiler's code, priced under this profile.
pub(super) fn disasm(
    input: &Path,
    format: FormatArg,
    native: Option<GasProfile>,
) -> Result<ExitCode, CliError> {
    if let Some(profile) = native {
        return native_listing(input, format, profile);
    }
    let text = match load(input, format)? {
        Loaded::Standard(s) => disassemble_standard(&s),
        Loaded::WithMetadata(m, s) => disassemble_with_metadata(&m, &s),
        Loaded::Code(p) => disassemble_code_blob(&p),
    };
    out!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `javm disasm --native`: each PVM instruction followed by its x86-64 code.
#[cfg(jit)]
fn native_listing(
    input: &Path,
    format: FormatArg,
    profile: GasProfile,
) -> Result<ExitCode, CliError> {
    use javm_exec::{Engine, GasSchedule};

    if !javm::jit_available() {
        return Err(super::JIT_UNAVAILABLE.into());
    }
    let sp = load(input, format)?.into_standard();
    // Price blocks for the memory tier the program would run with (no argument).
    let (layout, _) = sp.initial_state(&[]).map_err(|e| e.to_string())?;
    let schedule = GasSchedule::new(profile, layout.accessible_pages());
    let module = super::recompiler()?
        .prepare(&sp.program, schedule)
        .map_err(|e| e.to_string())?;
    out!("{}", javm_jit_x86::native::listing(&module));
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(jit))]
fn native_listing(_: &Path, _: FormatArg, _: GasProfile) -> Result<ExitCode, CliError> {
    Err(super::JIT_UNAVAILABLE.into())
}
