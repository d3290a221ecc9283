//! Call-site probes: a kprobe on every instruction that calls the target,
//! inside the callers the target table names. For functions the kernel
//! refuses to trace (an out-of-line copy of a `static inline` is notrace)
//! whose callers are traceable. Counts calls and reads arguments from the
//! calling-convention registers; there is no exit, so no latency.

use anyhow::{Context as _, Result, anyhow, bail};
use aya::programs::KProbe;
use mprotect_trace_common::programs::CALL_SITE_SLOTS;

use super::{AttachContext, CheckContext, FunctionBackend, TargetFacts};
use crate::kernel::call_sites;
use crate::kernel::capabilities::{PROBE_CHECK_FUNCTION, error_chain};
use crate::kernel::kcore::{self, Kcore};
use crate::model::{Backend, Check};

pub struct CallSite;

/// Slot `slot`'s call-site program, loaded once.
fn program(context: &mut aya::Ebpf, slot: u32) -> Result<&mut KProbe> {
    super::loaded_kprobe(context, CALL_SITE_SLOTS[slot as usize])
}

impl FunctionBackend for CallSite {
    fn kind(&self) -> Backend {
        Backend::CallSite
    }

    fn capability(&self) -> &'static str {
        "call_sites"
    }

    fn pair(&self) -> &'static str {
        "call-site kprobes"
    }

    fn needs(&self) -> &'static str {
        "/proc/kallsyms, called from a caller in the target table"
    }

    fn first_choice_reason(&self) -> &'static str {
        "call-site kprobes: the function's callers are traceable"
    }

    fn check(&self, context: &mut CheckContext) -> Check {
        if std::env::consts::ARCH != "x86_64" {
            return Check::no(
                "x86-64 only",
                "call sites are found by decoding x86-64 instructions; this is not x86-64",
            );
        }
        if let Err(err) = Kcore::open() {
            return Check::no("no /proc/kcore", format!("{err:#}"));
        }
        let outcome = super::kprobe_check(context, CALL_SITE_SLOTS[0]);
        match outcome {
            Ok(()) => Check::yes(format!(
                "{} is readable and a kprobe attached on {PROBE_CHECK_FUNCTION}",
                kcore::PATH
            )),
            Err(err) => Check::no("attach failed", format!("attaching a kprobe failed: {err}")),
        }
    }

    fn cannot_probe(&self, target: &TargetFacts) -> Option<&'static str> {
        if !target.in_kallsyms {
            Some("not in /proc/kallsyms")
        } else if target.callers.is_empty() {
            Some("no callers known")
        } else {
            None
        }
    }

    fn reads_argument(&self, index: usize) -> bool {
        index < super::REGISTER_ARGUMENTS
    }

    fn programs(&self, slot: u32) -> Vec<&'static str> {
        vec![CALL_SITE_SLOTS[slot as usize]]
    }

    fn attach(&self, context: &mut AttachContext, slot: u32, target: &TargetFacts) -> Result<String> {
        let kcore = Kcore::open()?;
        let mut found = Vec::new();
        let mut refusals = Vec::new();
        for caller in target.callers {
            match call_sites::find(context.kallsyms, &kcore, caller, target.name) {
                Ok(offsets) if !offsets.is_empty() => found.push((*caller, offsets)),
                Ok(_) => refusals.push(format!("no call to it in {caller}")),
                Err(err) => refusals.push(format!("{err:#}")),
            }
        }
        if found.is_empty() {
            bail!("no call site to probe: {}", refusals.join("; "));
        }
        let program = program(context.ebpf, slot)?;
        for (caller, offsets) in &found {
            for offset in offsets {
                program
                    .attach(*caller, *offset)
                    .map_err(|e| anyhow!("{}", error_chain(&e)))
                    .with_context(|| format!("a kprobe at {caller}+{offset:#x}"))?;
            }
        }
        let places: Vec<String> = found
            .iter()
            .map(|(caller, offsets)| format!("{caller} ({})", offsets.len()))
            .collect();
        Ok(format!("call sites in {}", places.join(", ")))
    }
}
