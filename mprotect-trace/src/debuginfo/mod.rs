//! The kernel's debug info for a saved run: a DWARF `vmlinux` is accepted
//! only when its GNU build id is the one the run recorded, so a report is
//! never symbolized with another kernel's lines.

pub mod inline_sites;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{CodeInfo, Input, Symbolized, Symbolizer};
use object::{Object as _, ObjectSymbol as _, ReadCache};

use crate::model::{DebugInfoUsed, Profile, Report, SampledStack};

/// A vmlinux whose build id matched a run's kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmlinux {
    pub path: PathBuf,
    pub build_id: String,
}

/// The GNU build id of an ELF file, as lowercase hex; read lazily, so a
/// 400 MB vmlinux is not read whole for it.
pub fn build_id(path: &Path) -> Result<Option<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let cache = ReadCache::new(file);
    let elf =
        object::File::parse(&cache).map_err(|err| anyhow::anyhow!("{} is not an ELF file: {err}", path.display()))?;
    let id = elf
        .build_id()
        .map_err(|err| anyhow::anyhow!("reading the build id of {}: {err}", path.display()))?;
    Ok(id.map(|bytes| bytes.iter().map(|byte| format!("{byte:02x}")).collect()))
}

/// Where distributions and kernel builds leave a kernel's DWARF vmlinux.
pub fn usual_places(release: &str) -> [PathBuf; 4] {
    [
        PathBuf::from(format!("/usr/lib/debug/boot/vmlinux-{release}")),
        PathBuf::from(format!("/usr/lib/debug/lib/modules/{release}/vmlinux")),
        PathBuf::from(format!("/lib/modules/{release}/build/vmlinux")),
        PathBuf::from(format!("/boot/vmlinux-{release}")),
    ]
}

/// The running kernel's vmlinux found in the usual places by its build
/// id; a file there of another build is passed over, and said so.
pub fn find_for(report: &Report) -> Option<Vmlinux> {
    let wanted = report.kernel_identity.as_ref()?.build_id.clone()?;
    let (found, passed_over) = in_usual_places(&report.kernel_release, &wanted);
    for note in passed_over {
        crate::output::stderr_line(&format!("note: {note}: not used"));
    }
    found
}

/// The vmlinux of kernel `release` with build id `wanted` in the usual
/// places, and why each other file there was passed over.
pub fn in_usual_places(release: &str, wanted: &str) -> (Option<Vmlinux>, Vec<String>) {
    let mut passed_over = Vec::new();
    for path in usual_places(release) {
        if !path.is_file() {
            continue;
        }
        match build_id(&path) {
            Ok(Some(id)) if id == wanted => return (Some(Vmlinux { path, build_id: id }), passed_over),
            Ok(id) => passed_over.push(format!(
                "{} is not the running kernel's vmlinux (build id {}, not {wanted})",
                path.display(),
                id.as_deref().unwrap_or("none")
            )),
            Err(err) => passed_over.push(format!("{}: {err:#}", path.display())),
        }
    }
    (None, passed_over)
}

/// Symbolizes every report whose kernel has one of `vmlinuxes` (matched
/// by build id); a vmlinux that matches no report's kernel is refused.
pub fn apply<'a>(vmlinuxes: &[PathBuf], reports: impl IntoIterator<Item = &'a mut Report>) -> Result<()> {
    if let Some((path, id)) = apply_matching(vmlinuxes, reports)?.first() {
        bail!(
            "--vmlinux {} (build id {id}) is the vmlinux of none of these runs' kernels: give each kernel's own",
            path.display()
        );
    }
    Ok(())
}

/// Symbolizes every report whose kernel has one of `vmlinuxes`; returns
/// those that matched none (with their build ids), for callers that pass
/// the vmlinuxes of more kernels than they compare (`bisect`).
pub fn apply_matching<'a>(
    vmlinuxes: &[PathBuf],
    reports: impl IntoIterator<Item = &'a mut Report>,
) -> Result<Vec<(PathBuf, String)>> {
    let mut found = Vec::new();
    for path in vmlinuxes {
        if !path.is_file() {
            bail!("--vmlinux {} does not exist", path.display());
        }
        let id = build_id(path)?.with_context(|| {
            format!(
                "--vmlinux {} has no build id: it cannot be matched to a run's kernel",
                path.display()
            )
        })?;
        found.push((path, id, false));
    }
    for report in reports {
        let wanted = report.kernel_identity.as_ref().and_then(|k| k.build_id.clone());
        if let Some((path, id, used)) = found.iter_mut().find(|(_, id, _)| Some(id) == wanted.as_ref()) {
            Vmlinux {
                path: path.to_path_buf(),
                build_id: id.clone(),
            }
            .symbolize(report)?;
            *used = true;
        }
    }
    Ok(found
        .into_iter()
        .filter(|(_, _, used)| !used)
        .map(|(path, id, _)| (path.to_path_buf(), id))
        .collect())
}

impl Vmlinux {
    /// `path`, checked against the kernel `report` ran on; one line naming
    /// the fix when it is not that kernel's.
    pub fn for_report(path: &Path, report: &Report) -> Result<Self> {
        if !path.is_file() {
            bail!("--vmlinux {} does not exist", path.display());
        }
        let Some(wanted) = report.kernel_identity.as_ref().and_then(|k| k.build_id.clone()) else {
            bail!(
                "the run on {} recorded no kernel build id (reports before schema 4 do not): it cannot be matched to a vmlinux",
                report.kernel_release
            );
        };
        let found = build_id(path)?;
        match found {
            Some(id) if id == wanted => Ok(Self {
                path: path.to_path_buf(),
                build_id: id,
            }),
            Some(id) => bail!(
                "--vmlinux {} has build id {id}, not {wanted} of the run's kernel {}: give that kernel's vmlinux (Debian: its -dbg package)",
                path.display(),
                report.kernel_release
            ),
            None => bail!(
                "--vmlinux {} has no build id: it cannot be matched to the run's kernel",
                path.display()
            ),
        }
    }
}

/// `_text`'s link-time address in an ELF vmlinux.
fn linked_text(path: &Path) -> Result<Option<u64>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let cache = ReadCache::new(file);
    let elf =
        object::File::parse(&cache).map_err(|err| anyhow::anyhow!("{} is not an ELF file: {err}", path.display()))?;
    Ok(elf
        .symbols()
        .find(|symbol| symbol.name() == Ok("_text"))
        .map(|symbol| symbol.address()))
}

/// `file:line` as the debug info has it.
fn line_of(code_info: Option<&CodeInfo>) -> Option<String> {
    let info = code_info?;
    Some(format!("{}:{}", info.to_path().display(), info.line?))
}

/// The address whose source a kernel frame is: the leaf's own; a caller's
/// return address less one (the call before it), except at a function's
/// first byte, which is no return address but a frame an interrupt or
/// exception left (the interrupted instruction itself).
pub fn lookup_address(stack: &SampledStack, index: usize) -> u64 {
    let address = stack.kernel_addresses.get(index).copied().unwrap_or(0);
    let leaf = index + 1 == stack.kernel_addresses.len();
    let at_entry = stack.kernel_offsets.get(index) == Some(&Some(0));
    if leaf || at_entry {
        address
    } else {
        address.saturating_sub(1)
    }
}

/// Whether kallsyms' `symbol` is the debug info's `function`: the same
/// name, or a compiler clone of it (`finish_task_switch.isra.0`, `.part.0`,
/// `.constprop.0`, `.cold`), which DWARF names after its origin.
fn same_function(symbol: &str, function: &str) -> bool {
    symbol == function || symbol.strip_prefix(function).is_some_and(|rest| rest.starts_with('.'))
}

/// What the debug info says of one address: its function, the functions
/// inlined there (outermost first), and the innermost one's line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub function: String,
    pub inlined: Vec<String>,
    pub line: Option<String>,
}

impl Vmlinux {
    /// The run's KASLR offset: recorded (x86-64), else `_text` where it
    /// ran minus where this vmlinux links it.
    fn kaslr_offset(&self, report: &Report) -> Result<u64> {
        let identity = report.kernel_identity.as_ref();
        if let Some(offset) = identity.and_then(|k| k.kaslr_offset) {
            return Ok(offset);
        }
        let text = identity.and_then(|k| k.text_address).with_context(|| {
            format!(
                "the run recorded no _text address, so its addresses cannot be placed in {}",
                self.path.display()
            )
        })?;
        let linked =
            linked_text(&self.path)?.with_context(|| format!("{} has no _text symbol", self.path.display()))?;
        text.checked_sub(linked)
            .with_context(|| format!("_text ran below where {} links it", self.path.display()))
    }

    /// Each of `addresses` (where they ran) located in the source.
    pub fn locate(&self, report: &Report, addresses: &BTreeSet<u64>) -> Result<HashMap<u64, Located>> {
        let offset = self.kaslr_offset(report)?;
        let linked: Vec<u64> = addresses.iter().map(|address| address.wrapping_sub(offset)).collect();
        let symbolizer = Symbolizer::builder()
            .enable_code_info(true)
            .enable_inlined_fns(true)
            .enable_demangling(false)
            .build();
        let source = Source::Elf(Elf::new(&self.path));
        let symbols = symbolizer
            .symbolize(&source, Input::VirtOffset(&linked))
            .with_context(|| format!("symbolizing with {}", self.path.display()))?;
        Ok(addresses
            .iter()
            .zip(&symbols)
            .filter_map(|(&address, symbol)| match symbol {
                Symbolized::Sym(sym) => {
                    let innermost = sym
                        .inlined
                        .last()
                        .map_or(sym.code_info.as_deref(), |f| f.code_info.as_ref());
                    Some((
                        address,
                        Located {
                            function: sym.name.to_string(),
                            inlined: sym.inlined.iter().map(|f| f.name.to_string()).collect(),
                            line: line_of(innermost),
                        },
                    ))
                }
                Symbolized::Unknown(_) => None,
            })
            .collect())
    }

    /// Gives every sampled kernel frame of `report` the functions inlined
    /// at its address and its source line, and recomputes the shares and
    /// hot spots with the inlined functions as functions of their own.
    pub fn symbolize(&self, report: &mut Report) -> Result<()> {
        let Some(profile) = report.sampling.as_ref() else {
            return Ok(());
        };
        let mut addresses = BTreeSet::new();
        for stack in &profile.stacks {
            for index in 0..stack.kernel_addresses.len() {
                addresses.insert(lookup_address(stack, index));
            }
        }
        let located = self.locate(report, &addresses)?;
        let mut stacks = profile.stacks.clone();
        for stack in &mut stacks {
            let frames = stack.kernel_addresses.len();
            let mut inlined = Vec::with_capacity(frames);
            let mut lines = Vec::with_capacity(frames);
            for index in 0..frames {
                // Only frames kallsyms placed in a function, and only where
                // the debug info names the same function.
                let found = located
                    .get(&lookup_address(stack, index))
                    .filter(|_| stack.kernel_offsets.get(index).is_some_and(Option::is_some))
                    .filter(|l| {
                        stack
                            .kernel
                            .get(index)
                            .is_some_and(|name| same_function(name, &l.function))
                    });
                inlined.push(found.map(|l| l.inlined.clone()).unwrap_or_default());
                lines.push(found.and_then(|l| l.line.clone()));
            }
            stack.kernel_inlined = inlined;
            stack.kernel_lines = lines;
        }
        let inlined_targets = profile
            .inlined_targets
            .iter()
            .map(|t| (t.target.clone(), t.inlined_into.clone()))
            .collect();
        let mut rebuilt = Profile::new(
            profile.hz,
            profile.cpus,
            profile.max_stacks,
            profile.counters.clone(),
            stacks,
            inlined_targets,
        );
        rebuilt.measured_iterations_only = profile.measured_iterations_only;
        rebuilt.process_roots = profile.process_roots;
        rebuilt.debug_info = Some(DebugInfoUsed {
            vmlinux: self.path.display().to_string(),
            build_id: self.build_id.clone(),
        });
        report.sampling = Some(rebuilt);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_clones_are_their_origin() {
        assert!(same_function("change_pte_range", "change_pte_range"));
        assert!(same_function("finish_task_switch.isra.0", "finish_task_switch"));
        assert!(same_function("mprotect_fixup.cold", "mprotect_fixup"));
        assert!(!same_function("change_pte_range_x", "change_pte_range"));
        assert!(!same_function("change_protection", "change_pte_range"));
    }

    #[test]
    fn the_usual_places_are_debians_then_a_kernel_builds() {
        let places: Vec<String> = usual_places("7.3.4+deb13-cloud-amd64")
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            places,
            [
                "/usr/lib/debug/boot/vmlinux-7.3.4+deb13-cloud-amd64",
                "/usr/lib/debug/lib/modules/7.3.4+deb13-cloud-amd64/vmlinux",
                "/lib/modules/7.3.4+deb13-cloud-amd64/build/vmlinux",
                "/boot/vmlinux-7.3.4+deb13-cloud-amd64",
            ]
        );
    }

    #[test]
    fn build_ids_are_read_from_the_elf_notes() {
        // This test binary has one (cargo links with --build-id), and
        // readelf agrees.
        let me = std::env::current_exe().unwrap();
        let ours = build_id(&me).unwrap().expect("a build id");
        let readelf = std::process::Command::new("readelf")
            .arg("-n")
            .arg(&me)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&readelf.stdout);
        let theirs = text.lines().find_map(|l| l.trim().strip_prefix("Build ID: ")).unwrap();
        assert_eq!(ours, theirs);
        let not_elf = std::env::temp_dir().join(format!("mprotect-trace-not-elf-{}", std::process::id()));
        std::fs::write(&not_elf, b"hello").unwrap();
        assert!(
            build_id(&not_elf)
                .unwrap_err()
                .to_string()
                .contains("is not an ELF file")
        );
        std::fs::remove_file(&not_elf).unwrap();
    }
}
