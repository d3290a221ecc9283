//! Whether this process may load and attach BPF tracing programs.

use anyhow::{Context as _, Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fails, naming the capabilities, unless this process has CAP_SYS_ADMIN
/// or both CAP_BPF and CAP_PERFMON.
pub fn require_tracing() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .context("/proc/self/status has no CapEff line")?;
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, n)| *n)
        .collect();
    bail!(
        "tracing needs root, or CAP_BPF and CAP_PERFMON (missing {}): run it with sudo",
        missing.join(" and ")
    )
}
