//! Which backend traces each target on this kernel, and why: fentry/fexit
//! when it loads, else kprobe/kretprobe, else no function probe (the
//! syscall tracepoints and stack sampling still cover it).

use serde::Serialize;

use super::targets::Role;
use crate::kernel::btf::FunctionSignature;
use crate::kernel::capabilities::Capabilities;
use crate::kernel::kallsyms::Kallsyms;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

pub fn plan_target(
    name: &str,
    role: Role,
    caps: &Capabilities,
    kallsyms: &Kallsyms,
    signature: Option<FunctionSignature>,
) -> TargetPlan {
    let in_kallsyms = kallsyms.contains(name);
    let variants = kallsyms.variants_of(name);
    let in_btf = signature.is_some();
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
    } else if caps.fentry.available && in_btf && in_kallsyms {
        (
            Backend::Fentry,
            "fentry/fexit: fentry programs load here and BTF has the signature".to_owned(),
        )
    } else if caps.kprobes.available && in_kallsyms {
        let why_not_fentry = if caps.fentry.available {
            "not in BTF".to_owned()
        } else {
            format!("fentry {}", caps.fentry.summary)
        };
        (
            Backend::Kprobe,
            format!("kprobe/kretprobe ({why_not_fentry})"),
        )
    } else if !in_kallsyms {
        (
            Backend::None,
            format!(
                "no function probe: {name} is in BTF but not in /proc/kallsyms (inlined everywhere)"
            ),
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
