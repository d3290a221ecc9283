//! `flame.svg`: an interactive flame graph (search, zoom) drawn by inferno
//! from the folded stacks; and the differential one `compare` draws.

use anyhow::{Context as _, Result};
use inferno::flamegraph::{self, Options};

use super::{Artifact, Format};
use crate::model::Report;

pub const FILE_NAME: &str = "flame.svg";
/// The differential flame graph of B against A; with more sides, one per
/// side, named after it (`diff-flame-C.svg`).
pub const DIFFERENTIAL_FILE_NAME: &str = "diff-flame.svg";

pub fn differential_file_name(side: &str, sides: usize) -> String {
    if sides <= 2 {
        DIFFERENTIAL_FILE_NAME.to_owned()
    } else {
        format!("diff-flame-{side}.svg")
    }
}

pub struct FlameGraph;

impl Format for FlameGraph {
    fn render(&self, report: &Report, _earlier: &[Artifact]) -> Result<Vec<Artifact>> {
        let Some(profile) = report.sampled_stacks() else {
            return Ok(Vec::new());
        };
        let title = format!(
            "mprotect-trace: {} on {}",
            super::table::what_was_traced(report),
            report.kernel_release
        );
        let subtitle = format!(
            "{} samples at {} Hz on {} CPUs, {} inside mprotect()",
            profile.counters.samples, profile.hz, profile.cpus, profile.in_syscall_samples
        );
        Ok(vec![Artifact::new(
            FILE_NAME,
            draw(&profile.folded(), &title, &subtitle)?,
        )])
    }
}

fn draw(folded: &str, title: &str, subtitle: &str) -> Result<Vec<u8>> {
    let mut options = Options::default();
    options.title = title.to_owned();
    options.subtitle = Some(subtitle.to_owned());
    options.count_name = "samples".to_owned();
    // Colours from the function names, not at random: the same stacks
    // draw the same picture, so `plot DIR` redraws what `run` drew.
    options.deterministic = true;
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, folded.lines(), &mut svg).context("drawing the flame graph")?;
    Ok(svg)
}

/// A differential flame graph of B against A (inferno's differential
/// mode): frame widths are B's samples, red frames grew and blue ones
/// shrank. A's counts are normalized to B's total so a longer run does
/// not paint everything red.
pub fn differential(a_folded: &str, b_folded: &str, title: &str, file_name: &str) -> Result<Artifact> {
    let mut diff = Vec::new();
    let options = inferno::differential::Options {
        normalize: true,
        ..Default::default()
    };
    inferno::differential::from_readers(options, a_folded.as_bytes(), b_folded.as_bytes(), &mut diff)
        .context("diffing the folded stacks")?;
    let diff = String::from_utf8(diff).context("the differential stacks are not UTF-8")?;
    let svg = draw(
        &diff,
        title,
        "width: B's samples; red: more in B than in A, blue: fewer",
    )?;
    Ok(Artifact::new(file_name, svg))
}
