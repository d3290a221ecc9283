//! `cargo xtask flame-check`: opens a real run's `flame.svg` in headless
//! Chromium, takes a screenshot, and checks the frames in the DOM the
//! browser built (after the flame graph's own script ran).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

use crate::command::{cargo, output_of, release_binary, run_checked, workspace_root};

/// Frames the mprotect path must show.
const PATH_FRAMES: [&str; 3] = ["do_mprotect_pkey", "change_protection", "change_pte_range"];

/// Chromium flags for a headless run on a machine with no network: no
/// background services, a fresh profile.
fn chromium(profile: &Path) -> Command {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
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
    let svg = dir.join("flame.svg");
    let url = format!(
        "file://{}",
        svg.canonicalize().context("flame.svg was not written")?.display()
    );
    let profile = dir.join("chromium-profile");

    let dom = output_of(chromium(&profile).arg("--dump-dom").arg(&url))?;
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
            .arg(&url),
    )?;
    let size = std::fs::metadata(&screenshot)
        .context("Chromium wrote no screenshot")?
        .len();
    ensure!(size > 10_000, "the screenshot is {size} bytes: nothing was drawn");
    println!(
        "flame-check passed: {} shows {}; screenshot {}",
        svg.display(),
        PATH_FRAMES.join(" -> "),
        screenshot.display()
    );
    Ok(2)
}
