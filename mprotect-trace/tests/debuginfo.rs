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

/// The running kernel's release, as `uname -r` says it.
fn release() -> String {
    let output = Command::new("uname").arg("-r").output().expect("uname");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Inline sites are a kernel build's: `run` refuses a sites file or a
/// vmlinux of another build, or a file that is neither, in one line,
/// before it creates its output directory or attaches anything.
#[test]
fn inline_sites_of_another_kernel_are_refused_before_anything_is_made() {
    let Some(running) = mprotect_trace::kernel::identity::running_build_id() else {
        common::skip(
            "inline_sites_of_another_kernel_are_refused_before_anything_is_made",
            "this kernel exports no build id in /sys/kernel/notes",
        );
        return;
    };
    let dir = common::out_dir("debuginfo", "sites");
    std::fs::create_dir_all(&dir).unwrap();
    let other = std::env::current_exe().unwrap();
    let other_id = readelf_build_id(&other);
    let sites = dir.join("sites.json");
    std::fs::write(
        &sites,
        format!(r#"{{"build_id": "{other_id}", "vmlinux": "elsewhere", "arch": "x86_64", "functions": []}}"#),
    )
    .unwrap();
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let out = dir.join("run");
    let refused = |args: &[&std::ffi::OsStr]| -> String {
        let output = common::binary()
            .arg("run")
            .args(args)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(!out.exists(), "{args:?} created the output directory");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr
    };
    let release = release();
    assert_eq!(
        refused(&["--inline-sites".as_ref(), sites.as_os_str()]),
        format!(
            "error: --inline-sites {} is for the kernel with build id {other_id}, not this one ({release}, {running}): give this kernel's\n",
            sites.display()
        )
    );
    assert_eq!(
        refused(&["--vmlinux".as_ref(), other.as_os_str()]),
        format!(
            "error: --vmlinux {} is for the kernel with build id {other_id}, not this one ({release}, {running}): give this kernel's\n",
            other.display()
        )
    );
    assert!(
        refused(&["--inline-sites".as_ref(), junk.as_os_str()]).starts_with(&format!(
            "error: --inline-sites {} is not a sites file: write one with `mprotect-trace inline-sites --vmlinux PATH -o FILE`: ",
            junk.display()
        ))
    );
    assert!(
        refused(&["--inline-sites".as_ref(), "/nonexistent/sites.json".as_ref()])
            .starts_with("error: --inline-sites /nonexistent/sites.json: cannot read it: No such file or directory")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `inline-sites` reads only a vmlinux that exists and has DWARF.
#[test]
fn inline_sites_needs_a_vmlinux_with_dwarf() {
    let missing = common::binary()
        .args(["inline-sites", "--vmlinux", "/nonexistent/vmlinux"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: --vmlinux /nonexistent/vmlinux does not exist\n"
    );
    // Debian's coreutils are stripped: an ELF with no .debug_info.
    let stripped = Path::new("/bin/true");
    let output = common::binary()
        .args(["inline-sites", "--vmlinux"])
        .arg(stripped)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: /bin/true has no DWARF (.debug_info): give the debug vmlinux (Debian: linux-image-<version>-dbg)\n"
    );
    assert!(output.stdout.is_empty());
}
