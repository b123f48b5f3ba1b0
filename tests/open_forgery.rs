//! What an open or a file change event names cannot be forged or hidden by an unprivileged user (issue 10,
//! attacks 1 and 3), run for real as uid 65534:
//! - a thread rewrites its path buffer while its open of a FIFO blocks: `path_changed`,
//!   and `resolved_path` names the FIFO, taken from the kernel's objects;
//! - the same for a file change: a thread rewrites its path buffer while its truncate()
//!   waits for a lease the process holds to be given up (the kernel has the name then);
//! - a 1,500-byte `/./././…/etc/hostname`: `resolved_path` still names the real file;
//! - 20,000 threads blocked in open() of a FIFO do not blind the family: another
//!   process's opens are reported meanwhile and `untracked` stays 0.
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, as_nobody, bytes_of, gettid, i, u};
use serde_json::Value;

const PY: &str = "/usr/bin/python3";

/// A directory uid 65534 can write in, with a FIFO in it.
fn fifo_dir(tag: &str) -> (PathBuf, PathBuf) {
    let dir = common::temp_dir(tag);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
    // Past the umask: the attacker opens it both ways.
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o666)).expect("chmod fifo");
    (dir, fifo)
}

/// The attacker's process: killed (all its threads) and reaped however the test ends.
struct Attacker(Child);

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `script` as uid 65534 with `args` to its end; the JSON line it printed.
fn attack(script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let mut c = Attacker(
        as_nobody(PY)
            .args(["-c", script])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the attacker"),
    );
    let mut out = BufReader::new(c.0.stdout.take().expect("stdout"));
    let got = line(&mut out);
    assert!(c.0.wait().expect("wait").success(), "attacker failed");
    got
}

/// Lines the attacker prints as JSON.
fn line(out: &mut impl BufRead) -> Value {
    let mut l = String::new();
    out.read_line(&mut l).expect("read the attacker's output");
    serde_json::from_str(&l).unwrap_or_else(|e| panic!("attacker said {l:?}: {e}"))
}

/// A thread opens the FIFO through a buffer it owns; once the open blocks, the main
/// thread rewrites the buffer to /etc/hostname and only then unblocks the open by
/// opening the FIFO for writing.
const TOCTOU: &str = r#"
import ctypes, json, os, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
fifo = sys.argv[1].encode()
buf = ctypes.create_string_buffer(fifo, 4096)
got = {}
def reader():
    got["tid"] = threading.get_native_id()
    got["fd"] = libc.open(buf, os.O_RDONLY)
t = threading.Thread(target=reader)
t.start()
while "tid" not in got:
    time.sleep(0.001)
task = "/proc/self/task/%d/" % got["tid"]
deadline = time.time() + 30
# Blocked inside openat (the kernel has the name already): sleeping, syscall 257.
while True:
    state = open(task + "stat").read().rsplit(")", 1)[1].split()[0]
    nr = open(task + "syscall").read().split()[0]
    if state == "S" and nr == str(int(sys.argv[2])):
        break
    assert time.time() < deadline, "the reader never blocked in open"
    time.sleep(0.01)
forged = b"/etc/hostname\0"
ctypes.memmove(buf, forged, len(forged))
w = os.open(sys.argv[1], os.O_WRONLY)
t.join()
print(json.dumps(got), flush=True)
"#;

#[test]
fn a_path_rewritten_during_a_blocked_open_is_flagged_and_resolved() {
    common::ensure_tracefs();
    let (dir, fifo) = fifo_dir("toctou");
    let real = fs::canonicalize(&fifo).expect("canonical fifo");
    let d = Daemon::start(
        "open-toctou",
        &["--only", "file", "--ring-size", "file=8MiB"],
    );
    let nr = libc::SYS_openat.to_string();
    let got = attack(TOCTOU, &[fifo.as_os_str(), nr.as_ref()]);
    let (tid, fd) = (u(&got["tid"]), i(&got["fd"]));
    assert!(fd >= 0, "the open of the FIFO succeeded: {got}");
    let f = d.stop();
    f.assert_exact();
    let evs: Vec<&Value> = f.of_type("open").filter(|e| u(&e["tid"]) == tid).collect();
    assert_eq!(evs.len(), 1, "one open by the reader thread: {evs:?}");
    let e = evs[0];
    assert_eq!(u(&e["uid"]), 65534, "{e}");
    assert_eq!(i(&e["ret"]), fd, "{e}");
    assert_eq!(e["path_changed"], true, "{e}");
    // What was opened comes from the kernel: the FIFO, not the rewritten buffer.
    assert_eq!(
        bytes_of(e, "resolved_path"),
        real.as_os_str().as_bytes(),
        "{e}"
    );
    assert_eq!(e["resolved_truncated"], false, "{e}");
    // path is the copy read at entry (the exit copy said /etc/hostname).
    assert_eq!(bytes_of(e, "path"), fifo.as_os_str().as_bytes(), "{e}");
    let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&fifo).expect("fifo"));
    assert_eq!(u(&e["ino"]), ino, "{e}");
    let _ = fs::remove_dir_all(&dir);
}

/// truncate() breaks the read lease its own process holds on the file and waits, past
/// the path lookup, until the lease is given up: the buffer is rewritten to a decoy in
/// that wait. SIGIO (the lease-break notice) is ignored, not fatal.
const TRUNCATE_TOCTOU: &str = r#"
import ctypes, fcntl, json, os, signal, sys, threading, time
signal.signal(signal.SIGIO, signal.SIG_IGN)
libc = ctypes.CDLL(None, use_errno=True)
victim, decoy, nr = sys.argv[1], sys.argv[2], sys.argv[3]
held = os.open(victim, os.O_RDONLY)
fcntl.fcntl(held, fcntl.F_SETLEASE, fcntl.F_RDLCK)
buf = ctypes.create_string_buffer(victim.encode(), 4096)
got = {}
def truncater():
    got["tid"] = threading.get_native_id()
    r = libc.truncate(buf, ctypes.c_long(0))
    got["ret"] = r if r == 0 else -ctypes.get_errno()
t = threading.Thread(target=truncater)
t.start()
while "tid" not in got:
    time.sleep(0.001)
task = "/proc/self/task/%d/" % got["tid"]
deadline = time.time() + 30
# The number first, then the state: once in truncate, it cannot return while the lease
# is held, so a sleep seen after it is the lease's (not a lock on the way in).
while True:
    sc = open(task + "syscall").read().split()[0]
    state = open(task + "stat").read().rsplit(")", 1)[1].split()[0]
    if sc == nr and state == "S":
        break
    assert time.time() < deadline, "truncate never waited for the lease"
    time.sleep(0.01)
forged = decoy.encode() + b"\0"
ctypes.memmove(buf, forged, len(forged))
fcntl.fcntl(held, fcntl.F_SETLEASE, fcntl.F_UNLCK)
t.join()
print(json.dumps(got), flush=True)
"#;

#[test]
fn a_path_rewritten_during_a_waiting_truncate_is_flagged() {
    // The lease holds the truncate for fs.lease-break-time at most: long enough to see it
    // wait and rewrite the buffer (45 s by default).
    let lease_s: u64 = fs::read_to_string("/proc/sys/fs/lease-break-time")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    if lease_s < 30 {
        eprintln!("skipped: fs.lease-break-time is {lease_s} s, under 30");
        return;
    }
    let dir = common::temp_dir("truncate-toctou");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    // Same length, one last byte apart: the compare of the two copies must see it.
    let (victim, decoy) = (dir.join("victim-a"), dir.join("victim-b"));
    for p in [&victim, &decoy] {
        fs::write(p, b"twelve bytes").expect("write");
        // The attacker's own files: a lease needs the owner.
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).expect("chown");
    }
    // Fixed and large: the 20,000 opens another test here releases at once must not
    // crowd out the one event this test counts.
    let d = Daemon::start(
        "truncate-toctou",
        &[
            "--only",
            "file",
            "--ring-size",
            "file=64MiB",
            "--adaptive",
            "off",
        ],
    );
    let nr = libc::SYS_truncate.to_string();
    let got = attack(
        TRUNCATE_TOCTOU,
        &[victim.as_os_str(), decoy.as_os_str(), nr.as_ref()],
    );
    assert_eq!(i(&got["ret"]), 0, "the truncate succeeded: {got}");
    // The kernel truncated the file it looked up before the rewrite.
    assert_eq!(fs::metadata(&victim).expect("victim").len(), 0);
    assert_eq!(fs::metadata(&decoy).expect("decoy").len(), 12);
    let tid = u(&got["tid"]);
    let f = d.stop();
    f.assert_exact();
    assert_eq!(u(&f.ring("file")["dropped"]), 0, "{}", f.ring("file"));
    let evs: Vec<&Value> = f
        .of_type("truncate")
        .filter(|e| u(&e["tid"]) == tid)
        .collect();
    assert_eq!(evs.len(), 1, "one truncate by the thread: {evs:?}");
    let e = evs[0];
    assert_eq!(u(&e["uid"]), 65534, "{e}");
    assert_eq!((i(&e["ret"]), i(&e["length"])), (0, 0), "{e}");
    assert_eq!(e["syscall"], "truncate", "{e}");
    // The copy taken at entry names the victim; the exit copy said decoy: flagged.
    assert_eq!(bytes_of(e, "path"), victim.as_os_str().as_bytes(), "{e}");
    assert_eq!(e["path_changed"], true, "{e}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_long_dotted_path_still_resolves_to_the_real_file() {
    common::ensure_tracefs();
    let target = fs::canonicalize("/etc/hostname").expect("/etc/hostname");
    // 1,500 bytes: /./././…/etc/hostname, the real name well past the 511 path bytes.
    let tail = "/etc/hostname";
    let mut p = String::new();
    while p.len() + tail.len() + 2 <= 1500 {
        p.push_str("/.");
    }
    while p.len() + tail.len() < 1500 {
        p.push('/');
    }
    p.push_str(tail);
    assert_eq!(p.len(), 1500);
    let d = Daemon::start("open-dots", &["--only", "file", "--ring-size", "file=8MiB"]);
    let mut c = Attacker(
        as_nobody(PY)
            .args([
                "-c",
                "import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY))",
            ])
            .arg(&p)
            .spawn()
            .expect("spawn"),
    );
    let pid = u64::from(c.0.id());
    assert!(c.0.wait().expect("wait").success());
    let f = d.stop();
    f.assert_exact();
    let evs: Vec<&Value> = f
        .of_type("open")
        .filter(|e| u(&e["pid"]) == pid && bytes_of(e, "path").starts_with(b"/./././"))
        .collect();
    assert_eq!(evs.len(), 1, "{evs:?}");
    let e = evs[0];
    assert!(i(&e["ret"]) >= 0, "{e}");
    assert_eq!(e["path_truncated"], true, "{e}");
    assert_eq!(bytes_of(e, "path"), p.as_bytes()[..511], "{e}");
    assert_eq!(e["path_changed"], false, "{e}");
    assert_eq!(
        bytes_of(e, "resolved_path"),
        target.as_os_str().as_bytes(),
        "{e}"
    );
    assert_eq!(e["resolved_truncated"], false, "{e}");
}

const THREADS: usize = 20_000;
const PROCS: usize = 2;
const PER_PROC: usize = THREADS / PROCS;

/// THREADS threads with small stacks, each blocked in open() of the FIFO; on a line on
/// stdin the main thread opens the FIFO for writing, which unblocks them all.
const BLOCKERS: &str = r#"
import ctypes, json, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
fifo = sys.argv[1].encode()
n = int(sys.argv[2])
threading.stack_size(64 * 1024)
def reader():
    libc.open(fifo, os.O_RDONLY)
ts = []
for _ in range(n):
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    ts.append(t)
print(json.dumps({"started": len(ts)}), flush=True)
sys.stdin.readline()
os.open(sys.argv[1], os.O_WRONLY)
for t in ts:
    t.join()
print(json.dumps({"done": len(ts)}), flush=True)
"#;

/// Threads of `pid` inside openat.
fn in_openat(pid: u32) -> usize {
    let want = format!("{} ", libc::SYS_openat);
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|t| {
                    fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| s.starts_with(&want))
                })
                .count()
        })
        .unwrap_or(0)
}

fn stats_now(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap_or_default()).unwrap_or(Value::Null)
}

#[test]
fn threads_blocked_in_open_do_not_hide_other_opens() {
    common::ensure_tracefs();
    let (dir, fifo) = fifo_dir("blind");
    // The victim's file exists before the daemon runs: only its opens are events.
    let victim = dir.join("victim");
    fs::write(&victim, b"v").expect("victim file");
    let real = fs::canonicalize(&victim).expect("canonical");
    // A fixed ring that holds the 20,000 released opens with the machine's own opens on
    // top, even if the daemon gets no CPU for a while (20,000 threads starting): a ring
    // the dynamic policy shrank while the threads blocked dropped some in a parallel run.
    let d = Daemon::start(
        "open-blind",
        &[
            "--only",
            "file",
            "--ring-size",
            "file=128MiB",
            "--adaptive",
            "off",
        ],
    );
    // Each blocked open holds an fd number already and the hard RLIMIT_NOFILE here is
    // 20,000 (and cannot be raised without CAP_SYS_RESOURCE): two processes of uid
    // 65534, 10,000 threads each.
    let mut attackers: Vec<(Attacker, BufReader<ChildStdout>)> = (0..PROCS)
        .map(|_| {
            let mut c = Attacker(
                as_nobody(PY)
                    .args(["-c", BLOCKERS])
                    .arg(&fifo)
                    .arg(PER_PROC.to_string())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn the attacker"),
            );
            let out = BufReader::new(c.0.stdout.take().expect("stdout"));
            (c, out)
        })
        .collect();
    for (_, out) in &mut attackers {
        let started = line(out);
        assert_eq!(u(&started["started"]), PER_PROC as u64, "{started}");
    }
    let pids: Vec<u32> = attackers.iter().map(|(c, _)| c.0.id()).collect();
    let blocked = || pids.iter().map(|&p| in_openat(p)).sum::<usize>();
    let t = Instant::now();
    while blocked() < THREADS {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{} of {THREADS} threads blocked in openat",
            blocked()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(blocked(), THREADS, "every thread blocked in openat");

    // The victim: this thread opens its own file while all of them block.
    const OPENS: usize = 50;
    for _ in 0..OPENS {
        drop(fs::File::open(&victim).expect("open the victim file"));
    }
    let tid = u64::from(gettid());
    // Reported while the attack still blocks (counted without parsing: the output has
    // the whole machine's opens).
    let needle = format!(
        "\"path\":{}",
        serde_json::to_string(victim.to_str().expect("utf-8 path")).expect("json")
    );
    let t = Instant::now();
    while d.count_lines_with(&needle) < OPENS && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        d.count_lines_with(&needle),
        OPENS,
        "victim opens reported during the attack"
    );
    assert_eq!(blocked(), THREADS, "the attack still blocks");
    // A stats write after the victim's opens (every second): nothing untracked.
    std::thread::sleep(Duration::from_millis(1500));
    let s = stats_now(&d.stats);
    assert_eq!(
        u(&s["rings"]["file"]["untracked"]),
        0,
        "{}",
        s["rings"]["file"]
    );

    // Release the threads: every blocked open completes and is reported.
    for (c, _) in &mut attackers {
        c.0.stdin
            .take()
            .expect("stdin")
            .write_all(b"go\n")
            .expect("tell the attacker");
    }
    for (c, out) in &mut attackers {
        let done = line(out);
        assert_eq!(u(&done["done"]), PER_PROC as u64, "{done}");
        assert!(c.0.wait().expect("wait").success(), "attacker failed");
    }
    let f = d.stop();
    f.assert_exact();
    assert_eq!(u(&f.ring("file")["dropped"]), 0, "{}", f.ring("file"));
    let victim_evs: Vec<&Value> = f
        .of_type("open")
        .filter(|e| u(&e["tid"]) == tid && bytes_of(e, "path") == victim.as_os_str().as_bytes())
        .collect();
    assert_eq!(victim_evs.len(), OPENS);
    for e in victim_evs {
        assert_eq!(
            bytes_of(e, "resolved_path"),
            real.as_os_str().as_bytes(),
            "{e}"
        );
    }
    // Each blocked reader's open: one event each, naming the FIFO.
    let fifo_real = fs::canonicalize(&fifo).expect("canonical fifo");
    let readers = f
        .of_type("open")
        .filter(|e| {
            pids.contains(&(u(&e["pid"]) as u32))
                && u(&e["flags"]) & libc::O_ACCMODE as u64 == libc::O_RDONLY as u64
                && bytes_of(e, "path") == fifo.as_os_str().as_bytes()
        })
        .inspect(|e| {
            assert_eq!(
                bytes_of(e, "resolved_path"),
                fifo_real.as_os_str().as_bytes(),
                "{e}"
            )
        })
        .count();
    assert_eq!(readers, THREADS, "one event per blocked open");
    let _ = fs::remove_dir_all(&dir);
}
