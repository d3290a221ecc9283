//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::probes::plan::BackendChoice;
use crate::workload::WorkloadArgs;

#[derive(Parser, Debug)]
#[command(
    name = "mprotect-trace",
    version,
    about = "Where the time of mprotect() goes inside Linux mm"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Trace mprotect (default: the built-in workload), print the table, write report.json.
    Run(RunArgs),
    /// Run the mprotect toggle workload and print its timings (no BPF, no root).
    Workload(WorkloadArgs),
    /// Print the summary of a saved run (no root needed).
    Report(ReportArgs),
    /// Redraw the plots and report.html of a saved run from its report.json.
    Plot(ReportArgs),
    /// Compare two saved runs (e.g. two kernels) function by function.
    Compare(CompareArgs),
    /// Report what this kernel supports and which probe backend each target would use.
    Doctor(DoctorArgs),
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Another kernel function to check, besides the built-in targets (repeatable).
    #[arg(long = "probe", value_name = "NAME")]
    pub probes: Vec<String>,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Another kernel function to probe (repeatable), e.g. prot_commit_flush_ptes.
    #[arg(long = "probe", value_name = "NAME")]
    pub probes: Vec<String>,
    /// Function probe backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Trace a running process instead of the workload.
    #[arg(short = 'p', long, conflicts_with_all = ["all", "command"])]
    pub pid: Option<u32>,
    /// Trace every task on the system.
    #[arg(short = 'a', long, conflicts_with = "command")]
    pub all: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Print calls and latency per target every SECONDS.
    #[arg(long, value_name = "SECONDS")]
    pub interval: Option<f64>,
    /// Stack samples per second on each CPU.
    #[arg(long, default_value_t = 999, value_name = "HZ")]
    pub sample_hz: u64,
    /// Distinct stacks (and stack pairs) the sampler keeps; samples past a
    /// full map are counted as lost, and the table says so.
    #[arg(long, default_value_t = mprotect_trace_common::STACK_MAP_ENTRIES, value_name = "N")]
    pub max_stacks: u32,
    /// Do not sample stacks (no flame graph).
    #[arg(long)]
    pub no_sample: bool,
    /// Do not attach the syscall tracepoints (no syscall latency, lengths or flags).
    #[arg(long)]
    pub no_syscall: bool,
    /// Attach do-nothing programs to the syscall tracepoints instead: the
    /// floor the overhead benchmark measures against.
    #[arg(long, hide = true)]
    pub empty_programs: bool,
    /// Also run the workload once untraced first, and report how much
    /// tracing perturbed it.
    #[arg(long)]
    pub calibrate: bool,
    /// Measure what each BPF program costs per run, by the kernel's BPF
    /// run-time statistics (on for this run only; they add two clock reads
    /// per program run themselves).
    #[arg(long)]
    pub probe_cost: bool,
    /// Directory for report.json [default: ./mprotect-trace-out/<UTC time>/].
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Trace this command instead of the workload.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run's output directory (or its report.json).
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The baseline run's directory (e.g. the older kernel).
    pub a: PathBuf,
    /// The run compared against it.
    pub b: PathBuf,
    /// Compare even when the workloads differ.
    #[arg(long)]
    pub force: bool,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write comparison.txt, .json and .html, the A/B latency CDFs
    /// and, when both runs sampled stacks, diff-flame.svg here.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}
