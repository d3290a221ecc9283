//! The running kernel's memory, read through `/proc/kcore` (an ELF core
//! file whose segments map kernel virtual addresses): the live text, with
//! every boot-time patch applied, which is what a probe at an address hits.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use anyhow::{Context as _, Result, bail};
use object::read::elf::{ElfFile64, ProgramHeader as _};
use object::{Endianness, ReadCache};

pub const PATH: &str = "/proc/kcore";

/// A loaded segment: kernel addresses `vaddr..vaddr + size` at `offset` in the file.
struct Segment {
    vaddr: u64,
    offset: u64,
    size: u64,
}

pub struct Kcore {
    file: File,
    segments: Vec<Segment>,
}

impl Kcore {
    pub fn open() -> Result<Self> {
        let file = File::open(PATH).with_context(|| format!("opening {PATH} (needs root and CONFIG_PROC_KCORE)"))?;
        // The file is as large as the address space: only its headers are read.
        let cache = ReadCache::new(&file);
        let elf = ElfFile64::<Endianness, _>::parse(&cache).with_context(|| format!("parsing {PATH}"))?;
        let endian = elf.endian();
        let segments = elf
            .elf_program_headers()
            .iter()
            .filter(|header| header.p_type(endian) == object::elf::PT_LOAD)
            .map(|header| Segment {
                vaddr: header.p_vaddr(endian),
                offset: header.p_offset(endian),
                size: header.p_filesz(endian),
            })
            .collect();
        drop(cache);
        Ok(Self { file, segments })
    }

    /// The `len` bytes of kernel memory at `address`.
    pub fn read(&self, address: u64, len: usize) -> Result<Vec<u8>> {
        let end = address.checked_add(len as u64).context("address range overflows")?;
        let Some(segment) = self
            .segments
            .iter()
            .find(|s| s.vaddr <= address && end <= s.vaddr.saturating_add(s.size))
        else {
            bail!("{PATH} maps no memory at {address:#x}..{end:#x}");
        };
        let mut bytes = vec![0; len];
        self.file
            .read_exact_at(&mut bytes, segment.offset + (address - segment.vaddr))
            .with_context(|| format!("reading {PATH} at {address:#x}"))?;
        Ok(bytes)
    }
}
