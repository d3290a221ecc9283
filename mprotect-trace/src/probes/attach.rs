//! Attaches the planned probes: the syscall tracepoints, then each function
//! target on its own slot's programs of its planned backend, falling back
//! to the next backend when the kernel refuses the attach. Every link
//! belongs to the `Ebpf` object, so dropping it detaches all.

use std::cell::OnceCell;

use anyhow::{Context as _, Result, bail};
use aya::Ebpf;
use aya::maps::Array;
use aya::programs::TracePoint;
use mprotect_trace_common::programs::{
    SYS_ENTER_MPROTECT, SYS_ENTER_MPROTECT_EMPTY, SYS_EXIT_MPROTECT, SYS_EXIT_MPROTECT_EMPTY,
};
use mprotect_trace_common::{FUNCTION_SLOTS, SlotConfig, maps};

use super::backend::{self, AttachContext, FunctionBackend, inlined};
use super::plan::{self, BackendChoice, TargetPlan};
use crate::kernel::btf::FunctionSignature;
use crate::kernel::capabilities::error_chain;
use crate::kernel::kallsyms::Kallsyms;
use crate::model::{Attachment, Backend, Capabilities, InlinedFunction, InlinedProbe, ProbedInstance, ValueLocation};
use crate::targets::Returns;

/// Attaches the syscall tracepoint programs, or with `empty` programs that
/// do nothing (the floor of the overhead benchmark).
pub fn attach_syscall_tracepoints(ebpf: &mut Ebpf, empty: bool) -> Result<()> {
    let programs = if empty {
        [SYS_ENTER_MPROTECT_EMPTY, SYS_EXIT_MPROTECT_EMPTY]
    } else {
        [SYS_ENTER_MPROTECT, SYS_EXIT_MPROTECT]
    };
    for (name, tracepoint) in programs.into_iter().zip([SYS_ENTER_MPROTECT, SYS_EXIT_MPROTECT]) {
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

/// What `--split-by` splits the function targets' records by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitBy {
    /// `change_protection`'s `cp_flags`: mprotect's calls, NUMA hinting's
    /// (MM_CP_PROT_NUMA) and userfaultfd's apart.
    CpFlags,
}

impl SplitBy {
    pub fn name(self) -> &'static str {
        match self {
            Self::CpFlags => "cp_flags",
        }
    }

    /// The function whose parameter of that name carries the value.
    fn source(self) -> &'static str {
        match self {
            Self::CpFlags => "change_protection",
        }
    }
}

/// The kernel's `MM_CP_*` flags of `change_protection()` (include/linux/mm.h,
/// the same bits since v6.0), by bit.
const CP_FLAGS: [&str; 4] = [
    "MM_CP_TRY_CHANGE_WRITABLE",
    "MM_CP_PROT_NUMA",
    "MM_CP_UFFD_WP",
    "MM_CP_UFFD_WP_RESOLVE",
];

/// A split value by name: "MM_CP_PROT_NUMA", "MM_CP_UFFD_WP|MM_CP_UFFD_WP_RESOLVE",
/// "0" for none; the last value holds every value past the named bits.
pub fn split_value_name(by: SplitBy, value: u32) -> String {
    match by {
        SplitBy::CpFlags if value >= mprotect_trace_common::SPLIT_VALUES - 1 => "other bits".to_owned(),
        SplitBy::CpFlags if value == 0 => "0".to_owned(),
        SplitBy::CpFlags => CP_FLAGS
            .iter()
            .enumerate()
            .filter(|(bit, _)| value & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join("|"),
    }
}

/// Attaches every target whose plan has a backend; the others are
/// reported with their plan's reason. A refused attach falls back to the
/// next backend `choice` allows. With `split`, every probed target's
/// records are also kept apart by the split value.
pub fn attach_functions(
    ebpf: &mut Ebpf,
    kallsyms: &Kallsyms,
    plans: &[TargetPlan],
    caps: &Capabilities,
    choice: BackendChoice,
    split: Option<SplitBy>,
    kernel_btf: &OnceCell<aya::Btf>,
) -> Result<Vec<Attachment>> {
    let probed = plans.iter().filter(|plan| plan.backend != Backend::None).count();
    if probed > FUNCTION_SLOTS as usize {
        bail!("{probed} function targets can be probed here but at most {FUNCTION_SLOTS} at once: drop some --probe");
    }
    let mut context = AttachContext {
        ebpf,
        kallsyms,
        btf: kernel_btf,
    };
    let mut next_slot = 0;
    let mut attachments = Vec::new();
    // Each probed slot's config, its plan and backend: the split sets
    // them again once every slot is known.
    let mut configs: Vec<(u32, SlotConfig, &TargetPlan, &'static dyn FunctionBackend)> = Vec::new();
    for plan in plans {
        let mut attachment = Attachment {
            name: plan.name.clone(),
            role: plan.role,
            backend: plan.backend,
            reason: plan.reason.clone(),
            slot: None,
            nr_ptes_source: None,
            pages_source: None,
            return_source: None,
            inlined: None,
            split_source: None,
        };
        let Some(planned) = backend::of_kind(plan.backend) else {
            attachments.push(attachment);
            continue;
        };
        let slot = next_slot;
        next_slot += 1;
        match attach_with_fallback(&mut context, slot, plan, planned, caps, choice) {
            Ok(Attached {
                backend: used,
                description,
                refused,
            }) => {
                attachment.reason = if !refused.is_empty() {
                    let refused: Vec<&str> = refused.iter().map(|kind| kind.label()).collect();
                    format!(
                        "{description} (the {} attach failed on {})",
                        refused.join(" and "),
                        plan.name
                    )
                } else if description != used.pair() {
                    // "call-site kprobes (notrace: ...)" -> "call sites in X (7) (notrace: ...)".
                    plan.reason.replacen(used.pair(), &description, 1)
                } else {
                    plan.reason.clone()
                };
                attachment.backend = used.kind();
                attachment.slot = Some(slot);
                configs.push((slot, slot_config(plan, used, &mut attachment), plan, used));
            }
            Err(err) => {
                attachment.backend = Backend::None;
                attachment.reason = format!(
                    "no function probe: attaching failed: {err:#} ({} is likely notrace, noinstr or on the \
                     kprobe blacklist)",
                    plan.name
                );
            }
        }
        attachments.push(attachment);
    }
    if let Some(split) = split {
        split_configs(split, &mut configs, &mut attachments)?;
    }
    let mut map: Array<_, SlotConfig> = Array::try_from(
        context
            .ebpf
            .map_mut(maps::SLOT_CONFIG)
            .context("the eBPF object has no SLOT_CONFIG")?,
    )?;
    for (slot, config, _, _) in &configs {
        map.set(*slot, *config, 0).context("writing SLOT_CONFIG")?;
    }
    Ok(attachments)
}

/// Sets every probed slot to split its records by the value the split's
/// source function reads at its entry: the source must be probed at its
/// entry (fentry or kprobe) with that parameter readable, or the run is
/// refused (before it starts: the caller drops every probe).
fn split_configs(
    split: SplitBy,
    configs: &mut [(u32, SlotConfig, &TargetPlan, &'static dyn FunctionBackend)],
    attachments: &mut [Attachment],
) -> Result<()> {
    let found = configs.iter().find_map(|(slot, _, plan, backend)| {
        if plan.name != split.source() || !matches!(backend.kind(), Backend::Fentry | Backend::Kprobe) {
            return None;
        }
        let signature = plan.signature.as_ref()?;
        let (index, _) = distributed_parameter(signature, &[split.name()])?;
        backend.reads_argument(index).then_some((*slot, index))
    });
    let Some((source, index)) = found else {
        let how = attachments.iter().find(|a| a.name == split.source()).map_or_else(
            || "not a target".to_owned(),
            |a| match a.backend {
                Backend::None => "not probed".to_owned(),
                backend => format!("probed by {}", backend.label()),
            },
        );
        bail!(
            "--split-by {0} needs {1} probed at its entry (fentry or kprobe) with its {0} parameter in BTF; here {1} is {how}: see `mprotect-trace doctor`",
            split.name(),
            split.source()
        );
    };
    for (slot, config, _, _) in configs.iter_mut() {
        config.split_source = source as i32;
        if *slot == source {
            config.split_arg = index as i32;
        }
    }
    for attachment in attachments.iter_mut().filter(|a| a.slot.is_some()) {
        attachment.split_source = Some(format!(
            "{}({}), argument {index}, of the {} call it is in",
            split.source(),
            split.name(),
            split.source()
        ));
    }
    Ok(())
}

/// What attaching one target did.
struct Attached {
    backend: &'static dyn FunctionBackend,
    /// What the backend says it attached: "call sites in change_pte_range (7)".
    description: String,
    /// The backends the kernel refused before it.
    refused: Vec<Backend>,
}

/// Attaches `plan` with its planned backend, then with each later one
/// that could probe it; the error names every backend's refusal.
fn attach_with_fallback(
    context: &mut AttachContext,
    slot: u32,
    plan: &TargetPlan,
    planned: &'static dyn FunctionBackend,
    caps: &Capabilities,
    choice: BackendChoice,
) -> Result<Attached> {
    let mut refusals = Vec::new();
    let mut candidate = Some(planned);
    while let Some(backend) = candidate {
        match backend.attach(context, slot, &plan.facts()) {
            Ok(description) => {
                return Ok(Attached {
                    backend,
                    description,
                    refused: refusals.iter().map(|(kind, _)| *kind).collect(),
                });
            }
            Err(err) => refusals.push((backend.kind(), err)),
        }
        candidate = plan::choose(&plan.facts(), caps, choice, Some(backend.kind())).0;
    }
    match refusals.as_slice() {
        [(_, only)] => Err(anyhow::anyhow!("{only:#}")),
        all => Err(anyhow::anyhow!(
            "{}",
            all.iter()
                .map(|(kind, err)| format!("{}: {err:#}", kind.label()))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// Which values the slot records besides latency: the target table says
/// what to distribute and what the return value is; BTF says where.
fn slot_config(plan: &TargetPlan, backend: &dyn FunctionBackend, attachment: &mut Attachment) -> SlotConfig {
    let mut config = SlotConfig::default();
    if backend.kind() == Backend::Inlined {
        // Each instance's nr is in its own site entry, not the slot's.
        if let Some(function) = &plan.inlined {
            let probe = inlined_probe(attachment.slot.unwrap_or(0), function);
            let readable = function
                .instances
                .iter()
                .filter_map(inlined::nr_parameter)
                .find(|(_, location)| !matches!(location, ValueLocation::Unavailable { .. }));
            if let Some((name, _)) = readable {
                attachment.nr_ptes_source = Some(format!(
                    "{}({name}), where DWARF locates it at each inlined instance",
                    plan.name
                ));
            }
            attachment.inlined = Some(probe);
        }
        return config;
    }
    if let Some((index, parameter)) = plan
        .signature
        .as_ref()
        .and_then(|signature| distributed_parameter(signature, plan.target.distribute))
        .filter(|(index, _)| backend.reads_argument(*index))
    {
        config.nr_ptes_arg = index as i32;
        let at = if backend.kind() == Backend::CallSite {
            ", read at its call sites"
        } else {
            ""
        };
        attachment.nr_ptes_source = Some(format!("{}({parameter}), argument {index}{at}", plan.name));
    }
    // Call sites see no return; an integer return needs the signature to say so.
    let returns_integer = plan.signature.as_ref().is_none_or(|s| s.returns_integer);
    if backend.kind() != Backend::CallSite && returns_integer {
        let source = Some(format!("{} return value", plan.name));
        match plan.target.returns {
            Returns::Pages => attachment.pages_source = source,
            Returns::Count => attachment.return_source = source,
            Returns::Nothing => return config,
        }
        config.records_return = 1;
    }
    config
}

/// What the report says of an inlined target's instances; their calls
/// and latency are filled in from the maps at the end.
fn inlined_probe(slot: u32, function: &InlinedFunction) -> InlinedProbe {
    InlinedProbe {
        inlined_in: function.places(),
        instances: function
            .instances
            .iter()
            .enumerate()
            .map(|(index, instance)| ProbedInstance {
                at: format!("{}+{:#x}", instance.symbol, instance.offset),
                chain: instance.chain.clone(),
                calls: None,
                nr: match inlined::nr_parameter(instance) {
                    Some((name, location)) => format!("{name}: {}", location.describe()),
                    None => "no nr_ptes parameter".to_owned(),
                },
                exit: instance
                    .exit_offset
                    .map(|exit| format!("{}+{exit:#x}", instance.symbol)),
                no_latency: instance.no_latency.clone(),
                counter: inlined::counter_index(slot, index),
            })
            .collect(),
        latency: None,
    }
}

/// The first parameter whose name is in `names`: found by name, never by position.
pub fn distributed_parameter<'a>(signature: &'a FunctionSignature, names: &[&str]) -> Option<(usize, &'a str)> {
    signature
        .parameters
        .iter()
        .enumerate()
        .find(|(_, p)| names.contains(&p.name.as_str()))
        .map(|(index, p)| (index, p.name.as_str()))
}
