//! The layout check of report.html and comparison.html: a copy of the page
//! with a script appended, opened in headless Chromium at the width a
//! screenshot is taken at, reports every plot label the plot clips, every
//! two labels of a plot that overlap, every box that scrolls sideways and
//! every table row that wraps, and counts the `<pre>` boxes.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use crate::browser::{chromium, url};
use crate::command::output_of;

/// The window width the pages must fit: a screenshot of a report.
pub const WIDTH: u32 = 1300;

const SCRIPT: &str = include_str!("layout-check.js");

/// What Chromium laid out.
pub struct Layout {
    /// Plots drawn inline and the labels they hold.
    pub plots: u64,
    pub texts: u64,
    pub clipped: Vec<String>,
    pub overlapping: Vec<String>,
    pub scrolling: Vec<String>,
    /// Table rows, and the cells of them that wrapped.
    pub rows: u64,
    pub wrapped: Vec<String>,
    /// `<pre>` elements (report.html has none: its tables are HTML).
    pub pres: u64,
}

/// Measures `page` in Chromium at [`WIDTH`] px; the instrumented copy is
/// written beside it (`<name>.layout-check.html`).
pub fn measure(profile: &Path, page: &Path) -> Result<Layout> {
    let html = std::fs::read_to_string(page).with_context(|| format!("reading {}", page.display()))?;
    let copy = page.with_extension("layout-check.html");
    std::fs::write(&copy, format!("{html}<script>\n{SCRIPT}</script>\n"))
        .with_context(|| format!("writing {}", copy.display()))?;
    let dom = output_of(
        chromium(profile)
            .arg(format!("--window-size={WIDTH},900"))
            .arg("--dump-dom")
            .arg(url(&copy)?),
    )?;
    // The last one: the script's own text comes before the element it adds.
    let json = dom
        .rsplit_once("<pre id=\"layout-check\">")
        .and_then(|(_, rest)| rest.split("</pre>").next())
        .with_context(|| format!("{} did not finish loading in Chromium", page.display()))?;
    // --dump-dom escapes the text as HTML.
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    let found: Value = serde_json::from_str(&json).with_context(|| format!("the layout check printed {json}"))?;
    let count = |key: &str| found[key].as_u64().with_context(|| format!("no {key} in {json}"));
    let list = |key: &str| -> Result<Vec<String>> {
        found[key]
            .as_array()
            .with_context(|| format!("no {key} in {json}"))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
    };
    Ok(Layout {
        plots: count("plots")?,
        texts: count("texts")?,
        clipped: list("clipped")?,
        overlapping: list("overlapping")?,
        scrolling: list("scrolling")?,
        rows: count("rows")?,
        wrapped: list("wrapped")?,
        pres: count("pres")?,
    })
}

/// [`measure`], then fails unless `page` shows at least `min_plots` plots
/// with no clipped label, no two labels overlapping, nothing scrolling
/// sideways and no table row wrapped. Returns the layout.
pub fn check(profile: &Path, page: &Path, min_plots: u64) -> Result<Layout> {
    let layout = measure(profile, page)?;
    let problems: Vec<String> = [
        ("clipped label", &layout.clipped),
        ("overlapping labels", &layout.overlapping),
        ("horizontal scrolling", &layout.scrolling),
        ("wrapped table row", &layout.wrapped),
    ]
    .iter()
    .flat_map(|(what, found)| found.iter().map(move |item| format!("{what}: {item}")))
    .collect();
    ensure!(
        problems.is_empty(),
        "{} at {WIDTH} px in Chromium has {} clipped labels, {} overlapping pairs, {} boxes scrolling sideways, {} wrapped table cells:\n  {}",
        page.display(),
        layout.clipped.len(),
        layout.overlapping.len(),
        layout.scrolling.len(),
        layout.wrapped.len(),
        problems.join("\n  ")
    );
    ensure!(
        layout.plots >= min_plots && layout.texts > 0,
        "{} shows {} plots with {} labels, expected at least {min_plots} plots",
        page.display(),
        layout.plots,
        layout.texts
    );
    Ok(layout)
}
