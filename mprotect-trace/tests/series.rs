//! `run --repeat` and `ab` on this machine's real kernel (root): an A/A
//! check of how often identical runs are called different, and a real
//! difference found with interleaved runs.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;

fn mprotect_trace(args: &[&str]) -> Output {
    common::binary().args(args).output().expect("running mprotect-trace")
}

fn succeeded(args: &[&str]) -> Output {
    let output = mprotect_trace(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The one-line error of a refused command line.
fn refused(args: &[&str]) -> String {
    let output = mprotect_trace(args);
    assert_eq!(output.status.code(), Some(1), "{args:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// A small, quick workload: 8 MiB, 40 iterations.
const SMALL: [&str; 4] = ["--mapping-mb", "8", "--iterations", "40"];

/// Design: 10 runs of one configuration, made by this test; every way of
/// splitting them into two sides of 5 (126 comparisons, run-01 always in
/// A: the two-sided test is symmetric) is compared by `compare`, each
/// side a directory of links to its runs. For every metric the share
/// called significant must stay at or below alpha (0.05). With an exact
/// rank test on one value per run this holds for any runs; a test on
/// iterations, or a wrong p-value, breaks it. Deterministic given the 10
/// saved reports (kept in the printed directory until the next run).
#[test]
fn identical_runs_are_called_different_at_most_at_alpha() {
    let dir = common::out_dir("series", "aa");
    let runs = dir.join("runs");
    let output = succeeded(
        &[
            &["run", "--repeat", "10", "--no-sample", "-o", runs.to_str().unwrap()],
            &SMALL[..],
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().filter(|l| l.starts_with("run ")).count(), 10, "{stderr}");
    let names: Vec<String> = (1..=10).map(|i| format!("run-{i:02}")).collect();
    let splits: Vec<Vec<usize>> = combinations(10, 5).into_iter().filter(|s| s[0] == 0).collect();
    assert_eq!(splits.len(), 126);

    let mut significant: Vec<(String, usize)> = Vec::new();
    let mut iteration_level = 0;
    for (n, split) in splits.iter().enumerate() {
        let side = |name: &str, members: &[usize]| -> PathBuf {
            let side = dir.join(format!("split-{n:03}-{name}"));
            std::fs::create_dir_all(&side).unwrap();
            for &i in members {
                std::os::unix::fs::symlink(runs.join(&names[i]), side.join(&names[i])).unwrap();
            }
            side
        };
        let others: Vec<usize> = (0..10).filter(|i| !split.contains(i)).collect();
        let (a, b) = (side("a", split), side("b", &others));
        let output = succeeded(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
        let comparison: Value = serde_json::from_slice(&output.stdout).unwrap();
        for metric in comparison["against_baseline"][0]["metrics"].as_array().unwrap() {
            let name = metric["metric"].as_str().unwrap().to_owned();
            let count = match significant.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => &mut entry.1,
                None => {
                    significant.push((name, 0));
                    &mut significant.last_mut().unwrap().1
                }
            };
            assert_ne!(metric["verdict"], "no-claim", "{metric}");
            *count += usize::from(metric["verdict"] == "significant");
        }
        // What the per-iteration design (compare before run-level
        // statistics) would have said, for the record.
        let iterations = |members: &[usize]| -> Vec<f64> {
            members
                .iter()
                .flat_map(|&i| per_iteration_ns(&runs.join(&names[i])))
                .collect()
        };
        let test = mprotect_trace::statistics::rank_test(&iterations(split), &iterations(&others)).unwrap();
        iteration_level += usize::from(test.significant());
    }
    println!("A/A: 126 splits of 10 identical runs ({})", runs.display());
    for (name, count) in &significant {
        println!("  {name}: {count} of 126 significant");
        assert!(
            *count as f64 <= 0.05 * 126.0,
            "{name}: {count} of 126 called significant"
        );
    }
    println!("  per-iteration design, for comparison: {iteration_level} of 126 significant");
    assert_eq!(significant.len(), 3, "{significant:?}");
}

/// Every run's per-iteration ns/page, as the run recorded them.
fn per_iteration_ns(dir: &Path) -> Vec<f64> {
    let report = common::report(dir);
    let Some(w) = report.workload else {
        panic!("{} has no workload", dir.display())
    };
    let p = &w.per_iteration_ns;
    (0..p.protect.len())
        .map(|i| (p.protect[i] + p.restore[i] + p.post_touch[i]) as f64 / w.pages as f64)
        .collect()
}

/// Every `k`-subset of `0..n`, in lexicographic order.
fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if n < k {
        return Vec::new();
    }
    // Subsets without n-1, then with it.
    let mut all = combinations(n - 1, k);
    for mut subset in combinations(n - 1, k - 1) {
        subset.push(n - 1);
        all.push(subset);
    }
    all.sort();
    all
}

#[test]
fn interleaved_runs_find_a_real_difference() {
    let dir = common::out_dir("series", "ab");
    let side = |scenario: &str| format!("--scenario {scenario} --mapping-mb 16 --iterations 60");
    let output = succeeded(&[
        "ab",
        "--repeat",
        "5",
        "-o",
        dir.to_str().unwrap(),
        "--a",
        &side("thp-toggle"),
        "--b",
        &side("shared-dirty-toggle"),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let order: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.split_once(" run ").map(|(label, _)| label))
        .collect();
    assert_eq!(order, ["A", "B", "A", "B", "A", "B", "A", "B", "A", "B"], "{stderr}");
    let comparison: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(comparison["design"]["order"]["kind"], "interleaved");
    assert_eq!(comparison["design"]["runs"], serde_json::json!([5, 5]));
    let pair = &comparison["against_baseline"][0];
    assert_eq!(pair["differences"][0]["setting"], "workload.scenario");
    let workload = &pair["metrics"][0];
    assert_eq!(workload["metric"], "iteration ns/page (run median)");
    assert_eq!(workload["verdict"], "significant", "{workload}");
    // Base pages cost far more per page than one huge PMD: B/A well above 1.
    let low = workload["ratio_interval"]["low"].as_f64().unwrap();
    assert!(low > 1.0, "the interval includes no change: {workload}");
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "thp-toggle vs shared-dirty-toggle: B/A {:.2} [{low:.2}, {:.2}], p = {:.4}",
        number(&workload["ratio"]),
        number(&workload["ratio_interval"]["high"]),
        number(&workload["test"]["p_value"])
    );
    for file in ["comparison.txt", "comparison.json", "comparison.html", "diff-flame.svg"] {
        assert!(dir.join(file).is_file(), "{file} not written");
    }
    for (label, scenario) in [("a", "thp-toggle"), ("b", "shared-dirty-toggle")] {
        for run in 1..=5 {
            let report = common::report(&dir.join(label).join(format!("run-{run:02}")));
            let settings = report.settings.expect("settings recorded");
            assert_eq!(settings.workload.expect("workload settings").scenario, scenario);
        }
    }
    // The sides are ordinary run directories that compare reads again; on
    // its own it refuses their different scenarios without --force.
    let (a, b) = (dir.join("a"), dir.join("b"));
    let error = refused(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(
        error.starts_with("error: A and B differ in workload.scenario"),
        "{error}"
    );
    succeeded(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--force"]);
}

#[test]
fn bad_series_are_refused_in_one_line_before_tracing() {
    assert_eq!(
        refused(&["run", "--repeat", "0"]),
        "error: --repeat must be at least 1 (got 0)"
    );
    assert_eq!(
        refused(&["ab", "-o", "/tmp/x", "--a", "--bogus"]),
        "error: --a \"--bogus\": unexpected argument '--bogus' found"
    );
    assert_eq!(
        refused(&["ab", "-o", "/tmp/x", "--b", "--iterations 5 -o elsewhere"]),
        "error: --b \"--iterations 5 -o elsewhere\": -o is not a side's option; give it to `ab` itself"
    );
    let used = common::out_dir("series", "used");
    std::fs::create_dir_all(used.join("run-01")).unwrap();
    let error = refused(&["run", "--repeat", "2", "-o", used.to_str().unwrap()]);
    assert!(error.ends_with("run-01): choose a new -o DIR"), "{error}");
}

#[test]
fn an_interrupted_series_stops_and_keeps_what_it_has() {
    let dir = common::out_dir("series", "interrupted");
    // Long enough that the signal surely lands inside the first run.
    let tracer = common::Tracer::start(
        &dir,
        &[
            "--repeat",
            "3",
            "--mapping-mb",
            "8",
            "--iterations",
            "1000000",
            "--no-sample",
        ],
    );
    tracer.signal(libc::SIGINT);
    let (status, stderr) = tracer.finish();
    assert_eq!(status.code(), Some(130), "{stderr:?}");
    let stopped = format!(
        "error: run 1/3 did not complete (Interrupted); its partial report is {}, the series stops",
        dir.join("run-01").join("report.json").display()
    );
    assert!(stderr.contains(&stopped), "{stderr:?}");
    assert!(common::report(&dir.join("run-01")).partial);
    assert!(!dir.join("run-02").exists());
}
