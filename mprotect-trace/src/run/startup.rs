//! Where the time to attach went, phase by phase: report.json's
//! `timings.startup`, so a slow start names its cause.

use std::time::Instant;

use crate::model::StartupPhase;

pub struct StartupClock {
    last: Instant,
    phases: Vec<StartupPhase>,
}

impl StartupClock {
    /// Starts timing the first phase now.
    pub fn new() -> Self {
        Self {
            last: Instant::now(),
            phases: Vec::new(),
        }
    }

    /// The phase `name` ended now; the next one begins.
    pub fn mark(&mut self, name: &str) {
        let now = Instant::now();
        self.phases.push(StartupPhase {
            phase: name.to_owned(),
            ms: (now - self.last).as_secs_f64() * 1e3,
        });
        self.last = now;
    }

    pub fn finish(self) -> Vec<StartupPhase> {
        self.phases
    }
}
