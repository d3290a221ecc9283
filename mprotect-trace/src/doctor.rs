//! `mprotect-trace doctor`: what this kernel supports, and what the tracer
//! will do about each target.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::ebpf_object;
use crate::kernel::capabilities;
use crate::kernel::kallsyms::Kallsyms;
use crate::kernel::trace_events::{self, TraceEvent, TracepointSpec};
use crate::model::Capabilities;
use crate::options::DoctorOptions;
use crate::probes::backend;
use crate::probes::plan::{self, BackendChoice, TargetPlan};

#[derive(Debug, Serialize)]
pub struct DoctorReport {
    pub capabilities: Capabilities,
    pub targets: Vec<TargetPlan>,
    /// `--probe category:name`: the tracepoints asked for, found in tracefs.
    pub tracepoints: Vec<TraceEvent>,
    /// Whether anything can trace mprotect here: syscall tracepoints or sampling.
    pub usable: bool,
    /// Why the checks that load or attach programs were not made (not root).
    pub unprivileged: Option<String>,
}

pub fn diagnose(options: &DoctorOptions) -> Result<DoctorReport> {
    // Without the privileges, report what reading alone finds.
    let (capabilities, unprivileged) = match crate::kernel::privileges::require_tracing() {
        Ok(()) => (capabilities::detect(&mut ebpf_object::load()?), None),
        Err(err) => {
            let why = format!("{err:#}");
            (capabilities::detect_unprivileged(&why), Some(why))
        }
    };
    let (events, functions): (Vec<&String>, Vec<&String>) = options
        .probes
        .iter()
        .partition(|probe| TracepointSpec::is_tracepoint(probe));
    let specs = events
        .into_iter()
        .map(|event| TracepointSpec::parse_event(event))
        .collect::<Result<Vec<_>>>()?;
    let tracepoints = trace_events::resolve(&specs)?;
    let functions: Vec<String> = functions.into_iter().cloned().collect();
    let kallsyms = Kallsyms::load()?;
    let facts = plan::KernelFacts::load(&capabilities)?;
    let targets = plan::plan_targets(
        &[],
        &functions,
        &capabilities,
        &kallsyms,
        &facts,
        BackendChoice::Auto,
        None,
    )?;
    let usable = capabilities.syscall_tracepoints.available || capabilities.perf_sampling.available;
    Ok(DoctorReport {
        capabilities,
        targets,
        tracepoints,
        usable,
        unprivileged,
    })
}

impl DoctorReport {
    pub fn to_text(&self) -> String {
        let caps = &self.capabilities;
        let mut out = String::new();
        let yes_no = |available: bool| if available { "yes" } else { "no" };
        let _ = writeln!(out, "kernel               {} ({})", caps.kernel_release, caps.arch);
        let function_backends = backend::ALL
            .iter()
            .map(|b| (b.capability().replace('_', " "), caps.backend(b.capability())));
        let checks = [
            ("BTF", &caps.btf),
            ("tracefs", &caps.tracefs),
            ("syscall tracepoints", &caps.syscall_tracepoints),
            ("perf sampling", &caps.perf_sampling),
        ]
        .map(|(label, check)| (label.to_owned(), check.clone()));
        for (label, check) in checks.into_iter().chain(function_backends) {
            let _ = writeln!(out, "{label:<20} {:<4} {}", yes_no(check.available), check.detail);
        }
        let _ = writeln!(out, "{:<20} {}", "lockdown", caps.lockdown.detail);
        let _ = writeln!(out, "\ntargets");
        for target in &self.targets {
            let kallsyms = if target.in_kallsyms {
                "yes".to_owned()
            } else if target.kallsyms_variants.is_empty() {
                "no".to_owned()
            } else {
                format!("no (copies: {})", target.kallsyms_variants.join(", "))
            };
            let btf = match &target.signature {
                Some(signature) => signature.to_c(),
                None if caps.btf.available => "no".to_owned(),
                None => "unknown (no BTF here)".to_owned(),
            };
            let _ = writeln!(out, "  {:<24} kallsyms: {kallsyms}; BTF: {btf}", target.name);
        }
        let _ = writeln!(out, "\nplan");
        let tracepoints = if caps.syscall_tracepoints.available {
            "syscalls:sys_enter_mprotect / sys_exit_mprotect: latency, length and flags of every call".to_owned()
        } else {
            format!("unavailable: {}", caps.syscall_tracepoints.detail)
        };
        let _ = writeln!(out, "  {:<24} {:<10} {tracepoints}", "mprotect syscall", "tracepoint");
        for target in &self.targets {
            let _ = writeln!(
                out,
                "  {:<24} {:<10} {}",
                target.name,
                target.backend.label(),
                target.reason
            );
        }
        for event in &self.tracepoints {
            let _ = writeln!(
                out,
                "  {:<24} {:<10} event id {}; integer fields for --probe-field: {}",
                event.spec.event(),
                "tracepoint",
                event.id,
                event.integer_fields.join(", ")
            );
        }
        let sampling = if caps.perf_sampling.available {
            "cpu-clock kernel stacks: attributes time to every function, inlined ones too".to_owned()
        } else {
            format!("unavailable: {}", caps.perf_sampling.detail)
        };
        let _ = writeln!(out, "  {:<24} {:<10} {sampling}", "stack sampling", "perf_event");
        if let Some(why) = &self.unprivileged {
            let _ = writeln!(
                out,
                "\nnot checked as this user: what needs root loads or attaches a BPF program; {why}"
            );
        } else if !self.usable {
            let _ = writeln!(
                out,
                "\nnothing can trace mprotect here: neither syscall tracepoints nor perf sampling work"
            );
        }
        out
    }
}
