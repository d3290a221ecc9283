//! The directory a run owns: `-o DIR`, empty or absent (or a run's
//! directory, replaced with `--replace`), or a new one with a unique name
//! under `./mprotect-trace-out/`. A run never mixes its files with another's.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::model::report;

/// Where runs go without `-o`.
pub const DEFAULT_PARENT: &str = "mprotect-trace-out";

/// Creates a new directory under `parent` named by the UTC time to the
/// millisecond; a name already taken (two runs in one millisecond, or two
/// tracers at once) gets `-2`, `-3`, ...: creating it is the claim.
pub fn create_unique(parent: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(parent)
        .with_context(|| format!("creating {} (choose another place with -o DIR)", parent.display()))?;
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    for attempt in 1u32.. {
        let name = match attempt {
            1 => stamp.clone(),
            n => format!("{stamp}-{n}"),
        };
        let dir = parent.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("creating {} (choose another with -o DIR)", dir.display()));
            }
        }
    }
    unreachable!("u32 attempts")
}

/// The directory for a run: `requested`, or a new unique one. A requested
/// directory must be absent or empty, or, with `replace`, hold a run
/// (its files are removed when the new run writes its own). Checked
/// writable before anything is attached.
pub fn prepare(requested: Option<&Path>, replace: bool) -> Result<PathBuf> {
    let dir = match requested {
        None => create_unique(Path::new(DEFAULT_PARENT))?,
        Some(dir) => {
            check_reusable(dir, replace)?;
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating the output directory {} (choose another with -o DIR)",
                    dir.display()
                )
            })?;
            dir.to_owned()
        }
    };
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "the output directory {} is not writable (choose another with -o DIR)",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

fn check_reusable(dir: &Path, replace: bool) -> Result<()> {
    let entries: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect(),
        // Absent (created next), or not readable (creating it says why).
        Err(_) => return Ok(()),
    };
    if entries.is_empty() {
        return Ok(());
    }
    let holds_a_run = dir.join(report::FILE_NAME).is_file();
    match (holds_a_run, replace) {
        (true, true) => Ok(()),
        (true, false) => bail!(
            "{} already holds a run: choose a new -o DIR, or pass --replace to replace that run",
            dir.display()
        ),
        (false, _) => {
            let mut shown = entries;
            shown.sort();
            shown.truncate(3);
            bail!(
                "{} is not empty and holds no run ({}): choose a new or empty -o DIR",
                dir.display(),
                shown.join(", ")
            )
        }
    }
}

/// Removes the files of the run `dir` held (`--replace`), just before the
/// new run writes its own: none of the old flame graph or plots survive
/// next to the new report.
pub fn clear_old_run(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
        if path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("removing the old {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_directories_are_unique_even_within_one_millisecond() {
        let parent = std::env::temp_dir().join(format!("mprotect-trace-unique-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&parent);
        let dirs: Vec<PathBuf> = (0..20).map(|_| create_unique(&parent).unwrap()).collect();
        let mut names = dirs.clone();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), dirs.len(), "{dirs:?}");
        assert!(dirs.iter().all(|d| d.is_dir()));
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
