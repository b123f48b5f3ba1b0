//! Shutdown under load: exact books, exit within 5 s. Its own test binary so the load
//! it makes does not compete with the timing-sensitive tests in accounting.rs.
mod common;

use std::time::Duration;

use common::{Daemon, u};

#[test]
fn shutdown_under_load_is_exact_and_within_five_seconds() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // All families, default sizes, two threads hammering a syscall the whole time: the
    // harness's stop() asserts the exit within 5 s of SIGTERM, assert_exact the books.
    let d = Daemon::start("acct-shutdown", &["--syscalls", "getuid"]);
    let run = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let run = run.clone();
            std::thread::spawn(move || {
                while run.load(Ordering::Relaxed) {
                    common::syscall_n(libc::SYS_getuid, 1000);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let f = d.stop(); // panics unless the daemon exits within 5 s of SIGTERM
    run.store(false, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    f.assert_exact();
    assert!(
        u(&f.ring("syscall")["received"]) > 0,
        "the load reached the ring"
    );
}

#[test]
fn stalled_stdout_reader_cannot_hold_the_daemon() {
    // stdout is a pipe nobody reads until the daemon has exited: the 64 KiB pipe fills,
    // the daemon must still obey SIGTERM within 5 s and count what it could not write.
    let d = Daemon::builder("stalled-stdout")
        .args(&["--only", "syscall", "--syscalls", "getgid"])
        .stats_interval(None)
        .stdout_piped()
        .start();
    common::syscall_n(libc::SYS_getgid, 20_000); // ~5 MB of JSON: far more than the pipe holds
    std::thread::sleep(Duration::from_millis(300));
    // stop(): SIGTERM, then the exit within 5 s ("daemon hung on a full stdout" if not);
    // the pipe is read only after the exit.
    let f = d.stop();
    let status = f.status;
    assert!(status.success());
    let out = std::str::from_utf8(&f.stdout).expect("read");
    let written = out.lines().count() as u64;
    for l in out.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("every written line is whole JSON");
    }
    let s = stats_of(&f);
    let r = &s["rings"]["syscall"];
    assert_eq!(u(&r["produced"]), u(&r["received"]) + u(&r["dropped"]));
    // Every received event, and every `lost` record about the ring's drops, was either
    // written or counted as a sink error.
    assert_eq!(
        u(&r["received"]) + u(&r["lost_records"]),
        written + u(&s["sink_errors"]),
        "{s}"
    );
}

#[test]
fn counting_sink_counts_every_event_and_writes_none() {
    let d = Daemon::builder("count-sink")
        .args(&[
            "--only",
            "syscall",
            "--syscalls",
            "geteuid",
            "--output",
            "none",
        ])
        .args(&["--adaptive", "off", "--ring-size", "syscall=8MiB"])
        .stats_interval(None)
        .stdout_piped()
        .start();
    common::syscall_n(libc::SYS_geteuid, 30_000);
    let out = d.stop();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "none writes nothing");
    let s = stats_of(&out);
    let r = &s["rings"]["syscall"];
    assert_eq!(u(&r["dropped"]), 0);
    assert_eq!(u(&r["produced"]), u(&r["received"]));
    // geteuid is this test's own; the 30000 calls above are all there (and maybe a few
    // from other processes).
    assert!(u(&r["received"]) >= 30_000, "{r}");
}

/// A parent that left SIGINT, SIGTERM and SIGHUP ignored (`ringwarden &` in a script,
/// `nohup`) does not make them dead letters: the kernel keeps a blocked signal pending
/// even when ignored, so the signalfd still gets it. SIGHUP reloads, SIGINT stops, and
/// the stop is as exact as any.
#[test]
fn signals_a_parent_left_ignored_still_reload_and_stop() {
    let d = Daemon::builder("ignored-signals")
        .args(&["--only", "syscall", "--syscalls", "getppid"])
        .ignoring(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
        .start();
    // The premise: the daemon runs with them ignored (it blocks them, it never handles
    // them), bits 1, 2 and 15 of SigIgn.
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).expect("status");
    let ign = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("SigIgn");
    let want = 1 << (libc::SIGHUP - 1) | 1 << (libc::SIGINT - 1) | 1 << (libc::SIGTERM - 1);
    assert_eq!(ign & want, want, "SigIgn {ign:#x}");
    d.signal(libc::SIGHUP);
    d.wait_for_log("SIGHUP: reloading", Duration::from_secs(10));
    let tid = u64::from(common::gettid());
    common::syscall_n(libc::SYS_getppid, 1000);
    d.signal(libc::SIGINT);
    let f = d.finish();
    assert!(f.status.success(), "{:?}\n{}", f.status, f.stderr);
    f.assert_exact();
    let mine = f
        .of_type("syscall")
        .filter(|e| u(&e["tid"]) == tid && e["name"] == "getppid")
        .count();
    assert_eq!(mine, 1000);
}

/// The stats file the daemon wrote at exit: it must be there and parse.
fn stats_of(f: &common::Finished) -> &serde_json::Value {
    assert!(!f.stats.is_null(), "stats: no stats file, or not JSON");
    &f.stats
}
