//! `doctor` against the real kernel, its findings checked against
//! `/proc/kallsyms` and `bpftool`'s BTF dump read independently.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const TARGETS: [&str; 6] = [
    "change_protection",
    "change_pte_range",
    "modify_prot_start_ptes",
    "mprotect_fixup",
    "modify_prot_commit_ptes",
    "folio_pte_batch",
];
const EXTRA: &str = "prot_commit_flush_ptes";

fn doctor_json(extra: &[&str]) -> Value {
    let mut command = common::binary();
    command.args(["doctor", "--json"]);
    for name in extra {
        command.args(["--probe", name]);
    }
    let output = command.output().expect("running doctor");
    assert!(
        output.status.success(),
        "doctor failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("doctor --json prints JSON")
}

fn kallsyms_functions() -> HashSet<String> {
    std::fs::read_to_string("/proc/kallsyms")
        .expect("reading /proc/kallsyms")
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 3 && (fields[1] == "t" || fields[1] == "T")).then(|| fields[2].to_owned())
        })
        .collect()
}

/// Parameter names of every BTF function, from `bpftool btf dump ... format raw`.
fn bpftool_functions() -> HashMap<String, Vec<String>> {
    let output = Command::new("bpftool")
        .args(["btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"])
        .output()
        .expect("bpftool is installed by `cargo xtask setup`");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    // "[id] FUNC_PROTO ..." followed by "\t'name' type_id=..." lines.
    let mut protos: HashMap<String, Vec<String>> = HashMap::new();
    let mut current: Option<String> = None;
    let mut funcs: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(param) = line.strip_prefix('\t') {
            if let (Some(id), Some(name)) = (&current, param.split('\'').nth(1)) {
                protos.entry(id.clone()).or_default().push(name.to_owned());
            }
            continue;
        }
        current = None;
        let id = line.split(']').next().unwrap_or("").trim_start_matches('[').to_owned();
        if line.contains("] FUNC_PROTO ") {
            protos.entry(id.clone()).or_default();
            current = Some(id);
        } else if line.contains("] FUNC '") {
            let name = line.split('\'').nth(1).unwrap_or("").to_owned();
            let proto = line
                .split("type_id=")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned();
            funcs.push((name, proto));
        }
    }
    funcs
        .into_iter()
        .map(|(name, proto)| {
            let params = protos.get(&proto).cloned().unwrap_or_default();
            (name, params)
        })
        .collect()
}

#[test]
fn symbol_findings_match_kallsyms_and_btf_read_independently() {
    let report = doctor_json(&[EXTRA]);
    let kallsyms = kallsyms_functions();
    let btf = bpftool_functions();
    let targets = report["targets"].as_array().expect("targets");
    // Where no backend works at all, that is every target's reason.
    let probes_work = ["fentry", "kprobes", "call_sites", "inlined_instances"]
        .iter()
        .any(|backend| report["capabilities"][backend]["available"] == true);
    let names: Vec<&str> = targets.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, [&TARGETS[..], &[EXTRA]].concat());
    for target in targets {
        let name = target["name"].as_str().unwrap();
        assert_eq!(target["in_kallsyms"], kallsyms.contains(name), "{name} in kallsyms");
        assert_eq!(target["in_btf"], btf.contains_key(name), "{name} in BTF");
        if let Some(params) = btf.get(name) {
            let reported: Vec<&str> = target["signature"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(&reported, params, "{name} parameter names");
        } else {
            assert!(target["signature"].is_null());
        }
        if probes_work && !kallsyms.contains(name) && !btf.contains_key(name) {
            assert_eq!(target["backend"], "none");
            assert!(
                target["reason"].as_str().unwrap().contains("inlined or absent"),
                "{target}"
            );
        }
    }
}

#[test]
fn reports_the_probe_backends_this_kernel_refuses_with_the_reason() {
    let report = doctor_json(&[]);
    let caps = &report["capabilities"];
    assert_eq!(report["usable"], true);
    assert_eq!(caps["btf"]["available"], Path::new("/sys/kernel/btf/vmlinux").exists());
    assert_eq!(caps["tracefs"]["available"], true, "doctor mounts tracefs as root");
    assert!(Path::new("/sys/kernel/tracing/events/syscalls/sys_enter_mprotect").exists());
    let kprobes_built = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    assert_eq!(caps["kprobes"]["available"], kprobes_built);
    if !kprobes_built {
        assert!(
            caps["kprobes"]["detail"].as_str().unwrap().contains("CONFIG_KPROBES"),
            "{caps}"
        );
    }
    if caps["fentry"]["available"] == false {
        let detail = caps["fentry"]["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("the kernel refused a fentry program on change_protection: "),
            "{detail}"
        );
        // Every function target then says both reasons.
        for target in report["targets"].as_array().unwrap() {
            if target["in_kallsyms"] == true && !kprobes_built {
                let reason = target["reason"].as_str().unwrap();
                assert!(reason.starts_with("no function probe: fentry refused"), "{reason}");
                assert!(reason.contains("kprobes not built"), "{reason}");
            }
        }
    }
}

#[test]
fn text_output_names_every_target_and_the_plan() {
    let output = common::binary().arg("doctor").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for line in [
        "kernel ",
        "BTF ",
        "lockdown ",
        "tracefs ",
        "perf sampling ",
        "fentry ",
        "kprobes ",
        "plan",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no {line:?} line in:\n{text}"
        );
    }
    for name in TARGETS {
        assert_eq!(
            text.matches(&format!("  {name} ")).count(),
            2,
            "{name} in targets and plan:\n{text}"
        );
    }
    assert!(text.contains("  mprotect syscall         tracepoint "), "{text}");
}

/// As nobody, without capabilities: what reading alone finds (the kernel,
/// BTF, the targets in kallsyms and BTF), every check that needs root
/// marked so, and why; exit 1, since nothing can trace as this user.
#[test]
fn without_root_it_reports_what_it_can_and_what_needs_root() {
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_mprotect-trace"))
        .args(["doctor", "--json"])
        .output()
        .expect("setpriv");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("doctor's JSON");
    let caps = &report["capabilities"];
    assert_eq!(caps["btf"]["available"], Path::new("/sys/kernel/btf/vmlinux").exists());
    for check in [
        &caps["syscall_tracepoints"],
        &caps["perf_sampling"],
        &caps["fentry"],
        &caps["kprobes"],
    ] {
        assert_eq!(check["summary"], "needs root", "{check}");
    }
    let why = report["unprivileged"].as_str().expect("the reason");
    assert!(
        why.starts_with("tracing needs root, or CAP_BPF and CAP_PERFMON"),
        "{why}"
    );
    // Targets are still found by name, as root finds them.
    let kallsyms = kallsyms_functions();
    for target in report["targets"].as_array().unwrap() {
        let name = target["name"].as_str().unwrap();
        assert_eq!(target["in_kallsyms"], kallsyms.contains(name), "{name}");
    }
    let text = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_mprotect-trace"))
        .arg("doctor")
        .output()
        .expect("setpriv");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("not checked as this user: what needs root loads or attaches a BPF program; tracing needs root"),
        "{text}"
    );
}

/// `doctor` and `run` give each target the same plan and the same reason
/// (one computation): a target absent from this kernel is not explained
/// one way by doctor and another by run.
#[test]
fn doctor_and_run_give_every_target_the_same_reason() {
    if unsafe { libc::geteuid() } != 0 {
        common::skip("doctor_and_run_give_every_target_the_same_reason", "run needs root");
        return;
    }
    let doctor = doctor_json(&[]);
    let dir = common::out_dir("doctor", "same-reason");
    let output = common::binary()
        .args([
            "run",
            "-o",
            dir.to_str().unwrap(),
            "--iterations",
            "2",
            "--mapping-mb",
            "4",
            "--no-sample",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = common::report(&dir);
    let planned: Vec<(String, String, String)> = doctor["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["backend"].as_str().unwrap().to_owned(),
                t["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let ran: Vec<(String, String, String)> = report
        .targets
        .iter()
        .map(|t| {
            let a = &t.attachment;
            (a.name.clone(), a.backend.label().to_owned(), a.reason.clone())
        })
        .collect();
    assert_eq!(ran, planned);
}
