//! The command line as a user meets it, without the kernel: output into a
//! closed pipe, help texts, numbers that cannot be.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Stdio;

const SAVED_RUN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schema-1-command");

/// `report DIR | head -4`: the reader is gone before the table is
/// written. Like any Unix tool, it ends by SIGPIPE, silently.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let mut child = common::binary()
        .args(["report", SAVED_RUN])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mprotect-trace report");
    // Close the only reader before the child writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("waiting for report");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{:?}", output.status);
}

#[test]
fn run_help_says_what_json_prints() {
    let output = common::binary().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("--json")
            && help.contains("Print the whole report as JSON instead of the table and the `result` line"),
        "{help}"
    );
}

/// The one-line error of a refused command line.
fn refused(args: &[&str]) -> String {
    let output = common::binary().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// A negative number is a number that cannot be, not "use `-- -5`"
/// (which would make -5 the command to trace).
#[test]
fn negative_numbers_get_a_proper_error() {
    assert_eq!(
        refused(&["run", "--duration", "-5"]),
        "error: --duration must be more than 0 seconds (got -5)"
    );
    assert_eq!(
        refused(&["run", "--interval", "-0.5"]),
        "error: --interval must be more than 0 seconds (got -0.5)"
    );
    // Whole-number flags are refused by the parser (usage errors exit 2),
    // each told the least it takes: a count of iterations or samples is
    // at least 1, a CPU number may be 0.
    for (args, flag, least) in [
        (
            &["workload", "--iterations", "-5"][..],
            "'--iterations <ITERATIONS>'",
            1,
        ),
        (&["run", "--sample-hz", "-1"][..], "'--sample-hz <HZ>'", 1),
        (&["run", "--cpu", "1.5"][..], "'--cpu <CPU>'", 0),
        (&["run", "--warmup", "-1"][..], "'--warmup <WARMUP>'", 0),
    ] {
        let output = common::binary().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let value = args[2];
        assert_eq!(
            stderr.lines().next(),
            Some(
                format!("error: invalid value '{value}' for {flag}: must be a whole number, {least} or more").as_str()
            ),
            "{stderr}"
        );
    }
    // What the parser calls the least is what the check after it takes.
    assert_eq!(
        refused(&["workload", "--iterations", "0"]),
        "error: --iterations must be at least 1 (got 0)"
    );
    assert!(Path::new(SAVED_RUN).is_dir());
}

/// The saved run with a profile of `functions` (name, self and total
/// samples) out of `in_syscall` samples inside mprotect, and no calls.
fn saved_run_with_profile(name: &str, in_syscall: u64, functions: &[(&str, u64, u64)]) -> std::path::PathBuf {
    let mut report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(SAVED_RUN).join("report.json")).unwrap()).unwrap();
    let functions: Vec<serde_json::Value> = functions
        .iter()
        .map(|&(name, own, total)| {
            serde_json::json!({"name": name, "self_samples": own, "total_samples": total,
                "self_share": own as f64 / in_syscall as f64, "total_share": total as f64 / in_syscall as f64})
        })
        .collect();
    report["sampling"] = serde_json::json!({"hz": 999, "cpus": 2, "counters": {"samples": in_syscall,
        "samples_other_tasks": 0, "kernel_stack_collisions": 0, "kernel_stack_failed": 0, "user_stack_lost": 0,
        "sample_map_full": 0}, "in_syscall_samples": in_syscall, "functions": functions,
        "inlined_targets": [], "stacks": []});
    let empty = serde_json::json!({"count": 0, "total": 0, "min": null, "max": null, "histogram": {"buckets": []}});
    report["syscall"]["latency_ns"] = empty;
    report["syscall"]["latency"] = serde_json::json!({"calls": 0, "total_ns": 0});
    let dir = common::out_dir("cli", name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), serde_json::to_vec(&report).unwrap()).unwrap();
    dir
}

fn report_table(args: &[&str]) -> String {
    let output = common::binary().arg("report").args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Rows of the kernel-function table: every line after its header that
/// starts with a function name and a percentage.
fn function_rows(table: &str) -> Vec<String> {
    table
        .lines()
        .skip_while(|line| !line.starts_with("kernel function (in mprotect)"))
        .skip(1)
        .take_while(|line| line.split_whitespace().nth(1).is_some_and(|share| share.ends_with('%')))
        .map(|line| line.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_function_table_says_what_it_hides() {
    // 16 functions at 1 % or more, then 12 below 0.5 %, of 10000 samples.
    let mut functions: Vec<(String, u64, u64)> = (0..16).map(|i| (format!("big_{i:02}"), 400 - i * 10, 600)).collect();
    functions.extend((0..12).map(|i| (format!("small_{i:02}"), 10 + i, 20)));
    let borrowed: Vec<(&str, u64, u64)> = functions.iter().map(|(n, s, t)| (n.as_str(), *s, *t)).collect();
    let dir = saved_run_with_profile("top", 10_000, &borrowed);

    let table = report_table(&[dir.to_str().unwrap()]);
    assert_eq!(function_rows(&table).len(), 16, "{table}");
    assert!(table.contains("12 more below 0.5 % (--top 28 shows them)"), "{table}");
    let top = report_table(&[dir.to_str().unwrap(), "--top", "5"]);
    assert_eq!(
        function_rows(&top),
        ["big_00", "big_01", "big_02", "big_03", "big_04"],
        "{top}"
    );
    assert!(
        top.contains("23 more: 11 of 0.5 % or more, 12 below 0.5 % (--top 28 shows them)"),
        "{top}"
    );
    // No calls: no share, and certainly not 100 %.
    let syscall = table.lines().find(|l| l.starts_with("mprotect (syscall)")).unwrap();
    assert!(!syscall.contains('%'), "{syscall}");
    assert!(!table.contains("warning: only"), "{table}");
}

#[test]
fn shares_from_few_samples_carry_a_warning() {
    let dir = saved_run_with_profile("few", 40, &[("change_pte_range", 30, 40), ("vm_normal_page", 10, 10)]);
    let table = report_table(&[dir.to_str().unwrap()]);
    assert!(
        table.contains("warning: only 40 samples inside mprotect(): a share is uncertain by up to ±7.9 % (one standard error); sample longer or at a higher --sample-hz"),
        "{table}"
    );
}

/// `plot` of a run in a directory it may not write: one line naming the
/// file, the reason and what to do (as nobody, from root's copy).
#[test]
fn plot_where_it_cannot_write_says_so_in_one_line() {
    if unsafe { libc::geteuid() } != 0 {
        common::skip(
            "plot_where_it_cannot_write_says_so_in_one_line",
            "needs root to run plot as nobody",
        );
        return;
    }
    let dir = common::out_dir("cli", "read-only");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(Path::new(SAVED_RUN).join("report.json"), dir.join("report.json")).unwrap();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_mprotect-trace"))
        .arg("plot")
        .arg(&dir)
        .output()
        .expect("setpriv");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(first, 1, "plot wrote something");
    let stderr = stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The first file it tries: the syscall's latency plot (no samples here).
    assert_eq!(
        stderr,
        format!(
            "error: cannot write {}: Permission denied (os error 13) (plot redraws into the run's own directory: copy the run somewhere you can write)",
            dir.join("latency-mprotect--syscall.png").display()
        )
    );
}

/// Percentiles are bucket midpoints kept within the min and max, in a
/// report written before they were (the saved run's p90 of 20.99 us is
/// above its max, 20.96 us).
#[test]
fn a_saved_runs_percentiles_stay_within_its_extremes() {
    let output = common::binary()
        .args(["report", SAVED_RUN, "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let latency = &report["syscall"]["latency"];
    assert_eq!(latency["max_ns"], 20959);
    for key in ["p90_ns", "p99_ns", "p999_ns"] {
        assert_eq!(latency[key].as_f64(), Some(20959.0), "{key}");
    }
}

/// Counts whose calls do not fit in 64 bits are refused in one line, not
/// wrapped into a handful of iterations reported as a success.
#[test]
fn counts_beyond_64_bits_are_refused() {
    let max = u64::MAX.to_string();
    let half = (u64::MAX / 2).to_string();
    for (args, iterations, warmup, rounds) in [
        (vec!["workload", "--iterations", &max], max.as_str(), "5", "1"),
        (vec!["workload", "--warmup", &max], "200", max.as_str(), "1"),
        (
            vec!["workload", "--iterations", &half, "--rounds", "3"],
            half.as_str(),
            "5",
            "3",
        ),
        (
            vec!["run", "--iterations", &max, "--duration", "1"],
            max.as_str(),
            "5",
            "1",
        ),
    ] {
        let args = [&args[..], &["--mapping-mb", "1"]].concat();
        assert_eq!(
            refused(&args),
            format!(
                "error: --iterations {iterations} and --warmup {warmup} in {rounds} round(s) of 1 thread(s) make more mprotect calls than 64 bits count: lower them (--duration ends a long run early)"
            ),
            "{args:?}"
        );
    }
}

/// A saved run with `edit` applied to its report.json, in a fresh directory.
fn saved_run_edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let mut report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(SAVED_RUN).join("report.json")).unwrap()).unwrap();
    edit(&mut report);
    let dir = common::out_dir("cli", name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), serde_json::to_vec(&report).unwrap()).unwrap();
    dir
}

/// A run without a call has no pages to list and no percentiles to
/// qualify; a run of milliseconds says its milliseconds.
#[test]
fn a_table_leaves_out_what_it_has_nothing_for() {
    let short = report_table(&[SAVED_RUN]);
    let header = short.lines().next().unwrap_or_default();
    assert!(header.contains(" x86_64, 2.06 ms, stopped: "), "{header}");
    assert!(short.contains("\npages per call:\n  mprotect len "), "{short}");
    let idle = saved_run_edited("idle", |report| {
        let empty = serde_json::json!({"count": 0, "total": 0, "min": null, "max": null, "histogram": {"buckets": []}});
        report["syscall"]["latency_ns"] = empty.clone();
        report["syscall"]["pages_per_call"] = empty;
        report["syscall"]["latency"] = serde_json::json!({"calls": 0, "total_ns": 0});
        report["duration_s"] = serde_json::json!(12.5);
    });
    let table = report_table(&[idle.to_str().unwrap()]);
    assert!(
        table
            .lines()
            .next()
            .unwrap_or_default()
            .contains(", 12.50 s, stopped: "),
        "{table}"
    );
    assert!(!table.contains("pages per call"), "{table}");
    assert!(!table.contains("histogram bucket midpoints"), "{table}");
}

/// `report` (or `plot`) of a directory of runs says what it is and where
/// its runs and comparison are.
#[test]
fn a_directory_of_runs_is_named_for_what_it_is() {
    let run = Path::new(SAVED_RUN).join("report.json");
    let series = common::out_dir("cli", "series");
    for name in ["run-01", "run-02"] {
        std::fs::create_dir_all(series.join(name)).unwrap();
        std::fs::copy(&run, series.join(name).join("report.json")).unwrap();
    }
    let series = series.display();
    assert_eq!(
        refused(&["report", &series.to_string()]),
        format!(
            "error: {series} holds 2 runs of `run --repeat`, not one run: give one of them, e.g. {series}/run-01, or compare the series: mprotect-trace compare {series} OTHER"
        )
    );
    let ab = common::out_dir("cli", "ab");
    for side in ["a", "b"] {
        std::fs::create_dir_all(ab.join(side).join("run-01")).unwrap();
        std::fs::copy(&run, ab.join(side).join("run-01").join("report.json")).unwrap();
    }
    std::fs::write(ab.join("comparison.txt"), "").unwrap();
    let ab = ab.display();
    for command in ["report", "plot"] {
        assert_eq!(
            refused(&[command, &ab.to_string()]),
            format!(
                "error: {ab} holds a comparison of sides a, b (`ab` or `compare -o`), not one run: read {ab}/comparison.txt, or give one run, e.g. {ab}/a/run-01"
            )
        );
    }
}

/// `report --json` prints report.json, as `--format json` does.
#[test]
fn report_json_prints_the_report() {
    let json = report_table(&[SAVED_RUN, "--json"]);
    assert_eq!(json, report_table(&[SAVED_RUN, "--format", "json"]));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["scope"], "command");
}

/// The sampler counts what it does not keep; which samples those are
/// depends on the scope: under `-a` every task is traced, so they are
/// the idle CPUs' only.
#[test]
fn samples_not_kept_are_named_for_the_scope() {
    let table_of = |scope: &str| {
        let dir = saved_run_with_profile(&format!("scope-{scope}"), 40, &[("change_pte_range", 40, 40)]);
        let file = dir.join("report.json");
        let mut report: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        report["sampling"]["counters"]["samples_other_tasks"] = serde_json::json!(1234);
        report["scope"] = serde_json::json!(scope);
        std::fs::write(&file, serde_json::to_vec(&report).unwrap()).unwrap();
        report_table(&[dir.to_str().unwrap()])
    };
    let command = table_of("command");
    assert!(
        command.contains("(1234 samples of other tasks or idle CPUs)"),
        "{command}"
    );
    let all = table_of("all");
    assert!(all.contains("(1234 samples of idle CPUs)"), "{all}");
    assert!(!all.contains("other tasks"), "{all}");
}
