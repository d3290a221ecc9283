//! Kernel and user stack sampling: a BPF program on a cpu-clock event on
//! every CPU counts stack pairs in the kernel; this reads, symbolizes and
//! folds them. It sees inside inlined code, where function probes cannot.

pub mod profile;
mod symbolize;

use anyhow::{Context as _, Result};
use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap, StackTraceMap};
use aya::programs::PerfEvent;
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use mprotect_trace_common::programs::SAMPLE_STACK;
use mprotect_trace_common::{KERNEL_THREAD_STACK_ID, SampleKey, counter, maps};

use crate::collect::maps::sum_cpus;
use crate::kernel::capabilities::error_chain;
use crate::kernel::kallsyms::Kallsyms;
use crate::model::{SampleCounters, SampledProcess, SampledStack, UnknownUser};

pub const FOLDED_FILE_NAME: &str = "stacks.folded";

/// Attaches the sampler to the cpu-clock event of every online CPU.
/// The kernel's ceiling on any perf event's sample rate.
const MAX_RATE_FILE: &str = "/proc/sys/kernel/perf_event_max_sample_rate";
/// CPU time one stack sample costs (3-5 us measured on the development VM).
const SAMPLE_COST_S: f64 = 5e-6;
/// Above this share of every CPU spent sampling, the run is warned about.
const SAMPLING_LOAD_WARNING: f64 = 0.05;

/// Refuses a rate the kernel would reject, naming its limit; warns about
/// a rate that would slow what it measures. Called before anything attaches.
pub fn check_rate(hz: u64) -> Result<()> {
    if let Ok(text) = std::fs::read_to_string(MAX_RATE_FILE)
        && let Ok(max) = text.trim().parse::<u64>()
        && hz > max
    {
        anyhow::bail!(
            "--sample-hz {hz} is above this kernel's limit of {max} (kernel.perf_event_max_sample_rate): use at most {max}, or raise the limit with sysctl -w kernel.perf_event_max_sample_rate={hz}"
        );
    }
    let load = hz as f64 * SAMPLE_COST_S;
    if load > SAMPLING_LOAD_WARNING {
        crate::output::stderr_line(&format!(
            "warning: --sample-hz {hz}: at ~{:.0} us a sample, sampling takes about {:.0} % of every CPU and slows what it measures; 999 is the default",
            SAMPLE_COST_S * 1e6,
            (load * 100.0).min(100.0)
        ));
    }
    Ok(())
}

pub fn attach(ebpf: &mut Ebpf, hz: u64) -> Result<usize> {
    let program: &mut PerfEvent = crate::ebpf_object::program_mut(ebpf, SAMPLE_STACK)?;
    program
        .load()
        .map_err(|e| anyhow::anyhow!("loading the sampler: {}", error_chain(&e)))?;
    let cpus = aya::util::online_cpus().map_err(|(path, err)| anyhow::anyhow!("reading {path}: {err}"))?;
    for &cpu in &cpus {
        program
            .attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(hz),
                false,
            )
            .map_err(|e| anyhow::anyhow!("attaching the sampler to CPU {cpu}: {}", error_chain(&e)))?;
    }
    Ok(cpus.len())
}

/// Stack ids and counts as the kernel left them, before symbolization.
pub struct RawSamples {
    pairs: Vec<(SampleKey, u64)>,
    stacks: std::collections::HashMap<u32, Vec<u64>>,
    /// Process names as the sampler saw them, by tgid.
    names: std::collections::HashMap<u32, String>,
    pub counters: SampleCounters,
}

/// A process's name: its leader's while it runs, else what the sampler
/// saw (a thread's name, for a process gone by now).
fn process_name(tgid: u32, seen: Option<&String>) -> String {
    std::fs::read_to_string(format!("/proc/{tgid}/comm"))
        .map(|comm| comm.trim_end().to_owned())
        .ok()
        .or_else(|| seen.cloned())
        .unwrap_or_else(|| "[unknown process]".to_owned())
}

/// Reads the sample counts (summed over CPUs), their stacks and counters.
pub fn read(ebpf: &Ebpf) -> Result<RawSamples> {
    let counts: PerCpuHashMap<&MapData, SampleKey, u64> =
        PerCpuHashMap::try_from(ebpf.map(maps::SAMPLE_COUNTS).context("no SAMPLE_COUNTS map")?)?;
    let mut pairs = Vec::new();
    for entry in counts.iter() {
        let (key, per_cpu) = entry.context("reading SAMPLE_COUNTS")?;
        pairs.push((key, sum_cpus(per_cpu.iter().copied())?));
    }
    let stack_map: StackTraceMap<&MapData> = StackTraceMap::try_from(ebpf.map(maps::STACKS).context("no STACKS map")?)?;
    let mut stacks = std::collections::HashMap::new();
    for (key, _) in &pairs {
        for id in [key.kernel_stack_id, key.user_stack_id] {
            if id >= 0 && !stacks.contains_key(&(id as u32)) {
                let trace = stack_map
                    .get(&(id as u32), 0)
                    .with_context(|| format!("reading stack {id}"))?;
                stacks.insert(id as u32, trace.frames().iter().map(|frame| frame.ip).collect());
            }
        }
    }
    let counter_map: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(ebpf.map(maps::COUNTERS).context("no COUNTERS map")?)?;
    let count = |slot: u32| -> Result<u64> { sum_cpus(counter_map.get(&slot, 0)?.iter().copied()) };
    let counters = SampleCounters {
        samples: count(counter::SAMPLES)?,
        samples_other_tasks: count(counter::SAMPLES_OTHER_TASKS)?,
        kernel_stack_collisions: count(counter::KERNEL_STACK_COLLISION)?,
        kernel_stack_failed: count(counter::KERNEL_STACK_FAILED)?,
        user_stack_lost: count(counter::USER_STACK_LOST)?,
        sample_map_full: count(counter::SAMPLE_MAP_FULL)?,
        stack_map_full: count(counter::STACK_MAP_FULL)?,
        samples_outside_window: count(counter::SAMPLES_OUTSIDE_WINDOW)?,
        kernel_thread_samples: count(counter::KERNEL_THREAD_SAMPLES)?,
    };
    let name_map: BpfHashMap<&MapData, u32, [u8; 16]> =
        BpfHashMap::try_from(ebpf.map(maps::PROCESS_NAMES).context("no PROCESS_NAMES map")?)?;
    let mut names = std::collections::HashMap::new();
    for entry in name_map.iter() {
        let (tgid, comm) = entry.context("reading PROCESS_NAMES")?;
        let end = comm.iter().position(|&byte| byte == 0).unwrap_or(comm.len());
        names.insert(tgid, String::from_utf8_lossy(&comm[..end]).into_owned());
    }
    Ok(RawSamples {
        pairs,
        stacks,
        names,
        counters,
    })
}

impl RawSamples {
    /// Symbolizes every stack: kernel frames from kallsyms, user frames
    /// from the process's binaries (while it is still alive).
    /// `kallsyms`: read while the programs were loaded, so their BPF
    /// entries (programs, trampolines) are in it.
    pub fn symbolize(&self, kallsyms: &Kallsyms) -> Result<Vec<SampledStack>> {
        let symbolizer = symbolize::Symbolizer::new();
        let mut out = Vec::with_capacity(self.pairs.len());
        let mut comms: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
        // A process past exit_mm has no user stack either: only a task
        // that never had one is a kernel thread.
        let user_processes: std::collections::HashSet<u32> = self
            .pairs
            .iter()
            .filter(|(key, _)| key.user_stack_id != KERNEL_THREAD_STACK_ID)
            .map(|(key, _)| key.tgid)
            .collect();
        for (key, count) in &self.pairs {
            let comm = comms
                .entry(key.tgid)
                .or_insert_with(|| process_name(key.tgid, self.names.get(&key.tgid)))
                .clone();
            let frames = |id: i32| self.stacks.get(&(id as u32)).filter(|_| id >= 0);
            // The kernel stores stacks leaf first; the model holds them root first.
            let mut kernel_addresses = frames(key.kernel_stack_id).cloned().unwrap_or_default();
            kernel_addresses.reverse();
            let kernel = symbolizer.kernel(&kernel_addresses, kallsyms)?;
            let no_user_stack = key.user_stack_id == KERNEL_THREAD_STACK_ID;
            let kernel_thread = no_user_stack && !user_processes.contains(&key.tgid);
            let mut user_addresses = frames(key.user_stack_id).cloned().unwrap_or_default();
            user_addresses.reverse();
            let (user, unknown_user) = if !user_addresses.is_empty() {
                symbolizer.user(key.tgid, &user_addresses)
            } else if no_user_stack {
                (Vec::new(), None)
            } else {
                (Vec::new(), Some(UnknownUser::StackLost))
            };
            out.push(SampledStack {
                user,
                kernel,
                count: *count,
                process: Some(SampledProcess {
                    pid: key.tgid,
                    comm,
                    kernel_thread,
                }),
                kernel_offsets: kernel_addresses
                    .iter()
                    .map(|&address| kallsyms.function_offset(address))
                    .collect(),
                user_addresses,
                kernel_addresses,
                unknown_user,
                // Symbolized by kallsyms: no inline chains, no lines.
                kernel_inlined: Vec::new(),
                kernel_lines: Vec::new(),
            });
        }
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.kernel.cmp(&b.kernel))
                .then_with(|| a.user.cmp(&b.user))
                .then_with(|| a.kernel_addresses.cmp(&b.kernel_addresses))
        });
        Ok(out)
    }
}
