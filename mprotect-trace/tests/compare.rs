//! `compare` on two hand-made reports of known values: every number checked.
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
        "schema_version": 1, "tool_version": "0.1.0", "kernel_release": kernel, "arch": "x86_64",
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

fn compare(args: &[&str]) -> std::process::Output {
    common::binary().arg("compare").args(args).output().unwrap()
}

fn close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!(
        (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{actual} != {expected}"
    );
}

#[test]
fn every_number_of_a_comparison_is_exact() {
    // Syscall: 8 calls of 100000 ns (bucket [98304, 102400)) vs 115000 ns ([114688, 118784)).
    // change_pte_range: 8 calls of 50000 ns ([49152, 51200)) vs 62500 ns ([61440, 63488)).
    let mut a = report(
        "6.16",
        100_000,
        100_000,
        latency(8, 100_000, 98304, 102400),
        latency(8, 50_000, 49152, 51200),
    );
    let mut b = report(
        "6.17",
        130_000,
        100_000,
        latency(8, 115_000, 114688, 118784),
        latency(8, 62_500, 61440, 63488),
    );
    // Stack samples: self shares of the in-syscall samples.
    a["sampling"] = sampling(&[("change_pte_range", 0.5), ("prot_commit_flush_ptes", 0.5)]);
    b["sampling"] = sampling(&[("change_pte_range", 0.6), ("prot_commit_flush_ptes", 0.4)]);
    let (a, b) = (write("a", &a), write("b", &b));
    let output = compare(&[a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let c: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(c["notes"], json!(["kernels differ: A 6.16 vs B 6.17"]));
    // Workload: 200 vs 230 ns/page, all four iterations of B above all of A.
    let w = &c["workload"];
    close(&w["a_iteration_ns_per_page"], 200.0);
    close(&w["b_iteration_ns_per_page"], 230.0);
    close(&w["delta_ns_per_page"], 30.0);
    close(&w["ratio"], 1.15);
    // U = 0; n1 = n2 = 4, two tie groups of 4: var = 16/12 (9 - 120/56) = 9.142857...
    close(&w["test"]["u"], 0.0);
    close(&w["test"]["z"], -8.0 / (16.0f64 / 12.0 * (9.0 - 120.0 / 56.0)).sqrt());
    close(&w["test"]["p_value"], 0.008151);
    assert_eq!(w["test"]["significant"], true);

    let targets = c["targets"].as_array().unwrap();
    let names: Vec<&str> = targets.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mprotect (syscall)", "change_pte_range"]);
    let syscall = &targets[0];
    close(&syscall["a"]["calls_per_iteration"], 2.0);
    close(&syscall["a"]["mean_ns"], 100_000.0);
    close(&syscall["b"]["mean_ns"], 115_000.0);
    close(&syscall["a"]["p50_ns"], 100_352.0);
    close(&syscall["b"]["p50_ns"], 116_736.0);
    close(&syscall["a"]["p99_ns"], 100_352.0);
    close(&syscall["mean_ratio"], 1.15);
    close(&syscall["p50_ratio"], 116_736.0 / 100_352.0);
    // 800000 ns / 4 iterations / 1000 pages = 200 -> 920000 / 4 / 1000 = 230.
    close(&syscall["a"]["ns_per_iteration_per_page"], 200.0);
    close(&syscall["b"]["ns_per_iteration_per_page"], 230.0);
    close(&syscall["delta_ns_per_page"], 30.0);
    close(&syscall["share_of_workload_delta"], 1.0);
    // Histograms 8 vs 8 in two buckets: U = 0, var = 64/12 (17 - 1008/240).
    close(
        &syscall["test"]["z"],
        -32.0 / (64.0f64 / 12.0 * (17.0 - 1008.0 / 240.0)).sqrt(),
    );
    close(&syscall["test"]["p_value"], 1.0753e-4);
    let pte = &targets[1];
    close(&pte["a"]["ns_per_iteration_per_page"], 100.0);
    close(&pte["b"]["ns_per_iteration_per_page"], 125.0);
    close(&pte["delta_ns_per_page"], 25.0);
    close(&pte["share_of_workload_delta"], 25.0 / 30.0);
    close(&pte["mean_ratio"], 1.25);
    close(&pte["p50_ratio"], 62_464.0 / 50_176.0);
    assert_eq!(pte["test"]["significant"], true);

    // Sampled: self share x syscall ns/page (200 in A, 230 in B), largest change first.
    let sampled = c["sampled"].as_array().unwrap();
    assert_eq!(sampled.len(), 2);
    assert_eq!(sampled[0]["name"], "change_pte_range");
    close(&sampled[0]["a_ns_per_page"], 100.0);
    close(&sampled[0]["b_ns_per_page"], 138.0);
    close(&sampled[0]["delta_ns_per_page"], 38.0);
    close(&sampled[0]["share_of_workload_delta"], 38.0 / 30.0);
    assert_eq!(sampled[1]["name"], "prot_commit_flush_ptes");
    close(&sampled[1]["b_ns_per_page"], 92.0);
    close(&sampled[1]["delta_ns_per_page"], -8.0);
    close(&sampled[1]["share_of_workload_delta"], -8.0 / 30.0);

    let text = compare(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("83 % of the +30.00 ns/page is in change_pte_range (+25.00 ns/page)"),
        "{text}"
    );
}

#[test]
fn different_workloads_are_refused_unless_forced() {
    let a = write(
        "wa",
        &report("6.16", 100_000, 100_000, latency(8, 1, 1, 2), latency(8, 1, 1, 2)),
    );
    let mut other = report("6.16", 100_000, 100_000, latency(8, 1, 1, 2), latency(8, 1, 1, 2));
    other["workload"]["mapping_mb"] = json!(64);
    let b = write("wb", &other);
    let output = compare(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1);
    assert!(
        stderr.starts_with("error: the workloads differ: A is shared-dirty-toggle 4 MiB"),
        "{stderr}"
    );
    assert!(
        stderr
            .trim_end()
            .ends_with("compare runs of the same workload, or pass --force"),
        "{stderr}"
    );
    assert!(
        compare(&[a.to_str().unwrap(), b.to_str().unwrap(), "--force"])
            .status
            .success()
    );
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
    let newer = write("newer", &json!({"schema_version": 99}));
    assert!(
        error(&newer)
            .ends_with("has report schema 99, newer than the 2 this mprotect-trace reads: upgrade mprotect-trace")
    );
}
