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
    /// The same, on each CPU (indexed by CPU number).
    pub call_site_per_cpu: Vec<u64>,
    pub latency_ns: ValueStats,
    /// Latency on each CPU (indexed by CPU number).
    pub latency_per_cpu: Vec<ValueStats>,
    /// Pages per call, or any other returned value the slot records.
    pub pages: ValueStats,
    pub nr_ptes: ExactDistribution,
    /// `--split-by`: the records of each split value with calls.
    pub split: Vec<SplitData>,
}

/// A slot's records with one split value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitData {
    pub value: u32,
    pub calls: u64,
    pub latency_ns: ValueStats,
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
    /// Indexed by tracepoint slot.
    pub tracepoints: Vec<TracepointData>,
    /// Field values not counted for lack of room in the kernel's map.
    pub tracepoint_values_full: u64,
    /// Calls of each probed inlined instance, by its counter.
    pub inline_calls: Vec<u64>,
}

/// What the kernel counted for one tracepoint target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TracepointData {
    pub calls: u64,
    /// Indexed by CPU number.
    pub calls_per_cpu: Vec<u64>,
    /// `(raw field value, events)`, ascending by raw value.
    pub values: Vec<(u64, u64)>,
}
