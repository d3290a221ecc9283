//! Kernels booted under QEMU with the tracer inside: the kernel image
//! (a file, or a Debian package fetched and unpacked once), the initramfs
//! holding the tracer and a script of what to run, the boot, and the
//! serial console that brings typed reports back out. `cargo xtask
//! vm-test` drives it; a subcommand can too.

pub mod boot;
pub mod console;
pub mod initramfs;
pub mod kernel;
pub mod kvm;

pub use boot::{Accel, Machine, Stopped};
pub use console::{Console, GuestScript};
pub use initramfs::Initramfs;
pub use kernel::KernelImage;
pub use kvm::kvm_boots;

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
    /// Little-endian 64-bit POWER, with 64 kB base pages.
    Ppc64le,
}

impl Arch {
    /// Debian's name for it (package architectures, kernel flavours).
    pub fn debian(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Arm64 => "arm64",
            Self::Ppc64le => "ppc64el",
        }
    }

    /// The flavour of Debian's kernel packages booted for it: the cloud
    /// flavour where there is one; ppc64el has none, and its 64 kB-page
    /// flavour is what Power servers run.
    pub fn debian_flavour(self) -> &'static str {
        match self {
            Self::X86_64 => "cloud-amd64",
            Self::Arm64 => "cloud-arm64",
            Self::Ppc64le => "powerpc64le-64k",
        }
    }

    /// `uname -m` inside the guest.
    pub fn uname(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "aarch64",
            Self::Ppc64le => "ppc64le",
        }
    }

    /// The Debian package holding [`Arch::qemu`]'s emulator.
    pub fn qemu_package(self) -> &'static str {
        match self {
            Self::X86_64 => "qemu-system-x86",
            Self::Arm64 => "qemu-system-arm",
            Self::Ppc64le => "qemu-system-ppc",
        }
    }

    /// QEMU's system emulator and machine type for it.
    pub fn qemu(self) -> (&'static str, &'static str) {
        match self {
            Self::X86_64 => ("qemu-system-x86_64", "pc"),
            Self::Arm64 => ("qemu-system-aarch64", "virt"),
            Self::Ppc64le => ("qemu-system-ppc64", "pseries"),
        }
    }

    /// The guest's serial console device.
    pub fn console(self) -> &'static str {
        match self {
            Self::X86_64 => "ttyS0",
            Self::Arm64 => "ttyAMA0",
            Self::Ppc64le => "hvc0",
        }
    }

    /// The Rust target the tracer is built for to run in such a guest
    /// (static, so the initramfs needs no libraries: musl on arm64; glibc
    /// on ppc64le, where rustup serves no musl standard library).
    pub fn rust_target(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-unknown-linux-gnu",
            Self::Arm64 => "aarch64-unknown-linux-musl",
            Self::Ppc64le => "powerpc64le-unknown-linux-gnu",
        }
    }
}

use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Runs `command` and returns its stdout; its stderr passes through.
fn output_of(command: &mut Command) -> Result<String> {
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("{command:?} printed non-UTF-8"))
}

/// Runs `command`, its output passed through; an error unless it exits 0.
fn run_checked(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}
