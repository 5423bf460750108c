//! The `javm` command-line tool. Run `javm --help` for usage; exit codes are in the
//! README: 0 success, 1 the guest did not halt or a vector failed, 2 bad usage, bad
//! input or an output error (with a one-line message on stderr). A write to a closed
//! pipe ends the command quietly with 0.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::dispatch(args).and_then(|code| cli::out::flush().map(|()| code)) {
        Ok(code) => code,
        // A closed pipe (`javm … | head -1`) ends the command quietly.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
