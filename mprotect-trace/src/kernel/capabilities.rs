//! What the running kernel lets a BPF tracer do, each found by trying it:
//! a program loaded or attached, never a guess from the version number.

use std::path::Path;

use aya::Ebpf;
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{PerfEvent, TracePoint};
use mprotect_trace_common::programs::{SAMPLER_CAPABILITY_CHECK, SYS_ENTER_MPROTECT};

use super::mounts::{self, Mount};
use crate::model::{Capabilities, Check};
use crate::probes::backend::{self, CheckContext};
use crate::probes::plan::BackendChoice;

/// What a check made by attaching the real program says until then.
const CHECKED_WHEN_ATTACHED: &str = "checked when attached";

/// The function `doctor` loads a fentry program on and attaches a kprobe to.
pub const PROBE_CHECK_FUNCTION: &str = "change_protection";

/// Runs every check; mounts tracefs and securityfs when missing (root only).
pub fn detect(ebpf: &mut Ebpf) -> Capabilities {
    let mut caps = detect_with(ebpf, &std::cell::OnceCell::new(), BackendChoice::Auto, false);
    if caps.tracefs.available {
        caps.syscall_tracepoints = tracepoint_check(ebpf);
    }
    caps.perf_sampling = perf_sampling_check(ebpf);
    caps
}

/// What `run` checks before attaching: everything but the syscall
/// tracepoints and perf sampling, which `run` checks by attaching its real
/// programs (a check's detach waits for an RCU grace period, tens of ms).
/// Until then they read "checked when attached".
/// Only the backends `choice` allows are checked (each check loads and
/// attaches a program: tenths of a second under emulation); the others
/// read "not checked".
pub fn detect_for_run(
    ebpf: &mut Ebpf,
    kernel_btf: &std::cell::OnceCell<aya::Btf>,
    choice: BackendChoice,
) -> Capabilities {
    detect_with(ebpf, kernel_btf, choice, true)
}

/// `share_kprobe_check`: the kprobe-based backends take the first one's
/// kprobe attach (`run`), or each checks its own program (`doctor`).
fn detect_with(
    ebpf: &mut Ebpf,
    kernel_btf: &std::cell::OnceCell<aya::Btf>,
    choice: BackendChoice,
    share_kprobe_check: bool,
) -> Capabilities {
    let (kernel_release, arch) = uname();
    let mut kprobe_outcome = None;
    let tracefs = tracefs_check();
    let btf = btf_check();
    let function_backends = backend::ALL
        .iter()
        .map(|backend| {
            let check = match choice {
                BackendChoice::Only(kind) if kind != backend.kind() => {
                    Check::no("not checked", format!("not checked: --backend {}", kind.label()))
                }
                BackendChoice::NoFunctions => Check::no("not checked", "not checked: --backend none"),
                BackendChoice::Auto | BackendChoice::Only(_) => backend.check(&mut CheckContext {
                    ebpf,
                    btf: &btf,
                    kernel_btf,
                    kprobe_outcome: share_kprobe_check.then_some(&mut kprobe_outcome),
                }),
            };
            (backend.capability().to_owned(), check)
        })
        .collect();
    Capabilities {
        kernel_release,
        arch,
        lockdown: lockdown_check(),
        syscall_tracepoints: if tracefs.available {
            Check::yes(CHECKED_WHEN_ATTACHED)
        } else {
            // aya finds a tracepoint's id in tracefs: no tracefs, no tracepoint.
            Check::no("needs tracefs", tracefs.detail.clone())
        },
        tracefs,
        perf_sampling: Check::yes(CHECKED_WHEN_ATTACHED),
        btf,
        function_backends,
    }
}

/// What an unprivileged process can find out: the kernel, BTF, lockdown
/// and tracefs by reading; every check that loads or attaches a BPF
/// program is marked as needing root, saying `why`.
pub fn detect_unprivileged(why: &str) -> Capabilities {
    let (kernel_release, arch) = uname();
    let needs_root = || {
        Check::no(
            "needs root",
            format!("needs root: it loads or attaches a BPF program ({why})"),
        )
    };
    let tracefs = tracefs_check();
    Capabilities {
        kernel_release,
        arch,
        lockdown: lockdown_check(),
        syscall_tracepoints: needs_root(),
        tracefs,
        perf_sampling: needs_root(),
        btf: btf_check(),
        function_backends: backend::ALL
            .iter()
            .map(|backend| (backend.capability().to_owned(), needs_root()))
            .collect(),
    }
}

/// `error: cause: cause` for errors whose Display hides their sources.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    // aya appends the verifier log, which is empty when the kernel refuses
    // before verifying (e.g. EPERM for fentry).
    let text = text.replace('\n', " ");
    let text = text.trim();
    text.strip_suffix("Verifier output:")
        .unwrap_or(text)
        .trim_end_matches(['.', ' '])
        .to_owned()
}

/// The running kernel's release (`uname -r`).
pub fn release() -> String {
    uname().0
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain data that uname fills.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return ("unknown".into(), std::env::consts::ARCH.into());
    }
    let field = |chars: &[libc::c_char]| {
        let bytes: Vec<u8> = chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&uts.release), field(&uts.machine))
}

/// Whether tracefs is mounted (mounted here when missing, as root).
fn tracefs_check() -> Check {
    match mounts::ensure(Mount::Tracefs) {
        Ok(state) => Check::yes(state.describe()),
        Err(err) => Check::no("not mounted", format!("{err:#}")),
    }
}

fn btf_check() -> Check {
    if Path::new(super::btf::VMLINUX_BTF).exists() {
        Check::yes(format!("{} present", super::btf::VMLINUX_BTF))
    } else {
        Check::no(
            "no vmlinux BTF",
            format!(
                "{} is missing (a kernel built with CONFIG_DEBUG_INFO_BTF=y has it)",
                super::btf::VMLINUX_BTF
            ),
        )
    }
}

fn lockdown_check() -> Check {
    let mounted = match mounts::ensure(Mount::Securityfs) {
        Ok(state) => state,
        Err(err) => return Check::no("unknown", format!("unknown: {err:#}")),
    };
    let path = "/sys/kernel/security/lockdown";
    match std::fs::read_to_string(path) {
        // The active mode is the bracketed one: "none [integrity] confidentiality".
        Ok(modes) => {
            let active = modes
                .split_whitespace()
                .find_map(|m| m.strip_prefix('[').and_then(|m| m.strip_suffix(']')))
                .unwrap_or("unknown")
                .to_owned();
            let note = if mounted.mounted_now {
                " (securityfs mounted by doctor)"
            } else {
                ""
            };
            // Confidentiality mode forbids reading kernel memory: BPF tracing is refused.
            Check {
                available: active != "confidentiality",
                summary: active.clone(),
                detail: format!("{active}{note}"),
            }
        }
        Err(_) => Check::yes(format!("none ({path} absent: no lockdown LSM)")),
    }
}

fn tracepoint_check(ebpf: &mut Ebpf) -> Check {
    let mut attempt = || -> Result<(), String> {
        let program: &mut TracePoint =
            crate::ebpf_object::program_mut(ebpf, SYS_ENTER_MPROTECT).map_err(|e| format!("{e:#}"))?;
        program.load().map_err(|e| error_chain(&e))?;
        let link = program
            .attach("syscalls", "sys_enter_mprotect")
            .map_err(|e| error_chain(&e))?;
        program.detach(link).map_err(|e| error_chain(&e))?;
        Ok(())
    };
    let outcome = attempt();
    if let Ok(program) = crate::ebpf_object::program_mut::<TracePoint>(ebpf, SYS_ENTER_MPROTECT) {
        let _ = program.unload();
    }
    match outcome {
        Ok(()) => Check::yes("a BPF program attached to syscalls:sys_enter_mprotect"),
        Err(err) => Check::no(
            "attach failed",
            format!("attaching to syscalls:sys_enter_mprotect failed: {err}"),
        ),
    }
}

fn perf_sampling_check(ebpf: &mut Ebpf) -> Check {
    let mut attempt = || -> Result<(), String> {
        let program: &mut PerfEvent =
            crate::ebpf_object::program_mut(ebpf, SAMPLER_CAPABILITY_CHECK).map_err(|e| format!("{e:#}"))?;
        program.load().map_err(|e| error_chain(&e))?;
        let link = program
            .attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu: 0 },
                SamplePolicy::Frequency(99),
                false,
            )
            .map_err(|e| error_chain(&e))?;
        program.detach(link).map_err(|e| error_chain(&e))?;
        Ok(())
    };
    let outcome = attempt();
    if let Ok(program) = crate::ebpf_object::program_mut::<PerfEvent>(ebpf, SAMPLER_CAPABILITY_CHECK) {
        let _ = program.unload();
    }
    match outcome {
        Ok(()) => Check::yes("a BPF program attached to the cpu-clock software event"),
        Err(err) => Check::no(
            "attach failed",
            format!("attaching to the cpu-clock event failed: {err}"),
        ),
    }
}
