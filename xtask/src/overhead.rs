//! `cargo xtask bench overhead`: how much tracing slows what it measures.
//! Interleaved repeats, pinned to one CPU, of the workload untraced and
//! traced in each mode, and the floor: do-nothing programs on the same
//! tracepoints. Ratios of medians, measured in one run.

use std::collections::HashMap;
use std::process::Command;

use anyhow::Result;

use crate::bench::{median, result_fields};
use crate::command::{output_of, release_binary};

/// (name, arguments of `mprotect-trace` before the workload's).
const MODES: [(&str, &[&str]); 5] = [
    ("untraced", &["workload"]),
    (
        "floor: empty programs",
        &["run", "--empty-programs", "--no-sample", "-o"],
    ),
    ("syscall tracepoints", &["run", "--no-sample", "-o"]),
    ("stack sampling", &["run", "--no-syscall", "-o"]),
    ("tracepoints + sampling", &["run", "-o"]),
];

const WORKLOADS: [(&str, &[&str]); 2] = [
    ("default: shared-dirty-toggle 64 MiB x 200", &["--iterations", "200"]),
    (
        "one-page toggle (page-toggle) x 20000",
        &["--scenario", "page-toggle", "--iterations", "20000"],
    ),
];

pub fn run(repeats: usize, cpu: usize) -> Result<()> {
    let tool = release_binary()?;
    let out = tempdir_for_runs()?;
    let cpu = cpu.to_string();
    for (label, workload) in WORKLOADS {
        let mut samples: HashMap<&str, Vec<f64>> = HashMap::new();
        for repeat in 0..repeats {
            eprintln!("{label}: repeat {}/{repeats}", repeat + 1);
            for (mode, args) in MODES {
                let mut command = Command::new(&tool);
                command.args(args);
                if args.last() == Some(&"-o") {
                    command.arg(&out);
                }
                command.args(workload).args(["--cpu", &cpu]);
                let fields = result_fields(&output_of(&mut command)?)?;
                samples.entry(mode).or_default().push(fields["iteration_ns_per_page"]);
            }
        }
        let untraced = median(samples["untraced"].clone());
        let floor = median(samples["floor: empty programs"].clone());
        println!("\n{label}: {repeats} interleaved repeats on CPU {cpu}, median iteration_ns_per_page");
        println!(
            "{:<26} {:>12} {:>12} {:>12}",
            "mode", "ns/page", "vs untraced", "vs floor"
        );
        for (mode, _) in MODES {
            let value = median(samples[mode].clone());
            println!(
                "{mode:<26} {value:>12.2} {:>11.3}x {:>11.3}x",
                value / untraced,
                value / floor
            );
        }
    }
    Ok(())
}

fn tempdir_for_runs() -> Result<std::path::PathBuf> {
    let dir = crate::command::workspace_root().join("target/bench/overhead-runs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
