//! Attaches the planned probes: the syscall tracepoints, then each function
//! target on its own slot's fentry/fexit or kprobe/kretprobe programs.
//! Every link belongs to the `Ebpf` object, so dropping it detaches all.

use anyhow::{Context as _, Result, bail};
use aya::maps::Array;
use aya::programs::{FEntry, FExit, KProbe, TracePoint};
use aya::{Btf, Ebpf};
use mprotect_trace_common::{FUNCTION_SLOTS, SlotConfig};
use serde::{Deserialize, Serialize};

use super::plan::{Backend, TargetPlan};
use super::targets::Role;
use crate::kernel::btf::FunctionSignature;
use crate::kernel::capabilities::error_chain;

/// Parameter names that carry "PTEs handled in this step".
const NR_PTES_PARAMETERS: [&str; 2] = ["nr_ptes", "nr"];
/// Functions whose return value is the number of pages they changed.
const RETURNS_PAGES: [&str; 2] = ["change_protection", "change_pte_range"];
/// x86-64 passes the first six arguments in registers, all a kprobe can read.
const KPROBE_REGISTER_ARGS: usize = 6;

/// What was attached for one target, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub role: Role,
    pub backend: Backend,
    pub reason: String,
    pub slot: Option<u32>,
    /// e.g. "prot_commit_flush_ptes(nr_ptes), argument 5".
    pub nr_ptes_source: Option<String>,
    /// e.g. "change_protection return value".
    pub pages_source: Option<String>,
}

/// Attaches the syscall tracepoint programs, or with `empty` programs that
/// do nothing (the floor of the overhead benchmark).
pub fn attach_syscall_tracepoints(ebpf: &mut Ebpf, empty: bool) -> Result<()> {
    for tracepoint in ["sys_enter_mprotect", "sys_exit_mprotect"] {
        let name = if empty {
            format!("{tracepoint}_empty")
        } else {
            tracepoint.to_owned()
        };
        let name = name.as_str();
        let program: &mut TracePoint = crate::ebpf_object::program_mut(ebpf, name)?;
        // The capability check may have loaded it already.
        if program.fd().is_err() {
            program
                .load()
                .map_err(|e| anyhow::anyhow!("loading {name}: {}", error_chain(&e)))?;
        }
        program
            .attach("syscalls", tracepoint)
            .map_err(|e| anyhow::anyhow!("attaching to syscalls:{tracepoint}: {}", error_chain(&e)))?;
    }
    Ok(())
}

/// Attaches every target whose plan has a backend; the others are
/// reported with their plan's reason. `kprobe_fallback`: whether a failed
/// fentry attach may fall back to a kprobe (true unless fentry is forced).
pub fn attach_functions(ebpf: &mut Ebpf, plans: &[TargetPlan], kprobe_fallback: bool) -> Result<Vec<Attachment>> {
    let probed = plans.iter().filter(|plan| plan.backend != Backend::None).count();
    if probed > FUNCTION_SLOTS as usize {
        bail!("{probed} function targets can be probed here but at most {FUNCTION_SLOTS} at once: drop some --probe");
    }
    let btf = if plans.iter().any(|plan| plan.backend == Backend::Fentry) {
        Some(Btf::from_sys_fs().context("reading the kernel's BTF for fentry")?)
    } else {
        None
    };
    let mut next_slot = 0;
    let mut attachments = Vec::new();
    for plan in plans {
        let mut attachment = Attachment {
            name: plan.name.clone(),
            role: plan.role,
            backend: plan.backend,
            reason: plan.reason.clone(),
            slot: None,
            nr_ptes_source: None,
            pages_source: None,
        };
        if plan.backend == Backend::None {
            attachments.push(attachment);
            continue;
        }
        let slot = next_slot;
        next_slot += 1;
        attachment.slot = Some(slot);
        let result = match (plan.backend, &btf) {
            (Backend::Fentry, Some(btf)) => match attach_fentry(ebpf, slot, &plan.name, btf) {
                Ok(()) => Ok(Backend::Fentry),
                Err(fentry_err) if kprobe_fallback && plan.in_kallsyms => attach_kprobe(ebpf, slot, &plan.name)
                    .map(|()| Backend::Kprobe)
                    .map_err(|kprobe_err| anyhow::anyhow!("fentry: {fentry_err:#}; kprobe: {kprobe_err:#}")),
                Err(err) => Err(err),
            },
            _ => attach_kprobe(ebpf, slot, &plan.name).map(|()| Backend::Kprobe),
        };
        match result {
            Ok(backend) => {
                if backend != plan.backend {
                    attachment.reason = format!("kprobe/kretprobe (the fentry attach failed on {})", plan.name);
                }
                attachment.backend = backend;
                let config = slot_config(plan, backend, &mut attachment);
                let mut configs: Array<_, SlotConfig> = Array::try_from(
                    ebpf.map_mut("SLOT_CONFIG")
                        .context("the eBPF object has no SLOT_CONFIG")?,
                )?;
                configs.set(slot, config, 0).context("writing SLOT_CONFIG")?;
            }
            Err(err) => {
                attachment.backend = Backend::None;
                attachment.slot = None;
                attachment.reason = format!(
                    "no function probe: attaching failed: {err:#} ({} is likely notrace, noinstr or on the \
                     kprobe blacklist)",
                    plan.name
                );
            }
        }
        attachments.push(attachment);
    }
    Ok(attachments)
}

/// Which values the slot records besides latency, from the BTF signature.
fn slot_config(plan: &TargetPlan, backend: Backend, attachment: &mut Attachment) -> SlotConfig {
    let mut config = SlotConfig::default();
    if let Some((index, parameter)) = plan.signature.as_ref().and_then(nr_ptes_parameter) {
        if backend == Backend::Kprobe && index >= KPROBE_REGISTER_ARGS {
            attachment.nr_ptes_source = None;
        } else {
            config.nr_ptes_arg = index as i32;
            attachment.nr_ptes_source = Some(format!("{}({parameter}), argument {index}", plan.name));
        }
    }
    if RETURNS_PAGES.contains(&plan.name.as_str()) {
        config.ret_is_pages = 1;
        attachment.pages_source = Some(format!("{} return value", plan.name));
    }
    config
}

/// The parameter that counts PTEs per step, found by name, never by position.
pub fn nr_ptes_parameter(signature: &FunctionSignature) -> Option<(usize, &str)> {
    signature
        .parameters
        .iter()
        .enumerate()
        .find(|(_, p)| NR_PTES_PARAMETERS.contains(&p.name.as_str()))
        .map(|(index, p)| (index, p.name.as_str()))
}

fn attach_fentry(ebpf: &mut Ebpf, slot: u32, function: &str, btf: &Btf) -> Result<()> {
    let entry: &mut FEntry = crate::ebpf_object::program_mut(ebpf, &format!("fentry_slot_{slot}"))?;
    entry
        .load(function, btf)
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
    entry.attach().map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
    let exit: &mut FExit = crate::ebpf_object::program_mut(ebpf, &format!("fexit_slot_{slot}"))?;
    exit.load(function, btf)
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
    exit.attach().map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
    Ok(())
}

fn attach_kprobe(ebpf: &mut Ebpf, slot: u32, function: &str) -> Result<()> {
    for name in [format!("kprobe_slot_{slot}"), format!("kretprobe_slot_{slot}")] {
        let probe: &mut KProbe = crate::ebpf_object::program_mut(ebpf, &name)?;
        probe.load().map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
        probe
            .attach(function, 0)
            .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
    }
    Ok(())
}
