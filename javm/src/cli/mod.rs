//! Command-line definitions and dispatch.

mod asm;
mod bench;
mod load;
pub(crate) mod out;
mod run;
mod run_image;
mod store;
mod vectors;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use javm_exec::{EngineKind, GasProfile};
pub(crate) use out::CliError;

/// JAVM: a gas-metered virtual machine for PVM programs.
#[derive(Parser, Debug)]
#[command(name = "javm", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a program: a standard program blob, a code blob, or assembly source (.s);
    /// or an image: a manifest (.toml) or a bundle from `javm image build`.
    ///
    /// A program prints the exit, PC, gas used and left, the registers, and on halt
    /// the output bytes mem[r7 .. r7 + r8]. An image runs as a fresh instance under
    /// the Vm driver (host ops included; nothing is stored) and prints its result as
    /// `store invoke` does. Exit status: 0 on halt, 1 on any other exit, 2 on bad
    /// input.
    Run(RunArgs),
    /// Run Gray Paper conformance vectors (w3f JSON files, or directories searched
    /// recursively for *.json).
    ///
    /// Prints a line per failing vector (`FAIL path (name): differences`) and per
    /// malformed file (`MALFORMED path: why`), and last "N passed, N failed" (with ",
    /// N malformed" if any). Exit status: 0 if all pass, 1 if any fails or is
    /// malformed, 2 on bad usage (no files found, an unreadable directory, a report
    /// that cannot be written).
    TestVectors {
        /// Vector files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Engine to run them on.
        #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
        engine: EngineArg,
        /// Run only the files whose path contains this text.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// Write a JSON report (every file's path, name, status and differences) to
        /// FILE (`-`: standard output).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Write a JUnit XML report to FILE (`-`: standard output), for CI systems.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Assemble a source file into a standard program blob (or a code blob).
    Asm {
        /// Assembly source (format: docs/ASSEMBLY.md).
        input: PathBuf,
        /// Output file [default: the input with extension .pvm].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write a plain GP code blob instead of a standard program (no data,
        /// heap, stack or metadata allowed), as the `.code_blob` directive does.
        #[arg(long)]
        code_blob: bool,
    },
    /// Disassemble a program blob into assembly source that reassembles to the same
    /// bytes (a code blob under `.code_blob`, a metadata prefix as a `.metadata`
    /// section).
    Disasm {
        /// The blob.
        input: PathBuf,
        /// How to read the input.
        #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
        format: FormatArg,
        /// Print the x86-64 code the recompiler emits for each instruction (needs
        /// the recompiler: x86-64 Linux).
        #[arg(long)]
        native: bool,
        /// With --native: the gas profile whose block prices the code embeds.
        #[arg(long, value_enum, default_value_t = ProfileArg::Jar1)]
        profile: ProfileArg,
    },
    /// Benchmark the built-in workloads (fib, sieve, sort, hash, digits, divide, host calls, a 1 MB
    /// program for compile speed) and print medians: compile, create, lifecycle,
    /// execute.
    ///
    /// `create` is instantiate and drop of an instance that never runs; `lifecycle`
    /// is instantiate, run one block, drop (it includes discarding the memory a run
    /// may have touched). Every run's output is checked, and gas must match across engines.
    Bench {
        /// One engine only [default: both, where the recompiler is available].
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        /// Samples per measurement (the median is printed).
        #[arg(long, default_value_t = 5)]
        samples: usize,
    },
    /// Build images from manifests (README, "Image manifests").
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// The on-disk cap store: publish images, inspect, verify and collect garbage.
    ///
    /// The store is a directory holding one redb database: `--store DIR`, else
    /// $JAVM_STORE, else `javm-store` in the user's data directory (created on first
    /// use).
    Store {
        /// The store directory.
        #[arg(long, global = true, value_name = "DIR")]
        store: Option<PathBuf>,
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Build an image (and its data caps) into one bundle file.
    ///
    /// The input is an image manifest (.toml), assembly source (.s) or a program blob;
    /// the output holds the image and its data caps in their rkyv wire form.
    Build {
        /// The manifest or program.
        input: PathBuf,
        /// The bundle file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Publish an image, its data caps, its root cnode and a fresh instance; print
    /// their hashes.
    ///
    /// FILE is a manifest (.toml), a bundle from `javm image build`, assembly source
    /// or a program blob (a GP standard program gets the standard layout).
    Put {
        /// The image source.
        file: PathBuf,
        /// Put an existing cap into a slot of the instance's root cnode (SLOT=HASH,
        /// SLOT 0 to 255); may be repeated.
        #[arg(long, value_name = "SLOT=HASH")]
        slot: Vec<String>,
        /// Print the hashes as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print one cap.
    Get {
        /// The cap's hash (64 hexadecimal digits).
        hash: String,
        /// Print it as one JSON object.
        #[arg(long, conflicts_with = "raw")]
        json: bool,
        /// Write a data cap's bytes to standard output.
        #[arg(long)]
        raw: bool,
    },
    /// List every cap: hash, kind and record size.
    Ls {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every record; print the corrupt ones. Exit status 1 if any.
    Verify,
    /// Invoke an instance with the Vm driver and print its result; on a halt the
    /// post-instance is published into the store, so invoking the printed hash
    /// continues from the settled state. Exit status 0 on a halt, 1 on a fault or an
    /// unresumed pause, 2 on bad input (missing cap, wrong kind, undefined endpoint,
    /// corrupt store).
    Invoke {
        /// The instance's hash.
        hash: String,
        /// The endpoint (0 to 63).
        #[arg(long, default_value_t = 0)]
        endpoint: u32,
        /// An argument, placed in r7, r8, r9, r10 in order; up to four.
        #[arg(long = "arg", value_name = "U64")]
        args: Vec<u64>,
        /// The gas budget: 0 to 2^63 - 1 (`_` separators allowed).
        #[arg(long, default_value = "10000000", allow_hyphen_values = true)]
        gas: String,
        /// Which engine runs it.
        #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
        engine: EngineArg,
        /// Print the results as one JSON object.
        #[arg(long)]
        json: bool,
        /// Let CATCHER (the hash in a waiting instance's yield-marker slot) catch
        /// yields of MARKER (a hash, or `oog` for out of gas); may be repeated.
        #[arg(long, value_name = "CATCHER=MARKER")]
        catch: Vec<String>,
        /// Resume after a caught yield up to this many times.
        #[arg(long, default_value_t = 0)]
        resume: u32,
        /// Gas added before resuming after an out-of-gas pause: 0 to 2^63 - 1.
        #[arg(long, default_value = "0", allow_hyphen_values = true)]
        top_up: String,
        /// A cap put in the resumed instance's slot 0 at each resume.
        #[arg(long, value_name = "HASH")]
        scratchpad: Option<String>,
    },
    /// Remove every cap and page not reachable from the given roots.
    Gc {
        /// A root to keep (with everything it refers to); at least one.
        #[arg(long, required = true, value_name = "HASH")]
        keep: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The program file.
    program: PathBuf,
    /// Engine: `auto` picks the recompiler where it is available, else the
    /// interpreter.
    #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
    engine: EngineArg,
    /// Gas profile.
    #[arg(long, value_enum, default_value_t = ProfileArg::Jar1)]
    profile: ProfileArg,
    /// Gas budget: 0 to 2^63 - 1 (`_` separators allowed).
    #[arg(
        long,
        default_value = "1000000000",
        allow_hyphen_values = true,
        value_name = "GAS"
    )]
    gas: String,
    /// The most memory the guest may write (pages that become writable copies): a
    /// number of bytes with an optional K, M or G suffix. A run that would pass it
    /// ends with an error. Program files only.
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_size)]
    max_memory: u64,
    /// Argument bytes, in hexadecimal: for a program, mapped read-only at 0xFEFF0000
    /// (r7 = address, r8 = length); for an image, a data cap in slot 0.
    #[arg(long, default_value = "", conflicts_with = "arg_file")]
    arg: String,
    /// Argument bytes from a file (`-`: standard input), as with --arg.
    #[arg(long, value_name = "FILE")]
    arg_file: Option<PathBuf>,
    /// Write the output bytes of a halted program (mem[r7 .. r7 + r8]) to FILE;
    /// with `-` standard output gets only those bytes and the report goes to
    /// standard error. Program files only.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Entry PC (program files).
    #[arg(long, default_value_t = 0)]
    entry: u32,
    /// Endpoint (images: 0 to 63).
    #[arg(long, default_value_t = 0)]
    endpoint: u32,
    /// How to read the program file.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,
    /// Print every basic block executed (PC, gas, changed registers) to stderr.
    #[arg(long)]
    trace: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineArg {
    /// The recompiler where it is available (x86-64 Linux with BMI1, BMI2, LZCNT
    /// and POPCNT), else the interpreter.
    Auto,
    /// The interpreter.
    Interp,
    /// The x86-64 recompiler.
    Jit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    /// JAVM pricing (single-pass block model, copy-on-write charges).
    Jar1,
    /// Gray Paper conformance pricing (one gas per instruction).
    Gp,
}

impl From<ProfileArg> for GasProfile {
    fn from(p: ProfileArg) -> GasProfile {
        match p {
            ProfileArg::Jar1 => GasProfile::Jar1,
            ProfileArg::Gp => GasProfile::Gp,
        }
    }
}

/// Program file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// Detect: assembly if the name ends in .s or .asm, else try a standard program,
    /// a standard program with a metadata prefix, then a code blob.
    Auto,
    /// GP standard program blob.
    Std,
    /// GP standard program blob preceded by a metadata blob.
    StdMeta,
    /// GP code blob.
    Code,
    /// Assembly source.
    Asm,
}

/// Resolve the engine choice: `auto` is the recompiler where it can run, else the
/// interpreter; `jit` on a host without it is an error that names the alternative.
fn engine(choice: EngineArg) -> Result<EngineKind, String> {
    match choice {
        EngineArg::Interp => Ok(EngineKind::Interp),
        EngineArg::Auto => Ok(javm::auto_engine()),
        EngineArg::Jit if javm::jit_available() => Ok(EngineKind::Jit),
        EngineArg::Jit => Err(JIT_UNAVAILABLE.into()),
    }
}

/// Why `--engine=jit` cannot run here.
#[cfg(jit)]
const JIT_UNAVAILABLE: &str = "the x86-64 recompiler is not available on this host (it needs \
     x86-64 Linux and a CPU with BMI1, BMI2, LZCNT and POPCNT); use --engine=interp";
/// Why `--engine=jit` cannot run here.
#[cfg(not(jit))]
const JIT_UNAVAILABLE: &str = "this javm is built without the x86-64 recompiler (cargo \
     feature `jit`, which needs x86-64 Linux); use --engine=interp";

/// A gas amount: decimal digits (with optional `_` separators), 0 to 2^63 - 1.
fn parse_gas(option: &str, s: &str) -> Result<u64, String> {
    let digits: String = s.trim().chars().filter(|&c| c != '_').collect();
    if digits.starts_with('-') {
        return Err(format!("{option} {s}: gas cannot be negative"));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{option} {s:?}: not a number (gas is a decimal count, 0 to 2^63 - 1)"
        ));
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|&g| g <= i64::MAX as u64)
        .ok_or_else(|| format!("{option} {s}: above the maximum gas 2^63 - 1"))
}

/// A byte count with an optional binary suffix: `4096`, `64K`, `512M`, `2G`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (bytes, or a number with K, M or G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A recompiler, or the reason there is none.
#[cfg(jit)]
fn recompiler() -> Result<javm_jit_x86::Recompiler, String> {
    javm_jit_x86::Recompiler::new().map_err(|e| e.to_string())
}

pub(crate) fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::TestVectors {
            paths,
            engine: e,
            filter,
            report,
            junit,
        } => vectors::test_vectors(vectors::VectorArgs {
            paths,
            kind: engine(e)?,
            filter,
            json_report: report,
            junit_report: junit,
        }),
        Command::Asm {
            input,
            output,
            code_blob,
        } => asm::asm(&input, output, code_blob),
        Command::Disasm {
            input,
            format,
            native,
            profile,
        } => asm::disasm(&input, format, native.then_some(profile.into())),
        Command::Bench { engine, samples } => bench::bench(engine, samples),
        Command::Image {
            command: ImageCommand::Build { input, output },
        } => store::image_build(&input, &output),
        Command::Store {
            store: dir,
            command,
        } => {
            let dir = store::store_dir(dir)?;
            match command {
                StoreCommand::Put { file, slot, json } => store::put(&dir, &file, &slot, json),
                StoreCommand::Get { hash, json, raw } => store::get(&dir, &hash, json, raw),
                StoreCommand::Ls { json } => store::ls(&dir, json),
                StoreCommand::Verify => store::verify(&dir),
                StoreCommand::Invoke {
                    hash,
                    endpoint,
                    args,
                    gas,
                    engine: e,
                    json,
                    catch,
                    resume,
                    top_up,
                    scratchpad,
                } => store::invoke(
                    &dir,
                    store::InvokeArgs {
                        hash,
                        endpoint,
                        args,
                        gas: parse_gas("--gas", &gas)?,
                        engine: engine(e)?,
                        json,
                        catch,
                        resume,
                        top_up: parse_gas("--top-up", &top_up)?,
                        scratchpad,
                    },
                ),
                StoreCommand::Gc { keep } => store::gc(&dir, &keep),
            }
        }
    }
}
