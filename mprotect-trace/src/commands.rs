//! One function per subcommand: what the binary calls once the flags are
//! parsed. Each returns the process's exit code or a one-line error.

use std::num::NonZeroU32;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::bisect::BisectOptions;
use crate::lab::LabOptions;
use crate::model::Report;
use crate::options::{
    AbOptions, CompareOptions, DoctorOptions, FleetReportOptions, FleetRunOptions, InlineSitesOptions, PlotOptions,
    PrintFormat, ReportOptions, RunOptions, WorkloadCommandOptions,
};
use crate::{bisect, compare, debuginfo, doctor, fleet, lab, output, series, workload};

/// `run`: trace, print the table, write the run's directory; with
/// `repeat` above 1, that many runs, each in its own directory.
pub fn run(options: RunOptions, repeat: NonZeroU32) -> Result<ExitCode> {
    match repeat.get() {
        1 => crate::run::run(options),
        runs if options.quiet => {
            anyhow::bail!("--quiet is for one run: with --repeat {runs} each run says its line on stderr; drop --quiet")
        }
        runs => series::repeat(options, runs),
    }
}

/// `ab`: configurations in interleaved order, then their comparison.
pub fn ab(options: &AbOptions) -> Result<ExitCode> {
    series::interleaved(options)
}

/// `report DIR`: the table of a saved run (or its mail text, or its JSON).
pub fn report(options: &ReportOptions) -> Result<ExitCode> {
    let (top, format) = (options.top, options.format);
    let mut report = Report::load(&options.path)?;
    if let Some(vmlinux) = &options.vmlinux {
        debuginfo::Vmlinux::for_report(vmlinux, &report)?.symbolize(&mut report)?;
    }
    match format {
        PrintFormat::Text => {
            print!("{}", output::table::render_top(&report, top));
            if let Some(workload) = &report.workload {
                println!("{}", workload.result_line());
            }
        }
        PrintFormat::Mail => print!("{}", output::mail::render(&report, top)),
        PrintFormat::Json => print!("{}", String::from_utf8_lossy(&report.to_json()?)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `plot DIR`: everything `run` drew, drawn again from report.json.
pub fn plot(options: &PlotOptions) -> Result<ExitCode> {
    let path = options.path.as_path();
    let mut report = Report::load(path)?;
    if let Some(vmlinux) = &options.vmlinux {
        debuginfo::Vmlinux::for_report(vmlinux, &report)?.symbolize(&mut report)?;
    }
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    let written = output::write(&report, output::Formats::Redraw, dir).map_err(|err| {
        anyhow::anyhow!("{err:#} (plot redraws into the run's own directory: copy the run somewhere you can write)")
    })?;
    let html = written
        .iter()
        .find(|path| path.ends_with(output::html::FILE_NAME))
        .map_or_else(|| dir.display().to_string(), |path| path.display().to_string());
    println!("wrote the plots and {html}");
    Ok(ExitCode::SUCCESS)
}

/// `compare A B [C ...]`.
pub fn compare(options: &CompareOptions) -> Result<ExitCode> {
    let mut sides = options
        .sides
        .iter()
        .enumerate()
        .map(|(index, path)| compare::Side::load(compare::label(index), path))
        .collect::<Result<Vec<_>>>()?;
    debuginfo::apply(
        &options.vmlinux,
        sides
            .iter_mut()
            .flat_map(|side| side.runs.iter_mut().map(|run| &mut run.report)),
    )?;
    let comparison = compare::compare(&sides, options.force.then_some("--force"))?;
    compare::publish(&sides, &comparison, options.output.as_deref(), options.format)?;
    Ok(ExitCode::SUCCESS)
}

/// `workload`: the toggle loop alone, no BPF.
pub fn workload(options: &WorkloadCommandOptions) -> Result<ExitCode> {
    let plan = options.workload.plan()?;
    let numa = plan.scenario == workload::Scenario::NumaHinting;
    if numa {
        workload::numa::check_machine()?;
    }
    let knobs = match plan.folio_kb {
        Some(folio_kb) => {
            let shared = plan.scenario == workload::Scenario::SharedDirtyToggle;
            workload::mthp::Knobs::set(folio_kb, shared)?
        }
        None => workload::mthp::Knobs::new(),
    };
    if numa && let Err(err) = workload::numa::set_knobs(&knobs) {
        knobs.restore();
        return Err(err);
    }
    // Set before any thread starts, so every thread inherits the blocked
    // signals; numa-hinting stays one thread.
    let _knobs = match (numa, plan.folio_kb.is_some()) {
        (true, _) => Some(knobs.restored_on_stop()?),
        (false, true) => Some(knobs.restored_on_signal()?),
        (false, false) => None,
    };
    if options.wait_for_start {
        workload::stop_on_sigusr1()?;
    }
    let start_gate: workload::StartGate = if options.wait_for_start {
        &workload::wait_for_stdin
    } else {
        &|| Ok(())
    };
    let result = workload::run(&plan, start_gate, options.wait_for_start)?;
    if options.json {
        output::print(&format!("{}\n", serde_json::to_string_pretty(&result)?))?;
    } else {
        output::print(&format!("{}\n", result.result_line()))?;
    }
    if options.wait_for_start {
        workload::wait_for_exit_gate()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `doctor`: what this kernel supports, and the plan for each target.
pub fn doctor(options: &DoctorOptions) -> Result<ExitCode> {
    let report = doctor::diagnose(options)?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `inline-sites --vmlinux PATH`: where the targets (and `probes`) are
/// inlined in that kernel; with `output`, the sites file `run
/// --inline-sites` reads on a machine that runs it.
pub fn inline_sites(options: &InlineSitesOptions) -> Result<ExitCode> {
    let (vmlinux, probes, output_file, json) = (
        options.vmlinux.as_path(),
        &options.probes,
        options.output.as_deref(),
        options.json,
    );
    if !vmlinux.is_file() {
        anyhow::bail!("--vmlinux {} does not exist", vmlinux.display());
    }
    let names: Vec<String> = crate::targets::with_user_probes(probes)
        .into_iter()
        .map(|target| target.name.into_owned())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let sites = debuginfo::inline_sites::read(vmlinux, &names)?;
    let text = serde_json::to_string_pretty(&sites)?;
    if json {
        output::print(&format!("{text}\n"))?;
    } else {
        output::print(&output::inline_sites::render(&sites))?;
    }
    if let Some(path) = output_file {
        output::write_atomically(path, format!("{text}\n").as_bytes())?;
        output::stderr_line(&format!(
            "wrote {}: give it to `mprotect-trace run --inline-sites` on a machine running this kernel",
            path.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab`: kernels booted side by side under QEMU, compared.
pub fn lab(options: &LabOptions) -> Result<ExitCode> {
    lab::run(options)
}

/// `lab --print-config`: the config fragment every lab kernel needs.
pub fn lab_config() -> Result<ExitCode> {
    output::print(lab::config::FRAGMENT)?;
    Ok(ExitCode::SUCCESS)
}

/// `bisect`: the commit (or kernel) that made mprotect slower.
pub fn bisect(options: &BisectOptions) -> Result<ExitCode> {
    bisect::run(options)
}

/// `bisect-step DIR`: one revision decided against a stored bisect's
/// endpoints; any error exits 128, which stops `git bisect run` instead of
/// marking the revision.
pub fn bisect_step(options: Result<BisectOptions>, rev: Option<&str>) -> ExitCode {
    options
        .and_then(|options| bisect::step(&options, rev))
        .unwrap_or_else(|err| {
            output::stderr_line(&format!("error: {err:#}"));
            ExitCode::from(128)
        })
}

/// `fleet run`: one invocation on every host of an inventory.
pub fn fleet_run(options: &FleetRunOptions) -> Result<ExitCode> {
    fleet::run(options)
}

/// `fleet report DIR`.
pub fn fleet_report(options: &FleetReportOptions) -> Result<ExitCode> {
    fleet::report(&options.dir, options.output.as_deref(), options.format)
}

/// `fleet playbook`: the playbook `fleet run` runs.
pub fn fleet_playbook() -> Result<ExitCode> {
    output::print(fleet::PLAYBOOK)?;
    Ok(ExitCode::SUCCESS)
}
