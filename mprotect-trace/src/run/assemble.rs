//! Builds the run model in one step from what a run collected.

use std::time::Duration;

use crate::collect::{SlotData, Snapshot, TracepointData};
use crate::kernel::trace_events::TraceEvent;
use crate::model::report::{SCHEMA_VERSION, errno_name, prot_name};
use crate::model::stats::PERCENTILE_RELATIVE_ERROR;
use crate::model::{
    Attachment, Backend, Calibration, Capabilities, CpuCalls, FailedCalls, FieldValue, FieldValues, LatencySummary,
    Profile, ProgramCost, Report, Scope, Settings, SplitPart, StopReason, SyscallProbe, SyscallReport, TargetReport,
    WorkloadResult,
};
use crate::probes::attach::{SplitBy, split_value_name};

/// Everything a run found out, read back from the kernel and the target.
pub struct Collected {
    pub scope: Scope,
    pub settings: Settings,
    pub command: Vec<String>,
    pub syscall_probe: SyscallProbe,
    pub capabilities: Capabilities,
    pub attachments: Vec<Attachment>,
    pub snapshot: Snapshot,
    pub stop: StopReason,
    pub elapsed: Duration,
    /// When tracing started (UTC, RFC 3339).
    pub start_time: String,
    pub tgid: Option<u32>,
    /// `-p PID`: the process's name.
    pub process_name: Option<String>,
    pub workload: Option<WorkloadResult>,
    /// `--calibrate`: the same workload, untraced, just before.
    pub untraced: Option<WorkloadResult>,
    pub profile: Option<Profile>,
    pub program_costs: Option<Vec<ProgramCost>>,
    /// The tracepoint targets, by slot.
    pub trace_events: Vec<TraceEvent>,
    /// `--per-cpu`: keep every target's per-CPU breakdown.
    pub per_cpu: bool,
    /// `--split-by`: what the split values are.
    pub split_by: Option<SplitBy>,
}

/// The machine a run happened on: CPU model (x86's `model name`, ppc64's
/// `cpu`), CPU count, kernel command line.
fn machine() -> (String, usize, String) {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                matches!(key.trim(), "model name" | "cpu").then(|| value.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .trim()
        .to_owned();
    (cpu_model, cpus, cmdline)
}

/// Calls and latency on each CPU, CPUs without a call left out.
fn timed_per_cpu(per_cpu: &[crate::model::ValueStats]) -> Vec<CpuCalls> {
    per_cpu
        .iter()
        .enumerate()
        .filter(|(_, stats)| stats.count > 0)
        .map(|(cpu, stats)| CpuCalls {
            cpu: cpu as u32,
            calls: stats.count,
            latency: Some(LatencySummary::of(stats)),
        })
        .collect()
}

/// Events on each CPU, CPUs without one left out.
fn counted_per_cpu(per_cpu: &[u64]) -> Vec<CpuCalls> {
    per_cpu
        .iter()
        .enumerate()
        .filter(|(_, calls)| **calls > 0)
        .map(|(cpu, &calls)| CpuCalls {
            cpu: cpu as u32,
            calls,
            latency: None,
        })
        .collect()
}

/// A tracepoint's field values, read as the field's type has them.
fn field_values(event: &TraceEvent, data: &TracepointData, not_stored: u64) -> Option<FieldValues> {
    let field = event.field.as_ref()?;
    let mut values: Vec<FieldValue> = data
        .values
        .iter()
        .map(|&(raw, count)| {
            let value = if field.signed {
                i128::from(raw as i64)
            } else {
                i128::from(raw)
            };
            let name = field.symbols.iter().find(|(symbol, _)| i128::from(*symbol) == value);
            FieldValue {
                value,
                name: name.map(|(_, name)| name.clone()),
                count,
            }
        })
        .collect();
    values.sort_by_key(|value| value.value);
    Some(FieldValues {
        field: field.name.clone(),
        values,
        not_stored,
    })
}

/// A target's records by split value, named.
fn split_parts(by: SplitBy, data: &SlotData, timed: bool, has_nr: bool) -> Vec<SplitPart> {
    data.split
        .iter()
        .map(|part| SplitPart {
            value: part.value,
            name: split_value_name(by, part.value),
            calls: part.calls,
            latency: timed.then(|| LatencySummary::of(&part.latency_ns)),
            nr_ptes: has_nr.then(|| part.nr_ptes.clone()),
        })
        .collect()
}

fn function_target(
    mut attachment: Attachment,
    data: Option<&SlotData>,
    inline_calls: &[u64],
    syscall_ns: u64,
    per_cpu: bool,
    split_by: Option<SplitBy>,
) -> TargetReport {
    let call_site = attachment.backend.counts_calls_only();
    if let Some(inlined) = attachment.inlined.as_mut() {
        for instance in &mut inlined.instances {
            instance.calls = inline_calls.get(instance.counter as usize).copied();
        }
        // Only the timed instances' entries start a timing.
        inlined.latency = data
            .filter(|_| inlined.instances.iter().any(|i| i.exit.is_some()))
            .map(|d| LatencySummary::of(&d.latency_ns));
    }
    let split = split_by
        .zip(data)
        .map(|(by, data)| split_parts(by, data, !call_site, attachment.nr_ptes_source.is_some()));
    TargetReport {
        split,
        calls: data.map(|d| {
            if call_site {
                d.call_site_calls
            } else {
                d.latency_ns.count
            }
        }),
        latency: data.filter(|_| !call_site).map(|d| LatencySummary::of(&d.latency_ns)),
        latency_ns: data.filter(|_| !call_site).map(|d| d.latency_ns.clone()),
        pages_per_call: data
            .filter(|_| attachment.pages_source.is_some())
            .map(|d| d.pages.clone()),
        nr_ptes: data
            .filter(|_| attachment.nr_ptes_source.is_some())
            .map(|d| d.nr_ptes.clone()),
        return_values: data
            .filter(|_| attachment.return_source.is_some())
            .map(|d| d.pages.clone()),
        share_of_syscall_time: data
            .filter(|_| syscall_ns > 0 && !call_site)
            .map(|d| d.latency_ns.total as f64 / syscall_ns as f64),
        field_values: None,
        per_cpu: data.filter(|_| per_cpu).map(|d| {
            if call_site {
                counted_per_cpu(&d.call_site_per_cpu)
            } else {
                timed_per_cpu(&d.latency_per_cpu)
            }
        }),
        attachment,
    }
}

fn tracepoint_target(
    attachment: Attachment,
    snapshot: &Snapshot,
    events: &[TraceEvent],
    per_cpu: bool,
) -> TargetReport {
    let slot = attachment.slot.map(|slot| slot as usize);
    let data = slot.and_then(|slot| snapshot.tracepoints.get(slot));
    let event = slot.and_then(|slot| events.get(slot));
    TargetReport {
        calls: data.map(|d| d.calls),
        latency: None,
        latency_ns: None,
        pages_per_call: None,
        nr_ptes: None,
        return_values: None,
        share_of_syscall_time: None,
        field_values: data
            .zip(event)
            .and_then(|(data, event)| field_values(event, data, snapshot.tracepoint_values_full)),
        per_cpu: data.filter(|_| per_cpu).map(|d| counted_per_cpu(&d.calls_per_cpu)),
        split: None,
        attachment,
    }
}

pub fn report(collected: Collected) -> Report {
    let snapshot = &collected.snapshot;
    let syscall_ns = snapshot.syscall.latency_ns.total;
    let per_cpu = collected.per_cpu;
    let targets = collected
        .attachments
        .into_iter()
        .map(|attachment| match attachment.backend {
            Backend::Tracepoint => tracepoint_target(attachment, snapshot, &collected.trace_events, per_cpu),
            _ => {
                let data = attachment.slot.and_then(|slot| snapshot.functions.get(slot as usize));
                function_target(
                    attachment,
                    data,
                    &snapshot.inline_calls,
                    syscall_ns,
                    per_cpu,
                    collected.split_by,
                )
            }
        })
        .collect();
    let calibration = collected
        .untraced
        .as_ref()
        .zip(collected.workload.as_ref())
        .map(|(untraced, traced)| Calibration {
            untraced_iteration_ns_per_page: untraced.iteration_ns_per_page,
            traced_iteration_ns_per_page: traced.iteration_ns_per_page,
            ratio: traced.iteration_ns_per_page / untraced.iteration_ns_per_page,
        });
    let (cpu_model, cpus, kernel_cmdline) = machine();
    Report {
        schema_version: SCHEMA_VERSION,
        cpu_model,
        cpus,
        kernel_cmdline,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_revision: env!("MPROTECT_TRACE_GIT_REVISION").to_owned(),
        start_time: collected.start_time,
        settings: Some(collected.settings),
        kernel_release: collected.capabilities.kernel_release.clone(),
        arch: collected.capabilities.arch.clone(),
        scope: collected.scope,
        tgid: collected.tgid,
        process_name: collected.process_name,
        command: collected.command,
        stop_reason: collected.stop,
        partial: collected.stop.is_partial(),
        duration_s: collected.elapsed.as_secs_f64(),
        percentile_relative_error: PERCENTILE_RELATIVE_ERROR,
        capabilities: collected.capabilities,
        syscall: SyscallReport {
            backend: collected.syscall_probe,
            latency: LatencySummary::of(&snapshot.syscall.latency_ns),
            latency_ns: snapshot.syscall.latency_ns.clone(),
            pages_per_call: snapshot.syscall.pages.clone(),
            prot_flags: snapshot
                .prot_flags
                .iter()
                .enumerate()
                .map(|(bucket, &count)| (prot_name(bucket), count))
                .collect(),
            failed: snapshot
                .failed
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(errno, &count)| FailedCalls {
                    errno: errno as u32,
                    name: errno_name(errno as u32),
                    count,
                })
                .collect(),
            per_cpu: per_cpu.then(|| timed_per_cpu(&snapshot.syscall.latency_per_cpu)),
        },
        targets,
        lost: snapshot.counters.clone(),
        workload: collected.workload,
        sampling: collected.profile,
        calibration,
        program_costs: collected.program_costs,
        timings: None,
        kernel_identity: Some(crate::kernel::identity::running()),
        interval_series: None,
        machine: Some(crate::kernel::machine::running()),
    }
}
