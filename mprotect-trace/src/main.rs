//! The `mprotect-trace` binary: parses the command line into the
//! library's option structs and calls the subcommand.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let result = cli::Cli::parse().dispatch();
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line, every context joined: "error: outer: inner".
            mprotect_trace::output::stderr_line(&format!("error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}
