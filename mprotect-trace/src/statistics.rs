//! Run-level statistics for `compare`: one value per run, never per
//! iteration (iterations of one run drift together and are not independent).
//!
//! - A two-sided Wilcoxon-Mann-Whitney rank test, exact by its permutation
//!   distribution (ties get midranks) up to [`EXACT_LIMIT`] runs, else the
//!   normal approximation with tie and continuity corrections.
//! - The Hodges-Lehmann shift estimate with its distribution-free
//!   confidence interval (order statistics of the pairwise differences).
//! - The smallest shift the design could detect, by the t approximation
//!   with the rank test's asymptotic relative efficiency (the "A.R.E."
//!   method G*Power uses for this test).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Two-sided significance level of every verdict.
pub const ALPHA: f64 = 0.05;
/// Power at which the detectable difference is stated.
pub const POWER: f64 = 0.8;
/// Up to this many runs in all, p-values and intervals are exact.
pub const EXACT_LIMIT: usize = 60;
/// Asymptotic relative efficiency of the rank test to the t test for
/// normally distributed values: 3/pi.
const RANK_TEST_EFFICIENCY: f64 = 3.0 / std::f64::consts::PI;

/// The median; `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Sample standard deviation (n - 1); `None` below two values.
fn standard_deviation(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    Some((values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt())
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RankTest {
    /// U of the first sample: pairs where it is larger, ties counting half.
    pub u: f64,
    pub p_value: f64,
    /// By the exact permutation distribution (else the normal approximation).
    pub exact: bool,
}

impl RankTest {
    pub fn significant(&self) -> bool {
        self.p_value < ALPHA
    }
}

/// Midranks of `a` then `b` in their pooled order, doubled to stay integers.
fn doubled_midranks(a: &[f64], b: &[f64]) -> Vec<u64> {
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut order: Vec<usize> = (0..pooled.len()).collect();
    order.sort_by(|&x, &y| pooled[x].total_cmp(&pooled[y]));
    let mut ranks = vec![0u64; pooled.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && pooled[order[end]] == pooled[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their mean; doubled: start + 1 + end.
        for &index in &order[start..end] {
            ranks[index] = (start + 1 + end) as u64;
        }
        start = end;
    }
    ranks
}

/// How many ways `m` of the `ranks` sum to each total (index = total).
fn rank_sum_counts(ranks: &[u64], m: usize) -> Vec<f64> {
    let max: u64 = ranks.iter().sum();
    // ways[k][s]: subsets of size k with sum s, built one rank at a time.
    let mut ways = vec![vec![0.0f64; max as usize + 1]; m + 1];
    ways[0][0] = 1.0;
    for &rank in ranks {
        for k in (1..=m).rev() {
            for s in (rank as usize..=max as usize).rev() {
                let add = ways[k - 1][s - rank as usize];
                if add != 0.0 {
                    ways[k][s] += add;
                }
            }
        }
    }
    ways.swap_remove(m)
}

/// Two-sided Wilcoxon-Mann-Whitney test of `a` against `b`; `None` when a
/// side is empty.
pub fn rank_test(a: &[f64], b: &[f64]) -> Option<RankTest> {
    let (m, n) = (a.len(), b.len());
    if m == 0 || n == 0 {
        return None;
    }
    let ranks = doubled_midranks(a, b);
    let observed: u64 = ranks[..m].iter().sum();
    let u = observed as f64 / 2.0 - (m * (m + 1)) as f64 / 2.0;
    if m + n <= EXACT_LIMIT {
        let counts = rank_sum_counts(&ranks, m);
        let total: f64 = counts.iter().sum();
        let below: f64 = counts[..=observed as usize].iter().sum();
        let above: f64 = counts[observed as usize..].iter().sum();
        let p_value = (2.0 * below.min(above) / total).min(1.0);
        return Some(RankTest {
            u,
            p_value,
            exact: true,
        });
    }
    let (mf, nf) = (m as f64, n as f64);
    let total = mf + nf;
    let mut tie_term = 0.0;
    let mut sorted = ranks.clone();
    sorted.sort_unstable();
    for group in sorted.chunk_by(|x, y| x == y) {
        let t = group.len() as f64;
        tie_term += t * t * t - t;
    }
    let variance = mf * nf / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    let p_value = if variance <= 0.0 {
        1.0
    } else {
        let distance = (u - mf * nf / 2.0).abs() - 0.5;
        let z = distance.max(0.0) / variance.sqrt();
        (2.0 * (1.0 - Normal::standard().cdf(z))).min(1.0)
    };
    Some(RankTest {
        u,
        p_value,
        exact: false,
    })
}

/// `P(U <= c)` for every `c`, with `m` and `n` untied values.
fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    let ranks: Vec<u64> = (1..=(m + n) as u64).map(|r| 2 * r).collect();
    let counts = rank_sum_counts(&ranks, m);
    let total: f64 = counts.iter().sum();
    let offset = m * (m + 1);
    // Doubled sums from m(m+1) step by 2; U = sum/2 - m(m+1)/2.
    let mut cumulative = Vec::with_capacity(m * n + 1);
    let mut running = 0.0;
    for u in 0..=m * n {
        running += counts[offset + 2 * u];
        cumulative.push(running / total);
    }
    cumulative
}

/// The shift of `b` against `a` (Hodges-Lehmann: the median of every
/// `b_j - a_i`) and its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Shift {
    pub estimate: f64,
    /// `None` when so few runs cannot reach the confidence of `1 - ALPHA`.
    pub interval: Option<Interval>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// The interval's exact confidence: the smallest achievable one of at
    /// least `1 - ALPHA` (rank statistics are discrete).
    pub confidence: f64,
}

impl Interval {
    pub fn excludes(&self, value: f64) -> bool {
        value < self.low || value > self.high
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> Interval {
        Interval {
            low: f(self.low),
            high: f(self.high),
            confidence: self.confidence,
        }
    }
}

pub fn shift(a: &[f64], b: &[f64]) -> Option<Shift> {
    let (m, n) = (a.len(), b.len());
    if m == 0 || n == 0 {
        return None;
    }
    let mut differences: Vec<f64> = b.iter().flat_map(|y| a.iter().map(move |x| y - x)).collect();
    differences.sort_by(f64::total_cmp);
    let estimate = median(&differences)?;
    let pairs = m * n;
    // The largest c with P(U <= c) <= alpha/2; the interval is the
    // (c+1)-th smallest to the (c+1)-th largest difference.
    let critical = if m + n <= EXACT_LIMIT {
        let cumulative = u_distribution(m, n);
        cumulative
            .iter()
            .rposition(|&p| p <= ALPHA / 2.0)
            .map(|c| (c, 1.0 - 2.0 * cumulative[c]))
    } else {
        let z = Normal::standard().inverse_cdf(1.0 - ALPHA / 2.0);
        let (mf, nf) = (m as f64, n as f64);
        let c = (mf * nf / 2.0 - z * (mf * nf * (mf + nf + 1.0) / 12.0).sqrt()).floor();
        (c >= 0.0).then_some((c as usize, 1.0 - ALPHA))
    };
    let interval = critical.map(|(c, confidence)| Interval {
        low: differences[c],
        high: differences[pairs - 1 - c],
        confidence,
    });
    Some(Shift { estimate, interval })
}

/// The smallest shift this design could detect.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Detectable {
    /// With power [`POWER`] at level [`ALPHA`], given the spread measured.
    Shift { shift: f64, spread: f64 },
    /// One run per side: no run-to-run spread was measured.
    NoSpread,
    /// Too few runs: even the most extreme split has `p >= ALPHA`.
    TooFewRuns { smallest_p: f64 },
}

pub fn detectable(a: &[f64], b: &[f64]) -> Detectable {
    let (m, n) = (a.len(), b.len());
    if m + n < 3 || (m < 2 && n < 2) {
        return Detectable::NoSpread;
    }
    // The most extreme split of m + n untied runs has p = 2 / C(m+n, m).
    let smallest_p = (2.0 / binomial(m + n, m)).min(1.0);
    if smallest_p >= ALPHA {
        return Detectable::TooFewRuns { smallest_p };
    }
    let squares = |v: &[f64]| standard_deviation(v).map_or(0.0, |s| s * s * (v.len() - 1) as f64);
    let spread = ((squares(a) + squares(b)) / (m + n - 2) as f64).sqrt();
    let (me, ne) = (m as f64 * RANK_TEST_EFFICIENCY, n as f64 * RANK_TEST_EFFICIENCY);
    let df = (me + ne - 2.0).max(1.0);
    let shift = match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => (t.inverse_cdf(1.0 - ALPHA / 2.0) + t.inverse_cdf(POWER)) * spread * (1.0 / me + 1.0 / ne).sqrt(),
        Err(_) => f64::INFINITY,
    };
    Detectable::Shift { shift, spread }
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, y: f64, tolerance: f64) -> bool {
        (x - y).abs() <= tolerance * y.abs().max(1e-300)
    }

    // Reference values below come from SciPy 1.17.1 (all in
    // tests/data/statistics_reference.py), computed with:
    //   python3 -c 'from scipy.stats import mannwhitneyu as m; print(m(A, B, method="exact").pvalue)'
    // and, with ties, its exact permutation test of the same statistic:
    //   from scipy.stats import permutation_test, rankdata; import numpy as np
    //   u = lambda x, y: rankdata(np.concatenate([x, y]))[:len(x)].sum() - len(x)*(len(x)+1)/2
    //   permutation_test((A, B), u, permutation_type="independent",
    //                    alternative="two-sided", n_resamples=np.inf).pvalue
    #[test]
    fn exact_rank_test_matches_scipy() {
        let cases: [(&[f64], &[f64], f64, f64); 4] = [
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                &[6.0, 7.0, 8.0, 9.0, 10.0],
                0.0,
                0.007936507936507936,
            ),
            (
                &[152.1, 148.3, 160.2, 139.9, 171.0],
                &[149.5, 158.8, 162.4, 151.0, 144.7],
                13.0,
                1.0,
            ),
            (&[10.0, 11.0, 12.0], &[13.0, 14.0, 15.0, 16.0], 0.0, 0.05714285714285714),
            (
                &[3.1, 2.7, 4.4, 3.9],
                &[4.8, 5.2, 3.0, 6.1, 5.5, 4.9],
                3.0,
                0.06666666666666667,
            ),
        ];
        for (a, b, u, p) in cases {
            let test = rank_test(a, b).unwrap();
            assert!(test.exact);
            assert_eq!(test.u, u, "{a:?} {b:?}");
            assert!(close(test.p_value, p, 1e-9), "{a:?} {b:?}: {} vs {p}", test.p_value);
        }
    }

    #[test]
    fn exact_rank_test_with_ties_matches_scipy_permutation_test() {
        let (a, b) = ([5.0, 5.0, 6.0, 7.0], [6.0, 7.0, 7.0, 8.0, 8.0]);
        let test = rank_test(&a, &b).unwrap();
        assert_eq!(test.u, 2.5);
        assert!(close(test.p_value, 0.1111111111111111, 1e-9), "{}", test.p_value);
        let same = rank_test(&[4.0, 4.0, 4.0], &[4.0, 4.0]).unwrap();
        assert_eq!((same.u, same.p_value), (3.0, 1.0));
    }

    //   python3 -c 'import numpy as np; from scipy.stats import mannwhitneyu as m
    //   a = np.array([90 + 2.5 * (i % 9) for i in range(40)])
    //   b = np.array([95 + 3.0 * (i % 7) for i in range(35)])
    //   r = m(a, b, method="asymptotic"); print(r.statistic, r.pvalue)'
    #[test]
    fn large_samples_use_the_normal_approximation_as_scipy_does() {
        let a: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i % 9) * 2.5 - 10.0).collect();
        let b: Vec<f64> = (0..35).map(|i| 104.0 + f64::from(i % 7) * 3.0 - 9.0).collect();
        let test = rank_test(&a, &b).unwrap();
        assert!(!test.exact);
        assert_eq!(test.u, 427.5);
        assert!(close(test.p_value, 0.0037480310668381893, 1e-6), "{}", test.p_value);
    }

    // Intervals by brute force in Python, independent of the counting here:
    // every way to draw m of the m+n ranks gives P(U <= c); the interval is
    // the (c+1)-th smallest and largest of the sorted b_j - a_i
    // (tests/data/statistics_reference.py holds every reference script):
    //   cum = cdf of U over itertools.combinations(range(1, m+n+1), m)
    //   c = max(c for c, p in enumerate(cum) if p <= 0.025)
    //   d = sorted(y - x for y in b for x in a); d[c], d[-1-c], 1 - 2*cum[c]
    #[test]
    fn shift_intervals_match_brute_force() {
        // (a, b, estimate, interval as (low, high, confidence))
        type Case<'a> = (&'a [f64], &'a [f64], f64, Option<(f64, f64, f64)>);
        let cases: [Case; 4] = [
            (
                &[152.1, 148.3, 160.2, 139.9, 171.0],
                &[149.5, 158.8, 162.4, 151.0, 144.7],
                -1.0999999999999943,
                Some((-20.0, 14.099999999999994, 0.9682539682539683)),
            ),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                &[6.0, 7.0, 8.0, 9.0, 10.0],
                5.0,
                Some((2.0, 8.0, 0.9682539682539683)),
            ),
            (&[10.0, 11.0], &[13.0, 14.0], 3.0, None),
            (
                &[3.1, 2.7, 4.4, 3.9],
                &[4.8, 5.2, 3.0, 6.1, 5.5, 4.9],
                1.6499999999999997,
                Some((-0.10000000000000009, 2.8, 0.9619047619047619)),
            ),
        ];
        for (a, b, estimate, interval) in cases {
            let shift = shift(a, b).unwrap();
            assert!(
                close(shift.estimate, estimate, 1e-12),
                "{a:?} {b:?}: {}",
                shift.estimate
            );
            match (shift.interval, interval) {
                (None, None) => {}
                (Some(got), Some((low, high, confidence))) => {
                    assert!(close(got.low, low, 1e-12) && close(got.high, high, 1e-12), "{got:?}");
                    assert!(close(got.confidence, confidence, 1e-12), "{got:?}");
                }
                (got, want) => panic!("{a:?} {b:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn interval_and_test_agree_on_untied_runs() {
        // Without ties, the interval excludes zero exactly when p <= 1 - confidence.
        let a = [10.0, 12.0, 11.0, 13.0, 9.5];
        for offset in [0.0, 1.0, 2.0, 3.0, 3.6, 5.0, 9.0] {
            let b: Vec<f64> = [10.2, 12.1, 11.3, 13.4, 9.9].iter().map(|v| v + offset).collect();
            let (test, shift) = (rank_test(&a, &b).unwrap(), shift(&a, &b).unwrap());
            let interval = shift.interval.unwrap();
            assert_eq!(
                interval.excludes(0.0),
                test.p_value <= 1.0 - interval.confidence + 1e-12,
                "offset {offset}: p {} interval {interval:?}",
                test.p_value
            );
        }
    }

    //   from scipy.stats import t; e = 3/pi; me, ne = m*e, n*e; df = me + ne - 2
    //   s = pooled sample deviation (ddof 1)
    //   (t.ppf(0.975, df) + t.ppf(0.8, df)) * s * sqrt(1/me + 1/ne)
    #[test]
    fn detectable_shift_matches_scipy() {
        let cases: [(&[f64], &[f64], f64, f64); 2] = [
            (
                &[152.1, 148.3, 160.2, 139.9, 171.0],
                &[149.5, 158.8, 162.4, 151.0, 144.7],
                20.440682874350493,
                9.802091613528207,
            ),
            (
                &[1.0, 1.2, 0.9, 1.1],
                &[1.3, 1.0, 1.25, 0.95, 1.05],
                0.32768407631978597,
                0.14491376746189438,
            ),
        ];
        for (a, b, want_shift, want_spread) in cases {
            match detectable(a, b) {
                Detectable::Shift { shift, spread } => {
                    assert!(close(shift, want_shift, 1e-9), "{shift} vs {want_shift}");
                    assert!(close(spread, want_spread, 1e-12), "{spread} vs {want_spread}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(detectable(&[1.0], &[2.0]), Detectable::NoSpread);
        // Three runs a side: the most extreme split has p = 2/20.
        assert_eq!(
            detectable(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]),
            Detectable::TooFewRuns { smallest_p: 0.1 }
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
