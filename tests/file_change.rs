//! File changes against the real kernel: every unlink, rmdir, mkdir, rename, chmod, chown,
//! link, symlink and truncate syscall this test makes gives exactly one event, with the
//! paths as passed, the directory or file named from the kernel, the arguments and the
//! result (failures included).
mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Daemon, bytes_of, gettid, i, u};
use serde_json::Value;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL")
}

fn cs(p: &str) -> CString {
    CString::new(p).expect("no NUL")
}

/// A directory fd for the *at calls.
fn open_dir(p: &Path) -> libc::c_int {
    let p = c(p);
    // SAFETY: valid path.
    let fd = unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(fd >= 0, "open the directory");
    fd
}

/// A raw syscall's result as the kernel gives it: the value, or -errno.
fn sys(r: libc::c_long) -> i64 {
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        #[allow(clippy::useless_conversion, reason = "c_long is i32 on 32-bit targets")]
        i64::from(r)
    }
}

/// One call this test makes and what its event must say.
struct Want {
    ty: &'static str,
    syscall: &'static str,
    ret: i64,
    /// Fields that must be there with these values.
    fields: Vec<(&'static str, Value)>,
}

fn s(v: &Path) -> Value {
    Value::String(v.to_string_lossy().into_owned())
}

crate::variant_twins! {
    each_change_gives_exactly_one_event_with_its_arguments,
    /// The same in the 5.10 variant: the entries in a tid-keyed hash, the names resolved with
    /// CO-RE reads of the task's files and working directory.
    the_510_variant_gives_one_event_per_change => each_change
}

fn each_change(v510: bool) {
    let dir = common::temp_dir(if v510 {
        "file-change-510"
    } else {
        "file-change"
    });
    let dirv = s(&dir);
    let at = |n: &str| dir.join(n);
    let dirfd = open_dir(&dir);
    for n in ["chmod-me", "chown-me", "trunc-me", "link-src", "fd-file"] {
        fs::write(at(n), b"0123456789").expect("create");
    }
    let fd = {
        let p = c(&at("fd-file"));
        // SAFETY: valid path.
        unsafe { libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) }
    };
    assert!(fd >= 0);

    // Two ~500-byte relative paths, made before the daemon starts (not calls to count).
    let long = |c: char| {
        format!(
            "{}/{}/{}",
            c.to_string().repeat(200),
            c.to_string().repeat(200),
            c.to_string().repeat(100)
        )
    };
    let (la, lb) = (long('a'), long('b'));
    let mut dfds = Vec::new();
    for (sub, rel) in [("ld-a", &la), ("ld-b", &lb)] {
        let parent = at(sub).join(rel);
        let parent = parent.parent().expect("a parent");
        fs::create_dir_all(parent).expect("long dirs");
        dfds.push(open_dir(&at(sub)));
    }
    fs::write(at("ld-a").join(&la), b"l").expect("long file");

    let d = Daemon::builder(if v510 {
        "file-change-510"
    } else {
        "file-change"
    })
    .args(&["--only", "file", "--ring-size", "file=8MiB"])
    .variant_510(v510)
    .start();
    let mut want: Vec<Want> = Vec::new();
    let mut call = |ty, syscall, ret: i64, fields: Vec<(&'static str, Value)>| {
        want.push(Want {
            ty,
            syscall,
            ret,
            fields,
        });
    };
    // SAFETY (every block below): raw syscalls with valid NUL-terminated paths and fds.
    unsafe {
        // mkdir, mkdirat (relative to a directory fd: dir is that directory).
        let p = c(&at("d1"));
        let r = sys(libc::syscall(
            libc::SYS_mkdirat,
            libc::AT_FDCWD,
            p.as_ptr(),
            0o750,
        ));
        call(
            "mkdir",
            "mkdirat",
            r,
            vec![
                ("path", s(&at("d1"))),
                ("mode", 0o750.into()),
                ("mode_octal", "0750".into()),
            ],
        );
        let p = cs("d2");
        let r = sys(libc::syscall(libc::SYS_mkdirat, dirfd, p.as_ptr(), 0o700));
        call(
            "mkdir",
            "mkdirat",
            r,
            vec![
                ("path", "d2".into()),
                ("dir", dirv.clone()),
                ("dfd", dirfd.into()),
            ],
        );
        // The same again: EEXIST, still one event.
        let r = sys(libc::syscall(libc::SYS_mkdirat, dirfd, p.as_ptr(), 0o700));
        assert_eq!(r, -i64::from(libc::EEXIST));
        call(
            "mkdir",
            "mkdirat",
            r,
            vec![("path", "d2".into()), ("dir", dirv.clone())],
        );
        // rmdir as unlinkat(AT_REMOVEDIR).
        let r = sys(libc::syscall(
            libc::SYS_unlinkat,
            dirfd,
            p.as_ptr(),
            libc::AT_REMOVEDIR,
        ));
        call(
            "rmdir",
            "unlinkat",
            r,
            vec![("path", "d2".into()), ("flags_text", "AT_REMOVEDIR".into())],
        );
        // rename, renameat2 with RENAME_NOREPLACE onto an existing name (EEXIST).
        fs::write(at("r-a"), b"a").expect("r-a");
        fs::write(at("r-c"), b"c").expect("r-c");
        let (a, b) = (cs("r-a"), cs("r-b"));
        let r = sys(libc::syscall(
            libc::SYS_renameat2,
            dirfd,
            a.as_ptr(),
            dirfd,
            b.as_ptr(),
            0,
        ));
        call(
            "rename",
            "renameat2",
            r,
            vec![
                ("path", "r-a".into()),
                ("new_path", "r-b".into()),
                ("dir", dirv.clone()),
                ("new_dir", dirv.clone()),
            ],
        );
        let cc = cs("r-c");
        let r = sys(libc::syscall(
            libc::SYS_renameat2,
            dirfd,
            b.as_ptr(),
            dirfd,
            cc.as_ptr(),
            1,
        ));
        assert_eq!(r, -i64::from(libc::EEXIST));
        call(
            "rename",
            "renameat2",
            r,
            vec![
                ("flags_text", "RENAME_NOREPLACE".into()),
                ("new_path", "r-c".into()),
            ],
        );
        // Two ~500-byte relative paths from two directory fds: the record's names sit
        // back to back (path, new_path, dir, new_dir), none over another.
        let (a, b) = (cs(&la), cs(&lb));
        let r = sys(libc::syscall(
            libc::SYS_renameat,
            dfds[0],
            a.as_ptr(),
            dfds[1],
            b.as_ptr(),
        ));
        assert_eq!(r, 0);
        call(
            "rename",
            "renameat",
            r,
            vec![
                ("path", la.as_str().into()),
                ("new_path", lb.as_str().into()),
                ("dir", s(&at("ld-a"))),
                ("new_dir", s(&at("ld-b"))),
                ("new_path_changed", false.into()),
            ],
        );
        for dfd in dfds {
            libc::close(dfd);
        }
        // chmod by path and by fd (the file named from the kernel).
        let p = c(&at("chmod-me"));
        let r = sys(libc::syscall(
            libc::SYS_fchmodat,
            libc::AT_FDCWD,
            p.as_ptr(),
            0o604,
        ));
        call(
            "chmod",
            "fchmodat",
            r,
            vec![("path", s(&at("chmod-me"))), ("mode", 0o604.into())],
        );
        let r = sys(libc::syscall(libc::SYS_fchmod, fd, 0o640));
        call(
            "chmod",
            "fchmod",
            r,
            vec![
                ("resolved_path", s(&at("fd-file"))),
                ("fd", fd.into()),
                ("mode_octal", "0640".into()),
            ],
        );
        // chown: -1 stays -1.
        let p = c(&at("chown-me"));
        let r = sys(libc::syscall(
            libc::SYS_fchownat,
            libc::AT_FDCWD,
            p.as_ptr(),
            65534,
            -1i32,
            0,
        ));
        call(
            "chown",
            "fchownat",
            r,
            vec![
                ("owner_uid", 65534.into()),
                ("owner_gid", (-1).into()),
                ("path", s(&at("chown-me"))),
            ],
        );
        let r = sys(libc::syscall(libc::SYS_fchown, fd, -1i32, 0));
        call(
            "chown",
            "fchown",
            r,
            vec![
                ("owner_uid", (-1).into()),
                ("owner_gid", 0.into()),
                ("resolved_path", s(&at("fd-file"))),
            ],
        );
        // link, symlink.
        let (src, dst) = (c(&at("link-src")), c(&at("link-dst")));
        let r = sys(libc::syscall(
            libc::SYS_linkat,
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            0,
        ));
        call(
            "link",
            "linkat",
            r,
            vec![
                ("path", s(&at("link-src"))),
                ("new_path", s(&at("link-dst"))),
            ],
        );
        let (target, name) = (cs("../nowhere"), cs("sym"));
        let r = sys(libc::syscall(
            libc::SYS_symlinkat,
            target.as_ptr(),
            dirfd,
            name.as_ptr(),
        ));
        call(
            "symlink",
            "symlinkat",
            r,
            vec![
                ("path", "sym".into()),
                ("target", "../nowhere".into()),
                ("dir", dirv.clone()),
            ],
        );
        // truncate, ftruncate.
        let p = c(&at("trunc-me"));
        let r = sys(libc::syscall(libc::SYS_truncate, p.as_ptr(), 3));
        call(
            "truncate",
            "truncate",
            r,
            vec![("length", 3.into()), ("path", s(&at("trunc-me")))],
        );
        let r = sys(libc::syscall(libc::SYS_ftruncate, fd, 5));
        call(
            "truncate",
            "ftruncate",
            r,
            vec![("length", 5.into()), ("resolved_path", s(&at("fd-file")))],
        );
        // unlink: one that works, one that does not exist (ENOENT).
        let p = c(&at("link-dst"));
        let r = sys(libc::syscall(
            libc::SYS_unlinkat,
            libc::AT_FDCWD,
            p.as_ptr(),
            0,
        ));
        call("unlink", "unlinkat", r, vec![("path", s(&at("link-dst")))]);
        let r = sys(libc::syscall(
            libc::SYS_unlinkat,
            libc::AT_FDCWD,
            p.as_ptr(),
            0,
        ));
        assert_eq!(r, -i64::from(libc::ENOENT));
        call("unlink", "unlinkat", r, vec![("path", s(&at("link-dst")))]);
        // A NULL path: EFAULT, reported as unreadable, and no directory or file named.
        let r = sys(libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, 0usize, 0));
        assert_eq!(r, -i64::from(libc::EFAULT));
        call(
            "unlink",
            "unlinkat",
            r,
            vec![
                ("path", "".into()),
                ("path_unreadable", true.into()),
                ("dir", Value::Null),
                ("resolved_path", Value::Null),
            ],
        );
        // An fd call's fd is unsigned: -100 is a bad fd there, not the working directory.
        let r = sys(libc::syscall(libc::SYS_fchmod, libc::AT_FDCWD, 0o600));
        assert_eq!(r, -i64::from(libc::EBADF));
        call(
            "chmod",
            "fchmod",
            r,
            vec![
                ("resolved_unavailable", true.into()),
                ("resolved_path", Value::Null),
            ],
        );
        // The legacy calls x86_64 still has.
        #[cfg(target_arch = "x86_64")]
        {
            let p = c(&at("d3"));
            let r = sys(libc::syscall(libc::SYS_mkdir, p.as_ptr(), 0o755));
            call("mkdir", "mkdir", r, vec![("path", s(&at("d3")))]);
            let r = sys(libc::syscall(libc::SYS_rmdir, p.as_ptr()));
            call("rmdir", "rmdir", r, vec![("path", s(&at("d3")))]);
            let (a, b) = (c(&at("r-b")), c(&at("r-d")));
            let r = sys(libc::syscall(libc::SYS_rename, a.as_ptr(), b.as_ptr()));
            call(
                "rename",
                "rename",
                r,
                vec![("path", s(&at("r-b"))), ("new_path", s(&at("r-d")))],
            );
            let p = c(&at("chmod-me"));
            let r = sys(libc::syscall(libc::SYS_chmod, p.as_ptr(), 0o600));
            call("chmod", "chmod", r, vec![("mode", 0o600.into())]);
            let p = c(&at("chown-me"));
            let r = sys(libc::syscall(libc::SYS_chown, p.as_ptr(), 0, 0));
            call("chown", "chown", r, vec![("owner_uid", 0.into())]);
            let p = c(&at("sym"));
            let r = sys(libc::syscall(libc::SYS_lchown, p.as_ptr(), 0, 0));
            call("chown", "lchown", r, vec![("path", s(&at("sym")))]);
            let (a, b) = (c(&at("link-src")), c(&at("link-2")));
            let r = sys(libc::syscall(libc::SYS_link, a.as_ptr(), b.as_ptr()));
            call("link", "link", r, vec![("new_path", s(&at("link-2")))]);
            let (t, l) = (cs("/etc/hostname"), c(&at("sym2")));
            let r = sys(libc::syscall(libc::SYS_symlink, t.as_ptr(), l.as_ptr()));
            call(
                "symlink",
                "symlink",
                r,
                vec![("target", "/etc/hostname".into()), ("path", s(&at("sym2")))],
            );
            let p = c(&at("link-2"));
            let r = sys(libc::syscall(libc::SYS_unlink, p.as_ptr()));
            call("unlink", "unlink", r, vec![("path", s(&at("link-2")))]);
        }
    }
    let f = d.stop();
    f.assert_exact().assert_variant("file", v510);
    // The calls really ran as asked.
    assert_eq!(fs::metadata(at("chown-me")).expect("chown-me").uid(), 0);
    assert_eq!(fs::metadata(at("trunc-me")).expect("trunc-me").len(), 3);

    let tid = u64::from(gettid());
    let changes = [
        "unlink", "rmdir", "mkdir", "rename", "chmod", "chown", "link", "symlink", "truncate",
    ];
    let mine: Vec<&Value> = f
        .events
        .iter()
        .filter(|e| u(&e["tid"]) == tid && changes.contains(&e["type"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(mine.len(), want.len(), "one event per call: {mine:#?}");
    // In the order the calls ran (one thread, one ring).
    for (e, w) in mine.iter().zip(&want) {
        assert_eq!(e["type"], w.ty, "{e}");
        assert_eq!(e["syscall"], w.syscall, "{e}");
        assert_eq!(i(&e["ret"]), w.ret, "{e}");
        for (k, v) in &w.fields {
            assert_eq!(&e[*k], v, "{k} in {e}");
        }
        if e.get("path").is_some() && e.get("path_unreadable").is_none() {
            assert_eq!(e["path_changed"], false, "{e}");
            assert!(!bytes_of(e, "path").is_empty(), "{e}");
        }
    }
    // SAFETY: fds this test opened.
    unsafe {
        libc::close(fd);
        libc::close(dirfd);
    }
    let _ = fs::remove_dir_all(&dir);
}

/// The variant's per-thread hashes keep nothing of a thread once it has exited: 50
/// children that open a file and make a change leave no entry in either map.
#[test]
fn the_510_variant_forgets_exited_threads() {
    let dir = common::temp_dir("file-forget-510");
    let d = Daemon::builder("file-forget-510")
        .args(&["--only", "file", "--ring-size", "file=8MiB"])
        .variant_510(true)
        .start();
    let mut ids = Vec::new();
    for n in 0..50 {
        let p = dir.join(format!("f-{n}"));
        let mut c = std::process::Command::new("/bin/sh")
            .args(["-c", "echo x > \"$1\" && exec chmod 600 \"$1\"", "sh"])
            .arg(&p)
            .spawn()
            .expect("spawn sh");
        ids.push(c.id());
        assert!(c.wait().expect("wait").success());
    }
    let opens = common::map_tids(d.pid(), "file_inflight");
    let changes = common::map_tids(d.pid(), "change_inflight");
    let f = d.stop();
    f.assert_exact().assert_variant("file", true);
    for (name, left) in [("file_inflight", &opens), ("change_inflight", &changes)] {
        assert!(
            ids.iter().all(|id| !left.contains(id)),
            "{name}: the exited threads' entries are gone: {ids:?} in {left:?}"
        );
    }
    // They were there: each child's open of its file and its chmod were reported.
    for n in 0..50 {
        let p = dir.join(format!("f-{n}"));
        let path = p.as_os_str().as_bytes();
        let theirs = |ty: &str| {
            f.of_type(ty)
                .filter(|e| ids.iter().any(|id| u(&e["pid"]) == u64::from(*id)))
                .filter(|e| common::bytes_of(e, "path") == path)
                .count()
        };
        assert_eq!((theirs("open"), theirs("chmod")), (1, 1), "{}", p.display());
    }
}
