//! What runs inside the guest, and how its results come back: the init
//! script prints each result between `===BEGIN name===` and
//! `===END name===` lines on the serial console, which the host cuts out
//! and parses into typed reports.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};

use super::initramfs::GUEST_TRACER;
use crate::model::Report;

/// The guest's `/init`: mounts, then each step, then power off.
pub struct GuestScript {
    text: String,
}

impl Default for GuestScript {
    fn default() -> Self {
        Self::new()
    }
}

impl GuestScript {
    pub fn new() -> Self {
        Self {
            text: "#!/bin/busybox sh\n\
                   /bin/busybox --install -s /bin\n\
                   mount -t proc proc /proc\n\
                   mount -t sysfs sysfs /sys\n\
                   mount -t devtmpfs devtmpfs /dev\n\
                   mount -t tmpfs tmpfs /tmp\n"
                .to_owned(),
        }
    }

    /// A shell command run as it is (to change the guest for the next steps).
    pub fn shell(&mut self, command: &str) -> &mut Self {
        self.text.push_str(command);
        self.text.push('\n');
        self
    }

    /// `mprotect-trace ARGS`, its combined output as the text section `name`.
    pub fn text(&mut self, name: &str, args: &str) -> &mut Self {
        let _ = writeln!(
            self.text,
            "echo ===BEGIN {name}===\n{GUEST_TRACER} {args} 2>&1\necho ===END {name}==="
        );
        self
    }

    /// `mprotect-trace run ARGS`, its report as the section `name`; its
    /// exit status and stderr are printed before it.
    pub fn run(&mut self, name: &str, args: &str) -> &mut Self {
        let _ = writeln!(
            self.text,
            "{GUEST_TRACER} run {args} --json -o /tmp/{name} > /tmp/{name}.json 2> /tmp/{name}.err\n\
             echo \"{name} exit status $?\"\n\
             cat /tmp/{name}.err\n\
             echo ===BEGIN {name}===\n\
             cat /tmp/{name}.json\n\
             echo ===END {name}==="
        );
        self
    }

    /// The script, ending with a line that says every step ran, and the
    /// guest's power-off.
    pub fn finish(&self) -> String {
        format!("{}echo {INIT_DONE}\npoweroff -f\n", self.text)
    }
}

/// The last line a guest's init prints: every step ran.
pub const INIT_DONE: &str = "===INIT DONE===";

/// Everything the guest printed.
pub struct Console {
    pub text: String,
    /// Why the host stopped the guest, when it did not power off itself.
    pub stopped: Option<super::boot::Stopped>,
}

impl Console {
    /// Whether the guest's init ran to its end (a kernel that panicked
    /// while booting never gets there).
    pub fn init_done(&self) -> bool {
        self.text.contains(INIT_DONE)
    }

    /// What was printed between `===BEGIN name===` and `===END name===`.
    pub fn section(&self, name: &str) -> Option<&str> {
        let begin = format!("===BEGIN {name}===\n");
        let start = self.text.find(&begin)? + begin.len();
        let end = self.text[start..].find(&format!("===END {name}==="))? + start;
        Some(&self.text[start..end])
    }

    /// The report the step `name` printed.
    pub fn report(&self, name: &str) -> Result<Report> {
        let text = self
            .section(name)
            .with_context(|| format!("no complete {name} output on the console"))?;
        Report::parse(text.as_bytes(), &format!("the {name} report on the console"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_cut_out_between_their_markers() {
        let console = Console {
            stopped: None,
            text: "boot noise\n===BEGIN a===\n{}\n===END a===\n===BEGIN b===\nhalf".to_owned(),
        };
        assert_eq!(console.section("a"), Some("{}\n"));
        assert_eq!(console.section("b"), None);
        let err = console.report("a").unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "the a report on the console is not an mprotect-trace report (no schema_version)"
        );
    }

    #[test]
    fn a_run_step_prints_its_status_errors_and_report() {
        let script = GuestScript::new().run("fentry", "--backend fentry").finish();
        assert!(script.contains("/mprotect-trace run --backend fentry --json -o /tmp/fentry > /tmp/fentry.json"));
        assert!(script.contains("echo \"fentry exit status $?\""));
        assert!(script.ends_with("echo ===END fentry===\necho ===INIT DONE===\npoweroff -f\n"));
    }
}
