//! Signals and faults on the real kernel (root): every probe detached,
//! the report written and marked, the right exit status. The tests share
//! the kernel's program list, so they run one at a time.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Tracer, binary, report};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

/// Names of the programs `run` attaches.
const OUR_PROGRAMS: [&str; 3] = ["sys_enter_mprotect", "sys_exit_mprotect", "sample_stack"];

/// How many of our programs the kernel holds now, by `bpftool prog show`.
fn our_programs() -> usize {
    let output = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .expect("bpftool");
    let programs: Vec<Value> = serde_json::from_slice(&output.stdout).expect("bpftool JSON");
    programs
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| OUR_PROGRAMS.contains(&n)))
        .count()
}

/// Polls a condition that only the kernel can make true in its own time
/// (programs are freed after their last reference closes): there is no
/// event to wait on, so it is checked until a deadline.
fn poll_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn out_dir(name: &str) -> std::path::PathBuf {
    common::out_dir("faults", name)
}

/// A line of `--interval` output that shows the syscall counted.
fn counted_calls(line: &str) -> bool {
    line.starts_with("mprotect (syscall) ")
        && line
            .split_whitespace()
            .nth(2)
            .and_then(|calls| calls.parse::<u64>().ok())
            .is_some_and(|calls| calls > 0)
}

/// Our programs in the kernel once those of earlier tests are freed: the
/// kernel frees a program after its last reference closes, in its own
/// time (a busy machine showed one still there as the next test began).
fn settled_baseline() -> usize {
    poll_until(
        "the programs of earlier tests are freed (is another mprotect-trace running?)",
        || our_programs() == 0,
    );
    0
}

#[test]
fn sigkill_of_the_tracer_leaves_no_program_of_ours_in_the_kernel() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let baseline = settled_baseline();
    let dir = out_dir("kill");
    let tracer = Tracer::start(&dir, &["-a", "--duration", "60"]);
    assert_eq!(
        our_programs(),
        baseline + OUR_PROGRAMS.len(),
        "attached before the line"
    );
    tracer.signal(libc::SIGKILL);
    tracer.finish();
    poll_until("the kernel dropped our programs", || our_programs() == baseline);
    assert!(
        !dir.join("report.json").exists(),
        "a killed run cannot have written a complete report"
    );
}

#[test]
fn sigint_and_sigterm_detach_write_a_partial_report_and_exit_130_and_143() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let baseline = settled_baseline();
    for (sig, code, name) in [(libc::SIGINT, 130, "SIGINT"), (libc::SIGTERM, 143, "SIGTERM")] {
        let dir = out_dir(name);
        // A workload far longer than the test: the signal ends it, once an
        // interval line shows calls were counted.
        let mut tracer = Tracer::start(
            &dir,
            &["--iterations", "1000000", "--mapping-mb", "4", "--interval", "0.05"],
        );
        tracer.wait_for_stdout("an interval with counted calls", counted_calls);
        tracer.signal(sig);
        let (status, _) = tracer.finish();
        assert_eq!(status.code(), Some(code), "{name}");
        let report = report(&dir);
        assert!(report.partial);
        assert_eq!(report.stop_reason.label(), name);
        assert!(report.syscall.latency.calls > 0, "what was collected is kept");
        // The workload child was stopped, and reaped, before the tracer exited.
        let tgid = report.tgid.expect("the workload's pid");
        assert!(
            !std::path::Path::new(&format!("/proc/{tgid}")).exists(),
            "the workload {tgid} outlived the tracer"
        );
        poll_until(&format!("{name}: the kernel dropped our programs"), || {
            our_programs() == baseline
        });
    }
}

#[test]
fn a_killed_workload_is_reported_and_the_exit_is_non_zero() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = out_dir("crash");
    let tracer = Tracer::start(&dir, &["--iterations", "1000000", "--mapping-mb", "4"]);
    // The attached line names the workload, released and running.
    let workload = tracer.target_pid.expect("the attached line names the workload's pid");
    assert_eq!(unsafe { libc::kill(workload, libc::SIGKILL) }, 0);
    let (status, stderr) = tracer.finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr
            .iter()
            .any(|line| line.contains("the traced process exited with signal: 9 (SIGKILL)")),
        "{stderr:?}"
    );
    let report = report(&dir);
    assert_eq!(report.stop_reason.label(), "target exited");
    assert!(report.workload.is_none(), "a killed workload has no result");
}

#[test]
fn a_traced_pid_that_exits_ends_the_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A process that runs until its stdin closes: it exits when the test
    // says so, after the tracer is attached.
    let mut target = Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = out_dir("pid");
    let tracer = Tracer::start(&dir, &["-p", &target.id().to_string(), "--duration", "30"]);
    assert_eq!(tracer.target_pid, Some(target.id() as i32));
    drop(target.stdin.take());
    let (status, stderr) = tracer.finish();
    target.wait().unwrap();
    assert!(status.success(), "{stderr:?}");
    let report = report(&dir);
    assert_eq!(report.scope.name(), "pid");
    assert_eq!(report.stop_reason.label(), "target exited");
    assert!(report.duration_s < 10.0);
}

/// Runs `command` and returns its one-line error (exit status 1).
fn one_line_error(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{command:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn bad_input_is_refused_in_one_line_before_anything_is_attached() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tool = binary;
    let typo = one_line_error(tool().args(["run", "--probe", "change_protectoin"]));
    assert!(
        typo.starts_with("error: unknown kernel function change_protectoin (--probe): did you mean change_protection"),
        "{typo}"
    );
    let only_typo = one_line_error(tool().args(["run", "--only", "change_pte_rnage"]));
    assert!(
        only_typo
            .starts_with("error: unknown kernel function change_pte_rnage (--only): did you mean change_pte_range"),
        "{only_typo}"
    );
    assert_eq!(
        one_line_error(tool().args(["run", "--only", "change_pte_range", "--backend", "none"])),
        "error: --only change_pte_range needs a function probe, and --backend none attaches none: drop one of them"
    );
    let unwritable = one_line_error(tool().args(["run", "-o", "/proc/mprotect-trace-out"]));
    assert!(
        unwritable
            .starts_with("error: creating the output directory /proc/mprotect-trace-out (choose another with -o DIR)")
    );
    assert_eq!(
        one_line_error(tool().args(["run", "--sample-hz", "0"])),
        "error: --sample-hz must be at least 1 (got 0); use --no-sample to turn sampling off"
    );
    let limit: u64 = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate")
        .expect("the kernel's sample-rate limit")
        .trim()
        .parse()
        .expect("a number");
    let above = (limit + 1).to_string();
    assert_eq!(
        one_line_error(tool().args(["run", "--sample-hz", &above])),
        format!(
            "error: --sample-hz {above} is above this kernel's limit of {limit} (kernel.perf_event_max_sample_rate): use at most {limit}, or raise the limit with sysctl -w kernel.perf_event_max_sample_rate={above}"
        )
    );
    // Not root: the same binary with no capability at all.
    let mut unprivileged = Command::new("setpriv");
    unprivileged
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_mprotect-trace"))
        .args(["run", "-o", "/tmp/mprotect-trace-nobody"]);
    assert_eq!(
        one_line_error(&mut unprivileged),
        "error: tracing needs root, or CAP_BPF and CAP_PERFMON (missing CAP_BPF and CAP_PERFMON): run it with sudo"
    );
}

#[test]
fn a_full_disk_leaves_no_report_as_if_complete() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = out_dir("full");
    std::fs::create_dir_all(&dir).unwrap();
    // 16 KiB: room for the writability probe, not for the outputs.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a small tmpfs");
    let output = binary()
        .args([
            "run",
            "--iterations",
            "20",
            "--mapping-mb",
            "4",
            "-o",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let _ = Command::new("umount").arg(&dir).status();
    assert_eq!(output.status.code(), Some(1));
    // Tracing had begun (the attached line); then one line of error.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("mprotect-trace: attached"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("No space left on device"), "{stderr}");
    assert!(
        !files
            .iter()
            .any(|f| f == "report.json" || f.ends_with(".tmp") || f.contains(".tmp.")),
        "{files:?}"
    );
}

/// Every program of the eBPF object, by the name the kernel lists.
fn object_program_names() -> Vec<&'static str> {
    use mprotect_trace_common::programs::*;
    let mut names = vec![
        SYS_ENTER_MPROTECT,
        SYS_EXIT_MPROTECT,
        SYS_ENTER_MPROTECT_EMPTY,
        SYS_EXIT_MPROTECT_EMPTY,
        SAMPLE_STACK,
        FENTRY_CAPABILITY_CHECK,
        KPROBE_CAPABILITY_CHECK,
        SAMPLER_CAPABILITY_CHECK,
        INLINE_INSTANCE,
    ];
    for slots in [
        FENTRY_SLOTS,
        FEXIT_SLOTS,
        KPROBE_SLOTS,
        KRETPROBE_SLOTS,
        CALL_SITE_SLOTS,
    ] {
        names.extend(slots);
    }
    names.extend(TRACEPOINT_SLOTS);
    names
}

/// Names of the object's programs the kernel holds now, sorted.
fn loaded_object_programs() -> Vec<String> {
    let output = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .expect("bpftool");
    let programs: Vec<Value> = serde_json::from_slice(&output.stdout).expect("bpftool JSON");
    let ours = object_program_names();
    let mut names: Vec<String> = programs
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|name| ours.contains(name))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// While a run traces, the kernel holds exactly the programs its plan
/// uses: the syscall pair, the sampler and each attached target's, never
/// a capability check's or an unused slot's.
#[test]
fn only_the_programs_the_plan_uses_are_loaded() {
    use mprotect_trace_common::programs::*;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        loaded_object_programs(),
        Vec::<String>::new(),
        "programs of ours before the run"
    );
    let dir = out_dir("loaded");
    let tracer = Tracer::start(&dir, &["-a", "--duration", "60", "--probe", "tlb:tlb_flush"]);
    let loaded = loaded_object_programs();
    tracer.signal(libc::SIGINT);
    tracer.finish();
    let report = report(&dir);
    let mut expected: Vec<String> = [SYS_ENTER_MPROTECT, SYS_EXIT_MPROTECT, SAMPLE_STACK]
        .map(str::to_owned)
        .to_vec();
    for target in &report.targets {
        let Some(slot) = target.attachment.slot.map(|s| s as usize) else {
            continue;
        };
        use mprotect_trace::model::Backend;
        expected.extend(
            match target.attachment.backend {
                Backend::Fentry => vec![FENTRY_SLOTS[slot], FEXIT_SLOTS[slot]],
                Backend::Kprobe => vec![KPROBE_SLOTS[slot], KRETPROBE_SLOTS[slot]],
                Backend::CallSite => vec![CALL_SITE_SLOTS[slot]],
                Backend::Inlined => vec![INLINE_INSTANCE],
                Backend::Tracepoint => vec![TRACEPOINT_SLOTS[slot]],
                Backend::None => vec![],
            }
            .into_iter()
            .map(str::to_owned),
        );
    }
    expected.sort();
    assert_eq!(loaded, expected);
}
