//! eBPF programs of mprotect-trace. Aggregation stays in per-CPU maps;
//! nothing is sent to user space per event.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, kprobe, map, perf_event, tracepoint},
    maps::{Array, PerCpuArray},
    programs::{FEntryContext, PerfEventContext, ProbeContext, TracePointContext},
};
use mprotect_trace_common::{CONFIG_INDEX, TraceConfig, syscall_counter};

#[map]
static CONFIG: Array<TraceConfig> = Array::with_max_entries(1, 0);

#[map]
static SYSCALL_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(syscall_counter::LEN, 0);

/// True when the current task belongs to what user space asked to trace.
#[inline(always)]
fn is_traced() -> bool {
    let Some(config) = CONFIG.get(CONFIG_INDEX) else {
        return false;
    };
    if config.trace_all != 0 {
        return true;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    tgid == config.target_tgid
}

#[inline(always)]
fn bump(slot: u32) {
    if let Some(counter) = SYSCALL_COUNTERS.get_ptr_mut(slot) {
        // Per-CPU slot: no other CPU writes it, so a plain add is exact.
        unsafe { *counter += 1 };
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_mprotect")]
pub fn sys_enter_mprotect(_ctx: TracePointContext) -> u32 {
    if is_traced() {
        bump(syscall_counter::ENTER);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_mprotect")]
pub fn sys_exit_mprotect(_ctx: TracePointContext) -> u32 {
    if is_traced() {
        bump(syscall_counter::EXIT);
    }
    0
}

/// Loaded by `doctor` against `change_protection` to learn whether this
/// kernel accepts fentry programs at all (some refuse with EPERM).
#[fentry]
pub fn fentry_capability_check(_ctx: FEntryContext) -> u32 {
    0
}

/// Loaded and attached by `doctor` to learn whether kprobes exist.
#[kprobe]
pub fn kprobe_capability_check(_ctx: ProbeContext) -> u32 {
    0
}

/// Attached by `doctor` to a cpu-clock event to learn whether BPF stack
/// sampling works here.
#[perf_event]
pub fn sampler_capability_check(_ctx: PerfEventContext) -> u32 {
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
