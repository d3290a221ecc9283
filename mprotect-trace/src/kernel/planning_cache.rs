//! What planning reads of a kernel, for the names a run needs, kept by the
//! kernel's GNU build id in `$XDG_CACHE_HOME/mprotect-trace/kernel-facts/`.
//!
//! Reading all of /proc/kallsyms and parsing all of the kernel's BTF is
//! most of the start where function probes attach (about 2 s of 2.8 under
//! TCG). One kernel binary's facts never change: KASLR moves all its text
//! by one offset, so a function's offset from `_text`, its signature and
//! whether ftrace traces it are known for good once read. Functions of
//! modules (loaded anywhere) are never kept.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::identity;
use super::kallsyms::Kallsyms;
use crate::model::Capabilities;
use crate::probes::plan::{KernelFacts, KnownFunction};

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    names: BTreeMap<String, NameFacts>,
}

#[derive(Clone, Serialize, Deserialize)]
struct NameFacts {
    /// The function and its compiler copies: (symbol, start, end), as
    /// offsets from `_text`.
    functions: Vec<(String, u64, Option<u64>)>,
    #[serde(flatten)]
    known: KnownFunction,
}

/// The kernel's symbols and facts a plan reads: from the cache (only the
/// names asked for) when `facts.cached()`.
pub struct Planning {
    pub kallsyms: Kallsyms,
    pub facts: KernelFacts,
}

/// Where this kernel's facts are kept, and where its text starts now.
struct Place {
    path: PathBuf,
    text: u64,
}

fn place() -> Option<Place> {
    let build_id = identity::running_build_id()?;
    let text = identity::text_address()?;
    let path = crate::lab::cache_home()
        .join("kernel-facts")
        .join(format!("{build_id}.json"));
    Some(Place { path, text })
}

fn read(place: &Place) -> Option<CacheFile> {
    serde_json::from_slice(&std::fs::read(&place.path).ok()?).ok()
}

/// The facts of `names`: from the cache when it holds them all, else read
/// from the kernel in full.
pub fn load(caps: &Capabilities, names: &[String]) -> Result<Planning> {
    if caps.btf.available
        && let Some(place) = place()
        && let Some(file) = read(&place)
        && let Some(known) = names
            .iter()
            .map(|name| file.names.get(name))
            .collect::<Option<Vec<_>>>()
    {
        let mut functions = Vec::new();
        let mut known_functions = std::collections::HashMap::new();
        for (name, facts) in names.iter().zip(known) {
            functions.extend(
                facts
                    .functions
                    .iter()
                    .map(|(symbol, start, end)| (symbol.clone(), place.text + start, end.map(|end| place.text + end))),
            );
            known_functions.insert(name.clone(), facts.known.clone());
        }
        return Ok(Planning {
            kallsyms: Kallsyms::from_functions(&functions),
            facts: KernelFacts::known(known_functions),
        });
    }
    Ok(Planning {
        kallsyms: Kallsyms::load()?,
        facts: KernelFacts::load(caps)?,
    })
}

impl Planning {
    /// Read from the kernel in full if the cache lacked any of `names`.
    pub fn ensure(&mut self, caps: &Capabilities, names: &[String]) -> Result<()> {
        if names.iter().any(|name| !self.facts.covers(name)) {
            self.kallsyms = Kallsyms::load()?;
            self.facts = KernelFacts::load(caps)?;
        }
        Ok(())
    }

    /// Keeps the facts of `names` for the next run on this kernel, once a
    /// plan has used them. Best effort: a cache that cannot be written
    /// only costs the next run its time.
    pub fn store(&self, names: &[String]) {
        // Without BTF every signature reads as absent: not this kernel's fact.
        if self.facts.complete() {
            let _ = self.try_store(names);
        }
    }

    fn try_store(&self, names: &[String]) -> Result<()> {
        let place = place().context("no build id or _text")?;
        let mut file = read(&place).unwrap_or_default();
        for name in names {
            let Some(traceable) = self.facts.traceable(name) else {
                return Ok(());
            };
            let functions = self.kallsyms.functions_of(name);
            // Module functions are not at a fixed offset from _text.
            if functions
                .iter()
                .any(|(_, start, _)| *start < place.text || self.kallsyms.in_module(*start))
            {
                continue;
            }
            let functions = functions
                .into_iter()
                .map(|(symbol, start, end)| (symbol, start - place.text, end.map(|end| end - place.text)))
                .collect();
            let known = KnownFunction {
                signature: self.facts.signature(name)?,
                traceable,
            };
            file.names.insert(name.clone(), NameFacts { functions, known });
        }
        let dir = place.path.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(dir)?;
        // Whole or not at all: a run reading it meanwhile sees the old file.
        let temporary = place.path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&temporary, serde_json::to_vec(&file)?)?;
        std::fs::rename(&temporary, &place.path)?;
        Ok(())
    }
}
