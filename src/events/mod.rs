//! Records from the BPF rings, mirrored from `bpf/*.h`, and the walk over their fields.
//! Each mirror derives `plain` so a record is read in place from the ring, without copying.
//! Each family's `render` visits a record's fields through [`Fields`] once, for every
//! output: the JSON line ([`Line`]) and the journal entry (`crate::journal::Entry`).
pub mod anomaly;
pub mod cgroup;
pub mod file;
pub mod network;
pub mod process;
pub mod syscall;

use plain::Plain;

use crate::clock::WallClock;
use crate::json::Line;

pub const COMM_LEN: usize = 16;

/// `struct rw_header` (bpf/common.h): the first 64 bytes of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    pub seq: u64,
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for Header {}

/// `enum rw_event_type` (bpf/common.h).
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const EXIT: u32 = 2;
    pub const FORK: u32 = 3;
    pub const OPEN: u32 = 4;
    pub const CONNECT: u32 = 5;
    pub const ACCEPT: u32 = 6;
    pub const CLOSE: u32 = 7;
    pub const SYSCALL: u32 = 8;
    pub const CGROUP_MKDIR: u32 = 9;
    pub const CGROUP_RMDIR: u32 = 10;
    pub const CGROUP_ATTACH: u32 = 11;
    pub const OOM_KILL: u32 = 12;
    pub const ANOMALY: u32 = 13;
}

/// The `type` field of the JSON line.
pub fn type_name(kind: u32) -> Option<&'static str> {
    Some(match kind {
        kind::EXEC => "exec",
        kind::EXIT => "exit",
        kind::FORK => "fork",
        kind::OPEN => "open",
        kind::CONNECT => "connect",
        kind::ACCEPT => "accept",
        kind::CLOSE => "close",
        kind::SYSCALL => "syscall",
        kind::CGROUP_MKDIR => "cgroup_mkdir",
        kind::CGROUP_RMDIR => "cgroup_rmdir",
        kind::CGROUP_ATTACH => "cgroup_attach",
        kind::OOM_KILL => "oom_kill",
        kind::ANOMALY => "anomaly",
        _ => return None,
    })
}

/// Why a record could not be rendered (counted per ring as decode errors).
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    Short { kind: u32, len: usize },
    UnknownType(u32),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Short { kind, len } => {
                write!(f, "record of type {kind} is too short ({len} bytes)")
            }
            DecodeError::UnknownType(k) => write!(f, "unknown record type {k}"),
        }
    }
}

/// Reads a `T` in place from the start of a ring record.
pub fn view<T: Plain>(data: &[u8], kind: u32) -> Result<&T, DecodeError> {
    plain::from_bytes(data).map_err(|_| DecodeError::Short {
        kind,
        len: data.len(),
    })
}

/// The bytes of a NUL-terminated C string buffer, without the NUL.
pub fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// `b[..len]`, clamped to the buffer (the kernel side bounds `len`, this guards it).
pub fn prefix(b: &[u8], len: u32) -> &[u8] {
    &b[..(len as usize).min(b.len())]
}

/// A writer of one event's fields, in the order the JSON schema gives them. Keys are the
/// JSON keys (lower-case snake case); each output maps them its own way.
pub trait Fields {
    fn u64(&mut self, k: &str, v: u64);
    fn i64(&mut self, k: &str, v: i64);
    fn bool(&mut self, k: &str, v: bool);
    /// Text known to be valid UTF-8 (names chosen by the daemon).
    fn str(&mut self, k: &str, v: &str);
    /// Text formatted in place (an IP address, `unknown(N)`): one line.
    fn display(&mut self, k: &str, v: impl std::fmt::Display);
    /// Bytes from the kernel: any bytes, kept exact.
    fn bytes(&mut self, k: &str, v: &[u8]);
    /// A list of byte strings (argv).
    fn bytes_list<'b>(&mut self, k: &str, items: impl Iterator<Item = &'b [u8]> + Clone);
    fn u64_list(&mut self, k: &str, v: &[u64]);
    /// Text written by `f` straight into the output: printable ASCII without quotes or
    /// backslashes (flag names, a timestamp), so it needs no escaping anywhere.
    fn ascii_with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>));
}

// Inlined into each family's walk: the JSON path must cost what it did before the trait.
impl Fields for Line<'_> {
    #[inline(always)]
    fn u64(&mut self, k: &str, v: u64) {
        Line::u64(self, k, v)
    }
    #[inline(always)]
    fn i64(&mut self, k: &str, v: i64) {
        Line::i64(self, k, v)
    }
    #[inline(always)]
    fn bool(&mut self, k: &str, v: bool) {
        Line::bool(self, k, v)
    }
    #[inline(always)]
    fn str(&mut self, k: &str, v: &str) {
        Line::str(self, k, v)
    }
    #[inline(always)]
    fn display(&mut self, k: &str, v: impl std::fmt::Display) {
        Line::display(self, k, v)
    }
    #[inline(always)]
    fn bytes(&mut self, k: &str, v: &[u8]) {
        Line::bytes(self, k, v)
    }
    #[inline(always)]
    fn bytes_list<'b>(&mut self, k: &str, items: impl Iterator<Item = &'b [u8]> + Clone) {
        Line::bytes_list(self, k, items)
    }
    #[inline(always)]
    fn u64_list(&mut self, k: &str, v: &[u64]) {
        Line::u64_list(self, k, v)
    }
    #[inline(always)]
    fn ascii_with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.raw_with(k, |b| {
            b.push(b'"');
            f(b);
            b.push(b'"');
        })
    }
}

/// Renders one ring record as one JSON line appended to `buf`.
pub fn render(
    ring: &str,
    clock: &WallClock,
    data: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let h: &Header = view(data, 0)?;
    all_or_nothing(buf, |buf| {
        let mut line = Line::begin(buf);
        walk(ring, clock, h, data, &mut line)?;
        line.end();
        Ok(())
    })
}

/// Runs `f`, appending to `buf`; on an error `buf` is cut back: never half a record.
pub(crate) fn all_or_nothing(
    buf: &mut Vec<u8>,
    f: impl FnOnce(&mut Vec<u8>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mark = buf.len();
    let r = f(buf);
    if r.is_err() {
        buf.truncate(mark);
    }
    r
}

/// Visits every field of one record (whose header is `h`): `type`, `ring`, the header's
/// fields, then the type's own. On an error some fields may have been written.
pub fn walk(
    ring: &str,
    clock: &WallClock,
    h: &Header,
    data: &[u8],
    f: &mut impl Fields,
) -> Result<(), DecodeError> {
    let name = type_name(h.kind).ok_or(DecodeError::UnknownType(h.kind))?;
    f.str("type", name);
    f.str("ring", ring);
    write_common(f, h, clock);
    match h.kind {
        kind::EXEC | kind::EXIT | kind::FORK => process::render(h.kind, data, f),
        kind::OPEN => file::render(h.kind, data, f),
        kind::SYSCALL => syscall::render(h.kind, data, f),
        kind::CGROUP_MKDIR | kind::CGROUP_RMDIR | kind::CGROUP_ATTACH | kind::OOM_KILL => {
            cgroup::render(h.kind, data, f)
        }
        kind::ANOMALY => anomaly::render(data, f),
        kind::CONNECT | kind::ACCEPT | kind::CLOSE => network::render(h.kind, data, f),
        k => Err(DecodeError::UnknownType(k)),
    }
}

fn write_common(line: &mut impl Fields, h: &Header, clock: &WallClock) {
    line.u64("seq", h.seq);
    line.ascii_with("ts", |b| clock.write_rfc3339(b, h.ts_ns));
    line.u64("ts_ns", h.ts_ns);
    line.u64("pid", h.pid.into());
    line.u64("tid", h.tid.into());
    line.u64("ppid", h.ppid.into());
    line.u64("uid", h.uid.into());
    line.u64("gid", h.gid.into());
    line.bytes("comm", cstr(&h.comm));
    line.u64("cgroup_id", h.cgroup_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn header_is_64_bytes() {
        assert_eq!(size_of::<Header>(), 64);
    }

    #[test]
    fn short_and_unknown_records_are_errors_and_leave_no_output() {
        let clock = WallClock::default();
        let mut buf = b"keep\n".to_vec();
        assert!(matches!(
            render("process", &clock, &[0u8; 10], &mut buf),
            Err(DecodeError::Short { .. })
        ));
        let mut rec = vec![0u8; 64];
        rec[24] = 99;
        assert_eq!(
            render("process", &clock, &rec, &mut buf),
            Err(DecodeError::UnknownType(99))
        );
        assert_eq!(buf, b"keep\n");
    }
}
