//! The large-folio workload (`--folio-kb`) on this machine's kernel
//! (root): the multi-size THP knobs are set for the run and restored
//! after, also on SIGTERM, and the state audit reports the folio sizes
//! that really backed the mapping. The knobs are global, so these tests
//! run one at a time, in a test binary of their own.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use mprotect_trace::model::WorkloadResult;
use mprotect_trace::workload::mthp::{THP_DIR, offered_sizes};

static KNOBS: Mutex<()> = Mutex::new(());

const FOLIO_KB: u64 = 64;

/// Every size's `enabled` and `shmem_enabled`, as sysfs shows them now.
fn knobs() -> Vec<(String, String)> {
    let files = offered_sizes(false)
        .into_iter()
        .map(|size| format!("hugepages-{size}kB/enabled"))
        .chain(
            offered_sizes(true)
                .into_iter()
                .map(|size| format!("hugepages-{size}kB/shmem_enabled")),
        );
    files
        .map(|file| {
            let text = std::fs::read_to_string(Path::new(THP_DIR).join(&file)).unwrap_or_default();
            (file, text.trim().to_owned())
        })
        .collect()
}

/// Whether this kernel offers the size these tests use; a visible skip if not.
fn offered(test: &str) -> bool {
    let ok = offered_sizes(false).contains(&FOLIO_KB) && offered_sizes(true).contains(&FOLIO_KB);
    if !ok {
        common::skip(test, &format!("this kernel offers no {FOLIO_KB} kB multi-size THP"));
    }
    ok
}

fn run(scenario: &str) -> WorkloadResult {
    let output = common::binary()
        .args(["workload", "--json", "--scenario", scenario, "--mapping-mb", "4"])
        .args([
            "--iterations",
            "3",
            "--warmup",
            "1",
            "--folio-kb",
            &FOLIO_KB.to_string(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn private_and_shared_mappings_are_backed_by_folios_of_the_size_asked_and_the_knobs_come_back() {
    let _knobs = KNOBS.lock().unwrap_or_else(|e| e.into_inner());
    if !offered("folio_sizes") {
        return;
    }
    let before = knobs();
    for scenario in ["private-dirty-toggle", "shared-dirty-toggle"] {
        let result = run(scenario);
        // 4 MiB of 64 kB folios: 64 of them, every page in one.
        assert_eq!(result.folio_kb, Some(FOLIO_KB), "{scenario}");
        assert_eq!(result.folio_sizes, [(FOLIO_KB, 64)], "{scenario}");
        assert_eq!(result.expected_match_ratio, 100, "{scenario}");
        assert_eq!(knobs(), before, "{scenario} left a knob changed");
    }
}

#[test]
fn sigterm_restores_the_knobs() {
    let _knobs = KNOBS.lock().unwrap_or_else(|e| e.into_inner());
    if !offered("sigterm_restores") {
        return;
    }
    let before = knobs();
    // Parked at its start gate: the knobs are set by then.
    let mut child = common::binary()
        .args([
            "workload",
            "--json",
            "--wait-for-start",
            "--scenario",
            "private-dirty-toggle",
        ])
        .args(["--mapping-mb", "4", "--folio-kb", &FOLIO_KB.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("ready measuring=0x"), "{ready}");
    let knob = Path::new(THP_DIR).join(format!("hugepages-{FOLIO_KB}kB/enabled"));
    assert!(
        std::fs::read_to_string(&knob).unwrap().contains("[always]"),
        "set for the run"
    );
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert_eq!(knobs(), before, "SIGTERM left a knob changed");
}

#[test]
fn bad_folio_sizes_and_scenarios_are_one_line_errors() {
    let _knobs = KNOBS.lock().unwrap_or_else(|e| e.into_inner());
    let error = |args: &[&str]| {
        let output = common::binary().arg("workload").args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr
    };
    let sizes: Vec<String> = offered_sizes(false).iter().map(u64::to_string).collect();
    if sizes.is_empty() {
        common::skip("bad_folio_sizes", "this kernel has no multi-size THP");
        return;
    }
    assert_eq!(
        error(&["--scenario", "private-dirty-toggle", "--folio-kb", "48"]),
        format!(
            "error: --folio-kb 48: this kernel offers {} kB for private memory",
            sizes.join(", ")
        )
    );
    assert_eq!(
        error(&["--scenario", "file-toggle", "--folio-kb", "64"]),
        "error: --folio-kb applies to shared-dirty-toggle, private-dirty-toggle and numa-hinting (anonymous memory), not file-toggle"
    );
    // Not root: the knob it could not set is named.
    let before = knobs();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_mprotect-trace"))
        .args(["workload", "--scenario", "private-dirty-toggle", "--mapping-mb", "4"])
        .args(["--folio-kb", &FOLIO_KB.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: --folio-kb needs root to set {THP_DIR}/hugepages-"))
            && stderr.ends_with("/enabled (run it as root)"),
        "{stderr}"
    );
    assert_eq!(knobs(), before);
}

/// A closed stdout (`workload ... | head -0`) is an error the workload
/// survives long enough to put the knobs back, not a SIGPIPE death.
#[test]
fn a_closed_stdout_still_restores_the_knobs() {
    let _knobs = KNOBS.lock().unwrap_or_else(|e| e.into_inner());
    if !offered("closed_stdout") {
        return;
    }
    let before = knobs();
    let mut child = common::binary()
        .args([
            "workload",
            "--scenario",
            "private-dirty-toggle",
            "--mapping-mb",
            "4",
            "--iterations",
            "5",
        ])
        .args(["--folio-kb", &FOLIO_KB.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{:?}", output.status);
    assert_eq!(knobs(), before, "a closed stdout left a knob changed");
}
