//! 7.x x86: `modify_prot_start_ptes`, always inlined there, probed at the
//! entry of each of its inlined instances in change_pte_range, placed by
//! the sites file the host wrote from the kernel's debug vmlinux. Its calls
//! are the number of PTE batches exactly, its `nr` (read where DWARF puts
//! it at each entry) has the same distribution as the `nr` the notrace
//! modify_prot_commit_ptes gets at its call sites, and only an instance
//! with one entry and one exit is timed.

use anyhow::{Context as _, Result, ensure};
use mprotect_trace::model::{Attachment, Backend, InlinedProbe, Report};

use crate::vm::{calls, target};

/// The one-PTE copy: DWARF gives its `nr` as the constant 1.
const CONSTANT_ONE: &str = "nr: the constant 1";

/// Checks the run where every batch is `batch` PTEs and there are
/// `batches` of them; returns the summary line.
pub fn check(report: &Report, batch: u64, batches: u64) -> Result<String> {
    let start = target(report, "modify_prot_start_ptes")?;
    let attachment = &start.attachment;
    ensure!(
        attachment.backend == Backend::Inlined,
        "modify_prot_start_ptes used {:?}: {}",
        attachment.backend,
        attachment.reason
    );
    ensure!(
        attachment
            .reason
            .starts_with("inlined in change_pte_range (2 instances)"),
        "the table would say {:?}",
        attachment.reason
    );
    ensure!(
        calls(start) == batches,
        "modify_prot_start_ptes: {} calls at its inlined instances, expected {batches} batches",
        calls(start)
    );
    let nr = start.nr_ptes.clone().unwrap_or_default();
    let commit = target(report, "modify_prot_commit_ptes")?;
    let committed = commit.nr_ptes.clone().unwrap_or_default();
    ensure!(
        nr.counts == [(batch, batches)] && nr.counts == committed.counts,
        "nr from DWARF {:?}, nr at modify_prot_commit_ptes' call sites {:?}, expected {batches} batches of {batch}",
        nr.counts,
        committed.counts
    );
    let inlined = instances_adding_up(attachment, batches)?;
    // The copy whose nr is the constant 1 runs only for one-PTE batches.
    let one = inlined
        .instances
        .iter()
        .find(|i| i.nr == CONSTANT_ONE)
        .context("no instance whose nr is the constant 1")?;
    ensure!(
        batch == 1 || one.calls == Some(0),
        "the one-PTE instance ran {:?} times in batches of {batch}",
        one.calls
    );
    ensure!(
        one.exit.is_none() && !one.no_latency.is_empty(),
        "the one-PTE instance, split in pieces, was timed"
    );
    let timed: u64 = inlined
        .instances
        .iter()
        .filter(|i| i.exit.is_some())
        .map(|i| i.calls.unwrap_or(0))
        .sum();
    let latency = inlined.latency.as_ref().context("no instance was timed")?;
    ensure!(
        latency.calls == timed,
        "{} timed calls, but the timed instances ran {timed} times",
        latency.calls
    );
    ensure!(
        start.latency.is_none(),
        "the target row has a latency though not every instance is timed"
    );
    let instances: Vec<String> = inlined
        .instances
        .iter()
        .map(|i| {
            let timing = i.exit.as_ref().map_or_else(
                || format!("not timed: {}", i.no_latency),
                |exit| format!("timed to {exit}"),
            );
            format!("{} {} calls, {}, {timing}", i.at, i.calls.unwrap_or(0), i.nr)
        })
        .collect();
    Ok(format!(
        "modify_prot_start_ptes ({}): {} calls = {batches} batches, nr {:?} = modify_prot_commit_ptes' nr; {}; {} timed calls",
        attachment.reason,
        calls(start),
        nr.counts,
        instances.join("; "),
        latency.calls
    ))
}

/// arm64: `name`, inlined everywhere, was probed at its inlined instances
/// and counted exactly `expected` times; each instance says why it is not
/// timed. Returns the summary line.
pub fn check_counted(report: &Report, name: &str, expected: u64) -> Result<String> {
    let found = target(report, name)?;
    let attachment = &found.attachment;
    ensure!(
        attachment.backend == Backend::Inlined && attachment.reason.starts_with("inlined in "),
        "{name} used {:?}: {}",
        attachment.backend,
        attachment.reason
    );
    ensure!(
        calls(found) == expected,
        "{name}: {} calls at its inlined instances, expected {expected}",
        calls(found)
    );
    let inlined = instances_adding_up(attachment, expected)?;
    ensure!(
        inlined
            .instances
            .iter()
            .all(|i| i.exit.is_some() || !i.no_latency.is_empty()),
        "an untimed instance does not say why"
    );
    let instances: Vec<String> = inlined
        .instances
        .iter()
        .map(|i| format!("{} {} calls ({}; {})", i.at, i.calls.unwrap_or(0), i.nr, i.no_latency))
        .collect();
    Ok(format!(
        "{name} ({}): {} calls = the PTE tables walked; {}",
        attachment.reason,
        calls(found),
        instances.join("; ")
    ))
}

/// The probed instances, whose calls add up to the target's `calls`.
fn instances_adding_up(attachment: &Attachment, calls: u64) -> Result<&InlinedProbe> {
    let inlined = attachment
        .inlined
        .as_ref()
        .context("no inlined instances in the report")?;
    let per_instance: Vec<u64> = inlined.instances.iter().map(|i| i.calls.unwrap_or(0)).collect();
    ensure!(
        per_instance.iter().sum::<u64>() == calls,
        "the instances' calls {per_instance:?} do not add up to {calls}"
    );
    Ok(inlined)
}
