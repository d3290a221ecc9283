//! The lab's long-running children (QEMU guests, kernel builds), each in a
//! process group of its own, stopped when the lab gets SIGINT or SIGTERM:
//! a lab that is interrupted leaves no guest or compiler behind, and ends
//! with what it has.
//!
//! The handler only stores the signal and signals the registered groups
//! (an atomic store and `kill` are async-signal-safe); the lab's loop sees
//! [`interrupted`] after the child it waited on has gone, and writes its
//! partial summary.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context as _, Result, bail};

/// Process groups of running children; 0 is a free slot.
static GROUPS: [AtomicI32; 8] = [const { AtomicI32::new(0) }; 8];
/// The signal that interrupted the lab, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_children(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::SeqCst);
    for group in &GROUPS {
        let pgid = group.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill is async-signal-safe; a group already gone is ESRCH.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
        }
    }
}

/// Installs the handler for SIGINT and SIGTERM (the lab's own process only:
/// a child's exec resets it), and makes the lab the reaper of its
/// children's orphans, so that it can wait for a killed group's last
/// member (a compiler whose make died first).
pub fn stop_on_signals() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!("becoming a child subreaper: {}", std::io::Error::last_os_error());
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction whose handler only stores atomics and calls kill.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = stop_children as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            bail!("installing the signal handler: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal that interrupted the lab, if one did.
pub fn interrupted() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// "SIGTERM" or "SIGINT", for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// A child in its own process group, registered until dropped (its whole
/// group is then killed, so nothing it started outlives it).
pub struct Registered {
    pub child: Child,
    slot: usize,
}

/// Spawns `command` in a new process group and registers the group.
pub fn spawn(command: &mut Command, what: &str) -> Result<Registered> {
    if let Some(signal) = interrupted() {
        bail!("interrupted by {}", signal_name(signal));
    }
    let slot = GROUPS
        .iter()
        .position(|group| group.load(Ordering::SeqCst) == 0)
        .context("too many children at once")?;
    // Taken before the spawn, so a signal between spawn and store still
    // finds the slot busy and the loop below sends it again.
    GROUPS[slot].store(-1, Ordering::SeqCst);
    let child = std::os::unix::process::CommandExt::process_group(command, 0).spawn();
    let child = match child {
        Ok(child) => child,
        Err(err) => {
            GROUPS[slot].store(0, Ordering::SeqCst);
            return Err(err).with_context(|| format!("starting {what}"));
        }
    };
    let pid = i32::try_from(child.id()).context("a child's pid does not fit an i32")?;
    GROUPS[slot].store(pid, Ordering::SeqCst);
    if interrupted().is_some() {
        // The signal came while it started: it gets one too.
        // SAFETY: signals the group just made.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
    }
    Ok(Registered { child, slot })
}

impl Registered {
    /// Kills the child's whole group now.
    pub fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signals this child's own group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        // Whatever the group still holds goes with it (make's compilers,
        // QEMU's helpers); then the slot is free.
        let pid = i32::try_from(self.child.id()).ok();
        if let Some(pid) = pid {
            // SAFETY: signals this child's own group; ESRCH when gone.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        // The group's other members were orphaned to this process (a
        // subreaper, see stop_on_signals) as their parents died: reaped
        // here until none is left, so none outlives the lab.
        if let Some(pid) = pid {
            // SAFETY: waits for children of this process in that group; ECHILD ends it.
            while unsafe { libc::waitpid(-pid, std::ptr::null_mut(), 0) } > 0 {}
        }
        GROUPS[self.slot].store(0, Ordering::SeqCst);
    }
}
