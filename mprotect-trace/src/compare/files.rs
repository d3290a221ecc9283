//! comparison.txt, .json and .html, the latency CDFs of every side and a
//! differential flame graph per side, written into one directory.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::{Comparison, Side};
use crate::options::PrintFormat;
use crate::output::{self, Artifact};

/// Compares `sides` (the first the baseline) and writes every file of the
/// comparison into `dir`: what `lab` and `bisect` do with their runs.
pub fn compare_into(sides: &[Side], dir: &Path) -> Result<Comparison> {
    let comparison = super::compare(sides, None)?;
    write_outputs(
        sides,
        &comparison.to_text(),
        &serde_json::to_string_pretty(&comparison)?,
        dir,
    )?;
    Ok(comparison)
}

/// Plots draw each side's representative run (the one whose workload
/// median is the side's median): a picture of a typical run, while the
/// text carries the statistics over all of them. The differential flame
/// graph is of samples, which add up: it pools every run, as the sampled
/// table does.
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
    if let Some((baseline, others)) = sides.split_first()
        && let Some((baseline_folded, baseline_runs)) = pooled_stacks(baseline)
    {
        for side in others {
            let Some((folded, runs)) = pooled_stacks(side) else {
                continue;
            };
            let what = |side: &Side| {
                side.representative()
                    .map(output::table::short_label)
                    .unwrap_or_default()
            };
            let title = format!(
                "compare: {} {} against {} {}",
                side.label,
                what(side),
                baseline.label,
                what(baseline)
            );
            let file_name = output::flame::differential_file_name(&side.label, sides.len());
            artifacts.push(output::flame::differential(
                &baseline_folded,
                &folded,
                &title,
                &file_name,
            )?);
            let heading = format!(
                "Differential flame graph, {0} against the baseline (red: more in {0}); every run of each side pooled ({1}: {2}, {0}: {3})",
                side.label,
                baseline.label,
                runs_named(baseline_runs),
                runs_named(runs)
            );
            differentials.push((file_name, heading));
        }
    }
    artifacts.extend(output::plots::render_comparison_cdfs(&shown)?);
    let title = format!("mprotect-trace compare: {}", what_differs(sides));
    artifacts.push(output::html::comparison(&title, text, &artifacts, &differentials));
    output::write_artifacts(&artifacts, dir)?;
    Ok(())
}

/// "1 run", "5 runs".
fn runs_named(runs: usize) -> String {
    if runs == 1 {
        "1 run".to_owned()
    } else {
        format!("{runs} runs")
    }
}

/// The folded stacks of every run of `side` that sampled one, together
/// (a stack in several runs is counted once with their samples added),
/// and how many runs they are.
fn pooled_stacks(side: &Side) -> Option<(String, usize)> {
    let folded: Vec<String> = side
        .runs
        .iter()
        .filter_map(|run| run.report.sampled_stacks().map(crate::model::Profile::folded))
        .collect();
    (!folded.is_empty()).then(|| (folded.concat(), folded.len()))
}

/// What tells the sides apart, for the page's title: the settings that
/// differ (`scenario: shared-dirty-toggle vs private-dirty-toggle`), else
/// the kernels, else the side directories' names.
fn what_differs(sides: &[Side]) -> String {
    let Some((baseline, others)) = sides.split_first() else {
        return String::new();
    };
    // Per setting that differs anywhere: its value on each side.
    let mut settings: Vec<(String, Vec<String>)> = Vec::new();
    for (index, side) in others.iter().enumerate() {
        for difference in super::differences(baseline, side).into_iter().filter(|d| d.shaping) {
            let position = match settings.iter().position(|(name, _)| *name == difference.setting) {
                Some(position) => position,
                None => {
                    settings.push((difference.setting.clone(), vec![difference.a.clone(); sides.len()]));
                    settings.len() - 1
                }
            };
            settings[position].1[index + 1] = difference.b;
        }
    }
    if !settings.is_empty() {
        return settings
            .iter()
            .map(|(name, values)| {
                // `workload.scenario` reads as `scenario`.
                let short = name.rsplit('.').next().unwrap_or(name);
                format!("{short}: {}", values.join(" vs "))
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let kernels: Vec<String> = sides
        .iter()
        .map(|side| {
            side.runs
                .first()
                .map_or_else(String::new, |run| run.report.kernel_release.clone())
        })
        .collect();
    if kernels.iter().any(|kernel| *kernel != kernels[0]) {
        return format!("kernel: {}", kernels.join(" vs "));
    }
    sides
        .iter()
        .map(|side| {
            side.path.file_name().map_or_else(
                || side.path.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join(" vs ")
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
