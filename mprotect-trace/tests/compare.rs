//! `compare` on hand-made reports of known values, every number checked;
//! and on real runs: an A/A check of the false-positive rate, and a real
//! difference found by `ab`.
#![recursion_limit = "256"]

mod common;

use std::path::PathBuf;

use serde_json::{Value, json};

const PAGES: u64 = 1000;
const ITERATIONS: u64 = 4;

fn check(available: bool) -> Value {
    json!({"available": available, "summary": "s", "detail": "d"})
}

/// Latency stats with `calls` calls of `ns` each, in the bucket of `ns`.
fn latency(calls: u64, ns: u64, low: u64, high: u64) -> Value {
    json!({"count": calls, "total": calls * ns, "min": ns, "max": ns, "histogram": {"buckets": [[low, high, calls]]}})
}

fn target(name: &str, stats: Value) -> Value {
    json!({
        "name": name, "role": "headline", "backend": "fentry", "reason": "fentry/fexit", "slot": 0,
        "nr_ptes_source": null, "pages_source": null, "latency": null, "latency_ns": stats,
    })
}

/// A report: per-iteration protect/restore ns, syscall and change_pte_range latency.
fn report(kernel: &str, protect: u64, restore: u64, syscall: Value, pte_range: Value) -> Value {
    let per_page = (protect + restore) as f64 / PAGES as f64;
    let smaps = json!({"size_kb": 4000, "kernel_page_kb": 4, "mmu_page_kb": 4, "rss_kb": 4000, "dirty_kb": 4000,
                       "huge_kb": 0, "thp_eligible": 0, "vm_flags": "rd wr sh"});
    json!({
        "schema_version": 3, "tool_version": "0.1.0", "kernel_release": kernel, "arch": "x86_64",
        "start_time": "2026-11-24T00:00:00.000Z", "settings": settings(),
        "cpu_model": "Test CPU", "cpus": 2, "scope": "workload", "tgid": 1, "command": [],
        "stop_reason": "target exited", "partial": false, "duration_s": 1.0, "percentile_relative_error": 0.03125,
        "capabilities": {"kernel_release": kernel, "arch": "x86_64", "btf": check(true), "lockdown": check(true),
            "tracefs": check(true), "syscall_tracepoints": check(true), "perf_sampling": check(true),
            "fentry": check(true), "kprobes": check(true)},
        "syscall": {"backend": "tracepoint", "latency": {"calls": 0, "total_ns": 0}, "latency_ns": syscall,
            "pages_per_call": {"count": 0, "total": 0, "histogram": {"buckets": []}}, "prot_flags": []},
        "targets": [target("change_pte_range", pte_range)],
        "lost": {"syscall_enter": 8, "syscall_exit": 8, "exit_without_entry": 0, "entry_overwritten": 0},
        "workload": {"scenario": "shared-dirty-toggle", "pages": PAGES, "mapping_mb": 4, "iterations": ITERATIONS,
            "warmup": 0, "rounds": 1, "threads": 1,
            "protect_ns_per_page": protect as f64 / PAGES as f64, "restore_ns_per_page": restore as f64 / PAGES as f64,
            "post_touch_ns_per_page": 0.0, "iteration_ns_per_page": per_page,
            "protect_ns_per_page_median": 0.0, "restore_ns_per_page_median": 0.0,
            "post_touch_ns_per_page_median": 0.0, "iteration_ns_per_page_median": per_page,
            "kernel_page_kb": 4, "mmu_page_kb": 4, "anon_huge_kb": 0, "thpeligible": 0, "expected_match_ratio": 100,
            "mprotect_calls": 8, "smaps_before": smaps, "smaps_after": smaps,
            "per_iteration_ns": {"protect": vec![protect; 4], "restore": vec![restore; 4], "post_touch": vec![0; 4]}},
        "sampling": null,
    })
}

/// The settings of `run -o DIR --mapping-mb 4 --iterations 4 --warmup 0`.
fn settings() -> Value {
    json!({"workload": {"scenario": "shared-dirty-toggle", "mapping_mb": 4, "iterations": ITERATIONS, "warmup": 0,
        "rounds": 1, "threads": 1, "cpu": null, "touch": true, "folio_kb": null},
        "command": [], "pid": null, "all_tasks": false, "backend": "auto", "probes": [], "syscall": "tracepoint",
        "sample_hz": 999, "max_stacks": 16384, "duration_s": null, "calibrate": false, "probe_cost": false})
}

/// Stack-sampling summary with the given self shares of the in-syscall samples.
fn sampling(shares: &[(&str, f64)]) -> Value {
    let functions: Vec<Value> = shares
        .iter()
        .map(|(name, share)| {
            let samples = (share * 1000.0).round() as u64;
            json!({"name": name, "self_samples": samples, "total_samples": samples, "self_share": share, "total_share": share})
        })
        .collect();
    json!({"hz": 999, "cpus": 2, "counters": {"samples": 1000, "samples_other_tasks": 0, "kernel_stack_collisions": 0,
        "kernel_stack_failed": 0, "user_stack_lost": 0, "sample_map_full": 0}, "in_syscall_samples": 1000,
        "functions": functions, "inlined_targets": [], "stacks": []})
}

fn write(name: &str, report: &Value) -> PathBuf {
    let dir = common::out_dir("compare", name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), serde_json::to_vec(report).unwrap()).unwrap();
    dir
}

/// A side of `reports.len()` runs: `DIR/run-01`, ... started at the given times.
fn write_side(name: &str, reports: &[Value]) -> PathBuf {
    let dir = common::out_dir("compare", name);
    for (index, report) in reports.iter().enumerate() {
        let run = dir.join(format!("run-{:02}", index + 1));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("report.json"), serde_json::to_vec(report).unwrap()).unwrap();
    }
    dir
}

fn compare(args: &[&str]) -> std::process::Output {
    common::binary().arg("compare").args(args).output().unwrap()
}

fn compared(args: &[&str]) -> Value {
    let output = compare(&[args, &["--json"]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The one-line error of a refused comparison.
fn refused(args: &[&str]) -> String {
    let output = compare(args);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

fn close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!(
        (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{actual} != {expected}"
    );
}

fn path(dir: &std::path::Path) -> &str {
    dir.to_str().unwrap()
}

/// Kernels that inline differently compare function by function: with
/// debug info a 6.12-style run names `pte_modify (inlined)` where a
/// 7.x-style run calls `pte_modify`; both are one row, `pte_modify`.
#[test]
fn an_inlined_function_and_its_out_of_line_self_are_one_row() {
    let mut a = report(
        "6.12",
        100_000,
        100_000,
        latency(8, 100_000, 98304, 102400),
        latency(8, 50_000, 49152, 51200),
    );
    let mut b = report(
        "7.3",
        130_000,
        100_000,
        latency(8, 115_000, 114688, 118784),
        latency(8, 62_500, 61440, 63488),
    );
    a["sampling"] = sampling(&[("change_protection", 0.7), ("pte_modify (inlined)", 0.3)]);
    b["sampling"] = sampling(&[("change_protection", 0.6), ("pte_modify", 0.4)]);
    let (a, b) = (write("inlined-a", &a), write("inlined-b", &b));
    let c = compared(&[path(&a), path(&b)]);
    let sampled = c["against_baseline"][0]["sampled"].as_array().unwrap();
    let names: Vec<&str> = sampled.iter().map(|row| row["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"pte_modify") && names.contains(&"change_protection"),
        "{names:?}"
    );
    let row = sampled.iter().find(|row| row["name"] == "pte_modify").unwrap();
    assert_eq!(
        (row["a_self_samples"].as_u64(), row["b_self_samples"].as_u64()),
        (Some(300), Some(400))
    );
    // Self share x the syscall's ns/page: 0.3 x 200 and 0.4 x 230.
    close(&row["a_ns_per_page"], 60.0);
    close(&row["b_ns_per_page"], 92.0);
}

/// One run a side: A's syscall 8 calls of 100000 ns (bucket [98304, 102400))
/// and change_pte_range 8 of 50000 ns ([49152, 51200)); B's 115000 ns
/// ([114688, 118784)) and 62500 ns ([61440, 63488)).
fn one_run_reports() -> (Value, Value) {
    let a = report(
        "6.16",
        100_000,
        100_000,
        latency(8, 100_000, 98304, 102400),
        latency(8, 50_000, 49152, 51200),
    );
    let b = report(
        "6.17",
        130_000,
        100_000,
        latency(8, 115_000, 114688, 118784),
        latency(8, 62_500, 61440, 63488),
    );
    (a, b)
}

#[test]
fn every_number_of_a_one_run_comparison_is_exact_and_claims_nothing() {
    let (mut a, mut b) = one_run_reports();
    // Stack samples: self shares of 1000 in-syscall samples.
    a["sampling"] = sampling(&[("change_pte_range", 0.5), ("prot_commit_flush_ptes", 0.5)]);
    b["sampling"] = sampling(&[("change_pte_range", 0.6), ("prot_commit_flush_ptes", 0.4)]);
    let (a, b) = (write("a", &a), write("b", &b));
    let c = compared(&[path(&a), path(&b)]);

    assert_eq!(c["notes"], json!(["kernels differ: A 6.16 vs B 6.17"]));
    assert_eq!(c["design"]["runs"], json!([1, 1]));
    assert_eq!(c["design"]["order"]["kind"], "single");
    let pair = &c["against_baseline"][0];
    assert_eq!(pair["differences"], json!([]));
    let metrics = pair["metrics"].as_array().unwrap();
    let names: Vec<&str> = metrics.iter().map(|m| m["metric"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "iteration ns/page (run median)",
            "mprotect (syscall) p50",
            "mprotect (syscall) p99",
            "change_pte_range p50",
            "change_pte_range p99"
        ]
    );
    // Workload: 200 vs 230 ns/page; one run a side measures no spread.
    let w = &metrics[0];
    close(&w["a"]["median"], 200.0);
    close(&w["b"]["median"], 230.0);
    close(&w["ratio"], 1.15);
    assert_eq!(w["verdict"], "no-claim");
    assert_eq!(w["test"], Value::Null);
    assert_eq!(w["ratio_interval"], Value::Null);
    assert_eq!(w["detectable_change"], Value::Null);
    assert_eq!(
        w["reason"],
        "1 and 1 runs: no run-to-run spread was measured, so no significance claim; repeat each side with --repeat 5"
    );
    // Percentiles are bucket midpoints kept within the min and max: every
    // call took the same time here, so they are that time, not 100352 ns.
    close(&metrics[1]["ratio"], 115_000.0 / 100_000.0);
    close(&metrics[3]["ratio"], 62_500.0 / 50_000.0);
    assert!(metrics.iter().all(|m| m["verdict"] == "no-claim"));

    let targets = pair["targets"].as_array().unwrap();
    let syscall = &targets[0];
    assert_eq!(syscall["name"], "mprotect (syscall)");
    close(&syscall["calls_per_iteration_a"], 2.0);
    // 800000 ns / 4 iterations / 1000 pages = 200 -> 920000 / 4 / 1000 = 230.
    close(&syscall["ns_per_page_a"], 200.0);
    close(&syscall["ns_per_page_b"], 230.0);
    close(&syscall["delta_ns_per_page"]["estimate"], 30.0);
    assert_eq!(syscall["delta_ns_per_page"]["interval_from"], "none");
    close(&syscall["share_of_workload_delta"], 1.0);
    let pte = &targets[1];
    close(&pte["ns_per_page_a"], 100.0);
    close(&pte["ns_per_page_b"], 125.0);
    close(&pte["share_of_workload_delta"], 25.0 / 30.0);

    // Sampled: self share x syscall ns/page, with the binomial error of
    // 1000 samples a side: var = ns^2 p (1 - p) / 1000.
    let sampled = pair["sampled"].as_array().unwrap();
    assert_eq!(sampled.len(), 2);
    let row = &sampled[0];
    assert_eq!(row["name"], "change_pte_range");
    assert_eq!(
        (row["a_self_samples"].as_u64(), row["b_self_samples"].as_u64()),
        (Some(500), Some(600))
    );
    close(&row["a_ns_per_page"], 100.0);
    close(&row["b_ns_per_page"], 138.0);
    close(&row["delta_ns_per_page"]["estimate"], 38.0);
    let half = 1.959_963_984_540_054 * (200.0f64.powi(2) * 0.25 / 1000.0 + 230.0f64.powi(2) * 0.24 / 1000.0).sqrt();
    close(&row["delta_ns_per_page"]["interval"]["low"], 38.0 - half);
    close(&row["delta_ns_per_page"]["interval"]["high"], 38.0 + half);
    assert_eq!(row["delta_ns_per_page"]["interval_from"], "sampling-only");
    close(&row["share_of_workload_delta"], 38.0 / 30.0);
    close(&sampled[1]["delta_ns_per_page"]["estimate"], -8.0);
    assert_eq!(pair["home"]["function"], Value::Null);

    let text = String::from_utf8_lossy(&compare(&[path(&a), path(&b)]).stdout).into_owned();
    assert!(text.contains("runs: 1 / 1, order: one run a side"), "{text}");
    assert!(
        text.contains("no claim: 1 and 1 runs: no run-to-run spread was measured"),
        "{text}"
    );
    assert!(text.contains("no home: 1 and 1 runs"), "{text}");
}

/// A run whose every iteration takes `ns_per_page`, started at `second`.
fn repeated(ns_per_page: u64, second: u32) -> Value {
    let per_iteration = ns_per_page * PAGES;
    let mut run = report(
        "6.18",
        per_iteration,
        0,
        latency(8, per_iteration / 2, 1, 2),
        latency(8, 1, 1, 2),
    );
    run["start_time"] = json!(format!("2026-11-24T00:00:{second:02}.000Z"));
    run
}

#[test]
fn repeated_runs_are_compared_one_value_per_run() {
    // Interleaved: A at even seconds, B at odd ones.
    let a: Vec<Value> = [200, 202, 198, 201, 199]
        .iter()
        .enumerate()
        .map(|(i, &v)| repeated(v, 2 * i as u32))
        .collect();
    let b: Vec<Value> = [230, 228, 233, 231, 229]
        .iter()
        .enumerate()
        .map(|(i, &v)| repeated(v, 2 * i as u32 + 1))
        .collect();
    let (a, b) = (write_side("ra", &a), write_side("rb", &b));
    let c = compared(&[path(&a), path(&b)]);
    assert_eq!(c["design"]["runs"], json!([5, 5]));
    assert_eq!(c["design"]["order"]["kind"], "interleaved");
    assert_eq!(c["design"]["order"]["sequence"], "A B A B A B A B A B");
    assert_eq!(
        c["sides"][0]["runs"],
        json!(["run-01", "run-02", "run-03", "run-04", "run-05"])
    );
    let w = &c["against_baseline"][0]["metrics"][0];
    assert_eq!(w["a"]["runs"], json!([200.0, 202.0, 198.0, 201.0, 199.0]));
    close(&w["a"]["median"], 200.0);
    close(&w["b"]["median"], 230.0);
    // Every B run above every A run: U = 0, exact p = 2 / C(10, 5). The
    // ratio, its 96.8 % interval and the detectable change, from SciPy
    // (tests/data/statistics_reference.py, `repeated_runs`).
    close(&w["test"]["u"], 0.0);
    close(&w["test"]["p_value"], 0.007936507936507936);
    assert_eq!(w["test"]["exact"], true);
    assert_eq!(w["verdict"], "significant");
    close(&w["ratio"], 1.1507537688442215);
    close(&w["ratio_interval"]["low"], 1.1343283582089556);
    close(&w["ratio_interval"]["high"], 1.1666666666666663);
    close(&w["ratio_interval"]["confidence"], 0.9682539682539683);
    close(&w["detectable_change"], 0.01709387747370883);
}

#[test]
fn too_few_runs_make_no_claim_and_say_why() {
    let a: Vec<Value> = [200, 202, 198].iter().map(|&v| repeated(v, 0)).collect();
    let b: Vec<Value> = [230, 228, 233].iter().map(|&v| repeated(v, 1)).collect();
    let (a, b) = (write_side("fa", &a), write_side("fb", &b));
    let c = compared(&[path(&a), path(&b)]);
    let w = &c["against_baseline"][0]["metrics"][0];
    assert_eq!(w["verdict"], "no-claim");
    assert_eq!(
        w["reason"],
        "3 and 3 runs: the smallest p this design can reach is 0.100, not below 0.05; use at least 4 runs a side"
    );
    assert_eq!(c["design"]["order"]["kind"], "not-interleaved");
    assert!(
        c["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("the runs were not interleaved (order A A A B B B)")
    );
}

#[test]
fn differing_settings_are_refused_unless_forced_and_listed() {
    let a = write(
        "sa",
        &report("6.18", 100_000, 100_000, latency(8, 1, 1, 2), latency(8, 1, 1, 2)),
    );
    let mut other = report("6.18", 100_000, 100_000, latency(8, 1, 1, 2), latency(8, 1, 1, 2));
    other["settings"]["workload"]["cpu"] = json!(1);
    other["settings"]["workload"]["touch"] = json!(false);
    let b = write("sb", &other);
    assert!(refused(&[path(&a), path(&b)]).ends_with(
        "error: A and B differ in workload.cpu (none vs 1), workload.touch (true vs false): compare runs of one configuration, or pass --force"
    ));
    let c = compared(&[path(&a), path(&b), "--force"]);
    let settings: Vec<&str> = c["against_baseline"][0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["setting"].as_str().unwrap())
        .collect();
    assert_eq!(settings, ["workload.cpu", "workload.touch"]);
    let text = String::from_utf8_lossy(&compare(&[path(&a), path(&b), "--force"]).stdout).into_owned();
    assert!(
        text.contains("differs: workload.cpu (none vs 1) (compared anyway: --force)"),
        "{text}"
    );
}

#[test]
fn a_side_must_repeat_one_configuration() {
    let mut odd = repeated(201, 2);
    odd["settings"]["workload"]["iterations"] = json!(5);
    let a = write_side("oa", &[repeated(200, 0), odd]);
    let b = write_side("ob", &[repeated(230, 1), repeated(231, 3)]);
    let error = refused(&[path(&a), path(&b)]);
    assert!(
        error.contains("are not repetitions of one configuration: run-01 and run-02 differ in workload.iterations (4 vs 5): remove the odd runs, or pass --force"),
        "{error}"
    );
    let empty = common::out_dir("compare", "empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(refused(&[path(&empty), path(&b)]).ends_with(
        "holds no report.json, nor run directories holding one: give a directory written by `mprotect-trace run -o DIR` or `run --repeat N -o DIR`"
    ));
}

#[test]
fn more_sides_are_each_compared_against_the_first() {
    let a = write_side("na", &[repeated(200, 0), repeated(201, 3)]);
    let b = write_side("nb", &[repeated(230, 1), repeated(231, 4)]);
    let c = write_side("nc", &[repeated(100, 2), repeated(101, 5)]);
    let compared = compared(&[path(&a), path(&b), path(&c)]);
    assert_eq!(compared["design"]["order"]["sequence"], "A B C A B C");
    assert_eq!(compared["design"]["order"]["kind"], "interleaved");
    let pairs = compared["against_baseline"].as_array().unwrap();
    let labels: Vec<(&str, &str)> = pairs
        .iter()
        .map(|p| (p["a"].as_str().unwrap(), p["b"].as_str().unwrap()))
        .collect();
    assert_eq!(labels, [("A", "B"), ("A", "C")]);
    close(&pairs[0]["metrics"][0]["b"]["median"], 230.5);
    close(&pairs[1]["metrics"][0]["b"]["median"], 100.5);
}

#[test]
fn bad_report_files_get_one_line_errors() {
    let error = |path: &std::path::Path| {
        let output = common::binary().arg("report").arg(path).output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr
    };
    let missing = std::env::temp_dir().join("mprotect-trace-no-such-run");
    assert!(error(&missing).ends_with(
        "mprotect-trace-no-such-run does not exist: give a directory written by `mprotect-trace run -o DIR`"
    ));
    let truncated = write("truncated", &json!({}));
    std::fs::write(truncated.join("report.json"), b"{\"schema_version\": 1, \"tool_").unwrap();
    assert!(error(&truncated).contains("is not valid JSON"), "{}", error(&truncated));
    let foreign = write("foreign", &json!({"hello": "world"}));
    assert!(error(&foreign).ends_with("is not an mprotect-trace report (no schema_version)"));
    // Junk where the JSON should start is not a truncation.
    let junk = write("junk", &json!({}));
    std::fs::write(junk.join("report.json"), b"\x00\x01 not json").unwrap();
    let junk = error(&junk);
    assert!(
        junk.contains("is not valid JSON") && !junk.contains("truncated"),
        "{junk}"
    );
    assert!(error(&truncated).contains("truncated?"), "{}", error(&truncated));
    // A field of the wrong type is named by its path.
    let mut edited = report("6.18", 100_000, 100_000, latency(8, 1, 1, 2), latency(8, 1, 1, 2));
    edited["syscall"]["latency"]["calls"] = json!("410");
    let edited = error(&write("edited", &edited));
    assert!(
        edited.contains(
            "is not a valid schema-3 report: syscall.latency.calls: invalid type: string \"410\", expected u64"
        ),
        "{edited}"
    );
    let newer = write("newer", &json!({"schema_version": 99}));
    assert!(
        error(&newer)
            .ends_with("has report schema 99, newer than the 6 this mprotect-trace reads: upgrade mprotect-trace")
    );
}

/// The title of comparison.html of `a` and `b`, written into `name`.
fn page_title(a: &std::path::Path, b: &std::path::Path, name: &str) -> String {
    let out = common::out_dir("compare", name);
    let output = compare(&[path(a), path(b), "--force", "-o", path(&out)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(out.join("comparison.html")).unwrap();
    html.split("<title>")
        .nth(1)
        .unwrap()
        .split("</title>")
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_comparison_page_is_titled_with_what_differs() {
    let same = || report("6.18", 100_000, 100_000, latency(8, 1, 1, 2), latency(8, 1, 1, 2));
    let a = write("ta", &same());
    let mut other = same();
    other["settings"]["workload"]["scenario"] = json!("private-dirty-toggle");
    let b = write("tb", &other);
    assert_eq!(
        page_title(&a, &b, "t-scenario"),
        "mprotect-trace compare: scenario: shared-dirty-toggle vs private-dirty-toggle"
    );
    // Same settings, other kernels: the kernels.
    let c = write(
        "tc",
        &report("6.19", 100_000, 100_000, latency(8, 1, 1, 2), latency(8, 1, 1, 2)),
    );
    assert_eq!(
        page_title(&a, &c, "t-kernel"),
        "mprotect-trace compare: kernel: 6.18 vs 6.19"
    );
    // Nothing tells them apart but where they are.
    let d = write("td", &same());
    let name = |dir: &std::path::Path| dir.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        page_title(&a, &d, "t-same"),
        format!("mprotect-trace compare: {} vs {}", name(&a), name(&d))
    );
    assert!(name(&d).ends_with("-td"));
}

/// Two one-run sides whose stack samples give `functions` the self shares
/// `(name, A, B)`, A's syscall at 200 ns/page and B's at 230.
fn sampled_sides(name: &str, functions: &[(&str, f64, f64)]) -> (PathBuf, PathBuf) {
    let (mut a, mut b) = one_run_reports();
    // A share of 0 is a function that side did not sample at all.
    let shares = |pick: fn(&(&str, f64, f64)) -> f64| -> Vec<(&str, f64)> {
        functions
            .iter()
            .map(|f| (f.0, pick(f)))
            .filter(|(_, share)| *share > 0.0)
            .collect()
    };
    a["sampling"] = sampling(&shares(|f| f.1));
    b["sampling"] = sampling(&shares(|f| f.2));
    (write(&format!("{name}-a"), &a), write(&format!("{name}-b"), &b))
}

/// The lines of the text comparison's table that starts with `heading`,
/// up to the blank line after it.
fn table<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|line| !line.starts_with(heading))
        .take_while(|line| !line.is_empty())
        .collect()
}

/// The column of differences is the Hodges-Lehmann shift, named so and
/// explained, not "B-A" beside medians it is not the difference of; a
/// shift that rests on a few samples says so.
#[test]
fn the_shift_column_is_named_and_explained() {
    let (a, b) = sampled_sides(
        "shift",
        &[
            ("change_pte_range", 0.5, 0.6),
            ("prot_commit_flush_ptes", 0.495, 0.391),
            ("vm_normal_page", 0.005, 0.009),
        ],
    );
    let text = String::from_utf8_lossy(&compare(&[path(&a), path(&b)]).stdout).into_owned();
    assert!(!text.contains("B-A"), "{text}");
    let costs = table(&text, "per workload iteration");
    assert!(costs[0].contains("shift (HL) [interval]"), "{text}");
    let sampled = table(&text, "kernel function");
    assert!(sampled[0].contains("shift (HL) [interval]"), "{text}");
    let few = sampled.iter().find(|row| row.starts_with("vm_normal_page")).unwrap();
    assert!(few.starts_with("vm_normal_page *"), "{few}");
    assert!(
        text.contains("\n* fewer than 10 samples on each side: too few for its shift to mean anything\n"),
        "{text}"
    );
    assert!(
        text.contains("\nshift (HL): the Hodges-Lehmann shift of a side against the baseline (B against A): the median of the differences B - A of every pair of their runs' values, not the difference of the two medians beside it\n"),
        "{text}"
    );
}

/// The differential flame graph pools every run of a side, as the tables
/// do: a function sampled in one of B's runs only is in it, whichever
/// run is the side's representative.
#[test]
fn the_differential_flame_graph_pools_every_run() {
    let sampled_run = |ns_per_page: u64, second: u32, leaf: &str| {
        let mut run = repeated(ns_per_page, second);
        run["sampling"] = sampling(&[(leaf, 1.0)]);
        run["sampling"]["stacks"] = json!([{"user": [], "kernel": ["do_syscall_64", leaf], "count": 10}]);
        run
    };
    let a = write_side(
        "flame-a",
        &[
            sampled_run(200, 0, "change_pte_range"),
            sampled_run(201, 2, "change_pte_range"),
        ],
    );
    let b = write_side(
        "flame-b",
        &[
            sampled_run(230, 1, "change_pte_range"),
            sampled_run(231, 3, "flush_tlb_mm_range"),
        ],
    );
    let out = common::out_dir("compare", "flame-out");
    let output = compare(&[path(&a), path(&b), "-o", path(&out)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let svg = std::fs::read_to_string(out.join("diff-flame.svg")).unwrap();
    for leaf in ["change_pte_range", "flush_tlb_mm_range"] {
        assert!(svg.contains(leaf), "{leaf} is not in diff-flame.svg");
    }
    let html = std::fs::read_to_string(out.join("comparison.html")).unwrap();
    assert!(
        html.contains("every run of each side pooled (A: 2 runs, B: 2 runs)"),
        "{html}"
    );
}

/// A function whose time did not change (0.2 ns/page on both sides, one
/// sample each) is no "change"; a change that rounds to nothing is
/// neither +0.00 nor -0.00.
#[test]
fn functions_without_a_change_are_not_listed_as_changes() {
    // vm_normal_page: 0.001 x 200 = 0.2 ns/page, then 0.00087 x 230 = 0.2001;
    // pte_offset: 0.001 x 200 = 0.2, then 0.00086 x 230 = 0.1978;
    // pte_mkwrite: 0.4, then 0.299, -0.3 % of the workload's 30 ns/page;
    // pte_mkdirty: 0.4, then not sampled: 0 ns/page.
    let (a, b) = sampled_sides(
        "unchanged",
        &[
            ("change_pte_range", 0.5, 0.6),
            ("prot_commit_flush_ptes", 0.494, 0.39827),
            ("vm_normal_page", 0.001, 0.00087),
            ("pte_offset", 0.001, 0.00086),
            ("pte_mkwrite", 0.002, 0.0013),
            ("pte_mkdirty", 0.002, 0.0),
        ],
    );
    let c = compared(&[path(&a), path(&b)]);
    let names: Vec<&str> = c["against_baseline"][0]["sampled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "change_pte_range",
            "prot_commit_flush_ptes",
            "pte_mkdirty",
            "pte_mkwrite"
        ]
    );
    for format in ["text", "mail"] {
        let text = String::from_utf8_lossy(&compare(&[path(&a), path(&b), "--format", format]).stdout).into_owned();
        assert!(!text.contains("-0.00") && !text.contains("+0.00"), "{text}");
        assert!(!text.contains("-0 %"), "{text}");
        assert!(
            !text.contains("vm_normal_page") && !text.contains("pte_offset"),
            "{text}"
        );
    }
}

/// A kernel function's name longer than its column moves nothing: every
/// row of the table is as wide as its heading.
#[test]
fn long_function_names_keep_the_columns() {
    let long = "__raw_callee_save___pv_queued_spin_unlock";
    let (a, b) = sampled_sides("long-names", &[("change_pte_range", 0.5, 0.6), (long, 0.5, 0.4)]);
    let text = String::from_utf8_lossy(&compare(&[path(&a), path(&b)]).stdout).into_owned();
    let rows = table(&text, "kernel function");
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[2].starts_with(long) || rows[1].starts_with(long), "{text}");
    for row in &rows {
        assert_eq!(row.len(), rows[0].len(), "{row:?} in\n{text}");
    }
}

/// `fleet report`: a row per host as `compare` computes it from that
/// host's reports, and every host without a result listed with why.
#[test]
fn a_fleet_report_has_a_row_per_host_as_compare_computes_it() {
    let fleet = common::out_dir("compare", "fleet");
    let side = |host: &str, name: &str, reports: &[Value]| {
        let dir = fleet.join(host).join(name);
        for (index, report) in reports.iter().enumerate() {
            let run = dir.join(format!("run-{:02}", index + 1));
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("report.json"), serde_json::to_vec(report).unwrap()).unwrap();
        }
    };
    // alpha: 4 runs a side, interleaved, B about 15 % slower.
    let runs = |values: &[u64], first: u32| -> Vec<Value> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| repeated(v, first + 2 * i as u32))
            .collect()
    };
    side("alpha", "a", &runs(&[200, 202, 198, 201], 0));
    side("alpha", "b", &runs(&[230, 228, 233, 231], 1));
    // beta: one run a side, B 10 % faster: no claim.
    side("beta", "a", &runs(&[200], 0));
    side("beta", "b", &runs(&[180], 1));
    // gamma: a report cut short; delta: failed, as the playbook records it; epsilon: nothing.
    side("gamma", "a", &runs(&[200], 0));
    side("gamma", "b", &runs(&[180], 1));
    std::fs::write(
        fleet.join("gamma/b/run-01/report.json"),
        b"{\"schema_version\": 6, \"tool",
    )
    .unwrap();
    std::fs::create_dir_all(fleet.join("delta")).unwrap();
    std::fs::write(
        fleet.join("delta/fleet-error.json"),
        serde_json::to_vec(
            &json!({"host": "delta", "task": "Copy the tracer", "error": "No space left on device",
            "rc": null, "stderr": []}),
        )
        .unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(fleet.join("epsilon")).unwrap();

    let output = common::binary().args(["fleet", "report"]).arg(&fleet).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let report: Value = serde_json::from_slice(&std::fs::read(fleet.join("fleet.json")).unwrap()).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{text}");
    for (row, host) in hosts.iter().zip(["alpha", "beta"]) {
        assert_eq!(row["host"], host);
        let a = fleet.join(host).join("a");
        let b = fleet.join(host).join("b");
        let metric = &compared(&[path(&a), path(&b), "--force"])["against_baseline"][0]["metrics"][0];
        assert_eq!(metric["metric"], "iteration ns/page (run median)");
        assert_eq!(row["ratio"], metric["ratio"], "{host}");
        assert_eq!(row["ratio_interval"], metric["ratio_interval"], "{host}");
        assert_eq!(row["verdict"], metric["verdict"], "{host}");
        assert_eq!(
            (&row["cpu_model"], &row["kernel_release"]),
            (&json!("Test CPU"), &json!("6.18"))
        );
    }
    assert_eq!(hosts[0]["verdict"], "significant");
    assert_eq!((&hosts[0]["runs_a"], &hosts[0]["runs_b"]), (&json!(4), &json!(4)));
    assert_eq!(hosts[1]["verdict"], "no-claim");
    close(&hosts[1]["ratio"], 0.9);
    let missing: Vec<(&str, &str)> = report["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["host"].as_str().unwrap(), m["why"].as_str().unwrap()))
        .collect();
    assert_eq!(
        missing[0],
        ("delta", "failed at \"Copy the tracer\": No space left on device")
    );
    assert_eq!(
        missing[1],
        (
            "epsilon",
            format!(
                "no {} in {}: fleet report reads the results of `ab` (DIR/<host>/a and b)",
                fleet.join("epsilon/a").display(),
                fleet.join("epsilon").display()
            )
            .as_str()
        )
    );
    assert_eq!(missing[2].0, "gamma");
    assert!(
        missing[2].1.contains("gamma/b/run-01/report.json is not valid JSON"),
        "{}",
        missing[2].1
    );
    let alpha = hosts[0]["ratio"].as_f64().unwrap();
    assert!(alpha > 1.1, "{alpha}");
    assert!(text.contains(&format!(
        "hosts: 0 improved significantly (B/A below 1), 1 regressed significantly, 0 not significant, 1 no claim, 3 without a result\nB/A over the hosts: min 0.900, median {:.3}, max {alpha:.3}\n",
        (alpha + 0.9) / 2.0
    )), "{text}");
    for line in [
        "delta: failed at \"Copy the tracer\": No space left on device",
        "hosts without a result:",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    let mail = std::fs::read_to_string(fleet.join("fleet-mail.txt")).unwrap();
    assert!(mail.lines().all(|line| line.chars().count() <= 80), "{mail}");
    let html = std::fs::read_to_string(fleet.join("fleet.html")).unwrap();
    assert!(
        html.contains("fleet-ratios.png, fleet-ratios.svg") && html.contains("<svg"),
        "{html}"
    );
}
