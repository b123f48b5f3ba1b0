//! The daemon's process context (issue 12): what a process is besides its numbers. The
//! systemd unit, slice and container a cgroup path puts it in ([`cgroup`]), and user
//! names for uids ([`users`]). Pure parsers, so that the rules are tested here on real
//! layouts and the process table only calls them; the one I/O is re-reading
//! `/etc/passwd` when it changed. Depends on nothing else in the crate.
pub mod cgroup;
pub mod users;
