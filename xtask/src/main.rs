//! Project tasks: `cargo xtask setup|run|test|bench`.

mod bench;
mod bench_guest;
mod bisect;
mod browser;
mod command;
mod fleet;
mod install;
mod lab;
mod lab_tree;
mod layout;
mod overhead;
mod readme;
mod setup;
mod startup;
mod vm;
mod vm_debuginfo;
mod vm_inline_probes;
mod vm_numa;
mod vm_split;

use anyhow::Result;
use clap::{Parser, Subcommand};

use command::{cargo, release_binary, run_checked, run_tee};

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
    /// Set up, build release, and run the main job: doctor, then trace the default workload.
    Run,
    /// Set up, then run every check and test: fmt, clippy, unit and kernel tests, the labs.
    Test,
    /// Open a real run's flame.svg and report.html in headless Chromium: screenshots and checks.
    FlameCheck,
    /// Boot Debian's 6.1 and 7.x kernels (x86_64, arm64) in QEMU and prove the function probes there.
    VmTest {
        /// Only the kernels of this series and architecture, e.g. 7:x86_64 (a developer's shortcut).
        #[arg(long, value_name = "SERIES:ARCH")]
        only: Option<String>,
    },
    /// Run every `$ mprotect-trace` example of the README and the docs: none may crash.
    ReadmeCheck,
    /// `mprotect-trace lab` on Debian 6.12 and 7.3 under TCG icount, twice: spread, agreement, attribution.
    LabCheck,
    /// `mprotect-trace lab` on kernels it builds from a git history over Debian's
    /// linux-source-6.12: attribution against a known answer, caching, refusals, signals.
    LabTreeCheck,
    /// `mprotect-trace bisect` on a history over lab-tree-check's whose slow commit is known.
    BisectCheck,
    /// `mprotect-trace fleet run` through ansible-playbook on three hosts in network namespaces.
    FleetCheck,
    /// Build release and install the binary, its man pages and its shell completions.
    Install {
        /// Installed under PREFIX/bin and PREFIX/share.
        #[arg(long, default_value = "/usr/local", value_name = "PREFIX")]
        prefix: std::path::PathBuf,
    },
    /// Benchmarks (timings, not tests): the workload against an independent C loop, tracing overhead.
    Bench(bench::BenchArgs),
    /// Inside `bench guest`'s VM: every case, round after round.
    #[command(hide = true)]
    GuestBench {
        #[arg(long)]
        rounds: usize,
    },
    /// Inside `bench guest`'s VM: a workload and the BPF programs' costs meanwhile.
    #[command(hide = true)]
    GuestBenchWorkload {
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Run => {
            setup::run()?;
            run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
            let binary = release_binary()?;
            run_checked(std::process::Command::new(&binary).arg("doctor"))?;
            run_checked(std::process::Command::new(&binary).arg("run"))
        }
        Task::Test => {
            setup::run()?;
            let mut tally = Tally::default();
            tally.step("cargo fmt --check", || {
                run_checked(&mut cargo(["fmt", "--all", "--", "--check"])).map(|()| 1)
            });
            tally.step("cargo clippy", || {
                run_checked(&mut cargo(["clippy", "--all-targets", "--", "-D", "warnings"])).map(|()| 1)
            });
            // --no-fail-fast: a failed test binary does not hide the tests of the next ones.
            let (status, cargo_test) = run_tee(&mut cargo(["test", "--no-fail-fast"]))?;
            let (passed, failed) = count_results(&cargo_test);
            tally.passed += passed;
            tally.failed += failed;
            if !status.success() && failed == 0 {
                // It failed before running a test (a build error): one failure.
                eprintln!("cargo test failed: {status}");
                tally.failed += 1;
            }
            tally.step("vm-test", || vm::run(None));
            tally.step("lab-check", lab::run);
            // Before readme-check: the guide's tree example boots its kernels.
            tally.step("lab-tree-check", lab_tree::run);
            // After lab-tree-check: its history and build directory are the base.
            tally.step("bisect-check", bisect::run);
            tally.step("fleet-check", fleet::run);
            tally.step("install-check", install::check);
            tally.step("flame-check", browser::run);
            tally.step("readme-check", readme::run);
            // One closing line for CI: every check of every step.
            println!("summary: {} passed, {} failed", tally.passed, tally.failed);
            anyhow::ensure!(tally.failed == 0, "{} checks failed", tally.failed);
            Ok(())
        }
        Task::FlameCheck => {
            setup::run()?;
            browser::run().map(drop)
        }
        Task::VmTest { only } => {
            setup::run()?;
            vm::run(only.as_deref()).map(drop)
        }
        Task::ReadmeCheck => {
            setup::run()?;
            readme::run().map(drop)
        }
        Task::LabCheck => {
            setup::run()?;
            lab::run().map(drop)
        }
        Task::LabTreeCheck => {
            setup::run()?;
            lab_tree::run().map(drop)
        }
        Task::BisectCheck => {
            setup::run()?;
            bisect::run().map(drop)
        }
        Task::FleetCheck => {
            setup::run()?;
            fleet::run().map(drop)
        }
        Task::Install { prefix } => {
            setup::run()?;
            install::run(&prefix)
        }
        Task::GuestBench { rounds } => bench_guest::drive(rounds),
        Task::GuestBenchWorkload { command } => bench_guest::measure_workload(&command),
        Task::Bench(args) => {
            setup::run()?;
            bench::run(&args)
        }
    }
}

/// Passed and failed checks over steps that all run, whatever failed before.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Runs `step`, which returns how many checks passed; a failed step
    /// counts as one failure, and the next step still runs.
    fn step(&mut self, name: &str, step: impl FnOnce() -> Result<u64>) {
        match step() {
            Ok(passed) => self.passed += passed,
            Err(err) => {
                eprintln!("FAILED: {name}: {err:#}");
                self.failed += 1;
            }
        }
    }
}

/// Sums cargo's "test result: ok. N passed; M failed; ..." lines.
fn count_results(output: &str) -> (u64, u64) {
    let number_before = |line: &str, word: &str| -> u64 {
        line.split(';')
            .find_map(|part| part.trim().strip_suffix(word)?.trim().rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    output
        .lines()
        .filter(|line| line.starts_with("test result:"))
        .fold((0, 0), |(passed, failed), line| {
            (
                passed + number_before(line, "passed"),
                failed + number_before(line, "failed"),
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_cargo_test_result_lines() {
        let output = "running 3 tests\n\
            test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.46s\n\
            test result: FAILED. 5 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 6.37s\n";
        assert_eq!(super::count_results(output), (17, 1));
    }
}
