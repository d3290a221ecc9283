//! The 7.x x86 guest's report symbolized afterwards, on the host, with the
//! kernel's DWARF vmlinux (Debian's -dbg package): `modify_prot_start_ptes`,
//! always inlined on x86, gets a sampled share with its inline chain, and
//! every chain and line the tool gives agrees with `addr2line -i` on the
//! same address of the same vmlinux: LLVM's, since GNU addr2line 2.40
//! names the wrong file for some inlined code (pte_val's paravirt.h:332
//! as mm/memory.c:332). The time and peak memory of the
//! symbolization are printed (a measurement, not a check).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use mprotect_trace::debuginfo;
use mprotect_trace::model::Report;
use mprotect_trace::vm::{KernelImage, kernel};

use crate::command::release_binary;

/// The inline chain the tool must find in change_pte_range on 7.x x86.
const CHAIN: [&str; 2] = ["change_present_ptes", "modify_prot_start_ptes"];

/// `mprotect-trace report --vmlinux V --format json DIR`: the symbolized
/// report, the seconds it took and its peak RSS in MB (wait4's rusage).
fn symbolized(vmlinux: &Path, dir: &Path) -> Result<(Report, f64, f64)> {
    let started = Instant::now();
    let child = Command::new(release_binary()?)
        .args(["report", "--format", "json", "--vmlinux"])
        .arg(vmlinux)
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting mprotect-trace report --vmlinux")?;
    let pid = child.id() as libc::pid_t;
    let output = {
        use std::io::Read as _;
        let (mut stdout, mut stderr) = (child.stdout.context("stdout")?, child.stderr.context("stderr")?);
        let mut out = Vec::new();
        let mut err = Vec::new();
        stdout.read_to_end(&mut out)?;
        stderr.read_to_end(&mut err)?;
        (out, err)
    };
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for this child only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    ensure!(waited == pid, "waiting for mprotect-trace report");
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "report --vmlinux failed: {}",
        String::from_utf8_lossy(&output.1)
    );
    let report = Report::parse(&output.0, "report --vmlinux's JSON")?;
    // ru_maxrss is in kB on Linux.
    Ok((report, seconds, usage.ru_maxrss as f64 / 1024.0))
}

/// `llvm-addr2line -a -f -i` on `addresses` (link-time): per address,
/// the function names innermost first and the innermost line.
fn addr2line(vmlinux: &Path, addresses: &[u64]) -> Result<BTreeMap<u64, (Vec<String>, String)>> {
    let output = Command::new("llvm-addr2line")
        .args(["-a", "-f", "-i", "-e"])
        .arg(vmlinux)
        .args(addresses.iter().map(|a| format!("{a:#x}")))
        .output()
        .context("running llvm-addr2line (Debian package llvm; cargo xtask setup installs it)")?;
    ensure!(output.status.success(), "llvm-addr2line failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut found = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(header) = lines.next() {
        let address = u64::from_str_radix(header.trim_start_matches("0x"), 16)
            .with_context(|| format!("addr2line printed {header:?} for an address"))?;
        let mut names = Vec::new();
        let mut innermost = None;
        while let Some(next) = lines.peek() {
            if next.starts_with("0x") {
                break;
            }
            let name = lines.next().unwrap_or_default().to_owned();
            let line = lines.next().unwrap_or_default();
            // GCC's discriminators are not part of the line.
            let line = line.split(" (discriminator").next().unwrap_or(line).to_owned();
            innermost.get_or_insert(line);
            names.push(name);
        }
        found.insert(address, (names, innermost.unwrap_or_default()));
    }
    Ok(found)
}

/// The kernel's inline sites, written on the host from its debug vmlinux
/// by `mprotect-trace inline-sites` (the guest has no room for the
/// vmlinux); returns the file.
pub fn inline_sites(image: &KernelImage, cache: &Path, work: &Path) -> Result<std::path::PathBuf> {
    let vmlinux = kernel::debian_debug_vmlinux(image, cache)?;
    let path = work.join("inline-sites.json");
    let output = Command::new(release_binary()?)
        .args(["inline-sites", "--vmlinux"])
        .arg(&vmlinux)
        .arg("-o")
        .arg(&path)
        .output()
        .context("running mprotect-trace inline-sites")?;
    ensure!(
        output.status.success(),
        "inline-sites --vmlinux {} failed: {}",
        vmlinux.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "vm-test: inline sites from {}:\n{}",
        vmlinux.display(),
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(path)
}

/// Kernels whose runs sample with function probes attached (ppc64le):
/// the runs in `report_dirs` symbolized with the debug vmlinux have
/// stacks where `frame` holds `inlined` in its inline chain. Returns the
/// summary line.
pub fn check_inline_chains(
    image: &KernelImage,
    cache: &Path,
    report_dirs: &[std::path::PathBuf],
    frame: &str,
    inlined: &str,
) -> Result<String> {
    let vmlinux = kernel::debian_debug_vmlinux(image, cache)?;
    let mut holding = 0;
    let mut in_syscall = 0;
    let mut seconds = 0.0;
    for dir in report_dirs {
        let (report, took, _) = symbolized(&vmlinux, dir)?;
        seconds += took;
        let profile = report.sampling.as_ref().context("a run has no samples")?;
        ensure!(
            profile.debug_info.is_some(),
            "the report of {} does not say it used the vmlinux",
            dir.display()
        );
        in_syscall += profile.in_syscall_samples;
        holding += profile
            .stacks
            .iter()
            .filter(|stack| {
                stack
                    .kernel
                    .iter()
                    .zip(&stack.kernel_inlined)
                    .any(|(name, chain)| name == frame && chain.iter().any(|f| f == inlined))
            })
            .map(|stack| stack.count)
            .sum::<u64>();
    }
    ensure!(
        holding > 0,
        "no symbolized stack has {inlined} inlined in {frame} ({in_syscall} samples inside mprotect in all runs)"
    );
    Ok(format!(
        "  debug info: {holding} sampled stacks are in {inlined}, inlined in {frame} ({in_syscall} samples inside mprotect in the measured iterations), by {} ({:.2} s to symbolize {} runs)\n",
        vmlinux.display(),
        seconds,
        report_dirs.len()
    ))
}

/// Returns the summary line.
pub fn check(image: &KernelImage, cache: &Path, report_dir: &Path) -> Result<String> {
    let started = Instant::now();
    let vmlinux = kernel::debian_debug_vmlinux(image, cache)?;
    let fetched = started.elapsed().as_secs_f64();
    let size_mb = std::fs::metadata(&vmlinux)?.len() as f64 / 1e6;
    let (report, seconds, rss_mb) = symbolized(&vmlinux, report_dir)?;
    let profile = report.sampling.as_ref().context("the debug-info run has no samples")?;
    ensure!(
        profile.debug_info.is_some(),
        "the report does not say it used the vmlinux"
    );

    // modify_prot_start_ptes: a share of its own, reached by its chain.
    let inlined = profile
        .functions
        .iter()
        .find(|f| f.name == "modify_prot_start_ptes (inlined)")
        .context("no sampled share for modify_prot_start_ptes (inlined)")?;
    ensure!(inlined.total_samples > 0, "modify_prot_start_ptes has no samples");
    let with_chain = profile.stacks.iter().any(|stack| {
        stack
            .kernel
            .iter()
            .zip(&stack.kernel_inlined)
            .any(|(frame, chain)| frame == "change_pte_range" && chain.windows(2).any(|pair| pair == CHAIN))
    });
    ensure!(with_chain, "no stack has change_pte_range > {}", CHAIN.join(" > "));

    // Every symbolized frame against addr2line -i, address by address.
    let offset = report
        .kernel_identity
        .as_ref()
        .and_then(|k| k.kaslr_offset)
        .context("the guest recorded no KASLR offset")?;
    let mut ours: BTreeMap<u64, (Vec<String>, Option<String>)> = BTreeMap::new();
    for stack in &profile.stacks {
        for index in 0..stack.kernel_addresses.len() {
            let Some(chain) = stack.kernel_inlined.get(index) else {
                continue;
            };
            if stack.kernel_offsets.get(index).is_none_or(Option::is_none) {
                continue;
            }
            // The address the tool looked up (a caller's is its call).
            let lookup = debuginfo::lookup_address(stack, index);
            let mut names: Vec<String> = chain.iter().rev().cloned().collect();
            names.push(stack.kernel[index].clone());
            ours.insert(lookup - offset, (names, stack.kernel_lines[index].clone()));
        }
    }
    ensure!(!ours.is_empty(), "no symbolized kernel frame");
    let theirs = addr2line(&vmlinux, &ours.keys().copied().collect::<Vec<_>>())?;
    let mut chains = 0;
    for (address, (names, line)) in &ours {
        let (their_names, their_line) = theirs
            .get(address)
            .with_context(|| format!("addr2line skipped {address:#x}"))?;
        ensure!(
            names == their_names,
            "{address:#x}: the tool says {names:?}, llvm-addr2line -i {their_names:?}"
        );
        ensure!(
            line.as_deref() == Some(their_line.as_str()),
            "{address:#x}: the tool says line {line:?}, llvm-addr2line {their_line}"
        );
        chains += usize::from(names.len() > 1);
    }
    let top_spot = profile
        .hot_spots
        .first()
        .map(|spot| format!("{} at {}", spot.label(), spot.line.as_deref().unwrap_or("?")))
        .unwrap_or_default();
    Ok(format!(
        "  debug info: {} ({size_mb:.0} MB, fetched or found in {fetched:.0} s): modify_prot_start_ptes (inlined) {} samples ({:.1} % total), reached by change_pte_range > {}; {} addresses ({chains} with inline chains) agree with llvm-addr2line -i, names and lines; hottest: {top_spot}\n  symbolizing the run with it took {seconds:.2} s and {rss_mb:.0} MB peak RSS",
        vmlinux.display(),
        inlined.total_samples,
        inlined.total_share * 100.0,
        CHAIN.join(" > "),
        ours.len(),
    ))
}
