//! The comparison as text: what `compare` prints and comparison.txt holds.

use std::fmt::Write as _;

use super::{
    Comparison, Delta, Design, FEW_SAMPLES, IntervalSource, MetricDelta, OrderKind, PairComparison, SampledDelta,
    Verdict,
};
use crate::output::table::format_ns;

/// The heading of the columns of shifts, explained in the footer.
pub(super) const SHIFT_HEADING: &str = "shift (HL)";

/// The mark after a sampled function's name whose shift rests on too few samples.
pub(super) fn few_samples_mark(row: &SampledDelta) -> &'static str {
    if row.few_samples { " *" } else { "" }
}

/// The footnote of that mark.
pub(super) fn few_samples_note(sampled: &[SampledDelta]) -> Option<String> {
    sampled
        .iter()
        .any(|row| row.few_samples)
        .then(|| format!("* fewer than {FEW_SAMPLES} samples on each side: too few for its shift to mean anything"))
}

/// The width of a column of `names`: `least`, or the longest name's.
fn name_width<'a>(least: usize, names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|name| name.chars().count()).fold(least, usize::max)
}

pub(super) fn value(unit: &str, v: f64) -> String {
    if unit == "ns" { format_ns(v) } else { format!("{v:.2}") }
}

pub(super) fn optional(v: Option<f64>, format: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), format)
}

/// A change with its sign, two decimals; one that rounds to nothing is
/// "0.00", neither gained nor lost.
pub(super) fn signed(v: f64) -> String {
    match format!("{v:+.2}") {
        zero if zero == "+0.00" || zero == "-0.00" => "0.00".to_owned(),
        text => text,
    }
}

/// A share of the workload's delta, "27 %"; one that rounds to nothing
/// is "0 %", not "-0 %".
pub(super) fn share(value: Option<f64>) -> String {
    optional(value, |v| match format!("{:.0} %", v * 100.0) {
        zero if zero == "-0 %" => "0 %".to_owned(),
        text => text,
    })
}

pub(super) fn delta(d: &Option<Delta>) -> String {
    match d {
        Some(Delta {
            estimate,
            interval: Some(i),
            ..
        }) => format!("{} [{}, {}]", signed(*estimate), signed(i.low), signed(i.high)),
        Some(d) => signed(d.estimate),
        None => "-".to_owned(),
    }
}

/// Two significant digits: 0.69, 0.0079; below 1e-4 in e notation.
pub(super) fn p_value(p: f64) -> String {
    if p < 1e-4 {
        return format!("{p:.1e}");
    }
    let decimals = (1 - p.log10().floor() as i32).clamp(2, 5) as usize;
    format!("{p:.decimals$}")
}

pub fn verdict(m: &MetricDelta) -> String {
    match (m.verdict, &m.test) {
        (Verdict::Significant, Some(test)) => format!(
            "significant (p = {}); smallest detectable: {}",
            p_value(test.p_value),
            optional(m.detectable_change, |c| format!("{:.1} %", c * 100.0))
        ),
        (Verdict::NotSignificant, Some(test)) => format!(
            "not significant (p = {}); smallest detectable: {}",
            p_value(test.p_value),
            optional(m.detectable_change, |c| format!("{:.1} %", c * 100.0))
        ),
        _ => "no claim".to_owned(),
    }
}

impl Comparison {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for side in &self.sides {
            let runs = match side.runs.as_slice() {
                [one] => format!("1 run, {one}"),
                runs => format!("{} runs", runs.len()),
            };
            let _ = writeln!(
                out,
                "{}: {} ({runs}): {} on {}",
                side.label, side.path, side.traced, side.kernel_release
            );
        }
        let _ = writeln!(out, "{}", self.design.runs_and_order());
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for pair in &self.against_baseline {
            pair.write_text(&mut out, self.allowed_by.as_deref());
        }
        out.push('\n');
        for (name, text) in self.design.method() {
            let _ = writeln!(out, "{name}: {text}");
        }
        out
    }
}

impl Design {
    /// "runs: 5 / 5, order: interleaved (A B A B ...)".
    pub(super) fn runs_and_order(&self) -> String {
        let runs: Vec<String> = self.runs.iter().map(usize::to_string).collect();
        let order = match self.order.kind {
            OrderKind::Single => "one run a side".to_owned(),
            OrderKind::Interleaved => format!("interleaved ({})", self.order.sequence),
            OrderKind::NotInterleaved => format!("NOT interleaved ({})", self.order.sequence),
        };
        format!("runs: {}, order: {order}", runs.join(" / "))
    }

    /// What the statistics are, one `name: text` line each.
    pub(super) fn method(&self) -> [(&'static str, String); 5] {
        [
            ("unit", self.unit.to_owned()),
            ("test", format!("{}, alpha {}", self.test, self.alpha)),
            ("interval", self.interval.to_owned()),
            ("detectable", self.detectable.to_owned()),
            (SHIFT_HEADING, self.shift.to_owned()),
        ]
    }
}

impl PairComparison {
    /// Where the sampled rows' intervals come from, in a few words.
    pub(super) fn sampled_intervals(&self) -> &'static str {
        match self.sampled.first().map(|row| row.delta_ns_per_page.interval_from) {
            Some(IntervalSource::Runs) => "intervals over runs",
            Some(IntervalSource::SamplingOnly) => "95 % intervals of the sampling error only: one run a side",
            Some(IntervalSource::None) | None => "no intervals: too few runs",
        }
    }

    /// Each differing setting, and why the sides were compared all the same.
    pub(super) fn differences_described(&self, allowed_by: Option<&str>) -> Vec<String> {
        self.differences
            .iter()
            .map(|difference| match (difference.shaping, allowed_by) {
                (true, Some(reason)) => format!("{} (compared anyway: {reason})", difference.describe()),
                _ => difference.describe(),
            })
            .collect()
    }

    /// Why metrics have no verdict, each reason once.
    pub(super) fn no_claim_reasons(&self) -> Vec<&str> {
        let mut reasons: Vec<&str> = Vec::new();
        for reason in self.metrics.iter().filter_map(|m| m.reason.as_deref()) {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        reasons
    }

    fn write_text(&self, out: &mut String, allowed_by: Option<&str>) {
        let _ = writeln!(out, "\n== {} against {}", self.b, self.a);
        for difference in self.differences_described(allowed_by) {
            let _ = writeln!(out, "differs: {difference}");
        }
        let confidence = self
            .metrics
            .iter()
            .find_map(|m| m.ratio_interval)
            .map_or_else(String::new, |i| format!(" ({:.1} %)", i.confidence * 100.0));
        let interval_heading = format!("interval{confidence}");
        let a_heading = format!("{} median [min, max]", self.a);
        let b_heading = format!("{} median [min, max]", self.b);
        let ratio_heading = format!("{}/{}", self.b, self.a);
        // A name longer than its column (a --probe of a long kernel
        // function) widens the column, not its row.
        let width = name_width(32, self.metrics.iter().map(|m| m.metric.as_str()));
        let _ = writeln!(
            out,
            "\n{:<width$} {:<34} {:<34} {:>7} {:<24} verdict",
            "metric", a_heading, b_heading, ratio_heading, interval_heading
        );
        for m in &self.metrics {
            let spread = |s: &super::Spread| match s.runs.len() {
                1 => value(m.unit, s.median),
                _ => format!(
                    "{} [{}, {}]",
                    value(m.unit, s.median),
                    value(m.unit, s.min),
                    value(m.unit, s.max)
                ),
            };
            let interval = m
                .ratio_interval
                .map_or_else(|| "-".to_owned(), |i| format!("[{:.3}, {:.3}]", i.low, i.high));
            let _ = writeln!(
                out,
                "{:<width$} {:<34} {:<34} {:>7.3} {:<24} {}",
                m.metric,
                spread(&m.a),
                spread(&m.b),
                m.ratio,
                interval,
                verdict(m)
            );
        }
        for reason in self.no_claim_reasons() {
            let _ = writeln!(out, "no claim: {reason}");
        }

        // Targets no side measured have nothing to show.
        let measured: Vec<_> = self
            .targets
            .iter()
            .filter(|t| t.ns_per_page_a.is_some() || t.ns_per_page_b.is_some())
            .collect();
        let width = name_width(26, measured.iter().map(|t| t.name.as_str()));
        let _ = writeln!(
            out,
            "\n{:<width$} {:>9} {:>9} {:>10} {:>10} {:>26} {:>9}",
            "per workload iteration",
            format!("calls/it {}", self.a),
            format!("calls/it {}", self.b),
            format!("ns/page {}", self.a),
            format!("ns/page {}", self.b),
            format!("{SHIFT_HEADING} [interval]"),
            "of delta"
        );
        for t in measured {
            let _ = writeln!(
                out,
                "{:<width$} {:>9} {:>9} {:>10} {:>10} {:>26} {:>9}",
                t.name,
                optional(t.calls_per_iteration_a, |v| format!("{v:.2}")),
                optional(t.calls_per_iteration_b, |v| format!("{v:.2}")),
                optional(t.ns_per_page_a, |v| format!("{v:.2}")),
                optional(t.ns_per_page_b, |v| format!("{v:.2}")),
                delta(&t.delta_ns_per_page),
                share(t.share_of_workload_delta),
            );
        }
        if let Some(w) = &self.workload_delta_ns_per_page {
            let _ = writeln!(
                out,
                "{:<width$} {:>9} {:>9} {:>10} {:>10} {:>26} {:>9}",
                "workload (mean)",
                "",
                "",
                "",
                "",
                delta(&Some(*w)),
                "100 %"
            );
        }

        if !self.sampled.is_empty() {
            let source = self.sampled_intervals();
            let names: Vec<String> = self
                .sampled
                .iter()
                .map(|row| format!("{}{}", row.name, few_samples_mark(row)))
                .collect();
            let width = name_width(32, names.iter().map(String::as_str));
            let _ = writeln!(
                out,
                "\nfrom stack samples (self share x syscall ns/page per iteration; {source}):\n{:<width$} {:>9} {:>9} {:>10} {:>10} {:>26} {:>9}",
                "kernel function",
                format!("samples {}", self.a),
                format!("samples {}", self.b),
                format!("ns/page {}", self.a),
                format!("ns/page {}", self.b),
                format!("{SHIFT_HEADING} [interval]"),
                "of delta"
            );
            for (row, name) in self.sampled.iter().zip(&names) {
                let _ = writeln!(
                    out,
                    "{name:<width$} {:>9} {:>9} {:>10.2} {:>10.2} {:>26} {:>9}",
                    row.a_self_samples,
                    row.b_self_samples,
                    row.a_ns_per_page,
                    row.b_ns_per_page,
                    delta(&Some(row.delta_ns_per_page)),
                    share(row.share_of_workload_delta),
                );
            }
            if let Some(note) = few_samples_note(&self.sampled) {
                let _ = writeln!(out, "{note}");
            }
        }
        let _ = writeln!(out, "\n{}", self.home.explanation);
    }
}
