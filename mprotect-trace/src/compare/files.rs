//! comparison.txt, .json and .html, the latency CDFs of every side and a
//! differential flame graph per side, written into one directory.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::{Comparison, Side};
use crate::options::PrintFormat;
use crate::output::{self, Artifact};

/// Plots draw each side's representative run (the one whose workload
/// median is the side's median): a picture of a typical run, while the
/// text carries the statistics over all of them.
pub fn write_outputs(sides: &[Side], text: &str, json: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {} (choose another with -o DIR)", dir.display()))?;
    let mut artifacts = vec![
        Artifact::new("comparison.txt", text),
        Artifact::new("comparison.json", json),
    ];
    let shown: Vec<(&str, &crate::model::Report)> = sides
        .iter()
        .filter_map(|side| side.representative().map(|report| (side.label.as_str(), report)))
        .collect();
    let mut differentials = Vec::new();
    // A side without a sampled stack has nothing to draw a difference of.
    if let Some((baseline_label, baseline)) = shown.first()
        && let Some(baseline_profile) = baseline.sampled_stacks()
    {
        for (label, report) in &shown[1..] {
            let Some(profile) = report.sampled_stacks() else {
                continue;
            };
            let title = format!(
                "compare: {label} {} against {baseline_label} {}",
                output::table::short_label(report),
                output::table::short_label(baseline)
            );
            let file_name = output::flame::differential_file_name(label, sides.len());
            artifacts.push(output::flame::differential(
                &baseline_profile.folded(),
                &profile.folded(),
                &title,
                &file_name,
            )?);
            differentials.push((file_name, (*label).to_owned()));
        }
    }
    artifacts.extend(output::plots::render_comparison_cdfs(&shown)?);
    let kernels: Vec<&str> = shown.iter().map(|(_, r)| r.kernel_release.as_str()).collect();
    let title = format!("mprotect-trace compare: {}", kernels.join(" vs "));
    artifacts.push(output::html::comparison(&title, text, &artifacts, &differentials));
    output::write_artifacts(&artifacts, dir)?;
    Ok(())
}

/// Prints a comparison as `format` says and, with `dir`, writes its files
/// there: what `compare` and `ab` both end with.
pub fn publish(sides: &[Side], comparison: &Comparison, dir: Option<&Path>, format: PrintFormat) -> Result<()> {
    let (text, json_text) = (comparison.to_text(), serde_json::to_string_pretty(comparison)?);
    if let Some(dir) = dir {
        write_outputs(sides, &text, &json_text, dir)?;
    }
    output::print(&match format {
        PrintFormat::Text => text,
        PrintFormat::Mail => super::mail::render(sides, comparison),
        PrintFormat::Json => format!("{json_text}\n"),
    })
}
