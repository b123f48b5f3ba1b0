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
    object: include_bytes!(concat!(env!("OUT_DIR"), "/syscall.bpf.o")),
    ring_size: MIB,
    ring_min: 512 * KIB,
    ring_max: 64 * MIB,
    record_size: size_of::<SyscallEvent>(),
    kinds: &[(kind::SYSCALL, "syscall")],
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
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::Syscall;
        assert_enum!(f, "rw_syscall_type", [RW_SYSCALL = kind::SYSCALL]);
        assert_enum!(
            f,
            "rw_syscall_limits",
            [RW_SYSCALL_MAX_NR = syscalls::MAX_NR]
        );
    }
}
