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
    (UNTRACED, &["workload"]),
    (FLOOR, &["run", "--empty-programs", "--no-sample", "-o"]),
    ("syscall tracepoints", &["run", "--no-sample", "-o"]),
    ("stack sampling", &["run", "--no-syscall", "-o"]),
    ("tracepoints + sampling", &["run", "-o"]),
];

const WORKLOADS: [(&str, &[&str]); 2] = [
    ("default: shared-dirty-toggle 64 MiB x 200", &["--iterations", "200"]),
    (
        "one-page toggle (page-toggle) x 100000",
        &["--scenario", "page-toggle", "--iterations", "100000"],
    ),
];

const UNTRACED: &str = "untraced";
const FLOOR: &str = "floor: empty programs";

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
        print_table(label, repeats, &cpu, &samples);
    }
    Ok(())
}

/// Two estimates of each ratio, both from one run. The median of the
/// per-repeat ratios pairs each traced run with its untraced neighbour, so
/// slow drifts of the host cancel; the ratio of the fastest runs ("best
/// of N") is robust to the bursts of contention of a shared VM, which
/// only ever add time.
fn print_table(label: &str, repeats: usize, cpu: &str, samples: &HashMap<&str, Vec<f64>>) {
    println!("\n{label}: {repeats} interleaved repeats on CPU {cpu}, iteration_ns_per_page");
    println!(
        "{:<26} {:>10} {:>10} {:>13} {:>13} {:>13} {:>13}",
        "mode", "median", "best", "vs untraced", "(best)", "vs floor", "(best)"
    );
    let best = |mode: &str| samples[mode].iter().copied().fold(f64::INFINITY, f64::min);
    let paired = |mode: &str, base: &str| {
        median(
            samples[mode]
                .iter()
                .zip(&samples[base])
                .map(|(value, base)| value / base)
                .collect(),
        )
    };
    for (mode, _) in MODES {
        println!(
            "{mode:<26} {:>10.2} {:>10.2} {:>12.3}x {:>12.3}x {:>12.3}x {:>12.3}x",
            median(samples[mode].clone()),
            best(mode),
            paired(mode, UNTRACED),
            best(mode) / best(UNTRACED),
            paired(mode, FLOOR),
            best(mode) / best(FLOOR),
        );
    }
}

fn tempdir_for_runs() -> Result<std::path::PathBuf> {
    let dir = crate::command::workspace_root().join("target/bench/overhead-runs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
