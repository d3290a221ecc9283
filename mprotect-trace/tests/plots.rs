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
    assert!(table.contains("change_protection"), "{table}");
    let plot = binary().arg("plot").arg(&dir).output().unwrap();
    assert!(plot.status.success(), "{}", String::from_utf8_lossy(&plot.stderr));
    assert!(dir.join("report.html").exists());
    assert!(dir.join("latency-mprotect--syscall.png").exists());
}
