//! Everything that shapes a measurement, as the run was asked for it, so
//! `compare` can tell like from unlike.

use serde::{Deserialize, Serialize};

use super::report::SyscallProbe;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The built-in workload's shape; absent for `-- CMD`, `-p` and `-a`.
    pub workload: Option<WorkloadSettings>,
    /// `-- CMD`: the command traced.
    pub command: Vec<String>,
    /// `-p PID`: the process traced (identity, not a shaping option).
    pub pid: Option<u32>,
    /// `-a`: every task.
    pub all_tasks: bool,
    /// `auto`, or the one function-probe backend asked for.
    pub backend: String,
    /// `--only NAME`s: the functions traced instead of the built-in targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
    /// `--probe NAME`s, in the order given.
    pub probes: Vec<String>,
    pub syscall: SyscallProbe,
    /// Stack samples per second per CPU; absent with `--no-sample`.
    pub sample_hz: Option<u64>,
    pub max_stacks: u32,
    pub duration_s: Option<f64>,
    pub calibrate: bool,
    pub probe_cost: bool,
    /// `--split-by`: what the function targets' records were also split by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSettings {
    pub scenario: String,
    /// Resolved (the scenario's default when not given); 0 for scenarios
    /// that map a fixed number of bytes.
    pub mapping_mb: u64,
    pub iterations: u64,
    pub warmup: u64,
    pub rounds: u64,
    pub threads: u64,
    /// `--cpu`: every workload thread pinned to this CPU.
    pub cpu: Option<usize>,
    /// False with `--no-touch`.
    pub touch: bool,
    /// `--folio-kb`: the multi-size THP folio size asked for.
    pub folio_kb: Option<u64>,
    /// `--dither-us`: the random spin after each iteration (0 in reports
    /// older than it).
    #[serde(default)]
    pub dither_us: u64,
    /// `--regions`: mprot-tw4m's regions; absent for the other scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<u64>,
}

/// One setting that differs between two runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// Its path in `settings`, e.g. `workload.cpu`.
    pub setting: String,
    pub a: String,
    pub b: String,
    /// False only for the traced pid: which process, not how it was measured.
    pub shaping: bool,
}

impl Difference {
    pub fn describe(&self) -> String {
        format!("{} ({} vs {})", self.setting, self.a, self.b)
    }
}

#[cfg(test)]
impl Settings {
    /// `run` with every default: a fixture for the tests that read settings.
    pub fn default_workload_run() -> Settings {
        Settings {
            workload: Some(WorkloadSettings {
                scenario: "shared-dirty-toggle".to_owned(),
                mapping_mb: 64,
                iterations: 200,
                warmup: 5,
                rounds: 1,
                threads: 1,
                cpu: None,
                touch: true,
                folio_kb: None,
                dither_us: 0,
                regions: None,
            }),
            command: Vec::new(),
            pid: None,
            all_tasks: false,
            backend: "auto".to_owned(),
            only: Vec::new(),
            probes: Vec::new(),
            syscall: SyscallProbe::Tracepoint,
            sample_hz: Some(crate::options::DEFAULT_SAMPLE_HZ),
            max_stacks: mprotect_trace_common::STACK_MAP_ENTRIES,
            duration_s: None,
            calibrate: false,
            probe_cost: false,
            split_by: None,
        }
    }
}

impl Settings {
    /// Every setting that differs, by its path in report.json.
    pub fn differences(&self, other: &Settings) -> Vec<Difference> {
        let mut differences = Vec::new();
        let (mut a, mut b) = (self.clone(), other.clone());
        // The workload against a command is one difference, not one per field.
        if a.workload.is_some() != b.workload.is_some() {
            let describe = |w: &Option<WorkloadSettings>| w.as_ref().map_or("none".to_owned(), |w| w.scenario.clone());
            differences.push(Difference {
                setting: "workload".to_owned(),
                a: describe(&a.workload),
                b: describe(&b.workload),
                shaping: true,
            });
            (a.workload, b.workload) = (None, None);
        }
        let (left, right) = (leaves(&a), leaves(&b));
        // Both sides' paths: a setting left out when unused (`only`,
        // `split_by`) may be on either side only.
        let names: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
        for name in names {
            let value = left.get(name).cloned().unwrap_or_else(|| "absent".to_owned());
            let other = right.get(name).cloned().unwrap_or_else(|| "absent".to_owned());
            if value != other {
                differences.push(Difference {
                    shaping: name != "pid",
                    setting: name.clone(),
                    a: value,
                    b: other,
                });
            }
        }
        differences
    }
}

/// Every leaf of the settings by its dotted path, in path order.
fn leaves(settings: &Settings) -> std::collections::BTreeMap<String, String> {
    let mut out = Vec::new();
    // Serializing plain data cannot fail; a failure would list nothing.
    flatten("", &serde_json::to_value(settings).unwrap_or_default(), &mut out);
    out.into_iter().collect()
}

/// `(path, value)` of every leaf; `null` reads as "none".
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, field, out);
            }
        }
        serde_json::Value::Null => out.push((prefix.to_owned(), "none".to_owned())),
        serde_json::Value::String(text) => out.push((prefix.to_owned(), text.clone())),
        serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_string) => {
            let words: Vec<&str> = items.iter().filter_map(serde_json::Value::as_str).collect();
            out.push((prefix.to_owned(), format!("[{}]", words.join(" "))));
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload_run() -> Settings {
        Settings::default_workload_run()
    }

    #[test]
    fn lists_each_differing_setting_by_its_path() {
        let a = workload_run();
        assert!(a.differences(&a).is_empty());
        let mut b = a.clone();
        if let Some(w) = b.workload.as_mut() {
            w.cpu = Some(1);
            w.touch = false;
        }
        b.probes = vec!["folio_pte_batch".to_owned()];
        b.only = vec!["change_pte_range".to_owned()];
        let described: Vec<String> = a.differences(&b).iter().map(Difference::describe).collect();
        assert_eq!(
            described,
            [
                "only (absent vs [change_pte_range])",
                "probes ([] vs [folio_pte_batch])",
                "workload.cpu (none vs 1)",
                "workload.touch (true vs false)"
            ]
        );
    }

    #[test]
    fn the_workload_against_a_command_is_one_difference() {
        let a = workload_run();
        let mut b = a.clone();
        b.workload = None;
        b.command = vec!["./toggle".to_owned(), "64".to_owned()];
        let described: Vec<String> = a.differences(&b).iter().map(Difference::describe).collect();
        assert_eq!(
            described,
            [
                "workload (shared-dirty-toggle vs none)",
                "command ([] vs [./toggle 64])"
            ]
        );
    }

    #[test]
    fn the_pid_is_listed_but_does_not_shape() {
        let mut a = workload_run();
        a.workload = None;
        a.pid = Some(10);
        let mut b = a.clone();
        b.pid = Some(11);
        let differences = a.differences(&b);
        assert_eq!(differences.len(), 1);
        assert!(!differences[0].shaping);
    }
}
