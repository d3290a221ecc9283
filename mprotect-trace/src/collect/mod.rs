//! Reads what the kernel side aggregated: the per-CPU maps, summed over
//! CPUs, and the programs' run-time statistics.

pub mod maps;
pub mod program_cost;

use crate::model::{Counters, ExactDistribution, ValueStats};

/// What the kernel aggregated for one function slot or the syscall.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlotData {
    /// Calls seen at call sites (call-site probes only).
    pub call_site_calls: u64,
    pub latency_ns: ValueStats,
    /// Pages per call, or any other returned value the slot records.
    pub pages: ValueStats,
    pub nr_ptes: ExactDistribution,
}

/// A snapshot of every map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub syscall: SlotData,
    /// Indexed by function slot.
    pub functions: Vec<SlotData>,
    /// `(prot & 7, count)`; index 8 counts calls with other bits.
    pub prot_flags: Vec<u64>,
    /// Failed syscalls by errno (index 0: errno out of range).
    pub failed: Vec<u64>,
    pub counters: Counters,
}
