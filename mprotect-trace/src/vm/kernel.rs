//! The kernel a VM boots: an image file, or Debian's newest cloud kernel
//! of a series, fetched with apt through a private apt state (the
//! machine's own sources stay as they are) and unpacked once into a cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};

use super::{Arch, output_of, run_checked};

/// The suites searched, oldest first: bookworm has 6.1, trixie 6.12,
/// trixie-backports 7.x.
const SUITES: &str = "bookworm trixie trixie-backports";
const ARCHIVE: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelImage {
    /// The bootable image (`vmlinuz`, `bzImage`, arm64 `Image`).
    pub path: PathBuf,
    pub arch: Arch,
    /// Where it came from: the package name, or the path given.
    pub source: String,
}

impl KernelImage {
    /// An image file given by path, for `arch`.
    pub fn from_path(path: &Path, arch: Arch) -> Result<Self> {
        if !path.is_file() {
            bail!(
                "kernel image {} does not exist: give a bzImage or vmlinuz file",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            arch,
            source: path.display().to_string(),
        })
    }

    /// The newest Debian kernel of `series` ("6.1", "7", "7.3") for
    /// `arch`, of its flavour ([`Arch::debian_flavour`]: cloud where there
    /// is one), unpacked under `cache`; reused when already there.
    pub fn debian(series: &str, arch: Arch, cache: &Path) -> Result<Self> {
        Self::debian_flavour(series, arch, arch.debian_flavour(), cache)
    }

    /// The same, of another of Debian's flavours for `arch` (ppc64el's
    /// 4 kB-page `powerpc64le`).
    pub fn debian_flavour(series: &str, arch: Arch, flavour: &str, cache: &Path) -> Result<Self> {
        let apt = PrivateApt::new(cache, arch)?;
        let escaped = series.replace('.', "\\.");
        // 6.x ships the image as linux-image-*-unsigned; 7.x as linux-binary-*.
        let patterns = [
            format!("^linux-image-{escaped}[.-].*-{flavour}-unsigned$"),
            format!("^linux-binary-{escaped}[.-].*-{flavour}$"),
        ];
        let mut candidates = Vec::new();
        for pattern in &patterns {
            let found = output_of(apt.command("apt-cache").args(["search", "--names-only", pattern]))?;
            candidates.extend(
                found
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .map(str::to_owned),
            );
        }
        ensure!(
            !candidates.is_empty(),
            "Debian ({SUITES}) has no {flavour} kernel of series {series} for {}",
            arch.debian()
        );
        let (package, unpacked) = newest_served(&apt, candidates)?;
        let path = find_image(&unpacked).with_context(|| format!("{package} holds no vmlinuz"))?;
        // 7.x ships the image's config in linux-base-V: put it beside the
        // image, where the lab's config check looks (6.x has boot/config-V).
        let beside = path.with_file_name("config");
        if let Some(version) = package.strip_prefix("linux-binary-")
            && !beside.is_file()
        {
            let config = apt.extracted(&format!("linux-base-{version}"), "config")?;
            std::fs::copy(&config, &beside).with_context(|| format!("copying {}", config.display()))?;
        }
        Ok(Self {
            path,
            arch,
            source: package,
        })
    }
}

/// The DWARF vmlinux of a Debian kernel image, from its `-dbg` package
/// (about 350 MB): only `*/vmlinux` is extracted, once, into `cache`.
pub fn debian_debug_vmlinux(image: &KernelImage, cache: &Path) -> Result<PathBuf> {
    // linux-binary-7.3.4+deb13-cloud-amd64 -> linux-image-7.3.4+deb13-cloud-amd64-dbg;
    // linux-image-6.1.0-50-cloud-amd64-unsigned -> linux-image-6.1.0-50-cloud-amd64-dbg.
    let flavour = image
        .source
        .strip_prefix("linux-binary-")
        .or_else(|| image.source.strip_prefix("linux-image-"))
        .map(|rest| rest.trim_end_matches("-unsigned"))
        .with_context(|| format!("{} is not a Debian kernel package", image.source))?;
    let package = format!("linux-image-{flavour}-dbg");
    PrivateApt::new(cache, image.arch)?.extracted(&package, "vmlinux")
}

/// A static busybox for `arch`'s guests: the machine's own for x86_64,
/// Debian's `busybox-static` for the others, fetched once into `cache`.
pub fn busybox(arch: Arch, cache: &Path) -> Result<PathBuf> {
    match arch {
        Arch::X86_64 => Ok(PathBuf::from("/bin/busybox")),
        Arch::Arm64 | Arch::Ppc64le => {
            let unpacked = PrivateApt::new(cache, arch)?.unpacked("busybox-static")?;
            // bin/ before the /usr merge (bookworm), usr/bin/ after (trixie).
            ["usr/bin/busybox", "bin/busybox"]
                .into_iter()
                .map(|path| unpacked.join(path))
                .find(|path| path.is_file())
                .context("busybox-static holds no busybox")
        }
    }
}

/// apt with its own state, cache and sources under one directory, for
/// one architecture's packages.
struct PrivateApt {
    dir: PathBuf,
    /// Where packages are unpacked, one directory each.
    cache: PathBuf,
    arch: Arch,
}

impl PrivateApt {
    /// Sets up `cache/apt-<arch>` and fetches the package lists once.
    fn new(cache: &Path, arch: Arch) -> Result<Self> {
        let dir = cache.join(format!("apt-{}", arch.debian()));
        let apt = Self {
            dir: dir.clone(),
            cache: cache.to_path_buf(),
            arch,
        };
        let dir = dir.as_path();
        let lists = dir.join("state/lists");
        let fetched = std::fs::read_dir(&lists).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with("InRelease")))
        });
        if !fetched {
            for sub in ["state/lists/partial", "cache/archives/partial"] {
                std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.display()))?;
            }
            let sources: String = SUITES
                .split(' ')
                .map(|suite| {
                    format!(
                        "deb [arch={} signed-by={KEYRING}] {ARCHIVE} {suite} main\n",
                        arch.debian()
                    )
                })
                .collect();
            std::fs::write(dir.join("sources.list"), sources)?;
            run_checked(apt.command("apt-get").args(["update", "-qq"]))?;
        }
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let option = |key: &str, value: PathBuf| format!("{key}={}", value.display());
        let mut command = Command::new(program);
        command
            .arg("-o")
            .arg(option("Dir::State", self.dir.join("state")))
            .arg("-o")
            .arg(option("Dir::Cache", self.dir.join("cache")))
            .arg("-o")
            .arg(option("Dir::Etc::SourceList", self.dir.join("sources.list")))
            .args(["-o", "Dir::Etc::SourceParts=/dev/null", "-o"])
            .arg(format!("APT::Architecture={}", self.arch.debian()));
        command
    }

    /// The file named `file_name` of `package`, extracted alone (a debug
    /// package is gigabytes unpacked), once; the .deb is removed after.
    fn extracted(&self, package: &str, file_name: &str) -> Result<PathBuf> {
        let dir = self.cache.join(format!("{package}_{}", self.arch.debian()));
        let path = dir.join(file_name);
        if path.is_file() {
            return Ok(path);
        }
        let deb = self.download(package)?;
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
        // `NAME*`: 6.x debug packages hold modules/V/vmlinux as a symlink
        // to boot/vmlinux-V (one pattern: tar fails on one that matches nothing).
        let extract = format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards '*/{file_name}*'",
            deb.display(),
            partial.display()
        );
        run_checked(Command::new("sh").args(["-c", &extract]))?;
        let found = find_file(&partial, file_name)
            .and_then(|found| std::fs::canonicalize(found).ok())
            .filter(|found| found.is_file())
            .with_context(|| format!("{package} holds no {file_name}"))?;
        std::fs::create_dir_all(&dir)?;
        std::fs::rename(&found, &path).with_context(|| format!("moving {} to {}", found.display(), path.display()))?;
        let _ = std::fs::remove_dir_all(&partial);
        let _ = std::fs::remove_file(&deb);
        Ok(path)
    }

    /// `package` (the newest apt knows) downloaded into the cache: its .deb.
    fn download(&self, package: &str) -> Result<PathBuf> {
        let download = self.cache.join("download");
        std::fs::create_dir_all(&download).with_context(|| format!("creating {}", download.display()))?;
        let output = self
            .command("apt-get")
            .args(["download", "-qq", &format!("{package}:{}", self.arch.debian())])
            .current_dir(&download)
            .output()
            .context("starting apt-get")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprint!("{stderr}");
        if !output.status.success() {
            // The lists name it, the pool lacks it: a mirror behind its lists.
            if stderr.contains(" 404 ") {
                return Err(anyhow::Error::new(NotServed(package.to_owned())));
            }
            bail!("apt-get download {package} failed ({})", output.status);
        }
        let suffix = format!("_{}.deb", self.arch.debian());
        std::fs::read_dir(&download)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| {
                path.file_name().is_some_and(|name| {
                    let name = name.to_string_lossy();
                    name.starts_with(&format!("{package}_")) && name.ends_with(&suffix)
                })
            })
            .context("apt-get download left no .deb")
    }

    /// `package` (the newest apt knows) downloaded and unpacked under the
    /// cache, once.
    fn unpacked(&self, package: &str) -> Result<PathBuf> {
        let unpacked = self.cache.join(format!("{package}_{}", self.arch.debian()));
        if unpacked.is_dir() {
            return Ok(unpacked);
        }
        let deb = self.download(package)?;
        let partial = unpacked.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        std::fs::rename(&partial, &unpacked).with_context(|| format!("renaming to {}", unpacked.display()))?;
        Ok(unpacked)
    }
}

/// The first file called `name` under `dir`, depth first.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

/// The numbers in a kernel package's name, for ordering:
/// `linux-binary-7.3.4+deb13-cloud-amd64` -> [7, 3, 4, 13].
fn version_of(package: &str) -> Vec<u64> {
    package
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// The package with the highest version among `packages`.
fn newest(packages: &[String]) -> Option<String> {
    packages.iter().max_by_key(|name| version_of(name)).cloned()
}

/// A package the archive's lists name but its pool does not serve (404).
#[derive(Debug)]
struct NotServed(String);

impl std::fmt::Display for NotServed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the archive lists {} but does not serve it (404)", self.0)
    }
}

impl std::error::Error for NotServed {}

/// The newest of `packages` the archive serves, unpacked. A mirror may
/// list a package its pool lacks (ppc64el's 7.3.4 here): that one is
/// named, and the next newest tried; any other failure stops there.
fn newest_served(apt: &PrivateApt, mut packages: Vec<String>) -> Result<(String, PathBuf)> {
    let mut unserved: Vec<String> = Vec::new();
    let not_served = |unserved: &[String]| {
        let them = if unserved.len() == 1 { "it" } else { "them" };
        format!("the archive lists {} but does not serve {them}", unserved.join(", "))
    };
    while let Some(package) = newest(&packages) {
        packages.retain(|p| *p != package);
        match apt.unpacked(&package) {
            Ok(unpacked) => {
                if !unserved.is_empty() {
                    eprintln!("vm: {}: using {package}", not_served(&unserved));
                }
                return Ok((package, unpacked));
            }
            Err(err) if err.is::<NotServed>() => {
                unserved.push(package);
                if packages.is_empty() {
                    bail!("{} (404): give another series", not_served(&unserved));
                }
            }
            Err(err) => return Err(err),
        }
    }
    bail!("no kernel package to download")
}

/// The image inside an unpacked kernel package: `boot/vmlinuz-*` (6.x)
/// or `usr/lib/modules/*/vmlinuz` (7.x).
fn find_image(unpacked: &Path) -> Option<PathBuf> {
    let in_boot = std::fs::read_dir(unpacked.join("boot")).ok().and_then(|entries| {
        entries.filter_map(|e| e.ok().map(|e| e.path())).find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
    });
    in_boot.or_else(|| {
        std::fs::read_dir(unpacked.join("usr/lib/modules"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("vmlinuz")))
            .find(|path| path.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_wins() {
        let packages: Vec<String> = [
            "linux-image-6.1.0-9-cloud-amd64-unsigned",
            "linux-image-6.1.0-41-cloud-amd64-unsigned",
            "linux-binary-7.1.13+deb13-cloud-amd64",
            "linux-binary-7.3.4+deb13-cloud-amd64",
            "linux-binary-7.3.10+deb13-cloud-amd64",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(
            newest(&packages[..2]).as_deref(),
            Some("linux-image-6.1.0-41-cloud-amd64-unsigned")
        );
        assert_eq!(
            newest(&packages[2..]).as_deref(),
            Some("linux-binary-7.3.10+deb13-cloud-amd64")
        );
        assert_eq!(newest(&[]), None);
    }

    #[test]
    fn a_missing_image_is_one_line_naming_what_to_give() {
        let err = KernelImage::from_path(Path::new("/no/such/bzImage"), Arch::X86_64).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel image /no/such/bzImage does not exist: give a bzImage or vmlinuz file"
        );
    }
}
