//! Boots a kernel and an initramfs under QEMU and returns what the guest
//! printed on its serial console.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{Arch, Console, Initramfs, KernelImage};

/// How QEMU runs the guest's instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Accel {
    /// Hardware virtualization: real time, as on the host's CPU.
    Kvm,
    /// Software emulation, multi-threaded: probes work, timings are emulated.
    Tcg,
    /// Software emulation where guest time advances per instruction
    /// executed (`-icount shift=0,align=off,sleep=off`): deterministic and
    /// comparable between kernels on any machine, but not wall time.
    TcgIcount,
}

impl Accel {
    pub const NAMES: [&str; 3] = ["kvm", "tcg", "tcg-icount"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
            Self::TcgIcount => "tcg-icount",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Kvm, Self::Tcg, Self::TcgIcount]
            .into_iter()
            .find(|accel| accel.name() == name)
    }

    /// What the guest's times are, for every table that shows them.
    pub fn time_label(self) -> &'static str {
        match self {
            Self::Kvm => "wall time (KVM)",
            Self::Tcg => "emulated time (TCG): not comparable between kernels; compare counts",
            Self::TcgIcount => {
                "instruction time (TCG icount): deterministic, comparable between kernels, not wall time"
            }
        }
    }

    /// Whether guest times can be compared between kernels.
    pub fn times_comparable(self) -> bool {
        !matches!(self, Self::Tcg)
    }

    /// QEMU's `-accel` (and `-icount`) arguments, and its `-cpu`.
    fn qemu_args(self) -> (Vec<&'static str>, &'static str) {
        match self {
            Self::Kvm => (vec!["-accel", "kvm"], "host"),
            Self::Tcg => (vec!["-accel", "tcg,thread=multi"], "max"),
            Self::TcgIcount => (vec!["-accel", "tcg", "-icount", "shift=0,align=off,sleep=off"], "max"),
        }
    }
}

/// Whether this machine runs `arch`'s guests under KVM: QEMU is started
/// paused with KVM and told to quit. /dev/kvm may open and still refuse
/// a vCPU (nested virtualization without the MSRs QEMU sets), so only
/// QEMU itself can tell.
pub fn kvm_works(arch: Arch) -> bool {
    if arch.uname() != std::env::consts::ARCH {
        return false;
    }
    let (qemu, machine) = arch.qemu();
    let probe = Command::new(qemu)
        .args(["-M", machine, "-accel", "kvm", "-cpu", "host", "-m", "64"])
        .args(["-display", "none", "-nodefaults", "-S", "-monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut probe) = probe else {
        return false;
    };
    if let Some(mut stdin) = probe.stdin.take() {
        let _ = std::io::Write::write_all(&mut stdin, b"quit\n");
    }
    probe.wait().is_ok_and(|status| status.success())
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
        let (accel, cpu) = self.accel.qemu_args();
        let (qemu, machine) = kernel.arch.qemu();
        let console = kernel.arch.console();
        let output = Command::new("timeout")
            .arg(self.timeout.as_secs().to_string())
            .arg(qemu)
            .args(["-M", machine])
            .args(accel)
            .args(["-cpu", cpu])
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
