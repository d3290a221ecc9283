//! The pseudo file systems a tracer reads, mounted on demand: a fresh
//! machine may have neither tracefs nor securityfs mounted.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Result, bail};

pub const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Clone, Copy, Debug)]
pub enum Mount {
    Tracefs,
    Securityfs,
}

impl Mount {
    fn target(self) -> &'static str {
        match self {
            Self::Tracefs => TRACEFS,
            Self::Securityfs => "/sys/kernel/security",
        }
    }
    fn fs_type(self) -> &'static str {
        match self {
            Self::Tracefs => "tracefs",
            Self::Securityfs => "securityfs",
        }
    }
    /// A file that exists only once the file system is mounted.
    fn probe_path(self) -> &'static str {
        match self {
            Self::Tracefs => "/sys/kernel/tracing/events",
            Self::Securityfs => "/sys/kernel/security/lsm",
        }
    }
}

pub struct MountState {
    pub path: &'static str,
    pub mounted_now: bool,
}

impl MountState {
    pub fn describe(&self) -> String {
        if self.mounted_now {
            format!("mounted at {} now (it was not mounted)", self.path)
        } else {
            format!("mounted at {}", self.path)
        }
    }
}

/// Mounts `mount` at its usual place unless it is there already.
pub fn ensure(mount: Mount) -> Result<MountState> {
    let path = mount.target();
    if Path::new(mount.probe_path()).exists() {
        return Ok(MountState {
            path,
            mounted_now: false,
        });
    }
    let (source, target, fs_type) = (c"nodev", CString::new(path)?, CString::new(mount.fs_type())?);
    // SAFETY: plain strings; no data argument.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fs_type.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        bail!(
            "{} is not mounted and mounting it at {path} failed: {} (mount it as root: mount -t {} nodev {path})",
            mount.fs_type(),
            std::io::Error::last_os_error(),
            mount.fs_type()
        );
    }
    Ok(MountState {
        path,
        mounted_now: true,
    })
}
