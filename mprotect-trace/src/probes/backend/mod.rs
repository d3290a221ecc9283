//! Function-probe backends: each one a module behind [`FunctionBackend`],
//! listed once in [`ALL`], in the order the planner prefers them.

mod call_site;
mod fentry;
pub mod inlined;
mod kprobe;

use std::cell::OnceCell;

use anyhow::Result;
use aya::Ebpf;

use crate::kernel::btf::FunctionSignature;
use crate::kernel::kallsyms::Kallsyms;
use crate::model::{Backend, Check, InlinedFunction};

/// Arguments a kprobe reads from the calling convention's registers (the
/// eBPF side reads the same ones): six on x86-64, eight on arm64.
pub const REGISTER_ARGUMENTS: usize = if cfg!(any(target_arch = "aarch64", target_arch = "powerpc64")) {
    8
} else {
    6
};

/// Every backend, most preferred first. Adding one: its module, and a line here.
pub static ALL: &[&dyn FunctionBackend] = &[
    &fentry::Fentry,
    &kprobe::Kprobe,
    &call_site::CallSite,
    &inlined::Inlined,
];

/// What planning found out about a target on this kernel.
pub struct TargetFacts<'a> {
    pub name: &'a str,
    /// Its callers in the kernel source (the target table's), nearest first.
    pub callers: &'a [&'static str],
    pub in_kallsyms: bool,
    pub in_btf: bool,
    /// Whether ftrace lists it (`None`: tracefs did not say): fentry and
    /// kprobes cannot attach to a function it does not.
    pub traceable: Option<bool>,
    pub signature: Option<&'a FunctionSignature>,
    /// Its inlined instances, when this kernel's DWARF was read.
    pub inlined: Option<&'a InlinedFunction>,
}

/// What a capability check may use: the object to load a test program
/// from, and whether user space can read the kernel's BTF.
pub struct CheckContext<'a> {
    pub ebpf: &'a mut Ebpf,
    pub btf: &'a Check,
    /// The kernel's BTF as aya reads it, parsed by the first check that
    /// needs it and kept for attaching.
    pub kernel_btf: &'a OnceCell<aya::Btf>,
    /// `run`: the first kprobe-based check's outcome, which the others
    /// take (each would load and attach a kprobe on the same function; a
    /// program that then fails to load falls back at attach time).
    /// `None` for doctor, which checks each backend's own program.
    pub kprobe_outcome: Option<&'a mut Option<std::result::Result<(), String>>>,
}

/// What attaching may use: the object, the kernel's symbols, and its BTF,
/// read the first time a backend asks for it.
pub struct AttachContext<'a> {
    pub ebpf: &'a mut Ebpf,
    pub kallsyms: &'a Kallsyms,
    pub btf: &'a OnceCell<aya::Btf>,
}

pub trait FunctionBackend: Sync {
    /// How reports name it.
    fn kind(&self) -> Backend;
    /// Its key in `Capabilities` ("fentry", "kprobes").
    fn capability(&self) -> &'static str;
    /// The probe pair it attaches, as the plan names it: "fentry/fexit".
    fn pair(&self) -> &'static str;
    /// What a target needs for it: "BTF and /proc/kallsyms".
    fn needs(&self) -> &'static str;
    /// The plan's reason when it is the first choice.
    fn first_choice_reason(&self) -> &'static str;
    /// Whether this kernel takes it at all: a real load and attach.
    fn check(&self, context: &mut CheckContext) -> Check;
    /// Why it cannot probe `target` here, in a few words; `None` if it can.
    fn cannot_probe(&self, target: &TargetFacts) -> Option<&'static str>;
    /// Whether its entry program can read argument `index`.
    fn reads_argument(&self, index: usize) -> bool;
    /// Function slot `slot`'s programs in the eBPF object.
    fn programs(&self, slot: u32) -> Vec<&'static str>;
    /// Loads and attaches slot `slot`'s programs for `target`; says what
    /// was attached, as the plan's reason reads: "fentry/fexit",
    /// "call sites in change_pte_range (7)".
    fn attach(&self, context: &mut AttachContext, slot: u32, target: &TargetFacts) -> Result<String>;
}

/// The kprobe program `name`, loaded the first time it is asked for (a
/// program several targets share is loaded once).
fn loaded_kprobe<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::KProbe> {
    let program: &mut aya::programs::KProbe = crate::ebpf_object::program_mut(ebpf, name)?;
    if program.fd().is_err() {
        program
            .load()
            .map_err(|e| anyhow::anyhow!("{}", crate::kernel::capabilities::error_chain(&e)))?;
    }
    Ok(program)
}

/// A capability check: whether kprobe program `name` loads and attaches
/// on the check function. It leaves the program unloaded (a target that
/// uses it loads it again), so a check leaves nothing in the kernel.
fn kprobe_check(context: &mut CheckContext, name: &str) -> std::result::Result<(), String> {
    match &mut context.kprobe_outcome {
        Some(Some(outcome)) => outcome.clone(),
        Some(shared) => {
            let outcome = kprobe_attaches(context.ebpf, name);
            **shared = Some(outcome.clone());
            outcome
        }
        None => kprobe_attaches(context.ebpf, name),
    }
}

fn kprobe_attaches(ebpf: &mut Ebpf, name: &str) -> std::result::Result<(), String> {
    use crate::kernel::capabilities::{PROBE_CHECK_FUNCTION, error_chain};
    let mut attempt = || -> std::result::Result<(), String> {
        let program = loaded_kprobe(ebpf, name).map_err(|e| format!("{e:#}"))?;
        let link = program.attach(PROBE_CHECK_FUNCTION, 0).map_err(|e| error_chain(&e))?;
        program.detach(link).map_err(|e| error_chain(&e))?;
        Ok(())
    };
    let outcome = attempt();
    if let Ok(program) = crate::ebpf_object::program_mut::<aya::programs::KProbe>(ebpf, name) {
        let _ = program.unload();
    }
    outcome
}

/// The backend reports call `kind`.
pub fn of_kind(kind: Backend) -> Option<&'static dyn FunctionBackend> {
    ALL.iter().copied().find(|backend| backend.kind() == kind)
}

/// `--backend NAME`: the backend named so, by its label.
pub fn named(name: &str) -> Option<&'static dyn FunctionBackend> {
    ALL.iter().copied().find(|backend| backend.kind().label() == name)
}
