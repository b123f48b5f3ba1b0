//! The one-line summaries journald shows as `MESSAGE`: what every family's `summary`
//! shares. A summary starts with the event type and says who did what, e.g. `exec
//! /usr/bin/ls pid=123 ppid=1 uid=0 argv="ls -l"` or `open /etc/shadow by cat pid=12
//! uid=1000 O_RDONLY failed: EACCES`. Byte strings are shown with control bytes,
//! backslashes and invalid UTF-8 escaped (`\n`, `\\`, `\xff`); the exact bytes are in the
//! `RINGWARDEN_*` fields.
use std::io::Write as _;

use super::anomaly::severity;
use super::record::{Header, cstr};
use crate::units::push_u64;

pub const PRIO_CRIT: u8 = 2;
pub const PRIO_ERR: u8 = 3;
pub const PRIO_WARNING: u8 = 4;
pub const PRIO_NOTICE: u8 = 5;
pub const PRIO_INFO: u8 = 6;

/// An anomaly's severity as a syslog priority: critical → crit, high → err, medium →
/// warning, low → notice (an unknown one → warning: it is still an anomaly).
pub fn severity_priority(severity: u32) -> u8 {
    match severity {
        severity::CRITICAL => PRIO_CRIT,
        severity::HIGH => PRIO_ERR,
        severity::MEDIUM => PRIO_WARNING,
        severity::LOW => PRIO_NOTICE,
        _ => PRIO_WARNING,
    }
}

pub fn named(b: &mut Vec<u8>, name: Option<&str>, n: u64) {
    match name {
        Some(s) => b.extend_from_slice(s.as_bytes()),
        None => {
            let _ = write!(b, "unknown({n})");
        }
    }
}

/// ` by "COMM" pid=P uid=U`: who did it.
pub fn by(b: &mut Vec<u8>, h: &Header) {
    b.extend_from_slice(b" by ");
    quoted(b, cstr(&h.comm));
    pid_uid(b, h);
}

/// ` pid=P uid=U`.
pub fn pid_uid(b: &mut Vec<u8>, h: &Header) {
    b.extend_from_slice(b" pid=");
    push_u64(b, h.pid.into());
    b.extend_from_slice(b" uid=");
    push_u64(b, h.uid.into());
}

/// ` failed: ENOENT` (or `failed: errno N` for a rare one).
pub fn failed(b: &mut Vec<u8>, ret: i64) {
    b.extend_from_slice(b" failed: ");
    // -ret in i128: a record's ret may be i64::MIN, whose negation overflows an i64.
    let errno = -i128::from(ret);
    match i32::try_from(errno).ok().and_then(errno_name) {
        Some(n) => b.extend_from_slice(n.as_bytes()),
        None => {
            let _ = write!(b, "errno {errno}");
        }
    }
}

/// A syscall argument: small numbers and negative ones (fds, -errno, AT_FDCWD) in
/// decimal, anything else (pointers, flag words) in hex.
pub fn number(b: &mut Vec<u8>, v: u64) {
    let s = v as i64;
    let _ = if (-4096..0).contains(&s) {
        write!(b, "{s}")
    } else if v < 0x10000 {
        write!(b, "{v}")
    } else {
        write!(b, "{v:#x}")
    };
}

/// One argv element: quoted with `'...'` when it is empty or holds a space or quote.
pub fn arg(b: &mut Vec<u8>, a: &[u8]) {
    let quote = a.is_empty() || a.iter().any(|&c| c == b' ' || c == b'\'');
    if quote {
        b.push(b'\'');
    }
    text(b, a, true);
    if quote {
        b.push(b'\'');
    }
}

/// Bytes a process chose (a path, a name, comm) in double quotes, escaped as [`text`]
/// does inside quotes: a crafted name cannot end the quotes and make the rest of the line
/// read like another process's action.
pub fn quoted(b: &mut Vec<u8>, v: &[u8]) {
    b.push(b'"');
    text(b, v, true);
    b.push(b'"');
}

/// Kernel bytes as readable one-line text: `\n`, `\t`, `\r`, `\\`, `\xNN` for other
/// control bytes and for bytes that are not UTF-8; inside quotes also `\"` and `\'`.
pub fn text(b: &mut Vec<u8>, v: &[u8], quoted: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex = |b: &mut Vec<u8>, x: u8| {
        b.extend_from_slice(b"\\x");
        b.push(HEX[(x >> 4) as usize]);
        b.push(HEX[(x & 15) as usize]);
    };
    for chunk in v.utf8_chunks() {
        for &x in chunk.valid().as_bytes() {
            match x {
                b'\n' => b.extend_from_slice(b"\\n"),
                b'\t' => b.extend_from_slice(b"\\t"),
                b'\r' => b.extend_from_slice(b"\\r"),
                b'\\' => b.extend_from_slice(b"\\\\"),
                b'"' | b'\'' if quoted => {
                    b.push(b'\\');
                    b.push(x);
                }
                0..0x20 | 0x7f => hex(b, x),
                _ => b.push(x),
            }
        }
        for &x in chunk.invalid() {
            hex(b, x);
        }
    }
}

/// The errno names a failed open or connect most often has.
pub fn errno_name(e: i32) -> Option<&'static str> {
    Some(match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNRESET => "ECONNRESET",
        libc::EISCONN => "EISCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_names_the_errno_and_survives_any_ret() {
        for (ret, want) in [
            (-2, " failed: ENOENT"),
            (-100_000, " failed: errno 100000"),
            (5, " failed: errno -5"),
            (i64::MIN, " failed: errno 9223372036854775808"),
        ] {
            let mut b = Vec::new();
            failed(&mut b, ret);
            assert_eq!(String::from_utf8_lossy(&b), want, "{ret}");
        }
    }
}
