//! Addresses to function names, with blazesym: kernel addresses through
//! kallsyms, user addresses through the live process's mappings.

use anyhow::{Context as _, Result};
use blazesym::symbolize::source::{Kernel, Process, Source};
use blazesym::symbolize::{Input, Symbolized};
use blazesym::{MaybeDefault, Pid};

use crate::kernel::kallsyms::{CodeAt, Kallsyms};

/// A kernel address in no function kallsyms knows.
pub const UNKNOWN_KERNEL: &str = "[unknown kernel]";

pub struct Symbolizer {
    inner: blazesym::symbolize::Symbolizer,
    kernel: Source<'static>,
}

impl Symbolizer {
    pub fn new() -> Self {
        let kernel = Kernel {
            kallsyms: MaybeDefault::Default,
            // Names only: a vmlinux with DWARF is rarely installed, and
            // looking for one on every run costs time for nothing.
            vmlinux: MaybeDefault::None,
            ..Default::default()
        };
        Self {
            inner: blazesym::symbolize::Symbolizer::new(),
            kernel: Source::Kernel(kernel),
        }
    }

    /// Kernel frames by name. blazesym names an address after the
    /// nearest symbol before it, data included; `kallsyms` (read while our
    /// programs were loaded) says what the code there really is, so a
    /// frame is a function, `[bpf] name` (a BPF program or trampoline) or
    /// `[unknown kernel]`, never the name of data.
    pub fn kernel(&self, ips: &[u64], kallsyms: &Kallsyms) -> Result<Vec<String>> {
        let symbols = self
            .inner
            .symbolize(&self.kernel, Input::AbsAddr(ips))
            .context("symbolizing kernel addresses")?;
        Ok(ips
            .iter()
            .zip(&symbols)
            .map(|(&ip, symbol)| match kallsyms.code_at(ip) {
                CodeAt::Function(name) => match symbol {
                    Symbolized::Sym(sym) => sym.name.to_string(),
                    Symbolized::Unknown(_) => name.to_owned(),
                },
                CodeAt::Bpf(name) => format!("[bpf] {name}"),
                CodeAt::Unknown => UNKNOWN_KERNEL.to_owned(),
            })
            .collect())
    }

    /// User frames of `tgid`; `[unknown]` for each when the process is gone.
    pub fn user(&self, tgid: u32, ips: &[u64]) -> Vec<String> {
        let source = Source::Process(Process::new(Pid::from(tgid)));
        match self.inner.symbolize(&source, Input::AbsAddr(ips)) {
            Ok(symbols) => symbols.iter().map(|s| name_of(s, "[unknown]")).collect(),
            Err(_) => ips.iter().map(|_| "[unknown]".to_owned()).collect(),
        }
    }
}

fn name_of(symbol: &Symbolized, unknown: &str) -> String {
    match symbol {
        Symbolized::Sym(sym) => sym.name.to_string(),
        Symbolized::Unknown(_) => unknown.to_owned(),
    }
}
