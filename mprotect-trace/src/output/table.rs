//! The text summary of a run, printed at the end (and per interval).

use std::fmt::Write as _;

use super::report::{LatencySummary, Report, TargetReport};
use crate::collect::ValueStats;

/// "850 ns", "1.02 us", "3.40 ms", "1.20 s".
pub fn format_ns(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.2} us", ns / 1e3),
        ns if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        ns => format!("{:.2} s", ns / 1e9),
    }
}

fn opt_ns(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), format_ns)
}

/// Workload iterations (warmup included) the calls are divided by.
fn iterations(report: &Report) -> Option<u64> {
    report
        .workload
        .as_ref()
        .map(|w| (w.iterations + w.warmup) * w.rounds * w.threads)
}

fn latency_row(
    out: &mut String,
    name: &str,
    backend: &str,
    latency: &LatencySummary,
    per: Option<u64>,
    share: Option<f64>,
) {
    let per_iteration = per.map_or_else(
        || "-".to_owned(),
        |n| format!("{:.2}", latency.calls as f64 / n as f64),
    );
    let share = share.map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0));
    let _ = writeln!(
        out,
        "{name:<26} {backend:<10} {:>9} {per_iteration:>10} {:>10} {:>10} {:>10} {share:>7}",
        latency.calls,
        opt_ns(latency.mean_ns),
        opt_ns(latency.p50_ns),
        opt_ns(latency.p99_ns),
    );
}

fn pages_line(out: &mut String, label: &str, pages: &ValueStats) {
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

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let what = match (&report.workload, report.scope.as_str()) {
        (Some(w), _) => format!(
            "{} {} MiB x {} iterations (+{} warmup)",
            w.scenario, w.mapping_mb, w.iterations, w.warmup
        ),
        (None, "command") => format!("command `{}`", report.command.join(" ")),
        (None, "all") => "every task".to_owned(),
        (None, scope) => scope.to_owned(),
    };
    let tgid = report
        .tgid
        .map(|t| format!(", tgid {t}"))
        .unwrap_or_default();
    let partial = if report.partial {
        " [partial: stopped by signal]"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "mprotect-trace: {what}{tgid} on {} {}, {:.2} s, stopped: {}{partial}\n",
        report.kernel_release, report.arch, report.duration_s, report.stop_reason
    );
    let _ = writeln!(
        out,
        "{:<26} {:<10} {:>9} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "target", "backend", "calls", "calls/iter", "mean", "p50", "p99", "share"
    );
    let per = iterations(report);
    latency_row(
        &mut out,
        "mprotect (syscall)",
        &report.syscall.backend,
        &report.syscall.latency,
        per,
        Some(1.0),
    );
    for target in &report.targets {
        match &target.latency {
            Some(latency) => latency_row(
                &mut out,
                &target.attachment.name,
                target.attachment.backend.label(),
                latency,
                per,
                target.share_of_syscall_time,
            ),
            None => {
                let _ = writeln!(
                    out,
                    "{:<26} {:<10} {}",
                    target.attachment.name, "none", target.attachment.reason
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "(p50/p99 are histogram bucket midpoints, within {:.2} % of the true value)",
        report.percentile_relative_error * 100.0
    );
    render_distributions(&mut out, report);
    let lost = &report.lost;
    let _ = writeln!(
        out,
        "\nlost data: {} exits without their entry, {} entry timestamps not stored",
        lost.exit_without_entry, lost.entry_not_stored
    );
    out
}

fn render_distributions(out: &mut String, report: &Report) {
    let _ = writeln!(out, "\nnr_ptes (PTEs handled per step):");
    let sources: Vec<&TargetReport> = report
        .targets
        .iter()
        .filter(|t| t.nr_ptes.is_some())
        .collect();
    if sources.is_empty() {
        let _ = writeln!(
            out,
            "  no source: no probed function here has an nr_ptes/nr parameter"
        );
    }
    for target in sources {
        let (Some(source), Some(nr_ptes)) = (&target.attachment.nr_ptes_source, &target.nr_ptes)
        else {
            continue;
        };
        let top: Vec<String> = {
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
        };
        let _ = writeln!(
            out,
            "  {source}: {} steps; most common {}",
            nr_ptes.total(),
            top.join(", ")
        );
    }
    let _ = writeln!(out, "\npages per call:");
    pages_line(out, "mprotect len", &report.syscall.pages_per_call);
    for target in &report.targets {
        if let (Some(source), Some(pages)) =
            (&target.attachment.pages_source, &target.pages_per_call)
        {
            pages_line(out, source, pages);
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
}
