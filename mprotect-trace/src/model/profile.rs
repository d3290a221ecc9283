//! Stack sampling as the run model holds it: every sampled stack, what
//! sampling lost, and each kernel function's share of the samples taken
//! inside the mprotect syscall.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// A kernel stack holding one of these frames was sampled inside mprotect().
const SYSCALL_FRAMES: [&str; 3] = ["__x64_sys_mprotect", "__do_sys_mprotect", "do_mprotect_pkey"];

/// One distinct stack pair of one process and how often it was sampled.
/// Frames are root first: the user stack, then the kernel stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledStack {
    pub user: Vec<String>,
    pub kernel: Vec<String>,
    pub count: u64,
    /// Which process was sampled (schema 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<SampledProcess>,
    /// The frames' addresses, root first, one per frame (schema 4): a
    /// saved run can be symbolized again, and pprof keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_addresses: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_addresses: Vec<u64>,
    /// Each kernel frame's offset in its function (`sym+0x239`), from
    /// kallsyms; null for frames in no function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_offsets: Vec<Option<u64>>,
    /// Why user frames read `[unknown]`, when any do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_user: Option<UnknownUser>,
    /// With the kernel's debug info: per kernel frame, the functions
    /// inlined at its address, outermost first (empty without debug info).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_inlined: Vec<Vec<String>>,
    /// With the kernel's debug info: per kernel frame, the source line of
    /// its address (`mm/mprotect.c:334`), the innermost function's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_lines: Vec<Option<String>>,
}

/// How an inlined function's frame is named in stacks and tables.
pub fn inlined_frame(name: &str) -> String {
    format!("{name}{INLINED}")
}

const INLINED: &str = " (inlined)";

/// The function a frame stands for, inlined or not: kernels that inline
/// differently still compare function by function.
pub fn logical_function(frame: &str) -> &str {
    frame.strip_suffix(INLINED).unwrap_or(frame)
}

impl SampledStack {
    /// The kernel frames, root first, each followed by the functions
    /// inlined at its address (marked `(inlined)`) when debug info said.
    pub fn kernel_frames(&self) -> Vec<String> {
        let mut frames = Vec::with_capacity(self.kernel.len());
        for (index, frame) in self.kernel.iter().enumerate() {
            frames.push(frame.clone());
            if let Some(inlined) = self.kernel_inlined.get(index) {
                frames.extend(inlined.iter().map(|name| inlined_frame(name)));
            }
        }
        frames
    }

    /// Each frame of [`Self::kernel_frames`] with its address.
    pub fn kernel_frame_addresses(&self) -> Vec<u64> {
        let mut addresses = Vec::with_capacity(self.kernel.len());
        for index in 0..self.kernel.len() {
            let address = self.kernel_addresses.get(index).copied().unwrap_or(0);
            let inlined = self.kernel_inlined.get(index).map_or(0, Vec::len);
            addresses.extend(std::iter::repeat_n(address, 1 + inlined));
        }
        addresses
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledProcess {
    pub pid: u32,
    pub comm: String,
    /// A kernel thread: it has no user stack.
    #[serde(default)]
    pub kernel_thread: bool,
}

impl SampledProcess {
    /// The root frame of its stacks in system-wide profiles: `comm-pid`,
    /// as perf's `stackcollapse --pid` writes it.
    pub fn frame(&self) -> String {
        format!("{}-{}", self.comm, self.pid)
    }
}

/// Why a stack's user frames could not be named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownUser {
    /// The process had exited before its stacks were read: its mappings
    /// were gone (short-lived processes under -a).
    ProcessExited,
    /// Return addresses in no mapping of the process: a frame-pointer
    /// walk through code built without frame pointers reads garbage.
    NoFramePointers,
    /// Code in anonymous memory (a JIT) or in a file without symbols.
    NoSymbols,
    /// The user stack was not recorded (hash collision or failed walk).
    StackLost,
}

impl UnknownUser {
    pub fn describe(self) -> &'static str {
        match self {
            Self::ProcessExited => "the process exited before its stacks were read",
            Self::NoFramePointers => "return addresses in no mapping (code built without frame pointers)",
            Self::NoSymbols => "code without symbols (stripped binaries, JIT code)",
            Self::StackLost => "user stacks lost (collisions, failed walks)",
        }
    }
}

/// Everything sampling lost, counted, never silent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleCounters {
    pub samples: u64,
    pub samples_other_tasks: u64,
    pub kernel_stack_collisions: u64,
    pub kernel_stack_failed: u64,
    pub user_stack_lost: u64,
    pub sample_map_full: u64,
    /// Kernel or user stacks not stored: the stack map was full.
    #[serde(default)]
    pub stack_map_full: u64,
    /// Samples of the workload outside its measured iterations (setup,
    /// prefault, warmup, smaps audits, unmapping): not counted.
    #[serde(default)]
    pub samples_outside_window: u64,
    /// Samples with no user stack (kernel threads, and processes sampled
    /// in do_exit after their memory is gone), as the sampler counted them.
    #[serde(default)]
    pub kernel_thread_samples: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    pub hz: u64,
    pub cpus: usize,
    /// The capacity of the stack and sample-count maps (`--max-stacks`).
    #[serde(default = "default_max_stacks")]
    pub max_stacks: u32,
    pub counters: SampleCounters,
    /// Samples whose kernel stack is inside the mprotect syscall.
    pub in_syscall_samples: u64,
    /// Only the built-in workload's measured iterations were sampled.
    #[serde(default)]
    pub measured_iterations_only: bool,
    /// Kernel functions by total share of the in-syscall samples.
    pub functions: Vec<FunctionShare>,
    /// Named targets with no symbol of their own, and where their time went.
    pub inlined_targets: Vec<InlinedTarget>,
    pub stacks: Vec<SampledStack>,
    /// Every folded stack starts at its process (`comm-pid`): -a and -p.
    #[serde(default)]
    pub process_roots: bool,
    /// The hottest instructions of the hottest functions inside mprotect().
    #[serde(default)]
    pub hot_spots: Vec<HotSpot>,
    /// The vmlinux whose debug info named the inlined functions and lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_info: Option<DebugInfoUsed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugInfoUsed {
    pub vmlinux: String,
    pub build_id: String,
}

/// One instruction where in-syscall samples landed: `function+offset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HotSpot {
    pub function: String,
    pub offset: u64,
    /// With debug info: its source line and the functions inlined there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inlined: Vec<String>,
    pub samples: u64,
    /// Of the function's own (self) samples.
    pub share_of_function: f64,
    /// Of every sample inside mprotect().
    pub share: f64,
}

impl HotSpot {
    pub fn label(&self) -> String {
        format!("{}+{:#x}", self.function, self.offset)
    }
}

/// Functions whose hot spots are listed: those of at least this self share.
const HOT_FUNCTION_SHARE: f64 = 0.01;
/// At most this many functions, and this many instructions each.
const HOT_FUNCTIONS: usize = 8;
const HOT_SPOTS_PER_FUNCTION: usize = 5;

/// An instruction's source line and the functions inlined there.
type SourceOf = (Option<String>, Vec<String>);

/// The leaf instructions of the in-syscall samples, per hot function.
fn hot_spots(stacks: &[SampledStack], in_syscall_samples: u64) -> Vec<HotSpot> {
    let mut by_instruction: HashMap<(&str, u64), u64> = HashMap::new();
    // Where each instruction is in the source, when debug info said.
    let mut sources: HashMap<(&str, u64), SourceOf> = HashMap::new();
    for stack in stacks.iter().filter(|s| in_syscall(s)) {
        if let (Some(leaf), Some(Some(offset))) = (stack.kernel.last(), stack.kernel_offsets.last()) {
            *by_instruction.entry((leaf, *offset)).or_default() += stack.count;
            let line = stack.kernel_lines.last().cloned().flatten();
            let inlined = stack.kernel_inlined.last().cloned().unwrap_or_default();
            sources.entry((leaf, *offset)).or_insert((line, inlined));
        }
    }
    // Self samples by symbol (inlined code counts for its symbol here:
    // the offsets are the symbol's).
    let mut by_symbol: HashMap<&str, u64> = HashMap::new();
    for ((name, _), samples) in &by_instruction {
        *by_symbol.entry(name).or_default() += samples;
    }
    let mut hot: Vec<(&str, u64)> = by_symbol
        .into_iter()
        .filter(|(_, samples)| *samples as f64 >= HOT_FUNCTION_SHARE * in_syscall_samples as f64)
        .collect();
    hot.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut spots = Vec::new();
    for (function, self_samples) in hot.into_iter().take(HOT_FUNCTIONS) {
        let mut mine: Vec<(u64, u64)> = by_instruction
            .iter()
            .filter(|((name, _), _)| *name == function)
            .map(|((_, offset), samples)| (*offset, *samples))
            .collect();
        mine.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        spots.extend(mine.into_iter().take(HOT_SPOTS_PER_FUNCTION).map(|(offset, samples)| {
            let (line, inlined) = sources.get(&(function, offset)).cloned().unwrap_or_default();
            HotSpot {
                function: function.to_owned(),
                offset,
                line,
                inlined,
                samples,
                share_of_function: samples as f64 / self_samples.max(1) as f64,
                share: samples as f64 / in_syscall_samples.max(1) as f64,
            }
        }));
    }
    spots
}

/// Samples of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSamples {
    pub process: SampledProcess,
    pub samples: u64,
    pub in_syscall_samples: u64,
}

/// A frame the folded stacks print for a user stack that was not recorded.
pub const USER_STACK_LOST_FRAME: &str = "[user stack lost]";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionShare {
    pub name: String,
    /// Samples where it was the leaf (its own code, inlined code included).
    pub self_samples: u64,
    /// Samples where it was anywhere on the stack.
    pub total_samples: u64,
    pub self_share: f64,
    pub total_share: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InlinedTarget {
    pub target: String,
    /// The nearest caller in the kernel source that has a symbol here.
    pub inlined_into: Option<String>,
    pub inlined_into_share: Option<FunctionShare>,
}

fn in_syscall(stack: &SampledStack) -> bool {
    stack
        .kernel
        .iter()
        .any(|frame| SYSCALL_FRAMES.contains(&frame.as_str()))
}

fn default_max_stacks() -> u32 {
    mprotect_trace_common::STACK_MAP_ENTRIES
}

impl Profile {
    /// `inlined`: each named target with no symbol of its own, and the
    /// nearest caller in the kernel source that has one.
    pub fn new(
        hz: u64,
        cpus: usize,
        max_stacks: u32,
        counters: SampleCounters,
        stacks: Vec<SampledStack>,
        inlined: Vec<(String, Option<String>)>,
    ) -> Self {
        let in_syscall_samples = stacks.iter().filter(|s| in_syscall(s)).map(|s| s.count).sum();
        let functions = shares(&stacks, in_syscall_samples);
        let hot_spots = hot_spots(&stacks, in_syscall_samples);
        let inlined_targets = inlined
            .into_iter()
            .map(|(target, inlined_into)| {
                let inlined_into_share = inlined_into
                    .as_ref()
                    .and_then(|name| functions.iter().find(|f| &f.name == name).cloned());
                InlinedTarget {
                    target,
                    inlined_into,
                    inlined_into_share,
                }
            })
            .collect();
        Self {
            hz,
            cpus,
            max_stacks,
            counters,
            in_syscall_samples,
            measured_iterations_only: false,
            functions,
            inlined_targets,
            stacks,
            process_roots: false,
            hot_spots,
            debug_info: None,
        }
    }

    /// Samples by process, most sampled first.
    pub fn by_process(&self) -> Vec<ProcessSamples> {
        let mut processes: HashMap<u32, ProcessSamples> = HashMap::new();
        for stack in &self.stacks {
            let Some(process) = &stack.process else { continue };
            let entry = processes.entry(process.pid).or_insert_with(|| ProcessSamples {
                process: process.clone(),
                samples: 0,
                in_syscall_samples: 0,
            });
            entry.samples += stack.count;
            if in_syscall(stack) {
                entry.in_syscall_samples += stack.count;
            }
        }
        let mut processes: Vec<ProcessSamples> = processes.into_values().collect();
        processes.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.process.pid.cmp(&b.process.pid)));
        processes
    }

    /// Samples with `[unknown]` user frames (or a lost user stack), by cause.
    pub fn unknown_user(&self) -> Vec<(UnknownUser, u64)> {
        let mut causes: HashMap<UnknownUser, u64> = HashMap::new();
        for stack in &self.stacks {
            if let Some(cause) = stack.unknown_user {
                *causes.entry(cause).or_default() += stack.count;
            }
        }
        let mut causes: Vec<(UnknownUser, u64)> = causes.into_iter().collect();
        causes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        causes
    }

    /// Brendan Gregg's folded format: `root;...;leaf count`, one stack a
    /// line, stacks that differ only by address merged, most sampled first.
    pub fn folded(&self) -> String {
        self.folded_with(false)
    }

    /// The same, with each kernel leaf as `function+0xoffset`: the hot
    /// instructions, for a flame graph below the function.
    pub fn folded_with_leaf_offsets(&self) -> String {
        self.folded_with(true)
    }

    fn folded_with(&self, leaf_offsets: bool) -> String {
        let mut merged: HashMap<String, u64> = HashMap::new();
        for stack in &self.stacks {
            let root = stack
                .process
                .as_ref()
                .filter(|_| self.process_roots)
                .map(SampledProcess::frame);
            let lost = (stack.unknown_user == Some(UnknownUser::StackLost)).then(|| USER_STACK_LOST_FRAME.to_owned());
            let mut kernel = stack.kernel_frames();
            if leaf_offsets && let (Some(leaf), Some(Some(offset))) = (kernel.last_mut(), stack.kernel_offsets.last()) {
                *leaf = format!("{leaf}+{offset:#x}");
            }
            let frames: Vec<String> = root
                .into_iter()
                .chain(lost)
                .chain(stack.user.iter().cloned())
                .chain(kernel)
                .map(|frame| frame.replace(';', ":"))
                .collect();
            let line = if frames.is_empty() {
                "[no stack]".to_owned()
            } else {
                frames.join(";")
            };
            *merged.entry(line).or_default() += stack.count;
        }
        let mut lines: Vec<(String, u64)> = merged.into_iter().collect();
        lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        lines.iter().map(|(line, count)| format!("{line} {count}\n")).collect()
    }
}

/// Self and total samples of every kernel function in in-syscall stacks.
fn shares(stacks: &[SampledStack], in_syscall_samples: u64) -> Vec<FunctionShare> {
    let mut self_samples: HashMap<String, u64> = HashMap::new();
    let mut total_samples: HashMap<String, u64> = HashMap::new();
    for stack in stacks.iter().filter(|s| in_syscall(s)) {
        // Inlined functions are frames of their own.
        let frames = stack.kernel_frames();
        if let Some(leaf) = frames.last() {
            *self_samples.entry(leaf.clone()).or_default() += stack.count;
        }
        // A recursive function counts once per stack.
        let unique: HashSet<String> = frames.into_iter().collect();
        for frame in unique {
            *total_samples.entry(frame).or_default() += stack.count;
        }
    }
    let share = |n: u64| {
        if in_syscall_samples == 0 {
            0.0
        } else {
            n as f64 / in_syscall_samples as f64
        }
    };
    let mut functions: Vec<FunctionShare> = total_samples
        .into_iter()
        .map(|(name, total)| {
            let own = self_samples.get(&name).copied().unwrap_or(0);
            FunctionShare {
                name,
                self_samples: own,
                total_samples: total,
                self_share: share(own),
                total_share: share(total),
            }
        })
        .collect();
    functions.sort_by(|a, b| {
        b.total_samples
            .cmp(&a.total_samples)
            .then(b.self_samples.cmp(&a.self_samples))
            .then(a.name.cmp(&b.name))
    });
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(kernel: &[&str], count: u64) -> SampledStack {
        SampledStack {
            user: vec!["main".into()],
            kernel: kernel.iter().map(|s| s.to_string()).collect(),
            count,
            ..SampledStack::default()
        }
    }

    #[test]
    fn shares_count_only_samples_inside_the_syscall() {
        let stacks = vec![
            stack(
                &[
                    "entry_SYSCALL_64",
                    "__x64_sys_mprotect",
                    "change_protection",
                    "change_pte_range",
                ],
                6,
            ),
            stack(&["entry_SYSCALL_64", "__x64_sys_mprotect", "change_protection"], 2),
            stack(&["entry_SYSCALL_64", "__x64_sys_mprotect", "flush_tlb_mm_range"], 2),
            stack(&["asm_exc_page_fault", "handle_mm_fault"], 5),
            stack(&[], 3),
        ];
        let functions = shares(&stacks, 10);
        let get = |name: &str| functions.iter().find(|f| f.name == name).unwrap();
        assert_eq!(
            (
                get("change_pte_range").self_samples,
                get("change_pte_range").total_samples
            ),
            (6, 6)
        );
        assert_eq!(
            (
                get("change_protection").self_samples,
                get("change_protection").total_samples
            ),
            (2, 8)
        );
        assert_eq!(get("__x64_sys_mprotect").total_share, 1.0);
        assert_eq!(get("change_protection").total_share, 0.8);
        assert!(functions.iter().all(|f| f.name != "handle_mm_fault"));
        assert_eq!(functions[0].name, "__x64_sys_mprotect");
    }

    #[test]
    fn inlined_frames_are_their_function_for_comparisons() {
        assert_eq!(
            inlined_frame("modify_prot_start_ptes"),
            "modify_prot_start_ptes (inlined)"
        );
        assert_eq!(
            logical_function("modify_prot_start_ptes (inlined)"),
            "modify_prot_start_ptes"
        );
        assert_eq!(logical_function("change_pte_range"), "change_pte_range");
        // Shares count an inlined function as a frame of its own.
        let stack = SampledStack {
            kernel_inlined: vec![
                vec![],
                vec!["change_present_ptes".into(), "modify_prot_start_ptes".into()],
            ],
            ..stack(&["do_mprotect_pkey", "change_pte_range"], 4)
        };
        assert_eq!(
            stack.kernel_frames(),
            [
                "do_mprotect_pkey",
                "change_pte_range",
                "change_present_ptes (inlined)",
                "modify_prot_start_ptes (inlined)"
            ]
        );
        let functions = shares(&[stack], 4);
        let leaf = functions
            .iter()
            .find(|f| f.name == "modify_prot_start_ptes (inlined)")
            .unwrap();
        assert_eq!((leaf.self_samples, leaf.total_samples), (4, 4));
        let outer = functions.iter().find(|f| f.name == "change_pte_range").unwrap();
        assert_eq!((outer.self_samples, outer.total_samples), (0, 4));
    }

    fn profile_of(stacks: Vec<SampledStack>, process_roots: bool) -> Profile {
        let mut profile = Profile::new(999, 1, 16, SampleCounters::default(), stacks, Vec::new());
        profile.process_roots = process_roots;
        profile
    }

    #[test]
    fn folded_lines_are_root_first_user_then_kernel() {
        let profile = profile_of(
            vec![
                stack(&["__x64_sys_mprotect", "change_protection"], 4),
                SampledStack {
                    count: 1,
                    ..SampledStack::default()
                },
            ],
            false,
        );
        assert_eq!(
            profile.folded(),
            "main;__x64_sys_mprotect;change_protection 4\n[no stack] 1\n"
        );
    }

    #[test]
    fn system_wide_stacks_start_at_their_process_and_merge_by_name() {
        let of = |pid: u32, comm: &str, kernel_thread: bool, count: u64, address: u64| SampledStack {
            process: Some(SampledProcess {
                pid,
                comm: comm.to_owned(),
                kernel_thread,
            }),
            kernel_addresses: vec![address],
            ..stack(&["do_mprotect_pkey"], count)
        };
        let lost = SampledStack {
            user: Vec::new(),
            unknown_user: Some(UnknownUser::StackLost),
            ..of(7, "a;b", false, 1, 0x10)
        };
        // Two addresses in one function: one folded line.
        let stacks = vec![
            of(7, "a;b", false, 2, 0x10),
            of(7, "a;b", false, 3, 0x18),
            of(9, "sh", false, 1, 0x10),
            lost,
        ];
        let profile = profile_of(stacks.clone(), true);
        assert_eq!(
            profile.folded(),
            "a:b-7;main;do_mprotect_pkey 5\na:b-7;[user stack lost];do_mprotect_pkey 1\nsh-9;main;do_mprotect_pkey 1\n"
        );
        let by_process: Vec<(u32, u64, u64)> = profile
            .by_process()
            .iter()
            .map(|p| (p.process.pid, p.samples, p.in_syscall_samples))
            .collect();
        assert_eq!(by_process, [(7, 6, 6), (9, 1, 1)]);
        assert_eq!(profile.unknown_user(), [(UnknownUser::StackLost, 1)]);
        assert_eq!(
            profile_of(stacks, false).folded(),
            "main;do_mprotect_pkey 6\n[user stack lost];do_mprotect_pkey 1\n"
        );
    }
}
