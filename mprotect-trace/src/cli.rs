//! Command-line arguments.

use clap::{Args, Parser, Subcommand};

use crate::workload::WorkloadArgs;

#[derive(Parser, Debug)]
#[command(
    name = "mprotect-trace",
    version,
    about = "Where the time of mprotect() goes inside Linux mm"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the mprotect toggle workload and print its timings (no BPF, no root).
    Workload(WorkloadArgs),
    /// Report what this kernel supports and which probe backend each target would use.
    Doctor(DoctorArgs),
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Another kernel function to check, besides the built-in targets (repeatable).
    #[arg(long = "probe", value_name = "NAME")]
    pub probes: Vec<String>,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}
