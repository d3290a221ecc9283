//! The kernel a VM boots: an image file, or Debian's cloud kernel of a
//! series, downloaded with apt and unpacked once into a cache directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use super::{output_of, run_checked};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelImage {
    /// The bootable image (`vmlinuz`, `bzImage`).
    pub path: PathBuf,
    /// Where it came from: the package name, or the path given.
    pub source: String,
}

impl KernelImage {
    /// An image file given by path.
    pub fn from_path(path: &Path) -> Result<Self> {
        if !path.is_file() {
            bail!(
                "kernel image {} does not exist: give a bzImage or vmlinuz file",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            source: path.display().to_string(),
        })
    }

    /// The newest of Debian's `linux-image-<series>.*-cloud-amd64-unsigned`
    /// packages apt knows, unpacked under `cache`; reused when present.
    pub fn debian_cloud(series: &str, cache: &Path) -> Result<Self> {
        let unpacked = cache.join(format!("debian-{series}"));
        if let Some(image) = find_vmlinuz(&unpacked) {
            return Ok(Self {
                source: format!("Debian cloud kernel {series} (cached in {})", unpacked.display()),
                path: image,
            });
        }
        let pattern = format!("^linux-image-{}\\..*-cloud-amd64-unsigned$", series.replace('.', "\\."));
        let search = output_of(Command::new("apt-cache").args(["search", "--names-only", &pattern]))?;
        let package = newest_package(&search)
            .with_context(|| format!("apt-cache knows no package matching {pattern} (run apt-get update)"))?;
        let download = cache.join("download");
        std::fs::create_dir_all(&download).with_context(|| format!("creating {}", download.display()))?;
        run_checked(
            Command::new("apt-get")
                .args(["download", &package])
                .current_dir(&download),
        )?;
        let deb = std::fs::read_dir(&download)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(&package))
            })
            .context("apt-get download left no .deb")?;
        run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        let path = find_vmlinuz(&unpacked).with_context(|| format!("{package} has no boot/vmlinuz-*"))?;
        Ok(Self { path, source: package })
    }
}

/// The package with the highest ABI number among `apt-cache search` lines
/// such as `linux-image-6.1.0-41-cloud-amd64-unsigned - Linux 6.1 ...`.
fn newest_package(search: &str) -> Option<String> {
    search
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .max_by_key(|name| name.split('-').nth(3).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0))
        .map(str::to_owned)
}

fn find_vmlinuz(unpacked: &Path) -> Option<PathBuf> {
    std::fs::read_dir(unpacked.join("boot"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_abi_wins() {
        let search = "linux-image-6.1.0-9-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n\
                      linux-image-6.1.0-41-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n\
                      linux-image-6.1.0-40-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n";
        assert_eq!(
            newest_package(search).as_deref(),
            Some("linux-image-6.1.0-41-cloud-amd64-unsigned")
        );
        assert_eq!(newest_package(""), None);
    }

    #[test]
    fn a_missing_image_is_one_line_naming_what_to_give() {
        let err = KernelImage::from_path(Path::new("/no/such/bzImage")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel image /no/such/bzImage does not exist: give a bzImage or vmlinuz file"
        );
    }
}
