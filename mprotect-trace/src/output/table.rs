//! The text summary of a run, printed at the end (and per interval).

use std::fmt::Write as _;

use crate::model::{
    CpuCalls, ExactDistribution, FieldValues, FunctionShare, InlinedProbe, LatencySummary, Profile, ProgramCost,
    Report, Scope, TargetReport, ValueStats,
};

/// "850 ns", "1.02 us", "3.40 ms", "1.20 s".
pub fn format_ns(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.2} us", ns / 1e3),
        ns if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        ns => format!("{:.2} s", ns / 1e9),
    }
}

/// One figure of an optional latency summary, `-` when there is none.
pub fn latency_cell(latency: Option<&LatencySummary>, value: fn(&LatencySummary) -> Option<f64>) -> String {
    latency.and_then(value).map_or_else(|| "-".to_owned(), format_ns)
}

/// How long a run traced: "2.06 ms", "12.50 s" (a short command is not "0.00 s").
pub fn run_duration(report: &Report) -> String {
    format_ns(report.duration_s * 1e9)
}

fn opt_ns(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), format_ns)
}

/// Workload iterations run (warmup included) the calls are divided by.
fn iterations(report: &Report) -> Option<u64> {
    report
        .workload
        .as_ref()
        .map(crate::model::WorkloadResult::iterations_run)
}

/// One cell of the targets table: its text, and the number report.html sorts it by.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub text: String,
    pub value: Option<f64>,
}

impl Cell {
    fn new(text: String, value: Option<f64>) -> Self {
        Self { text, value }
    }

    fn dash() -> Self {
        Self::new("-".to_owned(), None)
    }
}

/// The column headings of the targets table.
pub const TARGET_COLUMNS: [&str; 8] = [
    "target",
    "backend",
    "calls",
    "calls/iter",
    "mean",
    "p50",
    "p99",
    "share",
];

/// One target's row of the table, with the lines printed under it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetRow {
    pub name: String,
    pub backend: String,
    /// calls, calls/iter, mean, p50, p99, share; `None`: not probed, and
    /// the first note says why.
    pub cells: Option<[Cell; 6]>,
    /// Lines under the row, indented by their leading spaces: what a call
    /// site counts, each inlined instance.
    pub notes: Vec<String>,
}

/// The targets table as data: the text table pads it, report.html puts it
/// in a `<table>`.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetTable {
    pub rows: Vec<TargetRow>,
    /// "7 function targets not probed here: ...": targets unprobed for one
    /// same reason, one line for all of them.
    pub folded: Vec<String>,
    /// How exact p50/p99 are, when some latency has a call.
    pub percentile_note: Option<String>,
}

/// The calls column and calls per workload iteration (`per` iterations).
fn count_cells(calls: u64, per: Option<u64>) -> [Cell; 2] {
    let per_iteration = per.map(|n| calls as f64 / n as f64);
    [
        Cell::new(calls.to_string(), Some(calls as f64)),
        Cell::new(
            per_iteration.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            per_iteration,
        ),
    ]
}

fn latency_cells(latency: &LatencySummary, per: Option<u64>, share: Option<f64>) -> [Cell; 6] {
    // Without calls there is no time to take a share of.
    let share = share.filter(|_| latency.calls > 0);
    let ns = |value: Option<f64>| Cell::new(opt_ns(value), value);
    let [calls, per_iteration] = count_cells(latency.calls, per);
    [
        calls,
        per_iteration,
        ns(latency.mean_ns),
        ns(latency.p50_ns),
        ns(latency.p99_ns),
        Cell::new(
            share.map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            share,
        ),
    ]
}

/// The syscall's row and each target's, as data.
pub fn target_table(report: &Report) -> TargetTable {
    let per = iterations(report);
    // Targets left unprobed for one same reason (a kernel with no kprobes
    // and no fentry) are one line, not one each: the per-target detail is
    // in `doctor` and report.json.
    let unprobed = |t: &&TargetReport| t.latency.is_none() && t.calls.is_none();
    let mut folded: Vec<(&str, usize)> = Vec::new();
    for target in report.targets.iter().filter(unprobed) {
        match folded
            .iter_mut()
            .find(|(reason, _)| *reason == target.attachment.reason)
        {
            Some((_, count)) => *count += 1,
            None => folded.push((&target.attachment.reason, 1)),
        }
    }
    folded.retain(|(_, count)| *count > 1);
    let mut rows = vec![TargetRow {
        name: "mprotect (syscall)".to_owned(),
        backend: report.syscall.backend.label().to_owned(),
        cells: Some(latency_cells(&report.syscall.latency, per, Some(1.0))),
        notes: Vec::new(),
    }];
    for target in &report.targets {
        let name = target.attachment.name.clone();
        let backend = target.attachment.backend.label().to_owned();
        let row = match (&target.latency, target.calls) {
            (Some(latency), _) => TargetRow {
                name,
                backend,
                cells: Some(latency_cells(latency, per, target.share_of_syscall_time)),
                notes: Vec::new(),
            },
            // Call sites count calls but time nothing.
            (None, Some(calls)) => {
                let [calls, per_iteration] = count_cells(calls, per);
                let mut notes = Vec::new();
                // A tracepoint's name says what it is; a call site's does not.
                if target.attachment.backend.counts_calls_only() {
                    notes.push(target.attachment.reason.clone());
                }
                if let Some(inlined) = &target.attachment.inlined {
                    notes.extend(instance_lines(inlined));
                }
                TargetRow {
                    name,
                    backend,
                    cells: Some([
                        calls,
                        per_iteration,
                        Cell::dash(),
                        Cell::dash(),
                        Cell::dash(),
                        Cell::dash(),
                    ]),
                    notes,
                }
            }
            (None, None) if folded.iter().any(|(reason, _)| *reason == target.attachment.reason) => continue,
            (None, None) => TargetRow {
                name,
                backend: "none".to_owned(),
                cells: None,
                notes: vec![target.attachment.reason.clone()],
            },
        };
        rows.push(row);
        rows.extend(split_rows(report, target, per));
    }
    let folded = folded
        .iter()
        .map(|(reason, count)| {
            let reason = reason.strip_prefix("no function probe: ").unwrap_or(reason);
            format!("{count} function targets not probed here: {reason}; `mprotect-trace doctor` says why for each")
        })
        .collect();
    // Percentiles to qualify only when some latency has a call.
    let timed = std::iter::once(&report.syscall.latency)
        .chain(report.targets.iter().filter_map(|t| t.latency.as_ref()))
        .chain(
            report
                .targets
                .iter()
                .filter_map(|t| t.attachment.inlined.as_ref()?.latency.as_ref()),
        )
        .any(|latency| latency.calls > 0);
    TargetTable {
        rows,
        folded,
        percentile_note: timed.then(|| {
            format!(
                "(p50/p99 are histogram bucket midpoints, within {:.2} % of the true value)",
                report.percentile_relative_error * 100.0
            )
        }),
    }
}

/// A split value's short name in the table: "PROT_NUMA", "no flags".
pub fn split_label(name: &str) -> String {
    match name {
        "0" => "no flags".to_owned(),
        name => name.replace("MM_CP_", ""),
    }
}

/// One row per split value of a target (`--split-by`): its calls, and
/// its latency when the target is timed, with its share of the syscall time.
fn split_rows(report: &Report, target: &TargetReport, per: Option<u64>) -> Vec<TargetRow> {
    let syscall_ns = report.syscall.latency.total_ns;
    target
        .split
        .iter()
        .flatten()
        .map(|part| {
            let [calls, per_iteration] = count_cells(part.calls, per);
            let [mean, p50, p99, share] = match &part.latency {
                Some(latency) => {
                    let share = (syscall_ns > 0).then(|| latency.total_ns as f64 / syscall_ns as f64);
                    let [_, _, mean, p50, p99, share] = latency_cells(latency, per, share);
                    [mean, p50, p99, share]
                }
                None => [Cell::dash(), Cell::dash(), Cell::dash(), Cell::dash()],
            };
            TargetRow {
                name: format!("  {}", split_label(&part.name)),
                backend: "cp_flags".to_owned(),
                cells: Some([calls, per_iteration, mean, p50, p99, share]),
                notes: Vec::new(),
            }
        })
        .collect()
}

fn render_target_table(out: &mut String, table: &TargetTable) {
    let [target, backend, calls, per_iteration, mean, p50, p99, share] = TARGET_COLUMNS;
    let _ = writeln!(
        out,
        "{target:<26} {backend:<10} {calls:>9} {per_iteration:>10} {mean:>10} {p50:>10} {p99:>10} {share:>7}"
    );
    for row in &table.rows {
        let (name, backend) = (&row.name, &row.backend);
        let mut notes = row.notes.iter();
        match &row.cells {
            Some([calls, per_iteration, mean, p50, p99, share]) => {
                let _ = writeln!(
                    out,
                    "{name:<26} {backend:<10} {:>9} {:>10} {:>10} {:>10} {:>10} {:>7}",
                    calls.text, per_iteration.text, mean.text, p50.text, p99.text, share.text
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{name:<26} {backend:<10} {}",
                    notes.next().map_or("", String::as_str)
                );
            }
        }
        for note in notes {
            let _ = writeln!(out, "{:<26} {note}", "");
        }
    }
    for line in &table.folded {
        let _ = writeln!(out, "{line}");
    }
    if let Some(note) = &table.percentile_note {
        let _ = writeln!(out, "{note}");
    }
}

fn value_line(out: &mut String, label: &str, pages: &ValueStats) {
    if pages.count == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "  {label:<34} {} calls, min {}, max {}, mean {:.1}",
        pages.count,
        pages.min.unwrap_or(0),
        pages.max.unwrap_or(0),
        pages.mean().unwrap_or(0.0)
    );
}

/// "shared-dirty-toggle 64 MiB x 50 iterations (+5 warmup)", "command `ls`", ...
pub fn what_was_traced(report: &Report) -> String {
    match (&report.workload, report.scope) {
        (Some(w), _) => format!(
            "{} {} MiB x {} iterations (+{} warmup)",
            w.scenario, w.mapping_mb, w.iterations, w.warmup
        ),
        (None, Scope::Command) => format!("command `{}`", report.command.join(" ")),
        // A workload that left no result (killed) still has its settings.
        (None, Scope::Workload) => match report.settings.as_ref().and_then(|s| s.workload.as_ref()) {
            Some(w) => format!("{} {} MiB (no result)", w.scenario, w.mapping_mb),
            None => "workload".to_owned(),
        },
        (None, Scope::All) => "every task".to_owned(),
        // "pid 20345 (sleep)".
        (None, Scope::Pid) => {
            let pid = report.tgid.map(|pid| format!(" {pid}")).unwrap_or_default();
            let name = report
                .process_name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            format!("pid{pid}{name}")
        }
    }
}

/// A few words for a run in a title: "shared-dirty-toggle on 6.18.44".
pub fn short_label(report: &Report) -> String {
    let what = report
        .workload
        .as_ref()
        .map_or_else(|| report.scope.name().to_owned(), |w| w.scenario.clone());
    format!("{what} on {}", report.kernel_release)
}

/// Kernel functions below this total share are not listed unless asked
/// for (`--top N`); the table says how many it left out.
pub const FUNCTION_SHARE_THRESHOLD: f64 = 0.005;
/// Above this standard error of a share, the table warns that its samples are few.
const SHARE_ERROR_WARNING: f64 = 0.025;

pub fn render(report: &Report) -> String {
    render_top(report, None)
}

/// "mprotect-trace: shared-dirty-toggle 64 MiB x 200 iterations (+5 warmup) on
/// 6.18.44 x86_64, 2.06 s, stopped: workload finished": what the table is of.
pub fn heading(report: &Report) -> String {
    let what = what_was_traced(report);
    // -p names its pid already.
    let tgid = report
        .tgid
        .filter(|_| report.scope != Scope::Pid)
        .map(|t| format!(", tgid {t}"))
        .unwrap_or_default();
    let partial = if report.partial {
        " [partial: stopped by signal]"
    } else {
        ""
    };
    format!(
        "mprotect-trace: {what}{tgid} on {} {}, {}, stopped: {}{partial}",
        report.kernel_release,
        report.arch,
        run_duration(report),
        report.stop_reason.label()
    )
}

/// The table; `top`: list exactly the first N kernel functions by total
/// share instead of those above [`FUNCTION_SHARE_THRESHOLD`].
pub fn render_top(report: &Report, top: Option<usize>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", heading(report));
    render_target_table(&mut out, &target_table(report));
    out.push_str(&distributions_text(report));
    render_per_cpu(&mut out, report);
    if let Some(profile) = &report.sampling {
        render_profile(&mut out, profile, top, report.scope);
    }
    if let Some(line) = calibration_line(report) {
        let _ = writeln!(out, "\n{line}");
    }
    if let Some(costs) = &report.program_costs {
        render_program_costs(&mut out, report, costs);
    }
    let _ = writeln!(out, "\n{}", lost_data(report));
    if let Some(line) = in_flight_line(report) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// How much tracing changed the workload's figure (`--calibrate`).
pub fn calibration_line(report: &Report) -> Option<String> {
    report.calibration.as_ref().map(|c| {
        format!(
            "calibration: untraced {:.2} ns/page, traced {:.2} ns/page: tracing changed it by {:+.1} %",
            c.untraced_iteration_ns_per_page,
            c.traced_iteration_ns_per_page,
            (c.ratio - 1.0) * 100.0
        )
    })
}

/// Calls entered but not returned when tracing stopped, if any.
pub fn in_flight_line(report: &Report) -> Option<String> {
    (report.lost.in_flight > 0).then(|| {
        format!(
            "{} calls were in flight when tracing stopped: entered, not returned, so not in the latency above",
            report.lost.in_flight
        )
    })
}

/// Each inlined instance of a target: its calls, where its nr_ptes was
/// read, and its latency between its one entry and one exit, or why not.
fn instance_lines(inlined: &InlinedProbe) -> Vec<String> {
    let mut lines = Vec::new();
    for instance in &inlined.instances {
        let calls = instance.calls.map_or_else(|| "-".to_owned(), |c| c.to_string());
        lines.push(format!("  {}: {calls} calls, {}", instance.at, instance.nr));
        lines.push(match &instance.exit {
            Some(exit) => format!("    timed from its entry to its one exit, {exit}"),
            None => format!("    no latency: {}", instance.no_latency),
        });
    }
    if let Some(latency) = &inlined.latency {
        lines.push(format!(
            "  latency of the timed instances: {} calls, mean {}, p50 {}, p99 {}",
            latency.calls,
            opt_ns(latency.mean_ns),
            opt_ns(latency.p50_ns),
            opt_ns(latency.p99_ns)
        ));
    }
    lines
}

/// "lost data: 0 exits without their entry, ...": what the programs could not record.
pub fn lost_data(report: &Report) -> String {
    let lost = &report.lost;
    format!(
        "lost data: {} exits without their entry, {} entry timestamps overwritten before their exit, {} failed map lookups",
        lost.exit_without_entry, lost.entry_overwritten, lost.map_lookup_failed
    )
}

fn render_program_costs(out: &mut String, report: &Report, costs: &[ProgramCost]) {
    let _ = writeln!(out, "\nprobe cost (the kernel's BPF run-time statistics):");
    let _ = writeln!(out, "{:<40} {:<28} {:>10} {:>10}", "probe", "program", "runs", "ns/run");
    for cost in costs {
        let per_run = cost.ns_per_run().map_or("-".to_owned(), |ns| format!("{ns:.0}"));
        let _ = writeln!(
            out,
            "{:<40} {:<28} {:>10} {per_run:>10}",
            cost.probe, cost.program, cost.runs
        );
    }
    if let Some(line) = syscall_cost_line(report, costs) {
        let _ = writeln!(out, "{line}");
    }
    for line in backend_cost_lines(report, costs) {
        let _ = writeln!(out, "{line}");
    }
}

/// Which probe kind a program of ours is, and whether it runs at an exit.
fn program_kind(program: &str) -> Option<(&'static str, bool)> {
    [
        ("fentry_slot_", "fentry/fexit", false),
        ("fexit_slot_", "fentry/fexit", true),
        ("kprobe_slot_", "kprobe/kretprobe", false),
        ("kretprobe_slot_", "kprobe/kretprobe", true),
        ("call_site_slot_", "call-site kprobes", false),
        ("inline_instance", "inlined-instance kprobes", false),
    ]
    .into_iter()
    .find(|(prefix, _, _)| program.starts_with(prefix))
    .map(|(_, kind, exit)| (kind, exit))
}

/// What each kind of function probe cost: its probed calls (its entry
/// programs' runs), the time per call of all its programs, and their share
/// of the run's wall time. Call-site kprobes sit on call instructions,
/// which x86 never optimizes into a jump: each call traps.
pub fn backend_cost_lines(report: &Report, costs: &[ProgramCost]) -> Vec<String> {
    let mut kinds: Vec<(&str, u64, u64)> = Vec::new();
    for cost in costs {
        let Some((kind, exit)) = program_kind(&cost.program) else {
            continue;
        };
        let at = match kinds.iter().position(|(k, _, _)| *k == kind) {
            Some(at) => at,
            None => {
                kinds.push((kind, 0, 0));
                kinds.len() - 1
            }
        };
        if !exit {
            kinds[at].1 += cost.runs;
        }
        kinds[at].2 += cost.total_ns;
    }
    let wall_ns = report.duration_s * 1e9;
    kinds
        .into_iter()
        .filter(|(_, calls, _)| *calls > 0)
        .map(|(kind, calls, ns)| {
            let mut line = format!(
                "{kind}: {calls} probed calls, {:.0} ns per call in its programs, {:.1} % of the run's wall time",
                ns as f64 / calls as f64,
                ns as f64 / wall_ns * 100.0
            );
            if kind == "call-site kprobes" && report.arch == "x86_64" {
                line.push_str(
                    " (a kprobe on a call instruction is never optimized on x86: every call traps; \
                     --only with the function-level targets leaves the per-PTE calls unprobed)",
                );
            }
            line
        })
        .collect()
}

/// The syscall tracepoint pair's cost beside the calls it measured.
pub fn syscall_cost_line(report: &Report, costs: &[ProgramCost]) -> Option<String> {
    let syscall_ns: f64 = costs
        .iter()
        .filter(|cost| cost.probe.starts_with("syscalls:"))
        .filter_map(ProgramCost::ns_per_run)
        .sum();
    let mean = report.syscall.latency_ns.mean()?;
    (syscall_ns > 0.0).then(|| {
        format!(
            "per mprotect call: {syscall_ns:.0} ns in the two syscall tracepoint programs ({:.1} % of the mean call, {mean:.0} ns)",
            syscall_ns / mean * 100.0
        )
    })
}

/// Why a run has no nr_ptes distribution: "no source: ...".
pub fn no_nr_ptes_source(report: &Report) -> String {
    let why = if report.capabilities.btf.available {
        "no probed function here has an nr_ptes/nr parameter".to_owned()
    } else {
        format!(
            "parameters are found by name in BTF, and {}",
            report.capabilities.btf.detail
        )
    };
    format!("no source: {why}")
}

/// The six most common values of an nr_ptes distribution: "1: 24576", ">512: 3".
fn most_common(nr_ptes: &ExactDistribution) -> Vec<String> {
    let mut counts = nr_ptes.counts.clone();
    counts.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    counts
        .iter()
        .take(6)
        .map(|(value, count)| {
            if *value > 512 {
                format!(">512: {count}")
            } else {
                format!("{value}: {count}")
            }
        })
        .collect()
}

fn render_distributions(out: &mut String, report: &Report) {
    let _ = writeln!(out, "\nnr_ptes (PTEs handled per step):");
    let sources: Vec<&TargetReport> = report.targets.iter().filter(|t| t.nr_ptes.is_some()).collect();
    if sources.is_empty() {
        let _ = writeln!(out, "  {}", no_nr_ptes_source(report));
    }
    for target in sources {
        let (Some(source), Some(nr_ptes)) = (&target.attachment.nr_ptes_source, &target.nr_ptes) else {
            continue;
        };
        let top = most_common(nr_ptes);
        let _ = writeln!(
            out,
            "  {source}: {} steps; most common {}",
            nr_ptes.total(),
            top.join(", ")
        );
        for part in target.split.iter().flatten() {
            if let Some(nr_ptes) = part.nr_ptes.as_ref().filter(|nr| nr.total() > 0) {
                let _ = writeln!(
                    out,
                    "    {}: {} steps; most common {}",
                    split_label(&part.name),
                    nr_ptes.total(),
                    most_common(nr_ptes).join(", ")
                );
            }
        }
    }
    let pages: Vec<(&str, &ValueStats)> = std::iter::once(("mprotect len", &report.syscall.pages_per_call))
        .chain(
            report
                .targets
                .iter()
                .filter_map(|t| t.attachment.pages_source.as_deref().zip(t.pages_per_call.as_ref())),
        )
        .filter(|(_, pages)| pages.count > 0)
        .collect();
    // No call, no length: no heading over nothing (-a or -p of an idle process).
    if !pages.is_empty() {
        let _ = writeln!(out, "\npages per call:");
        for (source, stats) in pages {
            value_line(out, source, stats);
        }
    }
    let returns: Vec<(&String, &ValueStats)> = report
        .targets
        .iter()
        .filter_map(|t| t.attachment.return_source.as_ref().zip(t.return_values.as_ref()))
        .collect();
    if !returns.is_empty() {
        let _ = writeln!(out, "\nreturn values:");
        for (source, values) in returns {
            value_line(out, source, values);
        }
    }
    let flags: Vec<String> = report
        .syscall
        .prot_flags
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let _ = writeln!(
        out,
        "\nprot flags: {}",
        if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join(", ")
        }
    );
    if !report.syscall.failed.is_empty() {
        let failed: Vec<String> = report
            .syscall
            .failed
            .iter()
            .map(|f| format!("{} {}", f.name, f.count))
            .collect();
        let _ = writeln!(
            out,
            "failed calls: {} (not in the latency, lengths and flags above)",
            failed.join(", ")
        );
    }
}

/// nr_ptes, pages per call, return values, prot flags, failed calls,
/// tracepoint fields and NUMA hinting, as text: blocks after a blank line.
pub fn distributions_text(report: &Report) -> String {
    let mut out = String::new();
    render_distributions(&mut out, report);
    render_field_values(&mut out, report);
    render_numa_hinting(&mut out, report);
    out
}

/// numa-hinting: what the scans did by the kernel's counters, and the time
/// the traced scans took per PTE they updated.
fn render_numa_hinting(out: &mut String, report: &Report) {
    let Some(numa) = report.workload.as_ref().and_then(|w| w.numa.as_ref()) else {
        return;
    };
    let _ = writeln!(
        out,
        "\nNUMA hinting (CPU {} on node {}, memory on node {}):",
        numa.cpu, numa.cpu_node, numa.memory_node
    );
    let _ = writeln!(
        out,
        "  {} scan passes, {} PTEs made PROT_NONE (numa_pte_updates), {} hinting faults ({} local), {} pages migrated",
        numa.scan_passes, numa.pte_updates, numa.hint_faults, numa.hint_faults_local, numa.pages_migrated
    );
    // The scans' own time, from whichever of their functions was timed.
    for name in ["change_prot_numa", "change_protection"] {
        let timed = report
            .targets
            .iter()
            .find(|t| t.attachment.name == name)
            .and_then(|t| t.latency.as_ref())
            .filter(|latency| latency.calls > 0);
        if let (Some(latency), true) = (timed, numa.pte_updates > 0) {
            let _ = writeln!(
                out,
                "  {name}: {} calls, {} in all, {} per PTE updated",
                latency.calls,
                format_ns(latency.total_ns as f64),
                format_ns(latency.total_ns as f64 / numa.pte_updates as f64)
            );
            break;
        }
    }
}

/// Tracepoint events by the value of their `--probe-field`.
fn render_field_values(out: &mut String, report: &Report) {
    let fields: Vec<(&str, &FieldValues)> = report
        .targets
        .iter()
        .filter_map(|t| t.field_values.as_ref().map(|f| (t.attachment.name.as_str(), f)))
        .collect();
    if fields.is_empty() {
        return;
    }
    let _ = writeln!(out, "\ntracepoint fields:");
    for (event, field) in fields {
        let _ = writeln!(out, "  {event} by {} ({} events)", field.field, field.total());
        for value in &field.values {
            let name = value.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let _ = writeln!(out, "    {:>20} {:>10}{name}", value.value.to_string(), value.count);
        }
        if field.not_stored > 0 {
            let _ = writeln!(
                out,
                "    {:>20} {:>10} (values not stored: the kernel's value map was full)",
                "?", field.not_stored
            );
        }
    }
}

/// `--per-cpu`: the syscall's and each target's calls on each CPU, for
/// those that have them.
pub fn per_cpu_rows(report: &Report) -> Vec<(&str, &[CpuCalls])> {
    std::iter::once(("mprotect (syscall)", report.syscall.per_cpu.as_deref()))
        .chain(
            report
                .targets
                .iter()
                .map(|t| (t.attachment.name.as_str(), t.per_cpu.as_deref())),
        )
        .filter_map(|(name, cpus)| cpus.map(|cpus| (name, cpus)))
        .collect()
}

/// `--per-cpu`: every target's calls (and latency) on each CPU.
fn render_per_cpu(out: &mut String, report: &Report) {
    let rows = per_cpu_rows(report);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nper CPU:");
    let _ = writeln!(
        out,
        "{:<28} {:>4} {:>9} {:>10} {:>10} {:>10}",
        "target", "cpu", "calls", "mean", "p50", "p99"
    );
    for (name, cpus) in rows {
        if cpus.is_empty() {
            let _ = writeln!(out, "{name:<28} {:>4} {:>9}", "-", 0);
        }
        for cpu in cpus {
            let latency = |value| latency_cell(cpu.latency.as_ref(), value);
            let _ = writeln!(
                out,
                "{name:<28} {:>4} {:>9} {:>10} {:>10} {:>10}",
                cpu.cpu,
                cpu.calls,
                latency(|l| l.mean_ns),
                latency(|l| l.p50_ns),
                latency(|l| l.p99_ns)
            );
        }
    }
}

/// Above this share of the samples, `[unknown]` user frames say why.
const UNKNOWN_SHARE_EXPLAINED: f64 = 0.03;
/// Processes listed by default in a system-wide profile.
pub const PROCESSES_SHOWN: usize = 10;

/// Explains `[unknown]` user frames when they are more than a few percent.
fn render_unknown_user(out: &mut String, profile: &Profile) {
    let samples = profile.counters.samples;
    let causes = profile.unknown_user();
    let unknown: u64 = causes.iter().map(|(_, n)| n).sum();
    if samples == 0 || (unknown as f64) < UNKNOWN_SHARE_EXPLAINED * samples as f64 {
        return;
    }
    let percent = |n: u64| 100.0 * n as f64 / samples as f64;
    let _ = writeln!(
        out,
        "[unknown] user frames in {:.1} % of the samples ({unknown}):",
        percent(unknown)
    );
    for (cause, n) in causes {
        let _ = writeln!(out, "  {:>5.1} % {}", percent(n), cause.describe());
    }
    let kernel_threads: u64 = profile
        .stacks
        .iter()
        .filter(|s| s.process.as_ref().is_some_and(|p| p.kernel_thread))
        .map(|s| s.count)
        .sum();
    if kernel_threads > 0 {
        let _ = writeln!(
            out,
            "  (kernel threads have no user stack: {:.1} % of the samples, rooted at their thread's name)",
            percent(kernel_threads)
        );
    }
}

/// Samples by process (-a, -p): who the time belongs to.
fn render_processes(out: &mut String, profile: &Profile, top: Option<usize>) {
    let processes = profile.by_process();
    if processes.is_empty() {
        return;
    }
    let samples: u64 = processes.iter().map(|p| p.samples).sum();
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>9} {:>7} {:>12}",
        "process", "pid", "samples", "share", "in mprotect"
    );
    let shown = top.unwrap_or(PROCESSES_SHOWN);
    for process in processes.iter().take(shown) {
        // Kernel threads' names run long ("kworker/u8:4-events_unbound").
        let comm: String = process.process.comm.chars().take(22).collect();
        let name = if process.process.kernel_thread {
            format!("[{comm}]")
        } else {
            comm
        };
        let _ = writeln!(
            out,
            "{name:<24} {:>8} {:>9} {:>6.1}% {:>12}",
            process.process.pid,
            process.samples,
            100.0 * process.samples as f64 / samples as f64,
            process.in_syscall_samples
        );
    }
    if let Some(line) = more_processes(&processes, shown) {
        let _ = writeln!(out, "{line}");
    }
}

/// "3 more processes, 12 samples (--top 13 shows them)": the processes
/// past the first `shown`, if any.
pub fn more_processes(processes: &[crate::model::ProcessSamples], shown: usize) -> Option<String> {
    let hidden = processes.get(shown..).unwrap_or_default();
    (!hidden.is_empty()).then(|| {
        format!(
            "{} more processes, {} samples (--top {} shows them)",
            hidden.len(),
            hidden.iter().map(|p| p.samples).sum::<u64>(),
            processes.len()
        )
    })
}

/// The kernel functions a summary lists: the first `top` by total share,
/// or those of [`FUNCTION_SHARE_THRESHOLD`] or more; and, when some are
/// left out, the line that says how many and how to see them.
pub fn listed_functions(profile: &Profile, top: Option<usize>) -> (&[FunctionShare], Option<String>) {
    let above = |f: &FunctionShare| f.total_share >= FUNCTION_SHARE_THRESHOLD;
    let shown = top
        .unwrap_or_else(|| profile.functions.iter().filter(|f| above(f)).count())
        .min(profile.functions.len());
    let (listed, hidden) = profile.functions.split_at(shown);
    if hidden.is_empty() {
        return (listed, None);
    }
    let big = hidden.iter().filter(|f| above(f)).count();
    let small = hidden.len() - big;
    let threshold = FUNCTION_SHARE_THRESHOLD * 100.0;
    let what = match (big, small) {
        (0, small) => format!("{small} more below {threshold} %"),
        (big, 0) => format!("{big} more of {threshold} % or more"),
        (big, small) => format!(
            "{} more: {big} of {threshold} % or more, {small} below {threshold} %",
            big + small
        ),
    };
    (
        listed,
        Some(format!("{what} (--top {} shows them)", profile.functions.len())),
    )
}

/// The warning that a share rests on too few samples, if it does.
pub fn few_samples_warning(profile: &Profile) -> Option<String> {
    // One standard error of a share p of n samples is sqrt(p(1-p)/n), at most 0.5/sqrt(n).
    let error = 0.5 / (profile.in_syscall_samples as f64).sqrt();
    (error > SHARE_ERROR_WARNING).then(|| {
        format!(
            "warning: only {} samples inside mprotect(): a share is uncertain by up to ±{:.1} % (one standard error); sample longer or at a higher --sample-hz",
            profile.in_syscall_samples,
            error * 100.0
        )
    })
}

/// What the samples the sampler did not keep were: under `-a` every task
/// is traced, so only the idle CPUs'; else other tasks' and idle CPUs'
/// (all of them idle under `-p` of a sleeping process).
fn samples_not_traced(scope: Scope, samples: u64) -> String {
    match scope {
        Scope::All => format!("{samples} samples of idle CPUs"),
        _ => format!("{samples} samples of other tasks or idle CPUs"),
    }
}

/// The first lines about the stack samples: how many, what was lost, and
/// warnings about the maps.
pub fn profile_header(profile: &Profile, scope: Scope) -> Vec<String> {
    let c = &profile.counters;
    let mut lines = vec![format!(
        "stack samples: {} at {} Hz on {} CPUs, {} inside mprotect(); lost: {} kernel-stack collisions, {} failed kernel walks, {} user stacks, {} for a full map ({})",
        c.samples,
        profile.hz,
        profile.cpus,
        profile.in_syscall_samples,
        c.kernel_stack_collisions,
        c.kernel_stack_failed,
        c.user_stack_lost,
        c.sample_map_full,
        samples_not_traced(scope, c.samples_other_tasks)
    )];
    if profile.measured_iterations_only {
        lines.push(format!(
            "stack samples of the measured iterations only ({} samples before, between and after them not counted)",
            c.samples_outside_window
        ));
    }
    // The stack map is a hash table that never evicts: as it fills, new
    // stacks collide with old ones (-EEXIST) long before it runs out of room.
    if c.sample_map_full + c.stack_map_full > 0 || c.kernel_stack_collisions * 100 > c.samples {
        lines.push(format!(
            "warning: the stack maps are too small for this run ({} kernel stacks lost to collisions, {} stacks and {} samples not stored for lack of room): raise --max-stacks (it was {})",
            c.kernel_stack_collisions, c.stack_map_full, c.sample_map_full, profile.max_stacks
        ));
    }
    lines
}

/// `[unknown]` user frames explained, when they are more than a few percent.
pub fn unknown_user_text(profile: &Profile) -> String {
    let mut out = String::new();
    render_unknown_user(&mut out, profile);
    out
}

fn render_profile(out: &mut String, profile: &Profile, top: Option<usize>, scope: Scope) {
    out.push('\n');
    for line in profile_header(profile, scope) {
        let _ = writeln!(out, "{line}");
    }
    render_unknown_user(out, profile);
    if profile.process_roots {
        render_processes(out, profile, top);
    }
    if profile.in_syscall_samples == 0 {
        return;
    }
    let (shown, hidden) = listed_functions(profile, top);
    // Inlined functions' names ("... (inlined)") run longer.
    let width = shown.iter().map(|f| f.name.len() + 1).max().unwrap_or(0).max(32);
    let _ = writeln!(
        out,
        "{:<width$} {:>8} {:>8}",
        "kernel function (in mprotect)", "self", "total"
    );
    for function in shown {
        let _ = writeln!(
            out,
            "{:<width$} {:>7.1}% {:>7.1}%",
            function.name,
            function.self_share * 100.0,
            function.total_share * 100.0
        );
    }
    if let Some(hidden) = hidden {
        let _ = writeln!(out, "{hidden}");
    }
    if let Some(warning) = few_samples_warning(profile) {
        let _ = writeln!(out, "{warning}");
    }
    for line in inlined_lines(profile) {
        let _ = writeln!(out, "  {line}");
    }
    render_hot_spots(out, profile);
}

/// What the samples say of each target inlined everywhere.
pub fn inlined_lines(profile: &Profile) -> Vec<String> {
    let mut lines = Vec::new();
    for inlined in &profile.inlined_targets {
        // With debug info the inlined function has a share of its own.
        if profile.debug_info.is_some() {
            let own = crate::model::profile::inlined_frame(&inlined.target);
            let line = match profile.functions.iter().find(|f| f.name == own) {
                Some(share) => format!(
                    "{} is inlined here; from the debug info: self {:.1}%, total {:.1}%",
                    inlined.target,
                    share.self_share * 100.0,
                    share.total_share * 100.0
                ),
                None => format!(
                    "{} is inlined here; the debug info found no sample in it",
                    inlined.target
                ),
            };
            lines.push(line);
            continue;
        }
        let line = match (&inlined.inlined_into, &inlined.inlined_into_share) {
            (Some(parent), Some(share)) => format!(
                "{} has no symbol here (inlined): its time is inside {parent}, self {:.1}%, total {:.1}%",
                inlined.target,
                share.self_share * 100.0,
                share.total_share * 100.0
            ),
            (Some(parent), None) => {
                format!(
                    "{} has no symbol here (inlined into {parent}, which was not sampled)",
                    inlined.target
                )
            }
            (None, _) => format!("{} has no symbol here and no caller of it has one", inlined.target),
        };
        lines.push(line);
    }
    lines
}

/// "hot spots: where the samples inside mprotect() landed, ...".
pub fn hot_spots_heading(profile: &Profile) -> String {
    let source = if profile.debug_info.is_some() {
        "offsets from kallsyms, lines and inlined functions from the vmlinux"
    } else {
        "offsets from kallsyms"
    };
    format!("hot spots: where the samples inside mprotect() landed, by instruction ({source})")
}

/// A hot spot's source line and the functions inlined there, if known.
pub fn hot_spot_line(spot: &crate::model::HotSpot) -> Option<String> {
    let line = spot.line.as_ref()?;
    let inlined = if spot.inlined.is_empty() {
        String::new()
    } else {
        format!(", inlined: {}", spot.inlined.join(" > "))
    };
    Some(format!("at {line}{inlined}"))
}

/// The hottest instructions of each hot function (from kallsyms).
fn render_hot_spots(out: &mut String, profile: &Profile) {
    if profile.hot_spots.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}", hot_spots_heading(profile));
    let _ = writeln!(
        out,
        "{:<40} {:>8} {:>8} {:>12}",
        "instruction", "samples", "share", "of function"
    );
    for spot in &profile.hot_spots {
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>7.1}% {:>11.1}%",
            spot.label(),
            spot.samples,
            spot.share * 100.0,
            spot.share_of_function * 100.0
        );
        if let Some(line) = hot_spot_line(spot) {
            let _ = writeln!(out, "  {line}");
        }
    }
}
