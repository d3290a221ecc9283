//! `cargo xtask vm-test`: proves the function probes in a real kernel where
//! they work. Boots Debian's 6.1 cloud kernel under QEMU (software
//! emulation) through the library's `vm` machinery, runs `mprotect-trace
//! run` with `--backend fentry` and `--backend kprobe`, and with BTF hidden
//! (the kprobe fallback), and checks exact counts on the typed reports.
//! Timings under emulation mean nothing; counts do.

use std::fmt::Write as _;

use anyhow::{Context as _, Result, ensure};
use mprotect_trace::model::{Backend, Report, TargetReport};
use mprotect_trace::vm::{Console, GuestScript, Initramfs, KernelImage, Machine};

use crate::command::{cargo, release_binary, run_checked, workspace_root};

const ITERATIONS: u64 = 10;
const WARMUP: u64 = 2;
const MAPPING_MB: u64 = 4;
const PAGES: u64 = MAPPING_MB * 256;
const BACKENDS: [Backend; 2] = [Backend::Fentry, Backend::Kprobe];
/// A 6.1 function with a parameter named `nr` that the workload's munmap
/// reaches: proves the nr_ptes argument is found by name and read.
const NR_PROBE: &str = "free_pages_and_swap_cache";
/// A function in /proc/kallsyms that neither fentry nor a kprobe may
/// attach to: `noinstr` (no ftrace call site, on the kprobe blacklist).
const UNTRACEABLE_PROBE: &str = "exc_page_fault";
/// The run with /sys/kernel/btf hidden under an empty tmpfs.
const NO_BTF: &str = "no-btf";

fn guest_script() -> String {
    let workload = format!("--iterations {ITERATIONS} --warmup {WARMUP} --mapping-mb {MAPPING_MB}");
    let mut script = GuestScript::new();
    script.text("doctor", "doctor");
    for backend in BACKENDS {
        let name = backend.label();
        script.run(
            name,
            &format!("--backend {name} {workload} --probe {NR_PROBE} --probe {UNTRACEABLE_PROBE}"),
        );
    }
    // The table a user sees, with the default backend choice.
    script.text(
        "table",
        &format!("run {workload} --probe flush_tlb_mm_range -o /tmp/auto"),
    );
    // A kernel whose BTF user space cannot read: fentry must fall back to kprobes.
    script
        .shell("mount -t tmpfs none /sys/kernel/btf")
        .run(NO_BTF, &format!("{workload} --no-sample"));
    script.finish()
}

/// Returns how many checks passed (one per backend, and the run without BTF).
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let vm_dir = workspace_root().join("target/vm");
    std::fs::create_dir_all(&vm_dir)?;
    let kernel = KernelImage::debian_cloud("6.1", &vm_dir)?;
    let initramfs = Initramfs::build(&vm_dir, &release_binary()?, &guest_script())?;
    eprintln!("vm-test: booting {} under QEMU (TCG)", kernel.source);
    let console = Machine::default().boot(&kernel, &initramfs)?;
    std::fs::write(vm_dir.join("console.log"), &console.text)?;
    let mut summary = String::new();
    let mut release = String::from("?");
    for backend in BACKENDS {
        let report = report(&console, backend.label())?;
        release.clone_from(&report.kernel_release);
        check_report(backend, &report).with_context(|| format!("--backend {} on {release}", backend.label()))?;
        let _ = writeln!(
            summary,
            "{}",
            describe(&format!("--backend {}", backend.label()), &report)
        );
    }
    let report = report(&console, NO_BTF)?;
    check_kprobe_fallback_without_btf(&report).with_context(|| format!("the run without BTF on {release}"))?;
    let _ = writeln!(summary, "{}", describe("--backend auto, no BTF", &report));
    if let Some(table) = console.section("table") {
        println!("mprotect-trace run inside the VM:\n{table}");
    }
    println!("vm-test passed on {release}:\n{summary}");
    Ok(BACKENDS.len() as u64 + 1)
}

fn report(console: &Console, name: &str) -> Result<Report> {
    console
        .report(name)
        .with_context(|| format!("the {name} run (see target/vm/console.log)"))
}

fn target<'a>(report: &'a Report, name: &str) -> Result<&'a TargetReport> {
    report
        .targets
        .iter()
        .find(|t| t.attachment.name == name)
        .with_context(|| format!("{name} is missing from the report"))
}

fn calls(target: &TargetReport) -> u64 {
    target.latency.as_ref().map_or(0, |latency| latency.calls)
}

fn check_report(backend: Backend, report: &Report) -> Result<()> {
    let expected = 2 * (ITERATIONS + WARMUP);
    let workload_calls = report.workload.as_ref().map(|w| w.mprotect_calls);
    ensure!(
        workload_calls == Some(expected),
        "workload made {workload_calls:?} calls"
    );
    ensure!(
        report.syscall.latency.calls == expected,
        "syscall calls {}",
        report.syscall.latency.calls
    );
    for name in ["change_protection", "mprotect_fixup"] {
        let target = target(report, name)?;
        let attachment = &target.attachment;
        ensure!(
            attachment.backend == backend,
            "{name} used {:?} ({})",
            attachment.backend,
            attachment.reason
        );
        ensure!(
            calls(target) == expected,
            "{name}: {} calls, expected exactly {expected}",
            calls(target)
        );
        let total = target.latency_ns.as_ref().map_or(0, |stats| stats.histogram.total());
        ensure!(total == expected, "{name}: histogram sums to {total}, calls {expected}");
    }
    let pages = target(report, "change_protection")?
        .pages_per_call
        .as_ref()
        .context("change_protection has no pages per call")?;
    ensure!(
        pages.count == expected && pages.min == Some(PAGES) && pages.max == Some(PAGES),
        "change_protection pages per call should be {PAGES} on all {expected} calls: {pages:?}"
    );
    let pte_range = &target(report, "change_pte_range")?.attachment;
    ensure!(
        pte_range.backend == Backend::None && pte_range.reason.contains("inlined"),
        "change_pte_range should be reported inlined on 6.1: {}",
        pte_range.reason
    );
    ensure!(report.lost.exit_without_entry == 0, "lost: {:?}", report.lost);
    ensure!(report.lost.map_lookup_failed == 0, "lost: {:?}", report.lost);
    // A function that cannot be traced: reported with the kernel's refusal, the run goes on.
    let untraceable = &target(report, UNTRACEABLE_PROBE)?.attachment;
    ensure!(
        untraceable.backend == Backend::None && untraceable.reason.starts_with("no function probe: attaching failed: "),
        "{UNTRACEABLE_PROBE} should fail to attach: {:?} ({})",
        untraceable.backend,
        untraceable.reason
    );
    // nr_ptes: the `nr` parameter, found by name in BTF, read on every call.
    let nr = target(report, NR_PROBE)?;
    ensure!(
        nr.attachment.backend == backend,
        "{NR_PROBE} used {:?} ({})",
        nr.attachment.backend,
        nr.attachment.reason
    );
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
    // Stack sampling sees the same path on this kernel.
    let profile = report.sampling.as_ref().context("the run sampled no stacks")?;
    let sampled = profile
        .stacks
        .iter()
        .filter(|stack| stack.kernel.iter().any(|f| f == "change_protection"))
        .count();
    ensure!(
        sampled > 0,
        "no sampled stack holds change_protection: {:?}",
        profile.counters
    );
    Ok(())
}

/// Without BTF the automatic choice falls back to kprobes, says why, and
/// counts as exactly as fentry did.
fn check_kprobe_fallback_without_btf(report: &Report) -> Result<()> {
    ensure!(
        !report.capabilities.btf.available,
        "BTF was still readable: {:?}",
        report.capabilities.btf
    );
    let expected = 2 * (ITERATIONS + WARMUP);
    for name in ["change_protection", "mprotect_fixup"] {
        let target = target(report, name)?;
        let attachment = &target.attachment;
        ensure!(
            attachment.backend == Backend::Kprobe && attachment.reason == "kprobe/kretprobe (fentry needs BTF)",
            "{name} used {:?} ({})",
            attachment.backend,
            attachment.reason
        );
        ensure!(
            calls(target) == expected,
            "{name}: {} calls, expected exactly {expected}",
            calls(target)
        );
    }
    Ok(())
}

fn describe(label: &str, report: &Report) -> String {
    let mut line = format!("  {label}:");
    for name in ["change_protection", "mprotect_fixup"] {
        if let Ok(target) = target(report, name) {
            let _ = write!(line, " {name} {} calls,", calls(target));
        }
    }
    if let Ok(target) = target(report, NR_PROBE) {
        let counts = target.nr_ptes.as_ref().map(|d| d.counts.clone()).unwrap_or_default();
        let _ = write!(line, " {NR_PROBE} {} calls with nr {counts:?},", calls(target));
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
