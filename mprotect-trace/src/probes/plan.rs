//! Which backend traces each target on this kernel, and why: fentry/fexit
//! when it loads, else kprobe/kretprobe, else no function probe (the
//! syscall tracepoints and stack sampling still cover it).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use anyhow::{Context as _, Result};

use super::targets::{self, Role};
use crate::kernel::btf::{FunctionSignature, KernelBtf};
use crate::kernel::capabilities::Capabilities;
use crate::kernel::kallsyms::Kallsyms;

/// `--backend`: let the tool choose, or insist on one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// fentry/fexit, else kprobe/kretprobe, per target.
    #[default]
    Auto,
    Fentry,
    Kprobe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Fentry,
    Kprobe,
    None,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::None => "none",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetPlan {
    pub name: String,
    pub role: Role,
    pub in_kallsyms: bool,
    /// Compiler copies such as `name.isra.0`, which a probe on `name` misses.
    pub kallsyms_variants: Vec<String>,
    pub in_btf: bool,
    pub signature: Option<FunctionSignature>,
    pub backend: Backend,
    pub reason: String,
}

/// Plans the built-in targets and the user's `--probe` names on this kernel.
pub fn plan_targets(
    user_probes: &[String],
    caps: &Capabilities,
    kallsyms: &Kallsyms,
    choice: BackendChoice,
) -> Result<Vec<TargetPlan>> {
    let btf = if caps.btf.available {
        Some(KernelBtf::load()?)
    } else {
        None
    };
    targets::with_user_probes(user_probes)
        .into_iter()
        .map(|(name, role)| {
            let signature = match &btf {
                Some(btf) => btf
                    .function(&name)
                    .with_context(|| format!("reading the BTF of {name}"))?,
                None => None,
            };
            let plan = plan_target(&name, role, caps, kallsyms, signature, choice);
            // A built-in target may be inlined away; a name the user typed
            // that exists nowhere is most likely a typo.
            if role == Role::User && !plan.in_kallsyms && !plan.in_btf && plan.kallsyms_variants.is_empty() {
                anyhow::bail!(
                    "unknown kernel function {name} (--probe): did you mean {}?",
                    kallsyms.closest(&name, 3).join(", ")
                );
            }
            Ok(plan)
        })
        .collect()
}

/// Refuses a forced backend that cannot work on this kernel at all.
pub fn check_choice(choice: BackendChoice, caps: &Capabilities) -> Result<()> {
    match choice {
        BackendChoice::Fentry if !caps.fentry.available => {
            anyhow::bail!(
                "--backend fentry cannot work here: {} (try --backend auto)",
                caps.fentry.detail
            )
        }
        BackendChoice::Kprobe if !caps.kprobes.available => {
            anyhow::bail!(
                "--backend kprobe cannot work here: {} (try --backend auto)",
                caps.kprobes.detail
            )
        }
        _ => Ok(()),
    }
}

pub fn plan_target(
    name: &str,
    role: Role,
    caps: &Capabilities,
    kallsyms: &Kallsyms,
    signature: Option<FunctionSignature>,
    choice: BackendChoice,
) -> TargetPlan {
    let in_kallsyms = kallsyms.contains(name);
    let variants = kallsyms.variants_of(name);
    let in_btf = signature.is_some();
    let fentry_allowed = choice != BackendChoice::Kprobe;
    let kprobe_allowed = choice != BackendChoice::Fentry;
    let (backend, reason) = if !in_kallsyms && !in_btf {
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
    } else if fentry_allowed && caps.fentry.available && in_btf && in_kallsyms {
        (
            Backend::Fentry,
            "fentry/fexit: fentry programs load here and BTF has the signature".to_owned(),
        )
    } else if kprobe_allowed && caps.kprobes.available && in_kallsyms {
        let why_not_fentry = if !fentry_allowed {
            "--backend kprobe".to_owned()
        } else if caps.fentry.available {
            "not in BTF".to_owned()
        } else {
            format!("fentry {}", caps.fentry.summary)
        };
        (Backend::Kprobe, format!("kprobe/kretprobe ({why_not_fentry})"))
    } else if !fentry_allowed || !kprobe_allowed {
        let forced = if fentry_allowed { "kprobe" } else { "fentry" };
        let missing = if fentry_allowed {
            "/proc/kallsyms"
        } else {
            "BTF and /proc/kallsyms"
        };
        (
            Backend::None,
            format!("no function probe: --backend {forced} needs {name} in {missing}"),
        )
    } else if !in_kallsyms {
        (
            Backend::None,
            format!("no function probe: {name} is in BTF but not in /proc/kallsyms (inlined everywhere)"),
        )
    } else {
        (
            Backend::None,
            format!(
                "no function probe: fentry {}, kprobes {}",
                caps.fentry.summary, caps.kprobes.summary
            ),
        )
    };
    TargetPlan {
        name: name.to_owned(),
        role,
        in_kallsyms,
        kallsyms_variants: variants,
        in_btf,
        signature,
        backend,
        reason,
    }
}
