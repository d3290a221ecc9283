//! What is bisected: the commits of a git history between a good and a bad
//! revision (first parents, oldest first), or an ordered list of kernel
//! specs. Git answers every question about the history.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::lab::kernels::KernelSpec;

/// One revision in bisect order: index 0 is good, the last is bad.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The `--kernel` spec it boots as.
    pub spec: String,
    /// Its directory name and table label.
    pub label: String,
    /// The full commit hash (git histories only).
    pub commit: Option<String>,
    /// The commit's subject, or the spec.
    pub subject: String,
}

fn git(tree: &Path) -> Command {
    let mut command = Command::new("git");
    command.arg("-C").arg(tree);
    command
}

/// `git -C tree ARGS`'s output, or its first error line.
fn git_output(tree: &Path, args: &[&str]) -> Result<String> {
    let output = git(tree).args(args).output().context("running git (install git)")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "git {}: {}",
            args.join(" "),
            stderr.lines().next().unwrap_or("failed").trim_start_matches("fatal: ")
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim_end().to_owned())
}

/// `rev` as a full commit hash, or a one-line refusal naming the flag.
pub fn commit_of(tree: &Path, flag: &str, rev: &str) -> Result<String> {
    git_output(
        tree,
        &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")],
    )
    .ok()
    .filter(|hash| !hash.is_empty())
    .with_context(|| format!("{flag} {rev}: no such commit in {}", tree.display()))
}

/// Ordered commits from `good` (first) to `bad` (last) along bad's first
/// parents.
pub fn from_git(tree: &Path, good: &str, bad: &str) -> Result<Vec<Revision>> {
    if !tree.join(".git").exists() {
        bail!(
            "--tree {}: not a git working tree (bisect needs the history; give the directory of a kernel clone)",
            tree.display()
        );
    }
    let good_commit = commit_of(tree, "--good", good)?;
    let bad_commit = commit_of(tree, "--bad", bad)?;
    if good_commit == bad_commit {
        bail!("--good {good} and --bad {bad} are the same commit: nothing to bisect");
    }
    let ancestor = git(tree)
        .args(["merge-base", "--is-ancestor", &good_commit, &bad_commit])
        .status()
        .context("running git")?;
    if !ancestor.success() {
        bail!("--good {good} is not an ancestor of --bad {bad}: give the older revision as --good");
    }
    let listed = git_output(
        tree,
        &[
            "log",
            "--first-parent",
            "--reverse",
            "--format=%H %s",
            &format!("{good_commit}..{bad_commit}"),
        ],
    )?;
    let tree_text = tree.display().to_string();
    let revision = |hash: &str, subject: &str| -> Result<Revision> {
        let short = &hash[..12.min(hash.len())];
        let spec = format!("tree:{tree_text}@{short}");
        Ok(Revision {
            label: KernelSpec::parse(&spec)?.label(),
            spec,
            commit: Some(hash.to_owned()),
            subject: subject.to_owned(),
        })
    };
    let good_subject = git_output(tree, &["log", "-1", "--format=%s", &good_commit])?;
    let mut revisions = vec![revision(&good_commit, &good_subject)?];
    for line in listed.lines() {
        let (hash, subject) = line.split_once(' ').unwrap_or((line, ""));
        revisions.push(revision(hash, subject)?);
    }
    Ok(revisions)
}

/// Ordered kernel specs: the first good, the last bad. Each is labelled
/// with its place, so that images of one name (every kept `bzImage`) keep
/// their runs apart.
pub fn from_specs(specs: &[String]) -> Result<Vec<Revision>> {
    if specs.len() < 2 {
        bail!("--kernel: give at least two kernels in order, the good one first and the bad one last");
    }
    specs
        .iter()
        .enumerate()
        .map(|(place, spec)| {
            Ok(Revision {
                label: format!("{}-{}", place + 1, KernelSpec::parse(spec)?.label()),
                spec: spec.clone(),
                commit: None,
                subject: spec.clone(),
            })
        })
        .collect()
}

/// The commit's diff stat (`git show --stat`).
pub fn diff_stat(tree: &Path, commit: &str) -> Result<String> {
    git_output(tree, &["show", "--stat", "--format=", commit])
}

/// The tree's checked-out commit (what `git bisect` asks `bisect-step` about).
pub fn head(tree: &Path) -> Result<String> {
    git_output(tree, &["rev-parse", "HEAD"])
}

/// A `git bisect replay` file of the verdicts, in the order they were made.
pub fn bisect_log(revisions: &[Revision], verdicts: &[(usize, &str)], first_bad: Option<usize>) -> String {
    let mut log = String::from("git bisect start\n");
    let mut line = |index: usize, word: &str| {
        let revision = &revisions[index];
        if let Some(commit) = &revision.commit {
            log.push_str(&format!(
                "# {word}: [{commit}] {}\ngit bisect {word} {commit}\n",
                revision.subject
            ));
        }
    };
    line(revisions.len() - 1, "bad");
    line(0, "good");
    for &(index, word) in verdicts {
        line(index, word);
    }
    if let Some(index) = first_bad
        && let Some(commit) = &revisions[index].commit
    {
        log.push_str(&format!(
            "# first bad commit: [{commit}] {}\n",
            revisions[index].subject
        ));
    }
    log
}

/// The tree of a git bisect, absolute (the specs are built from it).
pub fn absolute_tree(tree: &Path) -> Result<PathBuf> {
    if !tree.is_dir() {
        bail!("--tree {}: no such directory: give a kernel git clone", tree.display());
    }
    std::path::absolute(tree).with_context(|| format!("--tree {}", tree.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(n: u8, subject: &str) -> Revision {
        let hash = format!("{n}").repeat(40);
        Revision {
            spec: format!("tree:/src/linux@{}", &hash[..12]),
            label: format!("linux@{}", &hash[..12]),
            commit: Some(hash),
            subject: subject.to_owned(),
        }
    }

    #[test]
    fn the_log_replays_the_verdicts_in_order() {
        let revisions = [
            commit(1, "base"),
            commit(2, "two"),
            commit(3, "three"),
            commit(4, "four"),
        ];
        let log = bisect_log(&revisions, &[(2, "skip"), (1, "good")], Some(3));
        let (one, two, three, four) = ("1".repeat(40), "2".repeat(40), "3".repeat(40), "4".repeat(40));
        assert_eq!(
            log,
            format!(
                "git bisect start\n# bad: [{four}] four\ngit bisect bad {four}\n# good: [{one}] base\ngit bisect good {one}\n\
                 # skip: [{three}] three\ngit bisect skip {three}\n# good: [{two}] two\ngit bisect good {two}\n\
                 # first bad commit: [{four}] four\n"
            )
        );
    }

    #[test]
    fn ordered_kernels_need_two_and_are_labelled_by_place() {
        let specs = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let revisions = from_specs(&specs(&["debian:6.12", "/a/bzImage", "/b/bzImage"])).unwrap();
        let labels: Vec<&str> = revisions.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["1-debian-6.12", "2-bzImage", "3-bzImage"]);
        assert_eq!(
            from_specs(&specs(&["debian:6.12"])).unwrap_err().to_string(),
            "--kernel: give at least two kernels in order, the good one first and the bad one last"
        );
    }
}
