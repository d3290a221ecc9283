//! `mprotect-trace run`: trace the workload (or a command, a pid, every
//! task), print the table and write `report.json`.

mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use aya::Ebpf;
use aya::maps::Array;
use mprotect_trace_common::{CONFIG_INDEX, TraceConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::RunArgs;
use crate::collect::program_cost::{self, RunTimeStats};
use crate::collect::{Snapshot, maps};
use crate::ebpf_object;
use crate::kernel::capabilities::{self, Capabilities};
use crate::kernel::kallsyms::Kallsyms;
use crate::output::report::{self, LatencySummary, Report, SyscallReport, TargetReport};
use crate::output::{flame, table, write_atomically};
use crate::probes::attach::{self, Attachment};
use crate::probes::plan::{self, Backend, BackendChoice};
use crate::sampling::{self, profile::Profile};
use target::{Ending, Scope};

/// A probe that fires this often multiplies the cost of what it measures.
const HOT_PROBE_CALLS_PER_SECOND: f64 = 1e6;
/// Typical cost of one entry+exit probe pair, for the overhead estimate.
fn probe_pair_cost_ns(backend: Backend) -> f64 {
    match backend {
        Backend::Kprobe => 300.0,
        Backend::Fentry | Backend::None => 100.0,
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    TargetExited,
    Duration,
    Interrupt,
    Terminate,
}

impl Stop {
    fn label(self) -> &'static str {
        match self {
            Self::TargetExited => "target exited",
            Self::Duration => "duration",
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }
}

async fn run_async(args: RunArgs) -> Result<ExitCode> {
    let scope = if !args.command.is_empty() {
        Scope::Command(args.command.clone())
    } else if let Some(pid) = args.pid {
        Scope::Pid(pid)
    } else if args.all {
        Scope::All
    } else {
        Scope::Workload(args.workload.clone())
    };
    // Everything that can be refused is refused before anything is attached.
    crate::kernel::privileges::require_tracing()?;
    scope.validate()?;
    let output_dir = prepare_output_dir(args.output.clone())?;
    let duration = args.duration.map(Duration::from_secs_f64);
    let interval = args.interval.map(Duration::from_secs_f64);
    if args.max_stacks == 0 {
        bail!("--max-stacks must be at least 1 (got 0)");
    }
    if args.sample_hz == 0 {
        bail!("--sample-hz must be at least 1 (got 0); use --no-sample to turn sampling off");
    }
    for (flag, value) in [("--duration", duration), ("--interval", interval)] {
        if value.is_some_and(|d| d.is_zero()) {
            bail!("{flag} must be more than 0 seconds");
        }
    }

    let untraced = match (&scope, args.calibrate) {
        (Scope::Workload(workload), true) => Some(target::run_untraced(workload)?),
        (_, true) => bail!("--calibrate needs the built-in workload (not -p, -a or -- CMD)"),
        _ => None,
    };
    let mut ebpf = ebpf_object::load_with_max_stacks(args.max_stacks)?;
    let run_time_stats = args.probe_cost.then(RunTimeStats::enable).transpose()?;
    let caps = capabilities::detect(&mut ebpf);
    if !args.no_syscall && !caps.syscall_tracepoints.available {
        bail!(
            "cannot attach the mprotect syscall tracepoints: {}; or pass --no-syscall to sample stacks only",
            caps.syscall_tracepoints.detail
        );
    }
    plan::check_choice(args.backend, &caps)?;
    // Read once: planning needs the names, the profile the inlining parents.
    let kallsyms = Kallsyms::load()?;
    let plans = plan::plan_targets(&args.probes, &caps, &kallsyms, args.backend)?;
    let will_sample = !args.no_sample && caps.perf_sampling.available;
    if args.no_syscall && !will_sample && plans.iter().all(|plan| plan.backend == Backend::None) {
        bail!(
            "nothing to trace: --no-syscall, no stack sampling and no function probe works here (see mprotect-trace doctor)"
        );
    }

    // Attached while the filter matches nothing (tgid 0 never calls
    // mprotect); it is set once the target is parked at its gate, so its
    // start-up (the dynamic loader's mprotect calls) is not counted and
    // every counted call has both its entry and its exit.
    if !args.no_syscall {
        attach::attach_syscall_tracepoints(&mut ebpf, args.empty_programs)?;
    }
    let attachments = attach::attach_functions(&mut ebpf, &plans, args.backend != BackendChoice::Fentry)?;
    let sampling_cpus = if args.no_sample {
        None
    } else if caps.perf_sampling.available {
        Some(sampling::attach(&mut ebpf, args.sample_hz)?)
    } else {
        eprintln!("note: no stack sampling: {}", caps.perf_sampling.detail);
        None
    };

    let mut target = scope.start().await?;
    let config = TraceConfig {
        target_tgid: target.tgid.unwrap_or(0),
        trace_all: u32::from(target.tgid.is_none()),
    };
    Array::try_from(ebpf.map_mut("CONFIG").context("the eBPF object has no CONFIG map")?)?
        .set(CONFIG_INDEX, config, 0)
        .context("writing the trace configuration")?;
    let started = Instant::now();
    let start_time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    target.release().await?;
    let stop = trace_until_stopped(&ebpf, &mut target, &attachments, duration, interval, started).await?;
    let elapsed = started.elapsed();
    let snapshot = maps::read(&ebpf)?;
    let program_costs = run_time_stats
        .map(|_stats| program_cost::read(&ebpf, &attachments))
        .transpose()?;
    let raw_samples = sampling_cpus.map(|_| sampling::read(&ebpf)).transpose()?;
    // Detach everything before waiting on anything else.
    drop(ebpf);
    // The workload waits at its exit gate: its user stacks resolve now.
    let profile = match (raw_samples, sampling_cpus) {
        (Some(raw), Some(cpus)) => {
            let stacks = raw.symbolize()?;
            Some(Profile::new(
                args.sample_hz,
                cpus,
                args.max_stacks,
                raw.counters,
                stacks,
                &kallsyms,
            ))
        }
        _ => None,
    };

    let ending = target.stop().await?;
    let workload = target.workload_result().await?;
    let mut report = build_report(
        &args,
        &scope,
        &caps,
        attachments,
        &snapshot,
        stop,
        elapsed,
        target.tgid,
        workload,
    );
    report.sampling = profile;
    report.program_costs = program_costs;
    report.calibration = untraced
        .zip(report.workload.as_ref())
        .map(|(untraced, traced)| report::Calibration {
            untraced_iteration_ns_per_page: untraced.iteration_ns_per_page,
            traced_iteration_ns_per_page: traced.iteration_ns_per_page,
            ratio: traced.iteration_ns_per_page / untraced.iteration_ns_per_page,
        });
    report.start_time = start_time;
    warn_about_hot_probes(&report);
    // No samples (a target that never ran on a CPU): no flame graph to draw.
    if let Some(profile) = report.sampling.as_ref().filter(|p| !p.stacks.is_empty()) {
        let folded = profile.folded();
        write_atomically(&output_dir.join(sampling::FOLDED_FILE_NAME), folded.as_bytes())?;
        let title = format!(
            "mprotect-trace: {} on {}",
            table::what_was_traced(&report),
            report.kernel_release
        );
        let subtitle = format!(
            "{} samples at {} Hz on {} CPUs, {} inside mprotect()",
            profile.counters.samples, profile.hz, profile.cpus, profile.in_syscall_samples
        );
        flame::write(&folded, &title, &subtitle, &output_dir)?;
    }
    crate::output::write_plots_and_html(&report, &output_dir)?;
    let path = report.write(&output_dir)?;
    if args.workload.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table::render(&report));
        if let Some(workload) = &report.workload {
            println!("{}", workload.result_line());
        }
        println!("report: {}", path.display());
    }

    match (stop, ending) {
        (Stop::Interrupt, _) => Ok(ExitCode::from(130)),
        (Stop::Terminate, _) => Ok(ExitCode::from(143)),
        (_, Ending::Exited(status)) if !status.success() => {
            eprintln!("error: the traced process exited with {status}; the report has what was collected");
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

async fn trace_until_stopped(
    ebpf: &Ebpf,
    target: &mut target::Target,
    attachments: &[Attachment],
    duration: Option<Duration>,
    interval: Option<Duration>,
    started: Instant,
) -> Result<Stop> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let deadline = duration.map(|d| tokio::time::Instant::from_std(started + d));
    let mut ticker = tokio::time::interval(interval.unwrap_or(Duration::from_millis(200)));
    ticker.tick().await;
    let mut previous = Snapshot::default();
    loop {
        tokio::select! {
            status = target.wait() => {
                status?;
                return Ok(Stop::TargetExited);
            }
            _ = interrupt.recv() => return Ok(Stop::Interrupt),
            _ = terminate.recv() => return Ok(Stop::Terminate),
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                return Ok(Stop::Duration);
            }
            _ = ticker.tick() => {
                if target.pid_exited() {
                    return Ok(Stop::TargetExited);
                }
                if interval.is_some() {
                    let now = maps::read(ebpf)?;
                    print_interval(&now, &previous, attachments, started.elapsed());
                    previous = now;
                }
            }
        }
    }
}

/// One line per target with calls and latency since the last interval.
fn print_interval(now: &Snapshot, previous: &Snapshot, attachments: &[Attachment], elapsed: Duration) {
    println!("--- {:.1} s", elapsed.as_secs_f64());
    let line = |name: &str, delta: &crate::collect::ValueStats| {
        let summary = LatencySummary::of(delta);
        let ns = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), table::format_ns);
        println!(
            "{name:<26} {:>9} calls  mean {:>10}  p50 {:>10}  p99 {:>10}",
            summary.calls,
            ns(summary.mean_ns),
            ns(summary.p50_ns),
            ns(summary.p99_ns)
        );
    };
    line(
        "mprotect (syscall)",
        &now.syscall.latency_ns.since(&previous.syscall.latency_ns),
    );
    for attachment in attachments {
        if let Some(slot) = attachment.slot {
            let (now, before) = (&now.functions[slot as usize], previous.functions.get(slot as usize));
            let before = before.map(|b| b.latency_ns.clone()).unwrap_or_default();
            line(&attachment.name, &now.latency_ns.since(&before));
        }
    }
}

/// `-o DIR`, or `./mprotect-trace-out/<UTC timestamp>/`; created and
/// checked writable before anything is attached.
fn prepare_output_dir(requested: Option<PathBuf>) -> Result<PathBuf> {
    let dir = requested.unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        PathBuf::from("mprotect-trace-out").join(stamp.replace([':', '-'], ""))
    });
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "creating the output directory {} (choose another with -o DIR)",
            dir.display()
        )
    })?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "the output directory {} is not writable (choose another with -o DIR)",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &RunArgs,
    scope: &Scope,
    caps: &Capabilities,
    attachments: Vec<Attachment>,
    snapshot: &Snapshot,
    stop: Stop,
    elapsed: Duration,
    tgid: Option<u32>,
    workload: Option<crate::workload::WorkloadResult>,
) -> Report {
    let syscall_ns = snapshot.syscall.latency_ns.total;
    let targets = attachments
        .into_iter()
        .map(|attachment| {
            let data = attachment.slot.and_then(|slot| snapshot.functions.get(slot as usize));
            TargetReport {
                latency: data.map(|d| LatencySummary::of(&d.latency_ns)),
                latency_ns: data.map(|d| d.latency_ns.clone()),
                pages_per_call: data
                    .filter(|_| attachment.pages_source.is_some())
                    .map(|d| d.pages.clone()),
                nr_ptes: data
                    .filter(|_| attachment.nr_ptes_source.is_some())
                    .map(|d| d.nr_ptes.clone()),
                share_of_syscall_time: data
                    .filter(|_| syscall_ns > 0)
                    .map(|d| d.latency_ns.total as f64 / syscall_ns as f64),
                attachment,
            }
        })
        .collect();
    let (cpu_model, cpus, kernel_cmdline) = report::machine();
    Report {
        schema_version: report::SCHEMA_VERSION,
        cpu_model,
        cpus,
        kernel_cmdline,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_revision: env!("MPROTECT_TRACE_GIT_REVISION").to_owned(),
        start_time: String::new(),
        kernel_release: caps.kernel_release.clone(),
        arch: caps.arch.clone(),
        scope: scope.name().to_owned(),
        tgid,
        command: args.command.clone(),
        stop_reason: stop.label().to_owned(),
        partial: matches!(stop, Stop::Interrupt | Stop::Terminate),
        duration_s: elapsed.as_secs_f64(),
        percentile_relative_error: crate::collect::histogram::PERCENTILE_RELATIVE_ERROR,
        capabilities: caps.clone(),
        syscall: SyscallReport {
            backend: match (args.no_syscall, args.empty_programs) {
                (true, _) => "none",
                (false, true) => "empty",
                (false, false) => "tracepoint",
            }
            .to_owned(),
            latency: LatencySummary::of(&snapshot.syscall.latency_ns),
            latency_ns: snapshot.syscall.latency_ns.clone(),
            pages_per_call: snapshot.syscall.pages.clone(),
            prot_flags: snapshot
                .prot_flags
                .iter()
                .enumerate()
                .map(|(bucket, &count)| (report::prot_name(bucket), count))
                .collect(),
        },
        targets,
        lost: snapshot.counters.clone(),
        workload,
        sampling: None,
        calibration: None,
        program_costs: None,
    }
}

/// Warns when a probe fired so often that it distorts what it measures.
fn warn_about_hot_probes(report: &Report) {
    for target in &report.targets {
        let Some(latency) = &target.latency else {
            continue;
        };
        let rate = latency.calls as f64 / report.duration_s.max(1e-9);
        if rate <= HOT_PROBE_CALLS_PER_SECOND {
            continue;
        }
        let backend = target.attachment.backend.label();
        let cost = probe_pair_cost_ns(target.attachment.backend);
        let overhead_s = latency.calls as f64 * cost * 1e-9;
        eprintln!(
            "warning: {} fired {:.1} million times per second; at ~{cost:.0} ns per {backend} entry+exit pair the probes added an estimated {:.2} s ({:.0} % of the {:.2} s run)",
            target.attachment.name,
            rate / 1e6,
            overhead_s,
            100.0 * overhead_s / report.duration_s,
            report.duration_s
        );
    }
}
