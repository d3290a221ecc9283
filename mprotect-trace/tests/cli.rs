//! The command line as a user meets it, without the kernel: output into a
//! closed pipe, help texts, numbers that cannot be.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Stdio;

const SAVED_RUN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schema-1-command");

/// `report DIR | head -4`: the reader is gone before the table is
/// written. Like any Unix tool, it ends by SIGPIPE, silently.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let mut child = common::binary()
        .args(["report", SAVED_RUN])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mprotect-trace report");
    // Close the only reader before the child writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("waiting for report");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{:?}", output.status);
}

#[test]
fn run_help_says_what_json_prints() {
    let output = common::binary().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("--json")
            && help.contains("Print the whole report as JSON instead of the table and the `result` line"),
        "{help}"
    );
}

/// The one-line error of a refused command line.
fn refused(args: &[&str]) -> String {
    let output = common::binary().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// A negative number is a number that cannot be, not "use `-- -5`"
/// (which would make -5 the command to trace).
#[test]
fn negative_numbers_get_a_proper_error() {
    assert_eq!(
        refused(&["run", "--duration", "-5"]),
        "error: --duration must be more than 0 seconds (got -5)"
    );
    assert_eq!(
        refused(&["run", "--interval", "-0.5"]),
        "error: --interval must be more than 0 seconds (got -0.5)"
    );
    // Whole-number flags are refused by the parser (usage errors exit 2).
    for (args, flag) in [
        (&["workload", "--iterations", "-5"][..], "'--iterations <ITERATIONS>'"),
        (&["run", "--sample-hz", "-1"][..], "'--sample-hz <HZ>'"),
        (&["run", "--cpu", "1.5"][..], "'--cpu <CPU>'"),
    ] {
        let output = common::binary().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let value = args[2];
        assert_eq!(
            stderr.lines().next(),
            Some(format!("error: invalid value '{value}' for {flag}: must be a whole number, 0 or more").as_str()),
            "{stderr}"
        );
    }
    assert!(Path::new(SAVED_RUN).is_dir());
}
