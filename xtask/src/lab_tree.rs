//! `cargo xtask lab-tree-check`: `mprotect-trace lab` on kernels it builds
//! from a source tree, against an answer known in advance.
//!
//! The tree is Debian's `linux-source-6.12` package made into a git history
//! (kept in `~/.cache/mprotect-trace/lab-tree`, rebuilt when the package or
//! the injected change differs):
//! - `base`: the source as Debian ships it;
//! - `injected`: base plus a known amount of work in `change_pte_range`
//!   (an empty loop at its entry, once per page table);
//! - `broken`: injected plus a line that does not compile.
//!
//! Checked: base against injected under tcg-icount names change_pte_range
//! (inlined or not, through the kept vmlinux) as the home of the
//! difference, and no other function; the second lab builds nothing; every
//! refusal is one line; a SIGTERM during a build and a SIGINT during a
//! boot leave no make or QEMU behind, write a partial summary and exit 143
//! and 130.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::command::{cargo, output_of, release_binary, run_checked, workspace_root};

/// The function the injected work is in.
const INJECTED_FUNCTION: &str = "change_pte_range";
/// The line of mm/mprotect.c the work goes before (change_pte_range's first statement).
const ANCHOR: &str = "\ttlb_change_page_size(tlb, PAGE_SIZE);\n";
/// About 30,000 instructions per page table (512 pages): under tcg-icount
/// about 60 ns/page per mprotect() call, two calls an iteration. Large
/// beside the ~10 ns/page that samples move between the small inlined
/// helpers of change_pte_range when its code shifts by a few bytes.
const INJECTED_WORK: &str = "\t/* mprotect-trace lab-tree-check: known work. */\n\
    \tfor (int lab_i = 0; lab_i < 10000; lab_i++)\n\
    \t\tasm volatile(\"\" ::: \"memory\");\n";
const BROKEN_LINE: &str = "this line does not compile;\n";
/// The guests' run: no function probe, so the only cost compared is the
/// kernels'; 4 runs a side are the fewest a rank test can call significant.
/// About 700 samples a run (at 999 Hz a run of 20 iterations had 19, too
/// few to place a change).
const RUN: &str = "--mapping-mb 16 --iterations 60 --sample-hz 9999 --backend none";
/// Shares of the workload's change: the injected function must carry at
/// least the first, any other function less than the second. Observed
/// (4 runs a side): change_pte_range 76-77 %; the largest other 14-21 %,
/// mksaveddirty_shift, an inlined helper of change_pte_range that gains
/// samples when the work is injected although its instructions are the
/// same 11 in both builds (the loop's 3 are change_pte_range's in DWARF).
const INJECTED_AT_LEAST: f64 = 0.5;
const OTHERS_AT_MOST: f64 = 1.0 / 3.0;
/// The cached lab's run: function probes, so the inline sites the lab read
/// from the vmlinux it built are probed in the guest.
const PROBED_RUN: &str = "--mapping-mb 16 --iterations 20";
const REPEAT: &str = "4";

/// git in `dir`, with an identity for the commits it makes.
pub fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=mprotect-trace", "-c", "user.email=lab@localhost"]);
    command
}

/// Debian's linux-source-6.12 as a git history with the three tags; made
/// once per package version and change.
pub fn history() -> Result<PathBuf> {
    // Beside the lab's own kernel cache (~/.cache/mprotect-trace/kernels).
    let root = mprotect_trace::lab::default_cache().with_file_name("lab-tree");
    let policy = output_of(Command::new("apt-cache").args(["policy", "linux-source-6.12"]))?;
    let version = policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate: "))
        .filter(|v| *v != "(none)")
        .context("apt knows no linux-source-6.12 (the machine's sources need bookworm-security)")?
        .to_owned();
    let recipe = format!("{version}\n{INJECTED_WORK}{BROKEN_LINE}");
    let tree = root.join("linux");
    let done = root.join("made");
    if std::fs::read_to_string(&done).is_ok_and(|made| made == recipe) {
        return Ok(tree);
    }
    eprintln!("lab-tree-check: making the test history from linux-source-6.12 {version}");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    run_checked(
        Command::new("apt-get")
            .args(["download", "-q", "linux-source-6.12"])
            .current_dir(&root),
    )?;
    let unpack = "dpkg-deb --fsys-tarfile linux-source-6.12_*.deb | tar -xO ./usr/src/linux-source-6.12.tar.xz | tar -xJ && mv linux-source-6.12 linux && rm linux-source-6.12_*.deb";
    run_checked(Command::new("sh").args(["-c", unpack]).current_dir(&root))?;
    run_checked(git(&tree).args(["init", "-q"]))?;
    // Debian's top-level .gitignore ignores everything ("/*"): add by force.
    run_checked(git(&tree).args(["add", "-f", "-A", "."]))?;
    run_checked(git(&tree).args(["commit", "-q", "-m", "base: Debian's linux-source-6.12"]))?;
    run_checked(git(&tree).args(["tag", "base"]))?;
    let mprotect = tree.join("mm/mprotect.c");
    let source = std::fs::read_to_string(&mprotect)?;
    ensure!(
        source.matches(ANCHOR).count() == 1,
        "mm/mprotect.c has no single anchor line"
    );
    std::fs::write(
        &mprotect,
        source.replacen(ANCHOR, &format!("{INJECTED_WORK}{ANCHOR}"), 1),
    )?;
    run_checked(git(&tree).args(["commit", "-q", "-a", "-m", "injected: known work in change_pte_range"]))?;
    run_checked(git(&tree).args(["tag", "injected"]))?;
    let injected = std::fs::read_to_string(&mprotect)?;
    std::fs::write(&mprotect, format!("{injected}{BROKEN_LINE}"))?;
    run_checked(git(&tree).args(["commit", "-q", "-a", "-m", "broken: a line that does not compile"]))?;
    run_checked(git(&tree).args(["tag", "broken"]))?;
    // The working copy is left at base (for the interrupted build).
    run_checked(git(&tree).args(["checkout", "-q", "base"]))?;
    std::fs::write(&done, recipe)?;
    Ok(tree)
}

/// One lab: its exit status, stderr, and summary (lab.json) if written.
fn lab(args: &[String], dir: &Path) -> Result<(std::process::ExitStatus, String, Option<Value>)> {
    let _ = std::fs::remove_dir_all(dir);
    let output = Command::new(release_binary()?)
        .arg("lab")
        .args(args)
        .arg("-o")
        .arg(dir)
        .output()
        .context("starting mprotect-trace lab")?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let summary = std::fs::read(dir.join("lab.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    Ok((output.status, stderr, summary))
}

fn kernels(tree: &Path, revs: &[&str]) -> Vec<String> {
    revs.iter()
        .flat_map(|rev| ["--kernel".to_owned(), format!("tree:{}@{rev}", tree.display())])
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// The one stderr line that starts with `prefix`, which must end with `suffix`.
fn refusal_line(stderr: &str, prefix: &str, suffix: &str) -> Result<()> {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(prefix)).collect();
    ensure!(
        lines.len() == 1 && lines[0].ends_with(suffix),
        "expected one line {prefix:?}...{suffix:?}; stderr:\n{stderr}"
    );
    Ok(())
}

/// The attribution lab: base against injected.
fn attribution(tree: &Path, root: &Path) -> Result<u64> {
    let mut args = kernels(tree, &["base", "injected"]);
    args.extend(words(&format!("--accel tcg-icount --repeat {REPEAT}")));
    args.extend(["--run".to_owned(), RUN.to_owned()]);
    let started = Instant::now();
    let (status, stderr, summary) = lab(&args, &root.join("attribution"))?;
    let summary = summary.with_context(|| format!("the lab wrote no lab.json; stderr:\n{stderr}"))?;
    ensure!(status.success(), "the lab exited {status}; stderr:\n{stderr}");
    let text = std::fs::read_to_string(root.join("attribution/lab.txt"))?;
    println!("{text}");
    for line in stderr
        .lines()
        .filter(|l| l.contains(": built in ") || l.contains(": cached"))
    {
        println!("{line}");
    }
    let delta = &summary["comparisons"][0]["against_baseline"][0];
    ensure!(
        delta["verdict"] == "significant",
        "base against injected: verdict {}",
        delta["verdict"]
    );
    ensure!(
        delta["home"].as_str() == Some(INJECTED_FUNCTION),
        "the home of the difference is {} ({}), not {INJECTED_FUNCTION}",
        delta["home"],
        delta["home_explanation"]
    );
    // Its change is the difference; every other function's is small beside it.
    let functions = delta["functions"].as_array().context("no functions")?;
    let change = |f: &Value| f[1].as_f64().unwrap_or(f64::NAN);
    let injected = functions
        .iter()
        .find(|f| f[0] == INJECTED_FUNCTION)
        .map(change)
        .context("change_pte_range has no sampled change")?;
    let workload_change = summary["kernels"][1]["by_smp"][0]["iteration_ns_per_page"]["median"]
        .as_f64()
        .zip(summary["kernels"][0]["by_smp"][0]["iteration_ns_per_page"]["median"].as_f64())
        .map(|(b, a)| b - a)
        .context("no medians")?;
    let largest_other = functions
        .iter()
        .filter(|f| f[0] != INJECTED_FUNCTION)
        .map(|f| change(f).abs())
        .fold(0.0, f64::max);
    ensure!(
        injected >= INJECTED_AT_LEAST * workload_change && largest_other < OTHERS_AT_MOST * workload_change,
        "of the workload's change of {workload_change:.2} ns/page, change_pte_range carries {injected:.2} and another function {largest_other:.2}: {functions:?}"
    );
    // With a few dozen functions each at a ~97 % interval, one or two
    // intervals excluding zero are expected by chance, and the inlined
    // helpers around the work gain a little: listed, not named.
    let by_chance: Vec<String> = delta["significant_functions"]
        .as_array()
        .context("no significant_functions")?
        .iter()
        .filter(|f| f[0] != INJECTED_FUNCTION)
        .map(|f| format!("{} {:+.2}", f[0].as_str().unwrap_or("?"), change(f)))
        .collect();
    println!(
        "lab-tree-check: base against injected: workload +{workload_change:.2} ns/page; home {INJECTED_FUNCTION} {injected:+.2} ns/page, no other function named (the largest other change {largest_other:.2}; other intervals excluding zero, not named: {by_chance:?}) ({:.0} s)",
        started.elapsed().as_secs_f64()
    );

    // Again: nothing is built, and the kernels are ready in seconds. This
    // time the guests probe functions, at the inline sites of the kept vmlinux.
    let again: Vec<String> = kernels(tree, &["base", "injected"])
        .into_iter()
        .chain(words("--accel tcg-icount --repeat 1"))
        .chain(["--run".to_owned(), PROBED_RUN.to_owned()])
        .collect();
    let (status, stderr, summary) = lab(&again, &root.join("again"))?;
    ensure!(status.success(), "the second lab exited {status}; stderr:\n{stderr}");
    let cached = stderr.lines().filter(|l| l.contains(": cached (")).count();
    ensure!(
        cached == 2,
        "the second lab did not find both kernels cached:\n{stderr}"
    );
    let ready = summary
        .as_ref()
        .and_then(|s| s["kernels_ready_s"].as_f64())
        .context("no kernels_ready_s")?;
    ensure!(ready < 30.0, "the cached kernels took {ready:.1} s to be ready");
    println!("lab-tree-check: the second lab built nothing: both kernels cached, ready in {ready:.1} s");
    let line = inline_sites_probed(&root.join("again/linux@base/smp-1/run-01/report.json"))?;
    println!("lab-tree-check: in the built base kernel's guest, {line}");
    Ok(4)
}

/// The guest's run probed the function the build inlined at the sites the
/// lab read from its vmlinux, and counted every page table walked.
fn inline_sites_probed(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report = mprotect_trace::model::Report::parse(&bytes, "the guest's report")?;
    let walks = report.workload.as_ref().map_or(0, |w| w.pte_table_walks);
    ensure!(walks > 0, "the guest's workload walked no page table");
    crate::vm_inline_probes::check_counted(&report, INJECTED_FUNCTION, walks)
}

/// Each refusal is one line, and leaves nothing half-written.
fn refusals(tree: &Path, root: &Path) -> Result<u64> {
    let dir = root.join("refusals");
    // A revision that does not exist, and a missing tree.
    let missing = format!("tree:{}@no-such-rev", tree.display());
    let (status, stderr, _) = lab(&["--kernel".to_owned(), missing.clone()], &dir)?;
    ensure!(status.code() == Some(1), "a missing revision: exit {status}");
    refusal_line(
        &stderr,
        &format!("error: --kernel {missing}: "),
        &format!("revision no-such-rev does not exist in {}", tree.display()),
    )?;
    ensure!(!dir.exists(), "a refused lab left {}", dir.display());
    let (status, stderr, _) = lab(&words("--kernel tree:/nonexistent/linux@v1"), &dir)?;
    ensure!(status.code() == Some(1), "a missing tree: exit {status}");
    refusal_line(
        &stderr,
        "error: --kernel tree:/nonexistent/linux@v1: ",
        "tree /nonexistent/linux does not exist: give a kernel source tree",
    )?;
    // A --config that does not exist.
    let (status, stderr, _) = lab(&words("--kernel debian:6.12 --config /nonexistent/config"), &dir)?;
    ensure!(status.code() == Some(1), "a missing --config: exit {status}");
    refusal_line(
        &stderr,
        "error: --config /nonexistent/config",
        "does not exist: give a kernel .config file",
    )?;
    ensure!(!dir.exists(), "a refused lab left {}", dir.display());
    // A tree that does not build: the log is named.
    let broken = format!("tree:{}@broken", tree.display());
    let (status, stderr, _) = lab(&["--kernel".to_owned(), broken.clone()], &dir)?;
    ensure!(status.code() == Some(1), "a broken tree: exit {status}");
    let log = dir.join("linux@broken/build.log");
    refusal_line(
        &stderr,
        &format!("error: --kernel {broken}: building {broken} failed ("),
        &format!("; log: {}", log.display()),
    )?;
    ensure!(
        stderr.contains("mm/mprotect.c:") && log.is_file(),
        "the failure does not name the error or keep its log:\n{stderr}"
    );
    // An image whose config lacks what the guests need.
    let image_dir = root.join("no-kprobes");
    let _ = std::fs::remove_dir_all(&image_dir);
    std::fs::create_dir_all(&image_dir)?;
    let built = built_image(&root.join("attribution"))?;
    std::fs::copy(&built, image_dir.join("bzImage"))?;
    let config = std::fs::read_to_string(built.with_file_name("config"))?;
    std::fs::write(
        image_dir.join(".config"),
        config.replace("CONFIG_KPROBES=y", "# CONFIG_KPROBES is not set"),
    )?;
    let image = image_dir.join("bzImage");
    let (status, stderr, _) = lab(&["--kernel".to_owned(), image.display().to_string()], &dir)?;
    ensure!(status.code() == Some(1), "an image without kprobes: exit {status}");
    refusal_line(
        &stderr,
        &format!("error: --kernel {}: ", image.display()),
        "lacks CONFIG_KPROBES, which the lab's guests need (see `mprotect-trace lab --print-config`)",
    )?;
    println!(
        "lab-tree-check: a missing revision, tree and --config, a broken tree and an image without kprobes are each refused in one line"
    );
    Ok(5)
}

/// The kept bzImage the attribution lab booted for base.
fn built_image(lab_dir: &Path) -> Result<PathBuf> {
    let summary: Value = serde_json::from_slice(&std::fs::read(lab_dir.join("lab.json"))?)?;
    let image = summary["kernels"][0]["image"]
        .as_str()
        .context("no image in lab.json")?;
    Ok(PathBuf::from(image))
}

/// A guest that halts instead of powering off is named, fast.
fn halting(tree: &Path, root: &Path) -> Result<u64> {
    let mut args = kernels(tree, &["base"]);
    args.extend(words("--accel tcg --repeat 1 --retries 2"));
    // Without ACPI the kernel has no power-off: it halts.
    args.extend(["--append".to_owned(), "acpi=off".to_owned()]);
    args.extend(["--run".to_owned(), RUN.to_owned()]);
    let started = Instant::now();
    let dir = root.join("halting");
    let (status, stderr, _) = lab(&args, &dir)?;
    let took = started.elapsed().as_secs_f64();
    ensure!(status.code() == Some(1), "a halting guest: exit {status}");
    let line = stderr
        .lines()
        .find(|l| l.contains("failed: the guest halted instead of powering off"))
        .with_context(|| format!("the halt is not named:\n{stderr}"))?;
    ensure!(!line.contains("booting again"), "a halt was booted again: {line}");
    let console = dir.join("linux@base/smp-1/run-01.failed-1.log");
    let text =
        std::fs::read_to_string(&console).with_context(|| format!("no console kept at {}", console.display()))?;
    ensure!(
        text.contains("Power off not available"),
        "the kept console lacks the halt"
    );
    ensure!(took < 120.0, "the halting lab took {took:.0} s");
    println!("lab-tree-check: a guest that halts is named in one line after {took:.0} s, not retried, console kept");
    Ok(1)
}

/// Processes whose parent is `pid`, with their names.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let (name, rest) = stat.split_once(") ")?;
            let parent: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            if parent != pid {
                return None;
            }
            Some((child, name.split_once(" (")?.1.to_owned()))
        })
        .collect()
}

/// Every live process in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<u32>().ok())
                    == Some(pgid)
            })
        })
        .collect()
}

/// A lab interrupted by `signal` once `ready` holds for one of its lines
/// on stderr: its children's groups are gone, it wrote a partial summary,
/// and it exited 128 + signal.
fn interrupted(args: &[String], dir: &Path, signal: i32, ready: &dyn Fn(&str) -> bool, what: &str) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let mut lab = Command::new(release_binary()?)
        .arg("lab")
        .args(args)
        .arg("-o")
        .arg(dir)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mprotect-trace lab")?;
    let stderr = lab.stderr.take().context("the lab's stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .with_context(|| format!("the lab ended before {what}:\n{seen}"))??;
        seen.push_str(&line);
        seen.push('\n');
        if ready(&line) {
            break;
        }
    }
    // The groups the lab started (make's or QEMU's), before the signal.
    let groups: Vec<u32> = children_of(lab.id()).into_iter().map(|(pid, _)| pid).collect();
    ensure!(!groups.is_empty(), "{what}: the lab has no child running");
    send_signal(lab.id(), signal)?;
    for line in lines {
        seen.push_str(&line?);
        seen.push('\n');
    }
    let status = lab.wait()?;
    ensure!(
        status.code() == Some(128 + signal),
        "{what}: the lab exited {status}, not {}; stderr:\n{seen}",
        128 + signal
    );
    let left: Vec<u32> = groups.iter().flat_map(|&g| group_members(g)).collect();
    ensure!(left.is_empty(), "{what}: processes left behind: {left:?}");
    let summary: Value = serde_json::from_slice(
        &std::fs::read(dir.join("lab.json")).with_context(|| format!("{what}: no partial lab.json"))?,
    )?;
    let notes = summary["notes"].to_string();
    ensure!(
        notes.contains("interrupted by"),
        "{what}: the summary does not say it was interrupted: {notes}"
    );
    Ok(())
}

fn send_signal(pid: u32, signal: i32) -> Result<()> {
    run_checked(Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()))
}

fn signals(tree: &Path, root: &Path) -> Result<u64> {
    // SIGTERM while the working copy builds (its own build directory: a
    // first build, interrupted once it compiles).
    let working_copy = vec!["--kernel".to_owned(), format!("tree:{}", tree.display())];
    interrupted(
        &working_copy,
        &root.join("sigterm"),
        15,
        &|line| line.starts_with("lab: building ") && line.contains("make is running"),
        "SIGTERM during a build",
    )?;
    // SIGINT while a cached kernel boots.
    let mut boot = kernels(tree, &["base"]);
    boot.extend(words("--accel tcg --repeat 1"));
    boot.extend(["--run".to_owned(), RUN.to_owned()]);
    interrupted(
        &boot,
        &root.join("sigint"),
        2,
        &|line| line.starts_with("lab: booting"),
        "SIGINT during a boot",
    )?;
    println!(
        "lab-tree-check: SIGTERM during a build and SIGINT during a boot leave no make or QEMU, write a partial summary, exit 143 and 130"
    );
    Ok(2)
}

/// Returns the number of checks that passed.
pub fn run() -> Result<u64> {
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let tree = history()?;
    let root = workspace_root().join("target/lab-tree-check");
    std::fs::create_dir_all(&root)?;
    let mut passed = attribution(&tree, &root)?;
    passed += refusals(&tree, &root)?;
    passed += halting(&tree, &root)?;
    passed += signals(&tree, &root)?;
    if passed == 0 {
        bail!("no check ran");
    }
    Ok(passed)
}
