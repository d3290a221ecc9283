//! `stacks.folded`: the sampled stacks in Brendan Gregg's folded format,
//! for inferno, flamegraph.pl and speedscope.

use anyhow::Result;

use super::{Artifact, Format};
use crate::model::Report;

pub const FILE_NAME: &str = "stacks.folded";
/// The same stacks with each kernel leaf as `function+0xoffset`.
pub const OFFSETS_FILE_NAME: &str = "stacks-offsets.folded";

pub struct FoldedStacks;

impl Format for FoldedStacks {
    fn render(&self, report: &Report, _earlier: &[Artifact]) -> Result<Vec<Artifact>> {
        // No samples (a target that never ran on a CPU): nothing to fold.
        Ok(report
            .sampled_stacks()
            .map(|profile| {
                vec![
                    Artifact::new(FILE_NAME, profile.folded()),
                    Artifact::new(OFFSETS_FILE_NAME, profile.folded_with_leaf_offsets()),
                ]
            })
            .unwrap_or_default())
    }
}
