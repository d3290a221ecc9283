//! What a run records of how it was asked to measure (`settings` in report.json).

use anyhow::Result;

use crate::model::{Settings, SyscallProbe, WorkloadSettings};
use crate::options::{RunOptions, SyscallTracing, TraceTarget};
use crate::probes::plan::BackendChoice;

pub fn of(options: &RunOptions) -> Result<Settings> {
    let workload = match &options.target {
        TraceTarget::Workload(workload) => {
            let plan = workload.plan()?;
            Some(WorkloadSettings {
                scenario: plan.scenario.name().to_owned(),
                mapping_mb: plan.mapping_mb,
                iterations: plan.iterations,
                warmup: plan.warmup,
                rounds: plan.rounds,
                threads: plan.threads,
                cpu: plan.cpu,
                touch: plan.touch,
                folio_kb: plan.folio_kb,
                dither_us: plan.dither_us,
                regions: (plan.scenario == crate::workload::Scenario::MprotTw4m).then_some(plan.regions),
            })
        }
        _ => None,
    };
    Ok(Settings {
        workload,
        command: match &options.target {
            TraceTarget::Command(command) => command.clone(),
            _ => Vec::new(),
        },
        pid: match options.target {
            TraceTarget::Pid(pid) => Some(pid),
            _ => None,
        },
        all_tasks: options.target == TraceTarget::All,
        backend: match options.backend {
            BackendChoice::Auto => "auto".to_owned(),
            BackendChoice::Only(backend) => backend.label().to_owned(),
            BackendChoice::NoFunctions => "none".to_owned(),
        },
        only: options.only.clone(),
        probes: options
            .probes
            .iter()
            .cloned()
            .chain(options.tracepoints.iter().map(|spec| match &spec.field {
                Some(field) => format!("{}:{field}", spec.event()),
                None => spec.event(),
            }))
            .collect(),
        syscall: match options.syscall {
            SyscallTracing::Tracepoints => SyscallProbe::Tracepoint,
            SyscallTracing::EmptyPrograms => SyscallProbe::Empty,
            SyscallTracing::Off => SyscallProbe::None,
        },
        sample_hz: options.sample_hz,
        max_stacks: options.max_stacks,
        duration_s: options.duration.map(|d| d.as_secs_f64()),
        calibrate: options.calibrate,
        probe_cost: options.probe_cost,
        split_by: options.split_by.map(|by| by.name().to_owned()),
    })
}
