//! Helpers shared by the integration tests: the binary, fresh output
//! directories, saved reports, and a tracer started in the background
//! that the tests wait on by the lines it prints, never by sleeping.
#![allow(dead_code)] // each test crate uses its own subset

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use mprotect_trace::model::Report;
use mprotect_trace::run::ATTACHED_LINE;

/// How long any wait for a line may take before the test fails.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mprotect-trace"))
}

/// A fresh, absent directory under the temporary directory.
pub fn out_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mprotect-trace-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The typed report a run wrote into `dir`.
pub fn report(dir: &Path) -> Report {
    Report::load(dir).unwrap_or_else(|err| panic!("{err:#}"))
}

/// The `result key=value ...` line among `stdout`'s lines, as a map.
pub fn result_fields(stdout: &str) -> std::collections::HashMap<String, String> {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("result "))
        .unwrap_or_else(|| panic!("no result line in {stdout:?}"));
    line.split_whitespace()
        .map(|field| {
            let (key, value) = field.split_once('=').expect("key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// Prints a visible skip line: this test checks nothing on this kernel.
pub fn skip(test: &str, why: &str) {
    println!("SKIP {test}: {why}");
    eprintln!("SKIP {test}: {why}");
}

/// Lines of one output stream, read by a thread as they come.
struct Lines {
    receiver: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(stream: impl Read + Send + 'static) -> Self {
        let (sender, receiver) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            receiver,
            seen: Vec::new(),
        }
    }

    /// Blocks until a line matches `wanted`, and returns it.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(err) => panic!("no {what} ({err}); the tracer printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every line, once the stream has ended.
    fn rest(mut self) -> Vec<String> {
        self.seen.extend(self.receiver.iter());
        self.seen
    }
}

/// `mprotect-trace run` in the background, started and attached.
pub struct Tracer {
    pub child: Child,
    /// The traced process, as the attached line names it.
    pub target_pid: Option<i32>,
    stdout: Lines,
    stderr: Lines,
}

impl Tracer {
    /// Starts `run -o DIR ARGS` and returns once it says it is attached:
    /// probes attached, signal handlers installed, target released.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = binary()
            .args(["run", "-o", dir.to_str().expect("UTF-8 path")])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting mprotect-trace run");
        let stdout = Lines::of(child.stdout.take().expect("piped stdout"));
        let mut stderr = Lines::of(child.stderr.take().expect("piped stderr"));
        let attached = stderr.wait_for("attached line", |line| line.starts_with(ATTACHED_LINE));
        let target_pid = attached.rsplit_once("pid ").and_then(|(_, pid)| pid.parse().ok());
        Self {
            child,
            target_pid,
            stdout,
            stderr,
        }
    }

    /// Blocks until the tracer prints a line on stdout that `wanted` accepts.
    pub fn wait_for_stdout(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.stdout.wait_for(what, wanted)
    }

    pub fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for the tracer to exit: its status and its stderr lines
    /// (the attached line included).
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let status = self.child.wait().expect("waiting for the tracer");
        drop(self.stdout);
        (status, self.stderr.rest())
    }
}
