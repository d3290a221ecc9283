//! `report.html`: one self-contained file (no network) with the summary,
//! every plot inline and the interactive flame graph.

use std::fmt::Write as _;

use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Artifact, Format, html_tables, table};
use crate::model::Report;

pub const FILE_NAME: &str = "report.html";

/// Text made safe inside HTML elements.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A `<figure>` per plot among `artifacts` (each drawn as a PNG and an SVG
/// twin), its SVG inline: the browser lays out the plot's text itself, so a
/// reader can select and search it, and a check can measure every label.
fn figures(artifacts: &[Artifact]) -> String {
    let mut html = String::new();
    for plot in artifacts.iter().filter(|a| a.file_name.ends_with(".png")) {
        let name = plot.file_name.trim_end_matches(".png");
        let Some(svg) = super::find(artifacts, &format!("{name}.svg")) else {
            continue;
        };
        let _ = writeln!(
            html,
            "<figure class=\"plot\">{}<figcaption>{}.png, {}.svg</figcaption></figure>",
            // An HTML parser puts <svg> in the SVG namespace itself: without
            // the xmlns URL the page names no address at all.
            String::from_utf8_lossy(&svg.bytes)
                .replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
                .trim_end(),
            escape(name),
            escape(name)
        );
    }
    html
}

/// The interactive SVG `file_name` (a flame graph) among `artifacts`,
/// embedded so its script runs; nothing when there is none.
fn embedded_svg(artifacts: &[Artifact], file_name: &str, heading: &str) -> String {
    match super::find(artifacts, file_name) {
        Some(svg) => format!(
            "<h2>{heading}</h2>\n<p>Click a frame to zoom, Ctrl-F to search.</p>\n\
             <object id=\"flame\" type=\"image/svg+xml\" data=\"data:image/svg+xml;base64,{}\" width=\"1100\"></object>\n",
            STANDARD.encode(&svg.bytes)
        ),
        None => String::new(),
    }
}

fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1250px}}pre{{background:#f6f6f6;padding:1em;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}}\
         figure.plot svg{{max-width:100%;height:auto}}figure.plot svg,object{{max-width:100%;border:1px solid #ddd;margin:0.5em 0}}{1}</style></head>\n<body>\n<h1>{0}</h1>\n",
        escape(title),
        html_tables::STYLE
    )
}

pub const COMPARISON_FILE_NAME: &str = "comparison.html";

/// `comparison.html`: the comparison text, the A/B CDFs and the
/// differential flame graph among `artifacts`, in one self-contained file.
/// `differentials`: each differential flame graph's file and its heading.
pub fn comparison(title: &str, text: &str, artifacts: &[Artifact], differentials: &[(String, String)]) -> Artifact {
    let mut html = page_head(title);
    let _ = write!(
        html,
        "<pre>{}</pre>\n<h2>Latency CDFs</h2>\n{}",
        escape(text),
        figures(artifacts)
    );
    for (file_name, heading) in differentials {
        html.push_str(&embedded_svg(artifacts, file_name, heading));
    }
    html.push_str("</body></html>\n");
    Artifact::new(COMPARISON_FILE_NAME, html)
}

pub const FLEET_FILE_NAME: &str = "fleet.html";

/// `fleet.html`: the fleet report's text and its plot, in one self-contained file.
pub fn fleet(title: &str, text: &str, artifacts: &[Artifact]) -> Artifact {
    let mut html = page_head(title);
    let _ = write!(
        html,
        "<pre>{}</pre>\n<h2>B/A per host</h2>\n{}",
        escape(text),
        figures(artifacts)
    );
    html.push_str("</body></html>\n");
    Artifact::new(FLEET_FILE_NAME, html)
}

/// `report.html`: the summary's tables, the plots and the flame graph the
/// formats before it rendered, then the rest of the summary.
pub struct Html;

impl Format for Html {
    fn render(&self, report: &Report, earlier: &[Artifact]) -> Result<Vec<Artifact>> {
        let title = format!(
            "mprotect-trace: {} on {}",
            table::what_was_traced(report),
            report.kernel_release
        );
        let mut html = page_head(&title);
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
        if let Some(machine) = report.machine.as_ref().map(crate::model::Machine::summary)
            && !machine.is_empty()
        {
            let _ = writeln!(html, "<p>Machine: {}</p>", escape(&machine));
        }
        html.push_str(&html_tables::summary(report));
        let _ = write!(html, "<h2>Plots</h2>\n{}", figures(earlier));
        html.push_str(&embedded_svg(earlier, super::flame::FILE_NAME, "Flame graph"));
        html.push_str(&html_tables::details(report, None));
        let _ = writeln!(html, "<script>{}</script>", html_tables::SORT_SCRIPT);
        html.push_str("</body></html>\n");
        Ok(vec![Artifact::new(FILE_NAME, html)])
    }
}
