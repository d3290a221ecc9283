//! Boots a kernel and an initramfs under QEMU and returns what the guest
//! printed on its serial console.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{Arch, Console, Initramfs, KernelImage};

/// How QEMU runs the guest's instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation, multi-threaded: probes work, timings are emulated.
    Tcg,
}

/// The guest machine.
#[derive(Clone, Debug)]
pub struct Machine {
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// QEMU is stopped after this long.
    pub timeout: Duration,
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            accel: Accel::Tcg,
            memory_mib: 2048,
            cpus: 2,
            timeout: Duration::from_secs(900),
        }
    }
}

impl Machine {
    /// Boots until the guest's init runs to its end, at most `attempts`
    /// times: under emulation a kernel now and then panics while booting
    /// (seen: an int3 Oops in text patching under multi-threaded TCG).
    /// Each failed boot's console is kept as `failed_log(n)`.
    pub fn boot_retrying(
        &self,
        kernel: &KernelImage,
        initramfs: &Initramfs,
        attempts: u32,
        failed_log: impl Fn(u32) -> std::path::PathBuf,
    ) -> Result<(Console, u32)> {
        let mut failures = 0;
        loop {
            let console = self.boot(kernel, initramfs)?;
            if console.init_done() || failures + 1 >= attempts {
                return Ok((console, failures));
            }
            failures += 1;
            let log = failed_log(failures);
            std::fs::write(&log, &console.text).with_context(|| format!("writing {}", log.display()))?;
            eprintln!(
                "vm: {} did not finish booting its init (console: {}); booting again",
                kernel.source,
                log.display()
            );
        }
    }

    /// Boots `kernel` with `initramfs`; the console, once the guest has
    /// powered off.
    pub fn boot(&self, kernel: &KernelImage, initramfs: &Initramfs) -> Result<Console> {
        let accel = match self.accel {
            Accel::Tcg => "tcg,thread=multi",
        };
        let (qemu, machine, console) = match kernel.arch {
            Arch::X86_64 => ("qemu-system-x86_64", "pc", "ttyS0"),
            Arch::Arm64 => ("qemu-system-aarch64", "virt", "ttyAMA0"),
        };
        let output = Command::new("timeout")
            .arg(self.timeout.as_secs().to_string())
            .arg(qemu)
            .args(["-M", machine, "-accel", accel, "-cpu", "max"])
            .args(["-m", &self.memory_mib.to_string(), "-smp", &self.cpus.to_string()])
            .args(["-nographic", "-no-reboot", "-kernel"])
            .arg(&kernel.path)
            .arg("-initrd")
            .arg(&initramfs.path)
            .arg("-append")
            .arg(format!("console={console} quiet loglevel=1 panic=-1"))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting {qemu} (Debian packages qemu-system-x86, qemu-system-arm)"))?;
        let console = String::from_utf8_lossy(&output.stdout).replace('\r', "");
        if !output.status.success() {
            bail!(
                "QEMU failed ({}) booting {}; console:\n{console}",
                output.status,
                kernel.path.display()
            );
        }
        Ok(Console { text: console })
    }
}
