//! kprobe/kretprobe: works on any function in /proc/kallsyms that is not
//! notrace or blacklisted; arguments come from the registers.

use anyhow::{Result, anyhow};
use aya::programs::KProbe;
use mprotect_trace_common::programs::{KPROBE_CAPABILITY_CHECK, KPROBE_SLOTS, KRETPROBE_SLOTS};

use super::{AttachContext, CheckContext, FunctionBackend, TargetFacts};
use crate::ebpf_object::program_mut;
use crate::kernel::capabilities::{PROBE_CHECK_FUNCTION, error_chain};
use crate::kernel::mounts;
use crate::model::{Backend, Check};

pub struct Kprobe;

impl FunctionBackend for Kprobe {
    fn kind(&self) -> Backend {
        Backend::Kprobe
    }

    fn capability(&self) -> &'static str {
        "kprobes"
    }

    fn pair(&self) -> &'static str {
        "kprobe/kretprobe"
    }

    fn needs(&self) -> &'static str {
        "/proc/kallsyms"
    }

    fn first_choice_reason(&self) -> &'static str {
        "kprobe/kretprobe: kprobes attach here and the function is in /proc/kallsyms"
    }

    fn check(&self, context: &mut CheckContext) -> Check {
        let pmu = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
        let events = std::path::Path::new(mounts::TRACEFS).join("kprobe_events").exists();
        // Known without loading anything: no kprobe can attach.
        if !pmu && !events {
            return Check::no(
                "not built (no CONFIG_KPROBES)",
                "kernel built without CONFIG_KPROBES: no kprobe PMU in /sys/bus/event_source/devices and no kprobe_events in tracefs",
            );
        }
        let outcome = super::kprobe_check(context, KPROBE_CAPABILITY_CHECK);
        match outcome {
            Ok(()) => Check::yes(format!("a kprobe attached on {PROBE_CHECK_FUNCTION}")),
            Err(err) => Check::no(
                "attach failed",
                format!("attaching a kprobe on {PROBE_CHECK_FUNCTION} failed: {err}"),
            ),
        }
    }

    fn cannot_probe(&self, target: &TargetFacts) -> Option<&'static str> {
        if !target.in_kallsyms {
            Some("not in /proc/kallsyms")
        } else if target.traceable == Some(false) {
            Some("notrace: not in available_filter_functions")
        } else {
            None
        }
    }

    fn reads_argument(&self, index: usize) -> bool {
        index < super::REGISTER_ARGUMENTS
    }

    fn programs(&self, slot: u32) -> Vec<&'static str> {
        vec![KPROBE_SLOTS[slot as usize], KRETPROBE_SLOTS[slot as usize]]
    }

    fn attach(&self, context: &mut AttachContext, slot: u32, target: &TargetFacts) -> Result<String> {
        for name in self.programs(slot) {
            let probe: &mut KProbe = program_mut(context.ebpf, name)?;
            probe.load().map_err(|e| anyhow!("{}", error_chain(&e)))?;
            probe
                .attach(target.name, 0)
                .map_err(|e| anyhow!("{}", error_chain(&e)))?;
        }
        Ok(self.pair().to_owned())
    }
}
