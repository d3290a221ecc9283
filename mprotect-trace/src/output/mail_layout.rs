//! Building blocks of the mail texts (`report --format mail`, `compare
//! --format mail`): every line they make is at most [`WIDTH`] characters,
//! the most a linux-mm mail carries without its lines being re-wrapped.

use std::fmt::Write as _;

use crate::model::{ExactDistribution, Histogram, LatencySummary, Report};

/// The widest line a mail text has, in characters.
pub const WIDTH: usize = 80;

/// The widest name a latency row keeps beside its numbers; a longer one
/// gets a line of its own.
const NAME_WIDTH: usize = 24;

/// A latency in three significant digits and at most six characters:
/// "850ns", "1.02us", "10.4ms", "102ms", "1.20s" (six columns of them
/// and a name fit in 80).
pub fn compact_ns(ns: f64) -> String {
    const UNITS: [(&str, f64); 3] = [("ns", 1.0), ("us", 1e3), ("ms", 1e6)];
    for (unit, scale) in UNITS {
        let value = ns / scale;
        // 999.5 would round to "1000": the next unit says it in three digits.
        if value < 999.5 {
            return three_digits(value, unit);
        }
    }
    let seconds = ns / 1e9;
    if seconds < 999.5 {
        three_digits(seconds, "s")
    } else {
        format!("{seconds:.0}s")
    }
}

/// `value` (below 999.5) with as many decimals as leave three digits.
fn three_digits(value: f64, unit: &str) -> String {
    if value < 9.995 {
        format!("{value:.2}{unit}")
    } else if value < 99.95 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.0}{unit}")
    }
}

fn optional_ns(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), compact_ns)
}

/// `text` wrapped at word boundaries into lines of at most [`WIDTH`]
/// characters: the first starts with `first`, the others with `rest`
/// (a hanging indent). A word longer than a line (a long path) is cut.
pub fn wrap(out: &mut String, first: &str, rest: &str, text: &str) {
    let mut line = first.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        let needed = line.chars().count() + usize::from(!empty) + word.chars().count();
        if !empty && needed > WIDTH {
            let _ = writeln!(out, "{line}");
            line = rest.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        for character in word.chars() {
            if line.chars().count() >= WIDTH {
                let _ = writeln!(out, "{line}");
                line = rest.to_owned();
            }
            line.push(character);
        }
        empty = false;
    }
    let _ = writeln!(out, "{line}");
}

/// A labelled field, its value wrapped under itself: "kernel:   6.18 ...".
pub fn field(out: &mut String, label: &str, value: &str) {
    let first = format!("{label:<9} ");
    let rest = " ".repeat(first.len());
    wrap(out, &first, &rest, value);
}

/// The kernel, the CPU and the command of a run, as [`field`]s.
pub fn machine(out: &mut String, report: &Report) {
    field(out, "kernel:", &format!("{} {}", report.kernel_release, report.arch));
    let cpu = if report.cpu_model.is_empty() {
        "unknown".to_owned()
    } else {
        report.cpu_model.clone()
    };
    field(out, "cpu:", &format!("{cpu}, {} CPUs", report.cpus));
    if let Some(machine) = report.machine.as_ref().map(crate::model::Machine::summary)
        && !machine.is_empty()
    {
        field(out, "machine:", &machine);
    }
    field(out, "command:", &super::command_line::repeating(report));
}

/// `name` for a column `width` wide; a longer one is written on a line
/// of its own first, and the column left blank.
pub fn name_column<'a>(out: &mut String, name: &'a str, width: usize) -> &'a str {
    if name.chars().count() > width {
        wrap(out, "", "  ", name);
        ""
    } else {
        name
    }
}

/// The heading of [`latency_row`]s.
pub fn latency_heading(out: &mut String, first: &str) {
    let _ = writeln!(
        out,
        "{first:<NAME_WIDTH$} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "calls", "p50", "p90", "p99", "p99.9", "min", "max"
    );
}

/// One latency stream in 75 columns: calls, p50, p90, p99, p99.9, min, max.
pub fn latency_row(out: &mut String, name: &str, latency: &LatencySummary) {
    let name = name_column(out, name, NAME_WIDTH);
    let _ = writeln!(
        out,
        "{name:<NAME_WIDTH$} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        latency.calls,
        optional_ns(latency.p50_ns),
        optional_ns(latency.p90_ns),
        optional_ns(latency.p99_ns),
        optional_ns(latency.p999_ns),
        optional_ns(latency.min_ns.map(|ns| ns as f64)),
        optional_ns(latency.max_ns.map(|ns| ns as f64)),
    );
}

/// One row of a text histogram: the values it holds and how many there were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    /// "1", "2-3", "16384-32767", ">512".
    pub label: String,
    pub count: u64,
}

/// The power-of-two range `value` falls in: 0, 1, 2-3, 4-7, ...
fn power_of_two_range(value: u64) -> (u64, u64) {
    if value == 0 {
        return (0, 0);
    }
    let low = 1u64 << value.ilog2();
    (low, low.saturating_sub(1).saturating_add(low))
}

fn range_label(low: u64, high: u64) -> String {
    match (low, high) {
        (low, high) if low == high => low.to_string(),
        (low, u64::MAX) => format!("{low}+"),
        (low, high) => format!("{low}-{high}"),
    }
}

/// Adds `count` to the bar of the range `(low, high)`, keeping bars in order.
fn add(bars: &mut Vec<(u64, u64, u64)>, (low, high): (u64, u64), count: u64) {
    match bars.iter_mut().find(|bar| bar.0 == low) {
        Some(bar) => bar.2 += count,
        None => {
            bars.push((low, high, count));
            bars.sort_unstable();
        }
    }
}

/// The bars of a latency or pages histogram, in power-of-two ranges (its
/// buckets never straddle a power of two, so every count lands whole).
pub fn histogram_bars(histogram: &Histogram) -> Vec<Bar> {
    let mut bars = Vec::new();
    for &(low, high, count) in &histogram.buckets {
        let (range_low, range_high) = power_of_two_range(low);
        // The last bucket is open-ended: so is its range.
        let range_high = if high == u64::MAX { u64::MAX } else { range_high };
        add(&mut bars, (range_low, range_high), count);
    }
    bars.into_iter()
        .map(|(low, high, count)| Bar {
            label: range_label(low, high),
            count,
        })
        .collect()
}

/// The bars of an `nr_ptes` distribution, in power-of-two ranges up to
/// 512 (a page table's PTEs) and one bar for the values above it.
pub fn nr_ptes_bars(distribution: &ExactDistribution) -> Vec<Bar> {
    const MOST: u64 = 512;
    let mut bars = Vec::new();
    for &(value, count) in &distribution.counts {
        let range = if value > MOST {
            (MOST + 1, MOST + 1)
        } else {
            let (low, high) = power_of_two_range(value);
            (low, high.min(MOST))
        };
        add(&mut bars, range, count);
    }
    bars.into_iter()
        .map(|(low, high, count)| Bar {
            label: if low > MOST {
                format!(">{MOST}")
            } else {
                range_label(low, high)
            },
            count,
        })
        .collect()
}

/// `bars` as lines of at most [`WIDTH`] characters, each bar's length
/// proportional to its count (at least one `#` for any count).
pub fn histogram(out: &mut String, bars: &[Bar]) {
    let label_width = bars.iter().map(|bar| bar.label.len()).max().unwrap_or(0);
    let count_width = bars.iter().map(|bar| bar.count.to_string().len()).max().unwrap_or(0);
    let most = bars.iter().map(|bar| bar.count).max().unwrap_or(0).max(1);
    let room = WIDTH.saturating_sub(2 + label_width + 1 + count_width + 1).max(1) as u64;
    for bar in bars {
        let length = (bar.count * room).div_ceil(most);
        let _ = writeln!(
            out,
            "  {:>label_width$} {:>count_width$} {}",
            bar.label,
            bar.count,
            "#".repeat(length as usize)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_take_three_digits_and_six_characters_at_most() {
        let cases = [
            (0.0, "0.00ns"),
            (850.0, "850ns"),
            (999.4, "999ns"),
            (999.6, "1.00us"),
            (1_024.0, "1.02us"),
            (9_996.0, "10.0us"),
            (99_960.0, "100us"),
            (3_866_624.0, "3.87ms"),
            (10_373_636.0, "10.4ms"),
            (102_400_000.0, "102ms"),
            (1_200_000_000.0, "1.20s"),
            (1_234_000_000_000.0, "1234s"),
        ];
        for (ns, text) in cases {
            assert_eq!(compact_ns(ns), text, "{ns}");
        }
    }

    #[test]
    fn wrapping_keeps_every_line_within_the_width_and_every_word() {
        let mut out = String::new();
        let long_word = "x".repeat(100);
        let text = format!("the quick brown fox {long_word} jumps over the lazy dog");
        wrap(&mut out, "label:   ", "         ", &text);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.iter().all(|line| line.chars().count() <= WIDTH), "{out}");
        assert_eq!(lines[0], "label:   the quick brown fox");
        let words: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words.replace(' ', ""), format!("label:{text}").replace(' ', ""));
    }

    #[test]
    fn histogram_bars_group_buckets_by_power_of_two_and_lose_no_count() {
        let histogram = Histogram {
            buckets: vec![
                (1, 2, 3),
                (2, 3, 4),
                (3, 4, 5),
                (16384, 17408, 110),
                (1 << 40, u64::MAX, 1),
            ],
        };
        let bars = histogram_bars(&histogram);
        let labels: Vec<(&str, u64)> = bars.iter().map(|bar| (bar.label.as_str(), bar.count)).collect();
        assert_eq!(
            labels,
            [("1", 3), ("2-3", 9), ("16384-32767", 110), ("1099511627776+", 1)]
        );
        let nr_ptes = ExactDistribution {
            counts: vec![(1, 10), (512, 2), (300, 1), (513, 4), (0, 1)],
        };
        let bars = nr_ptes_bars(&nr_ptes);
        let labels: Vec<(&str, u64)> = bars.iter().map(|bar| (bar.label.as_str(), bar.count)).collect();
        assert_eq!(labels, [("0", 1), ("1", 10), ("256-511", 1), ("512", 2), (">512", 4)]);
    }

    #[test]
    fn the_longest_bar_fills_the_line_and_none_is_empty() {
        let mut out = String::new();
        let bars = [
            Bar {
                label: "1".to_owned(),
                count: 1000,
            },
            Bar {
                label: "2-3".to_owned(),
                count: 1,
            },
        ];
        histogram(&mut out, &bars);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0].chars().count(), WIDTH);
        assert_eq!(lines[1], "  2-3    1 #");
    }
}
