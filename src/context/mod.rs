//! The daemon's process context (issue 12): what a process is besides its numbers. The
//! process table ([`procs`]: exe, parent chain, login uid and session, seeded from /proc
//! and kept by the process family's records), the systemd unit, slice and container a
//! cgroup path puts a process in ([`cgroup`]), and user names for uids ([`users`]). The
//! rules are tested here on real layouts; the I/O is reading /proc (at start and on a
//! miss) and re-reading `/etc/passwd` when it changed. Depends on nothing else in the
//! crate.
pub mod cgroup;
pub mod procs;
pub mod users;
