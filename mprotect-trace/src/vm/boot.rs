//! Boots a kernel and an initramfs under QEMU and returns what the guest
//! printed on its serial console.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::console::INIT_DONE;
use super::{Console, Initramfs, KernelImage};

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

/// The guest machine.
#[derive(Clone, Debug)]
pub struct Machine {
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// QEMU is stopped after this long.
    pub timeout: Duration,
    /// Words added to the kernel command line (`lab --append`).
    pub append: String,
    /// NUMA nodes (`lab --numa-nodes`): the memory split evenly between
    /// them, the CPUs in contiguous blocks (a node past the CPU count has
    /// memory only); 1: no NUMA topology given.
    pub numa_nodes: u32,
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            accel: Accel::Tcg,
            memory_mib: 2048,
            cpus: 2,
            timeout: Duration::from_secs(900),
            append: String::new(),
            numa_nodes: 1,
        }
    }
}

impl Machine {
    /// QEMU's arguments for the NUMA nodes: a RAM backend and a node each.
    fn numa_args(&self) -> Vec<String> {
        let nodes = self.numa_nodes;
        if nodes <= 1 {
            return Vec::new();
        }
        let mut args = Vec::new();
        for node in 0..nodes {
            // The first nodes take the remainders, so the sizes add up.
            let size = self.memory_mib / nodes + u32::from(node < self.memory_mib % nodes);
            args.push("-object".to_owned());
            args.push(format!("memory-backend-ram,id=mem{node},size={size}M"));
            let (first, end) = (node * self.cpus / nodes, (node + 1) * self.cpus / nodes);
            let cpus = match end.checked_sub(1) {
                Some(last) if last >= first => format!(",cpus={first}-{last}"),
                _ => String::new(),
            };
            args.push("-numa".to_owned());
            args.push(format!("node,nodeid={node},memdev=mem{node}{cpus}"));
        }
        args
    }
}

/// How long a guest may take to power off after its init printed its last
/// line, before it is stopped and said to have halted.
pub const POWER_OFF_GRACE: Duration = Duration::from_secs(30);

/// Why the host stopped a guest that did not power off by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The kernel said "Power off not available: System halted instead".
    Halted,
    /// Its init finished and it neither powered off nor said why.
    NoPowerOff,
    /// The boot timeout passed.
    TimedOut(Duration),
    /// The kernel's watchdog said a CPU was stuck this long: a livelock
    /// (seen on 6.1 under multi-threaded TCG while probes attach) that
    /// never ends; waiting out the boot timeout would only cost time.
    LockedUp(Duration),
    /// QEMU said "KVM internal error": the host's KVM could not run an
    /// instruction of the guest (nested KVM here fails on a BMI2
    /// instruction of the x86 decompressor) and QEMU paused it for good.
    KvmFailed,
    /// The lab got this signal.
    Interrupted(i32),
}

impl Stopped {
    pub fn describe(self) -> String {
        match self {
            Self::Halted => "the guest halted instead of powering off (\"Power off not available\"): its kernel has no power-off path (on x86, CONFIG_ACPI with CONFIG_PCI)".to_owned(),
            Self::NoPowerOff => format!(
                "the guest did not power off within {} s of its init finishing",
                POWER_OFF_GRACE.as_secs()
            ),
            Self::TimedOut(after) => format!("the guest was stopped after the boot timeout of {} s", after.as_secs()),
            Self::LockedUp(stuck) => format!(
                "the guest was stopped: its watchdog saw a CPU stuck for {} s (a soft lockup)",
                stuck.as_secs()
            ),
            Self::KvmFailed => format!(
                "KVM stopped the guest (QEMU: \"{KVM_FAILED}\", an instruction this host's KVM cannot run): boot it with --accel tcg"
            ),
            Self::Interrupted(signal) => format!("interrupted by {}", crate::children::signal_name(signal)),
        }
    }

    /// Whether booting the same kernel again could end otherwise (a halt
    /// is the kernel's configuration; a timeout may be a stuck boot).
    pub fn retry_helps(self) -> bool {
        matches!(self, Self::TimedOut(_) | Self::LockedUp(_))
    }
}

/// What QEMU prints on its stderr when KVM stopped the guest.
pub(super) const KVM_FAILED: &str = "KVM internal error";

/// A CPU stuck this long in the guest's kernel is taken as locked up.
const LOCKED_UP: Duration = Duration::from_secs(120);

/// How long the watchdog's "BUG: soft lockup - CPU#1 stuck for 26s!" line
/// says a CPU has been stuck.
fn soft_lockup(line: &str) -> Option<Duration> {
    let (_, rest) = line.split_once("BUG: soft lockup - CPU#")?;
    let (_, rest) = rest.split_once(" stuck for ")?;
    let (seconds, _) = rest.split_once("s!")?;
    seconds.parse().ok().map(Duration::from_secs)
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
            let console = self.boot(kernel, initramfs, &|_| {})?;
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

    /// Boots `kernel` with `initramfs` and returns its console once the
    /// guest has powered off, or once the host stopped it (a guest that
    /// halts, hangs, or outlives the timeout; the lab interrupted).
    /// `on_line` sees each console line as it comes.
    pub fn boot(&self, kernel: &KernelImage, initramfs: &Initramfs, on_line: &dyn Fn(&str)) -> Result<Console> {
        let console = kernel.arch.console();
        let mut append = format!("console={console} quiet loglevel=1 panic=-1");
        if !self.append.is_empty() {
            append = format!("{append} {}", self.append);
        }
        let mut command = qemu_command(kernel, self.accel, self.memory_mib);
        command
            .args(["-smp", &self.cpus.to_string()])
            .args(self.numa_args())
            .arg("-initrd")
            .arg(&initramfs.path)
            .arg("-append")
            .arg(append);
        let mut guest = crate::children::spawn(
            &mut command,
            &format!(
                "{} (Debian package {})",
                kernel.arch.qemu().0,
                kernel.arch.qemu_package()
            ),
        )?;
        let output = read_output(&mut guest.child)?;
        let started = Instant::now();
        let mut text = String::new();
        // QEMU's last message, for the error when it fails.
        let mut qemu_said = None;
        let mut init_done = None;
        let mut stopped = None;
        let mut killed = false;
        loop {
            match output.recv_timeout(Duration::from_millis(250)) {
                Ok(QemuOutput::Qemu(line)) => {
                    if line.contains(KVM_FAILED) {
                        stopped = stopped.or(Some(Stopped::KvmFailed));
                    }
                    qemu_said = Some(line);
                }
                Ok(QemuOutput::Console(line)) => {
                    if line.contains(INIT_DONE) {
                        init_done = Some(Instant::now());
                    }
                    if init_done.is_some() && line.contains("Power off not available") {
                        stopped = stopped.or(Some(Stopped::Halted));
                    }
                    if let Some(stuck) = soft_lockup(&line).filter(|stuck| *stuck >= LOCKED_UP) {
                        stopped = stopped.or(Some(Stopped::LockedUp(stuck)));
                    }
                    on_line(&line);
                    text.push_str(&line);
                    text.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {}
                // QEMU closed its stdout and stderr: it has exited.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if stopped.is_none() {
                stopped = if let Some(signal) = crate::children::interrupted() {
                    Some(Stopped::Interrupted(signal))
                } else if init_done.is_some_and(|at| at.elapsed() > POWER_OFF_GRACE) {
                    Some(Stopped::NoPowerOff)
                } else if started.elapsed() > self.timeout {
                    Some(Stopped::TimedOut(self.timeout))
                } else {
                    None
                };
            }
            // Once, whatever stopped it (a halt is seen on a console line):
            // the rest of what it printed still arrives, then the channel closes.
            if stopped.is_some() && !killed {
                killed = true;
                guest.kill();
            }
        }
        let status = guest.child.wait().context("waiting for QEMU")?;
        if stopped.is_none() && !status.success() {
            bail!(
                "QEMU failed ({status}) booting {}: {}; console:\n{text}",
                kernel.path.display(),
                qemu_said.as_deref().unwrap_or("no message")
            );
        }
        Ok(Console { text, stopped })
    }
}

/// QEMU booting `kernel` under `accel` with `memory_mib` of memory, no
/// display, not rebooting; the guest's serial console on its stdout, its
/// own messages on its stderr. The caller adds the rest (CPUs, initramfs,
/// command line).
pub(super) fn qemu_command(kernel: &KernelImage, accel: Accel, memory_mib: u32) -> Command {
    let (accel, cpu) = accel.qemu_args();
    let (qemu, machine) = kernel.arch.qemu();
    let mut command = Command::new(qemu);
    command
        .args(["-M", machine])
        .args(accel)
        .args(["-cpu", cpu, "-m", &memory_mib.to_string()])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A line QEMU printed.
pub(super) enum QemuOutput {
    /// On its stdout: the guest's serial console.
    Console(String),
    /// On its stderr: QEMU's own messages.
    Qemu(String),
}

/// The lines of QEMU's stdout and stderr as they come, through one
/// channel that closes once QEMU has closed both.
pub(super) fn read_output(qemu: &mut Child) -> Result<Receiver<QemuOutput>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let stdout = qemu.stdout.take().context("QEMU's stdout")?;
    let stderr = qemu.stderr.take().context("QEMU's stderr")?;
    send_lines(stdout, sender.clone(), QemuOutput::Console);
    send_lines(stderr, sender, QemuOutput::Qemu);
    Ok(receiver)
}

/// Sends each line `reader` gives, as it comes, until its end.
fn send_lines(reader: impl std::io::Read + Send + 'static, sender: Sender<QemuOutput>, wrap: fn(String) -> QemuOutput) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).replace('\r', "");
            if sender.send(wrap(line)).is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::{Duration, Machine, Stopped, soft_lockup};

    #[test]
    fn a_soft_lockup_line_says_how_long_the_cpu_was_stuck() {
        let line = "[  124.581577] watchdog: BUG: soft lockup - CPU#0 stuck for 105s! [mprotect-trace:105]";
        assert_eq!(soft_lockup(line), Some(Duration::from_secs(105)));
        assert_eq!(soft_lockup("[    1.000000] Run /init as init process"), None);
        assert!(Stopped::LockedUp(Duration::from_secs(131)).retry_helps());
    }

    #[test]
    fn numa_nodes_split_the_memory_and_the_cpus() {
        let machine = |cpus, memory_mib, numa_nodes| Machine {
            cpus,
            memory_mib,
            numa_nodes,
            ..Machine::default()
        };
        assert!(machine(2, 2048, 1).numa_args().is_empty());
        assert_eq!(
            machine(2, 2048, 2).numa_args(),
            [
                "-object",
                "memory-backend-ram,id=mem0,size=1024M",
                "-numa",
                "node,nodeid=0,memdev=mem0,cpus=0-0",
                "-object",
                "memory-backend-ram,id=mem1,size=1024M",
                "-numa",
                "node,nodeid=1,memdev=mem1,cpus=1-1",
            ]
        );
        // One CPU: the second node has memory only; the sizes add up.
        assert_eq!(
            machine(1, 1025, 2).numa_args(),
            [
                "-object",
                "memory-backend-ram,id=mem0,size=513M",
                "-numa",
                "node,nodeid=0,memdev=mem0",
                "-object",
                "memory-backend-ram,id=mem1,size=512M",
                "-numa",
                "node,nodeid=1,memdev=mem1,cpus=0-0",
            ]
        );
    }
}
