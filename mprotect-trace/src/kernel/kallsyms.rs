//! Function symbols of the running kernel, from `/proc/kallsyms`.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};

/// Names of the kernel's text symbols (functions), modules included.
pub struct Kallsyms {
    functions: BTreeSet<String>,
}

impl Kallsyms {
    pub fn load() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/kallsyms").context("reading /proc/kallsyms")?;
        Ok(Self::parse(&text))
    }

    /// Parses lines of `address type name [module]`, keeping `t`/`T` symbols.
    pub fn parse(text: &str) -> Self {
        let functions = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (_address, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
                matches!(kind, "t" | "T").then(|| name.to_owned())
            })
            .collect();
        Self { functions }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains(name)
    }

    /// Up to `count` function names most like `name` (Jaro-Winkler), best first.
    pub fn closest(&self, name: &str, count: usize) -> Vec<String> {
        let mut scored: Vec<(f64, &String)> = self
            .functions
            .iter()
            .map(|symbol| (strsim::jaro_winkler(name, symbol), symbol))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(count)
            .map(|(_, symbol)| symbol.clone())
            .collect()
    }

    /// Compiler-made copies such as `name.isra.0` or `name.constprop.0`:
    /// the function exists, but a probe on `name` itself would not fire.
    pub fn variants_of(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.");
        self.functions
            .range(prefix.clone()..)
            .take_while(|symbol| symbol.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _stext
ffffffff81234560 t change_pte_range
ffffffff81234900 T change_protection
ffffffff81234a00 t mprotect_fixup.isra.0
ffffffff82000000 D some_data
ffffffffc0001000 t helper\t[kvm]
";

    #[test]
    fn keeps_function_symbols_only() {
        let symbols = Kallsyms::parse(SAMPLE);
        assert!(symbols.contains("change_pte_range"));
        assert!(symbols.contains("change_protection"));
        assert!(symbols.contains("helper"));
        assert!(!symbols.contains("some_data"));
        assert!(!symbols.contains("mprotect_fixup"));
        assert_eq!(symbols.variants_of("mprotect_fixup"), ["mprotect_fixup.isra.0"]);
        assert!(symbols.variants_of("change_protection").is_empty());
        assert_eq!(
            symbols.closest("change_protectoin", 2),
            ["change_protection", "change_pte_range"]
        );
    }
}
