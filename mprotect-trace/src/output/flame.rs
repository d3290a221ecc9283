//! `flame.svg`: an interactive flame graph (search, zoom) drawn by inferno
//! from the folded stacks.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use inferno::flamegraph::{self, Options};

pub const FILE_NAME: &str = "flame.svg";

pub fn write(folded: &str, title: &str, subtitle: &str, dir: &Path) -> Result<PathBuf> {
    let mut options = Options::default();
    options.title = title.to_owned();
    options.subtitle = Some(subtitle.to_owned());
    options.count_name = "samples".to_owned();
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, folded.lines(), &mut svg).context("drawing the flame graph")?;
    super::write_atomically(&dir.join(FILE_NAME), &svg)
}

pub const DIFFERENTIAL_FILE_NAME: &str = "diff-flame.svg";

/// A differential flame graph of B against A (inferno's differential
/// mode): frame widths are B's samples, red frames grew and blue ones
/// shrank. A's counts are normalized to B's total so a longer run does
/// not paint everything red.
pub fn write_differential(a_folded: &str, b_folded: &str, title: &str, dir: &Path) -> Result<PathBuf> {
    let mut diff = Vec::new();
    let options = inferno::differential::Options {
        normalize: true,
        ..Default::default()
    };
    inferno::differential::from_readers(options, a_folded.as_bytes(), b_folded.as_bytes(), &mut diff)
        .context("diffing the folded stacks")?;
    let diff = String::from_utf8(diff).context("the differential stacks are not UTF-8")?;
    let mut options = Options::default();
    options.title = title.to_owned();
    options.subtitle = Some("width: B's samples; red: more in B than in A, blue: fewer".to_owned());
    options.count_name = "samples".to_owned();
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut options, diff.lines(), &mut svg).context("drawing the differential flame graph")?;
    super::write_atomically(&dir.join(DIFFERENTIAL_FILE_NAME), &svg)
}
