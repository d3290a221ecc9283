//! Reads the kernel side's per-CPU maps into a [`Snapshot`], summing CPUs.

use anyhow::{Context as _, Result};
use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray};
use mprotect_trace_common::{
    ERRNO_BUCKETS, FUNCTION_SLOTS, NR_PTES_BUCKETS, PROT_BUCKETS, SYSCALL_SLOT, Stats, counter, histogram, maps,
};

use super::{SlotData, Snapshot};
use crate::model::{Counters, ExactDistribution, Histogram, ValueStats};

fn per_cpu<'a, T: aya::Pod>(ebpf: &'a Ebpf, name: &str) -> Result<PerCpuArray<&'a MapData, T>> {
    let map = ebpf
        .map(name)
        .with_context(|| format!("the eBPF object has no map {name}"))?;
    PerCpuArray::try_from(map).with_context(|| format!("map {name} is not a per-CPU array"))
}

/// The sum of one entry's per-CPU values. Each is a 64-bit count that
/// cannot wrap in any real run (584 years at 10^9 events/s), but their
/// sum is checked all the same: an overflow is an error, never a small
/// number.
pub fn sum_cpus(values: impl IntoIterator<Item = u64>) -> Result<u64> {
    values
        .into_iter()
        .try_fold(0u64, |sum, value| sum.checked_add(value))
        .context("the per-CPU values of a counter overflow 64 bits")
}

/// Every entry of a per-CPU u64 array, summed over CPUs.
fn summed(map: &PerCpuArray<&MapData, u64>, range: std::ops::Range<u32>) -> Result<Vec<u64>> {
    range
        .map(|index| {
            sum_cpus(
                map.get(&index, 0)
                    .with_context(|| format!("reading entry {index}"))?
                    .iter()
                    .copied(),
            )
            .with_context(|| format!("entry {index}"))
        })
        .collect()
}

fn stats_of(stats: &PerCpuArray<&MapData, Stats>, hist: &PerCpuArray<&MapData, u64>, slot: u32) -> Result<ValueStats> {
    let per_cpu = stats
        .get(&slot, 0)
        .with_context(|| format!("reading stats slot {slot}"))?;
    let cpus = || per_cpu.iter();
    let start = slot * histogram::BUCKETS;
    Ok(ValueStats {
        count: sum_cpus(cpus().map(|cpu| cpu.count)).with_context(|| format!("slot {slot} count"))?,
        total: sum_cpus(cpus().map(|cpu| cpu.total)).with_context(|| format!("slot {slot} total"))?,
        min: cpus()
            .filter(|cpu| cpu.min_plus_one > 0)
            .map(|cpu| cpu.min_plus_one - 1)
            .min(),
        max: cpus().filter(|cpu| cpu.count > 0).map(|cpu| cpu.max).max(),
        histogram: Histogram::from_counts(&summed(hist, start..start + histogram::BUCKETS)?),
    })
}

pub fn read(ebpf: &Ebpf) -> Result<Snapshot> {
    let latency_stats = per_cpu::<Stats>(ebpf, maps::LATENCY_STATS)?;
    let latency_hist = per_cpu::<u64>(ebpf, maps::LATENCY_HIST)?;
    let pages_stats = per_cpu::<Stats>(ebpf, maps::PAGES_STATS)?;
    let pages_hist = per_cpu::<u64>(ebpf, maps::PAGES_HIST)?;
    let nr_ptes = per_cpu::<u64>(ebpf, maps::NR_PTES_HIST)?;
    let calls = summed(&per_cpu::<u64>(ebpf, maps::CALLS)?, 0..FUNCTION_SLOTS)?;
    let slot = |slot: u32| -> Result<SlotData> {
        let nr_ptes = if slot < FUNCTION_SLOTS {
            let start = slot * NR_PTES_BUCKETS;
            let counts = summed(&nr_ptes, start..start + NR_PTES_BUCKETS)?;
            ExactDistribution {
                counts: counts
                    .into_iter()
                    .enumerate()
                    .filter(|(_, count)| *count > 0)
                    .map(|(value, count)| (value as u64, count))
                    .collect(),
            }
        } else {
            ExactDistribution::default()
        };
        Ok(SlotData {
            call_site_calls: calls.get(slot as usize).copied().unwrap_or(0),
            latency_ns: stats_of(&latency_stats, &latency_hist, slot)?,
            pages: stats_of(&pages_stats, &pages_hist, slot)?,
            nr_ptes,
        })
    };
    let counters = summed(&per_cpu::<u64>(ebpf, maps::COUNTERS)?, 0..counter::LEN)?;
    let syscall = slot(SYSCALL_SLOT)?;
    let syscall_unpaired_exits = counters[counter::SYSCALL_EXIT_WITHOUT_ENTRY as usize];
    let failed = summed(&per_cpu::<u64>(ebpf, maps::FAILED_CALLS)?, 0..ERRNO_BUCKETS)?;
    let failed_total: u64 = failed.iter().sum();
    let syscall_enter = counters[counter::SYSCALL_ENTER as usize];
    let entry_overwritten = counters[counter::ENTRY_OVERWRITTEN as usize];
    // A successful exit records latency, length and flags; a failed one its errno.
    let ended = syscall.latency_ns.count + failed_total;
    Ok(Snapshot {
        counters: Counters {
            syscall_enter,
            syscall_exit: ended + syscall_unpaired_exits,
            in_flight: syscall_enter.saturating_sub(ended + entry_overwritten),
            exit_without_entry: syscall_unpaired_exits + counters[counter::FUNCTION_EXIT_WITHOUT_ENTRY as usize],
            entry_overwritten,
            map_lookup_failed: counters[counter::MAP_LOOKUP_FAILED as usize],
        },
        syscall,
        functions: (0..FUNCTION_SLOTS).map(slot).collect::<Result<_>>()?,
        prot_flags: summed(&per_cpu::<u64>(ebpf, maps::PROT_FLAGS)?, 0..PROT_BUCKETS)?,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::sum_cpus;

    #[test]
    fn per_cpu_sums_are_exact_or_an_error_never_wrapped() {
        assert_eq!(sum_cpus([u64::MAX - 1, 1]).unwrap(), u64::MAX);
        let err = sum_cpus([u64::MAX, 1]).unwrap_err();
        assert_eq!(err.to_string(), "the per-CPU values of a counter overflow 64 bits");
    }
}
