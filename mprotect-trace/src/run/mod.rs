//! `mprotect-trace run`: trace the workload (or a command, a pid, every
//! task), print the table and write the run's files.

mod assemble;
pub mod directory;
mod inline_sites;
mod settings;
mod startup;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use aya::Ebpf;
use aya::maps::Array;
use mprotect_trace_common::{CONFIG_INDEX, TraceConfig, maps};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::collect::program_cost::{self, RunTimeStats};
use crate::collect::{Snapshot, maps as map_reader};
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::trace_events;
use crate::kernel::{capabilities, planning_cache};
use crate::model::{
    Attachment, Backend, Check, IntervalCalls, IntervalSample, LatencySummary, Report, Scope, StopReason, SyscallProbe,
    ValueStats,
};
use crate::options::{InlineSitesFrom, RunOptions, TraceTarget};
use crate::output::{self, Formats, table};
use crate::probes::attach;
use crate::probes::plan::BackendChoice;
use crate::probes::{plan, tracepoints};
use crate::sampling;
use crate::{debuginfo, ebpf_object, targets};
use target::Ending;

/// How the tracer says on stderr that tracing has begun: every probe is
/// attached, the signal handlers are in place and the target is released.
/// One line, `mprotect-trace: attached, tracing ...`; scripts and the
/// tests wait for it instead of sleeping.
pub const ATTACHED_LINE: &str = "mprotect-trace: attached, tracing";

/// A probe that fires this often multiplies the cost of what it measures.
const HOT_PROBE_CALLS_PER_SECOND: f64 = 1e6;
/// Typical cost of one entry+exit probe pair, for the overhead estimate.
fn probe_pair_cost_ns(backend: Backend) -> f64 {
    match backend {
        Backend::Kprobe | Backend::CallSite | Backend::Inlined => 300.0,
        Backend::Fentry | Backend::Tracepoint | Backend::None => 100.0,
    }
}

/// `run`: trace, print the table, then write the run's directory (the
/// plots take longest: the user reads the numbers meanwhile); with
/// `--json`, the whole report once it is written.
pub fn run(options: RunOptions) -> Result<ExitCode> {
    let (json, top) = (options.json, options.top);
    let show_table = |report: &Report| {
        let mut text = table::render_top(report, top);
        if let Some(workload) = &report.workload {
            text.push_str(&format!("{}\n", workload.result_line()));
        }
        output::print(&text)
    };
    let quiet = options.quiet;
    let traced = if json || quiet {
        trace(options)?
    } else {
        trace_showing(options, &show_table)?
    };
    if json {
        output::print(&format!("{}\n", serde_json::to_string_pretty(&traced.report)?))?;
    } else if quiet {
        // stdout is the one summary line; where the report went is for
        // the reader, beside the warnings.
        output::print(&format!("{}\n", output::summary::line(&traced.report)))?;
        output::stderr_line(&format!("report: {}", traced.path.display()));
    } else {
        output::print(&format!("report: {}\n", traced.path.display()))?;
    }
    Ok(traced.status.exit_code())
}

/// What a run shows of its report before its files are written.
pub type ShowFirst<'a> = &'a dyn Fn(&Report) -> Result<()>;

/// One finished run: its report, already written to `path`.
pub struct Traced {
    pub report: Report,
    /// The run's report.json.
    pub path: PathBuf,
    pub status: Status,
}

/// How a run ended, as the process's exit code says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Complete,
    /// SIGINT: exit code 130.
    Interrupted,
    /// SIGTERM: exit code 143.
    Terminated,
    /// The traced process exited unsuccessfully.
    TargetFailed,
}

impl Status {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Complete => ExitCode::SUCCESS,
            Self::Interrupted => ExitCode::from(130),
            Self::Terminated => ExitCode::from(143),
            Self::TargetFailed => ExitCode::FAILURE,
        }
    }
}

/// Traces once and writes the run's directory; prints nothing to stdout.
pub fn trace(options: RunOptions) -> Result<Traced> {
    trace_showing(options, &|_| Ok(()))
}

/// Traces once; `show_first` sees the report before the files are written.
pub fn trace_showing(options: RunOptions, show_first: ShowFirst) -> Result<Traced> {
    // Before any thread: they inherit it.
    if let TraceTarget::Workload(workload) = &options.target
        && workload.scenario == crate::workload::Scenario::NumaHinting
    {
        crate::workload::numa::keep_out_of_scans()?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(trace_async(options, show_first))
}

/// SIGINT and SIGTERM, caught from before the target runs (and by a
/// series of runs between them). Installed inside a tokio runtime.
pub(crate) struct Signals {
    pub(crate) interrupt: Signal,
    pub(crate) terminate: Signal,
}

impl Signals {
    pub(crate) fn install() -> Result<Self> {
        // tokio's signal driver makes a socketpair and panics when it
        // cannot: a kernel without AF_UNIX gets one line instead.
        if let Err(err) = std::os::unix::net::UnixStream::pair() {
            bail!(
                "this kernel has no AF_UNIX sockets ({err}): the tracer needs CONFIG_NET and CONFIG_UNIX to handle signals"
            );
        }
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }
}

/// The functions a plan looks up: the targets, their callers (where an
/// inlined target's time shows) and the functions that hold inlined
/// instances.
fn planning_names(options: &RunOptions, sites: Option<&crate::model::InlineSites>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for target in targets::chosen(&options.only, &options.probes) {
        let inlined = sites.and_then(|sites| sites.function(&target.name));
        let holders = inlined
            .into_iter()
            .flat_map(|f| f.instances.iter().map(|i| i.symbol.clone()));
        for name in std::iter::once(target.name.to_string())
            .chain(target.callers.iter().map(|caller| (*caller).to_owned()))
            .chain(holders)
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The documented line that says tracing has begun, naming the target.
fn attached_line(scope: Scope, tgid: Option<u32>) -> String {
    match (scope, tgid) {
        (Scope::Workload, Some(pid)) => format!("{ATTACHED_LINE} the workload, pid {pid}"),
        (Scope::Command, Some(pid)) => format!("{ATTACHED_LINE} the command, pid {pid}"),
        (Scope::Pid, Some(pid)) => format!("{ATTACHED_LINE} pid {pid}"),
        _ => format!("{ATTACHED_LINE} every task"),
    }
}

async fn trace_async(options: RunOptions, show_first: ShowFirst<'_>) -> Result<Traced> {
    let begun = Instant::now();
    let mut clock = startup::StartupClock::new();
    // Everything that can be refused is refused before anything is
    // created or attached.
    options.validate()?;
    crate::kernel::privileges::require_tracing()?;
    target::validate(&options.target)?;
    if let Some(hz) = options.sample_hz {
        sampling::check_rate(hz)?;
    }
    let trace_events = trace_events::resolve(&options.tracepoints)?;
    let target_names: Vec<String> = targets::chosen(&options.only, &options.probes)
        .into_iter()
        .map(|target| target.name.into_owned())
        .collect();
    let target_names: Vec<&str> = target_names.iter().map(String::as_str).collect();
    // Sites asked for are read and checked against this kernel first; the
    // usual places are searched only when a target turns out inlined
    // everywhere.
    let asked_sites = match options.inline_sites {
        InlineSitesFrom::UsualPlaces => None,
        ref from => inline_sites::load(from, &crate::kernel::capabilities::release(), &target_names)?,
    };
    let output_dir = directory::prepare(options.output.as_deref(), options.replace)?;
    clock.mark("checks of the options");

    let untraced = match &options.target {
        TraceTarget::Workload(workload) if options.calibrate => Some(target::run_untraced(workload)?),
        _ => None,
    };
    if untraced.is_some() {
        clock.mark("untraced run (--calibrate)");
    }
    // Without sampling the stack maps hold nothing: one entry each spares
    // the kernel allocating (and this run waiting for) megabytes of them.
    let stack_entries = if options.sample_hz.is_some() {
        options.max_stacks
    } else {
        1
    };
    let mut ebpf = ebpf_object::load_sized(stack_entries, options.split_by.is_some())?;
    clock.mark("load the eBPF object");
    let run_time_stats = options.probe_cost.then(RunTimeStats::enable).transpose()?;
    // Parsed once, by the fentry check, for the fentry attachments too.
    let kernel_btf = std::cell::OnceCell::new();
    let mut caps = capabilities::detect_for_run(&mut ebpf, &kernel_btf, options.backend);
    clock.mark("capability checks");
    let settings = settings::of(&options)?;
    let syscall_probe = settings.syscall;
    if syscall_probe != SyscallProbe::None && !caps.syscall_tracepoints.available {
        bail!(
            "cannot attach the mprotect syscall tracepoints: {}; or pass --no-syscall to sample stacks only",
            caps.syscall_tracepoints.detail
        );
    }
    plan::check_choice(options.backend, &caps)?;
    // Symbols and BTF are read only when a function probe could attach (or
    // a --probe name must be checked): reading them is most of the startup.
    let wanted = options.backend != BackendChoice::NoFunctions;
    let (kallsyms, plans) = if wanted
        && (plan::function_probes_possible(&caps) || !options.probes.is_empty() || !options.only.is_empty())
    {
        let mut needed = planning_names(&options, asked_sites.as_ref());
        let mut planning = planning_cache::load(&caps, &needed)?;
        clock.mark(if planning.facts.cached() {
            "kernel symbols and BTF (cached)"
        } else {
            "kernel symbols and BTF"
        });
        let plan_with = |planning: &planning_cache::Planning, sites: Option<&crate::model::InlineSites>| {
            plan::plan_targets(
                &options.only,
                &options.probes,
                &caps,
                &planning.kallsyms,
                &planning.facts,
                options.backend,
                sites,
            )
        };
        let mut plans = plan_with(&planning, asked_sites.as_ref())?;
        if options.inline_sites == InlineSitesFrom::UsualPlaces
            && inline_sites::wanted(&plans)
            && let Some(sites) = inline_sites::load(&options.inline_sites, &caps.kernel_release, &target_names)?
        {
            needed = planning_names(&options, Some(&sites));
            planning.ensure(&caps, &needed)?;
            plans = plan_with(&planning, Some(&sites))?;
        }
        planning.store(&needed);
        // Freed here, not at some later phase's expense: a full BTF parse
        // is tens of MB.
        let planning_cache::Planning { kallsyms, facts } = planning;
        drop(facts);
        clock.mark("plan");
        (kallsyms, plans)
    } else {
        (
            Kallsyms::default(),
            plan::without_function_probes(&caps, options.backend),
        )
    };
    // Refused before anything is attached when it is already clear.
    refuse_nothing_to_trace(
        syscall_probe,
        options.sample_hz,
        plans
            .iter()
            .map(|plan| plan.backend)
            .chain(trace_events.iter().map(|_| Backend::Tracepoint)),
    )?;

    // Attached while the filter matches nothing (tgid 0 never calls
    // mprotect); it is set once the target is parked at its gate, so its
    // start-up (the dynamic loader's mprotect calls) is not counted and
    // every counted call has both its entry and its exit.
    // Attaching the real programs is the check of the tracepoints and of
    // perf sampling: what the report says of them is what happened here.
    if syscall_probe != SyscallProbe::None {
        if let Err(err) = attach::attach_syscall_tracepoints(&mut ebpf, syscall_probe == SyscallProbe::Empty) {
            bail!(
                "cannot attach the mprotect syscall tracepoints: {err:#}; or pass --no-syscall to sample stacks only"
            );
        }
        caps.syscall_tracepoints =
            Check::yes("the mprotect programs attached to syscalls:sys_enter_mprotect and sys_exit_mprotect");
    }
    clock.mark("attach syscall tracepoints");
    let mut attachments = attach::attach_functions(
        &mut ebpf,
        &kallsyms,
        &plans,
        &caps,
        options.backend,
        options.split_by,
        &kernel_btf,
    )?;
    // Parsed BTF is megabytes the rest of the run has no use for.
    drop(kernel_btf);
    clock.mark("attach function probes");
    attachments.extend(tracepoints::attach(&mut ebpf, &trace_events)?);
    let sampling_cpus = match options.sample_hz {
        Some(hz) => match sampling::attach(&mut ebpf, hz) {
            Ok(cpus) => {
                caps.perf_sampling = Check::yes("the sampler attached to the cpu-clock software event");
                Some(cpus)
            }
            Err(err) => {
                output::stderr_line(&format!("note: no stack sampling: {err:#}"));
                caps.perf_sampling = Check::no("attach failed", format!("{err:#}"));
                None
            }
        },
        None => None,
    };
    clock.mark("attach tracepoints and the sampler");
    let sample_hz = options.sample_hz.filter(|_| sampling_cpus.is_some());
    refuse_nothing_to_trace(syscall_probe, sample_hz, attachments.iter().map(|a| a.backend))?;

    // Caught from here on: a signal now still ends the run with a report.
    let mut signals = Signals::install()?;
    let scope = target::scope(&options.target);
    let mut target = target::start(&options.target).await?;
    // A process traced by pid is named in the report by its comm, read
    // now: it may exit or exec before the run ends.
    let process_name = match (scope, target.tgid) {
        (Scope::Pid, Some(pid)) => std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|comm| comm.trim_end().to_owned()),
        _ => None,
    };
    let config = TraceConfig {
        target_tgid: target.tgid.unwrap_or(0),
        trace_all: u32::from(target.tgid.is_none()),
        measuring_addr: target.measuring_addr.unwrap_or(0),
        page_shift: crate::kernel::machine::page_size().trailing_zeros(),
        ..TraceConfig::default()
    };
    write_config(&mut ebpf, config)?;
    let started = Instant::now();
    let start_time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    target.release().await?;
    let attach_ms = begun.elapsed().as_secs_f64() * 1e3;
    clock.mark("start the target");
    output::stderr_line(&attached_line(scope, target.tgid));
    let (stop, interval_series) = trace_until_stopped(
        &ebpf,
        &mut target,
        &mut signals,
        &attachments,
        options.duration,
        options.interval,
        started,
    )
    .await?;
    let elapsed = started.elapsed();
    let stopped = Instant::now();
    // Nothing is recorded from here on: every figure of the report comes
    // from this one moment; calls caught mid-way are counted in flight.
    write_config(&mut ebpf, TraceConfig { paused: 1, ..config })?;
    let snapshot = map_reader::read(&ebpf)?;
    let program_costs = run_time_stats
        .map(|_stats| program_cost::read(&ebpf, &attachments))
        .transpose()?;
    let raw_samples = sampling_cpus.map(|_| sampling::read(&ebpf)).transpose()?;
    // Read again while our programs and trampolines are loaded: their
    // addresses are on the sampled stacks, and kallsyms names them only now.
    let code_symbols = raw_samples.as_ref().map(|_| Kallsyms::load()).transpose()?;
    // Detach everything now. Detaching waits for RCU grace periods (about
    // 150 ms here); the programs are paused, so it runs beside the report
    // and the table, and is joined before the run returns.
    let detaching = std::thread::spawn(move || drop(ebpf));
    // The workload waits at its exit gate: its user stacks resolve now.
    let profile = match (raw_samples, code_symbols, sampling_cpus, sample_hz) {
        (Some(raw), Some(code_symbols), Some(cpus), Some(hz)) => {
            let stacks = raw.symbolize(&code_symbols)?;
            let mut profile =
                sampling::profile::profile(hz, cpus, options.max_stacks, raw.counters, stacks, &code_symbols);
            profile.measured_iterations_only = config.measuring_addr != 0;
            // Several processes may be sampled: each stack starts at its own.
            profile.process_roots = matches!(scope, Scope::All | Scope::Pid);
            Some(profile)
        }
        _ => None,
    };

    let ending = target.stop().await?;
    let workload = target.workload_result().await?;
    let command = match &options.target {
        TraceTarget::Command(command) => command.clone(),
        _ => Vec::new(),
    };
    let mut report = assemble::report(assemble::Collected {
        scope,
        settings,
        command,
        syscall_probe,
        capabilities: caps,
        attachments,
        snapshot,
        stop,
        elapsed,
        start_time,
        tgid: target.tgid,
        process_name,
        workload,
        untraced,
        profile,
        program_costs,
        trace_events,
        per_cpu: options.per_cpu,
        split_by: options.split_by,
    });
    // The kernel's debug info, when it is installed where distributions
    // put it: inlined functions and source lines in the first table.
    if report.sampling.is_some()
        && let Some(vmlinux) = debuginfo::find_for(&report)
        && let Err(err) = vmlinux.symbolize(&mut report)
    {
        output::stderr_line(&format!("note: {} found but not used: {err:#}", vmlinux.path.display()));
    }
    warn_about_hot_probes(&report);
    // A reader gone from stdout (`run | head`) does not lose the run: its
    // files are written and the probes detached first, then the error.
    let shown = show_first(&report);
    let stop_to_table_ms = stopped.elapsed().as_secs_f64() * 1e3;
    report.interval_series = interval_series;
    report.timings = Some(crate::model::Timings {
        attach_ms,
        stop_to_table_ms,
        startup: clock.finish(),
    });
    if options.replace {
        directory::clear_old_run(&output_dir)?;
    }
    output::write(&report, Formats::Run, &output_dir)?;
    // The tool's own timings are for whoever watches it, not for --quiet.
    if !options.quiet {
        output::stderr_line(&format!(
            "mprotect-trace: attached {attach_ms:.0} ms after the start; after the stop, the table took {stop_to_table_ms:.0} ms and the files (plots, flame graph, HTML, report.json) {:.0} ms",
            stopped.elapsed().as_secs_f64() * 1e3
        ));
    }
    let path = output_dir.join(output::json::FILE_NAME);
    let status = match (stop, ending) {
        (StopReason::Interrupt, _) => Status::Interrupted,
        (StopReason::Terminate, _) => Status::Terminated,
        (_, Ending::Exited(status)) if !status.success() => {
            output::stderr_line(&format!(
                "error: the traced process exited with {status}; the report has what was collected"
            ));
            Status::TargetFailed
        }
        _ => Status::Complete,
    };
    detaching
        .join()
        .map_err(|_| anyhow::anyhow!("detaching the probes failed (the thread panicked)"))?;
    shown?;
    Ok(Traced { report, path, status })
}

async fn trace_until_stopped(
    ebpf: &Ebpf,
    target: &mut target::Target,
    signals: &mut Signals,
    attachments: &[Attachment],
    duration: Option<Duration>,
    interval: Option<Duration>,
    started: Instant,
) -> Result<(StopReason, Option<Vec<IntervalSample>>)> {
    let mut series = interval.map(|_| Vec::new());
    let stopped = |reason: StopReason, series: Option<Vec<IntervalSample>>| Ok((reason, series));
    let deadline = duration.map(|d| tokio::time::Instant::from_std(started + d));
    let mut ticker = tokio::time::interval(interval.unwrap_or(Duration::from_millis(200)));
    ticker.tick().await;
    let mut previous = Snapshot::default();
    // At the deadline the workload is asked to finish its iteration and
    // report; the run then ends when it has.
    let mut stopping = false;
    loop {
        tokio::select! {
            status = target.wait() => {
                status?;
                return stopped(if stopping { StopReason::Duration } else { StopReason::TargetExited }, series);
            }
            _ = signals.interrupt.recv() => return stopped(StopReason::Interrupt, series),
            _ = signals.terminate.recv() => return stopped(StopReason::Terminate, series),
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() && !stopping => {
                if !target.ask_workload_to_stop() {
                    return stopped(StopReason::Duration, series);
                }
                stopping = true;
            }
            _ = ticker.tick() => {
                if target.pid_exited() {
                    return stopped(StopReason::TargetExited, series);
                }
                if let Some(series) = &mut series {
                    let now = map_reader::read(ebpf)?;
                    let sample = interval_sample(&now, &previous, attachments, started.elapsed());
                    print_interval(&sample)?;
                    series.push(sample);
                    previous = now;
                }
            }
        }
    }
}

/// Calls and latency of the syscall and every target since `previous`.
fn interval_sample(
    now: &Snapshot,
    previous: &Snapshot,
    attachments: &[Attachment],
    elapsed: Duration,
) -> IntervalSample {
    let timed = |name: &str, now: &ValueStats, before: Option<&ValueStats>| {
        let delta = now.since(&before.cloned().unwrap_or_default());
        IntervalCalls {
            name: name.to_owned(),
            calls: delta.count,
            latency: Some(LatencySummary::of(&delta)),
        }
    };
    let counted = |name: &str, now: u64, before: Option<u64>| IntervalCalls {
        name: name.to_owned(),
        calls: now.saturating_sub(before.unwrap_or(0)),
        latency: None,
    };
    let mut targets = vec![timed(
        "mprotect (syscall)",
        &now.syscall.latency_ns,
        Some(&previous.syscall.latency_ns),
    )];
    for attachment in attachments {
        let Some(slot) = attachment.slot.map(|slot| slot as usize) else {
            continue;
        };
        let name = attachment.name.as_str();
        targets.extend(match attachment.backend {
            Backend::Tracepoint => now
                .tracepoints
                .get(slot)
                .map(|now| counted(name, now.calls, previous.tracepoints.get(slot).map(|b| b.calls))),
            Backend::CallSite | Backend::Inlined => now.functions.get(slot).map(|now| {
                counted(
                    name,
                    now.call_site_calls,
                    previous.functions.get(slot).map(|b| b.call_site_calls),
                )
            }),
            _ => now.functions.get(slot).map(|now| {
                timed(
                    name,
                    &now.latency_ns,
                    previous.functions.get(slot).map(|b| &b.latency_ns),
                )
            }),
        });
    }
    IntervalSample {
        elapsed_s: elapsed.as_secs_f64(),
        targets,
    }
}

/// One line per target with calls and latency since the last interval.
fn print_interval(sample: &IntervalSample) -> Result<()> {
    let mut text = format!("--- {:.1} s\n", sample.elapsed_s);
    for target in &sample.targets {
        let ns = |value| table::latency_cell(target.latency.as_ref(), value);
        text.push_str(&format!(
            "{:<26} {:>9} calls  mean {:>10}  p50 {:>10}  p99 {:>10}\n",
            target.name,
            target.calls,
            ns(|l| l.mean_ns),
            ns(|l| l.p50_ns),
            ns(|l| l.p99_ns)
        ));
    }
    output::print(&text)
}

/// Refuses a run that would record nothing: no syscall tracepoints, no
/// sampling and no function probe.
fn refuse_nothing_to_trace(
    syscall: SyscallProbe,
    sample_hz: Option<u64>,
    mut backends: impl Iterator<Item = Backend>,
) -> Result<()> {
    if syscall == SyscallProbe::None && sample_hz.is_none() && backends.all(|backend| backend == Backend::None) {
        bail!(
            "nothing to trace: --no-syscall, no stack sampling and no function probe works here (see mprotect-trace doctor)"
        );
    }
    Ok(())
}

fn write_config(ebpf: &mut Ebpf, config: TraceConfig) -> Result<()> {
    Array::try_from(
        ebpf.map_mut(maps::CONFIG)
            .context("the eBPF object has no CONFIG map")?,
    )?
    .set(CONFIG_INDEX, config, 0)
    .context("writing the trace configuration")
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
        output::stderr_line(&format!(
            "warning: {} fired {:.1} million times per second; at ~{cost:.0} ns per {backend} entry+exit pair the probes added an estimated {:.2} s ({:.0} % of the {:.2} s run)",
            target.attachment.name,
            rate / 1e6,
            overhead_s,
            100.0 * overhead_s / report.duration_s,
            report.duration_s
        ));
    }
}
