//! The workload shapes: how each one maps memory, prefaults it, and which
//! page state it must be in for its timings to mean what they claim.

use serde::Serialize;

use crate::model::SmapsEntry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// MAP_SHARED|MAP_ANONYMOUS, write-prefaulted; the v6.16 -> v6.17 regression reproducer.
    SharedDirtyToggle,
    /// MAP_PRIVATE|MAP_ANONYMOUS, write-prefaulted.
    PrivateDirtyToggle,
    /// MAP_SHARED|MAP_ANONYMOUS, read-prefaulted only.
    SharedCleanToggle,
    /// A memfd mapped MAP_SHARED, write-prefaulted.
    FileToggle,
    /// Private anonymous, 2 MiB aligned, MADV_HUGEPAGE, write-prefaulted.
    ThpToggle,
    /// Each iteration maps and write-prefaults a fresh range, and times one mprotect(PROT_READ).
    SingleProtect,
    /// One 4 MiB private region toggled PROT_READ / PROT_READ|PROT_WRITE with a
    /// write per page: libMicro-like, but not libMicro's mprot_tw4m (that is `MprotTw4m`).
    RegionToggle,
    /// One private 4 KiB page toggled and written: syscall-bound, for measuring tracing overhead.
    PageToggle,
    /// libMicro's mprot_tw4m as LKP runs it: `--regions` (10) 4 MiB regions of
    /// one private /dev/zero mapping, write-prefaulted; each batch flips each
    /// region between PROT_NONE and PROT_READ|PROT_WRITE, reading a byte per
    /// page of a region before it goes PROT_NONE; libMicro's median µs per call.
    MprotTw4m,
    /// No mprotect() at all: a private mapping on one NUMA node written over
    /// and over from a CPU of another, while NUMA balancing scans it
    /// (change_protection with MM_CP_PROT_NUMA) and the writes take its
    /// hinting faults.
    NumaHinting,
}

/// How the memory behind a scenario is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    SharedAnon,
    PrivateAnon,
    Memfd,
    /// /dev/zero mapped MAP_PRIVATE where the kernel places it (anonymous
    /// memory, shown as /dev/zero in smaps), as libMicro maps it.
    DevZeroPrivate,
}

/// The page state a scenario must run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedState {
    /// Every page resident, dirty, mapped by a 4 kB PTE.
    DirtyBase,
    /// Every page resident, clean, mapped by a 4 kB PTE.
    CleanBase,
    /// Every page resident in PMD-mapped huge pages.
    HugePmd,
    /// Every page resident and dirty, in base pages or, where the THP mode
    /// gives an unadvised mapping huge pages (`always`), in PMD-mapped ones.
    DirtyBaseOrThp,
}

impl Scenario {
    pub const ALL: [Scenario; 10] = [
        Self::SharedDirtyToggle,
        Self::PrivateDirtyToggle,
        Self::SharedCleanToggle,
        Self::FileToggle,
        Self::ThpToggle,
        Self::SingleProtect,
        Self::RegionToggle,
        Self::PageToggle,
        Self::MprotTw4m,
        Self::NumaHinting,
    ];

    /// The scenario named `name` on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scenario| scenario.name() == name)
    }

    /// One line for `--help`.
    pub fn help(self) -> &'static str {
        match self {
            Self::SharedDirtyToggle => {
                "MAP_SHARED|MAP_ANONYMOUS, write-prefaulted; the v6.16 -> v6.17 regression reproducer"
            }
            Self::PrivateDirtyToggle => "MAP_PRIVATE|MAP_ANONYMOUS, write-prefaulted",
            Self::SharedCleanToggle => "MAP_SHARED|MAP_ANONYMOUS, read-prefaulted only",
            Self::FileToggle => "A memfd mapped MAP_SHARED, write-prefaulted",
            Self::ThpToggle => "Private anonymous, 2 MiB aligned, MADV_HUGEPAGE, write-prefaulted",
            Self::SingleProtect => {
                "Each iteration maps and write-prefaults a fresh range, and times one mprotect(PROT_READ)"
            }
            Self::RegionToggle => {
                "One 4 MiB private region toggled PROT_READ / PROT_READ|PROT_WRITE with a write per page (libMicro-like, not mprot_tw4m)"
            }
            Self::PageToggle => {
                "One private base page toggled and written: syscall-bound, for measuring tracing overhead"
            }
            Self::NumaHinting => {
                "No mprotect(): a private mapping on one NUMA node written from a CPU of another while NUMA balancing scans it (needs 2 nodes: lab --numa-nodes 2)"
            }
            Self::MprotTw4m => {
                "libMicro's mprot_tw4m: --regions 4 MiB regions of one private /dev/zero mapping, each batch flips each between PROT_NONE and PROT_READ|PROT_WRITE, reading every page before PROT_NONE; median µs per call"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::SharedDirtyToggle => "shared-dirty-toggle",
            Self::PrivateDirtyToggle => "private-dirty-toggle",
            Self::SharedCleanToggle => "shared-clean-toggle",
            Self::FileToggle => "file-toggle",
            Self::ThpToggle => "thp-toggle",
            Self::SingleProtect => "single-protect",
            Self::RegionToggle => "region-toggle",
            Self::PageToggle => "page-toggle",
            Self::MprotTw4m => "mprot-tw4m",
            Self::NumaHinting => "numa-hinting",
        }
    }

    pub fn backing(self) -> Backing {
        match self {
            Self::SharedDirtyToggle | Self::SharedCleanToggle => Backing::SharedAnon,
            Self::PrivateDirtyToggle
            | Self::ThpToggle
            | Self::SingleProtect
            | Self::RegionToggle
            | Self::PageToggle
            | Self::NumaHinting => Backing::PrivateAnon,
            Self::FileToggle => Backing::Memfd,
            Self::MprotTw4m => Backing::DevZeroPrivate,
        }
    }

    pub fn expected_state(self) -> ExpectedState {
        match self {
            Self::SharedCleanToggle => ExpectedState::CleanBase,
            Self::ThpToggle => ExpectedState::HugePmd,
            Self::MprotTw4m => ExpectedState::DirtyBaseOrThp,
            _ => ExpectedState::DirtyBase,
        }
    }

    /// Whether prefault and the post-toggle touch write each page (a clean
    /// scenario reads instead, so its pages stay clean).
    pub fn writes_pages(self) -> bool {
        self.expected_state() != ExpectedState::CleanBase
    }

    /// Whether the mapping is PMD aligned and advised MADV_HUGEPAGE.
    pub fn wants_huge_pages(self) -> bool {
        self.expected_state() == ExpectedState::HugePmd
    }

    /// The mprotect() calls of one iteration: a toggle's two, single-protect's
    /// one, and for mprot-tw4m (an iteration is a batch) one per region.
    pub fn calls_per_iteration(self, regions: u64) -> u64 {
        match self {
            Self::SingleProtect => 1,
            Self::MprotTw4m => regions,
            Self::NumaHinting => 0,
            _ => 2,
        }
    }

    /// Percentage (0-100) of the mapping in this scenario's intended state:
    /// its sharing (`sh` in VmFlags) and its page state.
    pub fn expected_match_percent(self, entry: &SmapsEntry) -> u64 {
        let wants_shared = matches!(self.backing(), Backing::SharedAnon | Backing::Memfd);
        if entry.is_shared() != wants_shared {
            return 0;
        }
        self.expected_state().match_percent(entry)
    }

    /// Mapping size when `--mapping-mb` is not given.
    pub fn default_mapping_mb(self) -> u64 {
        match self {
            Self::RegionToggle | Self::MprotTw4m => 4,
            _ => 64,
        }
    }

    /// A fixed mapping size in bytes, for scenarios that ignore --mapping-mb.
    pub fn fixed_bytes(self) -> Option<usize> {
        (self == Self::PageToggle).then_some(super::mapping::page_size())
    }
}

impl ExpectedState {
    /// Percentage (0-100, rounded down) of the VMA that is in this state.
    pub fn match_percent(self, entry: &SmapsEntry) -> u64 {
        if entry.size_kb == 0 {
            return 0;
        }
        // Base pages are the running kernel's: 64 kB on a 64 kB kernel.
        let base_kb = (super::mapping::page_size() / 1024) as u64;
        let base_pages = entry.kernel_page_kb == base_kb && entry.mmu_page_kb == base_kb;
        let in_state_kb = match self {
            Self::DirtyBase | Self::CleanBase if !base_pages || entry.huge_kb != 0 => 0,
            Self::DirtyBase => entry.dirty_kb.min(entry.rss_kb),
            Self::CleanBase => entry.rss_kb.saturating_sub(entry.dirty_kb),
            Self::HugePmd => entry.huge_kb,
            Self::DirtyBaseOrThp if !base_pages => 0,
            Self::DirtyBaseOrThp => entry.dirty_kb.min(entry.rss_kb),
        };
        in_state_kb.min(entry.size_kb) * 100 / entry.size_kb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rss_kb: u64, dirty_kb: u64, huge_kb: u64) -> SmapsEntry {
        SmapsEntry {
            size_kb: 1024,
            kernel_page_kb: (super::super::mapping::page_size() / 1024) as u64,
            mmu_page_kb: (super::super::mapping::page_size() / 1024) as u64,
            rss_kb,
            dirty_kb,
            huge_kb,
            ..Default::default()
        }
    }

    #[test]
    fn dirty_base_pages_count_only_dirty_resident_4k_pages() {
        let state = ExpectedState::DirtyBase;
        assert_eq!(state.match_percent(&entry(1024, 1024, 0)), 100);
        assert_eq!(state.match_percent(&entry(1024, 512, 0)), 50);
        assert_eq!(state.match_percent(&entry(1024, 1024, 2048)), 0);
    }

    #[test]
    fn clean_and_huge_states() {
        assert_eq!(ExpectedState::CleanBase.match_percent(&entry(1024, 0, 0)), 100);
        assert_eq!(ExpectedState::CleanBase.match_percent(&entry(1024, 1024, 0)), 0);
        assert_eq!(ExpectedState::HugePmd.match_percent(&entry(1024, 1024, 1024)), 100);
        assert_eq!(ExpectedState::HugePmd.match_percent(&entry(1024, 1024, 0)), 0);
    }

    #[test]
    fn a_private_vma_does_not_match_a_shared_scenario() {
        let mut private = entry(1024, 1024, 0);
        private.vm_flags = "rd wr mr mw me ac".into();
        assert_eq!(Scenario::SharedDirtyToggle.expected_match_percent(&private), 0);
        assert_eq!(Scenario::PrivateDirtyToggle.expected_match_percent(&private), 100);
        let mut shared = private.clone();
        shared.vm_flags = "rd wr sh mr mw me ms".into();
        assert_eq!(Scenario::SharedDirtyToggle.expected_match_percent(&shared), 100);
        assert_eq!(Scenario::FileToggle.expected_match_percent(&shared), 100);
    }

    #[test]
    fn mprot_tw4m_wants_private_dirty_pages_base_or_pmd_mapped() {
        let mut entry = entry(1024, 1024, 0);
        entry.vm_flags = "rd wr mr mw me ac".into();
        assert_eq!(Scenario::MprotTw4m.expected_match_percent(&entry), 100);
        // THP `always`: the kernel backs the unadvised regions with huge pages.
        entry.huge_kb = 1024;
        assert_eq!(Scenario::MprotTw4m.expected_match_percent(&entry), 100);
        entry.dirty_kb = 256;
        assert_eq!(Scenario::MprotTw4m.expected_match_percent(&entry), 25);
        entry.dirty_kb = 1024;
        entry.vm_flags = "rd wr sh mr mw me ms".into();
        assert_eq!(Scenario::MprotTw4m.expected_match_percent(&entry), 0);
    }

    #[test]
    fn every_scenario_is_found_by_its_name() {
        for scenario in Scenario::ALL {
            assert_eq!(Scenario::from_name(scenario.name()), Some(scenario));
        }
        assert_eq!(Scenario::from_name("no-such-toggle"), None);
    }
}
