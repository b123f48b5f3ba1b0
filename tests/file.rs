//! File family against the real kernel: N opens -> exactly N `open` events, each with
//! the exact path bytes, flags, mode, dfd and result of the syscall that ran.
mod common;

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, bytes_of, gettid, i, u};
use serde_json::Value;

const AT_FDCWD: i64 = libc::AT_FDCWD as i64;

/// `struct open_how` (libc's is non_exhaustive, so it cannot be built here).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// What one action must produce.
struct Want {
    /// Syscalls that may have run (libc::open is openat on glibc, open elsewhere).
    syscalls: &'static [&'static str],
    flags: u64,
    mode: u64,
    dfd: i64,
    /// The fd returned, or -errno.
    ret: i64,
}

fn cpath(p: &[u8]) -> CString {
    CString::new(p).expect("no NUL in test paths")
}

fn fl(f: libc::c_int) -> u64 {
    f as u32 as u64
}

fn errno() -> i64 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64
}

/// Returns the fd or -errno, the way the exit tracepoint reports it.
fn result(fd: i64) -> i64 {
    if fd < 0 { -errno() } else { fd }
}

fn close(fd: i64) {
    if fd >= 0 {
        // SAFETY: closing an fd this test opened.
        unsafe {
            libc::close(fd as i32);
        }
    }
}

fn open(p: &[u8], flags: libc::c_int, mode: libc::c_uint) -> i64 {
    let c = cpath(p);
    // SAFETY: valid NUL-terminated path.
    result(unsafe { libc::open(c.as_ptr(), flags, mode) } as i64)
}

fn openat2(dfd: i32, p: &[u8], flags: libc::c_int, mode: u64) -> i64 {
    let c = cpath(p);
    let how = OpenHow {
        flags: fl(flags),
        mode,
        resolve: 0,
    };
    // SAFETY: valid path and open_how, with its size.
    result(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dfd,
            c.as_ptr(),
            &how as *const OpenHow,
            size_of::<OpenHow>(),
        )
    })
}

/// Events of this thread under `dir` (absolute), or relative to `dirfd` and named `rel-`.
fn mine<'a>(events: &'a [Value], dir: &[u8], dirfd: i64) -> Vec<&'a Value> {
    let tid = u64::from(gettid());
    events
        .iter()
        .filter(|e| e["type"] == "open" && u(&e["tid"]) == tid)
        .filter(|e| {
            let p = bytes_of(e, "path");
            p.starts_with(dir) || (i(&e["dfd"]) == dirfd && p.starts_with(b"rel-"))
        })
        .collect()
}

crate::variant_twins! {
    five_hundred_opens_give_exact_open_events,
    /// The same in the 5.10 variant: in-flight opens in a tid-keyed hash, the walk a bounded
    /// loop, the task's files and root read with CO-RE reads.
    the_510_variant_gives_exact_open_events => five_hundred_opens
}

fn five_hundred_opens(v510: bool) {
    let dir = common::temp_dir(if v510 { "file-opens-510" } else { "file-opens" });
    let mut prefix = dir.as_os_str().as_bytes().to_vec();
    prefix.push(b'/');
    let abs = |name: &[u8]| [&prefix[..], name].concat();
    // Files the O_RDONLY opens read, created before the daemon runs so only the opens count.
    for n in (0..500).filter(|n| n % 6 == 3) {
        fs::write(OsStr::from_bytes(&abs(format!("pre-{n}").as_bytes())), b"x").expect("pre");
    }
    let dirfd = open(
        &prefix,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    );
    assert!(dirfd >= 0);

    let d = Daemon::builder(if v510 { "file-510" } else { "file" })
        .args(&["--only", "file", "--ring-size", "file=8MiB"])
        .variant_510(v510)
        .start();
    let mut want: HashMap<Vec<u8>, Want> = HashMap::new();
    let libc_open: &[&str] = &["open", "openat"];
    for n in 0..500 {
        let name = match n {
            0 => b"f-0\nnew line".to_vec(),
            1 => b"f-1-\xff\xfe".to_vec(),
            _ => format!("f-{n}").into_bytes(),
        };
        let (path, w) = match n % 6 {
            0 => {
                let p = abs(&name);
                let f = fs::File::create(OsStr::from_bytes(&p)).expect("create");
                let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as i64;
                drop(f);
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
                let w = Want {
                    syscalls: &["openat"],
                    flags: fl(flags),
                    mode: 0o666,
                    dfd: AT_FDCWD,
                    ret: fd,
                };
                (p, w)
            }
            1 => {
                let p = abs(&name);
                let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
                let fd = open(&p, flags, 0o640);
                let w = Want {
                    syscalls: libc_open,
                    flags: fl(flags),
                    mode: 0o640,
                    dfd: AT_FDCWD,
                    ret: fd,
                };
                (p, w)
            }
            2 => {
                let p = [b"rel-", &name[..]].concat();
                let c = cpath(&p);
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC;
                // SAFETY: valid dirfd and path.
                let fd =
                    result(unsafe { libc::openat(dirfd as i32, c.as_ptr(), flags, 0o600) } as i64);
                let w = Want {
                    syscalls: &["openat"],
                    flags: fl(flags),
                    mode: 0o600,
                    dfd: dirfd,
                    ret: fd,
                };
                (p, w)
            }
            3 => {
                // No O_CREAT: the mode argument is ignored by the kernel and reported as 0.
                let p = abs(format!("pre-{n}").as_bytes());
                let fd = open(&p, libc::O_RDONLY, 0o777);
                let w = Want {
                    syscalls: libc_open,
                    flags: 0,
                    mode: 0,
                    dfd: AT_FDCWD,
                    ret: fd,
                };
                (p, w)
            }
            4 => {
                let p = abs(&name);
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_NOFOLLOW;
                #[cfg(target_arch = "x86_64")]
                let (fd, sc): (i64, &[&str]) = {
                    let c = cpath(&p);
                    // SAFETY: valid path; open(2) itself, which only some arches have.
                    let r = unsafe { libc::syscall(libc::SYS_open, c.as_ptr(), flags, 0o644) };
                    (result(r), &["open"])
                };
                #[cfg(not(target_arch = "x86_64"))]
                let (fd, sc): (i64, &[&str]) = (open(&p, flags, 0o644), libc_open);
                let w = Want {
                    syscalls: sc,
                    flags: fl(flags),
                    mode: 0o644,
                    dfd: AT_FDCWD,
                    ret: fd,
                };
                (p, w)
            }
            _ => {
                let p = abs(&name);
                let flags = libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC;
                let fd = openat2(libc::AT_FDCWD, &p, flags, 0o600);
                let w = Want {
                    syscalls: &["openat2"],
                    flags: fl(flags),
                    mode: 0o600,
                    dfd: AT_FDCWD,
                    ret: fd,
                };
                (p, w)
            }
        };
        assert!(w.ret >= 0, "open {n} failed: {}", w.ret);
        close(w.ret);
        assert!(want.insert(path, w).is_none(), "paths are unique");
    }
    // Failures report -errno: a missing file through openat and through openat2.
    let missing = abs(b"no-such-dir/no-such-file");
    let r = open(&missing, libc::O_RDONLY | libc::O_CLOEXEC, 0);
    assert_eq!(r, -2);
    want.insert(
        missing,
        Want {
            syscalls: libc_open,
            flags: fl(libc::O_RDONLY | libc::O_CLOEXEC),
            mode: 0,
            dfd: AT_FDCWD,
            ret: -2,
        },
    );
    let missing2 = b"rel-no-such-file".to_vec();
    let r = openat2(
        dirfd as i32,
        &missing2,
        libc::O_RDONLY | libc::O_NOFOLLOW,
        0,
    );
    assert_eq!(r, -2);
    want.insert(
        missing2,
        Want {
            syscalls: &["openat2"],
            flags: fl(libc::O_RDONLY | libc::O_NOFOLLOW),
            mode: 0,
            dfd: dirfd,
            ret: -2,
        },
    );
    close(dirfd);

    let f = d.stop();
    f.assert_exact().assert_variant("file", v510);
    assert_eq!(
        u(&f.ring("file")["dropped"]),
        0,
        "the file ring dropped events"
    );

    let events = mine(&f.events, &prefix, dirfd);
    assert_eq!(events.len(), 502, "open events for our 500 + 2 opens");
    let ok = events.iter().filter(|e| i(&e["ret"]) >= 0).count();
    assert_eq!(ok, 500, "successful open events");
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    // What the kernel names: the directory's real path, whatever the open passed.
    let mut real = fs::canonicalize(&dir)
        .expect("canonical dir")
        .into_os_string()
        .into_vec();
    real.push(b'/');
    for e in &events {
        let p = bytes_of(e, "path");
        assert_eq!(e["path_changed"], false, "{e}");
        assert!(e.get("path_unchecked").is_none(), "{e}");
        if i(&e["ret"]) >= 0 {
            let name = p.strip_prefix(&prefix[..]).unwrap_or(&p);
            let want_real = [&real[..], name].concat();
            assert_eq!(bytes_of(e, "resolved_path"), want_real, "{e}");
            assert_eq!(e["resolved_truncated"], false, "{e}");
            let ino = fs::metadata(OsStr::from_bytes(&want_real))
                .expect("file")
                .ino();
            assert_eq!(u(&e["ino"]), ino, "{e}");
        } else {
            assert!(e.get("resolved_path").is_none(), "{e}");
        }
        let w = want
            .get(&p)
            .unwrap_or_else(|| panic!("unexpected open event {e}"));
        *seen.entry(p.clone()).or_default() += 1;
        let sc = e["syscall"].as_str().expect("syscall is a string");
        assert!(w.syscalls.contains(&sc), "syscall {sc} in {e}");
        assert_eq!(u(&e["flags"]), w.flags, "flags in {e}");
        assert_eq!(u(&e["mode"]), w.mode, "mode in {e}");
        assert_eq!(i(&e["dfd"]), w.dfd, "dfd in {e}");
        assert_eq!(i(&e["ret"]), w.ret, "ret in {e}");
        assert_eq!(e["path_truncated"], false);
        assert_eq!(e["ring"], "file");
        assert_eq!(u(&e["pid"]), u64::from(std::process::id()));
    }
    assert_eq!(seen.len(), want.len(), "every action has its event");
    assert!(seen.values().all(|&c| c == 1), "one event per action");

    // The special names came through byte for byte.
    let nl = events
        .iter()
        .find(|e| bytes_of(e, "path").ends_with(b"f-0\nnew line"))
        .expect("newline path");
    assert!(nl.get("path_hex").is_none());
    let bad = events
        .iter()
        .find(|e| e.get("path_hex").is_some())
        .expect("invalid UTF-8 path has path_hex");
    assert!(bytes_of(bad, "path").ends_with(b"f-1-\xff\xfe"));
    // Flags come with their names.
    let created = events
        .iter()
        .find(|e| bytes_of(e, "path").ends_with(b"/f-6"))
        .expect("f-6");
    assert_eq!(
        created["flags_text"], "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC",
        "{created}"
    );
    let how = events
        .iter()
        .find(|e| bytes_of(e, "path").ends_with(b"/f-5"))
        .expect("f-5");
    assert_eq!(how["syscall"], "openat2");
    assert_eq!(how["flags_text"], "O_RDWR|O_CREAT|O_CLOEXEC");
    let _ = fs::remove_dir_all(&dir);
}

/// Path bytes past the record's 512-byte buffer are flagged, exactly at the boundary;
/// an unreadable path pointer is flagged too.
#[test]
fn long_and_unreadable_paths_are_flagged() {
    let dir = common::temp_dir("file-long");
    let mut prefix = dir.as_os_str().as_bytes().to_vec();
    prefix.push(b'/');
    let d = Daemon::start("file-long", &["--only", "file", "--ring-size", "file=8MiB"]);
    // Missing directories: the opens fail with ENOENT, the path is still reported.
    let mut lens = Vec::new();
    for len in [510usize, 511, 512, 2000] {
        let mut p = prefix.clone();
        while p.len() < len {
            p.extend_from_slice(b"d/");
        }
        p.truncate(len);
        assert_eq!(open(&p, libc::O_RDONLY, 0), -2);
        lens.push(p);
    }
    // A path pointer that cannot be read: EFAULT, and the event says so.
    // SAFETY: the kernel checks the pointer; nothing here dereferences it.
    let r = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, 8usize, libc::O_RDONLY) };
    assert_eq!(result(r), -14);
    let f = d.stop();
    f.assert_exact();
    let tid = u64::from(gettid());
    let bad: Vec<_> = f
        .of_type("open")
        .filter(|e| u(&e["tid"]) == tid && e.get("path_unreadable").is_some())
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["path_unreadable"], true);
    assert_eq!(bad[0]["path"], "");
    assert_eq!(i(&bad[0]["ret"]), -14);
    let events = mine(&f.events, &prefix, i64::MIN);
    assert_eq!(events.len(), 4);
    for (e, p) in events.iter().zip(&lens) {
        let got = bytes_of(e, "path");
        let keep = p.len().min(511);
        assert_eq!(got, p[..keep], "path prefix");
        assert_eq!(e["path_truncated"], p.len() > 511, "{} bytes", p.len());
        assert_eq!(i(&e["ret"]), -2);
    }
    let _ = fs::remove_dir_all(&dir);
}

/// The daemon never reports itself: its stats file (rewritten every second through
/// File::create + rename) and output file produce no events.
#[test]
fn daemon_does_not_see_its_own_opens() {
    let dir = common::temp_dir("file-self");
    let mut prefix = dir.as_os_str().as_bytes().to_vec();
    prefix.push(b'/');
    let d = Daemon::start("file-self", &["--only", "file", "--ring-size", "file=8MiB"]);
    let daemon = u64::from(d.pid());
    // Ten opens of our own, so the family is shown to be working in this run.
    for n in 0..10 {
        let fd = open(
            &[&prefix[..], format!("s-{n}").as_bytes()].concat(),
            libc::O_WRONLY | libc::O_CREAT,
            0o600,
        );
        assert!(fd >= 0);
        close(fd);
    }
    // Wait for a stats write (every --stats-interval = 1 s) after the programs attached.
    let t = Instant::now();
    while !Path::new(&d.stats).exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "no stats file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let f = d.stop();
    f.assert_exact();
    assert_eq!(mine(&f.events, &prefix, i64::MIN).len(), 10);
    let own: Vec<_> = f
        .of_type("open")
        .filter(|e| u(&e["pid"]) == daemon)
        .collect();
    assert!(
        own.is_empty(),
        "the daemon traced itself: {:?}",
        own.first()
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Opens whose file has no ordinary name: one event each, with the flag that says why.
/// (A pipe is named as /proc/PID/fd shows it: `pipe:[INO]`.)
const ODD_FILES: &str = r#"
import json, os, sys
d = sys.argv[1]
out = {}
fd = os.open(d + "/gone", os.O_CREAT | os.O_RDWR, 0o600)
os.unlink(d + "/gone")
out["gone"] = fd
out["deleted"] = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
out["tmpfile"] = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)
out["tmpfile_ino"] = os.fstat(out["tmpfile"]).st_ino
r, w = os.pipe()
out["pipe_r"] = r
out["pipe"] = os.open("/proc/self/fd/%d" % r, os.O_RDONLY)
out["pipe_ino"] = os.fstat(r).st_ino
m = os.memfd_create("rwtest")
out["memfd_fd"] = m
out["memfd"] = os.open("/proc/self/fd/%d" % m, os.O_RDWR)
out["mount_root"] = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
outside = os.open(d + "/outside", os.O_RDONLY | os.O_DIRECTORY)
pid = os.fork()
if pid == 0:
    os.chroot(d + "/jail")
    os.chdir("/")
    a = os.open("x", os.O_RDONLY, dir_fd=outside)
    b = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    os.write(1, (json.dumps({"tid": os.getpid(), "outside": a, "root": b}) + "\n").encode())
    os._exit(0)
os.waitpid(pid, 0)
print(json.dumps(out), flush=True)
"#;

crate::variant_twins! {
    resolved_path_of_deleted_pseudo_and_out_of_root_files,
    /// The same in the 5.10 variant, whose pipe names are written without bpf_snprintf.
    the_510_variant_resolves_deleted_pseudo_and_out_of_root_files => odd_files
}

fn odd_files(v510: bool) {
    let dir = common::temp_dir(if v510 { "file-odd-510" } else { "file-odd" });
    let real = fs::canonicalize(&dir).expect("canonical");
    fs::create_dir(dir.join("outside")).expect("outside");
    fs::write(dir.join("outside/x"), b"x").expect("x");
    fs::create_dir(dir.join("jail")).expect("jail");
    let d = Daemon::builder(if v510 { "file-odd-510" } else { "file-odd" })
        .args(&["--only", "file", "--ring-size", "file=8MiB"])
        .variant_510(v510)
        .start();
    let o = std::process::Command::new("/usr/bin/python3")
        .args(["-c", ODD_FILES])
        .arg(&dir)
        .output()
        .expect("run python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = d.stop();
    f.assert_exact().assert_variant("file", v510);
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let (child, parent) = (&lines[0], &lines[1]);
    let ppid = f
        .of_type("open")
        .find(|e| bytes_of(e, "path") == [dir.as_os_str().as_bytes(), b"/gone"].concat())
        .map(|e| u(&e["pid"]))
        .expect("the create of gone");
    let one = |pid: u64, fd: &Value, path: &[u8]| -> Value {
        let evs: Vec<&Value> = f
            .of_type("open")
            .filter(|e| u(&e["pid"]) == pid && i(&e["ret"]) == i(fd))
            .filter(|e| bytes_of(e, "path") == path)
            .collect();
        assert_eq!(evs.len(), 1, "{path:?}: {evs:?}");
        evs[0].clone()
    };
    let flags = |e: &Value| -> Vec<&str> {
        [
            "resolved_deleted",
            "resolved_pseudo",
            "resolved_outside_root",
            "resolved_unavailable",
            "resolved_truncated",
        ]
        .into_iter()
        .filter(|k| e[*k] == true)
        .collect()
    };
    let proc_fd = |n: i64| format!("/proc/self/fd/{n}").into_bytes();

    // An unlinked file keeps the name it had.
    let e = one(ppid, &parent["deleted"], &proc_fd(i(&parent["gone"])));
    assert_eq!(
        bytes_of(&e, "resolved_path"),
        [real.as_os_str().as_bytes(), b"/gone"].concat()
    );
    assert_eq!(flags(&e), ["resolved_deleted"], "{e}");
    // O_TMPFILE: never had a name; the kernel calls it #INO.
    let e = one(ppid, &parent["tmpfile"], dir.as_os_str().as_bytes());
    let ino = u(&parent["tmpfile_ino"]);
    assert_eq!(
        bytes_of(&e, "resolved_path"),
        [real.as_os_str().as_bytes(), format!("/#{ino}").as_bytes()].concat()
    );
    assert_eq!(flags(&e), ["resolved_deleted"], "{e}");
    assert_eq!(u(&e["ino"]), ino);
    // A pipe reopened through /proc: no directory, no name; named after its inode.
    let pipe = one(ppid, &parent["pipe"], &proc_fd(i(&parent["pipe_r"])));
    assert_eq!(
        bytes_of(&pipe, "resolved_path"),
        format!("pipe:[{}]", u(&parent["pipe_ino"])).as_bytes()
    );
    assert_eq!(flags(&pipe), ["resolved_pseudo"], "{pipe}");
    assert_eq!(u(&pipe["ino"]), u(&parent["pipe_ino"]));
    // A memfd: the kernel's name for it.
    let m = one(ppid, &parent["memfd"], &proc_fd(i(&parent["memfd_fd"])));
    assert_eq!(m["resolved_path"], "memfd:rwtest", "{m}");
    assert_eq!(flags(&m), ["resolved_pseudo"], "{m}");
    // A mount's root (its dentry is never hashed): named, not taken for a deleted file.
    let e = one(ppid, &parent["mount_root"], b"/proc");
    assert_eq!(e["resolved_path"], "/proc", "{e}");
    assert!(flags(&e).is_empty(), "{e}");
    // In a chroot: through an fd from outside, the path runs from the real root.
    let cpid = u(&child["tid"]);
    let e = one(cpid, &child["outside"], b"x");
    assert_eq!(
        bytes_of(&e, "resolved_path"),
        [real.as_os_str().as_bytes(), b"/outside/x"].concat()
    );
    assert_eq!(flags(&e), ["resolved_outside_root"], "{e}");
    // ... and its own root is "/".
    let e = one(cpid, &child["root"], b"/");
    assert_eq!(e["resolved_path"], "/", "{e}");
    assert!(flags(&e).is_empty(), "{e}");
    let _ = fs::remove_dir_all(&dir);
}
