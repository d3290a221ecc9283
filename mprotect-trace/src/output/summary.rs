//! The summary line of a run: its figures in one line of at most 80
//! columns, what `run --quiet` prints and a series says of each run.

use super::table::format_ns;
use crate::model::{Report, SyscallProbe, WorkloadResult};

/// "699.46 ns/page (run median)": the workload's figure.
pub fn workload_figure(workload: &WorkloadResult) -> String {
    format!("{:.2} ns/page (run median)", workload.iteration_ns_per_page_median)
}

/// "110 mprotect calls, p50 3.87 ms, p99 8.65 ms".
pub fn syscall_figures(report: &Report) -> String {
    if report.syscall.backend == SyscallProbe::None {
        return "mprotect calls not traced (--no-syscall)".to_owned();
    }
    let latency = &report.syscall.latency;
    let ns = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), format_ns);
    format!(
        "{} mprotect calls, p50 {}, p99 {}",
        latency.calls,
        ns(latency.p50_ns),
        ns(latency.p99_ns)
    )
}

/// The workload's figure and the syscall's, or the syscall's alone; a run
/// stopped by a signal says so.
pub fn line(report: &Report) -> String {
    let mut line = match &report.workload {
        Some(workload) => format!("{}; {}", workload_figure(workload), syscall_figures(report)),
        None => syscall_figures(report),
    };
    if report.partial {
        line.push_str(&format!("; stopped by {}", report.stop_reason.label()));
    }
    line
}
