//! What every record shares: the header (`struct rw_header`, bpf/common.h), reading a
//! record in place from the ring, and the walk over its fields. Each family's `render`
//! visits a record's fields through [`Fields`] once, for every output: the JSON line
//! and the journal entry (both in `crate::output`).
use plain::Plain;

use super::Family;
use crate::context::{Context, Event, Found};
use crate::sys::clock::WallClock;

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
    /// The parent chain, nearest first (a list of objects).
    fn ancestors(&mut self, k: &str, list: &[Ancestor<'_>]);
    /// Which output this is: fragments of fields cached for one are not another's.
    const FORMAT: u64;
    /// A writer of this output's fields into `buf`, going on after a record's first
    /// fields: what it writes can be cached and appended with [`Fields::splice`].
    fn continuing(buf: &mut Vec<u8>) -> impl Fields + '_;
    /// Appends fields a [`Fields::continuing`] writer wrote.
    fn splice(&mut self, fields: &[u8]);
}

/// One parent in an event's `ancestors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ancestor<'a> {
    pub pid: u32,
    /// None: not known (a kernel thread, or not readable).
    pub exe: Option<&'a [u8]>,
    pub exe_deleted: bool,
    pub comm: &'a [u8],
}

/// The family of a record type and the type's name.
#[inline]
pub fn type_of(kind: u32) -> Result<(Family, &'static str), DecodeError> {
    let family = Family::of_kind(kind).ok_or(DecodeError::UnknownType(kind))?;
    let name = family
        .spec()
        .type_name(kind)
        .ok_or(DecodeError::UnknownType(kind))?;
    Ok((family, name))
}

/// Runs `f`, appending to `buf`; on an error `buf` is cut back: never half a record.
pub fn all_or_nothing(
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
/// fields, the type's own, then the event's context when `ctx` is given (see
/// [`write_context`]). On an error some fields may have been written.
/// The ring a record came from: its family's name, and its shard when the family has
/// more than one (a record's `seq` counts per shard).
#[derive(Clone, Copy, Debug)]
pub struct RingOf<'a> {
    pub name: &'a str,
    pub shard: Option<u32>,
}

impl<'a> From<&'a str> for RingOf<'a> {
    fn from(name: &'a str) -> Self {
        RingOf { name, shard: None }
    }
}

#[inline(always)]
pub fn walk<F: Fields>(
    ring: RingOf<'_>,
    clock: &WallClock,
    h: &Header,
    data: &[u8],
    ctx: Option<&mut Context>,
    f: &mut F,
) -> Result<(), DecodeError> {
    let (family, name) = type_of(h.kind)?;
    f.str("type", name);
    f.str("ring", ring.name);
    if let Some(shard) = ring.shard {
        f.u64("shard", shard.into());
    }
    write_common(f, h, clock);
    family.render(h.kind, data, f)?;
    if let Some(ctx) = ctx {
        let own = family.spec().own_context.contains(&h.kind);
        let ev = Event {
            pid: h.pid,
            ppid: h.ppid,
            uid: h.uid,
            ts: h.ts_ns,
            cgroup_id: h.cgroup_id,
        };
        let salt = F::FORMAT << 1 | u64::from(own);
        let fields = ctx.fragment(ev, salt, |found, buf| {
            write_context(&mut F::continuing(buf), found, own)
        });
        f.splice(fields);
    }
    Ok(())
}

/// The context fields of an event (issue 12): what the process table knows of its
/// process (`exe`, `login_uid`, `session_id` unless the record carries its own,
/// `ancestors`), or `context: "unknown"`; `user`, the name of the header's uid; and what
/// its cgroup says: `unit`, `cgroup`, `container_runtime`, `container_id`,
/// `container_name`, `pod_uid`. Fields not known are left out, never guessed.
pub fn write_context(f: &mut impl Fields, found: &Found<'_>, own: bool) {
    match &found.process {
        None => f.str("context", "unknown"),
        Some(s) => {
            if !own {
                let ran = s.ran;
                if let Some(x) = ran.exe {
                    f.bytes("exe", x);
                    if ran.exe_deleted {
                        f.bool("exe_deleted", true);
                    }
                }
                if let Some(v) = s.proc.login_uid {
                    f.u64("login_uid", v.into());
                }
                if let Some(v) = s.proc.session_id {
                    f.u64("session_id", v.into());
                }
            }
            if !s.ancestors.is_empty() {
                let mut list = [Ancestor {
                    pid: 0,
                    exe: None,
                    exe_deleted: false,
                    comm: &[],
                }; crate::context::ContextSettings::MAX_ANCESTORS];
                let n = s.ancestors.len().min(list.len());
                for (a, (pid, ran)) in list.iter_mut().zip(&s.ancestors) {
                    *a = Ancestor {
                        pid: *pid,
                        exe: ran.exe,
                        exe_deleted: ran.exe_deleted,
                        comm: ran.comm,
                    };
                }
                f.ancestors("ancestors", &list[..n]);
            }
        }
    }
    if let Some(u) = found.user {
        f.str("user", u);
    }
    if let Some(cg) = found.cgroup {
        let p = &cg.placement;
        if let Some(u) = &p.unit {
            f.str("unit", u);
        }
        f.bytes("cgroup", &cg.path);
        if let Some(c) = &p.container {
            f.str("container_runtime", c.runtime.as_str());
            f.str("container_id", &c.id);
            if let Some(n) = &c.name {
                f.str("container_name", n);
            }
            if let Some(pod) = &c.pod_uid {
                f.str("pod_uid", pod);
            }
        }
    }
}

/// `RW_SEQ_NONE` (bpf/kernel.h): the seq of a record from a 5.10 variant, which has none.
/// Such a record is written without `seq`.
pub const SEQ_NONE: u64 = u64::MAX;

fn write_common(line: &mut impl Fields, h: &Header, clock: &WallClock) {
    if h.seq != SEQ_NONE {
        line.u64("seq", h.seq);
    }
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
}
