//! Plots and report.html of a real run, and `plot DIR` redrawing them from
//! report.json alone.

use std::process::Command;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mprotect-trace"))
}

#[test]
fn a_run_writes_every_plot_and_plot_redraws_them_from_the_report() {
    let dir = std::env::temp_dir().join(format!("mprotect-trace-plots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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
    assert_eq!(html.matches("<img ").count(), names.len());
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "report.html must need no network"
    );

    // Redraw from report.json alone.
    for name in names {
        std::fs::remove_file(dir.join(format!("{name}.png"))).unwrap();
    }
    std::fs::remove_file(dir.join("report.html")).unwrap();
    let output = binary().arg("plot").arg(&dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for name in names {
        assert!(dir.join(format!("{name}.png")).exists(), "plot redrew {name}.png");
    }
    assert!(dir.join("report.html").exists());
}
