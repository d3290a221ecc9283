//! What a lab kernel needs, said in one place (`lab.config`, a fragment
//! for the kernel's own `merge_config.sh`), and the check of a kernel's
//! final config against it, before it boots.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::vm::Arch;

/// The fragment: `lab --print-config` prints it; tree builds merge it.
pub const FRAGMENT: &str = include_str!("lab.config");

/// One `CONFIG_X=value` line of the fragment, with its section's tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub option: &'static str,
    pub value: &'static str,
    /// Under a `[needed]` heading: an image without it cannot be traced.
    pub needed: bool,
    /// Only for this architecture (`[needed x86_64]`).
    pub arch: Option<Arch>,
}

/// The fragment's options, each tagged by the last `# [...]` heading above it.
pub fn requirements() -> Vec<Requirement> {
    let mut needed = false;
    let mut arch = None;
    let mut out = Vec::new();
    for line in FRAGMENT.lines() {
        if let Some(tag) = line.strip_prefix("# [").and_then(|rest| rest.split_once(']')) {
            let mut words = tag.0.split_whitespace();
            needed = words.next() == Some("needed");
            arch = match words.next() {
                Some("x86_64") => Some(Arch::X86_64),
                Some("arm64") => Some(Arch::Arm64),
                _ => None,
            };
        } else if let Some((option, value)) = line.split_once('=')
            && option.starts_with("CONFIG_")
        {
            out.push(Requirement {
                option,
                value,
                needed,
                arch,
            });
        }
    }
    out
}

/// The options set in a `.config` text (`# CONFIG_X is not set` is absent).
fn parse(config: &str) -> HashMap<&str, &str> {
    config
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(option, _)| option.starts_with("CONFIG_"))
        .collect()
}

/// The fragment's options that `config` lacks for an `arch` kernel: every
/// one (`all`, for a kernel built from the fragment) or the needed ones.
pub fn missing(config: &str, arch: Arch, all: bool) -> Vec<&'static str> {
    let set = parse(config);
    requirements()
        .into_iter()
        .filter(|r| (all || r.needed) && r.arch.is_none_or(|a| a == arch))
        .filter(|r| set.get(r.option) != Some(&r.value))
        .map(|r| r.option)
        .collect()
}

/// The one line that refuses a kernel for `missing` options.
pub fn refusal(whose: &str, missing: &[&str]) -> String {
    format!(
        "{whose} lacks {}, which the lab's guests need (see `mprotect-trace lab --print-config`)",
        missing.join(", ")
    )
}

/// An image's config, and where it was found: inside the image
/// (`CONFIG_IKCONFIG`, readable where the kernel is not compressed), or a
/// file beside it: `config-VERSION` for `vmlinuz-VERSION`, `config` (a
/// Debian 7.x package's modules directory), or the build directory's
/// `.config` of `O/arch/*/boot/bzImage`.
pub fn of_image(image: &Path) -> Option<(String, PathBuf)> {
    if let Some(text) = std::fs::read(image).ok().as_deref().and_then(ikconfig) {
        return Some((text, image.to_path_buf()));
    }
    let dir = image.parent()?;
    let name = image.file_name()?.to_string_lossy().into_owned();
    let mut candidates = Vec::new();
    if let Some((_, version)) = name.split_once('-') {
        candidates.push(dir.join(format!("config-{version}")));
    }
    candidates.push(dir.join("config"));
    candidates.push(dir.join(".config"));
    candidates.extend(image.ancestors().nth(4).map(|build| build.join(".config")));
    candidates
        .into_iter()
        .find_map(|path| Some((std::fs::read_to_string(&path).ok()?, path)))
        .filter(|(text, _)| text.contains("CONFIG_"))
}

/// The config a kernel carries inside itself: gzip between the
/// `IKCFG_ST` and `IKCFG_ED` markers.
fn ikconfig(bytes: &[u8]) -> Option<String> {
    const START: &[u8] = b"IKCFG_ST";
    let at = bytes.windows(START.len()).position(|w| w == START)? + START.len();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[at..])
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_tags_each_option_with_its_section() {
        let all = requirements();
        let find = |name: &str| all.iter().find(|r| r.option == name).cloned().unwrap();
        assert_eq!(find("CONFIG_PCI").arch, Some(Arch::X86_64));
        assert!(find("CONFIG_PCI").needed);
        assert!(find("CONFIG_UNIX").needed && find("CONFIG_UNIX").arch.is_none());
        assert!(find("CONFIG_KPROBES").needed);
        assert!(find("CONFIG_DEBUG_INFO_BTF").needed);
        assert!(!find("CONFIG_PVH").needed);
        assert!(all.iter().all(|r| r.value == "y"));
    }

    #[test]
    fn a_config_lacking_options_is_refused_by_name() {
        let full: String = requirements()
            .iter()
            .map(|r| format!("{}={}\n", r.option, r.value))
            .collect();
        assert!(missing(&full, Arch::X86_64, true).is_empty());
        let without = full
            .replace("CONFIG_KPROBES=y\n", "# CONFIG_KPROBES is not set\n")
            .replace("CONFIG_DEBUG_INFO_BTF=y\n", "CONFIG_DEBUG_INFO_BTF=m\n")
            .replace("CONFIG_PVH=y\n", "");
        assert_eq!(
            missing(&without, Arch::X86_64, false),
            ["CONFIG_KPROBES", "CONFIG_DEBUG_INFO_BTF"]
        );
        assert_eq!(
            missing(&without, Arch::X86_64, true),
            ["CONFIG_KPROBES", "CONFIG_DEBUG_INFO_BTF", "CONFIG_PVH"]
        );
        // An arm64 kernel is not asked for x86's power-off path.
        let no_pci = full.replace("CONFIG_PCI=y\n", "");
        assert!(missing(&no_pci, Arch::Arm64, false).is_empty());
        assert_eq!(missing(&no_pci, Arch::X86_64, false), ["CONFIG_PCI"]);
        assert_eq!(
            refusal("kernel image /boot/bzImage", &["CONFIG_KPROBES"]),
            "kernel image /boot/bzImage lacks CONFIG_KPROBES, which the lab's guests need (see `mprotect-trace lab --print-config`)"
        );
    }

    #[test]
    fn an_image_carries_its_config_or_has_it_beside_it() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("mprotect-trace-lab-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // An uncompressed image (arm64 Image) with IKCONFIG.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"CONFIG_KPROBES=y\n").unwrap();
        let mut image = b"\0\0kernel text IKCFG_ST".to_vec();
        image.extend(gz.finish().unwrap());
        image.extend(b"IKCFG_ED more text");
        std::fs::write(dir.join("Image"), &image).unwrap();
        let (text, from) = of_image(&dir.join("Image")).unwrap();
        assert_eq!((text.as_str(), from), ("CONFIG_KPROBES=y\n", dir.join("Image")));
        // A Debian 6.x package: boot/vmlinuz-V beside boot/config-V.
        std::fs::write(dir.join("vmlinuz-6.12.1-cloud-amd64"), b"compressed").unwrap();
        assert_eq!(of_image(&dir.join("vmlinuz-6.12.1-cloud-amd64")), None);
        std::fs::write(dir.join("config-6.12.1-cloud-amd64"), "CONFIG_UNIX=y\n").unwrap();
        assert_eq!(
            of_image(&dir.join("vmlinuz-6.12.1-cloud-amd64")).map(|(_, from)| from),
            Some(dir.join("config-6.12.1-cloud-amd64"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
