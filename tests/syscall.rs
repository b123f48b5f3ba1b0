//! Syscall family against the real kernel: N calls of a configured syscall by this
//! thread -> exactly N events, with number, name, first argument, return value, latency.
mod common;

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use common::{Daemon, Finished, gettid, i, u};
use serde_json::Value;

/// Events of `name` made by thread `tid`.
fn calls<'a>(f: &'a Finished, tid: u32, name: &'a str) -> Vec<&'a Value> {
    f.of_type("syscall")
        .filter(|e| u(&e["tid"]) == u64::from(tid) && e["name"] == name)
        .collect()
}

/// The daemon on `args`, running the 5.10 variant (bpf/kernel.h) if `v510`: its per-thread
/// map is a hash keyed by tid, kept by exit and exec programs, not task storage.
fn start(tag: &str, args: &[&str], v510: bool) -> Daemon {
    Daemon::builder(tag).args(args).variant_510(v510).start()
}

/// `arg0`: None for syscalls without arguments (the register holds whatever it held).
fn check(e: &Value, nr: i64, arg0: Option<u64>, ret: i64) {
    assert_eq!(i(&e["nr"]), nr, "{e}");
    if let Some(a) = arg0 {
        assert_eq!(u(&e["args"][0]), a, "{e}");
    }
    assert_eq!(e["args"].as_array().map(Vec::len), Some(6), "{e}");
    assert_eq!(i(&e["ret"]), ret, "{e}");
    assert_eq!(u(&e["pid"]), u64::from(std::process::id()), "{e}");
    assert_eq!(e["ring"], "syscall");
    let lat = u(&e["latency_ns"]);
    assert!(lat > 0 && lat < 1_000_000_000, "latency {lat} ns: {e}");
}

crate::variant_twins! {
    configured_set_gives_exact_counts_args_and_returns,
    the_510_variant_gives_exact_counts_args_and_returns => configured_set
}

fn configured_set(v510: bool) {
    let d = start(
        if v510 { "syscall-510" } else { "syscall" },
        &[
            "--only",
            "syscall",
            "--syscalls",
            "getppid,getpgid,personality",
        ],
        v510,
    );
    let tid = gettid();
    // libc::syscall, not the libc wrappers: every call must really enter the kernel.
    // SAFETY: these syscalls take plain integers and have no memory effects.
    let ppid = unsafe { libc::syscall(libc::SYS_getppid) };
    for _ in 1..1000 {
        // SAFETY: as above.
        let r = unsafe { libc::syscall(libc::SYS_getppid) };
        assert_eq!(r, ppid);
    }
    let mut persona = Vec::new();
    for _ in 0..10 {
        // 0xffffffff only queries the persona.
        // SAFETY: as above.
        persona.push(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) });
    }
    for _ in 0..5 {
        // SAFETY: as above. No such process: fails with ESRCH.
        let r = unsafe { libc::syscall(libc::SYS_getpgid, 1_234_567) };
        assert_eq!(r, -1);
    }
    let f = d.stop();
    f.assert_exact();
    f.assert_variant("syscall", v510);

    let getppid = calls(&f, tid, "getppid");
    assert_eq!(getppid.len(), 1000, "getppid events of this thread");
    for e in &getppid {
        check(e, libc::SYS_getppid, None, ppid);
    }
    let pers = calls(&f, tid, "personality");
    assert_eq!(pers.len(), 10, "personality events of this thread");
    for (e, r) in pers.iter().zip(&persona) {
        check(e, libc::SYS_personality, Some(0xffff_ffff), *r);
    }
    let pgid = calls(&f, tid, "getpgid");
    assert_eq!(pgid.len(), 5, "getpgid events of this thread");
    for e in &pgid {
        check(
            e,
            libc::SYS_getpgid,
            Some(1_234_567),
            -i64::from(libc::ESRCH),
        );
    }
    // Nothing else of this thread: the filter holds exactly the three.
    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == u64::from(tid))
        .count();
    assert_eq!(mine, 1015);
    if v510 {
        assert!(getppid.iter().all(|e| e.get("seq").is_none()), "no seqs");
        return;
    }
    // In order, one sequence number each.
    let seqs: Vec<u64> = getppid.iter().map(|e| u(&e["seq"])).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn default_set_reports_personality_and_not_getppid() {
    let d = Daemon::start("syscall-default", &["--only", "syscall"]);
    let tid = gettid();
    for _ in 0..7 {
        // SAFETY: plain integer syscalls without memory effects.
        unsafe {
            libc::syscall(libc::SYS_personality, 0xffff_ffffu64);
            libc::syscall(libc::SYS_getppid);
        }
    }
    let f = d.stop();
    f.assert_exact();
    let pers = calls(&f, tid, "personality");
    assert_eq!(pers.len(), 7, "personality is in the default set");
    for e in &pers {
        assert_eq!(i(&e["nr"]), libc::SYS_personality);
        assert_eq!(u(&e["args"][0]), 0xffff_ffff);
    }
    assert_eq!(calls(&f, tid, "getppid").len(), 0, "getppid is not");
}

/// With RW_EXEC_HELPER=1 (the test below runs this binary so): a thread that is not the
/// leader execs /bin/true. The kernel gives it the leader's pid before execve returns.
#[test]
#[ignore = "helper process for execve_returns_in_the_new_image"]
fn exec_helper() {
    if std::env::var_os("RW_EXEC_HELPER").is_none() {
        return;
    }
    let t = std::thread::spawn(|| {
        let prog = c"/bin/true";
        let argv = [prog.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NUL-terminated argv and envp arrays of C strings.
        unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        std::process::exit(99);
    });
    let _ = t.join();
    std::process::exit(98);
}

crate::variant_twins! {
    execve_returns_in_the_new_image,
    /// The variant's entry moves with a thread whose execve takes its leader's tid.
    the_510_variant_follows_execve_to_the_leaders_tid => execve_returns
}

fn execve_returns(v510: bool) {
    let d = start(
        if v510 {
            "syscall-exec-510"
        } else {
            "syscall-exec"
        },
        &["--only", "syscall", "--syscalls", "execve"],
        v510,
    );
    // 20 plain children: one execve each, returning 0 in the new image.
    let mut kids = Vec::new();
    for _ in 0..20 {
        let mut c = Command::new("/bin/true").spawn().expect("spawn true");
        kids.push(u64::from(c.id()));
        assert!(c.wait().expect("wait").success());
    }
    // A multi-threaded process whose second thread execs.
    let mut h = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "exec_helper", "--nocapture"])
        .env("RW_EXEC_HELPER", "1")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn helper");
    let hpid = u64::from(h.id());
    assert!(
        h.wait().expect("wait helper").success(),
        "/bin/true exits 0"
    );
    let f = d.stop();
    f.assert_exact();
    f.assert_variant("syscall", v510);

    for pid in &kids {
        let ev: Vec<_> = f
            .of_type("syscall")
            .filter(|e| u(&e["pid"]) == *pid)
            .collect();
        assert_eq!(ev.len(), 1, "one execve of child {pid}: {ev:?}");
        assert_eq!(ev[0]["name"], "execve");
        assert_eq!(i(&ev[0]["ret"]), 0);
        assert_eq!(u(&ev[0]["tid"]), *pid);
        assert_eq!(ev[0]["comm"], "true");
    }
    let ev: Vec<_> = f
        .of_type("syscall")
        .filter(|e| u(&e["pid"]) == hpid)
        .collect();
    assert_eq!(
        ev.len(),
        2,
        "helper: its own execve and its thread's: {ev:?}"
    );
    for e in &ev {
        assert_eq!(e["name"], "execve");
        assert_eq!(i(&e["ret"]), 0);
        assert_eq!(u(&e["tid"]), hpid, "reported under the leader's pid: {e}");
    }
    assert_eq!(ev[1]["comm"], "true");
}

crate::variant_twins! {
    /// x86_64 only: a 32-bit syscall (int 0x80) carries an ia32 number, which must not be
    /// reported under the 64-bit syscall of the same number (ia32 getpid is 20, x86_64's 20
    /// is writev): it is counted as untracked instead.
    #[cfg(target_arch = "x86_64")]
    compat_syscalls_are_counted_not_misreported,
    /// The same with the variant's CO-RE read of the task's compat bit.
    #[cfg(target_arch = "x86_64")]
    the_510_variant_counts_compat_syscalls => compat_syscalls
}

#[cfg(target_arch = "x86_64")]
fn compat_syscalls(v510: bool) {
    const COMPAT: u64 = 10;
    const NATIVE: usize = 3;
    let d = start(
        if v510 {
            "syscall-compat-510"
        } else {
            "syscall-compat"
        },
        &["--only", "syscall", "--syscalls", "writev"],
        v510,
    );
    let tid = gettid();
    for _ in 0..COMPAT {
        let ret: i32;
        // SAFETY: ia32 getpid takes no arguments and touches no memory; int 0x80 keeps
        // every register but eax.
        unsafe { std::arch::asm!("int 0x80", inlateout("eax") 20 => ret, options(nostack)) };
        assert_eq!(ret as u32, std::process::id(), "ia32 getpid");
    }
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    let buf = [0u8; 4];
    let iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    for _ in 0..NATIVE {
        // SAFETY: one valid iovec over a live buffer, a valid fd.
        let r = unsafe { libc::syscall(libc::SYS_writev, devnull.as_raw_fd(), &iov, 1) };
        assert_eq!(r, 4);
    }
    let f = d.stop();
    // Not assert_exact: it requires untracked == 0. The same checks by hand.
    assert!(
        f.status.success(),
        "exit {:?}; log:\n{}",
        f.status,
        f.stderr
    );
    f.assert_variant("syscall", v510);
    let r = f.ring("syscall");
    assert_eq!(
        u(&r["produced"]),
        u(&r["received"]) + u(&r["dropped"]),
        "{r}"
    );
    assert_eq!(u(&r["decode_errors"]), 0, "{r}");
    assert_eq!(f.read_from("syscall").count() as u64, u(&r["received"]));
    let writev = calls(&f, tid, "writev");
    assert_eq!(
        writev.len(),
        NATIVE,
        "only the 64-bit writev calls: {writev:?}"
    );
    for e in &writev {
        check(e, libc::SYS_writev, Some(devnull.as_raw_fd() as u64), 4);
    }
    assert_eq!(u(&r["untracked"]), COMPAT, "compat calls counted: {r}");
}

/// The variant's per-thread hash keeps nothing of a thread that ends inside a syscall
/// (exit_group never returns: its enter makes an entry, no exit takes it): the variant's
/// exit program deletes it, as task storage goes with the task by itself, so the map does
/// not fill up with the dead.
#[test]
fn the_510_variant_forgets_a_thread_that_ends_inside_a_syscall() {
    let d = start(
        "syscall-exit-510",
        &["--only", "syscall", "--syscalls", "exit_group"],
        true,
    );
    let mut ids = Vec::new();
    for _ in 0..50 {
        let mut c = Command::new("/bin/true").spawn().expect("spawn true");
        ids.push(c.id());
        assert!(c.wait().expect("wait").success());
    }
    let left = common::map_tids(d.pid(), "syscall_infligh");
    assert!(
        ids.iter().all(|id| !left.contains(id)),
        "the exited threads' entries are gone: {ids:?} in {left:?}"
    );
    let f = d.stop();
    f.assert_exact();
    f.assert_variant("syscall", true);
    let theirs = f
        .of_type("syscall")
        .filter(|e| ids.iter().any(|id| u(&e["pid"]) == u64::from(*id)))
        .count();
    assert_eq!(
        theirs, 0,
        "an exit_group, which never returns, is not reported"
    );
}
