//! `inline-sites` as text: each function's inlined instances, where a
//! probe at each one reads `nr_ptes`, and why none can be timed.

use std::fmt::Write as _;

use crate::model::{InlineSites, ValueLocation};

pub fn render(sites: &InlineSites) -> String {
    let mut out = format!("{} (build id {}, {})\n", sites.vmlinux, sites.build_id, sites.arch);
    for function in &sites.functions {
        if function.instances.is_empty() {
            let _ = writeln!(out, "{}: no inlined instance", function.name);
            continue;
        }
        let _ = writeln!(out, "{}: inlined in {}", function.name, function.places());
        for instance in &function.instances {
            let _ = writeln!(
                out,
                "  {}+{:#x} ({:#x}): {}",
                instance.symbol,
                instance.offset,
                instance.entry,
                instance.chain.join(" > ")
            );
            for parameter in &instance.parameters {
                let readable = if matches!(parameter.location, ValueLocation::Unavailable { .. }) {
                    ""
                } else {
                    "read at entry: "
                };
                let _ = writeln!(
                    out,
                    "    {}: {readable}{}",
                    parameter.name,
                    parameter.location.describe()
                );
            }
            match instance.exit_offset {
                Some(exit) => {
                    let _ = writeln!(
                        out,
                        "    latency: one entry and one exit, {}+{exit:#x}: timed",
                        instance.symbol
                    );
                }
                None => {
                    let _ = writeln!(out, "    latency: not timed: {}", instance.no_latency);
                }
            }
        }
    }
    out
}
