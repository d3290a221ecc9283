//! The folio sizes actually backing a mapping: each page's frame from
//! /proc/self/pagemap, and whether that frame heads or continues a
//! compound page from /proc/kpageflags (both need root for frame numbers).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;

use anyhow::{Context as _, Result, bail};

use super::mapping::page_size;

const PAGEMAP: &str = "/proc/self/pagemap";
const KPAGEFLAGS: &str = "/proc/kpageflags";
/// pagemap: bit 63 page present, bits 0-54 the page frame number.
const PRESENT: u64 = 1 << 63;
const PFN_MASK: u64 = (1 << 55) - 1;
/// kpageflags bits (include/uapi/linux/kernel-page-flags.h).
const COMPOUND_TAIL: u64 = 1 << 16;

/// Folios (by size in kB) that back `pages` pages from `start`: a page
/// that is not part of a compound page is a base-page folio; a folio cut by
/// the mapping's edge counts by the part inside it.
pub fn sizes(start: usize, pages: usize) -> Result<BTreeMap<u64, u64>> {
    let pagemap = File::open(PAGEMAP).with_context(|| format!("opening {PAGEMAP}"))?;
    let kpageflags = File::open(KPAGEFLAGS).with_context(|| format!("opening {KPAGEFLAGS} (needs root)"))?;
    let mut entries = vec![0u8; pages * 8];
    pagemap
        .read_exact_at(&mut entries, (start / page_size() * 8) as u64)
        .with_context(|| format!("reading {PAGEMAP}"))?;
    let mut flags = Vec::with_capacity(pages);
    for entry in entries.chunks_exact(8) {
        let entry = u64::from_le_bytes(entry.try_into().context("a pagemap entry")?);
        if entry & PRESENT == 0 {
            bail!("a page of the mapping is not present: was it prefaulted?");
        }
        let pfn = entry & PFN_MASK;
        if pfn == 0 {
            bail!("{PAGEMAP} hides frame numbers (needs root, CAP_SYS_ADMIN)");
        }
        let mut word = [0u8; 8];
        kpageflags
            .read_exact_at(&mut word, pfn * 8)
            .with_context(|| format!("reading {KPAGEFLAGS}"))?;
        flags.push(u64::from_le_bytes(word));
    }
    Ok(folio_sizes(&flags))
}

/// Groups pages into folios: a head or a lone page starts one, tails
/// extend it (a tail at the mapping's start begins a cut folio).
fn folio_sizes(flags: &[u64]) -> BTreeMap<u64, u64> {
    let page_kb = page_size() as u64 / 1024;
    let mut sizes = BTreeMap::new();
    let mut current = 0u64;
    for &page in flags {
        if page & COMPOUND_TAIL != 0 && current > 0 {
            current += 1;
            continue;
        }
        if current > 0 {
            *sizes.entry(current * page_kb).or_default() += 1;
        }
        current = 1;
    }
    if current > 0 {
        *sizes.entry(current * page_kb).or_default() += 1;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPOUND_HEAD: u64 = 1 << 15;

    #[test]
    fn heads_and_tails_make_folios() {
        let (h, t, base) = (COMPOUND_HEAD, COMPOUND_TAIL, 0);
        let flags = [h, t, t, t, base, base, h, t, t, t, h, t];
        let sizes = folio_sizes(&flags);
        // Two 16 kB folios, two 4 kB pages, and an 8 kB piece of one cut by the edge.
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [(4, 2), (8, 1), (16, 2)]);
    }
}
