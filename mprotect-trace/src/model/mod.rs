//! The run model: plain data that every output reads. It imports nothing
//! from the kernel side (probes, sampling, maps, the eBPF object), so a
//! saved run is reported, plotted and compared anywhere, without root.

pub mod capabilities;
pub mod profile;
pub mod report;
pub mod stats;
pub mod workload;

pub use capabilities::{Capabilities, Check};
pub use profile::{FunctionShare, InlinedTarget, Profile, SampleCounters, SampledStack};
pub use report::{
    Attachment, Backend, Calibration, ProgramCost, Report, Role, Scope, StopReason, SyscallProbe, SyscallReport,
    TargetReport,
};
pub use stats::{Counters, ExactDistribution, Histogram, LatencySummary, ValueStats};
pub use workload::{PerIteration, SmapsEntry, WorkloadResult};
