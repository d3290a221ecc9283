//! report.html's summary as a page: the figures of the text table in HTML
//! tables (numbers right-aligned, columns sortable by a click), and its
//! other lines as paragraphs and lists. The rows come from `table`, so the
//! page and the terminal show the same figures.

use std::fmt::Write as _;

use super::html::escape;
use super::table::{self, Cell, TargetTable};
use crate::model::{Profile, ProgramCost, Report, Scope};

/// Hot spots shown before the rest are folded under a `<details>`.
const HOT_SPOTS_SHOWN: usize = 5;

/// Sorts a `table.sortable` by the column whose heading is clicked, by each
/// cell's `data-v` number or else its text, each `<tbody>` (a row and the
/// lines under it) moving as one; a second click reverses the order.
pub const SORT_SCRIPT: &str = r"
for (const table of document.querySelectorAll('table.sortable')) {
  table.querySelectorAll('thead th').forEach((th, column) => {
    th.addEventListener('click', () => {
      const down = th.dataset.order !== 'down';
      th.dataset.order = down ? 'down' : 'up';
      const key = (body) => {
        const cell = body.rows[0].cells[column];
        return cell && cell.dataset.v !== undefined ? Number(cell.dataset.v) : (cell ? cell.textContent : '');
      };
      const bodies = Array.from(table.tBodies);
      bodies.sort((a, b) => {
        const x = key(a), y = key(b);
        const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return down ? -order : order;
      });
      bodies.forEach((body) => table.appendChild(body));
    });
  });
}
";

/// The page's style for the tables and lines below.
pub const STYLE: &str = "table{border-collapse:collapse;margin:0.5em 0 1em}\
th,td{padding:2px 10px;white-space:nowrap;text-align:left}\
thead th{border-bottom:2px solid #bbb;background:#f3f3f3}\
table.sortable thead th{cursor:pointer}table.sortable thead th::after{content:' \\2195';color:#aaa}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
tbody{border-bottom:1px solid #e6e6e6}td.note{white-space:normal;color:#555;font-size:90%}\
p.line{margin:0.2em 0}code{font-size:95%}details summary{cursor:pointer;color:#333}";

/// One `<th>` per heading; `numeric`: right-aligned.
fn head(headings: &[(&str, bool)]) -> String {
    let cells: String = headings
        .iter()
        .map(|(text, numeric)| {
            let class = if *numeric { " class=\"n\"" } else { "" };
            format!("<th{class}>{}</th>", escape(text))
        })
        .collect();
    format!("<thead><tr>{cells}</tr></thead>")
}

fn text_cell(text: &str) -> String {
    format!("<td>{}</td>", escape(text))
}

fn number_cell(text: &str, value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        Some(value) => format!("<td class=\"n\" data-v=\"{value}\">{}</td>", escape(text)),
        None => format!("<td class=\"n\">{}</td>", escape(text)),
    }
}

fn cell(cell: &Cell) -> String {
    number_cell(&cell.text, cell.value)
}

/// A line under a row, across the columns; its leading spaces become an indent.
fn note_row(note: &str, columns: usize) -> String {
    let depth = note.len() - note.trim_start().len();
    format!(
        "<tr><td></td><td class=\"note\" colspan=\"{}\" style=\"padding-left:{}em\">{}</td></tr>",
        columns - 1,
        0.6 + depth as f64 * 0.5,
        escape(note.trim())
    )
}

fn lines(out: &mut String, lines: impl IntoIterator<Item = String>) {
    for line in lines {
        let _ = writeln!(out, "<p class=\"line\">{}</p>", escape(&line));
    }
}

/// Text made of blocks (a blank line between them), each a heading line
/// ending in ':' and its indented items, or lines of their own.
fn text_blocks(out: &mut String, text: &str) {
    for block in text.split("\n\n") {
        let block: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        match block.split_first() {
            Some((first, items)) if first.ends_with(':') && !items.is_empty() => {
                let _ = write!(out, "<p class=\"line\">{}</p>\n<ul>", escape(first));
                for item in items {
                    let _ = write!(out, "<li>{}</li>", escape(item.trim()));
                }
                out.push_str("</ul>\n");
            }
            _ => lines(out, block.iter().map(|l| l.trim().to_owned())),
        }
    }
}

/// The targets table: a `<tbody>` per target, its row and the lines under it.
fn targets(out: &mut String, table: &TargetTable) {
    let headings: Vec<(&str, bool)> = table::TARGET_COLUMNS
        .iter()
        .enumerate()
        .map(|(index, name)| (*name, index >= 2))
        .collect();
    let _ = write!(out, "<table class=\"sortable\" id=\"targets\">{}", head(&headings));
    for row in &table.rows {
        out.push_str("<tbody><tr>");
        out.push_str(&text_cell(&row.name));
        out.push_str(&text_cell(&row.backend));
        let mut notes = row.notes.iter();
        match &row.cells {
            Some(cells) => cells.iter().for_each(|c| out.push_str(&cell(c))),
            None => {
                let _ = write!(
                    out,
                    "<td class=\"note\" colspan=\"6\">{}</td>",
                    escape(notes.next().map_or("", String::as_str))
                );
            }
        }
        out.push_str("</tr>");
        for note in notes {
            out.push_str(&note_row(note, headings.len()));
        }
        out.push_str("</tbody>\n");
    }
    out.push_str("</table>\n");
    lines(out, table.folded.iter().cloned().chain(table.percentile_note.clone()));
}

/// Every CPU's calls and latency per target (`--per-cpu`).
fn per_cpu(out: &mut String, report: &Report) {
    let rows = table::per_cpu_rows(report);
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<h2>Per CPU</h2>\n<table class=\"sortable\">{}",
        head(&[
            ("target", false),
            ("cpu", true),
            ("calls", true),
            ("mean", true),
            ("p50", true),
            ("p99", true)
        ])
    );
    for (name, cpus) in rows {
        for cpu in cpus {
            let ns = |value: Option<f64>| number_cell(&value.map_or_else(|| "-".to_owned(), table::format_ns), value);
            let latency = cpu.latency.as_ref();
            let _ = write!(
                out,
                "<tbody><tr>{}{}{}{}{}{}</tr></tbody>",
                text_cell(name),
                number_cell(&cpu.cpu.to_string(), Some(cpu.cpu as f64)),
                number_cell(&cpu.calls.to_string(), Some(cpu.calls as f64)),
                ns(latency.and_then(|l| l.mean_ns)),
                ns(latency.and_then(|l| l.p50_ns)),
                ns(latency.and_then(|l| l.p99_ns))
            );
        }
    }
    out.push_str("</table>\n");
}

fn percent(share: f64) -> String {
    number_cell(&format!("{:.1}%", share * 100.0), Some(share))
}

/// Samples by process (-a, -p).
fn processes(out: &mut String, profile: &Profile, top: Option<usize>) {
    let processes = profile.by_process();
    if processes.is_empty() {
        return;
    }
    let samples: u64 = processes.iter().map(|p| p.samples).sum();
    let _ = write!(
        out,
        "<table class=\"sortable\">{}",
        head(&[
            ("process", false),
            ("pid", true),
            ("samples", true),
            ("share", true),
            ("in mprotect", true)
        ])
    );
    let shown = top.unwrap_or(table::PROCESSES_SHOWN);
    for process in processes.iter().take(shown) {
        let comm = &process.process.comm;
        let name = if process.process.kernel_thread {
            format!("[{comm}]")
        } else {
            comm.clone()
        };
        let _ = write!(
            out,
            "<tbody><tr>{}{}{}{}{}</tr></tbody>",
            text_cell(&name),
            number_cell(&process.process.pid.to_string(), Some(f64::from(process.process.pid))),
            number_cell(&process.samples.to_string(), Some(process.samples as f64)),
            percent(process.samples as f64 / samples as f64),
            number_cell(
                &process.in_syscall_samples.to_string(),
                Some(process.in_syscall_samples as f64)
            )
        );
    }
    out.push_str("</table>\n");
    lines(out, table::more_processes(&processes, shown));
}

/// Rows of hot spots, each with its source line under it when known.
fn hot_spot_rows(out: &mut String, spots: &[crate::model::HotSpot]) {
    let _ = write!(
        out,
        "<table class=\"sortable\">{}",
        head(&[
            ("instruction", false),
            ("samples", true),
            ("share", true),
            ("of function", true)
        ])
    );
    for spot in spots {
        let _ = write!(
            out,
            "<tbody><tr>{}{}{}{}</tr>",
            text_cell(&spot.label()),
            number_cell(&spot.samples.to_string(), Some(spot.samples as f64)),
            percent(spot.share),
            percent(spot.share_of_function)
        );
        if let Some(line) = table::hot_spot_line(spot) {
            out.push_str(&note_row(&line, 4));
        }
        out.push_str("</tbody>\n");
    }
    out.push_str("</table>\n");
}

/// The stack samples: counts, processes, kernel functions, hot spots.
fn profile(out: &mut String, profile: &Profile, top: Option<usize>, scope: Scope) {
    out.push_str("<h2>Stack samples</h2>\n");
    lines(out, table::profile_header(profile, scope));
    text_blocks(out, &table::unknown_user_text(profile));
    if profile.process_roots {
        processes(out, profile, top);
    }
    if profile.in_syscall_samples == 0 {
        return;
    }
    let (shown, hidden) = table::listed_functions(profile, top);
    let _ = write!(
        out,
        "<table class=\"sortable\" id=\"functions\">{}",
        head(&[
            ("kernel function (in mprotect)", false),
            ("self", true),
            ("total", true)
        ])
    );
    for function in shown {
        let _ = write!(
            out,
            "<tbody><tr>{}{}{}</tr></tbody>",
            text_cell(&function.name),
            percent(function.self_share),
            percent(function.total_share)
        );
    }
    out.push_str("</table>\n");
    lines(
        out,
        hidden
            .into_iter()
            .chain(table::few_samples_warning(profile))
            .chain(table::inlined_lines(profile)),
    );
    if profile.hot_spots.is_empty() {
        return;
    }
    lines(out, [table::hot_spots_heading(profile)]);
    let (first, rest) = profile.hot_spots.split_at(HOT_SPOTS_SHOWN.min(profile.hot_spots.len()));
    hot_spot_rows(out, first);
    if !rest.is_empty() {
        let _ = writeln!(out, "<details><summary>{} more hot spots</summary>", rest.len());
        hot_spot_rows(out, rest);
        out.push_str("</details>\n");
    }
}

/// What each BPF program cost per run (`--probe-cost`).
fn program_costs(out: &mut String, report: &Report, costs: &[ProgramCost]) {
    let _ = write!(
        out,
        "<h2>Probe cost</h2>\n<p class=\"line\">The kernel's BPF run-time statistics.</p>\n<table class=\"sortable\">{}",
        head(&[("probe", false), ("program", false), ("runs", true), ("ns/run", true)])
    );
    for cost in costs {
        let per_run = cost.ns_per_run();
        let _ = write!(
            out,
            "<tbody><tr>{}{}{}{}</tr></tbody>",
            text_cell(&cost.probe),
            text_cell(&cost.program),
            number_cell(&cost.runs.to_string(), Some(cost.runs as f64)),
            number_cell(&per_run.map_or("-".to_owned(), |ns| format!("{ns:.0}")), per_run)
        );
    }
    out.push_str("</table>\n");
    lines(out, table::syscall_cost_line(report, costs));
    lines(out, table::backend_cost_lines(report, costs));
}

/// The summary above the plots: the heading line, the targets table and
/// the workload's result.
pub fn summary(report: &Report) -> String {
    let mut out = String::from("<h2>Summary</h2>\n");
    lines(&mut out, [table::heading(report)]);
    targets(&mut out, &table::target_table(report));
    if let Some(workload) = &report.workload {
        lines(&mut out, [workload.result_line()]);
    }
    lines(&mut out, table::calibration_line(report));
    out
}

/// Everything the text table says after the targets, below the plots.
pub fn details(report: &Report, top: Option<usize>) -> String {
    let mut out = String::from("<h2>Distributions</h2>\n");
    text_blocks(&mut out, &table::distributions_text(report));
    per_cpu(&mut out, report);
    if let Some(sampling) = &report.sampling {
        profile(&mut out, sampling, top, report.scope);
    }
    if let Some(costs) = &report.program_costs {
        program_costs(&mut out, report, costs);
    }
    out.push_str("<h2>Lost data</h2>\n");
    lines(
        &mut out,
        std::iter::once(table::lost_data(report)).chain(table::in_flight_line(report)),
    );
    out
}
