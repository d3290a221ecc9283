//! Summarizes the workload's threads into its result.

use std::collections::BTreeMap;

use super::{Plan, Samples, Scenario, ThpState, ThreadOutcome, libmicro_median, stop_requested};
use crate::model::workload::mean;
use crate::model::{PerIteration, SmapsEntry, WorkloadResult};
use crate::statistics::median;

/// The result of every thread's measured iterations, and the audit of
/// the mapping (for mprot-tw4m: of the region) that matched the scenario
/// least.
pub(super) fn summarize(plan: &Plan, outcomes: Vec<ThreadOutcome>, thp: ThpState) -> WorkloadResult {
    let mut samples = Samples::default();
    let mut mprotect_calls = 0;
    let mut iterations_done = 0;
    let mut pte_table_walks = 0;
    let mut worst: Option<(u64, SmapsEntry, SmapsEntry, BTreeMap<u64, u64>)> = None;
    let mut threads = Vec::new();
    let mut numa = None;
    for outcome in outcomes {
        numa = numa.or(outcome.numa);
        threads.push(outcome.samples.protect.len() as u64);
        mprotect_calls += outcome.mprotect_calls;
        iterations_done += outcome.iterations;
        pte_table_walks += outcome.pte_table_walks;
        samples.protect.extend(outcome.samples.protect);
        samples.restore.extend(outcome.samples.restore);
        samples.post_touch.extend(outcome.samples.post_touch);
        samples.call_us.extend(outcome.samples.call_us);
        for audit in outcome.audits {
            let scenario = plan.scenario;
            let mut ratio = scenario
                .expected_match_percent(&audit.before)
                .min(scenario.expected_match_percent(&audit.after));
            if let Some(folio_kb) = plan.folio_kb {
                ratio = ratio
                    .min(folio_match_percent(&audit.folios_before, folio_kb))
                    .min(folio_match_percent(&audit.folios_after, folio_kb));
            }
            if worst.as_ref().is_none_or(|(lowest, ..)| ratio < *lowest) {
                worst = Some((ratio, audit.before, audit.after, audit.folios_after));
            }
        }
    }
    let (expected_match_ratio, smaps_before, smaps_after, folios) = worst.unwrap_or_default();
    let iteration: Vec<u64> = (0..samples.protect.len())
        .map(|i| samples.protect[i] + samples.restore[i] + samples.post_touch[i])
        .collect();
    // What one iteration covers: the mapping, or every region of it.
    let pages = plan.pages as u64 * plan.regions;
    let tw4m = plan.scenario == Scenario::MprotTw4m;
    let mprotect_call_us_median = if tw4m { libmicro_median(&samples.call_us) } else { None };
    let pages_f = pages as f64;
    let per_page_mean = |values: &[u64]| mean(values) / pages_f;
    let per_page_median =
        |values: &[u64]| median(&values.iter().map(|&v| v as f64).collect::<Vec<_>>()).unwrap_or(0.0) / pages_f;
    WorkloadResult {
        numa,
        scenario: plan.scenario.name().to_owned(),
        pages,
        mapping_mb: plan.mapping_mb,
        regions: tw4m.then_some(plan.regions),
        mprotect_call_us_median,
        iterations: plan.iterations,
        warmup: plan.warmup,
        rounds: plan.rounds,
        threads: plan.threads,
        protect_ns_per_page: per_page_mean(&samples.protect),
        restore_ns_per_page: per_page_mean(&samples.restore),
        post_touch_ns_per_page: per_page_mean(&samples.post_touch),
        iteration_ns_per_page: per_page_mean(&iteration),
        protect_ns_per_page_median: per_page_median(&samples.protect),
        restore_ns_per_page_median: per_page_median(&samples.restore),
        post_touch_ns_per_page_median: per_page_median(&samples.post_touch),
        iteration_ns_per_page_median: per_page_median(&iteration),
        stopped_early: stop_requested(),
        measured_iterations: iteration.len() as u64,
        iterations_done,
        kernel_page_kb: smaps_after.kernel_page_kb,
        mmu_page_kb: smaps_after.mmu_page_kb,
        anon_huge_kb: smaps_after.huge_kb,
        thpeligible: smaps_after.thp_eligible,
        thp_enabled: thp.enabled,
        mthp_enabled: thp.mthp,
        expected_match_ratio,
        mprotect_calls,
        pte_table_walks,
        folio_kb: plan.folio_kb,
        folio_sizes: folios.into_iter().collect(),
        cpu_time_s: 0.0,
        smaps_before,
        smaps_after,
        per_iteration_ns: PerIteration {
            protect: samples.protect,
            restore: samples.restore,
            post_touch: samples.post_touch,
            threads,
        },
    }
}

/// Percentage (0-100, rounded down) of the pages that sit in folios of
/// exactly `folio_kb`; `folios` maps a size in kB to how many folios.
fn folio_match_percent(folios: &BTreeMap<u64, u64>, folio_kb: u64) -> u64 {
    let kb: u64 = folios.iter().map(|(size, count)| size * count).sum();
    let in_size = folios.get(&folio_kb).map_or(0, |count| count * folio_kb);
    (in_size * 100).checked_div(kb).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_folios_of_the_requested_size_match() {
        let folios = BTreeMap::from([(4, 16), (64, 3)]);
        assert_eq!(folio_match_percent(&folios, 64), 75);
        assert_eq!(folio_match_percent(&folios, 16), 0);
        assert_eq!(folio_match_percent(&BTreeMap::new(), 64), 0);
    }
}
