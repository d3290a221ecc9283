//! `cargo xtask readme-check`: runs every `$ mprotect-trace ...` example
//! of the README, in order, in one scratch directory, with the release
//! binary first in PATH. An example may refuse (some show errors), but
//! none may crash: no panic (exit 101), no death by a signal other than
//! SIGPIPE in a pipeline, no backtrace.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::command::{cargo, release_binary, run_checked, workspace_root};

/// Linux signal number of SIGPIPE.
const SIGPIPE: i32 = 13;

/// The example command lines: `$ mprotect-trace ...` inside fenced blocks.
fn examples(readme: &str) -> Vec<String> {
    let mut fenced = false;
    let mut commands = Vec::new();
    for line in readme.lines() {
        let line = line.trim_start();
        if line.starts_with("```") {
            fenced = !fenced;
        } else if fenced
            && let Some(command) = line.strip_prefix("$ ")
            && command.starts_with("mprotect-trace ")
        {
            commands.push(command.to_owned());
        }
    }
    commands
}

/// Returns the number of examples that ran without crashing.
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let binary = release_binary()?;
    let bin_dir = binary.parent().context("the binary has no directory")?;
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).context("reading README.md")?;
    let dir = workspace_root().join("target/readme-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let commands = examples(&readme);
    if commands.is_empty() {
        bail!("README.md has no `$ mprotect-trace` example");
    }
    let mut crashed = Vec::new();
    for command in &commands {
        eprintln!("readme-check: $ {command}");
        // pipefail: the tool's own status, not head's.
        let output = Command::new("bash")
            .args(["-o", "pipefail", "-c", command])
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .with_context(|| format!("running {command}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let piped = command.contains('|');
        // bash reports a child killed by signal N as 128 + N.
        let killed = output
            .status
            .signal()
            .or_else(|| output.status.code().filter(|code| *code > 128).map(|code| code - 128));
        let verdict = if output.status.code() == Some(101) || stderr.contains("panicked at") {
            Some("panicked".to_owned())
        } else {
            match killed {
                Some(SIGPIPE) if piped => None,
                Some(signal) => Some(format!("killed by signal {signal}")),
                None => None,
            }
        };
        match verdict {
            Some(why) => {
                eprintln!("readme-check: CRASHED ({why}): {command}\n{stderr}");
                crashed.push(format!("{command}: {why}"));
            }
            None => eprintln!("readme-check: ok ({})", output.status),
        }
    }
    if !crashed.is_empty() {
        bail!("{} README examples crashed: {}", crashed.len(), crashed.join("; "));
    }
    println!(
        "readme-check passed: {} README examples ran without crashing",
        commands.len()
    );
    Ok(commands.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::examples;

    #[test]
    fn finds_the_commands_of_fenced_examples_only() {
        let readme = "text $ mprotect-trace no\n```\n$ mprotect-trace run\noutput\n$ ls\n```\n  ```sh\n  $ mprotect-trace report x | head -4\n  ```\n";
        assert_eq!(
            examples(readme),
            ["mprotect-trace run", "mprotect-trace report x | head -4"]
        );
    }
}
