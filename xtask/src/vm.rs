//! `cargo xtask vm-test`: proves the function probes in a real kernel where
//! they work. Boots Debian's 6.1 cloud kernel under QEMU (software
//! emulation) with an initramfs holding busybox and the release binary,
//! runs `mprotect-trace run` with `--backend fentry` and `--backend kprobe`,
//! and with BTF hidden (the kprobe fallback), and checks exact counts.
//! Timings under emulation mean nothing; counts do.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::command::{cargo, output_of, release_binary, run_checked, workspace_root};

const ITERATIONS: u64 = 10;
const WARMUP: u64 = 2;
const MAPPING_MB: u64 = 4;
const PAGES: u64 = MAPPING_MB * 256;
const BACKENDS: [&str; 2] = ["fentry", "kprobe"];
/// A 6.1 function with a parameter named `nr` that the workload's munmap
/// reaches: proves the nr_ptes argument is found by name and read.
const NR_PROBE: &str = "free_pages_and_swap_cache";
/// A function in /proc/kallsyms that neither fentry nor a kprobe may
/// attach to: `noinstr` (no ftrace call site, on the kprobe blacklist).
const UNTRACEABLE_PROBE: &str = "exc_page_fault";
/// The run with /sys/kernel/btf hidden under an empty tmpfs.
const NO_BTF: &str = "no-btf";

/// Returns how many checks passed (one per backend, and the run without BTF).
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let vm_dir = workspace_root().join("target/vm");
    std::fs::create_dir_all(&vm_dir)?;
    let kernel = kernel_image(&vm_dir)?;
    let initramfs = build_initramfs(&vm_dir, &release_binary()?)?;
    eprintln!("vm-test: booting {} under QEMU (TCG)", kernel.display());
    let console = boot(&kernel, &initramfs)?;
    std::fs::write(vm_dir.join("console.log"), &console)?;
    let doctor = section(&console, "doctor")?;
    let release = doctor["capabilities"]["kernel_release"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let mut summary = String::new();
    for backend in BACKENDS {
        let report =
            section(&console, backend).with_context(|| format!("the {backend} run (see target/vm/console.log)"))?;
        check_report(backend, &report).with_context(|| format!("--backend {backend} on {release}"))?;
        let _ = writeln!(summary, "{}", describe(backend, &report));
    }
    let report = section(&console, NO_BTF).context("the run without BTF (see target/vm/console.log)")?;
    check_kprobe_fallback_without_btf(&report).with_context(|| format!("the run without BTF on {release}"))?;
    let _ = writeln!(summary, "{}", describe("auto, no BTF", &report));
    if let Some(table) = text_section(&console, "table") {
        println!("mprotect-trace run inside the VM:\n{table}");
    }
    println!("vm-test passed on {release}:\n{summary}");
    Ok(BACKENDS.len() as u64 + 1)
}

/// The newest Debian 6.1 cloud kernel, downloaded and unpacked once.
fn kernel_image(vm_dir: &Path) -> Result<PathBuf> {
    let unpacked = vm_dir.join("kernel");
    if let Some(image) = find_vmlinuz(&unpacked) {
        return Ok(image);
    }
    let search = output_of(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "^linux-image-6.1.0-.*-cloud-amd64-unsigned$",
    ]))?;
    let package = search
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .max_by_key(|name| name.split('-').nth(4).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0))
        .context("apt-cache knows no linux-image-6.1.0-*-cloud-amd64-unsigned (run apt-get update)")?
        .to_owned();
    let download = vm_dir.join("download");
    std::fs::create_dir_all(&download)?;
    run_checked(
        Command::new("apt-get")
            .args(["download", &package])
            .current_dir(&download),
    )?;
    let deb = std::fs::read_dir(&download)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    find_vmlinuz(&unpacked).context("the kernel package has no boot/vmlinuz-*")
}

fn find_vmlinuz(unpacked: &Path) -> Option<PathBuf> {
    std::fs::read_dir(unpacked.join("boot"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
}

fn init_script() -> String {
    let mut script = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t tmpfs tmpfs /tmp\n\
         echo ===BEGIN doctor===\n\
         /mprotect-trace doctor --json\n\
         echo ===END doctor===\n",
    );
    for backend in BACKENDS {
        let _ = write!(
            script,
            "/mprotect-trace run --backend {backend} --iterations {ITERATIONS} --warmup {WARMUP} \
             --mapping-mb {MAPPING_MB} --probe {NR_PROBE} --probe {UNTRACEABLE_PROBE} --json -o /tmp/{backend} \
             > /tmp/{backend}.json 2> /tmp/{backend}.err\n\
             echo \"{backend} exit status $?\"\n\
             cat /tmp/{backend}.err\n\
             echo ===BEGIN {backend}===\n\
             cat /tmp/{backend}.json\n\
             echo ===END {backend}===\n"
        );
    }
    // The table a user sees, with the default backend choice.
    let _ = write!(
        script,
        "echo ===BEGIN table===\n\
         /mprotect-trace run --iterations {ITERATIONS} --warmup {WARMUP} --mapping-mb {MAPPING_MB} \
         --probe flush_tlb_mm_range -o /tmp/auto 2>&1\n\
         echo ===END table===\n"
    );
    // A kernel whose BTF user space cannot read: fentry must fall back to kprobes.
    let _ = write!(
        script,
        "mount -t tmpfs none /sys/kernel/btf\n\
         /mprotect-trace run --iterations {ITERATIONS} --warmup {WARMUP} --mapping-mb {MAPPING_MB} \
         --no-sample --json -o /tmp/{NO_BTF} > /tmp/{NO_BTF}.json 2> /tmp/{NO_BTF}.err\n\
         echo \"{NO_BTF} exit status $?\"\n\
         cat /tmp/{NO_BTF}.err\n\
         echo ===BEGIN {NO_BTF}===\n\
         cat /tmp/{NO_BTF}.json\n\
         echo ===END {NO_BTF}===\n"
    );
    script.push_str("poweroff -f\n");
    script
}

fn build_initramfs(vm_dir: &Path, binary: &Path) -> Result<PathBuf> {
    let root = vm_dir.join("initramfs");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    for dir in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox (busybox-static)")?;
    std::fs::copy(binary, root.join("mprotect-trace"))?;
    // The shared libraries the binary needs, at the paths ldd names.
    for library in output_of(Command::new("ldd").arg(binary))?
        .lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
    {
        let target = root.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().context("library path has no parent")?)?;
        std::fs::copy(library, &target).with_context(|| format!("copying {library}"))?;
    }
    let init = root.join("init");
    std::fs::write(&init, init_script())?;
    run_checked(Command::new("chmod").arg("+x").arg(&init))?;
    let archive = vm_dir.join("initramfs.cpio.gz");
    let pack = format!("find . | cpio -o -H newc --quiet | gzip -1 > {}", archive.display());
    run_checked(Command::new("sh").args(["-c", &pack]).current_dir(&root))?;
    Ok(archive)
}

fn boot(kernel: &Path, initramfs: &Path) -> Result<String> {
    let output = Command::new("timeout")
        .arg("900")
        .arg("qemu-system-x86_64")
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-m", "2048", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 quiet loglevel=1 panic=-1"])
        .stdin(Stdio::null())
        .output()
        .context("starting qemu-system-x86_64 (qemu-system-x86 package)")?;
    let console = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    if !output.status.success() {
        bail!("QEMU failed ({}); console:\n{console}", output.status);
    }
    Ok(console)
}

/// What was printed between `===BEGIN name===` and `===END name===`.
fn text_section<'a>(console: &'a str, name: &str) -> Option<&'a str> {
    let begin = format!("===BEGIN {name}===\n");
    let start = console.find(&begin)? + begin.len();
    let end = console[start..].find(&format!("===END {name}==="))? + start;
    Some(&console[start..end])
}

fn section(console: &str, name: &str) -> Result<Value> {
    let text = text_section(console, name).with_context(|| format!("no complete {name} output on the console"))?;
    serde_json::from_str(text).with_context(|| format!("the {name} output is not JSON"))
}

fn target<'a>(report: &'a Value, name: &str) -> Result<&'a Value> {
    report["targets"]
        .as_array()
        .and_then(|targets| targets.iter().find(|t| t["name"] == name))
        .with_context(|| format!("{name} is missing from the report"))
}

fn histogram_total(stats: &Value) -> u64 {
    stats["histogram"]["buckets"]
        .as_array()
        .map(|buckets| buckets.iter().filter_map(|b| b[2].as_u64()).sum())
        .unwrap_or(0)
}

fn check_report(backend: &str, report: &Value) -> Result<()> {
    let calls = 2 * (ITERATIONS + WARMUP);
    ensure!(
        report["workload"]["mprotect_calls"] == calls,
        "workload made {} calls",
        report["workload"]["mprotect_calls"]
    );
    ensure!(
        report["syscall"]["latency"]["calls"] == calls,
        "syscall calls {}",
        report["syscall"]["latency"]["calls"]
    );
    for name in ["change_protection", "mprotect_fixup"] {
        let target = target(report, name)?;
        ensure!(
            target["backend"] == backend,
            "{name} used {} ({})",
            target["backend"],
            target["reason"]
        );
        let counted = target["latency"]["calls"].as_u64().unwrap_or(0);
        ensure!(counted == calls, "{name}: {counted} calls, expected exactly {calls}");
        let total = histogram_total(&target["latency_ns"]);
        ensure!(total == calls, "{name}: histogram sums to {total}, calls {calls}");
    }
    let pages = &target(report, "change_protection")?["pages_per_call"];
    ensure!(
        pages["count"] == calls && pages["min"] == PAGES && pages["max"] == PAGES,
        "change_protection pages per call should be {PAGES} on all {calls} calls: {pages}"
    );
    let pte_range = target(report, "change_pte_range")?;
    let reason = pte_range["reason"].as_str().unwrap_or("");
    ensure!(
        pte_range["backend"] == "none" && reason.contains("inlined"),
        "change_pte_range should be reported inlined on 6.1: {reason}"
    );
    ensure!(report["lost"]["exit_without_entry"] == 0, "lost: {}", report["lost"]);
    // A function that cannot be traced: reported with the kernel's refusal, the run goes on.
    let untraceable = target(report, UNTRACEABLE_PROBE)?;
    let reason = untraceable["reason"].as_str().unwrap_or("");
    ensure!(
        untraceable["backend"] == "none" && reason.starts_with("no function probe: attaching failed: "),
        "{UNTRACEABLE_PROBE} should fail to attach: {} ({reason})",
        untraceable["backend"]
    );
    // nr_ptes: the `nr` parameter, found by name in BTF, read on every call.
    let nr = target(report, NR_PROBE)?;
    ensure!(
        nr["backend"] == backend,
        "{NR_PROBE} used {} ({})",
        nr["backend"],
        nr["reason"]
    );
    ensure!(
        nr["nr_ptes_source"] == format!("{NR_PROBE}(nr), argument 1").as_str(),
        "{NR_PROBE} nr_ptes source: {}",
        nr["nr_ptes_source"]
    );
    let calls = nr["latency"]["calls"].as_u64().unwrap_or(0);
    let steps: u64 = nr["nr_ptes"]["counts"]
        .as_array()
        .map_or(0, |c| c.iter().filter_map(|c| c[1].as_u64()).sum());
    let zero = nr["nr_ptes"]["counts"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c[0] == 0))
        .map_or(0, |c| c[1].as_u64().unwrap_or(0));
    ensure!(
        calls > 0 && steps == calls,
        "{NR_PROBE}: {calls} calls but {steps} nr values"
    );
    ensure!(
        zero < steps,
        "{NR_PROBE}: every nr read as 0, the argument was not read"
    );
    // Stack sampling sees the same path on this kernel.
    let sampled = report["sampling"]["stacks"].as_array().map_or(0, |stacks| {
        stacks
            .iter()
            .filter(|stack| {
                stack["kernel"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|f| f == "change_protection"))
            })
            .count()
    });
    ensure!(
        sampled > 0,
        "no sampled stack holds change_protection: {}",
        report["sampling"]["counters"]
    );
    Ok(())
}

/// Without BTF the automatic choice falls back to kprobes, says why, and
/// counts as exactly as fentry did.
fn check_kprobe_fallback_without_btf(report: &Value) -> Result<()> {
    ensure!(
        report["capabilities"]["btf"]["available"] == false,
        "BTF was still readable: {}",
        report["capabilities"]["btf"]
    );
    let calls = 2 * (ITERATIONS + WARMUP);
    for name in ["change_protection", "mprotect_fixup"] {
        let target = target(report, name)?;
        ensure!(
            target["backend"] == "kprobe" && target["reason"] == "kprobe/kretprobe (fentry needs BTF)",
            "{name} used {} ({})",
            target["backend"],
            target["reason"]
        );
        let counted = target["latency"]["calls"].as_u64().unwrap_or(0);
        ensure!(counted == calls, "{name}: {counted} calls, expected exactly {calls}");
    }
    Ok(())
}

fn describe(backend: &str, report: &Value) -> String {
    let mut line = format!("  --backend {backend}:");
    for name in ["change_protection", "mprotect_fixup"] {
        if let Ok(target) = target(report, name) {
            let _ = write!(line, " {name} {} calls,", target["latency"]["calls"]);
        }
    }
    if let Ok(target) = target(report, NR_PROBE) {
        let _ = write!(
            line,
            " {NR_PROBE} {} calls with nr {},",
            target["latency"]["calls"], target["nr_ptes"]["counts"]
        );
    }
    let _ = write!(line, " syscall {} calls", report["syscall"]["latency"]["calls"]);
    if !report["sampling"].is_null() {
        let _ = write!(
            line,
            "; {} stack samples, {} inside mprotect",
            report["sampling"]["counters"]["samples"], report["sampling"]["in_syscall_samples"]
        );
    }
    line
}
