//! ringwarden-load against the real daemon: what the generator says it made is exactly what
//! the daemon received for the generator's producer threads, thread by thread.
mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use common::{Daemon, Finished, i, u};
use serde_json::Value;

/// Runs the generator to completion and returns its JSON line.
fn load(args: &[&str]) -> Value {
    let stdout = common::run_load(Command::new(common::load_bin()), args);
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

/// The generator's producer threads: tid -> (count, the thread's own fields).
fn producers(r: &Value) -> HashMap<u64, (u64, &Value)> {
    let threads = r["threads"].as_array().expect("threads");
    let m: HashMap<u64, (u64, &Value)> = threads
        .iter()
        .map(|t| (u(&t["tid"]), (u(&t["generated"]), t)))
        .collect();
    assert_eq!(m.len(), threads.len(), "distinct tids: {r}");
    assert_eq!(
        m.values().map(|(n, _)| n).sum::<u64>(),
        u(&r["generated"]),
        "threads add up: {r}"
    );
    m
}

/// Events of `ty` per producer tid (events of other threads and processes are ignored:
/// the whole machine reaches the daemon).
fn per_tid<'a>(
    f: &'a Finished,
    ty: &'a str,
    tids: &HashMap<u64, (u64, &Value)>,
) -> HashMap<u64, Vec<&'a Value>> {
    let mut m: HashMap<u64, Vec<&Value>> = HashMap::new();
    for e in f.of_type(ty) {
        let tid = u(&e["tid"]);
        if tids.contains_key(&tid) {
            m.entry(tid).or_default().push(e);
        }
    }
    m
}

#[test]
fn syscall_load_is_received_exactly_per_thread() {
    let d = Daemon::start(
        "load-syscall",
        &[
            "--only",
            "syscall",
            "--syscalls",
            "getsid",
            "--ring-size",
            "syscall=8MiB",
        ],
    );
    let r = load(&[
        "--family",
        "syscall",
        "--syscall",
        "getsid",
        "--events",
        "50000",
        "--rate",
        "20000",
        "--threads",
        "2",
    ]);
    let f = d.stop();
    f.assert_exact();
    assert_eq!(u(&f.ring("syscall")["dropped"]), 0, "{}", f.ring("syscall"));

    assert_eq!(r["family"], "syscall");
    assert_eq!(r["stopped_by"], "count");
    assert_eq!(r["syscall"], "getsid");
    assert_eq!(i(&r["nr"]), libc::SYS_getsid);
    assert_eq!(u(&r["generated"]), 50_000);
    // Paced: the last of 50 000 events at 20 000/s is due at 2.49995 s.
    let elapsed = r["elapsed_s"].as_f64().expect("elapsed_s");
    assert!((2.45..30.0).contains(&elapsed), "elapsed {elapsed}: {r}");
    assert!(r["rate"].as_f64().expect("rate") <= 20_500.0, "{r}");

    let tids = producers(&r);
    assert_eq!(tids.len(), 2);
    let got = per_tid(&f, "syscall", &tids);
    // SAFETY: getsid(0) only reads this process's session id (inherited by the child).
    let sid = i64::from(unsafe { libc::getsid(0) });
    let pid = u(&r["pid"]);
    for (tid, (n, _)) in &tids {
        assert_eq!(*n, 25_000, "even split over two threads: {r}");
        let evs = got.get(tid).map_or(&[][..], Vec::as_slice);
        assert_eq!(evs.len() as u64, *n, "events for tid {tid}");
        for e in evs {
            assert_eq!(e["name"], "getsid", "{e}");
            assert_eq!(u(&e["pid"]), pid, "{e}");
            assert_eq!(u(&e["args"][0]), 0, "{e}");
            assert_eq!(i(&e["ret"]), sid, "{e}");
        }
        let seqs: HashSet<u64> = evs.iter().map(|e| u(&e["seq"])).collect();
        assert_eq!(seqs.len(), evs.len(), "unique seq for tid {tid}");
    }
    // The generator made no getsid calls elsewhere (its main thread only sets up).
    let from_pid = f.of_type("syscall").filter(|e| u(&e["pid"]) == pid).count() as u64;
    assert_eq!(from_pid, 50_000);
}

#[test]
fn file_load_opens_are_received_exactly_per_thread() {
    let d = Daemon::start("load-file", &["--only", "file"]);
    let r = load(&[
        "--family",
        "file",
        "--events",
        "3001",
        "--rate",
        "5000",
        "--threads",
        "2",
    ]);
    let f = d.stop();
    f.assert_exact();
    assert_eq!(u(&f.ring("file")["dropped"]), 0, "{}", f.ring("file"));

    assert_eq!(r["family"], "file");
    assert_eq!(r["stopped_by"], "count");
    assert_eq!(u(&r["generated"]), 3001);
    let dir = r["dir"].as_str().expect("dir");
    assert!(!Path::new(dir).exists(), "temporary dir {dir} removed");

    let tids = producers(&r);
    let got = per_tid(&f, "open", &tids);
    let mut counts: Vec<u64> = tids.values().map(|(n, _)| *n).collect();
    counts.sort_unstable();
    assert_eq!(counts, [1500, 1501], "split over two threads: {r}");
    let mut files = HashSet::new();
    for (tid, (n, t)) in &tids {
        let file = t["file"].as_str().expect("file per thread");
        assert!(file.starts_with(dir), "{file} in {dir}");
        assert!(files.insert(file), "one file per thread: {r}");
        let evs = got.get(tid).map_or(&[][..], Vec::as_slice);
        assert_eq!(evs.len() as u64, *n, "open events for tid {tid}");
        for e in evs {
            assert_eq!(e["path"], file, "{e}");
            assert_eq!(e["syscall"], "openat", "{e}");
            assert_eq!(i(&e["dfd"]), i64::from(libc::AT_FDCWD), "{e}");
            assert!(i(&e["ret"]) >= 0, "{e}");
            assert_eq!(
                u(&e["flags"]),
                (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
                "{e}"
            );
            assert_eq!(u(&e["pid"]), u(&r["pid"]), "{e}");
        }
    }
}

#[test]
fn help_and_exit_codes() {
    let o = Command::new(common::load_bin())
        .arg("--help")
        .output()
        .expect("run");
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for opt in [
        "--family",
        "--events",
        "--duration",
        "--rate",
        "--burst",
        "--threads",
        "--syscall",
        "--path",
        "--quiet",
        "process",
        "file",
        "network",
        "syscall",
        "cgroup",
        "anomaly",
        "bpf_prog_load",
        "SIGTERM",
    ] {
        assert!(help.contains(opt), "--help mentions {opt}");
    }
    for (args, code) in [
        (&["--family", "syscall"][..], 64),
        (&["--family", "syscall", "--events", "1", "--nope"][..], 64),
        (&["--family", "nope", "--events", "1"][..], 78),
        (
            &["--family", "syscall", "--events", "1", "--rate", "-3"][..],
            78,
        ),
        (
            &["--family", "syscall", "--events", "1", "--syscall", "kill"][..],
            78,
        ),
    ] {
        let o = Command::new(common::load_bin())
            .args(args)
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(o.stdout.is_empty());
    }
}
