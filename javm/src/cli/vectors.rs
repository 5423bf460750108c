//! `javm test-vectors`: run conformance vectors, report per file, optionally write a
//! JSON or JUnit XML report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use javm::vectors::{Vector, collect_files, compare, run};
use javm_exec::{Engine, EngineKind, Interpreter};
use serde_json::json;

use super::out::{CliError, outln};

/// What `test-vectors` was asked to do.
pub(super) struct VectorArgs {
    pub paths: Vec<PathBuf>,
    pub kind: EngineKind,
    pub filter: Option<String>,
    pub json_report: Option<PathBuf>,
    pub junit_report: Option<PathBuf>,
}

/// One file's result.
struct FileResult {
    path: PathBuf,
    /// The vector's name (the file stem when the file is malformed).
    name: String,
    verdict: Verdict,
}

enum Verdict {
    Pass,
    /// The run differed from the expected state.
    Fail(Vec<String>),
    /// The file is not a usable vector.
    Malformed(String),
}

pub(super) fn test_vectors(a: VectorArgs) -> Result<ExitCode, CliError> {
    let mut files = collect_files(&a.paths).map_err(|e| e.to_string())?;
    if let Some(f) = &a.filter {
        files.retain(|p| p.to_string_lossy().contains(f.as_str()));
    }
    if files.is_empty() {
        return Err(match &a.filter {
            Some(f) => format!("no vector file matches --filter {f:?}"),
            None => "no vector files found (expected *.json files or directories of them)".into(),
        }
        .into());
    }
    let results = match a.kind {
        EngineKind::Interp => run_all(&Interpreter::new(), &files)?,
        #[cfg(jit)]
        EngineKind::Jit => run_all(&super::recompiler()?, &files)?,
        #[cfg(not(jit))]
        EngineKind::Jit => return Err(super::JIT_UNAVAILABLE.into()),
    };
    let count = |f: fn(&Verdict) -> bool| results.iter().filter(|r| f(&r.verdict)).count();
    let passed = count(|v| matches!(v, Verdict::Pass));
    let failed = count(|v| matches!(v, Verdict::Fail(_)));
    let malformed = count(|v| matches!(v, Verdict::Malformed(_)));
    if let Some(p) = &a.json_report {
        write_file(p, &json_report(&results, a.kind, passed, failed, malformed))?;
    }
    if let Some(p) = &a.junit_report {
        write_file(p, &junit_report(&results, a.kind, failed, malformed))?;
    }
    if malformed == 0 {
        outln!("{passed} passed, {failed} failed");
    } else {
        outln!("{passed} passed, {failed} failed, {malformed} malformed");
    }
    Ok(if failed + malformed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Run every file in order, printing a line per failing or malformed one.
fn run_all<E: Engine>(engine: &E, files: &[PathBuf]) -> Result<Vec<FileResult>, CliError> {
    let mut results = Vec::with_capacity(files.len());
    for path in files {
        let loaded = if super::load::is_stdio(path) {
            super::load::read(path).and_then(|b| {
                std::str::from_utf8(&b)
                    .map_err(|e| format!("<stdin>: not UTF-8 text: {e}"))
                    .and_then(|t| Vector::from_json(t).map_err(|e| format!("<stdin>: {e}")))
            })
        } else {
            Vector::load(path).map_err(|e| e.to_string())
        };
        let r = match loaded {
            Ok(v) => {
                let diffs = match run(engine, &v) {
                    Ok(outcome) => compare(&v, &outcome),
                    Err(e) => vec![e],
                };
                let verdict = if diffs.is_empty() {
                    Verdict::Pass
                } else {
                    Verdict::Fail(diffs)
                };
                FileResult {
                    path: path.clone(),
                    name: v.name,
                    verdict,
                }
            }
            Err(e) => FileResult {
                path: path.clone(),
                name: stem(path),
                verdict: Verdict::Malformed(e),
            },
        };
        match &r.verdict {
            Verdict::Pass => {}
            Verdict::Fail(d) => outln!("FAIL {} ({}): {}", r.path.display(), r.name, d.join("; ")),
            Verdict::Malformed(m) => outln!("MALFORMED {m}"),
        }
        results.push(r);
    }
    Ok(results)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `-` is standard output.
fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    if path == Path::new("-") {
        return super::out::write_bytes(text.as_bytes());
    }
    std::fs::write(path, text)
        .map_err(|e| format!("cannot write the report {}: {e}", path.display()).into())
}

fn json_report(
    results: &[FileResult],
    kind: EngineKind,
    passed: usize,
    failed: usize,
    malformed: usize,
) -> String {
    let vectors: Vec<_> = results
        .iter()
        .map(|r| {
            let (status, details) = match &r.verdict {
                Verdict::Pass => ("pass", Vec::new()),
                Verdict::Fail(d) => ("fail", d.clone()),
                Verdict::Malformed(m) => ("malformed", vec![m.clone()]),
            };
            json!({
                "path": r.path.display().to_string(),
                "name": r.name,
                "status": status,
                "details": details,
            })
        })
        .collect();
    let v = json!({
        "engine": kind.name(),
        "passed": passed,
        "failed": failed,
        "malformed": malformed,
        "vectors": vectors,
    });
    format!("{v:#}\n")
}

fn junit_report(
    results: &[FileResult],
    kind: EngineKind,
    failed: usize,
    malformed: usize,
) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = format!("javm test-vectors ({})", kind.name());
    x += &format!(
        "<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"{malformed}\">\n",
        xml_escape(&suite),
        results.len()
    );
    for r in results {
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml_escape(&r.path.display().to_string()),
            xml_escape(&r.name)
        );
        match &r.verdict {
            Verdict::Pass => x += &format!("{open}/>\n"),
            Verdict::Fail(d) => {
                x += &format!(
                    "{open}>\n      <failure message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(&d.join("; "))
                );
            }
            Verdict::Malformed(m) => {
                x += &format!(
                    "{open}>\n      <error message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(m)
                );
            }
        }
    }
    x += "  </testsuite>\n</testsuites>\n";
    x
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            // XML 1.0 cannot hold other control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => "\u{FFFD}".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_control_characters() {
        assert_eq!(
            xml_escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
    }
}
