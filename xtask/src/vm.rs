//! `cargo xtask vm-test`: proves the function probes in real kernels where
//! they work. Boots Debian's cloud kernels under QEMU (software emulation)
//! through the library's `vm` machinery: 6.1, where everything below
//! change_protection is inlined, and the newest 7.x, where change_pte_range
//! is a function and the PTE batching code passes `nr` along. In each it
//! runs `mprotect-trace run` with `--backend fentry`, `--backend kprobe` and
//! the automatic choice, and checks exact counts on the typed reports,
//! which are kept at `target/vm/<arch>-<release>/<run>/report.json`.
//! Timings under emulation mean nothing; counts do.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, ensure};
use mprotect_trace::model::{Attachment, Backend, Report, TargetReport};
use mprotect_trace::vm::{Arch, Console, GuestScript, Initramfs, KernelImage, Machine, kernel};

use crate::command::{cargo, run_checked, workspace_root};
use crate::{vm_debuginfo, vm_inline_probes, vm_numa, vm_split};

const ITERATIONS: u64 = 10;
const WARMUP: u64 = 2;
const MAPPING_MB: u64 = 4;
/// Base pages of 4 kB in the mapping (see [`pages`] for 64 kB kernels).
const PAGES: u64 = MAPPING_MB * 256;
/// The 4 kB-page kernels' folio size.
const FOLIO_KB: u64 = 64;
/// Two mprotect calls per iteration, warmup included.
const CALLS: u64 = 2 * (ITERATIONS + WARMUP);
const BACKENDS: [Backend; 2] = [Backend::Fentry, Backend::Kprobe];
/// A 6.1 function with a parameter named `nr` that the workload's munmap
/// reaches: proves the nr_ptes argument is found by name and read.
const NR_PROBE: &str = "free_pages_and_swap_cache";
/// A function in /proc/kallsyms that neither fentry nor a kprobe may
/// attach to: `noinstr` (no ftrace call site, on the kprobe blacklist).
const UNTRACEABLE_PROBE: &str = "exc_page_fault";
/// The run with /sys/kernel/btf hidden under an empty tmpfs.
const NO_BTF: &str = "no-btf";
/// The run with the automatic backend choice.
const AUTO: &str = "auto";
/// 7.x x86: a run with no function probe and denser sampling, symbolized
/// afterwards on the host with the kernel's debug vmlinux.
const DEBUGINFO: &str = "debuginfo";
const DEBUGINFO_RUN: &str = "--backend none --iterations 40 --warmup 2 --mapping-mb 16 --sample-hz 1999 --no-syscall";
/// 7.x x86: where the sites file the host wrote from the debug vmlinux
/// sits in the guest; the automatic and large-folio runs probe the
/// inlined modify_prot_start_ptes with it.
const GUEST_INLINE_SITES: &str = "/inline-sites.json";
/// The console section with the guest's function names (gzip, base64).
const FUNCTIONS: &str = "functions";
/// The large-folio runs on 7.x (multi-size THP, [`folio_kb`]), private and shared.
const FOLIO_RUNS: [(&str, &str); 2] = [
    ("mthp-private", "private-dirty-toggle"),
    ("mthp-shared", "shared-dirty-toggle"),
];

/// 7.x x86: the private toggle with every target's records split by
/// change_protection's cp_flags.
const SPLIT: &str = "split";
/// 7.x x86, booted with two NUMA nodes: NUMA balancing's scans of a
/// remote mapping, and of a local one of 64 kB folios (skipped in batches).
const NUMA_RUNS: [(&str, &str); 2] = [
    ("numa", "--probe change_prot_numa"),
    (
        "numa-folios",
        "--folio-kb 64 --probe change_prot_numa --probe folio_can_map_prot_numa",
    ),
];
/// The scenario writes on after its iterations until two scan passes
/// have completed.
const NUMA_WORKLOAD: &str = "--scenario numa-hinting --mapping-mb 16 --iterations 200 --split-by cp_flags --no-sample";

/// What a kernel is booted to prove.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Generation {
    /// 6.1: change_pte_range inlined, no PTE batching.
    Inlined,
    /// 7.x x86: change_pte_range a function, modify_prot_commit_ptes(nr) notrace.
    Batched,
    /// 7.x arm64: change_pte_range inlined, modify_prot_start_ptes(nr) and
    /// modify_prot_commit_ptes(nr) real functions.
    BatchedArm64,
    /// 7.x ppc64le, 64 kB pages: change_pte_range and the batching
    /// helpers inlined; book3s64's ptep_modify_prot_start/commit, the
    /// PTE transaction, real functions called once per PTE.
    BatchedPpc64,
    /// The same kernel's 4 kB-page flavour: the same counts per PTE, 16
    /// times more PTEs (no debug info fetched for it: its calls and pages
    /// are what differ).
    BatchedPpc64Base4k,
}

const KERNELS: [(&str, Arch, Generation); 5] = [
    ("6.1", Arch::X86_64, Generation::Inlined),
    ("7", Arch::X86_64, Generation::Batched),
    ("7", Arch::Arm64, Generation::BatchedArm64),
    ("7", Arch::Ppc64le, Generation::BatchedPpc64),
    ("7", Arch::Ppc64le, Generation::BatchedPpc64Base4k),
];

/// Debian's flavour of `arch`'s kernel booted for `generation`.
fn flavour(arch: Arch, generation: Generation) -> &'static str {
    match generation {
        Generation::BatchedPpc64Base4k => "powerpc64le",
        _ => arch.debian_flavour(),
    }
}

/// ppc64's PTE transaction, per PTE (arch/powerpc/mm/book3s64/pgtable.c).
const PPC64_TRANSACTION: [&str; 2] = ["ptep_modify_prot_start", "ptep_modify_prot_commit"];

/// The base page size of `generation`'s kernel, in kB.
fn page_kb(generation: Generation) -> u64 {
    match generation {
        Generation::BatchedPpc64 => 64,
        Generation::Inlined | Generation::Batched | Generation::BatchedArm64 | Generation::BatchedPpc64Base4k => 4,
    }
}

/// Base pages in the mapping of each mprotect.
fn pages(generation: Generation) -> u64 {
    MAPPING_MB * 1024 / page_kb(generation)
}

/// The large folios of the folio runs, in kB: 64 kB folios of 4 kB pages;
/// on 64 kB pages the smallest multi-size THP, 256 kB (4 PTEs).
fn folio_kb(generation: Generation) -> u64 {
    match generation {
        Generation::BatchedPpc64 => 256,
        Generation::Inlined | Generation::Batched | Generation::BatchedArm64 | Generation::BatchedPpc64Base4k => {
            FOLIO_KB
        }
    }
}

/// The folio runs of `generation`: none on 6.1; on ppc64 the private
/// one alone (emulation is slowest there).
fn folio_runs(generation: Generation) -> &'static [(&'static str, &'static str)] {
    match generation {
        Generation::Inlined | Generation::BatchedPpc64Base4k => &[],
        Generation::BatchedPpc64 => &FOLIO_RUNS[..1],
        Generation::Batched | Generation::BatchedArm64 => &FOLIO_RUNS,
    }
}

/// Builds the tracer for `arch`'s guests and returns its path: the
/// host's own release build for x86_64, a cross build for arm64.
pub(crate) fn tracer(arch: Arch) -> Result<std::path::PathBuf> {
    let mut build = cargo(["build", "--release", "--package", "mprotect-trace"]);
    let target_dir = workspace_root().join("target");
    if arch == Arch::X86_64 {
        run_checked(&mut build)?;
        return Ok(target_dir.join("release/mprotect-trace"));
    }
    let target = arch.rust_target();
    run_checked(build.args(["--target", target]))?;
    Ok(target_dir.join(target).join("release/mprotect-trace"))
}

fn workload() -> String {
    format!("--iterations {ITERATIONS} --warmup {WARMUP} --mapping-mb {MAPPING_MB}")
}

fn guest_script(generation: Generation) -> String {
    let workload = workload();
    let mut script = GuestScript::new();
    script.text("doctor", "doctor");
    let extra = match generation {
        Generation::Inlined => format!("--probe {NR_PROBE} --probe {UNTRACEABLE_PROBE}"),
        Generation::BatchedPpc64 | Generation::BatchedPpc64Base4k => {
            PPC64_TRANSACTION.map(|name| format!("--probe {name}")).join(" ")
        }
        Generation::Batched | Generation::BatchedArm64 => String::new(),
    };
    for backend in BACKENDS {
        let name = backend.label();
        script.run(name, &format!("--backend {name} {workload} {extra}"));
    }
    // A function of x86's TLB code, as a user's --probe.
    let user_probe = match generation {
        Generation::BatchedArm64 => String::new(),
        Generation::BatchedPpc64 | Generation::BatchedPpc64Base4k => extra.clone(),
        Generation::Inlined | Generation::Batched => "--probe flush_tlb_mm_range".to_owned(),
    };
    let sites = match generation {
        Generation::Batched | Generation::BatchedArm64 | Generation::BatchedPpc64 => {
            format!("--inline-sites {GUEST_INLINE_SITES}")
        }
        Generation::Inlined | Generation::BatchedPpc64Base4k => String::new(),
    };
    script.run(AUTO, &format!("{workload} {user_probe} {sites}"));
    // The guest's function names, for checking every sampled frame.
    script.shell(&format!(
        "echo ===BEGIN {FUNCTIONS}===\n\
         awk '$2 == \"t\" || $2 == \"T\" {{ print $3 }}' /proc/kallsyms | gzip -1 | base64\n\
         echo ===END {FUNCTIONS}==="
    ));
    // The table a user sees, from the automatic run's report.
    script.text("table", &format!("report /tmp/{AUTO}"));
    // ppc64's PTE transaction stays per PTE in batches: probed there too.
    let folio_probes = if generation == Generation::BatchedPpc64 {
        extra.as_str()
    } else {
        ""
    };
    for (name, scenario) in folio_runs(generation) {
        script.run(
            name,
            &format!(
                "{workload} --scenario {scenario} --folio-kb {} --no-sample {folio_probes} {sites}",
                folio_kb(generation)
            ),
        );
    }
    if generation == Generation::Batched {
        script.run(DEBUGINFO, DEBUGINFO_RUN);
        script.run(
            SPLIT,
            &format!("{workload} --scenario private-dirty-toggle --split-by cp_flags --no-sample {sites}"),
        );
        for (name, options) in NUMA_RUNS {
            script.run(name, &format!("{NUMA_WORKLOAD} {options} {sites}"));
        }
    }
    if let Generation::Inlined = generation {
        // A kernel whose BTF user space cannot read: fentry must fall back to kprobes.
        script
            .shell("mount -t tmpfs none /sys/kernel/btf")
            .run(NO_BTF, &format!("{workload} --no-sample"));
    }
    script.finish()
}

/// The guest: 7.x x86 gets two NUMA nodes for its NUMA-hinting runs, with
/// balancing off until they turn it on (so no scan adds calls to the
/// other runs' exact counts).
fn machine(generation: Generation) -> Machine {
    match generation {
        Generation::Batched => Machine {
            numa_nodes: 2,
            append: "numa_balancing=disable".to_owned(),
            ..Machine::default()
        },
        Generation::Inlined | Generation::BatchedArm64 | Generation::BatchedPpc64 | Generation::BatchedPpc64Base4k => {
            Machine::default()
        }
    }
}

/// Returns how many checks passed; `only` ("7:x86_64") boots just those kernels.
pub fn run(only: Option<&str>) -> Result<u64> {
    let vm_dir = workspace_root().join("target/vm");
    let cache = vm_dir.join("kernels");
    let mut passed = 0;
    for (series, arch, generation) in KERNELS {
        if only.is_some_and(|only| only != format!("{series}:{}", arch.uname())) {
            continue;
        }
        let flavour = flavour(arch, generation);
        let kernel = KernelImage::debian_flavour(series, arch, flavour, &cache)?;
        let work = vm_dir.join(format!("debian-{series}-{flavour}"));
        std::fs::create_dir_all(&work)?;
        let busybox = kernel::busybox(arch, &cache)?;
        let tracer = tracer(arch)?;
        let sites = match generation {
            Generation::Batched | Generation::BatchedArm64 | Generation::BatchedPpc64 => {
                Some(vm_debuginfo::inline_sites(&kernel, &cache, &work)?)
            }
            Generation::Inlined | Generation::BatchedPpc64Base4k => None,
        };
        let files: Vec<(&Path, &str)> = sites.iter().map(|s| (s.as_path(), GUEST_INLINE_SITES)).collect();
        let initramfs = Initramfs::build_with(&work, &busybox, &tracer, &guest_script(generation), &files)?;
        eprintln!("vm-test: booting {} under QEMU (TCG)", kernel.source);
        let (console, failed_boots) = machine(generation)
            .boot_retrying(&kernel, &initramfs, 3, |n| work.join(format!("console-failed-{n}.log")))?;
        if failed_boots > 0 {
            println!(
                "vm-test: {} needed {} more boot(s); the failed consoles are kept in {}",
                kernel.source,
                failed_boots,
                work.display()
            );
        }
        let log = work.join("console.log");
        std::fs::write(&log, &console.text)?;
        let reports = Reports::read(&console, &log, generation)?;
        let functions = guest_functions(&console).context("the guest's function names")?;
        let release = reports.auto.kernel_release.clone();
        let summary = check_cached_facts(&reports)
            .and_then(|cache| {
                match generation {
                    Generation::Inlined => check_inlined(&reports),
                    Generation::Batched => check_batched(&reports),
                    Generation::BatchedArm64 => check_arm64(&reports),
                    Generation::BatchedPpc64 => check_ppc64(&reports),
                    Generation::BatchedPpc64Base4k => check_ppc64_base4k(&reports),
                }
                .map(|summary| cache + &summary)
            })
            .and_then(|summary| Ok(summary + &check_frames(&reports, &functions)?))
            .and_then(|summary| match &reports.debuginfo_dir {
                Some(dir) => Ok(summary + &vm_debuginfo::check(&kernel, &cache, dir)? + "\n"),
                None => Ok(summary),
            })
            .and_then(|summary| match generation {
                // Sampling and symbolization of ppc64 kernel stacks: the
                // sampled runs with the kernel's DWARF.
                Generation::BatchedPpc64 => Ok(summary
                    + &vm_debuginfo::check_inline_chains(
                        &kernel,
                        &cache,
                        &reports.sampled_dirs,
                        "change_protection",
                        "change_pte_range",
                    )?),
                Generation::Inlined
                | Generation::Batched
                | Generation::BatchedArm64
                | Generation::BatchedPpc64Base4k => Ok(summary),
            })
            .with_context(|| format!("on {release} (console: {})", log.display()))?;
        if let Some(doctor) = console.section("doctor") {
            println!("mprotect-trace doctor inside the VM:\n{doctor}");
        }
        if let Some(table) = console.section("table") {
            println!("mprotect-trace run inside the VM ({release}):\n{table}");
        }
        println!("vm-test passed on {release} ({}):\n{summary}", kernel.source);
        passed += reports.count();
    }
    Ok(passed)
}

/// Planning's kernel facts: the first run read them from the kernel, the
/// next one (same targets) from the cache, and both counted exactly.
fn check_cached_facts(reports: &Reports) -> Result<String> {
    let phase = |report: &Report, cached: bool| {
        let name = if cached {
            "kernel symbols and BTF (cached)"
        } else {
            "kernel symbols and BTF"
        };
        report
            .timings
            .as_ref()
            .and_then(|timings| timings.startup.iter().find(|phase| phase.phase == name))
            .map(|phase| phase.ms)
    };
    let [(first, read), (second, cached)] = [(0, false), (1, true)].map(|(at, cached)| {
        let (backend, report) = &reports.forced[at];
        (backend.label(), phase(report, cached))
    });
    let (Some(read), Some(cached)) = (read, cached) else {
        let phases = |report: &Report| -> Vec<String> {
            report
                .timings
                .iter()
                .flat_map(|timings| &timings.startup)
                .map(|phase| phase.phase.clone())
                .collect()
        };
        anyhow::bail!(
            "the {first} run should read the kernel's facts and the {second} run take them from the cache; their phases: {:?} and {:?}",
            phases(&reports.forced[0].1),
            phases(&reports.forced[1].1)
        );
    };
    Ok(format!(
        "  kernel symbols and BTF: {read:.0} ms read by the {first} run, {cached:.0} ms from the cache in the {second} run\n"
    ))
}

/// The reports one boot brought back, each also saved under
/// `target/vm/<arch>-<release>/<run>/report.json`.
struct Reports {
    forced: Vec<(Backend, Report)>,
    auto: Report,
    no_btf: Option<Report>,
    /// 7.x: the large-folio runs, by name.
    folios: Vec<(&'static str, Report)>,
    /// 7.x x86: where the debug-info run's report was saved.
    debuginfo_dir: Option<std::path::PathBuf>,
    /// 7.x x86: the run split by cp_flags.
    split: Option<Report>,
    /// 7.x x86: the NUMA-hinting runs, by name.
    numa: Vec<(&'static str, Report)>,
    /// Where the sampled runs (each backend's and the automatic one) were saved.
    sampled_dirs: Vec<std::path::PathBuf>,
}

impl Reports {
    fn read(console: &Console, log: &Path, generation: Generation) -> Result<Self> {
        let saved = |name: &str| -> Result<(Report, std::path::PathBuf)> {
            let report = console
                .report(name)
                .with_context(|| format!("the {name} run (console: {})", log.display()))?;
            let dir = workspace_root()
                .join("target/vm")
                .join(format!("{}-{}", report.arch, report.kernel_release))
                .join(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("report.json"), report.to_json()?)?;
            Ok((report, dir))
        };
        let report = |name: &str| saved(name).map(|(report, _)| report);
        let mut sampled_dirs = Vec::new();
        let mut sampled = |name: &str| {
            saved(name).map(|(report, dir)| {
                sampled_dirs.push(dir);
                report
            })
        };
        let forced = BACKENDS
            .iter()
            .map(|backend| Ok((*backend, sampled(backend.label())?)))
            .collect::<Result<_>>()?;
        let auto = sampled(AUTO)?;
        Ok(Self {
            forced,
            auto,
            sampled_dirs,
            no_btf: match generation {
                Generation::Inlined => Some(report(NO_BTF)?),
                Generation::Batched
                | Generation::BatchedArm64
                | Generation::BatchedPpc64
                | Generation::BatchedPpc64Base4k => None,
            },
            folios: folio_runs(generation)
                .iter()
                .map(|(name, _)| Ok((*name, report(name)?)))
                .collect::<Result<_>>()?,
            debuginfo_dir: match generation {
                Generation::Batched => Some(saved(DEBUGINFO)?.1),
                Generation::Inlined
                | Generation::BatchedArm64
                | Generation::BatchedPpc64
                | Generation::BatchedPpc64Base4k => None,
            },
            split: match generation {
                Generation::Batched => Some(report(SPLIT)?),
                Generation::Inlined
                | Generation::BatchedArm64
                | Generation::BatchedPpc64
                | Generation::BatchedPpc64Base4k => None,
            },
            numa: match generation {
                Generation::Batched => NUMA_RUNS
                    .iter()
                    .map(|(name, _)| Ok((*name, report(name)?)))
                    .collect::<Result<_>>()?,
                Generation::Inlined
                | Generation::BatchedArm64
                | Generation::BatchedPpc64
                | Generation::BatchedPpc64Base4k => Vec::new(),
            },
        })
    }

    /// Each backend's run, then the automatic choice's (backend None),
    /// with its label.
    fn backend_runs(&self) -> impl Iterator<Item = (Option<Backend>, &Report, String)> {
        self.forced
            .iter()
            .map(|(b, r)| (Some(*b), r))
            .chain([(None, &self.auto)])
            .map(|(backend, report)| {
                let label = backend.map_or_else(|| "--backend auto".to_owned(), |b| format!("--backend {}", b.label()));
                (backend, report, label)
            })
    }

    fn count(&self) -> u64 {
        (self.forced.len()
            + 1
            + usize::from(self.no_btf.is_some())
            + self.folios.len()
            + usize::from(self.debuginfo_dir.is_some())
            + usize::from(self.split.is_some())
            + self.numa.len()) as u64
    }
}

pub(crate) fn target<'a>(report: &'a Report, name: &str) -> Result<&'a TargetReport> {
    report
        .targets
        .iter()
        .find(|t| t.attachment.name == name)
        .with_context(|| format!("{name} is missing from the report"))
}

pub(crate) fn calls(target: &TargetReport) -> u64 {
    target.calls.unwrap_or(0)
}

/// The workload made exactly its calls, and the syscall tracepoints saw them.
fn check_workload(report: &Report) -> Result<()> {
    let made = report.workload.as_ref().map(|w| w.mprotect_calls);
    ensure!(made == Some(CALLS), "workload made {made:?} calls");
    ensure!(
        report.syscall.latency.calls == CALLS,
        "syscall calls {}",
        report.syscall.latency.calls
    );
    ensure!(report.lost.exit_without_entry == 0, "lost: {:?}", report.lost);
    ensure!(report.lost.map_lookup_failed == 0, "lost: {:?}", report.lost);
    Ok(())
}

/// `name` was probed with `backend` and counted exactly `expected` calls,
/// each with its latency.
fn check_counted(report: &Report, name: &str, backend: Backend, expected: u64) -> Result<()> {
    let target = target(report, name)?;
    let attachment = &target.attachment;
    ensure_backend(attachment, backend)?;
    ensure!(
        calls(target) == expected,
        "{name}: {} calls, expected exactly {expected}",
        calls(target)
    );
    let timed = target.latency_ns.as_ref().map_or(0, |stats| stats.histogram.total());
    ensure!(timed == expected, "{name}: {timed} latencies for {expected} calls");
    Ok(())
}

/// Stack sampling saw `frame` on this kernel. Under emulation only a few
/// samples of a run land inside mprotect (0 to 10 of ~80 here), so the
/// runs of one boot are taken together: ~15 in all.
fn check_sampled(reports: &Reports, frame: &str) -> Result<()> {
    let mut in_syscall = 0;
    let mut holding = 0;
    for report in reports.forced.iter().map(|(_, r)| r).chain([&reports.auto]) {
        let profile = report.sampling.as_ref().context("a run sampled no stacks")?;
        in_syscall += profile.in_syscall_samples;
        holding += profile
            .stacks
            .iter()
            .filter(|stack| stack.kernel.iter().any(|f| f == frame))
            .map(|stack| stack.count)
            .sum::<u64>();
    }
    ensure!(
        holding > 0,
        "no sampled stack holds {frame} ({in_syscall} samples inside mprotect in all runs)"
    );
    Ok(())
}

fn check_inlined(reports: &Reports) -> Result<String> {
    let mut summary = String::new();
    for (backend, report) in &reports.forced {
        check_inlined_run(*backend, report).with_context(|| format!("--backend {}", backend.label()))?;
        let _ = writeln!(
            summary,
            "{}",
            describe(&format!("--backend {}", backend.label()), report)
        );
    }
    check_workload(&reports.auto)?;
    // Stack sampling sees the same path on this kernel.
    check_sampled(reports, "change_protection")?;
    if let Some(report) = &reports.no_btf {
        check_kprobe_fallback_without_btf(report).context("the run without BTF")?;
        let _ = writeln!(summary, "{}", describe("--backend auto, no BTF", report));
    }
    Ok(summary)
}

fn check_inlined_run(backend: Backend, report: &Report) -> Result<()> {
    check_workload(report)?;
    for name in ["change_protection", "mprotect_fixup"] {
        check_counted(report, name, backend, CALLS)?;
    }
    let pages = target(report, "change_protection")?
        .pages_per_call
        .as_ref()
        .context("change_protection has no pages per call")?;
    ensure!(
        pages.count == CALLS && pages.min == Some(PAGES) && pages.max == Some(PAGES),
        "change_protection pages per call should be {PAGES} on all {CALLS} calls: {pages:?}"
    );
    let pte_range = &target(report, "change_pte_range")?.attachment;
    ensure!(
        pte_range.backend == Backend::None && pte_range.reason.contains("inlined"),
        "change_pte_range should be reported inlined on 6.1: {}",
        pte_range.reason
    );
    // A function that cannot be traced: ftrace does not list it, so no
    // backend is tried, each says why, and the run goes on.
    let untraceable = &target(report, UNTRACEABLE_PROBE)?.attachment;
    ensure!(
        untraceable.backend == Backend::None
            && untraceable.reason.starts_with("no function probe: ")
            && untraceable
                .reason
                .contains("notrace: not in available_filter_functions"),
        "{UNTRACEABLE_PROBE} should fail to attach: {:?} ({})",
        untraceable.backend,
        untraceable.reason
    );
    // nr_ptes: the `nr` parameter, found by name in BTF, read on every call.
    let nr = target(report, NR_PROBE)?;
    ensure_backend(&nr.attachment, backend)?;
    ensure!(
        nr.attachment.nr_ptes_source.as_deref() == Some(&format!("{NR_PROBE}(nr), argument 1")),
        "{NR_PROBE} nr_ptes source: {:?}",
        nr.attachment.nr_ptes_source
    );
    let distribution = nr.nr_ptes.clone().unwrap_or_default();
    let steps = distribution.total();
    let zero = distribution
        .counts
        .iter()
        .find(|(value, _)| *value == 0)
        .map_or(0, |c| c.1);
    ensure!(
        calls(nr) > 0 && steps == calls(nr),
        "{NR_PROBE}: {} calls but {steps} nr values",
        calls(nr)
    );
    ensure!(
        zero < steps,
        "{NR_PROBE}: every nr read as 0, the argument was not read"
    );
    Ok(())
}

/// On 7.x: change_pte_range is counted exactly, its returned pages add up
/// to every page of every call, and modify_prot_commit_ptes, notrace here,
/// is counted at its call sites with an `nr` that adds up to the same.
fn check_batched(reports: &Reports) -> Result<String> {
    let mut summary = String::new();
    for (backend, report, label) in reports.backend_runs() {
        check_batched_run(backend, report).with_context(|| label.clone())?;
        let _ = writeln!(summary, "{}", describe(&label, report));
    }
    check_sampled(reports, "change_pte_range")?;
    let report = &reports.auto;
    let commit = target(report, "modify_prot_commit_ptes")?;
    let attachment = &commit.attachment;
    ensure!(
        attachment.backend == Backend::CallSite && attachment.reason.starts_with("call sites in change_pte_range ("),
        "modify_prot_commit_ptes used {:?} ({})",
        attachment.backend,
        attachment.reason
    );
    // Base pages: one PTE per batch, so one call per page per mprotect.
    ensure!(
        calls(commit) == PAGES * CALLS,
        "modify_prot_commit_ptes: {} calls at its call sites, expected {PAGES} pages x {CALLS} calls",
        calls(commit)
    );
    let nr = commit.nr_ptes.clone().unwrap_or_default();
    ensure!(
        nr.counts == [(1, PAGES * CALLS)],
        "modify_prot_commit_ptes nr should be 1 on every call: {:?}",
        nr.counts
    );
    let changed = target(report, "change_pte_range")?
        .pages_per_call
        .as_ref()
        .map_or(0, |pages| pages.total);
    let committed: u64 = nr.counts.iter().map(|(value, count)| value * count).sum();
    ensure!(
        committed == changed,
        "nr summed over modify_prot_commit_ptes calls is {committed}, change_pte_range changed {changed} pages"
    );
    let _ = writeln!(
        summary,
        "  modify_prot_commit_ptes ({}): {} calls, nr {:?}, sum {committed} = pages change_pte_range changed",
        attachment.reason,
        calls(commit),
        nr.counts
    );
    let line = vm_inline_probes::check(report, 1, PAGES * CALLS).context("the inlined-instance probes")?;
    let _ = writeln!(summary, "  {line}");
    if let Some(report) = &reports.split {
        check_workload(report).context("the cp_flags run")?;
        let lines = vm_split::check(report, CALLS).context("the cp_flags run")?;
        let _ = write!(summary, "{lines}");
    }
    for (name, report) in &reports.numa {
        let line = vm_numa::check(name, report).with_context(|| format!("the {name} run"))?;
        let _ = writeln!(summary, "  {name}: {line}");
    }
    for (name, report) in &reports.folios {
        let line = check_large_folios(report).with_context(|| format!("the {name} run"))?;
        let _ = writeln!(summary, "  {name}: {line}");
        let folios = PAGES * 4 / FOLIO_KB;
        let line = vm_inline_probes::check(report, FOLIO_KB / 4, folios * CALLS)
            .with_context(|| format!("the inlined-instance probes in the {name} run"))?;
        let _ = writeln!(summary, "  {name}: {line}");
    }
    Ok(summary)
}

/// With 64 kB folios every PTE batch is 16 PTEs: the mapping is backed by
/// 64 kB folios only, and modify_prot_commit_ptes is called once per folio
/// per mprotect with `nr` 16.
fn check_large_folios(report: &Report) -> Result<String> {
    check_batched_run(None, report)?;
    let workload = report.workload.as_ref().context("no workload result")?;
    let folios = PAGES * 4 / FOLIO_KB;
    ensure!(
        workload.folio_sizes == [(FOLIO_KB, folios)] && workload.expected_match_ratio == 100,
        "the mapping was backed by {:?} (kB, folios), expected {folios} folios of {FOLIO_KB} kB",
        workload.folio_sizes
    );
    let batch = FOLIO_KB / 4;
    let commit = target(report, "modify_prot_commit_ptes")?;
    let nr = commit.nr_ptes.clone().unwrap_or_default();
    ensure!(
        commit.attachment.backend == Backend::CallSite && nr.counts == [(batch, folios * CALLS)],
        "modify_prot_commit_ptes ({:?}) nr should be {batch} on all {} calls: {:?}",
        commit.attachment.backend,
        folios * CALLS,
        nr.counts
    );
    ensure!(
        calls(commit) == folios * CALLS,
        "modify_prot_commit_ptes: {} calls",
        calls(commit)
    );
    let changed = target(report, "change_pte_range")?
        .pages_per_call
        .as_ref()
        .map_or(0, |pages| pages.total);
    ensure!(changed == PAGES * CALLS, "change_pte_range changed {changed} pages");
    // folio_pte_batch is not what batches mprotect here (change_pte_range
    // inlines folio_pte_batch_flags): its calls come from other paths,
    // unmapping among them. Every one of its returns is recorded.
    let batcher = target(report, "folio_pte_batch")?;
    let returned = batcher.return_values.clone().unwrap_or_default();
    ensure!(
        returned.count == calls(batcher),
        "folio_pte_batch: {} returns recorded for {} calls",
        returned.count,
        calls(batcher)
    );
    Ok(format!(
        "{folios} folios of {FOLIO_KB} kB; modify_prot_commit_ptes {} calls, nr {:?}; folio_pte_batch (outside the mprotect path) {} calls returning {:?}",
        calls(commit),
        nr.counts,
        calls(batcher),
        returned
            .histogram
            .buckets
            .iter()
            .map(|(low, _, count)| (*low, *count))
            .collect::<Vec<_>>()
    ))
}

/// One 7.x run: `backend` (None: the automatic choice) probed
/// change_protection, change_pte_range and mprotect_fixup exactly.
fn check_batched_run(backend: Option<Backend>, report: &Report) -> Result<()> {
    check_workload(report)?;
    let backend = backend.unwrap_or(Backend::Fentry);
    let walks = report.workload.as_ref().map_or(0, |w| w.pte_table_walks);
    ensure!(walks >= 2 * CALLS, "the workload walked {walks} PTE tables");
    for (name, expected) in [
        ("change_protection", CALLS),
        ("mprotect_fixup", CALLS),
        ("change_pte_range", walks),
    ] {
        check_counted(report, name, backend, expected)?;
    }
    let pages = target(report, "change_pte_range")?
        .pages_per_call
        .as_ref()
        .context("change_pte_range has no pages per call")?;
    ensure!(
        pages.total == PAGES * CALLS,
        "change_pte_range returned {} pages in all, expected {PAGES} pages x {CALLS} calls",
        pages.total
    );
    let fixup = target(report, "mprotect_fixup")?;
    let returned = fixup
        .return_values
        .as_ref()
        .context("mprotect_fixup has no return values")?;
    ensure!(
        returned.count == CALLS && returned.max == Some(0),
        "mprotect_fixup should return 0 on all {CALLS} calls: {returned:?}"
    );
    Ok(())
}

/// On arm64 7.x: modify_prot_start_ptes and modify_prot_commit_ptes are
/// functions; each is called once per batch with its `nr`: per page with
/// base pages, per 64 kB folio with `nr` 16.
fn check_arm64(reports: &Reports) -> Result<String> {
    let mut summary = String::new();
    for (backend, report, label) in reports.backend_runs() {
        check_workload(report).with_context(|| label.clone())?;
        for name in ["change_protection", "mprotect_fixup"] {
            check_counted(report, name, backend.unwrap_or(Backend::Fentry), CALLS).with_context(|| label.clone())?;
        }
        let mut line = describe(&label, report);
        for name in ["modify_prot_start_ptes", "modify_prot_commit_ptes"] {
            if name == "modify_prot_start_ptes" && backend == Some(Backend::Fentry) {
                let _ = write!(line, "\n    {name}: {}", fentry_refused_struct(report, name)?);
                continue;
            }
            let found = check_batches(report, name, backend, 1, PAGES * CALLS).with_context(|| label.clone())?;
            let _ = write!(line, "\n    {found}");
        }
        let _ = writeln!(summary, "{line}");
    }
    check_sampled(reports, "change_protection")?;
    let walks = reports.auto.workload.as_ref().map_or(0, |w| w.pte_table_walks);
    let line = vm_inline_probes::check_counted(&reports.auto, "change_pte_range", walks)
        .context("the inlined-instance probes")?;
    let _ = writeln!(summary, "  {line}");
    for (name, report) in &reports.folios {
        check_workload(report).with_context(|| format!("the {name} run"))?;
        let batch = FOLIO_KB / 4;
        let folios = PAGES * 4 / FOLIO_KB;
        let workload = report.workload.as_ref().context("no workload result")?;
        ensure!(
            workload.folio_sizes == [(FOLIO_KB, folios)],
            "{name}: backed by {:?} (kB, folios)",
            workload.folio_sizes
        );
        let _ = writeln!(summary, "  {name}: {folios} folios of {FOLIO_KB} kB");
        for target in ["modify_prot_start_ptes", "modify_prot_commit_ptes"] {
            let found = check_batches(report, target, None, batch, folios * CALLS)
                .with_context(|| format!("the {name} run"))?;
            let _ = writeln!(summary, "    {found}");
        }
    }
    Ok(summary)
}

/// On ppc64le 7.x with 64 kB pages: change_protection and mprotect_fixup
/// counted exactly by each backend, and the pages they changed are the
/// 64 kB pages of the mapping; book3s64's PTE transaction (its own
/// ptep_modify_prot_start/commit) runs once per PTE; change_pte_range and
/// modify_prot_start_ptes are inlined and counted at their instances, the
/// latter's `nr` adding up to every page changed, in base pages and in
/// 256 kB folios (4 PTEs a batch).
fn check_ppc64(reports: &Reports) -> Result<String> {
    let generation = Generation::BatchedPpc64;
    let pages = pages(generation);
    let mut summary = String::new();
    for (backend, report, label) in reports.backend_runs() {
        check_ppc64_run(generation, backend, report, &mut summary, &label).with_context(|| label.clone())?;
    }
    check_sampled(reports, "change_protection")?;
    let walks = reports.auto.workload.as_ref().map_or(0, |w| w.pte_table_walks);
    let line = vm_inline_probes::check_counted(&reports.auto, "change_pte_range", walks)
        .context("the inlined-instance probes")?;
    let _ = writeln!(summary, "  {line}");
    let found = check_inlined_batches(&reports.auto, 1, pages * CALLS).context("the inlined-instance probes")?;
    let _ = writeln!(summary, "  {found}");
    for (name, report) in &reports.folios {
        check_workload(report).with_context(|| format!("the {name} run"))?;
        let folio_kb = folio_kb(generation);
        let batch = folio_kb / page_kb(generation);
        let folios = pages / batch;
        let workload = report.workload.as_ref().context("no workload result")?;
        ensure!(
            workload.folio_sizes == [(folio_kb, folios)],
            "{name}: backed by {:?} (kB, folios), expected {folios} folios of {folio_kb} kB",
            workload.folio_sizes
        );
        let found = check_inlined_batches(report, batch, folios * CALLS).with_context(|| format!("the {name} run"))?;
        let _ = writeln!(summary, "  {name}: {folios} folios of {folio_kb} kB\n    {found}");
        for transaction in PPC64_TRANSACTION {
            let found = check_per_pte(report, transaction, None, pages).with_context(|| format!("the {name} run"))?;
            let _ = writeln!(summary, "    {found}");
        }
    }
    Ok(summary)
}

/// The 4 kB-page flavour of the same ppc64le kernel: the same exact
/// counts per call and per PTE, on 1024 pages a call instead of 64.
fn check_ppc64_base4k(reports: &Reports) -> Result<String> {
    let mut summary = String::new();
    for (backend, report, label) in reports.backend_runs() {
        check_ppc64_run(Generation::BatchedPpc64Base4k, backend, report, &mut summary, &label)
            .with_context(|| label.clone())?;
    }
    check_sampled(reports, "change_protection")?;
    Ok(summary)
}

/// One ppc64 run of `generation` with `backend` (None: the automatic choice).
fn check_ppc64_run(
    generation: Generation,
    backend: Option<Backend>,
    report: &Report,
    summary: &mut String,
    label: &str,
) -> Result<()> {
    let pages = pages(generation);
    check_workload(report)?;
    let workload = report.workload.as_ref().context("no workload result")?;
    ensure!(
        workload.kernel_page_kb == page_kb(generation) && workload.pages == pages,
        "the workload saw {} kB pages, {} of them; expected {} kB, {pages}",
        workload.kernel_page_kb,
        workload.pages,
        page_kb(generation)
    );
    for name in ["change_protection", "mprotect_fixup"] {
        check_counted(report, name, backend.unwrap_or(Backend::Fentry), CALLS)?;
    }
    let changed = target(report, "change_protection")?
        .pages_per_call
        .as_ref()
        .context("change_protection has no pages per call")?;
    ensure!(
        changed.count == CALLS && changed.min == Some(pages) && changed.max == Some(pages),
        "change_protection should change {pages} pages on all {CALLS} calls: {changed:?}"
    );
    // The syscall's length in the kernel's pages, not in 4 kB ones.
    let asked = &report.syscall.pages_per_call;
    ensure!(
        asked.count == CALLS && asked.min == Some(pages) && asked.max == Some(pages),
        "mprotect's length should be {pages} pages on all {CALLS} calls: {asked:?}"
    );
    let mut line = describe(label, report);
    for name in PPC64_TRANSACTION {
        if name == "ptep_modify_prot_start" && backend == Some(Backend::Fentry) {
            let _ = write!(line, "\n    {name}: {}", fentry_refused_struct(report, name)?);
            continue;
        }
        let _ = write!(line, "\n    {}", check_per_pte(report, name, backend, pages)?);
    }
    let _ = writeln!(summary, "{line}");
    Ok(())
}

/// The target of `attachment` was probed with `backend`; else the plan's reason.
fn ensure_backend(attachment: &Attachment, backend: Backend) -> Result<()> {
    ensure!(
        attachment.backend == backend,
        "{} used {:?} ({})",
        attachment.name,
        attachment.backend,
        attachment.reason
    );
    Ok(())
}

/// `name` was called once per PTE of every call, `pages` x CALLS, probed
/// by `backend` (None: whatever the automatic choice attached).
fn check_per_pte(report: &Report, name: &str, backend: Option<Backend>, pages: u64) -> Result<String> {
    let probed = target(report, name)?;
    let attachment = &probed.attachment;
    if let Some(backend) = backend {
        ensure_backend(attachment, backend)?;
    }
    ensure!(
        calls(probed) == pages * CALLS,
        "{name}: {} calls, expected one per PTE: {pages} x {CALLS}",
        calls(probed)
    );
    Ok(format!(
        "{name} ({}): {} calls = {pages} PTEs x {CALLS} calls",
        attachment.backend.label(),
        calls(probed)
    ))
}

/// `name` returns `pte_t`, a struct on arm64 and ppc64: the verifier
/// refuses fentry/fexit there, and the plan says so (the automatic choice
/// takes kprobes). Returns the reason the report gives.
fn fentry_refused_struct(report: &Report, name: &str) -> Result<String> {
    let attachment = &target(report, name)?.attachment;
    ensure!(
        attachment.backend == Backend::None && attachment.reason.contains("returns a struct"),
        "{name} with --backend fentry: {:?} ({})",
        attachment.backend,
        attachment.reason
    );
    Ok(attachment.reason.clone())
}

/// modify_prot_start_ptes, inlined, was counted once per batch at its
/// instances, `batches` batches of `batch` PTEs, and Σnr is every page
/// change_protection changed.
fn check_inlined_batches(report: &Report, batch: u64, batches: u64) -> Result<String> {
    let name = "modify_prot_start_ptes";
    let start = target(report, name)?;
    ensure!(
        start.attachment.backend == Backend::Inlined,
        "{name} used {:?}: {}",
        start.attachment.backend,
        start.attachment.reason
    );
    let nr = start.nr_ptes.clone().unwrap_or_default();
    ensure!(
        calls(start) == batches && nr.counts == [(batch, batches)],
        "{name}: {} calls with nr {:?}, expected {batches} batches of {batch}",
        calls(start),
        nr.counts
    );
    let summed: u64 = nr.counts.iter().map(|(value, count)| value * count).sum();
    let changed = target(report, "change_protection")?
        .pages_per_call
        .as_ref()
        .map_or(0, |pages| pages.total);
    ensure!(
        summed == changed,
        "{name}: nr sums to {summed}, change_protection changed {changed} pages"
    );
    // The commit is counted once per batch too, and every nr read is the
    // batch's; where GCC's DWARF gives nr as the constant 0 (an instance in
    // commit_anon_folio_batch), nr is not read: those calls have none.
    let commit = target(report, "modify_prot_commit_ptes")?;
    ensure!(
        commit.attachment.backend == Backend::Inlined && calls(commit) == batches,
        "modify_prot_commit_ptes ({:?}): {} calls, expected one per batch: {batches}",
        commit.attachment.backend,
        calls(commit)
    );
    // The called instances whose nr is not read.
    let unread: Vec<_> = commit
        .attachment
        .inlined
        .iter()
        .flat_map(|inlined| &inlined.instances)
        .filter(|i| i.calls.unwrap_or(0) > 0 && i.nr.starts_with("nr: unavailable: "))
        .collect();
    let unread_calls: u64 = unread.iter().map(|i| i.calls.unwrap_or(0)).sum();
    let unread: Vec<String> = unread
        .iter()
        .map(|i| format!("{} ({} calls, {})", i.at, i.calls.unwrap_or(0), i.nr))
        .collect();
    let commit_nr = commit.nr_ptes.clone().unwrap_or_default().counts;
    ensure!(
        commit_nr == [(batch, batches - unread_calls)] || (unread_calls == batches && commit_nr.is_empty()),
        "modify_prot_commit_ptes: nr {commit_nr:?}, expected {} batches of {batch} besides {unread_calls} calls without nr",
        batches - unread_calls
    );
    Ok(format!(
        "{name} ({}): {} calls, nr {:?}, sum {summed} = pages change_protection changed\n    modify_prot_commit_ptes ({}): {} calls, nr {commit_nr:?}{}",
        start.attachment.reason,
        calls(start),
        nr.counts,
        commit.attachment.reason,
        calls(commit),
        if unread.is_empty() {
            String::new()
        } else {
            format!("; not read at {}", unread.join(", "))
        }
    ))
}

/// `name` was counted exactly `calls` times, each with `nr` == `batch`,
/// by `backend` (None: whatever the automatic choice attached, which the
/// line names); a backend the kernel refused is reported with its reason.
fn check_batches(
    report: &Report,
    name: &str,
    backend: Option<Backend>,
    batch: u64,
    calls_expected: u64,
) -> Result<String> {
    let target = target(report, name)?;
    let attachment = &target.attachment;
    ensure!(
        attachment.backend != Backend::None,
        "{name} was not probed: {}",
        attachment.reason
    );
    if let Some(backend) = backend {
        ensure_backend(attachment, backend)?;
    }
    let nr = target.nr_ptes.clone().unwrap_or_default();
    ensure!(
        calls(target) == calls_expected && nr.counts == [(batch, calls_expected)],
        "{name}: {} calls with nr {:?}, expected {calls_expected} calls with nr {batch}",
        calls(target),
        nr.counts
    );
    Ok(format!(
        "{name} ({}): {} calls, nr {:?} ({})",
        attachment.backend.label(),
        calls(target),
        nr.counts,
        attachment.reason
    ))
}

/// Without BTF the automatic choice falls back to kprobes, says why, and
/// counts as exactly as fentry did.
fn check_kprobe_fallback_without_btf(report: &Report) -> Result<()> {
    ensure!(
        !report.capabilities.btf.available,
        "BTF was still readable: {:?}",
        report.capabilities.btf
    );
    for name in ["change_protection", "mprotect_fixup"] {
        let attachment = &target(report, name)?.attachment;
        ensure!(
            attachment.reason == "kprobe/kretprobe (fentry needs BTF)",
            "{name}: {}",
            attachment.reason
        );
        check_counted(report, name, Backend::Kprobe, CALLS)?;
    }
    Ok(())
}

/// The names of the guest's functions, decoded from the console.
fn guest_functions(console: &Console) -> Result<HashSet<String>> {
    let encoded = console.section(FUNCTIONS).context("no function names on the console")?;
    let mut decode = Command::new("sh")
        .args(["-c", "base64 -d | gzip -dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting base64 and gzip")?;
    let mut stdin = decode.stdin.take().context("no stdin")?;
    let input = encoded.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = decode.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    ensure!(output.status.success(), "decoding the function names failed");
    let names: HashSet<String> = String::from_utf8(output.stdout)?.lines().map(str::to_owned).collect();
    ensure!(names.len() > 10_000, "only {} function names came back", names.len());
    Ok(names)
}

/// Every kernel frame of every sampled stack of every run is a function
/// of the guest's kallsyms, a BPF program or trampoline, or unknown.
fn check_frames(reports: &Reports, functions: &HashSet<String>) -> Result<String> {
    let mut frames = 0;
    let mut bpf = 0;
    let mut unknown = 0;
    let runs = reports.forced.iter().map(|(_, r)| r).chain([&reports.auto]);
    for report in runs {
        for stack in report.sampling.iter().flat_map(|profile| &profile.stacks) {
            for frame in &stack.kernel {
                frames += 1;
                if frame.starts_with("[bpf] ") {
                    bpf += 1;
                } else if frame == "[unknown kernel]" {
                    unknown += 1;
                } else {
                    ensure!(functions.contains(frame), "the sampled frame {frame} is not a function");
                }
            }
        }
    }
    ensure!(frames > 0, "no kernel frame was sampled");
    Ok(format!(
        "  sampled kernel frames: {frames}, every one a function ({bpf} BPF programs or trampolines, {unknown} unknown)\n"
    ))
}

fn describe(label: &str, report: &Report) -> String {
    let mut line = format!("  {label}:");
    for target in report.targets.iter().filter(|t| t.calls.is_some()) {
        let _ = write!(
            line,
            " {} {} calls ({}),",
            target.attachment.name,
            calls(target),
            target.attachment.backend.label()
        );
    }
    let _ = write!(line, " syscall {} calls", report.syscall.latency.calls);
    if let Some(profile) = &report.sampling {
        let _ = write!(
            line,
            "; {} stack samples, {} inside mprotect",
            profile.counters.samples, profile.in_syscall_samples
        );
    }
    line
}
