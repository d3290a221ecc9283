//! What a lab found, per kernel and CPU count: its runs, its failed boots,
//! the workload's iteration ns/page with its spread, the state audit, and
//! the comparisons; as `lab.json`, `lab.txt` and `lab.html`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::LabOptions;
use super::kernels::LabKernel;
use crate::compare::{Comparison, Spread};
use crate::model::Report;
use crate::vm::Accel;

/// How one planned boot ended, retries included.
#[derive(Clone, Debug, Serialize)]
pub struct BootOutcome {
    pub run_dir: PathBuf,
    pub succeeded: bool,
    /// Each failed attempt: why, and where its console is.
    pub failures: Vec<String>,
}

impl BootOutcome {
    pub fn succeeded(run_dir: &Path, failures: Vec<String>) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            succeeded: true,
            failures,
        }
    }

    pub fn failed(run_dir: &Path, failures: Vec<String>) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            succeeded: false,
            failures,
        }
    }
}

/// The page state the workload's audit found, as one line; the runs of a
/// kernel must agree, and the kernels should.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateAudit {
    pub kernel_page_kb: u64,
    pub anon_huge_kb: u64,
    pub thpeligible: u64,
    /// Percent of the mapping in the state the scenario expects.
    pub expected_match_ratio: u64,
}

impl StateAudit {
    fn of(report: &Report) -> Option<Self> {
        let w = report.workload.as_ref()?;
        Some(Self {
            kernel_page_kb: w.kernel_page_kb,
            anon_huge_kb: w.anon_huge_kb,
            thpeligible: w.thpeligible,
            expected_match_ratio: w.expected_match_ratio,
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} kB pages, AnonHugePages {} kB, THPeligible {}, {} % in the expected state",
            self.kernel_page_kb, self.anon_huge_kb, self.thpeligible, self.expected_match_ratio
        )
    }
}

#[derive(Debug, Serialize)]
pub struct CpuCountResult {
    pub smp: u32,
    pub runs: usize,
    pub failed_runs: usize,
    /// Failed boots or runs that were tried again.
    pub failed_attempts: usize,
    /// Each run's median iteration ns/page.
    pub iteration_ns_per_page: Option<Spread>,
    /// (max - min) / median of those.
    pub relative_spread: Option<f64>,
    /// The audit every run agreed on, or each run's when they differ.
    pub audits: Vec<StateAudit>,
}

#[derive(Debug, Serialize)]
pub struct KernelResult {
    pub label: String,
    pub spec: String,
    /// The package, tree revision or image file booted.
    pub source: String,
    /// The image booted, its debug vmlinux (for a kernel the lab built),
    /// and what its config check found.
    pub image: PathBuf,
    pub vmlinux: Option<PathBuf>,
    pub config: String,
    pub arch: String,
    /// `uname -r` in the guest, from its reports.
    pub kernel_release: Option<String>,
    pub accel: Accel,
    pub times: &'static str,
    pub by_smp: Vec<CpuCountResult>,
}

#[derive(Debug, Serialize)]
pub struct ComparisonSummary {
    pub smp: u32,
    pub dir: PathBuf,
    /// Per kernel after the first: the workload's ratio and verdict, and
    /// the functions the sampled delta sits in, largest first.
    pub against_baseline: Vec<KernelDelta>,
}

#[derive(Debug, Serialize)]
pub struct KernelDelta {
    pub baseline: String,
    pub kernel: String,
    pub iteration_ratio: Option<f64>,
    pub verdict: Option<String>,
    /// (function, B - A ns/page), largest change first.
    pub functions: Vec<(String, f64)>,
    /// The function the difference lives in, when the design can say
    /// (the workload's difference significant, the function's interval
    /// over runs excluding zero), and why or why not.
    pub home: Option<String>,
    pub home_explanation: String,
    /// (function, B - A ns/page, interval) of every function whose change
    /// over runs excludes zero in the workload's direction.
    pub significant_functions: Vec<(String, f64, [f64; 2])>,
    /// (target, calls per workload iteration on the baseline, on this
    /// kernel): what stays comparable when times are emulated.
    pub calls_per_iteration: Vec<(String, Option<f64>, Option<f64>)>,
    /// What "per page" means on each side when their base pages differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_pages: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LabSummary {
    pub run_options: Vec<String>,
    pub repeat: u32,
    pub smp: Vec<u32>,
    pub kernels: Vec<KernelResult>,
    /// Where each kernel came from and how its config was checked.
    pub kernel_notes: Vec<String>,
    /// Kernels that could not be booted at all, each with its reason.
    pub refused: Vec<String>,
    pub notes: Vec<String>,
    /// Seconds from the lab's start until every kernel was ready to boot
    /// (downloads and builds; a cached kernel takes none).
    pub kernels_ready_s: Option<f64>,
    pub boots: usize,
    pub failed_attempts: usize,
    pub comparisons: Vec<ComparisonSummary>,
}

/// Functions named as carrying a kernel's difference.
const FUNCTIONS_NAMED: usize = 5;

impl KernelDelta {
    /// The summary of one comparison: ratio, verdict, home and the
    /// functions that carry it.
    pub fn of(pair: &crate::compare::PairComparison) -> KernelDelta {
        kernel_delta(pair)
    }

    /// Where the difference lives, and the functions that carry it: a line
    /// each, indented.
    pub fn write_attribution(&self, out: &mut String, indent: &str) {
        let _ = writeln!(out, "{indent}{}", self.home_explanation);
        if !self.functions.is_empty() {
            let named: Vec<String> = self
                .functions
                .iter()
                .map(|(name, ns)| format!("{name} {ns:+.2}"))
                .collect();
            let _ = writeln!(
                out,
                "{indent}carried by (sampled self time, ns/page per iteration, shift (HL) of B against A): {}",
                named.join(", ")
            );
        }
    }
}

fn kernel_delta(pair: &crate::compare::PairComparison) -> KernelDelta {
    let workload = pair.metrics.first();
    let mut functions: Vec<(String, f64)> = pair
        .sampled
        .iter()
        .map(|s| (s.name.clone(), s.delta_ns_per_page.estimate))
        .filter(|(_, delta)| *delta != 0.0)
        .collect();
    functions.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    functions.truncate(FUNCTIONS_NAMED);
    let up = workload.is_some_and(|m| m.ratio > 1.0);
    let significant_functions = pair
        .sampled
        .iter()
        .filter(|s| s.delta_ns_per_page.interval_from == crate::compare::IntervalSource::Runs)
        .filter_map(|s| {
            let interval = s.delta_ns_per_page.interval?;
            let estimate = s.delta_ns_per_page.estimate;
            (interval.excludes(0.0) && (estimate > 0.0) == up)
                .then(|| (s.name.clone(), estimate, [interval.low, interval.high]))
        })
        .collect();
    KernelDelta {
        baseline: pair.a.clone(),
        kernel: pair.b.clone(),
        iteration_ratio: workload.map(|m| m.ratio),
        verdict: workload.map(|m| match &m.reason {
            Some(reason) => format!("no claim: {reason}"),
            None => format!("{:?}", m.verdict).to_lowercase(),
        }),
        functions,
        home: pair.home.function.clone(),
        home_explanation: pair.home.explanation.clone(),
        significant_functions,
        calls_per_iteration: pair
            .targets
            .iter()
            .map(|t| (t.name.clone(), t.calls_per_iteration_a, t.calls_per_iteration_b))
            .collect(),
        base_pages: pair.base_pages.clone(),
    }
}

impl LabSummary {
    pub fn new(
        options: &LabOptions,
        kernels: &[LabKernel],
        accels: &[Accel],
        outcomes: &[(usize, u32, BootOutcome)],
        comparisons: &[(u32, PathBuf, Comparison)],
        refused: Vec<String>,
        notes: Vec<String>,
    ) -> Result<Self> {
        let mut results = Vec::new();
        for (index, kernel) in kernels.iter().enumerate() {
            let mut release = None;
            let mut by_smp = Vec::new();
            for &smp in &options.smp {
                let mine: Vec<&BootOutcome> = outcomes
                    .iter()
                    .filter(|(k, s, _)| *k == index && *s == smp)
                    .map(|(_, _, outcome)| outcome)
                    .collect();
                let reports: Vec<Report> = mine
                    .iter()
                    .filter(|outcome| outcome.succeeded)
                    .map(|outcome| Report::load(&outcome.run_dir))
                    .collect::<Result<_>>()?;
                release = release.or_else(|| reports.first().map(|r| r.kernel_release.clone()));
                let medians: Vec<f64> = reports
                    .iter()
                    .filter_map(|r| r.workload.as_ref().map(|w| w.iteration_ns_per_page_median))
                    .collect();
                let spread = Spread::of(medians);
                let mut audits: Vec<StateAudit> = reports.iter().filter_map(StateAudit::of).collect();
                audits.dedup();
                by_smp.push(CpuCountResult {
                    smp,
                    runs: reports.len(),
                    failed_runs: mine.iter().filter(|o| !o.succeeded).count(),
                    failed_attempts: mine.iter().map(|o| o.failures.len()).sum(),
                    relative_spread: spread
                        .as_ref()
                        .filter(|s| s.median > 0.0)
                        .map(|s| (s.max - s.min) / s.median),
                    iteration_ns_per_page: spread,
                    audits,
                });
            }
            results.push(KernelResult {
                label: kernel.label.clone(),
                spec: kernel.spec.to_string(),
                source: kernel.image.source.clone(),
                image: kernel.image.path.clone(),
                vmlinux: kernel.vmlinux.clone(),
                config: kernel.config_note.clone(),
                arch: kernel.image.arch.debian().to_owned(),
                kernel_release: release,
                accel: accels[index],
                times: accels[index].time_label(),
                by_smp,
            });
        }
        Ok(Self {
            run_options: options.run_args.clone(),
            repeat: options.repeat.get(),
            smp: options.smp.clone(),
            kernels_ready_s: None,
            boots: outcomes.len(),
            failed_attempts: outcomes.iter().map(|(_, _, o)| o.failures.len()).sum(),
            kernel_notes: kernels
                .iter()
                .map(|k| format!("{}: {}; config {}", k.label, k.image.source, k.config_note))
                .collect(),
            kernels: results,
            refused,
            notes,
            comparisons: comparisons
                .iter()
                .map(|(smp, dir, comparison)| ComparisonSummary {
                    smp: *smp,
                    dir: dir.clone(),
                    against_baseline: comparison.against_baseline.iter().map(kernel_delta).collect(),
                })
                .collect(),
        })
    }

    /// Every kernel given booted, and every planned run succeeded.
    pub fn complete(&self) -> bool {
        self.refused.is_empty()
            && self
                .kernels
                .iter()
                .all(|k| k.by_smp.iter().all(|s| s.failed_runs == 0 && s.runs > 0))
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let cpus: Vec<String> = self.smp.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "mprotect-trace lab: {} kernels x {} repeats with {} CPUs, interleaved; run options: {}",
            self.kernels.len(),
            self.repeat,
            cpus.join(", "),
            if self.run_options.is_empty() {
                "(defaults)".to_owned()
            } else {
                self.run_options.join(" ")
            }
        );
        let mut accels: Vec<(Accel, &str)> = self.kernels.iter().map(|k| (k.accel, k.times)).collect();
        accels.dedup();
        for (accel, times) in accels {
            let _ = writeln!(out, "accel {}: {times}", accel.name());
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for kernel in &self.kernel_notes {
            let _ = writeln!(out, "kernel {kernel}");
        }
        let _ = writeln!(
            out,
            "\n{:<16} {:<28} {:>4} {:>5} {:>6}  iteration ns/page: median [min, max], spread",
            "kernel", "release", "cpus", "runs", "failed"
        );
        for kernel in &self.kernels {
            for smp in &kernel.by_smp {
                let figures = match (&smp.iteration_ns_per_page, smp.relative_spread) {
                    (Some(s), Some(spread)) => {
                        format!("{:.2} [{:.2}, {:.2}], {:.2} %", s.median, s.min, s.max, spread * 100.0)
                    }
                    _ => "-".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{:<16} {:<28} {:>4} {:>5} {:>6}  {figures}",
                    kernel.label,
                    kernel.kernel_release.as_deref().unwrap_or("-"),
                    smp.smp,
                    format!("{}/{}", smp.runs, smp.runs + smp.failed_runs),
                    smp.failed_attempts
                );
            }
        }
        if self.smp.len() > 1 {
            let _ = writeln!(out, "\niteration ns/page (median of runs), CPUs x kernels:");
            let _ = write!(out, "{:>6}", "cpus");
            for kernel in &self.kernels {
                let _ = write!(out, " {:>16}", kernel.label);
            }
            let _ = writeln!(out);
            for &smp in &self.smp {
                let _ = write!(out, "{smp:>6}");
                for kernel in &self.kernels {
                    let cell = kernel
                        .by_smp
                        .iter()
                        .find(|s| s.smp == smp)
                        .and_then(|s| s.iteration_ns_per_page.as_ref())
                        .map_or_else(|| "-".to_owned(), |s| format!("{:.2}", s.median));
                    let _ = write!(out, " {cell:>16}");
                }
                let _ = writeln!(out);
            }
        }
        let _ = writeln!(out, "\nstate audit (the workload's smaps and pagemap audit):");
        for kernel in &self.kernels {
            for smp in &kernel.by_smp {
                let audit = match smp.audits.as_slice() {
                    [] => "no audit (no run)".to_owned(),
                    [one] => format!("{} (every run)", one.describe()),
                    many => format!(
                        "runs disagree: {}",
                        many.iter().map(StateAudit::describe).collect::<Vec<_>>().join("; ")
                    ),
                };
                let _ = writeln!(out, "  {} ({} CPUs): {audit}", kernel.label, smp.smp);
            }
        }
        for comparison in &self.comparisons {
            let _ = writeln!(
                out,
                "\ncomparison with {} CPUs ({}):",
                comparison.smp,
                comparison.dir.join("comparison.html").display()
            );
            // Emulated times say nothing about a kernel: counts still do.
            let emulated = self.kernels.iter().any(|k| !k.accel.times_comparable());
            for delta in &comparison.against_baseline {
                if let Some(note) = &delta.base_pages {
                    let _ = writeln!(out, "  {note}");
                }
                if emulated {
                    let counts: Vec<String> = delta
                        .calls_per_iteration
                        .iter()
                        .map(|(name, a, b)| {
                            let count = |v: &Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
                            format!("{name} {} vs {}", count(a), count(b))
                        })
                        .collect();
                    let _ = writeln!(
                        out,
                        "  {} against {}: times emulated (TCG), not compared; calls per workload iteration: {}",
                        delta.kernel,
                        delta.baseline,
                        counts.join(", ")
                    );
                    continue;
                }
                let ratio = delta.iteration_ratio.map_or("-".to_owned(), |r| format!("{r:.3}"));
                let _ = writeln!(
                    out,
                    "  {} against {}: iteration ns/page x{ratio}; {}",
                    delta.kernel,
                    delta.baseline,
                    delta.verdict.as_deref().unwrap_or("-")
                );
                delta.write_attribution(&mut out, "    ");
            }
        }
        if !self.refused.is_empty() {
            let _ = writeln!(out);
        }
        for refused in &self.refused {
            let _ = writeln!(out, "not booted: {refused}");
        }
        if self.failed_attempts > 0 {
            let _ = writeln!(
                out,
                "\n{} of {} boots failed (tried again unless retrying could not help); their consoles are kept as run-NN.failed-K.log",
                self.failed_attempts, self.boots
            );
        }
        out
    }

    fn to_html(&self) -> String {
        use crate::output::html::escape;
        let mut html = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mprotect-trace lab</title>\n\
             <style>body{font-family:sans-serif;max-width:1200px;margin:1em auto}pre{white-space:pre-wrap}</style></head><body>\n",
        );
        let _ = writeln!(
            html,
            "<h1>mprotect-trace lab</h1>\n<pre>{}</pre>",
            escape(&self.to_text())
        );
        for comparison in &self.comparisons {
            let name = comparison
                .dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let _ = writeln!(
                html,
                "<p><a href=\"{name}/comparison.html\">comparison with {} CPUs</a></p>",
                comparison.smp
            );
        }
        html.push_str("</body></html>\n");
        html
    }

    /// `lab.json`, `lab.txt` and `lab.html` in `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("serializing the lab summary")?;
        crate::output::write_atomically(&dir.join("lab.txt"), self.to_text().as_bytes())?;
        crate::output::write_atomically(&dir.join("lab.html"), self.to_html().as_bytes())?;
        crate::output::write_atomically(&dir.join("lab.json"), format!("{json}\n").as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64) -> Option<Spread> {
        Spread::of(vec![median * 0.999, median, median * 1.001])
    }

    fn kernel(label: &str, accel: Accel, medians: [f64; 2]) -> KernelResult {
        KernelResult {
            label: label.to_owned(),
            spec: format!("debian:{label}"),
            source: format!("linux-image-{label}"),
            image: PathBuf::from(format!("/cache/{label}/vmlinuz")),
            vmlinux: None,
            config: "config beside it: every needed option set".to_owned(),
            arch: "amd64".to_owned(),
            kernel_release: Some(format!("{label}.1-cloud-amd64")),
            accel,
            times: accel.time_label(),
            by_smp: [1, 2]
                .into_iter()
                .zip(medians)
                .map(|(smp, median)| CpuCountResult {
                    smp,
                    runs: 3,
                    failed_runs: 0,
                    failed_attempts: usize::from(smp == 2),
                    relative_spread: Some(0.002),
                    iteration_ns_per_page: spread(median),
                    audits: Vec::new(),
                })
                .collect(),
        }
    }

    fn summary(accel: Accel) -> LabSummary {
        LabSummary {
            run_options: vec!["--backend".into(), "none".into()],
            repeat: 3,
            smp: vec![1, 2],
            kernels: vec![
                kernel("6.12", accel, [300.0, 310.0]),
                kernel("7.3", accel, [700.0, 720.0]),
            ],
            kernel_notes: Vec::new(),
            refused: Vec::new(),
            notes: Vec::new(),
            kernels_ready_s: Some(0.5),
            boots: 12,
            failed_attempts: 2,
            comparisons: vec![ComparisonSummary {
                smp: 1,
                dir: PathBuf::from("lab/comparison-smp-1"),
                against_baseline: vec![KernelDelta {
                    baseline: "debian-6.12".into(),
                    kernel: "debian-7.3".into(),
                    iteration_ratio: Some(2.333),
                    verdict: Some("no claim: 3 and 3 runs".into()),
                    functions: vec![("change_pte_range".into(), 230.6)],
                    home: None,
                    home_explanation: "no claim: 3 and 3 runs".into(),
                    significant_functions: Vec::new(),
                    calls_per_iteration: vec![("mprotect (syscall)".into(), Some(2.0), Some(2.0))],
                    base_pages: None,
                }],
            }],
        }
    }

    #[test]
    fn several_cpu_counts_get_a_table_of_cpus_by_kernels() {
        let text = summary(Accel::TcgIcount).to_text();
        assert!(
            text.contains("\niteration ns/page (median of runs), CPUs x kernels:\n"),
            "{text}"
        );
        assert!(text.contains("  cpus             6.12              7.3\n     1           300.00           700.00\n     2           310.00           720.00\n"), "{text}");
        assert!(
            text.contains("debian-7.3 against debian-6.12: iteration ns/page x2.333; no claim: 3 and 3 runs"),
            "{text}"
        );
        assert!(
            text.contains("2 of 12 boots failed (tried again unless retrying could not help)"),
            "{text}"
        );
    }

    #[test]
    fn emulated_times_are_not_compared_only_counts() {
        let text = summary(Accel::Tcg).to_text();
        assert!(
            text.contains("accel tcg: emulated time (TCG): not comparable between kernels; compare counts"),
            "{text}"
        );
        assert!(
            text.contains("debian-7.3 against debian-6.12: times emulated (TCG), not compared; calls per workload iteration: mprotect (syscall) 2.00 vs 2.00"),
            "{text}"
        );
        assert!(!text.contains("x2.333"), "{text}");
    }

    #[test]
    fn base_pages_that_differ_are_said_above_the_ratio() {
        let mut lab = summary(Accel::TcgIcount);
        let note = "base pages differ: debian-7.2-ppc64el 64 kB, debian-7.3 4 kB: every per-page figure is per 64 kB page on debian-7.2-ppc64el and per 4 kB page on debian-7.3";
        lab.comparisons[0].against_baseline[0].base_pages = Some(note.to_owned());
        let text = lab.to_text();
        assert!(
            text.contains(&format!(
                "  {note}\n  debian-7.3 against debian-6.12: iteration ns/page x2.333"
            )),
            "{text}"
        );
    }
}
