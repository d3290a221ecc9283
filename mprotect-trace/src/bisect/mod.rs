//! `mprotect-trace bisect`: the commit that made mprotect slower, found by
//! booting revisions in the lab with statistics deciding each step, as
//! Chromium's Pinpoint bisects noisy timings.
//!
//! - The endpoints are run interleaved until they differ in the stated
//!   direction (or refused when they do not).
//! - Each candidate is built (incrementally), booted `--repeat` times and
//!   classified against the endpoints' runs: like-good, like-bad or unknown
//!   ([`classify`]). Unknown gets more runs up to `--max-repeats`, then is
//!   skipped, as is a revision that does not build or boot.
//! - The end: the first bad commit, its diff stat, the lab comparison of
//!   its runs against its parent's with per-function attribution, and a
//!   `git bisect replay` log.
//!
//! Every run is kept under the output directory, one directory per
//! revision; the same command on the same directory resumes, reusing them.

pub mod classify;
pub mod metric;
mod record;
pub mod revisions;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::compare;
use crate::lab::kernels::KernelSpec;
use crate::lab::summary::KernelDelta;
use crate::lab::{AccelChoice, BootableKernel, LabOptions, say};
use crate::model::{Report, report};
use classify::{Classification, Likeness, classify};
use metric::Metric;
pub use record::FILE_NAME;
use record::{BisectRecord, EndpointCheck, FirstBad, KernelUsed, Outcome, Step, StepVerdict};
use revisions::Revision;

/// What is bisected.
#[derive(Clone, Debug)]
pub enum Source {
    /// A git history: `--tree PATH --good REV --bad REV`.
    Git { tree: PathBuf, good: String, bad: String },
    /// Ordered `--kernel` specs, the first good and the last bad.
    Specs(Vec<String>),
}

/// Which way bad differs from good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Bad's value is larger (the default).
    Slower,
    /// `--faster`: bad's value is smaller (an improvement is looked for).
    Faster,
}

#[derive(Clone, Debug)]
pub struct BisectOptions {
    /// The lab's settings: the guests' run, accelerator, CPUs (one count),
    /// memory, retries, cache; `repeat` is the runs a step adds at a time.
    pub lab: LabOptions,
    pub source: Source,
    pub metric: Metric,
    pub direction: Direction,
    /// Runs a revision may get before an unknown is skipped.
    pub max_repeats: u32,
    /// Measure the endpoints and stop (for `bisect-step`).
    pub endpoints_only: bool,
    /// The command line after `bisect`: kept in bisect.json so that
    /// `bisect-step` and a resumed bisect run with the same settings.
    pub invocation: Vec<String>,
}

/// What makes two bisects the same one (a directory resumes only its own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub revisions: Vec<Revision>,
    pub metric: Metric,
    pub direction: Direction,
    pub run_args: Vec<String>,
    pub accel: String,
    pub smp: u32,
    pub memory_mib: u32,
    pub append: String,
    /// Bisects recorded before `--numa-nodes` had one node.
    #[serde(default = "one_node")]
    pub numa_nodes: u32,
}

fn one_node() -> u32 {
    1
}

/// The part of a stored bisect.json that resuming and `bisect-step` read.
#[derive(Deserialize)]
pub struct Stored {
    pub invocation: Vec<String>,
    pub inputs: Inputs,
}

impl Stored {
    pub fn load(dir: &Path) -> Result<Stored> {
        let path = dir.join(FILE_NAME);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "{} is not a bisect's directory (no {FILE_NAME}): give the -o DIR of `mprotect-trace bisect`",
                dir.display()
            )
        })?;
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
    }
}

/// A bisect in progress: its revisions, their kernels and runs.
struct Bisect<'a> {
    options: &'a BisectOptions,
    revisions: Vec<Revision>,
    smp: u32,
    output: PathBuf,
    /// Kernels prepared so far; `Err` is why one cannot be booted.
    kernels: HashMap<usize, std::result::Result<BootableKernel, String>>,
    bar: ProgressBar,
    boots: usize,
    boot_seconds: f64,
    notes: Vec<String>,
}

/// Why a revision has no runs to classify.
enum Unmeasured {
    /// It does not build or boot, or its runs lack the metric: skipped.
    Skip(String),
    /// A signal stopped the bisect.
    Interrupted(i32),
    /// This host failed (writing files, packing an initramfs): the bisect
    /// stops, since every revision would fail alike.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Unmeasured {
    fn from(err: anyhow::Error) -> Self {
        Unmeasured::Fatal(err)
    }
}

impl Bisect<'_> {
    fn spec(&self, index: usize) -> Result<KernelSpec> {
        KernelSpec::parse(&self.revisions[index].spec)
    }

    /// The kernel of revision `index`, built or resolved once: `Ok(Err)`
    /// when the revision cannot be booted (it does not build, its config
    /// lacks what the guests need), `Err` when this host failed.
    fn kernel(&mut self, index: usize) -> Result<std::result::Result<&BootableKernel, String>> {
        if !self.kernels.contains_key(&index) {
            let label = self.revisions[index].label.clone();
            let resolved = self
                .spec(index)
                .and_then(|spec| BootableKernel::resolve(&spec, &label, &self.options.lab, &self.output));
            let prepared = match resolved {
                Ok(kernel) => {
                    let (kernel, note) = BootableKernel::pack(kernel, &self.options.lab, &self.output)?;
                    if let Some(note) = note
                        && !self.notes.contains(&note)
                    {
                        say(&self.bar, format!("note: {note}"));
                        self.notes.push(note);
                    }
                    Ok(kernel)
                }
                Err(err) => Err(format!("{err:#}")),
            };
            self.kernels.insert(index, prepared);
        }
        Ok(match &self.kernels[&index] {
            Ok(kernel) => Ok(kernel),
            Err(why) => Err(why.clone()),
        })
    }

    fn side_dir(&self, index: usize) -> PathBuf {
        self.output
            .join(&self.revisions[index].label)
            .join(format!("smp-{}", self.smp))
    }

    /// The metric of every kept run of revision `index`.
    fn values(&self, index: usize) -> Result<Vec<f64>> {
        let dir = self.side_dir(index);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        report::run_dirs(&dir)?
            .iter()
            .map(|run| {
                let report = Report::load(run)?;
                self.options.metric.of(&report).with_context(|| {
                    format!(
                        "the run {} has no {}: is the target probed in this kernel?",
                        run.display(),
                        self.options.metric.describe()
                    )
                })
            })
            .collect()
    }

    /// Boots revision `index` until it has `wanted` runs (kept runs count).
    fn measure(&mut self, index: usize, wanted: usize) -> std::result::Result<Vec<f64>, Unmeasured> {
        loop {
            // A run without the metric is the revision's (a target it does not have).
            let values = self.values(index).map_err(|err| Unmeasured::Skip(format!("{err:#}")))?;
            if values.len() >= wanted {
                return Ok(values);
            }
            if let Some(signal) = crate::children::interrupted() {
                return Err(Unmeasured::Interrupted(signal));
            }
            let run_dir = self.side_dir(index).join(format!("run-{:02}", values.len() + 1));
            let started = Instant::now();
            let label = self.revisions[index].label.clone();
            self.bar
                .set_message(format!("{label}: run {} of {wanted}", values.len() + 1));
            self.kernel(index)?.map_err(Unmeasured::Skip)?;
            let Some(Ok(kernel)) = self.kernels.get(&index) else {
                return Err(Unmeasured::Skip("the kernel was not prepared".to_owned()));
            };
            let outcome = kernel.boot(&self.options.lab, self.smp, &run_dir, &self.bar)?;
            self.boots += 1;
            self.boot_seconds += started.elapsed().as_secs_f64();
            if let Some(signal) = crate::children::interrupted() {
                return Err(Unmeasured::Interrupted(signal));
            }
            if !outcome.succeeded {
                return Err(Unmeasured::Skip(format!(
                    "does not boot or run: {}",
                    outcome.failures.last().map_or("no attempt", String::as_str)
                )));
            }
        }
    }

    /// Seconds a boot took on average here (a first guess before any).
    fn seconds_per_boot(&self) -> f64 {
        if self.boots == 0 {
            60.0
        } else {
            self.boot_seconds / self.boots as f64
        }
    }

    fn write(&self, record: &BisectRecord) -> Result<()> {
        record.write(&self.output)
    }
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} bisect: {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

/// The output directory: new, or a bisect of the same inputs to resume.
fn open_output(options: &BisectOptions, inputs: &Inputs) -> Result<(PathBuf, bool)> {
    let dir = &options.lab.output;
    if dir.join(FILE_NAME).is_file() {
        let stored = Stored::load(dir)?;
        if stored.inputs != *inputs {
            bail!(
                "{} holds a bisect of other revisions or settings: choose a new -o DIR, or repeat that bisect's command to resume it",
                dir.display()
            );
        }
        return Ok((dir.clone(), true));
    }
    let dir = crate::run::directory::prepare(Some(dir), false)?;
    Ok((dir, false))
}

fn ceil_log2(n: usize) -> usize {
    (usize::BITS - n.saturating_sub(1).leading_zeros()) as usize
}

fn format_duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        0..60 => format!("{seconds} s"),
        _ => format!("{} min {} s", seconds / 60, seconds % 60),
    }
}

pub fn run(options: &BisectOptions) -> Result<ExitCode> {
    if options.max_repeats < options.lab.repeat.get() {
        bail!(
            "--max-repeats {} is below --repeat {}: give at least as many",
            options.max_repeats,
            options.lab.repeat
        );
    }
    let smp = match options.lab.smp.as_slice() {
        [smp] if *smp > 0 => *smp,
        _ => bail!("--smp: a bisect runs its guests with one CPU count, e.g. --smp 2"),
    };
    if let Some(path) = &options.lab.base_config
        && !path.is_file()
    {
        bail!("--config {} does not exist: give a kernel .config file", path.display());
    }
    let revisions = match &options.source {
        Source::Git { tree, good, bad } => revisions::from_git(&revisions::absolute_tree(tree)?, good, bad)?,
        Source::Specs(specs) => revisions::from_specs(specs)?,
    };
    let inputs = Inputs {
        revisions: revisions.clone(),
        metric: options.metric.clone(),
        direction: options.direction,
        run_args: options.lab.run_args.clone(),
        accel: match options.lab.accel {
            AccelChoice::Auto => "auto".to_owned(),
            AccelChoice::Only(accel) => accel.name().to_owned(),
        },
        smp,
        memory_mib: options.lab.memory_mib,
        append: options.lab.append.clone(),
        numa_nodes: options.lab.numa_nodes,
    };
    let (output, resumed) = open_output(options, &inputs)?;
    crate::children::stop_on_signals()?;
    let started = Instant::now();
    let mut bisect = Bisect {
        options,
        revisions,
        smp,
        output,
        kernels: HashMap::new(),
        bar: bar(),
        boots: 0,
        boot_seconds: 0.0,
        notes: options.lab.notes.clone(),
    };
    if resumed {
        bisect.notes.push(format!(
            "resumed in {}: its kept runs were reused",
            bisect.output.display()
        ));
    }
    for note in &bisect.notes {
        say(&bisect.bar, format!("note: {note}"));
    }
    let mut record = BisectRecord::new(options, &inputs, &bisect.output);
    let result = drive(&mut bisect, &mut record);
    bisect.bar.finish_and_clear();
    record.boots = bisect.boots;
    let mut prepared: Vec<(&usize, &BootableKernel)> = bisect
        .kernels
        .iter()
        .filter_map(|(index, kernel)| Some((index, kernel.as_ref().ok()?)))
        .collect();
    prepared.sort_by_key(|(index, _)| **index);
    record.kernels = prepared
        .into_iter()
        .map(|(_, k)| KernelUsed {
            label: k.kernel.label.clone(),
            image: k.kernel.image.path.clone(),
            vmlinux: k.kernel.vmlinux.clone(),
        })
        .collect();
    record.seconds = started.elapsed().as_secs_f64();
    record.notes = bisect.notes.clone();
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            // A refusal says so already; anything else failed.
            record.outcome.get_or_insert_with(|| Outcome::Failed {
                why: format!("{err:#}"),
            });
            bisect.write(&record)?;
            return Err(err);
        }
    };
    bisect.write(&record)?;
    let text = if options.lab.json {
        format!("{}\n", serde_json::to_string_pretty(&record)?)
    } else {
        record.to_text()
    };
    crate::output::print(&text)?;
    Ok(code)
}

/// The endpoints, then the steps, then the first bad commit's comparison.
fn drive(bisect: &mut Bisect, record: &mut BisectRecord) -> Result<ExitCode> {
    let last = bisect.revisions.len() - 1;
    let options = bisect.options;
    let repeat = options.lab.repeat.get() as usize;
    let max = options.max_repeats as usize;

    // The endpoints, interleaved (good, bad, good, bad, ...) in rounds of
    // --repeat, until they differ or --max-repeats is reached.
    let mut wanted = repeat;
    let (good, bad, check) = loop {
        let mut values = [Vec::new(), Vec::new()];
        for round in 1..=wanted {
            let flags = match options.source {
                Source::Git { .. } => ["--good", "--bad"],
                Source::Specs(_) => ["--kernel", "--kernel"],
            };
            for (slot, index, which) in [(0, 0, flags[0]), (1, last, flags[1])] {
                values[slot] = match bisect.measure(index, round) {
                    Ok(values) => values,
                    Err(Unmeasured::Interrupted(signal)) => return interrupted(bisect, record, signal),
                    Err(Unmeasured::Fatal(err)) => return Err(err),
                    Err(Unmeasured::Skip(why)) => {
                        bail!("{which} {}: {why}", bisect.revisions[index].spec)
                    }
                };
            }
        }
        let [good, bad] = values;
        let check = EndpointCheck::of(&options.metric, options.direction, &good, &bad);
        say(&bisect.bar, format!("endpoints: {}", check.describe()));
        if check.differ || wanted >= max {
            break (good, bad, check);
        }
        wanted = (wanted + repeat).min(max);
    };
    record.endpoints = Some(check.clone());
    bisect.write(record)?;
    if !check.differ {
        let why = check.refusal(options.direction);
        record.outcome = Some(Outcome::Refused { why: why.clone() });
        bisect.write(record)?;
        bail!("{why}");
    }
    if options.endpoints_only {
        record.outcome = Some(Outcome::EndpointsMeasured);
        return Ok(ExitCode::SUCCESS);
    }

    // Binary search between the last like-good (lo) and first like-bad (hi).
    let (mut lo, mut hi) = (0usize, last);
    let mut skipped: Vec<usize> = Vec::new();
    let expected_steps = ceil_log2(last);
    while hi - lo > 1 {
        let middle = (lo + hi) / 2;
        // The nearest revision to the middle not yet skipped.
        let Some(index) = (0..hi - lo)
            .flat_map(|d| [middle + d, middle.wrapping_sub(d)])
            .find(|&i| i > lo && i < hi && !skipped.contains(&i))
        else {
            break;
        };
        let number = record.steps.len() + 1;
        let step_started = Instant::now();
        let revision = bisect.revisions[index].clone();
        let left = hi - lo - 1;
        bisect.bar.set_message(format!(
            "step {number} of about {expected_steps}: {} ({left} candidates left)",
            revision.label
        ));
        let mut runs_wanted = repeat;
        let (verdict, classification, values) = loop {
            match bisect.measure(index, runs_wanted) {
                Err(Unmeasured::Interrupted(signal)) => return interrupted(bisect, record, signal),
                Err(Unmeasured::Fatal(err)) => return Err(err),
                Err(Unmeasured::Skip(why)) => break (StepVerdict::Skipped { why }, None, Vec::new()),
                Ok(values) => {
                    let c = classify(&good, &bad, &values);
                    match c.likeness {
                        Likeness::LikeGood => break (StepVerdict::LikeGood, Some(c), values),
                        Likeness::LikeBad => break (StepVerdict::LikeBad, Some(c), values),
                        Likeness::Unknown if runs_wanted >= max => {
                            let why = format!("still unknown after {} runs (--max-repeats {max})", values.len());
                            break (StepVerdict::Skipped { why }, Some(c), values);
                        }
                        Likeness::Unknown => {
                            say(
                                &bisect.bar,
                                format!(
                                    "step {number}: {}: unknown after {} runs ({}): {} more",
                                    revision.label,
                                    values.len(),
                                    describe_classification(&c),
                                    repeat.min(max - runs_wanted)
                                ),
                            );
                            runs_wanted = (runs_wanted + repeat).min(max);
                        }
                    }
                }
            }
        };
        match verdict {
            StepVerdict::LikeGood => lo = index,
            StepVerdict::LikeBad => hi = index,
            StepVerdict::Skipped { .. } => skipped.push(index),
        }
        let step = Step {
            number,
            index,
            label: revision.label.clone(),
            commit: revision.commit.clone(),
            subject: revision.subject.clone(),
            verdict,
            classification,
            runs: values,
            seconds: step_started.elapsed().as_secs_f64(),
        };
        let remaining = ceil_log2(hi - lo);
        let time_left = remaining as f64 * repeat as f64 * bisect.seconds_per_boot();
        say(
            &bisect.bar,
            format!(
                "{}; about {} left",
                step.describe(expected_steps),
                format_duration(time_left)
            ),
        );
        record.steps.push(step);
        bisect.write(record)?;
    }

    // The end: the first bad revision, or the range the skips left.
    let between: Vec<usize> = (lo + 1..hi).collect();
    if !between.is_empty() {
        record.outcome = Some(Outcome::Ambiguous {
            candidates: (lo + 1..=hi).map(|i| bisect.revisions[i].label.clone()).collect(),
        });
        record.git_bisect_log = git_log(bisect, record, None)?;
        return Ok(ExitCode::FAILURE);
    }
    let first_bad = first_bad(bisect, lo, hi)?;
    record.outcome = Some(Outcome::FirstBad(Box::new(first_bad)));
    record.git_bisect_log = git_log(bisect, record, Some(hi))?;
    Ok(ExitCode::SUCCESS)
}

/// "p against good 0.029, against bad 0.69; at 0.98 of the way from good to bad".
pub(crate) fn describe_classification(c: &Classification) -> String {
    let p = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.3}"));
    format!(
        "p against good {}, against bad {}; at {} of the way from good to bad",
        p(c.p_good),
        p(c.p_bad),
        c.position.map_or("-".to_owned(), |at| format!("{at:.2}"))
    )
}

/// The replayable `git bisect` log, written beside bisect.json.
fn git_log(bisect: &Bisect, record: &BisectRecord, first_bad: Option<usize>) -> Result<Option<PathBuf>> {
    if bisect.revisions[0].commit.is_none() {
        return Ok(None);
    }
    let verdicts: Vec<(usize, &str)> = record
        .steps
        .iter()
        .map(|step| {
            let word = match step.verdict {
                StepVerdict::LikeGood => "good",
                StepVerdict::LikeBad => "bad",
                StepVerdict::Skipped { .. } => "skip",
            };
            (step.index, word)
        })
        .collect();
    let path = bisect.output.join("git-bisect.log");
    crate::output::write_atomically(
        &path,
        revisions::bisect_log(&bisect.revisions, &verdicts, first_bad).as_bytes(),
    )?;
    Ok(Some(path))
}

/// The first bad revision and its comparison against its parent, with the
/// debug info of both kernels when the lab built them.
fn first_bad(bisect: &mut Bisect, parent: usize, culprit: usize) -> Result<FirstBad> {
    let revision = bisect.revisions[culprit].clone();
    let diff_stat = match (&bisect.options.source, &revision.commit) {
        (Source::Git { tree, .. }, Some(commit)) => Some(revisions::diff_stat(tree, commit)?),
        _ => None,
    };
    let mut sides = Vec::new();
    let mut vmlinux = bisect.options.lab.vmlinux.clone();
    for index in [parent, culprit] {
        let side = compare::Side::load(bisect.revisions[index].label.clone(), &bisect.side_dir(index))?;
        sides.push(side);
        if let Ok(kernel) = bisect.kernel(index)?
            && let Some(path) = &kernel.kernel.vmlinux
        {
            vmlinux.push(path.clone());
        }
    }
    // The vmlinuxes of the other revisions match neither side: not an error here.
    crate::debuginfo::apply_matching(
        &vmlinux,
        sides
            .iter_mut()
            .flat_map(|side| side.runs.iter_mut().map(|run| &mut run.report)),
    )?;
    let dir = bisect.output.join("first-bad");
    let comparison = compare::compare_into(&sides, &dir)?;
    let delta = comparison
        .against_baseline
        .first()
        .map(KernelDelta::of)
        .context("the comparison has no pair")?;
    Ok(FirstBad {
        label: revision.label,
        commit: revision.commit,
        subject: revision.subject,
        parent: bisect.revisions[parent].label.clone(),
        diff_stat,
        comparison_dir: dir,
        comparison: delta,
    })
}

/// A bisect stopped by a signal: what it did is written, and the same
/// command resumes it.
fn interrupted(bisect: &mut Bisect, record: &mut BisectRecord, signal: i32) -> Result<ExitCode> {
    bisect.notes.push(format!(
        "interrupted by {}: run the same command with the same -o to resume",
        crate::children::signal_name(signal)
    ));
    record.outcome = Some(Outcome::Interrupted {
        signal: crate::children::signal_name(signal).to_owned(),
    });
    Ok(ExitCode::from(128 + signal as u8))
}

/// `bisect-step`: revision `rev` of the bisect stored in `options`'s
/// directory decided against its endpoints' runs. Exit 0 like good, 1 like
/// bad, 125 skip (`git bisect run`'s codes).
pub fn step(options: &BisectOptions, rev: Option<&str>) -> Result<ExitCode> {
    let stored = Stored::load(&options.lab.output)?;
    let revs = &stored.inputs.revisions;
    let (Some(good), Some(bad)) = (revs.first(), revs.last()) else {
        bail!("the stored bisect has no revisions");
    };
    // The tree as the bisect resolved it (absolute), not as it was typed.
    let KernelSpec::Tree(tree) = KernelSpec::parse(&good.spec)? else {
        bail!("bisect-step decides git revisions: the bisect in this directory is of --kernel specs");
    };
    let tree = tree.path;
    let commit = match rev {
        Some(rev) => revisions::commit_of(&tree, "--rev", rev)?,
        None => revisions::head(&tree)?,
    };
    let mut candidates = vec![good.clone(), bad.clone()];
    let short = &commit[..12.min(commit.len())];
    let spec = format!("tree:{}@{short}", tree.display());
    candidates.push(Revision {
        label: KernelSpec::parse(&spec)?.label(),
        spec,
        commit: Some(commit.clone()),
        subject: String::new(),
    });
    let smp = stored.inputs.smp;
    crate::children::stop_on_signals()?;
    let mut bisect = Bisect {
        options,
        revisions: candidates,
        smp,
        output: options.lab.output.clone(),
        kernels: HashMap::new(),
        bar: bar(),
        boots: 0,
        boot_seconds: 0.0,
        notes: Vec::new(),
    };
    let (good_values, bad_values) = (bisect.values(0)?, bisect.values(1)?);
    if good_values.len() < options.lab.repeat.get() as usize || bad_values.len() < options.lab.repeat.get() as usize {
        bail!(
            "{} has no measured endpoints: run `mprotect-trace bisect ... --endpoints-only -o {}` first",
            options.lab.output.display(),
            options.lab.output.display()
        );
    }
    let repeat = options.lab.repeat.get() as usize;
    let max = options.max_repeats as usize;
    let mut wanted = repeat;
    let result = loop {
        match bisect.measure(2, wanted) {
            Err(Unmeasured::Interrupted(signal)) => {
                bisect.bar.finish_and_clear();
                return Ok(ExitCode::from(128 + signal as u8));
            }
            Err(Unmeasured::Fatal(err)) => {
                bisect.bar.finish_and_clear();
                return Err(err);
            }
            Err(Unmeasured::Skip(why)) => break (125u8, format!("skip: {why}")),
            Ok(values) => {
                let c = classify(&good_values, &bad_values, &values);
                let text = format!(
                    "{} ({}; {} runs)",
                    c.likeness.name(),
                    describe_classification(&c),
                    values.len()
                );
                match c.likeness {
                    Likeness::LikeGood => break (0, text),
                    Likeness::LikeBad => break (1, text),
                    Likeness::Unknown if wanted >= max => break (125, format!("skip: {text}")),
                    Likeness::Unknown => wanted = (wanted + repeat).min(max),
                }
            }
        }
    };
    bisect.bar.finish_and_clear();
    println!("bisect-step: {short}: {}", result.1);
    Ok(ExitCode::from(result.0))
}
