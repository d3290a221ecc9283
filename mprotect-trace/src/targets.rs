//! The kernel functions the tool exists for. A target is data: what it
//! is called, why it is traced, where its time shows when it is inlined,
//! which parameter to distribute and what its return value means. Adding
//! one is one entry in [`BUILTIN`].

use std::borrow::Cow;

use crate::model::Role;

/// Parameter names that carry "PTEs handled in this step", looked up by
/// name in the function's BTF signature, never by position.
pub const NR_PTES_PARAMETERS: &[&str] = &["nr_ptes", "nr"];

/// What a target's return value means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    /// The number of pages it changed: recorded as pages per call.
    Pages,
    /// A count (a batch length, say): its distribution is recorded when
    /// BTF says the function returns an integer.
    Count,
    /// Nothing worth recording (an error code, a struct).
    Nothing,
}

#[derive(Clone, Debug)]
pub struct Target {
    pub name: Cow<'static, str>,
    pub role: Role,
    /// Its callers in the kernel source, nearest first: where it is
    /// inlined, its time shows under the first of these with a symbol.
    pub callers: &'static [&'static str],
    /// The parameter whose values are distributed: the first of these
    /// names its signature has.
    pub distribute: &'static [&'static str],
    pub returns: Returns,
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
        name: Cow::Borrowed("change_protection"),
        role: Role::Headline,
        callers: &["mprotect_fixup"],
        distribute: NR_PTES_PARAMETERS,
        returns: Returns::Pages,
    },
    Target {
        name: Cow::Borrowed("change_pte_range"),
        role: Role::Headline,
        callers: PTE_RANGE_CALLERS,
        distribute: NR_PTES_PARAMETERS,
        returns: Returns::Pages,
    },
    Target {
        name: Cow::Borrowed("modify_prot_start_ptes"),
        role: Role::Headline,
        callers: &[
            "change_pte_range",
            "change_pmd_range",
            "change_pud_range",
            "change_p4d_range",
            "change_protection_range",
            "change_protection",
        ],
        distribute: NR_PTES_PARAMETERS,
        returns: Returns::Nothing,
    },
    Target {
        name: Cow::Borrowed("mprotect_fixup"),
        role: Role::Context,
        callers: &["do_mprotect_pkey"],
        distribute: NR_PTES_PARAMETERS,
        returns: Returns::Count,
    },
    // v6.17+: commits `nr` PTEs of one batch. An out-of-line copy of a
    // static inline on x86 (notrace): probed at its call sites there.
    Target {
        name: Cow::Borrowed("modify_prot_commit_ptes"),
        role: Role::Context,
        callers: &["change_pte_range"],
        distribute: NR_PTES_PARAMETERS,
        returns: Returns::Nothing,
    },
    // v6.17+: the length of the PTE batch that starts at a large folio.
    Target {
        name: Cow::Borrowed("folio_pte_batch"),
        role: Role::Context,
        callers: &["change_pte_range"],
        distribute: &[],
        returns: Returns::Count,
    },
];

impl Target {
    /// A function added with `--probe NAME`: its `nr_ptes`/`nr` parameter
    /// and its integer return value are distributed.
    pub fn user(name: &str) -> Self {
        Self {
            name: Cow::Owned(name.to_owned()),
            role: Role::User,
            callers: &[],
            distribute: NR_PTES_PARAMETERS,
            returns: Returns::Count,
        }
    }
}

/// The built-in targets followed by the user's, each name once.
pub fn with_user_probes(user: &[String]) -> Vec<Target> {
    chosen(&[], user)
}

/// `run --only`: just these functions (a built-in name keeps its role and
/// what it records), then the `--probe` names; no `--only`: every built-in
/// target. Each name once.
pub fn chosen(only: &[String], user: &[String]) -> Vec<Target> {
    let mut targets: Vec<Target> = if only.is_empty() { BUILTIN.to_vec() } else { Vec::new() };
    for name in only {
        if !targets.iter().any(|existing| existing.name == name.as_str()) {
            let builtin = BUILTIN.iter().find(|target| target.name == name.as_str());
            targets.push(builtin.cloned().unwrap_or_else(|| Target::user(name)));
        }
    }
    for name in user {
        if !targets.iter().any(|existing| existing.name == name.as_str()) {
            targets.push(Target::user(name));
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|target| target.name.as_ref()).collect()
    }

    #[test]
    fn only_keeps_the_named_functions_with_what_built_ins_record() {
        let every = with_user_probes(&["flush_tlb_mm_range".to_owned()]);
        assert_eq!(every.len(), BUILTIN.len() + 1);
        let only = chosen(
            &["modify_prot_commit_ptes".to_owned(), "flush_tlb_mm_range".to_owned()],
            &["flush_tlb_mm_range".to_owned(), "prot_commit_flush_ptes".to_owned()],
        );
        assert_eq!(
            names(&only),
            [
                "modify_prot_commit_ptes",
                "flush_tlb_mm_range",
                "prot_commit_flush_ptes"
            ]
        );
        let builtin = BUILTIN
            .iter()
            .find(|target| target.name == "modify_prot_commit_ptes")
            .expect("a built-in target");
        assert_eq!(only[0].role, builtin.role);
        assert_eq!(only[0].callers, builtin.callers);
        assert_eq!(only[1].role, Role::User);
    }
}
