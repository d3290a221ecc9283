//! Tracepoint targets (`--probe category:name`, `--probe-field`) and the
//! per-CPU breakdown (`--per-cpu`), counted exactly against what the
//! built-in workload is known to do.

mod common;

use mprotect_trace::model::{CpuCalls, Report};

const PROT_READ: i128 = libc::PROT_READ as i128;
const PROT_READ_WRITE: i128 = (libc::PROT_READ | libc::PROT_WRITE) as i128;

/// The workload's own mprotect() calls: two per iteration, warmup included.
fn workload_calls(report: &Report) -> u64 {
    let workload = report.workload.as_ref().expect("a workload result");
    2 * (workload.iterations + workload.warmup) * workload.rounds * workload.threads
}

/// tlb:tlb_flush is x86's; elsewhere the tests that use it say so and stop.
fn has_tlb_flush(test: &str) -> bool {
    let present = std::path::Path::new("/sys/kernel/tracing/events/tlb/tlb_flush").exists();
    if !present {
        common::skip(test, "this kernel has no tlb:tlb_flush tracepoint (x86 only)");
    }
    present
}

fn sum(cpus: &[CpuCalls]) -> u64 {
    cpus.iter().map(|cpu| cpu.calls).sum()
}

#[test]
fn a_tracepoint_counts_exactly_the_events_of_the_traced_process_by_field_value() {
    if !has_tlb_flush("a_tracepoint_counts_exactly") {
        return;
    }
    let dir = common::out_dir("tracepoints", "prot");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    // Pinned to the last CPU: every event must be counted there.
    let cpu = (cpus - 1).to_string();
    let output = common::binary()
        .args([
            "run",
            "--iterations",
            "30",
            "--mapping-mb",
            "4",
            "--no-sample",
            "--cpu",
            &cpu,
        ])
        .args(["--probe", "syscalls:sys_enter_mprotect", "--probe", "tlb:tlb_flush"])
        .args(["--probe-field", "syscalls:sys_enter_mprotect:prot", "--per-cpu", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = common::report(&dir);
    let calls = workload_calls(&report);
    assert_eq!(calls, 70);

    let event = report
        .targets
        .iter()
        .find(|t| t.attachment.name == "syscalls:sys_enter_mprotect")
        .expect("the tracepoint target");
    assert_eq!(event.attachment.backend.label(), "tracepoint");
    assert_eq!(event.calls, Some(calls));
    // The workload toggles PROT_READ and PROT_READ|PROT_WRITE, half each.
    let field = event.field_values.as_ref().expect("the prot field's values");
    assert_eq!(field.field, "prot");
    let values: Vec<(i128, u64)> = field.values.iter().map(|v| (v.value, v.count)).collect();
    assert_eq!(values, [(PROT_READ, calls / 2), (PROT_READ_WRITE, calls / 2)]);
    assert_eq!(field.not_stored, 0);

    // Per CPU: every target's CPUs add up to its total, and the pinned
    // workload's calls all happened on its CPU.
    let on_cpu = |cpus: &[CpuCalls]| cpus.iter().map(|c| (c.cpu as usize, c.calls)).collect::<Vec<_>>();
    let syscall = report.syscall.per_cpu.as_deref().expect("the syscall's per-CPU calls");
    assert_eq!(on_cpu(syscall), [(cpus - 1, calls)]);
    assert_eq!(syscall[0].latency.as_ref().map(|l| l.calls), Some(calls));
    assert_eq!(on_cpu(event.per_cpu.as_deref().unwrap()), [(cpus - 1, calls)]);
    for target in report.targets.iter().filter(|t| t.calls.is_some()) {
        let per_cpu = target
            .per_cpu
            .as_deref()
            .expect("per-CPU calls for every counted target");
        assert_eq!(Some(sum(per_cpu)), target.calls, "{}", target.attachment.name);
    }
    let flushes = report
        .targets
        .iter()
        .find(|t| t.attachment.name == "tlb:tlb_flush")
        .unwrap();
    assert!(flushes.field_values.is_none());

    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("  syscalls:sys_enter_mprotect by prot (70 events)\n"),
        "{table}"
    );
    let row = format!("\n{:<28} {:>4} {calls:>9} ", "mprotect (syscall)", cpus - 1);
    assert!(table.contains(&row), "{table}");
}

#[test]
fn field_names_come_from_the_events_format_and_symbolic_values_are_named() {
    if !has_tlb_flush("field_names_come_from_the_events_format") {
        return;
    }
    let dir = common::out_dir("tracepoints", "tlb");
    let output = common::binary()
        .args([
            "run",
            "--iterations",
            "20",
            "--mapping-mb",
            "4",
            "--no-sample",
            "--threads",
            "2",
        ])
        .args(["--probe-field", "tlb:tlb_flush:reason", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = common::report(&dir);
    let flushes = report
        .targets
        .iter()
        .find(|t| t.attachment.name == "tlb:tlb_flush")
        .unwrap();
    let field = flushes.field_values.as_ref().unwrap();
    // Every event has one value; reasons are named by the kernel's
    // __print_symbolic table (0 is "flush on task switch" since 4.x).
    assert_eq!(Some(field.total()), flushes.calls);
    for value in &field.values {
        if value.value == 0 {
            assert_eq!(value.name.as_deref(), Some("flush on task switch"));
        }
        assert!(value.name.is_some(), "reason {} has no name", value.value);
    }
    // Per-CPU data only when asked for.
    assert!(flushes.per_cpu.is_none() && report.syscall.per_cpu.is_none());
}

#[test]
fn unknown_tracepoints_and_fields_are_refused_naming_what_exists() {
    if !has_tlb_flush("unknown_tracepoints_and_fields_are_refused") {
        return;
    }
    let cases: [(&[&str], &str); 4] = [
        (
            &["--probe", "tlb:tlb_flsh"],
            "error: no tracepoint tlb:tlb_flsh in /sys/kernel/tracing/events: did you mean tlb:tlb_flush",
        ),
        (
            &["--probe-field", "tlb:tlb_flush:reasn"],
            "error: --probe-field tlb:tlb_flush:reasn: no field reasn; its integer fields: reason, pages\n",
        ),
        (
            &["--probe-field", "tlb:tlb_flush"],
            "error: --probe-field tlb:tlb_flush: give category:name:field, e.g. tlb:tlb_flush:reason\n",
        ),
        (
            &[
                "--probe-field",
                "tlb:tlb_flush:reason",
                "--probe-field",
                "tlb:tlb_flush:pages",
            ],
            "error: --probe-field tlb:tlb_flush:pages: one field an event (tlb:tlb_flush:reason is already distributed); run again for the other\n",
        ),
    ];
    for (args, expected) in cases {
        let dir = common::out_dir("tracepoints", "refused");
        let output = common::binary()
            .arg("run")
            .args(args)
            .arg("-o")
            .arg(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }
}

#[test]
fn doctor_looks_tracepoints_up_with_their_integer_fields() {
    if !has_tlb_flush("doctor_looks_tracepoints_up") {
        return;
    }
    let id = std::fs::read_to_string("/sys/kernel/tracing/events/tlb/tlb_flush/id").unwrap();
    let output = common::binary()
        .args(["doctor", "--probe", "tlb:tlb_flush"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let line = format!(
        "  tlb:tlb_flush            tracepoint event id {}; integer fields for --probe-field: reason, pages\n",
        id.trim()
    );
    assert!(text.contains(&line), "{text}");
}
