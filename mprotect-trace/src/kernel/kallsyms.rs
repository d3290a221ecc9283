//! Function symbols of the running kernel, from `/proc/kallsyms`.

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{Context as _, Result};

/// The kernel's text symbols (functions), modules and BPF included.
/// `Default`: no symbol at all.
#[derive(Default)]
pub struct Kallsyms {
    /// Each function name's start addresses: static functions may share a name.
    functions: BTreeMap<String, Vec<u64>>,
    /// Every symbol, text or not, sorted by start: a symbol ends where the
    /// next one starts.
    symbols: Vec<Symbol>,
}

struct Symbol {
    start: u64,
    kind: SymbolKind,
    name: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SymbolKind {
    Function,
    /// A BPF program or trampoline (kallsyms' `[bpf]` entries).
    Bpf,
    /// Data, or anything else that is not code.
    Other,
}

/// What a kernel text address is.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeAt<'a> {
    Function(&'a str),
    Bpf(&'a str),
    /// Not inside any function kallsyms knows.
    Unknown,
}

impl Kallsyms {
    pub fn load() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/kallsyms").context("reading /proc/kallsyms")?;
        Ok(Self::parse(&text))
    }

    /// Parses lines of `address type name [module]`.
    pub fn parse(text: &str) -> Self {
        let mut functions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut symbols = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(address), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            let start = u64::from_str_radix(address, 16).unwrap_or(0);
            let kind = match (kind, fields.next()) {
                (_, Some("[bpf]")) => SymbolKind::Bpf,
                ("t" | "T", _) => SymbolKind::Function,
                _ => SymbolKind::Other,
            };
            if kind == SymbolKind::Function {
                functions.entry(name.to_owned()).or_default().push(start);
            }
            symbols.push(Symbol {
                start,
                kind,
                name: name.to_owned(),
            });
        }
        symbols.sort_by_key(|symbol| symbol.start);
        Self { functions, symbols }
    }

    /// What the code at `address` is: the symbol it falls in, when that
    /// is a function or a BPF program; never the name of data.
    pub fn code_at(&self, address: u64) -> CodeAt<'_> {
        let index = self.symbols.partition_point(|symbol| symbol.start <= address);
        let Some(start) = index.checked_sub(1).map(|last| self.symbols[last].start) else {
            return CodeAt::Unknown;
        };
        // Several symbols may share a start: any function among them names it.
        let at_start = self.symbols[..index]
            .iter()
            .rev()
            .take_while(|symbol| symbol.start == start);
        let mut best = CodeAt::Unknown;
        for symbol in at_start {
            match symbol.kind {
                SymbolKind::Function => return CodeAt::Function(&symbol.name),
                SymbolKind::Bpf => best = CodeAt::Bpf(&symbol.name),
                SymbolKind::Other => {}
            }
        }
        best
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
        let next = self.symbols.partition_point(|symbol| symbol.start <= start);
        (next > 0 && self.symbols[next - 1].start == start)
            .then(|| self.symbols.get(next).map(|symbol| start..symbol.start))
            .flatten()
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
ffffffffc0002000 t bpf_trampoline_6442491234\t[bpf]
ffffffffc0003000 t bpf_prog_6deef7357e7b4530_sample_stack\t[bpf]
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
            symbols.code_at(0xffffffff81234569),
            CodeAt::Function("change_pte_range")
        );
        // Past the last function, inside data: never named after the data.
        assert_eq!(symbols.code_at(0xffffffff82000010), CodeAt::Unknown);
        assert_eq!(symbols.code_at(0xffffffff80000000), CodeAt::Unknown);
        assert_eq!(
            symbols.code_at(0xffffffffc0002040),
            CodeAt::Bpf("bpf_trampoline_6442491234")
        );
        assert!(!symbols.contains("bpf_trampoline_6442491234"));
        assert_eq!(
            symbols.closest("change_protectoin", 2),
            ["change_protection", "change_pte_range"]
        );
    }
}
