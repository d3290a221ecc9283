//! `cargo xtask bench`: timings, not tests. Runs the tool's workload and an
//! independent C loop of the same shape interleaved, and prints the
//! medians and their ratio, measured in one run.

use std::collections::HashMap;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::command::{cargo, output_of, release_binary, run_checked, workspace_root};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// The C-loop and overhead suites.
    All,
    /// The workload against the independent C loop.
    CLoop,
    /// Tracing overhead, untraced vs each tracing mode.
    Overhead,
    /// Startup: attach time, wall time and peak RSS against bpftrace.
    Startup,
    /// In Debian's 7.x guest under TCG icount: startup, per-call cost and
    /// the workload, untraced, traced by us and by bpftrace.
    Guest,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmarks to run.
    #[arg(default_value = "all")]
    suite: Suite,
    /// Interleaved repeats of each program.
    #[arg(long, default_value_t = 9)]
    repeats: usize,
    #[arg(long, default_value_t = 64)]
    mapping_mb: u64,
    #[arg(long, default_value_t = 200)]
    iterations: u64,
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// CPU both programs are pinned to: a run that migrates between CPUs
    /// mid-loop pays TLB-flush IPIs and lands in a second, ~40 % slower mode.
    #[arg(long, default_value_t = 0)]
    cpu: usize,
}

const METRICS: [&str; 4] = [
    "protect_ns_per_page",
    "restore_ns_per_page",
    "post_touch_ns_per_page",
    "iteration_ns_per_page",
];

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.suite == Suite::Startup {
        return crate::startup::run(args.repeats);
    }
    if args.suite == Suite::Guest {
        return crate::bench_guest::run(args.repeats);
    }
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    if args.suite != Suite::CLoop {
        crate::overhead::run(args.repeats, args.cpu)?;
    }
    if args.suite == Suite::Overhead {
        return Ok(());
    }
    let tool = release_binary()?;
    let c_loop = build_c_loop()?;
    let (mapping_mb, iterations, warmup, cpu) = (
        args.mapping_mb.to_string(),
        args.iterations.to_string(),
        args.warmup.to_string(),
        args.cpu.to_string(),
    );
    let mut c_runs = Vec::new();
    let mut tool_runs = Vec::new();
    for repeat in 0..args.repeats {
        eprintln!("repeat {}/{}", repeat + 1, args.repeats);
        let mut c_command = Command::new("taskset");
        c_command
            .args(["-c", &cpu])
            .arg(&c_loop)
            .args([&mapping_mb, &iterations, &warmup]);
        c_runs.push(result_fields(&output_of(&mut c_command)?)?);
        let mut tool_command = Command::new(&tool);
        tool_command.args([
            "workload",
            "--scenario",
            "shared-dirty-toggle",
            "--mapping-mb",
            &mapping_mb,
            "--iterations",
            &iterations,
            "--warmup",
            &warmup,
            "--cpu",
            &cpu,
        ]);
        tool_runs.push(result_fields(&output_of(&mut tool_command)?)?);
    }
    println!(
        "shared-dirty-toggle {mapping_mb} MiB, {iterations} iterations, {warmup} warmup, {} interleaved repeats on CPU {cpu} (medians)",
        args.repeats
    );
    println!(
        "{:<24} {:>10} {:>16} {:>8} {:>16}",
        "metric (ns/page)", "C loop", "mprotect-trace", "ratio", "pairwise ratio"
    );
    for metric in METRICS {
        let c = median(c_runs.iter().map(|run| run[metric]).collect());
        let tool = median(tool_runs.iter().map(|run| run[metric]).collect());
        let pairwise = median(
            c_runs
                .iter()
                .zip(&tool_runs)
                .map(|(c, t)| t[metric] / c[metric])
                .collect(),
        );
        println!("{metric:<24} {c:>10.2} {tool:>16.2} {:>8.3} {pairwise:>16.3}", tool / c);
    }
    Ok(())
}

fn build_c_loop() -> Result<std::path::PathBuf> {
    let root = workspace_root();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let binary = out_dir.join("toggle");
    run_checked(
        Command::new("gcc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&binary)
            .arg(root.join("benches/toggle.c")),
    )?;
    Ok(binary)
}

/// The numeric fields of the `result key=value ...` line.
pub fn result_fields(stdout: &str) -> Result<HashMap<String, f64>> {
    let Some(line) = stdout.lines().find_map(|line| line.strip_prefix("result ")) else {
        bail!("no result line in {stdout:?}");
    };
    Ok(line
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .filter_map(|(key, value)| Some((key.to_owned(), value.parse().ok()?)))
        .collect())
}

pub fn median(values: Vec<f64>) -> f64 {
    // No values: nothing was measured, which reads as NaN in the tables.
    mprotect_trace::statistics::median(&values).unwrap_or(f64::NAN)
}
