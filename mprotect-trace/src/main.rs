mod ebpf_object;
fn main() -> anyhow::Result<()> {
    let ebpf = ebpf_object::load()?;
    for (name, _) in ebpf.programs() {
        println!("{name}");
    }
    Ok(())
}
