//! X axes chosen from the data: the span a plot shows and the values it
//! labels, so each label is a round number or duration written whole, sits
//! inside the image and clears its neighbours. The plots call these with
//! the pixels they have and a way to measure a label in their font, and
//! draw on an [`Axis`] directly (it is a plotters coordinate).

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

/// Room between two neighbouring labels, in pixels.
const GAP: f64 = 12.0;

/// Leading digits of the values a log axis may label, densest set first.
const LOG_MANTISSAS: [&[f64]; 4] = [
    &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    &[1.0, 2.0, 5.0],
    &[1.0, 3.0],
    &[1.0],
];

/// Leading digits an axis may end on: close around the data, still round.
const BOUND_MANTISSAS: [f64; 11] = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

/// Where an axis's labels may go, in pixels from the left end of the
/// plotting area: `left` and `right` are the room beyond its two ends a
/// label centred on a tick may still take.
#[derive(Clone, Copy, Debug)]
pub struct Room {
    pub pixels: f64,
    pub left: f64,
    pub right: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub range: Range<f64>,
    /// Labelled ticks, ascending.
    pub ticks: Vec<f64>,
    /// Unlabelled grid lines (a log axis's 2..9 of each decade).
    pub minor: Vec<f64>,
    pub log: bool,
}

impl Axis {
    /// An axis around one value, labelled there only.
    pub fn around(value: f64) -> Axis {
        let half = (value / 2.0).max(1.0);
        Axis {
            range: value - half..value + half,
            ticks: vec![value],
            minor: Vec::new(),
            log: false,
        }
    }
}

/// Plotters draws on the axis as it is: its span, its scale, and exactly
/// the ticks chosen (bold: labelled; light: the minor grid).
impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let scale = |v: f64| if self.log { v.max(f64::MIN_POSITIVE).ln() } else { v };
        let (start, end) = (scale(self.range.start), scale(self.range.end));
        let share = (scale(*value) - start) / (end - start);
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A log axis over `[low, high]` (both at least 1): its ends are the round
/// values just outside the data, its labels the densest round sequence
/// whose labels (`width` measures one, given the value) fit `room` apart.
pub fn log(low: f64, high: f64, room: Room, width: impl Fn(f64) -> f64) -> Axis {
    let low = low.max(1.0);
    let high = high.max(low * 1.5);
    let range = round_down(low)..round_up(high);
    let (start, end) = (range.start.log10(), range.end.log10());
    let position = |value: f64| (value.log10() - start) / (end - start) * room.pixels;
    let candidates = |mantissas: &[f64]| -> Vec<f64> {
        let mut values = Vec::new();
        for exponent in start.floor() as i32..=end.ceil() as i32 {
            for mantissa in mantissas {
                let value = mantissa * 10f64.powi(exponent);
                if value >= range.start && value <= range.end {
                    values.push(value);
                }
            }
        }
        values
    };
    let minor = candidates(LOG_MANTISSAS[0]);
    let labelled = |values: Vec<f64>| inside(values, &position, &width, room);
    let ticks = LOG_MANTISSAS
        .iter()
        .map(|mantissas| {
            let mut ticks = labelled(candidates(mantissas));
            // The axis starts on a value of the sequence whose label has
            // no room there (the plots' y labels sit left of it): 1.1 ms
            // data would show no label before 2 ms. The first round half
            // after the start that clears the next label (1.5 ms) takes it.
            if candidates(mantissas).first() == Some(&range.start)
                && let Some(&first) = ticks.first()
                && first > range.start
                && let Some(half) = labelled(candidates(&BOUND_MANTISSAS))
                    .into_iter()
                    .find(|&half| half > range.start && half < first && clear(&[half, first], &position, &width))
            {
                ticks.insert(0, half);
            }
            ticks
        })
        .find(|ticks| ticks.len() >= 2 && clear(ticks, &position, &width))
        // A span with one round value or none inside (1.5 ms to 2.5 ms):
        // the halves too (1.5, 2.5), as the axis's ends are chosen...
        .or_else(|| {
            let halves = labelled(candidates(&BOUND_MANTISSAS));
            (halves.len() >= 2 && clear(&halves, &position, &width)).then_some(halves)
        })
        // ... else its two ends, round by construction.
        .or_else(|| {
            let ends = labelled(vec![range.start, range.end]);
            (ends.len() == 2 && clear(&ends, &position, &width)).then_some(ends)
        })
        // Decades too close for all their labels: every other one that
        // clears; never no label at all.
        .unwrap_or_else(|| {
            let decades = thinned(&labelled(candidates(&[1.0])), &position, &width);
            if decades.is_empty() {
                labelled(candidates(LOG_MANTISSAS[0])).into_iter().take(1).collect()
            } else {
                decades
            }
        });
    Axis {
        range,
        ticks,
        minor,
        log: true,
    }
}

/// A linear axis over `[low, high]`, labelled at the multiples of the
/// smallest round step (1, 2 or 5 times a power of ten, at least
/// `min_step`) whose labels fit `room` apart.
pub fn linear(low: f64, high: f64, min_step: f64, room: Room, width: impl Fn(f64) -> f64) -> Axis {
    let high = if high > low { high } else { low + min_step.max(1.0) };
    let range = low..high;
    let position = |value: f64| (value - low) / (high - low) * room.pixels;
    let mut exponent = ((high - low) / 1000.0).max(min_step).log10().floor() as i32;
    loop {
        for mantissa in [1.0, 2.0, 5.0] {
            let step = mantissa * 10f64.powi(exponent);
            if step < min_step {
                continue;
            }
            let first = (low / step).ceil() as i64;
            let last = (high / step).floor() as i64;
            let ticks = inside(
                (first..=last).map(|i| i as f64 * step).collect(),
                &position,
                &width,
                room,
            );
            if clear(&ticks, &position, &width) || step >= high - low {
                // No multiple of the step inside (3.1 to 3.9 in steps of
                // 1): the ends, so the axis still says where it is.
                let ticks = if ticks.is_empty() {
                    inside(vec![low, high], &position, &width, room)
                } else {
                    ticks
                };
                return Axis {
                    range,
                    ticks,
                    minor: Vec::new(),
                    log: false,
                };
            }
        }
        exponent += 1;
    }
}

/// The values whose labels, centred on them, stay within `room`.
fn inside(values: Vec<f64>, position: &impl Fn(f64) -> f64, width: &impl Fn(f64) -> f64, room: Room) -> Vec<f64> {
    values
        .into_iter()
        .filter(|&value| {
            let (centre, half) = (position(value), width(value) / 2.0);
            centre - half >= -room.left && centre + half <= room.pixels + room.right
        })
        .collect()
}

/// Whether each label clears the one before it by [`GAP`].
fn clear(values: &[f64], position: &impl Fn(f64) -> f64, width: &impl Fn(f64) -> f64) -> bool {
    values.windows(2).all(|pair| {
        let left = position(pair[0]) + width(pair[0]) / 2.0;
        let right = position(pair[1]) - width(pair[1]) / 2.0;
        right - left >= GAP
    })
}

/// Every `n`th value, for the smallest `n` whose labels clear each other.
fn thinned(values: &[f64], position: &impl Fn(f64) -> f64, width: &impl Fn(f64) -> f64) -> Vec<f64> {
    (1..=values.len().max(1))
        .map(|n| values.iter().copied().step_by(n).collect::<Vec<f64>>())
        .find(|kept| clear(kept, position, width))
        .unwrap_or_default()
}

fn decade(value: f64) -> f64 {
    10f64.powi(value.log10().floor() as i32)
}

/// The largest round value (see [`BOUND_MANTISSAS`]) at or below `value`.
fn round_down(value: f64) -> f64 {
    let decade = decade(value);
    BOUND_MANTISSAS
        .iter()
        .rev()
        .map(|m| m * decade)
        .find(|&bound| bound <= value * (1.0 + 1e-9))
        .unwrap_or(decade)
}

/// The smallest round value at or above `value`.
fn round_up(value: f64) -> f64 {
    let decade = decade(value);
    BOUND_MANTISSAS
        .iter()
        .map(|m| m * decade)
        .find(|&bound| bound >= value * (1.0 - 1e-9))
        .unwrap_or(decade * 10.0)
}

/// `value` with no trailing zeros: 2, 1.5, 0.25.
pub fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A duration in nanoseconds in its largest whole unit: 500 ns, 1.5 µs, 10 ms.
pub fn duration(ns: f64) -> String {
    let (value, unit) = match ns {
        ns if ns < 1e3 => (ns, "ns"),
        ns if ns < 1e6 => (ns / 1e3, "µs"),
        ns if ns < 1e9 => (ns / 1e6, "ms"),
        ns => (ns / 1e9, "s"),
    };
    format!("{} {unit}", number(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DejaVu Sans at 14 px is about 8 px a character.
    fn width(text: &str) -> f64 {
        text.chars().count() as f64 * 8.0
    }

    const ROOM: Room = Room {
        pixels: 880.0,
        left: 70.0,
        right: 30.0,
    };

    #[test]
    fn durations_and_numbers_are_written_whole() {
        assert_eq!(duration(10e6), "10 ms");
        assert_eq!(duration(1500.0), "1.5 µs");
        assert_eq!(duration(500.0), "500 ns");
        assert_eq!(duration(2e9), "2 s");
        assert_eq!(number(16384.0), "16384");
        assert_eq!(number(0.25), "0.25");
    }

    #[test]
    fn a_latency_axis_hugs_the_data_and_labels_every_fitting_round_value() {
        // Buckets from 1.94 ms to 3.41 ms, as a 50-iteration shared toggle.
        let axis = log(1.94e6, 3.41e6, ROOM, |ns| width(&duration(ns)));
        assert_eq!(axis.range, 1.5e6..4e6);
        assert_eq!(axis.ticks, [2e6, 3e6, 4e6]);
    }

    #[test]
    fn a_narrow_latency_axis_is_labelled_at_round_halves() {
        // Buckets from 1.6 ms to 2.3 ms: only 2 ms is round inside, so the
        // halves are labelled too (runs under load drew no label, or one).
        let axis = log(1.6e6, 2.3e6, ROOM, |ns| width(&duration(ns)));
        assert_eq!(axis.range, 1.5e6..2.5e6);
        assert_eq!(axis.ticks, [1.5e6, 2e6, 2.5e6]);
        // With no room beyond the right end for its label: 1.5 and 2 ms.
        let tight = Room { right: 4.0, ..ROOM };
        let axis = log(1.6e5, 2.3e5, tight, |ns| width(&duration(ns)));
        assert_eq!(axis.ticks, [1.5e5, 2e5]);
        // Whatever the span, at least one label.
        for (low, high) in [(1.0, 1.2), (9.9e5, 1.01e6), (3.1e3, 3.9e3), (7e8, 9e8)] {
            let axis = log(low, high, ROOM, |ns| width(&duration(ns)));
            assert!(!axis.ticks.is_empty(), "{low}..{high}: {axis:?}");
        }
    }

    #[test]
    fn data_that_start_well_below_the_first_round_label_get_one_before_it() {
        // Buckets from 1.1 ms to 3.4 ms, no room left of the axis (the
        // plots' y labels are there): "1 ms" cannot sit on the axis start,
        // so 1.5 ms labels the data left of 2 ms.
        let flush = Room { left: 0.0, ..ROOM };
        let axis = log(1.1e6, 3.4e6, flush, |ns| width(&duration(ns)));
        assert_eq!(axis.range, 1e6..4e6);
        assert_eq!(axis.ticks, [1.5e6, 2e6, 3e6, 4e6]);
        // Data that start near their first label need none before it.
        let axis = log(1.94e6, 3.41e6, flush, |ns| width(&duration(ns)));
        assert_eq!(axis.ticks, [2e6, 3e6, 4e6]);
    }

    #[test]
    fn a_linear_axis_without_a_round_value_inside_labels_its_ends() {
        let axis = linear(3.1, 3.9, 1.0, ROOM, |v| width(&number(v)));
        assert_eq!(axis.ticks, [3.1, 3.9]);
    }

    #[test]
    fn a_wide_latency_axis_labels_fewer_round_values_so_none_overlaps() {
        // Five decades: 1..9 of each would put "7 ms" and "8 ms" 10 px
        // apart, and 1, 2, 5 "500 ns" and "1 µs" closer than the gap.
        let axis = log(300.0, 4e7, ROOM, |ns| width(&duration(ns)));
        assert_eq!(axis.range, 300.0..4e7);
        assert_eq!(axis.ticks, [300.0, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7]);
    }

    #[test]
    fn the_last_label_stays_inside_the_image() {
        // "10 ms" is 40 px wide: centred on the right end it would take
        // 20 px beyond it, more than the 10 px room.
        let tight = Room { right: 10.0, ..ROOM };
        let axis = log(1.5e6, 9.5e6, tight, |ns| width(&duration(ns)));
        assert_eq!(axis.range, 1.5e6..1e7);
        assert_eq!(axis.ticks, [2e6, 3e6, 4e6, 5e6, 6e6, 7e6, 8e6, 9e6]);
    }

    #[test]
    fn a_linear_axis_labels_whole_round_steps_apart() {
        // Lengths of 1 to 600 pages: steps of 50 are the densest that fit.
        let axis = linear(0.0, 600.0, 1.0, ROOM, |v| width(&number(v)));
        let fifties: Vec<f64> = (0..=12).map(|i| f64::from(i) * 50.0).collect();
        assert_eq!(axis.ticks, fifties);
        // Counts never get a fractional step.
        let axis = linear(0.0, 3.0, 1.0, ROOM, |v| width(&number(v)));
        assert_eq!(axis.ticks, [0.0, 1.0, 2.0, 3.0]);
    }
}
