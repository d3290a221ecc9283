//! Probe targets: the choice of backend for each, the backends, and
//! attaching them.

pub mod attach;
pub mod backend;
pub mod plan;
pub mod tracepoints;
