//! The workload, run as a user runs it: the real binary on this machine's kernel.

mod common;

use std::collections::HashMap;
use std::process::Output;

fn workload(args: &[&str]) -> Output {
    common::binary()
        .arg("workload")
        .args(args)
        .output()
        .expect("running mprotect-trace workload")
}

/// Parses the `result key=value ...` line of a successful run.
fn result_fields(args: &[&str]) -> HashMap<String, String> {
    let output = workload(args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "workload {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    common::result_fields(&stdout)
}

fn error_of(args: &[&str]) -> String {
    let output = workload(args);
    assert_eq!(output.status.code(), Some(1), "workload {args:?} should fail");
    assert!(
        output.stdout.is_empty(),
        "a failed run printed a result: {:?}",
        output.stdout
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "error is not one line: {stderr:?}");
    stderr.trim_end().to_owned()
}

#[test]
fn default_shape_reports_every_field_in_the_intended_state() {
    let fields = result_fields(&["--mapping-mb", "64", "--iterations", "200", "--warmup", "5"]);
    for key in [
        "pages",
        "mapping_mb",
        "iterations",
        "protect_ns_per_page",
        "restore_ns_per_page",
        "post_touch_ns_per_page",
        "iteration_ns_per_page",
        "iteration_ns_per_page_median",
        "kernel_page_kb",
        "mmu_page_kb",
        "anon_huge_kb",
        "thpeligible",
        "expected_match_ratio",
        "mprotect_calls",
    ] {
        assert!(fields.contains_key(key), "result line lacks {key}: {fields:?}");
    }
    assert_eq!(fields["scenario"], "shared-dirty-toggle");
    assert_eq!(fields["pages"], "16384");
    assert_eq!(fields["mapping_mb"], "64");
    assert_eq!(fields["iterations"], "200");
    assert_eq!(fields["expected_match_ratio"], "100");
    assert_eq!(fields["kernel_page_kb"], "4");
    assert_eq!(fields["mmu_page_kb"], "4");
    assert_eq!(fields["anon_huge_kb"], "0");
    assert_eq!(fields["mprotect_calls"], "410");
    let per_page: f64 = fields["iteration_ns_per_page"].parse().unwrap();
    let parts: f64 = ["protect_ns_per_page", "restore_ns_per_page", "post_touch_ns_per_page"]
        .iter()
        .map(|key| fields[*key].parse::<f64>().unwrap())
        .sum();
    assert!((per_page - parts).abs() < 0.05, "{per_page} != sum of phases {parts}");
}

#[test]
fn every_base_page_scenario_runs_in_its_intended_state() {
    for scenario in [
        "shared-dirty-toggle",
        "private-dirty-toggle",
        "shared-clean-toggle",
        "file-toggle",
        "single-protect",
        "region-toggle",
    ] {
        let fields = result_fields(&[
            "--scenario",
            scenario,
            "--mapping-mb",
            "8",
            "--iterations",
            "4",
            "--warmup",
            "1",
        ]);
        assert_eq!(fields["scenario"], scenario);
        assert_eq!(fields["expected_match_ratio"], "100", "{scenario}: {fields:?}");
        assert_eq!(fields["kernel_page_kb"], "4", "{scenario}");
        assert_eq!(fields["anon_huge_kb"], "0", "{scenario}");
    }
}

#[test]
fn region_toggle_defaults_to_a_4_mib_region() {
    let fields = result_fields(&["--scenario", "region-toggle", "--iterations", "3", "--warmup", "0"]);
    assert_eq!(fields["mapping_mb"], "4");
    assert_eq!(fields["pages"], "1024");
}

#[test]
fn thp_toggle_maps_huge_pages_or_says_why_not() {
    const ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
    let thp = std::fs::read_to_string(ENABLED).ok();
    let args = [
        "--scenario",
        "thp-toggle",
        "--mapping-mb",
        "8",
        "--iterations",
        "4",
        "--warmup",
        "1",
    ];
    match thp {
        Some(setting) if !setting.contains("[never]") => {
            let fields = result_fields(&args);
            assert_eq!(fields["anon_huge_kb"], "8192", "{fields:?}");
            assert_eq!(fields["expected_match_ratio"], "100");
        }
        Some(_) => {
            eprintln!("skipped: THP is [never] here; checking the reason instead");
            assert!(error_of(&args).contains("[never]"));
        }
        None => {
            eprintln!("skipped: no THP in this kernel; checking the reason instead");
            assert!(error_of(&args).contains("CONFIG_TRANSPARENT_HUGEPAGE"));
        }
    }
}

#[test]
fn mprotect_calls_count_every_call_of_every_thread_and_round() {
    let toggle = result_fields(&[
        "--mapping-mb",
        "4",
        "--iterations",
        "7",
        "--warmup",
        "3",
        "--rounds",
        "2",
        "--threads",
        "2",
    ]);
    assert_eq!(toggle["mprotect_calls"], (2 * (7 + 3) * 2 * 2).to_string());
    let single = result_fields(&[
        "--scenario",
        "single-protect",
        "--mapping-mb",
        "4",
        "--iterations",
        "7",
        "--warmup",
        "3",
    ]);
    assert_eq!(single["mprotect_calls"], "10");
    let pinned = result_fields(&[
        "--mapping-mb",
        "4",
        "--iterations",
        "5",
        "--warmup",
        "0",
        "--cpu",
        "0",
        "--no-touch",
    ]);
    assert_eq!(pinned["mprotect_calls"], "10");
}

#[test]
fn json_output_has_the_same_counts_and_per_iteration_samples() {
    let output = workload(&["--mapping-mb", "4", "--iterations", "6", "--warmup", "2", "--json"]);
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(json["mprotect_calls"], 16);
    assert_eq!(json["per_iteration_ns"]["protect"].as_array().map(Vec::len), Some(6));
}

#[test]
fn bad_input_is_one_line_naming_the_limit() {
    assert_eq!(
        error_of(&["--mapping-mb", "0"]),
        "error: --mapping-mb must be at least 1 (got 0)"
    );
    assert_eq!(
        error_of(&["--iterations", "0"]),
        "error: --iterations must be at least 1 (got 0)"
    );
    assert_eq!(
        error_of(&["--threads", "0"]),
        "error: --threads must be at least 1 (got 0)"
    );
    let too_big = error_of(&["--mapping-mb", "100000000"]);
    assert!(
        too_big.starts_with("error: --mapping-mb 100000000 x 1 thread(s) needs 100000000 MiB but MemAvailable is ")
            && too_big.ends_with(" MiB: lower --mapping-mb or --threads"),
        "{too_big}"
    );
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        error_of(&["--cpu", "4096"]),
        format!(
            "error: --cpu 4096 is out of range: this process may run on CPUs 0-{}",
            cpus - 1
        )
    );
    assert_eq!(
        error_of(&["--scenario", "thp-toggle", "--mapping-mb", "3"]),
        "error: --mapping-mb must be a multiple of 2 for thp-toggle (got 3): it maps whole 2 MiB huge pages"
    );
}

#[test]
fn unknown_scenario_is_refused_with_the_valid_names() {
    let output = workload(&["--scenario", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: invalid value 'nope' for '--scenario <SCENARIO>'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("shared-dirty-toggle") && stderr.contains("region-toggle"),
        "{stderr}"
    );
}

/// On a machine with one NUMA node the NUMA-hinting scenario is refused in
/// one line, by `run` before it attaches anything and by `workload`, naming
/// the lab option that gives a guest two (its runs are in vm-test).
#[test]
fn numa_hinting_without_two_nodes_is_refused_in_one_line() {
    let online = std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_default();
    if online.trim() != "0" {
        common::skip(
            "numa_hinting_without_two_nodes_is_refused_in_one_line",
            &format!("this machine has NUMA nodes {}", online.trim()),
        );
        return;
    }
    let expected = "error: --scenario numa-hinting needs two NUMA nodes and this machine has 1: run it in a guest with `mprotect-trace lab --numa-nodes 2`";
    assert_eq!(error_of(&["--scenario", "numa-hinting"]), expected);
    let run = common::binary()
        .args(["run", "--scenario", "numa-hinting"])
        .output()
        .expect("running mprotect-trace run");
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&run.stderr).trim_end(), expected);
}
