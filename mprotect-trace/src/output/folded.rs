//! `stacks.folded`: the sampled stacks in Brendan Gregg's folded format,
//! for inferno, flamegraph.pl and speedscope.

use anyhow::Result;

use super::{Artifact, Format};
use crate::model::Report;

pub const FILE_NAME: &str = "stacks.folded";

pub struct FoldedStacks;

impl Format for FoldedStacks {
    fn render(&self, report: &Report, _earlier: &[Artifact]) -> Result<Vec<Artifact>> {
        // No samples (a target that never ran on a CPU): nothing to fold.
        Ok(report
            .sampled_stacks()
            .map(|profile| Artifact::new(FILE_NAME, profile.folded()))
            .into_iter()
            .collect())
    }
}
