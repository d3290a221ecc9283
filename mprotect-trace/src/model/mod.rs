//! The run model: plain data that every output reads. It imports nothing
//! from the kernel side (probes, sampling, maps, the eBPF object), so a
//! saved run is reported, plotted and compared anywhere, without root.

pub mod capabilities;
pub mod inline_sites;
pub mod profile;
pub mod report;
pub mod settings;
pub mod stats;
pub mod workload;

pub use capabilities::{Capabilities, Check};
pub use inline_sites::{InlineSites, InlinedFunction, InlinedInstance, InlinedParameter, ValueLocation};
pub use profile::{
    DebugInfoUsed, FunctionShare, HotSpot, InlinedTarget, ProcessSamples, Profile, SampleCounters, SampledProcess,
    SampledStack, UnknownUser,
};
pub use report::{
    Attachment, Backend, Calibration, CpuCalls, FailedCalls, FieldValue, FieldValues, InlinedProbe, IntervalCalls,
    IntervalSample, KernelIdentity, Machine, ProbedInstance, ProgramCost, Report, Role, Scope, SplitPart, StartupPhase,
    StopReason, SyscallProbe, SyscallReport, TargetReport, Timings,
};
pub use settings::{Difference, Settings, WorkloadSettings};
pub use stats::{Counters, ExactDistribution, Histogram, LatencySummary, ValueStats};
pub use workload::{NumaHinting, PerIteration, SmapsEntry, WorkloadResult};

#[cfg(test)]
mod tests {
    /// The model's sources, read as text: the boundary is checked on what
    /// the files say, not on what happens to compile today.
    const SOURCES: [(&str, &str); 8] = [
        ("mod.rs", include_str!("mod.rs")),
        ("capabilities.rs", include_str!("capabilities.rs")),
        ("inline_sites.rs", include_str!("inline_sites.rs")),
        ("profile.rs", include_str!("profile.rs")),
        ("report.rs", include_str!("report.rs")),
        ("settings.rs", include_str!("settings.rs")),
        ("stats.rs", include_str!("stats.rs")),
        ("workload.rs", include_str!("workload.rs")),
    ];

    #[test]
    fn the_model_imports_nothing_from_the_kernel_side() {
        let forbidden = [
            concat!("crate::", "kernel"),
            concat!("crate::", "probes"),
            concat!("crate::", "sampling"),
            concat!("crate::", "ebpf_object"),
            concat!("crate::", "collect"),
            concat!("crate::", "run"),
            concat!("aya", "::"),
        ];
        for (file, source) in SOURCES {
            for path in forbidden {
                assert!(!source.contains(path), "model/{file} uses {path}");
            }
        }
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/model"))
            .unwrap()
            .count();
        assert_eq!(files, SOURCES.len(), "a model file is not checked here");
    }
}
