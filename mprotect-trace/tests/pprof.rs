//! `profile.pb.gz` read by the real `go tool pprof` (Debian's golang,
//! installed by `cargo xtask setup`): its functions, flat and cumulative
//! samples and total must be those of `stacks.folded`, its kernel
//! locations the report's sampled addresses.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;

/// `go tool pprof ARGS FILE`, its output; never rewriting the profile's names.
fn pprof(args: &[&str], file: &Path) -> String {
    let output = Command::new("go")
        .args(["tool", "pprof", "-symbolize=none"])
        .args(args)
        .arg(file)
        .output()
        .expect("go is not installed: run `cargo xtask setup` (Debian package golang)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Flat and cumulative samples per function of a folded file, and the total.
fn folded_counts(folded: &str) -> (BTreeMap<String, (u64, u64)>, u64) {
    let mut functions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut total = 0;
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').unwrap();
        let count: u64 = count.parse().unwrap();
        total += count;
        let frames: Vec<&str> = stack.split(';').collect();
        functions.entry(frames[frames.len() - 1].to_owned()).or_default().0 += count;
        // A function twice on one stack counts once in its cumulative total.
        for frame in frames.into_iter().collect::<HashSet<_>>() {
            functions.entry(frame.to_owned()).or_default().1 += count;
        }
    }
    (functions, total)
}

/// `-top` rows: (function, flat, cum), with the total it states.
fn top_rows(top: &str) -> (BTreeMap<String, (u64, u64)>, u64) {
    let total = top
        .lines()
        .find_map(|line| line.strip_prefix("Showing nodes accounting for "))
        .and_then(|rest| rest.rsplit_once(" of "))
        .and_then(|(_, total)| total.strip_suffix(" total"))
        .expect("a total line")
        .parse()
        .unwrap();
    let rows = top
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("flat  flat%"))
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // stacks.folded writes ';' in a name as ':' (';' separates its frames).
            let name = fields[5..].join(" ").replace(';', ":");
            (name, (fields[0].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .collect();
    (rows, total)
}

fn check_against_folded(dir: &Path) {
    let profile = dir.join("profile.pb.gz");
    let folded = std::fs::read_to_string(dir.join("stacks.folded")).unwrap();
    let (expected, samples) = folded_counts(&folded);
    let top = pprof(
        &["-top", "-sample_index=samples", "-nodefraction=0", "-nodecount=1000000"],
        &profile,
    );
    let (rows, total) = top_rows(&top);
    assert_eq!(total, samples, "{top}");
    assert_eq!(rows, expected, "{top}");
    // Samples are CPU time: each one period of the sampling clock.
    let report = common::report(dir);
    let hz = report.sampling.as_ref().unwrap().hz;
    let cpu = pprof(&["-top", "-sample_index=cpu", "-unit=ns", "-nodecount=1"], &profile);
    let period = 1_000_000_000 / hz;
    assert!(cpu.contains(&format!("of {}ns total", samples * period)), "{cpu}");
}

#[test]
fn go_tool_pprof_reads_the_same_functions_and_totals_as_the_folded_stacks() {
    let dir = common::out_dir("pprof", "workload");
    let output = common::binary()
        .args(["run", "--iterations", "100", "--mapping-mb", "16", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    check_against_folded(&dir);

    // Every kernel location keeps a sampled address, in the kernel mapping.
    let report = common::report(&dir);
    let sampled: HashSet<u64> = report
        .sampling
        .as_ref()
        .unwrap()
        .stacks
        .iter()
        .flat_map(|stack| stack.kernel_addresses.iter().copied())
        .collect();
    let raw = pprof(&["-raw"], &dir.join("profile.pb.gz"));
    let kernel_locations: Vec<u64> = raw
        .lines()
        .skip_while(|line| *line != "Locations")
        .filter(|line| line.contains(" M=1 "))
        .map(|line| {
            let address = line.split_whitespace().nth(1).unwrap();
            u64::from_str_radix(address.trim_start_matches("0x"), 16).unwrap()
        })
        .collect();
    assert!(!kernel_locations.is_empty(), "{raw}");
    assert_eq!(kernel_locations.iter().copied().collect::<HashSet<_>>(), sampled);
    assert!(raw.contains("[kernel.kallsyms]  [FN]"), "{raw}");
}

#[test]
fn system_wide_profiles_keep_their_process_roots_in_pprof() {
    let dir = common::out_dir("pprof", "all");
    let output = common::binary()
        .args(["run", "-a", "--duration", "1", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    check_against_folded(&dir);
}
