//! The workload's measured result and the page state it ran in, printed
//! as the reproducers print it: one `result key=value ...` line, or JSON.

use serde::{Deserialize, Serialize};

/// numa-hinting: where the workload ran, where its memory was, and what NUMA
/// balancing did meanwhile, by the kernel's counters (/proc/vmstat, every
/// task's; the scan passes from /proc/self/sched, this process's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaHinting {
    pub cpu: u64,
    pub cpu_node: u32,
    pub memory_node: u32,
    /// Completed passes over the address space (`mm->numa_scan_seq`).
    pub scan_passes: u64,
    /// PTEs made PROT_NONE for hinting (`numa_pte_updates`).
    pub pte_updates: u64,
    pub hint_faults: u64,
    pub hint_faults_local: u64,
    pub pages_migrated: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub scenario: String,
    /// Pages of one thread's memory under test, which each iteration
    /// covers: its mapping, or for mprot-tw4m all its regions together
    /// (each batch changes the protection of every page once).
    pub pages: u64,
    /// Size of the mapping; for mprot-tw4m, of each region.
    pub mapping_mb: u64,
    /// mprot-tw4m: the regions each thread toggles, one mprotect() call
    /// each per batch (libMicro's `-B`); `None` for every other scenario.
    #[serde(default)]
    pub regions: Option<u64>,
    pub iterations: u64,
    pub warmup: u64,
    pub rounds: u64,
    pub threads: u64,
    /// mprot-tw4m: libMicro's figure, the median microseconds per
    /// mprotect() call, outliers removed (see
    /// [`crate::workload::libmicro_median`]); one sample per measured batch:
    /// the batch's time (its reads of `-t` included) over its calls.
    /// `None` for every other scenario.
    #[serde(default)]
    pub mprotect_call_us_median: Option<f64>,
    /// Means over every measured iteration of every thread and round.
    /// For mprot-tw4m an iteration is a batch and the times are per page
    /// of all the regions (`pages`): protect is the batch's calls to
    /// PROT_NONE, restore its calls to PROT_READ|PROT_WRITE, post-touch
    /// its reads of every page of each region about to go PROT_NONE (`-t`,
    /// inside libMicro's timed window); they add up to the batch.
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
    /// `KernelPageSize` of a mapping that is not hugetlb (no workload maps
    /// hugetlb): the kernel's base page size.
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
    /// The THP mode the run ran in: the active (bracketed) word of
    /// /sys/kernel/mm/transparent_hugepage/enabled (`always`, `madvise`,
    /// `never`). `None`: the kernel has no THP, or the report predates it.
    #[serde(default)]
    pub thp_enabled: Option<String>,
    /// The multi-size THP sizes enabled for anonymous memory in that run:
    /// `[size_kb, mode]` for each hugepages-<size>kB/enabled that is not
    /// `never` (`always`, `inherit` or `madvise`), smallest first. Empty
    /// when none is, when the kernel has none (before 6.8), or in reports
    /// that predate it.
    #[serde(default)]
    pub mthp_enabled: Vec<(u64, String)>,
    /// `--folio-kb`: the folio size asked for (multi-size THP).
    #[serde(default)]
    pub folio_kb: Option<u64>,
    /// numa-hinting: what NUMA balancing did (thread 0's round, the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa: Option<NumaHinting>,
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
    /// The smaps entries of the mapping that matched least, after its
    /// prefault and at the end. For mprot-tw4m: before, every region
    /// together (one VMA until the first batch splits it); after, the
    /// region that matched least (each is audited, each its own VMA then).
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
        if let Some(regions) = self.regions {
            fields.push(("regions", regions.to_string()));
        }
        if let Some(kb) = self.folio_kb {
            fields.push(("folio_kb", kb.to_string()));
        }
        if self.stopped_early {
            fields.push(("stopped_early", "1".to_owned()));
            fields.push(("measured_iterations", self.measured_iterations.to_string()));
        }
        if let Some(us) = self.mprotect_call_us_median {
            fields.push(("mprotect_call_us_median", format!("{us:.3}")));
        }
        for (key, value) in self.ns_per_page_fields() {
            fields.push((key, format!("{value:.2}")));
        }
        for (key, value) in [
            ("kernel_page_kb", self.kernel_page_kb),
            ("mmu_page_kb", self.mmu_page_kb),
            ("anon_huge_kb", self.anon_huge_kb),
            ("thpeligible", self.thpeligible),
        ] {
            fields.push((key, value.to_string()));
        }
        if let Some(numa) = &self.numa {
            for (key, value) in [
                ("numa_cpu", numa.cpu),
                ("numa_cpu_node", u64::from(numa.cpu_node)),
                ("numa_memory_node", u64::from(numa.memory_node)),
                ("numa_scan_passes", numa.scan_passes),
                ("numa_pte_updates", numa.pte_updates),
                ("numa_hint_faults", numa.hint_faults),
                ("numa_hint_faults_local", numa.hint_faults_local),
                ("numa_pages_migrated", numa.pages_migrated),
            ] {
                fields.push((key, value.to_string()));
            }
        }
        if let Some(mode) = &self.thp_enabled {
            fields.push(("thp_enabled", mode.clone()));
            fields.push(("mthp_enabled", self.mthp_enabled_field()));
        }
        for (key, value) in [
            ("expected_match_ratio", self.expected_match_ratio),
            ("mprotect_calls", self.mprotect_calls),
        ] {
            fields.push((key, value.to_string()));
        }
        fields
    }

    /// `mthp_enabled` as one word: `16kB:always,2048kB:inherit`, or `none`.
    fn mthp_enabled_field(&self) -> String {
        if self.mthp_enabled.is_empty() {
            return "none".to_owned();
        }
        let sizes: Vec<String> = self
            .mthp_enabled
            .iter()
            .map(|(kb, mode)| format!("{kb}kB:{mode}"))
            .collect();
        sizes.join(",")
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
    fn an_older_report_loads_without_the_newer_fields_and_prints_none_of_them() {
        let old = result(1, 3, Vec::new(), false);
        assert_eq!((old.regions, old.mprotect_call_us_median), (None, None));
        assert_eq!((old.thp_enabled.as_deref(), old.mthp_enabled.len()), (None, 0));
        let line = old.result_line();
        for key in ["regions=", "mprotect_call_us_median=", "thp_enabled=", "mthp_enabled="] {
            assert!(!line.contains(key), "{line}");
        }
    }

    #[test]
    fn the_result_line_carries_the_call_figure_and_the_thp_settings() {
        let mut tw4m = result(1, 3, Vec::new(), false);
        tw4m.regions = Some(10);
        tw4m.mprotect_call_us_median = Some(12.345_67);
        tw4m.thp_enabled = Some("madvise".into());
        let line = tw4m.result_line();
        assert!(
            line.contains(" threads=1 regions=10 mprotect_call_us_median=12.346 protect_ns_per_page="),
            "{line}"
        );
        assert!(
            line.contains(" thpeligible=0 thp_enabled=madvise mthp_enabled=none expected_match_ratio="),
            "{line}"
        );
        tw4m.mthp_enabled = vec![(16, "always".into()), (2048, "inherit".into())];
        assert!(tw4m.result_line().contains(" mthp_enabled=16kB:always,2048kB:inherit "));
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
