//! One side of a comparison: a run directory (a side of one run), or a
//! directory of run directories (`run --repeat N -o DIR`), all of one
//! configuration.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::model::{Report, report};
use crate::statistics;

pub struct Run {
    /// The run directory's name, e.g. `run-03`.
    pub name: String,
    pub report: Report,
}

pub struct Side {
    /// `A`, `B`, ...: the first side is the baseline.
    pub label: String,
    pub path: PathBuf,
    pub runs: Vec<Run>,
}

/// The label of the side at `index`: A, B, ..., Z, then S27, S28, ...
pub fn label(index: usize) -> String {
    match u8::try_from(index) {
        Ok(i) if i < 26 => char::from(b'A' + i).to_string(),
        _ => format!("S{}", index + 1),
    }
}

impl Side {
    pub fn load(label: String, path: &Path) -> Result<Side> {
        if !path.is_dir() || path.join(report::FILE_NAME).exists() {
            let report = Report::load(path)?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            return Ok(Side {
                label,
                path: path.to_owned(),
                runs: vec![Run { name, report }],
            });
        }
        let dirs = report::run_dirs(path)?;
        if dirs.is_empty() {
            bail!(
                "{} holds no report.json, nor run directories holding one: give a directory written by `mprotect-trace run -o DIR` or `run --repeat N -o DIR`",
                path.display()
            );
        }
        let runs = dirs
            .iter()
            .map(|dir| {
                Ok(Run {
                    name: dir
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    report: Report::load(dir)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Side {
            label,
            path: path.to_owned(),
            runs,
        })
    }

    /// What is wrong with treating these runs as repetitions of one
    /// configuration: interrupted runs, other kernels, other settings.
    pub fn inconsistencies(&self) -> Vec<String> {
        let mut found = Vec::new();
        let Some(first) = self.runs.first() else {
            return found;
        };
        for run in &self.runs {
            if run.report.partial {
                found.push(format!(
                    "{} was interrupted ({})",
                    run.name,
                    run.report.stop_reason.label()
                ));
            }
            if run.report.kernel_release != first.report.kernel_release {
                found.push(format!(
                    "{} ran on {}, {} on {}",
                    first.name, first.report.kernel_release, run.name, run.report.kernel_release
                ));
            }
            if let (Some(a), Some(b)) = (&first.report.settings, &run.report.settings) {
                let shaping: Vec<String> = a
                    .differences(b)
                    .iter()
                    .filter(|d| d.shaping)
                    .map(|d| d.describe())
                    .collect();
                if !shaping.is_empty() {
                    found.push(format!(
                        "{} and {} differ in {}",
                        first.name,
                        run.name,
                        shaping.join(", ")
                    ));
                }
            }
        }
        found
    }

    /// The run whose workload median is the side's median (the first run
    /// without a workload): what the plots and the flame graph show.
    pub fn representative(&self) -> Option<&Report> {
        let values: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.report.workload.as_ref().map(|w| w.iteration_ns_per_page_median))
            .collect();
        let middle = statistics::median(&values);
        self.runs
            .iter()
            .min_by(|x, y| {
                let distance = |run: &Run| match (&run.report.workload, middle) {
                    (Some(w), Some(m)) => (w.iteration_ns_per_page_median - m).abs(),
                    _ => f64::INFINITY,
                };
                distance(x).total_cmp(&distance(y))
            })
            .map(|run| &run.report)
    }
}

/// In what order the runs of all sides were made, by their start times.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Order {
    pub kind: OrderKind,
    /// Side labels in start-time order, e.g. `A B A B`.
    pub sequence: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderKind {
    /// One run per side.
    Single,
    /// A B A B ...: drift over time falls on every side alike.
    Interleaved,
    /// Not interleaved: a drift over time reads as a difference.
    NotInterleaved,
}

pub fn order(sides: &[Side]) -> Order {
    let mut runs: Vec<(&str, usize, usize)> = Vec::new();
    for (s, side) in sides.iter().enumerate() {
        for (r, run) in side.runs.iter().enumerate() {
            runs.push((run.report.start_time.as_str(), s, r));
        }
    }
    // RFC 3339 UTC times of one format sort as text.
    runs.sort();
    let sequence: Vec<&str> = runs.iter().map(|&(_, s, _)| sides[s].label.as_str()).collect();
    let kind = if sides.iter().all(|side| side.runs.len() == 1) {
        OrderKind::Single
    } else if sequence.chunks(sides.len()).all(|round| {
        let mut labels = round.to_vec();
        labels.sort_unstable();
        labels.dedup();
        labels.len() == round.len()
    }) {
        OrderKind::Interleaved
    } else {
        OrderKind::NotInterleaved
    };
    Order {
        kind,
        sequence: sequence.join(" "),
    }
}
