//! Host set-up the daemon and `check` need: tracefs, the memlock limit, libbpf's log.
use std::path::Path;

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// Makes sure tracefs is mounted: syscall tracepoints are attached through it. Returns
/// where it is, or why it is not there (then those programs fail to attach and are
/// reported; tp_btf and raw_tp programs do not need it).
pub fn ensure_tracefs() -> Result<String, String> {
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
        Err(e) => Err(format!(
            "tracefs is not mounted and mounting it on {TRACEFS} failed: {e}; \
             run `mount -t tracefs nodev {TRACEFS}` as root"
        )),
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
