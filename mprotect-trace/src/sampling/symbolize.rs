//! Addresses to function names, with blazesym: kernel addresses through
//! kallsyms, user addresses through the live process's mappings.

use anyhow::{Context as _, Result};
use blazesym::symbolize::source::{Kernel, Process, Source};
use blazesym::symbolize::{Input, Reason, Symbolized};
use blazesym::{MaybeDefault, Pid};

use crate::kernel::kallsyms::{CodeAt, Kallsyms};
use crate::model::UnknownUser;

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

    /// User frames of `tgid`, and why some read `[unknown]` when they do.
    pub fn user(&self, tgid: u32, ips: &[u64]) -> (Vec<String>, Option<UnknownUser>) {
        let exited = || {
            (
                ips.iter().map(|_| UNKNOWN.to_owned()).collect(),
                Some(UnknownUser::ProcessExited),
            )
        };
        if !std::path::Path::new(&format!("/proc/{tgid}/maps")).exists() {
            return exited();
        }
        let source = Source::Process(Process::new(Pid::from(tgid)));
        let Ok(symbols) = self.inner.symbolize(&source, Input::AbsAddr(ips)) else {
            return exited();
        };
        let mut cause = None;
        let names = symbols
            .iter()
            .map(|symbol| match symbol {
                Symbolized::Sym(sym) => sym.name.to_string(),
                Symbolized::Unknown(reason) => {
                    // An address in no mapping says more than one without
                    // symbols: the walk itself went astray.
                    let this = match reason {
                        Reason::Unmapped => UnknownUser::NoFramePointers,
                        _ => UnknownUser::NoSymbols,
                    };
                    cause = Some(cause.map_or(this, |known: UnknownUser| known.min(this)));
                    UNKNOWN.to_owned()
                }
            })
            .collect();
        (names, cause)
    }
}

/// A user frame that could not be named.
pub const UNKNOWN: &str = "[unknown]";
