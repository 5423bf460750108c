//! `javm asm` and `javm disasm`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use javm_exec::asm::assemble;
use javm_exec::disasm::{disassemble, disassemble_standard};

use super::FormatArg;
use super::load::{Loaded, load, read};

pub(super) fn asm(
    input: &Path,
    output: Option<PathBuf>,
    code_blob: bool,
) -> Result<ExitCode, String> {
    let bytes = read(input)?;
    let name = input.display();
    let text = std::str::from_utf8(&bytes).map_err(|e| format!("{name}: not UTF-8: {e}"))?;
    let a = assemble(text).map_err(|e| format!("{name}: {e}"))?;
    a.program().map_err(|e| format!("{name}: {e}"))?;
    let blob = if code_blob {
        if a.has_data() {
            return Err(format!(
                "{name}: a code blob cannot hold .ro/.rw data, .heap or .stack; drop --code-blob"
            ));
        }
        a.code_blob()
    } else {
        a.standard_blob().map_err(|e| format!("{name}: {e}"))?
    };
    let out = output.unwrap_or_else(|| input.with_extension("pvm"));
    std::fs::write(&out, &blob).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!(
        "wrote {} ({} bytes, {} bytes of code)",
        out.display(),
        blob.len(),
        a.code.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn disasm(input: &Path, format: FormatArg, native: bool) -> Result<ExitCode, String> {
    if native {
        return Err("--native needs the x86-64 recompiler, which is not built yet".into());
    }
    let text = match load(input, format)? {
        Loaded::Standard(s) => disassemble_standard(&s),
        Loaded::Code(p) => disassemble(&p),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
