//! What a run traces, started so that nothing of it runs before the probes
//! are attached: the workload and `-- CMD` wait at a gate until released.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

use crate::model::{Scope, WorkloadResult};
use crate::options::TraceTarget;
use crate::workload::{READY_LINE, WorkloadOptions};

/// The model's name for what `target` traces.
pub fn scope(target: &TraceTarget) -> Scope {
    match target {
        TraceTarget::Workload(_) => Scope::Workload,
        TraceTarget::Command(_) => Scope::Command,
        TraceTarget::Pid(_) => Scope::Pid,
        TraceTarget::All => Scope::All,
    }
}

/// Checks what can be checked before attaching anything.
pub fn validate(target: &TraceTarget) -> Result<()> {
    match target {
        TraceTarget::Workload(options) => {
            let plan = options.plan()?;
            if plan.scenario == crate::workload::Scenario::NumaHinting {
                crate::workload::numa::check_machine()?;
            }
            Ok(())
        }
        TraceTarget::Command(command) => find_in_path(&command[0]).map(drop),
        TraceTarget::Pid(pid) => {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!("-p {pid}: no such process");
            }
            Ok(())
        }
        TraceTarget::All => Ok(()),
    }
}

/// Starts the target and returns once it is parked at its gate.
pub async fn start(target: &TraceTarget) -> Result<Target> {
    match target {
        TraceTarget::Workload(options) => {
            let exe = std::env::current_exe().context("finding this program's own path")?;
            let mut child = Command::new(exe)
                .arg("workload")
                .args(options.to_args())
                .args(["--json", "--wait-for-start"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting the workload")?;
            let stdin = child.stdin.take().context("the workload has no stdin")?;
            let mut stdout = BufReader::new(child.stdout.take().context("the workload has no stdout")?);
            let mut ready = String::new();
            stdout
                .read_line(&mut ready)
                .await
                .context("waiting for the workload to be ready")?;
            let Some(measuring_addr) = parse_ready_line(ready.trim_end()) else {
                let status = child.wait().await?;
                bail!("the workload did not start ({status})");
            };
            let output = tokio::spawn(async move {
                let mut bytes = Vec::new();
                stdout.read_to_end(&mut bytes).await.map(|_| bytes)
            });
            Ok(Target {
                tgid: child.id(),
                measuring_addr: Some(measuring_addr),
                child: Some(child),
                gate: Gate::Stdin(stdin),
                exit_gate: None,
                output: Some(output),
                output_bytes: None,
            })
        }
        TraceTarget::Command(command) => {
            let (gate_read, gate_write) = pipe()?;
            let (ready_read, ready_write) = pipe()?;
            let program = find_in_path(&command[0])?;
            let (gate_fd, ready_fd) = (gate_read.as_raw_fd(), ready_write.as_raw_fd());
            let mut child = Command::new("/bin/sh");
            // sh says ready on fd 4, waits on fd 3 for the gate, then
            // becomes the command (same pid, so the traced tgid is right
            // from the command's first call).
            child
                .args([
                    "-c",
                    "echo >&4; exec 4>&-; read -r _ <&3; exec 3<&-; exec \"$@\"",
                    "mprotect-trace-gate",
                ])
                .arg(program)
                .args(&command[1..])
                .kill_on_drop(true);
            // SAFETY: dup2 is async-signal-safe.
            unsafe {
                child.pre_exec(move || {
                    if libc::dup2(gate_fd, 3) < 0 || libc::dup2(ready_fd, 4) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = child.spawn().with_context(|| format!("starting {}", command[0]))?;
            drop((gate_read, ready_write));
            // One byte, or end of file if sh died first.
            tokio::task::spawn_blocking(move || {
                let mut byte = [0u8; 1];
                std::io::Read::read(&mut std::fs::File::from(ready_read), &mut byte)
            })
            .await?
            .context("waiting for the command to be ready")?;
            Ok(Target::new(child.id(), Some(child), Gate::Pipe(gate_write)))
        }
        TraceTarget::Pid(pid) => Ok(Target::new(Some(*pid), None, Gate::None)),
        TraceTarget::All => Ok(Target::new(None, None, Gate::None)),
    }
}

enum Gate {
    /// The workload: a byte on stdin starts it; closing stdin lets it exit.
    Stdin(ChildStdin),
    Pipe(OwnedFd),
    None,
}

/// A started target.
pub struct Target {
    /// The process to count; `None` traces every task.
    pub tgid: Option<u32>,
    /// The workload's "measuring" flag, in its address space.
    pub measuring_addr: Option<u64>,
    child: Option<Child>,
    gate: Gate,
    /// The workload's stdin, kept open after the start byte: its exit gate.
    exit_gate: Option<ChildStdin>,
    output: Option<JoinHandle<std::io::Result<Vec<u8>>>>,
    output_bytes: Option<Vec<u8>>,
}

/// How the target ended, as far as the run knows.
pub enum Ending {
    Exited(ExitStatus),
    /// Still running when tracing stopped (a pid or the whole system).
    StillRunning,
}

impl Target {
    fn new(tgid: Option<u32>, child: Option<Child>, gate: Gate) -> Self {
        Self {
            tgid,
            measuring_addr: None,
            child,
            gate,
            exit_gate: None,
            output: None,
            output_bytes: None,
        }
    }

    /// Lets the target run: probes are attached.
    pub async fn release(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.gate, Gate::None) {
            Gate::Stdin(mut stdin) => {
                stdin.write_all(b"\n").await.context("releasing the workload")?;
                stdin.flush().await?;
                self.exit_gate = Some(stdin);
            }
            Gate::Pipe(fd) => {
                let mut file = std::fs::File::from(fd);
                std::io::Write::write_all(&mut file, b"\n").context("releasing the command")?;
            }
            Gate::None => {}
        }
        Ok(())
    }

    /// Resolves when the target is done: the workload has written its
    /// result (it then waits at its exit gate, alive), a command has
    /// exited; never, for a target without a child.
    pub async fn wait(&mut self) -> Result<()> {
        if let Some(output) = &mut self.output {
            let bytes = output.await.context("reading the workload's output")??;
            self.output = None;
            self.output_bytes = Some(bytes);
            return Ok(());
        }
        match &mut self.child {
            Some(child) => child.wait().await.map(drop).context("waiting for the traced process"),
            None => std::future::pending().await,
        }
    }

    /// Asks the built-in workload to stop after its current iteration and
    /// report what it did (SIGUSR1); false for any other target, which a
    /// deadline simply stops.
    pub fn ask_workload_to_stop(&self) -> bool {
        let (Some(_), Some(pid)) = (&self.output, self.child.as_ref().and_then(Child::id)) else {
            return false;
        };
        // SAFETY: signalling our own child, which handles SIGUSR1.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) == 0 }
    }

    /// A `-p` target has exited: gone, or a zombie its parent has not reaped.
    pub fn pid_exited(&self) -> bool {
        let Some(pid) = self.tgid.filter(|_| self.child.is_none()) else {
            return false;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // "pid (comm) S ...": the state follows the last ')'.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| matches!(rest.trim_start().chars().next(), Some('Z' | 'X'))),
            Err(_) => true,
        }
    }

    /// Lets a workload at its exit gate exit, stops a child still running
    /// (tracing was interrupted), and reaps it.
    pub async fn stop(&mut self) -> Result<Ending> {
        drop(self.exit_gate.take());
        let Some(child) = &mut self.child else {
            return Ok(Ending::StillRunning);
        };
        if self.output_bytes.is_some() {
            // Done and released: it exits by itself.
            if let Ok(status) = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await {
                return Ok(Ending::Exited(status?));
            }
        }
        if let Some(status) = child.try_wait()? {
            return Ok(Ending::Exited(status));
        }
        if let Some(pid) = child.id() {
            // SIGTERM first so a traced command can clean up.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        let status = match tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                child.kill().await?;
                child.wait().await?
            }
        };
        Ok(Ending::Exited(status))
    }

    /// The workload's result, parsed from its JSON output (after `stop`).
    pub async fn workload_result(&mut self) -> Result<Option<WorkloadResult>> {
        let bytes = match (self.output_bytes.take(), self.output.take()) {
            (Some(bytes), _) => bytes,
            (None, Some(output)) => output.await.context("reading the workload's output")??,
            (None, None) => return Ok(None),
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .context("parsing the workload's JSON result")
    }
}

/// `ready measuring=0x...`: the address of the workload's measuring flag.
fn parse_ready_line(line: &str) -> Option<u64> {
    let address = line.strip_prefix(READY_LINE)?.trim().strip_prefix("measuring=0x")?;
    u64::from_str_radix(address, 16).ok()
}

/// Runs the workload once with nothing attached (for `--calibrate`).
pub fn run_untraced(options: &WorkloadOptions) -> Result<WorkloadResult> {
    let exe = std::env::current_exe().context("finding this program's own path")?;
    let output = std::process::Command::new(exe)
        .arg("workload")
        .args(options.to_args())
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .context("running the untraced calibration workload")?;
    if !output.status.success() {
        bail!("the untraced calibration workload failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("parsing the calibration workload's result")
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe2: {}", std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Resolves a command name as the shell would, for a clear error up front.
fn find_in_path(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        if path.is_file() {
            return Ok(path);
        }
        bail!("command not found: {name}");
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("command not found: {name} (not in PATH)"))
}
