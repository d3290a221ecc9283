//! `mprotect-trace compare A B`: two saved runs (two kernels), function by
//! function, and how much of the workload's change each function explains.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::model::{Histogram, LatencySummary, Profile, Report, ValueStats, WorkloadResult};

/// Two-sided significance level of the Mann-Whitney U tests.
pub const ALPHA: f64 = 0.05;

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Differences a reader must know about (kernel, CPU, backends).
    pub notes: Vec<String>,
    pub workload: Option<WorkloadDelta>,
    pub targets: Vec<TargetDelta>,
    /// From stack samples: each kernel function's self share of the
    /// in-syscall samples times the syscall's ns/page per iteration. Self
    /// shares add up to 1, so these deltas add up to the syscall's delta:
    /// the attribution works where no function probe can attach.
    pub sampled: Vec<SampledDelta>,
    pub test: &'static str,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SampledDelta {
    pub name: String,
    pub a_self_share: f64,
    pub b_self_share: f64,
    pub a_ns_per_page: f64,
    pub b_ns_per_page: f64,
    pub delta_ns_per_page: f64,
    pub share_of_workload_delta: Option<f64>,
}

/// Functions listed in the sampled decomposition.
const SAMPLED_ROWS: usize = 10;

fn sampled_deltas(a: &Report, b: &Report, targets: &[TargetDelta], workload_delta: Option<f64>) -> Vec<SampledDelta> {
    let (Some(pa), Some(pb)) = (&a.sampling, &b.sampling) else {
        return Vec::new();
    };
    let syscall = targets.iter().find(|t| t.name == "mprotect (syscall)");
    let per_page = |side: Option<&Side>| side.and_then(|s| s.ns_per_iteration_per_page);
    let (Some(a_total), Some(b_total)) = (
        per_page(syscall.and_then(|t| t.a.as_ref())),
        per_page(syscall.and_then(|t| t.b.as_ref())),
    ) else {
        return Vec::new();
    };
    let self_share = |profile: &Profile, name: &str| {
        profile
            .functions
            .iter()
            .find(|f| f.name == name)
            .map_or(0.0, |f| f.self_share)
    };
    let mut names: Vec<&str> = Vec::new();
    for function in pa.functions.iter().chain(&pb.functions) {
        if function.self_samples > 0 && !names.contains(&function.name.as_str()) {
            names.push(&function.name);
        }
    }
    let mut rows: Vec<SampledDelta> = names
        .into_iter()
        .map(|name| {
            let (a_share, b_share) = (self_share(pa, name), self_share(pb, name));
            let (a_ns, b_ns) = (a_share * a_total, b_share * b_total);
            SampledDelta {
                name: name.to_owned(),
                a_self_share: a_share,
                b_self_share: b_share,
                a_ns_per_page: a_ns,
                b_ns_per_page: b_ns,
                delta_ns_per_page: b_ns - a_ns,
                share_of_workload_delta: workload_delta.filter(|w| *w != 0.0).map(|w| (b_ns - a_ns) / w),
            }
        })
        .collect();
    rows.sort_by(|x, y| y.delta_ns_per_page.abs().total_cmp(&x.delta_ns_per_page.abs()));
    rows.truncate(SAMPLED_ROWS);
    rows
}

#[derive(Debug, Serialize, PartialEq)]
pub struct WorkloadDelta {
    pub a_iteration_ns_per_page: f64,
    pub b_iteration_ns_per_page: f64,
    pub delta_ns_per_page: f64,
    pub ratio: f64,
    pub test: MannWhitney,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Side {
    pub backend: String,
    pub calls: u64,
    pub calls_per_iteration: Option<f64>,
    pub mean_ns: Option<f64>,
    pub p50_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    /// This target's time per workload iteration (warmup included), per page.
    pub ns_per_iteration_per_page: Option<f64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TargetDelta {
    pub name: String,
    pub a: Option<Side>,
    pub b: Option<Side>,
    pub mean_ratio: Option<f64>,
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
    pub test: Option<MannWhitney>,
    /// B - A of `ns_per_iteration_per_page`.
    pub delta_ns_per_page: Option<f64>,
    /// That delta as a share of the workload's `iteration_ns_per_page` delta.
    pub share_of_workload_delta: Option<f64>,
}

/// Mann-Whitney U test, normal approximation with tie correction.
#[derive(Debug, Serialize, PartialEq, Clone, Copy)]
pub struct MannWhitney {
    pub u: f64,
    pub z: f64,
    pub p_value: f64,
    pub significant: bool,
}

/// Compares `b` against `a`. Refuses runs of different workloads unless `force`.
pub fn compare(a: &Report, b: &Report, a_name: &str, b_name: &str, force: bool) -> Result<Comparison> {
    let mut notes = Vec::new();
    match (&a.workload, &b.workload) {
        (Some(wa), Some(wb)) => {
            let shape = |w: &WorkloadResult| {
                (
                    w.scenario.clone(),
                    w.mapping_mb,
                    w.iterations,
                    w.warmup,
                    w.rounds,
                    w.threads,
                )
            };
            if shape(wa) != shape(wb) {
                let describe = |w: &WorkloadResult| {
                    format!(
                        "{} {} MiB, {} iterations + {} warmup, {} rounds, {} threads",
                        w.scenario, w.mapping_mb, w.iterations, w.warmup, w.rounds, w.threads
                    )
                };
                let message = format!("the workloads differ: A is {}, B is {}", describe(wa), describe(wb));
                if !force {
                    bail!("{message}: compare runs of the same workload, or pass --force");
                }
                notes.push(format!("{message} (--force)"));
            }
        }
        (None, None) => {}
        _ => {
            if !force {
                bail!("only one run traced the built-in workload: compare like with like, or pass --force");
            }
            notes.push("only one run traced the built-in workload (--force)".to_owned());
        }
    }
    if a.kernel_release != b.kernel_release {
        notes.push(format!(
            "kernels differ: A {} vs B {}",
            a.kernel_release, b.kernel_release
        ));
    }
    if a.cpu_model != b.cpu_model || a.cpus != b.cpus {
        notes.push(format!(
            "CPUs differ: A {} x{} vs B {} x{}",
            a.cpu_model, a.cpus, b.cpu_model, b.cpus
        ));
    }

    let workload = match (&a.workload, &b.workload) {
        (Some(wa), Some(wb)) => {
            let per_page = |w: &WorkloadResult| -> Vec<f64> {
                let p = &w.per_iteration_ns;
                (0..p.protect.len())
                    .map(|i| (p.protect[i] + p.restore[i] + p.post_touch[i]) as f64 / w.pages as f64)
                    .collect()
            };
            Some(WorkloadDelta {
                a_iteration_ns_per_page: wa.iteration_ns_per_page,
                b_iteration_ns_per_page: wb.iteration_ns_per_page,
                delta_ns_per_page: wb.iteration_ns_per_page - wa.iteration_ns_per_page,
                ratio: wb.iteration_ns_per_page / wa.iteration_ns_per_page,
                test: mann_whitney_samples(&per_page(wa), &per_page(wb)),
            })
        }
        _ => None,
    };
    let workload_delta = workload.as_ref().map(|w| w.delta_ns_per_page);

    let mut names: Vec<String> = vec!["mprotect (syscall)".to_owned()];
    for target in a.targets.iter().chain(&b.targets) {
        if !names.contains(&target.attachment.name) {
            names.push(target.attachment.name.clone());
        }
    }
    let targets = names
        .into_iter()
        .map(|name| {
            let (sa, ha) = side(a, &name);
            let (sb, hb) = side(b, &name);
            if let (Some(x), Some(y)) = (&sa, &sb)
                && x.backend != y.backend
            {
                notes.push(format!("{name}: A used {} and B {}", x.backend, y.backend));
            }
            let ratio = |f: fn(&Side) -> Option<f64>| match (&sa, &sb) {
                (Some(x), Some(y)) => match (f(x), f(y)) {
                    (Some(x), Some(y)) if x > 0.0 => Some(y / x),
                    _ => None,
                },
                _ => None,
            };
            let delta = match (&sa, &sb) {
                (Some(x), Some(y)) => x
                    .ns_per_iteration_per_page
                    .zip(y.ns_per_iteration_per_page)
                    .map(|(x, y)| y - x),
                _ => None,
            };
            TargetDelta {
                mean_ratio: ratio(|s| s.mean_ns),
                p50_ratio: ratio(|s| s.p50_ns),
                p99_ratio: ratio(|s| s.p99_ns),
                test: ha
                    .zip(hb)
                    .map(|(x, y)| mann_whitney_histograms(&x.histogram, &y.histogram)),
                share_of_workload_delta: delta.zip(workload_delta).filter(|(_, w)| *w != 0.0).map(|(d, w)| d / w),
                delta_ns_per_page: delta,
                name,
                a: sa,
                b: sb,
            }
        })
        .collect::<Vec<_>>();
    let sampled = sampled_deltas(a, b, &targets, workload_delta);
    Ok(Comparison {
        a: a_name.to_owned(),
        b: b_name.to_owned(),
        notes,
        workload,
        targets,
        sampled,
        test: "two-sided Mann-Whitney U, normal approximation with tie correction, alpha 0.05: on per-iteration workload times, and on latency histograms (values in one bucket count as ties)",
    })
}

/// The latency numbers of `name` in `report`, if it was measured there.
fn side<'a>(report: &'a Report, name: &str) -> (Option<Side>, Option<&'a ValueStats>) {
    let (backend, stats) = if name == "mprotect (syscall)" {
        (
            report.syscall.backend.label().to_owned(),
            Some(&report.syscall.latency_ns),
        )
    } else {
        match report.targets.iter().find(|t| t.attachment.name == name) {
            Some(target) => (target.attachment.backend.label().to_owned(), target.latency_ns.as_ref()),
            None => return (None, None),
        }
    };
    let Some(stats) = stats else {
        return (None, None);
    };
    let summary = LatencySummary::of(stats);
    let iterations = report
        .workload
        .as_ref()
        .map(|w| ((w.iterations + w.warmup) * w.rounds * w.threads, w.pages));
    let side = Side {
        backend,
        calls: summary.calls,
        calls_per_iteration: iterations.map(|(n, _)| summary.calls as f64 / n as f64),
        mean_ns: summary.mean_ns,
        p50_ns: summary.p50_ns,
        p99_ns: summary.p99_ns,
        ns_per_iteration_per_page: iterations.map(|(n, pages)| stats.total as f64 / n as f64 / pages as f64),
    };
    (Some(side), Some(stats))
}

/// Mann-Whitney U of raw samples.
pub fn mann_whitney_samples(a: &[f64], b: &[f64]) -> MannWhitney {
    let mut values: Vec<(f64, u64, u64)> = Vec::new();
    let mut sorted: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, true))
        .chain(b.iter().map(|&v| (v, false)))
        .collect();
    sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
    for (value, from_a) in sorted {
        match values.last_mut() {
            Some(last) if last.0 == value => {
                if from_a {
                    last.1 += 1
                } else {
                    last.2 += 1
                }
            }
            _ => values.push((value, u64::from(from_a), u64::from(!from_a))),
        }
    }
    mann_whitney_groups(values.iter().map(|&(_, na, nb)| (na, nb)))
}

/// Mann-Whitney U of two histograms of the same bucket layout.
pub fn mann_whitney_histograms(a: &Histogram, b: &Histogram) -> MannWhitney {
    let mut lows: Vec<u64> = a.buckets.iter().chain(&b.buckets).map(|bucket| bucket.0).collect();
    lows.sort_unstable();
    lows.dedup();
    let count = |h: &Histogram, low: u64| {
        h.buckets
            .iter()
            .find(|bucket| bucket.0 == low)
            .map_or(0, |bucket| bucket.2)
    };
    mann_whitney_groups(lows.into_iter().map(|low| (count(a, low), count(b, low))))
}

/// U from groups of tied values in ascending order: (count in A, count in B).
fn mann_whitney_groups(groups: impl Iterator<Item = (u64, u64)>) -> MannWhitney {
    let groups: Vec<(u64, u64)> = groups.collect();
    let n1: u64 = groups.iter().map(|g| g.0).sum();
    let n2: u64 = groups.iter().map(|g| g.1).sum();
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let n = n1f + n2f;
    // Rank sum of A, ties getting their mean rank.
    let mut rank_sum_a = 0.0;
    let mut below = 0.0;
    let mut tie_term = 0.0;
    for &(ga, gb) in &groups {
        let t = (ga + gb) as f64;
        let mean_rank = below + (t + 1.0) / 2.0;
        rank_sum_a += ga as f64 * mean_rank;
        tie_term += t * t * t - t;
        below += t;
    }
    let u = rank_sum_a - n1f * (n1f + 1.0) / 2.0;
    if n1 == 0 || n2 == 0 {
        return MannWhitney {
            u,
            z: 0.0,
            p_value: 1.0,
            significant: false,
        };
    }
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        return MannWhitney {
            u,
            z: 0.0,
            p_value: 1.0,
            significant: false,
        };
    }
    let z = (u - mean) / variance.sqrt();
    let p_value = (2.0 * normal_upper_tail(z.abs())).min(1.0);
    MannWhitney {
        u,
        z,
        p_value,
        significant: p_value < ALPHA,
    }
}

/// P(Z > z) for a standard normal Z (Abramowitz-Stegun 7.1.26 erfc, error < 1.5e-7).
fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    0.5 * poly * (-x * x).exp()
}

/// Writes the comparison (text, JSON, HTML, A/B latency CDFs) and, when
/// both runs sampled stacks, the differential flame graph into `dir`.
pub fn write_outputs(a: &Report, b: &Report, text: &str, json: &str, dir: &std::path::Path) -> Result<()> {
    use anyhow::Context as _;

    use crate::output::{self, Artifact};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {} (choose another with -o DIR)", dir.display()))?;
    let mut artifacts = vec![
        Artifact::new("comparison.txt", text),
        Artifact::new("comparison.json", json),
    ];
    if let (Some(pa), Some(pb)) = (&a.sampling, &b.sampling) {
        let title = format!(
            "compare: {} vs {}",
            output::table::short_label(a),
            output::table::short_label(b)
        );
        artifacts.push(output::flame::differential(&pa.folded(), &pb.folded(), &title)?);
    }
    artifacts.extend(output::plots::render_comparison_cdfs(a, b)?);
    let title = format!("mprotect-trace compare: {} vs {}", a.kernel_release, b.kernel_release);
    artifacts.push(output::html::comparison(&title, text, &artifacts));
    output::write_artifacts(&artifacts, dir)?;
    Ok(())
}

fn opt(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), format)
}

impl Comparison {
    pub fn to_text(&self) -> String {
        let ns = |v: f64| crate::output::table::format_ns(v);
        let mut out = String::new();
        let _ = writeln!(out, "A: {}\nB: {}", self.a, self.b);
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if let Some(w) = &self.workload {
            let _ = writeln!(
                out,
                "\niteration_ns_per_page: A {:.2}, B {:.2}, delta {:+.2} ns/page ({:+.1} %), {} (p = {:.2e})",
                w.a_iteration_ns_per_page,
                w.b_iteration_ns_per_page,
                w.delta_ns_per_page,
                (w.ratio - 1.0) * 100.0,
                if w.test.significant {
                    "significant"
                } else {
                    "not significant"
                },
                w.test.p_value
            );
        }
        let _ = writeln!(
            out,
            "\n{:<24} {:>9} {:>9} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7} {:>12} {:>9}",
            "target",
            "calls/it A",
            "calls/it B",
            "p50 A",
            "p50 B",
            "p50 B/A",
            "p99 A",
            "p99 B",
            "mean B/A",
            "ns/page B-A",
            "of delta"
        );
        for t in &self.targets {
            let field = |s: &Option<Side>, f: fn(&Side) -> Option<f64>| s.as_ref().and_then(f);
            let _ = writeln!(
                out,
                "{:<24} {:>9} {:>9} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7} {:>12} {:>9}{}",
                t.name,
                opt(field(&t.a, |s| s.calls_per_iteration), |v| format!("{v:.2}")),
                opt(field(&t.b, |s| s.calls_per_iteration), |v| format!("{v:.2}")),
                opt(field(&t.a, |s| s.p50_ns), ns),
                opt(field(&t.b, |s| s.p50_ns), ns),
                opt(t.p50_ratio, |v| format!("{v:.3}")),
                opt(field(&t.a, |s| s.p99_ns), ns),
                opt(field(&t.b, |s| s.p99_ns), ns),
                opt(t.mean_ratio, |v| format!("{v:.3}")),
                opt(t.delta_ns_per_page, |v| format!("{v:+.2}")),
                opt(t.share_of_workload_delta, |v| format!("{:.0} %", v * 100.0)),
                match &t.test {
                    Some(test) if test.significant => format!("  significant (p = {:.2e})", test.p_value),
                    Some(test) => format!("  not significant (p = {:.2e})", test.p_value),
                    None => String::new(),
                }
            );
        }
        if let Some(top) = self
            .targets
            .iter()
            .filter(|t| t.name != "mprotect (syscall)")
            .filter_map(|t| t.share_of_workload_delta.map(|s| (t, s)))
            .max_by(|x, y| x.1.total_cmp(&y.1))
            && let Some(w) = &self.workload
        {
            let _ = writeln!(
                out,
                "\n{:.0} % of the {:+.2} ns/page is in {} ({:+.2} ns/page)",
                top.1 * 100.0,
                w.delta_ns_per_page,
                top.0.name,
                top.0.delta_ns_per_page.unwrap_or(0.0)
            );
        }
        if !self.sampled.is_empty() {
            let _ = writeln!(
                out,
                "\nfrom stack samples (self share x syscall ns/page per iteration):\n{:<32} {:>8} {:>8} {:>10} {:>10} {:>11} {:>9}",
                "kernel function", "self A", "self B", "ns/page A", "ns/page B", "B-A", "of delta"
            );
            for row in &self.sampled {
                let _ = writeln!(
                    out,
                    "{:<32} {:>7.1}% {:>7.1}% {:>10.2} {:>10.2} {:>+11.2} {:>9}",
                    row.name,
                    row.a_self_share * 100.0,
                    row.b_self_share * 100.0,
                    row.a_ns_per_page,
                    row.b_ns_per_page,
                    row.delta_ns_per_page,
                    opt(row.share_of_workload_delta, |v| format!("{:.0} %", v * 100.0))
                );
            }
        }
        let _ = writeln!(out, "\ntest: {}", self.test);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mann_whitney_matches_a_hand_computed_example() {
        // A = {1, 2, 3}, B = {4, 5, 6}: U_A = 0, the most extreme split.
        let test = mann_whitney_samples(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(test.u, 0.0);
        // mean 4.5, variance 3*3*7/12 = 5.25 -> z = -4.5/sqrt(5.25)
        assert!((test.z - (-4.5 / 5.25f64.sqrt())).abs() < 1e-12);
        assert!((test.p_value - 0.0495).abs() < 1e-3, "{}", test.p_value);
        // Identical samples: U = n1 n2 / 2, nothing to see.
        let same = mann_whitney_samples(&[5.0, 5.0, 7.0], &[5.0, 5.0, 7.0]);
        assert_eq!((same.u, same.z, same.significant), (4.5, 0.0, false));
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-6);
    }
}
