//! Function symbols of the running kernel, from `/proc/kallsyms`.

use std::io::BufRead as _;
use std::ops::Range;

use anyhow::{Context as _, Result};

/// The kernel's text symbols (functions), modules and BPF included.
/// Compact: about 120k symbols take a few MB (every name is stored once,
/// in one string), since a sampled run holds them while it symbolizes.
/// `Default`: no symbol at all.
#[derive(Default)]
pub struct Kallsyms {
    /// Every symbol's name, one after another.
    names: String,
    /// Every symbol, text or not, sorted by start: a symbol ends where the
    /// next one starts.
    symbols: Vec<Symbol>,
    /// Indices into `symbols` of the functions, sorted by name: static
    /// functions may share a name.
    functions: Vec<u32>,
}

struct Symbol {
    start: u64,
    /// Its name: `names[name_at..name_at + name_len]`.
    name_at: u32,
    name_len: u16,
    kind: SymbolKind,
    /// Listed with a module (`[kvm]`, `[bpf]`): loaded anywhere.
    in_module: bool,
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
        let file = std::fs::File::open("/proc/kallsyms").context("reading /proc/kallsyms")?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut symbols = Self::default();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).context("reading /proc/kallsyms")? == 0 {
                break;
            }
            symbols.add_line(&line);
        }
        Ok(symbols.sorted())
    }

    /// Parses lines of `address type name [module]`.
    pub fn parse(text: &str) -> Self {
        let mut symbols = Self::default();
        for line in text.lines() {
            symbols.add_line(line);
        }
        symbols.sorted()
    }

    fn add_line(&mut self, line: &str) {
        let mut fields = line.split_whitespace();
        let (Some(address), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
            return;
        };
        let (Ok(name_at), Ok(name_len)) = (u32::try_from(self.names.len()), u16::try_from(name.len())) else {
            return;
        };
        let module = fields.next();
        let kind = match (kind, module) {
            (_, Some("[bpf]")) => SymbolKind::Bpf,
            ("t" | "T", _) => SymbolKind::Function,
            _ => SymbolKind::Other,
        };
        self.names.push_str(name);
        self.symbols.push(Symbol {
            start: u64::from_str_radix(address, 16).unwrap_or(0),
            name_at,
            name_len,
            kind,
            in_module: module.is_some(),
        });
    }

    fn sorted(mut self) -> Self {
        self.symbols.sort_by_key(|symbol| symbol.start);
        self.names.shrink_to_fit();
        self.symbols.shrink_to_fit();
        let mut functions: Vec<u32> = (0..self.symbols.len() as u32)
            .filter(|&i| self.symbols[i as usize].kind == SymbolKind::Function)
            .collect();
        functions.sort_by(|&a, &b| self.name(a).cmp(self.name(b)));
        self.functions = functions;
        self
    }

    fn name(&self, index: u32) -> &str {
        let symbol = &self.symbols[index as usize];
        let at = symbol.name_at as usize;
        &self.names[at..at + symbol.name_len as usize]
    }

    /// The functions called exactly `name`, as indices into `symbols`.
    fn named(&self, name: &str) -> &[u32] {
        let from = self.functions.partition_point(|&i| self.name(i) < name);
        let to = self.functions.partition_point(|&i| self.name(i) <= name);
        &self.functions[from..to]
    }

    /// What the code at `address` is: the symbol it falls in, when that
    /// is a function or a BPF program; never the name of data.
    pub fn code_at(&self, address: u64) -> CodeAt<'_> {
        let index = self.symbols.partition_point(|symbol| symbol.start <= address);
        let Some(start) = index.checked_sub(1).map(|last| self.symbols[last].start) else {
            return CodeAt::Unknown;
        };
        // Several symbols may share a start: any function among them names it.
        let at_start = (0..index).rev().take_while(|&i| self.symbols[i].start == start);
        let mut best = CodeAt::Unknown;
        for i in at_start {
            match self.symbols[i].kind {
                SymbolKind::Function => return CodeAt::Function(self.name(i as u32)),
                SymbolKind::Bpf => best = CodeAt::Bpf(self.name(i as u32)),
                SymbolKind::Other => {}
            }
        }
        best
    }

    /// The offset of `address` in the function it falls in (`sym+0x239`),
    /// when it falls in a function.
    pub fn function_offset(&self, address: u64) -> Option<u64> {
        let index = self.symbols.partition_point(|symbol| symbol.start <= address);
        let start = self.symbols.get(index.checked_sub(1)?)?.start;
        matches!(self.code_at(address), CodeAt::Function(_)).then(|| address - start)
    }

    pub fn contains(&self, name: &str) -> bool {
        !self.named(name).is_empty()
    }

    /// The start addresses of the functions called `name`; empty when
    /// there is none, and all zero when kallsyms hides addresses
    /// (`kernel.kptr_restrict`).
    pub fn addresses(&self, name: &str) -> Vec<u64> {
        self.named(name)
            .iter()
            .map(|&i| self.symbols[i as usize].start)
            .collect()
    }

    /// Where the one function called `name` starts: a probe inside it
    /// needs one, and addresses kallsyms does not hide.
    pub fn unique_start(&self, name: &str) -> anyhow::Result<u64> {
        match self.addresses(name).as_slice() {
            [] => anyhow::bail!("{name} is not in /proc/kallsyms"),
            [0] => anyhow::bail!("/proc/kallsyms hides addresses here (kernel.kptr_restrict): run as root"),
            [start] => Ok(*start),
            many => anyhow::bail!(
                "{name} names {} functions in /proc/kallsyms: a probe in it is ambiguous",
                many.len()
            ),
        }
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
        let mut names: Vec<&str> = self.functions.iter().map(|&i| self.name(i)).collect();
        names.dedup();
        let mut scored: Vec<(f64, &str)> = names
            .into_iter()
            .map(|symbol| (strsim::jaro_winkler(name, symbol), symbol))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(count)
            .map(|(_, symbol)| symbol.to_owned())
            .collect()
    }

    /// The functions called `name` or a compiler copy of it (`name.isra.0`),
    /// each with where it starts and, when known, where it ends: what a
    /// plan reads of them, for `from_functions` to rebuild.
    pub fn functions_of(&self, name: &str) -> Vec<(String, u64, Option<u64>)> {
        std::iter::once(name.to_owned())
            .chain(self.variants_of(name))
            .flat_map(|symbol| {
                self.addresses(&symbol)
                    .into_iter()
                    .map(move |start| (symbol.clone(), start, self.extent(start).map(|range| range.end)))
            })
            .collect()
    }

    /// Whether a function starting at `start` belongs to a module.
    pub fn in_module(&self, start: u64) -> bool {
        let from = self.symbols.partition_point(|symbol| symbol.start < start);
        self.symbols[from..]
            .iter()
            .take_while(|symbol| symbol.start == start)
            .any(|symbol| symbol.kind == SymbolKind::Function && symbol.in_module)
    }

    /// Symbols holding just these functions (name, start, end): a symbol
    /// with no name marks each end, so `extent` still knows it.
    pub fn from_functions(functions: &[(String, u64, Option<u64>)]) -> Self {
        let mut symbols = Self::default();
        for (name, start, end) in functions {
            symbols.add_line(&format!("{start:x} t {name}"));
            if let Some(end) = end {
                symbols.add_line(&format!("{end:x} ? .end"));
            }
        }
        symbols.sorted()
    }

    /// Compiler-made copies such as `name.isra.0` or `name.constprop.0`:
    /// the function exists, but a probe on `name` itself would not fire.
    pub fn variants_of(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.");
        let from = self.functions.partition_point(|&i| self.name(i) < prefix.as_str());
        let mut variants: Vec<String> = self.functions[from..]
            .iter()
            .map(|&i| self.name(i))
            .take_while(|symbol| symbol.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        variants.dedup();
        variants
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
        assert_eq!(symbols.function_offset(0xffffffff81234799), Some(0x239));
        assert_eq!(symbols.function_offset(0xffffffff82000010), None);
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

    #[test]
    fn a_plans_few_functions_rebuild_with_their_extents() {
        let symbols = Kallsyms::parse(SAMPLE);
        let kept: Vec<_> = ["change_pte_range", "mprotect_fixup"]
            .iter()
            .flat_map(|name| symbols.functions_of(name))
            .collect();
        assert_eq!(
            kept,
            [
                (
                    "change_pte_range".to_owned(),
                    0xffffffff81234560,
                    Some(0xffffffff81234900)
                ),
                (
                    "mprotect_fixup.isra.0".to_owned(),
                    0xffffffff81234a00,
                    Some(0xffffffff82000000)
                ),
            ]
        );
        assert!(symbols.in_module(0xffffffffc0001000));
        assert!(!symbols.in_module(0xffffffff81234560));
        let few = Kallsyms::from_functions(&kept);
        assert_eq!(few.addresses("change_pte_range"), [0xffffffff81234560]);
        assert_eq!(
            few.extent(0xffffffff81234560),
            Some(0xffffffff81234560..0xffffffff81234900)
        );
        assert_eq!(few.variants_of("mprotect_fixup"), ["mprotect_fixup.isra.0"]);
        assert!(!few.contains("change_protection"));
        assert!(!few.contains(".end"));
    }
}
