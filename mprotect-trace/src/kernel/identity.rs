//! Which kernel binary is running: its GNU build id, from the ELF notes
//! the kernel exports in /sys/kernel/notes, and where its text starts
//! (`_text` in /proc/kallsyms), so a saved run's addresses can be
//! symbolized later with the matching vmlinux, on another machine.

use std::io::BufRead as _;

use crate::model::KernelIdentity;

const NOTES: &str = "/sys/kernel/notes";
/// `NT_GNU_BUILD_ID`.
const BUILD_ID_TYPE: u32 = 3;
/// Where x86-64 kernels are linked to start (`__START_KERNEL`, with the
/// default CONFIG_PHYSICAL_START): `_text` minus this is the KASLR offset.
const X86_64_LINKED_TEXT: u64 = 0xffff_ffff_8100_0000;

/// The GNU build id in a sequence of ELF notes, as lowercase hex.
pub fn build_id_of_notes(notes: &[u8]) -> Option<String> {
    let word = |at: usize| {
        notes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let align = |n: usize| n.div_ceil(4) * 4;
    let mut at = 0;
    while at + 12 <= notes.len() {
        let (name_size, desc_size, kind) = (word(at)? as usize, word(at + 4)? as usize, word(at + 8)?);
        let name = notes.get(at + 12..at + 12 + name_size)?;
        let desc_at = at + 12 + align(name_size);
        let desc = notes.get(desc_at..desc_at + desc_size)?;
        if kind == BUILD_ID_TYPE && name == b"GNU\0" {
            return Some(desc.iter().map(|byte| format!("{byte:02x}")).collect());
        }
        at = desc_at + align(desc_size);
    }
    None
}

/// `_text`'s address in /proc/kallsyms (0 when addresses are hidden).
pub fn text_address() -> Option<u64> {
    let file = std::fs::File::open("/proc/kallsyms").ok()?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.ok()?;
        let mut fields = line.split_whitespace();
        let (address, _, name) = (fields.next()?, fields.next()?, fields.next()?);
        if name == "_text" {
            return u64::from_str_radix(address, 16).ok().filter(|&a| a != 0);
        }
    }
    None
}

/// The running kernel's GNU build id, if it exports its notes.
pub fn running_build_id() -> Option<String> {
    std::fs::read(NOTES).ok().and_then(|notes| build_id_of_notes(&notes))
}

/// The running kernel's identity; what cannot be read stays absent.
pub fn running() -> KernelIdentity {
    let text_address = text_address();
    KernelIdentity {
        build_id: running_build_id(),
        text_address,
        // Other architectures' link address is read from the vmlinux when
        // one is given.
        kaslr_offset: text_address
            .filter(|_| std::env::consts::ARCH == "x86_64")
            .and_then(|text| text.checked_sub(X86_64_LINKED_TEXT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_gnu_build_id_among_the_notes() {
        // The first notes of a 6.18 x86-64 /sys/kernel/notes: a "Xen" note,
        // then GNU's build id (20 bytes).
        let mut notes = Vec::new();
        let mut note = |name: &[u8], kind: u32, desc: &[u8]| {
            notes.extend((name.len() as u32).to_le_bytes());
            notes.extend((desc.len() as u32).to_le_bytes());
            notes.extend(kind.to_le_bytes());
            notes.extend(name);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
            notes.extend(desc);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
        };
        note(b"Xen\0", 6, b"linux\0");
        note(
            b"GNU\0",
            3,
            &[
                0x6e, 0xcd, 0x6e, 0xc2, 0x1e, 0xc6, 0x94, 0x16, 0xe5, 0x0a, 0x8a, 0xa6, 0x73, 0x7e, 0x50, 0x09, 0x01,
                0xdd, 0xb4, 0x7a,
            ],
        );
        assert_eq!(
            build_id_of_notes(&notes).as_deref(),
            Some("6ecd6ec21ec69416e50a8aa6737e500901ddb47a")
        );
        assert_eq!(build_id_of_notes(&notes[..20]), None);
    }
}
