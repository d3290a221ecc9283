//! fentry/fexit: BPF trampolines. The cheapest probes, with typed
//! arguments; they need the kernel's BTF and a kernel that allows them.

use anyhow::{Context as _, Result, anyhow};
use aya::programs::{FEntry, FExit};
use mprotect_trace_common::programs::{FENTRY_CAPABILITY_CHECK, FENTRY_SLOTS, FEXIT_SLOTS};

use super::{AttachContext, CheckContext, FunctionBackend, TargetFacts};
use crate::ebpf_object::program_mut;
use crate::kernel::capabilities::{PROBE_CHECK_FUNCTION, error_chain};
use crate::model::{Backend, Check};

pub struct Fentry;

/// bpf_get_func_arg reads any of the (up to 12) arguments the trampoline saved.
const MAX_ARGUMENTS: usize = 12;

/// The kernel's BTF, read on first use and kept for the other targets.
fn kernel_btf(cell: &std::cell::OnceCell<aya::Btf>) -> Result<&aya::Btf> {
    if cell.get().is_none() {
        let btf = aya::Btf::from_sys_fs().context("reading the kernel's BTF for fentry")?;
        let _ = cell.set(btf);
    }
    cell.get().context("the kernel's BTF")
}

impl FunctionBackend for Fentry {
    fn kind(&self) -> Backend {
        Backend::Fentry
    }

    fn capability(&self) -> &'static str {
        "fentry"
    }

    fn pair(&self) -> &'static str {
        "fentry/fexit"
    }

    fn needs(&self) -> &'static str {
        "BTF and /proc/kallsyms"
    }

    fn first_choice_reason(&self) -> &'static str {
        "fentry/fexit: fentry programs load here and BTF has the signature"
    }

    fn check(&self, context: &mut CheckContext) -> Check {
        if !context.btf.available {
            return Check::no(
                "needs BTF",
                format!("fentry needs the kernel's BTF: {}", context.btf.detail),
            );
        }
        let mut attempt = || -> Result<(), String> {
            let btf = kernel_btf(context.kernel_btf).map_err(|e| format!("{e:#}"))?;
            let program: &mut FEntry =
                program_mut(context.ebpf, FENTRY_CAPABILITY_CHECK).map_err(|e| format!("{e:#}"))?;
            program.load(PROBE_CHECK_FUNCTION, btf).map_err(|e| error_chain(&e))?;
            let link = program.attach().map_err(|e| error_chain(&e))?;
            program.detach(link).map_err(|e| error_chain(&e))?;
            Ok(())
        };
        let outcome = attempt();
        // The check's program is not one the run uses: out of the kernel.
        if let Ok(program) = program_mut::<FEntry>(context.ebpf, FENTRY_CAPABILITY_CHECK) {
            let _ = program.unload();
        }
        match outcome {
            Ok(()) => Check::yes(format!(
                "a fentry program loaded and attached on {PROBE_CHECK_FUNCTION}"
            )),
            Err(err) => {
                let eperm = err.contains("Operation not permitted");
                Check::no(
                    if eperm { "refused (EPERM)" } else { "refused" },
                    format!(
                        "the kernel refused a fentry program on {PROBE_CHECK_FUNCTION}: {err}{}",
                        if eperm {
                            " (BPF trampolines are disabled on this kernel)"
                        } else {
                            ""
                        }
                    ),
                )
            }
        }
    }

    fn cannot_probe(&self, target: &TargetFacts) -> Option<&'static str> {
        if !target.in_btf {
            Some("not in BTF")
        } else if !target.in_kallsyms {
            Some("not in /proc/kallsyms")
        } else if target.signature.is_some_and(|s| s.returns_struct) {
            Some("it returns a struct, which the verifier refuses for fentry/fexit")
        } else if target.traceable == Some(false) {
            Some("notrace: not in available_filter_functions")
        } else {
            None
        }
    }

    fn reads_argument(&self, index: usize) -> bool {
        index < MAX_ARGUMENTS
    }

    fn programs(&self, slot: u32) -> Vec<&'static str> {
        vec![FENTRY_SLOTS[slot as usize], FEXIT_SLOTS[slot as usize]]
    }

    fn attach(&self, context: &mut AttachContext, slot: u32, target: &TargetFacts) -> Result<String> {
        let (entry_name, exit_name) = (FENTRY_SLOTS[slot as usize], FEXIT_SLOTS[slot as usize]);
        let function = target.name;
        let btf = kernel_btf(context.btf)?;
        let entry: &mut FEntry = program_mut(context.ebpf, entry_name)?;
        entry.load(function, btf).map_err(|e| anyhow!("{}", error_chain(&e)))?;
        entry.attach().map_err(|e| anyhow!("{}", error_chain(&e)))?;
        let exit: &mut FExit = program_mut(context.ebpf, exit_name)?;
        exit.load(function, btf).map_err(|e| anyhow!("{}", error_chain(&e)))?;
        exit.attach().map_err(|e| anyhow!("{}", error_chain(&e)))?;
        Ok(self.pair().to_owned())
    }
}
