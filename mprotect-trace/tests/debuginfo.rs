//! `--vmlinux` on saved runs: only the vmlinux of the kernel a run
//! recorded (by GNU build id) is accepted; anything else is refused in one
//! line that names the fix, and nothing is written.

mod common;

use std::path::Path;
use std::process::Command;

/// The GNU build id of an ELF file, by `readelf -n` (binutils).
fn readelf_build_id(path: &Path) -> String {
    let output = Command::new("readelf").arg("-n").arg(path).output().expect("readelf");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: "))
        .expect("a build id")
        .to_owned()
}

#[test]
fn a_vmlinux_of_another_kernel_is_refused_in_one_line() {
    let dir = common::out_dir("debuginfo", "run");
    let output = common::binary()
        .args(["run", "--iterations", "10", "--mapping-mb", "4", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = common::report(&dir);
    let kernel_id = report
        .kernel_identity
        .as_ref()
        .and_then(|k| k.build_id.clone())
        .unwrap();
    // Any ELF file with a build id that is not this kernel's: this test's binary's.
    let other = std::env::current_exe().unwrap();
    let other_id = readelf_build_id(&other);
    let expected = format!(
        "error: --vmlinux {} has build id {other_id}, not {kernel_id} of the run's kernel {}: give that kernel's vmlinux (Debian: its -dbg package)\n",
        other.display(),
        report.kernel_release
    );
    for subcommand in ["report", "plot"] {
        let before: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        let output = common::binary()
            .arg(subcommand)
            .arg("--vmlinux")
            .arg(&other)
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{subcommand}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), expected, "{subcommand}");
        assert!(output.stdout.is_empty(), "{subcommand}");
        let after: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(before, after, "{subcommand} wrote files");
    }
    let compared = common::binary()
        .args(["compare", "--vmlinux"])
        .arg(&other)
        .arg(&dir)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(compared.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&compared.stderr),
        format!(
            "error: --vmlinux {} (build id {other_id}) is the vmlinux of none of these runs' kernels: give each kernel's own\n",
            other.display()
        )
    );
    let missing = common::binary()
        .args(["report", "--vmlinux", "/nonexistent/vmlinux"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: --vmlinux /nonexistent/vmlinux does not exist\n"
    );
}
