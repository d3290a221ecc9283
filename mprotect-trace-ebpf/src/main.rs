//! eBPF programs of mprotect-trace. Everything aggregates into per-CPU
//! maps that user space reads at intervals; nothing is sent per event.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_ANY, BPF_F_USER_STACK, bpf_perf_event_data, pt_regs},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::{bpf_get_func_arg, bpf_get_func_ret},
    },
    macros::{fentry, fexit, kprobe, kretprobe, map, perf_event, tracepoint},
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, StackTrace},
    programs::{
        FEntryContext, FExitContext, PerfEventContext, ProbeContext, RetProbeContext, TracePointContext,
        tracing::StackIdContext as _,
    },
};
use mprotect_trace_common::{
    CONFIG_INDEX, ENTRY_TIME_SLOTS, ERRNO_BUCKETS, EntryTime, FUNCTION_SLOTS, INLINE_INSTANCES_PER_SLOT,
    INLINE_SITE_ENTRIES, InlineSiteConfig, KERNEL_THREAD_STACK_ID, NR_PTES_BUCKETS, NR_PTES_EXACT_MAX,
    PROCESS_NAME_ENTRIES, PROT_BUCKETS, SPLIT_SLOTS, SPLIT_VALUES, STACK_MAP_ENTRIES, SYSCALL_SLOT, SampleKey,
    SlotConfig, Stats, TRACEPOINT_SLOTS, TRACEPOINT_VALUE_ENTRIES, TraceConfig, TracepointConfig, TracepointValueKey,
    VALUE_SLOTS, counter, entry_index, entry_owner, histogram, inline_role, nr_location,
};

#[map]
static CONFIG: Array<TraceConfig> = Array::with_max_entries(1, 0);
#[map]
static SLOT_CONFIG: Array<SlotConfig> = Array::with_max_entries(FUNCTION_SLOTS, 0);
/// Entry timestamps in a fixed table indexed by thread and target: an
/// array lookup is inlined by the verifier, where a hash-map insert, lookup
/// and delete cost ~400 ns per call pair here. A table cannot leak entries;
/// a collision is detected by the owner tag and counted.
#[map]
static ENTRY_TIMES: Array<EntryTime> = Array::with_max_entries(ENTRY_TIME_SLOTS, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::LEN, 0);
/// Latency (ns) per slot: summary, and log-linear histogram rows of `histogram::BUCKETS`.
#[map]
static LATENCY_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(VALUE_SLOTS, 0);
#[map]
static LATENCY_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(VALUE_SLOTS * histogram::BUCKETS, 0);
/// Pages per call: returned by a function, or the syscall's length.
#[map]
static PAGES_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(VALUE_SLOTS, 0);
#[map]
static PAGES_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(VALUE_SLOTS * histogram::BUCKETS, 0);
/// `nr_ptes` per function slot, one exact bucket per value.
#[map]
static NR_PTES_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(FUNCTION_SLOTS * NR_PTES_BUCKETS, 0);
#[map]
static PROT_FLAGS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PROT_BUCKETS, 0);
/// Calls per function slot seen at call sites (no exit there, so no latency).
#[map]
static CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(FUNCTION_SLOTS, 0);
/// Failed syscalls by errno (bucket 0: out of range).
/// Calls, latency and nr_ptes of each slot by split value (`--split-by`):
/// sized by user space only when a run splits, else one entry each.
#[map]
static SPLIT_CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SPLIT_SLOTS, 0);
#[map]
static SPLIT_LATENCY_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(SPLIT_SLOTS, 0);
#[map]
static SPLIT_LATENCY_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(SPLIT_SLOTS * histogram::BUCKETS, 0);
#[map]
static SPLIT_NR_PTES_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(SPLIT_SLOTS * NR_PTES_BUCKETS, 0);

#[map]
static FAILED_CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(ERRNO_BUCKETS, 0);

#[inline(always)]
fn config() -> Option<&'static TraceConfig> {
    let config = CONFIG.get(CONFIG_INDEX);
    if config.is_none() {
        lookup_failed();
    }
    config
}

/// True when the current task belongs to what user space asked to trace
/// (and tracing is not paused for the final read).
#[inline(always)]
fn is_traced(pid_tgid: u64) -> bool {
    let Some(config) = config() else {
        return false;
    };
    config.paused == 0 && (config.trace_all != 0 || (pid_tgid >> 32) as u32 == config.target_tgid)
}

/// Paused for the final read: exits record nothing either.
#[inline(always)]
fn paused() -> bool {
    config().is_none_or(|config| config.paused != 0)
}

#[inline(always)]
fn bump(map: &PerCpuArray<u64>, index: u32) {
    match map.get_ptr_mut(index) {
        // Per-CPU slot: no other CPU writes it, so a plain add is exact.
        Some(count) => unsafe { *count += 1 },
        None => lookup_failed(),
    }
}

/// Counts a map lookup that found no entry: a value went unrecorded.
/// (If COUNTERS itself cannot be looked up there is nowhere to count it.)
#[inline(always)]
fn lookup_failed() {
    if let Some(count) = COUNTERS.get_ptr_mut(counter::MAP_LOOKUP_FAILED) {
        unsafe { *count += 1 };
    }
}

/// Adds `value` to slot `slot`'s summary and histogram.
#[inline(always)]
fn record(stats: &PerCpuArray<Stats>, hist: &PerCpuArray<u64>, slot: u32, value: u64) {
    let Some(stats) = stats.get_ptr_mut(slot) else {
        lookup_failed();
        return;
    };
    let stats = unsafe { &mut *stats };
    stats.count += 1;
    stats.total += value;
    if stats.min_plus_one == 0 || value < stats.min_plus_one - 1 {
        stats.min_plus_one = value + 1;
    }
    if value > stats.max {
        stats.max = value;
    }
    bump(hist, slot * histogram::BUCKETS + histogram::bucket(value));
}

#[inline(always)]
fn on_entry(pid_tgid: u64, slot: u32, args: u64) {
    let tid = pid_tgid as u32;
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(entry) = ENTRY_TIMES.get_ptr_mut(entry_index(tid, slot)) else {
        lookup_failed();
        return;
    };
    let entry = unsafe { &mut *entry };
    let owner = entry_owner(tid, slot);
    if entry.owner != 0 && entry.owner != owner {
        bump(&COUNTERS, counter::ENTRY_OVERWRITTEN);
    }
    entry.owner = owner;
    entry.start_ns = now;
    entry.args = args;
}

/// Pairs an exit with its task's entry: the latency and the entry's
/// arguments; `None` when this task has no entry for `slot`. Only tasks
/// that passed the filter at entry have one, so a paired exit needs no filter.
#[inline(always)]
fn on_exit(pid_tgid: u64, slot: u32) -> Option<(u64, u64)> {
    let tid = pid_tgid as u32;
    let Some(entry) = ENTRY_TIMES.get_ptr_mut(entry_index(tid, slot)) else {
        lookup_failed();
        return None;
    };
    let entry = unsafe { &mut *entry };
    if entry.owner != entry_owner(tid, slot) {
        return None;
    }
    // Read the clock only for traced tasks: other tasks' exits stay cheap.
    let now = unsafe { bpf_ktime_get_ns() };
    entry.owner = 0;
    Some((now.saturating_sub(entry.start_ns), entry.args))
}

/// Counts an exit of a traced task that had no entry.
#[inline(always)]
fn count_unpaired_exit(pid_tgid: u64, counter: u32) {
    if is_traced(pid_tgid) {
        bump(&COUNTERS, counter);
    }
}

#[inline(always)]
fn record_nr_ptes(slot: u32, nr_ptes: u64, split: Option<u32>) {
    let bucket = if nr_ptes > NR_PTES_EXACT_MAX {
        NR_PTES_EXACT_MAX + 1
    } else {
        nr_ptes
    };
    bump(&NR_PTES_HIST, slot * NR_PTES_BUCKETS + bucket as u32);
    if let Some(split) = split {
        bump(&SPLIT_NR_PTES_HIST, split * NR_PTES_BUCKETS + bucket as u32);
    }
}

/// The split record slot of a call of `slot` in this task: the value its
/// split source's live entry keeps (`cp_flags` of the change_protection
/// call it is inside); `None` when the slot is not split or the call is
/// inside none.
#[inline(always)]
fn split_slot(pid_tgid: u64, slot: u32, config: &SlotConfig) -> Option<u32> {
    if config.split_source < 0 {
        return None;
    }
    let source = config.split_source as u32;
    let tid = pid_tgid as u32;
    let entry = ENTRY_TIMES.get(entry_index(tid, source))?;
    (entry.owner == entry_owner(tid, source)).then(|| slot * SPLIT_VALUES + split_value(entry.args))
}

/// A split value's index: its low bits, anything above in the last one.
#[inline(always)]
fn split_value(value: u64) -> u32 {
    if value < SPLIT_VALUES as u64 {
        value as u32
    } else {
        SPLIT_VALUES - 1
    }
}

#[inline(always)]
fn slot_config(slot: u32) -> SlotConfig {
    match SLOT_CONFIG.get(slot) {
        Some(config) => *config,
        None => {
            lookup_failed();
            SlotConfig::default()
        }
    }
}

// sys_enter_mprotect: start at 16, len at 24, prot at 32; sys_exit_mprotect:
// ret at 16 (tracefs format).
const ENTER_LEN_OFFSET: usize = 24;
const ENTER_PROT_OFFSET: usize = 32;
const EXIT_RET_OFFSET: usize = 16;
/// The entry keeps pages << 4 | prot bucket (buckets are below 16).
const PROT_BITS: u64 = 4;

#[tracepoint(category = "syscalls", name = "sys_enter_mprotect")]
pub fn sys_enter_mprotect(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !is_traced(pid_tgid) {
        return 0;
    }
    // The verifier lets tracepoint programs read their record directly,
    // which is cheaper than a probe-read helper call.
    let record_ptr = ctx.as_ptr() as *const u8;
    let len = unsafe { *(record_ptr.add(ENTER_LEN_OFFSET) as *const u64) };
    let prot = unsafe { *(record_ptr.add(ENTER_PROT_OFFSET) as *const u64) };
    let bucket = if prot & !7 != 0 { PROT_BUCKETS - 1 } else { prot as u32 };
    let shift = match config().map_or(0, |config| config.page_shift) {
        0 => 12,
        shift => u64::from(shift & 31),
    };
    let pages = (len + (1 << shift) - 1) >> shift;
    bump(&COUNTERS, counter::SYSCALL_ENTER);
    // Lengths and flags are recorded at the exit, for successful calls only.
    on_entry(pid_tgid, SYSCALL_SLOT, (pages << PROT_BITS) | bucket as u64);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_mprotect")]
pub fn sys_exit_mprotect(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if paused() {
        return 0;
    }
    let Some((latency, args)) = on_exit(pid_tgid, SYSCALL_SLOT) else {
        count_unpaired_exit(pid_tgid, counter::SYSCALL_EXIT_WITHOUT_ENTRY);
        return 0;
    };
    let ret = unsafe { *((ctx.as_ptr() as *const u8).add(EXIT_RET_OFFSET) as *const i64) };
    if ret < 0 {
        let errno = (-ret) as u64;
        let bucket = if errno < ERRNO_BUCKETS as u64 { errno as u32 } else { 0 };
        bump(&FAILED_CALLS, bucket);
        return 0;
    }
    record(&LATENCY_STATS, &LATENCY_HIST, SYSCALL_SLOT, latency);
    record(&PAGES_STATS, &PAGES_HIST, SYSCALL_SLOT, args >> PROT_BITS);
    bump(&PROT_FLAGS, (args & ((1 << PROT_BITS) - 1)) as u32);
    0
}

/// Do-nothing programs on the same tracepoints: the floor the overhead
/// benchmark measures the real ones against.
#[tracepoint(category = "syscalls", name = "sys_enter_mprotect")]
pub fn sys_enter_mprotect_empty(_ctx: TracePointContext) -> u32 {
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_mprotect")]
pub fn sys_exit_mprotect_empty(_ctx: TracePointContext) -> u32 {
    0
}

#[inline(always)]
fn function_entry(slot: u32, argument: impl Fn(u32) -> Option<u64>) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !is_traced(pid_tgid) {
        return;
    }
    let config = slot_config(slot);
    if config.nr_ptes_arg >= 0 {
        if let Some(nr) = argument(config.nr_ptes_arg as u32) {
            record_nr_ptes(slot, nr, split_slot(pid_tgid, slot, &config));
        }
    }
    // The split source keeps its split value in its entry, for the calls
    // inside it and its own exit.
    let kept = if config.split_arg >= 0 {
        argument(config.split_arg as u32).unwrap_or(0)
    } else {
        0
    };
    on_entry(pid_tgid, slot, kept);
}

#[inline(always)]
fn function_exit(slot: u32, ret: impl FnOnce() -> Option<i64>) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if paused() {
        return;
    }
    let config = slot_config(slot);
    // Before on_exit: the split source's own entry is still live then.
    let split = split_slot(pid_tgid, slot, &config);
    let Some((latency, _)) = on_exit(pid_tgid, slot) else {
        count_unpaired_exit(pid_tgid, counter::FUNCTION_EXIT_WITHOUT_ENTRY);
        return;
    };
    record(&LATENCY_STATS, &LATENCY_HIST, slot, latency);
    if let Some(split) = split {
        bump(&SPLIT_CALLS, split);
        record(&SPLIT_LATENCY_STATS, &SPLIT_LATENCY_HIST, split, latency);
    }
    if config.records_return != 0 {
        if let Some(value) = ret() {
            if value >= 0 {
                record(&PAGES_STATS, &PAGES_HIST, slot, value as u64);
            }
        }
    }
}

/// A call instruction that calls slot `slot`'s target was reached: the
/// arguments are in their registers already.
#[inline(always)]
fn call_site(slot: u32, nr_ptes: impl FnOnce(u32) -> Option<u64>) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !is_traced(pid_tgid) {
        return;
    }
    bump(&CALLS, slot);
    let config = slot_config(slot);
    let split = split_slot(pid_tgid, slot, &config);
    if let Some(split) = split {
        bump(&SPLIT_CALLS, split);
    }
    if config.nr_ptes_arg >= 0 {
        if let Some(nr) = nr_ptes(config.nr_ptes_arg as u32) {
            record_nr_ptes(slot, nr, split);
        }
    }
}

/// fentry: the argument by runtime index, bounds-checked by the kernel.
#[inline(always)]
fn fentry_arg(ctx: &FEntryContext, index: u32) -> Option<u64> {
    let mut value = 0u64;
    (unsafe { bpf_get_func_arg(ctx.as_ptr(), index, &mut value) } == 0).then_some(value)
}

/// kprobe: the argument by runtime index, read from its register (the
/// calling convention's: six on x86-64, eight on arm64 and ppc64).
#[inline(always)]
fn kprobe_arg(ctx: &ProbeContext, index: u32) -> Option<u64> {
    dwarf_register(ctx.as_ptr() as *const pt_regs, argument_register(index)?)
}

/// The DWARF number of argument `index`'s register: rdi, rsi, rdx, rcx,
/// r8, r9 in the x86-64 psABI.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn argument_register(index: u32) -> Option<u32> {
    match index {
        0 => Some(5),
        1 => Some(4),
        2 => Some(1),
        3 => Some(2),
        4 => Some(8),
        5 => Some(9),
        _ => None,
    }
}

/// The DWARF number of argument `index`'s register: x0-x7.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn argument_register(index: u32) -> Option<u32> {
    (index < 8).then_some(index)
}

/// The DWARF number of argument `index`'s register: r3-r10 in the ELFv2 ABI.
#[cfg(bpf_target_arch = "powerpc64")]
#[inline(always)]
fn argument_register(index: u32) -> Option<u32> {
    (index < 8).then_some(index + 3)
}

/// Whether a perf sample interrupted kernel code.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn sampled_in_kernel(data: *const bpf_perf_event_data) -> bool {
    // The low two bits of CS are the privilege level the CPU was in.
    (unsafe { (*data).regs.cs } & 3) == 0
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn sampled_in_kernel(data: *const bpf_perf_event_data) -> bool {
    // PSTATE.M[3:0] is the exception level and stack: EL0t (0) is user mode.
    (unsafe { (*data).regs.pstate } & 0xf) != 0
}

#[cfg(bpf_target_arch = "powerpc64")]
#[inline(always)]
fn sampled_in_kernel(data: *const bpf_perf_event_data) -> bool {
    // MSR[PR], problem state, is set in user mode.
    const MSR_PR: u64 = 1 << 14;
    (unsafe { (*data).regs.msr } & MSR_PR) == 0
}

#[inline(always)]
fn fexit_ret(ctx: &FExitContext) -> Option<i64> {
    let mut value = 0u64;
    (unsafe { bpf_get_func_ret(ctx.as_ptr(), &mut value) } == 0).then_some(value as i64)
}

/// One fentry/fexit, one kprobe/kretprobe and one call-site kprobe
/// program per function slot: the slot is a constant of the program, so no
/// address lookup is needed to know which target fired.
macro_rules! function_slot_programs {
    ($($slot:literal: $fentry:ident, $fexit:ident, $kprobe:ident, $kretprobe:ident, $call_site:ident;)*) => {$(
        #[fentry]
        pub fn $fentry(ctx: FEntryContext) -> u32 {
            function_entry($slot, |index| fentry_arg(&ctx, index));
            0
        }

        #[fexit]
        pub fn $fexit(ctx: FExitContext) -> u32 {
            function_exit($slot, || fexit_ret(&ctx));
            0
        }

        #[kprobe]
        pub fn $kprobe(ctx: ProbeContext) -> u32 {
            function_entry($slot, |index| kprobe_arg(&ctx, index));
            0
        }

        #[kretprobe]
        pub fn $kretprobe(ctx: RetProbeContext) -> u32 {
            function_exit($slot, || Some(ctx.ret::<i64>()));
            0
        }

        #[kprobe]
        pub fn $call_site(ctx: ProbeContext) -> u32 {
            call_site($slot, |index| kprobe_arg(&ctx, index));
            0
        }
    )*};
}

function_slot_programs! {
    0: fentry_slot_0, fexit_slot_0, kprobe_slot_0, kretprobe_slot_0, call_site_slot_0;
    1: fentry_slot_1, fexit_slot_1, kprobe_slot_1, kretprobe_slot_1, call_site_slot_1;
    2: fentry_slot_2, fexit_slot_2, kprobe_slot_2, kretprobe_slot_2, call_site_slot_2;
    3: fentry_slot_3, fexit_slot_3, kprobe_slot_3, kretprobe_slot_3, call_site_slot_3;
    4: fentry_slot_4, fexit_slot_4, kprobe_slot_4, kretprobe_slot_4, call_site_slot_4;
    5: fentry_slot_5, fexit_slot_5, kprobe_slot_5, kretprobe_slot_5, call_site_slot_5;
    6: fentry_slot_6, fexit_slot_6, kprobe_slot_6, kretprobe_slot_6, call_site_slot_6;
    7: fentry_slot_7, fexit_slot_7, kprobe_slot_7, kretprobe_slot_7, call_site_slot_7;
}

/// Probed inlined instances by the address of their entry where the kernel runs.
#[map]
static INLINE_SITES: HashMap<u64, InlineSiteConfig> = HashMap::with_max_entries(INLINE_SITE_ENTRIES, 0);
/// Calls per inlined instance (the slot's CALLS is their sum): which
/// copy ran, e.g. the one-PTE path or the batch path.
#[map]
static INLINE_CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(FUNCTION_SLOTS * INLINE_INSTANCES_PER_SLOT, 0);

/// The entry (or the one exit) of an inlined instance was reached. One
/// program for every instance of every target: which target, and where
/// DWARF says its `nr_ptes` is there, are looked up by the probed
/// address (a kprobe that is not at a function's entry has no
/// `bpf_get_func_ip`).
#[kprobe]
pub fn inline_instance(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if paused() {
        return 0;
    }
    // Registers are read one by one: arm64's pt_regs does not fit the
    // BPF stack beside the rest.
    let regs = ctx.as_ptr() as *const pt_regs;
    let Some(address) = probed_address(regs) else {
        lookup_failed();
        return 0;
    };
    let Some(site) = (unsafe { INLINE_SITES.get(&address) }) else {
        lookup_failed();
        return 0;
    };
    let site = *site;
    if site.role == inline_role::EXIT {
        // Paired by the entry's owner tag, as a function's exit is.
        match on_exit(pid_tgid, site.slot) {
            Some((latency, _)) => record(&LATENCY_STATS, &LATENCY_HIST, site.slot, latency),
            None => count_unpaired_exit(pid_tgid, counter::FUNCTION_EXIT_WITHOUT_ENTRY),
        }
        return 0;
    }
    if !is_traced(pid_tgid) {
        return 0;
    }
    bump(&CALLS, site.slot);
    bump(&INLINE_CALLS, site.counter);
    let split = split_slot(pid_tgid, site.slot, &slot_config(site.slot));
    if let Some(split) = split {
        bump(&SPLIT_CALLS, split);
    }
    let nr = match site.nr_kind {
        nr_location::CONSTANT => Some(site.nr_value as u64),
        nr_location::REGISTER => dwarf_register(regs, site.nr_register),
        nr_location::MEMORY => dwarf_register(regs, site.nr_register)
            .and_then(|base| read_kernel_sized(base.wrapping_add(site.nr_value as u64), site.nr_size)),
        _ => None,
    };
    match nr {
        Some(nr) => record_nr_ptes(site.slot, nr, split),
        // DWARF located it, but it could not be read.
        None if site.nr_kind != nr_location::NONE => lookup_failed(),
        None => {}
    }
    // Last, so the probe's own work is not in the time.
    if site.role == inline_role::TIMED_ENTRY {
        on_entry(pid_tgid, site.slot, 0);
    }
    0
}

/// `size` bytes of kernel memory at `address`, zero-extended.
#[inline(always)]
fn read_kernel_sized(address: u64, size: u32) -> Option<u64> {
    unsafe {
        match size {
            1 => bpf_probe_read_kernel(address as *const u8).ok().map(u64::from),
            2 => bpf_probe_read_kernel(address as *const u16).ok().map(u64::from),
            4 => bpf_probe_read_kernel(address as *const u32).ok().map(u64::from),
            8 => bpf_probe_read_kernel(address as *const u64).ok(),
            _ => None,
        }
    }
}

/// Where the kprobe was placed: int3 has already run, so x86-64 reports
/// the byte after it (optimized and ftrace kprobes emulate the same).
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn probed_address(regs: *const pt_regs) -> Option<u64> {
    read_register(unsafe { core::ptr::addr_of!((*regs).rip) }).map(|ip| ip.wrapping_sub(1))
}

/// arm64's BRK leaves the PC on the probed instruction.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn probed_address(regs: *const pt_regs) -> Option<u64> {
    read_register(unsafe { core::ptr::addr_of!((*regs).pc) })
}

/// ppc64's trap (and an optimized probe, which sets it so) leaves NIP on
/// the probed instruction.
#[cfg(bpf_target_arch = "powerpc64")]
#[inline(always)]
fn probed_address(regs: *const pt_regs) -> Option<u64> {
    read_register(unsafe { core::ptr::addr_of!((*regs).nip) })
}

#[inline(always)]
fn read_register(field: *const u64) -> Option<u64> {
    unsafe { bpf_probe_read_kernel(field) }.ok()
}

/// A register by its DWARF number (the x86-64 psABI's order). Each field
/// is a constant offset: the verifier refuses a variable one into the context.
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
fn dwarf_register(regs: *const pt_regs, number: u32) -> Option<u64> {
    use core::ptr::addr_of;
    let field = unsafe {
        match number {
            0 => addr_of!((*regs).rax),
            1 => addr_of!((*regs).rdx),
            2 => addr_of!((*regs).rcx),
            3 => addr_of!((*regs).rbx),
            4 => addr_of!((*regs).rsi),
            5 => addr_of!((*regs).rdi),
            6 => addr_of!((*regs).rbp),
            7 => addr_of!((*regs).rsp),
            8 => addr_of!((*regs).r8),
            9 => addr_of!((*regs).r9),
            10 => addr_of!((*regs).r10),
            11 => addr_of!((*regs).r11),
            12 => addr_of!((*regs).r12),
            13 => addr_of!((*regs).r13),
            14 => addr_of!((*regs).r14),
            15 => addr_of!((*regs).r15),
            _ => return None,
        }
    };
    read_register(field)
}

/// A register by its DWARF number: x0-x30, then sp.
#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
fn dwarf_register(regs: *const pt_regs, number: u32) -> Option<u64> {
    use core::ptr::addr_of;
    macro_rules! x {
        ($($n:literal)*) => {
            match number {
                $($n => addr_of!((*regs).regs[$n]),)*
                31 => addr_of!((*regs).sp),
                _ => return None,
            }
        };
    }
    let field = unsafe { x!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30) };
    read_register(field)
}

/// A register by its DWARF number: r0-r31.
#[cfg(bpf_target_arch = "powerpc64")]
#[inline(always)]
fn dwarf_register(regs: *const pt_regs, number: u32) -> Option<u64> {
    use core::ptr::addr_of;
    macro_rules! r {
        ($($n:literal)*) => {
            match number {
                $($n => addr_of!((*regs).gpr[$n]),)*
                _ => return None,
            }
        };
    }
    let field = unsafe { r!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31) };
    read_register(field)
}

#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(STACK_MAP_ENTRIES, 0);
/// Samples per (task, kernel stack, user stack), per CPU.
#[map]
static SAMPLE_COUNTS: PerCpuHashMap<SampleKey, u64> = PerCpuHashMap::with_max_entries(STACK_MAP_ENTRIES, 0);

/// The name of every sampled process, by tgid, as its last sample saw it.
#[map]
static PROCESS_NAMES: HashMap<u32, [u8; 16]> = HashMap::with_max_entries(PROCESS_NAME_ENTRIES, 0);

const EEXIST: i32 = 17;
const ENOMEM: i32 = 12;
const EFAULT: i32 = 14;

/// The sampler: one program on a cpu-clock event per CPU. It counts
/// stack pairs in the kernel; user space reads the counts at the end.
#[perf_event]
pub fn sample_stack(ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(config) = config() else {
        return 0;
    };
    if config.paused != 0 {
        return 0;
    }
    // The idle task (tgid 0) is never traced, even with -a.
    if pid_tgid >> 32 == 0 || !is_traced(pid_tgid) {
        bump(&COUNTERS, counter::SAMPLES_OTHER_TASKS);
        return 0;
    }
    // The built-in workload says where its "measuring" flag is: samples
    // count only while its measured iterations run.
    if config.measuring_addr != 0 {
        let measuring = unsafe { bpf_probe_read_user(config.measuring_addr as *const u32) };
        if !matches!(measuring, Ok(flag) if flag != 0) {
            bump(&COUNTERS, counter::SAMPLES_OUTSIDE_WINDOW);
            return 0;
        }
    }
    bump(&COUNTERS, counter::SAMPLES);
    let in_kernel = sampled_in_kernel(ctx.as_ptr() as *const bpf_perf_event_data);
    let kernel_stack_id = match ctx.get_stackid(&STACKS, 0) {
        Ok(id) => id as i32,
        Err(err) => {
            if err == -ENOMEM {
                bump(&COUNTERS, counter::STACK_MAP_FULL);
            } else if in_kernel {
                let lost = if err == -EEXIST {
                    counter::KERNEL_STACK_COLLISION
                } else {
                    counter::KERNEL_STACK_FAILED
                };
                bump(&COUNTERS, lost);
            }
            -1
        }
    };
    let user_stack_id = match ctx.get_stackid(&STACKS, BPF_F_USER_STACK as u64) {
        Ok(id) => id as i32,
        // A task interrupted in user mode, or in the kernel on behalf of a
        // process, has at least its user IP: an empty user stack (-EFAULT)
        // is a kernel thread's, which has none to lose.
        Err(err) if err == -EFAULT && in_kernel => {
            bump(&COUNTERS, counter::KERNEL_THREAD_SAMPLES);
            KERNEL_THREAD_STACK_ID
        }
        Err(err) => {
            let lost = if err == -ENOMEM {
                counter::STACK_MAP_FULL
            } else {
                counter::USER_STACK_LOST
            };
            bump(&COUNTERS, lost);
            -1
        }
    };
    let tgid = (pid_tgid >> 32) as u32;
    // Stored at every sample: the last name wins, so a child sampled
    // between fork and exec is named after its new program.
    if let Ok(comm) = bpf_get_current_comm() {
        // Fails only when the map is full (user space then reads /proc).
        let _ = PROCESS_NAMES.insert(&tgid, &comm, BPF_ANY as u64);
    }
    let key = SampleKey {
        tgid,
        kernel_stack_id,
        user_stack_id,
        _pad: 0,
    };
    match SAMPLE_COUNTS.get_ptr_mut(&key) {
        // Per-CPU value: a plain add is exact.
        Some(count) => unsafe { *count += 1 },
        None => {
            if SAMPLE_COUNTS.insert(&key, &1, BPF_ANY as u64).is_err() {
                bump(&COUNTERS, counter::SAMPLE_MAP_FULL);
            }
        }
    }
    0
}

/// Per tracepoint slot: the field it distributes.
#[map]
static TRACEPOINT_CONFIG: Array<TracepointConfig> = Array::with_max_entries(TRACEPOINT_SLOTS, 0);
/// Events per tracepoint slot.
#[map]
static TRACEPOINT_CALLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(TRACEPOINT_SLOTS, 0);
/// Events per (slot, field value).
#[map]
static TRACEPOINT_VALUES: PerCpuHashMap<TracepointValueKey, u64> =
    PerCpuHashMap::with_max_entries(TRACEPOINT_VALUE_ENTRIES, 0);

/// A tracepoint target's event (`--probe category:name`). One program a
/// slot: a record's `common_type` would tell events apart, but perf
/// overwrites the record's first 8 bytes with a pt_regs pointer before
/// BPF sees it.
#[inline(always)]
fn tracepoint_event(ctx: &TracePointContext, slot: u32) {
    if !is_traced(bpf_get_current_pid_tgid()) {
        return;
    }
    let Some(config) = TRACEPOINT_CONFIG.get(slot) else {
        lookup_failed();
        return;
    };
    let config = *config;
    bump(&TRACEPOINT_CALLS, slot);
    let offset = config.field_offset as usize;
    let signed = config.field_signed != 0;
    let value = unsafe {
        match config.field_size {
            1 if signed => ctx.read_at::<i8>(offset).map(|v| v as i64 as u64),
            1 => ctx.read_at::<u8>(offset).map(u64::from),
            2 if signed => ctx.read_at::<i16>(offset).map(|v| v as i64 as u64),
            2 => ctx.read_at::<u16>(offset).map(u64::from),
            4 if signed => ctx.read_at::<i32>(offset).map(|v| v as i64 as u64),
            4 => ctx.read_at::<u32>(offset).map(u64::from),
            8 => ctx.read_at::<u64>(offset),
            // No field distributed.
            _ => return,
        }
    };
    let Ok(value) = value else {
        lookup_failed();
        return;
    };
    let key = TracepointValueKey { slot, _pad: 0, value };
    match TRACEPOINT_VALUES.get_ptr_mut(&key) {
        // Per-CPU value: a plain add is exact.
        Some(count) => unsafe { *count += 1 },
        None => {
            if TRACEPOINT_VALUES.insert(&key, &1, BPF_ANY as u64).is_err() {
                bump(&COUNTERS, counter::TRACEPOINT_VALUES_FULL);
            }
        }
    }
}

macro_rules! tracepoint_slots {
    ($($slot:literal: $name:ident;)*) => {$(
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            tracepoint_event(&ctx, $slot);
            0
        }
    )*};
}

tracepoint_slots! {
    0: tracepoint_slot_0;
    1: tracepoint_slot_1;
    2: tracepoint_slot_2;
    3: tracepoint_slot_3;
    4: tracepoint_slot_4;
    5: tracepoint_slot_5;
    6: tracepoint_slot_6;
    7: tracepoint_slot_7;
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
