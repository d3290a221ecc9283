//! Everything a run writes: one pipeline of formats, each a module behind
//! [`Format`], that read only the run model. Every file is rendered in
//! memory first (the HTML embeds the plots and the flame graph from
//! there), then each is written atomically, `report.json` last, so a run
//! that fails to write leaves no report that looks complete.

mod axis;
pub mod command_line;
pub mod flame;
pub mod folded;
pub mod html;
pub mod html_tables;
pub mod inline_sites;
pub mod json;
pub mod mail;
pub mod mail_layout;
pub mod plots;
pub mod pprof;
pub mod summary;
pub mod table;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::model::Report;

/// One file a format produced, not yet written.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

impl Artifact {
    pub fn new(file_name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            file_name: file_name.into(),
            bytes: bytes.into(),
        }
    }
}

/// An output format: the files it makes of a run, given those the formats
/// before it made (which it may embed).
pub trait Format: Sync {
    fn render(&self, report: &Report, earlier: &[Artifact]) -> Result<Vec<Artifact>>;
}

/// Every format, in rendering order. Adding one: its module, and a line here.
static FORMATS: &[&dyn Format] = &[
    &folded::FoldedStacks,
    &pprof::Pprof,
    &flame::FlameGraph,
    &plots::Plots,
    &html::Html,
    &json::ReportJson,
];

/// Which formats to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formats {
    /// Everything a run writes.
    Run,
    /// Everything but report.json, which is the input (`plot DIR`).
    Redraw,
}

/// Renders every file of `report` in memory.
pub fn render(report: &Report, formats: Formats) -> Result<Vec<Artifact>> {
    let mut artifacts: Vec<Artifact> = Vec::new();
    for format in FORMATS {
        let made = format.render(report, &artifacts)?;
        artifacts.extend(made);
    }
    if formats == Formats::Redraw {
        artifacts.retain(|artifact| artifact.file_name != json::FILE_NAME);
    }
    Ok(artifacts)
}

/// Renders and writes every file of `report` into `dir`; returns their paths.
pub fn write(report: &Report, formats: Formats, dir: &Path) -> Result<Vec<PathBuf>> {
    write_artifacts(&render(report, formats)?, dir)
}

/// Writes each artifact into `dir`, atomically, in order.
pub fn write_artifacts(artifacts: &[Artifact], dir: &Path) -> Result<Vec<PathBuf>> {
    artifacts
        .iter()
        .map(|artifact| write_atomically(&dir.join(&artifact.file_name), &artifact.bytes))
        .collect()
}

/// Writes `text` to stdout. A reader that went away (`run | head`) is an
/// error the caller returns, not a panic: `run` and `workload` must still
/// detach and restore what they changed.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|err| anyhow::anyhow!("writing to stdout: {err}"))
}

/// Writes `line` and a newline to stderr: every warning, note and error
/// goes this way. A stderr nobody reads any more (`run 2>&1 | head`) is
/// no reason to stop: the run still writes its files, detaches and
/// restores what it changed, and says how it ended by its exit code.
pub fn stderr_line(line: &str) {
    let mut stderr = std::io::stderr().lock();
    // Nowhere is left to report a failure to report.
    let _ = stderr.write_all(format!("{line}\n").as_bytes());
}

/// The artifact named `file_name` among `artifacts`.
pub fn find<'a>(artifacts: &'a [Artifact], file_name: &str) -> Option<&'a Artifact> {
    artifacts.iter().find(|artifact| artifact.file_name == file_name)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// failure never leaves a half-written file behind as if complete.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let name = path
        .file_name()
        .context("output path has no file name")?
        .to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    // Errors name the file asked for, not the temporary one beside it.
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })()
    .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", path.display()));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map(|()| path.to_path_buf())
}
