mod cli;
mod collect;
mod compare;
mod doctor;
mod ebpf_object;
mod kernel;
mod output;
mod probes;
mod run;
mod sampling;
mod workload;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser as _;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, every context joined: "error: outer: inner".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Report(args) => {
            let report = output::report::Report::load(&args.dir)?;
            print!("{}", output::table::render(&report));
            if let Some(workload) = &report.workload {
                println!("{}", workload.result_line());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot(args) => {
            let report = output::report::Report::load(&args.dir)?;
            let dir = if args.dir.is_dir() {
                args.dir.clone()
            } else {
                args.dir.parent().unwrap_or(std::path::Path::new(".")).to_path_buf()
            };
            let html = output::write_plots_and_html(&report, &dir)?;
            println!("wrote the plots and {}", html.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare(args) => {
            let (a, b) = (
                output::report::Report::load(&args.a)?,
                output::report::Report::load(&args.b)?,
            );
            let comparison = compare::compare(
                &a,
                &b,
                &args.a.display().to_string(),
                &args.b.display().to_string(),
                args.force,
            )?;
            let (text, json) = (comparison.to_text(), serde_json::to_string_pretty(&comparison)?);
            if let Some(dir) = &args.output {
                compare::write_outputs(&a, &b, &text, &json, dir)?;
            }
            if args.json {
                println!("{json}");
            } else {
                print!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Workload(args) => {
            let plan = args.plan()?;
            let start_gate: workload::StartGate = if args.wait_for_start {
                &workload::wait_for_stdin
            } else {
                &|| Ok(())
            };
            let result = workload::run(&plan, start_gate, args.wait_for_start)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                println!("{}", result.result_line());
            }
            if args.wait_for_start {
                workload::wait_for_exit_gate()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(args) => {
            let report = doctor::diagnose(&args)?;
            if args.json {
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
    }
}
