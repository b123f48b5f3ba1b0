//! The daemon's process context (issue 12): what a process is besides its numbers. The
//! process table ([`procs`]: exe, parent chain, login uid and session, seeded from /proc
//! and kept by the process family's records), the cgroup table ([`cgroups`]: the path of
//! each header's cgroup id, seeded from the cgroup2 mount and kept by the cgroup family's
//! records), the systemd unit, slice and container a cgroup path puts a process in
//! ([`cgroup`]), and user names for uids ([`users`]). The tables are bounded by one clock
//! sweep ([`bounded`]). The rules are tested here on real layouts; the I/O is reading
//! /proc and the cgroup2 mount (at start and on a miss) and re-reading `/etc/passwd` when
//! it changed. Depends on nothing else in the crate.
pub mod bounded;
pub mod cgroup;
pub mod cgroups;
pub mod live;
pub mod procs;
pub mod users;

pub use live::{Change, Context, Event, Found};

/// The kernel's initial PID namespace's inode number (PROC_PID_INIT_INO).
const INIT_PIDNS_INO: u64 = 0xEFFF_FFFC;

/// Whether the /proc at `root` shows the kernel's own pids (the ones events carry): the
/// daemon sees itself there in the initial PID namespace. In a PID namespace of its own
/// (a container) it cannot tell whose pids a /proc shows, so it reads none.
pub fn proc_shows_kernel_pids(root: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(root.join("self/ns/pid")).is_ok_and(|m| m.ino() == INIT_PIDNS_INO)
}

/// `[context]`: what every event is told about its process, and the tables' bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextSettings {
    /// Off (`--no-context`): events carry the header's numbers only, and no table is kept.
    pub enabled: bool,
    /// Parents listed in `ancestors`, nearest first; 0 leaves the field out.
    pub ancestors: usize,
    /// Processes the table holds before it evicts the least recently used.
    pub max_processes: usize,
    /// Cgroups (id -> path) the table holds before it evicts.
    pub max_cgroups: usize,
}

impl ContextSettings {
    /// The deepest `ancestors` accepted: deeper chains cost every event more bytes than
    /// they tell (the chain's root is init or a service manager a few steps up).
    pub const MAX_ANCESTORS: usize = 16;
}

impl Default for ContextSettings {
    /// Sized for a host with tens of thousands of processes; an embedded host uses a
    /// fraction (the tables grow with what runs, up to these bounds).
    fn default() -> Self {
        ContextSettings {
            enabled: true,
            ancestors: 4,
            max_processes: 32_768,
            max_cgroups: 4_096,
        }
    }
}
