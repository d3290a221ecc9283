use which::which;

/// The eBPF crate links through `bpf-linker`, which cargo does not know
/// about: rebuild when it changes, and fail with the fix when it is missing.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => panic!("bpf-linker not found ({err}): run `cargo xtask setup`"),
    }
}
