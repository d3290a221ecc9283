//! The run model's profile of a run's samples, with the built-in targets
//! that have no symbol of their own attributed to their nearest caller.

use crate::kernel::kallsyms::Kallsyms;
use crate::model::{Profile, SampleCounters, SampledStack};
use crate::targets;

/// Builds the profile; `kallsyms` says which targets are inlined here.
pub fn profile(
    hz: u64,
    cpus: usize,
    max_stacks: u32,
    counters: SampleCounters,
    stacks: Vec<SampledStack>,
    kallsyms: &Kallsyms,
) -> Profile {
    let inlined = targets::BUILTIN
        .iter()
        .filter(|target| !kallsyms.contains(&target.name))
        .map(|target| {
            let caller = target.callers.iter().find(|caller| kallsyms.contains(caller));
            (target.name.to_string(), caller.map(|c| c.to_string()))
        })
        .collect();
    Profile::new(hz, cpus, max_stacks, counters, stacks, inlined)
}
