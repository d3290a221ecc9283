//! `cargo xtask flame-check`: opens a real run's `flame.svg`, its
//! `report.html` and a comparison's `comparison.html` in headless Chromium,
//! takes screenshots, and checks what the browser built: the flame graph's
//! frames, and pages whose plots clip no label, overlap none and scroll
//! nowhere sideways ([`crate::layout`]).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use crate::command::{cargo, output_of, release_binary, run_checked, workspace_root};
use crate::layout;

/// Frames the mprotect path must show.
const PATH_FRAMES: [&str; 3] = ["do_mprotect_pkey", "change_protection", "change_pte_range"];

/// Chromium for a headless run on a machine with no network and no D-Bus:
/// no background services, a fresh profile, fatal log lines only.
pub fn chromium(profile: &Path) -> Command {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--log-level=3",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

pub fn url(path: &Path) -> Result<String> {
    Ok(format!(
        "file://{}",
        path.canonicalize()
            .with_context(|| format!("{} was not written", path.display()))?
            .display()
    ))
}

/// Returns the number of checks that passed.
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let dir = workspace_root().join("target/flame-check");
    let _ = std::fs::remove_dir_all(&dir);
    run_checked(
        Command::new(release_binary()?)
            .args(["run", "--iterations", "300", "-o"])
            .arg(&dir),
    )?;
    let profile = dir.join("chromium-profile");

    let flame = url(&dir.join("flame.svg"))?;
    let dom = output_of(chromium(&profile).arg("--dump-dom").arg(&flame))?;
    for frame in PATH_FRAMES {
        // inferno gives every frame a <title>name (N samples, P%)</title>.
        ensure!(
            dom.contains(&format!("<title>{frame} (")),
            "the rendered flame graph has no {frame} frame"
        );
    }
    ensure!(
        dom.contains("Search"),
        "the flame graph's search control did not render"
    );
    let screenshot = dir.join("flame.png");
    run_checked(
        chromium(&profile)
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg("--window-size=1400,900")
            .arg(&flame),
    )?;
    let size = std::fs::metadata(&screenshot)
        .context("Chromium wrote no screenshot")?
        .len();
    ensure!(
        size > 10_000,
        "the flame graph screenshot is {size} bytes: nothing was drawn"
    );
    println!("flame-check passed: flame.svg shows {}", PATH_FRAMES.join(" -> "));

    // The default run draws the syscall's latency histogram, the CDF, the
    // pages per call and the timeline.
    let (checked, report_page) = check_page(&profile, &dir.join("report.html"), 4)?;
    println!("report-check passed: report.html {checked}");
    ensure!(
        report_page.pres == 0 && report_page.rows > 0,
        "report.html has {} <pre> boxes and {} table rows: its summary must be HTML tables",
        report_page.pres,
        report_page.rows
    );
    let unprobed = std::fs::read_to_string(dir.join("report.html"))
        .context("reading report.html")?
        .matches("function targets not probed here")
        .count();
    println!(
        "report-check passed: report.html has its summary in {} table rows, no <pre>, {unprobed} line for the unprobed targets",
        report_page.rows
    );

    // A real comparison against a run that differs: its page too.
    let other = dir.join("private");
    run_checked(
        Command::new(release_binary()?)
            .args(["run", "--scenario", "private-dirty-toggle", "--iterations", "300", "-o"])
            .arg(&other),
    )?;
    let comparison = dir.join("compare");
    run_checked(
        Command::new(release_binary()?)
            .arg("compare")
            .arg(&dir)
            .arg(&other)
            .arg("--force")
            .arg("-o")
            .arg(&comparison),
    )?;
    let (checked, _) = check_page(&profile, &comparison.join("comparison.html"), 1)?;
    println!("compare-check passed: comparison.html {checked}");
    Ok(7)
}

/// Opens `page` in Chromium at [`layout::WIDTH`] px: at least `min_plots`
/// plots, none with a clipped or overlapping label, nothing scrolling
/// sideways, a flame graph embedded; and a screenshot beside it. Returns
/// what was checked, and the layout.
fn check_page(profile: &Path, page: &Path, min_plots: u64) -> Result<(String, layout::Layout)> {
    let layout = layout::check(profile, page, min_plots)?;
    let address = url(page)?;
    let dom = output_of(chromium(profile).arg("--dump-dom").arg(&address))?;
    ensure!(
        dom.contains("<object id=\"flame\""),
        "{} has no flame graph",
        page.display()
    );
    let screenshot = page.with_extension("png");
    run_checked(
        chromium(profile)
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg(format!("--window-size={},2400", layout::WIDTH))
            .arg(&address),
    )?;
    let checked = format!(
        "shows {} plots, {} labels, none clipped or overlapping, no horizontal scrolling, {} table rows none wrapped at {} px in Chromium",
        layout.plots,
        layout.texts,
        layout.rows,
        layout::WIDTH
    );
    Ok((checked, layout))
}
