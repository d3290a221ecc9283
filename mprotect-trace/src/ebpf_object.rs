//! The eBPF object built by `build.rs`, embedded in the binary.

use anyhow::{Context as _, Result};
use aya::Ebpf;

/// The object's bytes, aligned as aya's ELF parser requires.
pub static BYTES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mprotect-trace"));

/// Loads the embedded object: parses it and creates its maps in the kernel.
/// Programs are loaded one by one later, by whoever attaches them.
pub fn load() -> Result<Ebpf> {
    if BYTES.is_empty() {
        anyhow::bail!(
            "this binary was built without its eBPF object (AYA_BUILD_SKIP was set): rebuild with `cargo build`"
        );
    }
    Ebpf::load(BYTES).context("loading the embedded eBPF object into the kernel")
}
