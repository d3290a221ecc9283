//! Command-line arguments, and their conversion into the library's plain
//! option structs (done once, here; the library never sees clap).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mprotect_trace::bisect::{self, BisectOptions, Direction, Source as BisectSource, metric::Metric};
use mprotect_trace::commands;
use mprotect_trace::kernel::trace_events::{self, TracepointSpec};
use mprotect_trace::lab::{self, AccelChoice, LabOptions};
use mprotect_trace::options::{
    AbOptions, CompareOptions, DoctorOptions, FleetReportOptions, FleetRunOptions, InlineSitesFrom, InlineSitesOptions,
    PlotOptions, PrintFormat, ReportOptions, RunOptions, SyscallTracing, TraceTarget, WorkloadCommandOptions,
};
use mprotect_trace::probes::attach::SplitBy;
use mprotect_trace::probes::backend;
use mprotect_trace::probes::plan::BackendChoice;
use mprotect_trace::vm::Accel;
use mprotect_trace::workload::{Scenario, WorkloadOptions};

#[derive(Parser, Debug)]
#[command(
    name = "mprotect-trace",
    version,
    about = "Where the time of mprotect() goes inside Linux mm"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Trace mprotect (default: the built-in workload), print the table, write report.json.
    #[command(
        after_help = "Examples:\n  mprotect-trace run\n  mprotect-trace run --scenario thp-toggle --iterations 50 -o thp\n  mprotect-trace run --backend none --sample-hz 9999\n  mprotect-trace run --repeat 5 -o runs -- ./my-test 64"
    )]
    #[command(mut_arg("json", |arg| arg.help("Print the whole report as JSON instead of the table and the `result` line (the same as --format json)")))]
    Run(RunArgs),
    /// Run the mprotect toggle workload and print its timings (no BPF, no root).
    #[command(after_help = "Examples:\n  mprotect-trace workload --mapping-mb 16 --iterations 100")]
    #[command(mut_arg("json", |arg| arg.help("Print the result as JSON instead of the `result` line (the same as --format json)")))]
    Workload(WorkloadCommandArgs),
    /// Print the summary of a saved run (no root needed).
    #[command(
        after_help = "Examples:\n  mprotect-trace report out --top 20\n  mprotect-trace report out --format mail"
    )]
    Report(ReportArgs),
    /// Redraw the plots, flame graph and report.html of a saved run from its report.json.
    #[command(after_help = "Examples:\n  mprotect-trace plot out --vmlinux /usr/lib/debug/boot/vmlinux-$(uname -r)")]
    Plot(PlotArgs),
    /// Run two configurations in interleaved order (A B A B ...), N runs each, and compare them.
    #[command(after_help = "Examples:\n  mprotect-trace ab --repeat 5 --b \"--no-touch\" -o ab")]
    #[command(mut_arg("json", |arg| arg.help("Print the comparison as JSON (the same as --format json)")))]
    Ab(AbArgs),
    /// Compare saved runs (e.g. two kernels), one or many runs a side, function by function.
    #[command(
        after_help = "Examples:\n  mprotect-trace compare old-kernel/ new-kernel/ -o cmp\n  mprotect-trace compare a b --format mail"
    )]
    Compare(CompareArgs),
    /// Report what this kernel supports and which probe backend each target would use.
    #[command(after_help = "Examples:\n  mprotect-trace doctor\n  mprotect-trace doctor --probe tlb:tlb_flush --json")]
    #[command(mut_arg("json", |arg| arg.help("Print the findings as JSON (the same as --format json)")))]
    Doctor(DoctorArgs),
    /// Where the targets are inlined in a kernel, from its debug vmlinux:
    /// the sites file `run --inline-sites` probes them with.
    #[command(after_help = "Examples:\n  mprotect-trace inline-sites --vmlinux vmlinux-7.3.4 -o sites.json")]
    #[command(mut_arg("json", |arg| arg.help("Print the sites file instead of the text (the same as --format json)")))]
    InlineSites(InlineSitesArgs),
    /// Boot several kernels under QEMU, run the traced workload in each in
    /// interleaved repeats, and compare them function by function.
    #[command(
        after_help = "Examples:\n  mprotect-trace lab --kernel debian:6.12 --kernel debian:7.3 --accel tcg-icount --repeat 4 --run \"--backend none\" -o lab\n  mprotect-trace lab --kernel tree:~/linux@v6.16 --kernel tree:~/linux@v6.17 -o lab"
    )]
    #[command(mut_arg("json", |arg| arg.help("Print the lab's summary as JSON (the same as --format json)")))]
    Lab(LabArgs),
    /// Find the commit (or kernel) that made mprotect slower: each step
    /// builds and boots a revision and decides it with a rank test
    /// against the good and bad revisions' runs.
    #[command(
        after_help = "Examples:\n  mprotect-trace bisect --tree ~/linux --good v6.16 --bad v6.17 --accel tcg-icount --run \"--backend none\" -o bisect\n  mprotect-trace bisect --kernel old.bzImage --kernel mid.bzImage --kernel new.bzImage -o bisect"
    )]
    #[command(mut_arg("json", |arg| arg.help("Print the bisect's record as JSON (the same as --format json)")))]
    Bisect(BisectArgs),
    /// Decide one revision against a bisect's stored endpoints, for
    /// `git bisect run`: exit 0 like good, 1 like bad, 125 skip, 128 error.
    #[command(
        after_help = "Examples:\n  mprotect-trace bisect --tree ~/linux --good v6.16 --bad v6.17 --endpoints-only -o ends\n  git bisect start v6.17 v6.16 && git bisect run mprotect-trace bisect-step ends"
    )]
    BisectStep(BisectStepArgs),
    /// The same `ab`, `run --repeat` or `lab` on every host of an Ansible
    /// inventory, and one table of their results.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  mprotect-trace fleet run -i hosts.ini -o fleet -- ab --repeat 5 --b \"--no-touch\"\n  mprotect-trace fleet report fleet"
    )]
    Fleet(FleetCommand),
    /// Write the man pages (one per subcommand) or print a shell's
    /// completions, from these very definitions.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  mprotect-trace generate man /usr/local/share/man/man1\n  mprotect-trace generate completions bash > /etc/bash_completion.d/mprotect-trace"
    )]
    Generate(GenerateCommand),
}

#[derive(Subcommand, Debug)]
enum GenerateCommand {
    /// Write mprotect-trace.1 and mprotect-trace-SUBCOMMAND.1 into DIR.
    Man {
        /// Directory for the pages (e.g. /usr/local/share/man/man1).
        dir: PathBuf,
    },
    /// Print the completion script of SHELL on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `generate`: the man pages or a completion script.
fn generate(what: GenerateCommand) -> Result<ExitCode> {
    let mut command = <Cli as clap::CommandFactory>::command();
    match what {
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir).map_err(|err| anyhow!("creating {}: {err}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .map_err(|err| anyhow!("writing the man pages in {}: {err}", dir.display()))?;
        }
        GenerateCommand::Completions { shell } => {
            clap_complete::generate(shell, &mut command, "mprotect-trace", &mut std::io::stdout());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
enum FleetCommand {
    /// Write the playbook, run it with ansible-playbook on the inventory's
    /// hosts, fetch each host's results into DIR/<host>/, print the table.
    Run(FleetRunArgs),
    /// One row per host of a fleet run: CPU, kernel, B/A with its interval
    /// and verdict; writes fleet.txt, fleet-mail.txt, fleet.json, fleet.html.
    Report(FleetReportArgs),
    /// Print the playbook `fleet run` runs (deploy/ansible/fleet.yml), to run it by hand.
    Playbook,
}

#[derive(Args, Debug)]
struct FleetRunArgs {
    /// The Ansible inventory of the hosts (connect as root, or set ansible_become).
    #[arg(short = 'i', long, value_name = "FILE")]
    inventory: PathBuf,
    /// Directory for each host's results (DIR/<host>/), the playbook and the report.
    #[arg(short = 'o', long, value_name = "DIR")]
    output: PathBuf,
    /// The tracer copied to the hosts [default: this binary].
    #[arg(long, value_name = "PATH")]
    tracer: Option<PathBuf>,
    /// Seconds the invocation may take on a host; a host past it fails with that error.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS", value_parser = whole::<u64>)]
    time_limit: u64,
    /// One argument for ansible-playbook (repeatable), e.g. --ansible-arg=--forks=20.
    #[arg(long = "ansible-arg", allow_hyphen_values = true, value_name = "ARG")]
    ansible_args: Vec<String>,
    /// The invocation, e.g. -- ab --repeat 5 --b "--no-touch" (without -o).
    #[arg(last = true, required = true, value_name = "INVOCATION")]
    args: Vec<String>,
}

#[derive(Args, Debug)]
struct FleetReportArgs {
    /// The -o DIR of `fleet run`: one directory per host.
    dir: PathBuf,
    /// Write the report's files here [default: DIR].
    #[arg(short = 'o', long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// text: the table; mail: at most 80 columns; json: for machines.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
}

impl Cli {
    pub fn dispatch(self) -> Result<ExitCode> {
        if self.command.restores_nothing() {
            die_quietly_on_a_closed_pipe();
        }
        match self.command {
            Command::Run(args) => {
                let repeat = runs(args.repeat)?;
                commands::run(args.into_options()?, repeat)
            }
            Command::Ab(args) => commands::ab(&args.into_options()?),
            Command::Lab(args) if args.print_config => commands::lab_config(),
            Command::Lab(args) => commands::lab(&args.into_options()?),
            Command::Bisect(args) => {
                // The words after `bisect`, kept for bisect-step and resuming.
                let invocation: Vec<String> = std::env::args().skip_while(|a| a != "bisect").skip(1).collect();
                commands::bisect(&args.into_options(invocation)?)
            }
            Command::BisectStep(args) => Ok(commands::bisect_step(stored_bisect(&args.dir), args.rev.as_deref())),
            Command::Generate(what) => generate(what),
            Command::Workload(args) => commands::workload(&WorkloadCommandOptions {
                workload: args.workload.into_options(),
                json: args.format.json(),
                wait_for_start: args.wait_for_start,
            }),
            Command::Report(args) => commands::report(&ReportOptions {
                format: if args.json {
                    PrintFormat::Json
                } else {
                    args.format.into()
                },
                path: args.dir,
                top: args.top,
                vmlinux: args.vmlinux,
            }),
            Command::Plot(args) => commands::plot(&PlotOptions {
                path: args.dir,
                vmlinux: args.vmlinux,
            }),
            Command::Compare(args) => commands::compare(&CompareOptions {
                sides: args.sides,
                force: args.force,
                format: if args.json {
                    PrintFormat::Json
                } else {
                    args.format.into()
                },
                output: args.output,
                vmlinux: args.vmlinux,
            }),
            Command::InlineSites(args) => commands::inline_sites(&InlineSitesOptions {
                json: args.format.json(),
                vmlinux: args.vmlinux,
                probes: args.probes,
                output: args.output,
            }),
            Command::Fleet(FleetCommand::Run(args)) => commands::fleet_run(&FleetRunOptions {
                inventory: args.inventory,
                output: args.output,
                tracer: args.tracer,
                time_limit_s: args.time_limit,
                ansible_args: args.ansible_args,
                args: args.args,
            }),
            Command::Fleet(FleetCommand::Report(args)) => commands::fleet_report(&FleetReportOptions {
                dir: args.dir,
                output: args.output,
                format: args.format.into(),
            }),
            Command::Fleet(FleetCommand::Playbook) => commands::fleet_playbook(),
            Command::Doctor(args) => commands::doctor(&DoctorOptions {
                probes: args.probes,
                json: args.format.json(),
            }),
        }
    }
}

impl Command {
    /// Subcommands that change no system state (no probes, no THP knobs):
    /// they may simply die when their reader goes away.
    fn restores_nothing(&self) -> bool {
        matches!(
            self,
            Command::Report(_)
                | Command::Plot(_)
                | Command::Compare(_)
                | Command::Doctor(_)
                | Command::InlineSites(_)
                | Command::Fleet(FleetCommand::Report(_) | FleetCommand::Playbook)
                | Command::Generate(_)
        )
    }
}

/// Rust ignores SIGPIPE; the default lets `report DIR | head` end quietly
/// when head closes the pipe, as Unix tools do, instead of panicking on
/// the next print. Not for `run` or `workload`: a process that must
/// restore THP knobs cannot be killed by a closed pipe.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default, before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `--scenario`: every scenario by its name, with its one-line help.
fn scenario_parser() -> impl clap::builder::TypedValueParser<Value = Scenario> {
    let values = Scenario::ALL.map(|scenario| PossibleValue::new(scenario.name()).help(scenario.help()));
    PossibleValuesParser::new(values)
        .try_map(|name| Scenario::from_name(&name).ok_or_else(|| format!("unknown scenario {name}")))
}

/// `--backend`: auto, or one of the function-probe backends by name.
fn backend_parser() -> impl clap::builder::TypedValueParser<Value = BackendChoice> {
    let names = ["auto", "none"]
        .into_iter()
        .chain(backend::ALL.iter().map(|b| b.kind().label()));
    PossibleValuesParser::new(names).try_map(|name| match name.as_str() {
        "auto" => Ok(BackendChoice::Auto),
        "none" => Ok(BackendChoice::NoFunctions),
        name => backend::named(name)
            .map(|b| BackendChoice::Only(b.kind()))
            .ok_or_else(|| format!("unknown backend {name}")),
    })
}

/// A whole number flag: what a negative or fractional value gets told
/// (clap's own parser says "invalid digit found in string").
fn whole<T: std::str::FromStr>(text: &str) -> std::result::Result<T, String> {
    text.parse().map_err(|_| "must be a whole number, 0 or more".to_owned())
}

/// A whole number flag that counts something there must be one of
/// (iterations, threads, samples a second): told so, as the check after
/// the parser refuses 0 ("--iterations must be at least 1 (got 0)").
fn count<T: std::str::FromStr>(text: &str) -> std::result::Result<T, String> {
    text.parse().map_err(|_| "must be a whole number, 1 or more".to_owned())
}

/// The workload's options, shared by `workload` and `run`.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Workload")]
struct WorkloadArgs {
    /// Shape of the workload.
    #[arg(long, value_parser = scenario_parser(), default_value = WorkloadOptions::DEFAULT.scenario.name())]
    scenario: Scenario,
    /// Size of each mapping in MiB [default: 64; 4 for region-toggle and each mprot-tw4m region].
    #[arg(long, value_parser = count::<u64>)]
    mapping_mb: Option<u64>,
    /// mprot-tw4m: 4 MiB regions (libMicro's -B 10), each a batch's call.
    #[arg(long, default_value_t = WorkloadOptions::DEFAULT.regions, value_name = "N", value_parser = count::<u64>)]
    regions: u64,
    /// Measured iterations per round (mprot-tw4m: batches).
    #[arg(long, default_value_t = WorkloadOptions::DEFAULT.iterations, value_parser = count::<u64>)]
    iterations: u64,
    /// Unmeasured iterations before the measured ones, each round.
    #[arg(long, default_value_t = WorkloadOptions::DEFAULT.warmup, value_parser = whole::<u64>)]
    warmup: u64,
    /// Rounds, each on a freshly mapped and prefaulted range.
    #[arg(long, default_value_t = WorkloadOptions::DEFAULT.rounds, value_parser = count::<u64>)]
    rounds: u64,
    /// Pin every workload thread to this CPU.
    #[arg(long, value_parser = whole::<usize>)]
    cpu: Option<usize>,
    /// Threads, each toggling its own mapping.
    #[arg(long, default_value_t = WorkloadOptions::DEFAULT.threads, value_parser = count::<u64>)]
    threads: u64,
    /// Do not touch the pages after each toggle.
    #[arg(long)]
    no_touch: bool,
    /// Back the mapping with large folios of this size (multi-size THP, e.g. 16, 64).
    ///
    /// Sets that size's knob to always and the others to never for the run (root), restored after.
    /// Shared or private dirty toggle.
    #[arg(long, value_name = "KB", value_parser = count::<u64>)]
    folio_kb: Option<u64>,
    /// After each iteration, outside the timed windows, spin a random time below this many µs.
    ///
    /// A sampler with a fixed period then cannot lock onto the loop, as it does under deterministic
    /// time (QEMU -icount).
    #[arg(long, default_value_t = WorkloadOptions::DEFAULT.dither_us, value_name = "US", value_parser = whole::<u64>)]
    dither_us: u64,
}

impl WorkloadArgs {
    fn into_options(self) -> WorkloadOptions {
        WorkloadOptions {
            scenario: self.scenario,
            mapping_mb: self.mapping_mb,
            iterations: self.iterations,
            warmup: self.warmup,
            rounds: self.rounds,
            cpu: self.cpu,
            threads: self.threads,
            touch: !self.no_touch,
            folio_kb: self.folio_kb,
            dither_us: self.dither_us,
            regions: self.regions,
        }
    }
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct WorkloadCommandArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    format: TextOrJson,
    /// Set everything up, then wait for a byte on stdin before the first measured call.
    ///
    /// A tracer attaches in between, so it counts exactly the workload's own mprotect() calls.
    #[arg(long, hide = true)]
    wait_for_start: bool,
}

#[derive(Args, Debug)]
struct InlineSitesArgs {
    /// A kernel's debug vmlinux (Debian: linux-image-<version>-dbg).
    #[arg(long, value_name = "PATH")]
    vmlinux: PathBuf,
    /// Another function to place, besides the built-in targets (repeatable).
    #[arg(long = "probe", value_name = "NAME")]
    probes: Vec<String>,
    /// Write the sites file here (for `run --inline-sites`).
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    format: TextOrJson,
}

#[derive(Args, Debug)]
struct DoctorArgs {
    /// A kernel function or tracepoint (category:name) to check, besides the built-in targets (repeatable).
    #[arg(long = "probe", value_name = "NAME")]
    probes: Vec<String>,
    #[command(flatten)]
    format: TextOrJson,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct RunArgs {
    /// Trace a running process instead of the workload.
    #[arg(short = 'p', long, conflicts_with_all = ["all", "command"], value_parser = whole::<u32>, help_heading = "What to trace")]
    pid: Option<u32>,
    /// Trace every task on the system.
    #[arg(short = 'a', long, conflicts_with = "command", help_heading = "What to trace")]
    all: bool,
    /// Trace this command instead of the workload.
    #[arg(last = true, value_name = "CMD", help_heading = "What to trace")]
    command: Vec<String>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS", help_heading = "What to trace")]
    duration: Option<f64>,
    /// Make N runs, each into its own directory DIR/run-NN: one side for `compare`.
    ///
    /// Each run is a fresh workload (or command).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = count::<u32>, help_heading = "What to trace")]
    repeat: u32,
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    format: TextOrJson,
    /// Print only the summary line on stdout.
    ///
    /// The workload's ns/page and the syscall's calls, p50 and p99; stderr keeps the attached
    /// line, where the report went, warnings and errors.
    #[arg(short = 'q', long, conflicts_with_all = ["json", "format_choice", "interval"], help_heading = "Output")]
    quiet: bool,
    /// Trace only this kernel function, not the built-in targets (repeatable).
    ///
    /// A built-in target keeps what it records (nr_ptes, pages changed); the cheap plan when a
    /// target's probes cost too much, e.g. --only change_pte_range without the per-PTE call sites.
    #[arg(long = "only", value_name = "NAME", help_heading = "Probes")]
    only: Vec<String>,
    /// Another kernel function to probe, or a tracepoint to count (repeatable).
    ///
    /// E.g. prot_commit_flush_ptes, or tlb:tlb_flush.
    #[arg(long = "probe", value_name = "NAME", help_heading = "Probes")]
    probes: Vec<String>,
    /// Count a tracepoint's events by the value of one integer field (repeatable).
    ///
    /// E.g. tlb:tlb_flush:reason; one field an event.
    #[arg(long = "probe-field", value_name = "CATEGORY:NAME:FIELD", help_heading = "Probes")]
    probe_fields: Vec<String>,
    /// Break every target's calls and latency down by CPU.
    #[arg(long, help_heading = "Probes")]
    per_cpu: bool,
    /// Also keep every function target's calls, latency and nr_ptes apart by this value.
    ///
    /// cp_flags: change_protection's MM_CP_* flags, read at its entry (fentry or kprobe), for every
    /// call inside it too: mprotect's calls, NUMA hinting's (MM_CP_PROT_NUMA) and userfaultfd's
    /// (MM_CP_UFFD_WP*) apart, one table row each.
    #[arg(long, value_enum, value_name = "VALUE", help_heading = "Probes")]
    split_by: Option<SplitByArg>,
    /// Where targets inlined everywhere are probed.
    ///
    /// A file written by `mprotect-trace inline-sites` for this kernel (for a machine with no room
    /// for its debug vmlinux).
    #[arg(long, value_name = "FILE", conflicts_with = "vmlinux", help_heading = "Probes")]
    inline_sites: Option<PathBuf>,
    /// This kernel's debug vmlinux (default: found by build id in the usual places).
    ///
    /// Targets inlined everywhere are probed at each inlined instance.
    #[arg(long, value_name = "PATH", help_heading = "Probes")]
    vmlinux: Option<PathBuf>,
    /// Function probe backend; none: the syscall tracepoints and sampling only.
    ///
    /// none has no function probe's cost in the times.
    #[arg(long, value_parser = backend_parser(), default_value = "auto", help_heading = "Probes")]
    backend: BackendChoice,
    /// Print calls and latency per target every SECONDS.
    #[arg(long, value_name = "SECONDS", help_heading = "Output")]
    interval: Option<f64>,
    /// Stack samples per second on each CPU.
    #[arg(long, default_value_t = mprotect_trace::options::DEFAULT_SAMPLE_HZ, value_name = "HZ", value_parser = count::<u64>, help_heading = "Sampling")]
    sample_hz: u64,
    /// Distinct stacks (and stack pairs) the sampler keeps.
    ///
    /// Samples past a full map are counted as lost, and the table says so.
    #[arg(long, default_value_t = mprotect_trace_common::STACK_MAP_ENTRIES, value_name = "N", value_parser = count::<u32>, help_heading = "Sampling")]
    max_stacks: u32,
    /// Do not sample stacks (no flame graph).
    #[arg(long, help_heading = "Sampling")]
    no_sample: bool,
    /// Do not attach the syscall tracepoints (no syscall latency, lengths or flags).
    #[arg(long, help_heading = "Probes")]
    no_syscall: bool,
    /// Attach do-nothing programs to the syscall tracepoints instead.
    ///
    /// The floor the overhead benchmark measures against.
    #[arg(long, hide = true)]
    empty_programs: bool,
    /// Also run the workload once untraced first, and report how much
    /// tracing perturbed it.
    #[arg(long, help_heading = "Workload")]
    calibrate: bool,
    /// Measure what each BPF program costs per run (the kernel's BPF run-time statistics).
    ///
    /// On for this run only; they add two clock reads per program run themselves.
    #[arg(long, help_heading = "Probes")]
    probe_cost: bool,
    /// Directory for report.json, absent or empty [default: a new
    /// ./mprotect-trace-out/<UTC time>/].
    #[arg(short = 'o', long, value_name = "DIR", help_heading = "Output")]
    output: Option<PathBuf>,
    /// -o DIR holds an earlier run: replace it (its files are removed).
    #[arg(long, help_heading = "Output")]
    replace: bool,
    /// List the first N kernel functions by total share [default: those of 0.5 % or more].
    #[arg(long, value_name = "N", value_parser = whole::<usize>, help_heading = "Output")]
    top: Option<usize>,
}

/// `--split-by`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum SplitByArg {
    #[value(name = "cp_flags")]
    CpFlags,
}

/// Seconds as a duration; what no duration can be is an error naming the flag.
fn seconds(flag: &str, value: Option<f64>) -> Result<Option<Duration>> {
    value
        .map(|s| {
            if s <= 0.0 {
                return Err(anyhow!("{flag} must be more than 0 seconds (got {s})"));
            }
            Duration::try_from_secs_f64(s).map_err(|_| anyhow!("{flag} must be a number of seconds (got {s})"))
        })
        .transpose()
}

impl RunArgs {
    fn into_options(self) -> Result<RunOptions> {
        let target = if !self.command.is_empty() {
            TraceTarget::Command(self.command)
        } else if let Some(pid) = self.pid {
            TraceTarget::Pid(pid)
        } else if self.all {
            TraceTarget::All
        } else {
            TraceTarget::Workload(self.workload.into_options())
        };
        let (tracepoints, functions): (Vec<String>, Vec<String>) = self
            .probes
            .into_iter()
            .partition(|probe| TracepointSpec::is_tracepoint(probe));
        let tracepoints = trace_events::merge_specs(
            tracepoints
                .iter()
                .map(|text| TracepointSpec::parse_event(text))
                .collect::<Result<_>>()?,
            self.probe_fields
                .iter()
                .map(|text| TracepointSpec::parse_field(text))
                .collect::<Result<_>>()?,
        )?;
        Ok(RunOptions {
            target,
            only: self.only,
            probes: functions,
            tracepoints,
            per_cpu: self.per_cpu,
            split_by: self.split_by.map(|SplitByArg::CpFlags| SplitBy::CpFlags),
            inline_sites: match (self.inline_sites, self.vmlinux) {
                (Some(file), _) => InlineSitesFrom::File(file),
                (None, Some(path)) => InlineSitesFrom::Vmlinux(path),
                (None, None) => InlineSitesFrom::UsualPlaces,
            },
            backend: self.backend,
            duration: seconds("--duration", self.duration)?,
            interval: seconds("--interval", self.interval)?,
            sample_hz: (!self.no_sample).then_some(self.sample_hz),
            max_stacks: self.max_stacks,
            syscall: match (self.no_syscall, self.empty_programs) {
                (true, _) => SyscallTracing::Off,
                (false, true) => SyscallTracing::EmptyPrograms,
                (false, false) => SyscallTracing::Tracepoints,
            },
            calibrate: self.calibrate,
            probe_cost: self.probe_cost,
            output: self.output,
            replace: self.replace,
            json: self.format.json(),
            quiet: self.quiet,
            top: self.top,
        })
    }
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// A run's output directory (or its report.json).
    dir: PathBuf,
    /// List the first N kernel functions by total share [default: those of 0.5 % or more].
    #[arg(long, value_name = "N", value_parser = whole::<usize>)]
    top: Option<usize>,
    /// text: the table and the `result` line; mail: 80 columns; json: report.json.
    ///
    /// mail adds latency percentiles and text histograms.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// Print report.json (the same as --format json), as `run --json` does.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// The run's kernel's debug vmlinux (its build id must match).
    ///
    /// Inlined functions get their own shares, hot spots their source lines.
    #[arg(long, value_name = "PATH")]
    vmlinux: Option<PathBuf>,
}

/// `--format` of `report` and `compare`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Text,
    Mail,
    Json,
}

impl From<FormatArg> for PrintFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Text => PrintFormat::Text,
            FormatArg::Mail => PrintFormat::Mail,
            FormatArg::Json => PrintFormat::Json,
        }
    }
}

/// `--format text|json` of the subcommands with no mail form, and `--json`
/// kept as its alias.
#[derive(Args, Debug)]
#[command(next_help_heading = "Output")]
struct TextOrJson {
    /// text: for people; json: the same for machines.
    #[arg(long = "format", value_name = "FORMAT", value_enum, default_value_t = TextOrJsonArg::Text)]
    format_choice: TextOrJsonArg,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format_choice")]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TextOrJsonArg {
    Text,
    Json,
}

impl TextOrJson {
    fn json(&self) -> bool {
        self.json || self.format_choice == TextOrJsonArg::Json
    }
}

/// A count of runs (`--repeat`): 0 is refused here, once for every
/// subcommand, in the one line the checks after the parser use.
fn runs(value: u32) -> Result<NonZeroU32> {
    NonZeroU32::new(value).ok_or_else(|| anyhow!("--repeat must be at least 1 (got 0)"))
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// A run's output directory (or its report.json).
    dir: PathBuf,
    /// The run's kernel's debug vmlinux (its build id must match).
    ///
    /// Inlined functions become frames of the flame graph.
    #[arg(long, value_name = "PATH")]
    vmlinux: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Two or more sides, the first the baseline (e.g. the older kernel).
    ///
    /// Each a run's directory, or a directory of runs (`run --repeat N -o DIR`).
    #[arg(num_args = 2.., required = true, value_name = "SIDE")]
    sides: Vec<PathBuf>,
    /// Compare even when the sides' settings differ.
    #[arg(long)]
    force: bool,
    /// Print the comparison as JSON (the same as --format json).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// text: the wide tables; mail: 80 columns; json: for machines.
    ///
    /// mail adds each side's latency percentiles and text histograms.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// Also write comparison.txt, .json and .html, the latency CDFs of every
    /// side and, when the sides sampled stacks, diff-flame.svg here.
    #[arg(short = 'o', long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// A kernel's debug vmlinux (repeatable), applied to the runs whose build id it has.
    ///
    /// The same logical functions on both sides, inlined or not.
    #[arg(long, value_name = "PATH")]
    vmlinux: Vec<PathBuf>,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
struct AbArgs {
    /// Side A's `run` options as one quoted string (the baseline; empty: the defaults).
    ///
    /// E.g. "--scenario thp-toggle".
    #[arg(long, allow_hyphen_values = true, default_value = "", value_name = "OPTIONS")]
    a: String,
    /// Side B's `run` options, e.g. "--no-touch" or "-- ./my-test 64".
    #[arg(long, allow_hyphen_values = true, default_value = "", value_name = "OPTIONS")]
    b: String,
    /// Runs per side (4 is the fewest a significance claim can rest on).
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = count::<u32>)]
    repeat: u32,
    /// Directory for the runs (DIR/a/run-01, DIR/b/run-01, ...) and the comparison.
    #[arg(short = 'o', long, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    format: TextOrJson,
}

#[derive(Args, Debug)]
struct LabArgs {
    /// A kernel to boot (repeatable; the first is the baseline): debian:, tree: or an image.
    ///
    /// debian:VERSION[:ARCH]: Debian's newest cloud kernel of that series, e.g. debian:6.12,
    /// debian:7.3:arm64; tree:PATH[@REV]: built from a kernel source tree at a git revision, or as
    /// its files are; or the path of a bzImage or arm64 Image.
    #[arg(
        long = "kernel",
        value_name = "SPEC",
        required_unless_present = "print_config",
        help_heading = "Kernels"
    )]
    kernels: Vec<String>,
    /// Print the config fragment every lab kernel needs, and exit.
    #[arg(long, help_heading = "Kernels")]
    print_config: bool,
    /// Boots of each kernel (and CPU count), in interleaved order.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = whole::<u32>, help_heading = "Guests")]
    repeat: u32,
    /// Directory for every report, serial log, build log and comparison.
    #[arg(
        short = 'o',
        long,
        value_name = "DIR",
        required_unless_present = "print_config",
        help_heading = "Output"
    )]
    output: Option<PathBuf>,
    #[command(flatten)]
    guests: GuestArgs,
    #[command(flatten)]
    format: TextOrJson,
}

/// How the lab boots its guests, shared by `lab` and `bisect`.
#[derive(Args, Debug)]
#[command(next_help_heading = "Guests")]
struct GuestArgs {
    /// The base config of kernels built from trees [default: tinyconfig].
    ///
    /// The lab fragment is merged onto it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Words added to every guest's kernel command line, e.g. "mitigations=off".
    #[arg(long, allow_hyphen_values = true, default_value = "", value_name = "ARGS")]
    append: String,
    /// The guests' `run` options as one quoted string (empty: the defaults).
    ///
    /// E.g. "--mapping-mb 16 --iterations 20 --backend none".
    #[arg(long, allow_hyphen_values = true, default_value = "", value_name = "OPTIONS")]
    run: String,
    /// Guest CPU counts, e.g. 1,2: every kernel runs with each.
    #[arg(long, value_delimiter = ',', default_value = "1", value_name = "N[,N...]", value_parser = whole::<u32>)]
    smp: Vec<u32>,
    /// Guest memory.
    #[arg(long, default_value_t = 2048, value_name = "MiB", value_parser = whole::<u32>)]
    memory: u32,
    /// NUMA nodes of every guest: the memory split evenly, the CPUs in blocks.
    ///
    /// A node past the CPU count has memory only. Checked in each guest (its kernel needs
    /// CONFIG_NUMA); the NUMA-hinting path into change_protection needs 2.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = count::<u32>)]
    numa_nodes: u32,
    /// auto: KVM where it works, else TCG (said so); tcg-icount: instruction time.
    ///
    /// tcg-icount: guest time by instructions executed, deterministic and comparable between
    /// kernels, not wall time.
    #[arg(long, default_value = "auto", value_parser = PossibleValuesParser::new(["auto", "kvm", "tcg", "tcg-icount"]))]
    accel: String,
    /// Boots tried again after a failed boot or run.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = whole::<u32>)]
    retries: u32,
    /// The tracer built for arm64 guests [default: the aarch64-unknown-linux-musl
    /// release build beside this binary's target directory].
    #[arg(long, value_name = "PATH")]
    arm64_tracer: Option<PathBuf>,
    /// A kernel's debug vmlinux (repeatable), applied by build id to that kernel's runs.
    #[arg(long, value_name = "PATH")]
    vmlinux: Vec<PathBuf>,
    /// Where Debian kernels are downloaded and kept, and trees built
    /// [default: ~/.cache/mprotect-trace/kernels].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// QEMU is stopped after this many seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS", value_parser = whole::<u64>)]
    boot_timeout: u64,
}

impl LabArgs {
    fn into_options(self) -> Result<LabOptions> {
        let output = self.output.ok_or_else(|| anyhow!("-o DIR is needed"))?;
        self.guests
            .into_options(self.kernels, runs(self.repeat)?, output, self.format.json())
    }
}

impl GuestArgs {
    fn into_options(self, kernels: Vec<String>, repeat: NonZeroU32, output: PathBuf, json: bool) -> Result<LabOptions> {
        let (run, mut words) = run_options_of("--run", &self.run, ("a guest's", "lab"))?;
        if !run.command.is_empty() || run.pid.is_some() {
            return Err(anyhow!(
                "--run {:?}: a guest has neither your command nor your processes; trace the workload or -a",
                self.run
            ));
        }
        let guest_run = run.into_options()?;
        let mut notes = Vec::new();
        // Under instruction counting every iteration is as long as the last
        // and the sampler's period is fixed: the samples would lock onto a
        // few places of the loop. A random spin of up to one sampling period
        // between iterations spreads them.
        if let (Some(Accel::TcgIcount), Some(hz), TraceTarget::Workload(workload)) =
            (Accel::from_name(&self.accel), guest_run.sample_hz, &guest_run.target)
            && workload.dither_us == 0
        {
            let period_us = 1_000_000u64.div_ceil(hz.max(1));
            words.extend(["--dither-us".to_owned(), period_us.to_string()]);
            notes.push(format!(
                "under tcg-icount the guests' workload spins a random time below one sampling period ({period_us} µs) after each iteration (--dither-us), so that samples do not lock onto the loop"
            ));
        }
        // Targets that only DWARF can place are probed in the guests of
        // kernels the lab built (it has their vmlinux), unless the run
        // probes no function or names its own sites.
        let guest_inline_targets = (guest_run.backend != BackendChoice::NoFunctions
            && guest_run.inline_sites == InlineSitesFrom::UsualPlaces)
            .then(|| {
                mprotect_trace::targets::chosen(&guest_run.only, &guest_run.probes)
                    .into_iter()
                    .map(|target| target.name.into_owned())
                    .collect()
            });
        Ok(LabOptions {
            kernels,
            guest_inline_targets,
            notes,
            run_args: words,
            repeat,
            smp: self.smp,
            memory_mib: self.memory,
            numa_nodes: self.numa_nodes,
            accel: match Accel::from_name(&self.accel) {
                Some(accel) => AccelChoice::Only(accel),
                None => AccelChoice::Auto,
            },
            retries: self.retries,
            output,
            arm64_tracer: self.arm64_tracer,
            base_config: self.config,
            append: self.append,
            vmlinux: self.vmlinux,
            // apt reads relative Dir:: paths from /, not from here.
            cache: std::path::absolute(self.cache.unwrap_or_else(lab::default_cache))
                .map_err(|err| anyhow!("--cache: {err}"))?,
            boot_timeout: Duration::from_secs(self.boot_timeout),
            json,
        })
    }
}

#[derive(Args, Debug)]
struct BisectArgs {
    /// The kernel git clone to bisect (revisions are built in the cache, never checked out in it).
    #[arg(long, value_name = "PATH", requires_all = ["good", "bad"], conflicts_with = "kernels", help_heading = "What to bisect")]
    tree: Option<PathBuf>,
    /// A revision without the change (an ancestor of --bad).
    #[arg(long, value_name = "REV", requires = "tree", help_heading = "What to bisect")]
    good: Option<String>,
    /// A revision with the change.
    #[arg(long, value_name = "REV", requires = "tree", help_heading = "What to bisect")]
    bad: Option<String>,
    /// Instead of a tree, kernels in order (repeatable).
    ///
    /// The first good, the last bad, as `lab --kernel` takes them.
    #[arg(
        long = "kernel",
        value_name = "SPEC",
        required_unless_present = "tree",
        help_heading = "What to bisect"
    )]
    kernels: Vec<String>,
    /// What is bisected, one value per run: iteration, p50:TARGET or calls:TARGET.
    ///
    /// iteration: the workload's median iteration ns/page; p50:TARGET: its median latency;
    /// calls:TARGET: its calls per workload iteration (syscall names the syscall's row).
    #[arg(long, default_value = "iteration", value_name = "METRIC", help_heading = "Deciding")]
    metric: String,
    /// Look for an improvement: bad is faster (smaller) than good.
    #[arg(long, help_heading = "Deciding")]
    faster: bool,
    /// Runs a revision gets at a time (4 is the fewest a rank test can call significant).
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = whole::<u32>, help_heading = "Deciding")]
    repeat: u32,
    /// Runs a revision may get before an unknown is skipped (and the endpoints before they are
    /// called the same).
    #[arg(long, default_value_t = 12, value_name = "N", value_parser = whole::<u32>, help_heading = "Deciding")]
    max_repeats: u32,
    /// Measure the endpoints and stop.
    ///
    /// `git bisect run mprotect-trace bisect-step DIR` then decides each revision against them.
    #[arg(long, help_heading = "Deciding")]
    endpoints_only: bool,
    /// Directory for every run, build log, comparison and the bisect's record.
    ///
    /// The same command on it again resumes.
    #[arg(short = 'o', long, value_name = "DIR", help_heading = "Output")]
    output: PathBuf,
    #[command(flatten)]
    guests: GuestArgs,
    #[command(flatten)]
    format: TextOrJson,
}

/// A stored bisect's command line, parsed again.
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct StoredBisectArgs {
    #[command(flatten)]
    bisect: BisectArgs,
}

impl BisectArgs {
    fn into_options(self, invocation: Vec<String>) -> Result<BisectOptions> {
        let source = match (self.tree, self.good, self.bad) {
            (Some(tree), Some(good), Some(bad)) => BisectSource::Git { tree, good, bad },
            _ => BisectSource::Specs(self.kernels),
        };
        Ok(BisectOptions {
            lab: self
                .guests
                .into_options(Vec::new(), runs(self.repeat)?, self.output, self.format.json())?,
            source,
            metric: Metric::parse(&self.metric)?,
            direction: if self.faster {
                Direction::Faster
            } else {
                Direction::Slower
            },
            max_repeats: self.max_repeats,
            endpoints_only: self.endpoints_only,
            invocation,
        })
    }
}

#[derive(Args, Debug)]
struct BisectStepArgs {
    /// The -o DIR of a `bisect` (with --endpoints-only, or a finished one).
    dir: PathBuf,
    /// The revision to decide [default: the tree's checked-out HEAD, as
    /// `git bisect run` leaves it].
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
}

/// The options of the bisect stored in `dir`, parsed again from its
/// command line, its output `dir` wherever it is now.
fn stored_bisect(dir: &std::path::Path) -> Result<BisectOptions> {
    let stored = bisect::Stored::load(dir)?;
    let parsed = StoredBisectArgs::try_parse_from(&stored.invocation)
        .map_err(|err| anyhow!("{}: its stored command line: {err}", dir.display()))?;
    let mut options = parsed.bisect.into_options(stored.invocation)?;
    options.lab.output = dir.to_path_buf();
    Ok(options)
}

/// One side's options, parsed as `run` parses its own.
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct SideArgs {
    #[command(flatten)]
    run: RunArgs,
}

/// `run` options given as one quoted string to another subcommand (`ab`'s
/// sides, `lab`'s guests): parsed as `run` parses its own, with the flags
/// that belong to the subcommand itself refused (`whose`: "a side's" of
/// `ab`). Returns them and the words.
fn run_options_of(flag: &str, text: &str, whose: (&str, &str)) -> Result<(RunArgs, Vec<String>)> {
    let words = shlex::split(text).ok_or_else(|| anyhow!("{flag} {text:?}: unbalanced quotes"))?;
    let args = SideArgs::try_parse_from(&words).map_err(|err| {
        let message = err.to_string();
        let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ");
        anyhow!("{flag} {text:?}: {first}")
    })?;
    for (set, what) in [
        (args.run.output.is_some(), "-o"),
        (args.run.repeat != 1, "--repeat"),
        (args.run.format.json, "--json"),
        (args.run.format.format_choice == TextOrJsonArg::Json, "--format json"),
    ] {
        if set {
            let (whose, subcommand) = whose;
            return Err(anyhow!(
                "{flag} {text:?}: {what} is not {whose} option; give it to `{subcommand}` itself"
            ));
        }
    }
    Ok((args.run, words))
}

impl AbArgs {
    fn into_options(self) -> Result<AbOptions> {
        let side = |flag: &str, text: &str| {
            run_options_of(flag, text, ("a side's", "ab")).and_then(|(args, _)| args.into_options())
        };
        Ok(AbOptions {
            sides: vec![side("--a", &self.a)?, side("--b", &self.b)?],
            repeat: runs(self.repeat)?,
            output: self.output,
            json: self.format.json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every subcommand, nested ones too, with its full name.
    fn subcommands(command: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            let name = format!("{prefix}{} ", sub.get_name());
            out.push((name.trim_end().to_owned(), sub.clone()));
            subcommands(sub, &name, out);
        }
    }

    fn all() -> Vec<(String, clap::Command)> {
        let mut out = Vec::new();
        subcommands(&Cli::command(), "", &mut out);
        out
    }

    /// The docs: the README, CONTRIBUTING.md, CHANGELOG.md and everything under docs/.
    fn docs() -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut text = String::new();
        for file in ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"] {
            text.push_str(&std::fs::read_to_string(root.join(file)).unwrap());
        }
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                text.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
        text
    }

    #[test]
    fn every_value_the_parser_takes_is_in_the_help() {
        for (name, mut sub) in all() {
            let help = sub.render_long_help().to_string();
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                for value in arg.get_possible_values().iter().filter(|v| !v.is_hide_set()) {
                    assert!(
                        help.contains(value.get_name()),
                        "{name} --{}: {} is not in its help",
                        arg.get_long().unwrap_or_default(),
                        value.get_name()
                    );
                }
            }
        }
    }

    #[test]
    fn every_flag_and_value_is_in_the_docs() {
        let docs = docs();
        let mut missing = Vec::new();
        for (name, sub) in all() {
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                let Some(long) = arg.get_long() else { continue };
                if long == "help" || long == "version" {
                    continue;
                }
                // Named by its long form, or its short one (`-o DIR`).
                let short = arg.get_short().map(|c| format!("-{c} "));
                if !docs.contains(&format!("--{long}")) && !short.is_some_and(|s| docs.contains(&s)) {
                    missing.push(format!("{name} --{long}"));
                }
                for value in arg.get_possible_values().iter().filter(|v| !v.is_hide_set()) {
                    if !docs.contains(value.get_name()) {
                        missing.push(format!("{name} --{long} {}", value.get_name()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "not in README.md or docs/*.md: {missing:?}");
    }

    #[test]
    fn the_docs_name_only_flags_that_exist() {
        let mut flags: Vec<String> = vec!["--help".into(), "--version".into()];
        for (_, sub) in all() {
            flags.extend(
                sub.get_arguments()
                    .filter_map(|a| a.get_long())
                    .map(|l| format!("--{l}")),
            );
        }
        // `mprotect-trace SUBCOMMAND --flag` on one line of the docs.
        let mut unknown = Vec::new();
        for line in docs().lines() {
            let Some(at) = line.find("mprotect-trace ") else {
                continue;
            };
            for word in line[at..].split(|c: char| c.is_whitespace() || c == '`' || c == '"' || c == '=') {
                let flag: String = word
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if flag.starts_with("--") && flag.len() > 2 && !flags.contains(&flag) {
                    unknown.push(format!("{flag} in: {}", line.trim()));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "the docs name flags no subcommand has: {unknown:#?}"
        );
    }
}
