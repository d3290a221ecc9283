//! `cargo xtask setup`: installs every tool the build and the tests need,
//! idempotently. A fresh machine has the stable and nightly toolchains but
//! none of this.

use std::process::Command;

use anyhow::{Result, bail};
use mprotect_trace::vm::Arch;

use crate::command::{output_of, run_checked, succeeds};

/// Newer bpf-linker releases want a system LLVM that Debian 12 lacks;
/// 0.10.x links through the nightly's own LLVM.
const BPF_LINKER_VERSION: &str = "0.10.3";

/// Debian packages the tests use: bpftool (independent BTF reads), QEMU
/// with busybox and cpio for the kernel VM tests, the cross compilers
/// (and ppc64el's static glibc) that link the arm64 and ppc64le tracers, Chromium to render the
/// flame graph and the HTML report as a user sees them, and the font the
/// plots are drawn with (embedded in the binary at build time); bpftrace,
/// which `cargo xtask bench startup` measures against; golang, whose
/// `go tool pprof` reads the runs' profile.pb.gz in the tests; llvm, whose
/// llvm-addr2line checks the debug-info symbolization in vm-test; the
/// kernel build toolchain (with pahole, for BTF), which `lab` uses for
/// `tree:` kernels; Ansible, sshd and iproute2 for the fleet check's hosts
/// in network namespaces.
const DEBIAN_PACKAGES: &[&str] = &[
    "bpftool",
    "bpftrace",
    "qemu-system-x86",
    "qemu-system-arm",
    "qemu-system-ppc",
    "gcc-aarch64-linux-gnu",
    "gcc-powerpc64le-linux-gnu",
    "libc6-dev-ppc64el-cross",
    "busybox-static",
    "cpio",
    "chromium",
    "fonts-dejavu-core",
    "golang",
    "llvm",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "dwarves",
    "make",
    "git",
    "ansible-core",
    "openssh-server",
    "iproute2",
];

/// The other guests' tracers: static, so the initramfs needs no libraries.
const GUEST_ARCHES: [Arch; 2] = [Arch::Arm64, Arch::Ppc64le];

pub fn run() -> Result<()> {
    ensure_nightly_rust_src()?;
    for arch in GUEST_ARCHES {
        ensure_rust_target(arch.rust_target())?;
    }
    ensure_bpf_linker()?;
    ensure_debian_packages()?;
    eprintln!(
        "setup: nightly rust-src, the {} targets, bpf-linker {BPF_LINKER_VERSION} and Debian packages are present",
        GUEST_ARCHES.map(Arch::rust_target).join(" and ")
    );
    Ok(())
}

fn ensure_nightly_rust_src() -> Result<()> {
    let toolchains = output_of(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|line| line.starts_with("nightly")) {
        bail!("no nightly Rust toolchain: the eBPF crate needs one (rustup toolchain install nightly)");
    }
    let components =
        output_of(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))?;
    if !components.lines().any(|line| line.starts_with("rust-src")) {
        run_checked(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    Ok(())
}

/// The target's standard library for the toolchain that builds user space.
fn ensure_rust_target(target: &str) -> Result<()> {
    let installed = output_of(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|line| line.trim() == target) {
        run_checked(Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
}

fn ensure_bpf_linker() -> Result<()> {
    let installed = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
    if installed.is_some_and(|version| version.trim() == format!("bpf-linker {BPF_LINKER_VERSION}")) {
        return Ok(());
    }
    run_checked(Command::new("cargo").args([
        "+nightly",
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
        "--force",
    ]))
}

fn ensure_debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            let status = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", package])
                .output();
            !status.is_ok_and(|output| output.stdout.ends_with(b"install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !succeeds(Command::new("apt-get").arg("--version")) {
        bail!("missing Debian packages {missing:?} and no apt-get to install them");
    }
    run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
