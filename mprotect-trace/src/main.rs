//! The `mprotect-trace` binary: parses the command line into the
//! library's option structs and calls the subcommand.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE; restore the default so that `report DIR | head`
    // ends quietly when head closes the pipe, as Unix tools do, instead of
    // panicking on the next print. The kernel detaches every probe of a
    // process that ends this way, and the run's files are written before
    // its table is printed.
    // SAFETY: setting a signal's disposition to its default, before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let result = cli::Cli::parse().dispatch();
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line, every context joined: "error: outer: inner".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
