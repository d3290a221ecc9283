//! Where a candidate's runs stand between the endpoints': like the good
//! revision, like the bad one, or not yet known. One value per run; the
//! run-level rank test against each endpoint, and the position of the
//! candidate's median on the way from good's median to bad's.

use serde::{Deserialize, Serialize};

use crate::statistics::{self, ALPHA};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Likeness {
    LikeGood,
    LikeBad,
    Unknown,
}

impl Likeness {
    pub fn name(self) -> &'static str {
        match self {
            Self::LikeGood => "like-good",
            Self::LikeBad => "like-bad",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub likeness: Likeness,
    /// Rank test of the candidate against the good runs, and against the bad.
    pub p_good: Option<f64>,
    pub p_bad: Option<f64>,
    /// 0 at good's median, 1 at bad's.
    pub position: Option<f64>,
}

/// The candidate is like bad when it differs from good (p < ALPHA) and its
/// median is at least halfway to bad's; like good when it differs from bad
/// and is less than halfway; else unknown (more runs may tell).
pub fn classify(good: &[f64], bad: &[f64], candidate: &[f64]) -> Classification {
    let p_good = statistics::rank_test(good, candidate).map(|t| t.p_value);
    let p_bad = statistics::rank_test(candidate, bad).map(|t| t.p_value);
    let position = match (
        statistics::median(good),
        statistics::median(bad),
        statistics::median(candidate),
    ) {
        (Some(g), Some(b), Some(c)) if b != g => Some((c - g) / (b - g)),
        _ => None,
    };
    let differs = |p: Option<f64>| p.is_some_and(|p| p < ALPHA);
    let likeness = match position {
        Some(at) if at >= 0.5 && differs(p_good) => Likeness::LikeBad,
        Some(at) if at < 0.5 && differs(p_bad) => Likeness::LikeGood,
        _ => Likeness::Unknown,
    };
    Classification {
        likeness,
        p_good,
        p_bad,
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: Option<f64>, y: f64) -> bool {
        x.is_some_and(|x| (x - y).abs() < 1e-9)
    }

    // The p-values are counted by hand from the permutation distribution of
    // the rank sum (4 runs against 4: C(8, 4) = 70 equally likely splits),
    // and agree with SciPy 1.17.1's mannwhitneyu(method="exact") (the
    // cases are in tests/data/statistics_reference.py):
    // - no overlap: 1 split as extreme on each side, p = 2/70;
    // - one run overtaken (U = 1): U <= 1 has 2 splits a side, p = 4/70;
    // - U = 8 (medians interleaved): U <= 8 has 35 splits, p = 1.
    const GOOD: [f64; 4] = [281.1, 281.5, 281.6, 281.7];
    const BAD: [f64; 4] = [303.2, 303.4, 303.5, 303.9];

    #[test]
    fn a_candidate_apart_from_good_and_near_bad_is_like_bad() {
        let c = classify(&GOOD, &BAD, &[303.0, 303.3, 303.6, 303.8]);
        assert_eq!(c.likeness, Likeness::LikeBad);
        assert!(close(c.p_good, 2.0 / 70.0), "{c:?}");
        // The candidate's ranks among bad's: 1, 3, 6, 7: U = 17 - 10 = 7;
        // U <= 7 has 31 splits of 70 (counts by U: 1 1 2 3 5 5 7 7 8 ...), p = 62/70.
        assert!(close(c.p_bad, 62.0 / 70.0), "{c:?}");
        // Medians: good 281.55, bad 303.45, candidate 303.45.
        assert!(close(c.position, 1.0), "{c:?}");
    }

    #[test]
    fn a_candidate_apart_from_bad_and_near_good_is_like_good() {
        let c = classify(&GOOD, &BAD, &[281.0, 281.2, 281.55, 281.8]);
        assert_eq!(c.likeness, Likeness::LikeGood);
        assert!(close(c.p_bad, 2.0 / 70.0), "{c:?}");
        // Good's ranks among the candidate's: 2, 4, 6, 7: U = 19 - 10 = 9;
        // U >= 9 has 31 splits of 70, so p = 62/70.
        assert!(close(c.p_good, 62.0 / 70.0), "{c:?}");
        // Median (281.2 + 281.55) / 2 = 281.375, just below good's 281.55.
        assert!(close(c.position, -0.175 / 21.9), "{c:?}");
    }

    #[test]
    fn overlap_with_an_endpoint_leaves_it_unknown() {
        // One candidate run below bad's lowest: U = 1 against bad, p = 4/70,
        // not below 0.05; halfway or less from good, so not like bad.
        let c = classify(&GOOD, &BAD, &[281.9, 303.3, 282.0, 282.1]);
        assert_eq!(c.likeness, Likeness::Unknown, "{c:?}");
        assert!(close(c.p_bad, 4.0 / 70.0), "{c:?}");
        // Median (282.0 + 282.1) / 2 = 282.05: (282.05 - 281.55) / 21.9.
        assert!(close(c.position, 0.5 / 21.9), "{c:?}");
    }

    #[test]
    fn a_candidate_halfway_and_apart_from_both_is_like_bad() {
        let c = classify(&GOOD, &BAD, &[292.0, 292.5, 292.6, 293.0]);
        assert!(close(c.p_good, 2.0 / 70.0) && close(c.p_bad, 2.0 / 70.0), "{c:?}");
        // (292.55 - 281.55) / 21.9 = 0.502: at least halfway.
        assert_eq!(c.likeness, Likeness::LikeBad);
    }

    #[test]
    fn too_few_runs_are_unknown() {
        // 2 runs against 4: the most extreme split has p = 2/15 >= 0.05.
        let c = classify(&GOOD, &BAD, &[303.3, 303.4]);
        assert_eq!(c.likeness, Likeness::Unknown);
        assert!(close(c.p_good, 2.0 / 15.0), "{c:?}");
    }

    #[test]
    fn a_faster_bad_works_the_same_way() {
        // --faster: bad is the lower; a candidate at bad's level is like bad.
        let c = classify(&BAD, &GOOD, &[281.0, 281.2, 281.3, 281.4]);
        assert_eq!(c.likeness, Likeness::LikeBad);
        assert!(close(c.p_good, 2.0 / 70.0), "{c:?}");
    }
}
