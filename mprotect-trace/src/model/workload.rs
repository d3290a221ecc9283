//! The workload's measured result and the page state it ran in, printed
//! as the reproducers print it: one `result key=value ...` line, or JSON.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub scenario: String,
    pub pages: u64,
    pub mapping_mb: u64,
    pub iterations: u64,
    pub warmup: u64,
    pub rounds: u64,
    pub threads: u64,
    /// Means over every measured iteration of every thread and round.
    pub protect_ns_per_page: f64,
    pub restore_ns_per_page: f64,
    pub post_touch_ns_per_page: f64,
    pub iteration_ns_per_page: f64,
    /// Medians of the per-iteration values.
    pub protect_ns_per_page_median: f64,
    pub restore_ns_per_page_median: f64,
    pub post_touch_ns_per_page_median: f64,
    pub iteration_ns_per_page_median: f64,
    /// State audit of the mapping that matched the scenario least, at the end.
    pub kernel_page_kb: u64,
    pub mmu_page_kb: u64,
    pub anon_huge_kb: u64,
    pub thpeligible: u64,
    /// Lowest share (percent) of a mapping in the scenario's intended page
    /// state, before or after the measured iterations.
    pub expected_match_ratio: u64,
    pub mprotect_calls: u64,
    /// Page-table walks the calls made: each call times the PTE tables
    /// (2 MiB ranges) its range spans. change_pte_range runs once per walk.
    #[serde(default)]
    pub pte_table_walks: u64,
    /// `--folio-kb`: the folio size asked for (multi-size THP).
    #[serde(default)]
    pub folio_kb: Option<u64>,
    /// With `--folio-kb`: `[size_kb, folios]` backing the mapping at the
    /// end, by /proc/self/pagemap and /proc/kpageflags.
    #[serde(default)]
    pub folio_sizes: Vec<(u64, u64)>,
    /// Stopped before its planned iterations (`run --duration`): the
    /// figures are of the measured iterations done (`measured_iterations`).
    #[serde(default)]
    pub stopped_early: bool,
    /// Measured iterations done, every thread and round together.
    #[serde(default)]
    pub measured_iterations: u64,
    /// Every iteration done, warmup included, every thread and round
    /// together: what calls per iteration divide by. Absent (0) from
    /// reports written before it: see [`WorkloadResult::iterations_run`].
    #[serde(default)]
    pub iterations_done: u64,
    /// CPU seconds (user + system, all threads) the workload used from the
    /// start gate to the end: how busy it kept the CPUs.
    #[serde(default)]
    pub cpu_time_s: f64,
    pub smaps_before: SmapsEntry,
    pub smaps_after: SmapsEntry,
    /// Per measured iteration, in order: thread 0's (the main thread's)
    /// rounds one after another, then thread 1's, ...
    pub per_iteration_ns: PerIteration,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PerIteration {
    pub protect: Vec<u64>,
    pub restore: Vec<u64>,
    pub post_touch: Vec<u64>,
    /// Measured iterations of each thread, in thread order. Absent from
    /// reports written before it: see [`WorkloadResult::iterations_by_thread`].
    #[serde(default)]
    pub threads: Vec<u64>,
}

/// The smaps fields of the VMA holding one mapping, in kB.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmapsEntry {
    pub size_kb: u64,
    pub kernel_page_kb: u64,
    pub mmu_page_kb: u64,
    pub rss_kb: u64,
    pub dirty_kb: u64,
    /// PMD-mapped (huge) kB of any kind: `AnonHugePages`, `ShmemPmdMapped`
    /// and `FilePmdMapped` added up.
    pub huge_kb: u64,
    pub thp_eligible: u64,
    /// `VmFlags`, e.g. `rd wr sh mr mw me ms`.
    pub vm_flags: String,
}

impl SmapsEntry {
    pub fn is_shared(&self) -> bool {
        self.vm_flags.split_whitespace().any(|flag| flag == "sh")
    }
}

impl WorkloadResult {
    /// Which per-iteration values each thread measured, as index ranges in
    /// thread order. A report that does not record it (written before
    /// `per_iteration_ns.threads`) still tells when every thread ran its
    /// planned iterations; after an early stop it cannot: `None`.
    pub fn iterations_by_thread(&self) -> Option<Vec<std::ops::Range<usize>>> {
        let measured = self.per_iteration_ns.protect.len();
        let counts: Vec<usize> = if !self.per_iteration_ns.threads.is_empty() {
            self.per_iteration_ns.threads.iter().map(|&n| n as usize).collect()
        } else if self.threads <= 1 {
            vec![measured]
        } else if !self.stopped_early && measured as u64 == self.threads * self.rounds * self.iterations {
            vec![(self.rounds * self.iterations) as usize; self.threads as usize]
        } else {
            return None;
        };
        if counts.iter().sum::<usize>() != measured {
            return None;
        }
        let mut start = 0;
        Some(
            counts
                .into_iter()
                .map(|count| {
                    start += count;
                    start - count..start
                })
                .collect(),
        )
    }

    /// Iterations run, warmup included, every thread and round: the
    /// planned ones, or after an early stop (`run --duration`) those done.
    /// A report older than `iterations_done` that stopped early counts
    /// every round's warmup as done.
    pub fn iterations_run(&self) -> u64 {
        if self.iterations_done > 0 {
            self.iterations_done
        } else if self.stopped_early {
            self.measured_iterations + self.warmup * self.rounds * self.threads
        } else {
            (self.iterations + self.warmup) * self.rounds * self.threads
        }
    }

    /// The one-line summary, with the reproducer's field names.
    pub fn result_line(&self) -> String {
        let fields: Vec<String> = self
            .result_fields()
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!("result {}", fields.join(" "))
    }

    /// The `result` line's fields, in its order: `(key, value)`.
    pub fn result_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("scenario", self.scenario.clone()),
            ("pages", self.pages.to_string()),
            ("mapping_mb", self.mapping_mb.to_string()),
            ("iterations", self.iterations.to_string()),
            ("warmup", self.warmup.to_string()),
            ("rounds", self.rounds.to_string()),
            ("threads", self.threads.to_string()),
        ];
        if let Some(kb) = self.folio_kb {
            fields.push(("folio_kb", kb.to_string()));
        }
        if self.stopped_early {
            fields.push(("stopped_early", "1".to_owned()));
            fields.push(("measured_iterations", self.measured_iterations.to_string()));
        }
        for (key, value) in self.ns_per_page_fields() {
            fields.push((key, format!("{value:.2}")));
        }
        for (key, value) in [
            ("kernel_page_kb", self.kernel_page_kb),
            ("mmu_page_kb", self.mmu_page_kb),
            ("anon_huge_kb", self.anon_huge_kb),
            ("thpeligible", self.thpeligible),
            ("expected_match_ratio", self.expected_match_ratio),
            ("mprotect_calls", self.mprotect_calls),
        ] {
            fields.push((key, value.to_string()));
        }
        fields
    }

    /// The per-page times of the `result` line: means, then medians.
    pub fn ns_per_page_fields(&self) -> [(&'static str, f64); 8] {
        [
            ("protect_ns_per_page", self.protect_ns_per_page),
            ("restore_ns_per_page", self.restore_ns_per_page),
            ("post_touch_ns_per_page", self.post_touch_ns_per_page),
            ("iteration_ns_per_page", self.iteration_ns_per_page),
            ("protect_ns_per_page_median", self.protect_ns_per_page_median),
            ("restore_ns_per_page_median", self.restore_ns_per_page_median),
            ("post_touch_ns_per_page_median", self.post_touch_ns_per_page_median),
            ("iteration_ns_per_page_median", self.iteration_ns_per_page_median),
        ]
    }
}

pub fn mean(values: &[u64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(threads: u64, measured: usize, recorded: Vec<u64>, stopped_early: bool) -> WorkloadResult {
        let json = serde_json::json!({
            "scenario": "shared-dirty-toggle", "pages": 16, "mapping_mb": 1, "iterations": 3, "warmup": 1,
            "rounds": 1, "threads": threads, "protect_ns_per_page": 0.0, "restore_ns_per_page": 0.0,
            "post_touch_ns_per_page": 0.0, "iteration_ns_per_page": 0.0, "protect_ns_per_page_median": 0.0,
            "restore_ns_per_page_median": 0.0, "post_touch_ns_per_page_median": 0.0,
            "iteration_ns_per_page_median": 0.0, "kernel_page_kb": 4, "mmu_page_kb": 4, "anon_huge_kb": 0,
            "thpeligible": 0, "expected_match_ratio": 100, "mprotect_calls": 0, "stopped_early": stopped_early,
            "smaps_before": SmapsEntry::default(), "smaps_after": SmapsEntry::default(),
            "per_iteration_ns": {"protect": vec![1; measured], "restore": vec![1; measured], "post_touch": vec![1; measured]},
        });
        let mut result: WorkloadResult = serde_json::from_value(json).expect("a workload result without threads loads");
        result.per_iteration_ns.threads = recorded;
        result
    }

    #[test]
    fn recorded_thread_counts_split_the_iterations() {
        assert_eq!(
            result(2, 5, vec![3, 2], true).iterations_by_thread(),
            Some(vec![0..3, 3..5])
        );
    }

    #[test]
    fn an_older_report_splits_when_every_thread_ran_its_plan() {
        assert_eq!(
            result(2, 6, Vec::new(), false).iterations_by_thread(),
            Some(vec![0..3, 3..6])
        );
        let one_thread = result(1, 2, Vec::new(), true)
            .iterations_by_thread()
            .unwrap_or_default();
        assert_eq!((one_thread.len(), one_thread.first()), (1, Some(&(0..2))));
        // Stopped early, two threads: which did how many is lost.
        assert_eq!(result(2, 5, Vec::new(), true).iterations_by_thread(), None);
    }
}
