//! Tracepoint targets (`--probe category:name`): each on its slot's program.

use anyhow::{Context as _, Result, bail};
use aya::Ebpf;
use aya::maps::Array;
use aya::programs::TracePoint;
use mprotect_trace_common::programs::TRACEPOINT_SLOTS as PROGRAMS;
use mprotect_trace_common::{TRACEPOINT_SLOTS, TracepointConfig, maps};

use crate::kernel::capabilities::error_chain;
use crate::kernel::trace_events::TraceEvent;
use crate::model::{Attachment, Backend, Role};

/// Attaches `events` in order, event `i` on slot `i`.
pub fn attach(ebpf: &mut Ebpf, events: &[TraceEvent]) -> Result<Vec<Attachment>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    if events.len() > TRACEPOINT_SLOTS as usize {
        bail!(
            "{} tracepoints asked for, at most {TRACEPOINT_SLOTS} at once: drop some --probe category:name",
            events.len()
        );
    }
    let mut attachments = Vec::new();
    for (slot, event) in events.iter().enumerate() {
        let config = TracepointConfig {
            field_offset: event.field.as_ref().map_or(0, |f| f.offset),
            field_size: event.field.as_ref().map_or(0, |f| f.size),
            field_signed: event.field.as_ref().map_or(0, |f| u32::from(f.signed)),
        };
        Array::try_from(
            ebpf.map_mut(maps::TRACEPOINT_CONFIG)
                .context("the eBPF object has no map TRACEPOINT_CONFIG")?,
        )?
        .set(slot as u32, config, 0)
        .with_context(|| format!("configuring tracepoint {}", event.spec.event()))?;
        let program: &mut TracePoint = crate::ebpf_object::program_mut(ebpf, PROGRAMS[slot])?;
        program
            .load()
            .map_err(|e| anyhow::anyhow!("loading {}: {}", PROGRAMS[slot], error_chain(&e)))?;
        program
            .attach(&event.spec.category, &event.spec.name)
            .map_err(|e| anyhow::anyhow!("attaching to tracepoint {}: {}", event.spec.event(), error_chain(&e)))?;
        attachments.push(Attachment {
            split_source: None,
            name: event.spec.event(),
            role: Role::User,
            backend: Backend::Tracepoint,
            reason: format!("tracepoint, event id {}", event.id),
            slot: Some(slot as u32),
            nr_ptes_source: None,
            pages_source: None,
            return_source: event.field.as_ref().map(|f| format!("field {}", f.name)),
            inlined: None,
        });
    }
    Ok(attachments)
}
