//! The machine a run happened on, as a fleet of them needs it told apart:
//! the CPU (vendor, family, model, stepping, microcode, cores, threads),
//! memory, NUMA nodes, the kernel's mitigations, THP settings and page
//! size. Read from /proc and /sys; what cannot be read stays absent.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::Machine;

const VULNERABILITIES: &str = "/sys/devices/system/cpu/vulnerabilities";
const THP: &str = "/sys/kernel/mm/transparent_hugepage";

/// The value of `key` in the first processor block of /proc/cpuinfo.
fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim().to_owned())
    })
}

/// Logical CPUs (`processor` entries) and physical cores (distinct
/// `physical id`/`core id` pairs; without them, as many as threads).
fn cores_and_threads(cpuinfo: &str) -> (Option<usize>, Option<usize>) {
    let mut threads = 0;
    let mut cores = std::collections::BTreeSet::new();
    let (mut package, mut core) = (None, None);
    for line in cpuinfo.lines().chain(std::iter::once("")) {
        match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("processor", _)) => threads += 1,
            Some(("physical id", v)) => package = Some(v.to_owned()),
            Some(("core id", v)) => core = Some(v.to_owned()),
            _ if line.trim().is_empty() => {
                if let (Some(p), Some(c)) = (package.take(), core.take()) {
                    cores.insert((p, c));
                }
            }
            _ => {}
        }
    }
    let threads = (threads > 0).then_some(threads);
    let cores = if cores.is_empty() { threads } else { Some(cores.len()) };
    (cores, threads)
}

/// The CPU's identity from /proc/cpuinfo text: x86's `vendor_id`, `cpu
/// family`, `model`, `stepping`, `microcode`; arm64's `CPU implementer`,
/// `CPU architecture`, `CPU part`, `CPU variant`/`CPU revision`; ppc64's
/// `revision` (the processor version register).
pub fn from_cpuinfo(cpuinfo: &str) -> Machine {
    let field = |keys: &[&str]| keys.iter().find_map(|key| cpuinfo_field(cpuinfo, key));
    let (cores, threads) = cores_and_threads(cpuinfo);
    Machine {
        cpu_vendor: field(&["vendor_id", "CPU implementer", "vendor"]),
        cpu_family: field(&["cpu family", "CPU architecture"]),
        cpu_model_number: field(&["model", "CPU part"]),
        cpu_stepping: field(&["stepping", "CPU revision", "revision"]),
        microcode: field(&["microcode"]),
        cores,
        threads,
        ..Machine::default()
    }
}

/// `MemTotal` of /proc/meminfo, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// How many nodes a sysfs list such as "0-1,4" names.
pub fn list_count(list: &str) -> Option<usize> {
    list.trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((first, last)) => Some(last.parse::<usize>().ok()? + 1 - first.parse::<usize>().ok()?),
            None => part.parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

/// The chosen value of a sysfs choice file: "always [madvise] never" is "madvise".
pub fn chosen(text: &str) -> String {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .map_or_else(|| text.trim().to_owned(), str::to_owned)
}

/// Every file of `dir` by name, its (chosen) value: the kernel's
/// vulnerabilities and mitigations, or the THP knobs.
fn files(dir: &Path, value: impl Fn(&str) -> String) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.path()).ok()?;
            Some((entry.file_name().to_string_lossy().into_owned(), value(&text)))
        })
        .collect()
}

/// THP: the global knobs and each size's `enabled` (mTHP), e.g.
/// `hugepages-64kB/enabled`.
fn thp() -> BTreeMap<String, String> {
    let mut settings: BTreeMap<String, String> = ["enabled", "defrag", "shmem_enabled", "khugepaged/defrag"]
        .iter()
        .filter_map(|name| {
            Some((
                name.to_string(),
                chosen(&std::fs::read_to_string(Path::new(THP).join(name)).ok()?),
            ))
        })
        .collect();
    if let Ok(sizes) = std::fs::read_dir(THP) {
        for size in sizes.filter_map(|entry| entry.ok()) {
            let name = size.file_name().to_string_lossy().into_owned();
            if !name.starts_with("hugepages-") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(size.path().join("enabled")) {
                settings.insert(format!("{name}/enabled"), chosen(&text));
            }
        }
    }
    settings
}

/// The running kernel's base page size: 4 kB on x86-64, 4, 16 or 64 kB on
/// arm64, 64 kB on most ppc64le.
pub fn page_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf reads a constant of the system.
    *SIZE.get_or_init(|| usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096))
}

/// The running machine.
pub fn running() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        memory_kib: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total_kib(&text)),
        numa_nodes: std::fs::read_to_string("/sys/devices/system/node/online")
            .ok()
            .and_then(|text| list_count(&text)),
        page_size: Some(page_size() as u64),
        vulnerabilities: files(Path::new(VULNERABILITIES), |text| text.trim().to_owned()),
        thp: thp(),
        ..from_cpuinfo(&cpuinfo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two processors of one core (hyper-threads) and one of another, as
    /// an x86-64 /proc/cpuinfo has them (fields cut).
    const X86: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 106\n\
        model name\t: Intel(R) Xeon(R) Gold 6330 CPU @ 2.00GHz\nstepping\t: 6\nmicrocode\t: 0xd0003a5\n\
        physical id\t: 0\ncore id\t\t: 0\n\n\
        processor\t: 1\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: 0\n\n\
        processor\t: 2\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: 1\n\n";

    #[test]
    fn reads_the_cpu_of_x86_cpuinfo() {
        let machine = from_cpuinfo(X86);
        assert_eq!(machine.cpu_vendor.as_deref(), Some("GenuineIntel"));
        assert_eq!(machine.cpu_family.as_deref(), Some("6"));
        assert_eq!(machine.cpu_model_number.as_deref(), Some("106"));
        assert_eq!(machine.cpu_stepping.as_deref(), Some("6"));
        assert_eq!(machine.microcode.as_deref(), Some("0xd0003a5"));
        assert_eq!((machine.cores, machine.threads), (Some(2), Some(3)));
    }

    #[test]
    fn reads_the_cpu_of_arm64_cpuinfo() {
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\n\
            CPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\nprocessor\t: 1\nCPU implementer\t: 0x41\n\n";
        let machine = from_cpuinfo(arm);
        assert_eq!(machine.cpu_vendor.as_deref(), Some("0x41"));
        assert_eq!(machine.cpu_family.as_deref(), Some("8"));
        assert_eq!(machine.cpu_model_number.as_deref(), Some("0xd0c"));
        assert_eq!(machine.microcode, None);
        // No core ids: each processor counts as a core.
        assert_eq!((machine.cores, machine.threads), (Some(2), Some(2)));
    }

    #[test]
    fn reads_memory_nodes_and_choices() {
        assert_eq!(
            mem_total_kib("MemTotal:       24570040 kB\nMemFree: 1 kB\n"),
            Some(24_570_040)
        );
        assert_eq!(list_count("0\n"), Some(1));
        assert_eq!(list_count("0-3,6"), Some(5));
        assert_eq!(chosen("always [madvise] never\n"), "madvise");
        assert_eq!(chosen("4096\n"), "4096");
    }
}
