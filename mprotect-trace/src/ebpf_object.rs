//! The eBPF object built by `build.rs`, embedded in the binary.

use anyhow::{Context as _, Result};
use aya::{Ebpf, EbpfLoader};
use mprotect_trace_common::maps;

/// The object's bytes, aligned as aya's ELF parser requires.
pub static BYTES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mprotect-trace"));

/// Loads the embedded object: parses it and creates its maps in the kernel.
/// Programs are loaded one by one later, by whoever attaches them.
pub fn load() -> Result<Ebpf> {
    load_sized(mprotect_trace_common::STACK_MAP_ENTRIES, false)
}

/// Loads the object with the stack and sample-count maps sized for
/// `max_stacks` entries each, and the split maps for `split` (else one
/// entry each: they are megabytes a CPU).
pub fn load_sized(max_stacks: u32, split: bool) -> Result<Ebpf> {
    let split_entries = |full: u32| if split { full } else { 1 };
    use mprotect_trace_common::{NR_PTES_BUCKETS, SPLIT_SLOTS, histogram};
    if BYTES.is_empty() {
        anyhow::bail!(
            "this binary was built without its eBPF object (the `ebpf` feature was off): rebuild with `cargo build`"
        );
    }
    EbpfLoader::new()
        // The programs use no CO-RE relocation: parsing the kernel's BTF
        // for them would only cost time (fentry loads bring their own).
        .btf(None)
        .map_max_entries(maps::STACKS, max_stacks)
        .map_max_entries(maps::SAMPLE_COUNTS, max_stacks)
        .map_max_entries(maps::SPLIT_CALLS, split_entries(SPLIT_SLOTS))
        .map_max_entries(maps::SPLIT_LATENCY_STATS, split_entries(SPLIT_SLOTS))
        .map_max_entries(
            maps::SPLIT_LATENCY_HIST,
            split_entries(SPLIT_SLOTS * histogram::BUCKETS),
        )
        .map_max_entries(maps::SPLIT_NR_PTES_HIST, split_entries(SPLIT_SLOTS * NR_PTES_BUCKETS))
        .load(BYTES)
        .context("loading the embedded eBPF object into the kernel")
}

/// The program `name` of the embedded object, as program type `T`.
pub fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program {name}"))?;
    program.try_into().map_err(|e: aya::programs::ProgramError| {
        anyhow::anyhow!("{name}: {}", crate::kernel::capabilities::error_chain(&e))
    })
}

#[cfg(test)]
mod tests {
    use aya::maps::{Array, PerCpuArray};
    use aya::programs::TracePoint;
    use mprotect_trace_common::{CONFIG_INDEX, PROT_BUCKETS, SYSCALL_SLOT, Stats, TraceConfig, histogram, programs};

    use super::*;
    use crate::kernel::mounts::{self, Mount};

    /// Forks a child that blocks on a pipe, then makes exactly `calls`
    /// mprotect() calls and exits. Returns (pid, write end of the pipe).
    fn fork_mprotect_child(calls: usize) -> (libc::pid_t, libc::c_int) {
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // Child: only async-signal-safe calls until _exit.
            let mut byte = 0u8;
            unsafe { libc::read(fds[0], (&raw mut byte).cast(), 1) };
            for i in 0..calls {
                let prot = if i % 2 == 0 {
                    libc::PROT_READ | libc::PROT_WRITE
                } else {
                    libc::PROT_READ
                };
                unsafe { libc::mprotect(page, 4096, prot) };
            }
            unsafe { libc::_exit(0) };
        }
        unsafe { libc::close(fds[0]) };
        (pid, fds[1])
    }

    #[test]
    fn embedded_object_loads_and_counts_exactly_the_traced_tasks_mprotect_calls() {
        const CALLS: usize = 37;
        mounts::ensure(Mount::Tracefs).unwrap();
        let mut ebpf = load().unwrap();
        // Every name user space uses is in the object, and nothing else is.
        let mut names: Vec<&str> = ebpf.programs().map(|(name, _)| name).collect();
        let mut expected: Vec<&str> = [
            programs::SYS_ENTER_MPROTECT,
            programs::SYS_EXIT_MPROTECT,
            programs::SYS_ENTER_MPROTECT_EMPTY,
            programs::SYS_EXIT_MPROTECT_EMPTY,
            programs::SAMPLE_STACK,
            programs::FENTRY_CAPABILITY_CHECK,
            programs::KPROBE_CAPABILITY_CHECK,
            programs::SAMPLER_CAPABILITY_CHECK,
            programs::INLINE_INSTANCE,
        ]
        .into_iter()
        .chain(programs::FENTRY_SLOTS)
        .chain(programs::FEXIT_SLOTS)
        .chain(programs::KPROBE_SLOTS)
        .chain(programs::KRETPROBE_SLOTS)
        .chain(programs::CALL_SITE_SLOTS)
        .chain(programs::TRACEPOINT_SLOTS)
        .collect();
        names.sort_unstable();
        expected.sort_unstable();
        assert_eq!(names, expected);
        // Sections the compiler made (.rodata.*) are maps too; they are not ours to name.
        let mut map_names: Vec<&str> = ebpf
            .maps()
            .map(|(name, _)| name)
            .filter(|name| !name.starts_with('.'))
            .collect();
        let mut expected_maps = vec![
            maps::CONFIG,
            maps::SLOT_CONFIG,
            maps::ENTRY_TIMES,
            maps::COUNTERS,
            maps::LATENCY_STATS,
            maps::LATENCY_HIST,
            maps::PAGES_STATS,
            maps::PAGES_HIST,
            maps::NR_PTES_HIST,
            maps::CALLS,
            maps::PROT_FLAGS,
            maps::FAILED_CALLS,
            maps::STACKS,
            maps::SAMPLE_COUNTS,
            maps::PROCESS_NAMES,
            maps::TRACEPOINT_CONFIG,
            maps::TRACEPOINT_CALLS,
            maps::TRACEPOINT_VALUES,
            maps::INLINE_SITES,
            maps::INLINE_CALLS,
            maps::SPLIT_CALLS,
            maps::SPLIT_LATENCY_STATS,
            maps::SPLIT_LATENCY_HIST,
            maps::SPLIT_NR_PTES_HIST,
        ];
        map_names.sort_unstable();
        expected_maps.sort_unstable();
        assert_eq!(map_names, expected_maps);
        let (pid, go) = fork_mprotect_child(CALLS);
        let mut config: Array<_, TraceConfig> = Array::try_from(ebpf.map_mut(maps::CONFIG).unwrap()).unwrap();
        config
            .set(
                CONFIG_INDEX,
                TraceConfig {
                    target_tgid: pid as u32,
                    ..TraceConfig::default()
                },
                0,
            )
            .unwrap();
        for name in [programs::SYS_ENTER_MPROTECT, programs::SYS_EXIT_MPROTECT] {
            let program: &mut TracePoint = ebpf.program_mut(name).unwrap().try_into().unwrap();
            program.load().unwrap();
            program.attach("syscalls", name).unwrap();
        }
        unsafe { libc::write(go, [1u8].as_ptr().cast(), 1) };
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let sum = |map: &str, index: u32| -> u64 {
            let map: PerCpuArray<_, u64> = PerCpuArray::try_from(ebpf.map(map).unwrap()).unwrap();
            map.get(&index, 0).unwrap().iter().sum()
        };
        let counters = crate::collect::maps::read(&ebpf).unwrap().counters;
        assert_eq!(counters.syscall_enter, CALLS as u64);
        assert_eq!(counters.syscall_exit, CALLS as u64);
        assert_eq!(counters.exit_without_entry, 0);
        assert_eq!(counters.entry_overwritten, 0);
        let latency_buckets: u64 = (0..histogram::BUCKETS)
            .map(|bucket| sum("LATENCY_HIST", SYSCALL_SLOT * histogram::BUCKETS + bucket))
            .sum();
        assert_eq!(latency_buckets, CALLS as u64);
        // Every call covered one page, alternating RW and R.
        assert_eq!(
            sum("PAGES_HIST", SYSCALL_SLOT * histogram::BUCKETS + histogram::bucket(1)),
            CALLS as u64
        );
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u32;
        assert!(rw < PROT_BUCKETS);
        assert_eq!(sum("PROT_FLAGS", rw), CALLS.div_ceil(2) as u64);
        assert_eq!(sum("PROT_FLAGS", libc::PROT_READ as u32), (CALLS / 2) as u64);
        let stats: PerCpuArray<_, Stats> = PerCpuArray::try_from(ebpf.map("LATENCY_STATS").unwrap()).unwrap();
        let count: u64 = stats.get(&SYSCALL_SLOT, 0).unwrap().iter().map(|s| s.count).sum();
        assert_eq!(count, CALLS as u64);
    }
}
