//! What each subcommand is asked to do, as plain data: the command line
//! is parsed into these once, and the library never sees the parser.

use std::path::PathBuf;
use std::time::Duration;

use crate::kernel::trace_events::TracepointSpec;
use crate::probes::attach::SplitBy;
use crate::probes::plan::BackendChoice;
use crate::workload::WorkloadOptions;

/// What a run traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceTarget {
    /// The built-in workload, in a child process.
    Workload(WorkloadOptions),
    /// A command, from its first instruction.
    Command(Vec<String>),
    /// A running process.
    Pid(u32),
    /// Every task on the system.
    All,
}

/// How the mprotect syscall itself is traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallTracing {
    Tracepoints,
    /// Do-nothing programs on the same tracepoints: the overhead floor.
    EmptyPrograms,
    Off,
}

/// Where a run learns the inlined instances of targets inlined everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum InlineSitesFrom {
    /// A debug vmlinux of this kernel in the usual places, if one is there.
    #[default]
    UsualPlaces,
    /// `--inline-sites FILE`, written by `mprotect-trace inline-sites`.
    File(PathBuf),
    /// `--vmlinux PATH`: this kernel's debug vmlinux.
    Vmlinux(PathBuf),
}

/// Stack samples per second on each CPU unless `--sample-hz` says otherwise:
/// odd, so the sampler does not tick in step with the kernel's 1000 Hz timer.
pub const DEFAULT_SAMPLE_HZ: u64 = 999;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub target: TraceTarget,
    /// `--only`: these functions instead of the built-in targets.
    pub only: Vec<String>,
    /// Kernel functions to probe besides the built-in targets.
    pub probes: Vec<String>,
    pub backend: BackendChoice,
    pub duration: Option<Duration>,
    /// Print calls and latency per target this often.
    pub interval: Option<Duration>,
    /// Stack samples per second on each CPU; `None`: no sampling.
    pub sample_hz: Option<u64>,
    /// Capacity of the stack and sample-count maps.
    pub max_stacks: u32,
    pub syscall: SyscallTracing,
    /// Run the workload once untraced first.
    pub calibrate: bool,
    /// Report each BPF program's cost by the kernel's statistics.
    pub probe_cost: bool,
    /// `None`: a new `./mprotect-trace-out/<UTC time>/`.
    pub output: Option<PathBuf>,
    /// `output` may hold an earlier run, which this one replaces.
    pub replace: bool,
    /// Print the report as JSON instead of the table.
    pub json: bool,
    /// Print only the summary line on stdout.
    pub quiet: bool,
    /// List the first N kernel functions (default: those of 0.5 % or more).
    pub top: Option<usize>,
    /// Tracepoints to count (`--probe category:name`, `--probe-field`).
    pub tracepoints: Vec<TracepointSpec>,
    /// Break every target's calls and latency down by CPU.
    pub per_cpu: bool,
    pub inline_sites: InlineSitesFrom,
    /// `--split-by`: every target's records kept apart by this value too.
    pub split_by: Option<SplitBy>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            target: TraceTarget::Workload(WorkloadOptions::default()),
            only: Vec::new(),
            probes: Vec::new(),
            backend: BackendChoice::Auto,
            duration: None,
            interval: None,
            sample_hz: Some(DEFAULT_SAMPLE_HZ),
            max_stacks: mprotect_trace_common::STACK_MAP_ENTRIES,
            syscall: SyscallTracing::Tracepoints,
            calibrate: false,
            probe_cost: false,
            output: None,
            replace: false,
            json: false,
            quiet: false,
            top: None,
            tracepoints: Vec::new(),
            per_cpu: false,
            inline_sites: InlineSitesFrom::UsualPlaces,
            split_by: None,
        }
    }
}

impl RunOptions {
    /// Refuses what no run can do, before anything is created or attached.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_stacks == 0 {
            anyhow::bail!("--max-stacks must be at least 1 (got 0)");
        }
        if self.sample_hz == Some(0) {
            anyhow::bail!("--sample-hz must be at least 1 (got 0); use --no-sample to turn sampling off");
        }
        for (flag, value) in [("--duration", self.duration), ("--interval", self.interval)] {
            if value.is_some_and(|d| d.is_zero()) {
                anyhow::bail!("{flag} must be more than 0 seconds");
            }
        }
        if self.backend == BackendChoice::NoFunctions && !self.only.is_empty() {
            anyhow::bail!(
                "--only {} needs a function probe, and --backend none attaches none: drop one of them",
                self.only[0]
            );
        }
        if self.backend == BackendChoice::NoFunctions && !self.probes.is_empty() {
            anyhow::bail!(
                "--probe {} needs a function probe, and --backend none attaches none: drop one of them",
                self.probes[0]
            );
        }
        if self.split_by.is_some() && self.backend == BackendChoice::NoFunctions {
            anyhow::bail!(
                "--split-by splits the function probes' records, and --backend none attaches none: drop one of them"
            );
        }
        if self.calibrate && !matches!(self.target, TraceTarget::Workload(_)) {
            anyhow::bail!("--calibrate needs the built-in workload (not -p, -a or -- CMD)");
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
pub struct DoctorOptions {
    /// Kernel functions to check besides the built-in targets.
    pub probes: Vec<String>,
    pub json: bool,
}

#[derive(Clone, Debug, Default)]
pub struct WorkloadCommandOptions {
    pub workload: WorkloadOptions,
    pub json: bool,
    /// Wait for a byte on stdin before the first measured call (a tracer
    /// attaches in between), and for stdin to close before exiting.
    pub wait_for_start: bool,
}

/// How `report` and `compare` print their result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrintFormat {
    /// The wide text tables.
    #[default]
    Text,
    /// At most 80 columns of plain text, for a mail.
    Mail,
    Json,
}

#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Each side a run directory or a directory of runs; the first is the baseline.
    pub sides: Vec<PathBuf>,
    /// Compare even when the workloads differ.
    pub force: bool,
    pub format: PrintFormat,
    /// Where to write comparison.txt, .json, .html and the plots.
    pub output: Option<PathBuf>,
    /// Debug vmlinux files, each applied to the runs of its kernel.
    pub vmlinux: Vec<PathBuf>,
}

/// `ab`: configurations run in interleaved order, then compared.
#[derive(Clone, Debug)]
pub struct AbOptions {
    /// One configuration per side; the first is the baseline.
    pub sides: Vec<RunOptions>,
    /// Runs per side.
    pub repeat: std::num::NonZeroU32,
    /// Each side's runs go to `DIR/a/run-01`, ...; the comparison to `DIR`.
    pub output: PathBuf,
    pub json: bool,
}

/// `fleet run`: one invocation on every host of an Ansible inventory.
#[derive(Clone, Debug)]
pub struct FleetRunOptions {
    pub inventory: PathBuf,
    /// Where each host's results go (DIR/<host>/), with the playbook and the fleet report.
    pub output: PathBuf,
    /// The tracer copied to the hosts [default: this binary].
    pub tracer: Option<PathBuf>,
    /// Seconds the invocation may take on a host.
    pub time_limit_s: u64,
    /// Arguments given to `ansible-playbook` as they are (`--forks 10`, `--limit web`).
    pub ansible_args: Vec<String>,
    /// The invocation: `ab ...`, `run --repeat N ...` or `lab ...`, without -o.
    pub args: Vec<String>,
}

/// `report DIR`: a saved run's summary printed again.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// A run's directory or its report.json.
    pub path: PathBuf,
    /// List the first N kernel functions (default: those of 0.5 % or more).
    pub top: Option<usize>,
    pub format: PrintFormat,
    /// The run's kernel's debug vmlinux.
    pub vmlinux: Option<PathBuf>,
}

/// `plot DIR`: a saved run's plots, flame graph and report.html drawn again.
#[derive(Clone, Debug)]
pub struct PlotOptions {
    pub path: PathBuf,
    pub vmlinux: Option<PathBuf>,
}

/// `inline-sites --vmlinux PATH`: where the targets are inlined.
#[derive(Clone, Debug)]
pub struct InlineSitesOptions {
    pub vmlinux: PathBuf,
    /// Functions to place besides the built-in targets.
    pub probes: Vec<String>,
    /// The sites file to write, for `run --inline-sites`.
    pub output: Option<PathBuf>,
    pub json: bool,
}

/// `fleet report DIR`: one row per host of a fleet run.
#[derive(Clone, Debug)]
pub struct FleetReportOptions {
    /// The -o DIR of `fleet run`.
    pub dir: PathBuf,
    /// Where the report's files go [default: `dir`].
    pub output: Option<PathBuf>,
    pub format: PrintFormat,
}
