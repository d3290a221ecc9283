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
