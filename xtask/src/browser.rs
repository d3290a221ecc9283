//! `cargo xtask flame-check`: opens a real run's `flame.svg` and
//! `report.html` in headless Chromium, takes screenshots, and checks what
//! the browser built: the flame graph's frames, every image decoded.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use crate::command::{cargo, output_of, release_binary, run_checked, workspace_root};

/// Frames the mprotect path must show.
const PATH_FRAMES: [&str; 3] = ["do_mprotect_pkey", "change_protection", "change_pte_range"];

/// Chromium for a headless run on a machine with no network and no D-Bus:
/// no background services, a fresh profile, fatal log lines only.
fn chromium(profile: &Path) -> Command {
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

fn url(path: &Path) -> Result<String> {
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

    // report.html: every inline image decoded, as the page's own script
    // counted them in the browser after load.
    let loaded = check_page(&profile, &dir.join("report.html"), 3)?;
    println!("report-check passed: report.html decoded {loaded} images in Chromium");

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
    let loaded = check_page(&profile, &comparison.join("comparison.html"), 1)?;
    println!("compare-check passed: comparison.html decoded {loaded} images in Chromium");
    Ok(6)
}

/// Opens `page` in Chromium: every image decoded (counted by the page's own
/// script after load), at least `min_images`, a flame graph embedded; and a
/// screenshot beside it. Returns "decoded/total".
fn check_page(profile: &Path, page: &Path, min_images: u32) -> Result<String> {
    let address = url(page)?;
    let dom = output_of(chromium(profile).arg("--dump-dom").arg(&address))?;
    let loaded = dom
        .split("data-images-loaded=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .with_context(|| format!("{} did not finish loading in Chromium", page.display()))?
        .to_owned();
    let (decoded, total) = loaded.split_once('/').context("malformed image count")?;
    ensure!(
        decoded == total && total.parse::<u32>().unwrap_or(0) >= min_images,
        "{} decoded {loaded} images",
        page.display()
    );
    ensure!(
        dom.contains("<object id=\"flame\""),
        "{} has no flame graph",
        page.display()
    );
    let screenshot = page.with_extension("png");
    run_checked(
        chromium(profile)
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg("--window-size=1200,2400")
            .arg(&address),
    )?;
    Ok(loaded)
}
