//! Multi-size THP for the large-folio workload: the per-size knobs under
//! /sys/kernel/mm/transparent_hugepage, set for one run and restored after,
//! whether the run ends normally, with an error, or on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context as _, Result, bail};

pub const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";

/// The folio sizes (kB) this kernel offers for anonymous (`shared`:
/// shmem) memory: the `hugepages-<size>kB` directories with that knob
/// (x86 has no 8 kB folios for anonymous memory, only for shmem).
pub fn offered_sizes(shared: bool) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(THP_DIR)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()
                })
                .filter(|&size| knob(size, shared).exists())
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_unstable();
    sizes
}

/// The THP mode: the active word of `enabled` (`always`, `madvise`,
/// `never`); `None` when the kernel has no THP.
pub fn thp_enabled() -> Option<String> {
    let text = std::fs::read_to_string(Path::new(THP_DIR).join("enabled")).ok()?;
    active(&text).map(str::to_owned)
}

/// The multi-size THP sizes enabled for anonymous memory: `(size_kb,
/// mode)` of each size whose knob is not `never`, smallest first; empty
/// when the kernel has none.
pub fn enabled_sizes() -> Vec<(u64, String)> {
    offered_sizes(false)
        .into_iter()
        .filter_map(|size| {
            let text = std::fs::read_to_string(knob(size, false)).ok()?;
            let mode = active(&text)?;
            (mode != "never").then(|| (size, mode.to_owned()))
        })
        .collect()
}

/// Checks `folio_kb` is a size this kernel offers for this memory, in one
/// line listing them.
pub fn check_size(folio_kb: u64, shared: bool) -> Result<()> {
    let sizes = offered_sizes(shared);
    if sizes.is_empty() {
        bail!(
            "--folio-kb needs multi-size THP, but this kernel has no {THP_DIR}/hugepages-*kB (Linux 6.8+ with CONFIG_TRANSPARENT_HUGEPAGE)"
        );
    }
    if !sizes.contains(&folio_kb) {
        let list: Vec<String> = sizes.iter().map(u64::to_string).collect();
        let memory = if shared { "shared" } else { "private" };
        bail!(
            "--folio-kb {folio_kb}: this kernel offers {} kB for {memory} memory",
            list.join(", ")
        );
    }
    Ok(())
}

/// The knob file of `size` for anonymous (`enabled`) or shmem (`shmem_enabled`) memory.
fn knob(size_kb: u64, shared: bool) -> PathBuf {
    let file = if shared { "shmem_enabled" } else { "enabled" };
    Path::new(THP_DIR).join(format!("hugepages-{size_kb}kB")).join(file)
}

/// The bracketed (active) word of a sysfs choice file: "always [never]" -> "never".
fn active(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
}

/// Every knob a workload changed (the mTHP sizes, NUMA balancing's) as it
/// was, restored once: on drop or from a signal.
#[derive(Default)]
pub struct Knobs {
    saved: Mutex<Vec<(PathBuf, String)>>,
    /// debugfs, when the workload mounted it for its knobs.
    mounted: Mutex<Option<PathBuf>>,
}

impl Knobs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `wanted` into `path`, keeping `before` to put back; `flag`
    /// names what asked for it in the refusal without root.
    pub fn write(&self, flag: &str, path: PathBuf, before: &str, wanted: &str) -> Result<()> {
        match std::fs::write(&path, wanted) {
            Ok(()) => {
                self.lock().push((path, before.to_owned()));
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                bail!("{flag} needs root to set {} (run it as root)", path.display())
            }
            Err(err) => Err(err).with_context(|| format!("setting {} to {wanted}", path.display())),
        }
    }

    /// Mounts debugfs at `at`, unmounted again with the knobs.
    pub fn mount_debugfs(&self, at: &std::path::Path) -> Result<()> {
        let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).context("the debugfs path")?;
        // SAFETY: NUL-terminated strings; no data argument.
        let rc = unsafe {
            libc::mount(
                c"debugfs".as_ptr(),
                target.as_ptr(),
                c"debugfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            bail!(
                "mounting debugfs at {}: {}",
                at.display(),
                std::io::Error::last_os_error()
            );
        }
        *self.mounted.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(at.to_path_buf());
        Ok(())
    }
    /// Sets `folio_kb` to `always` and every other size to `never`, so
    /// faults allocate folios of exactly that size (a larger size left on
    /// would win for aligned ranges).
    pub fn set(folio_kb: u64, shared: bool) -> Result<Self> {
        let knobs = Self::new();
        for size in offered_sizes(shared) {
            let path = knob(size, shared);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let Some(before) = active(&text).map(str::to_owned) else {
                bail!("{} has no active setting: {text}", path.display());
            };
            let wanted = if size == folio_kb { "always" } else { "never" };
            if before == wanted {
                continue;
            }
            knobs.write("--folio-kb", path, &before, wanted)?;
        }
        Ok(knobs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PathBuf, String)>> {
        self.saved.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts every changed knob back, last first, and unmounts debugfs if
    /// it was mounted for them; safe to call twice.
    pub fn restore(&self) {
        for (path, before) in self.lock().drain(..).rev() {
            if let Err(err) = std::fs::write(&path, &before) {
                crate::output::stderr_line(&format!(
                    "warning: could not restore {} to {before}: {err}",
                    path.display()
                ));
            }
        }
        let mounted = self
            .mounted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(at) = mounted
            && let Ok(target) = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        {
            // SAFETY: a NUL-terminated path this process mounted.
            if unsafe { libc::umount(target.as_ptr()) } != 0 {
                crate::output::stderr_line(&format!(
                    "warning: could not unmount debugfs at {}: {}",
                    at.display(),
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
}

impl Knobs {
    /// Restores the knobs also when SIGINT or SIGTERM ends the process (a
    /// tracer stops its workload with SIGTERM): the signals are blocked in
    /// this thread, and so in every thread started after, and one thread
    /// waits for them, restores, and exits as the signal would have.
    pub fn restored_on_signal(self) -> Result<KnobGuard> {
        let knobs = std::sync::Arc::new(self);
        // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
        }
        // SAFETY: blocks two signals in this thread; no old mask is kept.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            bail!("blocking SIGINT and SIGTERM: {}", std::io::Error::from_raw_os_error(rc));
        }
        let waiting = std::sync::Arc::clone(&knobs);
        let (started, running) = std::sync::mpsc::sync_channel(0);
        std::thread::spawn(move || {
            // Running the closure means the thread's start-up is over (Rust
            // sets up its signal stack with an mprotect() then): say so,
            // so that call is never counted among the workload's.
            let _ = started.send(());
            let mut signal = 0;
            // SAFETY: waits on the set built above.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                waiting.restore();
                std::process::exit(128 + signal);
            }
        });
        running
            .recv()
            .context("the thread that restores the knobs on a signal did not start")?;
        Ok(KnobGuard(knobs))
    }
}

impl Knobs {
    /// Restores the knobs also when SIGINT or SIGTERM comes, without a
    /// thread: the signal stops the workload after its current iteration,
    /// and the knobs are put back on its way out. For a workload that must
    /// stay one thread (NUMA balancing skips a single-threaded process's
    /// local folios, not a multi-threaded one's).
    pub fn restored_on_stop(self) -> Result<KnobGuard> {
        super::stop_on(&[libc::SIGINT, libc::SIGTERM])?;
        Ok(KnobGuard(std::sync::Arc::new(self)))
    }
}

/// Restores the knobs when dropped (the signal thread holds them too).
pub struct KnobGuard(std::sync::Arc<Knobs>);

impl Drop for KnobGuard {
    fn drop(&mut self) {
        self.0.restore();
    }
}

impl Drop for Knobs {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_choice_is_the_bracketed_one() {
        assert_eq!(active("always inherit madvise [never]"), Some("never"));
        assert_eq!(active("always [inherit] within_size advise never"), Some("inherit"));
        assert_eq!(active("always inherit"), None);
    }
}
