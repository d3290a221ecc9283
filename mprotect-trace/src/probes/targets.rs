//! The kernel functions the tool exists for. A target is data: adding one
//! is one line in [`BUILTIN`].

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// One of the functions a regression is attributed to.
    Headline,
    /// Around the headline functions; gives their share a denominator.
    Context,
    /// Added with `--probe NAME`.
    User,
}

#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub name: &'static str,
    pub role: Role,
    /// Its callers in the kernel source, nearest first: where it is
    /// inlined, its time shows under the first of these with a symbol.
    pub callers: &'static [&'static str],
}

/// change_pte_range's callers; the page-table walk above it is often inlined.
const PTE_RANGE_CALLERS: &[&str] = &[
    "change_pmd_range",
    "change_pud_range",
    "change_p4d_range",
    "change_protection_range",
    "change_protection",
];

pub const BUILTIN: &[Target] = &[
    Target {
        name: "change_protection",
        role: Role::Headline,
        callers: &["mprotect_fixup"],
    },
    Target {
        name: "change_pte_range",
        role: Role::Headline,
        callers: PTE_RANGE_CALLERS,
    },
    Target {
        name: "modify_prot_start_ptes",
        role: Role::Headline,
        callers: &[
            "change_pte_range",
            "change_pmd_range",
            "change_pud_range",
            "change_p4d_range",
            "change_protection_range",
            "change_protection",
        ],
    },
    Target {
        name: "mprotect_fixup",
        role: Role::Context,
        callers: &["do_mprotect_pkey"],
    },
];

/// The built-in targets followed by the user's, each name once.
pub fn with_user_probes(user: &[String]) -> Vec<(String, Role)> {
    let mut targets: Vec<(String, Role)> = BUILTIN.iter().map(|t| (t.name.to_owned(), t.role)).collect();
    for name in user {
        if !targets.iter().any(|(existing, _)| existing == name) {
            targets.push((name.clone(), Role::User));
        }
    }
    targets
}
