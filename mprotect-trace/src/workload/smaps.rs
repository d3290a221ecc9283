//! Reads the state of one mapping from `/proc/self/smaps`, so a run can
//! prove it measured the page state it meant to (base pages, dirty, ...).

use anyhow::{Context as _, Result, anyhow};

use crate::model::SmapsEntry;

/// The entry of the VMA that starts at `start` in this process.
pub fn read_own(start: usize) -> Result<SmapsEntry> {
    let text = std::fs::read_to_string("/proc/self/smaps").context("reading /proc/self/smaps")?;
    parse_entry(&text, start)
}

/// Finds the VMA starting at `start` in smaps `text` and sums its fields.
pub fn parse_entry(text: &str, start: usize) -> Result<SmapsEntry> {
    let mut lines = text.lines();
    let wanted = format!("{start:x}-");
    // Skip to the VMA's header line ("start-end perms offset dev inode path").
    lines
        .by_ref()
        .find(|line| line.starts_with(&wanted))
        .ok_or_else(|| anyhow!("no VMA starts at {start:#x} in smaps"))?;
    let mut entry = SmapsEntry::default();
    for line in lines {
        let Some((key, value)) = line.split_once(':') else {
            break; // the next VMA's header has no colon before the range
        };
        let value = value.trim();
        if key == "VmFlags" {
            entry.vm_flags = value.to_owned();
            break; // always the last field of a VMA
        }
        let kb = || -> Result<u64> {
            let number = value.trim_end_matches("kB").trim();
            number
                .parse()
                .with_context(|| format!("smaps field {key}: {value:?} is not a number"))
        };
        match key {
            "Size" => entry.size_kb = kb()?,
            "KernelPageSize" => entry.kernel_page_kb = kb()?,
            "MMUPageSize" => entry.mmu_page_kb = kb()?,
            "Rss" => entry.rss_kb = kb()?,
            "Shared_Dirty" | "Private_Dirty" => entry.dirty_kb += kb()?,
            "AnonHugePages" | "ShmemPmdMapped" | "FilePmdMapped" => entry.huge_kb += kb()?,
            "THPeligible" => entry.thp_eligible = kb()?,
            _ => {}
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
7f0000000000-7f0000001000 ---p 00000000 00:00 0
Size:                  4 kB
VmFlags: mr mw me
7f0000001000-7f0004001000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)
Size:              65536 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:               65536 kB
Shared_Clean:          0 kB
Shared_Dirty:         12 kB
Private_Clean:         0 kB
Private_Dirty:     65524 kB
AnonHugePages:         0 kB
ShmemPmdMapped:     2048 kB
FilePmdMapped:         0 kB
THPeligible:           1
VmFlags: rd wr sh mr mw me ms
7f0004001000-7f0004002000 ---p 00000000 00:00 0
Size:                  4 kB
VmFlags: mr mw me
";

    #[test]
    fn sums_the_fields_of_the_vma_that_starts_at_the_address() {
        let entry = parse_entry(SAMPLE, 0x7f0000001000).unwrap();
        assert_eq!(
            entry,
            SmapsEntry {
                size_kb: 65536,
                kernel_page_kb: 4,
                mmu_page_kb: 4,
                rss_kb: 65536,
                dirty_kb: 65536,
                huge_kb: 2048,
                thp_eligible: 1,
                vm_flags: "rd wr sh mr mw me ms".into(),
            }
        );
        assert!(entry.is_shared());
    }

    #[test]
    fn an_address_that_starts_no_vma_is_an_error() {
        let err = parse_entry(SAMPLE, 0x7f0000002000).unwrap_err();
        assert_eq!(err.to_string(), "no VMA starts at 0x7f0000002000 in smaps");
    }
}
