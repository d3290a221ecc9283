//! The run model: everything read back from the kernel's maps, and the
//! only thing the outputs look at.

pub mod histogram;
pub mod maps;
pub mod program_cost;

use serde::{Deserialize, Serialize};

pub use histogram::Histogram;

/// Summary and histogram of one value stream (latency in ns, or pages).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueStats {
    pub count: u64,
    pub total: u64,
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub histogram: Histogram,
}

impl ValueStats {
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total as f64 / self.count as f64)
    }

    pub fn since(&self, earlier: &ValueStats) -> ValueStats {
        // min/max cannot be split by interval; they stay run-wide.
        ValueStats {
            count: self.count.saturating_sub(earlier.count),
            total: self.total.saturating_sub(earlier.total),
            min: self.min,
            max: self.max,
            histogram: self.histogram.since(&earlier.histogram),
        }
    }
}

/// Exact counts of `nr_ptes` values: `(value, count)`, `value` 513 meaning "more than 512".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactDistribution {
    pub counts: Vec<(u64, u64)>,
}

impl ExactDistribution {
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, count)| count).sum()
    }
}

/// What the kernel aggregated for one function slot or the syscall.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotData {
    pub latency_ns: ValueStats,
    pub pages: ValueStats,
    pub nr_ptes: ExactDistribution,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub syscall_enter: u64,
    pub syscall_exit: u64,
    pub exit_without_entry: u64,
    pub entry_overwritten: u64,
}

/// A snapshot of every map.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub syscall: SlotData,
    /// Indexed by function slot.
    pub functions: Vec<SlotData>,
    /// `(prot & 7, count)`; index 8 counts calls with other bits.
    pub prot_flags: Vec<u64>,
    pub counters: Counters,
}
