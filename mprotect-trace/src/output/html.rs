//! `report.html`: one self-contained file (no network) with the summary,
//! every plot inline and the interactive flame graph.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::report::Report;
use super::table;

pub const FILE_NAME: &str = "report.html";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Builds `report.html` from the report and the PNG plots in `plots`;
/// embeds `dir/flame.svg` when the run sampled stacks.
pub fn write(report: &Report, plots: &[PathBuf], dir: &Path) -> Result<PathBuf> {
    let title = format!(
        "mprotect-trace: {} on {}",
        table::what_was_traced(report),
        report.kernel_release
    );
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}}\
         img,object{{max-width:100%;border:1px solid #ddd;margin:0.5em 0}}</style></head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(
        html,
        "<p>{} {}, {} CPUs ({}); kernel command line: <code>{}</code>; mprotect-trace {}</p>",
        escape(&report.kernel_release),
        escape(&report.arch),
        report.cpus,
        escape(&report.cpu_model),
        escape(&report.kernel_cmdline),
        escape(&report.tool_version)
    );
    let _ = write!(html, "<h2>Summary</h2>\n<pre>{}", escape(&table::render(report)));
    if let Some(workload) = &report.workload {
        let _ = write!(html, "{}", escape(&workload.result_line()));
    }
    html.push_str("</pre>\n<h2>Plots</h2>\n");
    for plot in plots.iter().filter(|p| p.extension().is_some_and(|e| e == "png")) {
        let bytes = std::fs::read(plot).with_context(|| format!("reading {}", plot.display()))?;
        let name = plot
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            html,
            "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"><figcaption>{}</figcaption></figure>",
            escape(&name),
            STANDARD.encode(bytes),
            escape(&name)
        );
    }
    let flame = dir.join(super::flame::FILE_NAME);
    if let Ok(svg) = std::fs::read(&flame) {
        let _ = write!(
            html,
            "<h2>Flame graph</h2>\n<p>Click a frame to zoom, Ctrl-F to search.</p>\n\
             <object id=\"flame\" type=\"image/svg+xml\" data=\"data:image/svg+xml;base64,{}\" width=\"1100\"></object>",
            STANDARD.encode(svg)
        );
    }
    // Lets a browser-driven check read how many images actually decoded.
    html.push_str(
        "<script>window.addEventListener('load', () => {\n\
         const images = Array.from(document.images);\n\
         const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;\n\
         document.body.dataset.imagesLoaded = loaded + '/' + images.length;\n});</script>\n</body></html>\n",
    );
    super::write_atomically(&dir.join(FILE_NAME), html.as_bytes())
}
