//! What each of our BPF programs cost, by the kernel's own accounting:
//! with BPF run-time statistics on (`BPF_ENABLE_STATS`), the kernel counts
//! every run of a program and the time spent in it. Free of the wall-clock
//! noise of a shared machine, so it is the figure to quote for "what did
//! the tracer add to each call".

use std::os::fd::OwnedFd;

use anyhow::{Context as _, Result};
use aya::Ebpf;
use aya::sys::{Stats, enable_stats};
use mprotect_trace_common::FUNCTION_SLOTS;
use mprotect_trace_common::programs::SAMPLE_STACK;

use crate::model::{Attachment, ProgramCost};

/// The kernel's BPF run-time statistics, on while this value lives (the
/// kernel turns them off when the last holder closes its descriptor, so a
/// killed tracer leaves them off).
pub struct RunTimeStats {
    _enabled: OwnedFd,
}

impl RunTimeStats {
    pub fn enable() -> Result<Self> {
        let fd = enable_stats(Stats::RunTime).context(
            "--probe-cost: enabling the kernel's BPF run-time statistics failed (needs Linux 5.8 and CAP_SYS_ADMIN)",
        )?;
        Ok(Self { _enabled: fd })
    }
}

/// Run counts and times of every program this run attached.
pub fn read(ebpf: &Ebpf, attachments: &[Attachment]) -> Result<Vec<ProgramCost>> {
    let mut costs = Vec::new();
    for (name, program) in ebpf.programs() {
        // doctor's probes are loaded to learn what works, never run here.
        if name.ends_with("_capability_check") {
            continue;
        }
        // Not loaded: not used by this run.
        let Ok(info) = program.info() else {
            continue;
        };
        costs.push(ProgramCost {
            program: name.to_owned(),
            probe: probe_of(name, attachments),
            runs: info.run_count(),
            total_ns: u64::try_from(info.run_time().as_nanos()).context("a program's run time overflows 64 bits")?,
        });
    }
    costs.sort_by(|a, b| a.probe.cmp(&b.probe));
    Ok(costs)
}

/// "syscalls:sys_enter_mprotect", "change_protection (fentry)", ...
fn probe_of(program: &str, attachments: &[Attachment]) -> String {
    if let Some(tracepoint) = program.strip_prefix("sys_") {
        return format!("syscalls:sys_{}", tracepoint.trim_end_matches("_empty"));
    }
    if program == SAMPLE_STACK {
        return "cpu-clock sampler".to_owned();
    }
    // fentry_slot_3, kretprobe_slot_0, ...: the target attached in that slot.
    if let Some((kind, slot)) = program.split_once("_slot_") {
        let target = slot
            .parse::<u32>()
            .ok()
            .filter(|slot| *slot < FUNCTION_SLOTS)
            .and_then(|slot| attachments.iter().find(|a| a.slot == Some(slot)))
            .map_or("?", |a| a.name.as_str());
        return format!("{target} ({kind})");
    }
    program.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Backend, Role};

    #[test]
    fn programs_are_named_by_what_they_run_on() {
        let attachment = Attachment {
            name: "change_protection".into(),
            role: Role::Headline,
            backend: Backend::Fentry,
            reason: String::new(),
            slot: Some(2),
            nr_ptes_source: None,
            pages_source: None,
            return_source: None,
            inlined: None,
            split_source: None,
        };
        let attachments = [attachment];
        assert_eq!(
            probe_of("sys_enter_mprotect", &attachments),
            "syscalls:sys_enter_mprotect"
        );
        assert_eq!(
            probe_of("sys_exit_mprotect_empty", &attachments),
            "syscalls:sys_exit_mprotect"
        );
        assert_eq!(probe_of("fexit_slot_2", &attachments), "change_protection (fexit)");
        assert_eq!(probe_of("kprobe_slot_5", &attachments), "? (kprobe)");
        assert_eq!(probe_of("sample_stack", &attachments), "cpu-clock sampler");
    }
}
