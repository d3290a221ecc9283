//! Reads the kernel side's per-CPU maps into a [`Snapshot`], summing CPUs.

use anyhow::{Context as _, Result};
use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use mprotect_trace_common::{
    ERRNO_BUCKETS, FUNCTION_SLOTS, INLINE_INSTANCES_PER_SLOT, NR_PTES_BUCKETS, PROT_BUCKETS, SPLIT_SLOTS, SPLIT_VALUES,
    SYSCALL_SLOT, Stats, TRACEPOINT_SLOTS, TracepointValueKey, counter, histogram, maps,
};

use super::{SlotData, Snapshot, SplitData, TracepointData};
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

/// Every entry of a per-CPU u64 array, CPU by CPU: `[entry][cpu]`.
fn per_cpu_rows(map: &PerCpuArray<&MapData, u64>, range: std::ops::Range<u32>) -> Result<Vec<PerCpuValues<u64>>> {
    range
        .map(|index| map.get(&index, 0).with_context(|| format!("reading entry {index}")))
        .collect()
}

/// A slot's values: summed over CPUs, and on each CPU.
fn stats_of(
    stats: &PerCpuArray<&MapData, Stats>,
    hist: &PerCpuArray<&MapData, u64>,
    slot: u32,
) -> Result<(ValueStats, Vec<ValueStats>)> {
    let per_cpu = stats
        .get(&slot, 0)
        .with_context(|| format!("reading stats slot {slot}"))?;
    let start = slot * histogram::BUCKETS;
    let rows = per_cpu_rows(hist, start..start + histogram::BUCKETS)?;
    let on_cpu = |cpu: usize| ValueStats {
        count: per_cpu[cpu].count,
        total: per_cpu[cpu].total,
        min: per_cpu[cpu].min_plus_one.checked_sub(1),
        max: (per_cpu[cpu].count > 0).then_some(per_cpu[cpu].max),
        histogram: Histogram::from_counts(&rows.iter().map(|row| row[cpu]).collect::<Vec<_>>()),
    };
    let cpus: Vec<ValueStats> = (0..per_cpu.len()).map(on_cpu).collect();
    let summed = ValueStats {
        count: sum_cpus(cpus.iter().map(|cpu| cpu.count)).with_context(|| format!("slot {slot} count"))?,
        total: sum_cpus(cpus.iter().map(|cpu| cpu.total)).with_context(|| format!("slot {slot} total"))?,
        min: cpus.iter().filter_map(|cpu| cpu.min).min(),
        max: cpus.iter().filter_map(|cpu| cpu.max).max(),
        histogram: Histogram::from_counts(
            &rows
                .iter()
                .map(|row| sum_cpus(row.iter().copied()))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("slot {slot} histogram"))?,
        ),
    };
    Ok((summed, cpus))
}

/// Events of each tracepoint slot, on each CPU, and by field value.
fn tracepoints(ebpf: &Ebpf) -> Result<Vec<TracepointData>> {
    let calls = per_cpu_rows(&per_cpu::<u64>(ebpf, maps::TRACEPOINT_CALLS)?, 0..TRACEPOINT_SLOTS)?;
    let values_map = ebpf
        .map(maps::TRACEPOINT_VALUES)
        .context("the eBPF object has no map TRACEPOINT_VALUES")?;
    let values: PerCpuHashMap<&MapData, TracepointValueKey, u64> = PerCpuHashMap::try_from(values_map)?;
    let mut slots: Vec<TracepointData> = calls
        .iter()
        .map(|row| {
            Ok(TracepointData {
                calls: sum_cpus(row.iter().copied())?,
                calls_per_cpu: row.to_vec(),
                values: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    for entry in values.iter() {
        let (key, per_cpu) = entry.context("reading TRACEPOINT_VALUES")?;
        if let Some(slot) = slots.get_mut(key.slot as usize) {
            slot.values.push((key.value, sum_cpus(per_cpu.iter().copied())?));
        }
    }
    for slot in &mut slots {
        slot.values.sort_unstable();
    }
    Ok(slots)
}

/// An exact distribution from its buckets `range` of a per-CPU array:
/// bucket i counts the value i.
fn exact(map: &PerCpuArray<&MapData, u64>, range: std::ops::Range<u32>) -> Result<ExactDistribution> {
    Ok(ExactDistribution {
        counts: summed(map, range)?
            .into_iter()
            .enumerate()
            .filter(|(_, count)| *count > 0)
            .map(|(value, count)| (value as u64, count))
            .collect(),
    })
}

/// Every function slot's records by split value, when the run splits
/// (its split maps are sized for it; else they have one entry each).
fn split(ebpf: &Ebpf) -> Result<Vec<Vec<SplitData>>> {
    let calls_map = per_cpu::<u64>(ebpf, maps::SPLIT_CALLS)?;
    if calls_map.len() < SPLIT_SLOTS {
        return Ok(vec![Vec::new(); FUNCTION_SLOTS as usize]);
    }
    let calls = summed(&calls_map, 0..SPLIT_SLOTS)?;
    let stats = per_cpu::<Stats>(ebpf, maps::SPLIT_LATENCY_STATS)?;
    let hist = per_cpu::<u64>(ebpf, maps::SPLIT_LATENCY_HIST)?;
    let nr_ptes = per_cpu::<u64>(ebpf, maps::SPLIT_NR_PTES_HIST)?;
    (0..FUNCTION_SLOTS)
        .map(|slot| {
            (0..SPLIT_VALUES)
                .map(|value| slot * SPLIT_VALUES + value)
                // Only values with calls: reading all 2,048 histograms would take long.
                .filter(|index| calls[*index as usize] > 0)
                .map(|index| {
                    let start = index * NR_PTES_BUCKETS;
                    Ok(SplitData {
                        value: index % SPLIT_VALUES,
                        calls: calls[index as usize],
                        latency_ns: stats_of(&stats, &hist, index)?.0,
                        nr_ptes: exact(&nr_ptes, start..start + NR_PTES_BUCKETS)?,
                    })
                })
                .collect()
        })
        .collect()
}

pub fn read(ebpf: &Ebpf) -> Result<Snapshot> {
    let latency_stats = per_cpu::<Stats>(ebpf, maps::LATENCY_STATS)?;
    let latency_hist = per_cpu::<u64>(ebpf, maps::LATENCY_HIST)?;
    let pages_stats = per_cpu::<Stats>(ebpf, maps::PAGES_STATS)?;
    let pages_hist = per_cpu::<u64>(ebpf, maps::PAGES_HIST)?;
    let nr_ptes = per_cpu::<u64>(ebpf, maps::NR_PTES_HIST)?;
    let calls = per_cpu_rows(&per_cpu::<u64>(ebpf, maps::CALLS)?, 0..FUNCTION_SLOTS)?;
    let mut split = split(ebpf)?;
    let mut slot = |slot: u32| -> Result<SlotData> {
        let nr_ptes = if slot < FUNCTION_SLOTS {
            let start = slot * NR_PTES_BUCKETS;
            exact(&nr_ptes, start..start + NR_PTES_BUCKETS)?
        } else {
            ExactDistribution::default()
        };
        let (latency_ns, latency_per_cpu) = stats_of(&latency_stats, &latency_hist, slot)?;
        let call_site_per_cpu = calls.get(slot as usize).map(|row| row.to_vec()).unwrap_or_default();
        Ok(SlotData {
            call_site_calls: sum_cpus(call_site_per_cpu.iter().copied())?,
            call_site_per_cpu,
            latency_ns,
            latency_per_cpu,
            pages: stats_of(&pages_stats, &pages_hist, slot)?.0,
            nr_ptes,
            split: split.get_mut(slot as usize).map(std::mem::take).unwrap_or_default(),
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
        tracepoints: tracepoints(ebpf)?,
        tracepoint_values_full: counters[counter::TRACEPOINT_VALUES_FULL as usize],
        syscall,
        functions: (0..FUNCTION_SLOTS).map(slot).collect::<Result<_>>()?,
        prot_flags: summed(&per_cpu::<u64>(ebpf, maps::PROT_FLAGS)?, 0..PROT_BUCKETS)?,
        failed,
        inline_calls: summed(
            &per_cpu::<u64>(ebpf, maps::INLINE_CALLS)?,
            0..FUNCTION_SLOTS * INLINE_INSTANCES_PER_SLOT,
        )?,
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
