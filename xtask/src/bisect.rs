//! `cargo xtask bisect-check`: `mprotect-trace bisect` on a history whose
//! answer is known.
//!
//! The history is a branch over lab-tree-check's `base` (Debian's
//! linux-source-6.12, see [`crate::lab_tree`]), so that its kernels build
//! incrementally in the same build directory: eight commits, of which
//! - one adds a modest amount of work to `change_pte_range` (under 10 %
//!   of the workload's iteration ns/page under tcg-icount);
//! - one does not compile (the next fixes it), and bisect meets it first;
//! - the others add a string to files off the mprotect path.
//!
//! Checked: bisect names the slow commit within ceil(log2 8) + 2 steps,
//! reports the skip, and its attribution names change_pte_range; the same
//! command on the same directory resumes and boots nothing; `bisect-step`
//! answers git bisect run's exit codes; a history without a slowdown is
//! refused at the endpoints in one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use crate::command::{cargo, release_binary, run_checked, workspace_root};
use crate::lab_tree::git;

/// The function the slowdown is in.
const SLOW_FUNCTION: &str = "change_pte_range";
/// change_pte_range's first statement, the work goes before it.
const ANCHOR: &str = "\ttlb_change_page_size(tlb, PAGE_SIZE);\n";
/// A fifth of lab-tree-check's loop: about +22 ns/page on 281 (x1.08).
const SLOW_WORK: &str = "\t/* mprotect-trace bisect-check: a modest slowdown. */\n\
    \tfor (int bisect_i = 0; bisect_i < 2000; bisect_i++)\n\
    \t\tasm volatile(\"\" ::: \"memory\");\n";
const BROKEN_LINE: &str = "this line does not compile;\n";
/// The commits after base, in order: (file, what is done, subject).
const COMMITS: [(&str, Change, &str); 8] = [
    ("fs/exec.c", Change::Filler, "exec: a string off the mprotect path"),
    ("kernel/fork.c", Change::Filler, "fork: a string off the mprotect path"),
    ("mm/mmap.c", Change::Filler, "mmap: a string off the mprotect path"),
    ("init/main.c", Change::Broken, "init: a line that does not compile"),
    ("init/main.c", Change::Fix, "init: the line compiles again"),
    (
        "mm/mprotect.c",
        Change::Slow,
        "mprotect: known work in change_pte_range",
    ),
    ("kernel/sys.c", Change::Filler, "sys: a string off the mprotect path"),
    ("lib/string.c", Change::Filler, "string: a string off the mprotect path"),
];
/// The slow commit's place among COMMITS (1-based, as `git log` counts
/// from base), and the broken one's.
const SLOW_AT: usize = 6;
const BROKEN_AT: usize = 4;
/// The guests' run, as lab-tree-check's attribution.
const RUN: &str = "--mapping-mb 16 --iterations 60 --sample-hz 9999 --backend none";

#[derive(Clone, Copy)]
enum Change {
    /// A string added at the end of the file.
    Filler,
    Broken,
    Fix,
    Slow,
}

fn git_line(dir: &Path, args: &[&str]) -> Result<String> {
    let output = git(dir).args(args).output().context("running git")?;
    ensure!(output.status.success(), "git {args:?} failed");
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The branch `bisect-series` over base, made once per recipe (a marker in
/// .git: remaking lab-tree-check's history removes it with the branch).
fn history() -> Result<(PathBuf, Vec<String>)> {
    let tree = crate::lab_tree::history()?;
    let recipe = format!(
        "{SLOW_WORK}{BROKEN_LINE}{COMMITS:?}",
        COMMITS = COMMITS.map(|c| (c.0, c.2))
    );
    let marker = tree.join(".git/mprotect-trace-bisect");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(recipe.as_str()) {
        eprintln!("bisect-check: making the bisect history over base");
        run_checked(git(&tree).args(["checkout", "-q", "-B", "bisect-series", "base"]))?;
        for (number, (file, change, subject)) in COMMITS.iter().enumerate() {
            let path = tree.join(file);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let changed = match change {
                Change::Filler => format!(
                    "{text}\nstatic const char mprotect_trace_bisect_{}[] __used = \"commit {}\";\n",
                    number + 1,
                    number + 1
                ),
                Change::Broken => format!("{text}{BROKEN_LINE}"),
                Change::Fix => text.replacen(BROKEN_LINE, "", 1),
                Change::Slow => {
                    ensure!(text.matches(ANCHOR).count() == 1, "mm/mprotect.c has no single anchor");
                    text.replacen(ANCHOR, &format!("{SLOW_WORK}{ANCHOR}"), 1)
                }
            };
            std::fs::write(&path, changed)?;
            run_checked(git(&tree).args(["commit", "-q", "-a", "-m", subject]))?;
        }
        run_checked(git(&tree).args(["checkout", "-q", "base"]))?;
        std::fs::write(&marker, &recipe)?;
    }
    let listed = git_line(&tree, &["rev-list", "--reverse", "base..bisect-series"])?;
    let commits: Vec<String> = listed.lines().map(str::to_owned).collect();
    ensure!(
        commits.len() == COMMITS.len(),
        "the bisect history has {} commits",
        commits.len()
    );
    Ok((tree, commits))
}

fn mprotect_trace(args: &[String]) -> Result<Output> {
    Command::new(release_binary()?)
        .args(args)
        .output()
        .context("starting mprotect-trace")
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn bisect_args(tree: &Path, good: &str, bad: &str, dir: &Path) -> Vec<String> {
    let mut args = words(&format!(
        "bisect --tree {} --good {good} --bad {bad} --accel tcg-icount -o {}",
        tree.display(),
        dir.display()
    ));
    args.extend(["--run".to_owned(), RUN.to_owned()]);
    args
}

fn ceil_log2(n: usize) -> usize {
    (usize::BITS - (n - 1).leading_zeros()) as usize
}

/// The bisect over the whole series: the slow commit, within the steps
/// allowed, the skip reported, the function named.
fn finds_the_commit(tree: &Path, commits: &[String], dir: &Path) -> Result<u64> {
    let _ = std::fs::remove_dir_all(dir);
    let started = Instant::now();
    let args = bisect_args(tree, "base", "bisect-series", dir);
    let output = mprotect_trace(&args)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Its progress lines (stderr), then its summary.
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("step ") || l.starts_with("endpoints: "))
    {
        println!("{line}");
    }
    println!("{stdout}");
    ensure!(output.status.success(), "bisect exited {}:\n{stderr}", output.status);
    let record: Value = serde_json::from_slice(&std::fs::read(dir.join("bisect.json"))?)?;
    let outcome = &record["outcome"];
    let slow = &commits[SLOW_AT - 1];
    ensure!(
        outcome["kind"] == "first-bad" && outcome["commit"].as_str() == Some(slow),
        "bisect named {} ({}), not the slow commit {slow}",
        outcome["commit"],
        outcome["kind"]
    );
    let steps = record["steps"].as_array().context("no steps")?;
    let allowed = ceil_log2(commits.len()) + 2;
    ensure!(steps.len() <= allowed, "{} steps, more than {allowed}", steps.len());
    let broken = &commits[BROKEN_AT - 1];
    let skip = steps
        .iter()
        .find(|s| s["commit"].as_str() == Some(broken))
        .with_context(|| format!("the broken commit {broken} was not met"))?;
    ensure!(
        skip["verdict"] == "skipped"
            && skip["why"]
                .as_str()
                .is_some_and(|w| w.contains("failed") && w.contains("build.log")),
        "the broken commit's step: {skip}"
    );
    ensure!(
        stdout.contains(&format!("{}: skipped: ", &broken[..12])) || stdout.contains("skipped: building"),
        "the skip is not reported"
    );
    let home = outcome["comparison"]["home"].as_str();
    ensure!(
        home == Some(SLOW_FUNCTION),
        "the attribution names {:?}, not {SLOW_FUNCTION}: {}",
        home,
        outcome["comparison"]["home_explanation"]
    );
    let ratio = outcome["comparison"]["iteration_ratio"].as_f64().context("no ratio")?;
    ensure!(
        ratio > 1.0 && ratio < 1.10,
        "the slowdown is x{ratio:.3}, not under 10 %"
    );
    let log = std::fs::read_to_string(dir.join("git-bisect.log"))?;
    ensure!(
        log.contains(&format!("git bisect skip {broken}")) && log.contains(&format!("# first bad commit: [{slow}]")),
        "git-bisect.log lacks the skip or the first bad commit:\n{log}"
    );
    println!(
        "bisect-check: named the slow commit {} in {} steps (at most {allowed}), skipped the broken one, home {SLOW_FUNCTION}, x{ratio:.3} ({:.0} s)",
        &slow[..12],
        steps.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(4)
}

/// The same command on the same directory: every run is reused.
fn resumes(tree: &Path, commits: &[String], dir: &Path) -> Result<u64> {
    let output = mprotect_trace(&bisect_args(tree, "base", "bisect-series", dir))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "the resumed bisect exited {}:\n{stderr}",
        output.status
    );
    let record: Value = serde_json::from_slice(&std::fs::read(dir.join("bisect.json"))?)?;
    ensure!(
        record["boots"] == 0 && record["outcome"]["commit"].as_str() == Some(commits[SLOW_AT - 1].as_str()),
        "the resumed bisect booted {} times and named {}",
        record["boots"],
        record["outcome"]["commit"]
    );
    println!("bisect-check: the same command on the same directory resumed: 0 boots, the same commit");
    Ok(1)
}

/// `bisect-step DIR --rev REV` answers 0, 1 and 125 (the commits around
/// the slow one have runs in DIR already: they are decided from those).
fn steps(commits: &[String], dir: &Path) -> Result<u64> {
    for (at, code, what) in [
        (SLOW_AT - 1, 0, "like good"),
        (BROKEN_AT, 125, "skip"),
        (SLOW_AT, 1, "like bad"),
    ] {
        let rev = &commits[at - 1];
        let output = mprotect_trace(&[
            "bisect-step".to_owned(),
            dir.display().to_string(),
            "--rev".to_owned(),
            rev.clone(),
        ])?;
        ensure!(
            output.status.code() == Some(code),
            "bisect-step on commit {at} exited {}, not {code} ({what}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    println!("bisect-check: bisect-step exits 0 like good, 125 on a commit that does not build, 1 like bad");
    Ok(1)
}

/// The image and debug vmlinux of each kernel the series bisect used, by
/// label (read before the resumed bisect rewrites its record).
fn kernels_used(dir: &Path) -> Result<Vec<(String, String, String)>> {
    let record: Value = serde_json::from_slice(&std::fs::read(dir.join("bisect.json"))?)?;
    record["kernels"]
        .as_array()
        .context("no kernels in bisect.json")?
        .iter()
        .map(|k| {
            Ok((
                k["label"].as_str().context("no label")?.to_owned(),
                k["image"].as_str().context("no image")?.to_owned(),
                k["vmlinux"].as_str().context("no vmlinux")?.to_owned(),
            ))
        })
        .collect()
}

/// An ordered list of kernel images (no git): the kept images of the
/// commit before the slow one and the slow one, with their vmlinuxes (two:
/// each image more is four boots, and the steps are the series bisect's).
fn ordered_images(commits: &[String], used: &[(String, String, String)]) -> Result<u64> {
    let mut args = words("bisect --accel tcg-icount");
    for sha in [&commits[SLOW_AT - 2], &commits[SLOW_AT - 1]] {
        let label = format!("linux@{}", &sha[..12]);
        let (_, image, vmlinux) = used
            .iter()
            .find(|(l, _, _)| *l == label)
            .with_context(|| format!("the series bisect did not use {label}"))?;
        args.extend([
            "--kernel".to_owned(),
            image.clone(),
            "--vmlinux".to_owned(),
            vmlinux.clone(),
        ]);
    }
    let dir = mprotect_trace::lab::default_cache().with_file_name("bisect-check-images");
    let _ = std::fs::remove_dir_all(&dir);
    args.extend([
        "--run".to_owned(),
        RUN.to_owned(),
        "-o".to_owned(),
        dir.display().to_string(),
    ]);
    let output = mprotect_trace(&args)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    ensure!(
        output.status.success(),
        "the images bisect exited {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let record: Value = serde_json::from_slice(&std::fs::read(dir.join("bisect.json"))?)?;
    let outcome = &record["outcome"];
    ensure!(
        outcome["label"] == "2-bzImage" && outcome["comparison"]["home"] == SLOW_FUNCTION,
        "the images bisect named {} with home {}",
        outcome["label"],
        outcome["comparison"]["home"]
    );
    println!("bisect-check: two kernel images in order, no git: the second named, home {SLOW_FUNCTION}");
    Ok(1)
}

/// A history without the slowdown is refused at the endpoints.
fn refuses_no_slowdown(tree: &Path, commits: &[String], root: &Path) -> Result<u64> {
    let dir = root.join("no-slowdown");
    let _ = std::fs::remove_dir_all(&dir);
    let before = &commits[SLOW_AT - 2];
    let mut args = bisect_args(tree, "base", before, &dir);
    args.extend(words("--max-repeats 4"));
    let output = mprotect_trace(&args)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.code() == Some(1), "no slowdown: exit {}", output.status);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .with_context(|| format!("no error line:\n{stderr}"))?;
    ensure!(
        line.starts_with("error: good and bad do not differ (B/A x") && line.ends_with(": nothing to bisect"),
        "the refusal: {line}"
    );
    let record: Value = serde_json::from_slice(&std::fs::read(dir.join("bisect.json"))?)?;
    ensure!(
        record["outcome"]["kind"] == "refused",
        "the refused bisect's record says {}",
        record["outcome"]
    );
    println!("bisect-check: a history without a slowdown is refused: {line}");
    Ok(1)
}

/// Returns the number of checks that passed.
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let (tree, commits) = history()?;
    let root = workspace_root().join("target/bisect-check");
    std::fs::create_dir_all(&root)?;
    // Kept beside the lab's cache: the guide's bisect example (run by
    // readme-check) resumes it instead of booting its 16 guests again.
    let dir = mprotect_trace::lab::default_cache().with_file_name("bisect-check");
    let mut passed = finds_the_commit(&tree, &commits, &dir)?;
    let used = kernels_used(&dir)?;
    passed += resumes(&tree, &commits, &dir)?;
    passed += steps(&commits, &dir)?;
    passed += ordered_images(&commits, &used)?;
    passed += refuses_no_slowdown(&tree, &commits, &root)?;
    Ok(passed)
}
