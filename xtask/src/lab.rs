//! `cargo xtask lab-check`: `mprotect-trace lab` on Debian's 6.12 and 7.3
//! kernels under instruction-counting TCG, three interleaved repeats,
//! twice: each kernel's median is reported with its spread, the two labs
//! agree within 1 %, the comparison names the functions that carry the
//! difference, and kernels that cannot boot are refused in one line each
//! while the others run. The second lab has both kernels' `-dbg` vmlinux:
//! change_pte_range, which 6.12 inlines and 7.3 calls, is one row with
//! samples on both sides (without debug info 6.12 has none of its own).
//! Then one boot with two NUMA nodes, and a 64 kB-page ppc64le kernel
//! against a 4 kB x86 one.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use mprotect_trace::vm::{Arch, KernelImage, kernel};

use crate::command::{cargo, output_of, release_binary, run_checked, workspace_root};

const KERNELS: [&str; 2] = ["debian:6.12", "debian:7.3"];
/// The guests' run: small enough for about 15 s a boot under TCG; no
/// function probe, so no probe's cost is in the times compared; sampled
/// often enough (about 700 samples a run) that each side's functions have
/// samples of their own.
const RUN: &str = "--mapping-mb 16 --iterations 60 --sample-hz 9999 --backend none";
/// The two labs' medians may differ by this much (relative).
const AGREEMENT: f64 = 0.01;

/// One lab: its exit status, its summary (lab.json) and its stderr.
fn lab(
    dir: &Path,
    extra_kernels: &[String],
    extra_args: &[String],
) -> Result<(std::process::ExitStatus, Value, String)> {
    let _ = std::fs::remove_dir_all(dir);
    let mut command = Command::new(release_binary()?);
    command.arg("lab");
    for kernel in KERNELS
        .iter()
        .map(|k| k.to_string())
        .chain(extra_kernels.iter().cloned())
    {
        command.args(["--kernel", &kernel]);
    }
    let cache = workspace_root().join("target/vm/kernels");
    let output = command
        .args(["--accel", "tcg-icount", "--repeat", "3", "--run", RUN])
        .args(["--arm64-tracer", "/nonexistent/mprotect-trace"])
        .arg("--cache")
        .arg(&cache)
        .args(extra_args)
        .arg("-o")
        .arg(dir)
        .output()
        .context("starting mprotect-trace lab")?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let text = std::fs::read_to_string(dir.join("lab.txt"))
        .with_context(|| format!("the lab wrote no lab.txt; its stderr:\n{stderr}"))?;
    println!("{text}");
    let summary = serde_json::from_slice(&std::fs::read(dir.join("lab.json"))?)?;
    Ok((output.status, summary, stderr))
}

/// Each kernel's median iteration ns/page, after checking its runs.
fn medians(summary: &Value) -> Result<Vec<(String, f64)>> {
    let kernels = summary["kernels"].as_array().context("no kernels")?;
    ensure!(
        kernels.len() == KERNELS.len(),
        "{} kernels ran, not {}",
        kernels.len(),
        KERNELS.len()
    );
    kernels
        .iter()
        .map(|kernel| {
            let label = kernel["label"].as_str().unwrap_or_default().to_owned();
            ensure!(kernel["accel"] == "tcg-icount", "{label}: accel {}", kernel["accel"]);
            let smp = &kernel["by_smp"][0];
            ensure!(
                smp["smp"] == 1 && smp["runs"] == 3 && smp["failed_runs"] == 0,
                "{label}: {smp}"
            );
            // One state for every run, the scenario's expected one.
            let audits = smp["audits"].as_array().context("no audits")?;
            ensure!(
                audits.len() == 1 && audits[0]["expected_match_ratio"] == 100,
                "{label}: state audit {audits:?}"
            );
            let spread = &smp["iteration_ns_per_page"];
            ensure!(spread["runs"].as_array().map(Vec::len) == Some(3), "{label}: {spread}");
            ensure!(smp["relative_spread"].is_number(), "{label}: no spread");
            Ok((label, spread["median"].as_f64().context("no median")?))
        })
        .collect()
}

/// Returns the number of checks that passed.
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let root = workspace_root().join("target/lab-check");
    std::fs::create_dir_all(&root)?;
    let junk = root.join("not-a-kernel");
    std::fs::write(&junk, vec![0u8; 8192])?;
    let refused_kernels = vec![
        "/nonexistent/bzImage".to_owned(),
        junk.display().to_string(),
        "debian:7.3:arm64".to_owned(),
    ];
    let started = std::time::Instant::now();
    let (status, first, stderr) = lab(&root.join("first"), &refused_kernels, &[])?;
    // Refused kernels make the lab incomplete (exit 1), the others ran.
    ensure!(status.code() == Some(1), "the lab with refused kernels exited {status}");
    let expected_refusals = [
        "error: --kernel /nonexistent/bzImage: kernel image /nonexistent/bzImage does not exist: give a bzImage, an arm64 Image or a ppc64le vmlinux file".to_owned(),
        format!(
            "error: --kernel {0}: kernel image {0} is neither an x86_64 bzImage, an arm64 Image nor a ppc64le vmlinux: QEMU cannot boot it",
            junk.display()
        ),
        "error: --kernel debian:7.3:arm64: --arm64-tracer /nonexistent/mprotect-trace does not exist".to_owned(),
    ];
    for refusal in &expected_refusals {
        ensure!(
            stderr.lines().any(|line| line == refusal),
            "no line {refusal:?} in the lab's stderr:\n{stderr}"
        );
    }
    ensure!(
        first["refused"].as_array().map(Vec::len) == Some(3),
        "refused: {}",
        first["refused"]
    );
    let first_medians = medians(&first)?;

    // The functions that carry the difference are named, change_pte_range among them.
    let delta = &first["comparisons"][0]["against_baseline"][0];
    let functions: Vec<&str> = delta["functions"]
        .as_array()
        .context("no functions")?
        .iter()
        .filter_map(|f| f[0].as_str())
        .collect();
    ensure!(
        functions.contains(&"change_pte_range"),
        "functions named: {functions:?}"
    );
    let comparison = root.join("first/comparison-smp-1/comparison.html");
    ensure!(comparison.is_file(), "no {}", comparison.display());
    let first_time = started.elapsed();

    // The second lab has both kernels' debug info: 6.12 inlines
    // change_pte_range into change_protection, 7.3 calls it.
    let (first_split, _) = change_pte_range_samples(&first)?;
    let vmlinuxes = debug_vmlinuxes()?;
    let vmlinux: Vec<String> = vmlinuxes
        .iter()
        .flat_map(|path| ["--vmlinux".to_owned(), path.display().to_string()])
        .collect();
    let (status, second, _) = lab(&root.join("second"), &[], &vmlinux)?;
    ensure!(status.success(), "the second lab exited {status}");
    let second_medians = medians(&second)?;
    for ((label, a), (_, b)) in first_medians.iter().zip(&second_medians) {
        let difference = (b / a - 1.0).abs();
        if difference > AGREEMENT {
            bail!(
                "{label}: the two labs' medians differ by {:.2} % ({a:.2} vs {b:.2})",
                difference * 100.0
            );
        }
        println!(
            "lab-check: {label}: {a:.2} and {b:.2} ns/page in the two labs ({:.3} % apart)",
            difference * 100.0
        );
    }
    // The comparison lists the ten largest changes only: change_pte_range
    // may be among them (then in one row) or not; its samples are counted
    // in each side's runs symbolized with that kernel's vmlinux.
    let (_, rows) = change_pte_range_samples(&second)?;
    let joined = symbolized_change_pte_range(&root.join("second"), &vmlinuxes)?;
    ensure!(
        first_split.0 == 0 && first_split.1 > 0,
        "without debug info, 6.12's change_pte_range should have no samples of its own (it is inlined): {first_split:?}"
    );
    ensure!(
        joined.0 > 0 && joined.1 > 0 && rows <= 1,
        "with both kernels' debug info, change_pte_range should have samples on both sides and at most one row in the comparison: {joined:?}, {rows} rows"
    );
    println!(
        "lab-check: change_pte_range (6.12 inlines it, 7.3 calls it): samples {first_split:?} without debug info, {joined:?} with both -dbg vmlinuxes ({rows} row of the comparison's ten largest changes)"
    );
    println!(
        "lab-check passed: two kernels x 3 repeats under tcg-icount, twice; the first lab took {:.0} s, both {:.0} s",
        first_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let nodes = numa_nodes(&root.join("numa"))?;
    println!("lab-check passed: lab --numa-nodes 2: {nodes}");
    let pages = cross_arch(&root.join("cross-arch"))?;
    println!("lab-check passed: a 64 kB ppc64le kernel against a 4 kB x86 one: {pages}");
    let kvm = kvm(&root.join("kvm"))?;
    println!("lab-check passed: --accel auto and kvm: {kvm}");
    Ok(7 + first_medians.len() as u64)
}

/// One boot each of Debian's newest served 7.x ppc64el kernel (64 kB
/// pages) and 7.3 x86: nothing is refused, each side's audit has its own
/// base pages, and the comparison says what "per page" means on each.
fn cross_arch(dir: &Path) -> Result<String> {
    crate::vm::tracer(Arch::Ppc64le)?;
    quick_lab(
        dir,
        &[
            "--kernel",
            "debian:7:ppc64el",
            "--kernel",
            "debian:7.3",
            "--repeat",
            "1",
        ],
    )?;
    let summary: Value = serde_json::from_slice(&std::fs::read(dir.join("lab.json"))?)?;
    let audits: Vec<(String, u64)> = summary["kernels"]
        .as_array()
        .context("no kernels")?
        .iter()
        .map(|kernel| {
            let audit = &kernel["by_smp"][0]["audits"][0];
            (
                kernel["arch"].as_str().unwrap_or_default().to_owned(),
                audit["kernel_page_kb"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    ensure!(
        audits == [("ppc64el".to_owned(), 64), ("amd64".to_owned(), 4)],
        "the kernels' (arch, base page kB): {audits:?}"
    );
    let note = summary["comparisons"][0]["against_baseline"][0]["base_pages"]
        .as_str()
        .context("the comparison says nothing of the base pages")?;
    ensure!(
        note.starts_with("base pages differ: debian-7-ppc64el 64 kB, debian-7.3 4 kB: every per-page figure is per 64 kB page on debian-7-ppc64el and per 4 kB page on debian-7.3"),
        "the comparison's note: {note}"
    );
    let text = std::fs::read_to_string(dir.join("lab.txt"))?;
    ensure!(text.contains(note), "lab.txt does not say {note:?}:\n{text}");
    Ok(note.to_owned())
}

/// A lab of single boots under plain TCG with a small untraced run,
/// `args` naming its kernels and shape; it must succeed.
fn quick_lab(dir: &Path, args: &[&str]) -> Result<()> {
    let output = small_lab(dir, "tcg", args)?;
    ensure!(
        output.status.success(),
        "lab {} exited {}: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A lab of `args` under `accel` with a small untraced run: its output.
fn small_lab(dir: &Path, accel: &str, args: &[&str]) -> Result<std::process::Output> {
    let _ = std::fs::remove_dir_all(dir);
    Command::new(release_binary()?)
        .arg("lab")
        .args(args)
        .args([
            "--accel",
            accel,
            "--run",
            "--mapping-mb 4 --iterations 5 --backend none --no-sample",
        ])
        .arg("--cache")
        .arg(workspace_root().join("target/vm/kernels"))
        .arg("-o")
        .arg(dir)
        .output()
        .context("starting mprotect-trace lab")
}

/// `--accel auto` asks KVM to boot each kernel itself: where it can, the
/// lab runs under KVM; where it cannot (the development VM's nested KVM
/// stops 7.3's decompressor with "KVM internal error"), the lab says why
/// and runs under TCG. There `--accel kvm` fails the boot at once, not
/// at the 30-minute boot timeout, naming --accel tcg, and not retried.
fn kvm(dir: &Path) -> Result<String> {
    const KERNEL: [&str; 4] = ["--kernel", "debian:7.3", "--repeat", "1"];
    let auto = small_lab(&dir.join("auto"), "auto", &KERNEL)?;
    let stderr = String::from_utf8_lossy(&auto.stderr);
    ensure!(
        auto.status.success(),
        "lab --accel auto exited {}: {stderr}",
        auto.status
    );
    let summary: Value = serde_json::from_slice(&std::fs::read(dir.join("auto/lab.json"))?)?;
    let accel = summary["kernels"][0]["accel"].as_str().unwrap_or_default();
    let fell_back = stderr
        .lines()
        .find(|line| line.starts_with("note: debian-7.3: KVM cannot boot it here ("));
    match (accel, fell_back) {
        ("kvm", None) => return Ok("KVM boots 7.3 here: the lab ran under KVM".to_owned()),
        ("tcg", Some(note)) if note.ends_with("); TCG instead: times are emulated") => {
            if !note.contains("KVM internal error") {
                return Ok(format!("{note} (no KVM here to fail a boot with --accel kvm)"));
            }
        }
        _ => bail!("lab --accel auto ran under {accel:?} and said {fell_back:?}:\n{stderr}"),
    }
    let started = std::time::Instant::now();
    let forced = small_lab(&dir.join("kvm"), "kvm", &KERNEL)?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&forced.stderr);
    ensure!(
        forced.status.code() == Some(1),
        "lab --accel kvm exited {}: {stderr}",
        forced.status
    );
    let failed = "lab: debian-7.3 (1 CPUs) failed: KVM stopped the guest (QEMU: \"KVM internal error\", an instruction this host's KVM cannot run): boot it with --accel tcg; its console is ";
    ensure!(
        stderr.lines().filter(|line| line.starts_with(failed)).count() == 1
            && !stderr.contains("(attempt 2)")
            && took < std::time::Duration::from_secs(120),
        "lab --accel kvm should fail its one boot at once ({} s):\n{stderr}",
        took.as_secs()
    );
    Ok(format!(
        "auto: {}; --accel kvm failed its boot in {} s, not retried",
        fell_back.unwrap_or_default(),
        took.as_secs()
    ))
}

/// One boot of 7.3 with `--numa-nodes 2`: the guest sees two nodes (the
/// lab checks it) and its report records them.
fn numa_nodes(dir: &Path) -> Result<String> {
    quick_lab(
        dir,
        &[
            "--kernel",
            "debian:7.3",
            "--numa-nodes",
            "2",
            "--smp",
            "2",
            "--repeat",
            "1",
        ],
    )?;
    let report = dir.join("debian-7.3/smp-2/run-01/report.json");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).with_context(|| format!("reading {}", report.display()))?)?;
    let nodes = &report["machine"]["numa_nodes"];
    ensure!(
        nodes.as_u64() == Some(2),
        "the guest's report records {nodes} NUMA nodes, not 2"
    );
    Ok(format!(
        "the guest saw 2 nodes and its report.json records machine.numa_nodes {nodes} ({})",
        report["kernel_release"].as_str().unwrap_or("?")
    ))
}

/// `--vmlinux` of both kernels: their `-dbg` packages' DWARF vmlinux.
fn debug_vmlinuxes() -> Result<Vec<std::path::PathBuf>> {
    let cache = workspace_root().join("target/vm/kernels");
    KERNELS
        .iter()
        .map(|spec| {
            let series = spec.trim_start_matches("debian:");
            let image = KernelImage::debian(series, Arch::X86_64, &cache)?;
            kernel::debian_debug_vmlinux(&image, &cache)
        })
        .collect()
}

/// change_pte_range's self samples (its inlined copies' too) in each
/// kernel's runs of a lab, symbolized by `report --vmlinux` with that
/// kernel's debug vmlinux (in KERNELS' order).
fn symbolized_change_pte_range(lab_dir: &Path, vmlinuxes: &[std::path::PathBuf]) -> Result<(u64, u64)> {
    let mut samples = [0u64; 2];
    for ((spec, vmlinux), total) in KERNELS.iter().zip(vmlinuxes).zip(&mut samples) {
        let runs = lab_dir.join(spec.replace(':', "-")).join("smp-1");
        let mut dirs: Vec<_> = std::fs::read_dir(&runs)
            .with_context(|| format!("reading {}", runs.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|dir| dir.join("report.json").is_file())
            .collect();
        dirs.sort();
        ensure!(!dirs.is_empty(), "no runs in {}", runs.display());
        for dir in dirs {
            let report: Value = serde_json::from_str(&output_of(
                Command::new(release_binary()?)
                    .arg("report")
                    .arg(&dir)
                    .arg("--vmlinux")
                    .arg(vmlinux)
                    .args(["--format", "json"]),
            )?)
            .with_context(|| format!("the report of {}", dir.display()))?;
            *total += report["sampling"]["functions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| {
                    f["name"]
                        .as_str()
                        .is_some_and(|name| name.trim_end_matches(" (inlined)") == "change_pte_range")
                })
                .filter_map(|f| f["self_samples"].as_u64())
                .sum::<u64>();
        }
    }
    Ok((samples[0], samples[1]))
}

/// change_pte_range's self samples on each side of a lab's comparison,
/// and how many rows name it (with or without " (inlined)").
fn change_pte_range_samples(summary: &Value) -> Result<((u64, u64), usize)> {
    let dir = summary["comparisons"][0]["dir"]
        .as_str()
        .context("no comparison directory")?;
    let comparison: Value = serde_json::from_slice(&std::fs::read(Path::new(dir).join("comparison.json"))?)?;
    let sampled = comparison["against_baseline"][0]["sampled"]
        .as_array()
        .context("no sampled functions in comparison.json")?;
    let rows: Vec<&Value> = sampled
        .iter()
        .filter(|f| {
            f["name"]
                .as_str()
                .is_some_and(|n| n.trim_end_matches(" (inlined)") == "change_pte_range")
        })
        .collect();
    let samples = |side: &str| rows.iter().filter_map(|f| f[side].as_u64()).sum::<u64>();
    Ok(((samples("a_self_samples"), samples("b_self_samples")), rows.len()))
}
