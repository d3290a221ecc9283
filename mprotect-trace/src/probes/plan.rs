//! Which backend traces each target on this kernel, and why: the first
//! backend in preference order that this kernel takes and that can probe
//! the function, else no function probe (the syscall tracepoints and
//! stack sampling still cover it).

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::backend::{self, FunctionBackend, TargetFacts};
use crate::kernel::btf::{FunctionSignature, KernelBtf};
use crate::kernel::ftrace::TraceableFunctions;
use crate::kernel::kallsyms::Kallsyms;
use crate::model::{Backend, Capabilities, InlineSites, InlinedFunction, Role};
use crate::targets::{self, Target};

/// `--backend`: let the tool choose, or insist on one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The first backend that works, per target.
    #[default]
    Auto,
    Only(Backend),
    /// `--backend none`: no function probe at all; the syscall
    /// tracepoints and sampling only, so no probe's cost is in the times.
    NoFunctions,
}

impl BackendChoice {
    fn allows(self, backend: Backend) -> bool {
        match self {
            Self::Auto => true,
            Self::Only(only) => only == backend,
            Self::NoFunctions => false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetPlan {
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub target: Target,
    pub in_kallsyms: bool,
    /// Compiler copies such as `name.isra.0`, which a probe on `name` misses.
    pub kallsyms_variants: Vec<String>,
    pub in_btf: bool,
    /// Whether ftrace can trace it (`None`: tracefs did not say).
    pub traceable: Option<bool>,
    pub signature: Option<FunctionSignature>,
    /// Its inlined instances in this kernel, when DWARF was read and it has some.
    pub inlined: Option<InlinedFunction>,
    pub backend: Backend,
    pub reason: String,
}

impl TargetPlan {
    pub fn facts(&self) -> TargetFacts<'_> {
        TargetFacts {
            name: &self.name,
            callers: self.target.callers,
            in_kallsyms: self.in_kallsyms,
            in_btf: self.in_btf,
            traceable: self.traceable,
            signature: self.signature.as_ref(),
            inlined: self.inlined.as_ref(),
        }
    }
}

/// What planning reads of the kernel besides its symbols: its BTF (when
/// user space can read it) and the functions ftrace can trace. Read once
/// per run: parsing BTF is most of planning's time.
pub struct KernelFacts {
    source: FactsSource,
}

enum FactsSource {
    /// Read from the kernel: its BTF parsed in full (`None`: user space
    /// cannot read it) and ftrace's list (`None`: tracefs does not say).
    Kernel {
        btf: Option<KernelBtf>,
        traceable: Option<TraceableFunctions>,
    },
    /// The names a run needs, from `planning_cache`.
    Known(HashMap<String, KnownFunction>),
}

/// What planning needs of one function name besides its symbols.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KnownFunction {
    pub signature: Option<FunctionSignature>,
    pub traceable: bool,
}

impl KernelFacts {
    pub fn load(caps: &Capabilities) -> Result<Self> {
        Ok(Self {
            source: FactsSource::Kernel {
                btf: caps.btf.available.then(KernelBtf::load).transpose()?,
                traceable: TraceableFunctions::load(),
            },
        })
    }

    /// Facts of a few names only (from `planning_cache`).
    pub fn known(functions: HashMap<String, KnownFunction>) -> Self {
        Self {
            source: FactsSource::Known(functions),
        }
    }

    /// Read from the cache, not from the kernel.
    pub fn cached(&self) -> bool {
        matches!(self.source, FactsSource::Known(_))
    }

    /// Read from the kernel with its BTF and ftrace's list: facts of the
    /// kernel a cache may keep (without BTF every signature reads as absent).
    pub fn complete(&self) -> bool {
        matches!(
            self.source,
            FactsSource::Kernel {
                btf: Some(_),
                traceable: Some(_)
            }
        )
    }

    /// Whether these facts answer for `name` (read from the kernel, they
    /// answer for every name).
    pub fn covers(&self, name: &str) -> bool {
        match &self.source {
            FactsSource::Kernel { .. } => true,
            FactsSource::Known(known) => known.contains_key(name),
        }
    }

    /// `name`'s BTF signature; `None` when it has none (or BTF is unreadable).
    pub fn signature(&self, name: &str) -> Result<Option<FunctionSignature>> {
        match &self.source {
            FactsSource::Kernel { btf: Some(btf), .. } => {
                btf.function(name).with_context(|| format!("reading the BTF of {name}"))
            }
            FactsSource::Kernel { btf: None, .. } => Ok(None),
            FactsSource::Known(known) => known
                .get(name)
                .map(|function| function.signature.clone())
                .with_context(|| format!("{name} is not among the cached kernel facts")),
        }
    }

    /// Whether ftrace can trace `name`; `None`: tracefs does not say.
    pub fn traceable(&self, name: &str) -> Option<bool> {
        match &self.source {
            FactsSource::Kernel { traceable, .. } => traceable.as_ref().map(|list| list.contains(name)),
            FactsSource::Known(known) => known.get(name).map(|function| function.traceable),
        }
    }
}

/// Plans the built-in targets (or the `--only` names) and the user's
/// `--probe` names on this kernel; `inline_sites`, when this kernel's
/// DWARF was read, places the ones inlined everywhere.
pub fn plan_targets(
    only: &[String],
    user_probes: &[String],
    caps: &Capabilities,
    kallsyms: &Kallsyms,
    facts: &KernelFacts,
    choice: BackendChoice,
    inline_sites: Option<&InlineSites>,
) -> Result<Vec<TargetPlan>> {
    targets::chosen(only, user_probes)
        .into_iter()
        .map(|target| {
            let signature = facts.signature(&target.name)?;
            let inlined = inline_sites.and_then(|sites| sites.function(&target.name)).cloned();
            let traceable = facts.traceable(&target.name);
            let plan = plan_target(target, caps, kallsyms, traceable, signature, inlined, choice);
            // A built-in target may be inlined away; a name the user typed
            // that exists nowhere is most likely a typo.
            if plan.role == Role::User
                && !plan.in_kallsyms
                && !plan.in_btf
                && plan.kallsyms_variants.is_empty()
                && plan.inlined.is_none()
            {
                let flag = if only.contains(&plan.name) { "--only" } else { "--probe" };
                anyhow::bail!(
                    "unknown kernel function {} ({flag}): did you mean {}?",
                    plan.name,
                    kallsyms.closest(&plan.name, 3).join(", ")
                );
            }
            Ok(plan)
        })
        .collect()
}

/// Whether this kernel takes any function-probe backend at all.
pub fn function_probes_possible(caps: &Capabilities) -> bool {
    backend::ALL.iter().any(|b| caps.backend(b.capability()).available)
}

/// Why no target gets a function probe here, whatever the target:
/// `--backend none`, or no backend this kernel takes (each one's reason).
/// `None` when some backend works. The one reason `run` and `doctor` both
/// give every target then, whether or not it exists in this kernel (its
/// absence is not what stops it; doctor lists it beside).
fn no_backend_anywhere(caps: &Capabilities, choice: BackendChoice) -> Option<String> {
    if choice == BackendChoice::NoFunctions {
        return Some("no function probe: --backend none".to_owned());
    }
    if function_probes_possible(caps) {
        return None;
    }
    let why: Vec<String> = backend::ALL
        .iter()
        .map(|b| format!("{} {}", b.capability(), caps.backend(b.capability()).summary))
        .collect();
    Some(format!("no function probe: {}", why.join(", ")))
}

/// The plans when no function-probe backend works here: every built-in
/// target gets none, with each backend's reason. Nothing is read (neither
/// kallsyms nor BTF), so such a run attaches fast; `in_kallsyms` and
/// `in_btf` are then unknown and read false.
pub fn without_function_probes(caps: &Capabilities, choice: BackendChoice) -> Vec<TargetPlan> {
    let reason = no_backend_anywhere(caps, choice).unwrap_or_default();
    targets::with_user_probes(&[])
        .into_iter()
        .map(|target| TargetPlan {
            name: target.name.to_string(),
            role: target.role,
            target,
            in_kallsyms: false,
            kallsyms_variants: Vec::new(),
            in_btf: false,
            traceable: None,
            signature: None,
            inlined: None,
            backend: Backend::None,
            reason: reason.clone(),
        })
        .collect()
}

/// Refuses a forced backend that cannot work on this kernel at all.
pub fn check_choice(choice: BackendChoice, caps: &Capabilities) -> Result<()> {
    let BackendChoice::Only(kind) = choice else {
        return Ok(());
    };
    let check = backend::of_kind(kind).map(|b| caps.backend(b.capability()));
    match check {
        Some(check) if check.available => Ok(()),
        Some(check) => anyhow::bail!(
            "--backend {} cannot work here: {} (try --backend auto)",
            kind.label(),
            check.detail
        ),
        None => anyhow::bail!("--backend {} is not a function-probe backend", kind.label()),
    }
}

/// The first backend that `choice` allows, this kernel takes and that can
/// probe `facts`, after `after` (a planned backend whose attach failed);
/// with the reasons the ones before it were passed over.
pub fn choose(
    facts: &TargetFacts,
    caps: &Capabilities,
    choice: BackendChoice,
    after: Option<Backend>,
) -> (Option<&'static dyn FunctionBackend>, Vec<String>) {
    let mut passed_over = Vec::new();
    let candidates = backend::ALL
        .iter()
        .copied()
        .skip_while(|b| after.is_some_and(|after| b.kind() != after))
        .skip(usize::from(after.is_some()));
    for candidate in candidates {
        let kind = candidate.kind();
        if !choice.allows(kind) {
            if let BackendChoice::Only(only) = choice {
                passed_over.push(format!("--backend {}", only.label()));
            }
            continue;
        }
        let check = caps.backend(candidate.capability());
        if !check.available {
            passed_over.push(format!("{} {}", kind.label(), check.summary));
            continue;
        }
        if let Some(why) = candidate.cannot_probe(facts) {
            passed_over.push(why.to_owned());
            continue;
        }
        return (Some(candidate), passed_over);
    }
    (None, passed_over)
}

pub fn plan_target(
    target: Target,
    caps: &Capabilities,
    kallsyms: &Kallsyms,
    traceable: Option<bool>,
    signature: Option<FunctionSignature>,
    inlined: Option<InlinedFunction>,
    choice: BackendChoice,
) -> TargetPlan {
    let name = target.name.to_string();
    let in_kallsyms = kallsyms.contains(&name);
    let variants = kallsyms.variants_of(&name);
    let in_btf = signature.is_some();
    let facts = TargetFacts {
        name: &name,
        callers: target.callers,
        in_kallsyms,
        in_btf,
        traceable,
        signature: signature.as_ref(),
        inlined: inlined.as_ref(),
    };
    let (backend, reason) = if let Some(why) = no_backend_anywhere(caps, choice) {
        (Backend::None, why)
    } else if !in_kallsyms && !in_btf && inlined.is_none() {
        let copies = if variants.is_empty() {
            String::new()
        } else {
            format!("; only compiler copies exist: {}", variants.join(", "))
        };
        (
            Backend::None,
            format!(
                "no function probe: {name} is in neither /proc/kallsyms nor BTF (inlined or absent in this kernel){copies}"
            ),
        )
    } else {
        match choose(&facts, caps, choice, None) {
            (Some(chosen), passed_over) => {
                let reason = match passed_over.first() {
                    // The others pass over a function with no symbol for
                    // want of one; the first choice's reason says it all.
                    _ if chosen.kind() == Backend::Inlined => chosen.first_choice_reason().to_owned(),
                    None => chosen.first_choice_reason().to_owned(),
                    Some(why) => format!("{} ({why})", chosen.pair()),
                };
                (chosen.kind(), reason)
            }
            (None, _) => (Backend::None, no_backend_reason(&facts, caps, choice)),
        }
    };
    TargetPlan {
        name,
        role: target.role,
        target,
        in_kallsyms,
        kallsyms_variants: variants,
        in_btf,
        traceable,
        signature,
        inlined,
        backend,
        reason,
    }
}

/// Why no backend can probe a function that exists: each backend's
/// reason, the kernel's ("fentry refused (EPERM)") or the function's
/// ("kprobe: notrace").
fn no_backend_reason(facts: &TargetFacts, caps: &Capabilities, choice: BackendChoice) -> String {
    let name = facts.name;
    if let BackendChoice::Only(only) = choice {
        let forced = backend::of_kind(only);
        if let Some(why) = forced
            .and_then(|b| b.cannot_probe(facts))
            .filter(|_| facts.in_kallsyms && facts.in_btf)
        {
            return format!(
                "no function probe: --backend {} cannot probe {name} ({why})",
                only.label()
            );
        }
        let needs = forced.map_or("", |b| b.needs());
        let notrace = if facts.traceable == Some(false) {
            " (it is notrace: not in available_filter_functions)"
        } else {
            ""
        };
        return format!(
            "no function probe: --backend {} needs {name} in {needs}{notrace}",
            only.label()
        );
    }
    if !facts.in_kallsyms {
        return format!("no function probe: {name} is in BTF but not in /proc/kallsyms (inlined everywhere)");
    }
    let findings: Vec<String> = backend::ALL
        .iter()
        .map(|b| {
            let check = caps.backend(b.capability());
            match b.cannot_probe(facts) {
                _ if !check.available => format!("{} {}", b.capability(), check.summary),
                Some(why) => format!("{}: {why}", b.kind().label()),
                None => format!("{}: usable", b.kind().label()),
            }
        })
        .collect();
    format!("no function probe: {}", findings.join(", "))
}
