//! What a bisect found, as bisect.json, bisect.txt and bisect.html.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::classify::Classification;
use super::metric::Metric;
use super::{BisectOptions, Direction, Inputs, describe_classification, format_duration};
use crate::compare::{self, Spread, Verdict};
use crate::lab::summary::KernelDelta;
use crate::statistics::Interval;

pub const FILE_NAME: &str = "bisect.json";

#[derive(Debug, Serialize)]
pub struct BisectRecord {
    pub invocation: Vec<String>,
    pub inputs: Inputs,
    pub dir: PathBuf,
    pub repeat: u32,
    pub max_repeats: u32,
    pub endpoints: Option<EndpointCheck>,
    pub steps: Vec<Step>,
    pub outcome: Option<Outcome>,
    pub git_bisect_log: Option<PathBuf>,
    /// The kernels this invocation booted or built, by label.
    pub kernels: Vec<KernelUsed>,
    pub boots: usize,
    pub seconds: f64,
    pub notes: Vec<String>,
}

/// Good against bad: B/A with its interval and the rank test.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointCheck {
    pub metric: String,
    pub good: Option<Spread>,
    pub bad: Option<Spread>,
    pub ratio: Option<f64>,
    pub interval: Option<Interval>,
    pub p_value: Option<f64>,
    /// Significant, in the direction looked for.
    pub differ: bool,
    /// Why there is no test (too few runs, a zero value).
    pub reason: Option<String>,
}

impl EndpointCheck {
    pub fn of(metric: &Metric, direction: Direction, good: &[f64], bad: &[f64]) -> Self {
        let delta = compare::metric_delta(metric.describe(), "", good.to_vec(), bad.to_vec());
        let Some(delta) = delta else {
            return Self {
                metric: metric.describe(),
                good: Spread::of(good.to_vec()),
                bad: Spread::of(bad.to_vec()),
                ratio: None,
                interval: None,
                p_value: None,
                differ: false,
                reason: Some("a value is zero or missing: no ratio".to_owned()),
            };
        };
        let way = match direction {
            Direction::Slower => delta.ratio > 1.0,
            Direction::Faster => delta.ratio < 1.0,
        };
        Self {
            metric: metric.describe(),
            differ: delta.verdict == Verdict::Significant && way,
            good: Some(delta.a),
            bad: Some(delta.b),
            ratio: Some(delta.ratio),
            interval: delta.ratio_interval,
            p_value: delta.test.map(|t| t.p_value),
            reason: delta.reason,
        }
    }

    /// "B/A x1.077 [1.075, 1.079], p 0.029".
    fn figures(&self) -> String {
        let mut text = self.ratio.map_or("B/A -".to_owned(), |r| format!("B/A x{r:.3}"));
        if let Some(i) = self.interval {
            let _ = write!(text, " [{:.3}, {:.3}]", i.low, i.high);
        }
        if let Some(p) = self.p_value {
            let _ = write!(text, ", p {p:.3}");
        }
        text
    }

    pub fn describe(&self) -> String {
        let spread = |s: &Option<Spread>| {
            s.as_ref().map_or("-".to_owned(), |s| {
                format!("{:.2} [{:.2}, {:.2}] ({} runs)", s.median, s.min, s.max, s.runs.len())
            })
        };
        format!(
            "{}: good {}, bad {}: {}{}",
            self.metric,
            spread(&self.good),
            spread(&self.bad),
            self.figures(),
            if self.differ { ": they differ" } else { "" }
        )
    }

    /// The one line a bisect that cannot start ends with.
    pub fn refusal(&self, direction: Direction) -> String {
        if let Some(reason) = &self.reason {
            return format!("good and bad cannot be told apart ({}): {reason}", self.figures());
        }
        let significant = self.p_value.is_some_and(|p| p < crate::statistics::ALPHA);
        match (significant, direction) {
            (true, Direction::Slower) => format!(
                "bad is faster than good ({}): nothing slower to bisect; --faster looks for the improvement",
                self.figures()
            ),
            (true, Direction::Faster) => format!(
                "bad is slower than good ({}): no improvement to bisect; drop --faster to find the regression",
                self.figures()
            ),
            (false, _) => format!("good and bad do not differ ({}): nothing to bisect", self.figures()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KernelUsed {
    pub label: String,
    pub image: PathBuf,
    /// Its debug vmlinux, when the lab built it.
    pub vmlinux: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum StepVerdict {
    LikeGood,
    LikeBad,
    Skipped { why: String },
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub number: usize,
    /// The revision's place: 0 is good.
    pub index: usize,
    pub label: String,
    pub commit: Option<String>,
    pub subject: String,
    #[serde(flatten)]
    pub verdict: StepVerdict,
    pub classification: Option<Classification>,
    /// The metric of each run.
    pub runs: Vec<f64>,
    pub seconds: f64,
}

impl Step {
    /// "step 2 of about 3: linux@1a2b3c4d5e6f "subject": like-good (...; 4 runs)".
    pub fn describe(&self, expected: usize) -> String {
        let verdict = match &self.verdict {
            StepVerdict::LikeGood | StepVerdict::LikeBad => format!(
                "{} ({}; {} runs)",
                if matches!(self.verdict, StepVerdict::LikeGood) {
                    "like-good"
                } else {
                    "like-bad"
                },
                self.classification
                    .as_ref()
                    .map_or_else(String::new, describe_classification),
                self.runs.len()
            ),
            StepVerdict::Skipped { why } => format!("skipped: {why}"),
        };
        format!(
            "step {} of about {expected}: {} {:?}: {verdict}",
            self.number, self.label, self.subject
        )
    }
}

#[derive(Debug, Serialize)]
pub struct FirstBad {
    pub label: String,
    pub commit: Option<String>,
    pub subject: String,
    /// The revision before it, the comparison's baseline.
    pub parent: String,
    pub diff_stat: Option<String>,
    pub comparison_dir: PathBuf,
    pub comparison: KernelDelta,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    FirstBad(Box<FirstBad>),
    /// Skipped revisions left more than one candidate.
    Ambiguous {
        candidates: Vec<String>,
    },
    Refused {
        why: String,
    },
    EndpointsMeasured,
    Interrupted {
        signal: String,
    },
    Failed {
        why: String,
    },
}

impl BisectRecord {
    pub fn new(options: &BisectOptions, inputs: &Inputs, dir: &Path) -> Self {
        Self {
            invocation: options.invocation.clone(),
            inputs: inputs.clone(),
            dir: dir.to_path_buf(),
            repeat: options.lab.repeat.get(),
            max_repeats: options.max_repeats,
            endpoints: None,
            steps: Vec::new(),
            outcome: None,
            git_bisect_log: None,
            kernels: Vec::new(),
            boots: 0,
            seconds: 0.0,
            notes: Vec::new(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let revisions = &self.inputs.revisions;
        let (good, bad) = (&revisions[0], &revisions[revisions.len() - 1]);
        let _ = writeln!(
            out,
            "mprotect-trace bisect: {} revisions after {} up to {}, {} {}; {} runs a step (up to {}), {} CPUs, accel {}",
            revisions.len() - 1,
            good.label,
            bad.label,
            self.inputs.metric.describe(),
            match self.inputs.direction {
                Direction::Slower => "slower",
                Direction::Faster => "faster",
            },
            self.repeat,
            self.max_repeats,
            self.inputs.smp,
            self.inputs.accel,
        );
        let _ = writeln!(out, "run options: {}", self.inputs.run_args.join(" "));
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if let Some(endpoints) = &self.endpoints {
            let _ = writeln!(out, "endpoints: {}", endpoints.describe());
        }
        let expected = super::ceil_log2(revisions.len() - 1);
        for step in &self.steps {
            let _ = writeln!(out, "{}", step.describe(expected));
        }
        match &self.outcome {
            Some(Outcome::FirstBad(first)) => {
                let _ = writeln!(
                    out,
                    "\nfirst bad: {} {:?} ({} step{}, {} skipped)",
                    first.commit.as_deref().unwrap_or(&first.label),
                    first.subject,
                    self.steps.len(),
                    if self.steps.len() == 1 { "" } else { "s" },
                    self.steps
                        .iter()
                        .filter(|s| matches!(s.verdict, StepVerdict::Skipped { .. }))
                        .count()
                );
                if let Some(stat) = &first.diff_stat {
                    let _ = writeln!(out, "{stat}");
                }
                let delta = &first.comparison;
                let _ = writeln!(
                    out,
                    "against its parent {} ({}): iteration ns/page x{}; {}",
                    first.parent,
                    first.comparison_dir.join("comparison.txt").display(),
                    delta.iteration_ratio.map_or("-".to_owned(), |r| format!("{r:.3}")),
                    delta.verdict.as_deref().unwrap_or("-")
                );
                delta.write_attribution(&mut out, "  ");
            }
            Some(Outcome::Ambiguous { candidates }) => {
                let _ = writeln!(
                    out,
                    "\nthe first bad revision is one of {} (the others were skipped)",
                    candidates.join(", ")
                );
            }
            Some(Outcome::Refused { why }) | Some(Outcome::Failed { why }) => {
                let _ = writeln!(out, "\nstopped: {why}");
            }
            Some(Outcome::EndpointsMeasured) => {
                let _ = writeln!(
                    out,
                    "\nendpoints measured: `git bisect run mprotect-trace bisect-step {}` decides each revision against them",
                    self.dir.display()
                );
            }
            Some(Outcome::Interrupted { signal }) => {
                let _ = writeln!(out, "\ninterrupted by {signal}: the same command resumes it");
            }
            None => {}
        }
        if let Some(log) = &self.git_bisect_log {
            let _ = writeln!(out, "git bisect log: {} (git bisect replay)", log.display());
        }
        let _ = writeln!(
            out,
            "{} boots in {}; every run is under {}",
            self.boots,
            format_duration(self.seconds),
            self.dir.display()
        );
        out
    }

    fn to_html(&self) -> String {
        use crate::output::html::escape;
        let mut html = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mprotect-trace bisect</title>\n\
             <style>body{font-family:sans-serif;max-width:1200px;margin:1em auto}\
             table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}\
             td.n{text-align:right}</style></head><body>\n<h1>mprotect-trace bisect</h1>\n",
        );
        if let Some(endpoints) = &self.endpoints {
            let _ = writeln!(html, "<p>Endpoints: {}</p>", escape(&endpoints.describe()));
        }
        html.push_str(
            "<table><tr><th>step</th><th>revision</th><th>subject</th><th>verdict</th><th>runs</th><th>median</th><th>p vs good</th><th>p vs bad</th></tr>\n",
        );
        for step in &self.steps {
            let (verdict, why) = match &step.verdict {
                StepVerdict::LikeGood => ("like-good", String::new()),
                StepVerdict::LikeBad => ("like-bad", String::new()),
                StepVerdict::Skipped { why } => ("skipped", format!(": {why}")),
            };
            let p = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.3}"));
            let c = step.classification.as_ref();
            let _ = writeln!(
                html,
                "<tr><td class=n>{}</td><td>{}</td><td>{}</td><td>{verdict}{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                step.number,
                escape(&step.label),
                escape(&step.subject),
                escape(&why),
                step.runs.len(),
                crate::statistics::median(&step.runs).map_or("-".to_owned(), |m| format!("{m:.2}")),
                p(c.and_then(|c| c.p_good)),
                p(c.and_then(|c| c.p_bad)),
            );
        }
        html.push_str("</table>\n");
        if let Some(Outcome::FirstBad(first)) = &self.outcome {
            let _ = writeln!(
                html,
                "<h2>First bad: {}</h2>\n<p>{}</p>\n<p>{}</p>\n<p><a href=\"first-bad/comparison.html\">its comparison with its parent {}</a></p>",
                escape(first.commit.as_deref().unwrap_or(&first.label)),
                escape(&first.subject),
                escape(&first.comparison.home_explanation),
                escape(&first.parent)
            );
        }
        let _ = writeln!(html, "<h2>Summary</h2>\n<pre>{}</pre>", escape(&self.to_text()));
        html.push_str("</body></html>\n");
        html
    }

    /// bisect.json, bisect.txt and bisect.html in `dir`, each replaced whole.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::output::write_atomically(
            &dir.join(FILE_NAME),
            format!("{}\n", serde_json::to_string_pretty(self)?).as_bytes(),
        )?;
        crate::output::write_atomically(&dir.join("bisect.txt"), self.to_text().as_bytes())?;
        crate::output::write_atomically(&dir.join("bisect.html"), self.to_html().as_bytes())?;
        Ok(())
    }
}
