//! mprot-tw4m, libMicro's mprotect benchmark as LKP runs it, on this
//! machine's kernel (root): every call it makes is the tracer's count
//! exactly, it prints libMicro's figure (median µs per call, outliers
//! removed), and it records the THP settings it ran in.

mod common;

use mprotect_trace::workload::{self, Scenario, WorkloadOptions, libmicro_median, mthp};

use common::result_fields;

/// The THP fields the result line should carry on this machine.
fn thp_fields_here() -> Option<(String, String)> {
    let mode = mthp::thp_enabled()?;
    let sizes: Vec<String> = mthp::enabled_sizes()
        .into_iter()
        .map(|(kb, mode)| format!("{kb}kB:{mode}"))
        .collect();
    let sizes = if sizes.is_empty() {
        "none".to_owned()
    } else {
        sizes.join(",")
    };
    Some((mode, sizes))
}

#[test]
fn traced_run_counts_exactly_the_calls_of_its_batches() {
    const ITERATIONS: u64 = 20;
    const WARMUP: u64 = 2;
    const REGIONS: u64 = 10;
    let dir = common::out_dir("tw4m", "run");
    let output = common::binary()
        .args(["run", "-o", dir.to_str().unwrap()])
        .args(["--scenario", "mprot-tw4m", "--iterations", "20", "--warmup", "2"])
        .output()
        .expect("running mprotect-trace run");
    assert!(
        output.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = common::report(&dir);
    let workload = report.workload.as_ref().expect("a workload run");
    // One call per region per batch, warmup batches included.
    let calls = REGIONS * (ITERATIONS + WARMUP);
    assert_eq!(workload.mprotect_calls, calls);
    assert_eq!(report.syscall.latency.calls, calls);
    assert_eq!(workload.regions, Some(REGIONS));
    assert_eq!(workload.iterations_done, ITERATIONS + WARMUP);
    assert_eq!(workload.measured_iterations, ITERATIONS);
    // Every call covers one 4 MiB region; half go to PROT_NONE, half back.
    let pages = &report.syscall.pages_per_call;
    assert_eq!((pages.count, pages.min, pages.max), (calls, Some(1024), Some(1024)));
    let flags = |name: &str| {
        report
            .syscall
            .prot_flags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
    };
    assert_eq!(flags("PROT_NONE"), Some(calls / 2));
    assert_eq!(flags("PROT_READ|PROT_WRITE"), Some(calls / 2));
    assert_eq!(workload.pages, REGIONS * 1024);
    assert_eq!(workload.expected_match_ratio, 100, "{workload:?}");
    let us = workload.mprotect_call_us_median.expect("the µs figure");
    assert!(us > 0.0, "{us}");
    // Its samples are the batches' phases over their calls: the figure is one of them.
    let p = &workload.per_iteration_ns;
    let samples: Vec<f64> = (0..p.protect.len())
        .map(|i| (p.protect[i] + p.restore[i] + p.post_touch[i]) as f64 / REGIONS as f64 / 1000.0)
        .collect();
    assert_eq!(libmicro_median(&samples), Some(us));

    let stdout = String::from_utf8_lossy(&output.stdout);
    let fields = result_fields(&stdout);
    assert_eq!(fields["mprotect_call_us_median"], format!("{us:.3}"));
    assert_eq!(fields["mprotect_calls"], calls.to_string());
    assert_eq!(fields["regions"], REGIONS.to_string());
    assert!(
        workload
            .result_line()
            .contains(&format!("mprotect_call_us_median={us:.3}"))
    );
}

#[test]
fn workload_prints_the_microseconds_per_call() {
    let output = common::binary()
        .args(["workload", "--scenario", "mprot-tw4m", "--iterations", "5"])
        .output()
        .expect("running mprotect-trace workload");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "workload failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fields = result_fields(&stdout);
    let us: f64 = fields["mprotect_call_us_median"].parse().expect("a number");
    assert!(us > 0.0, "{stdout}");
    assert_eq!(fields["scenario"], "mprot-tw4m");
    assert_eq!(fields["regions"], "10");
    assert_eq!(fields["mapping_mb"], "4");
    assert_eq!(fields["pages"], "10240");
    // 10 regions x (5 batches + the default 5 of warmup).
    assert_eq!(fields["mprotect_calls"], "100");
    assert_eq!(fields["expected_match_ratio"], "100", "{stdout}");
    match thp_fields_here() {
        Some((mode, sizes)) => {
            assert_eq!(fields["thp_enabled"], mode);
            assert_eq!(fields["mthp_enabled"], sizes);
        }
        None => assert!(!fields.contains_key("thp_enabled"), "{stdout}"),
    }
    // The base page size: KernelPageSize of the regions.
    let page_kb = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } / 1024;
    assert_eq!(fields["kernel_page_kb"], page_kb.to_string());
}

#[test]
fn regions_set_through_the_library_count_one_call_each_per_batch() {
    let options = WorkloadOptions {
        scenario: Scenario::MprotTw4m,
        mapping_mb: Some(2),
        iterations: 4,
        warmup: 1,
        regions: 3,
        ..WorkloadOptions::DEFAULT
    };
    let plan = options.plan().expect("a valid plan");
    let result = workload::run(&plan, &|| Ok(()), true).expect("the workload runs");
    assert_eq!(result.mprotect_calls, 3 * (4 + 1));
    assert_eq!(result.regions, Some(3));
    assert_eq!(result.pages, 3 * 512);
    assert_eq!(result.mapping_mb, 2);
    assert_eq!(result.per_iteration_ns.protect.len(), 4);
    assert_eq!(result.expected_match_ratio, 100, "{result:?}");
    assert!(result.mprotect_call_us_median.is_some_and(|us| us > 0.0));

    let err = WorkloadOptions { regions: 0, ..options }.plan().unwrap_err();
    assert_eq!(err.to_string(), "--regions must be at least 1 (got 0)");
}

#[test]
fn other_scenarios_report_no_microseconds_per_call() {
    let output = common::binary()
        .args([
            "workload",
            "--scenario",
            "region-toggle",
            "--iterations",
            "3",
            "--warmup",
            "0",
        ])
        .output()
        .expect("running mprotect-trace workload");
    assert!(output.status.success());
    let fields = result_fields(&String::from_utf8_lossy(&output.stdout));
    assert!(!fields.contains_key("mprotect_call_us_median"));
    assert!(!fields.contains_key("regions"));
    assert_eq!(fields["mprotect_calls"], "6");
}

/// libMicro's median by hand. 42 samples: 21 of 1 µs, 20 of 2 µs, one of
/// 1000 µs. More than 40, so outliers go: mean 1061/42 = 25.262, standard
/// deviation (n - 1) sqrt(973 298 / 41) = 154.07, so the bounds are
/// -436.9 and 487.5 and 1000 goes. 41 left, still more than 40: mean
/// 61/41 = 1.4878, deviation sqrt(10.244 / 40) = 0.506, bounds -0.03 and
/// 3.006: none goes, which ends it. The median of 41 sorted samples is the
/// one at 41 / 2 = 20: the last of the 1s. Without the removal it would
/// be sorted[21] of the 42, a 2 (and the mean of the two middle ones 1.5).
#[test]
fn libmicro_median_removes_outliers_by_hand() {
    let mut samples = vec![2.0; 20];
    samples.push(1000.0);
    samples.extend([1.0; 21]);
    assert_eq!(libmicro_median(&samples), Some(1.0));
    // The same without the outlier: 41 samples, none beyond 3 sigma.
    samples.retain(|&s| s < 1000.0);
    assert_eq!(libmicro_median(&samples), Some(1.0));
    // 40 or fewer are taken as they are: the outlier stays and moves the median.
    let mut few = vec![1.0; 20];
    few.extend([2.0; 19]);
    few.push(1000.0);
    assert_eq!(libmicro_median(&few), Some(2.0));
}
