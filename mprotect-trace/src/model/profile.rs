//! Stack sampling as the run model holds it: every sampled stack, what
//! sampling lost, and each kernel function's share of the samples taken
//! inside the mprotect syscall.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// A kernel stack holding one of these frames was sampled inside mprotect().
const SYSCALL_FRAMES: [&str; 3] = ["__x64_sys_mprotect", "__do_sys_mprotect", "do_mprotect_pkey"];

/// One distinct stack pair and how often it was sampled. Frames are
/// root first: the user stack, then the kernel stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledStack {
    pub user: Vec<String>,
    pub kernel: Vec<String>,
    pub count: u64,
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
}

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
        }
    }

    /// Brendan Gregg's folded format: `root;...;leaf count`, one stack a line.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for stack in &self.stacks {
            let frames: Vec<String> = stack
                .user
                .iter()
                .chain(&stack.kernel)
                .map(|frame| frame.replace(';', ":"))
                .collect();
            let line = if frames.is_empty() {
                "[no stack]".to_owned()
            } else {
                frames.join(";")
            };
            out.push_str(&format!("{line} {}\n", stack.count));
        }
        out
    }
}

/// Self and total samples of every kernel function in in-syscall stacks.
fn shares(stacks: &[SampledStack], in_syscall_samples: u64) -> Vec<FunctionShare> {
    let mut self_samples: HashMap<&str, u64> = HashMap::new();
    let mut total_samples: HashMap<&str, u64> = HashMap::new();
    for stack in stacks.iter().filter(|s| in_syscall(s)) {
        if let Some(leaf) = stack.kernel.last() {
            *self_samples.entry(leaf).or_default() += stack.count;
        }
        // A recursive function counts once per stack.
        let unique: HashSet<&str> = stack.kernel.iter().map(String::as_str).collect();
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
            let own = self_samples.get(name).copied().unwrap_or(0);
            FunctionShare {
                name: name.to_owned(),
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
    fn folded_lines_are_root_first_user_then_kernel() {
        let profile = Profile {
            hz: 999,
            cpus: 1,
            max_stacks: 16,
            counters: SampleCounters::default(),
            in_syscall_samples: 0,
            measured_iterations_only: false,
            functions: Vec::new(),
            inlined_targets: Vec::new(),
            stacks: vec![
                stack(&["__x64_sys_mprotect", "change_protection"], 4),
                SampledStack {
                    user: vec![],
                    kernel: vec![],
                    count: 1,
                },
            ],
        };
        assert_eq!(
            profile.folded(),
            "main;__x64_sys_mprotect;change_protection 4\n[no stack] 1\n"
        );
    }
}
