//! `report.json`: one run, everything the outputs need, versioned.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::collect::{Counters, ExactDistribution, ValueStats};
use crate::kernel::capabilities::Capabilities;
use crate::probes::attach::Attachment;
use crate::sampling::profile::Profile;
use crate::workload::WorkloadResult;

pub const SCHEMA_VERSION: u32 = 1;
pub const FILE_NAME: &str = "report.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool_version: String,
    #[serde(default)]
    pub git_revision: String,
    /// When tracing started (UTC, RFC 3339).
    #[serde(default)]
    pub start_time: String,
    pub kernel_release: String,
    pub arch: String,
    #[serde(default)]
    pub kernel_cmdline: String,
    #[serde(default)]
    pub cpu_model: String,
    #[serde(default)]
    pub cpus: usize,
    /// What was traced: "workload", "command", "pid" or "all".
    pub scope: String,
    /// The traced process, when one was.
    pub tgid: Option<u32>,
    pub command: Vec<String>,
    /// Why tracing stopped: "target exited", "duration", "SIGINT", "SIGTERM".
    pub stop_reason: String,
    /// True when the run was interrupted before its target finished.
    pub partial: bool,
    pub duration_s: f64,
    /// Percentiles are bucket midpoints: exact below 16, else within this relative error.
    pub percentile_relative_error: f64,
    pub capabilities: Capabilities,
    pub syscall: SyscallReport,
    pub targets: Vec<TargetReport>,
    pub lost: Counters,
    pub workload: Option<WorkloadResult>,
    /// Stack sampling: counters, shares, and every sampled stack.
    pub sampling: Option<Profile>,
    /// `--calibrate`: the same workload untraced, just before.
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// `--probe-cost`: runs and time of each BPF program, by the kernel.
    #[serde(default)]
    pub program_costs: Option<Vec<crate::collect::program_cost::ProgramCost>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Calibration {
    pub untraced_iteration_ns_per_page: f64,
    pub traced_iteration_ns_per_page: f64,
    /// traced / untraced.
    pub ratio: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyscallReport {
    pub backend: String,
    pub latency: LatencySummary,
    pub latency_ns: ValueStats,
    /// `len` of each call, in pages (rounded up).
    pub pages_per_call: ValueStats,
    /// Calls by protection: "PROT_READ|PROT_WRITE" -> count.
    pub prot_flags: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetReport {
    #[serde(flatten)]
    pub attachment: Attachment,
    pub latency: Option<LatencySummary>,
    pub latency_ns: Option<ValueStats>,
    pub pages_per_call: Option<ValueStats>,
    pub nr_ptes: Option<ExactDistribution>,
    /// This target's time as a share (0-1) of the traced mprotect syscall time.
    pub share_of_syscall_time: Option<f64>,
}

/// What a table shows of a latency stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub calls: u64,
    pub total_ns: u64,
    pub mean_ns: Option<f64>,
    pub min_ns: Option<u64>,
    pub max_ns: Option<u64>,
    pub p50_ns: Option<f64>,
    pub p90_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub p999_ns: Option<f64>,
}

impl LatencySummary {
    pub fn of(stats: &ValueStats) -> Self {
        let h = &stats.histogram;
        Self {
            calls: stats.count,
            total_ns: stats.total,
            mean_ns: stats.mean(),
            min_ns: stats.min,
            max_ns: stats.max,
            p50_ns: h.quantile(0.5),
            p90_ns: h.quantile(0.9),
            p99_ns: h.quantile(0.99),
            p999_ns: h.quantile(0.999),
        }
    }
}

/// The machine a run happened on: CPU model, CPU count, kernel command line.
pub fn machine() -> (String, usize, String) {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .trim()
        .to_owned();
    (cpu_model, cpus, cmdline)
}

/// Names a `prot & 7` bucket the way C spells it; bucket 8 is "other bits".
pub fn prot_name(bucket: usize) -> String {
    if bucket >= 8 {
        return "other (PROT_SEM, PROT_GROWS*, pkey bits)".into();
    }
    let names: Vec<&str> = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")]
        .iter()
        .filter(|(bit, _)| bucket & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "PROT_NONE".into()
    } else {
        names.join("|")
    }
}

impl Report {
    /// Reads a saved run: `DIR` (holding report.json) or the file itself.
    /// Every way it can be wrong gets a one-line error naming the fix.
    pub fn load(path: &Path) -> Result<Report> {
        let file = if path.is_dir() {
            path.join(FILE_NAME)
        } else {
            path.to_path_buf()
        };
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "{} does not exist: give a directory written by `mprotect-trace run -o DIR`",
                file.display()
            ),
            Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|err| {
            anyhow::anyhow!(
                "{} is not valid JSON ({err}): truncated? re-run mprotect-trace run",
                file.display()
            )
        })?;
        let Some(version) = value.get("schema_version").and_then(serde_json::Value::as_u64) else {
            anyhow::bail!("{} is not an mprotect-trace report (no schema_version)", file.display());
        };
        if version > u64::from(SCHEMA_VERSION) {
            anyhow::bail!(
                "{} has report schema {version}, newer than the {SCHEMA_VERSION} this mprotect-trace reads: upgrade mprotect-trace",
                file.display()
            );
        }
        serde_json::from_value(value)
            .map_err(|err| anyhow::anyhow!("{} is not a valid schema-{version} report: {err}", file.display()))
    }

    /// Writes `report.json` into `dir`, never half-written.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf> {
        let mut json = serde_json::to_vec_pretty(self).context("serializing the report")?;
        json.push(b'\n');
        super::write_atomically(&dir.join(FILE_NAME), &json)
    }
}
