//! Kernels without what a tracer leans on, made real for one process: a
//! private mount namespace with no `/sys/kernel/btf/vmlinux`, or with no
//! tracefs and no right to mount it (root without CAP_SYS_ADMIN, as in a
//! container). The kernel underneath, and everything attached, is real.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// An empty tmpfs over /sys/kernel/btf: user space finds no vmlinux BTF.
const HIDE_BTF: &str = "mount -t tmpfs none /sys/kernel/btf && ! test -e /sys/kernel/btf/vmlinux";
/// tracefs unmounted wherever it was (it may not have been mounted at all).
const HIDE_TRACEFS: &str = "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
                            ! test -e /sys/kernel/tracing/events";

/// Runs the tool with `args` in a private mount namespace prepared by the
/// shell commands `prepare`; `without_sys_admin` drops CAP_SYS_ADMIN from
/// the tool (and so the right to mount anything).
fn in_namespace(prepare: &str, without_sys_admin: bool, args: &[&str]) -> Output {
    let exec = if without_sys_admin {
        r#"exec setpriv --bounding-set=-sys_admin -- "$0" "$@""#
    } else {
        r#"exec "$0" "$@""#
    };
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{prepare} && {exec}"))
        .arg(env!("CARGO_BIN_EXE_mprotect-trace"))
        .args(args)
        .output()
        .expect("unshare");
    // The namespace's preparation failing would make every check moot.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("unshare:") && !stderr.contains("setpriv:"), "{stderr}");
    output
}

fn out_dir(name: &str) -> PathBuf {
    common::out_dir("env", name)
}

fn one_line_error(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

fn report(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json")).expect("report JSON")
}

#[test]
fn without_btf_fentry_is_refused_by_name_and_the_tracepoints_still_count_exactly() {
    let doctor = in_namespace(HIDE_BTF, false, &["doctor"]);
    let doctor_out = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor_out.contains("/sys/kernel/btf/vmlinux is missing (a kernel built with CONFIG_DEBUG_INFO_BTF=y has it)"),
        "{doctor_out}"
    );
    assert!(
        doctor_out.contains("change_protection        kallsyms: yes; BTF: unknown (no BTF here)"),
        "{doctor_out}"
    );

    let dir = out_dir("no-btf-forced");
    let forced = in_namespace(
        HIDE_BTF,
        false,
        &["run", "--backend", "fentry", "-o", dir.to_str().unwrap()],
    );
    assert_eq!(
        one_line_error(&forced),
        "error: --backend fentry cannot work here: fentry needs the kernel's BTF: /sys/kernel/btf/vmlinux is \
         missing (a kernel built with CONFIG_DEBUG_INFO_BTF=y has it) (try --backend auto)"
    );
    assert!(!dir.join("report.json").exists());

    let dir = out_dir("no-btf");
    let args = [
        "run",
        "--iterations",
        "10",
        "--warmup",
        "2",
        "--mapping-mb",
        "4",
        "--no-sample",
        "-o",
    ];
    let traced = in_namespace(HIDE_BTF, false, &[&args[..], &[dir.to_str().unwrap()]].concat());
    assert!(traced.status.success(), "{traced:?}");
    let report = report(&dir);
    assert_eq!(report["capabilities"]["btf"]["available"], false);
    assert_eq!(report["capabilities"]["fentry"]["summary"], "needs BTF");
    // Two calls per iteration, warm-up included: the tracepoints need no BTF.
    assert_eq!(report["lost"]["syscall_enter"], 24);
    assert_eq!(report["syscall"]["latency_ns"]["count"], 24);
    let table = String::from_utf8_lossy(&traced.stdout);
    assert!(
        table.contains("no source: parameters are found by name in BTF, and /sys/kernel/btf/vmlinux is missing"),
        "{table}"
    );
}

#[test]
fn without_tracefs_or_the_right_to_mount_it_the_error_names_both_ways_out() {
    let dir = out_dir("no-tracefs");
    let refused = in_namespace(
        HIDE_TRACEFS,
        true,
        &["run", "--iterations", "4", "-o", dir.to_str().unwrap()],
    );
    assert_eq!(
        one_line_error(&refused),
        "error: cannot attach the mprotect syscall tracepoints: tracefs is not mounted and mounting it at \
         /sys/kernel/tracing failed: Operation not permitted (os error 1) (mount it as root: mount -t tracefs \
         nodev /sys/kernel/tracing); or pass --no-syscall to sample stacks only"
    );
    assert!(!dir.join("report.json").exists());

    // The second way out: stack sampling needs no tracefs. At 9999 Hz: at
    // the default 999 Hz a run had ~13 samples, and once none of them
    // inside mprotect (the debug build's page touches take most of it).
    let args = [
        "run",
        "--no-syscall",
        "--iterations",
        "40",
        "--mapping-mb",
        "16",
        "--sample-hz",
        "9999",
        "-o",
    ];
    let sampled = in_namespace(HIDE_TRACEFS, true, &[&args[..], &[dir.to_str().unwrap()]].concat());
    assert!(sampled.status.success(), "{sampled:?}");
    let report = report(&dir);
    assert_eq!(report["capabilities"]["tracefs"]["available"], false);
    assert_eq!(report["syscall"]["backend"], "none");
    assert!(
        report["sampling"]["in_syscall_samples"].as_u64().unwrap() > 0,
        "{}",
        report["sampling"]
    );
    let functions: Vec<&str> = report["sampling"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(functions.contains(&"change_protection"), "{functions:?}");
}
