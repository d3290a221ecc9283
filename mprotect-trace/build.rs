use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Builds `mprotect-trace-ebpf` for the bpf target with the nightly
/// toolchain and leaves the object in `OUT_DIR`, where `src/ebpf_object.rs`
/// embeds it: the release binary is one self-contained file.
/// The font the plots are drawn with, embedded so the binary needs none
/// installed where it runs (Debian's fonts-dejavu-core, from `cargo xtask setup`).
const PLOT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn embed_plot_font(with_ebpf: bool) -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed={PLOT_FONT}");
    let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?;
    let embedded = std::path::Path::new(&out_dir).join("plot-font.ttf");
    // xtask builds the library without the eBPF object before setup has
    // installed anything, and never draws a plot: no font needed there.
    if !with_ebpf && !std::path::Path::new(PLOT_FONT).exists() {
        std::fs::write(&embedded, b"")?;
        return Ok(());
    }
    std::fs::copy(PLOT_FONT, &embedded)
        .with_context(|| format!("copying {PLOT_FONT} (install fonts-dejavu-core: run `cargo xtask setup`)"))?;
    Ok(())
}

/// The git revision the binary is built from, for reports ("unknown"
/// outside a git checkout).
fn record_git_revision() {
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MPROTECT_TRACE_GIT_REVISION={revision}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
}

fn main() -> anyhow::Result<()> {
    let with_ebpf = std::env::var_os("CARGO_FEATURE_EBPF").is_some();
    embed_plot_font(with_ebpf)?;
    record_git_revision();
    if !with_ebpf {
        // The library without its eBPF object (xtask): an empty object,
        // which `ebpf_object::load` refuses with a clear error.
        let out_dir = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?;
        std::fs::write(std::path::Path::new(&out_dir).join("mprotect-trace"), b"")?;
        return Ok(());
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == "mprotect-trace-ebpf")
        .ok_or_else(|| anyhow!("mprotect-trace-ebpf is not in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF programs (needs nightly rust-src and bpf-linker: run `cargo xtask setup`)")
}
