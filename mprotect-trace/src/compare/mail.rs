//! `compare --format mail`: a comparison in at most 80 columns of plain
//! text, to paste into a mail as it is. Each side's machine and command,
//! each pair's verdicts, costs per iteration and sampled functions, then
//! each side's latency percentiles and distributions, its runs pooled.

use std::fmt::Write as _;

use super::text::{SHIFT_HEADING, delta, few_samples_mark, few_samples_note, optional, share, value, verdict};
use super::{Comparison, MetricDelta, PairComparison, SYSCALL, Side};
use crate::model::{ExactDistribution, LatencySummary, Report, TargetReport, ValueStats};
use crate::output::mail_layout::{
    self, compact_ns, field, histogram, histogram_bars, latency_heading, latency_row, name_column, nr_ptes_bars, wrap,
};

/// The widest metric or function name kept beside its numbers.
const NAME_WIDTH: usize = 32;

/// The mail text of `comparison` of `sides`.
pub fn render(sides: &[Side], comparison: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mprotect-trace compare: {} sides, {} the baseline",
        comparison.sides.len(),
        comparison.sides.first().map_or("-", |side| side.label.as_str())
    );
    for (summary, side) in comparison.sides.iter().zip(sides) {
        out.push('\n');
        let runs = match summary.runs.as_slice() {
            [one] => format!("1 run, {one}"),
            runs => format!("{} runs", runs.len()),
        };
        wrap(
            &mut out,
            &format!("{}: ", summary.label),
            "   ",
            &format!("{} ({runs}): {}", summary.path, summary.traced),
        );
        if let Some(report) = side.representative() {
            mail_layout::machine(&mut out, report);
        }
    }
    out.push('\n');
    wrap(&mut out, "", "  ", &comparison.design.runs_and_order());
    for note in &comparison.notes {
        wrap(&mut out, "note: ", "  ", note);
    }
    for pair in &comparison.against_baseline {
        write_pair(&mut out, pair, comparison.allowed_by.as_deref());
    }
    pooled_latencies(&mut out, sides);
    pooled_distributions(&mut out, sides);
    out.push('\n');
    for (name, text) in comparison.design.method() {
        wrap(&mut out, &format!("{name}: "), "  ", &text);
    }
    out
}

fn write_pair(out: &mut String, pair: &PairComparison, allowed_by: Option<&str>) {
    let _ = writeln!(out, "\n== {} against {}", pair.b, pair.a);
    for difference in pair.differences_described(allowed_by) {
        wrap(out, "differs: ", "  ", &difference);
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<NAME_WIDTH$} {:>12} {:>12} {:>8}",
        "metric",
        format!("{} median", pair.a),
        format!("{} median", pair.b),
        format!("{}/{}", pair.b, pair.a)
    );
    for metric in &pair.metrics {
        write_metric(out, pair, metric);
    }
    for reason in pair.no_claim_reasons() {
        wrap(out, "no claim: ", "  ", reason);
    }
    write_costs(out, pair);
    write_sampled(out, pair);
    out.push('\n');
    wrap(out, "", "  ", &pair.home.explanation);
}

/// A latency compactly, any other value with two decimals.
fn figure(unit: &str, v: f64) -> String {
    if unit == "ns" { compact_ns(v) } else { value(unit, v) }
}

/// The medians and the ratio on one line; the ranges, the interval and
/// the verdict wrapped under it.
fn write_metric(out: &mut String, pair: &PairComparison, m: &MetricDelta) {
    let name = name_column(out, &m.metric, NAME_WIDTH);
    let _ = writeln!(
        out,
        "{name:<NAME_WIDTH$} {:>12} {:>12} {:>8.3}",
        figure(m.unit, m.a.median),
        figure(m.unit, m.b.median),
        m.ratio
    );
    let mut details = Vec::new();
    if m.a.runs.len() > 1 || m.b.runs.len() > 1 {
        let range =
            |label: &str, s: &super::Spread| format!("{label} [{}, {}]", figure(m.unit, s.min), figure(m.unit, s.max));
        details.push(format!("{}, {}", range(&pair.a, &m.a), range(&pair.b, &m.b)));
    }
    if let Some(interval) = m.ratio_interval {
        details.push(format!(
            "{}/{} [{:.3}, {:.3}] ({:.1} %)",
            pair.b,
            pair.a,
            interval.low,
            interval.high,
            interval.confidence * 100.0
        ));
    }
    details.push(verdict(m));
    wrap(out, "  ", "  ", &details.join("; "));
}

/// Calls and time per workload iteration of each target measured on a side.
fn write_costs(out: &mut String, pair: &PairComparison) {
    let measured: Vec<_> = pair
        .targets
        .iter()
        .filter(|t| t.ns_per_page_a.is_some() || t.ns_per_page_b.is_some())
        .collect();
    if measured.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{:<24} {:>21} {:>21}", "", "calls/iteration", "ns/page");
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "per workload iteration", pair.a, pair.b, pair.a, pair.b, "of delta"
    );
    let two = |v: Option<f64>| optional(v, |v| format!("{v:.2}"));
    for t in measured {
        let name = name_column(out, &t.name, 24);
        let _ = writeln!(
            out,
            "{name:<24} {:>10} {:>10} {:>10} {:>10} {:>9}",
            two(t.calls_per_iteration_a),
            two(t.calls_per_iteration_b),
            two(t.ns_per_page_a),
            two(t.ns_per_page_b),
            share(t.share_of_workload_delta)
        );
        wrap(
            out,
            "  ",
            "  ",
            &format!("{SHIFT_HEADING} {} ns/page", delta(&t.delta_ns_per_page)),
        );
    }
    if let Some(workload) = &pair.workload_delta_ns_per_page {
        wrap(
            out,
            "",
            "  ",
            &format!("workload (mean): {SHIFT_HEADING} {} ns/page", delta(&Some(*workload))),
        );
    }
}

/// The kernel functions whose sampled time changed most.
fn write_sampled(out: &mut String, pair: &PairComparison) {
    if pair.sampled.is_empty() {
        return;
    }
    out.push('\n');
    wrap(
        out,
        "",
        "  ",
        &format!(
            "top kernel functions by change, from stack samples (self share x syscall ns/page per iteration; {}):",
            pair.sampled_intervals()
        ),
    );
    let _ = writeln!(out, "{:<NAME_WIDTH$} {:>17} {:>17}", "", "samples", "ns/page");
    let _ = writeln!(
        out,
        "{:<NAME_WIDTH$} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "kernel function", pair.a, pair.b, pair.a, pair.b, "of delta"
    );
    for row in &pair.sampled {
        let marked = format!("{}{}", row.name, few_samples_mark(row));
        let name = name_column(out, &marked, NAME_WIDTH);
        let _ = writeln!(
            out,
            "{name:<NAME_WIDTH$} {:>8} {:>8} {:>8.2} {:>8.2} {:>9}",
            row.a_self_samples,
            row.b_self_samples,
            row.a_ns_per_page,
            row.b_ns_per_page,
            share(row.share_of_workload_delta)
        );
        wrap(
            out,
            "  ",
            "  ",
            &format!("{SHIFT_HEADING} {}", delta(&Some(row.delta_ns_per_page))),
        );
    }
    if let Some(note) = few_samples_note(&pair.sampled) {
        out.push('\n');
        wrap(out, "", "  ", &note);
    }
}

/// Every latency stream's name, the syscall first, in the order the runs list them.
fn stream_names(sides: &[Side]) -> Vec<String> {
    let mut names = vec![SYSCALL.to_owned()];
    for run in sides.iter().flat_map(|side| &side.runs) {
        for target in &run.report.targets {
            if !names.contains(&target.attachment.name) {
                names.push(target.attachment.name.clone());
            }
        }
    }
    names
}

/// What `stream` holds in each run of `side`, pooled.
fn pooled<T>(side: &Side, stream: impl Fn(&Report) -> Option<&T>, pool: impl Fn(Vec<&T>) -> T) -> Option<T> {
    let all: Vec<&T> = side.runs.iter().filter_map(|run| stream(&run.report)).collect();
    (!all.is_empty()).then(|| pool(all))
}

fn pool_stats(all: Vec<&ValueStats>) -> ValueStats {
    ValueStats::pooled(all)
}

fn pool_distributions(all: Vec<&ExactDistribution>) -> ExactDistribution {
    ExactDistribution::pooled(all)
}

/// Each side's percentiles of every timed stream, its runs' calls pooled.
fn pooled_latencies(out: &mut String, sides: &[Side]) {
    let _ = writeln!(out, "\nlatency, each side's runs pooled (bucket midpoints):");
    latency_heading(out, "target / side");
    for name in stream_names(sides) {
        let rows: Vec<(&str, LatencySummary)> = sides
            .iter()
            .filter_map(|side| {
                let stats = pooled(side, |r| super::latency(r, &name).map(|(stats, _)| stats), pool_stats)?;
                Some((side.label.as_str(), LatencySummary::of(&stats)))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        wrap(out, "", "  ", &name);
        for (label, latency) in rows {
            latency_row(out, &format!("  {label}"), &latency);
        }
    }
}

/// Each side's pages per call and nr_ptes distributions, its runs pooled.
fn pooled_distributions(out: &mut String, sides: &[Side]) {
    write_pooled(out, sides, "pages per call, mprotect len", "calls", |side| {
        pooled(side, |r| Some(&r.syscall.pages_per_call), pool_stats)
            .filter(|s| s.count > 0)
            .map(|s| (s.count, histogram_bars(&s.histogram)))
    });
    for name in stream_names(sides).iter().skip(1) {
        let pages_source = sides
            .iter()
            .flat_map(|side| &side.runs)
            .find_map(|run| target(&run.report, name)?.attachment.pages_source.clone());
        if let Some(source) = pages_source {
            write_pooled(out, sides, &format!("pages per call, {source}"), "calls", |side| {
                pooled(side, |r| target(r, name)?.pages_per_call.as_ref(), pool_stats)
                    .map(|s| (s.count, histogram_bars(&s.histogram)))
            });
        }
        let nr_ptes_source = sides
            .iter()
            .flat_map(|side| &side.runs)
            .find_map(|run| target(&run.report, name)?.attachment.nr_ptes_source.clone());
        if let Some(source) = nr_ptes_source {
            write_pooled(out, sides, &format!("nr_ptes, {source}"), "steps", |side| {
                pooled(side, |r| target(r, name)?.nr_ptes.as_ref(), pool_distributions)
                    .map(|d| (d.total(), nr_ptes_bars(&d)))
            });
        }
    }
}

fn target<'a>(report: &'a Report, name: &str) -> Option<&'a TargetReport> {
    report.targets.iter().find(|t| t.attachment.name == name)
}

/// One distribution of every side that has it: a title, then each side's histogram.
fn write_pooled(
    out: &mut String,
    sides: &[Side],
    title: &str,
    what: &str,
    bars: impl Fn(&Side) -> Option<(u64, Vec<mail_layout::Bar>)>,
) {
    let per_side: Vec<(&str, u64, Vec<mail_layout::Bar>)> = sides
        .iter()
        .filter_map(|side| bars(side).map(|(total, bars)| (side.label.as_str(), total, bars)))
        .collect();
    if per_side.is_empty() {
        return;
    }
    out.push('\n');
    wrap(out, "", "  ", &format!("{title}, each side's runs pooled:"));
    for (label, total, bars) in per_side {
        field(out, &format!("{label}:"), &format!("{total} {what}"));
        histogram(out, &bars);
    }
}
