//! Stack sampling on this machine's real kernel (root): the flame graph's
//! stacks hold the mprotect path, with names /proc/kallsyms knows.

mod common;

use std::collections::HashSet;

use serde_json::Value;

/// Runs `run ARGS` into a fresh directory: its report, the directory, and
/// the table it printed.
fn traced(name: &str, args: &[&str]) -> (Value, std::path::PathBuf, String) {
    let dir = common::out_dir("sampling", name);
    let output = common::binary()
        .args(["run", "-o", dir.to_str().unwrap()])
        .args(args)
        .output()
        .expect("running mprotect-trace run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    (report, dir, String::from_utf8_lossy(&output.stdout).into_owned())
}

fn kallsyms_functions() -> HashSet<String> {
    std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 3 && matches!(fields[1], "t" | "T")).then(|| fields[2].to_owned())
        })
        .collect()
}

#[test]
fn samples_of_the_toggle_hold_the_change_protection_path_with_real_symbols() {
    let (report, dir, _) = traced("path", &["--iterations", "300", "--sample-hz", "999"]);
    let sampling = &report["sampling"];
    let stacks = sampling["stacks"].as_array().expect("sampling ran");
    let folded = std::fs::read_to_string(dir.join("stacks.folded")).expect("stacks.folded written");
    assert!(
        folded
            .lines()
            .any(|line| line.contains(";change_protection;change_pte_range")),
        "no change_protection -> change_pte_range path in:\n{folded}"
    );
    // Every named kernel frame is a real kernel function.
    let kallsyms = kallsyms_functions();
    for stack in stacks {
        for frame in stack["kernel"].as_array().unwrap() {
            let frame = frame.as_str().unwrap();
            if !frame.starts_with('[') {
                assert!(kallsyms.contains(frame), "{frame} is not in /proc/kallsyms");
            }
        }
    }
    // The folded file holds exactly the counted samples.
    let folded_total: u64 = folded
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let samples = sampling["counters"]["samples"].as_u64().unwrap();
    let lost = sampling["counters"]["sample_map_full"].as_u64().unwrap();
    assert_eq!(folded_total + lost, samples);
    // duration x frequency x busy CPUs, within 30 %: the workload's own
    // CPU time is duration x busy CPUs (other load on the machine cannot
    // skew it the way wall time would).
    let cpu_time = report["workload"]["cpu_time_s"].as_f64().unwrap();
    let busy_cpus = cpu_time / report["duration_s"].as_f64().unwrap();
    assert!(
        busy_cpus > 0.2 && busy_cpus <= 1.05,
        "one workload thread kept {busy_cpus:.2} CPUs busy"
    );
    let expected = cpu_time * 999.0;
    let ratio = samples as f64 / expected;
    assert!(
        (0.7..=1.3).contains(&ratio),
        "{samples} samples, expected about {expected:.0}"
    );
    assert!(sampling["in_syscall_samples"].as_u64().unwrap() > samples / 2);
    assert!(
        std::fs::read_to_string(dir.join("flame.svg"))
            .unwrap()
            .contains("change_pte_range")
    );
}

#[test]
fn inlined_targets_are_attributed_to_their_nearest_symbol() {
    let (report, _, _) = traced("inlined", &["--iterations", "100"]);
    let kallsyms = kallsyms_functions();
    let inlined = report["sampling"]["inlined_targets"].as_array().unwrap();
    let names: Vec<&str> = inlined.iter().map(|t| t["target"].as_str().unwrap()).collect();
    for target in [
        "change_protection",
        "change_pte_range",
        "modify_prot_start_ptes",
        "mprotect_fixup",
    ] {
        assert_eq!(names.contains(&target), !kallsyms.contains(target), "{target}");
    }
    for target in inlined {
        let parent = target["inlined_into"].as_str().expect("a caller with a symbol");
        assert!(kallsyms.contains(parent), "{parent}");
    }
}

#[test]
fn no_sample_writes_no_flame_graph() {
    let (report, dir, _) = traced("off", &["--iterations", "3", "--no-sample"]);
    assert!(report["sampling"].is_null());
    assert!(!dir.join("flame.svg").exists() && !dir.join("stacks.folded").exists());
}

#[test]
fn a_stack_map_too_small_is_counted_and_the_table_names_the_fix() {
    // Room for 4 stacks: the toggle's kernel and user stacks are many more.
    let (report, _, table) = traced("full", &["--no-syscall", "--max-stacks", "4", "--iterations", "100"]);
    let sampling = &report["sampling"];
    let counters = &sampling["counters"];
    assert_eq!(sampling["max_stacks"], 4);
    // A stack map of 4 is a hash table of 4 buckets: most new stacks collide.
    let collisions = counters["kernel_stack_collisions"].as_u64().unwrap();
    assert!(collisions * 100 > counters["samples"].as_u64().unwrap(), "{counters}");
    // Nothing vanished: every counted sample is in a stored pair or
    // counted as dropped by the full sample-count map.
    let stored: u64 = sampling["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        counters["samples"].as_u64().unwrap(),
        stored + counters["sample_map_full"].as_u64().unwrap(),
        "{counters}"
    );
    let warning = format!(
        "warning: the stack maps are too small for this run ({collisions} kernel stacks lost to collisions, {} stacks \
         and {} samples not stored for lack of room): raise --max-stacks (it was 4)",
        counters["stack_map_full"], counters["sample_map_full"]
    );
    assert!(table.contains(&warning), "{table}");
}

/// Samples count only while the measured iterations run: a 256 MiB
/// mapping prefaulted (clear_page) and unmapped around one iteration
/// leaves none of that in the profile, and the report says so.
#[test]
fn samples_are_limited_to_the_measured_iterations() {
    let (report, _, table) = traced("window", &["--mapping-mb", "256", "--iterations", "1", "--warmup", "0"]);
    let sampling = &report["sampling"];
    let outside = sampling["counters"]["samples_outside_window"]
        .as_u64()
        .expect("counted");
    assert!(outside > 0, "prefaulting 256 MiB took no sample: {sampling}");
    for stack in sampling["stacks"].as_array().unwrap() {
        let frames = stack["kernel"].as_array().unwrap();
        for frame in frames {
            let name = frame.as_str().unwrap_or_default();
            assert!(
                !name.starts_with("clear_page") && !name.contains("munmap") && !name.contains("unmap_region"),
                "a sample outside the measured iterations: {stack}"
            );
        }
    }
    assert!(
        table.contains(&format!(
            "stack samples of the measured iterations only ({outside} samples before, between and after them not counted)"
        )),
        "{table}"
    );
}

/// Under -a every stack starts at its process; a process that ran and
/// exited before the end is named all the same, and its `[unknown]` user
/// frames say why; a live one's frames keep their addresses.
#[test]
fn system_wide_stacks_are_rooted_at_their_process_and_unknown_frames_explain_themselves() {
    use std::process::{Command, Stdio};

    use mprotect_trace::model::UnknownUser;

    let dir = common::out_dir("sampling", "processes");
    let tracer = common::Tracer::start(&dir, &["-a", "--duration", "120"]);
    // Busy until killed: alive when the stacks are symbolized.
    let mut alive = Command::new("md5sum")
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // A fixed amount of work, then gone before the run ends.
    let mut source = Command::new("head")
        .args(["-c", "400000000", "/dev/zero"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = Command::new("md5sum")
        .stdin(Stdio::from(source.stdout.take().unwrap()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let exited_pid = exited.id();
    assert!(exited.wait().unwrap().success());
    assert!(source.wait().unwrap().success());
    tracer.signal(libc::SIGINT);
    let (status, stderr) = tracer.finish();
    alive.kill().unwrap();
    alive.wait().unwrap();
    // Stopped by SIGINT: a complete report, exit 130.
    assert_eq!(status.code(), Some(130), "{stderr:?}");

    let report = common::report(&dir);
    let profile = report.sampling.as_ref().expect("a profile");
    assert!(profile.process_roots);
    assert!(profile.stacks.iter().all(|stack| stack.process.is_some()));
    let of = |pid: u32| {
        profile
            .stacks
            .iter()
            .filter(move |s| s.process.as_ref().unwrap().pid == pid)
    };
    // The exited md5sum: named from the sampler's record, its user frames
    // unknown because it was gone.
    assert!(of(exited_pid).count() > 0, "the exited md5sum was not sampled");
    for stack in of(exited_pid) {
        assert_eq!(stack.process.as_ref().unwrap().comm, "md5sum");
        assert!(!stack.process.as_ref().unwrap().kernel_thread, "{stack:?}");
        // (A user stack the kernel did not record is lost, not unknown; a
        // process sampled in do_exit after exit_mm has none left.)
        let exiting = stack.user_addresses.is_empty() && stack.kernel.iter().any(|f| f == "do_exit");
        let causes = [Some(UnknownUser::ProcessExited), Some(UnknownUser::StackLost)];
        assert!(causes.contains(&stack.unknown_user) || exiting, "{stack:?}");
        assert!(stack.user.iter().all(|frame| frame == "[unknown]"));
        assert_eq!(stack.user.len(), stack.user_addresses.len());
    }
    assert!(of(exited_pid).any(|s| s.unknown_user == Some(UnknownUser::ProcessExited)));
    // The live one: never "exited"; one address per frame.
    assert!(of(alive.id()).count() > 0, "the live md5sum was not sampled");
    for stack in of(alive.id()) {
        assert_ne!(stack.unknown_user, Some(UnknownUser::ProcessExited));
        assert_eq!(stack.kernel.len(), stack.kernel_addresses.len());
        assert_eq!(stack.user.len(), stack.user_addresses.len());
    }
    // Kernel threads have no user frames and are marked.
    for stack in profile
        .stacks
        .iter()
        .filter(|s| s.process.as_ref().unwrap().kernel_thread)
    {
        assert!(stack.user.is_empty() && stack.unknown_user.is_none(), "{stack:?}");
    }

    // Every folded line starts at its process; the two md5sums by pid.
    let folded = std::fs::read_to_string(dir.join("stacks.folded")).unwrap();
    let roots: HashSet<String> = profile
        .stacks
        .iter()
        .map(|s| s.process.as_ref().unwrap().frame())
        .collect();
    for line in folded.lines() {
        let (stack, _count) = line.rsplit_once(' ').unwrap();
        let root = stack.split(';').next().unwrap();
        assert!(roots.contains(root), "{line} does not start at a sampled process");
    }
    assert!(
        folded
            .lines()
            .any(|line| line.starts_with(&format!("md5sum-{exited_pid};")))
    );

    // The table lists processes and explains the unknown frames.
    let table = common::binary().arg("report").arg(&dir).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table
        .lines()
        .find(|line| line.starts_with("md5sum ") && line.split_whitespace().nth(1) == Some(&exited_pid.to_string()))
        .unwrap_or_else(|| panic!("no row for the exited md5sum in:\n{table}"));
    let samples: u64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(samples, of(exited_pid).map(|s| s.count).sum::<u64>());
    assert!(table.contains("[unknown] user frames in "), "{table}");
    assert!(table.contains(UnknownUser::ProcessExited.describe()), "{table}");
}

/// Below the function, from kallsyms alone: the hottest instructions of
/// each hot function (`change_pte_range+0x239`), counted from the sampled
/// leaf addresses, in the report, the table and a folded variant; and the
/// kernel's build id, so the addresses can be symbolized again later.
#[test]
fn hot_spots_are_instruction_offsets_counted_from_the_sampled_addresses() {
    let (_, dir, table) = traced("hot-spots", &["--iterations", "100", "--mapping-mb", "16"]);
    let report = common::report(&dir);
    let profile = report.sampling.as_ref().expect("a profile");
    assert!(!profile.hot_spots.is_empty(), "{table}");
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    // A static function's name may stand for several functions.
    let starts_of = |name: &str| -> Vec<u64> {
        kallsyms
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() >= 3 && fields[2] == name).then(|| u64::from_str_radix(fields[0], 16).unwrap())
            })
            .collect()
    };
    let start_of = |name: &str| starts_of(name)[0];
    for spot in &profile.hot_spots {
        // The same count, from the leaf addresses independently.
        let starts = starts_of(&spot.function);
        let samples: u64 = profile
            .stacks
            .iter()
            .filter(|s| s.kernel.iter().any(|f| f == "do_mprotect_pkey"))
            .filter(|s| {
                s.kernel_addresses
                    .last()
                    .is_some_and(|leaf| starts.iter().any(|start| start + spot.offset == *leaf))
            })
            .map(|s| s.count)
            .sum();
        assert_eq!(samples, spot.samples, "{}", spot.label());
        let row = format!("{:<40} {:>8} ", spot.label(), spot.samples);
        assert!(table.contains(&row), "no row {row:?} in:\n{table}");
    }
    // The offsets' folded variant: the same samples, leaves with offsets.
    let folded = std::fs::read_to_string(dir.join("stacks.folded")).unwrap();
    let offsets = std::fs::read_to_string(dir.join("stacks-offsets.folded")).unwrap();
    let total = |text: &str| -> u64 {
        text.lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(total(&folded), total(&offsets));
    let top = &profile.hot_spots[0];
    let with_top: u64 = offsets
        .lines()
        .filter(|l| l.rsplit_once(' ').unwrap().0.ends_with(&format!(";{}", top.label())))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert!(with_top >= top.samples, "{}: {with_top} < {}", top.label(), top.samples);

    // The build id, read independently from the notes: after "GNU\0", 20 bytes.
    let notes = std::fs::read("/sys/kernel/notes").unwrap();
    let at = notes.windows(4).position(|w| w == b"GNU\0").unwrap() + 4;
    let expected: String = notes[at..at + 20].iter().map(|b| format!("{b:02x}")).collect();
    let identity = report.kernel_identity.as_ref().expect("the kernel's identity");
    assert_eq!(identity.build_id.as_deref(), Some(expected.as_str()));
    assert_eq!(identity.text_address, Some(start_of("_text")));
}
