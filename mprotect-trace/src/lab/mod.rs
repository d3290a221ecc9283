//! `mprotect-trace lab`: several kernels booted under QEMU, the same traced
//! workload in each, repeated in interleaved order, and the kernels
//! compared run by run, as the regression reports in this field are made
//! by hand. Each boot runs one `mprotect-trace run` in the guest and brings
//! its report back over the serial console.

pub mod config;
pub mod kernels;
pub mod summary;
pub mod tree;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::compare;
use crate::model::Report;
use crate::vm::{Accel, Console, GuestScript, Initramfs, Machine, Stopped, kvm_boots};
use kernels::{KernelSpec, LabKernel, ResolveOptions};
use summary::{BootOutcome, LabSummary};

/// `--accel`: as asked, or KVM where it works and TCG elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Only(Accel),
}

#[derive(Clone, Debug)]
pub struct LabOptions {
    /// `--kernel` specs, in order: the first is the baseline.
    pub kernels: Vec<String>,
    /// The guest's `run` options, as words (checked by the caller).
    pub run_args: Vec<String>,
    /// Boots of each kernel (and CPU count).
    pub repeat: std::num::NonZeroU32,
    /// Guest CPU counts; every kernel runs with each.
    pub smp: Vec<u32>,
    pub memory_mib: u32,
    pub accel: AccelChoice,
    /// Boots tried again after a failed boot or run.
    pub retries: u32,
    pub output: PathBuf,
    pub arm64_tracer: Option<PathBuf>,
    /// Debug vmlinux files, each applied (by build id) to its kernel's runs
    /// in the comparisons.
    pub vmlinux: Vec<PathBuf>,
    /// Where Debian kernels are downloaded and unpacked, and trees built.
    pub cache: PathBuf,
    /// `--config`: the base config of kernels built from trees.
    pub base_config: Option<PathBuf>,
    /// Words added to every guest's kernel command line.
    pub append: String,
    /// NUMA nodes every guest has (1: no NUMA topology).
    pub numa_nodes: u32,
    /// The targets whose inlined instances a guest probes when its kernel
    /// comes with a vmlinux (one the lab built); `None` when the guests'
    /// run probes no function or brings its own sites.
    pub guest_inline_targets: Option<Vec<String>>,
    /// What the caller changed in the guests' run, said in the summary.
    pub notes: Vec<String>,
    /// QEMU is stopped after this long.
    pub boot_timeout: Duration,
    pub json: bool,
}

/// The file the guest's report is saved as in each run directory.
const CONSOLE_LOG: &str = "console.log";
/// Where a guest finds the inline sites the host read from its vmlinux
/// (the guest has no room for the vmlinux itself).
const GUEST_INLINE_SITES: &str = "/inline-sites.json";

/// The default kernel cache: `$XDG_CACHE_HOME/mprotect-trace/kernels`.
pub fn default_cache() -> PathBuf {
    cache_home().join("kernels")
}

/// `$XDG_CACHE_HOME/mprotect-trace` (`~/.cache/mprotect-trace`).
pub fn cache_home() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    base.join("mprotect-trace")
}

/// One boot of the plan: which kernel, with how many CPUs, which repeat.
#[derive(Clone, Copy, Debug)]
struct Boot {
    kernel: usize,
    smp: u32,
    repeat: u32,
}

/// The boots in interleaved order: every kernel and CPU count once per
/// repeat (A B C A B C ...), so a drift over time hits every kernel alike.
fn interleaved(kernels: usize, smp: &[u32], repeat: u32) -> Vec<Boot> {
    (1..=repeat)
        .flat_map(|repeat| {
            (0..kernels).flat_map(move |kernel| smp.iter().map(move |&smp| Boot { kernel, smp, repeat }))
        })
        .collect()
}

/// The directory of one kernel's runs with `smp` CPUs: a side for `compare`.
fn side_dir(output: &Path, kernel: &LabKernel, smp: u32) -> PathBuf {
    output.join(&kernel.label).join(format!("smp-{smp}"))
}

/// The guest machine of one boot with `smp` CPUs.
fn machine(options: &LabOptions, accel: Accel, smp: u32) -> Machine {
    Machine {
        accel,
        memory_mib: options.memory_mib,
        cpus: smp,
        timeout: options.boot_timeout,
        append: options.append.clone(),
        numa_nodes: options.numa_nodes,
    }
}

/// The guest's init: its CPU count and NUMA nodes, then the traced run.
fn guest_script(run_args: &[String]) -> String {
    let args = shlex::try_join(run_args.iter().map(String::as_str)).unwrap_or_default();
    GuestScript::new()
        .shell("echo ===BEGIN cpus===; nproc; echo ===END cpus===")
        .shell("echo ===BEGIN nodes===; ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l; echo ===END nodes===")
        .run("run", &args)
        .finish()
}

/// Checks one boot's console: the guest ran its init to the end, has the
/// CPUs asked for, and its run succeeded with a report.
fn read_boot(console: &Console, smp: u32, numa_nodes: u32) -> Result<Report> {
    if let Some(stopped) = console.stopped {
        bail!("{}", stopped.describe());
    }
    if !console.init_done() {
        bail!("the guest did not finish its init (a failed boot)");
    }
    let cpus = console.section("cpus").map(str::trim).unwrap_or_default();
    if cpus != smp.to_string() {
        bail!("the guest has {cpus:?} CPUs, not the {smp} asked for");
    }
    // A kernel without CONFIG_NUMA has no node directory: one node.
    let nodes = console
        .section("nodes")
        .map(str::trim)
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0)
        .max(1);
    if nodes != numa_nodes.max(1) {
        bail!("the guest sees {nodes} NUMA node(s), not the {numa_nodes} asked for (its kernel needs CONFIG_NUMA)");
    }
    if !console.text.contains("run exit status 0") {
        let status = console
            .text
            .lines()
            .find(|line| line.starts_with("run exit status"))
            .unwrap_or("run exit status unknown");
        // The tracer's own one-line error, printed between its status and its report.
        let error = console
            .text
            .lines()
            .skip_while(|line| !line.starts_with("run exit status"))
            .take_while(|line| !line.starts_with("===BEGIN run==="))
            .filter(|line| line.starts_with("error:"))
            .last();
        match error {
            Some(error) => bail!("the traced run failed in the guest ({status}): {error}"),
            None => bail!("the traced run failed in the guest ({status})"),
        }
    }
    console.report("run")
}

/// A line above the bar, or on stderr as it is when no bar is drawn
/// (stderr is not a terminal: indicatif then prints nothing).
pub(crate) fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

pub(crate) fn progress(boots: usize) -> ProgressBar {
    let bar = ProgressBar::new(boots as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} boots, {elapsed} elapsed, about {eta} left: {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Which accelerator a kernel boots with, and a note when `auto` fell back.
fn accel_for(choice: AccelChoice, kernel: &LabKernel) -> (Accel, Option<String>) {
    match choice {
        AccelChoice::Only(accel) => (accel, None),
        AccelChoice::Auto => match kvm_boots(&kernel.image) {
            Ok(()) => (Accel::Kvm, None),
            Err(why) => (
                Accel::Tcg,
                Some(format!(
                    "{}: KVM cannot boot it here ({why}); TCG instead: times are emulated",
                    kernel.label
                )),
            ),
        },
    }
}

/// Boots `kernel` until its run succeeds or the retries are spent; every
/// failed attempt's console is kept beside the run's directory.
fn boot_with_retries(
    kernel: &LabKernel,
    machine: &Machine,
    initramfs: &Initramfs,
    run_dir: &Path,
    retries: u32,
    bar: &ProgressBar,
) -> Result<BootOutcome> {
    let mut failures = Vec::new();
    for attempt in 0..=retries {
        // While it runs, the bar shows the console's last line; its first
        // says the guest is up.
        let first = std::cell::Cell::new(true);
        let show = |line: &str| {
            if first.replace(false) {
                say(
                    bar,
                    format!(
                        "lab: booting {} with {} CPUs (attempt {})",
                        kernel.label,
                        machine.cpus,
                        attempt + 1
                    ),
                );
            }
            if !line.trim().is_empty() {
                bar.set_message(format!("{}: {}", kernel.label, line.trim()));
            }
        };
        let (console, why, again) = match machine.boot(&kernel.image, initramfs, &show) {
            Ok(console) => match read_boot(&console, machine.cpus, machine.numa_nodes) {
                Ok(report) => {
                    std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
                    std::fs::write(run_dir.join(CONSOLE_LOG), &console.text)?;
                    crate::output::write_atomically(
                        &run_dir.join(crate::model::report::FILE_NAME),
                        &report.to_json()?,
                    )?;
                    return Ok(BootOutcome::succeeded(run_dir, failures));
                }
                // A halt is the kernel's config: booting again ends the same.
                Err(why) => {
                    let again = console.stopped.is_none_or(Stopped::retry_helps);
                    (console.text, why, again)
                }
            },
            Err(why) => (format!("{why:#}\n"), why, true),
        };
        let again = again && attempt < retries && crate::children::interrupted().is_none();
        let log = run_dir.with_file_name(format!(
            "{}.failed-{}.log",
            run_dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            attempt + 1
        ));
        std::fs::create_dir_all(log.parent().context("a run directory has a parent")?)?;
        std::fs::write(&log, console).with_context(|| format!("writing {}", log.display()))?;
        say(
            bar,
            format!(
                "lab: {} ({} CPUs) failed: {why:#}; its console is {}{}",
                kernel.label,
                machine.cpus,
                log.display(),
                if again { "; booting again" } else { "" }
            ),
        );
        failures.push(format!("{why:#} (console: {})", log.display()));
        if !again {
            break;
        }
    }
    Ok(BootOutcome::failed(run_dir, failures))
}

pub fn run(options: &LabOptions) -> Result<ExitCode> {
    if options.smp.is_empty() || options.smp.contains(&0) {
        bail!("--smp takes CPU counts of 1 or more, e.g. --smp 1,2");
    }
    if options.numa_nodes == 0 {
        bail!("--numa-nodes must be at least 1 (got 0)");
    }
    if let Some(path) = &options.base_config
        && !path.is_file()
    {
        bail!("--config {} does not exist: give a kernel .config file", path.display());
    }
    let specs: Vec<(&String, Result<KernelSpec>)> = options
        .kernels
        .iter()
        .map(|text| (text, KernelSpec::parse(text)))
        .collect();
    let started = std::time::Instant::now();
    let output = crate::run::directory::prepare(Some(&options.output), false)?;
    // From here on a signal stops the builds and guests, and what ran is
    // summarized.
    crate::children::stop_on_signals()?;
    let resolving = ResolveOptions {
        cache: &options.cache,
        arm64_tracer: options.arm64_tracer.as_deref(),
        base_config: options.base_config.as_deref(),
        output: &output,
    };
    // Every kernel that can be booted is: one that cannot is one line, not
    // the end of the lab.
    let mut kernels: Vec<LabKernel> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for (text, spec) in specs {
        if crate::children::interrupted().is_some() {
            break;
        }
        match spec.and_then(|spec| kernels::resolve(&spec, &resolving)) {
            Ok(kernel) => {
                eprintln!("lab: {text}: {} ({})", kernel.image.source, kernel.image.arch.debian());
                kernels.push(kernel);
            }
            Err(err) => {
                eprintln!("error: --kernel {text}: {err:#}");
                refused.push(format!("{text}: {err:#}"));
            }
        }
    }
    if let Some(signal) = crate::children::interrupted() {
        return interrupted_early(options, &output, signal, refused);
    }
    if kernels.is_empty() {
        // Nothing was run: no empty directory is left behind (a build log stays).
        let _ = std::fs::remove_dir(&output);
        bail!("no kernel to boot: every --kernel was refused");
    }
    let kernels_ready_s = started.elapsed().as_secs_f64();
    eprintln!("lab: {} kernels ready in {kernels_ready_s:.1} s", kernels.len());
    let mut notes = options.notes.clone();
    if !options.run_args.iter().any(|word| word.starts_with("--backend")) {
        notes.push(
            "function probes add their own cost to the times compared, and differently on each kernel (what each inlines differs): --run \"--backend none ...\" times the workload with the syscall tracepoints and sampling only".to_owned(),
        );
    }
    let accels: Vec<Accel> = kernels
        .iter()
        .map(|kernel| {
            let (accel, note) = accel_for(options.accel, kernel);
            notes.extend(note);
            accel
        })
        .collect();
    for note in &notes {
        eprintln!("note: {note}");
    }
    let initramfs: Vec<Initramfs> = kernels
        .iter()
        .map(|kernel| guest_initramfs(kernel, options, &output))
        .collect::<Result<_>>()?;

    let plan = interleaved(kernels.len(), &options.smp, options.repeat.get());
    let bar = progress(plan.len());
    let mut outcomes: Vec<(usize, u32, BootOutcome)> = Vec::new();
    for boot in &plan {
        let kernel = &kernels[boot.kernel];
        bar.set_message(format!(
            "{} with {} CPUs, repeat {}",
            kernel.label, boot.smp, boot.repeat
        ));
        let machine = machine(options, accels[boot.kernel], boot.smp);
        let run_dir = side_dir(&output, kernel, boot.smp).join(format!("run-{:02}", boot.repeat));
        let outcome = boot_with_retries(
            kernel,
            &machine,
            &initramfs[boot.kernel],
            &run_dir,
            options.retries,
            &bar,
        )?;
        outcomes.push((boot.kernel, boot.smp, outcome));
        bar.inc(1);
        if crate::children::interrupted().is_some() {
            break;
        }
    }
    bar.finish_and_clear();
    let interrupted = crate::children::interrupted();
    if let Some(signal) = interrupted {
        notes.push(format!(
            "interrupted by {} after {} of {} boots: the summary covers those",
            crate::children::signal_name(signal),
            outcomes.len(),
            plan.len()
        ));
    }
    // The kernels the lab built bring their own debug info.
    let vmlinux: Vec<PathBuf> = options
        .vmlinux
        .iter()
        .cloned()
        .chain(kernels.iter().filter_map(|kernel| kernel.vmlinux.clone()))
        .collect();

    // Per CPU count, the kernels compared: the first kernel with runs is
    // the baseline.
    let mut comparisons = Vec::new();
    for &smp in &options.smp {
        let mut sides: Vec<compare::Side> = kernels
            .iter()
            .map(|kernel| side_dir(&output, kernel, smp))
            .zip(&kernels)
            .filter(|(dir, _)| dir.is_dir())
            .map(|(dir, kernel)| compare::Side::load(kernel.label.clone(), &dir))
            .filter_map(Result::ok)
            .collect();
        if sides.len() < 2 {
            continue;
        }
        // With debug info, inlined functions are compared as functions.
        if let Err(err) = crate::debuginfo::apply(
            &vmlinux,
            sides
                .iter_mut()
                .flat_map(|side| side.runs.iter_mut().map(|run| &mut run.report)),
        ) {
            eprintln!("error: {err:#}");
            refused.push(format!("--vmlinux: {err:#}"));
        }
        let dir = output.join(format!("comparison-smp-{smp}"));
        let comparison = compare::compare_into(&sides, &dir)?;
        comparisons.push((smp, dir, comparison));
    }
    let mut summary = LabSummary::new(options, &kernels, &accels, &outcomes, &comparisons, refused, notes)?;
    summary.kernels_ready_s = Some(kernels_ready_s);
    summary.write(&output)?;
    let text = if options.json {
        format!("{}\n", serde_json::to_string_pretty(&summary)?)
    } else {
        summary.to_text()
    };
    crate::output::print(&text)?;
    Ok(match interrupted {
        Some(signal) => ExitCode::from(128 + signal as u8),
        None if summary.complete() => ExitCode::SUCCESS,
        None => ExitCode::FAILURE,
    })
}

/// One kernel resolved (downloaded or built), its config checked and its
/// initramfs packed: booted one run at a time by those that plan their own
/// boots (`bisect`).
pub struct BootableKernel {
    pub kernel: LabKernel,
    accel: Accel,
    initramfs: Initramfs,
}

impl BootableKernel {
    /// Resolves `spec` as `lab` does (downloads or builds it, checks its
    /// config) and names it `label`. An error here is the kernel's.
    pub fn resolve(spec: &KernelSpec, label: &str, options: &LabOptions, output: &Path) -> Result<LabKernel> {
        let mut kernel = kernels::resolve(
            spec,
            &ResolveOptions {
                cache: &options.cache,
                arm64_tracer: options.arm64_tracer.as_deref(),
                base_config: options.base_config.as_deref(),
                output,
            },
        )?;
        kernel.label = label.to_owned();
        Ok(kernel)
    }

    /// Packs the initramfs of a resolved kernel in `output/<label>`: an
    /// error here is this host's. Returns the note of an `auto`
    /// accelerator that fell back to TCG.
    pub fn pack(kernel: LabKernel, options: &LabOptions, output: &Path) -> Result<(Self, Option<String>)> {
        let (accel, note) = accel_for(options.accel, &kernel);
        let initramfs = guest_initramfs(&kernel, options, output)?;
        Ok((
            Self {
                kernel,
                accel,
                initramfs,
            },
            note,
        ))
    }

    /// One boot with `smp` CPUs, its report kept in `run_dir`, retried as
    /// `lab` retries.
    pub fn boot(&self, options: &LabOptions, smp: u32, run_dir: &Path, bar: &ProgressBar) -> Result<BootOutcome> {
        let machine = machine(options, self.accel, smp);
        boot_with_retries(&self.kernel, &machine, &self.initramfs, run_dir, options.retries, bar)
    }
}

/// One kernel's initramfs. A kernel with a vmlinux gets the inline sites
/// of the guests' targets, read on the host, and its guests' runs probe
/// them (`run --inline-sites`).
fn guest_initramfs(kernel: &LabKernel, options: &LabOptions, output: &Path) -> Result<Initramfs> {
    let dir = output.join(&kernel.label);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let sites = match (&kernel.vmlinux, &options.guest_inline_targets) {
        (Some(vmlinux), Some(targets)) => {
            let names: Vec<&str> = targets.iter().map(String::as_str).collect();
            let sites = crate::debuginfo::inline_sites::read(vmlinux, &names)
                .with_context(|| format!("{}: reading inline sites", kernel.label))?;
            let path = dir.join("inline-sites.json");
            crate::output::write_atomically(&path, format!("{}\n", serde_json::to_string_pretty(&sites)?).as_bytes())?;
            let placed: Vec<String> = sites
                .functions
                .iter()
                .filter(|f| !f.instances.is_empty())
                .map(|f| format!("{} ({} instances)", f.name, f.instances.len()))
                .collect();
            if !placed.is_empty() {
                eprintln!(
                    "lab: {}: inline sites from its vmlinux: {}",
                    kernel.label,
                    placed.join(", ")
                );
            }
            Some(path)
        }
        _ => None,
    };
    let mut run_args = options.run_args.clone();
    let files: Vec<(&Path, &str)> = match &sites {
        Some(path) => {
            run_args.extend(["--inline-sites".to_owned(), GUEST_INLINE_SITES.to_owned()]);
            vec![(path.as_path(), GUEST_INLINE_SITES)]
        }
        None => Vec::new(),
    };
    let initramfs = Initramfs::build_with(&dir, &kernel.busybox, &kernel.tracer, &guest_script(&run_args), &files)?;
    // Only the packed archive is kept: the staging tree is a copy.
    let _ = std::fs::remove_dir_all(dir.join("initramfs"));
    Ok(initramfs)
}

/// A lab stopped by `signal` before any boot (while building or
/// downloading): its summary says so and lists what was refused.
fn interrupted_early(options: &LabOptions, output: &Path, signal: i32, refused: Vec<String>) -> Result<ExitCode> {
    let notes = vec![format!(
        "interrupted by {} before any kernel booted",
        crate::children::signal_name(signal)
    )];
    let summary = LabSummary::new(options, &[], &[], &[], &[], refused, notes)?;
    summary.write(output)?;
    eprint!("{}", summary.to_text());
    Ok(ExitCode::from(128 + signal as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boots_go_in_interleaved_order() {
        let order: Vec<(usize, u32, u32)> = interleaved(3, &[1, 2], 2)
            .iter()
            .map(|b| (b.kernel, b.smp, b.repeat))
            .collect();
        assert_eq!(
            order,
            [
                (0, 1, 1),
                (0, 2, 1),
                (1, 1, 1),
                (1, 2, 1),
                (2, 1, 1),
                (2, 2, 1),
                (0, 1, 2),
                (0, 2, 2),
                (1, 1, 2),
                (1, 2, 2),
                (2, 1, 2),
                (2, 2, 2)
            ]
        );
    }

    #[test]
    fn a_boot_is_read_only_when_it_ran_what_was_asked() {
        let console = |text: &str| Console {
            text: text.to_owned(),
            stopped: None,
        };
        let done = crate::vm::console::INIT_DONE;
        let err = |text: &str, smp| format!("{:#}", read_boot(&console(text), smp, 1).unwrap_err());
        assert_eq!(
            err("Kernel panic", 1),
            "the guest did not finish its init (a failed boot)"
        );
        assert_eq!(
            err(&format!("===BEGIN cpus===\n2\n===END cpus===\n{done}\n"), 1),
            "the guest has \"2\" CPUs, not the 1 asked for"
        );
        assert_eq!(
            err(
                &format!("===BEGIN cpus===\n1\n===END cpus===\nrun exit status 1\n{done}\n"),
                1
            ),
            "the traced run failed in the guest (run exit status 1)"
        );
        // Two nodes asked for, a kernel without CONFIG_NUMA: no node directory.
        let no_numa = format!("===BEGIN cpus===\n2\n===END cpus===\n===BEGIN nodes===\n0\n===END nodes===\n{done}\n");
        assert_eq!(
            format!("{:#}", read_boot(&console(&no_numa), 2, 2).unwrap_err()),
            "the guest sees 1 NUMA node(s), not the 2 asked for (its kernel needs CONFIG_NUMA)"
        );
    }
}
