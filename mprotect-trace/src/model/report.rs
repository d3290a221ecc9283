//! `report.json`: one run, everything the outputs need, versioned.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::capabilities::Capabilities;
use super::profile::Profile;
use super::settings::Settings;
use super::stats::{Counters, ExactDistribution, LatencySummary, ValueStats};
use super::workload::WorkloadResult;

/// 2: lost data counts failed map lookups (`lost.map_lookup_failed`);
/// targets carry `calls` whatever the backend, `call-site` probes, and
/// return-value distributions (`return_values`, `return_source`).
/// 3: `settings`, everything that shaped the measurement; `start_time`
/// to the millisecond (it orders repeated runs); failed calls apart
/// (`syscall.failed`), `lost.in_flight`; samples limited to the measured
/// iterations (`sampling.measured_iterations_only`).
/// 4: tracepoint targets (`backend: tracepoint`, `field_values`);
/// `per_cpu` breakdowns (`--per-cpu`); sampled stacks keep their process
/// and addresses; `interval_series`.
/// 5: the `inlined` backend (`targets[].inlined`).
/// 6: `machine`, what tells the machines of a fleet apart (CPU identity,
/// memory, NUMA nodes, mitigations, THP settings, page size).
/// Every older version still loads: what it lacks reads as zero or absent.
pub const SCHEMA_VERSION: u32 = 6;
pub const FILE_NAME: &str = "report.json";

/// What was traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The built-in workload, in a child process.
    Workload,
    /// `-- CMD`, from its first instruction.
    Command,
    /// `-p PID`.
    Pid,
    /// `-a`: every task.
    All,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Workload => "workload",
            Self::Command => "command",
            Self::Pid => "pid",
            Self::All => "all",
        }
    }
}

/// Why tracing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    #[serde(rename = "target exited")]
    TargetExited,
    #[serde(rename = "duration")]
    Duration,
    #[serde(rename = "SIGINT")]
    Interrupt,
    #[serde(rename = "SIGTERM")]
    Terminate,
}

impl StopReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::TargetExited => "target exited",
            Self::Duration => "duration",
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// Stopped by a signal before the target finished.
    pub fn is_partial(self) -> bool {
        matches!(self, Self::Interrupt | Self::Terminate)
    }
}

/// How a function target was probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Fentry,
    Kprobe,
    /// Kprobes on the call instructions that call the target (no latency).
    CallSite,
    /// Kprobes at the entry of each inlined instance, found in DWARF (no latency).
    Inlined,
    /// A kernel tracepoint (`--probe category:name`): events, no latency.
    Tracepoint,
    None,
}

impl Backend {
    /// Whether it counts calls at one place each and times nothing.
    pub fn counts_calls_only(self) -> bool {
        matches!(self, Self::CallSite | Self::Inlined)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::CallSite => "call-site",
            Self::Inlined => "inlined",
            Self::Tracepoint => "tracepoint",
            Self::None => "none",
        }
    }
}

/// How the mprotect syscall itself was traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyscallProbe {
    Tracepoint,
    /// Do-nothing programs on the tracepoints: the overhead floor.
    Empty,
    None,
}

impl SyscallProbe {
    pub fn label(self) -> &'static str {
        match self {
            Self::Tracepoint => "tracepoint",
            Self::Empty => "empty",
            Self::None => "none",
        }
    }
}

/// Why a target is traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// One of the functions a regression is attributed to.
    Headline,
    /// Around the headline functions; gives their share a denominator.
    Context,
    /// Added with `--probe NAME`.
    User,
}

/// What was attached for one target, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub role: Role,
    pub backend: Backend,
    pub reason: String,
    pub slot: Option<u32>,
    /// e.g. "prot_commit_flush_ptes(nr_ptes), argument 5".
    pub nr_ptes_source: Option<String>,
    /// e.g. "change_protection return value".
    pub pages_source: Option<String>,
    /// A return value that is not pages, e.g. "folio_pte_batch return value".
    #[serde(default)]
    pub return_source: Option<String>,
    /// Where an inlined target was probed, and what could not be read there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inlined: Option<InlinedProbe>,
    /// `--split-by`: where each call's split value was read, e.g.
    /// "change_protection(cp_flags), argument 4, of the change_protection call it is in".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_source: Option<String>,
}

/// How a target inlined everywhere was probed: at each inlined instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InlinedProbe {
    /// "change_pte_range (2 instances)".
    pub inlined_in: String,
    pub instances: Vec<ProbedInstance>,
    /// The latency of the instances with one entry and one exit, timed
    /// between the two (the others' calls are not in it); `None` when
    /// no instance has them.
    pub latency: Option<LatencySummary>,
}

/// One probed inlined instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbedInstance {
    /// "change_pte_range+0x2ec".
    pub at: String,
    /// The inline chain down to it, outermost first.
    pub chain: Vec<String>,
    /// Its calls (the target's calls are their sum).
    pub calls: Option<u64>,
    /// Where its `nr_ptes` parameter is read there, or why it is not:
    /// "nr: the constant 1", "nr: 4-byte stack slot at rsp+0x68".
    pub nr: String,
    /// Its one exit, "change_pte_range+0x743", when it is timed.
    pub exit: Option<String>,
    /// Why it is not timed (empty when it is).
    pub no_latency: String,
    /// Its call counter in the kernel's per-instance array.
    #[serde(skip)]
    pub counter: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool_version: String,
    #[serde(default)]
    pub git_revision: String,
    /// When tracing started (UTC, RFC 3339).
    #[serde(default)]
    pub start_time: String,
    pub kernel_release: String,
    pub arch: String,
    #[serde(default)]
    pub kernel_cmdline: String,
    #[serde(default)]
    pub cpu_model: String,
    #[serde(default)]
    pub cpus: usize,
    pub scope: Scope,
    /// What the run was asked to do (schema 3; absent before).
    #[serde(default)]
    pub settings: Option<Settings>,
    /// The traced process, when one was.
    pub tgid: Option<u32>,
    /// `-p PID`: the process's name (`comm`) when tracing began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    pub command: Vec<String>,
    pub stop_reason: StopReason,
    /// True when the run was interrupted before its target finished.
    pub partial: bool,
    pub duration_s: f64,
    /// Percentiles are bucket midpoints: exact below 16, else within this relative error.
    pub percentile_relative_error: f64,
    pub capabilities: Capabilities,
    pub syscall: SyscallReport,
    pub targets: Vec<TargetReport>,
    pub lost: Counters,
    pub workload: Option<WorkloadResult>,
    /// Stack sampling: counters, shares, and every sampled stack.
    pub sampling: Option<Profile>,
    /// `--calibrate`: the same workload untraced, just before.
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// `--probe-cost`: runs and time of each BPF program, by the kernel.
    #[serde(default)]
    pub program_costs: Option<Vec<ProgramCost>>,
    /// How long the tool itself took to start and to report (schema 3).
    #[serde(default)]
    pub timings: Option<Timings>,
    /// Which kernel binary ran: its build id and where its text was, so
    /// the sampled addresses can be symbolized later with its vmlinux (schema 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_identity: Option<KernelIdentity>,
    /// `--interval`: each interval's calls and latency, as printed (schema 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_series: Option<Vec<IntervalSample>>,
    /// The machine beyond `cpu_model`, `cpus` and the kernel (schema 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
}

/// What tells one machine of a fleet from another, besides the CPU model
/// name, the CPUs usable and the kernel, which the report has already.
/// Each field is absent where the machine does not say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `vendor_id` (GenuineIntel, AuthenticAMD); arm64's `CPU implementer`.
    pub cpu_vendor: Option<String>,
    /// `cpu family`; arm64's `CPU architecture`.
    pub cpu_family: Option<String>,
    /// `model` (a number); arm64's `CPU part`.
    pub cpu_model_number: Option<String>,
    /// `stepping`; arm64's `CPU revision`.
    pub cpu_stepping: Option<String>,
    pub microcode: Option<String>,
    /// Physical cores (distinct package and core ids).
    pub cores: Option<usize>,
    /// Logical CPUs of the machine (`cpus` is those the run could use).
    pub threads: Option<usize>,
    /// `MemTotal`.
    pub memory_kib: Option<u64>,
    /// Online NUMA nodes.
    pub numa_nodes: Option<usize>,
    pub page_size: Option<u64>,
    /// /sys/devices/system/cpu/vulnerabilities: each file's text, e.g.
    /// `spectre_v2`: "Mitigation: Enhanced / Automatic IBRS; ...".
    #[serde(default)]
    pub vulnerabilities: std::collections::BTreeMap<String, String>,
    /// /sys/kernel/mm/transparent_hugepage: the chosen value of `enabled`,
    /// `defrag`, `shmem_enabled`, `khugepaged/defrag` and each size's
    /// `hugepages-<size>kB/enabled`.
    #[serde(default)]
    pub thp: std::collections::BTreeMap<String, String>,
}

/// The running kernel, as a debug vmlinux must match it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelIdentity {
    /// GNU build id (hex), from /sys/kernel/notes.
    pub build_id: Option<String>,
    /// Where `_text` was (from /proc/kallsyms).
    pub text_address: Option<u64>,
    /// `_text` minus where the kernel was linked to start it (x86-64's
    /// default; elsewhere found from the vmlinux when one is given).
    pub kaslr_offset: Option<u64>,
}

impl Machine {
    /// One line for a reader: "GenuineIntel family 6 model 207 stepping 2,
    /// microcode 0x1; 2 cores, 2 threads; 23.6 GiB, 1 NUMA node; 4 KiB
    /// pages; THP enabled madvise, defrag madvise". What is unknown is left out.
    pub fn summary(&self) -> String {
        let mut cpu: Vec<String> = Vec::new();
        cpu.extend(self.cpu_vendor.clone());
        for (word, value) in [
            ("family", &self.cpu_family),
            ("model", &self.cpu_model_number),
            ("stepping", &self.cpu_stepping),
        ] {
            cpu.extend(value.as_ref().map(|v| format!("{word} {v}")));
        }
        let mut parts: Vec<String> = Vec::new();
        let mut first = cpu.join(" ");
        if let Some(microcode) = &self.microcode {
            first = if first.is_empty() {
                format!("microcode {microcode}")
            } else {
                format!("{first}, microcode {microcode}")
            };
        }
        parts.extend((!first.is_empty()).then_some(first));
        let counts: Vec<String> = [("cores", self.cores), ("threads", self.threads)]
            .iter()
            .filter_map(|(word, n)| n.map(|n| format!("{n} {word}")))
            .collect();
        parts.extend((!counts.is_empty()).then(|| counts.join(", ")));
        let mut memory: Vec<String> = Vec::new();
        memory.extend(
            self.memory_kib
                .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))),
        );
        memory.extend(
            self.numa_nodes
                .map(|n| format!("{n} NUMA node{}", if n == 1 { "" } else { "s" })),
        );
        parts.extend((!memory.is_empty()).then(|| memory.join(", ")));
        parts.extend(self.page_size.map(|size| format!("{} KiB pages", size / 1024)));
        let thp: Vec<String> = ["enabled", "defrag"]
            .iter()
            .filter_map(|knob| self.thp.get(*knob).map(|value| format!("{knob} {value}")))
            .collect();
        parts.extend((!thp.is_empty()).then(|| format!("THP {}", thp.join(", "))));
        parts.join("; ")
    }
}

/// One `--interval` line set: what happened since the one before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalSample {
    /// Seconds since tracing started, at the end of this interval.
    pub elapsed_s: f64,
    /// The syscall first, then every target that counts calls.
    pub targets: Vec<IntervalCalls>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalCalls {
    pub name: String,
    pub calls: u64,
    /// Absent for targets that time nothing (call sites, tracepoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySummary>,
}

/// The tool's own latency, as a user waits for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// From the start of `run` until every probe was attached and the
    /// target released.
    pub attach_ms: f64,
    /// From the stop until the table was printed (before the plots, the
    /// flame graph and the HTML are drawn; their time is printed on stderr).
    pub stop_to_table_ms: f64,
    /// What `attach_ms` was spent on, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub startup: Vec<StartupPhase>,
}

/// One phase of the start: "kernel symbols", "attach function probes", ...
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartupPhase {
    pub phase: String,
    pub ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Calibration {
    pub untraced_iteration_ns_per_page: f64,
    pub traced_iteration_ns_per_page: f64,
    /// traced / untraced.
    pub ratio: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyscallReport {
    pub backend: SyscallProbe,
    pub latency: LatencySummary,
    pub latency_ns: ValueStats,
    /// `len` of each call, in pages (rounded up).
    pub pages_per_call: ValueStats,
    /// Calls by protection: "PROT_READ|PROT_WRITE" -> count.
    pub prot_flags: Vec<(String, u64)>,
    /// Failed calls by errno; latency, lengths and flags above are the
    /// successful calls' only (schema 3).
    #[serde(default)]
    pub failed: Vec<FailedCalls>,
    /// `--per-cpu`: successful calls and their latency on each CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cpu: Option<Vec<CpuCalls>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedCalls {
    /// 0: an errno beyond the kernel's range.
    pub errno: u32,
    /// `EINVAL`, ...
    pub name: String,
    pub count: u64,
}

/// The C name of an errno mprotect(2) can return, else `errno N`.
pub fn errno_name(errno: u32) -> String {
    let name = match errno as i32 {
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        libc::EPERM => "EPERM",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::ENOSYS => "ENOSYS",
        _ => return format!("errno {errno}"),
    };
    name.to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetReport {
    #[serde(flatten)]
    pub attachment: Attachment,
    /// Calls counted, whatever the backend (call sites count calls but
    /// time nothing, so `latency` is absent there).
    #[serde(default)]
    pub calls: Option<u64>,
    pub latency: Option<LatencySummary>,
    pub latency_ns: Option<ValueStats>,
    pub pages_per_call: Option<ValueStats>,
    pub nr_ptes: Option<ExactDistribution>,
    /// Distribution of the return value named by `return_source`.
    #[serde(default)]
    pub return_values: Option<ValueStats>,
    /// This target's time as a share (0-1) of the traced mprotect syscall time.
    pub share_of_syscall_time: Option<f64>,
    /// A tracepoint's `--probe-field`: events by that field's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_values: Option<FieldValues>,
    /// `--per-cpu`: calls and latency on each CPU (schema 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cpu: Option<Vec<CpuCalls>>,
    /// `--split-by`: calls, latency and nr_ptes by the split value, the
    /// values with calls only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<SplitPart>>,
}

/// A target's calls with one split value (`--split-by cp_flags`): one path
/// into it, e.g. NUMA hinting's (MM_CP_PROT_NUMA).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitPart {
    /// The value, e.g. 2 (the last value, 15, holds every value past the named bits).
    pub value: u32,
    /// The value by the kernel's names, e.g. "MM_CP_PROT_NUMA"; "0" for none.
    pub name: String,
    pub calls: u64,
    /// Timed targets only.
    pub latency: Option<LatencySummary>,
    /// Targets with an nr_ptes source only.
    pub nr_ptes: Option<ExactDistribution>,
}

/// Events of a tracepoint by the value of one of its integer fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldValues {
    pub field: String,
    /// Every value seen, ascending, with its name from the event's
    /// `__print_symbolic` when it has one.
    pub values: Vec<FieldValue>,
    /// Events whose value was not counted: the kernel's value map was full.
    pub not_stored: u64,
}

impl FieldValues {
    pub fn total(&self) -> u64 {
        self.values.iter().map(|value| value.count).sum::<u64>() + self.not_stored
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    /// As the field's C type has it: 128 bits hold every u64 and i64.
    pub value: i128,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub count: u64,
}

/// One CPU's part of a target's calls (or the syscall's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuCalls {
    pub cpu: u32,
    pub calls: u64,
    /// Absent for targets that time nothing (call sites, tracepoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySummary>,
}

/// What one of our BPF programs cost, by the kernel's run-time statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgramCost {
    /// The program's name in the eBPF object.
    pub program: String,
    /// What it runs on: a tracepoint, a function target's entry or exit,
    /// the stack sampler.
    pub probe: String,
    pub runs: u64,
    pub total_ns: u64,
}

impl ProgramCost {
    pub fn ns_per_run(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.total_ns as f64 / self.runs as f64)
    }
}

/// Names a `prot & 7` bucket the way C spells it; bucket 8 is "other bits".
pub fn prot_name(bucket: usize) -> String {
    if bucket >= 8 {
        return "other (PROT_SEM, PROT_GROWS*, pkey bits)".into();
    }
    let names: Vec<&str> = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")]
        .iter()
        .filter(|(bit, _)| bucket & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "PROT_NONE".into()
    } else {
        names.join("|")
    }
}

/// Keeps every latency summary's percentiles within its min and max, as
/// [`super::ValueStats::quantile`] gives them: reports written before it
/// hold bucket midpoints beyond the extremes.
fn clamp_percentiles(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            let bound = |key: &str| object.get(key).and_then(serde_json::Value::as_f64);
            if let (Some(min), Some(max)) = (bound("min_ns"), bound("max_ns")) {
                for key in ["p50_ns", "p90_ns", "p99_ns", "p999_ns"] {
                    if let Some(p) = object.get_mut(key)
                        && let Some(ns) = p.as_f64()
                    {
                        *p = serde_json::json!(ns.clamp(min, max.max(min)));
                    }
                }
            }
            object.values_mut().for_each(clamp_percentiles);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(clamp_percentiles),
        _ => {}
    }
}

/// Where a report that is JSON but not a valid report is wrong: the
/// path of the field (`syscall.latency.calls`, `targets[2].slot`) and
/// what is wrong there. serde says only where in the text, so the value
/// is parsed again as compact text, whose columns are byte offsets, and
/// the path to that offset is read off the text.
fn where_invalid(value: &serde_json::Value) -> Option<(String, String)> {
    let text = serde_json::to_string(value).ok()?;
    let err = serde_json::from_str::<Report>(&text).err()?;
    let message = err.to_string();
    let what = message.rfind(" at line ").map_or(message.as_str(), |at| &message[..at]);
    Some((json_path_at(&text, err.column()), what.to_owned()))
}

/// The path of the value being read at byte `column` (1-based) of
/// `text`, one line of valid JSON: object keys joined by `.`, array
/// indices as `[i]`.
fn json_path_at(text: &str, column: usize) -> String {
    enum Frame {
        Object { key: Option<String>, expecting_key: bool },
        Array { index: usize },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut chars = text.char_indices().take_while(|(at, _)| *at < column);
    while let Some((_, c)) = chars.next() {
        match c {
            '{' => stack.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            '[' => stack.push(Frame::Array { index: 0 }),
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                None => {}
            },
            ':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            '"' => {
                let mut string = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            chars.next();
                        }
                        c => string.push(c),
                    }
                }
                if let Some(Frame::Object {
                    key,
                    expecting_key: true,
                }) = stack.last_mut()
                {
                    *key = Some(string);
                }
            }
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// The directories in `dir` that hold a report.json (the runs of `run
/// --repeat`, or of one side of `ab`), in name order: run order.
pub fn run_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| dir.join(FILE_NAME).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Why `path` (whose `file` is missing) is not a run: a directory of the
/// runs of `run --repeat`, or of a comparison (`ab`, `compare -o`), is
/// named for what it is, with where its runs and comparison are.
fn not_a_run(path: &Path, file: &Path) -> String {
    let runs = if path.is_dir() {
        run_dirs(path).unwrap_or_default()
    } else {
        Vec::new()
    };
    if let Some(first) = runs.first() {
        return format!(
            "{0} holds {1} runs of `run --repeat`, not one run: give one of them, e.g. {2}, or compare the series: mprotect-trace compare {0} OTHER",
            path.display(),
            runs.len(),
            first.display()
        );
    }
    let comparison = path.join("comparison.txt");
    if comparison.is_file() {
        // `ab` keeps each side's runs in a directory of its own.
        let mut sides: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter_map(|side| {
                let first = run_dirs(&side).ok()?.into_iter().next()?;
                Some((side.file_name()?.to_string_lossy().into_owned(), first))
            })
            .collect();
        sides.sort();
        let Some((_, first)) = sides.first() else {
            return format!(
                "{} holds a comparison (`compare -o`), not a run: read {}",
                path.display(),
                comparison.display()
            );
        };
        let names: Vec<&str> = sides.iter().map(|(name, _)| name.as_str()).collect();
        return format!(
            "{} holds a comparison of sides {} (`ab` or `compare -o`), not one run: read {}, or give one run, e.g. {}",
            path.display(),
            names.join(", "),
            comparison.display(),
            first.display()
        );
    }
    format!(
        "{} does not exist: give a directory written by `mprotect-trace run -o DIR`",
        file.display()
    )
}

impl Report {
    /// Reads a saved run: `DIR` (holding report.json) or the file itself.
    /// Every way it can be wrong gets a one-line error naming the fix.
    pub fn load(path: &Path) -> Result<Report> {
        let file = if path.is_dir() {
            path.join(FILE_NAME)
        } else {
            path.to_path_buf()
        };
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("{}", not_a_run(path, &file))
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
        };
        Self::parse(&bytes, &file.display().to_string())
    }

    /// Parses a report; `name` says where it came from in the errors.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Report> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
            // Only a file that ends too early was cut short.
            let hint = if err.is_eof() {
                "truncated? re-run mprotect-trace run"
            } else {
                "not a report as mprotect-trace run writes it (edited, or another file?); re-run mprotect-trace run"
            };
            anyhow::anyhow!("{name} is not valid JSON ({err}): {hint}")
        })?;
        let Some(version) = value.get("schema_version").and_then(serde_json::Value::as_u64) else {
            anyhow::bail!("{name} is not an mprotect-trace report (no schema_version)");
        };
        if version > u64::from(SCHEMA_VERSION) {
            anyhow::bail!(
                "{name} has report schema {version}, newer than the {SCHEMA_VERSION} this mprotect-trace reads: upgrade mprotect-trace"
            );
        }
        let mut value = value;
        clamp_percentiles(&mut value);
        serde_json::from_value(value.clone()).map_err(|err| {
            let (path, what) = where_invalid(&value).unwrap_or_else(|| (String::new(), err.to_string()));
            let path = if path.is_empty() { path } else { format!("{path}: ") };
            anyhow::anyhow!("{name} is not a valid schema-{version} report: {path}{what}")
        })
    }

    /// The stack profile, when sampling caught at least one stack.
    pub fn sampled_stacks(&self) -> Option<&Profile> {
        self.sampling.as_ref().filter(|profile| !profile.stacks.is_empty())
    }

    /// The report as `report.json` holds it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut json = serde_json::to_vec_pretty(self).context("serializing the report")?;
        json.push(b'\n');
        Ok(json)
    }
}

#[cfg(test)]
mod machine_tests {
    use super::Machine;

    #[test]
    fn a_machine_is_summarized_in_one_line_without_what_is_unknown() {
        let machine = Machine {
            cpu_vendor: Some("GenuineIntel".to_owned()),
            cpu_family: Some("6".to_owned()),
            cpu_model_number: Some("207".to_owned()),
            cpu_stepping: Some("2".to_owned()),
            microcode: Some("0x1".to_owned()),
            cores: Some(2),
            threads: Some(2),
            memory_kib: Some(24_731_408),
            numa_nodes: Some(1),
            page_size: Some(4096),
            vulnerabilities: Default::default(),
            thp: [
                ("enabled", "madvise"),
                ("defrag", "madvise"),
                ("shmem_enabled", "never"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        };
        assert_eq!(
            machine.summary(),
            "GenuineIntel family 6 model 207 stepping 2, microcode 0x1; 2 cores, 2 threads; 23.6 GiB, 1 NUMA node; 4 KiB pages; THP enabled madvise, defrag madvise"
        );
        assert_eq!(Machine::default().summary(), "");
        let arm = Machine {
            cpu_vendor: Some("0x41".to_owned()),
            numa_nodes: Some(2),
            ..Machine::default()
        };
        assert_eq!(arm.summary(), "0x41; 2 NUMA nodes");
    }
}

#[cfg(test)]
mod json_tests {
    /// `plot DIR` redraws a run's files byte for byte from report.json:
    /// every float must read back as the value written (report.html
    /// prints shares at full precision, as sort keys).
    #[test]
    fn floats_read_back_exactly() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = (state >> 11) as f64 / (1u64 << 53) as f64 * 1e3;
            let text = serde_json::to_string(&value).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), value.to_bits(), "{value} wrote {text}");
        }
    }
}
