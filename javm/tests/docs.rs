//! The docs stand on their own: the README's synopsis lists every subcommand and
//! option the `javm` binary has, and no document or doc comment cites a file that is
//! not in the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn help(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_javm"))
        .args(args)
        .arg("--help")
        .output()
        .expect("javm runs");
    assert_eq!(o.status.code(), Some(0), "javm {args:?} --help");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The long options (`--name`) a help text lists.
fn long_options(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(|w| format!("--{w}"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The subcommands a help text lists under `Commands:`.
fn subcommands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// The README's synopsis block (the first `text` block of "The `javm` tool").
fn synopsis() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("## The `javm` tool")
        .expect("README has the tool section")
        .1;
    let block = section.split_once("```text").expect("a synopsis block").1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_owned()
}

#[test]
fn readme_synopsis_lists_every_subcommand_and_option() {
    let synopsis = synopsis();
    let mut missing = Vec::new();
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        seen += 1;
        for sub in subcommands(&text) {
            let line = format!("javm {}", [args.clone(), vec![&sub]].concat().join(" "));
            // Subcommands of `store` follow the global `--store DIR` in the synopsis.
            // and some share a line (`ls [--json] | verify | gc`).
            let listed = synopsis.contains(&line)
                || (path.len() == 1
                    && (synopsis.contains(&format!("] {sub}"))
                        || synopsis.contains(&format!("| {sub}"))));
            if !listed {
                missing.push(format!("subcommand `{line}`"));
            }
            let mut next = path.clone();
            next.push(sub);
            pending.push(next);
        }
        for opt in long_options(&text) {
            if opt != "--help" && !synopsis.contains(&opt) {
                missing.push(format!("`javm {}` option {opt}", args.join(" ")));
            }
        }
    }
    assert!(seen > 10, "only {seen} help texts read");
    assert!(
        missing.is_empty(),
        "the README synopsis misses: {missing:#?}"
    );
}

/// Tokens of `text` that look like repository paths: `dir/file.ext` with a known
/// extension, or a bare Markdown file name in capitals. Placeholders (`{name}`,
/// globs) are not paths.
fn cited_paths(text: &str) -> Vec<String> {
    const EXTS: [&str; 7] = [".md", ".rs", ".s", ".toml", ".sh", ".pvm", ".json"];
    text.split(|c: char| c.is_whitespace() || "`()[]<>\"',;|:".contains(c))
        .map(|w| w.trim_end_matches(['.', '!', '?']))
        .filter(|w| EXTS.iter().any(|e| w.ends_with(e)))
        .filter(|w| w.contains('/') || (w.ends_with(".md") && w.starts_with(char::is_uppercase)))
        .filter(|w| !w.contains(['{', '*', '$', '…']) && !w.starts_with("http"))
        .filter(|w| !w.starts_with("/tmp") && !w.starts_with("~"))
        .map(str::to_owned)
        .collect()
}

/// Whether `cited` names a file of the repository: from the root, `docs/`, a crate
/// or its `src/` (documents abbreviate paths inside a crate), or a directory above
/// the citing file.
fn exists(cited: &str, from: &Path) -> bool {
    let cited = cited.trim_start_matches("./");
    // Nothing outside the repository counts, even where this checkout has it.
    if cited.starts_with("../") || cited.starts_with('/') {
        return false;
    }
    let root = root();
    let mut bases = vec![root.clone(), root.join("docs")];
    for krate in [
        "javm-cap",
        "javm-exec",
        "javm-jit-x86",
        "javm",
        "differential-tests",
    ] {
        bases.push(root.join(krate));
        bases.push(root.join(krate).join("src"));
    }
    let mut dir = from.parent();
    while let Some(d) = dir {
        bases.push(d.to_path_buf());
        if d == root {
            break;
        }
        dir = d.parent();
    }
    bases.iter().any(|b| b.join(cited).exists())
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if p.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "vectors" {
                files(&p, out);
            }
        } else if name.ends_with(".md") || name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn docs_cite_only_files_in_the_repo() {
    let root = root();
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(all.len() > 50, "only {} files found", all.len());
    let mut missing = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let is_rust = f.extension().is_some_and(|e| e == "rs");
        for line in text.lines() {
            // In Rust sources, only documentation counts.
            let t = line.trim_start();
            let doc = if is_rust {
                match t.strip_prefix("//!").or_else(|| t.strip_prefix("///")) {
                    Some(d) => d,
                    None => continue,
                }
            } else {
                line
            };
            for cited in cited_paths(doc) {
                if !exists(&cited, f) {
                    missing.push(format!(
                        "{}: {cited}",
                        f.strip_prefix(&root).unwrap_or(f).display()
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documents cite files that are not in the repository: {missing:#?}"
    );
}
