//! The toggle workload: the same shapes and metrics as the public mprotect
//! regression reproducers, with an audit of the page state it ran in.

mod folios;
mod libmicro;
mod mapping;
pub mod mthp;
pub mod numa;
mod options;
mod result;
mod scenario;
mod smaps;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Barrier;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};

pub use libmicro::libmicro_median;
use mapping::Mapping;
pub use options::{Plan, WorkloadOptions};
pub use scenario::Scenario;

use crate::model::{SmapsEntry, WorkloadResult};

/// Nanoseconds of each measured iteration, per phase.
#[derive(Default)]
struct Samples {
    protect: Vec<u64>,
    restore: Vec<u64>,
    post_touch: Vec<u64>,
    /// mprot-tw4m: libMicro's sample of each measured batch, µs per call.
    call_us: Vec<f64>,
}

/// The smaps state of one mapping right after prefault, and at the end;
/// with `--folio-kb`, the folio sizes backing it then too.
struct Audit {
    before: SmapsEntry,
    after: SmapsEntry,
    folios_before: BTreeMap<u64, u64>,
    folios_after: BTreeMap<u64, u64>,
}

/// The folio sizes backing `mapping`, when the plan asks for large folios.
fn folio_audit(plan: &Plan, mapping: &Mapping) -> Result<BTreeMap<u64, u64>> {
    match plan.folio_kb {
        Some(_) => folios::sizes(mapping.start(), mapping.pages()),
        None => Ok(BTreeMap::new()),
    }
}

struct ThreadOutcome {
    samples: Samples,
    audits: Vec<Audit>,
    mprotect_calls: u64,
    /// Iterations done, warmup included.
    iterations: u64,
    /// PTE tables walked: each mprotect call times the tables it spans.
    pte_table_walks: u64,
    /// numa-hinting: what NUMA balancing did during the round.
    numa: Option<crate::model::NumaHinting>,
}

/// Called once every thread exists and before the first measured call.
pub type StartGate<'a> = &'a (dyn Fn() -> Result<()> + Sync);

/// The line a gated workload prints on stdout once it is parked at its
/// gate, followed by ` measuring=0x<address of MEASURING>`.
pub const READY_LINE: &str = "ready";

/// How many threads are inside their measured iterations right now. The
/// tracer's sampler reads it from this process's memory (its address is on
/// the ready line), so samples count only while the measured loop runs:
/// not setup, prefault, warmup, audits or unmapping.
static MEASURING: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Set by SIGUSR1 (`run --duration` at its deadline): every thread stops
/// after its current iteration and the result covers what was done.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGUSR1 stops the workload early but cleanly; installed before the
/// ready line, so the tracer may send it at any time after.
pub fn stop_on_sigusr1() -> Result<()> {
    stop_on(&[libc::SIGUSR1])
}

/// `signals` stop the workload after its current iteration, as SIGUSR1
/// does (a workload that must stay one thread restores its knobs so).
pub fn stop_on(signals: &[libc::c_int]) -> Result<()> {
    // SAFETY: a zeroed sigaction with a handler that only stores an atomic.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = request_stop as extern "C" fn(libc::c_int) as usize;
    action.sa_flags = libc::SA_RESTART;
    for &signal in signals {
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            bail!(
                "installing the handler of signal {signal}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// Marks the calling thread inside its measured iterations until dropped.
struct Measuring;

impl Measuring {
    fn start() -> Self {
        MEASURING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Measuring
    }
}

impl Drop for Measuring {
    fn drop(&mut self) {
        MEASURING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Says `ready` on stdout, then blocks until a byte (or end of file)
/// arrives on stdin: a tracer sets its filter in between, when this process
/// makes no mprotect() call, so it counts exactly the workload's own.
pub fn wait_for_stdin() -> Result<()> {
    use std::io::{Read as _, Write as _};
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{READY_LINE} measuring={:#x}", MEASURING.as_ptr() as usize)
        .and_then(|()| stdout.flush())
        .context("saying ready on stdout")?;
    let mut byte = [0u8; 1];
    std::io::stdin()
        .read(&mut byte)
        .context("waiting for the start byte on stdin")?;
    Ok(())
}

/// Closes stdout (the tracer's signal that the result is complete) and
/// waits for stdin to close: the tracer reads this process's user stacks
/// while it is still alive, then lets it exit.
pub fn wait_for_exit_gate() -> Result<()> {
    use std::io::{Read as _, Write as _};
    std::io::stdout().flush().context("flushing the result")?;
    // SAFETY: nothing writes to stdout after this.
    unsafe { libc::close(libc::STDOUT_FILENO) };
    let mut rest = Vec::new();
    std::io::stdin()
        .read_to_end(&mut rest)
        .context("waiting for stdin to close")?;
    Ok(())
}

/// Runs the workload described by `plan` and measures it.
/// `gated`: started by a tracer (`--wait-for-start`).
pub fn run(plan: &Plan, start_gate: StartGate, gated: bool) -> Result<WorkloadResult> {
    let cpu_before = process_cpu_time();
    // One malloc arena: glibc grows per-thread arenas with mprotect(),
    // which would add calls that are not the workload's toggles (musl's
    // allocator, in the static arm64 build, has no arenas).
    // SAFETY: mallopt only tunes the allocator.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1)
    };
    let thp = ThpState {
        enabled: mthp::thp_enabled(),
        mthp: mthp::enabled_sizes(),
    };
    let progress = progress_bar(plan, gated);
    let barriers = Barriers {
        started: Barrier::new(plan.threads as usize),
        go: Barrier::new(plan.threads as usize),
    };
    // Thread 0 is the main thread: a single-threaded run must be one task,
    // as the reproducers are. A second thread idling in join() keeps the mm
    // live on another CPU, and every TLB flush of the toggle then costs an IPI.
    let outcomes: Vec<Result<ThreadOutcome>> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..plan.threads)
            .map(|_| scope.spawn(|| run_thread(plan, &barriers, None)))
            .collect();
        let mut outcomes = vec![run_thread(plan, &barriers, Some((&progress, start_gate)))];
        outcomes.extend(helpers.into_iter().map(|helper| {
            helper
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a workload thread panicked")))
        }));
        outcomes
    });
    progress.finish_and_clear();
    let outcomes = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
    let mut result = result::summarize(plan, outcomes, thp);
    result.cpu_time_s = process_cpu_time() - cpu_before;
    Ok(result)
}

fn progress_bar(plan: &Plan, gated: bool) -> ProgressBar {
    // Under `run` (gated) the tracer owns the terminal.
    if gated || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(plan.rounds * (plan.warmup + plan.iterations));
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} iterations") {
        bar.set_style(style);
    }
    bar.set_message(plan.scenario.name());
    bar
}

/// The THP settings the run ran in, read once before it starts.
struct ThpState {
    enabled: Option<String>,
    mthp: Vec<(u64, String)>,
}

/// `started`: every thread has finished starting (Rust's thread start-up
/// calls mprotect for its signal stack guard); `go`: the gate is open.
struct Barriers {
    started: Barrier,
    go: Barrier,
}

/// `main`: the progress bar and start gate, which only thread 0 has.
fn run_thread(plan: &Plan, barriers: &Barriers, main: Option<(&ProgressBar, StartGate)>) -> Result<ThreadOutcome> {
    // Every thread passes both barriers even when pinning or the gate
    // fails, so no sibling waits forever; the error is returned after.
    let mut ready = plan.cpu.map(pin_to_cpu).transpose().map(drop);
    barriers.started.wait();
    if let (Ok(()), Some((_, start_gate))) = (&ready, main) {
        ready = start_gate();
    }
    barriers.go.wait();
    ready?;
    let progress = main.map(|(progress, _)| progress);
    let mut outcome = ThreadOutcome {
        samples: Samples::default(),
        audits: Vec::new(),
        mprotect_calls: 0,
        iterations: 0,
        pte_table_walks: 0,
        numa: None,
    };
    for _ in 0..plan.rounds {
        if stop_requested() {
            break;
        }
        match plan.scenario {
            Scenario::SingleProtect => single_protect_round(plan, &mut outcome, progress)?,
            Scenario::MprotTw4m => libmicro::round(plan, &mut outcome, progress)?,
            Scenario::NumaHinting => numa::round(plan, &mut outcome, progress)?,
            _ => toggle_round(plan, &mut outcome, progress)?,
        }
    }
    Ok(outcome)
}

/// A random spin between iterations, outside the timed windows. Under
/// QEMU's instruction counting every iteration takes exactly as long and
/// the sampler's period is fixed, so without it the samples fall on the
/// same few places of the loop in every iteration: a change anywhere in
/// the loop then moves samples between the functions around it.
struct Dither {
    max_ns: u64,
    /// xorshift64 state: statistical quality is not needed, only no period
    /// in step with the sampler's.
    state: u64,
}

impl Dither {
    fn new(max_us: u64) -> Self {
        let mut seed = [0u8; 8];
        // SAFETY: writes at most 8 bytes into `seed`; GRND_INSECURE never blocks.
        let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), libc::GRND_INSECURE) };
        let seed = if got == 8 {
            u64::from_ne_bytes(seed)
        } else {
            // Old kernels: the clock is seed enough.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        };
        Self {
            max_ns: max_us.saturating_mul(1000),
            state: seed | 1,
        }
    }

    fn spin(&mut self) {
        if self.max_ns == 0 {
            return;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let until = Instant::now() + std::time::Duration::from_nanos(self.state % self.max_ns);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

fn prefault(plan: &Plan, mapping: &Mapping) {
    if plan.scenario.writes_pages() {
        mapping.write_each_page(1);
    } else {
        std::hint::black_box(mapping.read_each_page());
    }
}

/// Runs `each` for iterations 0 to `warmup + iterations`, until a stop is
/// asked for: the measured ones marked as such for the sampler, each
/// counted on the progress bar.
fn iterate(plan: &Plan, progress: Option<&ProgressBar>, mut each: impl FnMut(u64) -> Result<()>) -> Result<()> {
    let mut measuring = None;
    for iteration in 0..plan.warmup + plan.iterations {
        if stop_requested() {
            break;
        }
        if iteration == plan.warmup {
            measuring = Some(Measuring::start());
        }
        each(iteration)?;
        if let Some(progress) = progress {
            progress.inc(1);
        }
    }
    drop(measuring);
    Ok(())
}

/// One mapping, toggled read-only and back `warmup + iterations` times.
fn toggle_round(plan: &Plan, outcome: &mut ThreadOutcome, progress: Option<&ProgressBar>) -> Result<()> {
    let mapping = Mapping::create(plan)?;
    prefault(plan, &mapping);
    let before = smaps::read_own(mapping.start())?;
    let folios_before = folio_audit(plan, &mapping)?;
    let writes = plan.scenario.writes_pages();
    let mut dither = Dither::new(plan.dither_us);
    iterate(plan, progress, |iteration| {
        let start = Instant::now();
        mapping.protect(libc::PROT_READ)?;
        let protected = Instant::now();
        mapping.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        let restored = Instant::now();
        if plan.touch {
            if writes {
                mapping.write_each_page(iteration as u8);
            } else {
                std::hint::black_box(mapping.read_each_page());
            }
        }
        let touched = Instant::now();
        dither.spin();
        outcome.mprotect_calls += 2;
        outcome.iterations += 1;
        outcome.pte_table_walks += 2 * mapping.pte_tables();
        if iteration >= plan.warmup {
            let samples = &mut outcome.samples;
            samples.protect.push(nanos(protected - start));
            samples.restore.push(nanos(restored - protected));
            samples.post_touch.push(nanos(touched - restored));
        }
        Ok(())
    })?;
    let after = smaps::read_own(mapping.start())?;
    let folios_after = folio_audit(plan, &mapping)?;
    outcome.audits.push(Audit {
        before,
        after,
        folios_before,
        folios_after,
    });
    Ok(())
}

/// A fresh, write-prefaulted mapping per iteration and one timed mprotect(PROT_READ).
fn single_protect_round(plan: &Plan, outcome: &mut ThreadOutcome, progress: Option<&ProgressBar>) -> Result<()> {
    let total = plan.warmup + plan.iterations;
    let mut dither = Dither::new(plan.dither_us);
    let mut before = None;
    for iteration in 0..total {
        if stop_requested() {
            break;
        }
        let mapping = Mapping::create(plan)?;
        prefault(plan, &mapping);
        if iteration == 0 {
            before = Some(smaps::read_own(mapping.start())?);
        }
        let measuring = (iteration >= plan.warmup).then(Measuring::start);
        let start = Instant::now();
        mapping.protect(libc::PROT_READ)?;
        let protected = Instant::now();
        drop(measuring);
        dither.spin();
        outcome.mprotect_calls += 1;
        outcome.iterations += 1;
        outcome.pte_table_walks += mapping.pte_tables();
        if iteration >= plan.warmup {
            outcome.samples.protect.push(nanos(protected - start));
            outcome.samples.restore.push(0);
            outcome.samples.post_touch.push(0);
        }
        if iteration + 1 == total || stop_requested() {
            let after = smaps::read_own(mapping.start())?;
            let before = before.take().context("the first iteration's audit is missing")?;
            outcome.audits.push(Audit {
                before,
                after,
                folios_before: BTreeMap::new(),
                folios_after: BTreeMap::new(),
            });
        }
        if let Some(progress) = progress {
            progress.inc(1);
        }
    }
    Ok(())
}

/// User + system CPU seconds of every thread of this process so far.
pub(super) fn process_cpu_time() -> f64 {
    // SAFETY: rusage is plain data that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; pid 0 is the calling thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        bail!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}
