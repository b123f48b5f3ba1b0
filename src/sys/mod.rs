//! Host set-up the daemon and `check` need: tracefs, the memlock limit, libbpf's log;
//! and replacing a file safely as root.
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub mod clock;
pub mod elf;
pub mod ldcache;

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// The process's exit statuses (sysexits.h), one place for every error type's
/// [`Exit::exit_code`].
pub mod exit {
    /// A runtime failure: the kernel, a socket, a file refused.
    pub const RUNTIME: u8 = 1;
    /// EX_USAGE: the command line is wrong (an unknown option, a missing value).
    pub const USAGE: u8 = 64;
    /// EX_DATAERR: an input file's content is wrong (a trace line that is not one).
    pub const DATAERR: u8 = 65;
    /// EX_NOINPUT: an input file or directory cannot be read.
    pub const NOINPUT: u8 = 66;
    /// EX_CONFIG: a configuration value is wrong (in the file or on the command line).
    pub const CONFIG: u8 = 78;
}

/// An error that knows the exit status the process ends with when it stops there.
pub trait Exit {
    fn exit_code(&self) -> u8;
}

/// Host set-up that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "tracefs is not mounted and mounting it on {dir} failed: {0}; run `mount -t tracefs nodev {dir}` as root",
        dir = TRACEFS
    )]
    Tracefs(nix::Error),
}

impl Exit for Error {
    fn exit_code(&self) -> u8 {
        exit::RUNTIME
    }
}

/// Makes sure tracefs is mounted: syscall tracepoints are attached through it. Returns
/// where it is, or why it is not there (then those programs fail to attach and are
/// reported; tp_btf and raw_tp programs do not need it).
pub fn ensure_tracefs() -> Result<String, Error> {
    if let Some(p) = tracefs_dir() {
        return Ok(format!("{} (mounted)", p.display()));
    }
    match nix::mount::mount(
        Some("nodev"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    ) {
        Ok(()) => Ok(format!("{TRACEFS} (mounted by ringwarden)")),
        Err(e) => Err(Error::Tracefs(e)),
    }
}

/// Where tracefs is mounted, if it is.
pub fn tracefs_dir() -> Option<&'static Path> {
    [TRACEFS, DEBUGFS_TRACING]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
}

/// Kernels >= 5.11 charge BPF memory to the cgroup, so a refused raise is harmless there.
pub fn raise_memlock() {
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK ({}); fine on kernels >= 5.11",
            std::io::Error::last_os_error()
        );
    }
}

/// libbpf's own messages go to the log at debug level (load failures are reported by
/// ringwarden itself, once, in one line).
pub fn route_libbpf_log() {
    fn print(level: libbpf_rs::PrintLevel, msg: String) {
        let msg = msg.trim_end();
        match level {
            libbpf_rs::PrintLevel::Warn => log::debug!(target: "libbpf", "{msg}"),
            _ => log::trace!(target: "libbpf", "{msg}"),
        }
    }
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, print)));
}

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Replaces `path` with `data` through the temporary file `tmp` beside it, then a rename:
/// readers never see half a file. The daemon runs as root and these files often live in
/// directories others can write (a node_exporter textfile directory): a symlink planted
/// at `tmp` is removed, not followed (unlink, then an exclusive create without following
/// links), and the file gets mode 0644 whatever the umask (the unit's is 0077), so a
/// non-root reader such as node_exporter can read it.
pub fn replace_file(path: &Path, tmp: &Path, data: &[u8], sync: bool) -> io::Result<()> {
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)?;
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|()| f.write_all(data))
        .and_then(|()| if sync { f.sync_data() } else { Ok(()) });
    drop(f);
    written
        .and_then(|()| std::fs::rename(tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(tmp);
        })
}

/// Whether a file can be created at `tmp` (then removed), as `replace_file` would.
pub fn can_create(tmp: &Path) -> io::Result<()> {
    replace_file(tmp, tmp, b"", false).and_then(|()| std::fs::remove_file(tmp))
}

/// The kernel's page size (ring sizes are multiples of it).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_file_does_not_follow_a_planted_symlink_and_is_world_readable() {
        let dir = std::env::temp_dir().join(format!("rw-replace-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").expect("victim");
        let (path, tmp) = (dir.join("out.prom"), dir.join(".out.prom.tmp"));
        std::os::unix::fs::symlink(&victim, &tmp).expect("symlink");
        // SAFETY: umask only changes this process's file creation mask (restored below).
        let old = unsafe { libc::umask(0o077) };
        let r = replace_file(&path, &tmp, b"new\n", false);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        r.expect("replaced");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"keep");
        assert_eq!(std::fs::read(&path).expect("out"), b"new\n");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert!(!tmp.exists() && std::fs::symlink_metadata(&tmp).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
