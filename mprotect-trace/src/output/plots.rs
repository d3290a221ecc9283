//! Plots of a run, each written as PNG and SVG: latency histograms on a
//! log time axis, every target's CDF in one chart, the nr_ptes and
//! pages-per-call distributions, and the workload's per-iteration timeline.

use std::sync::Once;

use anyhow::{Context as _, Result, anyhow};
use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::table::what_was_traced;
use super::{Artifact, Format, axis};
use crate::model::{Backend, ExactDistribution, Report, ValueStats, WorkloadResult};

const SIZE: (u32, u32) = (1000, 560);
const FONT: &str = "sans-serif";
/// Axis labels (plotters scales the size for SVG the same way for every text).
const LABEL_SIZE: f64 = 14.0;
const CAPTION_SIZE: f64 = 15.0;
const TITLE_HEIGHT: u32 = 40;
const MARGIN: u32 = 10;
/// Beyond the plotting area's right end: half of the widest x label
/// centred on it must fit, or that label is not drawn.
const RIGHT_MARGIN: u32 = 30;
const Y_LABEL_AREA: u32 = 70;
const X_LABEL_AREA: u32 = 45;
static FONT_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plot-font.ttf"));
static REGISTER_FONT: Once = Once::new();

/// A chart that can draw itself on any plotters backend.
trait Chart {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

fn plot_error<E: std::fmt::Debug>(err: E) -> anyhow::Error {
    anyhow!("drawing a plot: {err:?}")
}

/// Draws `chart` as `name.png` and `name.svg`, in memory.
fn render(chart: &impl Chart, name: &str) -> Result<Vec<Artifact>> {
    REGISTER_FONT.call_once(|| {
        // The embedded font is valid by construction; a failure only shows as missing text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
    let (width, height) = SIZE;
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        chart.draw(&area)?;
        area.present().map_err(plot_error)?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, width, height, image::ColorType::Rgb8)
        .with_context(|| format!("encoding {name}.png"))?;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        chart.draw(&area)?;
        area.present().map_err(plot_error)?;
    }
    Ok(vec![
        Artifact::new(format!("{name}.png"), png),
        Artifact::new(format!("{name}.svg"), svg),
    ])
}

/// The width `text` takes in `size` on `area`, in pixels.
fn text_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: f64) -> f64 {
    let style = TextStyle::from((FONT, size).into_font());
    // Measuring only fails on a font that cannot load, and then nothing
    // is drawn: any estimate will do.
    area.estimate_text_size(text, &style)
        .map_or(text.chars().count() as f64 * size * 0.6, |(width, _)| f64::from(width))
}

/// What the x axis of a plot has to place its labels in.
fn x_room() -> axis::Room {
    axis::Room {
        pixels: f64::from(SIZE.0 - MARGIN - Y_LABEL_AREA - RIGHT_MARGIN),
        // Left of the axis start sits the lowest y label.
        left: 0.0,
        right: f64::from(RIGHT_MARGIN),
    }
}

/// `caption` broken into lines no wider than `width` pixels.
fn wrapped<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, caption: &str, width: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in caption.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(area, &format!("{line} {word}"), CAPTION_SIZE) <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// Clears `area`, writes `title` across its top and `caption` (what the
/// plot shows and how it was measured, wrapped) along its bottom, and
/// returns the rest.
fn framed<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    caption: &str,
) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_error)?;
    let (top, rest) = area.split_vertically(TITLE_HEIGHT);
    top.titled(title, (FONT, 22)).map_err(plot_error)?;
    let lines = wrapped(area, caption, f64::from(SIZE.0 - 4 * MARGIN));
    let line_height = 19;
    let caption_height = line_height * lines.len() as u32 + MARGIN;
    let (rest, bottom) = rest.split_vertically(SIZE.1 - TITLE_HEIGHT - caption_height);
    let style = TextStyle::from((FONT, CAPTION_SIZE).into_font()).color(&RGBColor(60, 60, 60));
    for (index, line) in lines.iter().enumerate() {
        bottom
            .draw_text(line, &style, (2 * MARGIN as i32, (line_height * index as u32) as i32))
            .map_err(plot_error)?;
    }
    Ok(rest)
}

/// The chart layout every plot shares, with `subtitle` under the title.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    subtitle: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(subtitle, (FONT, 15))
        .margin(MARGIN)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA);
    builder
}

/// Subtitle every plot carries, so it stands alone in a mail.
fn context(report: &Report) -> String {
    format!(
        "{} on {} {}",
        what_was_traced(report),
        report.kernel_release,
        report.arch
    )
}

/// Colors of the series, in order.
fn color(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[index % PALETTE.len()]
}

/// One latency stream of a run and how it was measured.
struct Stream<'a> {
    name: String,
    backend: String,
    /// e.g. "from the sys_enter_mprotect to the sys_exit_mprotect tracepoint".
    how: String,
    stats: &'a ValueStats,
}

/// The latency streams of a run: the syscall, then each probed function.
fn latency_series(report: &Report) -> Vec<Stream<'_>> {
    let mut series = vec![Stream {
        name: "mprotect (syscall)".to_owned(),
        backend: report.syscall.backend.label().to_owned(),
        how: "from the sys_enter_mprotect to the sys_exit_mprotect tracepoint".to_owned(),
        stats: &report.syscall.latency_ns,
    }];
    for target in &report.targets {
        if let Some(stats) = &target.latency_ns {
            let how = match target.attachment.backend {
                Backend::Fentry => "from entry to return by fentry and fexit programs",
                Backend::Kprobe => "from entry to return by a kprobe and a kretprobe",
                Backend::CallSite | Backend::Inlined | Backend::Tracepoint | Backend::None => "by no timing probe",
            };
            series.push(Stream {
                name: target.attachment.name.clone(),
                backend: target.attachment.backend.label().to_owned(),
                how: how.to_owned(),
                stats,
            });
        }
    }
    series.retain(|stream| stream.stats.count > 0);
    series
}

/// A log x axis of latency over `[low, high]` ns, labelled in whole units.
fn latency_axis<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, low: u64, high: u64) -> axis::Axis {
    axis::log(low as f64, high as f64, x_room(), |ns| {
        text_width(area, &axis::duration(ns), LABEL_SIZE)
    })
}

/// The grid and labels of a chart; `x_label` writes an x tick's label.
fn draw_mesh<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    (x_desc, x_label): (&str, &dyn Fn(&f64) -> String),
    y_desc: &str,
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged + ValueFormatter<<Y as Ranged>::ValueType>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(x_label)
        .y_desc(y_desc)
        .label_style((FONT, LABEL_SIZE))
        .draw()
        .map_err(plot_error)
}

struct LatencyHistogram<'a> {
    title: String,
    subtitle: String,
    caption: String,
    stats: &'a ValueStats,
}

impl Chart for LatencyHistogram<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let buckets = &self.stats.histogram.buckets;
        let low = buckets.first().map_or(1, |b| b.0).max(1);
        let high = buckets.last().map_or(2, |b| b.1).max(2);
        let peak = buckets.iter().map(|b| b.2).max().unwrap_or(1);
        let rest = framed(area, &self.title, &self.caption)?;
        let x = latency_axis(area, low, high);
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(x, 0u64..peak + peak / 10 + 1)
            .map_err(plot_error)?;
        draw_mesh(&mut chart, ("latency (log scale)", &|ns| axis::duration(*ns)), "calls")?;
        chart
            .draw_series(buckets.iter().map(|&(low, high, count)| {
                Rectangle::new([(low.max(1) as f64, 0), (high as f64, count)], color(0).filled())
            }))
            .map_err(plot_error)?;
        Ok(())
    }
}

struct LatencyCdf<'a> {
    title: String,
    subtitle: String,
    caption: String,
    /// (legend, stream)
    series: Vec<(String, Stream<'a>)>,
}

impl Chart for LatencyCdf<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let all = self.series.iter().flat_map(|(_, s)| s.stats.histogram.buckets.iter());
        let (low, high) = all.fold((u64::MAX, 1), |(lo, hi), b| (lo.min(b.0.max(1)), hi.max(b.1)));
        let low = if low == u64::MAX { 1 } else { low };
        let rest = framed(area, &self.title, &self.caption)?;
        let x = latency_axis(area, low, high);
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(x, 0f64..1.0)
            .map_err(plot_error)?;
        draw_mesh(
            &mut chart,
            ("latency (log scale)", &|ns| axis::duration(*ns)),
            "share of calls at or below",
        )?;
        for (index, (legend, stream)) in self.series.iter().enumerate() {
            let total = stream.stats.histogram.total().max(1) as f64;
            let mut seen = 0u64;
            let points: Vec<(f64, f64)> = stream
                .stats
                .histogram
                .buckets
                .iter()
                .map(|&(_, high, count)| {
                    seen += count;
                    (high as f64, seen as f64 / total)
                })
                .collect();
            let style = color(index).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(plot_error)?
                .label(legend.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color(index).stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

/// How a bar chart spreads its x axis.
enum Scale {
    /// Every value the same: one bar, labelled with the value and its count.
    Single {
        value: u64,
        unit: &'static str,
    },
    Linear,
    Log,
}

/// Bars of an exact distribution (`nr_ptes`) or a log-linear one (pages).
struct Bars {
    title: String,
    subtitle: String,
    caption: String,
    x_desc: String,
    y_desc: &'static str,
    /// (low, high, count), in x units
    bars: Vec<(f64, f64, u64)>,
    scale: Scale,
    color: RGBColor,
}

impl Chart for Bars {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let peak = self.bars.iter().map(|b| b.2).max().unwrap_or(1);
        let low = self.bars.first().map_or(0.0, |b| b.0);
        let high = self.bars.last().map_or(1.0, |b| b.1).max(low + 1.0);
        let rest = framed(area, &self.title, &self.caption)?;
        let y = 0u64..peak + peak / 8 + 1;
        let number = |v: &f64| axis::number(*v);
        let width = |v: f64| text_width(area, &axis::number(v), LABEL_SIZE);
        let fill = self.color.filled();
        match &self.scale {
            // Log and linear axes differ only in how the axis is laid out,
            // and a log axis starts at 1.
            scale @ (Scale::Log | Scale::Linear) => {
                let (x, floor) = if matches!(scale, Scale::Log) {
                    (axis::log(low.max(1.0), high, x_room(), width), 1.0)
                } else {
                    (axis::linear(low, high, 1.0, x_room(), width), f64::NEG_INFINITY)
                };
                let mut chart = chart_builder(&rest, &self.subtitle)
                    .build_cartesian_2d(x, y)
                    .map_err(plot_error)?;
                draw_mesh(&mut chart, (&self.x_desc, &number), self.y_desc)?;
                chart
                    .draw_series(
                        self.bars
                            .iter()
                            .map(|&(lo, hi, count)| Rectangle::new([(lo.max(floor), 0), (hi, count)], fill)),
                    )
                    .map_err(plot_error)?;
            }
            Scale::Single { value, unit } => {
                // A linear axis around the one value, labelled there only.
                let value = *value as f64;
                let x = axis::Axis::around(value);
                let half = (x.range.end - x.range.start) / 2.0;
                let mut chart = chart_builder(&rest, &self.subtitle)
                    .build_cartesian_2d(x, y)
                    .map_err(plot_error)?;
                draw_mesh(&mut chart, (&self.x_desc, &number), self.y_desc)?;
                let bar = half / 20.0;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(value - bar, 0), (value + bar, peak)],
                        fill,
                    )))
                    .map_err(plot_error)?;
                let label = format!("{} {unit}: {peak} {}", axis::number(value), self.y_desc);
                let style = TextStyle::from((FONT, LABEL_SIZE).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
                chart
                    .draw_series(std::iter::once(Text::new(label, (value, peak), style)))
                    .map_err(plot_error)?;
            }
        }
        Ok(())
    }
}

/// Per measured iteration: protect, restore and post-touch ns per page, stacked.
struct Timeline {
    title: String,
    subtitle: String,
    caption: String,
    layers: [(String, Vec<f64>); 3],
}

impl Chart for Timeline {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let n = self.layers[0].1.len();
        let totals: Vec<f64> = (0..n).map(|i| self.layers.iter().map(|(_, v)| v[i]).sum()).collect();
        let peak = totals.iter().copied().fold(1.0, f64::max);
        let rest = framed(area, &self.title, &self.caption)?;
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(0usize..n.max(1), 0f64..peak * 1.1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("measured iteration (warmup iterations are not measured)")
            .y_desc("ns per page")
            .y_label_formatter(&|v| axis::number(*v))
            .label_style((FONT, LABEL_SIZE))
            .draw()
            .map_err(plot_error)?;
        // Stacked: each layer is drawn up to the sum of itself and those below.
        for layer in (0..self.layers.len()).rev() {
            let tops: Vec<(usize, f64)> = (0..n)
                .map(|i| (i, self.layers[..=layer].iter().map(|(_, v)| v[i]).sum()))
                .collect();
            chart
                .draw_series(AreaSeries::new(tops, 0.0, color(layer).mix(0.8)).border_style(color(layer)))
                .map_err(plot_error)?
                .label(self.layers[layer].0.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color(layer).filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Per measured iteration of each thread: its whole iteration, ns per page,
/// one line per thread.
struct ThreadTimeline {
    title: String,
    subtitle: String,
    caption: String,
    threads: Vec<Vec<f64>>,
}

impl Chart for ThreadTimeline {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let n = self.threads.iter().map(Vec::len).max().unwrap_or(0);
        let peak = self.threads.iter().flatten().copied().fold(1.0, f64::max);
        let rest = framed(area, &self.title, &self.caption)?;
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(0usize..n.max(1), 0f64..peak * 1.1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("measured iteration of the thread (warmup iterations are not measured)")
            .y_desc("ns per page, whole iteration")
            .y_label_formatter(&|v| axis::number(*v))
            .label_style((FONT, LABEL_SIZE))
            .draw()
            .map_err(plot_error)?;
        for (thread, values) in self.threads.iter().enumerate() {
            let points: Vec<(usize, f64)> = values.iter().copied().enumerate().collect();
            chart
                .draw_series(LineSeries::new(points, color(thread).stroke_width(2)))
                .map_err(plot_error)?
                .label(format!("thread {thread}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color(thread).stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// The series' legend, as every multi-series plot draws it.
fn draw_legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, LABEL_SIZE))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

/// Bars of an exact distribution, one centred on each value.
fn exact_bars(distribution: &ExactDistribution) -> Vec<(f64, f64, u64)> {
    distribution
        .counts
        .iter()
        .map(|&(value, count)| (value as f64 - 0.4, value as f64 + 0.4, count))
        .collect()
}

/// The scale for bars of `stats` (lengths in pages): one bar when every
/// value is the same, a linear axis over less than a decade, else log.
fn pages_scale(stats: &ValueStats) -> Scale {
    match (stats.min, stats.max) {
        (Some(min), Some(max)) if min == max => Scale::Single {
            value: min,
            unit: "pages",
        },
        (Some(min), Some(max)) if max < min.max(1) * 10 => Scale::Linear,
        _ => Scale::Log,
    }
}

fn pages_bars(stats: &ValueStats) -> Vec<(f64, f64, u64)> {
    stats
        .histogram
        .buckets
        .iter()
        .map(|&(low, high, count)| (low as f64, high as f64, count))
        .collect()
}

/// "16384 pages each" when every value is one, else the range.
fn spread(stats: &ValueStats, unit: &str) -> String {
    match (stats.min, stats.max) {
        (Some(min), Some(max)) if min == max => format!("every one {min} {unit}"),
        (Some(min), Some(max)) => format!("{min} to {max} {unit}"),
        _ => format!("no {unit}"),
    }
}

/// Every plot of a run, PNG and SVG.
pub struct Plots;

impl Format for Plots {
    fn render(&self, report: &Report, _earlier: &[Artifact]) -> Result<Vec<Artifact>> {
        render_all(report)
    }
}

fn render_all(report: &Report) -> Result<Vec<Artifact>> {
    let context = context(report);
    let mut files = Vec::new();
    let series = latency_series(report);
    for stream in &series {
        let what = if stream.name == "mprotect (syscall)" {
            "successful mprotect() call".to_owned()
        } else {
            format!("{}() call", stream.name)
        };
        let chart = LatencyHistogram {
            title: format!(
                "{} latency ({}, {} calls)",
                stream.name, stream.backend, stream.stats.count
            ),
            subtitle: context.clone(),
            caption: format!(
                "Latency of each {what}, measured {}: {} calls, each bar one histogram bucket (1/16 of a power of two wide).",
                stream.how, stream.stats.count
            ),
            stats: stream.stats,
        };
        files.extend(render(&chart, &format!("latency-{}", slug(&stream.name)))?);
    }
    if !series.is_empty() {
        let measured: Vec<String> = series
            .iter()
            .map(|s| format!("{}, {} calls measured {}", s.name, s.stats.count, s.how))
            .collect();
        let chart = LatencyCdf {
            title: "latency CDF of every target".to_owned(),
            subtitle: context.clone(),
            caption: format!(
                "Share of calls that took at most each latency: {}.",
                measured.join("; ")
            ),
            series: series
                .into_iter()
                .map(|s| (format!("{} ({})", s.name, s.backend), s))
                .collect(),
        };
        files.extend(render(&chart, "latency-cdf")?);
    }
    for target in &report.targets {
        if let (Some(source), Some(nr_ptes)) = (&target.attachment.nr_ptes_source, &target.nr_ptes)
            && nr_ptes.total() > 0
        {
            let scale = match nr_ptes.counts.as_slice() {
                [(value, _)] => Scale::Single {
                    value: *value,
                    unit: "PTEs",
                },
                _ => Scale::Linear,
            };
            let chart = Bars {
                title: format!("nr_ptes per step: {source}"),
                subtitle: context.clone(),
                caption: format!(
                    "PTEs handled per step, read from {source} at each call: {} steps (513 stands for more than 512).",
                    nr_ptes.total()
                ),
                x_desc: "nr_ptes (513 = more than 512)".to_owned(),
                y_desc: "steps",
                bars: exact_bars(nr_ptes),
                scale,
                color: color(3),
            };
            files.extend(render(&chart, &format!("nr-ptes-{}", slug(&target.attachment.name)))?);
        }
        if let (Some(source), Some(pages)) = (&target.attachment.pages_source, &target.pages_per_call)
            && pages.count > 0
        {
            let caption = format!(
                "Pages each {}() call changed, read from its {source}: {} calls, {}.",
                target.attachment.name,
                pages.count,
                spread(pages, "pages")
            );
            let chart = pages_chart(pages, format!("pages changed per call: {source}"), &context, caption);
            files.extend(render(&chart, &format!("pages-{}", slug(&target.attachment.name)))?);
        }
    }
    let pages = &report.syscall.pages_per_call;
    if pages.count > 0 {
        let caption = format!(
            "Length of each successful mprotect() call: its len argument in pages (rounded up), read at the sys_enter_mprotect tracepoint; {} calls, {}.",
            pages.count,
            spread(pages, "pages")
        );
        let chart = pages_chart(pages, "mprotect() length in pages".to_owned(), &context, caption);
        files.extend(render(&chart, "pages-syscall")?);
    }
    if let Some(workload) = &report.workload
        && !workload.per_iteration_ns.protect.is_empty()
    {
        files.extend(timeline(workload, &context)?);
    }
    Ok(files)
}

/// A pages-per-call chart: its axis chosen from the lengths seen.
fn pages_chart(pages: &ValueStats, title: String, context: &str, caption: String) -> Bars {
    let scale = pages_scale(pages);
    Bars {
        title,
        subtitle: context.to_owned(),
        caption,
        x_desc: pages_desc(&scale),
        y_desc: "calls",
        bars: pages_bars(pages),
        scale,
        color: color(2),
    }
}

fn pages_desc(scale: &Scale) -> String {
    match scale {
        Scale::Log => "pages (log scale)".to_owned(),
        Scale::Linear | Scale::Single { .. } => "pages".to_owned(),
    }
}

/// The workload's per-iteration time: phases stacked for one thread, one
/// line per thread for more (their iterations ran at the same time, so
/// one after the other on one axis they would read as a drift).
fn timeline(workload: &WorkloadResult, context: &str) -> Result<Vec<Artifact>> {
    let pages = workload.pages.max(1) as f64;
    let per_page = |values: &[u64]| -> Vec<f64> { values.iter().map(|&v| v as f64 / pages).collect() };
    let p = &workload.per_iteration_ns;
    let clock = "by the workload's own clock (protect: mprotect(PROT_READ); restore: mprotect(PROT_READ|PROT_WRITE); post-touch: touching every page again)";
    match workload.iterations_by_thread() {
        Some(threads) if threads.len() > 1 => {
            let lines: Vec<Vec<f64>> = threads
                .iter()
                .map(|range| {
                    range
                        .clone()
                        .map(|i| (p.protect[i] + p.restore[i] + p.post_touch[i]) as f64 / pages)
                        .collect()
                })
                .collect();
            let counts: Vec<String> = lines.iter().map(|line| line.len().to_string()).collect();
            let chart = ThreadTimeline {
                title: format!(
                    "per-iteration time of each of {} threads, {} warmup iterations before",
                    lines.len(),
                    workload.warmup
                ),
                subtitle: context.to_owned(),
                caption: format!(
                    "Time per page of each measured iteration, protect + restore + post-touch, {clock}: {} threads at once, each its own mapping; {} iterations.",
                    lines.len(),
                    counts.join(" + ")
                ),
                threads: lines,
            };
            render(&chart, "timeline")
        }
        split => {
            let note = if split.is_none() && workload.threads > 1 {
                format!(
                    " The report does not say which of the {} threads ran which iteration: their iterations follow one another.",
                    workload.threads
                )
            } else {
                String::new()
            };
            let chart = Timeline {
                title: format!("per-iteration time, {} warmup iterations before", workload.warmup),
                subtitle: context.to_owned(),
                caption: format!(
                    "Time per page of each measured iteration, {clock}: {} iterations.{note}",
                    p.protect.len()
                ),
                layers: [
                    ("protect".to_owned(), per_page(&p.protect)),
                    ("restore".to_owned(), per_page(&p.restore)),
                    ("post-touch".to_owned(), per_page(&p.post_touch)),
                ],
            };
            render(&chart, "timeline")
        }
    }
}

/// One CDF chart per target measured in both runs, A and B overlaid.
pub fn render_comparison_cdfs(sides: &[(&str, &Report)]) -> Result<Vec<Artifact>> {
    let series: Vec<_> = sides
        .iter()
        .map(|(label, report)| (*label, latency_series(report)))
        .collect();
    let subtitle = sides
        .iter()
        .map(|(label, report)| format!("{label}: {}", super::table::short_label(report)))
        .collect::<Vec<_>>()
        .join("    ");
    let labels: Vec<&str> = sides.iter().map(|(label, _)| *label).collect();
    let mut files = Vec::new();
    let Some((_, baseline)) = series.first() else {
        return Ok(files);
    };
    for stream in baseline {
        let name = &stream.name;
        // Drawn where every side measured the target.
        let lines: Option<Vec<_>> = series
            .iter()
            .map(|(label, side)| {
                side.iter().find(|s| &s.name == name).map(|s| {
                    let legend = format!("{label}: {name} ({})", s.backend);
                    let copy = Stream {
                        name: s.name.clone(),
                        backend: s.backend.clone(),
                        how: s.how.clone(),
                        stats: s.stats,
                    };
                    (legend, copy)
                })
            })
            .collect();
        let Some(lines) = lines else {
            continue;
        };
        let counts: Vec<String> = lines
            .iter()
            .zip(&labels)
            .map(|((_, s), label)| format!("{label} {} calls", s.stats.count))
            .collect();
        let chart = LatencyCdf {
            title: format!("{name} latency CDF, {}", labels.join(" vs ")),
            subtitle: subtitle.clone(),
            caption: format!(
                "Share of {name} calls that took at most each latency, measured {}, in each side's representative run (the one with the side's median iteration time): {}.",
                stream.how,
                counts.join(", ")
            ),
            series: lines,
        };
        files.extend(render(&chart, &format!("cdf-{}", slug(name)))?);
    }
    Ok(files)
}

/// One labelled ratio with its interval: a host of a fleet.
#[derive(Clone, Debug)]
pub struct RatioPoint {
    pub label: String,
    pub ratio: f64,
    pub interval: Option<(f64, f64)>,
    /// Drawn filled; open otherwise.
    pub significant: bool,
}

/// Ratios side by side, each with its interval as a bar, and the line of
/// no change at 1.
struct Ratios<'a> {
    title: String,
    subtitle: String,
    caption: String,
    points: &'a [RatioPoint],
}

impl Chart for Ratios<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let rest = framed(area, &self.title, &self.caption)?;
        let values = self
            .points
            .iter()
            .flat_map(|p| [Some(p.ratio), p.interval.map(|i| i.0), p.interval.map(|i| i.1)])
            .flatten()
            .chain([1.0]);
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((high - low) * 0.1).max(0.01);
        // The hosts at 0, 1, 2 ... with their names as the labels.
        let count = self.points.len().max(1);
        let x = axis::Axis {
            range: -0.5..count as f64 - 0.5,
            ticks: (0..self.points.len()).map(|i| i as f64).collect(),
            minor: Vec::new(),
            log: false,
        };
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(x, (low - pad)..(high + pad))
            .map_err(plot_error)?;
        let name = |v: &f64| {
            self.points
                .get(v.round().max(0.0) as usize)
                .map(|p| p.label.clone())
                .unwrap_or_default()
        };
        draw_mesh(&mut chart, ("host (sorted by B/A)", &name), "B/A")?;
        let grey = RGBColor(127, 127, 127);
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(-0.5, 1.0), (count as f64 - 0.5, 1.0)],
                grey.stroke_width(1),
            )))
            .map_err(plot_error)?;
        for (index, point) in self.points.iter().enumerate() {
            let x = index as f64;
            let style = color(0);
            if let Some((lo, hi)) = point.interval {
                let cap = 0.08;
                for path in [
                    vec![(x, lo), (x, hi)],
                    vec![(x - cap, lo), (x + cap, lo)],
                    vec![(x - cap, hi), (x + cap, hi)],
                ] {
                    chart
                        .draw_series(std::iter::once(PathElement::new(path, style.stroke_width(2))))
                        .map_err(plot_error)?;
                }
            }
            let marker = if point.significant {
                style.filled()
            } else {
                style.stroke_width(2)
            };
            chart
                .draw_series(std::iter::once(Circle::new((x, point.ratio), 6, marker)))
                .map_err(plot_error)?;
        }
        Ok(())
    }
}

/// A plot of `points` in their order, as `name.png` and `name.svg`.
pub fn render_ratios(
    points: &[RatioPoint],
    title: &str,
    subtitle: &str,
    caption: &str,
    name: &str,
) -> Result<Vec<Artifact>> {
    let chart = Ratios {
        title: title.to_owned(),
        subtitle: subtitle.to_owned(),
        caption: caption.to_owned(),
        points,
    };
    render(&chart, name)
}
