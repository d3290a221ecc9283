//! Probe targets, the choice of backend for each, and attaching them.

pub mod attach;
pub mod plan;
pub mod targets;
