//! `cargo xtask bench guest`: what tracing costs on a kernel where function
//! probes attach. Debian's 7.x x86 kernel boots under TCG with instruction
//! counting (time is instructions executed: deterministic, not wall time);
//! inside it this same binary (`xtask guest-bench`) runs mprotect-trace,
//! bpftrace and the untraced workload interleaved, round after round, and
//! prints one JSON line per run. The host prints medians and ratios.
//!
//! Per-call costs are the kernel's own BPF run-time statistics
//! (`kernel.bpf_stats_enabled`), read while the tracer's programs are still
//! attached, for both tools alike.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use mprotect_trace::vm::initramfs::GUEST_TRACER;
use mprotect_trace::vm::{Accel, Arch, GuestScript, Initramfs, KernelImage, Machine, kernel};
use serde::{Deserialize, Serialize};

use crate::bench::median;
use crate::command::workspace_root;

/// Where this binary sits in the guest.
const GUEST_DRIVER: &str = "/bench-driver";
const GUEST_SITES: &str = "/inline-sites.json";
/// Where our runs write their reports.
const GUEST_REPORT_DIR: &str = "/tmp/bench";
const BPFTRACE: &str = "/usr/bin/bpftrace";
/// What a traced command prints the moment it runs.
const MARKER: &str = "mprotect-trace-bench-marker";
/// The line the workload wrapper prints.
const WORKLOAD_LINE: &str = "bench-workload ";
/// The line the driver prints per run.
const SAMPLE_LINE: &str = "bench-sample ";
/// Programs loaded before this run have lower ids (ids only grow).
const FIRST_ID: &str = "BENCH_FIRST_PROGRAM_ID";
const WORKLOAD: &str = "--iterations 10 --warmup 2 --mapping-mb 4";

/// bpftrace's side: the same function's latency into a hist(), by its
/// fentry (kfunc) or its kprobe.
const BPFTRACE_KFUNC: &str = "kfunc:change_pte_range { @start[tid] = nsecs; } \
     kretfunc:change_pte_range /@start[tid]/ { @ns = hist(nsecs - @start[tid]); delete(@start[tid]); }";
const BPFTRACE_KPROBE: &str = "kprobe:change_pte_range { @start[tid] = nsecs; } \
     kretprobe:change_pte_range /@start[tid]/ { @ns = hist(nsecs - @start[tid]); delete(@start[tid]); }";

/// One thing measured each round.
struct Case {
    name: &'static str,
    /// The case of the other tool doing the same work, for ratios.
    peer: Option<&'static str>,
    /// What traces it.
    tracer: Tracer,
    /// Startup (a traced `echo`) or the workload.
    workload: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tracer {
    None,
    /// `mprotect-trace run ARGS -- CMD`.
    Ours(&'static str),
    /// `bpftrace -e PROGRAM -c CMD`.
    Bpftrace(&'static str),
}

const DEFAULT_TARGETS: &str = "--no-sample --inline-sites /inline-sites.json";
const ONE_FENTRY: &str = "--no-sample --no-syscall --only change_pte_range --backend fentry";
const ONE_KPROBE: &str = "--no-sample --no-syscall --only change_pte_range --backend kprobe";
const CALL_SITES: &str = "--no-sample --no-syscall --only modify_prot_commit_ptes --backend call-site";
const INLINED: &str =
    "--no-sample --no-syscall --only modify_prot_start_ptes --backend inlined --inline-sites /inline-sites.json";

const CASES: &[Case] = &[
    Case {
        name: "startup: ours, default targets",
        peer: Some("startup: bpftrace, kfunc"),
        tracer: Tracer::Ours(DEFAULT_TARGETS),
        workload: false,
    },
    Case {
        name: "startup: ours, one fentry",
        peer: Some("startup: bpftrace, kfunc"),
        tracer: Tracer::Ours(ONE_FENTRY),
        workload: false,
    },
    Case {
        name: "startup: bpftrace, kfunc",
        peer: None,
        tracer: Tracer::Bpftrace(BPFTRACE_KFUNC),
        workload: false,
    },
    Case {
        name: "untraced",
        peer: None,
        tracer: Tracer::None,
        workload: true,
    },
    Case {
        name: "ours, fentry",
        peer: Some("bpftrace, kfunc"),
        tracer: Tracer::Ours(ONE_FENTRY),
        workload: true,
    },
    Case {
        name: "bpftrace, kfunc",
        peer: None,
        tracer: Tracer::Bpftrace(BPFTRACE_KFUNC),
        workload: true,
    },
    Case {
        name: "ours, kprobe",
        peer: Some("bpftrace, kprobe"),
        tracer: Tracer::Ours(ONE_KPROBE),
        workload: true,
    },
    Case {
        name: "bpftrace, kprobe",
        peer: None,
        tracer: Tracer::Bpftrace(BPFTRACE_KPROBE),
        workload: true,
    },
    Case {
        name: "ours, call-site",
        peer: None,
        tracer: Tracer::Ours(CALL_SITES),
        workload: true,
    },
    Case {
        name: "ours, inlined",
        peer: None,
        tracer: Tracer::Ours(INLINED),
        workload: true,
    },
    Case {
        name: "ours, default targets",
        peer: None,
        tracer: Tracer::Ours(DEFAULT_TARGETS),
        workload: true,
    },
];

/// One BPF program's statistics at the end of a traced workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ProgramRuns {
    name: String,
    runs: u64,
    ns: u64,
}

/// What the workload wrapper saw: the workload's figure, how long it ran,
/// the programs that ran meanwhile, and the kprobes' state.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WorkloadRun {
    iteration_ns_per_page: f64,
    elapsed_ns: u64,
    programs: Vec<ProgramRuns>,
    /// /sys/kernel/debug/kprobes/list while traced.
    kprobes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sample {
    case: String,
    round: usize,
    attach_ms: Option<f64>,
    peak_rss_mb: f64,
    workload: Option<WorkloadRun>,
    /// Ours: report.json's `timings.startup`, (phase, ms).
    #[serde(default)]
    phases: Vec<(String, f64)>,
}

/// Host side: boots the guest, runs every case `rounds` times, prints the tables.
pub fn run(rounds: usize) -> Result<()> {
    let vm_dir = workspace_root().join("target/vm");
    let cache = vm_dir.join("kernels");
    let work = vm_dir.join("bench-guest");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let kernel = KernelImage::debian("7", Arch::X86_64, &cache)?;
    let busybox = kernel::busybox(Arch::X86_64, &cache)?;
    let tracer = crate::vm::tracer(Arch::X86_64)?;
    let sites = crate::vm_debuginfo::inline_sites(&kernel, &cache, &work)?;
    let driver = std::env::current_exe().context("this binary's path")?;
    let bpftrace =
        which::which("bpftrace").context("bpftrace (Debian package bpftrace; cargo xtask setup installs it)")?;
    let files: [(&Path, &str); 3] = [(&sites, GUEST_SITES), (&driver, GUEST_DRIVER), (&bpftrace, BPFTRACE)];
    let mut script = GuestScript::new();
    script
        .shell("mount -t tracefs nodev /sys/kernel/tracing")
        .shell("mount -t debugfs nodev /sys/kernel/debug")
        .shell("sysctl -qw kernel.bpf_stats_enabled=1")
        .shell(&format!(
            "echo ===BEGIN bench===\n{GUEST_DRIVER} guest-bench --rounds {rounds}\necho ===END bench==="
        ));
    let initramfs = Initramfs::build_with(&work, &busybox, &tracer, &script.finish(), &files)?;
    let machine = Machine {
        accel: Accel::TcgIcount,
        ..Machine::default()
    };
    eprintln!(
        "bench guest: booting {} under TCG with instruction counting, {rounds} rounds",
        kernel.source
    );
    let started = Instant::now();
    let (console, _) =
        machine.boot_retrying(&kernel, &initramfs, 1, |n| work.join(format!("console-failed-{n}.log")))?;
    let log = work.join("console.log");
    std::fs::write(&log, &console.text).with_context(|| format!("writing {}", log.display()))?;
    let section = console
        .section("bench")
        .with_context(|| format!("the guest printed no results (console: {})", log.display()))?;
    let samples: Vec<Sample> = section
        .lines()
        .filter_map(|line| line.strip_prefix(SAMPLE_LINE))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a sample line")?;
    let release = console
        .text
        .lines()
        .find_map(|line| line.strip_prefix("bench-kernel "))
        .unwrap_or("?")
        .to_owned();
    if samples.len() != rounds * CASES.len() {
        bail!(
            "the guest printed {} of {} samples (console: {})",
            samples.len(),
            rounds * CASES.len(),
            log.display()
        );
    }
    print_tables(&samples, rounds, &release, started.elapsed().as_secs());
    Ok(())
}

fn print_tables(samples: &[Sample], rounds: usize, release: &str, seconds: u64) {
    fn of<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = &'a Sample> {
        samples.iter().filter(move |s| s.case == name)
    }
    let med =
        |name: &str, value: &dyn Fn(&Sample) -> Option<f64>| median(of(samples, name).filter_map(value).collect());
    println!(
        "bench guest: Debian {release} x86_64 under TCG icount (1 ns = 1 instruction), {rounds} interleaved rounds, medians; {seconds} s in all\n"
    );
    println!(
        "startup: exec to the traced command running, and the tracer's peak RSS; the first round runs with no\n\
         cache of kernel facts (our first run on a kernel), later rounds with it (medians)"
    );
    println!(
        "{:<24} {:>12} {:>12} {:>8} {:>10} {:>10} {:>8}",
        "", "1st run ms", "later ms", "x bpftr.", "1st RSS MB", "later RSS", "x bpftr."
    );
    let later = |name: &str, get: &dyn Fn(&Sample) -> f64| {
        median(
            of(samples, name)
                .filter(|s| s.round > 0 || rounds == 1)
                .map(get)
                .collect(),
        )
    };
    let first =
        |name: &str, get: &dyn Fn(&Sample) -> f64| of(samples, name).find(|s| s.round == 0).map_or(f64::NAN, get);
    let attach = |s: &Sample| s.attach_ms.unwrap_or(f64::NAN);
    let rss = |s: &Sample| s.peak_rss_mb;
    for case in CASES.iter().filter(|c| !c.workload) {
        let ratio = |get: &dyn Fn(&Sample) -> f64| {
            case.peer.map_or_else(
                || "-".to_owned(),
                |peer| format!("{:.2}", later(case.name, get) / later(peer, get)),
            )
        };
        println!(
            "{:<24} {:>12.0} {:>12.0} {:>8} {:>10.1} {:>10.1} {:>8}",
            case.name.trim_start_matches("startup: "),
            first(case.name, &attach),
            later(case.name, &attach),
            ratio(&attach),
            first(case.name, &rss),
            later(case.name, &rss),
            ratio(&rss),
        );
    }
    for case in CASES
        .iter()
        .filter(|c| !c.workload && matches!(c.tracer, Tracer::Ours(_)))
    {
        let mut names: Vec<&str> = Vec::new();
        for (phase, _) in of(samples, case.name).flat_map(|s| &s.phases) {
            if !names.contains(&phase.as_str()) {
                names.push(phase);
            }
        }
        let phases: Vec<String> = names
            .iter()
            .filter_map(|phase| {
                let ms = |s: &Sample| s.phases.iter().find(|(p, _)| p == phase).map_or(0.0, |(_, ms)| *ms);
                let (first, later) = (first(case.name, &ms), later(case.name, &ms));
                (first >= 1.0 || later >= 1.0).then(|| format!("{phase} {first:.0}/{later:.0}"))
            })
            .collect();
        println!(
            "  {} (ms, 1st/later): {}",
            case.name.trim_start_matches("startup: "),
            phases.join(", ")
        );
    }
    println!("\nper probed call (kernel BPF statistics: entry and exit programs together) and the workload");
    println!(
        "{:<24} {:>9} {:>9} {:>8} {:>10} {:>11} {:>8} {:>10}",
        "", "calls", "ns/call", "x bpftr.", "share", "iter ns/pg", "x untr.", "x bpftr."
    );
    let untraced = med("untraced", &|s| s.workload.as_ref().map(|w| w.iteration_ns_per_page));
    for case in CASES.iter().filter(|c| c.workload) {
        let cost = |name: &str| {
            let costs: Vec<(f64, f64, f64)> = of(samples, name)
                .filter_map(|s| s.workload.as_ref().map(call_cost))
                .collect();
            (
                median(costs.iter().map(|c| c.0).collect()),
                median(costs.iter().map(|c| c.1).collect()),
                median(costs.iter().map(|c| c.2).collect()),
            )
        };
        let (calls, per_call, share) = cost(case.name);
        let own_cost = per_call;
        let iteration = med(case.name, &|s| s.workload.as_ref().map(|w| w.iteration_ns_per_page));
        let peer = |value: f64, of_peer: f64| {
            case.peer
                .map_or_else(|| "-".to_owned(), |_| format!("{:.2}", value / of_peer))
        };
        let peer_cost = case.peer.map_or(f64::NAN, |p| cost(p).1);
        let peer_iteration = case.peer.map_or(f64::NAN, |p| {
            med(p, &|s| s.workload.as_ref().map(|w| w.iteration_ns_per_page))
        });
        let (calls, per_call, share) = if case.tracer == Tracer::None {
            ("-".to_owned(), "-".to_owned(), "-".to_owned())
        } else {
            (
                format!("{calls:.0}"),
                format!("{per_call:.0}"),
                format!("{:.1} %", share * 100.0),
            )
        };
        println!(
            "{:<24} {calls:>9} {per_call:>9} {:>8} {share:>10} {iteration:>11.1} {:>8.3} {:>10}",
            case.name,
            peer(own_cost, peer_cost),
            iteration / untraced,
            peer(iteration, peer_iteration),
        );
    }
    println!(
        "\nour kprobes in /sys/kernel/debug/kprobes/list while traced (all rounds): [FTRACE] at a function's entry, [OPTIMIZED] a jump, else a trap"
    );
    for case in CASES
        .iter()
        .filter(|c| c.workload && matches!(c.tracer, Tracer::Ours(_)))
    {
        let lines: Vec<&String> = of(samples, case.name)
            .filter_map(|s| s.workload.as_ref())
            .flat_map(|w| &w.kprobes)
            .collect();
        if !lines.is_empty() {
            let marked = |mark: &str| lines.iter().filter(|line| line.contains(mark)).count();
            let (ftrace, optimized) = (marked("[FTRACE]"), marked("[OPTIMIZED]"));
            println!(
                "{:<24} {:>4} kprobes: {ftrace:>3} [FTRACE], {optimized:>3} [OPTIMIZED], {:>3} traps",
                case.name,
                lines.len(),
                lines.len() - ftrace - optimized
            );
        }
    }
}

/// (probed calls, ns per probed call, share of the workload's time): the
/// calls are the entry programs' runs; the cost is every program's time.
fn call_cost(run: &WorkloadRun) -> (f64, f64, f64) {
    // fexit_slot_N, kretprobe_slot_N; bpftrace's kretfunc_*, kretprobe_*.
    let is_exit = |name: &str| name.contains("exit") || name.starts_with("kret");
    let calls: u64 = run.programs.iter().filter(|p| !is_exit(&p.name)).map(|p| p.runs).sum();
    let ns: u64 = run.programs.iter().map(|p| p.ns).sum();
    (
        calls as f64,
        ns as f64 / calls.max(1) as f64,
        ns as f64 / run.elapsed_ns.max(1) as f64,
    )
}

/// Guest side (`xtask guest-bench`): every case, round after round.
pub fn drive(rounds: usize) -> Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").context("reading the kernel release")?;
    println!("bench-kernel {}", release.trim());
    let workload = format!("{GUEST_DRIVER} guest-bench-workload -- {GUEST_TRACER} workload {WORKLOAD}");
    let echo = format!("/bin/echo {MARKER}");
    // The kernel's own first-use costs (its BTF parsed for BPF, the JIT
    // warmed) are paid before any measured run, by neither tool.
    let status = Command::new(BPFTRACE)
        .args(["-e", BPFTRACE_KFUNC, "-c", "/bin/true"])
        .stdout(Stdio::null())
        .status()
        .context("running bpftrace once before measuring")?;
    if !status.success() {
        bail!("bpftrace failed before measuring: {status}");
    }
    for round in 0..rounds {
        for (index, case) in CASES.iter().enumerate() {
            let traced = if case.workload { &workload } else { &echo };
            let mut command = match case.tracer {
                Tracer::None => shell(traced),
                Tracer::Ours(args) => {
                    let mut command = Command::new(GUEST_TRACER);
                    // Each case its own cache of kernel facts: its first
                    // round is a first run on this kernel.
                    command
                        .env("XDG_CACHE_HOME", format!("/tmp/cache/{index}"))
                        .arg("run")
                        .args(args.split_whitespace())
                        .args(["--replace", "-o", GUEST_REPORT_DIR, "--"])
                        .args(traced.split_whitespace());
                    command
                }
                Tracer::Bpftrace(program) => {
                    let mut command = Command::new(BPFTRACE);
                    command.args(["-e", program, "-c", traced]);
                    command
                }
            };
            command.env(FIRST_ID, next_program_id()?.to_string());
            let sample =
                measure(case, round, &mut command).with_context(|| format!("{} (round {})", case.name, round + 1))?;
            println!("{SAMPLE_LINE}{}", serde_json::to_string(&sample)?);
        }
    }
    Ok(())
}

fn shell(command: &str) -> Command {
    let mut sh = Command::new("/bin/sh");
    sh.args(["-c", command]);
    sh
}

/// One more than the highest id of a loaded BPF program.
fn next_program_id() -> Result<u32> {
    let mut highest = 0;
    for program in aya::programs::loaded_programs() {
        highest = highest.max(program.context("listing BPF programs")?.id());
    }
    Ok(highest + 1)
}

/// Runs `command`: attach time from exec to the marker, wall time, the
/// tracer's peak RSS (wait4), and the workload wrapper's line.
fn measure(case: &Case, round: usize, command: &mut Command) -> Result<Sample> {
    let measured = crate::startup::measure_run(command, MARKER)?;
    let workload = measured
        .stdout
        .iter()
        .find_map(|line| line.strip_prefix(WORKLOAD_LINE))
        .map(serde_json::from_str::<WorkloadRun>)
        .transpose()
        .context("the workload line")?;
    if case.workload && workload.is_none() {
        bail!("no workload line in {:?}", measured.stdout);
    }
    let (attach_ms, peak_rss_mb) = (measured.attach_ms, measured.peak_rss_mb);
    let phases = if matches!(case.tracer, Tracer::Ours(_)) {
        startup_phases()?
    } else {
        Vec::new()
    };
    Ok(Sample {
        phases,
        case: case.name.to_owned(),
        round,
        attach_ms: if case.workload {
            None
        } else {
            Some(attach_ms.context("the traced command never ran")?)
        },
        peak_rss_mb,
        workload,
    })
}

/// The phases of our start, from the report the run just wrote.
fn startup_phases() -> Result<Vec<(String, f64)>> {
    let path = format!("{GUEST_REPORT_DIR}/report.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let report: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    Ok(report["timings"]["startup"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|phase| Some((phase["phase"].as_str()?.to_owned(), phase["ms"].as_f64()?)))
        .collect())
}

/// Guest side (`xtask guest-bench-workload -- CMD`): runs the workload,
/// then, while the tracer is still attached, reads what its programs
/// cost, and prints one line.
pub fn measure_workload(command: &[String]) -> Result<()> {
    let first_id: u32 = std::env::var(FIRST_ID)
        .ok()
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("{FIRST_ID} is not set"))?;
    let (program, args) = command.split_first().context("no workload command")?;
    let started = Instant::now();
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    let elapsed_ns = u64::try_from(started.elapsed().as_nanos()).context("elapsed time overflows")?;
    if !output.status.success() {
        bail!("{program} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let fields = crate::bench::result_fields(&String::from_utf8_lossy(&output.stdout))?;
    let iteration_ns_per_page = *fields
        .get("iteration_ns_per_page")
        .context("no iteration_ns_per_page in the result line")?;
    let mut programs = BTreeMap::new();
    for program in aya::programs::loaded_programs() {
        let program = program.context("listing BPF programs")?;
        if program.id() < first_id || program.run_count() == 0 {
            continue;
        }
        let name = program.name_as_str().unwrap_or("?").to_owned();
        programs.insert(
            program.id(),
            ProgramRuns {
                name,
                runs: program.run_count(),
                ns: u64::try_from(program.run_time().as_nanos()).context("run time overflows")?,
            },
        );
    }
    let kprobes = std::fs::read_to_string("/sys/kernel/debug/kprobes/list")
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let run = WorkloadRun {
        iteration_ns_per_page,
        elapsed_ns,
        programs: programs.into_values().collect(),
        kprobes,
    };
    println!("{WORKLOAD_LINE}{}", serde_json::to_string(&run)?);
    Ok(())
}
