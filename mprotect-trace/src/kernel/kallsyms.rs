//! Function symbols of the running kernel, from `/proc/kallsyms`.

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{Context as _, Result};

/// The kernel's text symbols (functions), modules included.
pub struct Kallsyms {
    /// Each name's start addresses: static functions may share a name.
    functions: BTreeMap<String, Vec<u64>>,
    /// Every text symbol's start, sorted: a function ends where the next
    /// symbol starts.
    starts: Vec<u64>,
}

impl Kallsyms {
    pub fn load() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/kallsyms").context("reading /proc/kallsyms")?;
        Ok(Self::parse(&text))
    }

    /// Parses lines of `address type name [module]`, keeping `t`/`T` symbols.
    pub fn parse(text: &str) -> Self {
        let mut functions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut starts = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(address), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            if !matches!(kind, "t" | "T") {
                continue;
            }
            let address = u64::from_str_radix(address, 16).unwrap_or(0);
            functions.entry(name.to_owned()).or_default().push(address);
            starts.push(address);
        }
        starts.sort_unstable();
        starts.dedup();
        Self { functions, starts }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// The start addresses of the functions called `name`; empty when
    /// there is none, and all zero when kallsyms hides addresses
    /// (`kernel.kptr_restrict`).
    pub fn addresses(&self, name: &str) -> &[u64] {
        self.functions.get(name).map_or(&[], Vec::as_slice)
    }

    /// The text of the function that starts at `start`: up to the next symbol.
    pub fn extent(&self, start: u64) -> Option<Range<u64>> {
        let index = self.starts.binary_search(&start).ok()?;
        let end = *self.starts.get(index + 1)?;
        Some(start..end)
    }

    /// Up to `count` function names most like `name` (Jaro-Winkler), best first.
    pub fn closest(&self, name: &str, count: usize) -> Vec<String> {
        let mut scored: Vec<(f64, &String)> = self
            .functions
            .keys()
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
            .map(|(symbol, _)| symbol)
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
        assert_eq!(symbols.addresses("change_pte_range"), [0xffffffff81234560]);
        assert_eq!(
            symbols.extent(0xffffffff81234560),
            Some(0xffffffff81234560..0xffffffff81234900)
        );
        assert_eq!(symbols.extent(0xffffffff81234561), None);
        assert_eq!(
            symbols.closest("change_protectoin", 2),
            ["change_protection", "change_pte_range"]
        );
    }
}
