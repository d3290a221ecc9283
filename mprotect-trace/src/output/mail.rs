//! `report --format mail`: a run in at most 80 columns of plain text, to
//! paste into a mail as it is. The machine and the command that repeats
//! the run, the workload's figures, every target's latency percentiles,
//! the nr_ptes and pages distributions as text histograms, and the kernel
//! functions the stack samples found.

use std::fmt::Write as _;

use super::mail_layout::{self, Bar, field, histogram, latency_heading, latency_row, name_column, wrap};
use super::table;
use crate::model::{Profile, Report, TargetReport, WorkloadResult};

/// The widest function name kept beside its shares.
const FUNCTION_WIDTH: usize = 40;

/// The mail text of `report`; `top`: list that many kernel functions
/// (default: those of 0.5 % or more, as the table does).
pub fn render(report: &Report, top: Option<usize>) -> String {
    let mut out = String::new();
    let revision = if report.git_revision.is_empty() {
        String::new()
    } else {
        format!(" ({})", report.git_revision)
    };
    wrap(
        &mut out,
        "",
        "  ",
        &format!(
            "mprotect-trace {}{revision}, a run started {}",
            report.tool_version,
            or_unknown(&report.start_time)
        ),
    );
    mail_layout::machine(&mut out, report);
    let partial = if report.partial { " (partial)" } else { "" };
    field(
        &mut out,
        "traced:",
        &format!(
            "{}, {}, stopped: {}{partial}",
            table::what_was_traced(report),
            table::run_duration(report),
            report.stop_reason.label()
        ),
    );
    if let Some(workload) = &report.workload {
        out.push('\n');
        workload_figures(&mut out, workload);
    }
    out.push('\n');
    latencies(&mut out, report);
    out.push('\n');
    distributions(&mut out, report);
    if let Some(profile) = &report.sampling {
        out.push('\n');
        functions(&mut out, profile, top);
    }
    out.push('\n');
    wrap(&mut out, "", "  ", &table::lost_data(report));
    out
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() { "at an unrecorded time" } else { text }
}

/// The `result` line's figures: its per-page times as a table of means
/// and medians, the rest as its `key=value` fields.
fn workload_figures(out: &mut String, workload: &WorkloadResult) {
    let _ = writeln!(out, "{:<24} {:>10} {:>10}", "workload, ns/page", "mean", "median");
    let times = workload.ns_per_page_fields();
    let (means, medians) = times.split_at(times.len() / 2);
    for ((key, mean), (_, median)) in means.iter().zip(medians) {
        let name = key.trim_end_matches("_ns_per_page");
        let _ = writeln!(out, "  {name:<22} {mean:>10.2} {median:>10.2}");
    }
    let fields: Vec<String> = workload
        .result_fields()
        .into_iter()
        .filter(|(key, _)| !key.contains("_ns_per_page"))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    wrap(out, "", "", &fields.join(" "));
}

/// One row per latency stream, then the targets nothing timed, grouped
/// by why.
fn latencies(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "latency (percentiles are bucket midpoints, within {:.2} %):",
        report.percentile_relative_error * 100.0
    );
    latency_heading(out, "target");
    latency_row(out, "mprotect (syscall)", &report.syscall.latency);
    let mut untimed: Vec<(&str, Vec<&str>)> = Vec::new();
    for target in &report.targets {
        match (&target.latency, target.calls) {
            (Some(latency), _) => latency_row(out, &target.attachment.name, latency),
            // Call sites count calls but time nothing.
            (None, Some(calls)) => {
                let counted = crate::model::LatencySummary {
                    calls,
                    ..Default::default()
                };
                latency_row(out, &target.attachment.name, &counted);
            }
            (None, None) => match untimed.iter_mut().find(|(why, _)| *why == target.attachment.reason) {
                Some((_, names)) => names.push(&target.attachment.name),
                None => untimed.push((&target.attachment.reason, vec![&target.attachment.name])),
            },
        }
    }
    for (why, names) in untimed {
        wrap(out, "", "  ", &format!("not timed: {} ({why})", names.join(", ")));
    }
}

/// The pages per call of the syscall and of every target that has them,
/// then every nr_ptes distribution, each as a text histogram.
fn distributions(out: &mut String, report: &Report) {
    let mut pages = vec![("mprotect len", &report.syscall.pages_per_call)];
    for target in &report.targets {
        if let (Some(source), Some(stats)) = (&target.attachment.pages_source, &target.pages_per_call) {
            pages.push((source, stats));
        }
    }
    for (source, stats) in pages.into_iter().filter(|(_, stats)| stats.count > 0) {
        let bars = mail_layout::histogram_bars(&stats.histogram);
        distribution(out, &format!("pages per call, {source}"), stats.count, "calls", &bars);
    }
    let sources: Vec<&TargetReport> = report.targets.iter().filter(|t| t.nr_ptes.is_some()).collect();
    if sources.is_empty() {
        wrap(out, "nr_ptes: ", "  ", &table::no_nr_ptes_source(report));
    }
    for target in sources {
        if let Some(nr_ptes) = &target.nr_ptes {
            let source = target
                .attachment
                .nr_ptes_source
                .as_deref()
                .unwrap_or(&target.attachment.name);
            let bars = mail_layout::nr_ptes_bars(nr_ptes);
            distribution(out, &format!("nr_ptes, {source}"), nr_ptes.total(), "steps", &bars);
        }
    }
}

fn distribution(out: &mut String, title: &str, total: u64, what: &str, bars: &[Bar]) {
    wrap(out, "", "  ", &format!("{title}: {total} {what}"));
    histogram(out, bars);
}

/// The kernel functions inside mprotect() by total share of the samples,
/// as the table lists them.
fn functions(out: &mut String, profile: &Profile, top: Option<usize>) {
    let c = &profile.counters;
    wrap(
        out,
        "",
        "  ",
        &format!(
            "stack samples: {} inside mprotect() of {} at {} Hz on {} CPUs",
            profile.in_syscall_samples, c.samples, profile.hz, profile.cpus
        ),
    );
    if profile.in_syscall_samples == 0 {
        return;
    }
    let (shown, hidden) = table::listed_functions(profile, top);
    let _ = writeln!(
        out,
        "{:<FUNCTION_WIDTH$} {:>8} {:>8}",
        "kernel function", "self", "total"
    );
    for function in shown {
        let name = name_column(out, &function.name, FUNCTION_WIDTH);
        let _ = writeln!(
            out,
            "{name:<FUNCTION_WIDTH$} {:>7.1}% {:>7.1}%",
            function.self_share * 100.0,
            function.total_share * 100.0
        );
    }
    for line in hidden.into_iter().chain(table::few_samples_warning(profile)) {
        wrap(out, "", "  ", &line);
    }
}
