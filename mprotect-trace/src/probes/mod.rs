//! Probe targets and the choice of backend for each.

pub mod plan;
pub mod targets;
