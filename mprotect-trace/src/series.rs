//! Series of runs: `run --repeat N` (one configuration, N fresh runs) and
//! `ab` (configurations in interleaved order, A B A B ...). Each run is a
//! whole `run`: a fresh workload process, probes attached and detached,
//! its own directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use crate::compare::{self, Side};
use crate::model::Report;
use crate::options::{AbOptions, PrintFormat, RunOptions};
use crate::output::summary;
use crate::run::{self, Signals, Status};

/// `DIR/run-01`, `DIR/run-02`, ...: name order is run order.
fn run_dir(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("run-{index:02}"))
}

/// Refuses a directory that already holds runs: a side must be one series.
fn check_empty(dir: &Path) -> Result<()> {
    if run_dir(dir, 1).exists() {
        bail!(
            "{} already holds runs ({}): choose a new -o DIR",
            dir.display(),
            run_dir(dir, 1).display()
        );
    }
    Ok(())
}

/// SIGINT and SIGTERM for the whole series. Each run catches them while
/// it traces; between runs (loading, attaching, comparing) the process
/// keeps tokio's handler, so a signal would be lost without this listener.
struct Interrupts {
    runtime: tokio::runtime::Runtime,
    signals: Signals,
}

impl Interrupts {
    fn install() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let signals = runtime.block_on(async { Signals::install() })?;
        Ok(Self { runtime, signals })
    }

    /// The status a signal since the last check asks for, if any.
    fn received(&mut self) -> Option<Status> {
        let Signals { interrupt, terminate } = &mut self.signals;
        self.runtime.block_on(async {
            // A zero timeout polls each listener once: ready or not.
            let now = std::time::Duration::ZERO;
            if tokio::time::timeout(now, interrupt.recv()).await.is_ok() {
                Some(Status::Interrupted)
            } else if tokio::time::timeout(now, terminate.recv()).await.is_ok() {
                Some(Status::Terminated)
            } else {
                None
            }
        })
    }

    /// Stops the series if a signal came: the runs made so far are kept.
    fn stop(&mut self, dir: &Path) -> Option<ExitCode> {
        let status = self.received()?;
        crate::output::stderr_line(&format!(
            "error: the series was stopped ({status:?}); the completed runs are in {}",
            dir.display()
        ));
        Some(status.exit_code())
    }
}

/// What one run measured, in a few words.
fn headline(report: &Report) -> String {
    match &report.workload {
        Some(workload) => summary::workload_figure(workload),
        None => summary::syscall_figures(report),
    }
}

/// Runs `options` once into `dir`; says so in one line on stderr (stdout
/// keeps the result, e.g. `ab --json`). `Err`: the run did not complete,
/// and the series stops with this exit code.
fn one(options: &RunOptions, dir: PathBuf, what: &str) -> Result<Result<Report, ExitCode>> {
    let mut options = options.clone();
    options.output = Some(dir);
    let traced = run::trace(options)?;
    match traced.status {
        Status::Complete => {
            crate::output::stderr_line(&format!(
                "{what}: {} -> {}",
                headline(&traced.report),
                traced.path.display()
            ));
            Ok(Ok(traced.report))
        }
        status => {
            crate::output::stderr_line(&format!(
                "error: {what} did not complete ({status:?}); its partial report is {}, the series stops",
                traced.path.display()
            ));
            Ok(Err(status.exit_code()))
        }
    }
}

/// `run --repeat N`.
pub fn repeat(options: RunOptions, runs: u32) -> Result<ExitCode> {
    options.validate()?;
    let dir = match &options.output {
        Some(dir) => {
            check_empty(dir)?;
            dir.clone()
        }
        None => run::directory::create_unique(Path::new(run::directory::DEFAULT_PARENT))?,
    };
    let mut interrupts = Interrupts::install()?;
    let mut medians = Vec::new();
    for index in 1..=runs {
        if let Some(code) = interrupts.stop(&dir) {
            return Ok(code);
        }
        match one(&options, run_dir(&dir, index), &format!("run {index}/{runs}"))? {
            Ok(report) => medians.extend(report.workload.map(|w| w.iteration_ns_per_page_median)),
            Err(code) => return Ok(code),
        }
    }
    if let Some(spread) = compare::Spread::of(medians) {
        crate::output::print(&format!(
            "{runs} runs: {:.2} ns/page, run medians from {:.2} to {:.2} ({:.1} % of the median)\n",
            spread.median,
            spread.min,
            spread.max,
            (spread.max - spread.min) / spread.median * 100.0
        ))?;
    }
    crate::output::print(&format!(
        "runs: {}; compare them as one side: mprotect-trace compare {} OTHER\n",
        dir.display(),
        dir.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `ab`: every side once per round, in side order, for `repeat` rounds;
/// then the comparison of the sides, written into the directory.
pub fn interleaved(options: &AbOptions) -> Result<ExitCode> {
    for side in &options.sides {
        side.validate()?;
    }
    check_empty(&options.output)?;
    let dirs: Vec<(String, PathBuf)> = (0..options.sides.len())
        .map(|index| {
            let label = compare::label(index);
            let dir = options.output.join(label.to_lowercase());
            (label, dir)
        })
        .collect();
    for (_, dir) in &dirs {
        check_empty(dir)?;
    }
    let mut interrupts = Interrupts::install()?;
    for round in 1..=options.repeat.get() {
        for (side, (label, dir)) in options.sides.iter().zip(&dirs) {
            if let Some(code) = interrupts.stop(&options.output) {
                return Ok(code);
            }
            let what = format!("{label} run {round}/{}", options.repeat);
            if let Err(code) = one(side, run_dir(dir, round), &what)? {
                return Ok(code);
            }
        }
    }
    let sides = dirs
        .iter()
        .map(|(label, dir)| Side::load(label.clone(), dir))
        .collect::<Result<Vec<_>>>()?;
    let comparison = compare::compare(&sides, Some("the sides of an A/B run"))?;
    if !options.json {
        // A blank line between the runs' progress and the comparison.
        crate::output::print("\n")?;
    }
    let format = if options.json {
        PrintFormat::Json
    } else {
        PrintFormat::Text
    };
    compare::publish(&sides, &comparison, Some(&options.output), format)?;
    if !options.json {
        crate::output::print(&format!(
            "\ncomparison: {}\n",
            options.output.join(crate::output::html::COMPARISON_FILE_NAME).display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
