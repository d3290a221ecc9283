//! `mprotect-trace fleet`: the same invocation on every host of an
//! Ansible inventory, and one table of their results. Ansible does the
//! fan-out, the time limits and the per-host failures (the playbook in
//! `deploy/ansible/fleet.yml`, embedded here); this module only writes
//! the playbook, calls `ansible-playbook`, and reads what it fetched.

pub mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};

use crate::options::{FleetRunOptions, PrintFormat};
use crate::output;

/// The playbook, as shipped in `deploy/ansible/fleet.yml`.
pub const PLAYBOOK: &str = include_str!("../../../deploy/ansible/fleet.yml");
pub const PLAYBOOK_FILE: &str = "fleet.yml";
/// The playbook's variables, written beside it.
pub const VARS_FILE: &str = "fleet-vars.json";
/// The subcommands a fleet may run: each writes one result directory (`-o`).
pub const SUBCOMMANDS: [&str; 3] = ["ab", "run", "lab"];

/// Refuses an invocation the playbook cannot run as asked.
fn check_invocation(args: &[String]) -> Result<()> {
    let Some(first) = args.first() else {
        bail!("no invocation after --: give one, e.g. -- ab --repeat 5 --b \"--no-touch\"");
    };
    if !SUBCOMMANDS.contains(&first.as_str()) {
        bail!(
            "-- {first}: a fleet runs one of {} (each writes one result directory)",
            SUBCOMMANDS.join(", ")
        );
    }
    // Words after a `--` of the invocation belong to a traced command.
    let own = args.iter().take_while(|word| *word != "--");
    if let Some(flag) = own.into_iter().find(|w| *w == "-o" || w.starts_with("--output")) {
        bail!("-- {first} ... {flag}: the playbook gives each host's -o itself; give `fleet run` -o DIR instead");
    }
    Ok(())
}

/// `fleet run`: writes the playbook and its variables into the output
/// directory, runs `ansible-playbook` on the inventory, then prints the
/// fleet report of what came back. Fails when a host has no result.
pub fn run(options: &FleetRunOptions) -> Result<ExitCode> {
    check_invocation(&options.args)?;
    if options.time_limit_s == 0 {
        bail!("--time-limit must be at least 1 second (got 0)");
    }
    if !options.inventory.exists() {
        bail!(
            "--inventory {} does not exist: give an Ansible inventory (see docs/fleet.md)",
            options.inventory.display()
        );
    }
    let dir = std::path::absolute(&options.output).context("-o DIR")?;
    if dir.is_dir()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} is not empty: choose a new -o DIR", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {} (choose another -o DIR)", dir.display()))?;
    let tracer = match &options.tracer {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding this mprotect-trace to copy to the hosts")?,
    };
    let tracer = std::path::absolute(&tracer).context("--tracer")?;
    if !tracer.is_file() {
        bail!("--tracer {} does not exist", tracer.display());
    }
    let playbook = output::write_atomically(&dir.join(PLAYBOOK_FILE), PLAYBOOK.as_bytes())?;
    let vars = serde_json::json!({
        "mprotect_trace_binary": tracer,
        "mprotect_trace_args": options.args,
        "mprotect_trace_output": dir,
        "mprotect_trace_time_limit": options.time_limit_s,
    });
    let vars_file = output::write_atomically(&dir.join(VARS_FILE), serde_json::to_string_pretty(&vars)?.as_bytes())?;
    let status = ansible_playbook(&options.inventory, &playbook, &vars_file, &options.ansible_args)?;
    let fleet = report::read(&dir)?;
    publish(&fleet, &dir, PrintFormat::Text)?;
    // ansible-playbook exits 2 when a host failed, 4 when one was
    // unreachable: both are hosts the report lists without a result.
    if !status.success() && fleet.missing.is_empty() {
        bail!("ansible-playbook failed ({status}) with every host's result fetched: read its output above");
    }
    Ok(if fleet.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn ansible_playbook(
    inventory: &Path,
    playbook: &Path,
    vars: &Path,
    extra: &[String],
) -> Result<std::process::ExitStatus> {
    let mut command = Command::new("ansible-playbook");
    command
        .arg("-i")
        .arg(inventory)
        .arg(playbook)
        .arg("-e")
        .arg(format!("@{}", vars.display()))
        .args(extra);
    match command.status() {
        Ok(status) => Ok(status),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "ansible-playbook is not installed: install Debian's ansible-core (apt-get install ansible-core) or PyPI's (pip install ansible-core)"
        ),
        Err(err) => Err(err).context("starting ansible-playbook"),
    }
}

/// Prints the fleet report as `format` says and writes every file of it into `dir`.
pub fn publish(fleet: &report::FleetReport, dir: &Path, format: PrintFormat) -> Result<Vec<PathBuf>> {
    let written = output::write_artifacts(&fleet.artifacts()?, dir)?;
    output::print(&match format {
        PrintFormat::Text => fleet.to_text(),
        PrintFormat::Mail => fleet.to_mail(),
        PrintFormat::Json => format!("{}\n", serde_json::to_string_pretty(fleet)?),
    })?;
    Ok(written)
}

/// `fleet report DIR`: the table of a fleet run; its files go into
/// `output` (default: DIR itself).
pub fn report(dir: &Path, output: Option<&Path>, format: PrintFormat) -> Result<ExitCode> {
    let fleet = report::read(dir)?;
    let out = output.unwrap_or(dir);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    publish(&fleet, out, format)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn an_invocation_must_be_a_result_writing_subcommand_without_its_own_output() {
        assert!(check_invocation(&words("ab --repeat 3")).is_ok());
        assert!(check_invocation(&words("run --repeat 3 -- ./test -o x")).is_ok());
        assert_eq!(
            check_invocation(&words("doctor")).unwrap_err().to_string(),
            "-- doctor: a fleet runs one of ab, run, lab (each writes one result directory)"
        );
        assert_eq!(
            check_invocation(&words("ab -o /tmp/x")).unwrap_err().to_string(),
            "-- ab ... -o: the playbook gives each host's -o itself; give `fleet run` -o DIR instead"
        );
        assert!(check_invocation(&[]).is_err());
    }
}
