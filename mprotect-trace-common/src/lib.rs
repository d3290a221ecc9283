//! Types and constants shared by the eBPF programs and user space.
//!
//! `no_std` by default so the eBPF crate can use it; the `user` feature
//! marks the shared structs as plain data for aya map reads.
#![no_std]

/// Index of the single entry of the `CONFIG` array map.
pub const CONFIG_INDEX: u32 = 0;

/// What the kernel side filters on, written by user space before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// Thread-group id (process id) to count; ignored when `trace_all` is 1.
    pub target_tgid: u32,
    /// 1: count every task on the system (`-a`).
    pub trace_all: u32,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for TraceConfig {}

/// Slots of the per-CPU `SYSCALL_COUNTERS` array.
pub mod syscall_counter {
    /// `sys_enter_mprotect` events of the traced task(s).
    pub const ENTER: u32 = 0;
    /// `sys_exit_mprotect` events of the traced task(s).
    pub const EXIT: u32 = 1;
    /// Number of slots.
    pub const LEN: u32 = 2;
}
