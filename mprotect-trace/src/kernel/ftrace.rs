//! The functions ftrace can trace: tracefs's `available_filter_functions`.
//! A function missing there is notrace (or `noinstr`): fentry needs its
//! ftrace call site, and kprobes refuse it too (unless the kernel was built
//! with CONFIG_KPROBE_EVENTS_ON_NOTRACE).

use std::collections::HashSet;
use std::path::Path;

use super::mounts::TRACEFS;

pub const FILE: &str = "available_filter_functions";

pub struct TraceableFunctions {
    names: HashSet<String>,
}

impl TraceableFunctions {
    /// The list, or `None` when tracefs does not offer it (not mounted).
    pub fn load() -> Option<Self> {
        let text = std::fs::read_to_string(Path::new(TRACEFS).join(FILE)).ok()?;
        Some(Self::parse(&text))
    }

    /// Lines of `name` or `name [module]`.
    pub fn parse(text: &str) -> Self {
        let names = text
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        Self { names }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_modules() {
        let list = TraceableFunctions::parse("change_protection\nvm_normal_page\nkvm_mmu_page_fault [kvm]\n");
        assert!(list.contains("change_protection"));
        assert!(list.contains("kvm_mmu_page_fault"));
        assert!(!list.contains("modify_prot_commit_ptes"));
    }
}
