//! Function-probe backends: each one a module behind [`FunctionBackend`],
//! listed once in [`ALL`], in the order the planner prefers them.

mod fentry;
mod kprobe;

use std::cell::OnceCell;

use anyhow::Result;
use aya::Ebpf;

use crate::kernel::btf::FunctionSignature;
use crate::model::{Backend, Check};

/// Every backend, most preferred first. Adding one: its module, and a line here.
pub static ALL: &[&dyn FunctionBackend] = &[&fentry::Fentry, &kprobe::Kprobe];

/// What planning found out about a target on this kernel.
pub struct TargetFacts<'a> {
    pub name: &'a str,
    pub in_kallsyms: bool,
    pub in_btf: bool,
    pub signature: Option<&'a FunctionSignature>,
}

/// What a capability check may use: the object to load a test program
/// from, and whether user space can read the kernel's BTF.
pub struct CheckContext<'a> {
    pub ebpf: &'a mut Ebpf,
    pub btf: &'a Check,
}

/// What attaching may use: the object, and the kernel's BTF, read the
/// first time a backend asks for it.
pub struct AttachContext<'a> {
    pub ebpf: &'a mut Ebpf,
    pub btf: OnceCell<aya::Btf>,
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
    /// Function slot `slot`'s entry and exit programs in the eBPF object.
    fn programs(&self, slot: u32) -> [&'static str; 2];
    /// Loads and attaches slot `slot`'s programs on `function`.
    fn attach(&self, context: &mut AttachContext, slot: u32, function: &str) -> Result<()>;
}

/// The backend reports call `kind`.
pub fn of_kind(kind: Backend) -> Option<&'static dyn FunctionBackend> {
    ALL.iter().copied().find(|backend| backend.kind() == kind)
}

/// `--backend NAME`: the backend named so, by its label.
pub fn named(name: &str) -> Option<&'static dyn FunctionBackend> {
    ALL.iter().copied().find(|backend| backend.kind().label() == name)
}
