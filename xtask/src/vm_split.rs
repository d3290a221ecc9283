//! The `--split-by cp_flags` proof on 7.x x86: the private toggle's
//! mprotect(PROT_READ) passes change_protection no flag and its
//! mprotect(PROT_READ|PROT_WRITE) MM_CP_TRY_CHANGE_WRITABLE (a private
//! writable mapping must check each PTE for COW), so every target under
//! change_protection splits its calls, and its nr_ptes, exactly in half.

use std::fmt::Write as _;

use anyhow::{Result, ensure};
use mprotect_trace::model::{Report, SplitPart};

use crate::vm::{calls, target};

/// The flag names of the two halves.
const NO_FLAG: &str = "0";
const WRITABLE: &str = "MM_CP_TRY_CHANGE_WRITABLE";
/// Targets under change_protection, so inside its call, when this kernel
/// probes them.
const INSIDE: [&str; 3] = ["change_pte_range", "modify_prot_start_ptes", "modify_prot_commit_ptes"];

fn part<'a>(parts: &'a [SplitPart], name: &str) -> Option<&'a SplitPart> {
    parts.iter().find(|part| part.name == name)
}

/// Each target's calls in exactly two halves, one per flag value, and
/// Σnr of each half half the pages change_pte_range changed (THP may map
/// part of the private mapping by PMD: those pages never reach it).
/// Returns the summary lines.
pub fn check(report: &Report, mprotect_calls: u64) -> Result<String> {
    let mut summary = String::new();
    let changed = target(report, "change_pte_range")?
        .pages_per_call
        .as_ref()
        .map_or(0, |pages| pages.total);
    ensure!(changed > 0, "change_pte_range changed no page");
    for name in std::iter::once("change_protection").chain(INSIDE) {
        let target = target(report, name)?;
        let parts = target.split.as_deref().unwrap_or_default();
        let total = calls(target);
        let names: Vec<&str> = parts.iter().map(|part| part.name.as_str()).collect();
        ensure!(
            names == [NO_FLAG, WRITABLE],
            "{name}: split values {names:?}, expected [{NO_FLAG}, {WRITABLE}] ({})",
            target.attachment.split_source.as_deref().unwrap_or("no split source")
        );
        let halves: Vec<u64> = parts.iter().map(|part| part.calls).collect();
        ensure!(
            total > 0 && halves == [total / 2, total / 2] && total.is_multiple_of(2),
            "{name}: {total} calls split {halves:?}, expected two halves"
        );
        if name == "change_protection" {
            ensure!(
                total == mprotect_calls,
                "change_protection: {total} calls for {mprotect_calls} mprotect calls"
            );
        }
        let mut line = format!(
            "  split by cp_flags: {name} {total} calls = {} + {}",
            halves[0], halves[1]
        );
        if target.nr_ptes.is_some() {
            for flag in [NO_FLAG, WRITABLE] {
                let nr = part(parts, flag).and_then(|part| part.nr_ptes.as_ref());
                let sum: u64 = nr.map_or(0, |nr| nr.counts.iter().map(|(value, count)| value * count).sum());
                ensure!(
                    sum == changed / 2,
                    "{name} with {flag}: nr sums to {sum}, expected half the {changed} pages change_pte_range changed"
                );
            }
            let _ = write!(
                line,
                "; nr sums to {} in each, half the pages change_pte_range changed",
                changed / 2
            );
        }
        let _ = writeln!(summary, "{line}");
    }
    Ok(summary)
}
