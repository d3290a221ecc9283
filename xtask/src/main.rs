//! Project tasks: `cargo xtask setup|run|test|bench`.

mod bench;
mod command;
mod setup;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

use command::{cargo, release_binary, run_checked};

#[derive(Parser)]
#[command(name = "xtask", about = "Build, set up and test mprotect-trace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent; seconds when all is there).
    Setup,
    /// Set up, build release, and run the main job: doctor, then the default traced workload.
    Run,
    /// Set up, then run every check and test: fmt, clippy, unit and kernel tests.
    Test,
    /// Boot Debian's 6.1 kernel in QEMU and prove the fentry and kprobe backends there.
    VmTest,
    /// Benchmarks (timings, not tests): the workload against an independent C loop.
    Bench(bench::BenchArgs),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Run => {
            setup::run()?;
            run_checked(&mut cargo([
                "build",
                "--release",
                "--package",
                "mprotect-trace",
            ]))?;
            let binary = release_binary()?;
            run_checked(std::process::Command::new(&binary).arg("doctor"))?;
            run_checked(std::process::Command::new(&binary).arg("workload"))
        }
        Task::Test => {
            setup::run()?;
            run_checked(&mut cargo(["fmt", "--all", "--", "--check"]))?;
            run_checked(&mut cargo([
                "clippy",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            run_checked(&mut cargo(["test"]))?;
            vm::run()
        }
        Task::VmTest => {
            setup::run()?;
            vm::run()
        }
        Task::Bench(args) => {
            setup::run()?;
            bench::run(&args)
        }
    }
}
