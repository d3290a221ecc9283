//! What a bisect decides on: one value per run.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::compare;
use crate::model::Report;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "target", rename_all = "kebab-case")]
pub enum Metric {
    /// The workload's median iteration ns/page.
    Iteration,
    /// A target's (or the syscall's) median latency in the run.
    P50(String),
    /// A target's calls per workload iteration.
    Calls(String),
}

impl Metric {
    /// `iteration`, `p50:TARGET` or `calls:TARGET` (`syscall` names the
    /// mprotect syscall's own row).
    pub fn parse(text: &str) -> Result<Self> {
        let target = |name: &str| {
            if name == "syscall" {
                compare::SYSCALL.to_owned()
            } else {
                name.to_owned()
            }
        };
        match text.split_once(':') {
            None if text == "iteration" => Ok(Self::Iteration),
            Some(("p50", name)) if !name.is_empty() => Ok(Self::P50(target(name))),
            Some(("calls", name)) if !name.is_empty() => Ok(Self::Calls(target(name))),
            _ => bail!(
                "--metric {text}: give iteration (the workload's ns/page), p50:TARGET or calls:TARGET, e.g. p50:change_protection"
            ),
        }
    }

    /// `iteration ns/page`, `change_protection p50 ns`, ...
    pub fn describe(&self) -> String {
        match self {
            Self::Iteration => "iteration ns/page".to_owned(),
            Self::P50(name) => format!("{name} p50 ns"),
            Self::Calls(name) => format!("{name} calls per iteration"),
        }
    }

    /// The run's value; `None` when the run does not have it (a target not
    /// probed in that kernel).
    pub fn of(&self, report: &Report) -> Option<f64> {
        match self {
            Self::Iteration => report.workload.as_ref().map(|w| w.iteration_ns_per_page_median),
            Self::P50(name) => compare::latency(report, name).and_then(|(stats, _)| stats.quantile(0.5)),
            Self::Calls(name) => {
                let (stats, _) = compare::latency(report, name)?;
                let (iterations, _) = compare::iterations(report)?;
                Some(stats.count as f64 / iterations)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse_and_refuse_in_one_line() {
        assert_eq!(Metric::parse("iteration").unwrap(), Metric::Iteration);
        assert_eq!(
            Metric::parse("p50:change_protection").unwrap(),
            Metric::P50("change_protection".into())
        );
        assert_eq!(
            Metric::parse("calls:syscall").unwrap(),
            Metric::Calls(compare::SYSCALL.into())
        );
        assert_eq!(
            Metric::parse("p99:x").unwrap_err().to_string(),
            "--metric p99:x: give iteration (the workload's ns/page), p50:TARGET or calls:TARGET, e.g. p50:change_protection"
        );
    }
}
