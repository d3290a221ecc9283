//! mprotect-trace: where the time of `mprotect()` goes inside Linux mm.
//!
//! The binary only parses flags into the plain option structs of
//! [`options`] and calls [`commands`]. Data flows one way:
//! `probes` and `sampling` attach and read the kernel side, `collect`
//! and `run` turn what was read into the [`model`], and `output` and
//! `compare` read only the model, so saved runs work without root.

pub mod bisect;
pub mod children;
pub mod collect;
pub mod commands;
pub mod compare;
pub mod debuginfo;
pub mod doctor;
pub mod ebpf_object;
pub mod fleet;
pub mod kernel;
pub mod lab;
pub mod model;
pub mod options;
pub mod output;
pub mod probes;
pub mod run;
pub mod sampling;
pub mod series;
pub mod statistics;
pub mod targets;
pub mod vm;
pub mod workload;
