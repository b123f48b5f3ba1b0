//! File family records (bpf/file.h): one `open` per completed open, openat or openat2,
//! and one change record (`unlink`, `rmdir`, `mkdir`, `rename`, `chmod`, `chown`, `link`,
//! `symlink`, `truncate`) per completed call that makes one, failed calls included.
use std::io::Write as _;
use std::mem::size_of;

use plain::Plain;

use super::record::{DecodeError, Fields, Header, prefix, view};
use super::summary::{PRIO_INFO, by, failed, quoted};
use super::{MIB, Spec};


/// `enum rw_file_type` (bpf/file.h): the header's `type`.
pub mod kind {
    pub const OPEN: u32 = 4;
    pub const UNLINK: u32 = 14;
    pub const RMDIR: u32 = 15;
    pub const MKDIR: u32 = 16;
    pub const RENAME: u32 = 17;
    pub const CHMOD: u32 = 18;
    pub const CHOWN: u32 = 19;
    pub const LINK: u32 = 20;
    pub const SYMLINK: u32 = 21;
    pub const TRUNCATE: u32 = 22;
}

pub const SPEC: Spec = Spec {
    name: "file",
    needs: &[],
    ring_size: MIB,
    ring_min: MIB,
    ring_max: 256 * MIB,
    // Records are sent variable-size: this is the largest, a change with two full paths
    // and two full resolved names (an open is at most size_of::<OpenEvent>() + RESOLVED_LEN).
    // Under a memory budget: many, and a flood of them is common.
    priority: 3,
    record_size: size_of::<ChangeEvent>() + 2 * (PATH_LEN - 1) + 2 * RESOLVED_LEN,
    kinds: &[
        (kind::OPEN, "open"),
        (kind::UNLINK, "unlink"),
        (kind::RMDIR, "rmdir"),
        (kind::MKDIR, "mkdir"),
        (kind::RENAME, "rename"),
        (kind::CHMOD, "chmod"),
        (kind::CHOWN, "chown"),
        (kind::LINK, "link"),
        (kind::SYMLINK, "symlink"),
        (kind::TRUNCATE, "truncate"),
    ],
    observe: None,
    own_context: &[],
};

pub const PATH_LEN: usize = 512;
pub use super::path::RESOLVED_LEN;

/// `enum rw_open_path_flags`: `OpenEvent::path_flags`.
pub const OPEN_PATH_TRUNCATED: u32 = 1;
pub const OPEN_PATH_UNREADABLE: u32 = 2;
pub const OPEN_PATH_CHANGED: u32 = 4;
pub const OPEN_PATH_UNCHECKED: u32 = 8;
pub const OPEN_RESOLVED_TRUNCATED: u32 = 16;
pub const OPEN_RESOLVED_DELETED: u32 = 32;
pub const OPEN_RESOLVED_PSEUDO: u32 = 64;
pub const OPEN_RESOLVED_OUTSIDE_ROOT: u32 = 128;
pub const OPEN_RESOLVED_UNAVAILABLE: u32 = 256;
/// `RW_OPEN_RESOLVE_SHIFT`: the RW_RESOLVE_* flags of resolved_path sit this far up.
const OPEN_RESOLVE_SHIFT: u32 = 4;
const _: () = assert!(OPEN_RESOLVED_TRUNCATED == super::path::RESOLVE_TRUNCATED << OPEN_RESOLVE_SHIFT);
const _: () =
    assert!(OPEN_RESOLVED_OUTSIDE_ROOT == super::path::RESOLVE_OUTSIDE_ROOT << OPEN_RESOLVE_SHIFT);

/// `enum rw_open_syscall`.
pub const SYS_OPEN: u32 = 1;
pub const SYS_OPENAT: u32 = 2;
pub const SYS_OPENAT2: u32 = 3;

/// The fixed part of an open record; `resolved_len` bytes of resolved_path follow it
/// in the ring (C: `char resolved[]`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OpenEvent {
    pub hdr: Header,
    pub ret: i64,
    pub flags: u64,
    pub ino: u64,
    pub mode: u32,
    pub dfd: i32,
    pub path_len: u32,
    pub syscall: u32,
    pub path_flags: u32,
    pub resolved_len: u32,
    pub path: [u8; PATH_LEN],
    pub resolved: [u8; 0],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for OpenEvent {}

/// The resolved path after the fixed part: `resolved_len` bytes, clamped to the record.
pub fn resolved<'a>(e: &OpenEvent, data: &'a [u8]) -> &'a [u8] {
    prefix(data.get(size_of::<OpenEvent>()..).unwrap_or(&[]), e.resolved_len)
}

pub fn syscall_name(sc: u32) -> &'static str {
    match sc {
        SYS_OPEN => "open",
        SYS_OPENAT => "openat",
        SYS_OPENAT2 => "openat2",
        _ => "unknown",
    }
}

/// The kernel's O_LARGEFILE: libc says 0 on 64-bit targets, but the kernel has a bit
/// for it (and 32-bit callers or raw syscalls may set it). 0 where not known.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "s390x"
))]
const O_LARGEFILE: u64 = 0o100000;
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const O_LARGEFILE: u64 = 0o400000;
#[cfg(any(target_arch = "powerpc", target_arch = "powerpc64"))]
const O_LARGEFILE: u64 = 0o200000;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "s390x",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
)))]
const O_LARGEFILE: u64 = 0;

const fn o(f: libc::c_int) -> u64 {
    f as u32 as u64
}

/// O_SYNC and O_TMPFILE are two bits each; their own bit alone gets the kernel's name.
const O_SYNC: u64 = o(libc::O_SYNC);
const O_TMPFILE: u64 = o(libc::O_TMPFILE);
const SYNC_BIT: u64 = O_SYNC & !o(libc::O_DSYNC);
const TMPFILE_BIT: u64 = O_TMPFILE & !o(libc::O_DIRECTORY);
const O_ACCMODE: u64 = o(libc::O_ACCMODE);

/// Single bits in print order (the composites are handled first).
const BITS: &[(u64, &str)] = &[
    (o(libc::O_CREAT), "O_CREAT"),
    (o(libc::O_EXCL), "O_EXCL"),
    (o(libc::O_NOCTTY), "O_NOCTTY"),
    (o(libc::O_TRUNC), "O_TRUNC"),
    (o(libc::O_APPEND), "O_APPEND"),
    (o(libc::O_NONBLOCK), "O_NONBLOCK"),
    (o(libc::O_DSYNC), "O_DSYNC"),
    (o(libc::O_ASYNC), "O_ASYNC"),
    (o(libc::O_DIRECT), "O_DIRECT"),
    (O_LARGEFILE, "O_LARGEFILE"),
    (o(libc::O_DIRECTORY), "O_DIRECTORY"),
    (o(libc::O_NOFOLLOW), "O_NOFOLLOW"),
    (o(libc::O_NOATIME), "O_NOATIME"),
    (o(libc::O_CLOEXEC), "O_CLOEXEC"),
    (SYNC_BIT, "__O_SYNC"),
    (o(libc::O_PATH), "O_PATH"),
    (TMPFILE_BIT, "__O_TMPFILE"),
];

/// Writes the open flags as `O_WRONLY|O_CREAT|O_CLOEXEC`: the access mode first, then
/// every known flag, then unknown bits as one hex number.
pub fn write_flags_text(out: &mut Vec<u8>, flags: u64) {
    out.extend_from_slice(match flags & O_ACCMODE {
        0 => b"O_RDONLY",
        1 => b"O_WRONLY",
        2 => b"O_RDWR",
        _ => b"O_ACCMODE",
    });
    let mut left = flags & !O_ACCMODE;
    let mut name = |out: &mut Vec<u8>, mask: u64, n: &str| {
        if mask != 0 && left & mask == mask {
            out.push(b'|');
            out.extend_from_slice(n.as_bytes());
            left &= !mask;
        }
    };
    // The composites take their bits before the single flags can.
    let sync = flags & O_SYNC == O_SYNC;
    let tmpfile = flags & O_TMPFILE == O_TMPFILE;
    let mut composites: u64 = 0;
    if sync {
        composites |= O_SYNC;
    }
    if tmpfile {
        composites |= O_TMPFILE;
    }
    for &(mask, n) in BITS {
        if mask & composites != 0 {
            // Printed at the position of the composite's own bit.
            if mask == SYNC_BIT {
                name(out, O_SYNC, "O_SYNC");
            } else if mask == TMPFILE_BIT {
                name(out, O_TMPFILE, "O_TMPFILE");
            }
            continue;
        }
        name(out, mask, n);
    }
    if left != 0 {
        out.extend_from_slice(format!("|0x{left:x}").as_bytes());
    }
}

/// The journal's one-line summary (see `super::summary`).
pub fn summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    if h.kind != kind::OPEN {
        return change_summary(h, data, b);
    }
    let e: &OpenEvent = view(data, h.kind)?;
    quoted(b, prefix(&e.path, e.path_len));
    by(b, h);
    b.push(b' ');
    write_flags_text(b, e.flags);
    if e.ret >= 0 {
        let _ = write!(b, " fd={}", e.ret);
        // What was opened, from the kernel: the path above is the process's word.
        b.extend_from_slice(b" file=");
        quoted(b, resolved(e, data));
        if e.path_flags & OPEN_RESOLVED_DELETED != 0 {
            b.extend_from_slice(b" (deleted)");
        }
    } else {
        failed(b, e.ret);
    }
    if e.path_flags & OPEN_PATH_CHANGED != 0 {
        b.extend_from_slice(b" (path changed during the call)");
    }
    Ok(PRIO_INFO)
}

#[cfg(test)]
pub fn flags_text(flags: u64) -> String {
    let mut v = Vec::new();
    write_flags_text(&mut v, flags);
    // Only ASCII names and hex digits are written.
    String::from_utf8_lossy(&v).into_owned()
}

pub fn render(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    if k != kind::OPEN {
        return render_change(k, data, line);
    }
    let e: &OpenEvent = view(data, k)?;
    line.str("syscall", syscall_name(e.syscall));
    line.i64("ret", e.ret);
    line.bytes("path", prefix(&e.path, e.path_len));
    let f = e.path_flags;
    line.bool("path_truncated", f & OPEN_PATH_TRUNCATED != 0);
    if f & OPEN_PATH_UNREADABLE != 0 {
        line.bool("path_unreadable", true);
    }
    line.bool("path_changed", f & OPEN_PATH_CHANGED != 0);
    if f & OPEN_PATH_UNCHECKED != 0 {
        line.bool("path_unchecked", true);
    }
    // A failed open opened nothing: no resolved path.
    if e.ret >= 0 {
        super::path::render(
            line,
            [
                "resolved_path",
                "resolved_truncated",
                "resolved_deleted",
                "resolved_pseudo",
                "resolved_outside_root",
            ],
            resolved(e, data),
            f >> OPEN_RESOLVE_SHIFT,
        );
        if f & OPEN_RESOLVED_UNAVAILABLE != 0 {
            line.bool("resolved_unavailable", true);
        }
        line.u64("ino", e.ino);
    }
    line.u64("flags", e.flags);
    line.ascii_with("flags_text", |b| write_flags_text(b, e.flags));
    line.u64("mode", e.mode.into());
    line.i64("dfd", e.dfd.into());
    Ok(())
}

/// `enum rw_change_syscall`.
pub mod change_sys {
    pub const UNLINK: u32 = 1;
    pub const UNLINKAT: u32 = 2;
    pub const RMDIR: u32 = 3;
    pub const MKDIR: u32 = 4;
    pub const MKDIRAT: u32 = 5;
    pub const RENAME: u32 = 6;
    pub const RENAMEAT: u32 = 7;
    pub const RENAMEAT2: u32 = 8;
    pub const CHMOD: u32 = 9;
    pub const FCHMOD: u32 = 10;
    pub const FCHMODAT: u32 = 11;
    pub const FCHMODAT2: u32 = 12;
    pub const CHOWN: u32 = 13;
    pub const LCHOWN: u32 = 14;
    pub const FCHOWN: u32 = 15;
    pub const FCHOWNAT: u32 = 16;
    pub const LINK: u32 = 17;
    pub const LINKAT: u32 = 18;
    pub const SYMLINK: u32 = 19;
    pub const SYMLINKAT: u32 = 20;
    pub const TRUNCATE: u32 = 21;
    pub const FTRUNCATE: u32 = 22;
    /// In enum order, from UNLINK.
    pub const NAMES: [&str; 22] = [
        "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "rename", "renameat", "renameat2",
        "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchown", "fchownat",
        "link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate",
    ];
}

/// `enum rw_change_flags`: `ChangeEvent::path_flags`.
pub const CHANGE_PATH2_SHIFT: u32 = 4;
pub const CHANGE_R1_SHIFT: u32 = 8;
pub const CHANGE_R2_SHIFT: u32 = 12;
pub const CHANGE_R1_FILE: u32 = 1 << 16;
pub const CHANGE_R1_UNAVAILABLE: u32 = 1 << 17;
pub const CHANGE_R2_UNAVAILABLE: u32 = 1 << 18;

/// A file change (C: `struct change_event`); its names follow it in the ring back to
/// back: `path_len`, `path2_len`, `resolved_len` then `resolved2_len` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ChangeEvent {
    pub hdr: Header,
    pub ret: i64,
    pub length: i64,
    pub syscall: u32,
    pub mode: u32,
    pub flags: u32,
    pub uid: u32,
    pub gid: u32,
    pub fd: i32,
    pub fd2: i32,
    pub path_len: u32,
    pub path2_len: u32,
    pub path_flags: u32,
    pub resolved_len: u32,
    pub resolved2_len: u32,
    pub names: [u8; 0],
}
// SAFETY: plain old data, every bit pattern valid.
unsafe impl Plain for ChangeEvent {}

/// A change's names after its fixed part: the two paths as passed, then the two names
/// from the kernel, each clamped to what the record holds.
pub struct ChangeNames<'a> {
    pub path1: &'a [u8],
    pub path2: &'a [u8],
    pub r1: &'a [u8],
    pub r2: &'a [u8],
}

pub fn change_names<'a>(e: &ChangeEvent, data: &'a [u8]) -> ChangeNames<'a> {
    let mut tail = data.get(size_of::<ChangeEvent>()..).unwrap_or(&[]);
    let mut next = |len: u32| {
        let name = prefix(tail, len);
        tail = tail.get(name.len()..).unwrap_or(&[]);
        name
    };
    ChangeNames {
        path1: next(e.path_len),
        path2: next(e.path2_len),
        r1: next(e.resolved_len),
        r2: next(e.resolved2_len),
    }
}

pub fn change_syscall_name(sc: u32) -> &'static str {
    sc.checked_sub(1)
        .and_then(|i| change_sys::NAMES.get(i as usize))
        .copied()
        .unwrap_or("unknown")
}

/// Whether the call takes flags (the field is written only for those).
fn has_flags(sc: u32) -> bool {
    use change_sys::*;
    matches!(sc, UNLINKAT | RENAMEAT2 | FCHMODAT2 | FCHOWNAT | LINKAT)
}

/// The flags of renameat2 as `RENAME_NOREPLACE|...`, the AT_* flags of the others;
/// unknown bits as one hex number.
pub fn write_change_flags(out: &mut Vec<u8>, sc: u32, flags: u32) {
    const RENAME: &[(u32, &str)] = &[
        (1, "RENAME_NOREPLACE"),
        (2, "RENAME_EXCHANGE"),
        (4, "RENAME_WHITEOUT"),
    ];
    const AT: &[(u32, &str)] = &[
        (0x100, "AT_SYMLINK_NOFOLLOW"),
        (0x200, "AT_REMOVEDIR"),
        (0x400, "AT_SYMLINK_FOLLOW"),
        (0x800, "AT_NO_AUTOMOUNT"),
        (0x1000, "AT_EMPTY_PATH"),
    ];
    let names = if sc == change_sys::RENAMEAT2 { RENAME } else { AT };
    let mut left = flags;
    for &(bit, n) in names {
        if left & bit != 0 {
            if left != flags {
                out.push(b'|');
            }
            out.extend_from_slice(n.as_bytes());
            left &= !bit;
        }
    }
    if left != 0 {
        if left != flags {
            out.push(b'|');
        }
        let _ = write!(out, "0x{left:x}");
    }
}

/// The path as passed with its RW_OPEN_PATH_* flags (`f`), as `key` and `key_*`.
fn passed(line: &mut impl Fields, keys: [&str; 5], path: &[u8], f: u32) {
    line.bytes(keys[0], path);
    line.bool(keys[1], f & OPEN_PATH_TRUNCATED != 0);
    line.bool(keys[2], f & OPEN_PATH_CHANGED != 0);
    if f & OPEN_PATH_UNREADABLE != 0 {
        line.bool(keys[3], true);
    }
    if f & OPEN_PATH_UNCHECKED != 0 {
        line.bool(keys[4], true);
    }
}

/// A name resolved from the kernel (`flags`: its RW_RESOLVE_* bits) as `keys[0]` with
/// its flags (`keys[1..5]`, as [`super::path::render`]), or `keys[5]` when the fd named
/// no file.
fn named_from_kernel(line: &mut impl Fields, keys: [&str; 6], name: &[u8], flags: u32, unavailable: bool) {
    if unavailable {
        line.bool(keys[5], true);
        return;
    }
    super::path::render(line, [keys[0], keys[1], keys[2], keys[3], keys[4]], name, flags);
}

const DIR: [&str; 6] = [
    "dir",
    "dir_truncated",
    "dir_deleted",
    "dir_pseudo",
    "dir_outside_root",
    "dir_unavailable",
];
const NEW_DIR: [&str; 6] = [
    "new_dir",
    "new_dir_truncated",
    "new_dir_deleted",
    "new_dir_pseudo",
    "new_dir_outside_root",
    "new_dir_unavailable",
];
const RESOLVED: [&str; 6] = [
    "resolved_path",
    "resolved_truncated",
    "resolved_deleted",
    "resolved_pseudo",
    "resolved_outside_root",
    "resolved_unavailable",
];

/// A change's fields. `path` is the file the event is about (the one removed, made or
/// changed, the one a rename moves or a link links to; for a symlink the link, and
/// `target` the text it holds); a rename's and a link's second path is `new_path`. `dir` and `new_dir`
/// are the directories the kernel started a relative path from (the directory fd's, or
/// the working directory); `resolved_path` the file of a call on an fd.
fn render_change(k: u32, data: &[u8], line: &mut impl Fields) -> Result<(), DecodeError> {
    let e: &ChangeEvent = view(data, k)?;
    let ChangeNames { path1, path2, r1, r2 } = change_names(e, data);
    let f = e.path_flags;
    let pf1 = f & 15;
    let pf2 = (f >> CHANGE_PATH2_SHIFT) & 15;
    let rf1 = (f >> CHANGE_R1_SHIFT) & 15;
    let rf2 = (f >> CHANGE_R2_SHIFT) & 15;
    line.str("syscall", change_syscall_name(e.syscall));
    line.i64("ret", e.ret);
    const PATH: [&str; 5] = [
        "path",
        "path_truncated",
        "path_changed",
        "path_unreadable",
        "path_unchecked",
    ];
    const NEW: [&str; 5] = [
        "new_path",
        "new_path_truncated",
        "new_path_changed",
        "new_path_unreadable",
        "new_path_unchecked",
    ];
    const TARGET: [&str; 5] = [
        "target",
        "target_truncated",
        "target_changed",
        "target_unreadable",
        "target_unchecked",
    ];
    let fd_call = f & CHANGE_R1_FILE != 0;
    if k == kind::SYMLINK {
        passed(line, PATH, path2, pf2);
        passed(line, TARGET, path1, pf1);
        if e.resolved2_len > 0 || f & CHANGE_R2_UNAVAILABLE != 0 {
            named_from_kernel(line, DIR, r2, rf2, f & CHANGE_R2_UNAVAILABLE != 0);
        }
    } else {
        if e.path_len > 0 || !fd_call {
            passed(line, PATH, path1, pf1);
        }
        if e.resolved_len > 0 || f & CHANGE_R1_UNAVAILABLE != 0 {
            let keys = if fd_call { RESOLVED } else { DIR };
            named_from_kernel(line, keys, r1, rf1, f & CHANGE_R1_UNAVAILABLE != 0);
        }
        if matches!(k, kind::RENAME | kind::LINK) {
            passed(line, NEW, path2, pf2);
            if e.resolved2_len > 0 || f & CHANGE_R2_UNAVAILABLE != 0 {
                named_from_kernel(line, NEW_DIR, r2, rf2, f & CHANGE_R2_UNAVAILABLE != 0);
            }
        }
    }
    use change_sys::*;
    match e.syscall {
        FCHMOD | FCHOWN | FTRUNCATE => line.i64("fd", e.fd.into()),
        UNLINK | RMDIR | MKDIR | RENAME | CHMOD | CHOWN | LCHOWN | LINK | SYMLINK | TRUNCATE => {
        }
        SYMLINKAT => line.i64("new_dfd", e.fd2.into()),
        RENAMEAT | RENAMEAT2 | LINKAT => {
            line.i64("dfd", e.fd.into());
            line.i64("new_dfd", e.fd2.into());
        }
        _ => line.i64("dfd", e.fd.into()),
    }
    match k {
        kind::MKDIR | kind::CHMOD => {
            line.u64("mode", e.mode.into());
            line.ascii_with("mode_octal", |b| {
                let _ = write!(b, "{:04o}", e.mode);
            });
        }
        // (u32)-1 is "leave as it is": shown as -1, as the caller wrote it.
        kind::CHOWN => {
            line.i64("owner_uid", i64::from(e.uid as i32));
            line.i64("owner_gid", i64::from(e.gid as i32));
        }
        kind::TRUNCATE => line.i64("length", e.length),
        _ => {}
    }
    if has_flags(e.syscall) {
        line.u64("flags", e.flags.into());
        line.ascii_with("flags_text", |b| write_change_flags(b, e.syscall, e.flags));
    }
    Ok(())
}

/// The journal's line for a change: `unlink "/tmp/x" by "rm" pid=1 uid=0 dir="/root"`.
fn change_summary(h: &Header, data: &[u8], b: &mut Vec<u8>) -> Result<u8, DecodeError> {
    let e: &ChangeEvent = view(data, h.kind)?;
    let ChangeNames { path1, path2, r1, r2 } = change_names(e, data);
    let fd_call = e.path_flags & CHANGE_R1_FILE != 0;
    match h.kind {
        kind::SYMLINK => {
            quoted(b, path2);
            b.extend_from_slice(b" -> ");
            quoted(b, path1);
        }
        kind::RENAME | kind::LINK => {
            quoted(b, path1);
            b.extend_from_slice(if h.kind == kind::RENAME { b" to " } else { b" as " });
            quoted(b, path2);
        }
        _ if fd_call => quoted(b, r1),
        _ => quoted(b, path1),
    }
    by(b, h);
    match h.kind {
        kind::MKDIR | kind::CHMOD => {
            let _ = write!(b, " mode={:04o}", e.mode);
        }
        kind::CHOWN => {
            let _ = write!(b, " owner={}:{}", e.uid as i32, e.gid as i32);
        }
        kind::TRUNCATE => {
            let _ = write!(b, " length={}", e.length);
        }
        _ => {}
    }
    // Where a relative path started, from the kernel: the path above is the process's.
    let dir = if h.kind == kind::SYMLINK { r2 } else if fd_call { &[][..] } else { r1 };
    if !dir.is_empty() {
        b.extend_from_slice(b" dir=");
        quoted(b, dir);
    }
    if e.ret < 0 {
        failed(b, e.ret);
    }
    if e.path_flags & (OPEN_PATH_CHANGED | OPEN_PATH_CHANGED << CHANGE_PATH2_SHIFT) != 0 {
        b.extend_from_slice(b" (path changed during the call)");
    }
    Ok(PRIO_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::WallClock;
    use crate::family::kind;
    use crate::output::json;

    #[test]
    fn flags_text_names_every_flag() {
        let f = |x: i32| flags_text(o(x));
        assert_eq!(
            f(libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC),
            "O_WRONLY|O_CREAT|O_CLOEXEC"
        );
        assert_eq!(f(libc::O_RDONLY), "O_RDONLY");
        assert_eq!(
            f(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_APPEND),
            "O_RDWR|O_CREAT|O_EXCL|O_TRUNC|O_APPEND"
        );
        assert_eq!(
            f(libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_PATH),
            "O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_PATH"
        );
        assert_eq!(f(3), "O_ACCMODE");
    }

    #[test]
    fn flags_text_composites() {
        let f = |x: i32| flags_text(o(x));
        assert_eq!(f(libc::O_WRONLY | libc::O_SYNC), "O_WRONLY|O_SYNC");
        assert_eq!(f(libc::O_WRONLY | libc::O_DSYNC), "O_WRONLY|O_DSYNC");
        assert_eq!(f(libc::O_RDWR | libc::O_TMPFILE), "O_RDWR|O_TMPFILE");
        assert_eq!(f(libc::O_DIRECTORY), "O_RDONLY|O_DIRECTORY");
        // One half of a composite alone keeps the kernel's name for it.
        assert_eq!(flags_text(SYNC_BIT), "O_RDONLY|__O_SYNC");
        assert_eq!(flags_text(TMPFILE_BIT | 2), "O_RDWR|__O_TMPFILE");
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn flags_text_kernel_bits_and_unknown_bits() {
        assert_eq!(flags_text(0o100001), "O_WRONLY|O_LARGEFILE");
        assert_eq!(
            flags_text(1 << 40 | 0o100),
            "O_RDONLY|O_CREAT|0x10000000000"
        );
        assert_eq!(flags_text(0o40000000), "O_RDONLY|0x800000");
    }

    fn record(path: &[u8], f: impl FnOnce(&mut OpenEvent)) -> Vec<u8> {
        let mut e = OpenEvent {
            hdr: Header {
                kind: kind::OPEN,
                pid: 7,
                tid: 8,
                ..Header::default()
            },
            ret: 3,
            flags: o(libc::O_WRONLY | libc::O_CREAT),
            ino: 0,
            mode: 0o644,
            dfd: -100,
            path_len: path.len() as u32,
            syscall: SYS_OPENAT,
            path_flags: 0,
            resolved_len: 0,
            path: [0; PATH_LEN],
            resolved: [],
        };
        e.path[..path.len()].copy_from_slice(path);
        f(&mut e);
        // SAFETY: OpenEvent is plain data; the slice covers exactly the struct.
        unsafe {
            std::slice::from_raw_parts(
                (&e as *const OpenEvent).cast::<u8>(),
                size_of::<OpenEvent>(),
            )
        }
        .to_vec()
    }

    fn json(rec: &[u8]) -> serde_json::Value {
        let mut buf = Vec::new();
        json::render("file", &WallClock::default(), rec, &mut buf).expect("renders");
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    #[test]
    fn renders_an_open() {
        let v = json(&record(b"/tmp/a\nb", |_| {}));
        assert_eq!(v["type"], "open");
        assert_eq!(v["ring"], "file");
        assert_eq!(v["syscall"], "openat");
        assert_eq!(v["path"], "/tmp/a\nb");
        assert_eq!(v["path_truncated"], false);
        assert!(v.get("path_unreadable").is_none());
        assert!(v.get("path_hex").is_none());
        assert_eq!(v["flags"], 0o101);
        assert_eq!(v["flags_text"], "O_WRONLY|O_CREAT");
        assert_eq!(v["mode"], 0o644);
        assert_eq!(v["dfd"], -100);
        assert_eq!(v["ret"], 3);
        assert_eq!(v["tid"], 8);
    }

    #[test]
    fn renders_errors_raw_bytes_and_truncation() {
        let v = json(&record(b"/x/\xff\xfe", |e| {
            e.ret = -2;
            e.syscall = SYS_OPENAT2;
            e.path_flags = OPEN_PATH_TRUNCATED;
        }));
        assert_eq!(v["ret"], -2);
        assert_eq!(v["syscall"], "openat2");
        assert_eq!(v["path_hex"], "2f782ffffe");
        assert_eq!(v["path_truncated"], true);
        // A length past the buffer is clamped, never a panic.
        let v = json(&record(b"", |e| {
            e.path_len = 10_000;
            e.path = [b'a'; PATH_LEN];
            e.syscall = 99;
            e.path_flags = OPEN_PATH_UNREADABLE;
        }));
        assert_eq!(v["path"].as_str().map(str::len), Some(PATH_LEN));
        assert_eq!(v["syscall"], "unknown");
        assert_eq!(v["path_unreadable"], true);
    }

    #[test]
    fn renders_the_resolved_path_and_its_flags() {
        let mut rec = record(b"/tmp/fifo", |e| {
            e.resolved_len = 13;
            e.ino = 611;
            e.path_flags = OPEN_PATH_CHANGED | OPEN_RESOLVED_DELETED;
        });
        rec.extend_from_slice(b"/etc/hostname");
        let v = json(&rec);
        assert_eq!(v["path"], "/tmp/fifo");
        assert_eq!(v["path_changed"], true);
        assert_eq!(v["resolved_path"], "/etc/hostname");
        assert_eq!(v["resolved_truncated"], false);
        assert_eq!(v["resolved_deleted"], true);
        assert!(v.get("resolved_pseudo").is_none());
        assert_eq!(v["ino"], 611);
        // A length past the record is clamped to what the record holds.
        let mut rec = record(b"p", |e| {
            e.resolved_len = 4096;
            e.path_flags = OPEN_RESOLVED_TRUNCATED | OPEN_RESOLVED_PSEUDO | OPEN_PATH_UNCHECKED;
        });
        rec.extend_from_slice(b"pipe");
        let v = json(&rec);
        assert_eq!(v["resolved_path"], "pipe");
        assert_eq!(v["resolved_truncated"], true);
        assert_eq!(v["resolved_pseudo"], true);
        assert_eq!(v["path_unchecked"], true);
        // A failed open opened nothing.
        let v = json(&record(b"/nope", |e| e.ret = -2));
        assert!(v.get("resolved_path").is_none());
        assert!(v.get("ino").is_none());
        assert_eq!(v["path_changed"], false);
    }

    #[test]
    fn short_record_is_an_error() {
        let rec = record(b"/a", |_| {});
        let mut buf = Vec::new();
        assert!(matches!(
            json::render("file", &WallClock::default(), &rec[..200], &mut buf),
            Err(DecodeError::Short { .. })
        ));
        assert!(buf.is_empty());
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
            Family::File,
            "open_event",
            OpenEvent,
            [
                hdr,
                ret,
                flags,
                ino,
                mode,
                dfd,
                path_len,
                syscall,
                path_flags,
                resolved_len,
                path,
                resolved
            ]
        );
    }

    #[test]
    fn change_mirror_matches_c() {
        assert_layout!(
            Family::File,
            "change_event",
            ChangeEvent,
            [
                hdr,
                ret,
                length,
                syscall,
                mode,
                flags,
                uid,
                gid,
                fd,
                fd2,
                path_len,
                path2_len,
                path_flags,
                resolved_len,
                resolved2_len,
                names
            ]
        );
        // docs/events.md quotes it.
        assert_eq!(size_of::<ChangeEvent>(), 128);
    }

    #[test]
    fn change_constants_match_c() {
        use crate::assert_enum;
        let f = Family::File;
        assert_enum!(
            f,
            "rw_file_type",
            [
                RW_OPEN = kind::OPEN,
                RW_UNLINK = kind::UNLINK,
                RW_RMDIR = kind::RMDIR,
                RW_MKDIR = kind::MKDIR,
                RW_RENAME = kind::RENAME,
                RW_CHMOD = kind::CHMOD,
                RW_CHOWN = kind::CHOWN,
                RW_LINK = kind::LINK,
                RW_SYMLINK = kind::SYMLINK,
                RW_TRUNCATE = kind::TRUNCATE,
            ]
        );
        use change_sys::*;
        assert_enum!(
            f,
            "rw_change_syscall",
            [
                RW_SYS_UNLINK = UNLINK,
                RW_SYS_UNLINKAT = UNLINKAT,
                RW_SYS_RMDIR = RMDIR,
                RW_SYS_MKDIR = MKDIR,
                RW_SYS_MKDIRAT = MKDIRAT,
                RW_SYS_RENAME = RENAME,
                RW_SYS_RENAMEAT = RENAMEAT,
                RW_SYS_RENAMEAT2 = RENAMEAT2,
                RW_SYS_CHMOD = CHMOD,
                RW_SYS_FCHMOD = FCHMOD,
                RW_SYS_FCHMODAT = FCHMODAT,
                RW_SYS_FCHMODAT2 = FCHMODAT2,
                RW_SYS_CHOWN = CHOWN,
                RW_SYS_LCHOWN = LCHOWN,
                RW_SYS_FCHOWN = FCHOWN,
                RW_SYS_FCHOWNAT = FCHOWNAT,
                RW_SYS_LINK = LINK,
                RW_SYS_LINKAT = LINKAT,
                RW_SYS_SYMLINK = SYMLINK,
                RW_SYS_SYMLINKAT = SYMLINKAT,
                RW_SYS_TRUNCATE = TRUNCATE,
                RW_SYS_FTRUNCATE = FTRUNCATE,
            ]
        );
        assert_eq!(change_syscall_name(FTRUNCATE), "ftruncate");
        assert_eq!(change_syscall_name(UNLINK), "unlink");
        assert_eq!(change_syscall_name(0), "unknown");
        assert_enum!(
            f,
            "rw_change_flags",
            [
                RW_CHANGE_PATH2_SHIFT = CHANGE_PATH2_SHIFT,
                RW_CHANGE_R1_SHIFT = CHANGE_R1_SHIFT,
                RW_CHANGE_R2_SHIFT = CHANGE_R2_SHIFT,
                RW_CHANGE_R1_FILE = CHANGE_R1_FILE,
                RW_CHANGE_R1_UNAVAILABLE = CHANGE_R1_UNAVAILABLE,
                RW_CHANGE_R2_UNAVAILABLE = CHANGE_R2_UNAVAILABLE,
            ]
        );
    }

    #[test]
    fn constants_match_c() {
        use crate::assert_enum;
        let f = Family::File;
        assert_enum!(
            f,
            "rw_open_syscall",
            [
                RW_SYS_OPEN = SYS_OPEN,
                RW_SYS_OPENAT = SYS_OPENAT,
                RW_SYS_OPENAT2 = SYS_OPENAT2,
            ]
        );
        assert_enum!(
            f,
            "rw_open_path_flags",
            [
                RW_OPEN_PATH_TRUNCATED = OPEN_PATH_TRUNCATED,
                RW_OPEN_PATH_UNREADABLE = OPEN_PATH_UNREADABLE,
                RW_OPEN_PATH_CHANGED = OPEN_PATH_CHANGED,
                RW_OPEN_PATH_UNCHECKED = OPEN_PATH_UNCHECKED,
                RW_OPEN_RESOLVED_TRUNCATED = OPEN_RESOLVED_TRUNCATED,
                RW_OPEN_RESOLVED_DELETED = OPEN_RESOLVED_DELETED,
                RW_OPEN_RESOLVED_PSEUDO = OPEN_RESOLVED_PSEUDO,
                RW_OPEN_RESOLVED_OUTSIDE_ROOT = OPEN_RESOLVED_OUTSIDE_ROOT,
                RW_OPEN_RESOLVED_UNAVAILABLE = OPEN_RESOLVED_UNAVAILABLE,
            ]
        );
    }
}
