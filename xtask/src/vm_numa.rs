//! The NUMA-hinting proof on 7.x x86, in a guest with two NUMA nodes:
//! NUMA balancing's scans reach change_protection with MM_CP_PROT_NUMA and
//! are counted apart (`--split-by cp_flags`); the PTEs they cover agree
//! exactly with the kernel's own `numa_pte_updates`; and a local mapping of
//! 64 kB folios is skipped whole batches at a time.

use anyhow::{Context as _, Result, ensure};
use mprotect_trace::model::{NumaHinting, Report, TargetReport};

use crate::vm::{calls, target};

const PROT_NUMA: &str = "MM_CP_PROT_NUMA";

/// Σ of a target's recorded return values.
fn returned(target: &TargetReport) -> u64 {
    target.return_values.as_ref().map_or(0, |values| values.total)
}

/// Every change_protection call the workload's task made is a scan's
/// (the scenario calls no mprotect), and is counted under MM_CP_PROT_NUMA.
fn scans(report: &Report) -> Result<u64> {
    ensure!(
        report.syscall.latency.calls == 0,
        "{} mprotect calls in a scenario that makes none",
        report.syscall.latency.calls
    );
    let protection = target(report, "change_protection")?;
    let parts: Vec<(&str, u64)> = protection
        .split
        .iter()
        .flatten()
        .map(|part| (part.name.as_str(), part.calls))
        .collect();
    let total = calls(protection);
    ensure!(
        total > 0 && parts == [(PROT_NUMA, total)],
        "change_protection: {total} calls, by cp_flags {parts:?}: expected every one {PROT_NUMA}"
    );
    let numa = target(report, "change_prot_numa")?;
    ensure!(
        calls(numa) == total,
        "change_prot_numa: {} calls, change_protection {total}",
        calls(numa)
    );
    Ok(total)
}

pub fn check(name: &str, report: &Report) -> Result<String> {
    let numa: &NumaHinting = report
        .workload
        .as_ref()
        .and_then(|w| w.numa.as_ref())
        .context("the workload has no NUMA figures")?;
    ensure!(numa.scan_passes > 0, "no scan pass completed: {numa:?}");
    let scans = scans(report)?;
    // change_prot_numa returns what change_protection changed, which the
    // kernel adds to numa_pte_updates.
    let covered = returned(target(report, "change_prot_numa")?);
    ensure!(
        covered == numa.pte_updates,
        "change_prot_numa returned {covered} PTEs in all, numa_pte_updates grew by {}",
        numa.pte_updates
    );
    if name == "numa" {
        ensure!(
            numa.memory_node != numa.cpu_node && numa.pte_updates > 0 && numa.hint_faults > 0,
            "a remote mapping should be scanned and fault: {numa:?}"
        );
        let commit = target(report, "modify_prot_commit_ptes")?;
        let batched: u64 = commit
            .split
            .iter()
            .flatten()
            .filter(|part| part.name == PROT_NUMA)
            .filter_map(|part| part.nr_ptes.as_ref())
            .flat_map(|nr| nr.counts.iter().map(|(value, count)| value * count))
            .sum();
        ensure!(
            batched == numa.pte_updates,
            "modify_prot_commit_ptes' nr under {PROT_NUMA} sums to {batched}, numa_pte_updates grew by {}",
            numa.pte_updates
        );
        return Ok(format!(
            "CPU {} on node {}, memory on node {}: {} scan passes, {scans} change_protection calls all {PROT_NUMA}; change_prot_numa returned {covered} PTEs = numa_pte_updates {} = Σnr of modify_prot_commit_ptes under {PROT_NUMA}; {} hinting faults",
            numa.cpu, numa.cpu_node, numa.memory_node, numa.scan_passes, numa.pte_updates, numa.hint_faults
        ));
    }
    // Local 64 kB folios of a single-threaded private mapping: each batch
    // of 16 PTEs is skipped, folio_can_map_prot_numa saying false once.
    ensure!(
        numa.memory_node == numa.cpu_node,
        "the folio run's memory should be local: {numa:?}"
    );
    let skip = target(report, "folio_can_map_prot_numa")?;
    let decided = calls(skip);
    let mapped = returned(skip);
    ensure!(
        decided > 0 && mapped == 0 && numa.pte_updates == 0,
        "folio_can_map_prot_numa: {decided} calls, {mapped} said map; numa_pte_updates {}: every batch should be skipped",
        numa.pte_updates
    );
    let folios = report.workload.as_ref().map_or(0, |w| w.pages) * 4 / 64;
    Ok(format!(
        "local 64 kB folios: {} scan passes, {scans} change_protection calls all {PROT_NUMA}; folio_can_map_prot_numa said skip {decided} times ({} folios a pass), numa_pte_updates 0",
        numa.scan_passes, folios
    ))
}
