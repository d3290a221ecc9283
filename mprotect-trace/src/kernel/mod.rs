//! Facts about the running kernel: symbols, BTF, and what it lets us attach.

pub mod btf;
pub mod call_sites;
pub mod capabilities;
pub mod ftrace;
pub mod identity;
pub mod kallsyms;
pub mod kcore;
pub mod machine;
pub mod mounts;
pub mod planning_cache;
pub mod privileges;
pub mod trace_events;
