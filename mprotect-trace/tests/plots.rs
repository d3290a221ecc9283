//! Plots and report.html of a real run, and `plot DIR` redrawing them from
//! report.json alone.

mod common;

use common::binary;

#[test]
fn a_run_writes_every_plot_and_plot_redraws_them_from_the_report() {
    let dir = common::out_dir("plots", "run");
    let output = binary()
        .args(["run", "--iterations", "20", "--warmup", "3", "--mapping-mb", "8", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let names = ["latency-mprotect--syscall", "latency-cdf", "pages-syscall", "timeline"];
    for name in names {
        let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap_or_else(|_| panic!("{name}.png"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is a PNG");
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}.svg");
    }
    // Titles that stand alone: the exact call count, the workload and kernel.
    let histogram = std::fs::read_to_string(dir.join("latency-mprotect--syscall.svg")).unwrap();
    assert!(
        histogram.contains("mprotect (syscall) latency (tracepoint, 46 calls)"),
        "title with 2 x (20 + 3) calls"
    );
    assert!(histogram.contains("shared-dirty-toggle 8 MiB x 20 iterations (+3 warmup) on "));
    // Every plot says what it shows and how it was measured, under it.
    assert!(
        texts(&histogram).join(" ").contains(
            "Latency of each successful mprotect() call, measured from the sys_enter_mprotect to the \
             sys_exit_mprotect tracepoint: 46 calls, each bar one histogram bucket (1/16 of a power of two wide)."
        ),
        "{:?}",
        texts(&histogram)
    );
    let pages = std::fs::read_to_string(dir.join("pages-syscall.svg")).unwrap();
    assert!(texts(&pages).join(" ").contains(
        "Length of each successful mprotect() call: its len argument in pages (rounded up), read at the \
         sys_enter_mprotect tracepoint; 46 calls, every one 2048 pages."
    ));
    let cdf = std::fs::read_to_string(dir.join("latency-cdf.svg")).unwrap();
    assert!(texts(&cdf).join(" ").contains(
        "Share of calls that took at most each latency: mprotect (syscall), 46 calls measured from the \
         sys_enter_mprotect to the sys_exit_mprotect tracepoint."
    ));
    let timeline = std::fs::read_to_string(dir.join("timeline.svg")).unwrap();
    assert!(texts(&timeline).join(" ").contains(
        "Time per page of each measured iteration, by the workload's own clock (protect: mprotect(PROT_READ); \
         restore: mprotect(PROT_READ|PROT_WRITE); post-touch: touching every page again): 20 iterations."
    ));
    // Latency ticks are whole durations ("2 ms", "500 µs"), each once.
    let ticks: Vec<String> = texts(&histogram)
        .into_iter()
        .filter(|t| [" ns", " µs", " ms", " s"].iter().any(|unit| t.ends_with(unit)))
        .collect();
    assert!(ticks.len() >= 2, "{ticks:?}");
    for tick in &ticks {
        let number = tick.split(' ').next().unwrap();
        assert!(
            number.parse::<f64>().is_ok() && !(number.contains('.') && number.ends_with('0')),
            "{tick} is not written whole"
        );
        assert_eq!(ticks.iter().filter(|t| *t == tick).count(), 1, "{tick} twice");
    }
    // One length: one bar on a linear axis labelled with the length alone.
    let page_texts = texts(&pages);
    assert!(page_texts.contains(&"2048".to_owned()), "{page_texts:?}");
    assert!(
        page_texts.contains(&"2048 pages: 46 calls".to_owned()),
        "{page_texts:?}"
    );
    assert!(
        !page_texts.iter().any(|t| t.ends_with(".0")),
        "integers written as decimals: {page_texts:?}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<figure class=\"plot\"><svg ").count(), names.len());
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "report.html must need no network"
    );

    // Redraw from report.json alone: every file run wrote, byte for byte.
    let written: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.ends_with("report.json"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    for name in ["flame.svg", "stacks.folded", "report.html"] {
        assert!(written.iter().any(|(path, _)| path.ends_with(name)), "run wrote {name}");
    }
    for (path, _) in &written {
        std::fs::remove_file(path).unwrap();
    }
    let output = binary().arg("plot").arg(&dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for (path, bytes) in &written {
        let redrawn = std::fs::read(path).unwrap_or_else(|_| panic!("plot did not redraw {}", path.display()));
        assert!(&redrawn == bytes, "{} differs from what run drew", path.display());
    }
}

/// The text of every `<text>` of a plotters SVG, in drawing order.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|rest| rest.split_once('>').and_then(|(_, body)| body.split_once("</text>")))
        .map(|(text, _)| {
            text.trim()
                .replace("&apos;", "'")
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

/// With two threads the timeline draws one line per thread, each of that
/// thread's measured iterations, as report.json records them.
#[test]
fn a_two_thread_timeline_draws_one_series_per_thread() {
    let dir = common::out_dir("plots", "threads");
    let output = binary()
        .args([
            "run",
            "--threads",
            "2",
            "--iterations",
            "20",
            "--warmup",
            "3",
            "--mapping-mb",
            "8",
            "-o",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = common::report(&dir);
    let workload = report.workload.unwrap();
    assert_eq!(workload.per_iteration_ns.threads, [20, 20]);
    assert_eq!(workload.iterations_by_thread(), Some(vec![0..20, 20..40]));
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).unwrap();
    let texts = texts(&svg);
    assert_eq!(
        texts[0],
        "per-iteration time of each of 2 threads, 3 warmup iterations before"
    );
    let legends: Vec<&String> = texts.iter().filter(|t| t.starts_with("thread ")).collect();
    assert_eq!(legends, ["thread 0", "thread 1"]);
    assert!(
        texts
            .join(" ")
            .contains("2 threads at once, each its own mapping; 20 + 20 iterations.")
    );
    // One polyline per thread, of 20 points each.
    let lines: Vec<usize> = svg
        .split("<polyline")
        .skip(1)
        .map(|line| {
            line.split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .split_whitespace()
                .count()
        })
        .filter(|&points| points > 2)
        .collect();
    assert_eq!(lines, [20, 20]);
}

/// A report written before the library split (schema 1, by the
/// mprotect-trace of git revision 8b50048) still loads: `report` prints
/// it and `plot` redraws it.
#[test]
fn a_schema_1_report_still_reads_and_redraws() {
    let saved = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema-1-command");
    let dir = common::out_dir("plots", "schema1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(saved.join("report.json"), dir.join("report.json")).unwrap();
    let report = binary().arg("report").arg(&dir).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let table = String::from_utf8_lossy(&report.stdout);
    // Its three targets unprobed for one reason are one line.
    assert!(
        table.contains(
            "3 function targets not probed here: fentry refused (EPERM), kprobes not built (no CONFIG_KPROBES);"
        ),
        "{table}"
    );
    let plot = binary().arg("plot").arg(&dir).output().unwrap();
    assert!(plot.status.success(), "{}", String::from_utf8_lossy(&plot.stderr));
    assert!(dir.join("latency-mprotect--syscall.png").exists());
    // report.html: the same one line under an HTML table, no <pre>.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("function targets not probed here").count(), 1, "{html}");
    assert!(html.contains("<table class=\"sortable\" id=\"targets\">"), "{html}");
    assert!(!html.contains("<pre"), "{html}");
}
