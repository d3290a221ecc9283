//! One mapping under test, unmapped (and its memfd or /dev/zero closed) on drop, so no
//! error path leaves memory mapped behind.

use std::ptr;
use std::sync::OnceLock;

use anyhow::{Result, bail};

use super::Plan;
use super::scenario::Backing;

pub use crate::kernel::machine::page_size;

/// What one PTE table maps, which is also a PMD-mapped THP's size: the
/// kernel says it in THP's hpage_pmd_size (2 MiB on x86-64, on 4 kB arm64
/// and on ppc64's radix MMU with 64 kB pages); without THP, a page-sized
/// table of 8-byte entries.
pub fn pte_table_span() -> usize {
    static SPAN: OnceLock<usize> = OnceLock::new();
    *SPAN.get_or_init(|| {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(page_size() / 8 * page_size())
    })
}

pub struct Mapping {
    /// The PROT_NONE reservation around the data: a guard page on each
    /// side keeps the VMA from merging with a neighbour, so smaps shows
    /// exactly this mapping. A /dev/zero mapping has none (it is the data:
    /// the kernel places it, and its file keeps it from merging).
    reservation: *mut libc::c_void,
    reservation_len: usize,
    start: *mut u8,
    len: usize,
    /// The memfd, or /dev/zero, behind the mapping.
    fd: Option<libc::c_int>,
}

// The mapping is owned by one thread at a time; the raw pointers are just
// addresses of memory this struct owns.
unsafe impl Send for Mapping {}

fn last_os_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

impl Mapping {
    /// Maps the plan's `mapping_bytes` as its scenario wants them (not yet
    /// faulted in), aligned for its huge pages or large folios; `regions`
    /// of them one after another, in one mapping.
    pub fn create(plan: &Plan) -> Result<Self> {
        let (scenario, len) = (plan.scenario, plan.mapping_bytes * plan.regions as usize);
        if scenario.backing() == Backing::DevZeroPrivate {
            return Self::dev_zero_private(len);
        }
        let align = match plan.folio_kb {
            _ if scenario.wants_huge_pages() => pte_table_span(),
            Some(kb) => kb as usize * 1024,
            None => page_size(),
        };
        let reservation_len = len + align + 2 * page_size();
        // SAFETY: a fresh anonymous reservation; nothing else refers to it.
        let reservation = unsafe {
            libc::mmap(
                ptr::null_mut(),
                reservation_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if reservation == libc::MAP_FAILED {
            return Err(last_os_error("mmap of the reservation"));
        }
        let mut mapping = Mapping {
            reservation,
            reservation_len,
            start: ptr::null_mut(),
            len,
            fd: None,
        };
        let start = (reservation as usize + page_size()).next_multiple_of(align);

        let (flags, fd) = match scenario.backing() {
            Backing::SharedAnon => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
            Backing::PrivateAnon => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
            Backing::Memfd => {
                // SAFETY: the name is a NUL-terminated literal.
                let fd = unsafe { libc::memfd_create(c"mprotect-trace".as_ptr(), libc::MFD_CLOEXEC) };
                if fd < 0 {
                    return Err(last_os_error("memfd_create"));
                }
                mapping.fd = Some(fd);
                // SAFETY: fd is the memfd just created.
                if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
                    return Err(last_os_error("ftruncate of the memfd"));
                }
                (libc::MAP_SHARED, fd)
            }
            Backing::DevZeroPrivate => bail!("a /dev/zero mapping is not made inside a reservation"),
        };
        // SAFETY: MAP_FIXED inside our own reservation, which this struct owns.
        let data = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_FIXED,
                fd,
                0,
            )
        };
        if data == libc::MAP_FAILED {
            return Err(last_os_error("mmap of the mapping under test"));
        }
        mapping.start = data.cast();
        if scenario.wants_huge_pages() {
            // SAFETY: advising our own mapping.
            if unsafe { libc::madvise(data, len, libc::MADV_HUGEPAGE) } != 0 {
                return Err(last_os_error("madvise(MADV_HUGEPAGE)"));
            }
        }
        Ok(mapping)
    }

    /// `len` bytes of /dev/zero, MAP_PRIVATE, read-write, where the kernel
    /// places them (so aligned as it aligns libMicro's: to 2 MiB on recent
    /// THP kernels), the file kept open: libMicro's mprotect mapping.
    fn dev_zero_private(len: usize) -> Result<Self> {
        // SAFETY: the path is a NUL-terminated literal.
        let fd = unsafe { libc::open(c"/dev/zero".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(last_os_error("opening /dev/zero"));
        }
        // SAFETY: a fresh private mapping of /dev/zero; nothing else refers to it.
        let data = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        };
        if data == libc::MAP_FAILED {
            let err = last_os_error("mmap of /dev/zero");
            // SAFETY: fd is the descriptor opened above.
            unsafe { libc::close(fd) };
            return Err(err);
        }
        Ok(Mapping {
            reservation: data,
            reservation_len: len,
            start: data.cast(),
            len,
            fd: Some(fd),
        })
    }

    pub fn start(&self) -> usize {
        self.start as usize
    }

    pub fn pages(&self) -> usize {
        self.len / page_size()
    }

    /// The page tables (aligned ranges of [`pte_table_span`]) the
    /// mapping spans: an mprotect of all of it walks each once
    /// (change_pte_range runs once per table).
    pub fn pte_tables(&self) -> u64 {
        pte_tables_spanned(self.start as u64, self.len as u64, pte_table_span() as u64)
    }

    /// Changes the protection of the whole mapping: the call being measured.
    #[inline(always)]
    pub fn protect(&self, prot: libc::c_int) -> Result<()> {
        // SAFETY: the range is our own mapping.
        if unsafe { libc::mprotect(self.start.cast(), self.len, prot) } != 0 {
            bail!("mprotect: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Changes the protection of `len` bytes from `offset`: one region.
    #[inline(always)]
    pub fn protect_part(&self, offset: usize, len: usize, prot: libc::c_int) -> Result<()> {
        debug_assert!(offset + len <= self.len);
        // SAFETY: the range is inside our own mapping.
        if unsafe { libc::mprotect(self.start.add(offset).cast(), len, prot) } != 0 {
            bail!("mprotect: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads one byte of each of `pages` pages from `offset`.
    #[inline(always)]
    pub fn read_pages(&self, offset: usize, pages: usize) -> u64 {
        // Read once, not per page: these loops are inside the timed iterations.
        let page_size = page_size();
        debug_assert!(offset + pages * page_size <= self.len);
        let mut sum = 0u64;
        for page in 0..pages {
            // SAFETY: inside our mapping, which is readable when this is called.
            sum += u64::from(unsafe { ptr::read_volatile(self.start.add(offset + page * page_size)) });
        }
        sum
    }

    /// The PTE tables `len` bytes from `offset` span (see [`Self::pte_tables`]).
    pub fn pte_tables_of(&self, offset: usize, len: usize) -> u64 {
        pte_tables_spanned(self.start as u64 + offset as u64, len as u64, pte_table_span() as u64)
    }

    /// Writes one byte in every page (faulting it in dirty).
    #[inline(always)]
    pub fn write_each_page(&self, value: u8) {
        let page_size = page_size();
        for page in 0..self.pages() {
            // SAFETY: inside our mapping, which is writable when this is called.
            unsafe { ptr::write_volatile(self.start.add(page * page_size), value) };
        }
    }

    /// Reads one byte of every page (faulting it in without dirtying it).
    #[inline(always)]
    pub fn read_each_page(&self) -> u64 {
        self.read_pages(0, self.pages())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the reservation (and the data mapped inside it) is ours.
        unsafe { libc::munmap(self.reservation, self.reservation_len) };
        if let Some(fd) = self.fd {
            // SAFETY: the file is ours and closed once.
            unsafe { libc::close(fd) };
        }
    }
}

/// The 2 MiB-aligned ranges that `len` bytes from `start` touch.
fn pte_tables_spanned(start: u64, len: u64, span: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    (start + len - 1) / span - start / span + 1
}

#[cfg(test)]
mod tests {
    use super::pte_tables_spanned;

    #[test]
    fn a_range_spans_every_table_it_touches() {
        const MIB: u64 = 1 << 20;
        let span = 2 * MIB;
        assert_eq!(pte_tables_spanned(0x7f00_0000_0000, 4 * MIB, span), 2);
        assert_eq!(pte_tables_spanned(0x7f00_0000_0000 + 4096, 4 * MIB, span), 3);
        assert_eq!(pte_tables_spanned(0x7f00_0000_0000, 4096, span), 1);
        assert_eq!(pte_tables_spanned(0x7f00_001f_f000, 8192, span), 2);
        assert_eq!(pte_tables_spanned(0x7f00_0000_0000, 0, span), 0);
        // arm64 with 64 kB pages: one table maps 512 MiB.
        assert_eq!(pte_tables_spanned(0x7f00_0000_0000 + 65536, 4 * MIB, 512 * MIB), 1);
    }
}
