//! What the kernel a run happened on let a BPF tracer do: the findings,
//! as plain data. Finding them is `kernel::capabilities`' job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The outcome of one check: whether it works, and what showed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub available: bool,
    /// A few words, for plans and tables: "refused (EPERM)".
    pub summary: String,
    /// The whole finding, with the error the kernel gave.
    pub detail: String,
}

impl Check {
    pub fn yes(detail: impl Into<String>) -> Self {
        Self {
            available: true,
            summary: "works".into(),
            detail: detail.into(),
        }
    }

    pub fn no(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            available: false,
            summary: summary.into(),
            detail: detail.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub kernel_release: String,
    pub arch: String,
    pub btf: Check,
    pub lockdown: Check,
    pub tracefs: Check,
    pub syscall_tracepoints: Check,
    pub perf_sampling: Check,
    /// One check per function-probe backend, keyed by the backend's
    /// capability name ("fentry", "kprobes"): in the JSON they sit beside
    /// the others, as they always have.
    #[serde(flatten)]
    pub function_backends: BTreeMap<String, Check>,
}

impl Capabilities {
    /// The check of the function-probe backend named `key`; a backend
    /// this report knows nothing of was not available.
    pub fn backend(&self, key: &str) -> Check {
        self.function_backends
            .get(key)
            .cloned()
            .unwrap_or_else(|| Check::no("not checked", format!("{key} was not checked on this kernel")))
    }
}
