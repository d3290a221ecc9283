//! Value streams as the kernel aggregated them: summaries, log-linear
//! histograms and exact distributions, and what is computed from them.

use mprotect_trace_common::histogram::{self, MIDPOINT_RELATIVE_ERROR};
use serde::{Deserialize, Serialize};

/// Non-empty buckets only: `[low, high, count]`, values in `[low, high)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<(u64, u64, u64)>,
}

/// Percentiles are bucket midpoints: exact below 16, else within this
/// relative error of the true value.
pub const PERCENTILE_RELATIVE_ERROR: f64 = MIDPOINT_RELATIVE_ERROR;

impl Histogram {
    /// From per-bucket counts laid out as `histogram::bounds` says.
    pub fn from_counts(counts: &[u64]) -> Self {
        let buckets = counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, &count)| {
                let (low, high) = histogram::bounds(index as u32);
                (low, high, count)
            })
            .collect();
        Self { buckets }
    }

    pub fn total(&self) -> u64 {
        self.buckets.iter().map(|(_, _, count)| count).sum()
    }

    /// The value at quantile `q` (0..=1), as its bucket's midpoint.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        // The rank of the q-quantile among `total` sorted values, 1-based.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for &(low, high, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Some(if high - low <= 1 {
                    low as f64
                } else {
                    (low as f64 + high as f64) / 2.0
                });
            }
        }
        None
    }

    /// Bucket-wise sum of `histograms` (one stream measured in several runs).
    pub fn pooled<'a>(histograms: impl IntoIterator<Item = &'a Histogram>) -> Histogram {
        let mut buckets: Vec<(u64, u64, u64)> = Vec::new();
        for &(low, high, count) in histograms.into_iter().flat_map(|h| &h.buckets) {
            match buckets.iter_mut().find(|b| b.0 == low) {
                Some(bucket) => bucket.2 += count,
                None => buckets.push((low, high, count)),
            }
        }
        buckets.sort_unstable();
        Histogram { buckets }
    }

    /// Bucket-wise difference `self - earlier` (for per-interval output).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .filter_map(|&(low, high, count)| {
                let before = earlier.buckets.iter().find(|b| b.0 == low).map_or(0, |b| b.2);
                let delta = count.saturating_sub(before);
                (delta > 0).then_some((low, high, delta))
            })
            .collect();
        Histogram { buckets }
    }
}

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

    /// One stream measured in several runs, as if in one: counts, totals
    /// and buckets added, the least min and the greatest max.
    pub fn pooled<'a>(all: impl IntoIterator<Item = &'a ValueStats> + Clone) -> ValueStats {
        ValueStats {
            count: all.clone().into_iter().map(|s| s.count).sum(),
            total: all.clone().into_iter().map(|s| s.total).sum(),
            min: all.clone().into_iter().filter_map(|s| s.min).min(),
            max: all.clone().into_iter().filter_map(|s| s.max).max(),
            histogram: Histogram::pooled(all.into_iter().map(|s| &s.histogram)),
        }
    }

    /// The value at quantile `q` (0..=1): its bucket's midpoint, kept
    /// within the min and max seen (a midpoint may lie beyond them).
    /// Every percentile a report, table or comparison shows is this one.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let midpoint = self.histogram.quantile(q)?;
        let low = self.min.map_or(f64::NEG_INFINITY, |min| min as f64);
        let high = self.max.map_or(f64::INFINITY, |max| max as f64);
        Some(midpoint.clamp(low, high.max(low)))
    }

    /// What was recorded since `earlier` (one `--interval`). The kernel
    /// keeps one min and one max for the whole run: an extreme that moved
    /// since `earlier` was reached in the interval and is exact; else the
    /// interval's own lies in its lowest (highest) bucket, and is given as
    /// that bucket's midpoint, as percentiles are, within the run's.
    pub fn since(&self, earlier: &ValueStats) -> ValueStats {
        let histogram = self.histogram.since(&earlier.histogram);
        let count = self.count.saturating_sub(earlier.count);
        let moved = |now: Option<u64>, before: Option<u64>| now.filter(|_| count > 0 && now != before);
        let (exact_min, exact_max) = (moved(self.min, earlier.min), moved(self.max, earlier.max));
        // A bucket's midpoint stays within what is known: the run's
        // extremes, and the interval's exact one on the other side.
        let low = exact_min.or(self.min).unwrap_or(0);
        let high = exact_max.or(self.max).unwrap_or(u64::MAX);
        let from_bucket = |q: f64| {
            histogram
                .quantile(q)
                .filter(|_| count > 0)
                .map(|midpoint| (midpoint.round() as u64).clamp(low, high))
        };
        ValueStats {
            count,
            total: self.total.saturating_sub(earlier.total),
            min: exact_min.or_else(|| from_bucket(0.0)),
            max: exact_max.or_else(|| from_bucket(1.0)),
            histogram,
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

    /// Value-wise sum of `distributions`, in value order.
    pub fn pooled<'a>(distributions: impl IntoIterator<Item = &'a ExactDistribution>) -> ExactDistribution {
        let mut counts: Vec<(u64, u64)> = Vec::new();
        for &(value, count) in distributions.into_iter().flat_map(|d| &d.counts) {
            match counts.iter_mut().find(|c| c.0 == value) {
                Some(entry) => entry.1 += count,
                None => counts.push((value, count)),
            }
        }
        counts.sort_unstable();
        ExactDistribution { counts }
    }
}

/// Event counts and lost data, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub syscall_enter: u64,
    pub syscall_exit: u64,
    pub exit_without_entry: u64,
    /// Not counted by the earliest schema-1 reports (it reads as 0 there).
    #[serde(default)]
    pub entry_overwritten: u64,
    /// Map lookups in the BPF programs that found no entry: each one is a
    /// value that was not recorded. Always 0 unless a map is mis-sized.
    #[serde(default)]
    pub map_lookup_failed: u64,
    /// Syscalls entered but not yet returned when the run stopped (the
    /// programs are paused before the final read): no outcome, no latency.
    #[serde(default)]
    pub in_flight: u64,
}

/// What a table shows of a latency stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub calls: u64,
    pub total_ns: u64,
    pub mean_ns: Option<f64>,
    pub min_ns: Option<u64>,
    pub max_ns: Option<u64>,
    pub p50_ns: Option<f64>,
    pub p90_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub p999_ns: Option<f64>,
}

impl LatencySummary {
    pub fn of(stats: &ValueStats) -> Self {
        Self {
            calls: stats.count,
            total_ns: stats.total,
            mean_ns: stats.mean(),
            min_ns: stats.min,
            max_ns: stats.max,
            p50_ns: stats.quantile(0.5),
            p90_ns: stats.quantile(0.9),
            p99_ns: stats.quantile(0.99),
            p999_ns: stats.quantile(0.999),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram_of(values: &[u64]) -> Histogram {
        let mut counts = vec![0u64; histogram::BUCKETS as usize];
        for &value in values {
            counts[histogram::bucket(value) as usize] += 1;
        }
        Histogram::from_counts(&counts)
    }

    #[test]
    fn quantiles_are_exact_for_small_values() {
        let h = histogram_of(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(h.total(), 10);
        assert_eq!(h.quantile(0.5), Some(5.0));
        assert_eq!(h.quantile(0.9), Some(9.0));
        assert_eq!(h.quantile(0.99), Some(10.0));
        assert_eq!(h.quantile(0.0), Some(1.0));
    }

    #[test]
    fn quantiles_of_large_values_are_within_the_stated_error() {
        let values: Vec<u64> = (1..=1000).map(|i| i * 997).collect();
        let h = histogram_of(&values);
        for (q, exact) in [(0.5, 500.0 * 997.0), (0.9, 900.0 * 997.0), (0.99, 990.0 * 997.0)] {
            let estimate = h.quantile(q).unwrap();
            let error = (estimate - exact).abs() / exact;
            assert!(error <= PERCENTILE_RELATIVE_ERROR, "q={q}: {estimate} vs {exact}");
        }
    }

    fn stats(values: &[u64]) -> ValueStats {
        ValueStats {
            count: values.len() as u64,
            total: values.iter().sum(),
            min: values.iter().copied().min(),
            max: values.iter().copied().max(),
            histogram: histogram_of(values),
        }
    }

    #[test]
    fn pooling_adds_counts_bucket_by_bucket() {
        let (a, b) = (stats(&[5, 100, 100]), stats(&[3, 100, 4000]));
        assert_eq!(ValueStats::pooled([&a, &b]), stats(&[5, 100, 100, 3, 100, 4000]));
        let a = ExactDistribution {
            counts: vec![(4, 1), (1, 2)],
        };
        let b = ExactDistribution {
            counts: vec![(1, 3), (513, 1)],
        };
        assert_eq!(ExactDistribution::pooled([&a, &b]).counts, [(1, 5), (4, 1), (513, 1)]);
    }

    #[test]
    fn since_subtracts_bucket_counts() {
        let later = histogram_of(&[5, 5, 100, 100, 100]);
        let earlier = histogram_of(&[5, 100]);
        let delta = later.since(&earlier);
        assert_eq!(delta.total(), 3);
        assert_eq!(delta.quantile(0.0), Some(5.0));
        assert_eq!(histogram_of(&[]).quantile(0.5), None);
    }

    /// An interval's min and max are its own: a new extreme of the run is
    /// exact, else its lowest and highest bucket say them (exact below 16).
    #[test]
    fn an_interval_has_its_own_min_and_max() {
        let earlier = stats(&[1, 15]);
        let later = stats(&[1, 15, 5, 7]);
        let interval = LatencySummary::of(&later.since(&earlier));
        assert_eq!((interval.min_ns, interval.max_ns), (Some(5), Some(7)));
        let extremes = LatencySummary::of(&stats(&[1, 15, 20_000, 3]).since(&earlier));
        assert_eq!((extremes.min_ns, extremes.max_ns), (Some(3), Some(20_000)));
        // 3705 to 3711 share the bucket [3584, 3712): its midpoint, 3648,
        // is below the interval's exact new min, so the max is that min.
        let one = stats(&[3710, 3711, 3705]).since(&stats(&[3710, 3711]));
        assert_eq!((one.min, one.max), (Some(3705), Some(3705)));
        let quiet = LatencySummary::of(&later.since(&later));
        assert_eq!((quiet.calls, quiet.min_ns, quiet.max_ns), (0, None, None));
    }

    /// A percentile is its bucket's midpoint, but never outside the values
    /// seen: 3600 and 3700 share the bucket [3584, 3712), midpoint 3648.
    #[test]
    fn percentiles_stay_within_the_min_and_max() {
        let below = LatencySummary::of(&stats(&[3600]));
        assert_eq!(
            (below.p50_ns, below.p999_ns, below.max_ns),
            (Some(3600.0), Some(3600.0), Some(3600))
        );
        let above = LatencySummary::of(&stats(&[3700, 3700]));
        assert_eq!((above.p50_ns, above.min_ns), (Some(3700.0), Some(3700)));
    }
}
