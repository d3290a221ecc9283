//! `cargo xtask fleet-check`: `mprotect-trace fleet run` with the real
//! `ansible-playbook` on three hosts made on this machine: network
//! namespaces, each with its own address on a bridge and its own sshd
//! (key authentication, with keys made for the test). The playbook runs a
//! small A/B on each; one host is given a time limit it cannot meet and
//! fails mid-run; a fourth, at an address nothing has, is unreachable.
//! The fleet report must list both with their errors, and give
//! the other two the figures `mprotect-trace compare` recomputes from
//! their fetched reports.
//!
//! No traffic leaves the machine: Ansible runs in a namespace of its own
//! whose only links are loopback and the bridge to the three hosts; it has
//! no default route, so no address outside them is reachable from there.
//! The namespaces (and with them the bridge and the veths) and the sshds
//! are removed at the end, whatever happened.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::command::{cargo, output_of, release_binary, run_checked, succeeds, workspace_root};

/// The controller's namespace; the hosts' are `mpt-fleet-h1` ...
const CONTROLLER: &str = "mpt-fleet-ctl";
const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
/// The host that gets a time limit it cannot meet.
const SABOTAGED: &str = "h3";
const SABOTAGED_LIMIT_S: u64 = 1;
/// An inventory host at an address of the bridge that nothing has: unreachable.
const UNREACHABLE: &str = "h4";
const UNREACHABLE_ADDRESS: &str = "10.226.26.14";
/// A private /24 that exists only inside the namespaces made here.
const SUBNET: &str = "10.226.26";
/// Each side 4 runs: the fewest a significance claim can rest on. A run
/// of this size takes about 0.3 s; 8 of them cannot fit in 1 s.
const AB: [&str; 7] = [
    "ab",
    "--repeat",
    "4",
    "--a",
    "--mapping-mb 4 --iterations 20",
    "--b",
    "--mapping-mb 4 --iterations 20 --no-touch",
];
/// How long an sshd may take to say it listens.
const SSHD_READY: Duration = Duration::from_secs(30);

fn namespace(host: &str) -> String {
    format!("mpt-fleet-{host}")
}

fn address(index: usize) -> String {
    format!("{SUBNET}.{}", 11 + index)
}

fn ip(args: &[&str]) -> Result<()> {
    run_checked(Command::new("ip").args(args))
}

/// The namespaces and sshds of the test; dropping it removes them.
struct Hosts {
    namespaces: Vec<String>,
    sshds: Vec<Child>,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for sshd in &mut self.sshds {
            // The listener's session children ended with Ansible's
            // connections (no ControlPersist); the listener is ours to stop.
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        for name in self.namespaces.iter().rev() {
            if !succeeds(Command::new("ip").args(["netns", "del", name])) {
                eprintln!("fleet-check: could not remove network namespace {name}: ip netns del {name}");
            }
        }
    }
}

/// Removes the namespaces an earlier, killed check left behind.
fn remove_leftovers() {
    for name in std::iter::once(CONTROLLER.to_owned()).chain(HOSTS.iter().map(|h| namespace(h))) {
        if Path::new("/run/netns").join(&name).exists() {
            let _ = succeeds(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// The controller's namespace with the bridge, and one namespace per host
/// on it. Returns the guard that removes them.
fn make_network() -> Result<Hosts> {
    remove_leftovers();
    let mut hosts = Hosts {
        namespaces: Vec::new(),
        sshds: Vec::new(),
    };
    ip(&["netns", "add", CONTROLLER])?;
    hosts.namespaces.push(CONTROLLER.to_owned());
    ip(&["-n", CONTROLLER, "link", "set", "lo", "up"])?;
    ip(&["-n", CONTROLLER, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", CONTROLLER, "addr", "add", &format!("{SUBNET}.1/24"), "dev", "br0"])?;
    ip(&["-n", CONTROLLER, "link", "set", "br0", "up"])?;
    for (index, host) in HOSTS.iter().enumerate() {
        let ns = namespace(host);
        ip(&["netns", "add", &ns])?;
        hosts.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let veth = format!("v{host}");
        ip(&[
            "-n", CONTROLLER, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["-n", CONTROLLER, "link", "set", &veth, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", address(index)),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    }
    Ok(hosts)
}

/// An ed25519 key pair at `path` (and `path.pub`); returns the public key.
fn key(path: &Path) -> Result<String> {
    run_checked(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "mprotect-trace fleet-check",
                "-f",
            ])
            .arg(path),
    )?;
    let public = path.with_extension("pub");
    let text = std::fs::read_to_string(&public).with_context(|| format!("reading {}", public.display()))?;
    Ok(text.trim().to_owned())
}

/// Starts an sshd in the host's namespace and waits until it says it
/// listens (sd_notify's READY=1 on a socket of ours, which Debian's sshd
/// sends after binding).
fn start_sshd(dir: &Path, host: &str, index: usize) -> Result<Child> {
    let host_key = dir.join(format!("{host}-host-key"));
    let public = key(&host_key)?;
    let config = dir.join(format!("{host}-sshd.conf"));
    std::fs::write(
        &config,
        format!(
            "ListenAddress {}\nPort 22\nHostKey {}\nAuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile none\nSubsystem sftp internal-sftp\n",
            address(index),
            host_key.display(),
            dir.join("authorized_keys").display()
        ),
    )?;
    let socket_path = dir.join(format!("{host}-notify.sock"));
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).with_context(|| format!("binding {}", socket_path.display()))?;
    socket.set_read_timeout(Some(SSHD_READY))?;
    let child = Command::new("ip")
        .args(["netns", "exec", &namespace(host), "/usr/sbin/sshd", "-D", "-e", "-f"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{host}-sshd.log")))?)
        .spawn()
        .context("starting sshd")?;
    let mut message = [0u8; 256];
    let ready = socket
        .recv(&mut message)
        .map(|n| String::from_utf8_lossy(&message[..n]).contains("READY=1"));
    if !matches!(ready, Ok(true)) {
        let log = std::fs::read_to_string(dir.join(format!("{host}-sshd.log"))).unwrap_or_default();
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "sshd of {host} did not say it was ready within {} s ({ready:?}); its log:\n{log}",
            SSHD_READY.as_secs()
        );
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("known_hosts"))
        .and_then(|mut file| {
            use std::io::Write as _;
            writeln!(
                file,
                "{} {}",
                address(index),
                public.rsplit_once(' ').map_or(&*public, |(k, _)| k)
            )
        })
        .context("writing known_hosts")?;
    Ok(child)
}

fn inventory(dir: &Path) -> Result<PathBuf> {
    let mut text = String::from("[fleet]\n");
    for (index, host) in HOSTS.iter().enumerate() {
        let remote = dir.join("remote").join(host);
        text.push_str(&format!(
            "{host} ansible_host={} mprotect_trace_remote_dir={}",
            address(index),
            remote.display()
        ));
        if *host == SABOTAGED {
            text.push_str(&format!(" mprotect_trace_host_time_limit={SABOTAGED_LIMIT_S}"));
        }
        text.push('\n');
    }
    text.push_str(&format!("{UNREACHABLE} ansible_host={UNREACHABLE_ADDRESS}\n"));
    text.push_str(&format!(
        "\n[fleet:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n\
         ansible_ssh_private_key_file={}\n\
         ansible_ssh_common_args='-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes'\n",
        dir.join("client-key").display(),
        dir.join("known_hosts").display()
    ));
    let path = dir.join("inventory.ini");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Checks for the tools the check runs, naming the fix.
fn tools() -> Result<()> {
    for (tool, package) in [
        ("ansible-playbook", "ansible-core"),
        ("/usr/sbin/sshd", "openssh-server"),
        ("ssh-keygen", "openssh-client"),
        ("ip", "iproute2"),
    ] {
        if !succeeds(Command::new("sh").args(["-c", &format!("command -v {tool}")])) {
            bail!("{tool} is missing: install Debian's {package} (cargo xtask setup)");
        }
    }
    // sshd's privilege separation directory, made by its service at boot.
    std::fs::create_dir_all("/run/sshd").context("creating /run/sshd for sshd")?;
    Ok(())
}

/// Returns the number of checks that passed.
pub fn run() -> Result<u64> {
    tools()?;
    run_checked(&mut cargo(["build", "--release", "--package", "mprotect-trace"]))?;
    let binary = release_binary()?;
    let dir = workspace_root().join("target/fleet-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let client = key(&dir.join("client-key"))?;
    std::fs::write(dir.join("authorized_keys"), format!("{client}\n"))?;

    let mut hosts = make_network()?;
    for (index, host) in HOSTS.iter().enumerate() {
        hosts.sshds.push(start_sshd(&dir, host, index)?);
    }
    let routes = output_of(Command::new("ip").args(["-n", CONTROLLER, "route", "show", "table", "all"]))?;
    ensure!(
        !routes.lines().any(|line| line.starts_with("default")),
        "the controller's namespace has a default route:\n{routes}"
    );
    let inventory = inventory(&dir)?;
    let out = dir.join("out");
    let output = Command::new("ip")
        .args(["netns", "exec", CONTROLLER])
        .arg(&binary)
        .args(["fleet", "run", "-i"])
        .arg(&inventory)
        .arg("-o")
        .arg(&out)
        .args(["--time-limit", "300", "--"])
        .args(AB)
        // No ControlPersist: every SSH connection ends with its task, so
        // nothing of Ansible's outlives the run in the hosts' namespaces.
        .env("ANSIBLE_SSH_ARGS", "-o ControlMaster=no")
        .env("ANSIBLE_PIPELINING", "true")
        .stderr(Stdio::inherit())
        .output()
        .context("starting mprotect-trace fleet run")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{stdout}");
    drop(hosts);
    let mut passed = 0;

    // A host without a result makes the fleet run fail.
    ensure!(
        output.status.code() == Some(1),
        "fleet run exited {} with a host that failed",
        output.status
    );
    passed += 1;
    let fleet: Value = serde_json::from_slice(&std::fs::read(out.join("fleet.json"))?)?;
    let missing = fleet["missing"].as_array().context("no missing hosts in fleet.json")?;
    ensure!(
        missing.len() == 2 && missing[0]["host"] == SABOTAGED && missing[1]["host"] == UNREACHABLE,
        "hosts without a result: {missing:?}"
    );
    let why = missing[0]["why"].as_str().unwrap_or_default();
    let expected = format!(
        "failed at \"Run the invocation under the time limit\": timed out: the invocation took longer than the time limit of {SABOTAGED_LIMIT_S} s"
    );
    ensure!(why.starts_with(&expected), "{SABOTAGED}'s error: {why}");
    ensure!(
        stdout
            .lines()
            .any(|line| line.starts_with(&format!("{SABOTAGED}: {expected}"))),
        "the printed report does not list {SABOTAGED} with its error"
    );
    // Mid-run: timeout's exit code, and the tracer's own last words on being stopped.
    let record: Value = serde_json::from_slice(&std::fs::read(out.join(SABOTAGED).join("fleet-error.json"))?)?;
    let last = record["stderr"]
        .as_array()
        .and_then(|lines| lines.last())
        .and_then(Value::as_str)
        .unwrap_or_default();
    ensure!(
        record["rc"] == 124
            && last.starts_with("error: ")
            && (last.contains("the series was stopped") || last.contains("did not complete")),
        "{SABOTAGED} did not fail mid-run: {record}"
    );
    let unreachable = missing[1]["why"].as_str().unwrap_or_default();
    ensure!(
        unreachable.starts_with("failed at \"Stop at an unreachable host\": unreachable: ")
            && unreachable.contains(UNREACHABLE_ADDRESS),
        "{UNREACHABLE}'s error: {unreachable}"
    );
    passed += 1;

    // The two others: every figure as `compare` recomputes it from the
    // host's fetched reports.
    let rows = fleet["hosts"].as_array().context("no hosts in fleet.json")?;
    let names: Vec<&str> = rows.iter().filter_map(|row| row["host"].as_str()).collect();
    ensure!(names == ["h1", "h2"], "hosts with a result: {names:?}");
    for row in rows {
        let host = row["host"].as_str().unwrap_or_default();
        let host_dir = out.join(host);
        let compared: Value = serde_json::from_str(&output_of(
            Command::new(&binary)
                .args(["compare", "--force", "--json"])
                .arg(host_dir.join("a"))
                .arg(host_dir.join("b")),
        )?)?;
        let metric = &compared["against_baseline"][0]["metrics"][0];
        ensure!(metric["metric"] == "iteration ns/page (run median)", "{metric}");
        for (field, recomputed) in [
            ("ratio", &metric["ratio"]),
            ("ratio_interval", &metric["ratio_interval"]),
            ("verdict", &metric["verdict"]),
            ("p_value", &metric["test"]["p_value"]),
        ] {
            ensure!(
                &row[field] == recomputed,
                "{host}: {field} is {} in the fleet report, {recomputed} recomputed by compare",
                row[field]
            );
        }
        let runs = &compared["design"]["runs"];
        ensure!(
            row["runs_a"] == runs[0] && row["runs_b"] == runs[1] && runs[0] == 4 && runs[1] == 4,
            "{host}: runs {}/{} in the fleet report, {runs} by compare",
            row["runs_a"],
            row["runs_b"]
        );
        let report: Value = serde_json::from_slice(&std::fs::read(host_dir.join("a/run-01/report.json"))?)?;
        ensure!(
            row["cpu_model"] == report["cpu_model"] && row["kernel_release"] == report["kernel_release"],
            "{host}: CPU {} and kernel {} in the fleet report, {} and {} in its report",
            row["cpu_model"],
            row["kernel_release"],
            report["cpu_model"],
            report["kernel_release"]
        );
        let machine = &report["machine"];
        for field in [
            "cpu_vendor",
            "cpu_family",
            "threads",
            "memory_kib",
            "numa_nodes",
            "page_size",
        ] {
            ensure!(!machine[field].is_null(), "{host}: no machine.{field} in its report");
        }
        println!(
            "fleet-check: {host}: B/A {} {} {}, {}/{} runs: as compare recomputes them from its reports",
            row["ratio"], row["ratio_interval"], row["verdict"], row["runs_a"], row["runs_b"]
        );
        passed += 1;
    }

    // The summary counts the rows, and every file is written.
    let summary = &fleet["summary"];
    let counted: u64 = ["improved", "regressed", "not_significant", "no_claim"]
        .iter()
        .filter_map(|key| summary[key].as_u64())
        .sum();
    ensure!(counted == 2 && summary["missing"] == 2, "summary: {summary}");
    let mail = std::fs::read_to_string(out.join("fleet-mail.txt"))?;
    ensure!(
        mail.lines().all(|line| line.chars().count() <= 80),
        "fleet-mail.txt has lines over 80 columns:\n{mail}"
    );
    // The page as a reader sees it: the plot there, no label clipped or
    // overlapping, nothing scrolling sideways.
    let layout = crate::layout::check(&dir.join("chromium-profile"), &out.join("fleet.html"), 1)?;
    println!(
        "fleet-check: fleet.html in Chromium: {} plot, {} labels, none clipped or overlapping",
        layout.plots, layout.texts
    );
    passed += 1;
    println!("fleet-check passed: 3 hosts in network namespaces, each with its own sshd, through ansible-playbook");
    Ok(passed)
}
