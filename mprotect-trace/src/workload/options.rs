//! The workload's options (shared by `workload` and `run`) and
//! their validation into a [`Plan`] that cannot describe an impossible run.

use anyhow::{Context as _, Result, bail};

use super::mapping::page_size;
use super::scenario::Scenario;

/// The workload's options, as plain data (the CLI fills them in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadOptions {
    pub scenario: Scenario,
    /// `None`: the scenario's default (64 MiB; 4 for region-toggle and for
    /// each region of mprot-tw4m).
    pub mapping_mb: Option<u64>,
    pub iterations: u64,
    pub warmup: u64,
    pub rounds: u64,
    pub cpu: Option<usize>,
    pub threads: u64,
    /// Write (or read) each page after each toggle.
    pub touch: bool,
    /// Back the mapping with multi-size THP folios of this size (kB).
    pub folio_kb: Option<u64>,
    /// After each iteration, spin a random time below this many µs (0: none).
    pub dither_us: u64,
    /// mprot-tw4m: regions of `mapping_mb` each batch toggles, one call
    /// each (libMicro's `-B`); ignored by every other scenario.
    pub regions: u64,
}

impl WorkloadOptions {
    /// Every default, once: `Default` and the command line's defaults are this.
    pub const DEFAULT: Self = Self {
        scenario: Scenario::SharedDirtyToggle,
        mapping_mb: None,
        iterations: 200,
        warmup: 5,
        rounds: 1,
        cpu: None,
        threads: 1,
        touch: true,
        folio_kb: None,
        dither_us: 0,
        regions: 10,
    };
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A validated workload.
#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: Scenario,
    pub mapping_mb: u64,
    pub mapping_bytes: usize,
    pub pages: usize,
    pub iterations: u64,
    pub warmup: u64,
    pub rounds: u64,
    pub threads: u64,
    pub cpu: Option<usize>,
    pub touch: bool,
    pub folio_kb: Option<u64>,
    pub dither_us: u64,
    /// Mappings of `mapping_bytes` each thread maps per round, one after
    /// another in one mapping: `--regions` for mprot-tw4m, else 1.
    pub regions: u64,
}

impl WorkloadOptions {
    /// The arguments that make `mprotect-trace workload` run this workload
    /// (without `--json`/`--wait-for-start`, which the caller decides).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--scenario".to_owned(), self.scenario.name().to_owned()];
        if let Some(mb) = self.mapping_mb {
            args.extend(["--mapping-mb".to_owned(), mb.to_string()]);
        }
        for (flag, value) in [
            ("--iterations", self.iterations),
            ("--warmup", self.warmup),
            ("--rounds", self.rounds),
            ("--threads", self.threads),
        ] {
            args.extend([flag.to_owned(), value.to_string()]);
        }
        if let Some(cpu) = self.cpu {
            args.extend(["--cpu".to_owned(), cpu.to_string()]);
        }
        if !self.touch {
            args.push("--no-touch".to_owned());
        }
        if let Some(kb) = self.folio_kb {
            args.extend(["--folio-kb".to_owned(), kb.to_string()]);
        }
        if self.dither_us > 0 {
            args.extend(["--dither-us".to_owned(), self.dither_us.to_string()]);
        }
        if self.regions != Self::DEFAULT.regions {
            args.extend(["--regions".to_owned(), self.regions.to_string()]);
        }
        args
    }

    pub fn plan(&self) -> Result<Plan> {
        let scenario = self.scenario;
        let mapping_mb = self.mapping_mb.unwrap_or(scenario.default_mapping_mb());
        if mapping_mb == 0 {
            bail!("--mapping-mb must be at least 1 (got 0)");
        }
        if scenario.wants_huge_pages() && !mapping_mb.is_multiple_of(2) {
            bail!(
                "--mapping-mb must be a multiple of 2 for thp-toggle (got {mapping_mb}): it maps whole 2 MiB huge pages"
            );
        }
        for (flag, value) in [
            ("--iterations", self.iterations),
            ("--rounds", self.rounds),
            ("--threads", self.threads),
            ("--regions", self.regions),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1 (got 0)");
            }
        }
        let regions = if scenario == Scenario::MprotTw4m {
            self.regions
        } else {
            1
        };
        // Every count of the run (iterations, calls, the progress bar) fits
        // in 64 bits: the calls of an iteration (two for a toggle, one per
        // region for mprot-tw4m), warmup included, every round and thread.
        // Beyond, a count would wrap into a few iterations.
        let calls = (self.iterations.checked_add(self.warmup))
            .and_then(|n| n.checked_mul(self.rounds))
            .and_then(|n| n.checked_mul(self.threads))
            .and_then(|n| n.checked_mul(scenario.calls_per_iteration(regions)));
        if calls.is_none() {
            bail!(
                "--iterations {} and --warmup {} in {} round(s) of {} thread(s) make more mprotect calls than 64 bits count: lower them (--duration ends a long run early)",
                self.iterations,
                self.warmup,
                self.rounds,
                self.threads
            );
        }
        if let (Some(bytes), Some(_)) = (scenario.fixed_bytes(), self.mapping_mb) {
            bail!(
                "--mapping-mb does not apply to {}: it maps exactly {bytes} bytes",
                scenario.name()
            );
        }
        let mapping_bytes = match scenario.fixed_bytes() {
            Some(bytes) => bytes,
            None => usize::try_from(mapping_mb)
                .ok()
                .and_then(|mb| mb.checked_mul(1 << 20))
                .with_context(|| format!("--mapping-mb {mapping_mb} does not fit in this machine's address space"))?,
        };
        let mapping_mb = if scenario.fixed_bytes().is_some() {
            0
        } else {
            mapping_mb
        };
        if (mapping_bytes as u64)
            .checked_mul(regions)
            .is_none_or(|bytes| usize::try_from(bytes).is_err())
        {
            bail!("--mapping-mb {mapping_mb} x --regions {regions} does not fit in this machine's address space");
        }
        let available_mb = mem_available_mb()?;
        let needed_mb = mapping_mb.saturating_mul(regions).saturating_mul(self.threads);
        if regions > 1 && needed_mb > available_mb {
            bail!(
                "--mapping-mb {mapping_mb} x {regions} region(s) x {} thread(s) needs {needed_mb} MiB but MemAvailable is {available_mb} MiB: lower --mapping-mb, --regions or --threads",
                self.threads
            );
        }
        if needed_mb > available_mb {
            bail!(
                "--mapping-mb {mapping_mb} x {} thread(s) needs {needed_mb} MiB but MemAvailable is {available_mb} MiB: lower --mapping-mb or --threads",
                self.threads
            );
        }
        if let Some(cpu) = self.cpu {
            let allowed = allowed_cpus()?;
            if !allowed.contains(&cpu) {
                bail!(
                    "--cpu {cpu} is out of range: this process may run on CPUs {}",
                    format_cpus(&allowed)
                );
            }
        }
        if scenario.wants_huge_pages() {
            check_thp_available()?;
        }
        if let Some(folio_kb) = self.folio_kb {
            if !matches!(
                scenario,
                Scenario::SharedDirtyToggle | Scenario::PrivateDirtyToggle | Scenario::NumaHinting
            ) {
                bail!(
                    "--folio-kb applies to shared-dirty-toggle, private-dirty-toggle and numa-hinting (anonymous memory), not {}",
                    scenario.name()
                );
            }
            super::mthp::check_size(folio_kb, scenario == Scenario::SharedDirtyToggle)?;
            if !(mapping_bytes as u64).is_multiple_of(folio_kb * 1024) {
                bail!("--mapping-mb {mapping_mb} is not a whole number of {folio_kb} kB folios");
            }
        }
        Ok(Plan {
            scenario,
            mapping_mb,
            mapping_bytes,
            pages: mapping_bytes / page_size(),
            iterations: self.iterations,
            warmup: self.warmup,
            rounds: self.rounds,
            threads: self.threads,
            cpu: self.cpu,
            touch: self.touch,
            folio_kb: self.folio_kb,
            dither_us: self.dither_us,
            regions,
        })
    }
}

fn mem_available_mb() -> Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .context("/proc/meminfo has no MemAvailable line")
}

/// CPUs this process may run on (its affinity mask).
fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

fn format_cpus(cpus: &[usize]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(first), Some(last)) if last - first + 1 == cpus.len() => format!("{first}-{last}"),
        _ => cpus.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
    }
}

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// THP must be `always` or `madvise` for thp-toggle to get huge pages.
fn check_thp_available() -> Result<()> {
    let Some(mode) = super::mthp::thp_enabled() else {
        bail!(
            "thp-toggle needs transparent huge pages, but this kernel has no {THP_ENABLED} (built without CONFIG_TRANSPARENT_HUGEPAGE)"
        );
    };
    if mode == "never" {
        bail!("thp-toggle needs transparent huge pages, but {THP_ENABLED} is [never]: echo madvise > {THP_ENABLED}");
    }
    Ok(())
}
