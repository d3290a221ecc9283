//! `run` on this machine's real kernel (root): exact syscall-level counts
//! for the traced workload, and every function target reported with its
//! backend or the reason it has none.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

mod common;

fn out_dir(name: &str) -> PathBuf {
    common::out_dir("test", name)
}

fn run(args: &[&str]) -> Output {
    common::binary()
        .arg("run")
        .args(args)
        .output()
        .expect("running mprotect-trace run")
}

/// Runs `run` with `args` into a fresh directory and returns its report.
fn traced(name: &str, args: &[&str]) -> Value {
    traced_in(&out_dir(name), args)
}

/// Runs `run` with `args` into `dir` and returns its report.
fn traced_in(dir: &std::path::Path, args: &[&str]) -> Value {
    // -o goes first: everything after `--` belongs to a traced command.
    let output = run(&[&["-o", dir.to_str().unwrap()], args].concat());
    assert!(
        output.status.success(),
        "run {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = std::fs::read(dir.join("report.json")).expect("report.json written");
    serde_json::from_slice(&report).expect("report.json is JSON")
}

fn histogram_total(stats: &Value) -> u64 {
    stats["histogram"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[2].as_u64().unwrap())
        .sum()
}

#[test]
fn traced_workload_yields_exactly_two_syscalls_per_iteration() {
    const N: u64 = 30;
    const W: u64 = 4;
    let report = traced("exact", &["--iterations", "30", "--warmup", "4", "--mapping-mb", "8"]);
    let calls = 2 * (N + W);
    assert_eq!(report["workload"]["mprotect_calls"], calls);
    assert_eq!(report["lost"]["syscall_enter"], calls);
    assert_eq!(report["lost"]["syscall_exit"], calls);
    assert_eq!(report["lost"]["exit_without_entry"], 0);
    assert_eq!(report["syscall"]["latency"]["calls"], calls);
    assert_eq!(histogram_total(&report["syscall"]["latency_ns"]), calls);
    // Every call covers the whole 8 MiB mapping: 2048 pages.
    let pages = &report["syscall"]["pages_per_call"];
    assert_eq!(
        (pages["count"].as_u64(), pages["min"].as_u64(), pages["max"].as_u64()),
        (Some(calls), Some(2048), Some(2048))
    );
    let flags: Vec<(String, u64)> = serde_json::from_value(report["syscall"]["prot_flags"].clone()).unwrap();
    let count = |name: &str| flags.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
    assert_eq!(count("PROT_READ"), Some(N + W));
    assert_eq!(count("PROT_READ|PROT_WRITE"), Some(N + W));
    assert_eq!(report["partial"], false);
    assert_eq!(report["stop_reason"], "target exited");
}

#[test]
fn exact_counts_hold_with_two_threads() {
    let report = traced(
        "threads",
        &[
            "--iterations",
            "20",
            "--warmup",
            "2",
            "--mapping-mb",
            "4",
            "--threads",
            "2",
        ],
    );
    let calls = 2 * (20 + 2) * 2;
    assert_eq!(report["workload"]["mprotect_calls"], calls);
    assert_eq!(report["lost"]["syscall_enter"], calls);
    assert_eq!(report["lost"]["syscall_exit"], calls);
    assert_eq!(report["syscall"]["latency"]["calls"], calls);
}

#[test]
fn every_function_target_is_reported_with_its_backend_or_reason() {
    let dir = out_dir("targets");
    let report = traced_in(
        &dir,
        &[
            "--iterations",
            "3",
            "--warmup",
            "0",
            "--mapping-mb",
            "4",
            "--probe",
            "prot_commit_flush_ptes",
        ],
    );
    let targets = report["targets"].as_array().unwrap();
    let names: Vec<&str> = targets.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "change_protection",
            "change_pte_range",
            "modify_prot_start_ptes",
            "mprotect_fixup",
            "modify_prot_commit_ptes",
            "folio_pte_batch",
            "prot_commit_flush_ptes"
        ]
    );
    let caps = &report["capabilities"];
    let function_probes = caps["fentry"]["available"] == true || caps["kprobes"]["available"] == true;
    for target in targets {
        let reason = target["reason"].as_str().unwrap();
        match target["backend"].as_str().unwrap() {
            "none" => {
                assert!(reason.starts_with("no function probe: "), "{reason}");
                assert!(target["latency"].is_null());
            }
            backend => {
                assert!(function_probes, "{backend} used but doctor says no function probes");
                assert!(target["latency"]["calls"].as_u64().is_some());
            }
        }
        if !function_probes && target["in_kallsyms"] == true {
            assert!(
                reason.contains(&format!("fentry {}", caps["fentry"]["summary"].as_str().unwrap())),
                "{reason}"
            );
        }
    }
    // Targets unprobed for one same reason are one line of the table.
    let mut reasons: Vec<&str> = targets
        .iter()
        .filter(|t| t["backend"] == "none")
        .map(|t| t["reason"].as_str().unwrap())
        .collect();
    reasons.sort_unstable();
    let table = common::binary()
        .arg("report")
        .arg(&dir)
        .output()
        .expect("running mprotect-trace report");
    let table = String::from_utf8_lossy(&table.stdout);
    for group in reasons.chunk_by(|a, b| a == b).filter(|g| g.len() > 1) {
        let reason = group[0].trim_start_matches("no function probe: ");
        let folded = format!("{} function targets not probed here: {reason};", group.len());
        assert_eq!(
            table.lines().filter(|l| l.starts_with(&folded)).count(),
            1,
            "no folded line {folded:?} in:\n{table}"
        );
        assert!(
            !table.lines().any(|l| l.ends_with(group[0])),
            "a target of the folded reason still has its own row:\n{table}"
        );
    }
    if reasons.is_empty() {
        println!("SKIP folded unprobed targets: every target has a probe on this kernel");
    }
}

#[test]
fn forcing_a_backend_that_cannot_work_is_a_clear_error_and_writes_nothing() {
    let doctor = common::binary().args(["doctor", "--json"]).output().unwrap();
    let caps: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    for backend in ["fentry", "kprobe"] {
        let key = if backend == "fentry" { "fentry" } else { "kprobes" };
        if caps["capabilities"][key]["available"] == true {
            common::skip(
                &format!("forcing_{backend}"),
                &format!("{backend} works on this kernel, so forcing it is no error to check"),
            );
            continue;
        }
        let dir = out_dir(&format!("forced-{backend}"));
        let output = run(&["--backend", backend, "--iterations", "2", "-o", dir.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: --backend {backend} cannot work here: ")),
            "{stderr}"
        );
        assert!(stderr.trim_end().ends_with("(try --backend auto)"), "{stderr}");
        assert!(!dir.join("report.json").exists());
    }
}

#[test]
fn bad_scope_is_refused_before_tracing() {
    let output = run(&["-p", "999999999"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: -p 999999999: no such process"
    );
    let output = run(&["--", "no-such-command-here"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: command not found: no-such-command-here (not in PATH)"
    );
}

#[test]
fn a_traced_command_is_counted_from_its_first_call() {
    // The same program twice, two more iterations the second time: its
    // start-up calls are the same, so the counts differ by exactly 2 x 2.
    let exe = env!("CARGO_BIN_EXE_mprotect-trace");
    let calls = |iterations: &str| {
        let report = traced(
            &format!("cmd-{iterations}"),
            &[
                "--",
                exe,
                "workload",
                "--mapping-mb",
                "4",
                "--iterations",
                iterations,
                "--warmup",
                "0",
            ],
        );
        assert_eq!(report["scope"], "command");
        assert_eq!(report["lost"]["syscall_enter"], report["lost"]["syscall_exit"]);
        report["lost"]["syscall_enter"].as_u64().unwrap()
    };
    let (five, seven) = (calls("5"), calls("7"));
    assert!(five >= 10, "{five}");
    assert_eq!(seven - five, 4);
}

/// The run lasts 0.5 s by its deadline, not by an iteration count: on a
/// fast machine 3000 iterations ended inside the first 0.2 s.
#[test]
fn interval_lines_count_calls_since_the_last_interval() {
    let dir = out_dir("interval");
    let output = run(&[
        "-o",
        dir.to_str().unwrap(),
        "--interval",
        "0.1",
        "--no-sample",
        "--duration",
        "0.5",
        "--iterations",
        "100000000",
        "--warmup",
        "0",
        "--mapping-mb",
        "4",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let intervals = stdout.lines().filter(|l| l.starts_with("--- ")).count();
    assert!(intervals >= 2, "no interval lines in:\n{stdout}");
    let per_interval: Vec<u64> = stdout
        .lines()
        .filter(|l| l.starts_with("mprotect (syscall) ") && l.contains(" calls  mean "))
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(per_interval.len(), intervals);
    // Deltas, not running totals: together at most the run's calls.
    let report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let calls = report["syscall"]["latency"]["calls"].as_u64().unwrap();
    let sum: u64 = per_interval.iter().sum();
    assert!(sum > 0 && sum <= calls, "{per_interval:?} of {calls}");
    // report.json keeps the same series: one sample per printed interval,
    // the same calls, at rising times.
    let series = report["interval_series"].as_array().expect("interval_series");
    let saved: Vec<u64> = series
        .iter()
        .map(|sample| {
            assert_eq!(sample["targets"][0]["name"], "mprotect (syscall)");
            sample["targets"][0]["calls"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(saved, per_interval);
    let times: Vec<f64> = series.iter().map(|s| s["elapsed_s"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
}

#[test]
fn probe_cost_reports_the_kernels_count_of_every_program_run() {
    const CALLS: u64 = 2 * (20 + 2);
    let report = traced(
        "probe-cost",
        &[
            "--probe-cost",
            "--iterations",
            "20",
            "--warmup",
            "2",
            "--mapping-mb",
            "4",
        ],
    );
    let costs = report["program_costs"]
        .as_array()
        .expect("program_costs with --probe-cost");
    let cost = |probe: &str| {
        costs
            .iter()
            .find(|c| c["probe"] == probe)
            .unwrap_or_else(|| panic!("no {probe} in {costs:?}"))
    };
    for (probe, program) in [
        ("syscalls:sys_enter_mprotect", "sys_enter_mprotect"),
        ("syscalls:sys_exit_mprotect", "sys_exit_mprotect"),
        ("cpu-clock sampler", "sample_stack"),
    ] {
        assert_eq!(cost(probe)["program"], program);
    }
    // The programs run on every mprotect in the system, the workload's
    // (all counted by the filter) and any other process's.
    for probe in ["syscalls:sys_enter_mprotect", "syscalls:sys_exit_mprotect"] {
        let runs = cost(probe)["runs"].as_u64().unwrap();
        assert!(runs >= CALLS, "{probe}: {runs} runs for {CALLS} traced calls");
        assert!(cost(probe)["total_ns"].as_u64().unwrap() > 0);
    }
    assert_eq!(report["syscall"]["latency"]["calls"], CALLS);
    // Without the flag the kernel's statistics stay off and unreported.
    let plain = traced(
        "no-probe-cost",
        &["--iterations", "2", "--mapping-mb", "4", "--no-sample"],
    );
    assert!(plain["program_costs"].is_null());
}

/// A run owns its directory: a second run into it is refused and leaves
/// the first whole; `--replace` replaces it, none of its files left over.
#[test]
fn a_run_owns_its_directory() {
    let dir = out_dir("owned");
    let small = ["--mapping-mb", "8", "--iterations", "20"];
    let first = run(&[&["-o", dir.to_str().unwrap()], &small[..]].concat());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(dir.join("flame.svg").is_file() && dir.join("stacks.folded").is_file());

    let again = [
        &[
            "-o",
            dir.to_str().unwrap(),
            "--no-sample",
            "--scenario",
            "private-dirty-toggle",
        ],
        &small[..],
    ]
    .concat();
    let refused = run(&again);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim_end(),
        format!(
            "error: {} already holds a run: choose a new -o DIR, or pass --replace to replace that run",
            dir.display()
        )
    );
    let kept = common::report(&dir);
    assert_eq!(
        kept.workload.map(|w| w.scenario).as_deref(),
        Some("shared-dirty-toggle")
    );

    let replaced = run(&[&again[..], &["--replace"]].concat());
    assert!(
        replaced.status.success(),
        "{}",
        String::from_utf8_lossy(&replaced.stderr)
    );
    let report = common::report(&dir);
    assert_eq!(
        report.workload.map(|w| w.scenario).as_deref(),
        Some("private-dirty-toggle")
    );
    for stale in ["flame.svg", "stacks.folded"] {
        assert!(!dir.join(stale).exists(), "{stale} of the first run survived");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        !html.contains("<object id=\"flame\""),
        "report.html embeds a flame graph"
    );
}

/// A sampling rate that costs much of every CPU is warned about (100 kHz
/// made the workload 25 times slower).
#[test]
fn a_costly_sampling_rate_is_warned_about() {
    let dir = out_dir("costly-rate");
    let output = run(&[
        "-o",
        dir.to_str().unwrap(),
        "--sample-hz",
        "20000",
        "--mapping-mb",
        "4",
        "--iterations",
        "5",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "warning: --sample-hz 20000: at ~5 us a sample, sampling takes about 10 % of every CPU and slows what it measures; 999 is the default"
        ),
        "{stderr}"
    );
}

/// With `-a` the calls go on while the maps are read; every figure of the
/// report still comes from one snapshot (the programs are paused first),
/// and calls caught in flight are stated.
#[test]
fn a_report_of_a_busy_system_is_one_consistent_snapshot() {
    // A one-page toggle at full speed beside a system-wide run.
    let mut load = common::binary()
        .args(["workload", "--scenario", "page-toggle", "--iterations", "1000000000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the load");
    let report = traced("busy", &["-a", "--duration", "1", "--no-sample"]);
    load.kill().expect("stopping the load");
    load.wait().expect("reaping the load");
    let syscall = &report["syscall"];
    let entries = report["lost"]["syscall_enter"].as_u64().unwrap();
    let exits = report["lost"]["syscall_exit"].as_u64().unwrap();
    let in_flight = report["lost"]["in_flight"].as_u64().expect("calls in flight stated");
    let failed: u64 = syscall["failed"]
        .as_array()
        .expect("failed calls listed")
        .iter()
        .map(|f| f["count"].as_u64().unwrap())
        .sum();
    let completed = syscall["latency_ns"]["count"].as_u64().unwrap();
    let prot: u64 = syscall["prot_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .sum();
    assert!(entries > 100_000, "the load made only {entries} calls");
    assert_eq!(prot, completed, "prot flags of the successful calls");
    assert_eq!(syscall["pages_per_call"]["count"].as_u64(), Some(completed));
    let unpaired = report["lost"]["exit_without_entry"].as_u64().unwrap();
    assert_eq!(exits, completed + failed + unpaired);
    assert_eq!(
        entries,
        completed + failed + in_flight + report["lost"]["entry_overwritten"].as_u64().unwrap()
    );
}

/// Failed mprotect calls are counted by errno, apart from the successful
/// calls' latency, lengths and flags.
#[test]
fn failed_calls_are_separated_by_errno() {
    let dir = out_dir("einval");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("einval.c");
    std::fs::write(
        &source,
        "#include <sys/mman.h>\n\
         int main(void) {\n\
           char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n\
           for (int i = 0; i < 1000; i++) mprotect(p + 1, 4096, PROT_READ); /* unaligned: EINVAL */\n\
           for (int i = 0; i < 10; i++) mprotect(p, 8192, PROT_READ);\n\
           return 0;\n\
         }\n",
    )
    .unwrap();
    let program = dir.join("einval");
    let built = std::process::Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .status()
        .expect("cc");
    assert!(built.success());
    let report = traced("einval-run", &["--no-sample", "--", program.to_str().unwrap()]);
    let syscall = &report["syscall"];
    assert_eq!(
        syscall["failed"],
        serde_json::json!([{"errno": 22, "name": "EINVAL", "count": 1000}])
    );
    // The loader's own calls succeed too; ours are 10 of two pages each.
    let completed = syscall["latency_ns"]["count"].as_u64().unwrap();
    assert!(completed >= 10, "{completed}");
    assert_eq!(syscall["pages_per_call"]["count"].as_u64(), Some(completed));
    let prot: u64 = syscall["prot_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .sum();
    assert_eq!(prot, completed);
    assert_eq!(report["lost"]["syscall_enter"].as_u64(), Some(completed + 1000));
}

/// A workload of far more iterations than 0.3 s allows, stopped by `--duration`.
fn deadline_run(name: &str) -> (PathBuf, Output) {
    let dir = out_dir(name);
    let output = run(&[
        "-o",
        dir.to_str().unwrap(),
        "--duration",
        "0.3",
        "--iterations",
        "100000000",
        "--mapping-mb",
        "8",
        "--no-sample",
    ]);
    (dir, output)
}

/// `--duration` with the built-in workload: at the deadline the workload
/// finishes its iteration and reports what it did; exit 0, every count exact.
#[test]
fn a_deadline_stops_the_workload_cleanly_with_what_it_did() {
    let (dir, output) = deadline_run("deadline");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("mprotect-trace: shared-dirty-toggle 8 MiB"),
        "{stdout}"
    );
    let result = stdout
        .lines()
        .find(|l| l.starts_with("result "))
        .expect("a result line");
    assert!(result.contains(" stopped_early=1 "), "{result}");
    let report = common::report(&dir);
    assert_eq!(report.stop_reason, mprotect_trace::model::StopReason::Duration);
    let workload = report.workload.expect("the workload's result");
    assert!(workload.stopped_early && workload.measured_iterations > 0);
    assert_eq!(
        workload.per_iteration_ns.protect.len() as u64,
        workload.measured_iterations
    );
    // Two calls per iteration done, warmup included, and nothing else.
    assert_eq!(
        report.syscall.latency.calls,
        2 * (workload.measured_iterations + workload.warmup)
    );
    assert_eq!(workload.mprotect_calls, report.syscall.latency.calls);
}

/// The syscall row's calls/iter of a printed table.
fn syscall_calls_per_iteration(table: &str) -> String {
    let row = table
        .lines()
        .find(|line| line.starts_with("mprotect (syscall) "))
        .unwrap_or_else(|| panic!("no syscall row in:\n{table}"));
    // "mprotect (syscall)", the backend, the calls, then calls/iter.
    row.split_whitespace().nth(4).unwrap_or_default().to_owned()
}

/// After a deadline, calls/iter divides by the iterations actually run
/// (warmup included), not the planned ones: two toggles an iteration,
/// in the run's table and in `report` of it alike.
#[test]
fn calls_per_iteration_after_a_deadline_divide_by_the_iterations_run() {
    let (dir, output) = deadline_run("deadline-per-iteration");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let workload = common::report(&dir).workload.expect("the workload's result");
    assert!(workload.stopped_early, "the deadline did not stop the workload");
    assert_eq!(workload.iterations_done, workload.measured_iterations + workload.warmup);
    assert_eq!(
        syscall_calls_per_iteration(&String::from_utf8_lossy(&output.stdout)),
        "2.00"
    );
    let report = common::binary().arg("report").arg(&dir).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    assert_eq!(
        syscall_calls_per_iteration(&String::from_utf8_lossy(&report.stdout)),
        "2.00"
    );
}

/// `run 2>&1 | head`: the one reader of stdout and stderr is gone. The
/// run still writes its whole directory and says so by its exit code (1),
/// as with only stdout piped; it does not panic on its first stderr line.
#[test]
fn a_closed_pipe_on_stdout_and_stderr_still_leaves_a_whole_run() {
    let dir = out_dir("closed-pipe");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let status = common::binary()
        .args([
            "run",
            "-o",
            dir.to_str().unwrap(),
            "--iterations",
            "20",
            "--mapping-mb",
            "4",
        ])
        .stdout(writer.try_clone().expect("a second end"))
        .stderr(writer)
        .status()
        .expect("running mprotect-trace run");
    assert_eq!(status.code(), Some(1), "{status:?}");
    for file in [
        "report.json",
        "report.html",
        "flame.svg",
        "profile.pb.gz",
        "stacks.folded",
    ] {
        assert!(dir.join(file).is_file(), "{file} not written");
    }
}

/// `-p PID`: the table's first line names the process traced.
#[test]
fn a_traced_pid_is_named_in_the_header() {
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("starting sleep");
    let pid = sleeper.id().to_string();
    let dir = out_dir("pid-header");
    let output = run(&[
        "-o",
        dir.to_str().unwrap(),
        "-p",
        &pid,
        "--duration",
        "0.3",
        "--no-sample",
    ]);
    sleeper.kill().expect("stopping sleep");
    sleeper.wait().expect("reaping sleep");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!("mprotect-trace: pid {pid} (sleep) on ")),
        "{stdout}"
    );
}

/// `--backend none`: no function probe (so no probe's cost in the times),
/// the syscall still counted exactly; with a `--probe`, refused.
#[test]
fn backend_none_attaches_no_function_probe() {
    let dir = out_dir("backend-none");
    let output = run(&[
        "-o",
        dir.to_str().unwrap(),
        "--backend",
        "none",
        "--iterations",
        "10",
        "--mapping-mb",
        "4",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = mprotect_trace::model::Report::load(&dir).unwrap();
    assert!(!report.targets.is_empty());
    for target in &report.targets {
        assert_eq!(target.attachment.backend.label(), "none", "{}", target.attachment.name);
        assert_eq!(target.attachment.reason, "no function probe: --backend none");
    }
    assert_eq!(report.syscall.latency.calls, 30);
    assert_eq!(report.settings.as_ref().unwrap().backend, "none");
    let refused = run(&["--backend", "none", "--probe", "flush_tlb_mm_range"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: --probe flush_tlb_mm_range needs a function probe, and --backend none attaches none: drop one of them\n"
    );
}
