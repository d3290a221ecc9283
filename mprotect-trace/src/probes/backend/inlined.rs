//! Inlined-instance probes: a kprobe at the entry of every copy of a
//! function the compiler inlined, where the vmlinux's DWARF puts it
//! (`--inline-sites`, or a debug vmlinux of this kernel). Counts calls
//! exactly and reads `nr_ptes` where DWARF locates it at each entry; an
//! inlined body has no return to probe, so no latency.

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::HashMap;
use aya::programs::KProbe;
use mprotect_trace_common::programs::INLINE_INSTANCE;
use mprotect_trace_common::{INLINE_INSTANCES_PER_SLOT, InlineSiteConfig, inline_role, maps, nr_location};

use super::{AttachContext, CheckContext, FunctionBackend, TargetFacts};
use crate::kernel::capabilities::{PROBE_CHECK_FUNCTION, error_chain};
use crate::model::{Backend, Check, InlinedInstance, ValueLocation};
use crate::targets::NR_PTES_PARAMETERS;

pub struct Inlined;

/// The instance program, loaded once for every target that uses it.
fn program(ebpf: &mut aya::Ebpf) -> Result<&mut KProbe> {
    super::loaded_kprobe(ebpf, INLINE_INSTANCE)
}

impl FunctionBackend for Inlined {
    fn kind(&self) -> Backend {
        Backend::Inlined
    }

    fn capability(&self) -> &'static str {
        "inlined_instances"
    }

    fn pair(&self) -> &'static str {
        "inlined-instance kprobes"
    }

    fn needs(&self) -> &'static str {
        "its inlined instances from this kernel's DWARF (--inline-sites or a debug vmlinux)"
    }

    fn first_choice_reason(&self) -> &'static str {
        "inlined-instance kprobes: inlined everywhere, its instances are in this kernel's DWARF"
    }

    fn check(&self, context: &mut CheckContext) -> Check {
        if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
            return Check::no(
                "no kprobes",
                "no kprobe PMU in /sys/bus/event_source/devices: the kernel has no CONFIG_KPROBES",
            );
        }
        let outcome = super::kprobe_check(context, INLINE_INSTANCE);
        match outcome {
            Ok(()) => Check::yes(format!("a kprobe attached on {PROBE_CHECK_FUNCTION}")),
            Err(err) => Check::no("attach failed", format!("attaching a kprobe failed: {err}")),
        }
    }

    fn cannot_probe(&self, target: &TargetFacts) -> Option<&'static str> {
        if target.in_kallsyms {
            Some("it has a symbol: not inlined everywhere")
        } else if target.inlined.is_none() {
            Some("no inlined instance known (no --inline-sites, no debug vmlinux)")
        } else {
            None
        }
    }

    fn reads_argument(&self, _index: usize) -> bool {
        // Parameters are read where DWARF locates them, not by position.
        false
    }

    fn programs(&self, _slot: u32) -> Vec<&'static str> {
        vec![INLINE_INSTANCE]
    }

    fn attach(&self, context: &mut AttachContext, slot: u32, target: &TargetFacts) -> Result<String> {
        let function = target
            .inlined
            .with_context(|| format!("no inlined instance of {} is known", target.name))?;
        if function.instances.len() > INLINE_INSTANCES_PER_SLOT as usize {
            bail!(
                "{} has {} inlined instances; at most {INLINE_INSTANCES_PER_SLOT} are probed",
                target.name,
                function.instances.len()
            );
        }
        // Every probed place, checked against kallsyms before any is attached.
        let mut places = Vec::new();
        for (index, instance) in function.instances.iter().enumerate() {
            // Its symbol's start where the kernel runs it: KASLR included.
            let start = context.kallsyms.unique_start(&instance.symbol).with_context(|| {
                format!(
                    "placing the inlined instance at {}+{:#x}",
                    instance.symbol, instance.offset
                )
            })?;
            let mut entry = site_config(slot, instance);
            entry.counter = counter_index(slot, index);
            if let Some(exit) = instance.exit_offset {
                entry.role = inline_role::TIMED_ENTRY;
                let exit_site = InlineSiteConfig {
                    slot,
                    role: inline_role::EXIT,
                    ..InlineSiteConfig::default()
                };
                places.push((instance.symbol.as_str(), exit, start + exit, exit_site));
            }
            places.push((
                instance.symbol.as_str(),
                instance.offset,
                start + instance.offset,
                entry,
            ));
        }
        {
            let mut sites: HashMap<_, u64, InlineSiteConfig> = HashMap::try_from(
                context
                    .ebpf
                    .map_mut(maps::INLINE_SITES)
                    .context("the eBPF object has no INLINE_SITES")?,
            )?;
            for (symbol, offset, address, config) in &places {
                sites
                    .insert(address, config, 0)
                    .with_context(|| format!("recording the probe at {symbol}+{offset:#x}"))?;
            }
        }
        // Exits first: an entry never starts a timing its exit misses.
        let program = program(context.ebpf)?;
        for (symbol, offset, _, _) in &places {
            program
                .attach(*symbol, *offset)
                .map_err(|e| anyhow!("{}", error_chain(&e)))
                .with_context(|| format!("a kprobe at {symbol}+{offset:#x}"))?;
        }
        Ok(format!("inlined in {}", function.places()))
    }
}

/// The call counter of a slot's `index`th instance in `INLINE_CALLS`.
pub fn counter_index(slot: u32, index: usize) -> u32 {
    slot * INLINE_INSTANCES_PER_SLOT + index as u32
}

/// The `nr_ptes` parameter of an instance, by name, and where a probe
/// reads it. A batch is one PTE at least: a constant below 1 is DWARF's
/// error (GCC gives `nr` as the constant 0 at a ppc64 7.2 instance of
/// `modify_prot_commit_ptes` that runs batches of 4), so it is not read.
pub fn nr_parameter(instance: &InlinedInstance) -> Option<(&str, ValueLocation)> {
    let parameter = instance
        .parameters
        .iter()
        .find(|p| NR_PTES_PARAMETERS.contains(&p.name.as_str()))?;
    let location = match &parameter.location {
        ValueLocation::Constant { value } if *value < 1 => ValueLocation::Unavailable {
            why: format!("DWARF gives the constant {value}, which no batch can be (one PTE at least): not read"),
        },
        location => location.clone(),
    };
    Some((parameter.name.as_str(), location))
}

fn site_config(slot: u32, instance: &InlinedInstance) -> InlineSiteConfig {
    let mut config = InlineSiteConfig {
        slot,
        ..InlineSiteConfig::default()
    };
    match nr_parameter(instance).map(|(_, location)| location) {
        Some(ValueLocation::Constant { value }) => {
            config.nr_kind = nr_location::CONSTANT;
            config.nr_value = value;
        }
        Some(ValueLocation::Register { register, .. }) => {
            config.nr_kind = nr_location::REGISTER;
            config.nr_register = u32::from(register);
        }
        Some(ValueLocation::Memory {
            register, offset, size, ..
        }) => {
            config.nr_kind = nr_location::MEMORY;
            config.nr_register = u32::from(register);
            config.nr_value = offset;
            config.nr_size = u32::from(size);
        }
        Some(ValueLocation::Unavailable { .. }) | None => config.nr_kind = nr_location::NONE,
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inline_sites::InlinedParameter;

    fn instance_with_nr(location: ValueLocation) -> InlinedInstance {
        InlinedInstance {
            inlined_in: "change_protection".to_owned(),
            symbol: "change_protection".to_owned(),
            offset: 0x1be0,
            entry: 0,
            ranges: Vec::new(),
            chain: Vec::new(),
            parameters: vec![InlinedParameter {
                name: "nr".to_owned(),
                location,
            }],
            exit_offset: None,
            no_latency: String::new(),
        }
    }

    #[test]
    fn a_constant_nr_below_one_is_not_read() {
        let zero = instance_with_nr(ValueLocation::Constant { value: 0 });
        let (name, location) = nr_parameter(&zero).expect("an nr parameter");
        assert_eq!(
            format!("{name}: {}", location.describe()),
            "nr: unavailable: DWARF gives the constant 0, which no batch can be (one PTE at least): not read"
        );
        assert_eq!(site_config(0, &zero).nr_kind, nr_location::NONE);
        let one = instance_with_nr(ValueLocation::Constant { value: 1 });
        assert_eq!(site_config(0, &one).nr_kind, nr_location::CONSTANT);
        assert_eq!(site_config(0, &one).nr_value, 1);
    }
}
