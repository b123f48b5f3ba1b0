//! Anomaly family against the real kernel: each rule triggered N times by this test's
//! own threads or children -> exactly N events for them.
mod common;

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Daemon, Finished, bytes_of, gettid, i, u};
use serde_json::Value;

fn rule<'a>(f: &'a Finished, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    f.of_type("anomaly").filter(move |e| e["rule"] == name)
}

/// Spawns, retrying ETXTBSY: another test thread may fork while our freshly written
/// binary's fd is still open, and that child holds it until it execs (a failed exec
/// produces no event, so retries do not change the counts).
fn spawn_retry(mut make: impl FnMut() -> Command) -> Child {
    for _ in 0..200 {
        match make().spawn() {
            Ok(c) => return c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("spawn: {e}"),
        }
    }
    panic!("spawn: still ETXTBSY after 200 tries");
}

fn run_ok(make: impl FnMut() -> Command) -> u64 {
    let mut c = spawn_retry(make);
    let pid = c.id() as u64;
    let st = c.wait().expect("wait");
    assert!(st.success(), "child {pid} failed: {st:?}");
    pid
}

/// A copy of /bin/true at `path`, executable.
fn copy_true(path: &Path) {
    fs::copy("/bin/true", path).expect("copy /bin/true");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "ringwarden-anomaly-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Removes the file when the test ends, even on a failed assert.
struct Remove(PathBuf);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

crate::variant_twins! {
    ptrace_attach_is_reported_once,
    /// The same with the 5.10 variant (bpf/kernel.h).
    the_510_variant_ptrace_attach_is_reported_once => ptrace_attach_is_reported_once_on
}

fn ptrace_attach_is_reported_once_on(v510: bool) {
    let d = Daemon::builder("anomaly-ptrace")
        .args(&["--only", "anomaly"])
        .variant_510(v510)
        .start();
    let mut c = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let pid = c.id() as libc::pid_t;
    // SAFETY: plain syscalls on our own child; the tracer is this thread throughout.
    unsafe {
        let r = libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        );
        assert_eq!(r, 0, "PTRACE_ATTACH: {}", io::Error::last_os_error());
        let mut st = 0;
        assert_eq!(libc::waitpid(pid, &mut st, 0), pid);
        assert!(libc::WIFSTOPPED(st), "attached child stops");
        let r = libc::ptrace(
            libc::PTRACE_DETACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        );
        assert_eq!(r, 0, "PTRACE_DETACH: {}", io::Error::last_os_error());
    }
    c.kill().expect("kill");
    c.wait().expect("wait");
    let f = d.stop();
    f.assert_exact().assert_variant("anomaly", v510);
    let tid = u64::from(gettid());
    let ev: Vec<_> = rule(&f, "ptrace_attach")
        .filter(|e| u(&e["tid"]) == tid)
        .collect();
    assert_eq!(ev.len(), 1, "one ptrace_attach from this thread: {ev:?}");
    let e = ev[0];
    assert_eq!(u(&e["target_pid"]), pid as u64);
    assert_eq!(u(&e["request"]), libc::PTRACE_ATTACH as u64);
    assert_eq!(e["request_name"], "PTRACE_ATTACH");
    assert_eq!(e["severity"], "high");
    assert_eq!(i(&e["ret"]), 0, "reported at the exit, with its outcome");
    assert_eq!(u(&e["suppressed"]), 0);
    assert_eq!(u(&e["pid"]), u64::from(std::process::id()));
}

crate::variant_twins! {
    exec_from_shm_tmp_and_memfd,
    /// The same with the 5.10 variant (bpf/kernel.h).
    the_510_variant_exec_from_shm_tmp_and_memfd => exec_from_shm_tmp_and_memfd_on
}

fn exec_from_shm_tmp_and_memfd_on(v510: bool) {
    let d = Daemon::builder("anomaly-exec")
        .args(&["--only", "anomaly"])
        .variant_510(v510)
        .start();

    // /dev/shm: its own tmpfs mount here, so the walk crosses a mount point.
    let shm_name = unique("shm");
    let shm = PathBuf::from("/dev/shm").join(&shm_name);
    let _rm_shm = Remove(shm.clone());
    copy_true(&shm);
    let shm_pids: Vec<u64> = (0..3).map(|_| run_ok(|| Command::new(&shm))).collect();

    // /tmp itself (part of the root file system here).
    let tmp_name = unique("tmp");
    let tmp = PathBuf::from("/tmp").join(&tmp_name);
    let _rm_tmp = Remove(tmp.clone());
    copy_true(&tmp);
    let tmp_pid = run_ok(|| Command::new(&tmp));

    // memfd: created close-on-exec so no other test's child inherits it; only our
    // child clears the flag before exec'ing it through /proc/self/fd.
    let name = CString::new("ringwarden-test").expect("no NUL");
    // SAFETY: valid NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
    let bin = fs::read("/bin/true").expect("read /bin/true");
    // SAFETY: fd is ours and bin is a valid buffer of bin.len() bytes.
    let w = unsafe { libc::write(fd, bin.as_ptr().cast(), bin.len()) };
    assert_eq!(w, bin.len() as isize, "write memfd");
    let memfd_path = format!("/proc/self/fd/{fd}");
    let memfd_pid = run_ok(|| {
        let mut c = Command::new(&memfd_path);
        // SAFETY: fcntl is async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    });
    // SAFETY: fd is ours, closed once.
    unsafe { libc::close(fd) };

    let f = d.stop();
    f.assert_exact().assert_variant("anomaly", v510);

    let shm_ev: Vec<_> = rule(&f, "exec_from_tmp")
        .filter(|e| shm_pids.contains(&u(&e["pid"])))
        .collect();
    assert_eq!(shm_ev.len(), 3, "three execs from /dev/shm: {shm_ev:?}");
    for e in &shm_ev {
        assert_eq!(e["location"], "/dev/shm");
        assert_eq!(e["severity"], "medium");
        assert_eq!(bytes_of(e, "filename"), shm.as_os_str().as_encoded_bytes());
        assert_eq!(e["file"], shm_name.as_str());
        assert_eq!(e["filename_truncated"], false);
    }
    let mut seen: Vec<u64> = shm_ev.iter().map(|e| u(&e["pid"])).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 3, "one event per child");

    let tmp_ev: Vec<_> = rule(&f, "exec_from_tmp")
        .filter(|e| u(&e["pid"]) == tmp_pid)
        .collect();
    assert_eq!(tmp_ev.len(), 1, "one exec from /tmp: {tmp_ev:?}");
    assert_eq!(tmp_ev[0]["location"], "/tmp");
    assert_eq!(tmp_ev[0]["file"], tmp_name.as_str());

    let mem_ev: Vec<_> = f
        .of_type("anomaly")
        .filter(|e| u(&e["pid"]) == memfd_pid)
        .collect();
    assert_eq!(
        mem_ev.len(),
        1,
        "one anomaly for the memfd child: {mem_ev:?}"
    );
    let e = mem_ev[0];
    assert_eq!(e["rule"], "exec_from_memfd");
    assert_eq!(e["severity"], "high");
    assert_eq!(e["filename"], memfd_path.as_str());
    assert!(
        e["file"]
            .as_str()
            .is_some_and(|s| s.starts_with("memfd:ringwarden-test")),
        "memfd dentry name: {e}"
    );
    // The ordinary /dev/shm and /tmp children are not memfd execs.
    assert_eq!(
        rule(&f, "exec_from_memfd")
            .filter(|e| shm_pids.contains(&u(&e["pid"])) || u(&e["pid"]) == tmp_pid)
            .count(),
        0
    );
}

crate::variant_twins! {
    uid_change_to_root_by_non_root_is_critical,
    /// The same with the 5.10 variant (bpf/kernel.h).
    the_510_variant_uid_change_to_root_by_non_root_is_critical => uid_change_to_root_by_non_root_is_critical_on
}

fn uid_change_to_root_by_non_root_is_critical_on(v510: bool) {
    let d = Daemon::builder("anomaly-setuid")
        .args(&["--only", "anomaly"])
        .variant_510(v510)
        .start();
    // Drop to nobody keeping saved uid 0, then take root back: one gain of root.
    let gain = run_ok(|| {
        let mut c = Command::new("/bin/true");
        // SAFETY: raw syscalls only (async-signal-safe) between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::syscall(libc::SYS_setresuid, 65534, 65534, 0) != 0
                    || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    });
    // Root staying root is no anomaly.
    let stay = run_ok(|| {
        let mut c = Command::new("/bin/true");
        // SAFETY: as above.
        unsafe {
            c.pre_exec(|| {
                if libc::syscall(libc::SYS_setuid, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    });
    let f = d.stop();
    f.assert_exact().assert_variant("anomaly", v510);
    let ev: Vec<_> = rule(&f, "setuid_root")
        .filter(|e| u(&e["pid"]) == gain)
        .collect();
    assert_eq!(ev.len(), 1, "one setuid_root for the child: {ev:?}");
    let e = ev[0];
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["syscall"], "setresuid");
    assert_eq!(u(&e["old_uid"]), 65534);
    assert_eq!(u(&e["old_euid"]), 65534);
    assert_eq!(u(&e["new_uid"]), 0);
    assert_eq!(u(&e["new_euid"]), 0);
    assert_eq!(u(&e["tid"]), gain);
    assert_eq!(
        f.of_type("anomaly")
            .filter(|e| u(&e["pid"]) == stay)
            .count(),
        0,
        "root calling setuid(0) is not reported"
    );
}

/// Removes a directory tree when the test ends, even on a failed assert.
struct RemoveDir(PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A nosuid mount would make the helper run without euid 0: the test would fail for
/// the wrong reason. Fails saying so instead.
fn assert_suid_allowed(dir: &Path) {
    let c = CString::new(dir.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: a valid C string and a zeroed out-struct the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs");
    assert!(
        st.f_flag & libc::ST_NOSUID == 0,
        "{} is on a nosuid mount: this test needs a setuid-root helper there",
        dir.display()
    );
}

#[test]
fn setuid_root_binary_run_by_nobody_gaining_root_is_critical() {
    // A setuid-root interpreter: needs /tmp without nosuid (the root file system here).
    let dir = PathBuf::from("/tmp").join(unique("suid"));
    fs::create_dir(&dir).expect("mkdir");
    let _rm = RemoveDir(dir.clone());
    assert_suid_allowed(&dir);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let suid = dir.join("python3-suid");
    fs::copy("/usr/bin/python3", &suid).expect("copy python3");
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).expect("chown root");
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
    let d = Daemon::start("anomaly-suid", &["--only", "anomaly"]);
    let path = suid.to_str().expect("utf-8 path").to_string();
    // uid 65534, euid 0: setuid(0) gains the real uid 0.
    let gain = run_ok(|| {
        let mut c = common::as_nobody(&path);
        c.args(["-c", "import os; os.setuid(0); assert os.getuid() == 0"]);
        c
    });
    // Without that call the euid 0 it got at exec is no gain through a set*uid.
    let keep = run_ok(|| {
        let mut c = common::as_nobody(&path);
        c.args([
            "-c",
            "import os; os.seteuid(0); assert os.getuid() == 65534",
        ]);
        c
    });
    let f = d.stop();
    f.assert_exact();
    let ev: Vec<_> = rule(&f, "setuid_root")
        .filter(|e| u(&e["pid"]) == gain)
        .collect();
    assert_eq!(ev.len(), 1, "one setuid_root for the helper: {ev:?}");
    let e = ev[0];
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["syscall"], "setuid");
    assert_eq!(u(&e["old_uid"]), 65534);
    assert_eq!(u(&e["old_euid"]), 0);
    assert_eq!(u(&e["new_uid"]), 0);
    assert_eq!(
        rule(&f, "setuid_root")
            .filter(|e| u(&e["pid"]) == keep)
            .count(),
        0
    );
}

/// `union bpf_attr` for BPF_PROG_LOAD, the prefix we use, zero-padded.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    rest: [u8; 64],
}

crate::variant_twins! {
    bpf_prog_load_by_another_process,
    /// The same with the 5.10 variant (bpf/kernel.h).
    the_510_variant_bpf_prog_load_by_another_process => bpf_prog_load_by_another_process_on
}

fn bpf_prog_load_by_another_process_on(v510: bool) {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const SOCKET_FILTER: u32 = 1;
    let d = Daemon::builder("anomaly-bpf")
        .args(&["--only", "anomaly"])
        .variant_510(v510)
        .start();
    // mov r0, 0; exit
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"rw_anom_test");
    for _ in 0..3 {
        let attr = ProgLoadAttr {
            prog_type: SOCKET_FILTER,
            insn_cnt: 2,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: 0,
            log_size: 0,
            log_buf: 0,
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            rest: [0; 64],
        };
        // SAFETY: attr and the buffers it points to outlive the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoadAttr,
                std::mem::size_of::<ProgLoadAttr>(),
            )
        };
        assert!(fd >= 0, "BPF_PROG_LOAD: {}", io::Error::last_os_error());
        // SAFETY: the fd was just returned to us.
        unsafe { libc::close(fd as i32) };
    }
    let f = d.stop();
    f.assert_exact().assert_variant("anomaly", v510);
    let tid = u64::from(gettid());
    let ev: Vec<_> = rule(&f, "bpf_prog_load")
        .filter(|e| u(&e["tid"]) == tid)
        .collect();
    assert_eq!(ev.len(), 3, "three loads from this thread: {ev:?}");
    for e in ev {
        assert_eq!(e["severity"], "high");
        assert!(
            i(&e["ret"]) >= 0,
            "a load that succeeded returns its fd: {e}"
        );
        assert_eq!(u(&e["suppressed"]), 0);
        assert_eq!(u(&e["prog_type"]), u64::from(SOCKET_FILTER));
        assert_eq!(u(&e["insn_cnt"]), 2);
        assert_eq!(e["prog_name"], "rw_anom_test");
        assert_eq!(
            u(&e["attr_size"]),
            std::mem::size_of::<ProgLoadAttr>() as u64
        );
    }
}

#[test]
fn module_load_attempts_or_skipped_program() {
    let d = Daemon::start("anomaly-module", &["--only", "anomaly"]);
    for _ in 0..2 {
        // SAFETY: fd -1 fails (EBADF, or ENOSYS without module support): harmless.
        let r = unsafe { libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0) };
        assert_eq!(r, -1);
        let err = io::Error::last_os_error().raw_os_error();
        assert!(
            matches!(err, Some(libc::EBADF) | Some(libc::ENOSYS)),
            "finit_module: {err:?}"
        );
    }
    let f = d.stop();
    f.assert_exact();
    let tid = u64::from(gettid());
    let ev: Vec<_> = rule(&f, "module_load")
        .filter(|e| u(&e["tid"]) == tid)
        .collect();
    let prog = &f.stats["programs"]["anomaly_finit_module"];
    if Path::new("/sys/kernel/tracing/events/syscalls/sys_enter_finit_module").exists() {
        assert_eq!(prog["attached"], true, "{prog}");
        assert_eq!(ev.len(), 2, "two finit_module attempts: {ev:?}");
        for e in ev {
            assert_eq!(e["syscall"], "finit_module");
            assert_eq!(i(&e["fd"]), -1);
            assert_eq!(e["params"], "");
            assert_eq!(e["severity"], "high");
        }
    } else {
        // No CONFIG_MODULES: the syscalls and their tracepoints do not exist; the
        // programs are reported as not applicable and the rest of the family runs.
        assert_eq!(prog["attached"], false, "{prog}");
        assert_eq!(
            prog["not_applicable"],
            "this kernel has no finit_module syscall (no tracepoint sys_enter_finit_module)"
        );
        assert!(prog.get("error").is_none(), "{prog}");
        assert_eq!(
            f.stats["programs"]["anomaly_init_module"]["attached"],
            false
        );
        assert!(
            f.stderr
                .contains("program anomaly/anomaly_finit_module not needed here: this kernel has no finit_module syscall"),
            "log:\n{}",
            f.stderr
        );
        assert_eq!(ev.len(), 0);
        assert_eq!(f.stats["programs"]["anomaly_bpf_enter"]["attached"], true);
    }
}

/// `depth` nested directories `d` under `base`, made by relative steps (no path name
/// gets long), with a copy of /bin/true in the deepest; returns an O_PATH fd of it.
fn deep_dir(base: &Path, depth: usize) -> OwnedFd {
    let open_dir = |at: libc::c_int, name: &CStr| {
        // SAFETY: valid NUL-terminated name; the fd returned is owned below.
        let fd = unsafe {
            libc::openat(
                at,
                name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0, "open {name:?}: {}", io::Error::last_os_error());
        // SAFETY: fd was just opened and is owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let base_c = CString::new(base.as_os_str().as_bytes()).expect("no NUL");
    let mut dir = open_dir(libc::AT_FDCWD, &base_c);
    for _ in 0..depth {
        // SAFETY: dir is a valid directory fd, the name is NUL-terminated.
        let r = unsafe { libc::mkdirat(dir.as_raw_fd(), c"d".as_ptr(), 0o755) };
        assert_eq!(r, 0, "mkdirat: {}", io::Error::last_os_error());
        dir = open_dir(dir.as_raw_fd(), c"d");
    }
    let bin = fs::read("/bin/true").expect("read /bin/true");
    // SAFETY: as above; the file fd is owned below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"true".as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o755,
        )
    };
    assert!(fd >= 0, "create true: {}", io::Error::last_os_error());
    // SAFETY: fd was just opened and is owned by nobody else.
    let mut f = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(&bin).expect("write true");
    drop(f);
    dir
}

/// Removes a directory tree of any depth when the test ends (rm walks by fds).
struct RemoveTree(PathBuf);
impl Drop for RemoveTree {
    fn drop(&mut self) {
        let _ = Command::new("rm").arg("-rf").arg(&self.0).status();
    }
}

#[test]
fn exec_from_tmp_at_any_depth() {
    let d = Daemon::start("anomaly-deep", &["--only", "anomaly"]);
    let mut runs = Vec::new();
    let mut trees = Vec::new();
    // 70 and 300: deeper than the old 64-step walk, exec'd by path. 2,100: a path
    // longer than PATH_MAX, exec'd through its directory's fd. 9,000: deeper than the
    // walk goes (8,192 steps): reported with location "unknown", not missed. The two
    // deep ones on /dev/shm (tmpfs): removing 10,000 directories from this ext4
    // (mounted with discard) takes half a minute.
    for (top, depth, loc) in [
        ("/tmp", 70, "/tmp"),
        ("/tmp", 300, "/tmp"),
        ("/dev/shm", 2100, "/dev/shm"),
        ("/dev/shm", 9000, "unknown"),
    ] {
        let base = PathBuf::from(top).join(unique("deep"));
        fs::create_dir(&base).expect("mkdir base");
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod");
        trees.push(RemoveTree(base.clone()));
        let dir = deep_dir(&base, depth);
        let pid = if depth <= 300 {
            let mut p = base.clone();
            for _ in 0..depth {
                p.push("d");
            }
            p.push("true");
            let p = p.to_str().expect("utf-8").to_string();
            run_ok(|| common::as_nobody(&p))
        } else {
            let raw = dir.as_raw_fd();
            let p = format!("/proc/self/fd/{raw}/true");
            run_ok(|| {
                let mut c = common::as_nobody(&p);
                // SAFETY: fcntl is async-signal-safe; only this child gets the fd.
                unsafe {
                    c.pre_exec(move || {
                        if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                c
            })
        };
        runs.push((depth, loc, pid));
    }
    let f = d.stop();
    f.assert_exact();
    for (depth, loc, pid) in runs {
        let ev: Vec<_> = f
            .of_type("anomaly")
            .filter(|e| u(&e["pid"]) == pid)
            .collect();
        assert_eq!(ev.len(), 1, "depth {depth}: one anomaly: {ev:?}");
        assert_eq!(ev[0]["rule"], "exec_from_tmp", "depth {depth}");
        assert_eq!(ev[0]["location"], loc, "depth {depth}");
        assert_eq!(ev[0]["file"], "true", "depth {depth}");
        assert_eq!(u(&ev[0]["uid"]), 65534);
    }
}

/// The 5.10 variant's walk is a bounded loop of 48 steps: an exec 43 levels under /tmp
/// (47 steps to the root, one more if /tmp is a mount of its own) is placed there, one 46
/// levels down is reported with location "unknown", not missed.
#[test]
fn the_510_variant_walks_48_steps_then_says_unknown() {
    let d = Daemon::builder("anomaly-deep-510")
        .args(&["--only", "anomaly"])
        .variant_510(true)
        .start();
    let mut runs = Vec::new();
    let mut trees = Vec::new();
    for (depth, loc) in [(43, "/tmp"), (46, "unknown")] {
        let base = PathBuf::from("/tmp").join(unique("deep510"));
        fs::create_dir(&base).expect("mkdir base");
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod");
        trees.push(RemoveTree(base.clone()));
        let _dir = deep_dir(&base, depth);
        let mut p = base.clone();
        for _ in 0..depth {
            p.push("d");
        }
        p.push("true");
        let p = p.to_str().expect("utf-8").to_string();
        runs.push((depth, loc, run_ok(|| common::as_nobody(&p))));
    }
    let f = d.stop();
    f.assert_exact().assert_variant("anomaly", true);
    for (depth, loc, pid) in runs {
        let ev: Vec<_> = f
            .of_type("anomaly")
            .filter(|e| u(&e["pid"]) == pid)
            .collect();
        assert_eq!(ev.len(), 1, "depth {depth}: one anomaly: {ev:?}");
        assert_eq!(ev[0]["rule"], "exec_from_tmp", "depth {depth}");
        assert_eq!(ev[0]["location"], loc, "depth {depth}");
    }
}
