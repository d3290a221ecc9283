//! The `mprotect-trace run` command line that repeats a saved run, from
//! the settings its report recorded: what a mail about the run quotes.

use crate::model::{Report, Settings, SyscallProbe};
use crate::options::RunOptions;
use crate::workload::{Scenario, WorkloadOptions};

/// The `mprotect-trace run` command line that repeats `report`'s run,
/// from its recorded settings: every flag that differs from its default.
/// Runs older than recorded settings (schema < 3) say what they traced.
pub fn repeating(report: &Report) -> String {
    let Some(settings) = &report.settings else {
        return format!(
            "not recorded (report schema {}); traced: {}",
            report.schema_version,
            super::table::what_was_traced(report)
        );
    };
    let words = run_arguments(settings);
    let quoted = shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "));
    format!("mprotect-trace run{}{quoted}", if words.is_empty() { "" } else { " " })
}

fn run_arguments(settings: &Settings) -> Vec<String> {
    let run_defaults = RunOptions::default();
    let mut words: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: Option<String>| {
        words.push(name.to_owned());
        words.extend(value);
    };
    if let Some(w) = &settings.workload {
        let defaults = WorkloadOptions::default();
        let scenario = Scenario::from_name(&w.scenario);
        if scenario != Some(defaults.scenario) {
            flag("--scenario", Some(w.scenario.clone()));
        }
        // 0: a scenario that maps a fixed number of bytes takes no size.
        let default_mb = scenario.map(|s| s.default_mapping_mb());
        if w.mapping_mb != 0 && Some(w.mapping_mb) != default_mb {
            flag("--mapping-mb", Some(w.mapping_mb.to_string()));
        }
        for (name, value, default) in [
            ("--iterations", w.iterations, defaults.iterations),
            ("--warmup", w.warmup, defaults.warmup),
            ("--rounds", w.rounds, defaults.rounds),
            ("--threads", w.threads, defaults.threads),
        ] {
            if value != default {
                flag(name, Some(value.to_string()));
            }
        }
        if let Some(cpu) = w.cpu {
            flag("--cpu", Some(cpu.to_string()));
        }
        if !w.touch {
            flag("--no-touch", None);
        }
        if let Some(kb) = w.folio_kb {
            flag("--folio-kb", Some(kb.to_string()));
        }
        if let Some(regions) = w.regions.filter(|r| *r != defaults.regions) {
            flag("--regions", Some(regions.to_string()));
        }
    }
    if let Some(pid) = settings.pid {
        flag("-p", Some(pid.to_string()));
    }
    if settings.all_tasks {
        flag("-a", None);
    }
    if settings.backend != "auto" {
        flag("--backend", Some(settings.backend.clone()));
    }
    for name in &settings.only {
        flag("--only", Some(name.clone()));
    }
    for probe in &settings.probes {
        flag("--probe", Some(probe.clone()));
    }
    match settings.syscall {
        SyscallProbe::Tracepoint => {}
        SyscallProbe::Empty => flag("--empty-programs", None),
        SyscallProbe::None => flag("--no-syscall", None),
    }
    match settings.sample_hz {
        None => flag("--no-sample", None),
        Some(hz) if Some(hz) != run_defaults.sample_hz => flag("--sample-hz", Some(hz.to_string())),
        Some(_) => {}
    }
    if settings.max_stacks != run_defaults.max_stacks {
        flag("--max-stacks", Some(settings.max_stacks.to_string()));
    }
    if let Some(seconds) = settings.duration_s {
        flag("--duration", Some(seconds.to_string()));
    }
    if settings.calibrate {
        flag("--calibrate", None);
    }
    if let Some(by) = &settings.split_by {
        flag("--split-by", Some(by.clone()));
    }
    if settings.probe_cost {
        flag("--probe-cost", None);
    }
    if !settings.command.is_empty() {
        flag("--", None);
        words.extend(settings.command.iter().cloned());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings::default_workload_run()
    }

    #[test]
    fn a_run_of_the_defaults_needs_no_flag() {
        assert!(run_arguments(&defaults()).is_empty());
    }

    #[test]
    fn every_setting_off_its_default_is_a_flag() {
        let mut settings = defaults();
        if let Some(w) = settings.workload.as_mut() {
            w.scenario = "region-toggle".to_owned();
            // region-toggle's own default size: no flag.
            w.mapping_mb = 4;
            w.iterations = 50;
            w.threads = 2;
            w.cpu = Some(1);
            w.touch = false;
        }
        settings.only = vec!["change_pte_range".to_owned()];
        settings.probes = vec!["folio_pte_batch".to_owned()];
        settings.sample_hz = None;
        settings.duration_s = Some(2.5);
        assert_eq!(
            run_arguments(&settings).join(" "),
            "--scenario region-toggle --iterations 50 --threads 2 --cpu 1 --no-touch --only change_pte_range --probe folio_pte_batch --no-sample --duration 2.5"
        );
        settings.only.clear();
        settings.workload = None;
        settings.command = vec!["./toggle".to_owned(), "a b".to_owned()];
        settings.sample_hz = Some(99);
        settings.duration_s = None;
        settings.probes.clear();
        let saved = include_bytes!("../../tests/data/schema-1-command/report.json");
        let mut report = Report::parse(saved, "schema-1-command").unwrap();
        report.settings = Some(settings);
        assert_eq!(
            repeating(&report),
            "mprotect-trace run --sample-hz 99 -- ./toggle 'a b'"
        );
    }
}
