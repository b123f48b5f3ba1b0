//! Process family records (bpf/process.h): exec, exit, fork.
use plain::Plain;

use super::{DecodeError, Fields, Header, kind, prefix, view};

pub const FILENAME_LEN: usize = 512;
pub const ARGS_LEN: usize = 1024;
pub const EXEC_FILENAME_TRUNCATED: u32 = 1;
pub const EXEC_ARGS_TRUNCATED: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub hdr: Header,
    pub filename_len: u32,
    pub args_len: u32,
    pub argc: u32,
    pub flags: u32,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
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
    pub pad: u32,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for ExitEvent {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkEvent {
    pub hdr: Header,
    pub child_pid: u32,
    pub child_tid: u32,
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for ForkEvent {}

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
    use crate::families::Family;

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
            [hdr, filename_len, args_len, argc, flags, filename, args]
        );
        assert_layout!(
            Family::Process,
            "exit_event",
            ExitEvent,
            [hdr, exit_code, signal, lifetime_ns, core_dumped, pad]
        );
        assert_layout!(
            Family::Process,
            "fork_event",
            ForkEvent,
            [hdr, child_pid, child_tid]
        );
    }
}
