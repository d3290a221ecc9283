//! `mprotect-trace compare A B [C ...]`: each side one run or a directory
//! of repeated runs, the first the baseline. Every test, interval and
//! verdict uses one value per run: iterations of one run are not
//! independent (they drift together), runs are.

mod files;
mod mail;
mod side;
mod text;

use anyhow::{Result, bail};
use serde::Serialize;

pub use files::{compare_into, publish, write_outputs};
pub use side::{Order, OrderKind, Run, Side, label};
/// A metric's verdict in words, as the comparison prints it.
pub use text::verdict as verdict_text;

use crate::model::profile::logical_function;
use crate::model::{Difference, Machine, Report, ValueStats};
use crate::statistics::{self, ALPHA, Detectable, Interval, RankTest};

/// The syscall's row among the targets.
pub const SYSCALL: &str = "mprotect (syscall)";
/// Functions listed in the sampled decomposition.
const SAMPLED_ROWS: usize = 10;
/// A sampled function whose time changed by less than this (ns/page per
/// iteration: the tables print two decimals) did not change: not listed.
const NO_CHANGE_NS_PER_PAGE: f64 = 0.005;
/// Self samples below which, on both sides, a function's shift means
/// nothing: one standard error of n samples is sqrt(n), a third of 9.
pub const FEW_SAMPLES: u64 = 10;
/// Runs a side needs before the rank test can reach `ALPHA` (4 and 4: p >= 2/70).
pub const FEWEST_RUNS: usize = 4;

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub sides: Vec<SideSummary>,
    pub design: Design,
    /// Differences a reader must know about (kernels, CPUs, backends, order).
    pub notes: Vec<String>,
    /// Why sides that differ in their settings were compared all the same.
    pub allowed_by: Option<String>,
    /// Each side after the first, against the first.
    pub against_baseline: Vec<PairComparison>,
}

#[derive(Debug, Serialize)]
pub struct SideSummary {
    pub label: String,
    pub path: String,
    pub runs: Vec<String>,
    pub kernel_release: String,
    pub traced: String,
}

#[derive(Debug, Serialize)]
pub struct Design {
    /// Runs on each side, in side order.
    pub runs: Vec<usize>,
    pub order: Order,
    pub unit: &'static str,
    pub test: &'static str,
    pub interval: &'static str,
    pub detectable: &'static str,
    /// What the shift column (`delta_ns_per_page`) is.
    pub shift: &'static str,
    pub alpha: f64,
}

const UNIT: &str =
    "one value per run: the run's median iteration ns/page, and the run's p50 and p99 latency of each target";
const TEST: &str = "two-sided Wilcoxon-Mann-Whitney rank test on the per-run values, exact (permutation distribution, ties as midranks) up to 60 runs";
const INTERVAL: &str = "Hodges-Lehmann: B/A is exp of the median of all pairwise differences of log values, with its exact distribution-free interval of at least 95 %";
const SHIFT: &str = "the Hodges-Lehmann shift of a side against the baseline (B against A): the median of the differences B - A of every pair of their runs' values, not the difference of the two medians beside it";
const DETECTABLE: &str = "the smallest change X this design detects with 80 % power at alpha 0.05 (B/A above 1 + X or below 1/(1 + X)), from the pooled run-to-run spread of the log values (t approximation scaled by the rank test's efficiency 3/pi)";

#[derive(Debug, Serialize)]
pub struct PairComparison {
    pub a: String,
    pub b: String,
    /// Settings that differ between the two sides' runs.
    pub differences: Vec<Difference>,
    /// The workload first, then each target's p50 and p99 latency.
    pub metrics: Vec<MetricDelta>,
    pub targets: Vec<TargetCost>,
    /// Shift of the workload's mean iteration ns/page: the denominator of
    /// every "share of the delta".
    pub workload_delta_ns_per_page: Option<Delta>,
    pub sampled: Vec<SampledDelta>,
    pub home: Home,
    /// Set when the two sides' base pages differ (a 64 kB ppc64le kernel
    /// against a 4 kB one): what "per page" means on each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_pages: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub runs: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The median and range of `runs`; `None` for no runs.
    pub fn of(runs: Vec<f64>) -> Option<Spread> {
        let median = statistics::median(&runs)?;
        let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread { runs, median, min, max })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Significant,
    NotSignificant,
    /// The design cannot support a claim (one run a side, or too few runs).
    NoClaim,
}

#[derive(Debug, Serialize)]
pub struct MetricDelta {
    pub metric: String,
    pub unit: &'static str,
    pub a: Spread,
    pub b: Spread,
    /// B/A by Hodges-Lehmann on log values (the plain ratio for one run a side).
    pub ratio: f64,
    pub ratio_interval: Option<Interval>,
    pub test: Option<RankTest>,
    pub verdict: Verdict,
    /// The smallest relative change (0.084: ±8.4 %) this design could detect.
    pub detectable_change: Option<f64>,
    /// Why there is no verdict, or no detectable change.
    pub reason: Option<String>,
}

/// One metric of two sides, one value per run: B/A with its interval, the
/// rank test and its verdict.
pub fn metric_delta(metric: String, unit: &'static str, a: Vec<f64>, b: Vec<f64>) -> Option<MetricDelta> {
    // Ratios live on the log scale; a zero latency or time has no ratio.
    if a.iter().chain(&b).any(|v| *v <= 0.0 || !v.is_finite()) {
        return None;
    }
    let (log_a, log_b): (Vec<f64>, Vec<f64>) = (a.iter().map(|v| v.ln()).collect(), b.iter().map(|v| v.ln()).collect());
    let shift = statistics::shift(&log_a, &log_b)?;
    let (m, n) = (a.len(), b.len());
    let (test, verdict, detectable_change, reason) = match statistics::detectable(&log_a, &log_b) {
        Detectable::NoSpread => (
            None,
            Verdict::NoClaim,
            None,
            Some(format!(
                "{m} and {n} runs: no run-to-run spread was measured, so no significance claim; repeat each side with --repeat 5"
            )),
        ),
        Detectable::TooFewRuns { smallest_p } => (
            None,
            Verdict::NoClaim,
            None,
            Some(format!(
                "{m} and {n} runs: the smallest p this design can reach is {smallest_p:.3}, not below {ALPHA}; use at least {FEWEST_RUNS} runs a side"
            )),
        ),
        Detectable::Shift { shift, .. } => {
            let test = statistics::rank_test(&a, &b)?;
            let verdict = if test.significant() {
                Verdict::Significant
            } else {
                Verdict::NotSignificant
            };
            (Some(test), verdict, Some(shift.exp() - 1.0), None)
        }
    };
    Some(MetricDelta {
        metric,
        unit,
        a: Spread::of(a)?,
        b: Spread::of(b)?,
        ratio: shift.estimate.exp(),
        ratio_interval: shift.interval.map(|i| i.map(f64::exp)),
        test,
        verdict,
        detectable_change,
        reason,
    })
}

/// A difference B - A with the interval it can honestly be given.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Delta {
    pub estimate: f64,
    pub interval: Option<Interval>,
    pub interval_from: IntervalSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalSource {
    /// Hodges-Lehmann over runs: run-to-run spread included.
    Runs,
    /// One run a side: the binomial error of the sample counts only.
    SamplingOnly,
    None,
}

fn run_delta(a: &[f64], b: &[f64]) -> Option<Delta> {
    let shift = statistics::shift(a, b)?;
    let from = if shift.interval.is_some() {
        IntervalSource::Runs
    } else {
        IntervalSource::None
    };
    Some(Delta {
        estimate: shift.estimate,
        interval: shift.interval,
        interval_from: from,
    })
}

/// Calls and time per workload iteration of one target.
#[derive(Debug, Serialize)]
pub struct TargetCost {
    pub name: String,
    pub backend_a: Option<String>,
    pub backend_b: Option<String>,
    /// Medians over each side's runs.
    pub calls_per_iteration_a: Option<f64>,
    pub calls_per_iteration_b: Option<f64>,
    pub ns_per_page_a: Option<f64>,
    pub ns_per_page_b: Option<f64>,
    pub delta_ns_per_page: Option<Delta>,
    pub share_of_workload_delta: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct SampledDelta {
    pub name: String,
    /// Samples with this function as the leaf, summed over the side's runs.
    pub a_self_samples: u64,
    pub b_self_samples: u64,
    /// Self share x syscall ns/page per iteration: medians over runs.
    pub a_ns_per_page: f64,
    pub b_ns_per_page: f64,
    pub delta_ns_per_page: Delta,
    pub share_of_workload_delta: Option<f64>,
    /// Fewer than [`FEW_SAMPLES`] self samples on each side: its shift is noise.
    pub few_samples: bool,
}

/// The function the workload's delta lives in, if the design can say.
#[derive(Debug, Serialize)]
pub struct Home {
    pub function: Option<String>,
    pub explanation: String,
}

/// Compares every side against the first. Refuses sides whose runs are
/// not repetitions of one configuration, and sides that differ in how
/// they measured, unless `allowed_by` says why they may (`--force`).
pub fn compare(sides: &[Side], allowed_by: Option<&str>) -> Result<Comparison> {
    if sides.len() < 2 {
        bail!("compare needs at least two sides: a baseline and one to compare against it");
    }
    let mut notes = Vec::new();
    for side in sides {
        let found = side.inconsistencies();
        if found.is_empty() {
            continue;
        }
        let message = format!(
            "the runs of {} ({}) are not repetitions of one configuration: {}",
            side.label,
            side.path.display(),
            found.join("; ")
        );
        let Some(allowed_by) = allowed_by else {
            bail!("{message}: remove the odd runs, or pass --force");
        };
        notes.push(format!("{message} (compared anyway: {allowed_by})"));
    }
    let order = side::order(sides);
    if order.kind == OrderKind::NotInterleaved {
        notes.push(format!(
            "the runs were not interleaved (order {}): a drift over time reads as a difference; `mprotect-trace ab` interleaves",
            order.sequence
        ));
    }
    let baseline = &sides[0];
    let mut against_baseline = Vec::new();
    for side in &sides[1..] {
        let differences = differences(baseline, side);
        let shaping: Vec<String> = differences
            .iter()
            .filter(|d| d.shaping)
            .map(Difference::describe)
            .collect();
        if !shaping.is_empty() {
            let message = format!("{} and {} differ in {}", baseline.label, side.label, shaping.join(", "));
            if allowed_by.is_none() {
                bail!("{message}: compare runs of one configuration, or pass --force");
            }
        }
        notes.extend(machine_notes(baseline, side));
        against_baseline.push(pair(baseline, side, differences, &mut notes));
    }
    let summaries = sides
        .iter()
        .map(|side| SideSummary {
            label: side.label.clone(),
            path: side.path.display().to_string(),
            runs: side.runs.iter().map(|run| run.name.clone()).collect(),
            kernel_release: side
                .runs
                .first()
                .map(|run| run.report.kernel_release.clone())
                .unwrap_or_default(),
            traced: side
                .representative()
                .map(crate::output::table::what_was_traced)
                .unwrap_or_default(),
        })
        .collect();
    Ok(Comparison {
        sides: summaries,
        design: Design {
            runs: sides.iter().map(|side| side.runs.len()).collect(),
            order,
            unit: UNIT,
            test: TEST,
            interval: INTERVAL,
            detectable: DETECTABLE,
            shift: SHIFT,
            alpha: ALPHA,
        },
        notes,
        allowed_by: allowed_by.map(str::to_owned),
        against_baseline,
    })
}

/// Settings that differ between the first runs of two sides; for reports
/// older than recorded settings, the workload's shape.
pub(super) fn differences(a: &Side, b: &Side) -> Vec<Difference> {
    let (Some(ra), Some(rb)) = (a.runs.first(), b.runs.first()) else {
        return Vec::new();
    };
    if let (Some(sa), Some(sb)) = (&ra.report.settings, &rb.report.settings) {
        return sa.differences(sb);
    }
    let describe = |report: &Report| {
        report.workload.as_ref().map_or_else(
            || format!("{} {}", report.scope.name(), report.command.join(" ")),
            |w| {
                format!(
                    "{} {} MiB, {} iterations + {} warmup, {} rounds, {} threads",
                    w.scenario, w.mapping_mb, w.iterations, w.warmup, w.rounds, w.threads
                )
            },
        )
    };
    let (da, db) = (describe(&ra.report), describe(&rb.report));
    if da == db {
        return Vec::new();
    }
    vec![Difference {
        setting: "workload".to_owned(),
        a: da,
        b: db,
        shaping: true,
    }]
}

fn machine_notes(a: &Side, b: &Side) -> Vec<String> {
    let (Some(ra), Some(rb)) = (a.runs.first(), b.runs.first()) else {
        return Vec::new();
    };
    let (ra, rb) = (&ra.report, &rb.report);
    let mut notes = Vec::new();
    if ra.kernel_release != rb.kernel_release {
        notes.push(format!(
            "kernels differ: {} {} vs {} {}",
            a.label, ra.kernel_release, b.label, rb.kernel_release
        ));
    }
    if ra.cpu_model != rb.cpu_model || ra.cpus != rb.cpus {
        notes.push(format!(
            "CPUs differ: {} {} x{} vs {} {} x{}",
            a.label, ra.cpu_model, ra.cpus, b.label, rb.cpu_model, rb.cpus
        ));
    }
    if let (Some(ma), Some(mb)) = (&ra.machine, &rb.machine) {
        let differing = machine_differences(ma, mb);
        if !differing.is_empty() {
            notes.push(format!(
                "machines differ: {} (A: {} vs B: {})",
                differing
                    .iter()
                    .map(|(name, _, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                differing
                    .iter()
                    .map(|(_, x, _)| x.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                differing
                    .iter()
                    .map(|(_, _, y)| y.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    for side in [a, b] {
        if side.runs.iter().any(|run| run.report.settings.is_none()) {
            notes.push(format!(
                "{} has runs older than recorded settings (report schema < 3): only their workload's shape was checked",
                side.label
            ));
        }
    }
    notes
}

/// Per-page figures of kernels with different base pages (a 64 kB ppc64le
/// kernel against a 4 kB x86 one) are per different pages: said once.
fn page_size_note(a: &Side, b: &Side) -> Option<String> {
    let page_kb = |side: &Side| side.runs.first()?.report.workload.as_ref().map(|w| w.kernel_page_kb);
    let (ka, kb) = (page_kb(a)?, page_kb(b)?);
    (ka != kb && ka > 0 && kb > 0).then(|| {
        let (la, lb) = (&a.label, &b.label);
        format!(
            "base pages differ: {la} {ka} kB, {lb} {kb} kB: every per-page figure is per {ka} kB page on {la} and per {kb} kB page on {lb} (the same mapping is {} times fewer pages on the {} kB side); compare per call or per MB",
            ka.max(kb) / ka.min(kb),
            ka.max(kb)
        )
    })
}

/// What differs between two machines beyond the CPU model and count,
/// which [`machine_notes`] says already: (what, A's value, B's value).
fn machine_differences(a: &Machine, b: &Machine) -> Vec<(String, String, String)> {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let number = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut found: Vec<(String, String, String)> = [
        ("cpu vendor", text(&a.cpu_vendor), text(&b.cpu_vendor)),
        ("cpu family", text(&a.cpu_family), text(&b.cpu_family)),
        ("cpu model number", text(&a.cpu_model_number), text(&b.cpu_model_number)),
        ("stepping", text(&a.cpu_stepping), text(&b.cpu_stepping)),
        ("microcode", text(&a.microcode), text(&b.microcode)),
        ("memory KiB", number(a.memory_kib), number(b.memory_kib)),
        (
            "NUMA nodes",
            number(a.numa_nodes.map(|n| n as u64)),
            number(b.numa_nodes.map(|n| n as u64)),
        ),
        ("page size", number(a.page_size), number(b.page_size)),
    ]
    .into_iter()
    .filter(|(_, x, y)| x != y)
    .map(|(name, x, y)| (name.to_owned(), x, y))
    .collect();
    for (what, ma, mb) in [
        ("thp", &a.thp, &b.thp),
        ("vulnerabilities", &a.vulnerabilities, &b.vulnerabilities),
    ] {
        let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        for key in keys {
            let (x, y) = (ma.get(key), mb.get(key));
            if x != y {
                let value = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".to_owned());
                found.push((format!("{what} {key}"), value(x), value(y)));
            }
        }
    }
    found
}

/// The latency stream of `name` (the syscall or a target) in one run.
pub fn latency<'a>(report: &'a Report, name: &str) -> Option<(&'a ValueStats, String)> {
    if name == SYSCALL {
        return Some((&report.syscall.latency_ns, report.syscall.backend.label().to_owned()))
            .filter(|(stats, _)| stats.count > 0);
    }
    let target = report.targets.iter().find(|t| t.attachment.name == name)?;
    Some((
        target.latency_ns.as_ref()?,
        target.attachment.backend.label().to_owned(),
    ))
}

/// Workload iterations run (warmup included, every thread and round) and pages.
pub fn iterations(report: &Report) -> Option<(f64, f64)> {
    let w = report.workload.as_ref()?;
    Some((w.iterations_run() as f64, w.pages as f64))
}

/// Time in `name` (the syscall or a target) per workload iteration and page.
fn ns_per_iteration_per_page(report: &Report, name: &str) -> Option<f64> {
    let (stats, _) = latency(report, name)?;
    let (n, pages) = iterations(report)?;
    Some(stats.total as f64 / n / pages)
}

fn per_run(side: &Side, value: impl Fn(&Report) -> Option<f64>) -> Vec<f64> {
    side.runs.iter().filter_map(|run| value(&run.report)).collect()
}

fn pair(a: &Side, b: &Side, differences: Vec<Difference>, notes: &mut Vec<String>) -> PairComparison {
    // Said among the notes and kept with the pair (the lab prints it there).
    let base_pages = page_size_note(a, b);
    notes.extend(base_pages.clone());
    let mut metrics = Vec::new();
    let workload_median = |r: &Report| r.workload.as_ref().map(|w| w.iteration_ns_per_page_median);
    metrics.extend(metric_delta(
        "iteration ns/page (run median)".to_owned(),
        "ns/page",
        per_run(a, workload_median),
        per_run(b, workload_median),
    ));
    let workload_mean = |r: &Report| r.workload.as_ref().map(|w| w.iteration_ns_per_page);
    let workload_delta = run_delta(&per_run(a, workload_mean), &per_run(b, workload_mean));
    let mut names = vec![SYSCALL.to_owned()];
    for run in a.runs.iter().chain(&b.runs) {
        for target in &run.report.targets {
            if !names.contains(&target.attachment.name) {
                names.push(target.attachment.name.clone());
            }
        }
    }
    let mut targets = Vec::new();
    for name in &names {
        for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
            let value = |r: &Report| latency(r, name).and_then(|(stats, _)| stats.quantile(q));
            metrics.extend(metric_delta(
                format!("{name} {label}"),
                "ns",
                per_run(a, value),
                per_run(b, value),
            ));
        }
        targets.push(target_cost(a, b, name, workload_delta.map(|d| d.estimate), notes));
    }
    let sampled = sampled_deltas(a, b, workload_delta.map(|d| d.estimate));
    let home = home(metrics.first(), &sampled);
    PairComparison {
        a: a.label.clone(),
        b: b.label.clone(),
        differences,
        metrics,
        targets,
        workload_delta_ns_per_page: workload_delta,
        sampled,
        home,
        base_pages,
    }
}

fn target_cost(a: &Side, b: &Side, name: &str, workload_delta: Option<f64>, notes: &mut Vec<String>) -> TargetCost {
    let backend = |side: &Side| {
        side.runs
            .iter()
            .find_map(|run| latency(&run.report, name).map(|(_, backend)| backend))
    };
    let (backend_a, backend_b) = (backend(a), backend(b));
    if let (Some(x), Some(y)) = (&backend_a, &backend_b)
        && x != y
    {
        notes.push(format!("{name}: {} used {x} and {} {y}", a.label, b.label));
    }
    let calls = |r: &Report| {
        let (stats, _) = latency(r, name)?;
        Some(stats.count as f64 / iterations(r)?.0)
    };
    let cost = |r: &Report| ns_per_iteration_per_page(r, name);
    let (cost_a, cost_b) = (per_run(a, cost), per_run(b, cost));
    let delta = run_delta(&cost_a, &cost_b);
    TargetCost {
        name: name.to_owned(),
        backend_a,
        backend_b,
        calls_per_iteration_a: statistics::median(&per_run(a, calls)),
        calls_per_iteration_b: statistics::median(&per_run(b, calls)),
        ns_per_page_a: statistics::median(&cost_a),
        ns_per_page_b: statistics::median(&cost_b),
        share_of_workload_delta: delta
            .zip(workload_delta)
            .filter(|(_, w)| *w != 0.0)
            .map(|(d, w)| d.estimate / w),
        delta_ns_per_page: delta,
    }
}

/// Each function's self share of the in-syscall samples times the run's
/// syscall ns/page per iteration: self shares add up to 1, so these add
/// up to the syscall's time, and work where no function probe attaches.
fn sampled_deltas(a: &Side, b: &Side, workload_delta: Option<f64>) -> Vec<SampledDelta> {
    let syscall_per_page = |r: &Report| ns_per_iteration_per_page(r, SYSCALL);
    let sampled = |side: &Side| {
        side.runs
            .iter()
            .all(|run| run.report.sampling.is_some() && syscall_per_page(&run.report).is_some())
    };
    if !sampled(a) || !sampled(b) {
        return Vec::new();
    }
    // By logical function: inlined on one kernel and called on the other
    // is the same function (with debug info, inlined frames are named).
    let mut names: Vec<&str> = Vec::new();
    for run in a.runs.iter().chain(&b.runs) {
        for function in run.report.sampling.iter().flat_map(|p| &p.functions) {
            let name = logical_function(&function.name);
            if function.self_samples > 0 && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    // (share, samples in the syscall, syscall ns/page, self samples) of one run.
    let shares = |r: &Report, name: &str| {
        let profile = r.sampling.as_ref()?;
        let mine = || profile.functions.iter().filter(|f| logical_function(&f.name) == name);
        Some((
            // Not sum(): f64's sum of nothing (a function this run did not
            // sample) is -0.0, which the tables print as -0.00.
            mine().fold(0.0, |share, f| share + f.self_share),
            profile.in_syscall_samples,
            syscall_per_page(r)?,
            mine().map(|f| f.self_samples).sum::<u64>(),
        ))
    };
    let mut rows: Vec<SampledDelta> = names
        .into_iter()
        .filter_map(|name| {
            let side_values = |side: &Side| -> Vec<(f64, u64, f64, u64)> {
                side.runs.iter().filter_map(|run| shares(&run.report, name)).collect()
            };
            let (va, vb) = (side_values(a), side_values(b));
            let ns = |v: &[(f64, u64, f64, u64)]| -> Vec<f64> { v.iter().map(|(s, _, t, _)| s * t).collect() };
            let (ns_a, ns_b) = (ns(&va), ns(&vb));
            let mut delta = run_delta(&ns_a, &ns_b)?;
            if va.len() == 1 && vb.len() == 1 {
                delta.interval = Some(sampling_interval(va[0], vb[0], delta.estimate));
                delta.interval_from = IntervalSource::SamplingOnly;
            }
            let (a_self_samples, b_self_samples) = (va.iter().map(|v| v.3).sum(), vb.iter().map(|v| v.3).sum());
            Some(SampledDelta {
                name: name.to_owned(),
                a_self_samples,
                b_self_samples,
                few_samples: a_self_samples.max(b_self_samples) < FEW_SAMPLES,
                a_ns_per_page: statistics::median(&ns_a)?,
                b_ns_per_page: statistics::median(&ns_b)?,
                share_of_workload_delta: workload_delta.filter(|w| *w != 0.0).map(|w| delta.estimate / w),
                delta_ns_per_page: delta,
            })
        })
        .filter(|row| row.delta_ns_per_page.estimate.abs() >= NO_CHANGE_NS_PER_PAGE)
        .collect();
    rows.sort_by(|x, y| {
        y.delta_ns_per_page
            .estimate
            .abs()
            .total_cmp(&x.delta_ns_per_page.estimate.abs())
    });
    rows.truncate(SAMPLED_ROWS);
    rows
}

/// With one run a side, the 95 % normal interval of the binomial error of
/// both self shares, scaled to ns/page: sampling error only.
fn sampling_interval(a: (f64, u64, f64, u64), b: (f64, u64, f64, u64), delta: f64) -> Interval {
    let variance = |(share, samples, total, _): (f64, u64, f64, u64)| {
        if samples == 0 {
            0.0
        } else {
            total * total * share * (1.0 - share) / samples as f64
        }
    };
    let z = 1.959_963_984_540_054;
    let half = z * (variance(a) + variance(b)).sqrt();
    Interval {
        low: delta - half,
        high: delta + half,
        confidence: 0.95,
    }
}

fn home(workload: Option<&MetricDelta>, sampled: &[SampledDelta]) -> Home {
    let no_home = |explanation: String| Home {
        function: None,
        explanation,
    };
    let Some(workload) = workload else {
        return no_home("no home: the built-in workload did not run on both sides".to_owned());
    };
    if sampled.is_empty() {
        return no_home("no home: both sides need stack samples and syscall times".to_owned());
    }
    match workload.verdict {
        Verdict::NoClaim => return no_home(format!("no home: {}", workload.reason.clone().unwrap_or_default())),
        Verdict::NotSignificant => {
            return no_home("no home: the workload's difference is not significant".to_owned());
        }
        Verdict::Significant => {}
    }
    let up = workload.ratio > 1.0;
    let found = sampled
        .iter()
        .filter(|row| row.delta_ns_per_page.interval_from == IntervalSource::Runs)
        .filter(|row| {
            row.delta_ns_per_page
                .interval
                .is_some_and(|i| i.excludes(0.0) && (row.delta_ns_per_page.estimate > 0.0) == up)
        })
        .max_by(|x, y| {
            x.delta_ns_per_page
                .estimate
                .abs()
                .total_cmp(&y.delta_ns_per_page.estimate.abs())
        });
    match found {
        Some(row) => Home {
            function: Some(row.name.clone()),
            explanation: format!(
                "the largest change whose interval excludes zero is in {}: {} ns/page [{}, {}]",
                row.name,
                text::signed(row.delta_ns_per_page.estimate),
                text::signed(row.delta_ns_per_page.interval.map_or(0.0, |i| i.low)),
                text::signed(row.delta_ns_per_page.interval.map_or(0.0, |i| i.high))
            ),
        },
        None => no_home(
            "no home: every function's interval includes zero (the change is spread thin, or the runs too few)"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_differ_in_what_their_identities_say() {
        let a = Machine {
            microcode: Some("0xd0003a5".to_owned()),
            page_size: Some(4096),
            thp: [("enabled".to_owned(), "madvise".to_owned())].into(),
            ..Machine::default()
        };
        let mut b = a.clone();
        assert_eq!(machine_differences(&a, &b), Vec::new());
        b.microcode = Some("0xd0003b9".to_owned());
        b.thp.insert("enabled".to_owned(), "always".to_owned());
        b.vulnerabilities
            .insert("retbleed".to_owned(), "Not affected".to_owned());
        let found = machine_differences(&a, &b);
        let expected = [
            ("microcode", "0xd0003a5", "0xd0003b9"),
            ("thp enabled", "madvise", "always"),
            ("vulnerabilities retbleed", "-", "Not affected"),
        ]
        .map(|(what, x, y)| (what.to_owned(), x.to_owned(), y.to_owned()));
        assert_eq!(found, expected);
    }
}
