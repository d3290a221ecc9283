//! Kernels built from a source tree, `tree:PATH[@REV]`, by the kernel's
//! own build system: `make O=` out of tree, the lab fragment merged with
//! `merge_config.sh`, `olddefconfig`, then `make bzImage`.
//!
//! - A revision is checked out into the lab's cache (a `git clone
//!   --shared` of PATH, which borrows its objects), never in the user's
//!   working copy; `tree:PATH` alone builds the files as they are.
//! - The kernel is kept under the source (git's tree hash, or the working
//!   copy's file list with sizes and times), the final `.config` and the
//!   compiler: the same kernel is never built twice. An index of the
//!   inputs (source, base config, fragment, compiler) finds it without
//!   configuring anything.
//! - All revisions of one tree share one build directory, so a one-file
//!   change between them rebuilds incrementally (make compares times, and
//!   git rewrites only the files that differ).

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest as _, Sha256};

use super::config;
use crate::vm::Arch;

/// `tree:PATH[@REV]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeSpec {
    pub path: PathBuf,
    pub rev: Option<String>,
}

impl TreeSpec {
    /// What follows `tree:`.
    pub fn parse(rest: &str) -> Result<Self> {
        let (path, rev) = match rest.rsplit_once('@') {
            Some((path, rev)) if !rev.is_empty() => (path, Some(rev.to_owned())),
            Some(_) => bail!("--kernel tree:{rest}: the revision after '@' is empty"),
            None => (rest, None),
        };
        if path.is_empty() {
            bail!("--kernel tree:{rest}: give the path of a kernel source tree, e.g. tree:~/linux@v6.19");
        }
        // The shell does not expand '~' after "tree:".
        let path = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => PathBuf::from(path),
        };
        Ok(Self { path, rev })
    }

    /// `linux@v6.19`, `linux` (a directory name: '/' in a revision is '_').
    pub fn label(&self) -> String {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "tree".to_owned(), |n| n.to_string_lossy().into_owned());
        match &self.rev {
            Some(rev) => format!("{name}@{}", rev.replace('/', "_")),
            None => name,
        }
    }
}

impl std::fmt::Display for TreeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tree:{}", self.path.display())?;
        if let Some(rev) = &self.rev {
            write!(f, "@{rev}")?;
        }
        Ok(())
    }
}

/// What a build needs besides the spec.
pub struct BuildOptions<'a> {
    /// The lab's kernel cache: builds live under `trees/`.
    pub cache: &'a Path,
    /// `--config FILE`: the base the fragment is merged onto (else tinyconfig).
    pub base_config: Option<&'a Path>,
    /// Where the build's log is kept (the kernel's lab directory).
    pub log_dir: &'a Path,
}

/// A kernel built (or found built) from a tree.
#[derive(Clone, Debug)]
pub struct Built {
    pub image: PathBuf,
    /// With DWARF and BTF, for the comparisons and inline sites.
    pub vmlinux: PathBuf,
    pub config: PathBuf,
    /// "tree /src/linux at 1a2b3c4d5e6f"
    pub source: String,
    /// How it came to be: built (how long), or cached.
    pub how: String,
    pub cached: bool,
}

/// The architecture trees are built for: the host's (cross builds are not
/// supported yet).
const ARCH: Arch = Arch::X86_64;

fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// `git -C dir ARGS`'s first line of output, or `None` when it fails.
fn git_line(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    output.status.success().then(|| text.trim().to_owned())
}

/// The working copy's identity: every file's path, size and modification
/// time (`.git` aside), hashed. Stat only: a 1.7 GB tree takes a second.
fn working_copy_id(root: &Path) -> Result<String> {
    let mut entries = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if entry.file_name() != ".git" {
                    dirs.push(path);
                }
            } else {
                let meta = entry.metadata()?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                entries.push(format!("{} {} {mtime}", path.display(), meta.len()));
            }
        }
    }
    entries.sort();
    Ok(short_hash(&entries.join("\n")))
}

/// The compiler's version line: a new compiler is a new kernel.
fn compiler() -> String {
    Command::new("gcc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| "no gcc".to_owned())
}

/// The source to build: where its files are, and their identity.
struct Source {
    /// Checked out when the kernel is not cached yet.
    commit: Option<String>,
    id: String,
    describe: String,
}

fn source(spec: &TreeSpec, root: &Path) -> Result<Source> {
    let Some(rev) = &spec.rev else {
        return Ok(Source {
            commit: None,
            id: working_copy_id(root)?,
            describe: format!("tree {} (working copy)", root.display()),
        });
    };
    if git_line(root, &["rev-parse", "--git-dir"]).is_none() {
        bail!(
            "{} is not a git work tree: a revision needs git (tree:{} builds the files as they are)",
            spec.path.display(),
            spec.path.display()
        );
    }
    let commit = git_line(
        root,
        &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")],
    )
    .filter(|c| !c.is_empty())
    .with_context(|| format!("revision {rev} does not exist in {}", spec.path.display()))?;
    let tree = git_line(root, &["rev-parse", &format!("{commit}^{{tree}}")])
        .with_context(|| format!("reading the tree of {commit}"))?;
    Ok(Source {
        describe: format!("tree {} at {}", root.display(), &commit[..12.min(commit.len())]),
        commit: Some(commit),
        id: tree,
    })
}

/// The shared clone revisions are checked out in, at `commit`: git
/// rewrites only the files that differ from the last checkout.
fn checkout(root: &Path, clone: &Path, commit: &str, log: &mut std::fs::File) -> Result<()> {
    if !clone.join(".git").is_dir() {
        let _ = std::fs::remove_dir_all(clone);
        let status = Command::new("git")
            .args(["clone", "--quiet", "--shared", "--no-checkout"])
            .arg(root)
            .arg(clone)
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .status()
            .context("starting git")?;
        if !status.success() {
            bail!("git clone --shared {} failed ({status})", root.display());
        }
    }
    writeln!(log, "$ git checkout --detach {commit}")?;
    let status = Command::new("git")
        .arg("-C")
        .arg(clone)
        .args(["checkout", "--quiet", "--force", "--detach", commit])
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .status()
        .context("starting git")?;
    if !status.success() {
        bail!("git checkout {commit} in {} failed ({status})", clone.display());
    }
    Ok(())
}

/// Runs one build step with its output appended to `log`; `on_line` sees
/// each line of its stdout. A signal to the lab stops it.
fn step(command: &mut Command, log: &mut std::fs::File, on_line: &mut dyn FnMut(&str)) -> Result<()> {
    writeln!(log, "$ {command:?}")?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone()?);
    let mut child = crate::children::spawn(command, "the kernel build (make)")?;
    let stdout = child.child.stdout.take().context("make's stdout")?;
    for line in BufReader::new(stdout).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        writeln!(log, "{line}")?;
        on_line(&line);
    }
    let status = child.child.wait().context("waiting for make")?;
    if let Some(signal) = crate::children::interrupted() {
        bail!("interrupted by {}", crate::children::signal_name(signal));
    }
    if !status.success() {
        bail!("{status}");
    }
    Ok(())
}

/// The first line of a failed build's log that says what went wrong.
fn first_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .find(|line| line.contains(": error:") || line.contains(": fatal error:") || line.starts_with("*** "))
        .map(|line| line.trim().to_owned())
}

fn bar(known_objects: Option<u64>, label: &str) -> ProgressBar {
    let (bar, template) = match known_objects {
        Some(total) => (
            ProgressBar::new(total),
            "{bar:30} {pos}/~{len} objects, {elapsed} elapsed, about {eta} left: {msg}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {pos} objects, {elapsed} elapsed: {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(format!("building {label}"));
    bar
}

/// Builds the kernel of `spec`, or finds it built.
pub fn build(spec: &TreeSpec, options: &BuildOptions) -> Result<Built> {
    let root = std::fs::canonicalize(&spec.path)
        .map_err(|_| anyhow::anyhow!("tree {} does not exist: give a kernel source tree", spec.path.display()))?;
    if !root.join("Kconfig").is_file() || !root.join("scripts/kconfig/merge_config.sh").is_file() {
        bail!(
            "{} is not a kernel source tree (no Kconfig and scripts/kconfig/merge_config.sh)",
            spec.path.display()
        );
    }
    let base = match options.base_config {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("--config {} cannot be read", path.display()))?
        }
        None => "tinyconfig".to_owned(),
    };
    let source = source(spec, &root)?;
    let tree_dir = options.cache.join("trees").join(format!(
        "{}-{}",
        root.file_name().map_or_else(|| "tree".into(), |n| n.to_string_lossy()),
        short_hash(&root.display().to_string())
    ));
    // Two keys: what goes in (source, base config, fragment, compiler), to
    // find a kernel without configuring anything; and the final .config,
    // under which it is kept, so that inputs that configure alike (a
    // reworded fragment) share one build.
    let compiler = compiler();
    let inputs_key = short_hash(&format!(
        "source {}\nbase {base}\nfragment {}\ncompiler {}\narch {}",
        source.id,
        config::FRAGMENT,
        compiler,
        ARCH.debian()
    ));
    let inputs_file = tree_dir.join("inputs").join(&inputs_key);
    let kept_dir = |key: &str| tree_dir.join("kernels").join(key);
    let complete = |kept: &Path| kept.join("bzImage").is_file() && kept.join("vmlinux").is_file();
    let built = |kept: &Path, how: String, cached| Built {
        image: kept.join("bzImage"),
        vmlinux: kept.join("vmlinux"),
        config: kept.join("config"),
        source: source.describe.clone(),
        how,
        cached,
    };
    let remember = |key: &str| -> Result<()> {
        std::fs::create_dir_all(tree_dir.join("inputs")).context("creating the inputs index")?;
        std::fs::write(&inputs_file, key).with_context(|| format!("writing {}", inputs_file.display()))
    };
    if let Ok(key) = std::fs::read_to_string(&inputs_file)
        && complete(&kept_dir(key.trim()))
    {
        let kept = kept_dir(key.trim());
        return Ok(built(&kept, format!("cached ({})", kept.display()), true));
    }

    std::fs::create_dir_all(options.log_dir).with_context(|| format!("creating {}", options.log_dir.display()))?;
    let log_path = options.log_dir.join("build.log");
    let mut log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let started = Instant::now();
    let failed = |err: anyhow::Error| {
        let cause = first_error(&log_path).map_or_else(|| format!("{err:#}"), |line| format!("{err:#}: {line}"));
        anyhow::anyhow!("building {spec} failed ({cause}); log: {}", log_path.display())
    };
    let (src, build) = match &source.commit {
        Some(commit) => {
            let clone = tree_dir.join("src");
            std::fs::create_dir_all(&tree_dir).with_context(|| format!("creating {}", tree_dir.display()))?;
            checkout(&root, &clone, commit, &mut log).map_err(failed)?;
            (clone, tree_dir.join("build-revisions"))
        }
        None => (root.clone(), tree_dir.join("build-working-copy")),
    };
    std::fs::create_dir_all(&build).with_context(|| format!("creating {}", build.display()))?;
    let make = || {
        let mut command = Command::new("make");
        command.arg("-C").arg(&src).arg(format!("O={}", build.display()));
        command
    };
    let mut quiet = |_: &str| {};
    match options.base_config {
        Some(path) => {
            std::fs::copy(path, build.join(".config")).with_context(|| format!("copying {}", path.display()))?;
        }
        None => step(make().arg("tinyconfig"), &mut log, &mut quiet).map_err(failed)?,
    }
    let fragment = build.join("mprotect-trace-lab.config");
    std::fs::write(&fragment, config::FRAGMENT).with_context(|| format!("writing {}", fragment.display()))?;
    step(
        Command::new(src.join("scripts/kconfig/merge_config.sh"))
            .current_dir(&src)
            .arg("-m")
            .arg("-O")
            .arg(&build)
            .arg(build.join(".config"))
            .arg(&fragment),
        &mut log,
        &mut quiet,
    )
    .map_err(failed)?;
    step(make().arg("olddefconfig"), &mut log, &mut quiet).map_err(failed)?;
    let final_config = std::fs::read_to_string(build.join(".config")).context("reading the final .config")?;
    let missing = config::missing(&final_config, ARCH, true);
    if !missing.is_empty() {
        bail!(
            "{}; merge_config.sh's log: {}",
            config::refusal(&format!("the config of {spec} after olddefconfig"), &missing),
            log_path.display()
        );
    }
    let key = short_hash(&format!(
        "source {}\nconfig {final_config}\ncompiler {}\narch {}",
        source.id,
        compiler,
        ARCH.debian()
    ));
    let kept = kept_dir(&key);
    if complete(&kept) {
        remember(&key)?;
        return Ok(built(
            &kept,
            format!("cached, the same final .config ({})", kept.display()),
            true,
        ));
    }

    // The bar's length is the largest build of this tree so far.
    let objects_file = tree_dir.join("objects");
    let known = std::fs::read_to_string(&objects_file)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    let progress = bar(known, &spec.to_string());
    let mut objects = 0u64;
    let mut said = false;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    step(
        make().arg(format!("-j{jobs}")).arg("bzImage"),
        &mut log,
        &mut |line: &str| {
            if objects == 0 && !said {
                said = true;
                super::say(
                    &progress,
                    format!("lab: building {spec}: make is running (log: {})", log_path.display()),
                );
            }
            // Kbuild's quiet lines: "  CC      mm/mprotect.o".
            if line.starts_with("  CC ") || line.starts_with("  AS ") {
                objects += 1;
                progress.set_position(objects);
            }
        },
    )
    .map_err(|err| {
        progress.finish_and_clear();
        failed(err)
    })?;
    progress.finish_and_clear();
    if known.is_none_or(|known| objects > known) {
        let _ = std::fs::write(&objects_file, objects.to_string());
    }

    // Kept apart from the build directory, which the next revision reuses.
    let partial = kept.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    for (from, to) in [
        (build.join("arch/x86/boot/bzImage"), "bzImage"),
        (build.join("vmlinux"), "vmlinux"),
        (build.join(".config"), "config"),
    ] {
        std::fs::copy(&from, partial.join(to)).with_context(|| format!("keeping {}", from.display()))?;
    }
    std::fs::copy(&log_path, partial.join("build.log")).context("keeping the build log")?;
    let _ = std::fs::remove_dir_all(&kept);
    std::fs::rename(&partial, &kept).with_context(|| format!("renaming to {}", kept.display()))?;
    remember(&key)?;
    Ok(built(
        &kept,
        format!(
            "built in {} ({objects} objects compiled; log: {})",
            humantime::format_duration(std::time::Duration::from_secs(started.elapsed().as_secs())),
            log_path.display()
        ),
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_specs_parse_with_and_without_a_revision() {
        let spec = TreeSpec::parse("/src/linux@v6.19").unwrap();
        assert_eq!(spec.path, PathBuf::from("/src/linux"));
        assert_eq!(spec.rev.as_deref(), Some("v6.19"));
        assert_eq!(spec.label(), "linux@v6.19");
        assert_eq!(spec.to_string(), "tree:/src/linux@v6.19");
        let spec = TreeSpec::parse("linux@origin/mm-unstable").unwrap();
        assert_eq!(spec.label(), "linux@origin_mm-unstable");
        let spec = TreeSpec::parse("/src/linux").unwrap();
        assert_eq!((spec.label(), spec.rev), ("linux".to_owned(), None));
        assert_eq!(
            TreeSpec::parse("").unwrap_err().to_string(),
            "--kernel tree:: give the path of a kernel source tree, e.g. tree:~/linux@v6.19"
        );
    }
}
