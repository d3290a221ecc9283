//! mprot-tw4m: libMicro's mprotect benchmark as LKP runs it, from
//! libMicro 0.4.0-rh's bench.sh:
//! `mprotect -E -C 200 -L -S -W -N mprot_tw4m -l 4m -w -t -B 10 -f /dev/zero`,
//! and libMicro's statistics for its figure.
//!
//! What libMicro does, and what this does alike:
//! - Setup, untimed: one mapping of B x l bytes (10 x 4 MiB) of /dev/zero,
//!   MAP_PRIVATE, read-write, where the kernel places it; `-w` writes a
//!   byte in every page. libMicro then forks its worker (`-P 1`, no `-1`),
//!   so the worker toggles pages it shares copy-on-write with its waiting
//!   parent. Here an idle child is forked instead and the workload toggles:
//!   the same page state, in the traced process.
//! - A sample is one batch (`-B 10`): region i (bytes i*l to (i+1)*l) goes
//!   to PROT_NONE when batch + i is even, after a read of one byte per page
//!   of it (`-t`, inside the timed window), else to PROT_READ|PROT_WRITE.
//!   The batch number grows by one each batch, so every region alternates
//!   from one batch to the next and neighbouring regions are always apart.
//! - The sample is the batch's time less one clock read's cost, over its
//!   calls, in µs. The figure is the median of the samples with outliers
//!   removed ([`libmicro_median`]).
//!
//! Differences: libMicro runs batches until 10 ms have passed and more than
//! `-C 200` samples are recorded (its test sees the count before the batch
//! is added: 202 samples); here `--iterations` batches (200 by default),
//! after `--warmup` unmeasured ones (libMicro times its first batch, whose
//! PROT_READ|PROT_WRITE calls find their regions read-write already).
//! libMicro reads the clock twice a batch (gettimeofday, µs resolution); here
//! once more after each read-through and each call, to split the batch into
//! its phases, and each of those intervals less one clock read's cost.

use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::ProgressBar;

use super::mapping::Mapping;
use super::{Audit, Dither, Measuring, Plan, ThreadOutcome, nanos, smaps, stop_requested};

/// Nanoseconds of one batch's phases, each interval less one clock read.
#[derive(Default)]
struct Batch {
    /// Calls to PROT_NONE.
    protect: u64,
    /// Calls to PROT_READ|PROT_WRITE.
    restore: u64,
    /// `-t`: the reads of every page of a region about to go PROT_NONE.
    touch: u64,
}

/// One round: the regions mapped, prefaulted and shared with an idle child,
/// then `warmup + iterations` batches; every region audited at the end.
pub(super) fn round(plan: &Plan, outcome: &mut ThreadOutcome, progress: Option<&ProgressBar>) -> Result<()> {
    let mapping = Mapping::create(plan)?;
    let regions = plan.regions as usize;
    mapping.write_each_page(1);
    let holder = CowHolder::fork()?;
    // Before the first batch the regions are still one VMA: audited as one.
    let before = smaps::read_own(mapping.start())?;
    let overhead = clock_read_ns();
    let tables: u64 = (0..regions)
        .map(|region| mapping.pte_tables_of(region * plan.mapping_bytes, plan.mapping_bytes))
        .sum();
    let mut dither = Dither::new(plan.dither_us);
    let mut measuring = None;
    let mut batches = 0;
    for batch in 0..plan.warmup + plan.iterations {
        if stop_requested() {
            break;
        }
        if batch == plan.warmup {
            measuring = Some(Measuring::start());
        }
        let times = run_batch(plan, &mapping, batch, overhead)?;
        dither.spin();
        batches += 1;
        outcome.mprotect_calls += plan.regions;
        outcome.iterations += 1;
        outcome.pte_table_walks += tables;
        if batch >= plan.warmup {
            let samples = &mut outcome.samples;
            let total = times.protect + times.restore + times.touch;
            samples.call_us.push(total as f64 / plan.regions as f64 / 1000.0);
            samples.protect.push(times.protect);
            samples.restore.push(times.restore);
            samples.post_touch.push(times.touch);
        }
        if let Some(progress) = progress {
            progress.inc(1);
        }
    }
    drop(measuring);
    // After a batch, neighbouring regions differ in protection: each is its
    // own VMA, and each is audited.
    let afters = if batches == 0 {
        vec![before.clone()]
    } else {
        (0..regions)
            .map(|region| smaps::read_own(mapping.start() + region * plan.mapping_bytes))
            .collect::<Result<Vec<_>>>()?
    };
    outcome.audits.extend(afters.into_iter().map(|after| Audit {
        before: before.clone(),
        after,
        folios_before: Default::default(),
        folios_after: Default::default(),
    }));
    drop(holder);
    Ok(())
}

/// One batch, libMicro's `benchmark()`: each region in turn, to PROT_NONE
/// (read through first with `-t`) or to PROT_READ|PROT_WRITE.
#[inline(always)]
fn run_batch(plan: &Plan, mapping: &Mapping, batch: u64, overhead: u64) -> Result<Batch> {
    let mut times = Batch::default();
    let mut last = Instant::now();
    let mut lap = |into: &mut u64| {
        let now = Instant::now();
        *into += nanos(now - last).saturating_sub(overhead);
        last = now;
    };
    for region in 0..plan.regions {
        let offset = region as usize * plan.mapping_bytes;
        if (batch + region).is_multiple_of(2) {
            if plan.touch {
                std::hint::black_box(mapping.read_pages(offset, plan.pages));
                lap(&mut times.touch);
            }
            mapping.protect_part(offset, plan.mapping_bytes, libc::PROT_NONE)?;
            lap(&mut times.protect);
        } else {
            mapping.protect_part(offset, plan.mapping_bytes, libc::PROT_READ | libc::PROT_WRITE)?;
            lap(&mut times.restore);
        }
    }
    Ok(times)
}

/// What one clock read costs, as libMicro measures its own: the mean
/// difference of 1000 back-to-back reads, outliers removed until none is left.
fn clock_read_ns() -> u64 {
    for _ in 0..3 {
        std::hint::black_box(Instant::now());
    }
    let mut data: Vec<f64> = (0..1000)
        .map(|_| {
            let start = Instant::now();
            nanos(Instant::now() - start) as f64
        })
        .collect();
    while remove_outliers(&mut data) > 0 {}
    // Truncated, as libMicro's (long long) cast does.
    (data.iter().sum::<f64>() / data.len() as f64) as u64
}

/// libMicro's figure from its samples: while there are more than 40, the
/// samples beyond 3 standard deviations (n - 1 in the divisor) of the mean
/// are removed, again and again until a pass removes none or 40 or fewer
/// are left; then the median is the upper middle one (`sorted[n / 2]`,
/// not the mean of the two middle ones). `None` for no samples.
pub fn libmicro_median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut data = samples.to_vec();
    if data.len() > 40 {
        while remove_outliers(&mut data) > 0 && data.len() > 40 {}
    }
    data.sort_by(f64::total_cmp);
    Some(data[data.len() / 2])
}

/// Removes the values more than 3 standard deviations from the mean (a
/// pass of libMicro's `remove_outliers`); returns how many it removed.
/// Fewer than two values have no deviation (NaN) and lose none.
fn remove_outliers(data: &mut Vec<f64>) -> usize {
    let n = data.len() as f64;
    let mean = data.iter().sum::<f64>() / n;
    let stddev = (data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    let (low, high) = (mean - 3.0 * stddev, mean + 3.0 * stddev);
    let before = data.len();
    data.retain(|&x| !(x > high || x < low));
    before - data.len()
}

/// An idle child forked after the prefault: it holds the regions' pages as
/// libMicro's parent holds them while its forked worker measures, so they
/// are mapped twice, copy-on-write, as libMicro's worker finds them (its
/// PROT_READ|PROT_WRITE cannot make them writable). It calls no mprotect()
/// and is another process, so the tracer counts none of its calls.
/// Killed and reaped on drop; killed too if this thread dies first.
struct CowHolder {
    pid: libc::pid_t,
}

impl CowHolder {
    fn fork() -> Result<Self> {
        // Computed before the fork: the child only makes async-signal-safe calls.
        // SAFETY: plain queries.
        let parent = unsafe { libc::getpid() };
        let max_fd = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 1 << 16) as libc::c_int;
        // SAFETY: the child runs only `hold`, which makes async-signal-safe calls.
        match unsafe { libc::fork() } {
            -1 => bail!(
                "fork of the child holding the pages: {}",
                std::io::Error::last_os_error()
            ),
            0 => hold(parent, max_fd),
            pid => Ok(Self { pid }),
        }
    }
}

/// The child's whole life: it closes every inherited descriptor (the
/// tracer waits for the end of the workload's stdout), dies with its
/// parent, and otherwise waits to be killed.
fn hold(parent: libc::pid_t, max_fd: libc::c_int) -> ! {
    // SAFETY: close_range, close, prctl, getppid, pause and _exit are
    // async-signal-safe and touch nothing of the parent's.
    unsafe {
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..max_fd {
                libc::close(fd);
            }
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
        loop {
            libc::pause();
        }
    }
}

impl Drop for CowHolder {
    fn drop(&mut self) {
        // SAFETY: the pid is our own child, not yet reaped.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            while libc::waitpid(self.pid, std::ptr::null_mut(), 0) < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_samples_keep_their_outliers_and_take_the_upper_middle() {
        // 40 or fewer: no removal; an even count takes sorted[n / 2].
        assert_eq!(libmicro_median(&[4.0, 1.0, 1000.0, 2.0]), Some(4.0));
        assert_eq!(libmicro_median(&[3.0]), Some(3.0));
        assert_eq!(libmicro_median(&[]), None);
    }

    #[test]
    fn removal_repeats_until_a_pass_removes_nothing() {
        // 100 samples of 10, 10 of 20 and one of 10 000: the first pass
        // (mean 100.9, sd 948.1, so up to 2945) removes only 10 000; the
        // second (mean 10.91, sd 2.888, so up to 19.57) the 20s; the third
        // (all 10, sd 0) nothing.
        let mut samples = vec![10.0; 100];
        samples.extend([20.0; 10]);
        samples.push(10_000.0);
        let mut data = samples.clone();
        assert_eq!(remove_outliers(&mut data), 1);
        assert_eq!(remove_outliers(&mut data), 10);
        assert_eq!(remove_outliers(&mut data), 0);
        assert_eq!(libmicro_median(&samples), Some(10.0));
    }

    #[test]
    fn a_clock_read_costs_less_than_10_us() {
        assert!(clock_read_ns() < 10_000);
    }
}
