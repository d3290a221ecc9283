//! The kernels a lab boots: `debian:VERSION[:ARCH]` (Debian's newest cloud
//! kernel of that series, downloaded and cached), `tree:PATH[@REV]` (built
//! from a source tree, see [`super::tree`]) or the path of an image, whose
//! architecture is read from its header. Each comes with the tracer binary
//! its guests run, and its config is checked before it boots.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::config;
use super::tree::{BuildOptions, TreeSpec};
use crate::vm::{Arch, KernelImage};

/// `--kernel SPEC`, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSpec {
    Debian { series: String, arch: Arch },
    Tree(TreeSpec),
    Image { path: PathBuf },
}

impl KernelSpec {
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(rest) = text.strip_prefix("tree:") {
            return TreeSpec::parse(rest).map(Self::Tree);
        }
        let Some(rest) = text.strip_prefix("debian:") else {
            return Ok(Self::Image {
                path: PathBuf::from(text),
            });
        };
        let (series, arch) = match rest.split_once(':') {
            Some((series, "amd64" | "x86_64")) => (series, Arch::X86_64),
            Some((series, "arm64" | "aarch64")) => (series, Arch::Arm64),
            Some((series, "ppc64el" | "ppc64le")) => (series, Arch::Ppc64le),
            Some((_, other)) => bail!("--kernel {text}: unknown architecture {other}; give amd64, arm64 or ppc64el"),
            None => (rest, host_arch()),
        };
        let valid = !series.is_empty() && series.split('.').all(|part| part.parse::<u32>().is_ok());
        if !valid {
            bail!("--kernel {text}: give a Debian kernel series such as debian:6.12 or debian:7.3:arm64");
        }
        Ok(Self::Debian {
            series: series.to_owned(),
            arch,
        })
    }

    /// A short name for directories and tables: `debian-6.12`,
    /// `debian-7.3-arm64`, or the image's file name.
    pub fn label(&self) -> String {
        match self {
            Self::Debian { series, arch } if *arch == host_arch() => format!("debian-{series}"),
            Self::Debian { series, arch } => format!("debian-{series}-{}", arch.debian()),
            Self::Tree(tree) => tree.label(),
            Self::Image { path } => path
                .file_name()
                .map_or_else(|| "kernel".to_owned(), |name| name.to_string_lossy().into_owned()),
        }
    }
}

impl std::fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Debian { series, arch } => write!(f, "debian:{series}:{}", arch.debian()),
            Self::Tree(tree) => write!(f, "{tree}"),
            Self::Image { path } => write!(f, "{}", path.display()),
        }
    }
}

fn host_arch() -> Arch {
    if std::env::consts::ARCH == "aarch64" {
        Arch::Arm64
    } else {
        Arch::X86_64
    }
}

/// What a kernel image's header says it is: an x86 boot protocol image
/// (`HdrS` at 0x202), an arm64 `Image` (`ARM\x64` at 0x38), a PE/EFI
/// image (an EFI-stub or zboot kernel) for x86-64 or arm64, or a
/// little-endian ppc64 ELF `vmlinux` (what ppc64el boots).
pub fn image_arch(path: &Path) -> Result<Arch> {
    let bytes = std::fs::read(path).with_context(|| format!("reading kernel image {}", path.display()))?;
    let at = |offset: usize, len: usize| bytes.get(offset..offset + len);
    if at(0x202, 4) == Some(b"HdrS") {
        return Ok(Arch::X86_64);
    }
    if at(0x38, 4) == Some(b"ARM\x64") {
        return Ok(Arch::Arm64);
    }
    // ELF, 64-bit, little-endian; e_machine EM_PPC64 (21).
    const EM_PPC64: u16 = 21;
    if at(0, 6) == Some(b"\x7fELF\x02\x01") && at(18, 2).map(|b| u16::from_le_bytes([b[0], b[1]])) == Some(EM_PPC64) {
        return Ok(Arch::Ppc64le);
    }
    if at(0, 2) == Some(b"MZ")
        && let Some(pe) = at(0x3c, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        && at(pe, 4) == Some(b"PE\0\0")
        && let Some(machine) = at(pe + 4, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    {
        match machine {
            0x8664 => return Ok(Arch::X86_64),
            0xaa64 => return Ok(Arch::Arm64),
            _ => {}
        }
    }
    bail!(
        "kernel image {} is neither an x86_64 bzImage, an arm64 Image nor a ppc64le vmlinux: QEMU cannot boot it",
        path.display()
    )
}

/// A kernel ready to boot, with the tracer its guests run.
#[derive(Clone, Debug)]
pub struct LabKernel {
    pub spec: KernelSpec,
    pub label: String,
    pub image: KernelImage,
    pub tracer: PathBuf,
    pub busybox: PathBuf,
    /// Its debug vmlinux, when the lab built it.
    pub vmlinux: Option<PathBuf>,
    /// What was found of its config (checked, or not found).
    pub config_note: String,
}

/// What resolving a spec needs besides the spec.
pub struct ResolveOptions<'a> {
    pub cache: &'a Path,
    pub arm64_tracer: Option<&'a Path>,
    /// `--config`: the base of tree builds.
    pub base_config: Option<&'a Path>,
    /// The lab's output directory (build logs go in each kernel's directory).
    pub output: &'a Path,
}

/// Where the tracer built for `arch` is: this binary for the host's own
/// architecture, else `arm64_tracer` or the cross build beside this
/// binary's target directory.
fn tracer_for(arch: Arch, arm64_tracer: Option<&Path>) -> Result<PathBuf> {
    if arch == host_arch() {
        // The running binary itself, even if its file is replaced or
        // removed meanwhile (a rebuild during a long bisect): the guests run
        // the same tracer as this host side. By pid, not "self": ldd reads
        // it from another process.
        let own = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
        if !own.exists() {
            bail!("{} is missing: mount /proc", own.display());
        }
        return Ok(own);
    }
    if let Some(path) = arm64_tracer.filter(|_| arch == Arch::Arm64) {
        if !path.is_file() {
            bail!("--arm64-tracer {} does not exist", path.display());
        }
        return Ok(path.to_path_buf());
    }
    // target/release/mprotect-trace -> target/<triple>/release/mprotect-trace
    let exe = std::env::current_exe().context("finding this program's own path")?;
    let built = exe
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join(arch.rust_target()).join("release/mprotect-trace"));
    match built {
        Some(path) if path.is_file() => Ok(path),
        _ => bail!(
            "no {} tracer: build it with `cargo build --release -p mprotect-trace --target {}`{}",
            arch.debian(),
            arch.rust_target(),
            if arch == Arch::Arm64 {
                ", or give --arm64-tracer PATH"
            } else {
                ""
            }
        ),
    }
}

/// Resolves one spec: the image (downloaded or built once into the
/// cache), its tracer, and the guest's busybox; then its config is checked.
/// Every failure is one line that names the kernel.
pub fn resolve(spec: &KernelSpec, options: &ResolveOptions) -> Result<LabKernel> {
    // The architecture and its tracer first: a kernel that cannot run is
    // refused before anything is downloaded or built.
    let arch = match spec {
        KernelSpec::Debian { arch, .. } => *arch,
        KernelSpec::Tree(_) => Arch::X86_64,
        KernelSpec::Image { path } => {
            if !path.is_file() {
                bail!(
                    "kernel image {} does not exist: give a bzImage, an arm64 Image or a ppc64le vmlinux file",
                    path.display()
                );
            }
            image_arch(path)?
        }
    };
    let tracer = tracer_for(arch, options.arm64_tracer)?;
    let label = spec.label();
    let (image, vmlinux, config_note) = match spec {
        KernelSpec::Debian { series, .. } => {
            let image = KernelImage::debian(series, arch, options.cache)?;
            let note = checked_config(&image, &format!("{} ({})", spec, image.source))?;
            (image, None, note)
        }
        KernelSpec::Image { path } => {
            let image = KernelImage::from_path(path, arch)?;
            let note = checked_config(&image, &format!("kernel image {}", path.display()))?;
            (image, None, note)
        }
        KernelSpec::Tree(tree) => {
            let built = super::tree::build(
                tree,
                &BuildOptions {
                    cache: options.cache,
                    base_config: options.base_config,
                    log_dir: &options.output.join(&label),
                },
            )?;
            eprintln!("lab: {spec}: {}: {}", built.source, built.how);
            let mut image = KernelImage::from_path(&built.image, arch)?;
            image.source = built.source.clone();
            let note = format!("{}: every option of the lab fragment set", built.config.display());
            (image, Some(built.vmlinux), note)
        }
    };
    Ok(LabKernel {
        label,
        spec: spec.clone(),
        tracer,
        busybox: crate::vm::kernel::busybox(arch, options.cache)?,
        image,
        vmlinux,
        config_note,
    })
}

/// An image's config checked against what the guests need: refused in one
/// line when it lacks some; booted with a warning when none is found.
fn checked_config(image: &KernelImage, whose: &str) -> Result<String> {
    let Some((text, from)) = config::of_image(&image.path) else {
        let warning =
            format!("{whose}: no config found (not in the image, no config-* or .config beside it): booted unchecked");
        eprintln!("warning: {warning}");
        return Ok(warning);
    };
    let missing = config::missing(&text, image.arch, false);
    if !missing.is_empty() {
        bail!(
            "{}",
            config::refusal(&format!("{whose} (config {})", from.display()), &missing)
        );
    }
    Ok(format!("{}: every needed option set", from.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_themselves() {
        let spec = KernelSpec::parse("debian:7.3:arm64").unwrap();
        assert_eq!(
            spec,
            KernelSpec::Debian {
                series: "7.3".into(),
                arch: Arch::Arm64
            }
        );
        assert_eq!(spec.to_string(), "debian:7.3:arm64");
        assert_eq!(KernelSpec::parse("debian:6.12").unwrap().label(), "debian-6.12");
        assert_eq!(KernelSpec::parse("/boot/bzImage-6.19").unwrap().label(), "bzImage-6.19");
        assert_eq!(
            KernelSpec::parse("debian:6.x").unwrap_err().to_string(),
            "--kernel debian:6.x: give a Debian kernel series such as debian:6.12 or debian:7.3:arm64"
        );
        assert_eq!(
            KernelSpec::parse("debian:7.3:riscv64").unwrap_err().to_string(),
            "--kernel debian:7.3:riscv64: unknown architecture riscv64; give amd64, arm64 or ppc64el"
        );
    }

    #[test]
    fn image_headers_say_their_architecture() {
        let dir = std::env::temp_dir().join(format!("mprotect-trace-image-arch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, patch: &[(usize, &[u8])]| {
            let mut bytes = vec![0u8; 4096];
            for (offset, data) in patch {
                bytes[*offset..offset + data.len()].copy_from_slice(data);
            }
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let bz = write("bzImage", &[(0x202, b"HdrS")]);
        let image = write("Image", &[(0x38, b"ARM\x64")]);
        let zboot = write(
            "zboot",
            &[
                (0, b"MZ"),
                (0x3c, &0x80u32.to_le_bytes()),
                (0x80, b"PE\0\0"),
                (0x84, &0xaa64u16.to_le_bytes()),
            ],
        );
        let vmlinux = write("vmlinux", &[(0, b"\x7fELF\x02\x01"), (18, &21u16.to_le_bytes())]);
        let junk = write("junk", &[]);
        assert_eq!(image_arch(&vmlinux).unwrap(), Arch::Ppc64le);
        assert_eq!(image_arch(&bz).unwrap(), Arch::X86_64);
        assert_eq!(image_arch(&image).unwrap(), Arch::Arm64);
        assert_eq!(image_arch(&zboot).unwrap(), Arch::Arm64);
        assert_eq!(
            image_arch(&junk).unwrap_err().to_string(),
            format!(
                "kernel image {} is neither an x86_64 bzImage, an arm64 Image nor a ppc64le vmlinux: QEMU cannot boot it",
                junk.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
