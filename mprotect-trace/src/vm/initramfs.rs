//! The initramfs a VM boots into: static busybox, the tracer binary with
//! the shared libraries it needs, and an `/init` script.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use super::run_checked;

/// Where the tracer sits inside the guest.
pub const GUEST_TRACER: &str = "/mprotect-trace";

/// Bytes of cpio archive above which it is not compressed.
const UNCOMPRESSED_ABOVE: u64 = 64 << 20;

pub struct Initramfs {
    pub path: PathBuf,
}

impl Initramfs {
    /// Packs `busybox` (static, of the guest's architecture), `tracer` and
    /// `init` (the script's text) into `work_dir/initramfs.cpio.gz`,
    /// staging the tree in `work_dir/initramfs`.
    pub fn build(work_dir: &Path, busybox: &Path, tracer: &Path, init: &str) -> Result<Self> {
        Self::build_with(work_dir, busybox, tracer, init, &[])
    }

    /// The same, with `files` too: each host file at its guest path
    /// (a sites file the host wrote from a vmlinux too big for the guest).
    pub fn build_with(
        work_dir: &Path,
        busybox: &Path,
        tracer: &Path,
        init: &str,
        files: &[(&Path, &str)],
    ) -> Result<Self> {
        let root = work_dir.join("initramfs");
        if root.exists() {
            std::fs::remove_dir_all(&root).with_context(|| format!("clearing {}", root.display()))?;
        }
        for dir in ["bin", "proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).with_context(|| format!("creating {}", root.display()))?;
        }
        std::fs::copy(busybox, root.join("bin/busybox")).with_context(|| format!("copying {}", busybox.display()))?;
        std::fs::copy(tracer, root.join(GUEST_TRACER.trim_start_matches('/')))
            .with_context(|| format!("copying {}", tracer.display()))?;
        copy_libraries(&root, tracer)?;
        for (host, guest) in files {
            let target = root.join(guest.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().context("a guest path has no parent")?)?;
            std::fs::copy(host, &target).with_context(|| format!("copying {}", host.display()))?;
            copy_libraries(&root, host)?;
        }
        let init_path = root.join("init");
        std::fs::write(&init_path, init).with_context(|| format!("writing {}", init_path.display()))?;
        std::fs::set_permissions(&init_path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .with_context(|| format!("making {} executable", init_path.display()))?;
        // Absolute: the packing runs inside the staging tree (a relative
        // `lab -o DIR` wrote nowhere).
        let work_dir = std::path::absolute(work_dir).with_context(|| format!("resolving {}", work_dir.display()))?;
        let plain = work_dir.join("initramfs.cpio");
        let compressed = work_dir.join("initramfs.cpio.gz");
        for stale in [&plain, &compressed] {
            if stale.exists() {
                std::fs::remove_file(stale).with_context(|| format!("removing {}", stale.display()))?;
            }
        }
        run_checked(
            Command::new("sh")
                .args(["-c", "find . | cpio -o -H newc --quiet > \"$0\""])
                .arg(&plain)
                .current_dir(&root),
        )?;
        // A large tree (a guest with bpftrace and LLVM) stays uncompressed:
        // an emulated CPU inflates it far slower than QEMU copies it.
        let size = std::fs::metadata(&plain)
            .with_context(|| format!("reading {}", plain.display()))?
            .len();
        let path = if size > UNCOMPRESSED_ABOVE {
            plain
        } else {
            run_checked(Command::new("gzip").args(["-1", "-n"]).arg(&plain))?;
            compressed
        };
        Ok(Self { path })
    }
}

/// Copies the shared libraries `binary` needs into `root`, at the paths
/// ldd names (a static binary or a data file needs none).
fn copy_libraries(root: &Path, binary: &Path) -> Result<()> {
    let libraries = Command::new("ldd")
        .arg(binary)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    for library in libraries
        .lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
    {
        let target = root.join(library.trim_start_matches('/'));
        if target.exists() {
            continue;
        }
        std::fs::create_dir_all(target.parent().context("library path has no parent")?)?;
        std::fs::copy(library, &target).with_context(|| format!("copying {library}"))?;
    }
    Ok(())
}
