//! The `javm` command-line tool. Run `javm --help` for usage; exit codes are in the
//! README: 0 success, 1 the guest did not halt or a vector failed, 2 bad usage or
//! bad input (with a one-line message on stderr).

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
