//! `cargo xtask readme-check`: runs every `$ mprotect-trace ...` example
//! of the documentation, the files of [`FILES`] in that order (README.md,
//! docs/GUIDE.md, docs/vm-test.md, CONTRIBUTING.md, CHANGELOG.md,
//! docs/fleet.md), each file's examples in order, all in one scratch
//! directory, with the release binary first in PATH. A later example may
//! use what an earlier one made (`run -o DIR`, then `report DIR`), so the
//! order matters. Every listed file must exist. An example may refuse
//! (some show errors), but none may crash: no panic (exit 101), no death
//! by a signal other than SIGPIPE in a pipeline, no backtrace.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::command::{cargo, release_binary, run_checked, workspace_root};

/// Linux signal number of SIGPIPE.
const SIGPIPE: i32 = 13;

/// The files whose examples run, in this order, relative to the workspace root.
const FILES: [&str; 6] = [
    "README.md",
    "docs/GUIDE.md",
    "docs/vm-test.md",
    "CONTRIBUTING.md",
    "CHANGELOG.md",
    "docs/fleet.md",
];

/// The example command lines: `$ mprotect-trace ...` inside fenced blocks.
fn examples(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut commands = Vec::new();
    for line in text.lines() {
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

/// One example and the file it is in.
#[derive(Debug, PartialEq, Eq)]
struct Example {
    file: &'static str,
    command: String,
}

/// Every example of `files` under `root`, file by file in the order given;
/// a listed file that cannot be read is an error naming it.
fn examples_of(root: &Path, files: &[&'static str]) -> Result<Vec<Example>> {
    let mut all = Vec::new();
    for &file in files {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "readme-check: reading {}, one of the files whose examples it runs (FILES in xtask/src/readme.rs)",
                path.display()
            )
        })?;
        all.extend(examples(&text).into_iter().map(|command| Example { file, command }));
    }
    Ok(all)
}

/// "README.md 0, docs/GUIDE.md 31, ...": the examples of each file, in order.
fn count_per_file(files: &[&str], examples: &[Example]) -> String {
    files
        .iter()
        .map(|file| format!("{file} {}", examples.iter().filter(|e| e.file == *file).count()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Returns the number of examples that ran without crashing.
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let binary = release_binary()?;
    let bin_dir = binary.parent().context("the binary has no directory")?;
    let examples = examples_of(workspace_root(), &FILES)?;
    if examples.is_empty() {
        bail!("no `$ mprotect-trace` example in {}", FILES.join(", "));
    }
    let dir = workspace_root().join("target/readme-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut crashed = Vec::new();
    for Example { file, command } in &examples {
        eprintln!("readme-check: {file}: $ {command}");
        // pipefail: the tool's own status, not head's.
        let output = Command::new("bash")
            .args(["-o", "pipefail", "-c", command])
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .with_context(|| format!("running {command} (an example of {file})"))?;
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
                eprintln!("readme-check: {file}: CRASHED ({why}): {command}\n{stderr}");
                crashed.push(format!("{file}: {command}: {why}"));
            }
            None => eprintln!("readme-check: {file}: ok ({})", output.status),
        }
    }
    if !crashed.is_empty() {
        bail!(
            "{} of {} documentation examples crashed: {}",
            crashed.len(),
            examples.len(),
            crashed.join("; ")
        );
    }
    println!(
        "readme-check passed: {} documentation examples ran without crashing ({})",
        examples.len(),
        count_per_file(&FILES, &examples)
    );
    Ok(examples.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::{Example, count_per_file, examples, examples_of};

    #[test]
    fn finds_the_commands_of_fenced_examples_only() {
        let readme = "text $ mprotect-trace no\n```\n$ mprotect-trace run\noutput\n$ ls\n```\n  ```sh\n  $ mprotect-trace report x | head -4\n  ```\n";
        assert_eq!(
            examples(readme),
            ["mprotect-trace run", "mprotect-trace report x | head -4"]
        );
    }

    /// A scratch directory of its own under the system's temporary one.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-readme-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        dir
    }

    #[test]
    fn reads_the_files_in_the_order_given() {
        let root = scratch("order");
        std::fs::write(root.join("README.md"), "```\n$ mprotect-trace run -o out\n```\n").unwrap();
        std::fs::write(root.join("docs/GUIDE.md"), "no example\n").unwrap();
        std::fs::write(
            root.join("CHANGELOG.md"),
            "```\n$ mprotect-trace report out\n$ mprotect-trace plot out\n```\n",
        )
        .unwrap();
        let files = ["README.md", "docs/GUIDE.md", "CHANGELOG.md"];
        let found = examples_of(&root, &files).unwrap();
        let example = |file, command: &str| Example {
            file,
            command: command.to_owned(),
        };
        assert_eq!(
            found,
            [
                example("README.md", "mprotect-trace run -o out"),
                example("CHANGELOG.md", "mprotect-trace report out"),
                example("CHANGELOG.md", "mprotect-trace plot out"),
            ]
        );
        assert_eq!(
            count_per_file(&files, &found),
            "README.md 1, docs/GUIDE.md 0, CHANGELOG.md 2"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_listed_file_that_is_missing_is_an_error_naming_it() {
        let root = scratch("missing");
        std::fs::write(root.join("README.md"), "").unwrap();
        let err = examples_of(&root, &["README.md", "docs/vm-test.md"]).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("docs/vm-test.md"), "{message}");
        assert!(message.contains("FILES in xtask/src/readme.rs"), "{message}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
