//! Syscall family record (bpf/syscall.h): one per completed syscall of the configured set.
use std::io::Write as _;
use std::mem::size_of;

use plain::Plain;

use super::record::{DecodeError, Fields, Header, view};
use super::summary::{PRIO_INFO, by, number};
use super::{KIB, MIB, Spec, syscalls};


/// `enum rw_syscall_type` (bpf/syscall.h): the header's `type`.
pub mod kind {
    pub const SYSCALL: u32 = 8;
}

pub const SPEC: Spec = Spec {
    name: "syscall",
    needs: &[],
    ring_size: MIB,
    ring_min: 512 * KIB,
    ring_max: 64 * MIB,
    // Under a memory budget: counts and samples, the cheapest to lose.
    priority: 1,
    record_size: size_of::<SyscallEvent>(),
    kinds: &[(kind::SYSCALL, "syscall")],
    observe: None,
    own_context: &[],
};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallEvent {
    pub hdr: Header,
    pub nr: u32,
    pub pad: u32,
    pub ret: i64,
    pub latency_ns: u64,
    pub args: [u64; 6],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for SyscallEvent {}

/// `struct syscall_unseen` (bpf/syscall.h): the kernel's counts of what no per-syscall
/// program sees, in the one entry of the `syscall_unseen` map.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallUnseen {
    /// 32-bit compat syscalls by ia32 number.
    pub compat: [u64; syscalls::MAX_NR as usize],
    /// io_uring submissions by opcode.
    pub io_uring: [u64; IO_URING_OPS],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for SyscallUnseen {}

/// `RW_IO_URING_OPS` (bpf/syscall.h).
pub const IO_URING_OPS: usize = 256;

/// The map holding [`SyscallUnseen`].
pub const UNSEEN_MAP: &str = "syscall_unseen";

/// What the syscall family counted but no family reports: the nonzero counts, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unseen {
    /// 32-bit compat syscalls: (ia32 number, count).
    pub compat: Vec<(u32, u64)>,
    /// io_uring submissions: (opcode, count).
    pub io_uring: Vec<(u8, u64)>,
}

impl Unseen {
    /// The nonzero counts of the map's value (`None` if it is not a whole one).
    pub fn from_bytes(b: &[u8]) -> Option<Unseen> {
        let mut v = SyscallUnseen {
            compat: [0; syscalls::MAX_NR as usize],
            io_uring: [0; IO_URING_OPS],
        };
        plain::copy_from_bytes(&mut v, b).ok()?;
        Some(Unseen {
            compat: (0u32..)
                .zip(v.compat)
                .filter(|&(_, n)| n > 0)
                .collect(),
            io_uring: (0u8..=u8::MAX)
                .zip(v.io_uring)
                .filter(|&(_, n)| n > 0)
                .collect(),
        })
    }

    pub fn compat_total(&self) -> u64 {
        self.compat.iter().map(|&(_, n)| n).sum()
    }

    pub fn io_uring_total(&self) -> u64 {
        self.io_uring.iter().map(|&(_, n)| n).sum()
    }
}

/// `enum rw_syscall_filter_bits` (bpf/syscall.h): a `syscall_filter` entry.
pub mod filter {
    /// A 64-bit syscall of the configured set: reported.
    pub const REPORT: u8 = 1;
    /// An ia32 number whose compat syscalls are counted ([`super::COMPAT_WATCHED`]).
    pub const COMPAT: u8 = 2;
}

/// The ia32 syscalls whose compat calls are counted: those a family or rule of
/// ringwarden watches as 64-bit syscalls (numbers from the kernel UAPI header
/// asm/unistd_32.h). Only these: telling a compat syscall apart costs the program a helper
/// call (14-30 ns here), paid by every syscall of the machine with the same number (x86_64
/// fstat is 5, getuid 102, mmap 9, ioctl 16, ...); numbers 335-423 have no x86_64 syscall
/// at all. Not here:
/// execve (the process family and the exec rules see every exec) and io_uring_enter (its
/// submissions are counted by opcode, whoever makes them).
#[cfg(target_arch = "x86_64")]
pub const COMPAT_WATCHED: &[(u32, &str)] = &[
    (5, "open"),
    (8, "creat"),
    (9, "link"),
    (10, "unlink"),
    (15, "chmod"),
    (16, "lchown"),
    (23, "setuid"),
    (26, "ptrace"),
    (38, "rename"),
    (39, "mkdir"),
    (40, "rmdir"),
    (70, "setreuid"),
    (83, "symlink"),
    (90, "mmap"),
    (92, "truncate"),
    (93, "ftruncate"),
    (94, "fchmod"),
    (95, "fchown"),
    (102, "socketcall"),
    (125, "mprotect"),
    (128, "init_module"),
    (138, "setfsuid"),
    (164, "setresuid"),
    (182, "chown"),
    (192, "mmap2"),
    (193, "truncate64"),
    (194, "ftruncate64"),
    (198, "lchown32"),
    (203, "setreuid32"),
    (207, "fchown32"),
    (208, "setresuid32"),
    (212, "chown32"),
    (213, "setuid32"),
    (215, "setfsuid32"),
    (295, "openat"),
    (296, "mkdirat"),
    (298, "fchownat"),
    (301, "unlinkat"),
    (302, "renameat"),
    (303, "linkat"),
    (304, "symlinkat"),
    (306, "fchmodat"),
    (342, "open_by_handle_at"),
    (350, "finit_module"),
    (353, "renameat2"),
    (357, "bpf"),
    (359, "socket"),
    (361, "bind"),
    (362, "connect"),
    (363, "listen"),
    (364, "accept4"),
    (437, "openat2"),
    (452, "fchmodat2"),
];

/// Other architectures' compat syscalls are not told apart yet (bpf/syscall.bpf.c).
#[cfg(not(target_arch = "x86_64"))]
pub const COMPAT_WATCHED: &[(u32, &str)] = &[];

/// The `syscall_filter` entry of number `nr` when `report` says whether it is in the set.
pub fn filter_entry(nr: u32, report: bool) -> u8 {
    let compat = COMPAT_WATCHED.iter().any(|(n, _)| *n == nr);
    (if report { filter::REPORT } else { 0 }) | (if compat { filter::COMPAT } else { 0 })
}

/// The name of a counted ia32 syscall number (`nr_N` for any other).
pub fn ia32_name(nr: u32) -> std::borrow::Cow<'static, str> {
    match COMPAT_WATCHED.iter().find(|(n, _)| *n == nr) {
        Some((_, name)) => (*name).into(),
        None => format!("nr_{nr}").into(),
    }
}

/// io_uring opcodes (`enum io_uring_op`, include/uapi/linux/io_uring.h, as of 6.18),
/// lowercase without `IORING_OP_`; later ones are shown as `op_N`.
const IO_URING_OP: [&str; 63] = [
    "nop", "readv", "writev", "fsync", "read_fixed", "write_fixed", "poll_add", "poll_remove",
    "sync_file_range", "sendmsg", "recvmsg", "timeout", "timeout_remove", "accept",
    "async_cancel", "link_timeout", "connect", "fallocate", "openat", "close", "files_update",
    "statx", "read", "write", "fadvise", "madvise", "send", "recv", "openat2", "epoll_ctl",
    "splice", "provide_buffers", "remove_buffers", "tee", "shutdown", "renameat", "unlinkat",
    "mkdirat", "symlinkat", "linkat", "msg_ring", "fsetxattr", "setxattr", "fgetxattr",
    "getxattr", "socket", "uring_cmd", "send_zc", "sendmsg_zc", "read_multishot", "waitid",
    "futex_wait", "futex_wake", "futex_waitv", "fixed_fd_install", "ftruncate", "bind",
    "listen", "recv_zc", "epoll_wait", "readv_fixed", "writev_fixed", "pipe",
];

/// The name of an io_uring opcode: a known one, or `op_N`.
pub fn io_uring_op_name(op: u8) -> std::borrow::Cow<'static, str> {
    match IO_URING_OP.get(usize::from(op)) {
        Some(name) => (*name).into(),
        None => format!("op_{op}").into(),
    }
}

pub fn render(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    let e: &SyscallEvent = view(data, k)?;
    line.u64("nr", e.nr.into());
    line.str("name", syscalls::name(e.nr).unwrap_or("unknown"));
    line.u64_list("args", &e.args);
    line.i64("ret", e.ret);
    line.u64("latency_ns", e.latency_ns);
    Ok(())
}

/// The journal's one-line summary (see `super::summary`).
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let k = h.kind;
            let e: &SyscallEvent = view(data, k)?;
            match syscalls::name(e.nr) {
                Some(n) => b.extend_from_slice(n.as_bytes()),
                None => {
                    let _ = write!(b, "syscall_{}", e.nr);
                }
            }
            b.push(b'(');
            for (i, &a) in e.args.iter().enumerate() {
                if i > 0 {
                    b.extend_from_slice(b", ");
                }
                number(b, a);
            }
            let _ = write!(b, ") = {}", e.ret);
            by(b, h);
    Ok(PRIO_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::WallClock;
    use crate::family::kind;
    use crate::output::json;

    #[test]
    fn renders_name_args_and_negative_ret() {
        let mut e = SyscallEvent::default();
        e.hdr.kind = kind::SYSCALL;
        e.nr = 121;
        e.ret = -3;
        e.latency_ns = 1500;
        e.args = [1234567, 0, 0, 0, 0, u64::MAX];
        // SAFETY: a repr(C) POD struct viewed as its bytes.
        let bytes = unsafe { plain::as_bytes(&e) };
        let mut buf = Vec::new();
        json::render("syscall", &WallClock::default(), bytes, &mut buf).expect("renders");
        let s = String::from_utf8(buf).expect("utf8");
        assert!(s.contains(r#""nr":121,"name":"getpgid","args":[1234567,0,0,0,0,18446744073709551615],"ret":-3,"latency_ns":1500}"#), "{s}");
        e.nr = 1023;
        // SAFETY: as above.
        let bytes = unsafe { plain::as_bytes(&e) };
        let mut buf = Vec::new();
        json::render("syscall", &WallClock::default(), bytes, &mut buf).expect("renders");
        assert!(String::from_utf8_lossy(&buf).contains(r#""name":"unknown""#));
    }

    #[test]
    fn unseen_keeps_the_nonzero_counts_by_name() {
        let mut v = SyscallUnseen {
            compat: [0; syscalls::MAX_NR as usize],
            io_uring: [0; IO_URING_OPS],
        };
        v.compat[5] = 3;
        v.compat[20] = 2;
        v.compat[999] = 1;
        v.io_uring[18] = 7;
        v.io_uring[255] = 1;
        // SAFETY: a repr(C) POD struct viewed as its bytes.
        let u = Unseen::from_bytes(unsafe { plain::as_bytes(&v) }).expect("whole value");
        assert_eq!(u.compat, vec![(5, 3), (20, 2), (999, 1)]);
        assert_eq!(u.io_uring, vec![(18, 7), (255, 1)]);
        assert_eq!((u.compat_total(), u.io_uring_total()), (6, 8));
        assert_eq!(ia32_name(5), "open");
        assert_eq!(ia32_name(102), "socketcall");
        assert_eq!(ia32_name(20), "nr_20", "getpid: not counted, not named");
        assert_eq!(filter_entry(5, false), filter::COMPAT);
        assert_eq!(filter_entry(5, true), filter::COMPAT | filter::REPORT);
        // 110: x86_64 getppid, ia32 iopl (not counted).
        assert_eq!(filter_entry(110, true), filter::REPORT);
        assert_eq!(filter_entry(110, false), 0);
        assert_eq!(ia32_name(301), "unlinkat");
        assert!(COMPAT_WATCHED.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(io_uring_op_name(18), "openat");
        assert_eq!(io_uring_op_name(16), "connect");
        assert_eq!(io_uring_op_name(62), "pipe");
        assert_eq!(io_uring_op_name(255), "op_255");
        assert_eq!(Unseen::from_bytes(&[0; 8]), None, "a short value");
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
            Family::Syscall,
            "rw_header",
            Header,
            [seq, ts_ns, cgroup_id, kind, pid, tid, ppid, uid, gid, comm]
        );
        assert_layout!(
            Family::Syscall,
            "syscall_event",
            SyscallEvent,
            [hdr, nr, pad, ret, latency_ns, args]
        );
        assert_layout!(
            Family::Syscall,
            "syscall_unseen",
            SyscallUnseen,
            [compat, io_uring]
        );
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::Syscall;
        assert_enum!(f, "rw_syscall_type", [RW_SYSCALL = kind::SYSCALL]);
        assert_enum!(
            f,
            "rw_syscall_limits",
            [
                RW_SYSCALL_MAX_NR = syscalls::MAX_NR,
                RW_IO_URING_OPS = IO_URING_OPS as u32
            ]
        );
        assert_enum!(
            f,
            "rw_syscall_filter_bits",
            [RW_FILTER_REPORT = filter::REPORT, RW_FILTER_COMPAT = filter::COMPAT]
        );
    }
}
