//! `fleet report DIR`: one row per host of a fleet run (DIR/<host>/, each
//! an `ab` result directory), its A/B ratio recomputed by `compare` from
//! the host's reports, and what the hosts say together.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::compare::{self, MetricDelta, Side, Verdict};
use crate::model::Machine;
use crate::output::{self, Artifact, mail_layout};
use crate::statistics::{self, Interval};

/// What a failed host's directory holds, written by the playbook.
pub const ERROR_FILE: &str = "fleet-error.json";
/// The files `fleet report` writes.
pub const TEXT_FILE: &str = "fleet.txt";
pub const MAIL_FILE: &str = "fleet-mail.txt";
pub const JSON_FILE: &str = "fleet.json";
pub const HTML_FILE: &str = output::html::FLEET_FILE_NAME;
/// The one metric a host's row carries: the workload's, per run.
pub const METRIC: &str = "iteration ns/page (run median)";
/// What `ab` allows its sides to differ in; a host's sides are compared the same way.
const ALLOWED_BY: &str = "the sides of an A/B run";

#[derive(Debug, Serialize)]
pub struct FleetReport {
    pub dir: String,
    /// What each ratio is the ratio of (B over A).
    pub metric: &'static str,
    /// Hosts with a comparison, in host-name order.
    pub hosts: Vec<HostRow>,
    /// Hosts without one, and why.
    pub missing: Vec<MissingHost>,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct HostRow {
    pub host: String,
    pub cpu_model: String,
    pub kernel_release: String,
    /// B/A of the metric (Hodges-Lehmann on log values).
    pub ratio: f64,
    pub ratio_interval: Option<Interval>,
    pub verdict: Verdict,
    pub p_value: Option<f64>,
    /// "significant (p = 0.029); smallest detectable: 4.1 %", as `compare` says it.
    pub verdict_text: String,
    /// Why there is no claim, when there is none.
    pub reason: Option<String>,
    pub runs_a: usize,
    pub runs_b: usize,
    /// The rest of the host's identity, from its first run of side A
    /// (absent in reports older than schema 6).
    pub machine: Option<Machine>,
}

#[derive(Debug, Serialize)]
pub struct MissingHost {
    pub host: String,
    pub why: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Significant, B faster (ratio below 1).
    pub improved: usize,
    /// Significant, B slower.
    pub regressed: usize,
    pub not_significant: usize,
    pub no_claim: usize,
    pub missing: usize,
    pub ratio_min: Option<f64>,
    pub ratio_median: Option<f64>,
    pub ratio_max: Option<f64>,
}

/// Reads every host directory of `dir`.
pub fn read(dir: &Path) -> Result<FleetReport> {
    let mut hosts = Vec::new();
    let mut missing = Vec::new();
    for (host, path) in host_dirs(dir)? {
        match host_row(&host, &path) {
            Ok(row) => hosts.push(row),
            Err(err) => missing.push(MissingHost {
                host,
                why: format!("{err:#}"),
            }),
        }
    }
    let ratios: Vec<f64> = hosts.iter().map(|row| row.ratio).collect();
    let significant = |up: bool| {
        hosts
            .iter()
            .filter(|row| row.verdict == Verdict::Significant && (row.ratio > 1.0) == up)
            .count()
    };
    let summary = Summary {
        improved: significant(false),
        regressed: significant(true),
        not_significant: hosts.iter().filter(|r| r.verdict == Verdict::NotSignificant).count(),
        no_claim: hosts.iter().filter(|r| r.verdict == Verdict::NoClaim).count(),
        missing: missing.len(),
        ratio_min: ratios.iter().copied().reduce(f64::min),
        ratio_median: statistics::median(&ratios),
        ratio_max: ratios.iter().copied().reduce(f64::max),
    };
    Ok(FleetReport {
        dir: dir.display().to_string(),
        metric: METRIC,
        hosts,
        missing,
        summary,
    })
}

/// The host directories of a fleet run, by name.
fn host_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "reading {}: give the -o DIR of `mprotect-trace fleet run` (or of the playbook)",
            dir.display()
        )
    })?;
    let mut hosts: Vec<(String, PathBuf)> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .filter_map(|path| Some((path.file_name()?.to_string_lossy().into_owned(), path)))
        .collect();
    hosts.sort();
    if hosts.is_empty() {
        bail!(
            "{} holds no host directories: give the -o DIR of `mprotect-trace fleet run`, which fetches each host's results into DIR/<host>/",
            dir.display()
        );
    }
    Ok(hosts)
}

/// The playbook's record of a host that failed, in one line.
fn recorded_error(path: &Path) -> Result<Option<String>> {
    let file = path.join(ERROR_FILE);
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", file.display()))?;
    let task = value["task"].as_str().unwrap_or("a task");
    let error = value["error"].as_str().unwrap_or("no error recorded");
    let mut line = format!("failed at \"{task}\": {error}");
    // The tracer's own last words, when it said any.
    if let Some(last) = value["stderr"].as_array().and_then(|lines| {
        lines
            .iter()
            .rev()
            .find_map(|l| l.as_str().filter(|l| !l.trim().is_empty()))
    }) {
        let _ = write!(line, " (its stderr ends: {})", last.trim());
    }
    Ok(Some(line))
}

fn host_row(host: &str, path: &Path) -> Result<HostRow> {
    if let Some(error) = recorded_error(path)? {
        bail!("{error}");
    }
    let sides: Vec<Side> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let side = path.join(name);
            if !side.is_dir() {
                bail!(
                    "no {} in {}: fleet report reads the results of `ab` (DIR/<host>/a and b)",
                    side.display(),
                    path.display()
                );
            }
            Side::load(compare::label(index), &side)
        })
        .collect::<Result<_>>()?;
    let comparison = compare::compare(&sides, Some(ALLOWED_BY))?;
    let metric: &MetricDelta = comparison
        .against_baseline
        .first()
        .and_then(|pair| pair.metrics.iter().find(|m| m.metric == METRIC))
        .with_context(|| {
            format!(
                "{}: no {METRIC} on both sides (the built-in workload did not run)",
                path.display()
            )
        })?;
    let first = sides[0]
        .runs
        .first()
        .map(|run| &run.report)
        .context("side A has no runs")?;
    Ok(HostRow {
        host: host.to_owned(),
        cpu_model: first.cpu_model.clone(),
        kernel_release: first.kernel_release.clone(),
        ratio: metric.ratio,
        ratio_interval: metric.ratio_interval,
        verdict: metric.verdict,
        p_value: metric.test.map(|t| t.p_value),
        verdict_text: compare::verdict_text(metric),
        reason: metric.reason.clone(),
        runs_a: sides[0].runs.len(),
        runs_b: sides[1].runs.len(),
        machine: first.machine.clone(),
    })
}

/// "[0.846, 0.983] 97.1 %": rank intervals have the smallest confidence
/// of at least 95 % the runs allow, so each says its own.
fn interval(interval: Option<Interval>) -> String {
    interval.map_or_else(
        || "-".to_owned(),
        |i| format!("[{:.3}, {:.3}] {:.1} %", i.low, i.high, i.confidence * 100.0),
    )
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

impl Summary {
    fn lines(&self) -> Vec<String> {
        vec![
            format!(
                "hosts: {} improved significantly (B/A below 1), {} regressed significantly, {} not significant, {} no claim, {} without a result",
                self.improved, self.regressed, self.not_significant, self.no_claim, self.missing
            ),
            format!(
                "B/A over the hosts: min {}, median {}, max {}",
                ratio(self.ratio_min),
                ratio(self.ratio_median),
                ratio(self.ratio_max)
            ),
        ]
    }
}

impl FleetReport {
    /// The table, then the hosts without a result, then the summary.
    pub fn to_text(&self) -> String {
        let mut rows = vec![[
            "host".to_owned(),
            "CPU".to_owned(),
            "kernel".to_owned(),
            "B/A".to_owned(),
            "interval".to_owned(),
            "runs A/B".to_owned(),
            "verdict".to_owned(),
        ]];
        for row in &self.hosts {
            rows.push([
                row.host.clone(),
                row.cpu_model.clone(),
                row.kernel_release.clone(),
                format!("{:.3}", row.ratio),
                interval(row.ratio_interval),
                format!("{}/{}", row.runs_a, row.runs_b),
                row.verdict_text.clone(),
            ]);
        }
        let widths: Vec<usize> = (0..7)
            .map(|column| rows.iter().map(|r| r[column].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("fleet: {} (B/A of the {METRIC})\n", self.dir);
        for row in &rows {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                let width = widths[column];
                // Numbers right-aligned, words left.
                let _ = if (3..=5).contains(&column) {
                    write!(line, "{cell:>width$}  ")
                } else {
                    write!(line, "{cell:<width$}  ")
                };
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if !self.missing.is_empty() {
            out.push_str("\nhosts without a result:\n");
            for host in &self.missing {
                let _ = writeln!(out, "{}: {}", host.host, host.why);
            }
        }
        out.push('\n');
        for line in self.summary.lines() {
            let _ = writeln!(out, "{line}");
        }
        let no_claims: Vec<&HostRow> = self.hosts.iter().filter(|r| r.reason.is_some()).collect();
        if let Some(first) = no_claims.first() {
            let _ = writeln!(
                out,
                "no claim on {}: {}",
                no_claims.iter().map(|r| r.host.as_str()).collect::<Vec<_>>().join(", "),
                first.reason.as_deref().unwrap_or_default()
            );
        }
        out
    }

    /// At most 80 columns: a block of two lines per host.
    pub fn to_mail(&self) -> String {
        let mut out = String::new();
        mail_layout::wrap(&mut out, "", "", &format!("fleet: {} (B/A of the {METRIC})", self.dir));
        out.push('\n');
        for row in &self.hosts {
            mail_layout::wrap(
                &mut out,
                &format!("{}: ", row.host),
                "    ",
                &format!(
                    "B/A {:.3}{}, {}+{} runs, {}",
                    row.ratio,
                    row.ratio_interval
                        .map_or_else(String::new, |i| format!(" {}", interval(Some(i)))),
                    row.runs_a,
                    row.runs_b,
                    row.verdict_text
                ),
            );
            mail_layout::wrap(
                &mut out,
                "    ",
                "    ",
                &format!("{}; kernel {}", row.cpu_model, row.kernel_release),
            );
        }
        for host in &self.missing {
            mail_layout::wrap(
                &mut out,
                &format!("{}: ", host.host),
                "    ",
                &format!("no result: {}", host.why),
            );
        }
        out.push('\n');
        for line in self.summary.lines() {
            mail_layout::wrap(&mut out, "", "", &line);
        }
        out
    }

    /// Every file: text, mail, JSON, and the page with the ratio plot.
    pub fn artifacts(&self) -> Result<Vec<Artifact>> {
        let text = self.to_text();
        let mut artifacts = vec![
            Artifact::new(TEXT_FILE, text.clone()),
            Artifact::new(MAIL_FILE, self.to_mail()),
            Artifact::new(JSON_FILE, format!("{}\n", serde_json::to_string_pretty(self)?)),
        ];
        let mut sorted: Vec<&HostRow> = self.hosts.iter().collect();
        sorted.sort_by(|x, y| x.ratio.total_cmp(&y.ratio));
        let points: Vec<output::plots::RatioPoint> = sorted
            .iter()
            .map(|row| output::plots::RatioPoint {
                label: row.host.clone(),
                ratio: row.ratio,
                interval: row.ratio_interval.map(|i| (i.low, i.high)),
                significant: row.verdict == Verdict::Significant,
            })
            .collect();
        let plot = output::plots::render_ratios(
            &points,
            "B/A per host, sorted",
            &format!(
                "hosts with a result: {} of {}",
                self.hosts.len(),
                self.hosts.len() + self.missing.len()
            ),
            &format!(
                "Each host's B/A of the {METRIC} (Hodges-Lehmann over its runs) with its distribution-free interval of at least 95 %; filled: significant at alpha 0.05. Below 1: B is faster. Hosts without a result ({}) are listed in {TEXT_FILE}, not drawn.",
                self.missing.len()
            ),
            "fleet-ratios",
        )?;
        artifacts.extend(plot);
        let page = output::html::fleet(&format!("mprotect-trace fleet: {}", self.dir), &text, &artifacts);
        artifacts.push(page);
        Ok(artifacts)
    }
}
