//! Plots of a run, each written as PNG and SVG: latency histograms on a
//! log time axis, every target's CDF in one chart, the nr_ptes and
//! pages-per-call distributions, and the workload's per-iteration timeline.

use std::sync::Once;

use anyhow::{Context as _, Result, anyhow};
use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::table::what_was_traced;
use super::{Artifact, Format};
use crate::model::{ExactDistribution, Report, ValueStats};

const SIZE: (u32, u32) = (1000, 560);
const FONT: &str = "sans-serif";
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

/// `[low, high]` widened to whole decades, so a log axis has labelled ticks
/// (plotters puts them at powers of ten).
fn decades(low: f64, high: f64) -> std::ops::Range<f64> {
    let low = 10f64.powf(low.max(1.0).log10().floor());
    let high = 10f64.powf(high.max(low * 10.0).log10().ceil());
    low..high
}

/// Clears `area`, writes `title` across its top, and returns the rest.
fn framed<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_error)?;
    let (top, rest) = area.split_vertically(40);
    top.titled(title, (FONT, 22)).map_err(plot_error)?;
    Ok(rest)
}

/// The chart layout every plot shares, with `caption` under the title.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, (FONT, 15))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(70);
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

/// The latency streams of a run: the syscall, then each probed function.
fn latency_series(report: &Report) -> Vec<(String, String, &ValueStats)> {
    let mut series = vec![(
        "mprotect (syscall)".to_owned(),
        report.syscall.backend.label().to_owned(),
        &report.syscall.latency_ns,
    )];
    for target in &report.targets {
        if let Some(stats) = &target.latency_ns {
            series.push((
                target.attachment.name.clone(),
                target.attachment.backend.label().to_owned(),
                stats,
            ));
        }
    }
    series.retain(|(_, _, stats)| stats.count > 0);
    series
}

/// The grid and labels of a chart with latency on a log x axis; the y
/// axis (counts or shares) is the caller's.
fn draw_latency_mesh<DB, Y>(chart: &mut ChartContext<'_, DB, Cartesian2d<LogCoord<f64>, Y>>, y_desc: &str) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: Ranged + ValueFormatter<<Y as Ranged>::ValueType>,
{
    chart
        .configure_mesh()
        .x_desc("latency (log scale)")
        .x_labels(10)
        .x_label_formatter(&|ns| super::table::format_ns(*ns))
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .draw()
        .map_err(plot_error)
}

struct LatencyHistogram<'a> {
    title: String,
    subtitle: String,
    stats: &'a ValueStats,
}

impl Chart for LatencyHistogram<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let buckets = &self.stats.histogram.buckets;
        let low = buckets.first().map_or(1, |b| b.0).max(1) as f64;
        let high = buckets.last().map_or(2, |b| b.1).max(2) as f64;
        let peak = buckets.iter().map(|b| b.2).max().unwrap_or(1);
        let rest = framed(area, &self.title)?;
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(decades(low, high).log_scale(), 0u64..peak + peak / 10 + 1)
            .map_err(plot_error)?;
        draw_latency_mesh(&mut chart, "calls")?;
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
    series: Vec<(String, String, &'a ValueStats)>,
}

impl Chart for LatencyCdf<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let all = self.series.iter().flat_map(|(_, _, s)| s.histogram.buckets.iter());
        let (low, high) = all.fold((u64::MAX, 1), |(lo, hi), b| (lo.min(b.0.max(1)), hi.max(b.1)));
        let low = if low == u64::MAX { 1 } else { low };
        let rest = framed(area, &self.title)?;
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(decades(low as f64, high as f64).log_scale(), 0f64..1.0)
            .map_err(plot_error)?;
        draw_latency_mesh(&mut chart, "share of calls at or below")?;
        for (index, (name, backend, stats)) in self.series.iter().enumerate() {
            let total = stats.histogram.total().max(1) as f64;
            let mut seen = 0u64;
            let points: Vec<(f64, f64)> = stats
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
                .label(format!("{name} ({backend})"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color(index).stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    }
}

/// Bars of an exact distribution (`nr_ptes`) or a log-linear one (pages).
struct Bars {
    title: String,
    subtitle: String,
    x_desc: String,
    /// (low, high, count)
    bars: Vec<(u64, u64, u64)>,
    log_x: bool,
}

impl Chart for Bars {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let peak = self.bars.iter().map(|b| b.2).max().unwrap_or(1);
        let low = self.bars.first().map_or(0, |b| b.0);
        let high = self.bars.last().map_or(1, |b| b.1).max(low + 1);
        let rest = framed(area, &self.title)?;
        let y = 0u64..peak + peak / 10 + 1;
        if self.log_x {
            let mut chart = chart_builder(&rest, &self.subtitle)
                .build_cartesian_2d(decades(low as f64, high as f64).log_scale(), y)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_desc)
                .y_desc("calls")
                .label_style((FONT, 14))
                .draw()
                .map_err(plot_error)?;
            chart
                .draw_series(self.bars.iter().map(|&(lo, hi, count)| {
                    Rectangle::new([(lo.max(1) as f64, 0), (hi as f64, count)], color(2).filled())
                }))
                .map_err(plot_error)?;
        } else {
            let mut chart = chart_builder(&rest, &self.subtitle)
                .build_cartesian_2d(low as f64..high as f64, y)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_desc)
                .y_desc("steps")
                .label_style((FONT, 14))
                .draw()
                .map_err(plot_error)?;
            chart
                .draw_series(
                    self.bars.iter().map(|&(lo, hi, count)| {
                        Rectangle::new([(lo as f64, 0), (hi as f64, count)], color(3).filled())
                    }),
                )
                .map_err(plot_error)?;
        }
        Ok(())
    }
}

/// Per measured iteration: protect, restore and post-touch ns per page, stacked.
struct Timeline {
    title: String,
    subtitle: String,
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
        let rest = framed(area, &self.title)?;
        let mut chart = chart_builder(&rest, &self.subtitle)
            .build_cartesian_2d(0usize..n.max(1), 0f64..peak * 1.1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("measured iteration (warmup iterations are not measured)")
            .y_desc("ns per page")
            .label_style((FONT, 14))
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
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

fn exact_bars(distribution: &ExactDistribution) -> Vec<(u64, u64, u64)> {
    distribution
        .counts
        .iter()
        .map(|&(value, count)| (value, value + 1, count))
        .collect()
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
    for (name, backend, stats) in &series {
        let chart = LatencyHistogram {
            title: format!("{name} latency ({backend}, {} calls)", stats.count),
            subtitle: context.clone(),
            stats,
        };
        files.extend(render(&chart, &format!("latency-{}", slug(name)))?);
    }
    if !series.is_empty() {
        let chart = LatencyCdf {
            title: "latency CDF of every target".to_owned(),
            subtitle: context.clone(),
            series,
        };
        files.extend(render(&chart, "latency-cdf")?);
    }
    for target in &report.targets {
        if let (Some(source), Some(nr_ptes)) = (&target.attachment.nr_ptes_source, &target.nr_ptes)
            && nr_ptes.total() > 0
        {
            let chart = Bars {
                title: format!("nr_ptes per step: {source}"),
                subtitle: context.clone(),
                x_desc: "nr_ptes (513 = more than 512)".to_owned(),
                bars: exact_bars(nr_ptes),
                log_x: false,
            };
            files.extend(render(&chart, &format!("nr-ptes-{}", slug(&target.attachment.name)))?);
        }
        if let (Some(source), Some(pages)) = (&target.attachment.pages_source, &target.pages_per_call)
            && pages.count > 0
        {
            let chart = Bars {
                title: format!("pages changed per call: {source}"),
                subtitle: context.clone(),
                x_desc: "pages (log scale)".to_owned(),
                bars: pages.histogram.buckets.clone(),
                log_x: true,
            };
            files.extend(render(&chart, &format!("pages-{}", slug(&target.attachment.name)))?);
        }
    }
    if report.syscall.pages_per_call.count > 0 {
        let chart = Bars {
            title: "mprotect() length in pages".to_owned(),
            subtitle: context.clone(),
            x_desc: "pages (log scale)".to_owned(),
            bars: report.syscall.pages_per_call.histogram.buckets.clone(),
            log_x: true,
        };
        files.extend(render(&chart, "pages-syscall")?);
    }
    if let Some(workload) = &report.workload
        && !workload.per_iteration_ns.protect.is_empty()
    {
        let per_page = |values: &[u64]| values.iter().map(|&v| v as f64 / workload.pages as f64).collect();
        let p = &workload.per_iteration_ns;
        let chart = Timeline {
            title: format!("per-iteration time, {} warmup iterations before", workload.warmup),
            subtitle: context.clone(),
            layers: [
                ("protect".to_owned(), per_page(&p.protect)),
                ("restore".to_owned(), per_page(&p.restore)),
                ("post-touch".to_owned(), per_page(&p.post_touch)),
            ],
        };
        files.extend(render(&chart, "timeline")?);
    }
    Ok(files)
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
    for (name, _, _) in baseline {
        // Drawn where every side measured the target.
        let lines: Option<Vec<_>> = series
            .iter()
            .map(|(label, side)| {
                side.iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, backend, stats)| (format!("{label}: {name}"), backend.clone(), *stats))
            })
            .collect();
        let Some(lines) = lines else {
            continue;
        };
        let chart = LatencyCdf {
            title: format!("{name} latency CDF, {}", labels.join(" vs ")),
            subtitle: subtitle.clone(),
            series: lines,
        };
        files.extend(render(&chart, &format!("cdf-{}", slug(name)))?);
    }
    Ok(files)
}
