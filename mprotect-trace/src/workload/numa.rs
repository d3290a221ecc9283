//! The NUMA-hinting scenario's machine: its nodes and CPUs, where the
//! memory is placed, the balancing knobs, and the kernel's own counters of
//! what the scans did. NUMA balancing scans a task's memory from
//! `task_numa_work` -> `change_prot_numa` -> `change_protection(...,
//! MM_CP_PROT_NUMA)`, on the task's return to user space, once it has run
//! `scan_delay_ms`, then every scan period, of CPU time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use indicatif::ProgressBar;

use super::mapping::Mapping;
use super::mthp::Knobs;
use super::{Audit, Dither, Plan, ThreadOutcome, folio_audit, iterate, nanos, pin_to_cpu, smaps};
use crate::model::NumaHinting;

const FLAG: &str = "--scenario numa-hinting";
const NODES: &str = "/sys/devices/system/node";
const BALANCING: &str = "/proc/sys/kernel/numa_balancing";
const DEBUGFS: &str = "/sys/kernel/debug";
const SCAN_KNOBS: &str = "/sys/kernel/debug/sched/numa_balancing";
/// Scan soon and often: 10 ms of CPU time before the first scan, then
/// every 100 ms (the floor the default 256 MB scan size allows).
const SCAN_SETTINGS: [(&str, &str); 3] = [
    ("scan_delay_ms", "10"),
    ("scan_period_min_ms", "100"),
    ("scan_period_max_ms", "100"),
];
/// Scan passes the round waits for after its iterations: the first scan
/// comes only after the task's first second of CPU time (the scan period
/// it was forked with, before the knobs were set), which the iterations
/// alone may not reach.
const MIN_PASSES: u64 = 2;
/// CPU seconds the round writes on at most, waiting for them.
const WAIT_CPU_S: f64 = 30.0;
/// Passes over the mapping between two reads of the scan count.
const WRITES_PER_CHECK: u64 = 16;

/// mbind(2)'s mode and flag: memory only on the nodes given, and scanned
/// by NUMA balancing all the same (a plain bind is never scanned).
const MPOL_BIND: libc::c_ulong = 2;
const MPOL_F_NUMA_BALANCING: libc::c_ulong = 1 << 13;

/// The node a task runs on and the node its memory is placed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub cpu: usize,
    pub cpu_node: u32,
    pub memory_node: u32,
}

/// Parses a kernel CPU or node list: "0-3,8".
fn parse_list(text: &str) -> Vec<u32> {
    text.trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) => (a..=b).collect(),
                _ => Vec::new(),
            },
            None => part.parse().into_iter().collect(),
        })
        .collect()
}

/// Each online node and its CPUs.
fn nodes() -> Result<Vec<(u32, Vec<u32>)>> {
    let online = std::fs::read_to_string(Path::new(NODES).join("online")).unwrap_or_else(|_| "0".to_owned());
    parse_list(&online)
        .into_iter()
        .map(|node| {
            let path = Path::new(NODES).join(format!("node{node}/cpulist"));
            let cpus = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok((node, parse_list(&cpus)))
        })
        .collect()
}

/// Refuses, in one line, a machine where the scans cannot happen.
pub fn check_machine() -> Result<()> {
    let nodes = nodes().map(|nodes| nodes.len()).unwrap_or(1);
    match refusal(nodes, Path::new(BALANCING).exists()) {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    }
}

/// Why a machine with `nodes` NUMA nodes, and NUMA balancing or not,
/// cannot run the scenario.
fn refusal(nodes: usize, balancing: bool) -> Option<String> {
    if nodes < 2 {
        return Some(format!(
            "--scenario numa-hinting needs two NUMA nodes and this machine has {nodes}: run it in a guest with `mprotect-trace lab --numa-nodes 2`"
        ));
    }
    (!balancing).then(|| {
        format!(
            "--scenario numa-hinting needs NUMA balancing in the kernel (CONFIG_NUMA_BALANCING): {BALANCING} is missing"
        )
    })
}

/// Where the workload runs (`cpu`, else the first CPU of the first node
/// with one) and where its memory goes: another node, or with `local`
/// (large folios: their batches are skipped only when local) the same.
pub fn placement(cpu: Option<usize>, local: bool) -> Result<Placement> {
    let nodes = nodes()?;
    let (cpu_node, cpu) = match cpu {
        Some(cpu) => nodes
            .iter()
            .find(|(_, cpus)| cpus.contains(&(cpu as u32)))
            .map(|(node, _)| (*node, cpu))
            .with_context(|| format!("--cpu {cpu} is on no online node"))?,
        None => nodes
            .iter()
            .find_map(|(node, cpus)| cpus.first().map(|cpu| (*node, *cpu as usize)))
            .context("no NUMA node has a CPU")?,
    };
    let memory_node = if local {
        cpu_node
    } else {
        nodes
            .iter()
            .map(|(node, _)| *node)
            .find(|node| *node != cpu_node)
            .context("no second NUMA node for the memory")?
    };
    Ok(Placement {
        cpu,
        cpu_node,
        memory_node,
    })
}

/// Moves every page of this process to `node` (what it touched before it
/// was pinned may be on another): with the memory local, the scans skip
/// the whole process, so what they skip is all this workload's.
fn migrate_all_to(node: u32) -> Result<()> {
    let nodes = nodes()?;
    let from: libc::c_ulong = nodes.iter().fold(0, |mask, (n, _)| mask | (1 << n));
    let to: libc::c_ulong = 1 << node;
    let bits = libc::c_ulong::BITS as libc::c_ulong + 1;
    // SAFETY: two one-word node masks; pid 0 is this process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_migrate_pages,
            0,
            bits,
            &from as *const libc::c_ulong,
            &to as *const libc::c_ulong,
        )
    };
    // A positive count is pages that could not move (shared ones): fine.
    if rc < 0 {
        bail!("migrate_pages to node {node}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps this process (the tracer) out of NUMA balancing's scans: a task
/// policy without MPOL_F_MOF makes every one of its mappings unsuitable
/// to scan, so the kernel's counters count only the workload's scans. Its
/// threads and the workload it starts inherit it; the workload's mapping
/// has a policy of its own that is scanned.
pub fn keep_out_of_scans() -> Result<()> {
    const MPOL_LOCAL: libc::c_ulong = 4;
    // SAFETY: no node mask for MPOL_LOCAL.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_LOCAL,
            std::ptr::null::<libc::c_ulong>(),
            0,
        )
    };
    if rc != 0 {
        bail!("set_mempolicy(MPOL_LOCAL): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Binds `len` bytes at `start` to `node` before they are faulted in.
pub fn bind(start: usize, len: usize, node: u32) -> Result<()> {
    let mask: libc::c_ulong = 1 << node;
    // maxnode counts the mask's bits, plus one (the kernel takes one off).
    let bits = libc::c_ulong::BITS as libc::c_ulong + 1;
    // SAFETY: mbind reads one word of mask; the range is our own mapping.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            start as *mut libc::c_void,
            len,
            MPOL_BIND | MPOL_F_NUMA_BALANCING,
            &mask as *const libc::c_ulong,
            bits,
            0 as libc::c_uint,
        )
    };
    if rc != 0 {
        bail!(
            "mbind of the mapping to node {node}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// This process's completed scan passes (`mm->numa_scan_seq` in
/// /proc/self/sched; 0 without NUMA balancing).
fn scan_passes() -> u64 {
    std::fs::read_to_string("/proc/self/sched")
        .unwrap_or_default()
        .lines()
        .find(|line| line.trim_start().starts_with("mm->numa_scan_seq"))
        .and_then(|line| line.rsplit(':').next()?.trim().parse().ok())
        .unwrap_or(0)
}

/// The kernel's counters of NUMA balancing (/proc/vmstat, every task's)
/// and this process's completed scan passes (/proc/self/sched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub pte_updates: u64,
    pub hint_faults: u64,
    pub hint_faults_local: u64,
    pub pages_migrated: u64,
    pub scan_passes: u64,
}

impl Counters {
    pub fn read() -> Result<Self> {
        let vmstat = std::fs::read_to_string("/proc/vmstat").context("reading /proc/vmstat")?;
        let value = |key: &str| {
            vmstat
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Self {
            pte_updates: value("numa_pte_updates"),
            hint_faults: value("numa_hint_faults"),
            hint_faults_local: value("numa_hint_faults_local"),
            pages_migrated: value("numa_pages_migrated"),
            scan_passes: scan_passes(),
        })
    }

    /// What happened between `self` and a later reading.
    pub fn since(self, before: Self) -> Self {
        Self {
            pte_updates: self.pte_updates.saturating_sub(before.pte_updates),
            hint_faults: self.hint_faults.saturating_sub(before.hint_faults),
            hint_faults_local: self.hint_faults_local.saturating_sub(before.hint_faults_local),
            pages_migrated: self.pages_migrated.saturating_sub(before.pages_migrated),
            scan_passes: self.scan_passes.saturating_sub(before.scan_passes),
        }
    }
}

/// Turns NUMA balancing on and makes it scan soon and often, into
/// `knobs` (put back when they are). debugfs is mounted for its knobs
/// when it is not.
pub fn set_knobs(knobs: &Knobs) -> Result<()> {
    let balancing = std::fs::read_to_string(BALANCING).with_context(|| format!("reading {BALANCING}"))?;
    // Bit 0 is normal balancing (bit 1, memory tiering, alone scans nothing here).
    let mode: u32 = balancing.trim().parse().unwrap_or(0);
    if mode & 1 == 0 {
        knobs.write(
            FLAG,
            PathBuf::from(BALANCING),
            balancing.trim(),
            &(mode | 1).to_string(),
        )?;
    }
    if !Path::new(SCAN_KNOBS).exists() {
        knobs.mount_debugfs(Path::new(DEBUGFS))?;
    }
    for (name, value) in SCAN_SETTINGS {
        let path = Path::new(SCAN_KNOBS).join(name);
        let before = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (the NUMA scan knobs are in debugfs)", path.display()))?;
        if before.trim() != value {
            knobs.write(FLAG, path, before.trim(), value)?;
        }
    }
    Ok(())
}

/// Stops new scans (balancing off: the knobs put the setting back later),
/// and lets a scan already queued for this task run: queued work runs on
/// the way back from a system call.
fn stop_scans() -> Result<()> {
    std::fs::write(BALANCING, "0").with_context(|| format!("turning NUMA balancing off in {BALANCING}"))?;
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() };
    Ok(())
}

/// One round: the mapping placed on its node and written, this thread
/// moved to its CPU, then `warmup + iterations` passes writing every page
/// (timed as post_touch), and more unmeasured ones until NUMA balancing
/// has scanned it twice; the kernel's counters are read around the round,
/// after the scans have stopped.
pub(super) fn round(plan: &Plan, outcome: &mut ThreadOutcome, progress: Option<&ProgressBar>) -> Result<()> {
    // Large folios are skipped in whole batches only when local.
    let placement = placement(plan.cpu, plan.folio_kb.is_some())?;
    let before = Counters::read()?;
    let mapping = Mapping::create(plan)?;
    let len = plan.mapping_bytes;
    if plan.folio_kb.is_none() {
        // Base pages: THP would map the range by PMD, and its scans would
        // not reach change_pte_range.
        // SAFETY: advising our own mapping.
        if unsafe { libc::madvise(mapping.start() as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE) } != 0 {
            bail!("madvise(MADV_NOHUGEPAGE): {}", std::io::Error::last_os_error());
        }
    }
    bind(mapping.start(), len, placement.memory_node)?;
    mapping.write_each_page(1);
    pin_to_cpu(placement.cpu)?;
    if placement.memory_node == placement.cpu_node {
        migrate_all_to(placement.cpu_node)?;
    }
    let smaps_before = smaps::read_own(mapping.start())?;
    let folios_before = folio_audit(plan, &mapping)?;
    let mut dither = Dither::new(plan.dither_us);
    iterate(plan, progress, |iteration| {
        let start = Instant::now();
        mapping.write_each_page(iteration as u8);
        let touched = Instant::now();
        dither.spin();
        outcome.iterations += 1;
        if iteration >= plan.warmup {
            outcome.samples.protect.push(0);
            outcome.samples.restore.push(0);
            outcome.samples.post_touch.push(nanos(touched - start));
        }
        Ok(())
    })?;
    // Unmeasured writes until the scans have passed over it MIN_PASSES times.
    let waited = super::process_cpu_time();
    while scan_passes() < before.scan_passes + MIN_PASSES
        && super::process_cpu_time() - waited < WAIT_CPU_S
        && !super::stop_requested()
    {
        for _ in 0..WRITES_PER_CHECK {
            mapping.write_each_page(outcome.iterations as u8);
            outcome.iterations += 1;
        }
    }
    stop_scans()?;
    let counted = Counters::read()?.since(before);
    outcome.audits.push(Audit {
        before: smaps_before,
        after: smaps::read_own(mapping.start())?,
        folios_before,
        folios_after: folio_audit(plan, &mapping)?,
    });
    outcome.numa = Some(NumaHinting {
        cpu: placement.cpu as u64,
        cpu_node: placement.cpu_node,
        memory_node: placement.memory_node,
        scan_passes: counted.scan_passes,
        pte_updates: counted.pte_updates,
        hint_faults: counted.hint_faults,
        hint_faults_local: counted.hint_faults_local,
        pages_migrated: counted.pages_migrated,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Counters, parse_list, refusal};

    #[test]
    fn machines_that_cannot_scan_are_refused_in_one_line() {
        assert_eq!(
            refusal(1, true).as_deref(),
            Some(
                "--scenario numa-hinting needs two NUMA nodes and this machine has 1: run it in a guest with `mprotect-trace lab --numa-nodes 2`"
            )
        );
        assert_eq!(
            refusal(2, false).as_deref(),
            Some(
                "--scenario numa-hinting needs NUMA balancing in the kernel (CONFIG_NUMA_BALANCING): /proc/sys/kernel/numa_balancing is missing"
            )
        );
        assert_eq!(refusal(2, true), None);
    }

    #[test]
    fn cpu_and_node_lists() {
        assert_eq!(parse_list("0-3,8\n"), [0, 1, 2, 3, 8]);
        assert_eq!(parse_list("1"), [1]);
        assert_eq!(parse_list("\n"), Vec::<u32>::new());
    }

    #[test]
    fn counters_are_differences() {
        let before = Counters {
            pte_updates: 10,
            hint_faults: 5,
            hint_faults_local: 1,
            pages_migrated: 0,
            scan_passes: 2,
        };
        let after = Counters {
            pte_updates: 110,
            hint_faults: 55,
            hint_faults_local: 1,
            pages_migrated: 3,
            scan_passes: 4,
        };
        assert_eq!(
            after.since(before),
            Counters {
                pte_updates: 100,
                hint_faults: 50,
                hint_faults_local: 0,
                pages_migrated: 3,
                scan_passes: 2,
            }
        );
    }
}
