//! Types and constants shared by the eBPF programs and user space.
//!
//! `no_std` by default so the eBPF crate can use it; the `user` feature
//! marks the shared structs as plain data for aya map reads.
#![no_std]

pub mod histogram;

/// Index of the single entry of the `CONFIG` array map.
pub const CONFIG_INDEX: u32 = 0;

/// Function targets that can be probed at once: the eBPF crate has one
/// fentry/fexit and one kprobe/kretprobe program per slot.
pub const FUNCTION_SLOTS: u32 = 8;
/// The latency/pages slot of the mprotect syscall itself, after the functions'.
pub const SYSCALL_SLOT: u32 = FUNCTION_SLOTS;
/// Slots of the latency and pages maps: every function, then the syscall.
pub const VALUE_SLOTS: u32 = FUNCTION_SLOTS + 1;

/// Exact `nr_ptes` values 0..=512 (512 PTEs fill one page table), then one
/// bucket for anything larger.
pub const NR_PTES_EXACT_MAX: u64 = 512;
pub const NR_PTES_BUCKETS: u32 = NR_PTES_EXACT_MAX as u32 + 2;

/// `prot & 7` (PROT_READ|PROT_WRITE|PROT_EXEC combinations), then one
/// bucket for calls with any other bit set.
pub const PROT_BUCKETS: u32 = 9;

/// Slots of the entry-timestamp table (a power of two): a task's entry
/// into a target lands in slot `entry_index(tid, target)`.
pub const ENTRY_TIME_SLOTS: u32 = 1 << 16;

/// Where a task's entry timestamp for `slot` is kept. Two in-flight calls
/// share a table slot only when their thread ids differ by a multiple of
/// 65536 (same target) or by one of a few fixed amounts of 7281 or more
/// (different targets: 9 * difference = slot difference, mod 65536).
#[inline(always)]
pub fn entry_index(tid: u32, slot: u32) -> u32 {
    (tid.wrapping_mul(VALUE_SLOTS).wrapping_add(slot)) & (ENTRY_TIME_SLOTS - 1)
}

/// Who an entry timestamp belongs to: never 0, which marks a free slot.
#[inline(always)]
pub fn entry_owner(tid: u32, slot: u32) -> u64 {
    ((tid as u64) << 32) | (slot as u64 + 1)
}

/// Distinct stacks the sampler keeps (kernel and user stacks share the
/// map), and distinct (task, kernel stack, user stack) keys it counts:
/// the default of `--max-stacks`, which sets both at load time.
pub const STACK_MAP_ENTRIES: u32 = 16384;

/// A sampled stack pair; a stack id below 0 means "none": a user-mode
/// sample has no kernel stack, a kernel thread no user stack
/// ([`KERNEL_THREAD_STACK_ID`]), and -1 a stack that was lost.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub tgid: u32,
    pub kernel_stack_id: i32,
    pub user_stack_id: i32,
    pub _pad: u32,
}

/// Tracepoints that can be targets at once (`--probe category:name`).
pub const TRACEPOINT_SLOTS: u32 = 8;
/// Distinct (tracepoint, field value) pairs counted exactly; values beyond
/// are counted as not stored, never dropped silently.
pub const TRACEPOINT_VALUE_ENTRIES: u32 = 4096;
/// Processes whose name the sampler keeps (the process root frames of -a).
pub const PROCESS_NAME_ENTRIES: u32 = 8192;

/// Which integer field, if any, a tracepoint slot distributes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointConfig {
    /// Offset of the field in the event record (tracefs `format`).
    pub field_offset: u32,
    /// 1, 2, 4 or 8 bytes; 0 when no field is distributed.
    pub field_size: u32,
    /// 1 when the field is signed (sign-extended to 64 bits).
    pub field_signed: u32,
}

/// One value of a tracepoint's distributed field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TracepointValueKey {
    pub slot: u32,
    pub _pad: u32,
    pub value: u64,
}

/// The user stack id of a kernel thread's sample: it has no user stack.
pub const KERNEL_THREAD_STACK_ID: i32 = -2;

/// What the kernel side filters on, written by user space before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// Thread-group id (process id) to count; ignored when `trace_all` is 1.
    pub target_tgid: u32,
    /// 1: count every task on the system (`-a`).
    pub trace_all: u32,
    /// 1: record nothing more. Set before the maps are read at the end, so
    /// every figure of a report comes from one snapshot.
    pub paused: u32,
    /// log2 of the running kernel's base page size (12: 4 kB, 16: 64 kB),
    /// for the pages of an mprotect() length; 0 reads as 12.
    pub page_shift: u32,
    /// Address, in the traced process, of a u32 that is non-zero while its
    /// measured iterations run (the built-in workload); 0: sample always.
    pub measuring_addr: u64,
}

/// errno values of failed calls: 1..=133 exactly (133 is the largest Linux
/// errno), bucket 0 for anything else.
pub const ERRNO_BUCKETS: u32 = 134;

/// Per function slot: which values its probes record besides latency.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotConfig {
    /// Index of the parameter whose value is an `nr_ptes` count, or -1.
    pub nr_ptes_arg: i32,
    /// 1 when the return value is recorded (pages changed, or a count
    /// such as a batch length; user space knows which).
    pub records_return: u32,
    /// Index of the parameter this slot's entry keeps as the split value
    /// of the calls inside it (`change_protection`'s `cp_flags`), or -1.
    pub split_arg: i32,
    /// The slot whose live entry, in the same task, holds the split value
    /// of this slot's records (itself for the slot that reads it), or -1:
    /// not split.
    pub split_source: i32,
}

impl Default for SlotConfig {
    fn default() -> Self {
        Self {
            nr_ptes_arg: -1,
            records_return: 0,
            split_arg: -1,
            split_source: -1,
        }
    }
}

/// Split values a slot's records are kept apart by: the low bits of
/// `cp_flags` (MM_CP_TRY_CHANGE_WRITABLE, MM_CP_PROT_NUMA, MM_CP_UFFD_WP,
/// MM_CP_UFFD_WP_RESOLVE); higher bits share the last value.
pub const SPLIT_VALUES: u32 = 16;
/// Split record slots: `slot * SPLIT_VALUES + value`.
pub const SPLIT_SLOTS: u32 = FUNCTION_SLOTS * SPLIT_VALUES;

/// Inlined instances one target can have probed; each has its own call
/// counter, at `slot * INLINE_INSTANCES_PER_SLOT + instance`.
pub const INLINE_INSTANCES_PER_SLOT: u32 = 32;
/// Probed addresses of inlined instances (entries, and exits of the
/// timed ones), over all targets.
pub const INLINE_SITE_ENTRIES: u32 = 2 * FUNCTION_SLOTS * INLINE_INSTANCES_PER_SLOT;

/// How an inlined instance's `nr_ptes` is read at its entry
/// ([`InlineSiteConfig::nr_kind`]): where DWARF locates it there.
pub mod nr_location {
    /// Not readable: calls are counted only.
    pub const NONE: u32 = 0;
    /// A compile-time constant: `nr_value`.
    pub const CONSTANT: u32 = 1;
    /// A register, by DWARF number: `nr_register`.
    pub const REGISTER: u32 = 2;
    /// `nr_size` bytes at register `nr_register` + `nr_value`.
    pub const MEMORY: u32 = 3;
}

/// What a probed address of an inlined instance is ([`InlineSiteConfig::role`]).
pub mod inline_role {
    /// Its entry: counts a call and reads `nr_ptes`.
    pub const ENTRY: u32 = 0;
    /// The entry of an instance with one exit: also starts its timing.
    pub const TIMED_ENTRY: u32 = 1;
    /// That one exit: ends the timing.
    pub const EXIT: u32 = 2;
}

/// One probed address of an inlined instance, where the kernel runs it:
/// which slot it belongs to, what it is, and where `nr_ptes` is there.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InlineSiteConfig {
    pub slot: u32,
    /// One of [`inline_role`].
    pub role: u32,
    /// One of [`nr_location`].
    pub nr_kind: u32,
    pub nr_register: u32,
    pub nr_size: u32,
    /// Its call counter in `INLINE_CALLS`.
    pub counter: u32,
    /// The constant, or the offset from the register.
    pub nr_value: i64,
}

/// Running summary of one value stream (latency in ns, or pages).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub count: u64,
    pub total: u64,
    /// Smallest value plus one; 0 while nothing was recorded (a recorded
    /// value may itself be 0, e.g. no page changed).
    pub min_plus_one: u64,
    pub max: u64,
}

/// An entry timestamp: whose it is (`entry_owner`, 0 when free) and when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryTime {
    pub owner: u64,
    pub start_ns: u64,
    /// The syscall's arguments, recorded at its exit once its outcome is
    /// known: pages << 4 | prot bucket.
    pub args: u64,
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::TraceConfig {}
    unsafe impl aya::Pod for super::SlotConfig {}
    unsafe impl aya::Pod for super::Stats {}
    unsafe impl aya::Pod for super::EntryTime {}
    unsafe impl aya::Pod for super::SampleKey {}
    unsafe impl aya::Pod for super::TracepointConfig {}
    unsafe impl aya::Pod for super::TracepointValueKey {}
    unsafe impl aya::Pod for super::InlineSiteConfig {}
}

/// Slots of the per-CPU `COUNTERS` array: event counts and lost data.
pub mod counter {
    // The syscall's entry and exit counts are not kept here: every traced
    // entry records its pages, every paired exit its latency, so those
    // counts (plus the unpaired exits) are the event counts, for free.
    /// Syscall exits of traced tasks whose entry was never seen (attached
    /// mid-call, or the entry was overwritten).
    pub const SYSCALL_EXIT_WITHOUT_ENTRY: u32 = 0;
    /// The same for probed functions.
    pub const FUNCTION_EXIT_WITHOUT_ENTRY: u32 = 1;
    /// Entry timestamps that replaced another call's unpaired one: two
    /// in-flight calls sharing a table slot, or an exit that was missed.
    pub const ENTRY_OVERWRITTEN: u32 = 2;
    /// Stack samples counted (of the traced task(s)).
    pub const SAMPLES: u32 = 3;
    /// Samples that hit another task (not traced, so not counted).
    pub const SAMPLES_OTHER_TASKS: u32 = 4;
    /// Kernel-mode samples whose kernel stack was lost: a stack-map hash
    /// collision (-EEXIST), or a failed walk.
    pub const KERNEL_STACK_COLLISION: u32 = 5;
    pub const KERNEL_STACK_FAILED: u32 = 6;
    /// Samples whose user stack was lost (collision, failed walk).
    pub const USER_STACK_LOST: u32 = 7;
    /// Samples dropped because the sample-count map was full.
    pub const SAMPLE_MAP_FULL: u32 = 8;
    /// Stacks (kernel or user) not stored because the stack map was full.
    pub const STACK_MAP_FULL: u32 = 9;
    /// Map lookups that found no entry, so a value went unrecorded.
    pub const MAP_LOOKUP_FAILED: u32 = 10;
    /// Syscall entries of traced tasks.
    pub const SYSCALL_ENTER: u32 = 11;
    /// Samples of the traced process outside its measured iterations.
    pub const SAMPLES_OUTSIDE_WINDOW: u32 = 12;
    /// Tracepoint field values not counted: the value map was full.
    pub const TRACEPOINT_VALUES_FULL: u32 = 13;
    /// Samples with no user stack to walk: kernel threads, and processes
    /// sampled in do_exit after their memory is gone.
    pub const KERNEL_THREAD_SAMPLES: u32 = 14;
    pub const LEN: u32 = 15;
}

/// The eBPF object's program names, as user space loads and attaches
/// them. The eBPF crate's function names must match: a test loads the
/// object and checks every one.
pub mod programs {
    pub const SYS_ENTER_MPROTECT: &str = "sys_enter_mprotect";
    pub const SYS_EXIT_MPROTECT: &str = "sys_exit_mprotect";
    /// Do-nothing programs on the same tracepoints (the overhead floor).
    pub const SYS_ENTER_MPROTECT_EMPTY: &str = "sys_enter_mprotect_empty";
    pub const SYS_EXIT_MPROTECT_EMPTY: &str = "sys_exit_mprotect_empty";
    pub const SAMPLE_STACK: &str = "sample_stack";
    pub const FENTRY_CAPABILITY_CHECK: &str = "fentry_capability_check";
    pub const KPROBE_CAPABILITY_CHECK: &str = "kprobe_capability_check";
    pub const SAMPLER_CAPABILITY_CHECK: &str = "sampler_capability_check";

    /// One program per function slot and probe kind.
    pub const FENTRY_SLOTS: [&str; super::FUNCTION_SLOTS as usize] = [
        "fentry_slot_0",
        "fentry_slot_1",
        "fentry_slot_2",
        "fentry_slot_3",
        "fentry_slot_4",
        "fentry_slot_5",
        "fentry_slot_6",
        "fentry_slot_7",
    ];
    pub const FEXIT_SLOTS: [&str; super::FUNCTION_SLOTS as usize] = [
        "fexit_slot_0",
        "fexit_slot_1",
        "fexit_slot_2",
        "fexit_slot_3",
        "fexit_slot_4",
        "fexit_slot_5",
        "fexit_slot_6",
        "fexit_slot_7",
    ];
    pub const KPROBE_SLOTS: [&str; super::FUNCTION_SLOTS as usize] = [
        "kprobe_slot_0",
        "kprobe_slot_1",
        "kprobe_slot_2",
        "kprobe_slot_3",
        "kprobe_slot_4",
        "kprobe_slot_5",
        "kprobe_slot_6",
        "kprobe_slot_7",
    ];
    /// Kprobes placed on the call instructions that call a target.
    pub const CALL_SITE_SLOTS: [&str; super::FUNCTION_SLOTS as usize] = [
        "call_site_slot_0",
        "call_site_slot_1",
        "call_site_slot_2",
        "call_site_slot_3",
        "call_site_slot_4",
        "call_site_slot_5",
        "call_site_slot_6",
        "call_site_slot_7",
    ];
    /// One kprobe for every inlined instance of every target: the slot
    /// and where `nr_ptes` is come from the instance's entry address.
    pub const INLINE_INSTANCE: &str = "inline_instance";
    /// One program per tracepoint target.
    pub const TRACEPOINT_SLOTS: [&str; super::TRACEPOINT_SLOTS as usize] = [
        "tracepoint_slot_0",
        "tracepoint_slot_1",
        "tracepoint_slot_2",
        "tracepoint_slot_3",
        "tracepoint_slot_4",
        "tracepoint_slot_5",
        "tracepoint_slot_6",
        "tracepoint_slot_7",
    ];
    pub const KRETPROBE_SLOTS: [&str; super::FUNCTION_SLOTS as usize] = [
        "kretprobe_slot_0",
        "kretprobe_slot_1",
        "kretprobe_slot_2",
        "kretprobe_slot_3",
        "kretprobe_slot_4",
        "kretprobe_slot_5",
        "kretprobe_slot_6",
        "kretprobe_slot_7",
    ];
}

/// The eBPF object's map names (the eBPF crate's statics, checked by the
/// same test).
pub mod maps {
    pub const CONFIG: &str = "CONFIG";
    pub const SLOT_CONFIG: &str = "SLOT_CONFIG";
    pub const ENTRY_TIMES: &str = "ENTRY_TIMES";
    pub const COUNTERS: &str = "COUNTERS";
    pub const LATENCY_STATS: &str = "LATENCY_STATS";
    pub const LATENCY_HIST: &str = "LATENCY_HIST";
    pub const PAGES_STATS: &str = "PAGES_STATS";
    pub const PAGES_HIST: &str = "PAGES_HIST";
    pub const NR_PTES_HIST: &str = "NR_PTES_HIST";
    pub const CALLS: &str = "CALLS";
    pub const PROT_FLAGS: &str = "PROT_FLAGS";
    pub const FAILED_CALLS: &str = "FAILED_CALLS";
    pub const STACKS: &str = "STACKS";
    pub const SAMPLE_COUNTS: &str = "SAMPLE_COUNTS";
    pub const PROCESS_NAMES: &str = "PROCESS_NAMES";
    pub const TRACEPOINT_CONFIG: &str = "TRACEPOINT_CONFIG";
    pub const TRACEPOINT_CALLS: &str = "TRACEPOINT_CALLS";
    pub const TRACEPOINT_VALUES: &str = "TRACEPOINT_VALUES";
    pub const INLINE_SITES: &str = "INLINE_SITES";
    pub const INLINE_CALLS: &str = "INLINE_CALLS";
    pub const SPLIT_CALLS: &str = "SPLIT_CALLS";
    pub const SPLIT_LATENCY_STATS: &str = "SPLIT_LATENCY_STATS";
    pub const SPLIT_LATENCY_HIST: &str = "SPLIT_LATENCY_HIST";
    pub const SPLIT_NR_PTES_HIST: &str = "SPLIT_NR_PTES_HIST";
}
