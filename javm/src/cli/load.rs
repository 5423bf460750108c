//! Reading program files in any supported format.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use javm_exec::Program;
use javm_exec::asm::assemble;
use javm_exec::blob::{StandardProgram, parse_code_blob};

use super::FormatArg;

/// A loaded program file.
pub(crate) enum Loaded {
    /// A standard program (data, heap, stack and code).
    Standard(StandardProgram),
    /// A standard program preceded by a metadata blob (its bytes).
    WithMetadata(Vec<u8>, StandardProgram),
    /// A bare code blob.
    Code(Arc<Program>),
}

impl Loaded {
    /// As a standard program (a code blob gets no data, heap or stack).
    pub(crate) fn into_standard(self) -> StandardProgram {
        match self {
            Loaded::Standard(s) | Loaded::WithMetadata(_, s) => s,
            Loaded::Code(program) => StandardProgram {
                ro_data: vec![],
                rw_data: vec![],
                heap_pages: 0,
                stack_size: 0,
                program,
            },
        }
    }
}

/// Whether `path` is `-`, standard input (or, for outputs, standard output).
pub(crate) fn is_stdio(path: &Path) -> bool {
    path == Path::new("-")
}

/// Read a file, or standard input for `-` (read once; later reads of `-` get the
/// same bytes).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    if is_stdio(path) {
        static STDIN: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
        return STDIN
            .get_or_init(|| {
                let mut buf = Vec::new();
                std::io::stdin()
                    .lock()
                    .read_to_end(&mut buf)
                    .map(|_| buf)
                    .map_err(|e| format!("cannot read standard input: {e}"))
            })
            .clone();
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Write a file, or standard output for `-`.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), super::CliError> {
    if is_stdio(path) {
        return super::out::write_bytes(bytes);
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// How a path is named in messages.
pub(crate) fn display(path: &Path) -> String {
    if is_stdio(path) {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

pub(crate) fn load(path: &Path, format: FormatArg) -> Result<Loaded, String> {
    let bytes = read(path)?;
    let name = display(path);
    let is_asm = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("s") || e.eq_ignore_ascii_case("asm"));
    let format = match format {
        FormatArg::Auto if is_asm => FormatArg::Asm,
        f => f,
    };
    match format {
        FormatArg::Asm => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| format!("{name}: assembly source is not UTF-8: {e}"))?;
            let a = assemble(text).map_err(|e| format!("{name}: {e}"))?;
            Ok(Loaded::Standard(
                a.standard().map_err(|e| format!("{name}: {e}"))?,
            ))
        }
        FormatArg::Std => StandardProgram::parse(&bytes)
            .map(Loaded::Standard)
            .map_err(|e| format!("{name}: not a standard program blob: {e}")),
        FormatArg::StdMeta => StandardProgram::parse_keeping_metadata(&bytes)
            .map(|(m, s)| Loaded::WithMetadata(m, s))
            .map_err(|e| format!("{name}: not a standard program blob with metadata: {e}")),
        FormatArg::Code => parse_code_blob(&bytes)
            .map(|p| Loaded::Code(Arc::new(p)))
            .map_err(|e| format!("{name}: not a code blob: {e}")),
        FormatArg::Auto => {
            let std_err = match StandardProgram::parse(&bytes) {
                Ok(s) => return Ok(Loaded::Standard(s)),
                Err(e) => e,
            };
            if let Ok((m, s)) = StandardProgram::parse_keeping_metadata(&bytes) {
                return Ok(Loaded::WithMetadata(m, s));
            }
            let code_err = match parse_code_blob(&bytes) {
                Ok(p) => return Ok(Loaded::Code(Arc::new(p))),
                Err(e) => e,
            };
            // Standard input has no file name to tell assembly by: try it last.
            if is_stdio(path)
                && let Ok(text) = std::str::from_utf8(&bytes)
                && let Ok(a) = assemble(text)
            {
                return Ok(Loaded::Standard(
                    a.standard().map_err(|e| format!("{name}: {e}"))?,
                ));
            }
            Err(format!(
                "{name}: neither a standard program blob ({std_err}) nor a code blob \
                 ({code_err}); use --format to choose one"
            ))
        }
    }
}
