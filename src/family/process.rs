//! Process family records (bpf/process.h): exec, exit, fork.
use std::io::Write as _;
use std::mem::size_of;

use plain::Plain;

use super::path::{self, RESOLVE_DELETED, RESOLVED_LEN};
use super::record::{DecodeError, Fields, Header, cstr, prefix, view};
use super::summary::{PRIO_INFO, arg, quoted};
use super::{KIB, MIB, Observed, Spec, max};
use crate::context::Change;


/// `enum rw_process_type` (bpf/process.h): the header's `type`.
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const EXIT: u32 = 2;
    pub const FORK: u32 = 3;
}

pub const SPEC: Spec = Spec {
    name: "process",
    needs: &[],
    ring_size: 512 * KIB,
    // The sizing spec (appendix B.2) has no process family: its records are the largest
    // (exec: filename and argv), its rate bursty (a build forks thousands of processes a
    // second) but usually low, so it gets network's floor and syscall's ceiling: 256 KiB
    // holds ~150 exec records, 64 MiB absorbs ~5000 execs/s for 2 s with a safety factor
    // of 3.
    ring_min: 256 * KIB,
    ring_max: 64 * MIB,
    // The process rate counts exec, fork and exit alike, so it is costed at exec's size
    // with a full exe path (records are sent variable-size): an overestimate errs toward no
    // loss.
    // Under a memory budget: execs and exits build the process table every other record is read by.
    priority: 5,
    record_size: max(
        size_of::<ExecEvent>() + RESOLVED_LEN,
        max(size_of::<ExitEvent>(), size_of::<ForkEvent>()),
    ),
    kinds: &[(kind::EXEC, "exec"), (kind::EXIT, "exit"), (kind::FORK, "fork")],
    observe: Some(observe),
    own_context: &[kind::EXEC],
};

pub const FILENAME_LEN: usize = 512;
pub const ARGS_LEN: usize = 1024;
pub const EXEC_FILENAME_TRUNCATED: u32 = 1;
pub const EXEC_ARGS_TRUNCATED: u32 = 2;
pub const EXEC_CONTEXT_ONLY: u32 = 4;
/// `RW_UNSET`: a login uid or session never set (a process not started from a login).
pub const UNSET: u32 = u32::MAX;

/// The fixed part of an exec record; `exe_len` bytes of exe follow it in the ring (C:
/// `char exe[]`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub hdr: Header,
    pub filename_len: u32,
    pub args_len: u32,
    pub argc: u32,
    pub flags: u32,
    pub exe_len: u32,
    /// `RESOLVE_*` (super::path).
    pub exe_flags: u32,
    /// The audit login uid and session; [`UNSET`] when not set.
    pub login_uid: u32,
    pub session_id: u32,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
    pub exe: [u8; 0],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for ExecEvent {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitEvent {
    pub hdr: Header,
    pub exit_code: i32,
    pub signal: u32,
    pub lifetime_ns: u64,
    pub core_dumped: u32,
    pub flags: u32,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for ExitEvent {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkEvent {
    pub hdr: Header,
    pub child_pid: u32,
    pub child_tid: u32,
    pub flags: u32,
    pub pad: u32,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for ForkEvent {}

/// The executed file after the fixed part: `exe_len` bytes, clamped to the record.
pub fn exe<'a>(e: &ExecEvent, data: &'a [u8]) -> &'a [u8] {
    prefix(data.get(size_of::<ExecEvent>()..).unwrap_or(&[]), e.exe_len)
}

/// The argv strings of an exec record: NUL-separated, the last one possibly cut short.
pub fn argv(args: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    let args = args.strip_suffix(&[0]).unwrap_or(args);
    args.split(|&b| b == 0).filter(move |_| !args.is_empty())
}

pub fn render(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    match k {
        kind::EXEC => {
            let e: &ExecEvent = view(data, k)?;
            line.bytes("filename", prefix(&e.filename, e.filename_len));
            line.bytes_list("argv", argv(prefix(&e.args, e.args_len)));
            line.u64("argc", e.argc.into());
            line.bool("filename_truncated", e.flags & EXEC_FILENAME_TRUNCATED != 0);
            line.bool("argv_truncated", e.flags & EXEC_ARGS_TRUNCATED != 0);
            // Who logged in, through su and sudo: omitted for processes of no login.
            if e.login_uid != UNSET {
                line.u64("login_uid", e.login_uid.into());
            }
            if e.session_id != UNSET {
                line.u64("session_id", e.session_id.into());
            }
            // What the kernel executed, named from its objects: omitted when it could not
            // be named (never guessed from filename or argv).
            let x = exe(e, data);
            if !x.is_empty() {
                path::render(
                    line,
                    [
                        "exe",
                        "exe_truncated",
                        "exe_deleted",
                        "exe_pseudo",
                        "exe_outside_root",
                    ],
                    x,
                    e.exe_flags,
                );
            }
        }
        kind::EXIT => {
            let e: &ExitEvent = view(data, k)?;
            line.i64("exit_code", e.exit_code.into());
            line.u64("signal", e.signal.into());
            line.bool("core_dumped", e.core_dumped != 0);
            line.u64("lifetime_ns", e.lifetime_ns);
        }
        _ => {
            let e: &ForkEvent = view(data, k)?;
            line.u64("child_pid", e.child_pid.into());
            line.u64("child_tid", e.child_tid.into());
        }
    }
    Ok(())
}

/// Every record of this family keeps the process table: exec, fork and exit.
fn observe<'a>(h: &'a Header, data: &'a [u8]) -> Option<Observed<'a>> {
    let change = match h.kind {
        kind::EXEC => {
            let e: &ExecEvent = view(data, h.kind).ok()?;
            let x = exe(e, data);
            let set = |v: u32| (v != UNSET).then_some(v);
            let exe_flags = e.exe_flags;
            return Some(Observed {
                change: Change::Exec {
                    pid: h.pid,
                    ppid: h.ppid,
                    ts: h.ts_ns,
                    // A cut path is not the file's name: unknown rather than wrong.
                    exe: (!x.is_empty() && exe_flags & path::RESOLVE_TRUNCATED == 0).then_some(x),
                    exe_deleted: exe_flags & RESOLVE_DELETED != 0,
                    comm: cstr(&h.comm),
                    login_uid: set(e.login_uid),
                    session_id: set(e.session_id),
                },
                context_only: e.flags & EXEC_CONTEXT_ONLY != 0,
            });
        }
        kind::FORK => {
            let e: &ForkEvent = view(data, h.kind).ok()?;
            (
                Change::Fork {
                    parent: h.pid,
                    child: e.child_pid,
                    ts: h.ts_ns,
                },
                e.flags,
            )
        }
        kind::EXIT => {
            let e: &ExitEvent = view(data, h.kind).ok()?;
            (Change::Exit { pid: h.pid }, e.flags)
        }
        _ => return None,
    };
    Some(Observed {
        change: change.0,
        context_only: change.1 & EXEC_CONTEXT_ONLY != 0,
    })
}

/// The journal's one-line summary (see `super::summary`).
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let k = h.kind;
    let comm = cstr(&h.comm);
    match k {
        kind::EXEC => {
        let e: &ExecEvent = view(data, k)?;
        quoted(b, prefix(&e.filename, e.filename_len));
        let _ = write!(b, " pid={} ppid={} uid={} argv=\"", h.pid, h.ppid, h.uid);
        for (i, a) in argv(prefix(&e.args, e.args_len)).enumerate() {
            if i > 0 {
                b.push(b' ');
            }
            arg(b, a);
        }
        b.push(b'"');
        if e.flags & EXEC_ARGS_TRUNCATED != 0 {
            let _ = write!(b, " (argv truncated, argc={})", e.argc);
        }
        // The file itself when the name given differs from it (a script's interpreter, a
        // symlink, a relative path).
        let x = exe(e, data);
        if !x.is_empty() && x != prefix(&e.filename, e.filename_len) {
            b.extend_from_slice(b" exe=");
            quoted(b, x);
            if e.exe_flags & RESOLVE_DELETED != 0 {
                b.extend_from_slice(b" (deleted)");
            }
        }
        }
        kind::EXIT => {
        let e: &ExitEvent = view(data, k)?;
        quoted(b, comm);
        let _ = write!(b, " pid={} uid={}", h.pid, h.uid);
        if e.signal != 0 {
            b.extend_from_slice(b" killed by ");
            match signal_name(e.signal) {
                Some(s) => b.extend_from_slice(s.as_bytes()),
                None => {
                    let _ = write!(b, "signal {}", e.signal);
                }
            }
            if e.core_dumped != 0 {
                b.extend_from_slice(b" (core dumped)");
            }
        } else {
            let _ = write!(b, " status={}", e.exit_code);
        }
        let _ = write!(b, " after {:.3}s", e.lifetime_ns as f64 / 1e9);
        }
        _ => {
        let e: &ForkEvent = view(data, k)?;
        quoted(b, comm);
        let _ = write!(b, " pid={} uid={} child_pid={}", h.pid, h.uid, e.child_pid);
        }
    }
    Ok(PRIO_INFO)
}

fn signal_name(s: u32) -> Option<&'static str> {
    Some(match s as i32 {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_splits_on_nul() {
        let v: Vec<&[u8]> = argv(b"ls\0-l\0/tmp\0").collect();
        assert_eq!(v, vec![&b"ls"[..], b"-l", b"/tmp"]);
        let cut: Vec<&[u8]> = argv(b"echo\0abc").collect();
        assert_eq!(cut, vec![&b"echo"[..], b"abc"]);
        assert_eq!(argv(b"").count(), 0);
        let empty_arg: Vec<&[u8]> = argv(b"a\0\0").collect();
        assert_eq!(empty_arg, vec![&b"a"[..], b""]);
    }
}

#[cfg(test)]
mod layout {
    use super::*;
    use crate::assert_layout;
    use crate::family::Family;

    #[test]
    fn mirrors_match_c() {
        assert_layout!(
            Family::Process,
            "rw_header",
            Header,
            [seq, ts_ns, cgroup_id, kind, pid, tid, ppid, uid, gid, comm]
        );
        assert_layout!(
            Family::Process,
            "exec_event",
            ExecEvent,
            [
                hdr,
                filename_len,
                args_len,
                argc,
                flags,
                exe_len,
                exe_flags,
                login_uid,
                session_id,
                filename,
                args,
                exe
            ]
        );
        assert_layout!(
            Family::Process,
            "exit_event",
            ExitEvent,
            [hdr, exit_code, signal, lifetime_ns, core_dumped, flags]
        );
        assert_layout!(
            Family::Process,
            "fork_event",
            ForkEvent,
            [hdr, child_pid, child_tid, flags, pad]
        );
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::Process;
        assert_enum!(
            f,
            "rw_process_type",
            [
                RW_EXEC = kind::EXEC,
                RW_EXIT = kind::EXIT,
                RW_FORK = kind::FORK
            ]
        );
        assert_enum!(
            f,
            "rw_exec_flags",
            [
                RW_EXEC_FILENAME_TRUNCATED = EXEC_FILENAME_TRUNCATED,
                RW_EXEC_ARGS_TRUNCATED = EXEC_ARGS_TRUNCATED,
                RW_EXEC_CONTEXT_ONLY = EXEC_CONTEXT_ONLY,
            ]
        );
    }
}
