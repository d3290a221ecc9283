//! The inlined instances a run probes, for the targets inlined
//! everywhere: from a sites file or a debug vmlinux, each accepted only
//! when its build id is the running kernel's.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::debuginfo::{self, inline_sites};
use crate::kernel::identity;
use crate::model::InlineSites;
use crate::options::InlineSitesFrom;
use crate::probes::plan::TargetPlan;

/// Whether some target has no symbol anywhere: only DWARF can place it.
pub fn wanted(plans: &[TargetPlan]) -> bool {
    plans.iter().any(|plan| !plan.in_kallsyms && !plan.in_btf)
}

/// The sites `from` names, for `names`; from the usual places only when
/// a vmlinux of this kernel is there (else `None`, and the targets say
/// why they have no probe).
pub fn load(from: &InlineSitesFrom, release: &str, names: &[&str]) -> Result<Option<InlineSites>> {
    let running = identity::running_build_id();
    match from {
        InlineSitesFrom::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--inline-sites {}: cannot read it", path.display()))?;
            let sites: InlineSites = serde_json::from_str(&text).with_context(|| {
                format!(
                    "--inline-sites {} is not a sites file: write one with `mprotect-trace inline-sites --vmlinux PATH -o FILE`",
                    path.display()
                )
            })?;
            check_build_id("--inline-sites", path, &sites.build_id, running.as_deref(), release)?;
            Ok(Some(sites))
        }
        InlineSitesFrom::Vmlinux(path) => {
            if !path.is_file() {
                bail!("--vmlinux {} does not exist", path.display());
            }
            let id = debuginfo::build_id(path)?.with_context(|| {
                format!(
                    "--vmlinux {} has no build id: it cannot be matched to this kernel",
                    path.display()
                )
            })?;
            check_build_id("--vmlinux", path, &id, running.as_deref(), release)?;
            Ok(Some(inline_sites::read(path, names)?))
        }
        InlineSitesFrom::UsualPlaces => {
            let Some(wanted) = running else {
                return Ok(None);
            };
            // Files of other builds are said so when the run symbolizes.
            match debuginfo::in_usual_places(release, &wanted).0 {
                Some(vmlinux) => Ok(Some(inline_sites::read(&vmlinux.path, names)?)),
                None => Ok(None),
            }
        }
    }
}

fn check_build_id(flag: &str, path: &Path, id: &str, running: Option<&str>, release: &str) -> Result<()> {
    match running {
        Some(running) if running == id => Ok(()),
        Some(running) => bail!(
            "{flag} {} is for the kernel with build id {id}, not this one ({release}, {running}): give this kernel's",
            path.display()
        ),
        None => bail!(
            "{flag} {}: this kernel exports no build id (/sys/kernel/notes), so it cannot be matched",
            path.display()
        ),
    }
}
