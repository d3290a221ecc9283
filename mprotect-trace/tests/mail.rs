//! The mail texts (`report --format mail`, `compare --format mail`) of
//! real runs on this machine's kernel (root): every line at most 80
//! characters, and every figure the one report.json (or the comparison's
//! JSON) holds. And `run --quiet`: one summary line on stdout, nothing else.

mod common;

use std::path::{Path, PathBuf};

use mprotect_trace::model::{LatencySummary, Report, ValueStats};
use mprotect_trace::output::mail_layout::compact_ns;
use mprotect_trace::output::table::format_ns;
use mprotect_trace::run::ATTACHED_LINE;
use serde_json::{Value, json};

/// A small workload, so the many runs here stay quick.
const SMALL: [&str; 4] = ["--mapping-mb", "8", "--iterations", "20"];
/// SMALL run five times as long and sampled ten times as often, for the
/// mails that list sampled functions: at 999 Hz a run of SMALL has 0 to 2
/// samples inside mprotect (a run mail may then list no function, and each
/// function's median over a comparison's 3 runs is often 0 on both sides:
/// no row to list); 20 iterations at 9999 Hz had 18-24 here, too few for a
/// machine twice as fast.
const SAMPLED: [&str; 6] = ["--mapping-mb", "8", "--iterations", "100", "--sample-hz", "9999"];

fn path(dir: &Path) -> &str {
    dir.to_str().expect("UTF-8 path")
}

/// `run -o DIR ARGS`, which must succeed: the directory.
fn traced(name: &str, args: &[&str]) -> PathBuf {
    let dir = common::out_dir("mail", name);
    let output = common::binary()
        .args(["run", "-o", path(&dir)])
        .args(args)
        .output()
        .expect("running mprotect-trace run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    dir
}

/// `mprotect-trace ARGS`, which must succeed: its stdout.
fn stdout_of(args: &[&str]) -> String {
    let output = common::binary().args(args).output().expect("running mprotect-trace");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Fails naming every line wider than 80 characters.
fn assert_fits_a_mail(text: &str) {
    let wide: Vec<String> = text
        .lines()
        .filter(|line| line.chars().count() > 80)
        .map(|line| format!("{:3}: {line}", line.chars().count()))
        .collect();
    assert!(
        wide.is_empty(),
        "lines over 80 characters:\n{}\nin:\n{text}",
        wide.join("\n")
    );
    assert!(text.lines().count() > 10, "{text}");
}

/// The value of a `label:` field, its wrapped lines joined.
fn field(text: &str, label: &str) -> String {
    let mut lines = text.lines().skip_while(|line| !line.starts_with(label));
    let first = lines.next().unwrap_or_else(|| panic!("no {label} in:\n{text}"));
    let mut value = first[label.len()..].trim().to_owned();
    for line in lines.take_while(|line| line.starts_with("          ")) {
        value.push(' ');
        value.push_str(line.trim());
    }
    value
}

/// The words of the first line that starts with `start`.
fn row<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
    text.lines()
        .find(|line| line.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
        .split_whitespace()
        .collect()
}

/// A latency row's figures as the mail prints them: calls, p50, p90,
/// p99, p99.9, min, max.
fn latency_figures(latency: &LatencySummary) -> Vec<String> {
    let ns = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), compact_ns);
    vec![
        latency.calls.to_string(),
        ns(latency.p50_ns),
        ns(latency.p90_ns),
        ns(latency.p99_ns),
        ns(latency.p999_ns),
        ns(latency.min_ns.map(|v| v as f64)),
        ns(latency.max_ns.map(|v| v as f64)),
    ]
}

/// The histogram under the line `title`: its stated total and its bars
/// (label, count), each bar as long as its count says.
fn histogram(lines: &[&str], title: &str) -> (u64, Vec<(String, u64)>) {
    let at = lines
        .iter()
        .position(|line| line.starts_with(title))
        .unwrap_or_else(|| panic!("no {title:?} in:\n{}", lines.join("\n")));
    let total = lines[at][title.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in {:?}", lines[at]));
    let bars: Vec<(String, u64)> = lines[at + 1..]
        .iter()
        .map_while(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [label, count, bar] if line.starts_with("  ") && bar.chars().all(|c| c == '#') => {
                    Some((label.to_string(), count.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect();
    assert!(!bars.is_empty(), "no bars under {title:?}");
    (total, bars)
}

fn sum(bars: &[(String, u64)]) -> u64 {
    bars.iter().map(|(_, count)| count).sum()
}

/// The names listed under the kernel-function heading: each beside its
/// two shares, or a long one on its own line above them.
fn listed_functions(text: &str) -> Vec<String> {
    let shares = |words: &[&str]| words.iter().all(|word| word.ends_with('%'));
    let mut names = Vec::new();
    let mut lines = text
        .lines()
        .skip_while(|line| !line.starts_with("kernel function "))
        .skip(1)
        .peekable();
    while let Some(line) = lines.next() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [name, own, total] if shares(&[own, total]) => names.push(name.to_string()),
            [name] => {
                let next: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
                assert!(next.len() == 2 && shares(&next), "no shares under {name}");
                names.push(name.to_string());
            }
            _ => break,
        }
    }
    names
}

/// Checks a run's mail against its report.json: the machine, the command
/// that repeats it, the workload's figures, the syscall's percentiles,
/// the pages histogram and the listed kernel functions.
fn check_run_mail(dir: &Path, command: &str) -> String {
    let report = common::report(dir);
    let mail = stdout_of(&["report", "--format", "mail", path(dir)]);
    assert_fits_a_mail(&mail);
    assert_eq!(
        field(&mail, "kernel:"),
        format!("{} {}", report.kernel_release, report.arch)
    );
    assert_eq!(
        field(&mail, "cpu:"),
        format!("{}, {} CPUs", report.cpu_model, report.cpus)
    );
    assert_eq!(field(&mail, "command:"), command);

    let workload = report.workload.as_ref().expect("a workload run");
    for (name, mean, median) in [
        (
            "protect",
            workload.protect_ns_per_page,
            workload.protect_ns_per_page_median,
        ),
        (
            "restore",
            workload.restore_ns_per_page,
            workload.restore_ns_per_page_median,
        ),
        (
            "post_touch",
            workload.post_touch_ns_per_page,
            workload.post_touch_ns_per_page_median,
        ),
        (
            "iteration",
            workload.iteration_ns_per_page,
            workload.iteration_ns_per_page_median,
        ),
    ] {
        assert_eq!(
            row(&mail, &format!("  {name} ")),
            [name.to_owned(), format!("{mean:.2}"), format!("{median:.2}")]
        );
    }
    let fields: Vec<&str> = mail.split_whitespace().filter(|word| word.contains('=')).collect();
    for expected in [
        format!("pages={}", workload.pages),
        format!("threads={}", workload.threads),
        format!("iterations={}", workload.iterations),
        format!("mprotect_calls={}", workload.mprotect_calls),
        format!("expected_match_ratio={}", workload.expected_match_ratio),
    ] {
        assert!(fields.contains(&expected.as_str()), "no {expected} in:\n{mail}");
    }

    let syscall = row(&mail, "mprotect (syscall) ");
    assert_eq!(syscall[2..], latency_figures(&report.syscall.latency));
    assert_eq!(report.syscall.latency.calls, workload.mprotect_calls);

    // Every call of the same length: one bar, every call in it.
    let lines: Vec<&str> = mail.lines().collect();
    let (total, bars) = histogram(&lines, "pages per call, mprotect len: ");
    let pages = &report.syscall.pages_per_call;
    assert_eq!(total, pages.count);
    assert_eq!(sum(&bars), pages.count);
    assert_eq!(pages.min, Some(workload.pages));
    let low = 1u64 << workload.pages.ilog2();
    assert_eq!(bars, [(format!("{low}-{}", 2 * low - 1), pages.count)]);

    match &report.sampling {
        Some(profile) => {
            let above: Vec<String> = profile
                .functions
                .iter()
                .filter(|f| f.total_share >= 0.005)
                .map(|f| f.name.clone())
                .collect();
            assert!(!above.is_empty(), "no function of 0.5 % or more");
            assert_eq!(listed_functions(&mail), above);
            assert!(mail.contains(&format!(
                "stack samples: {} inside mprotect() of {} at {} Hz",
                profile.in_syscall_samples, profile.counters.samples, profile.hz
            )));
        }
        None => {
            assert!(!mail.contains("stack samples"), "{mail}");
            assert!(listed_functions(&mail).is_empty());
        }
    }
    mail
}

#[test]
fn a_run_mail_fits_80_columns_and_holds_the_reports_figures() {
    let sampled = traced("sampled", &SAMPLED);
    let mail = check_run_mail(
        &sampled,
        "mprotect-trace run --mapping-mb 8 --iterations 100 --sample-hz 9999",
    );
    assert!(report_has_sampling(&sampled), "{mail}");

    let threads = traced("threads", &[&SAMPLED[..], &["--threads", "2"]].concat());
    check_run_mail(
        &threads,
        "mprotect-trace run --mapping-mb 8 --iterations 100 --threads 2 --sample-hz 9999",
    );

    let unsampled = traced("unsampled", &[&SMALL[..], &["--no-sample"]].concat());
    check_run_mail(
        &unsampled,
        "mprotect-trace run --mapping-mb 8 --iterations 20 --no-sample",
    );
    assert!(!report_has_sampling(&unsampled));
}

fn report_has_sampling(dir: &Path) -> bool {
    common::report(dir).sampling.is_some()
}

/// A real run's report given an nr_ptes and a pages-per-call
/// distribution of known counts on a target: what a kernel with function
/// probes records (this machine's has none).
#[test]
fn nr_ptes_and_pages_histograms_keep_every_count() {
    let dir = traced("distributions", &[&SMALL[..], &["--no-sample"]].concat());
    let mut report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let target = &mut report["targets"][0];
    target["nr_ptes_source"] = json!("prot_commit_flush_ptes(nr_ptes), argument 5");
    target["nr_ptes"] = json!({"counts": [[1, 500], [2, 30], [3, 7], [16, 4], [300, 1], [512, 2], [513, 1]]});
    target["pages_source"] = json!("change_protection return value");
    // [512, 544) and [544, 576) share the range 512-1023; 3 is exact.
    target["pages_per_call"] = json!({"count": 10, "total": 4000, "min": 3, "max": 560,
        "histogram": {"buckets": [[3, 4, 2], [512, 544, 5], [544, 576, 3]]}});
    let edited = common::out_dir("mail", "edited");
    std::fs::create_dir_all(&edited).unwrap();
    std::fs::write(edited.join("report.json"), serde_json::to_vec(&report).unwrap()).unwrap();

    let mail = stdout_of(&["report", "--format", "mail", path(&edited)]);
    assert_fits_a_mail(&mail);
    let lines: Vec<&str> = mail.lines().collect();
    let (total, bars) = histogram(&lines, "nr_ptes, prot_commit_flush_ptes(nr_ptes), argument 5: ");
    assert_eq!(total, 545);
    assert_eq!(sum(&bars), total);
    let expected = [
        ("1", 500),
        ("2-3", 37),
        ("16-31", 4),
        ("256-511", 1),
        ("512", 2),
        (">512", 1),
    ];
    assert_eq!(bars, expected.map(|(label, count)| (label.to_owned(), count)));
    let (total, bars) = histogram(&lines, "pages per call, change_protection return value: ");
    assert_eq!((total, sum(&bars)), (10, 10));
    assert_eq!(bars, [("2-3".to_owned(), 2), ("512-1023".to_owned(), 8)]);
    // The longest bar fills its line; the others are as long as their counts say.
    let longest = lines
        .iter()
        .find(|line| line.split_whitespace().take(2).eq(["1", "500"]))
        .unwrap();
    assert_eq!(longest.chars().count(), 80, "{longest}");
}

/// `compare --format mail` of `sides` against the same comparison's JSON
/// and the sides' reports.
fn check_compare_mail(sides: &[&Path]) -> String {
    let args: Vec<&str> = sides.iter().map(|side| path(side)).collect();
    let mail = stdout_of(&[&["compare", "--format", "mail"][..], &args].concat());
    assert_fits_a_mail(&mail);
    let json: Value =
        serde_json::from_str(&stdout_of(&[&["compare", "--format", "json"][..], &args].concat())).unwrap();
    let runs: Vec<String> = json["design"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert!(mail.contains(&format!("runs: {}, order: ", runs.join(" / "))), "{mail}");

    // Each side's machine and command, in side order.
    let commands: Vec<&str> = mail.lines().filter(|line| line.starts_with("command:")).collect();
    assert_eq!(commands.len(), sides.len());
    let command = format!("command:  mprotect-trace run {}", SAMPLED.join(" "));
    assert!(commands.iter().all(|line| *line == command), "{commands:?}");

    for pair in json["against_baseline"].as_array().unwrap() {
        let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
        let section: String = mail
            .split("\n== ")
            .find(|section| section.starts_with(&format!("{b} against {a}")))
            .unwrap_or_else(|| panic!("no {b} against {a} in:\n{mail}"))
            .to_owned();
        let workload = &pair["metrics"][0];
        assert_eq!(workload["metric"], "iteration ns/page (run median)");
        let median = |side: &str| format!("{:.2}", workload[side]["median"].as_f64().unwrap());
        assert_eq!(
            row(&section, "iteration ns/page (run median) ")[4..],
            [
                median("a"),
                median("b"),
                format!("{:.3}", workload["ratio"].as_f64().unwrap())
            ]
        );
        let sampled: Vec<String> = pair["sampled"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["name"].as_str().unwrap().to_owned())
            .collect();
        assert!(!sampled.is_empty(), "no sampled functions compared");
        assert_eq!(listed_sampled(&section), sampled);
    }

    // Each side's syscall percentiles and pages per call, its runs pooled.
    let lines: Vec<&str> = mail.lines().collect();
    for (index, side) in sides.iter().enumerate() {
        let label = mprotect_trace::compare::label(index);
        let reports: Vec<Report> = run_dirs(side).iter().map(|dir| common::report(dir)).collect();
        let latency: Vec<&ValueStats> = reports.iter().map(|r| &r.syscall.latency_ns).collect();
        let calls: u64 = latency.iter().map(|s| s.count).sum();
        let pooled = LatencySummary::of(&ValueStats::pooled(latency.iter().copied()));
        assert_eq!(pooled.calls, calls);
        assert_eq!(pooled.min_ns, latency.iter().filter_map(|s| s.min).min());
        assert_eq!(pooled.max_ns, latency.iter().filter_map(|s| s.max).max());
        let pooled_at = lines
            .iter()
            .position(|line| line.starts_with("latency, each side's runs pooled"))
            .unwrap();
        let at = pooled_at
            + lines[pooled_at..]
                .iter()
                .position(|line| *line == "mprotect (syscall)")
                .unwrap();
        let side_row: Vec<&str> = lines[at + 1 + index].split_whitespace().collect();
        assert_eq!(side_row[0], label);
        assert_eq!(side_row[1..], latency_figures(&pooled));

        let pages: u64 = reports.iter().map(|r| r.syscall.pages_per_call.count).sum();
        let at = lines
            .iter()
            .position(|line| line.starts_with("pages per call, mprotect len, each side's runs pooled:"))
            .unwrap();
        let side_lines = &lines[at..];
        let (total, bars) = histogram(side_lines, &format!("{label}:"));
        assert_eq!((total, sum(&bars)), (pages, pages));
    }
    mail
}

/// The function names of the sampled rows of one pair: every line of
/// the table that starts with a name (the numbers and the shift lines are
/// indented, and a long name has a line of its own).
fn listed_sampled(section: &str) -> Vec<String> {
    section
        .lines()
        .skip_while(|line| !line.starts_with("kernel function "))
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter(|line| !line.starts_with(' '))
        .map(|line| line.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

/// The run directories of a side, in name order.
fn run_dirs(side: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(side)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("report.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_comparison_mail_of_two_and_three_sides_fits_80_columns_and_holds_the_figures() {
    let sides: Vec<PathBuf> = ["side-a", "side-b", "side-c"]
        .iter()
        .map(|name| {
            let dir = common::out_dir("mail", name);
            let output = common::binary()
                .args(["run", "--repeat", "3", "-o", path(&dir)])
                .args(SAMPLED)
                .output()
                .expect("running mprotect-trace run --repeat");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            assert_eq!(run_dirs(&dir).len(), 3);
            dir
        })
        .collect();
    let two = check_compare_mail(&[&sides[0], &sides[1]]);
    assert_eq!(two.matches("\n== ").count(), 1);
    let three = check_compare_mail(&[&sides[0], &sides[1], &sides[2]]);
    assert_eq!(three.matches("\n== ").count(), 2);
    assert!(three.contains("mprotect-trace compare: 3 sides, A the baseline"));
}

#[test]
fn quiet_prints_only_the_summary_line() {
    let dir = common::out_dir("mail", "quiet");
    let output = common::binary()
        .args(["run", "--quiet", "-o", path(&dir)])
        .args(SMALL)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = common::report(&dir);
    let (workload, latency) = (report.workload.as_ref().unwrap(), &report.syscall.latency);
    let ns = |v: Option<f64>| format_ns(v.unwrap());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!(
            "{:.2} ns/page (run median); {} mprotect calls, p50 {}, p99 {}\n",
            workload.iteration_ns_per_page_median,
            latency.calls,
            ns(latency.p50_ns),
            ns(latency.p99_ns)
        )
    );
    // stderr: the attached line the tests wait on, and where the report
    // went; not the tool's timings.
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{ATTACHED_LINE} the workload, pid ")),
        "{stderr}"
    );
    assert_eq!(lines[1], format!("report: {}", dir.join("report.json").display()));

    // A command: the syscall's figures alone.
    let dir = common::out_dir("mail", "quiet-command");
    let output = common::binary()
        .args(["run", "-q", "--no-sample", "-o", path(&dir), "--", "/bin/true"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let latency = common::report(&dir).syscall.latency;
    assert!(latency.calls > 0);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!(
            "{} mprotect calls, p50 {}, p99 {}\n",
            latency.calls,
            ns(latency.p50_ns),
            ns(latency.p99_ns)
        )
    );
}

#[test]
fn quiet_and_format_refuse_what_they_cannot_do_in_one_line() {
    let refused = |args: &[&str], code: i32| {
        let output = common::binary().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        assert!(output.stdout.is_empty());
        String::from_utf8(output.stderr)
            .unwrap()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        refused(&["run", "--quiet", "--repeat", "2"], 1),
        "error: --quiet is for one run: with --repeat 2 each run says its line on stderr; drop --quiet"
    );
    assert_eq!(
        refused(&["run", "--quiet", "--json"], 2),
        "error: the argument '--quiet' cannot be used with '--json'"
    );
    assert_eq!(
        refused(&["compare", "--json", "--format", "mail", "a", "b"], 2),
        "error: the argument '--json' cannot be used with '--format <FORMAT>'"
    );
    assert_eq!(
        refused(&["report", "--format", "html", "a"], 2),
        "error: invalid value 'html' for '--format <FORMAT>'"
    );
}
