//! Everything a run writes or prints; reads only the run model.

pub mod flame;
pub mod html;
pub mod plots;
pub mod report;
pub mod table;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Draws the plots of `report` and writes `report.html` into `dir`.
pub fn write_plots_and_html(report: &report::Report, dir: &Path) -> Result<PathBuf> {
    let plots = plots::render_all(report, dir)?;
    html::write(report, &plots, dir)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// failure never leaves a half-written file behind as if complete.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let name = path
        .file_name()
        .context("output path has no file name")?
        .to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| -> Result<()> {
        let mut file =
            std::fs::File::create(&temporary).with_context(|| format!("creating {}", temporary.display()))?;
        file.write_all(bytes)?;
        file.sync_all()
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map(|()| path.to_path_buf())
}
