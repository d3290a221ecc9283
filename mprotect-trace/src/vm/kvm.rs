//! Whether this host's KVM runs a given kernel. /dev/kvm may open and
//! QEMU may start a KVM guest, and still the guest stop at the first
//! instruction the host's KVM cannot emulate (nested KVM on the
//! development VM stops in the x86 decompressor, on a BMI2 instruction),
//! with QEMU pausing it for good. Only booting that kernel tells.

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::KernelImage;
use super::boot::{Accel, KVM_FAILED, QemuOutput, qemu_command, read_output};

/// What the kernel prints first once it runs its own code: past the
/// decompressor and the early setup KVM fails in.
const KERNEL_RUNS: &str = "Linux version";

/// A KVM guest prints its first line within a second or two; a guest
/// that has not after this long is taken as not running.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Boots `kernel` under KVM, without an initramfs, until it prints its
/// first line (then stops it): `Ok` when it does, or why not.
pub fn kvm_boots(kernel: &KernelImage) -> Result<(), String> {
    let arch = kernel.arch;
    if arch.uname() != std::env::consts::ARCH {
        return Err(format!("{} guests on a {} host", arch.uname(), std::env::consts::ARCH));
    }
    let mut command = qemu_command(kernel, Accel::Kvm, 256);
    command.args(["-append", &format!("console={} panic=-1", arch.console())]);
    let mut guest = crate::children::spawn(&mut command, arch.qemu().0).map_err(|err| format!("{err:#}"))?;
    let output = read_output(&mut guest.child).map_err(|err| format!("{err:#}"))?;
    let started = Instant::now();
    let mut qemu_said = None;
    let verdict = loop {
        let Some(left) = PROBE_TIMEOUT.checked_sub(started.elapsed()) else {
            break Err(format!(
                "a KVM guest printed no \"{KERNEL_RUNS}\" in {} s",
                PROBE_TIMEOUT.as_secs()
            ));
        };
        match output.recv_timeout(left) {
            Ok(QemuOutput::Console(line)) if line.contains(KERNEL_RUNS) => break Ok(()),
            Ok(QemuOutput::Console(_)) => {}
            Ok(QemuOutput::Qemu(line)) if line.contains(KVM_FAILED) => {
                break Err(format!("QEMU: \"{}\"", line.trim()));
            }
            Ok(QemuOutput::Qemu(line)) => qemu_said = Some(line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                break Err(format!(
                    "QEMU exited: {}",
                    qemu_said.as_deref().map_or("no message", str::trim)
                ));
            }
        }
    };
    guest.kill();
    verdict
}
