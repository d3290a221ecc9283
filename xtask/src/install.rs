//! `cargo xtask install [--prefix DIR]`: the release binary, its man pages
//! and shell completions, generated from the clap definitions by the
//! binary itself (`mprotect-trace generate`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::command::{cargo, output_of, release_binary, run_checked};

/// Where each shell looks for completions under a prefix, and the file name.
const COMPLETIONS: [(&str, &str, &str); 3] = [
    ("bash", "share/bash-completion/completions", "mprotect-trace"),
    ("zsh", "share/zsh/site-functions", "_mprotect-trace"),
    ("fish", "share/fish/vendor_completions.d", "mprotect-trace.fish"),
];

pub fn run(prefix: &Path) -> Result<()> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let binary = release_binary()?;
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let installed = bin.join("mprotect-trace");
    // Replace, not overwrite: a running copy keeps its own inode.
    let staged = bin.join(".mprotect-trace.new");
    std::fs::copy(&binary, &staged).with_context(|| format!("copying to {}", staged.display()))?;
    std::fs::rename(&staged, &installed).with_context(|| format!("installing {}", installed.display()))?;
    let man = prefix.join("share/man/man1");
    run_checked(Command::new(&installed).arg("generate").arg("man").arg(&man))?;
    for (shell, dir, name) in COMPLETIONS {
        let dir = prefix.join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let script = output_of(Command::new(&installed).args(["generate", "completions", shell]))?;
        std::fs::write(dir.join(name), script).with_context(|| format!("writing {}", dir.join(name).display()))?;
    }
    println!(
        "installed {}, its man pages in {} (man mprotect-trace-run) and completions for bash, zsh and fish under {}/share",
        installed.display(),
        man.display(),
        prefix.display()
    );
    Ok(())
}

/// `cargo xtask test`'s check of the install step: into a scratch prefix,
/// then `man` renders the run page and bash loads the completions.
pub fn check() -> Result<u64> {
    let prefix = crate::command::workspace_root().join("target/install-check");
    let _ = std::fs::remove_dir_all(&prefix);
    run(&prefix)?;
    let page = output_of(
        Command::new("man")
            .arg("-M")
            .arg(prefix.join("share/man"))
            .args(["-P", "cat", "mprotect-trace-run"])
            .env("MANWIDTH", "100"),
    )?;
    anyhow::ensure!(
        page.contains("--scenario") && page.contains("--backend") && page.contains("WHAT TO TRACE"),
        "man mprotect-trace-run lacks the run flags:\n{page}"
    );
    let script = prefix.join("share/bash-completion/completions/mprotect-trace");
    let completion = output_of(
        Command::new("bash")
            .arg("-c")
            .arg(format!("source {} && complete -p mprotect-trace", script.display())),
    )?;
    anyhow::ensure!(
        completion.contains("mprotect-trace"),
        "bash did not load the completions: {completion}"
    );
    println!("install-check: man mprotect-trace-run renders the run page, bash loads the completions");
    Ok(1)
}
