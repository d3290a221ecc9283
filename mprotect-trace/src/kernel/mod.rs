//! Facts about the running kernel: symbols, BTF, and what it lets us attach.

pub mod btf;
pub mod capabilities;
pub mod kallsyms;
pub mod mounts;
pub mod privileges;
