//! The `javm` binary: outputs, exit codes (0 success, 1 guest/vector failure, 2 bad
//! usage or input with a one-line error), and the example blobs being up to date.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn javm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_javm"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("javm runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 2 with exactly one line on stderr, starting with "error:".
fn assert_usage_error(o: &Output, mentions: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(
        err.contains(mentions),
        "{err:?} should mention {mentions:?}"
    );
}

/// A path in this test process's scratch directory. The directory is named by the
/// process id, which the system reuses: one left behind by an earlier process is
/// emptied on first use, so no test reads another run's files (a stale
/// `report.json` once sat in the tree `test_vectors_search_recursively_filter_and_report`
/// searches).
fn temp(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("javm-cli-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    dir.join(name)
}

#[test]
fn run_hello_prints_its_output() {
    let o = javm(&["run", "examples/hello.pvm"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("exit: halt"), "{out}");
    assert!(out.contains("\"hello, world\\n\""), "{out}");
    assert!(out.contains("gas: used 19, left 999999981"), "{out}");
    assert!(out.contains("r7  = 0x0000000000010000"), "{out}");
}

#[test]
fn run_rejects_an_entry_inside_a_block() {
    let src = temp("entry.s");
    std::fs::write(&src, ".code\nload_imm r1, 1\nload_imm r2, 2\ntrap\n").unwrap();
    let src = src.to_str().unwrap();
    for engine in ["interp", "jit"] {
        let o = javm(&["run", src, "--entry", "3", "--engine", engine]);
        assert_usage_error(&o, "entry PC 3 is not the start of a basic block");
        let o = javm(&["run", src, "--entry", "0", "--engine", engine]);
        assert_eq!(o.status.code(), Some(1), "a trap: {}", stderr(&o));
    }
}

#[test]
fn run_stops_at_the_memory_limit() {
    let src = temp("limit.s");
    std::fs::write(
        &src,
        ".heap 16\n.rw\nheap:\n.code\nload_imm r2, heap\nload_imm r3, 16\nfallthrough\n\
         loop: store_ind_u8 r3, r2, 0\nadd_imm_64 r2, r2, 4096\nadd_imm_64 r3, r3, -1\n\
         branch_ne_imm r3, 0, loop\nload_imm r8, 0\njump_ind r0, 0\n",
    )
    .unwrap();
    let src = src.to_str().unwrap();
    for engine in ["interp", "jit"] {
        let args = ["run", src, "--profile", "gp", "--engine", engine];
        let o = javm(&[&args[..], &["--max-memory", "8K"]].concat());
        assert_usage_error(&o, "memory limit of 8192 bytes");
        let o = javm(&[&args[..], &["--max-memory", "1M"]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let o = javm(&["run", src, "--max-memory", "12X"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a size"), "{}", stderr(&o));
}

#[test]
fn run_json_with_an_argument() {
    let o = javm(&["run", "examples/fib.pvm", "--arg", "0a000000", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["exit"], "halt");
    assert_eq!(v["output"], "3700000000000000", "F(10) = 55");
    assert_eq!(v["profile"], "jar1");
    // `auto` picks the recompiler where it can run.
    let auto = if javm::jit_available() {
        "jit"
    } else {
        "interp"
    };
    assert_eq!(v["engine"], auto);
    // 64-bit values are hex strings, which jq and JavaScript do not round.
    let hex = |v: &serde_json::Value| {
        let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
        u64::from_str_radix(s.strip_prefix("0x").expect("0x prefix"), 16).unwrap()
    };
    let regs = v["regs"].as_array().unwrap();
    assert_eq!(regs.len(), 13);
    assert_eq!(hex(&regs[0]), 0xFFFF_0000, "r0: the halt address");
    assert_eq!(hex(&v["gas_used"]) + hex(&v["gas_left"]), 1_000_000_000);
}

/// `-` is standard input (and, for outputs, standard output); --arg-file; --output.
#[test]
fn stdio_arguments_and_raw_output() {
    use std::io::Write;
    use std::process::Stdio;
    let with_stdin = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_javm"))
            .args(args)
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let blob = std::fs::read(root().join("examples/hello.pvm")).unwrap();
    let o = with_stdin(&["run", "-"], &blob);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("hello, world"));
    // Assembly on stdin assembles to stdout; disassembly of stdin round-trips.
    let src = std::fs::read(root().join("examples/hello.s")).unwrap();
    let o = with_stdin(&["asm", "-"], &src);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, blob, "asm - writes the blob to stdout");
    let o = with_stdin(&["disasm", "-"], &blob);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = with_stdin(&["run", "-"], &o.stdout);
    assert!(
        stdout(&o).contains("hello, world"),
        "assembly on stdin runs"
    );
    let o = with_stdin(
        &["test-vectors", "-"],
        &std::fs::read(root().join("vectors/pvm-gp-0.4/inst_add_32.json")).unwrap(),
    );
    assert_eq!(stdout(&o).trim_end(), "1 passed, 0 failed");

    // --arg-file, and the output bytes to a file or alone on stdout.
    let arg = temp("fib-arg.bin");
    std::fs::write(&arg, 10u32.to_le_bytes()).unwrap();
    let out = temp("fib-out.bin");
    let o = javm(&[
        "run",
        "examples/fib.pvm",
        "--arg-file",
        arg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), 55u64.to_le_bytes(), "F(10)");
    let o = with_stdin(&["run", "examples/hello.pvm", "-o", "-"], b"");
    assert_eq!(o.stdout, b"hello, world\n");
    assert!(
        stderr(&o).contains("exit: halt"),
        "the report goes to stderr"
    );
    let o = with_stdin(
        &["run", "examples/fib.pvm", "--arg-file", "-", "--json"],
        &3u32.to_le_bytes(),
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["output"], "0200000000000000", "F(3) = 2");
}

#[test]
fn bad_gas_values_are_rejected_with_one_line() {
    assert_usage_error(
        &javm(&["run", "examples/hello.pvm", "--gas", "-5"]),
        "--gas -5: gas cannot be negative",
    );
    assert_usage_error(
        &javm(&["run", "examples/hello.pvm", "--gas", "lots"]),
        "not a number",
    );
    let o = javm(&["run", "examples/hello.pvm", "--gas", "1_000_000"]);
    assert!(
        stdout(&o).contains("gas: used 19, left 999981"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn run_assembly_source_and_gp_profile() {
    let o = javm(&[
        "run",
        "examples/sieve.s",
        "--profile",
        "gp",
        "--arg",
        "e8030000",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("output: 4 bytes: a8000000"),
        "168 primes below 1000"
    );
}

#[test]
fn run_non_halting_exits_1() {
    let src = temp("trap.s");
    std::fs::write(&src, "load_imm r1, 5\ntrap\n").unwrap();
    let o = javm(&["run", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("exit: trap"));
    let o = javm(&["run", "examples/fib.pvm", "--gas", "10"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("exit: out-of-gas"));
}

#[test]
fn run_says_why_a_program_panicked() {
    let src = temp("panic.s");
    std::fs::write(&src, "load_imm r1, 3\njump_ind r1, 0\n").unwrap();
    let src = src.to_str().unwrap();
    let o = javm(&["run", src]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("exit: panic (dynamic jump to an address the jump table does not map)"),
        "{}",
        stdout(&o)
    );
    let o = javm(&["run", src, "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["panic_reason"], "invalid-jump-address");
    let o = javm(&["run", src, "--trace"]);
    assert!(
        stderr(&o).contains("[trace] panic at pc 3: dynamic jump"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_trace_prints_blocks() {
    let o = javm(&["run", "examples/fib.pvm", "--arg", "03000000", "--trace"]);
    assert_eq!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.contains("[trace] block @0"), "{err}");
    assert!(err.contains("[trace] halt at pc"), "{err}");
}

#[test]
fn bad_usage_and_input_exit_2_with_one_line() {
    assert_usage_error(&javm(&["run", "does-not-exist.pvm"]), "does-not-exist.pvm");
    assert_usage_error(
        &javm(&["run", "examples/hello.pvm", "--arg", "zz"]),
        "--arg",
    );
    assert_usage_error(
        &javm(&["run", "examples/hello.pvm", "--gas", "9223372036854775808"]),
        "2^63",
    );
    let bad = temp("bad.pvm");
    std::fs::write(&bad, [0xFFu8; 7]).unwrap();
    assert_usage_error(
        &javm(&["run", bad.to_str().unwrap()]),
        "neither a standard program blob",
    );
    assert_usage_error(
        &javm(&["run", bad.to_str().unwrap(), "--format", "code"]),
        "not a code blob",
    );
    let asm = temp("bad.s");
    std::fs::write(&asm, "load_imm r1, 1\nbogus r2\n").unwrap();
    assert_usage_error(
        &javm(&["run", asm.to_str().unwrap()]),
        "line 2: unknown mnemonic `bogus`",
    );
    if !javm::jit_available() {
        assert_usage_error(
            &javm(&["run", "--engine", "jit", "examples/hello.pvm"]),
            "--engine=interp",
        );
        assert_usage_error(
            &javm(&["disasm", "--native", "examples/hello.pvm"]),
            "--engine=interp",
        );
    }
    // clap's own usage errors also exit 2.
    assert_eq!(javm(&["run"]).status.code(), Some(2));
    assert_eq!(javm(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn test_vectors_passes_the_conformance_suite() {
    let o = javm(&["test-vectors", "vectors/pvm-gp-0.4"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        stdout(&o).trim_end().lines().last(),
        Some("201 passed, 0 failed")
    );
}

#[test]
fn test_vectors_reports_failures_and_malformed_files() {
    let good = root().join("vectors/pvm-gp-0.4/inst_add_32.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&good).unwrap()).unwrap();
    json["expected-gas"] = serde_json::Value::from(1);
    let failing = temp("failing.json");
    std::fs::write(&failing, json.to_string()).unwrap();
    let o = javm(&[
        "test-vectors",
        failing.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "FAIL {} (inst_add_32): gas: expected 1, got",
            failing.display()
        )),
        "{out}"
    );
    assert_eq!(out.trim_end().lines().last(), Some("1 passed, 1 failed"));

    // Malformed files — bad JSON, a bad page map, a bad program — are failures of
    // their own: the run goes on, exit status 1, the summary last.
    let bad_json = temp("malformed.json");
    std::fs::write(&bad_json, "{\"name\": \"x\", ").unwrap();
    let mut bad_map = json.clone();
    bad_map["initial-page-map"] =
        serde_json::json!([{"address": 1, "length": 3, "is-writable": true}]);
    let bad_map_file = temp("bad-map.json");
    std::fs::write(&bad_map_file, bad_map.to_string()).unwrap();
    let mut bad_program = json.clone();
    bad_program["program"] = serde_json::json!([255, 255, 255]);
    let bad_program_file = temp("bad-program.json");
    std::fs::write(&bad_program_file, bad_program.to_string()).unwrap();
    let o = javm(&[
        "test-vectors",
        bad_json.to_str().unwrap(),
        bad_map_file.to_str().unwrap(),
        bad_program_file.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("MALFORMED") && out.contains("malformed.json"),
        "{out}"
    );
    assert!(out.contains("bad-map.json"), "{out}");
    assert!(out.contains("bad-program.json"), "{out}");
    let last = out.trim_end().lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("1 passed, "), "{out}");
    assert!(
        last.contains("malformed") || last.contains("failed"),
        "{out}"
    );
}

#[test]
fn test_vectors_search_recursively_filter_and_report() {
    let dir = temp("vectors-tree");
    let sub = dir.join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    for name in ["inst_add_32", "inst_add_64", "inst_branch_eq_ok"] {
        std::fs::copy(
            root().join(format!("vectors/pvm-gp-0.4/{name}.json")),
            sub.join(format!("{name}.json")),
        )
        .unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "not a vector").unwrap();
    let o = javm(&["test-vectors", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o).trim_end(), "3 passed, 0 failed");

    let report = dir.join("report.json");
    let junit = dir.join("report.xml");
    let o = javm(&[
        "test-vectors",
        dir.to_str().unwrap(),
        "--filter",
        "add",
        "--report",
        report.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(stdout(&o).trim_end(), "2 passed, 0 failed");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["passed"], 2);
    assert_eq!(r["vectors"][0]["name"], "inst_add_32");
    assert_eq!(r["vectors"][0]["status"], "pass");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.contains("<testsuite ") && x.contains("tests=\"2\" failures=\"0\""),
        "{x}"
    );
    assert!(x.contains("name=\"inst_add_64\""), "{x}");

    assert_usage_error(
        &javm(&["test-vectors", dir.to_str().unwrap(), "--filter", "zzz"]),
        "--filter",
    );
}

/// A closed pipe ends the command quietly; any other output error is one line and
/// exit status 2.
#[test]
fn output_errors_end_cleanly() {
    use std::io::Read;
    use std::process::Stdio;
    // `javm disasm big.pvm | head -c 1`: the reader goes away after one byte, while
    // the output (about 700 KB) is far larger than a pipe holds.
    let src = temp("big.s");
    std::fs::write(&src, "add_64 r1, r2, r3\n".repeat(40_000) + "trap\n").unwrap();
    let blob = temp("big.pvm");
    let o = javm(&["asm", src.to_str().unwrap(), "-o", blob.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut child = Command::new(env!("CARGO_BIN_EXE_javm"))
        .args(["disasm", blob.to_str().unwrap()])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut one = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut one).unwrap();
    // The pipe's read end is dropped here.
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");

    if Path::new("/dev/full").exists() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_javm"))
            .args(["run", "examples/hello.pvm"])
            .current_dir(root())
            .stdout(full)
            .output()
            .unwrap();
        assert_usage_error(&o, "cannot write to standard output");
    }
}

#[test]
fn asm_disasm_round_trip_and_examples_are_up_to_date() {
    for name in ["hello", "fib", "sieve", "sort", "pager"] {
        let out = temp(&format!("{name}.pvm"));
        let o = javm(&[
            "asm",
            &format!("examples/{name}.s"),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let built = std::fs::read(&out).unwrap();
        let shipped = std::fs::read(root().join(format!("examples/{name}.pvm"))).unwrap();
        assert_eq!(
            built, shipped,
            "examples/{name}.pvm is stale: rebuild it with `javm asm`"
        );

        let d = javm(&["disasm", out.to_str().unwrap()]);
        assert_eq!(d.status.code(), Some(0));
        let text = temp(&format!("{name}.dis.s"));
        std::fs::write(&text, stdout(&d)).unwrap();
        let again = temp(&format!("{name}.again.pvm"));
        let o = javm(&["asm", text.to_str().unwrap(), "-o", again.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            std::fs::read(&again).unwrap(),
            built,
            "{name}: disasm | asm changed the blob"
        );
    }
}

/// Disassembly of a code blob and of a standard program with a metadata prefix
/// reassembles to the identical bytes (`.code_blob`, `.metadata`).
#[test]
fn disasm_round_trips_code_blobs_and_metadata() {
    let src = temp("rt.s");
    std::fs::write(
        &src,
        "load_imm r1, 2\nfallthrough\nL: add_imm_64 r1, r1, -1\nbranch_ne_imm r1, 0, L\ntrap\n",
    )
    .unwrap();
    let code = temp("rt.code");
    let o = javm(&[
        "asm",
        src.to_str().unwrap(),
        "--code-blob",
        "-o",
        code.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let hello = root().join("examples/hello.pvm");
    let mut meta = vec![5u8];
    meta.extend(b"hello");
    meta.extend(std::fs::read(&hello).unwrap());
    let meta_blob = temp("meta.pvm");
    std::fs::write(&meta_blob, &meta).unwrap();
    for blob in [&code, &meta_blob] {
        let o = javm(&["disasm", blob.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = temp("rt-out.s");
        std::fs::write(&text, &o.stdout).unwrap();
        let again = temp("rt-again.bin");
        let o = javm(&["asm", text.to_str().unwrap(), "-o", again.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            std::fs::read(&again).unwrap(),
            std::fs::read(blob).unwrap(),
            "{} does not round-trip:\n{}",
            blob.display(),
            std::fs::read_to_string(&text).unwrap()
        );
    }
    let o = javm(&["run", meta_blob.to_str().unwrap()]);
    assert!(stdout(&o).contains("hello, world"));
}

#[test]
fn asm_code_blob_refuses_data() {
    let out = temp("hello.code");
    assert_usage_error(
        &javm(&[
            "asm",
            "examples/hello.s",
            "--code-blob",
            "-o",
            out.to_str().unwrap(),
        ]),
        "drop --code-blob",
    );
    let src = temp("plain.s");
    std::fs::write(&src, "load_imm r1, 2\ntrap\n").unwrap();
    let o = javm(&[
        "asm",
        src.to_str().unwrap(),
        "--code-blob",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = javm(&["run", out.to_str().unwrap(), "--format", "code"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("exit: trap"));
}

#[test]
fn help_lists_the_commands() {
    let o = javm(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for cmd in ["run", "test-vectors", "asm", "disasm"] {
        assert!(out.contains(cmd), "{out}");
    }
}

#[test]
fn both_engines_print_the_same_result() {
    if !javm::jit_available() {
        return;
    }
    for prog in [
        "examples/hello.pvm",
        "examples/fib.pvm",
        "examples/sieve.pvm",
        "examples/sort.pvm",
    ] {
        let run = |engine: &str| {
            let o = javm(&["run", prog, "--engine", engine, "--json"]);
            let mut v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
            assert_eq!(v["engine"], engine);
            v["engine"] = serde_json::Value::Null;
            (o.status.code(), v)
        };
        assert_eq!(run("interp"), run("jit"), "{prog}");
    }
}

#[test]
fn jit_passes_the_conformance_suite_and_disassembles() {
    if !javm::jit_available() {
        return;
    }
    let o = javm(&["test-vectors", "--engine", "jit", "vectors/pvm-gp-0.4"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        stdout(&o).trim_end().lines().last(),
        Some("201 passed, 0 failed")
    );
    let o = javm(&["disasm", "--native", "examples/hello.pvm"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("load_imm r7, 0x10000"), "{text}");
    assert!(text.contains("sub     r15,"), "gas checks: {text}");
}
