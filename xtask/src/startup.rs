//! `cargo xtask bench startup`: mprotect-trace and bpftrace side by side,
//! interleaved, on the same two syscall tracepoints with a latency
//! histogram. A benchmark, not a test: it prints medians and their ratios.
//!
//! Attach time is from exec until the traced command starts: both tools
//! release it only once their probes are attached, and it prints a marker
//! the moment it runs. Total wall time is from exec to exit, peak RSS is
//! the tool's own (its children excluded), by wait4.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::bench::median;
use crate::command::{cargo, release_binary, run_checked, workspace_root};

/// What the traced command prints once it runs.
const MARKER: &str = "mprotect-trace-startup-marker";

/// bpftrace's program: the same two tracepoints, latency in a histogram.
const BPFTRACE_PROGRAM: &str = "tracepoint:syscalls:sys_enter_mprotect { @start[tid] = nsecs; } \
     tracepoint:syscalls:sys_exit_mprotect /@start[tid]/ { @ns = hist(nsecs - @start[tid]); delete(@start[tid]); }";

struct Sample {
    attach_ms: f64,
    total_ms: f64,
    peak_rss_mb: f64,
}

/// One measured run of a tracer: when its traced command printed
/// `marker` (from exec), its wall time, its peak RSS, and the lines it
/// printed on stdout.
pub(crate) struct Measured {
    pub attach_ms: Option<f64>,
    pub total_ms: f64,
    pub peak_rss_mb: f64,
    pub stdout: Vec<String>,
}

/// Runs `command` to its end and measures it; a failure carries its stderr.
pub(crate) fn measure_run(command: &mut Command, marker: &str) -> Result<Measured> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let stderr = child.stderr.take().context("piped stderr")?;
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut attach_ms = None;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if attach_ms.is_none() && line.contains(marker) {
            attach_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        }
        lines.push(line);
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the child is ours and not yet reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!(
            "waiting for {:?}: {}",
            command.get_program(),
            std::io::Error::last_os_error()
        );
    }
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    let exit = std::process::ExitStatus::from_raw(status);
    let stderr = stderr.join().unwrap_or_default();
    if !exit.success() {
        bail!("{:?} failed: {exit}: {}", command.get_program(), stderr.trim());
    }
    Ok(Measured {
        attach_ms,
        total_ms,
        // ru_maxrss is in kB on Linux.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        stdout: lines,
    })
}

/// Runs `command` and measures it; its stdout is read for the marker.
fn measure(command: &mut Command) -> Result<Sample> {
    let measured = measure_run(command, MARKER)?;
    Ok(Sample {
        attach_ms: measured
            .attach_ms
            .with_context(|| format!("{:?} never started the traced command", command.get_program()))?,
        total_ms: measured.total_ms,
        peak_rss_mb: measured.peak_rss_mb,
    })
}

pub fn run(repeats: usize) -> Result<()> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let tool = release_binary()?;
    let out = workspace_root().join("target/bench-startup");
    let echo = ["/bin/echo", MARKER];
    // Each of the three, in turn, every round.
    let mut samples: [Vec<Sample>; 3] = Default::default();
    for repeat in 0..repeats {
        eprintln!("startup: repeat {}/{repeats}", repeat + 1);
        samples[0].push(measure(
            Command::new(&tool)
                .args(["run", "--no-sample", "--replace", "-o"])
                .arg(&out)
                .arg("--")
                .args(echo),
        )?);
        samples[1].push(measure(
            Command::new(&tool)
                .args(["run", "--replace", "-o"])
                .arg(&out)
                .arg("--")
                .args(echo),
        )?);
        samples[2].push(measure(
            Command::new("bpftrace")
                .args(["-e", BPFTRACE_PROGRAM, "-c"])
                .arg(echo.join(" ")),
        )?);
    }
    println!(
        "startup: mprotect-trace `run -- /bin/echo` (without and with stack sampling) against bpftrace on the same two tracepoints with a hist(), {repeats} interleaved runs each (medians)"
    );
    println!(
        "{:<16} {:>12} {:>12} {:>10} {:>14} {:>14}",
        "", "no sampling", "sampling", "bpftrace", "no sampl./bpf", "sampling/bpf"
    );
    for (label, value) in [
        ("attach (ms)", (|s: &Sample| s.attach_ms) as fn(&Sample) -> f64),
        ("total wall (ms)", |s: &Sample| s.total_ms),
        ("peak RSS (MB)", |s: &Sample| s.peak_rss_mb),
    ] {
        let [a, b, c] = [0, 1, 2].map(|i| median(samples[i].iter().map(value).collect()));
        println!(
            "{label:<16} {a:>12.1} {b:>12.1} {c:>10.1} {:>12.2} {:>12.2}",
            a / c,
            b / c
        );
    }
    Ok(())
}
