//! `cargo xtask bench overhead`: how much tracing slows what it measures.
//! Interleaved repeats, pinned to one CPU, of the workload untraced and
//! traced in each mode, and the floor: do-nothing programs on the same
//! tracepoints. Ratios of medians, measured in one run. Then the same
//! comparison free of wall-clock noise: what the tracepoint programs cost
//! per run by the kernel's own BPF statistics (`run --probe-cost`).

use std::collections::HashMap;
use std::process::Command;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::bench::{median, result_fields};
use crate::command::{output_of, release_binary};

/// (name, arguments of `mprotect-trace` before the workload's).
const MODES: [(&str, &[&str]); 5] = [
    (UNTRACED, &["workload"]),
    (FLOOR, &["run", "--empty-programs", "--no-sample", "--replace", "-o"]),
    ("syscall tracepoints", &["run", "--no-sample", "--replace", "-o"]),
    ("stack sampling", &["run", "--no-syscall", "--replace", "-o"]),
    ("tracepoints + sampling", &["run", "--replace", "-o"]),
];

const WORKLOADS: [(&str, &[&str]); 2] = [
    ("default: shared-dirty-toggle 64 MiB x 200", &["--iterations", "200"]),
    (
        "one-page toggle (page-toggle) x 100000",
        &["--scenario", "page-toggle", "--iterations", "100000"],
    ),
];

/// The syscall-bound one: the program-cost comparison is made on it.
const PAGE_TOGGLE: usize = 1;

const UNTRACED: &str = "untraced";
const FLOOR: &str = "floor: empty programs";

pub fn run(repeats: usize, cpu: usize) -> Result<()> {
    let tool = release_binary()?;
    let out = tempdir_for_runs()?;
    let cpu = cpu.to_string();
    let mut floor_medians = Vec::new();
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
        floor_medians.push(median(samples[FLOOR].clone()));
    }
    print_program_costs(
        &tool,
        &out,
        &cpu,
        WORKLOADS[PAGE_TOGGLE],
        floor_medians[PAGE_TOGGLE],
        repeats,
    )
}

/// Median ns per run of each syscall tracepoint program, empty and real,
/// and what the real ones add to one page-toggle iteration (two calls),
/// against the floor's wall-clock median measured above.
fn print_program_costs(
    tool: &std::path::Path,
    out: &std::path::Path,
    cpu: &str,
    (label, workload): (&str, &[&str]),
    floor_iteration_ns: f64,
    repeats: usize,
) -> Result<()> {
    let mut per_run: HashMap<(bool, String), Vec<f64>> = HashMap::new();
    for repeat in 0..repeats {
        eprintln!("program cost, {label}: repeat {}/{repeats}", repeat + 1);
        for empty in [true, false] {
            let mut command = Command::new(tool);
            command
                .args(["run", "--probe-cost", "--no-sample", "--replace", "-o"])
                .arg(out);
            if empty {
                command.arg("--empty-programs");
            }
            output_of(command.args(workload).args(["--cpu", cpu]))?;
            let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json"))?)?;
            for cost in report["program_costs"]
                .as_array()
                .context("no program_costs in the report")?
            {
                let (Some(probe), Some(runs), Some(total)) =
                    (cost["probe"].as_str(), cost["runs"].as_u64(), cost["total_ns"].as_u64())
                else {
                    continue;
                };
                if runs > 0 && probe.starts_with("syscalls:") {
                    per_run
                        .entry((empty, probe.to_owned()))
                        .or_default()
                        .push(total as f64 / runs as f64);
                }
            }
        }
    }
    println!("\n{label}: BPF program cost per run (kernel BPF statistics, {repeats} repeats, medians)");
    println!("{:<32} {:>10} {:>10} {:>10}", "tracepoint", "empty", "real", "added");
    let mut added_per_call = 0.0;
    for probe in ["syscalls:sys_enter_mprotect", "syscalls:sys_exit_mprotect"] {
        let cost = |empty: bool| {
            per_run
                .get(&(empty, probe.to_owned()))
                .map(|values| median(values.clone()))
                .with_context(|| format!("no runs of {probe}"))
        };
        let (empty, real) = (cost(true)?, cost(false)?);
        added_per_call += real - empty;
        println!("{probe:<32} {empty:>8.0}ns {real:>8.0}ns {:>8.0}ns", real - empty);
    }
    // Two calls per iteration; the statistics' own clock reads cancel in the difference.
    let ratio = 1.0 + 2.0 * added_per_call / floor_iteration_ns;
    println!(
        "added per iteration (2 calls): {:.0} ns on the floor's {floor_iteration_ns:.0} ns: traced/floor {ratio:.3}x",
        2.0 * added_per_call
    );
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
